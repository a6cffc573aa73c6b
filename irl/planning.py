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

Backends: the sweeps run either as numpy/scipy calls per time step (the
``numpy`` backend, always available, the reference) or as one compiled numba
kernel per pass with the whole time loop inside (the ``numba`` backend, with
``pip install 'pluggable-irl[fast]'``; the same numbers to rounding). The
default, ``auto``, uses numba when it is installed; :func:`backend` says which
one runs and :func:`set_backend` or the environment variable
``IRL_PLANNER_BACKEND`` (``auto``, ``numba`` or ``numpy``) chooses.

Precision: float64 by default; every planning function takes ``dtype=np.float32``
for half the memory and about half the time (results then agree with float64 to
about ``1e-6`` relative). Infinite-horizon problems are solved by value iteration
while it converges quickly and then by Newton's method on the Bellman equation
(soft policy iteration; policy iteration for the hard backup) with Krylov
(BiCGSTAB) linear solves, which needs a handful of iterations where value
iteration needs ``log(tol) / log(gamma)`` sweeps (thousands for ``gamma >= 0.99``).

Conventions. The agent in state ``s_t`` takes ``a_t`` and receives ``r(s_t, a_t)``
for ``t = 0 .. H-1``. In a terminal state it receives ``r(s, a)`` once and the
episode ends. Soft value iteration works at temperature 1; a Boltzmann human with
rationality ``beta`` is soft value iteration on ``beta * r``.

References:
    Ziebart, Bagnell & Dey (2010), "Modeling interaction via the principle of
    maximum causal entropy". Bellman (1957), "Dynamic Programming". Puterman &
    Brumelle (1979), "On the convergence of policy iteration in stationary dynamic
    programming" (policy iteration is Newton's method). van der Vorst (1992),
    "Bi-CGSTAB: a fast and smoothly converging variant of Bi-CG".
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

from irl.mdp import MDPValidationError, TabularMDP, check_horizon, state_action_reward

__all__ = [
    "PlanningResult",
    "ConvergenceError",
    "bellman_q",
    "bellman_q_vjp",
    "soft_log_policy",
    "soft_log_policy_vjp",
    "soft_value_iteration",
    "value_iteration",
    "occupancy_measure",
    "state_occupancy",
    "policy_evaluation",
    "expected_return",
    "greedy_policy",
    "rollout",
    "release_buffers",
    "backend",
    "set_backend",
]


class ConvergenceError(RuntimeError):
    """An infinite-horizon iteration did not converge; the message says how far it got."""


# ------------------------------------------------------------- backends
_BACKENDS = ("auto", "numba", "numpy")
#: environment variable read on first use when :func:`set_backend` was not called
BACKEND_ENV = "IRL_PLANNER_BACKEND"
_BACKEND: dict[str, Any] = {"requested": None, "kernels": None}


def _load_kernels() -> Any:
    """The compiled kernels module (imports numba; raises ImportError without it)."""
    return importlib.import_module("irl._kernels")


def set_backend(name: str) -> str:
    """Choose how the planner's sweeps run: ``"numba"``, ``"numpy"`` or ``"auto"``.

    * ``"numba"``: one compiled kernel per pass (backward induction, value-iteration
      sweep, occupancy), the whole time loop inside, batched over hypotheses.
      Needs the ``fast`` extra (numba); the first call in a fresh environment
      compiles the kernels (6-17 s measured on a loaded 2-core machine; cached on disk,
      after which a new process loads them in under a second).
    * ``"numpy"``: numpy/scipy calls per time step (the reference implementation).
    * ``"auto"`` (the default): ``"numba"`` when numba can be imported, else ``"numpy"``.

    Both give the same numbers to rounding (float64: ~1e-15 relative). Linear
    solves of infinite-horizon problems (Newton's method, stationary occupancies)
    and the gradient flows are numpy/scipy in both. The environment variable
    ``IRL_PLANNER_BACKEND`` sets the choice for a process that never calls this.

    Args:
        name: ``"auto"``, ``"numba"`` or ``"numpy"``.

    Returns:
        The previously requested name (pass it back to restore).

    Raises:
        ValueError: an unknown name.
        ImportError: ``"numba"`` requested and numba is not installed (names the extra).

    Example:
        >>> import irl
        >>> previous = irl.planning.set_backend("numpy")
        >>> irl.planning.backend()
        'numpy'
        >>> _ = irl.planning.set_backend(previous)
    """
    if name not in _BACKENDS:
        raise ValueError(f"planner backend must be one of {', '.join(_BACKENDS)}: got {name!r}")
    kernels = None
    if name != "numpy":
        try:
            kernels = _load_kernels()
        except ImportError as exc:
            if name == "numba":
                raise ImportError("the numba planner backend needs numba: pip install 'pluggable-irl[fast]' "
                                  f"({type(exc).__name__}: {exc})") from exc
    previous = _BACKEND["requested"] or "auto"
    _BACKEND.update(requested=name, kernels=kernels)
    return previous


