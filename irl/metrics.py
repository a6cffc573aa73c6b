"""Metrics judged by behaviour under the true reward, and reward distances that ignore shaping.

Rewards are identifiable only up to potential shaping and scale, so rewards are compared
with :func:`epic_distance` (Gleave et al. 2021) or :func:`shaping_invariant_correlation`
rather than :func:`reward_correlation`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from irl import planning
from irl.mdp import TabularMDP, state_action_reward
from irl.plan import reward_of

__all__ = ["policy_return", "optimal_return", "expected_value_difference", "reward_correlation",
           "normalized_return", "epic_distance", "shaping_invariant_correlation", "without_shaping"]


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
    """Pearson correlation of two rewards over all ``(s, a)`` (1 = same up to affine scale).

    Not invariant to potential shaping, so two rewards that induce the same
    optimal behaviour can correlate poorly; prefer :func:`shaping_invariant_correlation`
    and :func:`epic_distance` to judge an inferred reward.
    """
    a = state_action_reward(reward_of(r1), env.n_states, env.n_actions).ravel()
    b = state_action_reward(reward_of(r2), env.n_states, env.n_actions).ravel()
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])



def _distribution(p: Any, n: int, name: str) -> np.ndarray:
    if p is None:
        return np.full(n, 1.0 / n)
    d = np.asarray(p, dtype=np.float64)
    if d.shape != (n,) or not np.all(np.isfinite(d)) or np.any(d < 0) or not np.isclose(d.sum(), 1.0):
        raise ValueError(f"{name} must be {n} non-negative probabilities summing to 1: got shape {d.shape}"
                         f"{'' if d.shape != (n,) else f', sum {d.sum():.6g}'}")
    return d


def _pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Weighted Pearson correlation (``nan`` when either side is constant)."""
    xm, ym = x - np.sum(w * x), y - np.sum(w * y)
    vx, vy = float(np.sum(w * xm * xm)), float(np.sum(w * ym * ym))
    tiny = 1e-24 * max(vx, vy, 1e-300)
    if vx <= tiny or vy <= tiny:
        return float("nan")
    return float(np.clip(np.sum(w * xm * ym) / np.sqrt(vx * vy), -1.0, 1.0))


def epic_distance(env: TabularMDP, r1: Any, r2: Any, *, state_dist: Any = None, action_dist: Any = None) -> float:
    """EPIC pseudometric of Gleave et al. (2021): Pearson distance ``sqrt((1 - rho) / 2)`` of canonicalised rewards.

    Each reward, taken as ``R(s, a, s') = r(s, a)``, is canonicalised against
    potential shaping with ``S, S' ~ D_S`` and ``A ~ D_A`` independent:
    ``C(s, a, s') = R(s, a, s') + gamma E[R(s', A, S')] - E[R(s, A, S')] - gamma E[R(S, A, S')]``;
    ``rho`` is the Pearson correlation of the two canonical rewards over ``s, s' ~ D_S``,
    ``a ~ D_A`` (computed in closed form: for a reward of ``(s, a)`` the canonical reward
    is ``X(s, a) + Y(s')`` with independent, centred parts). 0 means equivalent up to
    shaping ``gamma Phi(s') - Phi(s)`` (constants included when ``gamma < 1``) and positive
    scale; 1 means opposite.

    A terminal state's reward is paid once in this library (:class:`irl.TabularMDP`); with
    ``gamma < 1`` it is first converted to the reward of an equivalent absorbing state,
    ``(1 - gamma) r``, so a constant added to every step is removed as EPIC intends.
    Shaping by the *expected* next potential under ``env``'s dynamics, the invariance
    of a reward of ``(s, a)``, is removed exactly by :func:`shaping_invariant_correlation`.

    Args:
        env: the MDP (its ``discount`` and ``terminal`` states).
        r1: a reward ``(S,)``, ``(S, A)`` or :class:`irl.RewardEstimate`.
        r2: the other reward, in the same forms.
        state_dist: ``D_S`` ``(S,)`` (default uniform).
        action_dist: ``D_A`` ``(A,)`` (default uniform).

    Returns:
        The distance in ``[0, 1]`` (``nan`` if a canonical reward is constant).

    Raises:
        ValueError: a distribution of the wrong size, negative or not summing to 1.

    Example:
        >>> import irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> r = irl.envs.true_reward(env)
        >>> irl.metrics.epic_distance(env, r, 2.0 * r - 1.0), round(irl.metrics.epic_distance(env, r, -r), 6)
        (0.0, 1.0)

    References:
        Gleave, Dennis, Legg, Russell & Leike (2021), "Quantifying Differences in Reward
        Functions", ICLR.
    """
    S, A = env.n_states, env.n_actions
    ds = _distribution(state_dist, S, "state_dist")
    da = _distribution(action_dist, A, "action_dist")
    gamma = float(env.discount)

    def parts(reward: Any) -> np.ndarray:
        r = np.array(state_action_reward(reward_of(reward), S, A), dtype=np.float64)
        if gamma < 1.0 and env.terminal is not None and env.terminal.any():
            r[env.terminal] *= 1.0 - gamma
        m = r @ da
        return np.concatenate([(r - m[:, None]).ravel(), gamma * (m - ds @ m)])

    # X(s, a) and Y(s') are independent with mean 0: the moments of X + Y are those of the
    # concatenation weighted by D_S x D_A and D_S (the means added by the concatenation are 0)
    w = np.concatenate([(ds[:, None] * da[None, :]).ravel(), ds]) / 2.0
    rho = _pearson(parts(r1), parts(r2), w)
    return float(np.sqrt(max(0.0, (1.0 - rho) / 2.0))) if np.isfinite(rho) else float("nan")


