"""Compiled planner kernels (numba): one call per pass, the whole time loop inside.

Private to :mod:`irl.planning`, which imports this module only when the
``numba`` backend is selected (``pip install 'pluggable-irl[fast]'``); the numpy
path in :mod:`irl.planning` is the reference these kernels are tested against.

Layout and arithmetic follow the numpy path exactly: the internal action-major
``(A, S, B)`` blocks (``(H, A, S, B)`` over time) with the batch of reward
hypotheses last; the action-major CSR matrix ``(A*S, S)`` with the discount
folded in; the sparse products accumulate in the same order as scipy's CSR/CSC
kernels; sums over actions run in action order; the soft step is the same
max-shifted log-sum-exp with one reciprocal per state. In float64 the results
therefore agree with the numpy path to rounding (the only difference is the
last bit of ``exp``/``log``).

``exp`` and ``log`` are written out here (range reduction and a polynomial,
about one unit in the last place) instead of calling ``math.exp``: numba calls
the C library's scalar ``exp`` once per element (12 ns each on the benchmark
machine, against 0.9 ns for numpy's vectorised one, which is what made a first
numba planner slower than numpy), while these plain-arithmetic loops are
vectorised by LLVM. Their domains are what the planner needs: ``exp`` of
``x <= 0`` (``Q - max Q``) and ``log`` of ``x >= 1`` (a sum of such
exponentials that contains ``exp(0) = 1``).

Every function works in place on preallocated arrays (no allocation per step)
and releases the GIL.

References:
    Cody & Waite (1980), "Software Manual for the Elementary Functions" (the
    argument reduction used by :func:`_exp_nonpos` and :func:`_log_ge1`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k * _LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_EXP_MIN = -708.0  # exp(x) < 3.3e-308 below: returned as 0 (numpy returns a subnormal)
_SQRT2 = 1.4142135623730951
_MANT = (1 << 52) - 1
_ONE_BITS = 1023 << 52

_JIT = dict(cache=True, fastmath=False, nogil=True, error_model="numpy")  # numpy: no zero-division checks, which block vectorisation

# soft step modes
SOFT, SOFT_LOG, HARD = 0, 1, 2


@njit(**_JIT)
def _exp_nonpos(x, out, kbits, fbits, n):
    """``out[:n] = exp(x[:n])`` for ``x <= 0`` (``x`` and ``out`` may be the same array); NaN stays NaN.

    ``kbits`` (int64) and ``fbits`` (its float64 view) are scratch of length ``n``.
    ``exp(x) = 2^k exp(r)``, ``r = x - k ln 2`` in ``[-ln2/2, ln2/2]``, ``exp(r)``
    by its Taylor polynomial of degree 13 (truncation < 1e-17), ``2^k`` built from
    its bits.
    """
    for j in range(n):
        xj = x[j]
        xc = xj if xj > _EXP_MIN else _EXP_MIN
        k = np.floor(xc * _LOG2E + 0.5)
        r = (xc - k * _LN2_HI) - k * _LN2_LO
        p = 1.6059043836821613e-10
        p = p * r + 2.08767569878681e-09
        p = p * r + 2.505210838544172e-08
        p = p * r + 2.7557319223985894e-07
        p = p * r + 2.7557319223985893e-06
        p = p * r + 2.48015873015873e-05
        p = p * r + 0.0001984126984126984
        p = p * r + 0.001388888888888889
        p = p * r + 0.008333333333333333
        p = p * r + 0.041666666666666664
        p = p * r + 0.16666666666666666
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        kbits[j] = (np.int64(k) + 1023) << 52
        out[j] = p if xj >= _EXP_MIN else (0.0 if xj < _EXP_MIN else xj)
    for j in range(n):
        out[j] = out[j] * fbits[j]


@njit(**_JIT)
def _log_ge1(x, out, kbits, fbits, n):
    """``out[:n] = log(x[:n])`` for ``x >= 1`` (finite); NaN stays NaN.

    ``x = 2^e m`` with ``m`` in ``[sqrt(1/2), sqrt(2))``; ``log m = 2 atanh(s)``,
    ``s = (m - 1) / (m + 1)``, ``|s| <= 0.172``, by its series to ``s^21``.
    ``kbits``/``fbits`` are scratch (an int64 array and its float64 view).
    """
    for j in range(n):
        fbits[j] = x[j]
    for j in range(n):
        b = kbits[j]
        e = (b >> 52) - 1023
        kbits[j] = (b & _MANT) | _ONE_BITS
        out[j] = e
    for j in range(n):
        m = fbits[j]
        e = out[j]
        if m > _SQRT2:
            m = m * 0.5
            e = e + 1.0
        s = (m - 1.0) / (m + 1.0)
        z = s * s
        p = 1.0 / 21.0
        p = p * z + 1.0 / 19.0
        p = p * z + 1.0 / 17.0
        p = p * z + 1.0 / 15.0
        p = p * z + 1.0 / 13.0
        p = p * z + 1.0 / 11.0
        p = p * z + 1.0 / 9.0
        p = p * z + 1.0 / 7.0
        p = p * z + 1.0 / 5.0
        p = p * z + 1.0 / 3.0
        lm = 2.0 * s + 2.0 * s * (z * p)
        res = e * _LN2_HI + (e * _LN2_LO + lm)
        xj = x[j]
        out[j] = res if xj == xj else xj


@njit(**_JIT)
def _backup(indptr, indices, data, r, v_next, q):
    """``q = r + P v_next`` (``P`` carries the discount): ``q``, ``r`` ``(A*S, B)``, ``v_next`` ``(S, B)``.

    Row by row in scipy's order: ``q[i] = r[i]``, then ``q[i] += P[i, j] v[j]`` over the row.
    ``indptr``/``indices`` should be unsigned (:func:`csr_arrays`): numba checks a
    signed index for wrap-around on every access, which halves the speed of a
    gather and stops a loop's vectorisation (so every hot loop here indexes with
    its own counter, on slices).
    """
    n_rows, B = q.shape
    if B == 1:
        for i in range(n_rows):
            acc = r[i, 0]
            for k in range(indptr[i], indptr[i + 1]):
                acc += data[k] * v_next[indices[k], 0]
            q[i, 0] = acc
        return
    for i in range(n_rows):
        qi = q[i]
        ri = r[i]
        for b in range(B):
            qi[b] = ri[b]
        for k in range(indptr[i], indptr[i + 1]):
            d = data[k]
            vk = v_next[indices[k]]
            for b in range(B):
                qi[b] += d * vk[b]


@njit(**_JIT)
def _push(indptr, indices, data, x, out):
    """``out = P^T x``: ``x`` ``(A*S, B)``, ``out`` ``(S, B)`` (scipy's CSC scatter, same order)."""
    n_rows, B = x.shape
    out[:] = 0.0
    if B == 1:
        for i in range(n_rows):
            xi = x[i, 0]
            for k in range(indptr[i], indptr[i + 1]):
                out[indices[k], 0] += data[k] * xi
        return
    for i in range(n_rows):
        xi = x[i]
        for k in range(indptr[i], indptr[i + 1]):
            d = data[k]
            ok = out[indices[k]]
            for b in range(B):
                ok[b] += d * xi[b]


@njit(**_JIT)
def _choice(q, v, pi, mode, tie, buf, kbits, fbits):
    """Values ``v (n,)`` and policy ``pi (A, n)`` from ``q (A, n)`` (``n = S*B``), as the numpy path.

    ``mode``: :data:`SOFT` (log-sum-exp), :data:`SOFT_LOG` (also ``q <- log pi``)
    or :data:`HARD` (even split over the maximisers within the relative ``tie``).
    ``buf`` (float64 ``(3, A*CHUNK)``), ``kbits`` (int64 ``(A*CHUNK,)``) and ``fbits``
    (its float64 view) are scratch from :func:`scratch`. The slabs are processed
    in blocks of ``CHUNK`` entries, so that the scratch stays in the L1 cache and
    ``q`` is read once, ``pi`` and ``v`` written once.
    """
    A, n = q.shape
    chunk = buf.shape[1] // max(A, 2)
    for j0 in range(0, n, chunk):
        _choice_block(q, v, pi, j0, min(j0 + chunk, n), mode, tie, buf, kbits, fbits)


@njit(**_JIT)
def _choice_block(q, v, pi, j0, j1, mode, tie, buf, kbits, fbits):
    """:func:`_choice` on the block ``q[:, j0:j1]``.

    Loops index contiguous 1-d slices (``q[a, j0:j1]``, typed C-contiguous by
    numba, unlike ``q[:, j0:j1][a]``) with their own counters only.
    """
    A = q.shape[0]
    m = j1 - j0
    v = v[j0:j1]
    mx, w, e = buf[0, :m], buf[1], buf[2]
    lse = buf[0, m:2 * m]
    q0 = q[0, j0:j1]
    for j in range(m):
        mx[j] = q0[j]
    for a in range(1, A):
        qa = q[a, j0:j1]
        for j in range(m):
            x = qa[j]
            y = mx[j]
            mx[j] = x if ((x > y) | (x != x)) else y  # NaN propagates, as np.maximum; no branch
    if mode == HARD:
        thr = w[:m]
        cnt = e[:m]
        for j in range(m):
            y = mx[j]
            v[j] = y
            thr[j] = y - (abs(y) * tie + tie)  # the threshold of the maximisers
            cnt[j] = 0.0
        for a in range(A):
            qa = q[a, j0:j1]
            pa = pi[a, j0:j1]
            for j in range(m):
                hit = 1.0 if qa[j] >= thr[j] else 0.0
                pa[j] = hit
                cnt[j] += hit
        for j in range(m):
            thr[j] = 1.0 / cnt[j]
        for a in range(A):
            pa = pi[a, j0:j1]
            for j in range(m):
                pa[j] = pa[j] * thr[j]
        return
    # soft: the exponentials are taken in float64 scratch, so pi may be float32
    for a in range(A):
        qa = q[a, j0:j1]
        wa = w[a * m:(a + 1) * m]
        for j in range(m):
            wa[j] = qa[j] - mx[j]
        if mode == SOFT_LOG:
            for j in range(m):
                qa[j] = wa[j]
    _exp_nonpos(w, e, kbits, fbits, A * m)
    tot = w[:m]
    e0 = e[:m]
    for j in range(m):
        tot[j] = e0[j]
    for a in range(1, A):
        ea = e[a * m:(a + 1) * m]
        for j in range(m):
            tot[j] += ea[j]
    _log_ge1(tot, lse, kbits, fbits, m)
    for j in range(m):
        tot[j] = 1.0 / tot[j]
    for a in range(A):
        ea = e[a * m:(a + 1) * m]
        pa = pi[a, j0:j1]
        for j in range(m):
            pa[j] = ea[j] * tot[j]
    if mode == SOFT_LOG:
        for a in range(A):
            qa = q[a, j0:j1]
            for j in range(m):
                qa[j] = qa[j] - lse[j]
    for j in range(m):
        v[j] = lse[j] + mx[j]


#: entries of a slab per block of :func:`_choice` (scratch 3 * A * CHUNK float64: L1-sized for small A)
CHUNK = 256


def csr_arrays(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, ...]:
    """CSR arrays as the kernels want them: 32-bit indices viewed as unsigned (no copy), 64-bit ones as they are.

    numba checks every signed index for wrap-around; unsigned ones need no check.
    (Unsigned 64-bit would turn ``index * B`` into a float in numba's typing.)
    """
    if indptr.dtype == np.int32 and indices.dtype == np.int32:
        return indptr.view(np.uint32), indices.view(np.uint32), data
    return indptr, indices, data


def scratch(A: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scratch for :func:`_choice` on ``(A, n)`` slabs: ``buf`` float64 ``(3, A*c)``, ``kbits`` int64 ``(A*c,)``
    and its float64 view, ``c = min(n, CHUNK)``."""
    c = max(2, min(n, CHUNK))  # mx also holds log(sum): 2 * c <= A * c needs A >= 2, hence max(A, 2) below
    kbits = np.empty(max(A, 2) * c, np.int64)
    return np.empty((3, max(A, 2) * c)), kbits, kbits.view(np.float64)


@njit(**_JIT)
def backward(indptr, indices, data, r, q, v, pi, mode, tie, buf, kbits, fbits):
    """Finite-horizon backward induction, every step in this one call.

    Args (shapes in the internal layout): ``r (A, S, B)``; outputs ``q (H, A, S, B)``
    (``log pi`` with :data:`SOFT_LOG`), ``v (H + 1, S, B)`` with ``v[H]`` already
    set, ``pi (H, A, S, B)``; all C-contiguous. Scratch from :func:`scratch`.
    """
    H, A, S, B = q.shape
    r2 = r.reshape((A * S, B))
    for t in range(H - 1, -1, -1):
        _backup(indptr, indices, data, r2, v[t + 1], q[t].reshape((A * S, B)))
        _choice(q[t].reshape((A, S * B)), v[t].reshape(S * B), pi[t].reshape((A, S * B)), mode, tie, buf, kbits,
                fbits)


@njit(**_JIT)
def sweep(indptr, indices, data, r, v_in, q, v_out, pi, mode, tie, buf, kbits, fbits):
    """One value-iteration sweep ``v_out = T v_in`` (with ``q``, ``pi``); returns ``max |v_out - v_in|``.

    ``r``, ``q``, ``pi`` ``(A, S, B)``; ``v_in``, ``v_out`` ``(S, B)``. NaN if any difference is NaN.
    """
    A, S, B = q.shape
    _backup(indptr, indices, data, r.reshape((A * S, B)), v_in, q.reshape((A * S, B)))
    _choice(q.reshape((A, S * B)), v_out.reshape(S * B), pi.reshape((A, S * B)), mode, tie, buf, kbits, fbits)
    vo = v_out.reshape(S * B)
    vi = v_in.reshape(S * B)
    delta = 0.0
    for j in range(S * B):
        d = abs(vo[j] - vi[j])
        if (d > delta) | (d != d):
            delta = d
            if d != d:
                break
    return delta


@njit(**_JIT)
def forward(indptr, indices, data, pi, d, out):
    """Finite-horizon occupancy: ``out[t] = pi[t] * d_t``, ``d_{t+1} = P^T out[t]``, every step in this call.

    ``pi``, ``out`` ``(H, A, S, B)``; ``d (S, B)`` holds ``d_0`` and is overwritten.
    """
    H, A, S, B = pi.shape
    n = S * B
    df = d.reshape(n)
    for t in range(H):
        for a in range(A):
            pa = pi[t, a].reshape(n)
            oa = out[t, a].reshape(n)
            for j in range(n):
                oa[j] = pa[j] * df[j]
        if t + 1 < H:
            _push(indptr, indices, data, out[t].reshape((A * S, B)), d)