def _kernels() -> Any:
    """The kernels module when the numba backend is active, else ``None`` (resolves the choice on first use)."""
    if _BACKEND["requested"] is None:
        name = os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
        if name not in _BACKENDS:
            raise ValueError(f"{BACKEND_ENV} must be one of {', '.join(_BACKENDS)}: got {name!r}")
        set_backend(name)
    return _BACKEND["kernels"]


def backend() -> str:
    """The backend the planner's sweeps run on now: ``"numba"`` or ``"numpy"`` (see :func:`set_backend`).

    Example:
        >>> import irl
        >>> irl.planning.backend() in ("numba", "numpy")
        True
    """
    return "numpy" if _kernels() is None else "numba"


# ----------------------------------------------------------------- dtypes
_F64, _F32 = np.dtype(np.float64), np.dtype(np.float32)
#: relative tolerance under which two Q-values count as tied (hard backup), per dtype
_TIE = {_F64: 1e-12, _F32: 1e-5}


def _resolve_dtype(dtype: Any) -> np.dtype:
    """``None`` (float64), float64 or float32 as a numpy, torch or string spelling -> a numpy dtype."""
    if dtype is None:
        return _F64
    if type(dtype).__module__.startswith("torch"):  # torch.float64 / torch.float32
        dt = {"torch.float64": _F64, "torch.float32": _F32}.get(str(dtype))
    else:
        try:
            dt = np.dtype(dtype)
        except TypeError:
            dt = None
    if dt is not None and (dt == _F64 or dt == _F32):
        return dt
    raise MDPValidationError(f"dtype must be float64 or float32: got {dtype!r}")


