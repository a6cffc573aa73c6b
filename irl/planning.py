"""Bellman operators: (soft) value iteration, occupancy measures, policy evaluation, rollouts.

Pure functions over a :class:`~irl.mdp.TabularMDP`. Every function accepts a reward
of shape ``(S,)``, ``(S, A)`` or a batch ``(B, S, A)`` of reward hypotheses, and
returns arrays with the batch dimension first when one was given:

* finite horizon ``H``: time-indexed arrays ``(B, H, S, A)`` (Q-values, policies,
  occupancies) and ``(B, H + 1, S)`` values;
* infinite horizon: stationary arrays ``(B, S, A)`` and ``(B, S)``.

Internally the batch is the *last* axis, so that every backup is one sparse
matrix times a dense ``(S, B)`` block and one log-sum-exp over actions; there is
no Python loop over states, actions or hypotheses (only over time steps).

Conventions. The agent in state ``s_t`` takes ``a_t`` and receives ``r(s_t, a_t)``
for ``t = 0 .. H-1``. In a terminal state it receives ``r(s, a)`` once and the
episode ends. Soft value iteration works at temperature 1; a Boltzmann human with
rationality ``beta`` is soft value iteration on ``beta * r``.

References:
    Ziebart, Bagnell & Dey (2010), "Modeling interaction via the principle of
    maximum causal entropy". Bellman (1957), "Dynamic Programming".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

from irl.mdp import MDPValidationError, TabularMDP, state_action_reward

__all__ = [
    "PlanningResult",
    "ConvergenceError",
    "bellman_q",
    "bellman_q_vjp",
    "soft_value_iteration",
    "value_iteration",
    "occupancy_measure",
    "state_occupancy",
    "policy_evaluation",
    "expected_return",
    "greedy_policy",
    "rollout",
]


class ConvergenceError(RuntimeError):
    """An infinite-horizon iteration did not converge; the message says how far it got."""


# ----------------------------------------------------------------- helpers
# Internal layout: action-major ``(A, S, B)`` per step (``(H, A, S, B)`` over time) with the
# batch of reward hypotheses last. Reductions over actions are then elementwise operations
# between contiguous ``(S, B)`` slabs (numpy reduces a short inner axis ~50x slower), and the
# action-major transition matrix ``(A*S, S)`` turns a backup into one sparse-dense product.
def _to_internal(x: np.ndarray) -> np.ndarray:
    """Public ``(B, ..., S, A)`` -> internal ``(..., A, S, B)`` (contiguous)."""
    return np.ascontiguousarray(np.swapaxes(np.moveaxis(x, 0, -1), -3, -2))


def _to_public(x: np.ndarray, batched: bool) -> np.ndarray:
    """Internal ``(..., A, S, B)`` -> public ``(B, ..., S, A)`` (or without the batch axis)."""
    out = np.swapaxes(np.moveaxis(x, -1, 0), -1, -2)
    return out if batched else out[0]


def _values_public(v: np.ndarray, batched: bool) -> np.ndarray:
    """Internal values ``(..., S, B)`` -> ``(B, ..., S)``."""
    return np.moveaxis(v, -1, 0) if batched else v[..., 0]


def _am(mdp: TabularMDP) -> sp.csr_matrix:
    """Action-major continuation ``(A*S, S)``: row ``a*S + s`` is ``P(. | s, a)`` (terminal rows zero)."""
    if "am" not in mdp._cache:
        S, A = mdp.n_states, mdp.n_actions
        perm = (np.arange(A)[:, None] + A * np.arange(S)[None, :]).ravel()
        P = mdp.continuation[perm]
        P.indices = P.indices.astype(np.int32, copy=False)
        P.indptr = P.indptr.astype(np.int32, copy=False) if P.nnz < 2**31 else P.indptr
        mdp._cache["am"] = P
    return mdp._cache["am"]


def _amT(mdp: TabularMDP) -> sp.csr_matrix:
    """Transpose of :func:`_am` as CSR ``(S, A*S)`` for forward (occupancy) passes."""
    if "amT" not in mdp._cache:
        mdp._cache["amT"] = sp.csr_matrix(_am(mdp).T)
    return mdp._cache["amT"]


def _batch_last(mdp: TabularMDP, reward: Any) -> tuple[np.ndarray, bool]:
    """Reward as internal ``(A, S, B)`` float64 plus whether the input had a batch axis."""
    r = state_action_reward(reward, mdp.n_states, mdp.n_actions)
    if r.ndim == 2:
        return np.ascontiguousarray(r.T[:, :, None]), False
    if r.ndim == 3:
        return np.ascontiguousarray(np.transpose(r, (2, 1, 0))), True
    raise MDPValidationError(f"reward must have shape (S,), (S, A) or (B, S, A): got {r.shape}")


def _policy_batch_last(mdp: TabularMDP, policy: Any) -> tuple[np.ndarray, bool]:
    """Policy probabilities ``(B, [H,] S, A)`` -> internal ``([H,] A, S, B)``."""
    p = np.asarray(policy.detach().cpu().numpy() if hasattr(policy, "detach") else policy, dtype=np.float64)
    S, A = mdp.n_states, mdp.n_actions
    if p.shape[-2:] != (S, A):
        raise MDPValidationError(f"policy must end in (S, A) = ({S}, {A}): got {p.shape}")
    timed = mdp.horizon is not None
    base = 3 if timed else 2
    if p.ndim == base - 1 and timed:  # stationary policy in a finite-horizon MDP
        p = np.broadcast_to(p, (mdp.horizon, S, A))
    if p.ndim == base:
        return _to_internal(p[None]), False
    if p.ndim == base + 1:
        if timed and p.shape[1] != mdp.horizon:
            raise MDPValidationError(f"policy must have {mdp.horizon} time steps: got {p.shape[1]}")
        return _to_internal(p), True
    raise MDPValidationError(
        f"policy must have shape {'(H, S, A)' if timed else '(S, A)'} or a batch of them: got {p.shape}")


def _lse_and_policy(q: np.ndarray, soft: bool) -> tuple[np.ndarray, np.ndarray]:
    """Values ``(S, B)`` and action probabilities ``(A, S, B)`` from ``q`` ``(A, S, B)``.

    Soft: log-sum-exp and softmax, max-shifted, computed once for both, in place.
    Hard: max and the uniform distribution over maximising actions.
    """
    m = np.maximum.reduce(q, axis=0)
    if soft:
        e = q - m
        np.exp(e, out=e)
        z = np.add.reduce(e, axis=0)
        e /= z
        np.log(z, out=z)
        z += m
        return z, e
    ties = (q >= m - 1e-12 * (1.0 + np.abs(m))).astype(np.float64)
    ties /= np.add.reduce(ties, axis=0)
    return m, ties


def _matmul(M: sp.csr_matrix, x: np.ndarray) -> np.ndarray:
    """Sparse ``M @ x`` for ``x (n, B)``; a single column goes through the faster mat-vec kernel."""
    if x.shape[1] == 1:
        return (M @ x[:, 0])[:, None]
    return M @ x


def _backup(mdp: TabularMDP, r: np.ndarray, v_next: np.ndarray) -> np.ndarray:
    """``r + gamma * P v_next``: ``(A, S, B)``."""
    cont = _matmul(_am(mdp), v_next).reshape(r.shape)
    if mdp.discount != 1.0:
        cont *= mdp.discount
    cont += r
    return cont


def _pushforward(mdp: TabularMDP, x: np.ndarray) -> np.ndarray:
    """``gamma * sum_{s,a} x[a, s] P(s' | s, a)``: ``(A, S, B)`` -> ``(S, B)``."""
    A, S, B = x.shape
    out = _matmul(_amT(mdp), x.reshape(A * S, B))
    if mdp.discount != 1.0:
        out *= mdp.discount
    return out


def _spsolve(M: sp.spmatrix, b: np.ndarray) -> np.ndarray:
    """``spsolve`` whose singular-matrix warning is dropped: callers turn NaN into a ConvergenceError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", spla.MatrixRankWarning)
        return spla.spsolve(M, b)


def _policy_matrix(mdp: TabularMDP, pi_b: np.ndarray) -> sp.csr_matrix:
    """``P_pi (S, S)`` for one hypothesis' policy ``pi_b (A, S)``."""
    A, S = pi_b.shape
    Pi = sp.csr_matrix((pi_b.ravel(), (np.tile(np.arange(S), A), np.arange(A * S))), shape=(S, A * S))
    return sp.csr_matrix(Pi @ _am(mdp))


def _check_terminates(mdp: TabularMDP, M: sp.csr_matrix, what: str) -> None:
    """With discount 1, every state must reach termination under ``M = P_pi`` (else values are infinite).

    A state terminates with probability 1 iff it has a path to a state whose row
    of ``M`` loses mass (a terminal state): one breadth-first search on the
    reversed graph from a virtual node joined to every such state.
    """
    if mdp.discount < 1.0:
        return
    S = M.shape[0]
    leak = np.flatnonzero(np.asarray(M.sum(axis=1)).ravel() < 1.0 - 1e-12)
    rev = sp.csr_matrix(M.T > 0, dtype=np.int8)
    extra = sp.csr_matrix((np.ones(leak.size, np.int8), (np.zeros(leak.size, np.int64), leak)), shape=(1, S))
    graph = sp.vstack([sp.hstack([rev, sp.csr_matrix((S, 1), dtype=np.int8)]),
                       sp.hstack([extra, sp.csr_matrix((1, 1), dtype=np.int8)])]).tocsr()
    reached = np.zeros(S + 1, bool)
    reached[csgraph.breadth_first_order(graph, S, directed=True, return_predecessors=False)] = True
    if not reached[:S].all():
        bad = np.flatnonzero(~reached[:S])
        names = [mdp.state_names[i] if mdp.state_names else str(int(i)) for i in bad[:5]]
        raise ConvergenceError(
            f"{what} is infinite: with discount 1 and no finite horizon the policy must reach a terminal state "
            f"with probability 1, but from states {', '.join(names)}{' ...' if bad.size > 5 else ''} it never "
            f"does (use discount < 1 or a finite horizon)")


def _solve_flow(mdp: TabularMDP, pi: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Solve ``d = source + gamma * P_pi^T d`` for the discounted flow ``d`` ``(S, B)``.

    ``pi`` is ``(A, S, B)``. One sparse direct solve per hypothesis.
    """
    A, S, B = pi.shape
    out = np.empty((S, B))
    eye = sp.identity(S, format="csc")
    for b in range(B):  # one linear system per hypothesis (B is small: chains, samples)
        P_pi = _policy_matrix(mdp, pi[:, :, b])
        _check_terminates(mdp, P_pi, "the discounted flow")
        M = P_pi.T.tocsc()  # (S', S) = P_pi^T
        sol = _spsolve(eye - mdp.discount * M, source[:, b])
        if not np.all(np.isfinite(sol)):
            raise ConvergenceError(
                "the discounted flow is infinite: with discount = 1 and no finite horizon, the policy must "
                "reach a terminal state with probability 1 (use discount < 1 or a finite horizon)")
        out[:, b] = sol
    return out


# ------------------------------------------------------------- Q-values
def _q_finite(mdp: TabularMDP, r: np.ndarray, soft: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    H = mdp.horizon
    A, S, B = r.shape
    q = np.empty((H, A, S, B))
    pi = np.empty((H, A, S, B))
    v = np.zeros((H + 1, S, B))
    for t in range(H - 1, -1, -1):
        q[t] = _backup(mdp, r, v[t + 1])
        v[t], pi[t] = _lse_and_policy(q[t], soft)
    return q, v, pi


def _q_infinite(mdp: TabularMDP, r: np.ndarray, soft: bool, tol: float, max_iter: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    A, S, B = r.shape
    v = np.zeros((S, B))
    delta = np.inf
    for _ in range(max_iter):
        q = _backup(mdp, r, v)
        v_new, pi = _lse_and_policy(q, soft)
        delta = float(np.max(np.abs(v_new - v))) if v.size else 0.0
        v = v_new
        if delta <= tol:
            break
    else:
        raise ConvergenceError(
            f"{'soft ' if soft else ''}value iteration did not converge in max_iter = {max_iter} sweeps: "
            f"last change {delta:.3g} > tol = {tol:g} (discount = {mdp.discount}; with discount 1 and "
            f"no finite horizon, values are finite only if every policy reaches a terminal state)")
    q = _backup(mdp, r, v)
    v, pi = _lse_and_policy(q, soft)
    return q, v, pi


def _q_values(mdp: TabularMDP, r: np.ndarray, soft: bool, tol: float = 1e-10, max_iter: int = 100_000):
    if mdp.horizon is not None:
        return _q_finite(mdp, r, soft)
    return _q_infinite(mdp, r, soft, tol, max_iter)


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


def _plan(mdp: TabularMDP, reward: Any, soft: bool, beta: float, tol: float, max_iter: int) -> PlanningResult:
    r, batched = _batch_last(mdp, reward)
    q, v, pi = _q_values(mdp, beta * r if beta != 1.0 else r, soft, tol, max_iter)
    if beta != 1.0:
        q /= beta
        v /= beta
    return PlanningResult(q=_to_public(q, batched), v=_values_public(v, batched), policy=_to_public(pi, batched))


def soft_value_iteration(mdp: TabularMDP, reward: Any, *, beta: float = 1.0, tol: float = 1e-10,
                         max_iter: int = 100_000) -> PlanningResult:
    """Soft (maximum causal entropy) value iteration.

    ``Q_t(s,a) = r(s,a) + gamma * E[V_{t+1}(s')]``, ``V_t(s) = (1/beta) log sum_a exp(beta Q_t(s,a))``,
    ``pi_t(a|s) = exp(beta (Q_t(s,a) - V_t(s)))``. Finite horizon: time-indexed
    backward recursion from ``V_H = 0``; infinite horizon: iterate to ``tol``.

    Args:
        mdp: the MDP.
        reward: ``(S,)``, ``(S, A)`` or a batch ``(B, S, A)``.
        beta: rationality (inverse temperature), ``> 0``.
        tol: convergence tolerance on values (infinite horizon).
        max_iter: sweep limit (infinite horizon).

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
    return _plan(mdp, reward, True, float(beta), tol, max_iter)


def value_iteration(mdp: TabularMDP, reward: Any, *, tol: float = 1e-10, max_iter: int = 100_000
                    ) -> PlanningResult:
    """Hard (optimal) value iteration; the policy splits evenly among maximising actions.

    Args:
        mdp: the MDP.
        reward: ``(S,)``, ``(S, A)`` or ``(B, S, A)``.
        tol: convergence tolerance (infinite horizon).
        max_iter: sweep limit (infinite horizon).

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
    return _plan(mdp, reward, False, 1.0, tol, max_iter)


def bellman_q(mdp: TabularMDP, reward: Any, *, soft: bool = True, tol: float = 1e-10,
              max_iter: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Q-values and the policy they induce (used by the autograd wrapper :func:`irl.autodiff.q_values`).

    Args:
        mdp: the MDP.
        reward: ``(S,)``, ``(S, A)`` or a batch ``(B, S, A)``.
        soft: soft (log-sum-exp, temperature 1) or hard (max) backup.
        tol: convergence tolerance (infinite horizon).
        max_iter: sweep limit (infinite horizon).

    Returns:
        ``(q, pi)``, each ``([B,] H, S, A)`` or ``([B,] S, A)``. ``pi`` is the softmax
        of ``q`` (soft) or the even split over maximisers (hard): the derivative
        ``dV/dQ`` that :func:`bellman_q_vjp` needs.
    """
    r, batched = _batch_last(mdp, reward)
    q, _, pi = _q_values(mdp, r, soft, tol, max_iter)
    return _to_public(q, batched), _to_public(pi, batched)


def bellman_q_vjp(mdp: TabularMDP, pi: np.ndarray, q_bar: np.ndarray) -> np.ndarray:
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

    Returns:
        ``dL/dr``, with the batch axis if ``q_bar`` has one.
    """
    timed = mdp.horizon is not None
    batched = np.ndim(q_bar) == (4 if timed else 3)
    qb = _to_internal(np.asarray(q_bar, dtype=np.float64) if batched else np.asarray(q_bar, dtype=np.float64)[None])
    p = _to_internal(np.asarray(pi) if batched else np.asarray(pi)[None])
    if qb.shape != p.shape:
        raise MDPValidationError(f"q_bar and pi must have the same shape: got {np.shape(q_bar)} and {np.shape(pi)}")
    if timed:
        acc = qb[0].copy()
        x = qb[0]
        for t in range(1, mdp.horizon):
            x = qb[t] + p[t] * _pushforward(mdp, x)
            acc += x
    else:
        # stationary: qbar = Qbar + pi * vbar, vbar = gamma P^T qbar  =>  vbar = src + gamma P_pi^T vbar
        acc = qb + p * _solve_flow(mdp, p, _pushforward(mdp, qb))
    return _to_public(acc, batched)


# --------------------------------------------------------- occupancies
def occupancy_measure(mdp: TabularMDP, policy: Any, *, initial: Any = None) -> np.ndarray:
    """Discounted state-action occupancy of a policy.

    Finite horizon: ``D[t, s, a] = gamma^t P(s_t = s, a_t = a)``, shape ``([B,] H, S, A)``.
    Infinite horizon: ``D[s, a] = sum_t gamma^t P(s_t = s, a_t = a)``, shape ``([B,] S, A)``
    (one sparse linear solve). Terminal states absorb the flow after being visited.

    Args:
        mdp: the MDP.
        policy: action probabilities ``([B,] [H,] S, A)``.
        initial: start distribution ``(S,)``; defaults to ``mdp.initial``.

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
    pi, batched = _policy_batch_last(mdp, policy)
    d0 = mdp.initial if initial is None else np.asarray(initial, dtype=np.float64)
    if d0.shape != (mdp.n_states,):
        raise MDPValidationError(f"initial must have shape ({mdp.n_states},): got {d0.shape}")
    B = pi.shape[-1]
    d = np.repeat(d0[:, None], B, axis=1)
    if mdp.horizon is not None:
        out = np.empty_like(pi)
        for t in range(mdp.horizon):
            np.multiply(pi[t], d, out=out[t])
            d = _pushforward(mdp, out[t])
        return _to_public(out, batched)
    d = _solve_flow(mdp, pi, d)
    return _to_public(d * pi, batched)


def state_occupancy(mdp: TabularMDP, policy: Any, *, initial: Any = None) -> np.ndarray:
    """State occupancy: :func:`occupancy_measure` summed over actions."""
    return occupancy_measure(mdp, policy, initial=initial).sum(axis=-1)


def policy_evaluation(mdp: TabularMDP, reward: Any, policy: Any) -> np.ndarray:
    """Values of a policy under a reward.

    Args:
        mdp: the MDP.
        reward: ``(S,)``, ``(S, A)`` or ``(B, S, A)``.
        policy: ``([B,] [H,] S, A)`` probabilities.

    Returns:
        ``([B,] H + 1, S)`` for a finite horizon, ``([B,] S)`` otherwise.
    """
    r, rb = _batch_last(mdp, reward)
    pi, pb = _policy_batch_last(mdp, policy)
    B = max(r.shape[-1], pi.shape[-1])
    if r.shape[-1] not in (1, B) or pi.shape[-1] not in (1, B):
        raise MDPValidationError(f"reward batch {r.shape[-1]} and policy batch {pi.shape[-1]} differ")
    r = np.broadcast_to(r, r.shape[:-1] + (B,))
    S = mdp.n_states
    if mdp.horizon is not None:
        v = np.zeros((mdp.horizon + 1, S, B))
        for t in range(mdp.horizon - 1, -1, -1):
            v[t] = np.add.reduce(pi[t] * _backup(mdp, r, v[t + 1]), axis=0)
        return _values_public(v, rb or pb)
    # V = sum_a pi (r + gamma P V)  <=>  (I - gamma P_pi) V = sum_a pi r
    out = np.empty((S, B))
    pib = np.broadcast_to(pi, pi.shape[:-1] + (B,))
    eye = sp.identity(S, format="csc")
    for b in range(B):
        M = _policy_matrix(mdp, pib[:, :, b])
        _check_terminates(mdp, M, "the value of the policy")
        sol = _spsolve((eye - mdp.discount * M).tocsc(), np.add.reduce(pib[:, :, b] * r[:, :, b], axis=0))
        if not np.all(np.isfinite(sol)):
            raise ConvergenceError("policy evaluation diverged: with discount 1 the policy must terminate")
        out[:, b] = sol
    return _values_public(out, rb or pb)


def expected_return(mdp: TabularMDP, reward: Any, policy: Any, *, initial: Any = None) -> np.ndarray | float:
    """Expected (discounted) return of ``policy`` under ``reward`` from the start distribution."""
    v = policy_evaluation(mdp, reward, policy)
    v0 = v[..., 0, :] if mdp.horizon is not None else v
    d0 = mdp.initial if initial is None else np.asarray(initial, dtype=np.float64)
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
    H = horizon if horizon is not None else mdp.horizon
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
