"""Planners for an inferred reward: the "superhuman" step (optimise the human's values fully)."""

from __future__ import annotations

from typing import Any

import numpy as np

from irl import planning
from irl.mdp import TabularMDP

__all__ = ["plan", "reward_of", "check_policy", "save_policy", "load_policy", "POLICY_FORMAT"]


def reward_of(answer: Any) -> np.ndarray:
    """The reward array in an answer: a ``RewardEstimate``, an array or a tensor."""
    if hasattr(answer, "reward") and not isinstance(answer, np.ndarray):
        return np.asarray(answer.reward)
    if hasattr(answer, "detach"):
        return answer.detach().cpu().numpy()
    return np.asarray(answer, dtype=np.float64)


def plan(env: TabularMDP, answer: Any, *, objective: str = "optimal", beta: float | None = None,
         constraints: Any = None, penalty: Any = None, alpha: float | None = None, lam: float | None = None,
         baseline: Any = None, weights: Any = None, defer: float | None = None, fallback: Any = "ask",
         method: str | None = None) -> Any:
    """Plan with an inferred reward, using more computation than the human had.

    Args:
        env: the MDP to act in.
        answer: a reward ``(S,)``/``(S, A)`` or a result with a ``.reward``; for the
            posterior objectives an :class:`irl.Posterior` or reward samples
            ``(N, S)``/``(N, S, A)``.
        objective: ``"optimal"`` (exact value iteration, deterministic ties split
            evenly), ``"soft"`` (Boltzmann policy at ``beta``), or over a posterior
            ``"mean"``, ``"map"``, ``"cvar"`` (BROIL: ``lam * E[return] + (1 - lam) *
            CVaR_alpha(return - baseline)``; see :func:`irl.robust.plan_posterior`).
        beta: rationality for ``objective="soft"``.
        constraints: state-actions to remove before planning: a list of
            :class:`irl.constraints.Constraint`, the result of :func:`irl.constraints.infer`, or an
            ``(S, A)`` bool mask (see :func:`irl.constraints.plan`).
        penalty: a side-effect penalty (:class:`irl.side_effects.SideEffectPenalty`)
            subtracted from the reward: relative reachability, attainable utility.
        alpha: CVaR level in ``[0, 1)`` (posterior objectives).
        lam: weight of the expected return in ``[0, 1]`` (``objective="cvar"``).
        baseline: ``None``, ``"demonstrations"``, demonstrations or an occupancy array.
        weights: ``(N,)`` weights of reward samples.
        defer: defer where the posterior probability that the chosen action is
            optimal is below this (with ``objective="optimal"`` over a posterior, the
            mean objective is used).
        fallback: ``"ask"``, ``"demonstrations"`` or a policy array (with ``defer``).
        method: how ``objective="cvar"`` is solved: ``"auto"`` (default),
            ``"policies"`` (column generation) or a HiGHS method on the whole program
            (see :func:`irl.robust.broil`).

    Returns:
        Action probabilities ``(H, S, A)`` (finite horizon) or ``(S, A)``; for the
        posterior objectives and ``defer`` an :class:`irl.robust.RobustPlan`
        (usable as that array, with the return distribution and the deferral mask).

    Raises:
        ValueError: unknown objective (the message lists the known ones).

    Example:
        >>> import irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> pi = irl.plan(env, irl.envs.true_reward(env))
        >>> pi.shape == (env.horizon, env.n_states, env.n_actions)
        True
    """
    from irl import robust

    if objective in robust.OBJECTIVES or defer is not None:
        if constraints is not None or penalty is not None:
            raise ValueError(f"planning objective {objective!r}{' with defer=' if defer is not None else ''} cannot be "
                             f"combined with a side-effect penalty or constraints: they apply to planning with one "
                             f"reward (objective optimal or soft)")
        return robust.plan_posterior(env, answer, objective="mean" if objective == "optimal" else objective,
                                     alpha=alpha, lam=lam, baseline=baseline, weights=weights, defer=defer,
                                     fallback=fallback, method=method)
    if any(x is not None for x in (alpha, lam, baseline, weights, method)):
        raise ValueError(f"alpha, lam, baseline, weights and method apply to the posterior objectives (mean, map, "
                         f"cvar) or defer=, not to objective={objective!r}")
    r = reward_of(answer)
    if constraints is not None and penalty is not None:
        raise ValueError("irl.plan takes constraints or a side-effect penalty, not both at once: plan with the "
                         "penalty on an MDP without the constrained state-actions is not implemented")
    if constraints is not None:
        from irl.constraints import plan as constrained_plan

        return constrained_plan(env, r, constraints, objective=objective, beta=beta)
    if penalty is not None:
        from irl import side_effects

        return side_effects.plan(env, r, penalty, objective=objective, beta=beta)
    if objective == "optimal":
        return planning.value_iteration(env, r).policy
    if objective == "soft":
        return planning.soft_value_iteration(env, r, beta=1.0 if beta is None else beta).policy
    raise ValueError(f"unknown planning objective {objective!r}; known: optimal, soft, mean, map, cvar")