# ------------------------------------------------------- result buffers
class _BufferPool:
    """Recycles the memory of large result arrays (time-indexed Q-values, policies, occupancies).

    Memory fresh from the operating system is faulted in and zeroed page by page
    on first write; for the ``(H, A, S, B)`` results of one pass that costs as much
    as the arithmetic itself at 10^3 states (the allocator hands large freed
    blocks back to the system, so every call starts from fresh pages). A buffer
    is handed out again only when nothing refers to it any more: every numpy view
    of a buffer (and every torch tensor made from one with ``torch.from_numpy``)
    keeps a reference to it, so a reference count at the idle baseline means no
    array can see its memory. Buffers of ``_MIN`` to ``_MAX`` bytes are kept,
    at most ``budget`` bytes of them idle (least recently used dropped first);
    :func:`release_buffers` drops every idle one. CPython only (elsewhere every
    request is a fresh ``np.empty``).
    """

    _MIN, _MAX = 1 << 18, 1 << 26

    def __init__(self, budget: int = 1 << 28) -> None:
        self.budget = budget
        self._bufs: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._idle_refs = self._calibrate()

    def _refs(self, i: int) -> int:
        return sys.getrefcount(self._bufs[i])

    def _calibrate(self) -> int | None:
        """The reference count of an idle buffer as :meth:`_refs` sees it (``None``: pooling off)."""
        if sys.implementation.name != "cpython":  # pragma: no cover - other interpreters
            return None
        self._bufs.append(np.empty(8, np.uint8))
        idle = self._refs(0)
        view = self._bufs[0].view(np.float64).reshape(1, 1)
        busy = self._refs(0)
        del view
        self._bufs.clear()
        return idle if busy == idle + 1 else None

    def _idle(self, i: int) -> bool:
        return self._refs(i) == self._idle_refs

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialised C-contiguous array, on recycled memory when possible."""
        dtype = np.dtype(dtype)
        n = int(np.prod(shape)) * dtype.itemsize
        if self._idle_refs is None or not self._MIN <= n <= self._MAX:
            return np.empty(shape, dtype)
        with self._lock:
            for i in range(len(self._bufs)):
                if self._bufs[i].nbytes == n and self._idle(i):
                    buf = self._bufs.pop(i)
                    break
            else:
                buf = np.empty(n, np.uint8)
            self._bufs.append(buf)  # most recently used last
            out = buf.view(dtype).reshape(shape)
            del buf
            self._trim(self.budget)
            return out

    def _trim(self, budget: int) -> int:
        idle = [i for i in range(len(self._bufs)) if self._idle(i)]
        total = sum(self._bufs[i].nbytes for i in idle)
        drop = []
        for i in idle:  # oldest first
            if total <= budget:
                break
            total -= self._bufs[i].nbytes
            drop.append(i)
        freed = sum(self._bufs[i].nbytes for i in drop)
        for i in reversed(drop):
            del self._bufs[i]
        return freed

    def release(self) -> int:
        """Drop every idle buffer; returns the bytes handed back."""
        with self._lock:
            return self._trim(0)


_POOL = _BufferPool()


def release_buffers() -> int:
    """Hand the idle result buffers the planner keeps for reuse back to the allocator.

    The planner recycles the memory of large results (``(H, S, A)`` Q-values,
    policies, occupancies up to 64 MB each) once no array refers to it, which
    saves faulting in fresh pages on every call; at most 256 MB of such idle
    buffers are kept. Call this to return them at once (e.g. before measuring
    memory).

    Returns:
        The number of bytes released.

    Example:
        >>> import irl
        >>> env = irl.envs.make("gridworld-16x16")
        >>> res = irl.planning.soft_value_iteration(env, irl.envs.true_reward(env))
        >>> del res   # its (H, S, A) buffers are idle now, kept for the next call
        >>> irl.planning.release_buffers() > 0
        True
    """
    return _POOL.release()


# ----------------------------------------------------------------- helpers
# Internal layout: action-major ``(A, S, B)`` per step (``(H, A, S, B)`` over time) with the
# batch of reward hypotheses last. Reductions over actions are then elementwise operations
# between contiguous ``(S, B)`` slabs (numpy reduces a short inner axis ~50x slower), and the
# action-major transition matrix ``(A*S, S)`` turns a backup into one sparse-dense product.
def _to_internal(x: np.ndarray) -> np.ndarray:
    """Public ``(B, ..., S, A)`` -> internal ``(..., A, S, B)`` (contiguous)."""
    return np.ascontiguousarray(_internal_view(x))


def _internal_view(x: np.ndarray) -> np.ndarray:
    """Public ``(B, ..., S, A)`` -> internal ``(..., A, S, B)`` as a view (no copy)."""
    return np.swapaxes(np.moveaxis(x, 0, -1), -3, -2)


def _to_public(x: np.ndarray, batched: bool) -> np.ndarray:
    """Internal ``(..., A, S, B)`` -> public ``(B, ..., S, A)`` (or without the batch axis); a view."""
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
        P.sort_indices()
        small = P.nnz < 2**31 and max(P.shape) < 2**31
        P.indices = P.indices.astype(np.int32 if small else np.int64, copy=False)
        P.indptr = P.indptr.astype(np.int32 if small else np.int64, copy=False)
        mdp._cache["am"] = P
    return mdp._cache["am"]


# ------------------------------------------------------- sparse kernels
# scipy's compiled CSR kernels, called directly: ``y += M @ x`` into a preallocated output,
# without the per-call checks, dtype promotion and allocation of ``M @ x`` (which cost more
# than the product itself below ~10^4 states). Verified against ``M @ x`` at import; when the
# private module is missing or disagrees, the public operator is used instead.
def _direct_kernels() -> tuple[Callable, ...] | None:
    try:
        from scipy.sparse import _sparsetools as st

        kernels = (st.csr_matvec, st.csr_matvecs, st.csc_matvec, st.csc_matvecs)
        M = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]]))
        ip, ix = M.indptr.astype(np.int32), M.indices.astype(np.int32)
        x, X = np.array([1.0, 2.0, 3.0]), np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        xt, XT = np.array([1.0, 2.0]), np.array([[1.0, 2.0], [3.0, 4.0]])
        y, Y, yt, YT = np.ones(2), np.ones((2, 2)), np.ones(3), np.ones((3, 2))
        kernels[0](2, 3, ip, ix, M.data, x, y)
        kernels[1](2, 3, 2, ip, ix, M.data, X.ravel(), Y.ravel())
        kernels[2](3, 2, ip, ix, M.data, xt, yt)  # the CSR arrays of M are the CSC arrays of M^T
        kernels[3](3, 2, 2, ip, ix, M.data, XT.ravel(), YT.ravel())
        if (np.allclose(y, 1 + M @ x) and np.allclose(Y, 1 + M @ X) and np.allclose(yt, 1 + M.T @ xt)
                and np.allclose(YT, 1 + M.T @ XT)):
            return kernels
    except Exception:  # pragma: no cover - depends on the scipy build
        pass
    return None  # pragma: no cover


_KERNELS = _direct_kernels()


class _CSR:
    """One CSR matrix as raw arrays in a given dtype, with ``y += M @ x`` and ``y += M^T @ x`` into ``y``.

    The transpose product reads the same arrays as a CSC matrix (a scatter into
    the shorter vector), so no transposed copy is stored.
    """

    __slots__ = ("n_row", "n_col", "indptr", "indices", "data", "kernels", "matrix", "_compiled")

    def __init__(self, M: sp.csr_matrix, scale: float, dtype: np.dtype) -> None:
        self.n_row, self.n_col = M.shape
        self.indptr, self.indices = M.indptr, M.indices
        data = M.data if scale == 1.0 else M.data * scale
        self.data = data.astype(dtype, copy=False)
        self.kernels = _KERNELS
        self.matrix = None if self.kernels is not None else sp.csr_matrix(
            (self.data, self.indices, self.indptr), shape=M.shape)
        self._compiled: tuple[np.ndarray, ...] | None = None

    def arrays(self, K: Any) -> tuple[np.ndarray, ...]:
        """``(indptr, indices, data)`` in the form the compiled kernels ``K`` take (cached views)."""
        if self._compiled is None:
            self._compiled = K.csr_arrays(self.indptr, self.indices, self.data)
        return self._compiled

    def addmul(self, x: np.ndarray, y: np.ndarray) -> None:
        """``y += M @ x`` for C-contiguous ``x (n_col, ...)`` and ``y (n_row, ...)`` of the same trailing size."""
        B = y.size // self.n_row if self.n_row else 0
        if B == 0:
            return
        if self.matrix is not None:  # fallback for scipy builds without the kernels
            y.reshape(self.n_row, B)[...] += self.matrix @ x.reshape(self.n_col, B)
        elif B == 1:
            self.kernels[0](self.n_row, self.n_col, self.indptr, self.indices, self.data, x.reshape(-1), y.reshape(-1))
        else:
            self.kernels[1](self.n_row, self.n_col, B, self.indptr, self.indices, self.data, x.reshape(-1),
                        y.reshape(-1))

    def addmul_T(self, x: np.ndarray, y: np.ndarray) -> None:
        """``y += M^T @ x`` for C-contiguous ``x (n_row, ...)`` and ``y (n_col, ...)``."""
        B = y.size // self.n_col if self.n_col else 0
        if B == 0:
            return
        if self.matrix is not None:
            y.reshape(self.n_col, B)[...] += self.matrix.T @ x.reshape(self.n_row, B)
        elif B == 1:
            self.kernels[2](self.n_col, self.n_row, self.indptr, self.indices, self.data, x.reshape(-1), y.reshape(-1))
        else:
            self.kernels[3](self.n_col, self.n_row, B, self.indptr, self.indices, self.data, x.reshape(-1),
                        y.reshape(-1))


class _Ops:
    """The discounted transition operator of one MDP in one dtype (cached on the MDP).

    ``backup`` is ``r + gamma P v`` (backward sweeps), ``push`` is ``gamma P^T x``
    (forward flows); the discount is folded into the stored matrix.
    """

    def __init__(self, mdp: TabularMDP, dtype: np.dtype) -> None:
        self.mdp, self.dtype = mdp, dtype
        self.S, self.A, self.gamma = mdp.n_states, mdp.n_actions, mdp.discount
        self._P: _CSR | None = None

    @property
    def P(self) -> _CSR:
        if self._P is None:
            self._P = _CSR(_am(self.mdp), self.gamma, self.dtype)
        return self._P

    def backup(self, r: np.ndarray, v_next: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out = r + gamma P v_next``: ``out (A, S, B)`` contiguous, ``v_next (S, B)`` contiguous."""
        np.copyto(out, r)
        self.P.addmul(v_next, out)
        return out

    def push(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out = gamma sum_{s,a} x[a, s] P(. | s, a)``: ``x (A, S, B)`` contiguous -> ``out (S, B)``."""
        out.fill(0)
        self.P.addmul_T(x, out)
        return out


def _ops(mdp: TabularMDP, dtype: np.dtype = _F64) -> _Ops:
    key = ("ops", dtype.str)
    if key not in mdp._cache:
        mdp._cache[key] = _Ops(mdp, dtype)
    return mdp._cache[key]


def _batch_last(mdp: TabularMDP, reward: Any, dtype: np.dtype = _F64) -> tuple[np.ndarray, bool]:
    """Reward as internal ``(A, S, B)`` (a fresh contiguous array) plus whether the input had a batch axis."""
    r = state_action_reward(reward, mdp.n_states, mdp.n_actions)
    if r.ndim == 2:
        return np.array(r.T[:, :, None], dtype=dtype, order="C"), False
    if r.ndim == 3:
        return np.array(np.transpose(r, (2, 1, 0)), dtype=dtype, order="C"), True
    raise MDPValidationError(f"reward must have shape (S,), (S, A) or (B, S, A): got {r.shape}")


def _as_float(x: Any, dtype: np.dtype) -> np.ndarray:
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=dtype)


def _policy_batch_last(mdp: TabularMDP, policy: Any, dtype: np.dtype = _F64) -> tuple[np.ndarray, bool]:
    """Policy probabilities ``(B, [H,] S, A)`` -> internal ``([H,] A, S, B)`` (contiguous).

    A policy returned by this module is a view of an internal array, so this costs no copy.
    """
    p = _as_float(policy, dtype)
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


# ------------------------------------------------------- one Bellman step
def _soft_step(q: np.ndarray, v: np.ndarray, pi: np.ndarray, m: np.ndarray, log_policy: bool = False) -> None:
    """Soft values ``v (S, B)`` and policy ``pi (A, S, B)`` from ``q (A, S, B)``, in preallocated arrays.

    Max-shifted log-sum-exp computed once for both; ``m (2, S, B)`` is scratch.
    With ``log_policy`` ``q`` is overwritten by ``log pi = (q - max) - log sum exp(q - max)``.
    """
    mx, w = m[0], m[1]
    np.maximum.reduce(q, axis=0, out=mx)
    if log_policy:
        np.subtract(q, mx, out=q)
        np.exp(q, out=pi)
    else:
        np.subtract(q, mx, out=pi)
        np.exp(pi, out=pi)
    np.add.reduce(pi, axis=0, out=v)
    np.reciprocal(v, out=w)  # one division per state, then a product (faster than dividing A*S*B entries)
    np.multiply(pi, w, out=pi)
    np.log(v, out=v)
    if log_policy:
        np.subtract(q, v, out=q)
    v += mx


def _hard_step(q: np.ndarray, v: np.ndarray, pi: np.ndarray, m: np.ndarray) -> None:
    """Hard values (max) and the even split over maximising actions (ties to a relative ``_TIE``)."""
    tie = _TIE[q.dtype]
    w = m[0]
    np.maximum.reduce(q, axis=0, out=v)
    np.abs(v, out=w)
    w *= tie
    w += tie
    np.subtract(v, w, out=w)
    np.greater_equal(q, w, out=pi)
    np.add.reduce(pi, axis=0, out=w)
    np.reciprocal(w, out=w)
    np.multiply(pi, w, out=pi)


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
