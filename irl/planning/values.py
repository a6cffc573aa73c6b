"""Q-values and policies: finite-horizon backward passes, discounted value iteration with Newton steps,
the public planners and their vector-Jacobian products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from irl.mdp import MDPValidationError, TabularMDP
from irl.planning.core import (_F64, _POOL, _TIE, ConvergenceError, _as_float, _batch_last, _hard_step,
                               _internal_view, _kernels, _ops, _resolve_dtype, _soft_step, _to_public, _values_public)
from irl.planning.linear import _nonterminating, _policy_matrix, _policy_solve, _solve_flow


# ------------------------------------------------------------- Q-values
def _kernel_mode(K: Any, soft: bool, log_policy: bool) -> int:
    return (K.SOFT_LOG if log_policy else K.SOFT) if soft else K.HARD

def _q_finite(mdp: TabularMDP, r: np.ndarray, soft: bool, log_policy: bool = False
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward induction: ``q (H, A, S, B)`` (``log pi`` with ``log_policy``), ``v (H+1, S, B)``, ``pi``."""
    ops = _ops(mdp, r.dtype)
    H = mdp.horizon
    A, S, B = r.shape
    q = _POOL.empty((H, A, S, B), r.dtype)
    pi = _POOL.empty((H, A, S, B), r.dtype)
    v = _POOL.empty((H + 1, S, B), r.dtype)
    v[H] = 0.0
    K = _kernels()
    if K is not None:
        K.backward(*ops.P.arrays(K), np.ascontiguousarray(r), q, v, pi, _kernel_mode(K, soft, log_policy),
                   _TIE[r.dtype], *K.scratch(A, S * B))
        return q, v, pi
    m = np.empty((2, S, B), r.dtype)
    for t in range(H - 1, -1, -1):
        ops.backup(r, v[t + 1], q[t])
        if soft:
            _soft_step(q[t], v[t], pi[t], m, log_policy)
        else:
            _hard_step(q[t], v[t], pi[t], m)
    return q, v, pi

#: value-iteration sweeps tried before switching to Newton's method (infinite horizon)
_VI_SWEEPS = 48

#: Newton (policy iteration) steps before giving up on it and continuing with value iteration
_NEWTON_STEPS = 100

def _newton_ok(mdp: TabularMDP, pi: np.ndarray) -> bool:
    """Policy evaluation is well posed: discount < 1, or every hypothesis' policy terminates."""
    if mdp.discount < 1.0:
        return True
    return all(_nonterminating(_policy_matrix(mdp, pi[:, :, b])).size == 0 for b in range(pi.shape[-1]))

