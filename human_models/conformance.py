"""``check_human_model``: the conformance suite every human model must pass.

Users can run it on their own models before handing them to a solver.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from irl.mdp import TabularMDP

__all__ = ["check_human_model", "ConformanceError"]


class ConformanceError(AssertionError):
    """A human model broke the interface contract; the message says which rule."""


def _tiny_mdps(seed: int) -> list[TabularMDP]:
    rng = np.random.default_rng(seed)
    S, A = 5, 3
    T = rng.dirichlet(np.ones(S) * 0.5, size=(S, A))
    terminal = np.zeros(S, bool)
    terminal[-1] = True
    feats = rng.normal(size=(S, 2))
    return [
        TabularMDP.from_arrays(T, horizon=4, discount=1.0, features=feats, name="tiny-finite"),
        TabularMDP.from_arrays(T, horizon=3, discount=0.9, terminal=terminal, features=feats, name="tiny-terminal"),
        TabularMDP.from_arrays(T, discount=0.8, features=feats, name="tiny-discounted"),
    ]


def _fail(model: Any, mdp: TabularMDP, msg: str) -> None:
    raise ConformanceError(f"{type(model).__name__} on {mdp.name}: {msg}")


def _check_meta(model: Any, *, seed: int, mdps: list | None) -> dict[str, Any]:
    """``check_human_model`` for cognition-level models: the meta-level checks on small Mouselab trees."""
    from human_models.cognitive import check_meta_human_model
    from irl.metalevel.mouselab import mouselab

    envs = mdps if mdps is not None else [mouselab((2, 1, 2), ((-1.0, 1.0), (-2.0, 2.0), (-10.0, 10.0)))]
    worst = 0.0
    for env in envs:
        try:
            out = check_meta_human_model(model, env, seed=seed, n_first=2000)
        except AssertionError as e:
            raise ConformanceError(f"{type(model).__name__} on {env.name}: {e}") from None
        worst = max(worst, out["grad_error"])
    return {"mdps": [env.name for env in envs], "grad_error": worst}


def check_human_model(model: Any, *, seed: int = 0, mdps: list[TabularMDP] | None = None,
                      n_grad_checks: int = 4) -> dict[str, Any]:
    """Check that ``model`` honours the ``HumanModel`` contract.

    Checks, on small random MDPs (finite horizon, terminal states, discounted):
    flags are booleans; ``action_log_probs`` has the right shape, is finite and
    normalised; a batch of rewards gives the stacked single results; ``sample``
    gives valid, reproducible trajectories; ``log_likelihood`` equals the sum of
    the log-probabilities of the sampled actions; and, for differentiable
    models, the gradient w.r.t. the reward matches central finite differences.

    Args:
        model: the human model to check.
        seed: seed for the random MDPs, rewards and samples.
        mdps: MDPs to check on (default: three tiny random ones).
        n_grad_checks: reward coordinates checked by finite differences per MDP.

    Returns:
        A dict with what was checked (``{"mdps": [...], "grad_error": max_abs_err}``).

    Raises:
        ConformanceError: naming the model, the MDP and the broken rule.

    A cognition-level model (one with ``meta_log_probs``, e.g.
    :class:`~human_models.MetaBoltzmann`) acts on computations, not on an MDP's
    actions: it is checked by :func:`human_models.cognitive.check_meta_human_model`
    on ``mdps`` (default: a small Mouselab tree, solved exactly in milliseconds),
    the same rules stated for deliberation traces.

    Example:
        >>> import human_models as hm
        >>> hm.check_human_model(hm.Boltzmann(beta=2.0))["mdps"]
        ['tiny-finite', 'tiny-terminal', 'tiny-discounted']
        >>> hm.check_human_model(hm.MetaBoltzmann(cost=1.0, depth_cost=0.3, beta=0.5))["mdps"]
        ['mouselab-212']
    """
    from demos import Trajectories

    if callable(getattr(model, "meta_log_probs", None)):
        return _check_meta(model, seed=seed, mdps=mdps)

    for flag in ("differentiable", "has_closed_form_gradient", "time_dependent"):
        if not isinstance(getattr(model, flag, None), bool):
            raise ConformanceError(f"{type(model).__name__}.{flag} must be a bool: got {getattr(model, flag, None)!r}")
    if not isinstance(getattr(model, "name", None), str):
        raise ConformanceError(f"{type(model).__name__}.name must be a str")
    rng = np.random.default_rng(seed)
    mdps = mdps if mdps is not None else _tiny_mdps(seed)
    worst = 0.0
    for mdp in mdps:
        S, A = mdp.n_states, mdp.n_actions
        reward = torch.as_tensor(rng.normal(size=(S, A)))
        logp = model.action_log_probs(mdp, reward)
        want = ((mdp.horizon,) if mdp.horizon is not None else ()) + (S, A)
        if not isinstance(logp, torch.Tensor):
            _fail(model, mdp, f"action_log_probs must return a torch.Tensor: got {type(logp).__name__}")
        if tuple(logp.shape) != want:
            _fail(model, mdp, f"action_log_probs shape must be {want}: got {tuple(logp.shape)}")
        if torch.isnan(logp).any() or torch.isposinf(logp).any():
            _fail(model, mdp, "action_log_probs has NaN or +inf entries")
        norm = torch.logsumexp(logp, dim=-1)
        if not torch.allclose(norm, torch.zeros_like(norm), atol=1e-8):
            _fail(model, mdp, f"action probabilities must sum to 1: worst log-sum {float(norm.abs().max()):.3g}")
        batch = torch.stack([reward, reward * 0.5 + 1.0])
        blogp = model.action_log_probs(mdp, batch)
        single = torch.stack([logp, model.action_log_probs(mdp, batch[1])])
        if tuple(blogp.shape) != (2,) + want or not torch.allclose(blogp, single, atol=1e-8):
            _fail(model, mdp, "a batch of rewards (B, S, A) must give the stacked single-reward results")
        horizon = None if mdp.horizon is not None else 6
        data = model.sample(mdp, reward, 8, rng=seed, horizon=horizon)
        again = model.sample(mdp, reward, 8, rng=seed, horizon=horizon)
        if not isinstance(data, Trajectories):
            _fail(model, mdp, f"sample must return demos.Trajectories: got {type(data).__name__}")
        data.validate(S, A, horizon=mdp.horizon)
        if not (np.array_equal(data.states, again.states) and np.array_equal(data.actions, again.actions)):
            _fail(model, mdp, "sample with the same seed must give the same data")
        ll = model.log_likelihood(mdp, reward, data)
        t, s = data.step_index
        lp = logp.detach().numpy()
        manual = (lp[t, s, data.actions] if mdp.horizon is not None else lp[s, data.actions]).sum()
        if not np.isclose(float(ll), manual, atol=1e-8, rtol=1e-8):
            _fail(model, mdp, f"log_likelihood {float(ll):.10g} != sum of sampled action log-probs {manual:.10g}")
        if model.differentiable:
            r = reward.clone().requires_grad_(True)
            model.log_likelihood(mdp, r, data).backward()
            g = r.grad
            if g is None or not torch.isfinite(g).all():
                _fail(model, mdp, "log_likelihood must have a finite gradient w.r.t. the reward")
            eps = 1e-6
            for _ in range(n_grad_checks):
                i, j = int(rng.integers(S)), int(rng.integers(A))
                up, dn = reward.clone(), reward.clone()
                up[i, j] += eps
                dn[i, j] -= eps
                fd = (float(model.log_likelihood(mdp, up, data)) - float(model.log_likelihood(mdp, dn, data))) / (2 * eps)
                err = abs(fd - float(g[i, j]))
                worst = max(worst, err)
                if err > 1e-5 * (1 + abs(fd)):
                    _fail(model, mdp, f"gradient d logL / d r[{i},{j}] = {float(g[i, j]):.8g} but finite "
                                      f"differences give {fd:.8g}")
    return {"mdps": [m.name for m in mdps], "grad_error": worst}
