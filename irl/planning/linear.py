"""Linear solves with a policy's transition matrix: sparse LU where it is cheap, BiCGSTAB with a fixed-
point fallback otherwise (policy evaluation, Newton steps, occupancy flows).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

from irl.mdp import TabularMDP
from irl.planning.core import _F64, ConvergenceError, _Ops, _am, _ops


# ------------------------------------------------------- linear solves
def _spsolve(M: sp.spmatrix, b: np.ndarray) -> np.ndarray:
    """``spsolve`` whose singular-matrix warning is dropped: callers turn NaN into a ConvergenceError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", spla.MatrixRankWarning)
        return spla.spsolve(M, b)

def _policy_matrix(mdp: TabularMDP, pi_b: np.ndarray) -> sp.csr_matrix:
    """``P_pi (S, S)`` for one hypothesis' policy ``pi_b (A, S)``."""
    A, S = pi_b.shape
    Pi = sp.csr_matrix((np.asarray(pi_b, dtype=np.float64).ravel(), (np.tile(np.arange(S), A), np.arange(A * S))),
                       shape=(S, A * S))
    return sp.csr_matrix(Pi @ _am(mdp))

def _nonterminating(M: sp.csr_matrix) -> np.ndarray:
    """States that never reach termination under ``M = P_pi`` (discount 1): one breadth-first search.

    A state terminates with probability 1 iff it has a path to a state whose row
    of ``M`` loses mass (a terminal state): search the reversed graph from a
    virtual node joined to every such state.
    """
    S = M.shape[0]
    leak = np.flatnonzero(np.asarray(M.sum(axis=1)).ravel() < 1.0 - 1e-12)
    rev = sp.csr_matrix(M.T > 0, dtype=np.int8)
    extra = sp.csr_matrix((np.ones(leak.size, np.int8), (np.zeros(leak.size, np.int64), leak)), shape=(1, S))
    graph = sp.vstack([sp.hstack([rev, sp.csr_matrix((S, 1), dtype=np.int8)]),
                       sp.hstack([extra, sp.csr_matrix((1, 1), dtype=np.int8)])]).tocsr()
    reached = np.zeros(S + 1, bool)
    reached[csgraph.breadth_first_order(graph, S, directed=True, return_predecessors=False)] = True
    return np.flatnonzero(~reached[:S])

def _check_terminates(mdp: TabularMDP, M: sp.csr_matrix, what: str) -> None:
    """With discount 1, every state must reach termination under ``M = P_pi`` (else values are infinite)."""
    if mdp.discount < 1.0:
        return
    bad = _nonterminating(M)
    if bad.size:
        names = [mdp.state_names[i] if mdp.state_names else str(int(i)) for i in bad[:5]]
        raise ConvergenceError(
            f"{what} is infinite: with discount 1 and no finite horizon the policy must reach a terminal state "
            f"with probability 1, but from states {', '.join(names)}{' ...' if bad.size > 5 else ''} it never "
            f"does (use discount < 1 or a finite horizon)")

