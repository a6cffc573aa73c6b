"""Planners for an inferred reward: the "superhuman" step (optimise the human's values fully)."""

from __future__ import annotations

from typing import Any

import numpy as np

from irl import planning
from irl.mdp import TabularMDP

__all__ = ["plan", "reward_of"]


def reward_of(answer: Any) -> np.ndarray:
    """The reward array in an answer: a ``RewardEstimate``, an array or a tensor."""
    if hasattr(answer, "reward") and not isinstance(answer, np.ndarray):
        return np.asarray(answer.reward)
    if hasattr(answer, "detach"):
        return answer.detach().cpu().numpy()
    return np.asarray(answer, dtype=np.float64)


def plan(env: TabularMDP, answer: Any, *, objective: str = "optimal", beta: float | None = None) -> np.ndarray:
    """Plan with an inferred reward, using more computation than the human had.

    Args:
        env: the MDP to act in.
        answer: a reward ``(S,)``/``(S, A)`` or a result with a ``.reward``.
        objective: ``"optimal"`` (exact value iteration, deterministic ties split
            evenly) or ``"soft"`` (Boltzmann policy at ``beta``).
        beta: rationality for ``objective="soft"``.

    Returns:
        Action probabilities ``(H, S, A)`` (finite horizon) or ``(S, A)``.

    Raises:
        ValueError: unknown objective (the message lists the known ones).

    Example:
        >>> import irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> pi = irl.plan(env, irl.envs.true_reward(env))
        >>> pi.shape == (env.horizon, env.n_states, env.n_actions)
        True
    """
    r = reward_of(answer)
    if objective == "optimal":
        return planning.value_iteration(env, r).policy
    if objective == "soft":
        return planning.soft_value_iteration(env, r, beta=1.0 if beta is None else beta).policy
    raise ValueError(f"unknown planning objective {objective!r}; known: optimal, soft")
