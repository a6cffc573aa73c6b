"""What a policy does: state-action occupancies, policy evaluation, expected returns, greedy policies
and rollouts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from irl.mdp import MDPValidationError, TabularMDP, check_horizon, state_action_reward
from irl.planning.core import (ConvergenceError, _POOL, _batch_last, _kernels, _ops, _policy_batch_last,
                               _resolve_dtype, _to_public, _values_public)
from irl.planning.linear import _check_terminates, _policy_matrix, _policy_solve, _solve_flow


# --------------------------------------------------------- occupancies
def _initial(mdp: TabularMDP, initial: Any) -> np.ndarray:
    d0 = mdp.initial if initial is None else np.asarray(initial, dtype=np.float64)
    if d0.shape != (mdp.n_states,):
        raise MDPValidationError(f"initial must have shape ({mdp.n_states},): got {d0.shape}")
    return d0

def occupancy_measure(mdp: TabularMDP, policy: Any, *, initial: Any = None, dtype: Any = np.float64) -> np.ndarray:
    """Discounted state-action occupancy of a policy.

    Finite horizon: ``D[t, s, a] = gamma^t P(s_t = s, a_t = a)``, shape ``([B,] H, S, A)``.
    Infinite horizon: ``D[s, a] = sum_t gamma^t P(s_t = s, a_t = a)``, shape ``([B,] S, A)``
    (one sparse linear solve). Terminal states absorb the flow after being visited.

    Args:
        mdp: the MDP.
        policy: action probabilities ``([B,] [H,] S, A)``.
        initial: start distribution ``(S,)``; defaults to ``mdp.initial``.
        dtype: ``np.float64`` (default) or ``np.float32``.

    Returns:
        The occupancy measure.

    Example:
        >>> import irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> pi = irl.planning.soft_value_iteration(env, env.true_reward).policy
        >>> D = irl.planning.occupancy_measure(env, pi)
        >>> round(float(D.sum()), 6) == env.horizon   # discount 1: one visit per step
        True
    """
    dt = _resolve_dtype(dtype)
    pi, batched = _policy_batch_last(mdp, policy, dt)
    d0 = _initial(mdp, initial)
    B = pi.shape[-1]
    if mdp.horizon is not None:
        ops = _ops(mdp, dt)
        out = _POOL.empty(pi.shape, dt)
        d = np.empty((mdp.n_states, B), dt)
        d[...] = d0[:, None]
        K = _kernels()
        if K is not None:
            K.forward(*ops.P.arrays(K), pi, d, out)
            return _to_public(out, batched)
        for t in range(mdp.horizon):
            np.multiply(pi[t], d, out=out[t])
            if t + 1 < mdp.horizon:
                ops.push(out[t], d)
        return _to_public(out, batched)
    d = _solve_flow(mdp, pi, np.repeat(d0[:, None], B, axis=1)).astype(dt, copy=False)
    return _to_public(pi * d, batched)

def state_occupancy(mdp: TabularMDP, policy: Any, *, initial: Any = None, dtype: Any = np.float64) -> np.ndarray:
    """State occupancy: :func:`occupancy_measure` summed over actions."""
    return occupancy_measure(mdp, policy, initial=initial, dtype=dtype).sum(axis=-1)

def policy_evaluation(mdp: TabularMDP, reward: Any, policy: Any, *, dtype: Any = np.float64) -> np.ndarray:
    """Values of a policy under a reward.

    Args:
        mdp: the MDP.
        reward: ``(S,)``, ``(S, A)`` or ``(B, S, A)``.
        policy: ``([B,] [H,] S, A)`` probabilities.
        dtype: ``np.float64`` (default) or ``np.float32``.

    Returns:
        ``([B,] H + 1, S)`` for a finite horizon, ``([B,] S)`` otherwise.

    Example:
        >>> import numpy as np, irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> pi = irl.planning.soft_value_iteration(env, env.true_reward).policy
        >>> v = irl.planning.policy_evaluation(env, env.true_reward, pi)
        >>> v.shape == (env.horizon + 1, env.n_states)
        True
    """
    dt = _resolve_dtype(dtype)
    r, rb = _batch_last(mdp, reward, dt)
    pi, pb = _policy_batch_last(mdp, policy, dt)
    B = max(r.shape[-1], pi.shape[-1])
    if r.shape[-1] not in (1, B) or pi.shape[-1] not in (1, B):
        raise MDPValidationError(f"reward batch {r.shape[-1]} and policy batch {pi.shape[-1]} differ")
    r = np.broadcast_to(r, r.shape[:-1] + (B,))
    pib = np.broadcast_to(pi, pi.shape[:-1] + (B,))
    S, A = mdp.n_states, mdp.n_actions
    if mdp.horizon is not None:
        ops = _ops(mdp, dt)
        v = np.empty((mdp.horizon + 1, S, B), dt)
        v[mdp.horizon] = 0.0
        q = np.empty((A, S, B), dt)
        for t in range(mdp.horizon - 1, -1, -1):
            ops.backup(r, v[t + 1], q)
            np.multiply(q, pib[t], out=q)
            np.add.reduce(q, axis=0, out=v[t])
        return _values_public(v, rb or pb)
    # V = sum_a pi (r + gamma P V)  <=>  (I - gamma P_pi) V = sum_a pi r
    pib = np.ascontiguousarray(pib)
    if mdp.discount >= 1.0:
        for b in range(B):
            _check_terminates(mdp, _policy_matrix(mdp, pib[:, :, b]), "the value of the policy")
    out = _policy_solve(mdp, pib, np.add.reduce(pib * r, axis=0), transpose=False, what="the value of the policy")
    if not np.all(np.isfinite(out)):
        raise ConvergenceError("policy evaluation diverged: with discount 1 the policy must terminate")
    return _values_public(out.astype(dt, copy=False), rb or pb)

def expected_return(mdp: TabularMDP, reward: Any, policy: Any, *, initial: Any = None) -> np.ndarray | float:
    """Expected (discounted) return of ``policy`` under ``reward`` from the start distribution."""
    v = policy_evaluation(mdp, reward, policy)
    v0 = v[..., 0, :] if mdp.horizon is not None else v
    d0 = _initial(mdp, initial)
    out = v0 @ d0
    return float(out) if np.ndim(out) == 0 else out

def greedy_policy(q: np.ndarray) -> np.ndarray:
    """Deterministic policy (one-hot, first maximiser) from Q-values ``(..., S, A)``."""
    q = np.asarray(q)
    return np.eye(q.shape[-1])[q.argmax(axis=-1)]

# ----------------------------------------------------------------- rollouts
def _row_sampler(mdp: TabularMDP):
    P = mdp.transitions
    cum = np.cumsum(P.data)
    start = np.concatenate([[0.0], cum])[P.indptr[:-1]]
    return P, cum, start

def rollout(mdp: TabularMDP, policy: Any, n: int, *, rng: np.random.Generator | int | None = None,
            horizon: int | None = None, initial: Any = None, reward: Any = None):
    """Sample ``n`` trajectories from a policy (vectorised over trajectories).

    Args:
        mdp: the MDP.
        policy: action probabilities ``([H,] S, A)``.
        n: number of trajectories.
        rng: a ``numpy.random.Generator`` or a seed (required for reproducibility).
        horizon: episode length; defaults to ``mdp.horizon`` (required for an
            infinite-horizon MDP, whose rollouts are then marked truncated).
        initial: start distribution; defaults to ``mdp.initial``.
        reward: optional ``(S,)``/``(S, A)`` reward to record per step.

    Returns:
        :class:`demos.Trajectories`; episodes that reach a terminal state end
        there with ``terminated = True``.

    Example:
        >>> import irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> pi = irl.planning.soft_value_iteration(env, env.true_reward).policy
        >>> len(irl.planning.rollout(env, pi, 3, rng=0))
        3
    """
    from demos import Trajectories

    rng = np.random.default_rng(rng)
    S, A = mdp.n_states, mdp.n_actions
    H = check_horizon(horizon, S, A) if horizon is not None else mdp.horizon
    if H is None:
        raise MDPValidationError("rollout needs a horizon for an infinite-horizon MDP: pass horizon=...")
    if n < 1:
        raise MDPValidationError(f"n must be >= 1: got {n}")
    p = np.asarray(policy, dtype=np.float64)
    timed = p.ndim == 3
    if timed and p.shape[0] < H:
        raise MDPValidationError(f"a time-indexed policy has {p.shape[0]} steps, fewer than horizon {H}")
    d0 = mdp.initial if initial is None else np.asarray(initial, dtype=np.float64)
    r_sa = None if reward is None else state_action_reward(reward, S, A)
    P, cum, start = _row_sampler(mdp)
    term = mdp.terminal
    states = np.full((n, H + 1), -1, dtype=np.int64)
    actions = np.full((n, H), -1, dtype=np.int64)
    rewards = np.zeros((n, H)) if r_sa is not None else None
    s = rng.choice(S, size=n, p=d0)
    states[:, 0] = s
    alive = ~term[s]
    lengths = np.zeros(n, dtype=np.int64)
    for t in range(H):
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        st = states[idx, t]
        probs = p[t, st] if timed else p[st]
        a = (probs.cumsum(axis=1) < rng.random(idx.size)[:, None]).sum(axis=1).clip(max=A - 1)
        actions[idx, t] = a
        if rewards is not None:
            rewards[idx, t] = r_sa[st, a]
        rows = st * A + a
        target = start[rows] + rng.random(idx.size) * (cum[P.indptr[rows + 1] - 1] - start[rows])
        k = np.searchsorted(cum, target, side="right").clip(P.indptr[rows], P.indptr[rows + 1] - 1)
        nxt = P.indices[k]
        states[idx, t + 1] = nxt
        lengths[idx] = t + 1
        alive[idx] = ~term[nxt]
    terminated = term[states[np.arange(n), lengths]]
    return Trajectories.from_padded(states, actions, lengths, rewards=rewards, terminated=terminated,
                                    truncated=~terminated & (mdp.horizon is None))