def without_shaping(env: TabularMDP, reward: Any, *, weights: Any = None) -> np.ndarray:
    """The representative of ``reward``'s shaping class closest to zero: ``r + gamma T Phi - Phi`` at the best ``Phi``.

    Potential shaping of a reward of ``(s, a)`` in ``env`` is
    ``F(s, a) = gamma E[Phi(s') | s, a] - Phi(s)`` (zero continuation after a terminal
    state); it changes no policy's ranking. ``Phi`` is chosen by weighted least squares
    to minimise ``sum_sa w(s, a) (r + F)^2``, so every reward of the class maps to the
    same array (one ``S x S`` linear solve).

    Args:
        env: the MDP (its transitions, terminal states and discount).
        reward: ``(S,)``, ``(S, A)`` or a :class:`irl.RewardEstimate`.
        weights: ``(S, A)`` positive weights (default uniform).

    Returns:
        ``(S, A)`` array.

    Example:
        >>> import numpy as np, irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> r = irl.envs.true_reward(env)
        >>> phi = np.random.default_rng(0).normal(size=env.n_states)
        >>> shaped = r[:, None] + env.discount * (env.continuation @ phi).reshape(25, 5) - phi[:, None]
        >>> bool(np.allclose(irl.metrics.without_shaping(env, r), irl.metrics.without_shaping(env, shaped)))
        True

    References:
        Ng, Harada & Russell (1999), "Policy invariance under reward transformations: theory
        and application to reward shaping", ICML. Wulfe, Balakrishna, Ellis, Mercat, McAllister
        & Gaidon (2022), "Dynamics-Aware Comparison of Learned Reward Functions", ICLR.
    """
    S, A = env.n_states, env.n_actions
    r = np.array(state_action_reward(reward_of(reward), S, A), dtype=np.float64).ravel()
    w = np.full(S * A, 1.0) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != (S * A,) or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"weights must be {S}x{A} positive finite numbers: got {np.shape(weights)}")
    # B Phi = gamma E[Phi(s') | s, a] - Phi(s): a sparse (S*A, S) matrix; the normal equations are S x S
    B = sp.csr_matrix(float(env.discount) * env.continuation
                      - sp.csr_matrix((np.ones(S * A), (np.arange(S * A), np.repeat(np.arange(S), A))),
                                      shape=(S * A, S)))
    BW = sp.csr_matrix(B.T.multiply(w[None, :]))
    phi = np.linalg.lstsq((BW @ B).toarray(), -(BW @ r), rcond=None)[0]
    return (r + B @ phi).reshape(S, A)


def shaping_invariant_correlation(env: TabularMDP, r1: Any, r2: Any, *, weights: Any = None) -> float:
    """Pearson correlation over ``(s, a)`` of the two rewards with their shaping removed (:func:`without_shaping`).

    1 means equivalent up to potential shaping under ``env``'s dynamics and positive
    scale, the transformations a likelihood of behaviour cannot see. Unlike
    :func:`reward_correlation` it does not depend on where along such flat directions a
    fit stopped.

    Example:
        >>> import numpy as np, irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> r = irl.envs.true_reward(env)
        >>> phi = np.random.default_rng(0).normal(size=env.n_states)
        >>> shaped = 3.0 * r[:, None] + env.discount * (env.continuation @ phi).reshape(25, 5) - phi[:, None]
        >>> bool(irl.metrics.reward_correlation(env, r, shaped) < 0.9)
        True
        >>> round(irl.metrics.shaping_invariant_correlation(env, r, shaped), 6)
        1.0
    """
    S, A = env.n_states, env.n_actions
    w = np.full(S * A, 1.0 / (S * A)) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    a = without_shaping(env, r1, weights=weights).ravel()
    b = without_shaping(env, r2, weights=weights).ravel()
    return _pearson(a, b, w / w.sum())