def _q_infinite(mdp: TabularMDP, r: np.ndarray, soft: bool, tol: float, max_iter: int, log_policy: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stationary ``q``, ``v``, ``pi`` with ``|T v - v| <= tol`` (or within float64 resolution of ``|v|``).

    Value iteration for up to ``_VI_SWEEPS`` sweeps; if it has not converged by then,
    Newton's method on ``v = T v``: evaluate the current policy exactly (one linear
    solve, :func:`_policy_solve`), then one backup improves it. For the soft backup
    this is soft policy iteration, ``(I - gamma P_pi) x = sum_a pi (r - log pi)``;
    for the hard backup, policy iteration. Both converge in a few steps where value
    iteration needs ``log(tol) / log(gamma)`` sweeps. Every Newton step counts as a
    sweep towards ``max_iter``; when a policy cannot be evaluated (discount 1 and a
    policy that never terminates) value iteration continues and decides.
    """
    if r.dtype != _F64:  # stationary arrays are small: solve in float64 (tol keeps its meaning), then cast
        q, v, pi = _q_infinite(mdp, r.astype(np.float64), soft, tol, max_iter, log_policy)
        return q.astype(r.dtype), v.astype(r.dtype), pi.astype(r.dtype)
    ops = _ops(mdp, r.dtype)
    step = _soft_step if soft else _hard_step
    A, S, B = r.shape
    q = np.empty((A, S, B), r.dtype)
    pi = np.empty((A, S, B), r.dtype)
    v = np.zeros((S, B), r.dtype)
    v_new = np.empty((S, B), r.dtype)
    m = np.empty((2, S, B), r.dtype)
    K = _kernels()
    if K is not None:
        csr, tie, scratch = ops.P.arrays(K), _TIE[r.dtype], K.scratch(A, S * B)
        r = np.ascontiguousarray(r)

    def sweep(v_in: np.ndarray, mode: int | None = None) -> float:
        """``v_new = T v_in`` (with ``q`` and ``pi``); returns ``max |v_new - v_in|``."""
        if K is not None:
            return float(K.sweep(*csr, r, np.ascontiguousarray(v_in), q, v_new, pi,
                                 _kernel_mode(K, soft, False) if mode is None else mode, tie, *scratch))
        ops.backup(r, v_in, q)
        step(q, v_new, pi, m)
        diff = np.subtract(v_new, v_in, out=m[0])
        return float(np.max(np.abs(diff, out=diff))) if diff.size else 0.0

    sweeps, delta, newton_steps, newton_delta = 0, np.inf, 0, np.inf
    newton = True
    # the largest |value| of a finite problem: a per-step reward (plus the entropy bonus log A) over the
    # effective horizon 1 / (1 - discount); with discount 1, a generous 1000 S steps
    per_step = float(np.max(np.abs(r), initial=0.0)) + (math.log(max(A, 1)) if soft else 0.0)
    value_bound = per_step * (1.0 / (1.0 - mdp.discount) if mdp.discount < 1.0 else 1000.0 * S) * 10.0
    while sweeps < max_iter:
        if newton and sweeps >= _VI_SWEEPS and newton_steps < _NEWTON_STEPS:
            # v, q, pi are from the last sweep; log pi = q - v, so sum_a pi (r - log pi) = v - sum_a pi (q - r)
            pi64 = pi.astype(np.float64)
            if soft:
                rhs = v.astype(np.float64) - np.add.reduce(pi64 * (q - r), axis=0)
            else:
                rhs = np.add.reduce(pi64 * r, axis=0)
            x = _policy_solve(mdp, pi64, rhs, transpose=False, x0=v.astype(np.float64), fixed_point=False) \
                if _newton_ok(mdp, pi64) else None
            if x is None:
                newton = False  # the policy cannot be evaluated: value iteration decides
                continue
            v_before = v.copy()
            newton_steps += 1
            delta = sweep(x)
            if not delta < 10 * newton_delta:  # no progress: the problem has no finite solution (or is too
                newton = False                 # ill-conditioned for Newton): value iteration decides
                v[...] = v_before
                sweeps += 1
                continue
            newton_delta = min(newton_delta, delta)
        else:
            delta = sweep(v)
        sweeps += 1
        v, v_new = v_new, v
        # float64 resolves a value V only to about 1e-16 |V|: large rewards (an optimiser's trial steps)
        # need the tolerance relative to the values' size, or the sweeps stall above it. Only for values
        # a finite problem can have: diverging values (e.g. after a Newton step on a problem without a
        # finite solution) grow past any such bound and must not pass for converged.
        vmax = float(np.max(np.abs(v), initial=0.0))
        if delta <= tol or (delta <= 64 * np.finfo(np.float64).eps * vmax and vmax <= value_bound):
            break
    else:
        raise ConvergenceError(
            f"{'soft ' if soft else ''}value iteration did not converge in max_iter = {max_iter} sweeps: "
            f"last change {delta:.3g} > tol = {tol:g} (discount = {mdp.discount}; with discount 1 and "
            f"no finite horizon, values are finite only if every policy reaches a terminal state)")
    if K is not None:
        sweep(v, _kernel_mode(K, soft, log_policy))
        return q, v_new, pi
    ops.backup(r, v, q)
    if soft:
        _soft_step(q, v_new, pi, m, log_policy)
    else:
        _hard_step(q, v_new, pi, m)
    return q, v_new, pi

def _q_values(mdp: TabularMDP, r: np.ndarray, soft: bool, tol: float = 1e-10, max_iter: int = 100_000,
              log_policy: bool = False):
    if mdp.horizon is not None:
        return _q_finite(mdp, r, soft, log_policy)
    return _q_infinite(mdp, r, soft, tol, max_iter, log_policy)

@dataclass(frozen=True)
class PlanningResult:
    """Output of value iteration.

    Attributes:
        q: Q-values, ``([B,] H, S, A)`` or ``([B,] S, A)``.
        v: values, ``([B,] H + 1, S)`` (the last row is 0) or ``([B,] S)``.
        policy: action probabilities with the shape of ``q``: the softmax of ``q``
            (soft) or the uniform distribution over maximising actions (hard).
    """

    q: np.ndarray
    v: np.ndarray
    policy: np.ndarray

    @property
    def log_policy(self) -> np.ndarray:
        """``log(policy)`` (``-inf`` for actions a hard policy never takes)."""
        with np.errstate(divide="ignore"):
            return np.log(self.policy)

def _plan(mdp: TabularMDP, reward: Any, soft: bool, beta: float, tol: float, max_iter: int, dtype: Any
          ) -> PlanningResult:
    r, batched = _batch_last(mdp, reward, _resolve_dtype(dtype))
    if beta != 1.0:
        r *= beta  # r is a fresh array
    q, v, pi = _q_values(mdp, r, soft, tol, max_iter)
    if beta != 1.0:
        q /= beta
        v /= beta
    return PlanningResult(q=_to_public(q, batched), v=_values_public(v, batched), policy=_to_public(pi, batched))

def soft_value_iteration(mdp: TabularMDP, reward: Any, *, beta: float = 1.0, tol: float = 1e-10,
                         max_iter: int = 100_000, dtype: Any = np.float64) -> PlanningResult:
    """Soft (maximum causal entropy) value iteration.

    ``Q_t(s,a) = r(s,a) + gamma * E[V_{t+1}(s')]``, ``V_t(s) = (1/beta) log sum_a exp(beta Q_t(s,a))``,
    ``pi_t(a|s) = exp(beta (Q_t(s,a) - V_t(s)))``. Finite horizon: time-indexed
    backward recursion from ``V_H = 0``; infinite horizon: iterate to ``tol``
    (value iteration, then Newton's method = soft policy iteration when value
    iteration is slow, e.g. ``gamma >= 0.99``).

    Args:
        mdp: the MDP.
        reward: ``(S,)``, ``(S, A)`` or a batch ``(B, S, A)``.
        beta: rationality (inverse temperature), ``> 0``.
        tol: convergence tolerance on values (infinite horizon).
        max_iter: sweep limit (infinite horizon).
        dtype: ``np.float64`` (default) or ``np.float32`` (half the memory, faster).

    Returns:
        :class:`PlanningResult` with Q-values, values and the Boltzmann policy.

    Raises:
        ConvergenceError: infinite horizon and no convergence.

    Example:
        >>> import irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> res = irl.planning.soft_value_iteration(env, irl.envs.true_reward(env), beta=2.0)
        >>> res.policy.shape == (env.horizon, env.n_states, env.n_actions)
        True

    References:
        Ziebart (2010), "Modeling Purposeful Adaptive Behavior with the Principle of
        Maximum Causal Entropy", PhD thesis, CMU, Alg. 9.1.
    """
    if not beta > 0:
        raise MDPValidationError(f"beta must be > 0: got {beta}")
    return _plan(mdp, reward, True, float(beta), tol, max_iter, dtype)

def value_iteration(mdp: TabularMDP, reward: Any, *, tol: float = 1e-10, max_iter: int = 100_000,
                    dtype: Any = np.float64) -> PlanningResult:
    """Hard (optimal) value iteration; the policy splits evenly among maximising actions.

    Infinite horizon: value iteration, then policy iteration when value iteration
    is slow (e.g. ``gamma >= 0.99``).

    Args:
        mdp: the MDP.
        reward: ``(S,)``, ``(S, A)`` or ``(B, S, A)``.
        tol: convergence tolerance (infinite horizon).
        max_iter: sweep limit (infinite horizon).
        dtype: ``np.float64`` (default) or ``np.float32``.

    Returns:
        :class:`PlanningResult` with optimal Q-values, values and a greedy policy.

    Example:
        >>> import irl
        >>> env = irl.envs.make("aima-4x3")
        >>> round(float(irl.planning.value_iteration(env, env.true_reward).v[0]), 3)  # state (1,1)
        0.705

    References:
        Russell & Norvig, "Artificial Intelligence: A Modern Approach", 3rd ed., Sec. 17.2.
    """
    return _plan(mdp, reward, False, 1.0, tol, max_iter, dtype)

def bellman_q(mdp: TabularMDP, reward: Any, *, soft: bool = True, tol: float = 1e-10,
              max_iter: int = 100_000, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Q-values and the policy they induce (used by the autograd wrapper :func:`irl.autodiff.q_values`).

    Args:
        mdp: the MDP.
        reward: ``(S,)``, ``(S, A)`` or a batch ``(B, S, A)``.
        soft: soft (log-sum-exp, temperature 1) or hard (max) backup.
        tol: convergence tolerance (infinite horizon).
        max_iter: sweep limit (infinite horizon).
        dtype: ``np.float64`` (default) or ``np.float32``.

    Returns:
        ``(q, pi)``, each ``([B,] H, S, A)`` or ``([B,] S, A)``. ``pi`` is the softmax
        of ``q`` (soft) or the even split over maximisers (hard): the derivative
        ``dV/dQ`` that :func:`bellman_q_vjp` needs.

    Example:
        >>> import irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> q, pi = irl.planning.bellman_q(env, env.true_reward)
        >>> q.shape == pi.shape == (env.horizon, env.n_states, env.n_actions)
        True
    """
    r, batched = _batch_last(mdp, reward, _resolve_dtype(dtype))
    q, _, pi = _q_values(mdp, r, soft, tol, max_iter)
    return _to_public(q, batched), _to_public(pi, batched)

def _vjp_internal(mdp: TabularMDP, p: np.ndarray, qb: np.ndarray, log_policy: bool = False) -> np.ndarray:
    """Adjoint flow in the internal layout: ``p``, ``qb`` ``([H,] A, S, B)`` (any strides) -> ``(A, S, B)``.

    ``qb`` is ``dL/dQ``, or ``dL/d log pi`` with ``log_policy`` (then
    ``dL/dQ = qb - pi * sum_a qb``, folded into the same sweep).
    """
    dt = qb.dtype
    ops = _ops(mdp, dt)
    if mdp.horizon is not None:
        H = mdp.horizon
        A, S, B = p.shape[1:]
        acc = np.empty((A, S, B), dt)
        x = np.empty((A, S, B), dt)
        g = np.empty((A, S, B), dt) if not qb[0].flags.c_contiguous else None
        vbar = np.zeros((S, B), dt)
        w = np.empty((S, B), dt)
        for t in range(H):
            gt = qb[t]
            if g is not None:  # an upstream gradient in another layout: one cache-sized transposing copy per step
                np.copyto(g, gt)
                gt = g
            if log_policy:  # x_t = g_t + pi_t * (vbar_t - sum_a g_t)
                np.add.reduce(gt, axis=0, out=w)
                np.subtract(vbar, w, out=w)
                np.multiply(p[t], w, out=x)
                x += gt
            elif t == 0:
                np.copyto(x, gt)
            else:  # x_t = qbar_t + pi_t * vbar_t
                np.multiply(p[t], vbar, out=x)
                x += gt
            if t == 0:
                np.copyto(acc, x)
            else:
                acc += x
            if t + 1 < H:
                ops.push(x, vbar)  # vbar_{t+1} = gamma P^T x_t
        return acc
    # stationary: qbar = Qbar + pi * vbar, vbar = gamma P^T qbar  =>  vbar = src + gamma P_pi^T vbar
    qbar = np.array(qb, dtype=dt, order="C")
    if log_policy:
        qbar -= p * np.add.reduce(qb, axis=0)
    src = ops.push(qbar, np.empty(qbar.shape[1:], dt))
    flow = _solve_flow(mdp, p, src).astype(dt, copy=False)
    qbar += p * flow
    return qbar

def _vjp_public(mdp: TabularMDP, pi: Any, bar: Any, dtype: Any, log_policy: bool) -> np.ndarray:
    dt = _resolve_dtype(dtype)
    timed = mdp.horizon is not None
    batched = np.ndim(bar) == (4 if timed else 3)
    qb = _as_float(bar, dt)
    p = _as_float(pi, dt)
    if not batched:
        qb, p = qb[None], p[None]
    what = "g_bar" if log_policy else "q_bar"
    if qb.shape != p.shape:
        raise MDPValidationError(f"{what} and pi must have the same shape: got {np.shape(bar)} and {np.shape(pi)}")
    S, A = mdp.n_states, mdp.n_actions
    want = ((mdp.horizon,) if timed else ()) + (S, A)
    if qb.shape[1:] != want:
        raise MDPValidationError(f"{what} must have shape ([B,] {', '.join(map(str, want))}): got {np.shape(bar)}")
    return _to_public(_vjp_internal(mdp, _internal_view(p), _internal_view(qb), log_policy), batched)

def bellman_q_vjp(mdp: TabularMDP, pi: np.ndarray, q_bar: np.ndarray, *, dtype: Any = np.float64) -> np.ndarray:
    """Vector-Jacobian product of :func:`bellman_q` with respect to the reward.

    Given ``q_bar = dL/dQ`` (the shape of ``Q``) returns ``dL/dr`` ``([B,] S, A)``.
    ``Q_t = r + gamma P V_{t+1}`` and ``dV/dQ = pi``, so the adjoint is one
    *forward* flow: ``qbar_0 = Qbar_0``, ``vbar_{t+1} = gamma P^T qbar_t``,
    ``qbar_{t+1} = Qbar_{t+1} + pi_{t+1} * vbar_{t+1}``, ``dL/dr = sum_t qbar_t``
    (infinite horizon: one sparse linear solve for the stationary flow). For
    demonstration counts this is the exact gradient of the causal log-likelihood;
    for deterministic dynamics it reduces to the familiar "empirical minus
    expected feature counts". It costs one sweep, like value iteration.

    Args:
        mdp: the MDP.
        pi: the policy returned by :func:`bellman_q`.
        q_bar: upstream gradient, the shape of ``Q``.
        dtype: ``np.float64`` (default) or ``np.float32``.

    Returns:
        ``dL/dr``, with the batch axis if ``q_bar`` has one.

    Example:
        >>> import numpy as np, irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> q, pi = irl.planning.bellman_q(env, env.true_reward)
        >>> q_bar = np.zeros_like(q); q_bar[0] = pi[0] * env.initial[:, None]   # d/dQ of E_d0[V_0]
        >>> grad = irl.planning.bellman_q_vjp(env, pi, q_bar)   # = expected visits of (s, a)
        >>> bool(np.isclose(grad.sum(), env.horizon))
        True
    """
    return _vjp_public(mdp, pi, q_bar, dtype, log_policy=False)

def soft_log_policy(mdp: TabularMDP, reward: Any, *, tol: float = 1e-10, max_iter: int = 100_000,
                    dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Log-probabilities of the soft-optimal policy and the policy itself, straight from the planner.

    ``log pi_t(a|s) = Q_t(s,a) - V_t(s)`` of soft value iteration at temperature 1,
    computed inside the backward sweep as ``(Q - max) - log sum exp(Q - max)``:
    the same numbers as ``log_softmax`` of :func:`bellman_q`'s Q-values without a
    second pass over them. Used by :func:`irl.autodiff.soft_log_policy`.

    Args:
        mdp: the MDP.
        reward: ``(S,)``, ``(S, A)`` or ``(B, S, A)``.
        tol: convergence tolerance (infinite horizon).
        max_iter: sweep limit (infinite horizon).
        dtype: ``np.float64`` (default) or ``np.float32``.

    Returns:
        ``(log_pi, pi)``, each ``([B,] H, S, A)`` or ``([B,] S, A)``.

    Example:
        >>> import numpy as np, irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> log_pi, pi = irl.planning.soft_log_policy(env, env.true_reward)
        >>> bool(np.allclose(np.exp(log_pi), pi))
        True
    """
    r, batched = _batch_last(mdp, reward, _resolve_dtype(dtype))
    log_pi, _, pi = _q_values(mdp, r, True, tol, max_iter, log_policy=True)
    return _to_public(log_pi, batched), _to_public(pi, batched)

def soft_log_policy_vjp(mdp: TabularMDP, pi: np.ndarray, g_bar: np.ndarray, *, dtype: Any = np.float64
                        ) -> np.ndarray:
    """Vector-Jacobian product of :func:`soft_log_policy` with respect to the reward.

    ``log pi = Q - V`` with ``dV/dQ = pi``, so ``dL/dQ = g_bar - pi * sum_a g_bar``
    and the rest is :func:`bellman_q_vjp`; both are done in one forward flow.
    For ``g_bar`` = demonstration counts this is the gradient of the causal
    log-likelihood of maximum-entropy IRL.

    Args:
        mdp: the MDP.
        pi: the policy returned by :func:`soft_log_policy`.
        g_bar: upstream gradient ``dL/d log pi``, the shape of ``pi``.
        dtype: ``np.float64`` (default) or ``np.float32``.

    Returns:
        ``dL/dr`` ``([B,] S, A)``.

    Example:
        >>> import numpy as np, irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> log_pi, pi = irl.planning.soft_log_policy(env, env.true_reward)
        >>> grad = irl.planning.soft_log_policy_vjp(env, pi, np.ones_like(pi))
        >>> grad.shape == (env.n_states, env.n_actions)
        True
    """
    return _vjp_public(mdp, pi, g_bar, dtype, log_policy=True)
