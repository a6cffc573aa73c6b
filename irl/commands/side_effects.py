"""``irl side-effects``: plan with a reward and a side-effect penalty (relative reachability, attainable utility)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

MEASURES = ("relative-reachability", "attainable-utility", "feature-deviation")


def _check_options(measure: str, baseline: str, weight: float, discount: Optional[float], n_rewards: Optional[int],
                   seed: Optional[int], rollout: int, noop: Optional[int], start: Optional[int], objective: str,
                   beta: Optional[float]) -> None:
    """Refuse, before any work, unknown names, values out of range and options the chosen measure, baseline or
    objective would ignore (exit code 2, naming the option)."""
    from irl.cli import CLIError, _check_number, _known, _refuse_unused
    from irl.side_effects import BASELINES

    if measure not in MEASURES:
        raise _known("--measure", measure, list(MEASURES))
    if baseline not in BASELINES:
        raise _known("--baseline", baseline, list(BASELINES))
    if objective not in ("optimal", "soft"):
        raise CLIError(f"--objective {objective!r} cannot be combined with a side-effect penalty; known with a "
                       f"penalty: optimal, soft", code=2)
    _check_number("--weight", weight, 0.0)
    _refuse_unused({"--beta": beta}, objective == "soft", "--objective soft", f"--objective {objective}")
    _check_number("--beta", beta, 0.0, low_open=True)
    _refuse_unused({"--discount": discount}, measure != "feature-deviation",
                   "--measure relative-reachability or attainable-utility", f"--measure {measure}")
    _check_number("--discount", discount, 0.0, 1.0, low_open=measure == "relative-reachability")
    _refuse_unused({"--n-rewards": n_rewards, "--seed": seed}, measure == "attainable-utility",
                   "--measure attainable-utility", f"--measure {measure}")
    _refuse_unused({"--start": start}, baseline != "stepwise", "--baseline starting or inaction",
                   f"--baseline {baseline}")
    _refuse_unused({"--noop": noop}, baseline != "starting", "--baseline inaction or stepwise",
                   f"--baseline {baseline}")
    if rollout and (baseline != "stepwise" or measure == "feature-deviation"):
        raise CLIError(f"--rollout {rollout} applies to --baseline stepwise with relative-reachability or "
                       f"attainable-utility: got --baseline {baseline} --measure {measure}", code=2)


def _check_index(option: str, value: Optional[int], n: int, what: str) -> None:
    """Fail (exit code 2) on an index ``value`` of ``option`` outside ``[0, n)``."""
    from irl.cli import CLIError

    if value is not None and not 0 <= value < n:
        raise CLIError(f"{option} must be {what}, in [0, {n}): got {value}", code=2)


def register(app: Any) -> None:
    """Add ``irl side-effects`` to ``app``."""
    from irl.cli import ENV_HELP, _handles_errors, seed_option

    @app.command("side-effects")
    @_handles_errors
    def side_effects_command(
        reward: Path = typer.Argument(..., help="A reward or a posterior saved by `irl fit`, e.g. reward.npz."),
        env: str = typer.Option(..., "--env", help=ENV_HELP),
        measure: str = typer.Option("relative-reachability", "--measure",
                                    help=f"Deviation measure: {', '.join(MEASURES)}; "
                                         f"e.g. --measure attainable-utility."),
        baseline: str = typer.Option("stepwise", "--baseline",
                                     help="starting, inaction or stepwise, e.g. --baseline inaction."),
        weight: float = typer.Option(1.0, "--weight", help="Penalty weight (>= 0), e.g. --weight 5."),
        discount: Optional[float] = typer.Option(None, "--discount",
                                                 help="Discount of the reachability values, in (0, 1], or of the "
                                                      "auxiliary values, in [0, 1] (default 0.99; not used by "
                                                      "feature-deviation), e.g. --discount 0.95."),
        n_rewards: Optional[int] = typer.Option(None, "--n-rewards", min=1,
                                                help="Random auxiliary rewards (attainable-utility only; default "
                                                     "20), e.g. --n-rewards 30."),
        seed: Optional[int] = seed_option(None, "Seed of the auxiliary rewards (attainable-utility only; default 0), "
                                                "e.g. --seed 1."),
        rollout: int = typer.Option(0, "--rollout", min=0,
                                    help="Stepwise baseline: no-op steps of the inaction rollouts that compare "
                                         "delayed effects (0: none), e.g. --rollout 10."),
        noop: Optional[int] = typer.Option(None, "--noop",
                                           help="Index of the no-op action of the inaction and stepwise baselines "
                                                "(default: by name), e.g. --noop 4."),
        start: Optional[int] = typer.Option(None, "--start",
                                            help="Start state of the starting and inaction baselines (default: the "
                                                 "environment's one start state), e.g. --start 0."),
        objective: str = typer.Option("optimal", "--objective",
                                      help="optimal or soft (Boltzmann at --beta), e.g. --objective soft."),
        beta: Optional[float] = typer.Option(None, "--beta", help="Rationality for --objective soft, e.g. --beta 10."),
        out: Path = typer.Option(..., "--out", "-o", help="Where to save the policy, e.g. --out policy.npz."),
    ) -> None:
        """Plan with a reward minus a side-effect penalty and save the policy.

        Example: irl side-effects reward.npz --env rlsp-room --baseline inaction --weight 2 --out policy.npz
        """
        import irl
        from irl import side_effects
        from irl.cli import (CLIError, _check_writable, _console, _load_reward, _make_env, _reward_of,
                             _warn_env_mismatch)
        from irl.plan import save_policy

        _check_writable(out, suffixes=(".npz",))
        _check_options(measure, baseline, weight, discount, n_rewards, seed, rollout, noop, start, objective, beta)
        mdp = _make_env(env)
        _check_index("--noop", noop, mdp.n_actions, f"an action index of {mdp.name!r}")
        _check_index("--start", start, mdp.n_states, f"a state index of {mdp.name!r}")
        est = _load_reward(reward)
        _reward_of(est, mdp, reward)
        _warn_env_mismatch(est.info.get("env"), mdp, reward)
        common = dict(baseline=baseline, weight=weight, start=start, noop=noop)
        discount = 0.99 if discount is None else discount
        if measure == "relative-reachability":
            pen = side_effects.relative_reachability(mdp, discount=discount, rollout=rollout, **common)
        elif measure == "attainable-utility":
            pen = side_effects.attainable_utility(mdp, n_rewards=20 if n_rewards is None else n_rewards,
                                                  seed=0 if seed is None else seed, discount=discount,
                                                  rollout=rollout, **common)
        else:
            pen = side_effects.feature_deviation(mdp, **common)
        try:
            policy = irl.plan(mdp, est.reward, objective=objective, beta=beta, penalty=pen)
        except ValueError as e:
            if "objective" in str(e):
                raise CLIError(str(e), code=2) from None
            raise
        value = irl.metrics.policy_return(mdp, policy, est.reward)
        save_policy(out, policy, meta={"env": mdp.name, "objective": objective, "beta": beta,
                                       "reward_file": str(reward), "penalty": measure, "baseline": baseline,
                                       "weight": weight, "rollout": rollout})
        _console().print(f"Planned ({objective}, {pen.measure} penalty, {baseline} baseline, weight {weight:g}) in "
                         f"{mdp.name}: policy of shape {policy.shape}, expected return {value:.4f} under the "
                         f"inferred reward. Saved to {out}", soft_wrap=True)
