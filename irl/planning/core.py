"""The planner's machinery: backends (numba kernels or numpy), dtypes, reusable result buffers, the
action-major sparse layout and one Bellman step.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from irl.mdp import MDPValidationError, TabularMDP, state_action_reward


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