# ------------------------------------------------------------------ policy files
POLICY_FORMAT = "pluggable-irl/policy"


def check_policy(env: TabularMDP, policy: Any, *, name: str = "policy") -> np.ndarray:
    """Validate action probabilities for ``env`` and return them as float64.

    Args:
        env: the MDP the policy acts in.
        policy: ``(H, S, A)`` (finite horizon ``H``) or stationary ``(S, A)``.
        name: what to call the array in messages (e.g. a file name).

    Returns:
        The policy as a float64 array of the same shape.

    Raises:
        ValueError: wrong shape for ``env``, non-finite or negative entries, or rows
            that do not sum to 1.

    Example:
        >>> import irl
        >>> from irl.plan import check_policy
        >>> env = irl.envs.make("gridworld-5x5")
        >>> check_policy(env, irl.plan(env, env.true_reward)).shape[1:]
        (25, 5)
    """
    p = np.asarray(policy)
    if not (np.issubdtype(p.dtype, np.floating) or np.issubdtype(p.dtype, np.integer)):
        raise ValueError(f"{name} must hold numbers: got dtype {p.dtype}")
    p = p.astype(np.float64)
    S, A, H = env.n_states, env.n_actions, env.horizon
    ok = p.shape == (S, A) or (H is not None and p.shape == (H, S, A))
    if not ok:
        want = f"(H, S, A) = ({H}, {S}, {A}) or (S, A) = ({S}, {A})" if H is not None else f"(S, A) = ({S}, {A})"
        raise ValueError(f"{name} must have shape {want} for environment {env.name!r}: got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} must be finite: found NaN or inf")
    if np.any(p < 0):
        raise ValueError(f"{name} holds probabilities, which must be >= 0: got {p.min():.6g}")
    sums = p.sum(axis=-1)
    bad = np.abs(sums - 1.0) > 1e-6
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}{list(idx)} must sum to 1 over actions: got {sums[idx]:.6g}")
    return p


def save_policy(path: Any, policy: Any, *, meta: dict[str, Any] | None = None) -> None:
    """Write action probabilities to a versioned ``.npz`` (atomic, no pickle).

    Args:
        path: destination file.
        policy: ``(H, S, A)`` or ``(S, A)`` probabilities.
        meta: JSON-serialisable notes (environment name, objective, source file, ...).

    Example:
        >>> import irl, os, tempfile
        >>> from irl.plan import load_policy, save_policy
        >>> env = irl.envs.make("gridworld-5x5")
        >>> p = os.path.join(tempfile.mkdtemp(), "policy.npz")
        >>> save_policy(p, irl.plan(env, env.true_reward), meta={"env": env.name})
        >>> load_policy(p)[1]["env"]
        'gridworld-5x5'
    """
    from demos import save_arrays

    save_arrays(path, POLICY_FORMAT, {"policy": np.asarray(policy, dtype=np.float64)}, meta=meta or {})


def load_policy(path: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a file written by :func:`save_policy`: ``(policy, meta)``.

    Raises:
        demos.DemoFileError: missing file, object arrays (refused), another format,
            or a policy array that is not a probability table.
    """
    from demos import DemoFileError, load_arrays

    _, arrays, meta = load_arrays(path, POLICY_FORMAT)
    if "policy" not in arrays:
        raise DemoFileError(f"{path}: policy file lacks the array 'policy'")
    p = arrays["policy"]
    if p.ndim not in (2, 3):
        raise DemoFileError(f"{path}: 'policy' must have shape (H, S, A) or (S, A): got {p.shape}")
    if not np.issubdtype(p.dtype, np.floating):
        raise DemoFileError(f"{path}: 'policy' must be a float array: got dtype {p.dtype}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(np.abs(p.sum(-1) - 1.0) > 1e-6):
        raise DemoFileError(f"{path}: 'policy' is not a table of action probabilities (entries must be finite, "
                            f">= 0 and sum to 1 over actions)")
    return p, dict(meta)
