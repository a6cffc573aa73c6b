"""Approximate and incremental meta-level solvers for Mouselab trees.

* :class:`MyopicSolver` (any tree): the myopic value of computation,
  ``Q(b, n) = E[terminal value after revealing n] - cost(n)`` (one-step
  look-ahead; Russell & Wefald 1991). Cheap for large trees.
* :class:`EnvelopeSolver` (exact at the points it has seen): the upper envelope
  of the planes the exact solver returned at earlier parameters. Optimal values
  are convex and piecewise linear in ``phi``, so every plane is a global lower
  bound and the envelope is exact wherever one of the seen policies is optimal.

References:
    Russell & Wefald (1991), "Do the right thing". Callaway et al. (2018),
    "A resource-rational analysis of human planning", CogSci.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np

from irl.metalevel.exact import SymmetricTreeSolver, _plane_of_stats
from irl.metalevel.mdp import STOP, MetaLevelError, MetaSolver

__all__ = ["MyopicSolver", "EnvelopeSolver"]


class MyopicSolver(MetaSolver):
    """Approximate Q-values of any tree: the myopic value of computation (one-step look-ahead).

    ``Q(b, n) = E_o[terminal value of b with node n = o] - c - d depth(n)`` and
    ``Q(b, stop)`` is the terminal value: every click is valued as if it were
    the last one. It under-values computations whose information only pays in
    combination with others, so it clicks less than the optimal policy.

    Example:
        >>> import irl
        >>> env = irl.envs.make("mouselab-312")
        >>> q = env.meta.q_values(env.meta.initial_beliefs(1), cost=1.0, solver="myopic")
        >>> round(float(q[0, 3]), 2)   # a leaf: E[max(0, leaf)] - 1
        17.0
    """

    def q_planes(self, beliefs: Any, phi: Any) -> np.ndarray:
        b = self.meta.check_beliefs(beliefs)
        phi = self._phi(phi)
        t, meta = self.meta.tree, self.meta
        D, A, P = b.shape[0], meta.n_actions, meta.n_params
        out = np.zeros((D, A, P))
        out[:, STOP] = meta.stop_planes(b, phi[2:])
        for n in range(1, A):
            rows = np.flatnonzero(np.isnan(b[:, n]))
            if rows.size == 0:
                continue
            k = t.depth[n] - 1
            acc = np.zeros((rows.size, P))
            for v, p in zip(t.values[k], t.probs[k]):
                if p == 0:
                    continue
                bb = b[rows].copy()
                bb[:, n] = v
                acc += p * meta.stop_planes(bb, phi[2:])
            acc[:, 0] -= 1.0
            acc[:, 1] -= t.depth[n]
            out[rows, n] = acc
        return out



class EnvelopeSolver(MetaSolver):
    """Exact-where-seen Q-values: the upper envelope of the exact solver's planes collected so far.

    The optimal value of every belief class is convex and piecewise linear in
    ``phi`` (a maximum over continuation policies of functions linear in
    ``phi``). Each exact solve at some ``phi_g`` yields, for every class, the plane
    of its optimal continuation, a global lower bound that is tight at ``phi_g``.
    This solver keeps those planes for the classes that follow the beliefs it
    was told about (:meth:`register`) and evaluates ``V(s) = max_g plane_g(s) .
    phi``: exact at every ``phi`` where some seen policy is optimal, a lower bound
    elsewhere. :meth:`add` runs an exact solve and keeps its planes;
    :meth:`gap` measures how far the envelope is from exact at a ``phi``.

    Fitting many people then costs a few hundred exact solves shared by all of
    them (a grid, plus one solve at each person's optimum to check and refine).

    Args:
        exact: the exact solver whose planes are collected.

    Example:
        >>> import irl
        >>> env = irl.envs.make("mouselab-312")
        >>> env_solver = irl.envs.mouselab.EnvelopeSolver(env.meta.solver("exact"))
        >>> b = env.meta.initial_beliefs(1)
        >>> env_solver.register(b)
        >>> n_new = env_solver.add(env.meta.params(cost=1.0))
        >>> float(env_solver.gap(b, env.meta.params(cost=1.0))) < 1e-9
        True
    """

    exact = False

    def __init__(self, exact: SymmetricTreeSolver) -> None:
        if not isinstance(exact, SymmetricTreeSolver):
            raise MetaLevelError(f"EnvelopeSolver wraps a SymmetricTreeSolver: got {type(exact).__name__}")
        super().__init__(exact.meta)
        self.exact_solver = exact
        self._ids = np.zeros(0, np.int64)  # registered internal class ids, sorted
        self._planes: list[np.ndarray] = []  # per registered class (aligned with _ids): (k, P) arrays
        self._pending: list[np.ndarray] = []
        self._version = 0
        self._rows_cache: OrderedDict[tuple, tuple] = OrderedDict()
        self._plan_cache: OrderedDict[tuple, tuple] = OrderedDict()
        self.n_solves = 0
        self.points: list[np.ndarray] = []

    @property
    def n_classes(self) -> int:
        """Number of registered belief classes."""
        self._flush()
        return int(self._ids.size)

    @property
    def n_planes(self) -> int:
        """Number of planes stored over all registered classes."""
        self._flush()
        return int(sum(p.shape[0] for p in self._planes))

    def register(self, beliefs: Any) -> None:
        """Track the classes that follow every click from these beliefs (call before :meth:`add`)."""
        succ, _ = self.exact_solver.successors(beliefs)
        ids = np.unique(succ[succ >= 0])
        if self.points:
            self._flush()
            if np.setdiff1d(ids, self._ids).size:
                raise MetaLevelError("register all beliefs before the first add(): classes registered later would "
                                     "lack the planes of earlier solves")
            return
        self._pending.append(ids)

    def _flush(self) -> None:
        if not self._pending:
            return
        new = np.setdiff1d(np.concatenate(self._pending), self._ids)
        self._pending = []
        if new.size == 0:
            return
        merged = np.concatenate([self._ids, new])
        order = np.argsort(merged, kind="stable")
        planes = self._planes + [np.zeros((0, self.meta.n_params)) for _ in range(new.size)]
        self._ids = merged[order]
        self._planes = [planes[i] for i in order]
        self._version += 1

    def registered_ids(self) -> np.ndarray:
        """The registered internal class ids (sorted)."""
        self._flush()
        return self._ids.copy()

    def add(self, phi: Any, stats: np.ndarray | None = None) -> int:
        """Solve exactly at ``phi`` (or take ``stats`` of the registered classes from elsewhere) and keep new planes.

        Args:
            phi: parameters.
            stats: ``(n_classes, 2 + H)`` statistics at the registered classes
                (e.g. computed in another process); ``None`` solves here.

        Returns:
            The number of planes added.
        """
        self._flush()
        phi = self._phi(phi)
        if stats is None:
            _, full = self.exact_solver.solve(phi)
            stats = full[self._ids]
        stats = np.asarray(stats, dtype=np.float64)
        if stats.shape != (self._ids.size, self.meta.n_params):
            raise MetaLevelError(f"stats must have shape ({self._ids.size}, {self.meta.n_params}): got {stats.shape}")
        planes = _plane_of_stats(stats)
        added = 0
        for i in range(self._ids.size):
            cur = self._planes[i]
            if cur.shape[0] and np.abs(cur - planes[i]).max(axis=1).min() <= 1e-9:
                continue
            self._planes[i] = np.vstack([cur, planes[i]])
            added += 1
        self.n_solves += 1
        self.points.append(phi.copy())
        if added:
            self._version += 1
        return added

    def _rows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stacked planes of the given classes, the segment starts, and each class's position in ``ids``."""
        pos = np.searchsorted(self._ids, ids)
        if np.any(pos >= self._ids.size) or np.any(self._ids[np.minimum(pos, self._ids.size - 1)] != ids):
            raise MetaLevelError("these beliefs were not registered with the EnvelopeSolver: call register(beliefs) "
                                 "before add()")
        counts = np.array([self._planes[p].shape[0] for p in pos])
        if np.any(counts == 0):
            raise MetaLevelError("the EnvelopeSolver has no planes yet: call add(phi) at least once")
        planes = np.vstack([self._planes[p] for p in pos])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return planes, starts, pos

    def state_planes(self, ids: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """Envelope planes ``(..., P)`` of internal class ids ``(...)`` at ``phi``."""
        self._flush()
        flat = np.asarray(ids).ravel()
        uniq, inv = np.unique(flat, return_inverse=True)
        key = (hashlib.sha1(uniq.tobytes()).digest(), self._version)
        hit = self._rows_cache.get(key)
        if hit is None:
            hit = self._rows(uniq)
            self._rows_cache[key] = hit
            while len(self._rows_cache) > 64:
                self._rows_cache.popitem(last=False)
        planes, starts, _ = hit
        vals = planes @ phi
        seg_max = np.maximum.reduceat(vals, starts)
        seg = np.repeat(np.arange(uniq.size), np.diff(np.append(starts, vals.size)))
        rows = np.where(vals >= seg_max[seg], np.arange(vals.size), vals.size)
        first = np.minimum.reduceat(rows, starts)  # the first maximising row of each segment
        return planes[first][inv].reshape(*np.shape(ids), -1)

    def _plan(self, b: np.ndarray) -> tuple:
        """Everything about these beliefs that does not depend on ``phi`` (cached per beliefs and planes)."""
        self._flush()
        key = (hashlib.sha1(np.ascontiguousarray(b).tobytes()).digest() + str(b.shape).encode(), self._version)
        hit = self._plan_cache.get(key)
        if hit is not None:
            self._plan_cache.move_to_end(key)
            return hit
        succ, probs = self.exact_solver.successors(b)
        rows, acts = np.nonzero(succ[..., 0] >= 0)
        ids = succ[rows, acts]
        uniq, inv = np.unique(ids, return_inverse=True)
        planes, starts, _ = self._rows(uniq)
        seg = np.repeat(np.arange(uniq.size), np.diff(np.append(starts, planes.shape[0])))
        hit = (rows, acts, inv.reshape(ids.shape), planes, starts, seg, probs[acts],
               self.meta.tree.depth[acts].astype(np.float64))
        self._plan_cache[key] = hit
        while len(self._plan_cache) > 256:
            self._plan_cache.popitem(last=False)
        return hit

    def q_planes(self, beliefs: Any, phi: Any) -> np.ndarray:
        b = self.meta.check_beliefs(beliefs)
        phi = self._phi(phi)
        rows, acts, inv, planes, starts, seg, probs, depth = self._plan(b)
        out = np.zeros((b.shape[0], self.meta.n_actions, self.meta.n_params))
        out[:, STOP] = self.meta.stop_planes(b, phi[2:])
        if rows.size:
            vals = planes @ phi
            seg_max = np.maximum.reduceat(vals, starts)
            first = np.minimum.reduceat(np.where(vals >= seg_max[seg], np.arange(vals.size), vals.size), starts)
            sp_ = planes[first][inv]  # (r, M, P)
            pl = np.einsum("rmp,rm->rp", sp_, probs)
            pl[:, 0] -= 1.0
            pl[:, 1] -= depth
            out[rows, acts] = pl
        return out

    def gap(self, beliefs: Any, phi: Any) -> float:
        """Largest ``exact - envelope`` value over the classes that follow clicks from ``beliefs`` (>= 0)."""
        phi = self._phi(phi)
        V, _ = self.exact_solver.solve(phi)
        return self._gap_of(V, beliefs, phi)

    def _gap_of(self, V: np.ndarray, beliefs: Any, phi: np.ndarray) -> float:
        """:meth:`gap` given the exact values ``V`` of all classes at ``phi``."""
        succ, _ = self.exact_solver.successors(beliefs)
        ids = np.unique(succ[succ >= 0])
        if ids.size == 0:
            return 0.0
        return float(np.max(V[ids] - self.state_planes(ids, phi) @ phi))

    def refine(self, beliefs: Any, phi: Any) -> float:
        """:meth:`gap` at ``phi``, then :meth:`add` of ``phi``'s planes, from one exact solve.

        Returns:
            The gap before the planes were added.
        """
        self._flush()
        phi = self._phi(phi)
        V, full = self.exact_solver.solve(phi)
        gap = self._gap_of(V, beliefs, phi)
        self.add(phi, stats=full[self._ids])
        return gap

    def copy(self) -> "EnvelopeSolver":
        """An independent envelope with the same planes, sharing the exact solver (and its tables).

        Planes added to the copy do not reach this envelope, nor the other way
        round: e.g. each participant's posterior can refine its own copy of a
        shared envelope, so that its result does not depend on who went before.
        """
        self._flush()
        new = EnvelopeSolver(self.exact_solver)
        new._ids = self._ids.copy()
        new._planes = list(self._planes)  # add() replaces a class's array, it never writes into one
        new._version = self._version
        new.n_solves = self.n_solves
        new.points = list(self.points)
        return new

