"""Metrics judged by behaviour under the true reward (rewards are identifiable only up to shaping)."""

from __future__ import annotations

from typing import Any

import numpy as np

from irl import planning
from irl.mdp import TabularMDP, state_action_reward
from irl.plan import reward_of

__all__ = ["policy_return", "optimal_return", "expected_value_difference", "reward_correlation",
           "normalized_return"]


def policy_return(env: TabularMDP, policy: Any, reward: Any) -> float:
    """Expected (discounted) return of ``policy`` under ``reward`` from ``env.initial``."""
    return float(planning.expected_return(env, reward_of(reward), policy))


def optimal_return(env: TabularMDP, reward: Any) -> float:
    """Expected return of an optimal policy for ``reward``."""
    return policy_return(env, planning.value_iteration(env, reward_of(reward)).policy, reward)


def expected_value_difference(env: TabularMDP, policy: Any, true_reward: Any) -> float:
    """``V*(true) - V^policy(true)`` from the start distribution (``>= 0``; 0 is optimal).

    Example:
        >>> import irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> r = irl.envs.true_reward(env)
        >>> irl.metrics.expected_value_difference(env, irl.plan(env, r), r)
        0.0

    References:
        Levine, Popović & Koltun (2011), "Nonlinear Inverse Reinforcement Learning
        with Gaussian Processes", NeurIPS (expected value difference).
    """
    return max(0.0, optimal_return(env, true_reward) - policy_return(env, policy, true_reward))


def normalized_return(env: TabularMDP, policy: Any, true_reward: Any, *, baseline: Any = "uniform") -> float:
    """``(V^policy - V^baseline) / (V* - V^baseline)``: 1 is optimal, 0 no better than the baseline.

    ``baseline="uniform"`` is the uniformly random policy; or give a policy array.
    """
    S, A = env.n_states, env.n_actions
    base = np.full((S, A), 1.0 / A) if isinstance(baseline, str) and baseline == "uniform" else baseline
    v_opt = optimal_return(env, true_reward)
    v_base = policy_return(env, base, true_reward)
    if np.isclose(v_opt, v_base):
        return 1.0
    return (policy_return(env, policy, true_reward) - v_base) / (v_opt - v_base)


def reward_correlation(env: TabularMDP, r1: Any, r2: Any) -> float:
    """Pearson correlation of two rewards over all ``(s, a)`` (1 = same up to affine scale)."""
    a = state_action_reward(reward_of(r1), env.n_states, env.n_actions).ravel()
    b = state_action_reward(reward_of(r2), env.n_states, env.n_actions).ravel()
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
