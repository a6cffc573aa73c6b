"""The posterior side of ``irl plan`` and ``irl evaluate``: robust (BROIL) planning and deferring.

``irl plan posterior.npz --objective cvar --alpha 0.95 --lam 0.5`` and ``--defer P``
call :func:`plan_posterior_command`; ``irl evaluate`` adds :func:`deferral_summary`
for a policy file that records where it defers. No command of its own: the
options belong to ``irl plan`` and ``irl evaluate`` (so this module is not in
:data:`irl.commands.MODULES`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

#: ``irl plan --objective`` values that need a posterior.
POSTERIOR_OBJECTIVES = ("mean", "map", "cvar")


def wants_posterior(objective: str, alpha: Any, lam: Any, baseline: Any, defer: Any, fallback: str) -> bool:
    """Whether ``irl plan``'s options ask for planning over the posterior."""
    return (objective in POSTERIOR_OBJECTIVES or defer is not None
            or any(x is not None for x in (alpha, lam, baseline)) or fallback != "ask")


def plan_posterior_command(path: Path, mdp: Any, *, objective: str, alpha: Optional[float], lam: Optional[float],
                           baseline: Optional[Path], defer: Optional[float], fallback: str, out: Path,
                           json_out: bool = False) -> None:
    """Plan over a posterior file, save the policy (with its deferral mask) and print a summary."""
    import demos
    import irl
    from irl.cli import CLIError, _bind, _load_reward, _make_human, _report, _warn_env_mismatch
    from irl.plan import save_policy
    from irl.robust import _check_alpha, _check_lam

    if objective not in POSTERIOR_OBJECTIVES + ("optimal",):
        raise CLIError(f"--alpha, --lam, --baseline, --defer and --fallback plan over a posterior: use --objective "
                       f"{', '.join(POSTERIOR_OBJECTIVES)} (or optimal with --defer); got --objective {objective}",
                       code=2)
    try:
        if alpha is not None:
            _check_alpha(alpha)
        if lam is not None:
            _check_lam(lam)
            if objective != "cvar":
                raise ValueError("--lam only applies to --objective cvar")
        if defer is not None and not 0.0 <= defer <= 1.0:
            raise ValueError(f"--defer is a probability threshold and must lie in [0, 1]: got {defer}")
        if fallback not in ("ask", "demonstrations"):
            raise ValueError(f"--fallback must be ask or demonstrations: got {fallback!r}")
    except ValueError as e:
        raise CLIError(str(e).replace("alpha", "--alpha", 1).replace("lam ", "--lam ", 1), code=2) from None
    post = _load_reward(path)
    if not isinstance(post, irl.Posterior):
        raise CLIError(f"{path}: --objective {objective} plans over posterior draws, but this file holds one reward "
                       f"(fit with --solver bayes for a posterior)", code=2)
    _warn_env_mismatch(post.info.get("env"), mdp, path)
    _check_draws(path, post, objective, defer)
    data = None
    if baseline is not None:
        data = demos.load(baseline)
        if not hasattr(data, "step_index"):
            raise CLIError(f"--baseline {baseline}: needs demonstrations (trajectories), got {type(data).__name__}",
                           code=2)
        _bind(mdp, [data], [baseline], _make_human("boltzmann"), command="plan", option="--baseline")
    if fallback == "demonstrations" and data is None:
        raise CLIError("--fallback demonstrations needs the demonstrations: give them with --baseline demos.npz",
                       code=2)
    res = irl.plan(mdp, post, objective="mean" if objective == "optimal" else objective, alpha=alpha, lam=lam,
                   baseline=data, defer=defer, fallback=data if fallback == "demonstrations" else "ask")
    meta: dict[str, Any] = {"env": mdp.name, "objective": res.objective, "alpha": res.alpha, "lam": res.lam,
                            "expected_return": res.expected_return, "cvar": res.cvar, "samples": int(res.returns.size),
                            "baseline_file": None if baseline is None else str(baseline), "reward_file": str(path)}
    if res.defer is not None:
        meta.update(defer_threshold=defer, fallback=fallback, defer_shape=list(res.defer.shape),
                    defer=np.flatnonzero(res.defer.ravel()).tolist())
    save_policy(out, res.policy, meta=meta)
    against = " - the demonstrations' return" if baseline is not None else ""
    text = (f"Planned ({res.objective}" + (f", lam={res.lam:g}" if res.lam is not None else "")
            + f") in {mdp.name} over {res.returns.size} posterior draws: expected return {res.expected_return:.4f}, "
            f"CVaR_{res.alpha:g}(return{against}) {res.cvar:.4f}")
    if res.lp.get("solver") == "column generation":
        text += (f"; column generation: {res.lp['rounds']} rounds, a mixture of {res.lp['policies']} policies, "
                 f"certified gap {res.lp['gap']:.1e}, {res.lp['seconds']:.2f} s")
    elif res.lp:
        text += (f"; linear program: {res.lp['variables']} variables, "
                 f"{res.lp['equality_constraints'] + res.lp['inequality_constraints']} constraints, "
                 f"{res.lp['seconds']:.2f} s")
    if res.defer is not None:
        text += (f"; defers (p(optimal) < {defer:g}) in {int(res.defer.sum())} of {res.defer.size} states, "
                 f"{100 * res.deferral_rate:.1f}% of visits")
    _report(json_out, {**meta, "out": str(out)}, text + f". Saved to {out}")


def _check_draws(path: Path, post: Any, objective: str, defer: Optional[float]) -> None:
    """Refuse (exit code 2) a risk measure or a deferral over fewer than 2 posterior draws: over one draw the
    CVaR is that draw's return and the probability that an action is optimal is 0 or 1."""
    from irl.cli import CLIError

    n = post.n_chains * post.n_draws
    uses = [f"--objective {objective}"] if objective == "cvar" else []
    uses += [f"--defer {defer:g}"] if defer is not None else []
    if uses and n < 2:
        raise CLIError(f"{path}: {' with '.join(uses)} needs at least 2 posterior draws (a risk measure or a "
                       f"deferral over one draw is meaningless): found {n}; sample more with irl fit --solver bayes",
                       code=2)


def deferral_summary(mdp: Any, policy: np.ndarray, meta: dict[str, Any], truth: np.ndarray) -> dict[str, float]:
    """``irl evaluate``'s numbers for a deferring policy: share of deferred visits, regret split (empty otherwise)."""
    from demos import DemoFileError
    from irl.robust import deferral_report

    if "defer" not in meta:
        return {}
    shape = tuple(int(x) for x in meta.get("defer_shape", ()))
    if shape != policy.shape[:-1]:
        raise DemoFileError(f"the policy file's deferral mask has shape {shape}, its policy {policy.shape}")
    mask = np.zeros(int(np.prod(shape)), bool)
    idx = np.asarray(meta["defer"], dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= mask.size):
        raise DemoFileError("the policy file's deferral mask indexes states outside the policy")
    mask[idx] = True
    rep = deferral_report(mdp, policy, mask.reshape(shape), truth)
    return {"deferred_visits": rep["deferred_visits"], "regret_autonomous": rep["regret_autonomous"],
            "regret_deferred": rep["regret_deferred"]}