class _PolicyOperator:
    """``x -> x - gamma P_pi x`` (values) or ``d -> d - gamma P_pi^T d`` (flows), batched over columns.

    ``pi`` is ``(A, S, B)``; ``P_pi`` is never formed: one sparse product with
    the action-major matrix (or its transpose) and one weighted sum over actions.
    """

    def __init__(self, ops: _Ops, pi: np.ndarray, transpose: bool) -> None:
        self.ops, self.pi, self.transpose = ops, pi, transpose
        self.buf = np.empty(pi.shape, ops.dtype)
        self.n_apply = 0

    def gamma_p(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out = gamma P_pi x`` (values) or ``gamma P_pi^T x`` (flows)."""
        self.n_apply += 1
        if self.transpose:
            np.multiply(self.pi, x, out=self.buf)
            return self.ops.push(self.buf, out)
        self.buf.fill(0)
        self.ops.P.addmul(x, self.buf)
        np.multiply(self.buf, self.pi, out=self.buf)
        return np.add.reduce(self.buf, axis=0, out=out)

    def subset(self, cols: Any) -> "_PolicyOperator":
        """The operator of some columns (hypotheses) only."""
        return _PolicyOperator(self.ops, np.ascontiguousarray(self.pi[:, :, cols]), self.transpose)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        self.gamma_p(x, out)
        np.subtract(x, out, out=out)
        return out

def _bicgstab(op: _PolicyOperator, b: np.ndarray, x0: np.ndarray, rtol: float, maxiter: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """BiCGSTAB for every column of ``b (S, B)`` at once: ``(x, converged (B,))``.

    Each column has its own scalars; a column stops (its updates are masked) when
    its residual is below ``rtol * |b|_2`` or at the level rounding allows
    (``64 eps |x|_2``), and is marked failed on a breakdown. Convergence is
    confirmed on the true residual ``b - A x``.
    """
    eps64 = 64 * np.finfo(np.float64).eps
    x = np.array(x0, dtype=np.float64, order="C")
    r = b - op(x)
    bnorm = np.linalg.norm(b, axis=0)

    def target() -> np.ndarray:
        return np.maximum(rtol * bnorm, eps64 * np.linalg.norm(x, axis=0))

    done = np.linalg.norm(r, axis=0) <= target()
    failed = np.zeros_like(done)
    rhat = r.copy()
    p = np.zeros_like(r)
    v = np.zeros_like(r)
    rho = alpha = omega = np.ones(b.shape[1])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(maxiter):
            act = ~(done | failed)
            if not act.any():
                break
            rho_new = np.einsum("ij,ij->j", rhat, r)
            beta = (rho_new / rho) * (alpha / omega)
            failed |= act & (~np.isfinite(beta) | (rho_new == 0))
            act &= ~failed
            beta = np.where(act, beta, 0.0)
            p -= omega * v
            p *= beta
            p += r
            v = op(p)
            den = np.einsum("ij,ij->j", rhat, v)
            alpha = rho_new / den
            failed |= act & ~np.isfinite(alpha)
            act &= ~failed
            alpha = np.where(act, alpha, 0.0)
            s = r - alpha * v
            x += alpha * p
            small = act & (np.linalg.norm(s, axis=0) <= target())
            done |= small
            act &= ~small
            t = op(s)
            tt = np.einsum("ij,ij->j", t, t)
            omega = np.where(act & (tt > 0), np.einsum("ij,ij->j", t, s) / tt, 0.0)
            failed |= act & ((omega == 0) | ~np.isfinite(omega))
            act &= ~failed
            omega = np.where(act, omega, 0.0)
            x += omega * s
            r = s - omega * t
            done |= act & (np.linalg.norm(r, axis=0) <= target())
            rho = np.where(rho_new == 0, 1.0, rho_new)
            omega = np.where(omega == 0, 1.0, omega)
        true_r = np.linalg.norm(b - op(x), axis=0)
    ok = np.isfinite(true_r) & np.all(np.isfinite(x), axis=0) & (true_r <= 4 * target())
    return x, ok

#: estimated LU cost (``sum_i profile_i^2`` after reverse Cuthill-McKee) below which a sparse direct
#: solve is used at once, and below which it is the fallback when BiCGSTAB is slow
_LU_CHEAP, _LU_AFFORDABLE = 2e7, 5e8

#: BiCGSTAB iterations tried before an affordable direct solve takes over
_KRYLOV_FIRST = 60

def _lu_cost(mdp: TabularMDP) -> float:
    """Rough cost (flops) of a sparse LU of ``I - gamma P_pi``, cached per MDP.

    ``sum_i p_i^2`` where ``p_i`` is the distance of row ``i``'s first nonzero from
    the diagonal in the reverse Cuthill-McKee order of the graph of all actions
    (``P_pi`` has at most these nonzeros for any policy). Small for gridworlds and
    chains (banded: ``S * sqrt(S)^2``), ``~S^3`` for random graphs, where LU fills in.
    """
    if "lu_cost" not in mdp._cache:
        P = _am(mdp).tocoo()
        S = mdp.n_states
        G = sp.csr_matrix((np.ones(P.nnz, np.int8), (P.row % S, P.col)), shape=(S, S))
        G = (G + G.T + sp.identity(S, dtype=np.int8, format="csr")).tocsr()
        perm = csgraph.reverse_cuthill_mckee(G, symmetric_mode=True)
        inv = np.empty(S, np.int64)
        inv[perm] = np.arange(S)
        Gp = G.tocoo()
        rows, cols = inv[Gp.row], inv[Gp.col]
        first = np.full(S, S, np.int64)
        np.minimum.at(first, rows, cols)
        prof = np.maximum(np.arange(S) - first, 0).astype(np.float64)
        mdp._cache["lu_cost"] = float(np.sum(prof ** 2))
    return mdp._cache["lu_cost"]

def _direct(mdp: TabularMDP, pi_b: np.ndarray, b: np.ndarray, transpose: bool) -> np.ndarray | None:
    """Sparse LU solve of one system; ``None`` if it is singular (non-finite or inaccurate answer)."""
    M = _policy_matrix(mdp, pi_b)
    M = (M.T if transpose else M).tocsc()
    K = sp.identity(mdp.n_states, format="csc") - mdp.discount * M
    sol = _spsolve(K, b)
    if np.all(np.isfinite(sol)) and np.abs(K @ sol - b).max() <= 1e-9 * (1.0 + np.abs(b).max()):
        return sol
    return None

def _policy_solve(mdp: TabularMDP, pi: np.ndarray, b: np.ndarray, *, transpose: bool, x0: np.ndarray | None = None,
                  what: str = "the linear system", fixed_point: bool = True) -> np.ndarray | None:
    """Solve ``(I - gamma P_pi) x = b`` (or with ``P_pi^T`` for flows) for every column of ``b (S, B)``.

    Float64 throughout, deterministic. Where a sparse LU is cheap (banded
    structure such as gridworlds; :func:`_lu_cost`) it is used directly.
    Otherwise BiCGSTAB (memory O(nnz), a few dozen products on well-mixing MDPs
    such as random ones, where LU would fill in); columns it has not solved after
    ``_KRYLOV_FIRST`` iterations go to LU if affordable, else BiCGSTAB continues;
    the last resort (with ``fixed_point``) is the iteration ``x = b + gamma P_pi x``
    (convergent for ``gamma < 1`` or terminating policies). Without
    ``fixed_point`` an unsolved system returns ``None``.
    """
    pi = np.ascontiguousarray(pi, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    B = b.shape[1]
    cost = _lu_cost(mdp)
    x = np.empty_like(b)
    todo = np.arange(B)
    if cost <= _LU_CHEAP:
        left = []
        for j in todo:
            sol = _direct(mdp, pi[:, :, j], b[:, j], transpose)
            if sol is None:
                left.append(j)
            else:
                x[:, j] = sol
        todo = np.array(left, dtype=np.int64)
    if todo.size:
        op = _PolicyOperator(_ops(mdp, _F64), np.ascontiguousarray(pi[:, :, todo]), transpose)
        start = b[:, todo] if x0 is None else np.asarray(x0, dtype=np.float64)[:, todo]
        xk, ok = _bicgstab(op, b[:, todo], start, rtol=1e-14, maxiter=_KRYLOV_FIRST)
        x[:, todo] = xk
        left = []
        for k, j in enumerate(todo):
            if ok[k]:
                continue
            if _LU_CHEAP < cost <= _LU_AFFORDABLE:
                sol = _direct(mdp, pi[:, :, j], b[:, j], transpose)
                if sol is not None:
                    x[:, j] = sol
                    continue
            left.append(j)
        todo = np.array(left, dtype=np.int64)
    if todo.size:  # slow convergence and no affordable LU: more BiCGSTAB, restarted from where it stopped
        op = _PolicyOperator(_ops(mdp, _F64), np.ascontiguousarray(pi[:, :, todo]), transpose)
        xk, ok = _bicgstab(op, b[:, todo], x[:, todo], rtol=1e-14, maxiter=max(1000, 8 * int(np.sqrt(mdp.n_states))))
        x[:, todo] = xk
        for k, j in enumerate(todo):
            if ok[k]:
                continue
            if not fixed_point:
                return None
            x[:, j] = _fixed_point(op.subset([k]), b[:, j:j + 1], x[:, j:j + 1], what)[:, 0]
    return x

def _fixed_point(op: _PolicyOperator, b: np.ndarray, x: np.ndarray, what: str, max_iter: int = 100_000
                 ) -> np.ndarray:
    """``x = b + gamma P_pi x`` iterated until it stops changing (last resort)."""
    x = np.where(np.isfinite(x), x, 0.0)
    nxt = np.empty_like(x)
    for _ in range(max_iter):
        op.gamma_p(x, nxt)
        nxt += b
        delta = float(np.abs(nxt - x).max())
        x, nxt = nxt, x
        if not np.isfinite(delta):
            break
        if delta <= 4 * np.finfo(np.float64).eps * max(1.0, float(np.abs(x).max())):
            return x
    raise ConvergenceError(f"{what} could not be solved: the linear system is singular or too ill-conditioned "
                           f"(with discount 1 and no finite horizon, the policy must reach a terminal state)")

def _solve_flow(mdp: TabularMDP, pi: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Solve ``d = source + gamma * P_pi^T d`` for the discounted flow ``d`` ``(S, B)``; ``pi`` is ``(A, S, B)``."""
    if mdp.discount >= 1.0:
        for b in range(pi.shape[-1]):
            _check_terminates(mdp, _policy_matrix(mdp, pi[:, :, b]), "the discounted flow")
    out = _policy_solve(mdp, pi, source, transpose=True, what="the discounted flow")
    if not np.all(np.isfinite(out)):
        raise ConvergenceError(
            "the discounted flow is infinite: with discount = 1 and no finite horizon, the policy must "
            "reach a terminal state with probability 1 (use discount < 1 or a finite horizon)")
    return out
