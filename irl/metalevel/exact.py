"""Exact meta-level solvers of Mouselab trees: layered backward induction (symmetric trees), brute force (tiny ones).

* :class:`SymmetricTreeSolver`: trees whose root has ``B`` identical branches,
  each a chain of single nodes ending in ``K`` exchangeable leaves (branching
  ``(B, 1, ..., 1, K)``, e.g. the 13-node ``(3, 1, 2)`` tree). The value of a
  belief depends only on the *multiset* of branch states; for the 312 tree that
  is 225 branch states and 1,923,825 multisets (instead of ``5^12 = 244``
  million belief states), solved one layer (number of revealed nodes) at a
  time, every layer one vectorised numpy pass.
* :class:`BruteForceSolver`: memoised recursion over full belief states, for
  tiny trees and tests.

References:
    Callaway, Lieder, Das, Gul, Krueger & Griffiths (2018), "A resource-rational
    analysis of human planning", CogSci. Hay, Russell, Tolpin & Shimony (2012),
    "Selecting computations: Theory and applications", UAI.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from irl.metalevel.mdp import STOP, _TIE, MetaLevelError, MetaSolver

if TYPE_CHECKING:
    from irl.metalevel.mouselab import MetaLevelMDP

__all__ = ["SymmetricTreeSolver", "BruteForceSolver"]


class _Layer:
    __slots__ = ("lo", "hi", "nlo", "nhi", "groups")

    def __init__(self, lo: int, hi: int, nlo: int, nhi: int) -> None:
        self.lo, self.hi, self.nlo, self.nhi = lo, hi, nlo, nhi
        self.groups: list[tuple[int, np.ndarray, np.ndarray]] = []  # (click type, local rows, next-layer succ)


_SHARED: "OrderedDict[tuple, SymmetricTreeSolver]" = OrderedDict()


def _shared_symmetric(meta: MetaLevelMDP) -> "SymmetricTreeSolver":
    """One exact solver per tree (its tables take ~100 MB), shared by every environment built on that tree."""
    key = (meta.tree.signature(),)
    if key not in _SHARED:
        _SHARED[key] = SymmetricTreeSolver(meta)
        while len(_SHARED) > 2:
            _SHARED.popitem(last=False)
    return _SHARED[key]


class SymmetricTreeSolver(MetaSolver):
    """Exact meta-level values for ``(B, 1, ..., 1, K)`` trees by a vectorised backward induction.

    A *branch state* records the chain nodes' revealed values (or hidden) and,
    for the ``K`` exchangeable leaves, how many are hidden and the largest
    revealed value (enough because the terminal action takes the best leaf and
    leaf utilities are ``>= 0``). A belief's value depends only on the multiset
    of its ``B`` branch states; multisets are numbered by the combinatorial
    number system and grouped into layers by the number of revealed nodes, so
    every click leads from one layer to the next and each layer is one
    vectorised pass (gathers of the next layer's values).

    ``solve(phi)`` returns the optimal value ``V`` of every multiset and the
    statistics of the optimal continuation, ``(N, D, T_1..T_H)`` (expected
    clicks, expected summed click depth, expected depth-k value of the chosen
    path), so that ``V = -c N - d D + w . T``. The last two solutions are cached.

    Args:
        meta: the meta-level problem (its tree must be of the form above).
        max_states: refuse trees with more multisets than this.

    Raises:
        MetaLevelError: a tree of another shape, or too many states.

    Example:
        >>> import irl
        >>> env = irl.envs.make("mouselab-312")
        >>> s = env.meta.solver("exact")
        >>> v = s.value(env.meta.initial_beliefs(1), env.meta.params(cost=1.0))
        >>> round(float(v[0]), 2)   # expected score of the optimal planner (click fee 1)
        39.97
    """

    exact = True

    def __init__(self, meta: MetaLevelMDP, *, max_states: int = 30_000_000) -> None:
        super().__init__(meta)
        form = meta.tree.symmetric_form()
        if form is None:
            raise MetaLevelError(f"the exact solver needs a tree of branching (B, 1, ..., 1, K): got "
                                 f"{meta.tree.branching}; use solver='myopic' (any tree) or 'brute-force' (tiny)")
        self.B, self.L, self.K = form
        t = meta.tree
        self.H = t.height
        if self.L + 1 != self.H:
            raise MetaLevelError(f"internal: chain of {self.L} levels does not match height {self.H}")
        self.max_states = int(max_states)
        self._branch_tables()
        nb = self.NB
        self.n_states = _n_multisets(nb, self.B)
        if self.n_states > self.max_states:
            raise MetaLevelError(f"the exact solver would need {self.n_states:,} belief classes (> max_states = "
                                 f"{self.max_states:,}); use solver='myopic'")
        self._built = False
        self._term_key: tuple | None = None
        self._term: tuple[np.ndarray, np.ndarray] | None = None
        self._cache: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._succ_cache: OrderedDict[bytes, tuple] = OrderedDict()
        self.build_seconds = float("nan")
        self.last_solve_seconds = float("nan")

    # --------------------------------------------------------- branch states
    def _branch_tables(self) -> None:
        t, L, K = self.meta.tree, self.L, self.K
        vals, probs = t.values, t.probs
        m = [v.size for v in vals]
        mL = m[L]
        chain = list(itertools.product(*[range(mk + 1) for mk in m[:L]])) if L else [()]
        chain_index = {c: i for i, c in enumerate(chain)}
        leaf_states = [(K, 0)] + [(u, j) for u in range(K) for j in range(1, mL + 1)]
        leaf_index = {s: i for i, s in enumerate(leaf_states)}
        nL, nC = len(leaf_states), len(chain)
        NB = nC * nL
        M = max(m)
        T = L + 1  # click types: chain levels 0..L-1, then "a hidden leaf"
        rev = np.zeros(NB, np.int64)
        valid = np.zeros((NB, T), bool)
        nxt = np.zeros((NB, T, M), np.int64)
        craw = np.zeros((NB, max(L, 1)))
        lraw = np.zeros(NB)
        mu = t.depth_mean
        for ci, cs in enumerate(chain):
            for li, (u, j) in enumerate(leaf_states):
                b = ci * nL + li
                rev[b] = sum(1 for x in cs if x) + (K - u)
                for k in range(L):
                    craw[b, k] = vals[k][cs[k] - 1] if cs[k] else mu[k + 1]
                    if cs[k] == 0:
                        valid[b, k] = True
                        for o in range(M):
                            c2 = list(cs)
                            c2[k] = min(o, m[k] - 1) + 1
                            nxt[b, k, o] = chain_index[tuple(c2)] * nL + li
                best = vals[L][j - 1] if j else -np.inf
                if u > 0:
                    best = max(best, mu[L + 1])
                lraw[b] = best
                if u > 0:
                    valid[b, L] = True
                    for o in range(M):
                        j2 = max(j, min(o, mL - 1) + 1)
                        nxt[b, L, o] = ci * nL + leaf_index[(u - 1, j2)]
        self.NB, self.nL, self.M = NB, nL, M
        self.rev, self.valid, self.nxt, self.craw, self.lraw = rev, valid, nxt, craw[:, :L], lraw
        p = np.zeros((T, M))
        for k in range(T):
            p[k, :m[k]] = probs[k]
        self.type_probs = p
        self.type_depth = np.arange(1, T + 1, dtype=np.float64)
        self.m = m
        # branches of the tree: chain nodes and leaves of branch j, in tree order
        roots = list(t.children[0])
        self.branch_chain = np.zeros((self.B, L), np.int64)
        self.branch_leaves = np.zeros((self.B, K), np.int64)
        node_branch = np.full(t.n_nodes, -1, np.int64)
        node_type = np.full(t.n_nodes, -1, np.int64)
        for j, r in enumerate(roots):
            k, level = r, 0
            while level < L:
                self.branch_chain[j, level] = k
                node_branch[k], node_type[k] = j, level
                k = t.children[k][0]
                level += 1
            leaves = [k] if L == 0 else list(t.children[self.branch_chain[j, L - 1]])
            self.branch_leaves[j] = leaves
            node_branch[leaves], node_type[leaves] = j, L
        self.node_branch, self.node_type = node_branch, node_type

    # --------------------------------------------------------- global tables
    def build(self) -> "SymmetricTreeSolver":
        """Precompute the layers (once; a few seconds and ~100 MB for the 312 tree)."""
        if self._built:
            return self
        t0 = time.perf_counter()
        B, NB = self.B, self.NB
        flat = np.fromiter(itertools.chain.from_iterable(itertools.combinations_with_replacement(range(NB), B)),
                           dtype=np.int32, count=self.n_states * B)
        S = flat.reshape(-1, B)
        idx = _multiset_index(S)
        R = self.rev[S].sum(axis=1)
        order = np.lexsort((idx, -R))  # layer-major: most revealed first
        S = S[order]
        R = R[order]
        newid = np.empty(self.n_states, np.int64)
        newid[idx[order]] = np.arange(self.n_states)
        self.S, self.newid = np.ascontiguousarray(S), newid
        Rmax = int(R.max())
        bounds = {}
        for r in range(Rmax, -1, -1):
            w = np.searchsorted(-R, [-r, -r + 1])  # R is non-increasing
            if w[1] > w[0]:
                bounds[r] = (int(w[0]), int(w[1]))
        self.layers: list[_Layer] = []
        for r in sorted(bounds, reverse=True):
            lo, hi = bounds[r]
            nlo, nhi = bounds.get(r + 1, (hi, hi))
            layer = _Layer(lo, hi, nlo, nhi)
            ss = S[lo:hi]
            for i in range(B):
                dup = (ss[:, i] == ss[:, i - 1]) if i > 0 else np.zeros(hi - lo, bool)
                for typ in range(self.L + 1):
                    sel = np.flatnonzero(self.valid[ss[:, i], typ] & ~dup)
                    if sel.size == 0:
                        continue
                    sub = ss[sel]
                    succ = np.empty((sel.size, self.M), np.intp)  # intp: numpy gathers without converting
                    for o in range(self.M):
                        s2 = sub.copy()
                        s2[:, i] = self.nxt[sub[:, i], typ, o]
                        s2.sort(axis=1)
                        succ[:, o] = newid[_multiset_index(s2)] - nlo
                    layer.groups.append((typ, sel.astype(np.intp), succ))
            self.layers.append(layer)
        self._built = True
        self.build_seconds = time.perf_counter() - t0
        return self

    @property
    def table_megabytes(self) -> float:
        """Memory held by the precomputed tables."""
        if not self._built:
            return 0.0
        n = self.S.nbytes + self.newid.nbytes
        n += sum(g[1].nbytes + g[2].nbytes for layer in self.layers for g in layer.groups)
        return n / 1e6

    def _terminal(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Value and statistics of stopping in every class (fresh copies; the last one per ``w`` is cached)."""
        key = tuple(w.tolist())
        if self._term_key != key or self._term is None:
            L = self.L
            e = self.craw @ w[:L] + w[L] * self.lraw  # branch expected values (NB,)
            ev = e[self.S]  # (N, B)
            slot = ev.argmax(axis=1)
            rows = np.arange(self.n_states)
            V = ev[rows, slot]
            del ev
            bb = self.S[rows, slot]
            stats = np.zeros((self.n_states, 2 + self.H))
            stats[:, 2:2 + L] = self.craw[bb]
            stats[:, 2 + L] = self.lraw[bb]
            self._term_key, self._term = key, (V, stats)
        V, stats = self._term
        return V.copy(), stats.copy()

    def solve(self, phi: Any) -> tuple[np.ndarray, np.ndarray]:
        """Optimal values ``(N,)`` and continuation statistics ``(N, 2 + H)`` of every belief class.

        Rows follow the solver's internal (layer-major) numbering; use
        :meth:`value` / :meth:`q_planes` to read them at beliefs.

        Raises:
            MetaLevelError: a negative leaf utility (when ``K > 1``).
        """
        phi = self._phi(phi)
        key = tuple(phi.tolist())
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        self.build()
        t0 = time.perf_counter()
        c, d, w = phi[0], phi[1], phi[2:]
        L = self.L
        if self.K > 1 and w[L] < 0:
            raise MetaLevelError(f"the exact solver needs a leaf utility >= 0 (the terminal action takes the best "
                                 f"leaf): got w_{L + 1} = {w[L]}")
        V, stats = self._terminal(w)
        kappa = c + d * self.type_depth
        for layer in self.layers:
            groups = layer.groups
            if not groups:
                continue
            best = V[layer.lo:layer.hi]  # a view: updated in place
            Vn = V[layer.nlo:layer.nhi]
            arg = np.full(layer.hi - layer.lo, -1, np.int16)
            for gi, (typ, loc, succ) in enumerate(groups):
                q = Vn[succ] @ self.type_probs[typ]
                q -= kappa[typ]
                up = q > best[loc] + _TIE
                if up.any():
                    where = loc[up]
                    best[where] = q[up]
                    arg[where] = gi
            Sn = stats[layer.nlo:layer.nhi]
            for gi, (typ, loc, succ) in enumerate(groups):
                pick = np.flatnonzero(arg[loc] == gi)
                if pick.size == 0:
                    continue
                st = self.type_probs[typ] @ Sn[succ[pick]]
                st[:, 0] += 1.0
                st[:, 1] += self.type_depth[typ]
                stats[layer.lo + loc[pick]] = st
        self.last_solve_seconds = time.perf_counter() - t0
        self._cache[key] = (V, stats)
        while len(self._cache) > 2:
            self._cache.popitem(last=False)
        return V, stats

    # --------------------------------------------------------- beliefs -> classes
    def branch_states(self, beliefs: Any) -> np.ndarray:
        """``(D, B)`` branch-state ids of beliefs (in tree branch order).

        Raises:
            MetaLevelError: a revealed value outside its depth's support.
        """
        b = self.meta.check_beliefs(beliefs)
        t = self.meta.tree
        D = b.shape[0]
        out = np.zeros((D, self.B), np.int64)
        code = np.zeros((D, self.B), np.int64)
        for level in range(self.L):  # the chain index is big-endian: level 0 is the most significant digit
            nodes = self.branch_chain[:, level]
            x = b[:, nodes]
            dig = self._value_index(x, level, nodes) + 1
            dig[np.isnan(x)] = 0
            code = code * (self.m[level] + 1) + dig
        x = b[:, self.branch_leaves.ravel()].reshape(D, self.B, self.K)
        idx = self._value_index(x, self.L, self.branch_leaves)
        hidden = np.isnan(x)
        u = hidden.sum(axis=2)
        jmax = np.where(hidden, -1, idx).max(axis=2) + 1  # 1..m, or 0 when none revealed
        leaf_id = np.where(u == self.K, 0, 1 + u * self.m[self.L] + (jmax - 1))
        out[:] = code * self.nL + leaf_id
        return out

    def _value_index(self, x: np.ndarray, level: int, nodes: np.ndarray) -> np.ndarray:
        v = self.meta.tree.values[level]
        i = np.clip(np.searchsorted(v, np.nan_to_num(x, nan=v[0])), 0, v.size - 1)
        bad = ~np.isnan(x) & (np.abs(v[i] - np.nan_to_num(x)) > 1e-9 * (1 + np.abs(v).max()))
        if bad.any():
            pos = np.argwhere(bad)[0]
            node = int(np.asarray(nodes)[tuple(pos[1:])]) if np.ndim(nodes) else int(nodes)
            raise MetaLevelError(f"belief {pos[0]}: node {node} was revealed as {x[tuple(pos)]}, which is not in "
                                 f"the depth-{level + 1} support {v.tolist()} (the exact solver needs values from the "
                                 f"support; use solver='myopic' otherwise)")
        return i

    def state_ids(self, beliefs: Any) -> np.ndarray:
        """``(D,)`` internal ids of the beliefs' classes (rows of :meth:`solve`'s arrays)."""
        self.build()
        a = np.sort(self.branch_states(beliefs), axis=1)
        return self.newid[_multiset_index(a)]

    def successors(self, beliefs: Any) -> tuple[np.ndarray, np.ndarray]:
        """Classes after each click: ``succ (D, n_actions, M)`` internal ids (``-1`` for impossible clicks), and
        ``probs (n_actions, M)`` of the outcomes. Cached for the last few belief arrays."""
        b = self.meta.check_beliefs(beliefs)
        key = hashlib.sha1(np.ascontiguousarray(b).tobytes()).digest() + str(b.shape).encode()
        hit = self._succ_cache.get(key)
        if hit is not None:
            self._succ_cache.move_to_end(key)
            return hit
        self.build()
        a = self.branch_states(b)
        D, A = b.shape[0], self.meta.n_actions
        succ = np.full((D, A, self.M), -1, np.int64)
        probs = np.zeros((A, self.M))
        for n in range(1, A):
            j, typ = int(self.node_branch[n]), int(self.node_type[n])
            probs[n] = self.type_probs[typ]
            rows = np.flatnonzero(np.isnan(b[:, n]))
            if rows.size == 0:
                continue
            for o in range(self.M):
                s2 = a[rows].copy()
                s2[:, j] = self.nxt[a[rows, j], typ, o]
                s2.sort(axis=1)
                succ[rows, n, o] = self.newid[_multiset_index(s2)]
        out = (succ, probs)
        self._succ_cache[key] = out
        while len(self._succ_cache) > 8:
            self._succ_cache.popitem(last=False)
        return out

    def value(self, beliefs: Any, phi: Any) -> np.ndarray:
        """``(D,)`` optimal meta-level value of beliefs."""
        V, _ = self.solve(phi)
        return V[self.state_ids(beliefs)]

    def statistics(self, beliefs: Any, phi: Any) -> np.ndarray:
        """``(D, 2 + H)`` statistics ``(N, D, T_1..T_H)`` of the optimal continuation from beliefs."""
        _, st = self.solve(phi)
        return st[self.state_ids(beliefs)]

    def q_planes(self, beliefs: Any, phi: Any) -> np.ndarray:
        b = self.meta.check_beliefs(beliefs)
        phi = self._phi(phi)
        _, stats = self.solve(phi)
        succ, probs = self.successors(b)
        return _planes_from_successors(self, b, phi, succ, probs,
                                       lambda ids: _plane_of_stats(stats[ids]))


def _plane_of_stats(st: np.ndarray) -> np.ndarray:
    out = st.copy()
    out[..., :2] *= -1.0
    return out


def _planes_from_successors(solver: MetaSolver, b: np.ndarray, phi: np.ndarray, succ: np.ndarray,
                            probs: np.ndarray, state_planes: Any) -> np.ndarray:
    """Planes of all actions from the planes of the successor classes."""
    meta = solver.meta
    D, A, M = succ.shape
    out = np.zeros((D, A, meta.n_params))
    out[:, STOP] = meta.stop_planes(b, phi[2:])
    ok = succ[..., 0] >= 0
    rows, acts = np.nonzero(ok)
    if rows.size:
        sp_ = state_planes(succ[rows, acts])  # (r, M, P)
        pl = np.einsum("rmp,rm->rp", sp_, probs[acts])
        pl[:, 0] -= 1.0
        pl[:, 1] -= meta.tree.depth[acts]
        out[rows, acts] = pl
    return out


def _n_multisets(n: int, k: int) -> int:
    from math import comb

    return comb(n + k - 1, k)


def _multiset_index(s: np.ndarray) -> np.ndarray:
    """Combinatorial-number-system index of sorted rows ``a_0 <= ... <= a_{B-1}``: ``sum_i C(a_i + i, i + 1)``."""
    s = np.asarray(s, dtype=np.int64)
    out = np.zeros(s.shape[0], np.int64)
    for i in range(s.shape[1]):
        x = s[:, i] + i
        c = np.ones_like(x)
        for j in range(i + 1):
            c = c * (x - j) // (j + 1)
        out += c
    return out


class BruteForceSolver(MetaSolver):
    """Exact meta-level values of any (tiny) tree by memoised recursion over full belief states.

    Independent of the structure the symmetric solver exploits; used to check it.

    Args:
        meta: the meta-level problem.
        max_states: refuse trees with more belief states than this.

    Example:
        >>> import irl
        >>> from irl.metalevel.mouselab import mouselab
        >>> env = mouselab(branching=(2, 2), values=[(-1.0, 1.0), (-5.0, 5.0)])
        >>> s = env.meta.solver("brute-force")
        >>> round(float(s.value(env.meta.initial_beliefs(1), env.meta.params(cost=1.0))[0]), 4)
        2.625
    """

    exact = True

    def __init__(self, meta: MetaLevelMDP, *, max_states: int = 2_000_000) -> None:
        super().__init__(meta)
        t = meta.tree
        n = 1
        for k in t.depth[1:]:
            n *= t.values[k - 1].size + 1
        if n > max_states:
            raise MetaLevelError(f"brute force would visit up to {n:,} belief states (> {max_states:,}); use the "
                                 f"exact symmetric solver or solver='myopic'")
        self._memo: dict[tuple, dict] = {}

    def _key(self, phi: np.ndarray) -> tuple:
        return tuple(phi.tolist())

    def _solve_belief(self, belief: tuple, phi: np.ndarray, memo: dict) -> tuple[float, np.ndarray]:
        hit = memo.get(belief)
        if hit is not None:
            return hit
        t, meta = self.meta.tree, self.meta
        b = np.array([np.nan if i < 0 else (0.0 if n == 0 else t.values[t.depth[n] - 1][i])
                      for n, i in enumerate(belief)])
        term = float(meta.terminal_value(b[None], phi[2:])[0])
        best_v, best_s = term, _stats_of_plane(meta.stop_planes(b[None], phi[2:])[0])
        cost = meta.click_cost(phi)
        for n in range(1, t.n_nodes):
            if belief[n] >= 0:
                continue
            k = t.depth[n] - 1
            v, st = -cost[n], np.zeros(2 + t.height)
            st[0], st[1] = 1.0, t.depth[n]
            for o, p in enumerate(t.probs[k]):
                if p == 0:
                    continue
                nb = list(belief)
                nb[n] = o
                vo, so = self._solve_belief(tuple(nb), phi, memo)
                v += p * vo
                st += p * so
            if v > best_v + _TIE:
                best_v, best_s = v, st
        memo[belief] = (best_v, best_s)
        return best_v, best_s

    def _tuple(self, b: np.ndarray) -> tuple:
        t = self.meta.tree
        out = [0]
        for n in range(1, t.n_nodes):
            if np.isnan(b[n]):
                out.append(-1)
                continue
            v = t.values[t.depth[n] - 1]
            i = int(np.argmin(np.abs(v - b[n])))
            if abs(v[i] - b[n]) > 1e-9 * (1 + np.abs(v).max()):
                raise MetaLevelError(f"node {n} was revealed as {b[n]}, not in its support {v.tolist()}")
            out.append(i)
        return tuple(out)

    def value(self, beliefs: Any, phi: Any) -> np.ndarray:
        """``(D,)`` optimal values."""
        b = self.meta.check_beliefs(beliefs)
        phi = self._phi(phi)
        memo = self._memo.setdefault(self._key(phi), {})
        return np.array([self._solve_belief(self._tuple(x), phi, memo)[0] for x in b])

    def q_planes(self, beliefs: Any, phi: Any) -> np.ndarray:
        b = self.meta.check_beliefs(beliefs)
        phi = self._phi(phi)
        memo = self._memo.setdefault(self._key(phi), {})
        t = self.meta.tree
        out = np.zeros((b.shape[0], self.meta.n_actions, self.meta.n_params))
        out[:, STOP] = self.meta.stop_planes(b, phi[2:])
        for i, x in enumerate(b):
            base = list(self._tuple(x))
            for n in range(1, t.n_nodes):
                if base[n] >= 0:
                    continue
                st = np.zeros(2 + t.height)
                for o, p in enumerate(t.probs[t.depth[n] - 1]):
                    nb = list(base)
                    nb[n] = o
                    st += p * self._solve_belief(tuple(nb), phi, memo)[1]
                st[0] += 1.0
                st[1] += t.depth[n]
                out[i, n] = _plane_of_stats(st)
        return out


def _stats_of_plane(plane: np.ndarray) -> np.ndarray:
    return _plane_of_stats(plane)  # the sign flip is its own inverse

