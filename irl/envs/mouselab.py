"""Mouselab-MDP: a planning task whose deliberation is recorded, and its meta-level MDP.

On every trial of the Mouselab-MDP paradigm a person sees a tree of nodes whose
rewards are hidden. Clicking a node reveals its reward at a price (the *fee*,
1 point in the "312" experiment); when the person stops clicking, they move from
the root to a leaf and earn the rewards on the path. The clicks are the person's
computations, recorded in order.

The **meta-level MDP** (Hay, Russell, Tolpin & Shimony 2012; Callaway et al. 2018)
describes that deliberation as a decision problem:

* belief state ``b``: which nodes have been revealed, and their values
  (node rewards are independent, with a known distribution per depth);
* computations: ``click n`` reveals node ``n`` at cost ``c + d * depth(n)``
  (``c`` a static cost per click, ``d`` a cost per level of depth);
* the terminal action (action ``0``, the root is never clicked) acts on the
  current beliefs: it takes the path with the highest expected value, worth
  ``max_path sum_{n on path} w_depth(n) * E[r_n | b]``, with ``w`` the utility
  of one point at each depth (``w = 1``: points are worth what they say).

Every Q-value is linear in the parameters ``phi = (c, d, w_1, ..., w_H)`` for
a fixed continuation policy: ``Q = -c N - d D + sum_k w_k T_k`` with ``N`` the
expected number of clicks, ``D`` the expected sum of their depths and ``T_k``
the expected value of the depth-``k`` node on the chosen path. The solvers
return that **plane** ``(-N, -D, T_1, ..., T_H)`` for every action, so the
gradient of a Q-value with respect to ``phi`` is exact (a subgradient where two
continuations tie) and costs nothing extra.

Solvers, one interface (:class:`MetaSolver`):

* :class:`SymmetricTreeSolver` (exact): trees whose root has ``B`` identical
  branches, each a chain of single nodes ending in ``K`` exchangeable leaves
  (branching ``(B, 1, ..., 1, K)``, e.g. the 13-node ``(3, 1, 2)`` tree). The
  branches are independent and exchangeable and the leaves of a branch are
  exchangeable, so the value of a belief depends only on the *multiset* of branch
  states, and a branch's leaves only through how many are unrevealed and the
  largest revealed value. For the 312 tree that is 225 branch states and
  1,923,825 multisets (instead of ``5^12 = 244`` million belief states), solved
  by backward induction one layer (number of revealed nodes) at a time, every
  layer one vectorised numpy pass.
* :class:`BruteForceSolver` (exact, any tree): memoised recursion over full
  belief states, for tiny trees and tests.
* :class:`MyopicSolver` (approximate, any tree): the myopic value of
  computation, ``Q(b, n) = E[terminal value after revealing n] - cost(n)``
  (one-step look-ahead; Russell & Wefald 1991). Cheap for large trees.
* :class:`EnvelopeSolver` (exact at the points it has seen): the upper envelope
  of the planes the exact solver returned at earlier parameters. Optimal values
  are convex and piecewise linear in ``phi`` (a maximum over policies of
  functions linear in ``phi``), so every plane is a global lower bound and the
  envelope is exact wherever one of the seen policies is optimal. Fitting many
  people then needs a few hundred exact solves shared by all of them, not
  thousands.

References:
    Callaway, Lieder, Das, Gul, Krueger & Griffiths (2018), "A resource-rational
    analysis of human planning", CogSci. Callaway, van Opheusden, Gul, Das,
    Krueger, Lieder & Griffiths (2022), "Rational use of cognitive resources in
    human planning", Nature Human Behaviour. Hay, Russell, Tolpin & Shimony (2012),
    "Selecting computations: Theory and applications", UAI. Russell & Wefald
    (1991), "Do the right thing". Jain, Callaway, Griffiths, Dayan, He, Krueger &
    Lieder (2023), "A computational process-tracing method for measuring people's
    planning strategies and how they change over time", Behavior Research Methods.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import itertools
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from irl.mdp import MDPValidationError, TabularMDP
from irl.rewards import RewardModel

__all__ = ["MouselabTree", "MetaLevelMDP", "MetaLevelError", "MetaSolver", "SymmetricTreeSolver",
           "BruteForceSolver", "MyopicSolver", "EnvelopeSolver", "MouselabMDP", "mouselab", "mouselab_312",
           "FixedReward", "depth_reward_model", "meta_params", "optimal_policy_summary", "STOP",
           "VALUES_312", "BRANCHING_312", "ParticipantFit", "fit_participants", "default_cost_grid",
           "random_effects_bms", "posterior_with_envelope"]

#: The terminal action ("stop deliberating and act"): action 0, since the root is never clicked.
STOP = 0
#: Branching of the 13-node tree of the planning-depth experiment: 3 branches, a chain of 1, then 2 leaves.
BRANCHING_312 = (3, 1, 2)
#: Reward supports by depth in the "high increasing variance" 312 environment (uniform on each).
VALUES_312 = ((-4.0, -2.0, 2.0, 4.0), (-8.0, -4.0, 4.0, 8.0), (-48.0, -24.0, 24.0, 48.0))

_TIE = 1e-10  # a computation must beat stopping (or an earlier computation) by this much to be chosen


class MetaLevelError(ValueError):
    """A meta-level problem was given something it cannot use; the message says what and why."""


# ------------------------------------------------------------------------------ the tree
@dataclass(frozen=True, eq=False)
class MouselabTree:
    """The object-level problem: a tree with independent node rewards whose distribution depends on depth.

    Attributes:
        parents: ``(n,)`` parent of every node; node 0 is the root (parent ``-1``)
            and every other node's parent has a smaller id.
        values: reward support of the nodes at depth ``1 .. H`` (one sequence per depth).
        probs: probabilities of those values (default uniform).
        branching: the branching factors when the tree was built from them.

    Example:
        >>> from irl.envs.mouselab import MouselabTree, VALUES_312
        >>> t = MouselabTree.from_branching((3, 1, 2), VALUES_312)
        >>> t.n_nodes, t.depth.tolist()[:5], t.paths[0].tolist()
        (13, [0, 1, 2, 3, 3], [0, 1, 2, 3])
    """

    parents: Any
    values: Any
    probs: Any = None
    branching: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        from demos.deliberation import check_parents  # one rule for trees, in data files and here
        from demos.trajectories import DemoValidationError

        try:
            par = check_parents(self.parents)
        except DemoValidationError as e:
            raise MetaLevelError(str(e)) from None
        depth = np.zeros(par.size, np.int64)
        for k in range(1, par.size):
            depth[k] = depth[par[k]] + 1
        H = int(depth.max())
        vals = [np.asarray(v, dtype=np.float64).ravel() for v in self.values]
        if len(vals) < H:
            raise MetaLevelError(f"values must give a reward support for each depth 1..{H}: got {len(vals)}")
        vals = vals[:H]
        if self.probs is None:
            probs = [np.full(v.size, 1.0 / v.size) for v in vals]
        else:
            probs = [np.asarray(p, dtype=np.float64).ravel() for p in self.probs][:H]
            if len(probs) < H:
                raise MetaLevelError(f"probs must give probabilities for each depth 1..{H}: got {len(probs)}")
        for k, (v, p) in enumerate(zip(vals, probs), 1):
            if v.size == 0 or not np.all(np.isfinite(v)):
                raise MetaLevelError(f"the reward support of depth {k} must be non-empty and finite: got {v}")
            if np.any(np.diff(v) <= 0):
                raise MetaLevelError(f"the reward support of depth {k} must be strictly increasing: got {v}")
            if p.shape != v.shape or np.any(p < 0) or abs(p.sum() - 1) > 1e-9:
                raise MetaLevelError(f"the probabilities of depth {k} must be {v.size} numbers >= 0 summing to "
                                     f"1: got {p}")
        children = [[] for _ in range(par.size)]
        for k in range(1, par.size):
            children[par[k]].append(k)
        leaves = np.array([k for k in range(par.size) if not children[k]], np.int64)
        paths = []
        for leaf in leaves:
            p, k = [], int(leaf)
            while k >= 0:
                p.append(k)
                k = int(par[k])
            paths.append(p[::-1])
        P = np.full((len(paths), H + 1), -1, np.int64)
        for i, p in enumerate(paths):
            P[i, :len(p)] = p
        M = np.zeros((len(paths), par.size), bool)
        for i, p in enumerate(paths):
            M[i, p] = True
        M[:, 0] = False
        mean = np.array([0.0] + [float(v @ p) for v, p in zip(vals, probs)])
        for name, val in (("parents", par), ("depth", depth), ("leaves", leaves), ("paths", P),
                          ("path_matrix", M), ("node_mean", mean[depth])):
            val = np.array(val)
            val.setflags(write=False)
            object.__setattr__(self, name, val)
        object.__setattr__(self, "values", tuple(vals))
        object.__setattr__(self, "probs", tuple(probs))
        object.__setattr__(self, "children", tuple(tuple(c) for c in children))
        object.__setattr__(self, "depth_mean", mean)

    @classmethod
    def from_branching(cls, branching: Sequence[int], values: Sequence[Sequence[float]],
                       probs: Sequence[Sequence[float]] | None = None) -> "MouselabTree":
        """A tree in which every node at depth ``k`` has ``branching[k]`` children, numbered depth-first.

        ``(3, 1, 2)`` gives the 13-node tree of the experiment: root 0, branches
        0→1→2→{3, 4}, 0→5→6→{7, 8} and 0→9→10→{11, 12}.
        """
        b = tuple(int(x) for x in branching)
        if not b or any(x < 1 for x in b):
            raise MetaLevelError(f"branching must be a non-empty sequence of integers >= 1: got {branching!r}")
        parents = [-1]

        def grow(node: int, level: int) -> None:
            if level == len(b):
                return
            for _ in range(b[level]):
                parents.append(node)
                grow(len(parents) - 1, level + 1)

        grow(0, 0)
        return cls(np.array(parents), values, probs, branching=b)

    @property
    def n_nodes(self) -> int:
        """Number of nodes, root included."""
        return int(self.parents.size)

    @property
    def height(self) -> int:
        """Depth ``H`` of the deepest node."""
        return int(self.depth.max())

    @property
    def n_paths(self) -> int:
        """Number of root-to-leaf paths."""
        return int(self.paths.shape[0])

    def signature(self) -> str:
        """A short hash of structure and distributions (solvers are cached by it)."""
        h = hashlib.sha1(self.parents.tobytes())
        for v, p in zip(self.values, self.probs):
            h.update(v.tobytes())
            h.update(p.tobytes())
        return h.hexdigest()[:16]

    def symmetric_form(self) -> tuple[int, int, int] | None:
        """``(B, L, K)`` for a ``(B, 1, ..., 1, K)`` tree (``L`` chain levels before the leaves), else ``None``."""
        b = self.branching
        if b is None:
            b = _branching_of(self)
            if b is None:
                return None
        if len(b) == 1:
            return b[0], 0, 1
        if all(x == 1 for x in b[1:-1]):
            return b[0], len(b) - 1, b[-1]
        return None


def _branching_of(tree: MouselabTree) -> tuple[int, ...] | None:
    """The branching factors of a tree in which all nodes of a depth have the same number of children."""
    out = []
    for k in range(tree.height):
        counts = {len(tree.children[n]) for n in np.flatnonzero(tree.depth == k)}
        if len(counts) != 1:
            return None
        out.append(counts.pop())
    rebuilt = MouselabTree.from_branching(out, tree.values, tree.probs) if out else None
    if rebuilt is None or not np.array_equal(rebuilt.parents, tree.parents):
        return None
    return tuple(out)


def meta_params(cost: float = 1.0, depth_cost: float = 0.0, weights: Any = None, *, height: int = 3) -> np.ndarray:
    """The parameter vector ``phi = (cost, depth_cost, w_1, ..., w_H)`` of a meta-level problem.

    Args:
        cost: static cost of one click.
        depth_cost: extra cost per level of depth of the clicked node.
        weights: utility of one point at each depth (default 1 everywhere).
        height: ``H``, the number of depths (used when ``weights`` is ``None``).

    Example:
        >>> from irl.envs.mouselab import meta_params
        >>> meta_params(2.0, 0.5).tolist()
        [2.0, 0.5, 1.0, 1.0, 1.0]
    """
    w = np.ones(height) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    phi = np.concatenate([[float(cost), float(depth_cost)], w])
    if not np.all(np.isfinite(phi)):
        raise MetaLevelError(f"meta-level parameters (cost, depth_cost, weights) must be finite: got {phi.tolist()}")
    return phi


# ------------------------------------------------------------------- the meta-level MDP
class MetaLevelMDP:
    """Belief states, computations and the terminal action of a Mouselab tree.

    A belief is a row of ``n_nodes`` numbers: the revealed reward of each node,
    ``NaN`` where it is still hidden (the root is known and worth 0). Action
    ``0`` (:data:`STOP`) ends deliberation and takes the best path in
    expectation; action ``n >= 1`` clicks node ``n``.

    Args:
        tree: the :class:`MouselabTree`.
        fee: the task's price of a click in points (the true cost of computation).

    Example:
        >>> import numpy as np
        >>> from irl.envs.mouselab import MetaLevelMDP, MouselabTree, VALUES_312
        >>> meta = MetaLevelMDP(MouselabTree.from_branching((3, 1, 2), VALUES_312))
        >>> b = meta.initial_beliefs(1)
        >>> float(meta.terminal_value(b)[0]), int(meta.available(b).sum())
        (0.0, 13)
    """

    def __init__(self, tree: MouselabTree, fee: float = 1.0) -> None:
        if not np.isfinite(fee) or fee < 0:
            raise MetaLevelError(f"fee (price of a click) must be a finite number >= 0: got {fee}")
        self.tree, self.fee = tree, float(fee)
        self._solvers: dict[str, MetaSolver] = {}

    @property
    def n_actions(self) -> int:
        """Number of meta-level actions: stop plus one click per non-root node (= number of nodes)."""
        return self.tree.n_nodes

    @property
    def n_params(self) -> int:
        """Length of ``phi = (cost, depth_cost, w_1..w_H)``."""
        return 2 + self.tree.height

    def params(self, cost: float = 1.0, depth_cost: float = 0.0, weights: Any = None) -> np.ndarray:
        """``phi`` for this tree (see :func:`meta_params`)."""
        phi = meta_params(cost, depth_cost, weights, height=self.tree.height)
        if phi.size != self.n_params:
            raise MetaLevelError(f"weights must give one utility per depth ({self.tree.height}): "
                                 f"got {phi.size - 2}")
        return phi

    # ---------------------------------------------------------------- beliefs
    def initial_beliefs(self, n: int = 1) -> np.ndarray:
        """``(n, n_nodes)`` beliefs with nothing revealed (root 0, every other node ``NaN``)."""
        b = np.full((int(n), self.tree.n_nodes), np.nan)
        b[:, 0] = 0.0
        return b

    def check_beliefs(self, beliefs: Any) -> np.ndarray:
        """Validate beliefs ``(D, n_nodes)`` (a single belief may be 1-D); returns a float array."""
        b = np.asarray(beliefs, dtype=np.float64)
        if b.ndim == 1:
            b = b[None]
        if b.ndim != 2 or b.shape[1] != self.tree.n_nodes:
            raise MetaLevelError(f"beliefs must have shape (D, n_nodes) = (D, {self.tree.n_nodes}): got {b.shape}")
        if np.isinf(b).any():
            i, j = np.argwhere(np.isinf(b))[0]
            raise MetaLevelError(f"belief {i}: node {j} has an infinite revealed value")
        return b

    def available(self, beliefs: Any) -> np.ndarray:
        """``(D, n_actions)`` mask of possible actions: stop, and clicks on hidden nodes."""
        b = self.check_beliefs(beliefs)
        ok = np.isnan(b)
        ok[:, STOP] = True
        return ok

    def path_values(self, beliefs: Any, weights: Any = None) -> np.ndarray:
        """``(D, n_paths)`` expected value of every path under the beliefs (hidden nodes at their mean)."""
        b = self.check_beliefs(beliefs)
        x = np.where(np.isnan(b), self.tree.node_mean, b)
        x[:, 0] = 0.0
        return (x * self._node_weights(weights)) @ self.tree.path_matrix.T.astype(np.float64)

    def terminal_value(self, beliefs: Any, weights: Any = None) -> np.ndarray:
        """``(D,)`` value of stopping now: the best path's expected value."""
        return self.path_values(beliefs, weights).max(axis=1)

    def stop_planes(self, beliefs: Any, weights: Any = None) -> np.ndarray:
        """``(D, P)`` plane of the terminal action: ``(0, 0, T_1..T_H)`` of the best path (first on ties)."""
        b = self.check_beliefs(beliefs)
        best = self.path_values(b, weights).argmax(axis=1)
        x = np.where(np.isnan(b), self.tree.node_mean, b)
        H = self.tree.height
        out = np.zeros((b.shape[0], 2 + H))
        nodes = self.tree.paths[best]  # (D, H+1)
        for k in range(1, H + 1):
            nk = nodes[:, k]
            ok = nk >= 0
            out[ok, 1 + k] = x[np.flatnonzero(ok), nk[ok]]
        return out

    def _node_weights(self, weights: Any) -> np.ndarray:
        H = self.tree.height
        w = np.ones(H) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
        if w.size != H:
            raise MetaLevelError(f"weights must give one utility per depth ({H}): got {w.size}")
        return np.concatenate([[0.0], w])[self.tree.depth]

    def click_cost(self, phi: Any) -> np.ndarray:
        """``(n_actions,)`` cost of every click under ``phi`` (0 for the terminal action)."""
        phi = np.asarray(phi, dtype=np.float64)
        c = phi[0] + phi[1] * self.tree.depth.astype(np.float64)
        c[STOP] = 0.0
        return c

    def best_paths(self, beliefs: Any, weights: Any = None, rng: Any = None) -> np.ndarray:
        """``(D,)`` index of the path the terminal action takes (ties broken at random when ``rng`` is given)."""
        v = self.path_values(beliefs, weights)
        top = v >= v.max(axis=1, keepdims=True) - 1e-9
        if rng is None:
            return top.argmax(axis=1)
        gen = np.random.default_rng(rng)
        u = gen.random(v.shape) * top
        return u.argmax(axis=1)

    def sample_instances(self, n: int, rng: Any = None) -> np.ndarray:
        """``(n, n_nodes)`` node rewards drawn from the per-depth distributions (root 0)."""
        gen = np.random.default_rng(rng)
        out = np.zeros((int(n), self.tree.n_nodes))
        for k, (v, p) in enumerate(zip(self.tree.values, self.tree.probs), 1):
            nodes = np.flatnonzero(self.tree.depth == k)
            out[:, nodes] = v[gen.choice(v.size, size=(int(n), nodes.size), p=p)]
        return out

    # ---------------------------------------------------------------- solving
    def solver(self, kind: str = "exact") -> "MetaSolver":
        """The solver of this problem: ``"exact"`` (symmetric trees), ``"brute-force"`` (tiny trees) or ``"myopic"``.

        Solvers are built once per problem (the exact one precomputes its tables
        on first use, about 2 s for the 312 tree).

        Raises:
            MetaLevelError: unknown kind, or an exact solver for a tree it cannot handle.
        """
        if isinstance(kind, MetaSolver):
            return kind
        if kind not in self._solvers:
            if kind == "exact":
                self._solvers[kind] = _shared_symmetric(self)
            elif kind == "brute-force":
                self._solvers[kind] = BruteForceSolver(self)
            elif kind == "myopic":
                self._solvers[kind] = MyopicSolver(self)
            else:
                raise MetaLevelError(f"unknown meta-level solver {kind!r}; known: exact, brute-force, myopic "
                                     f"(or pass a MetaSolver object)")
        return self._solvers[kind]

    def q_values(self, beliefs: Any, cost: float = 1.0, depth_cost: float = 0.0, weights: Any = None, *,
                 solver: Any = "exact") -> np.ndarray:
        """``(D, n_actions)`` meta-level Q-values (``-inf`` for impossible actions).

        Example:
            >>> import irl
            >>> env = irl.envs.make("mouselab-312")
            >>> q = env.meta.q_values(env.meta.initial_beliefs(1), cost=1.0)
            >>> int(q[0].argmax()) in (3, 4, 7, 8, 11, 12)   # the first click goes to a leaf
            True
        """
        return self.solver(solver).q_values(beliefs, self.params(cost, depth_cost, weights))

    def __repr__(self) -> str:
        return f"MetaLevelMDP(nodes={self.tree.n_nodes}, branching={self.tree.branching}, fee={self.fee})"


# ---------------------------------------------------------------------------- solvers
class MetaSolver(abc.ABC):
    """Interface of meta-level solvers: Q-values and their planes at beliefs, for parameters ``phi``.

    Subclasses implement :meth:`q_planes`; ``Q = planes @ phi`` and the
    gradient of ``Q`` with respect to ``phi`` is the plane itself.
    """

    exact: bool = False

    def __init__(self, meta: MetaLevelMDP) -> None:
        self.meta = meta

    @abc.abstractmethod
    def q_planes(self, beliefs: Any, phi: Any) -> np.ndarray:
        """``(D, n_actions, P)`` planes of every action at every belief (zeros for impossible actions)."""

    def q_values(self, beliefs: Any, phi: Any) -> np.ndarray:
        """``(D, n_actions)`` Q-values, ``-inf`` where an action is impossible."""
        b = self.meta.check_beliefs(beliefs)
        phi = self._phi(phi)
        q = self.q_planes(b, phi) @ phi
        return np.where(self.meta.available(b), q, -np.inf)

    def _phi(self, phi: Any) -> np.ndarray:
        phi = np.asarray(phi, dtype=np.float64).ravel()
        if phi.size != self.meta.n_params or not np.all(np.isfinite(phi)):
            raise MetaLevelError(f"phi must be {self.meta.n_params} finite numbers (cost, depth_cost, w_1.."
                                 f"w_{self.meta.tree.height}): got {phi.tolist()}")
        return phi

    def _click_planes(self, depth: np.ndarray) -> np.ndarray:
        """The immediate part of a click's plane: ``(-1, -depth, 0, ...)``."""
        out = np.zeros((depth.size, self.meta.n_params))
        out[:, 0] = -1.0
        out[:, 1] = -depth
        return out


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
        >>> from irl.envs.mouselab import mouselab
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


# ------------------------------------------------------------------ the environment
@dataclass(frozen=True, eq=False)
class MouselabMDP(TabularMDP):
    """A Mouselab task: the object-level tree as a :class:`~irl.TabularMDP`, and its meta-level problem.

    Object level: states are the nodes, action ``a`` moves to the ``a``-th child
    (a move that does not exist stays put), leaves are terminal, the horizon is
    the tree's height. The environment has **no reward features**: the points
    are drawn anew on each trial and revealed by clicks (they are part of the
    evidence, :class:`demos.DeliberationTraces`), and what IRL infers here is
    the meta-level reward, the person's cost of computation. Its ``true_reward``
    is the utility of one point at each node (1; 0 at the root), the reward a
    human model with ``values="reward"`` reads.

    Attributes:
        meta: the :class:`MetaLevelMDP` (beliefs, computations, solvers).
    """

    meta: Any = None

    def replace(self, **changes: Any) -> "MouselabMDP":
        """A copy with some fields changed (the meta-level problem is kept)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "_cache"}
        fields.update(changes)
        return MouselabMDP(**fields)

    def __repr__(self) -> str:
        return (f"MouselabMDP(name={self.name!r}, nodes={self.n_states}, branching={self.meta.tree.branching}, "
                f"fee={self.meta.fee})")


def mouselab(branching: Sequence[int] = BRANCHING_312, values: Sequence[Sequence[float]] = VALUES_312,
             probs: Sequence[Sequence[float]] | None = None, *, fee: float = 1.0, name: str | None = None,
             parents: Any = None) -> MouselabMDP:
    """Build a Mouselab environment.

    Args:
        branching: children per node at each depth (``(3, 1, 2)``: the 13-node tree).
        values: reward support per depth.
        probs: their probabilities (default uniform).
        fee: price of a click in points.
        name: environment name (default ``"mouselab-" + digits of branching``).
        parents: an explicit tree (parent of each node) instead of ``branching``.

    Returns:
        :class:`MouselabMDP`.

    Example:
        >>> from irl.envs.mouselab import mouselab
        >>> env = mouselab((2, 2), values=[(-1, 1), (-5, 5)])
        >>> env.n_states, env.horizon, env.meta.n_actions
        (7, 2, 7)
    """
    if parents is not None:
        tree = MouselabTree(np.asarray(parents), values, probs)
        tree = MouselabTree(tree.parents, tree.values, tree.probs, branching=_branching_of(tree))
    else:
        tree = MouselabTree.from_branching(branching, values, probs)
    S = tree.n_nodes
    A = max(len(c) for c in tree.children)
    terminal = np.zeros(S, bool)
    terminal[tree.leaves] = True
    T = np.zeros((S, A, S))
    for s in np.flatnonzero(~terminal):
        for a in range(A):
            ch = tree.children[s]
            T[s, a, ch[a] if a < len(ch) else s] = 1.0
    P = sp.csr_matrix(T.reshape(S * A, S))
    initial = np.zeros(S)
    initial[0] = 1.0
    utility = np.ones(S)
    utility[0] = 0.0
    label = name or ("mouselab-" + "".join(str(b) for b in tree.branching) if tree.branching else "mouselab")
    return MouselabMDP(transitions=P, n_states=S, n_actions=A, initial=initial, discount=1.0,
                       horizon=tree.height, features=np.zeros((S, 0)), terminal=terminal, true_reward=utility,
                       name=label, state_names=tuple(f"node {s}" for s in range(S)),
                       action_names=tuple(f"child {a}" for a in range(A)), feature_names=(),
                       meta=MetaLevelMDP(tree, fee=fee))


def mouselab_312(**kwargs: Any) -> MouselabMDP:
    """The 13-node "312" environment of the planning-depth experiment (increasing variance, click fee 1).

    Rewards are uniform per depth on ``{-4, -2, 2, 4}``, ``{-8, -4, 4, 8}`` and
    ``{-48, -24, 24, 48}`` (leaves), independent across nodes.

    Example:
        >>> import irl
        >>> env = irl.envs.make("mouselab-312")
        >>> env.n_states, env.meta.tree.leaves.tolist()
        (13, [3, 4, 7, 8, 11, 12])
    """
    kwargs.setdefault("name", "mouselab-312")
    return mouselab(BRANCHING_312, VALUES_312, **kwargs)


# ------------------------------------------------------------------- reward models
class FixedReward(RewardModel):
    """A reward model with no parameters: always the given reward (e.g. the environment's ``true_reward``).

    Use it to fit only the human's parameters (costs, temperature) with the
    object-level values held fixed.

    Example:
        >>> import torch, irl
        >>> env = irl.envs.make("mouselab-312")
        >>> m = irl.envs.mouselab.FixedReward(env.true_reward, env.n_actions)
        >>> m.n_params, tuple(m(torch.zeros(0)).shape)
        (0, (13, 3))
    """

    def __init__(self, reward: Any, n_actions: int) -> None:
        r = np.asarray(reward, dtype=np.float64)
        if r.ndim == 1:
            r = np.repeat(r[:, None], int(n_actions), axis=1)
        if r.ndim != 2 or r.shape[1] != int(n_actions) or not np.all(np.isfinite(r)):
            raise MDPValidationError(f"FixedReward needs a finite reward (S,) or (S, {n_actions}): got {r.shape}")
        self.reward = torch.from_numpy(r.copy())
        self.n_states, self.n_actions = r.shape

    @property
    def n_params(self) -> int:
        return 0

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        t = self._check(theta)
        return self.reward.expand(*t.shape[:-1], self.n_states, self.n_actions)


def depth_reward_model(env: MouselabMDP) -> RewardModel:
    """A linear reward with one parameter per depth: the utility of a point at that depth.

    For fitting object-level values with ``MetaBoltzmann(values="reward")``
    (fix ``beta``: the scale of utilities and the temperature are confounded).
    """
    from irl.rewards import LinearReward

    t = env.meta.tree
    f = np.zeros((t.n_nodes, t.height))
    f[np.arange(1, t.n_nodes), t.depth[1:] - 1] = 1.0
    return LinearReward(f, env.n_actions, names=[f"utility@depth{k}" for k in range(1, t.height + 1)])


# ------------------------------------------------------------------------- analysis
def optimal_policy_summary(env: MouselabMDP, cost: float | None = None, depth_cost: float = 0.0,
                           weights: Any = None) -> dict[str, Any]:
    """Properties of the optimal meta-level policy from the empty belief (exact solver).

    Args:
        env: a Mouselab environment with a symmetric tree.
        cost: cost per click (default the task's fee).
        depth_cost: cost per level of depth.
        weights: utility per depth (default 1).

    Returns:
        ``value`` (expected score: path reward minus click costs), ``expected_clicks``,
        ``expected_path_reward``, ``no_planning_value`` (stop at once),
        ``first_click_q`` (best Q-value of a first click at each depth),
        ``first_click_depth`` (depth of the best first click), ``stop_q``,
        ``solve_seconds`` and ``build_seconds``.

    Example:
        >>> import irl
        >>> s = irl.envs.mouselab.optimal_policy_summary(irl.envs.make("mouselab-312"))
        >>> s["first_click_depth"], s["value"] > 30 > s["no_planning_value"]
        (3, True)
    """
    meta = env.meta
    solver = meta.solver("exact")
    phi = meta.params(meta.fee if cost is None else cost, depth_cost, weights)
    b = meta.initial_beliefs(1)
    t0 = time.perf_counter()
    V, stats = solver.solve(phi)
    seconds = time.perf_counter() - t0
    st = stats[solver.state_ids(b)][0]
    q = solver.q_values(b, phi)[0]
    depth = meta.tree.depth
    by_depth = {int(k): float(q[depth == k].max()) for k in range(1, meta.tree.height + 1)}
    best = int(np.argmax(np.where(np.arange(q.size) == STOP, -np.inf, q)))
    return {"value": float(V[solver.state_ids(b)][0]), "expected_clicks": float(st[0]),
            "expected_click_depth_sum": float(st[1]), "expected_path_reward": float(st[2:] @ phi[2:]),
            "no_planning_value": float(meta.terminal_value(b, phi[2:])[0]), "first_click_q": by_depth,
            "first_click_depth": int(depth[best]), "stop_q": float(q[STOP]), "solve_seconds": seconds,
            "build_seconds": solver.build_seconds, "n_belief_classes": solver.n_states}


# ------------------------------------------------------------------ fitting many people
@dataclass
class ParticipantFit:
    """One participant's MAP fit of one model.

    Attributes:
        participant: the participant id.
        model: the model's label.
        log_likelihood: at the fit (exact, see ``gap``).
        n_params: free parameters.
        n_observations: scored decisions (clicks and stops).
        bic: ``-2 log L + k log n``.
        params: fitted human parameters by name.
        converged: the optimiser's verdict.
        gap: largest difference between exact and envelope values over the
            participant's belief classes at the fitted parameters (0 when the
            envelope was exact there, ``nan`` for models without a solver).
        rounds: how many refits the participant needed.
        estimate: the :class:`~irl.RewardEstimate` (``None`` for fixed models).
        held_out_log_likelihood: of the participant's held-out trials at the fit
            (``nan`` without held-out trials).
    """

    participant: str
    model: str
    log_likelihood: float
    n_params: int
    n_observations: int
    bic: float
    params: dict[str, float]
    converged: bool
    gap: float
    rounds: int
    estimate: Any = None
    held_out_log_likelihood: float = float("nan")


_WORKER: dict[str, Any] = {}


def _worker_solve(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    if "blas" not in _WORKER:  # a forked worker: one BLAS thread each (the pool has one worker per core)
        _WORKER["blas"] = _one_blas_thread()
        _WORKER["blas"].__enter__()
    t0 = time.perf_counter()
    solver, ids = _WORKER["solver"], _WORKER["ids"]
    V, stats = solver.solve(phi)
    return V[ids].copy(), stats[ids].copy(), time.perf_counter() - t0


def _solve_many(env: MouselabMDP, envelope: EnvelopeSolver, phis: list[np.ndarray], processes: int
                ) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
    """Exact solutions at the registered classes for several ``phi``, in ``processes`` forked workers.

    The workers are forked from this process, so they share its solver tables
    (copy-on-write) and need no ``if __name__ == "__main__"`` guard; they use
    numpy only. Where ``fork`` is unavailable the solves run here.
    """
    import multiprocessing as mp

    ids = envelope.registered_ids()
    t0 = time.perf_counter()
    if processes <= 1 or len(phis) <= 1 or "fork" not in mp.get_all_start_methods():
        out = []
        for phi in phis:
            V, stats = envelope.exact_solver.solve(phi)
            out.append((V[ids].copy(), stats[ids].copy()))
        return out, time.perf_counter() - t0
    from concurrent.futures import ProcessPoolExecutor

    _WORKER.update(solver=envelope.exact_solver.build(), ids=ids)
    try:
        with ProcessPoolExecutor(int(processes), mp_context=mp.get_context("fork")) as pool:
            res = list(pool.map(_worker_solve, phis))
    finally:
        _WORKER.clear()
    return [(V, st) for V, st, _ in res], time.perf_counter() - t0


def default_cost_grid() -> list[tuple[float, float]]:
    """The grid of ``(cost, depth_cost)`` the envelope starts from (60 points)."""
    costs = (-2.0, 0.0, 1.0, 2.0, 3.5, 5.0, 8.0, 13.0, 20.0, 35.0)
    depth = (-2.0, -1.0, 0.0, 1.0, 2.5, 5.0)
    return [(c, d) for c in costs for d in depth]


def fit_participants(env: MouselabMDP, traces: Any, models: dict[str, Any], *,
                     grid: Sequence[tuple[float, float]] | None = None, rounds: int = 8, tol: float = 1e-6,
                     processes: int = 1, envelope: EnvelopeSolver | None = None, max_iter: int = 200,
                     starts: int = 3, held_out: Any = None, log: Any = None
                     ) -> tuple[list[ParticipantFit], dict[str, Any]]:
    """MAP fits of several deliberation models for every participant, exact at the reported optima.

    All fits share one :class:`EnvelopeSolver`: exact solves on a ``grid`` of
    costs seed it; every participant and model is then fitted by
    :class:`irl.MaxEnt` (L-BFGS on the log-joint) with Q-values from the
    envelope; the exact solver is run at every optimum, and a fit whose
    envelope differed from the exact values there (by more than ``tol`` at any
    of the participant's belief classes) is refitted from its optimum with the
    new planes, for up to ``rounds`` rounds. At the end every reported
    likelihood was computed from exact Q-values.

    Args:
        env: a Mouselab environment with a symmetric tree.
        traces: :class:`demos.DeliberationTraces` of all participants.
        models: ``{label: human model}``: :class:`human_models.MetaBoltzmann`
            with ``values="points"`` (priors on the parameters to fit), or
            models without free parameters (e.g. ``RandomClicks``), which are
            scored as they are.
        grid: ``(cost, depth_cost)`` points to seed the envelope (default
            :func:`default_cost_grid`).
        rounds: maximum refit rounds.
        tol: largest envelope-vs-exact gap accepted at an optimum.
        processes: worker processes for the exact solves.
        envelope: an existing envelope to extend (must have all beliefs registered).
        max_iter: L-BFGS iteration limit per fit.
        starts: L-BFGS starts per fit in the first round, from the best grid
            points (the likelihood is not concave in the costs).
        held_out: traces of the same participants to score at the fits
            (``held_out_log_likelihood``); exact at no extra solve, since the
            envelope holds the exact planes of every fit's optimum for them too.
        log: ``log(message)`` for progress.

    Returns:
        ``(rows, info)``: one :class:`ParticipantFit` per participant and model,
        and timings and counts (``n_solves``, ``solve_seconds``, ``fit_seconds``,
        ``total_seconds``, ``rounds``, ``max_gap``).
    """
    from human_models.cognitive import MetaBoltzmann
    from irl.compare import bic

    t_start = time.perf_counter()
    say = log or (lambda msg: None)
    meta = env.meta
    exact = meta.solver("exact")
    exact.build()
    envelope = envelope or EnvelopeSolver(exact)
    people = traces.participants()
    data = {p: traces.select(participant=p) for p in people}
    held = {}
    if held_out is not None:
        have = set(held_out.participants())
        held = {p: held_out.select(participant=p) for p in people if p in have}
        for h_ in held.values():
            envelope.register(h_.decisions()[0])
    classes = {}
    for p in people:
        beliefs = data[p].decisions()[0]
        if not envelope.points:
            envelope.register(beliefs)
        succ, _ = exact.successors(beliefs)
        classes[p] = np.unique(succ[succ >= 0])
    ids = envelope.registered_ids()
    where = {p: np.searchsorted(ids, classes[p]) for p in people}
    solve_seconds, n_solves = 0.0, 0
    grid = default_cost_grid() if grid is None else list(grid)
    phis = [meta.params(c, d) for c, d in grid]
    solved = {tuple(np.round(phi, 12).tolist()) for phi in envelope.points}
    if phis:
        sols, sec = _solve_many(env, envelope, phis, processes)
        for phi, (_, st) in zip(phis, sols):
            envelope.add(phi, st)
            solved.add(tuple(np.round(phi, 12).tolist()))
        solve_seconds += sec
        n_solves += len(phis)
        say(f"envelope seeded with {len(phis)} exact solves in {sec:.1f} s ({envelope.n_classes} classes, "
            f"{envelope.n_planes} planes)")
    fitted: dict[tuple[str, str], ParticipantFit] = {}
    pending = []
    for name, h in models.items():
        free = h.free_parameters() if hasattr(h, "free_parameters") else {}
        if isinstance(h, MetaBoltzmann) and h.values != "points":
            raise MetaLevelError("fit_participants fits models with values='points' (the study's models)")
        for p in people:
            if not free:
                with torch.no_grad():
                    ll = float(h.log_likelihood(env, env.true_reward, data[p]))
                n = data[p].n_observations
                fitted[(p, name)] = ParticipantFit(p, name, ll, 0, n, bic(ll, 0, n), {}, True, float("nan"), 0)
            else:
                pending.append((p, name))
    prev_x: dict[tuple[str, str], np.ndarray] = {}
    fit_seconds = 0.0
    max_gap = 0.0
    used_rounds = 0
    for rnd in range(1, int(rounds) + 1):
        if not pending:
            break
        used_rounds = rnd
        t0 = time.perf_counter()
        _FIT.update(env=env, data=data, models=models, envelope=envelope, grid=grid, starts=starts,
                    max_iter=max_iter, worker_pid=os.getpid())
        try:
            done, round_est = [], {}
            # first round: model after model, so that a model can also start from the optimum of a model
            # nested in it (e.g. effort + depth from the effort-only fit with depth_cost = 0)
            stages = [[k for k in pending if k[1] == name] for name in models] if rnd == 1 else [pending]
            for stage in stages:
                tasks = []
                for key in stage:
                    extra = [] if key in prev_x else _nested_starts(models, key, round_est)
                    tasks.append((key, prev_x.get(key), extra))
                done += _run_fits(tasks, processes)
                round_est.update(done)
        finally:
            _FIT.clear()
        results = {key: (models[key[1]], est) for key, est in done}
        for key, est in done:
            prev_x[key] = np.asarray(est.info["x"])
        fit_seconds += time.perf_counter() - t0
        phis, keys_of = [], []
        for key, (h, est) in results.items():
            hp = est.human_params
            label = h.name
            c = float(hp.get(f"{label}.cost", h.cost if not _is_prior(h.cost) else 0.0))
            d = float(hp.get(f"{label}.depth_cost", h.depth_cost if not _is_prior(h.depth_cost) else 0.0))
            phis.append(meta.params(c, d))
            keys_of.append(key)
        uniq: dict[tuple, int] = {}
        order = []
        for phi in phis:
            k = tuple(np.round(phi, 12).tolist())
            if k not in uniq:
                uniq[k] = len(order)
                order.append(phi)
        todo = [phi for phi in order if tuple(np.round(phi, 12).tolist()) not in solved]
        sols, sec = _solve_many(env, envelope, todo, processes) if todo else ([], 0.0)
        solve_seconds += sec
        n_solves += len(todo)
        values = dict(zip((tuple(np.round(phi, 12).tolist()) for phi in todo), (V for V, _ in sols)))
        gaps = {}
        for key, phi in zip(keys_of, phis):
            k_ = tuple(np.round(phi, 12).tolist())
            p = key[0]
            if k_ not in values or not classes[p].size:  # solved before: its planes are in the envelope
                gaps[key] = 0.0
                continue
            env_v = envelope.state_planes(classes[p], phi) @ phi
            gaps[key] = float(np.max(values[k_][where[p]] - env_v))
        for phi, (_, st) in zip(todo, sols):
            envelope.add(phi, st)
            solved.add(tuple(np.round(phi, 12).tolist()))
        new_pending = []
        for key in pending:
            h, est = results[key]
            p, name = key
            gap = gaps[key]
            k = int(est.info["n_free_params"])
            n = int(est.info["n_observations"])
            params = {n_.split(".", 1)[1]: float(v) for n_, v in est.human_params.items() if not isinstance(v, dict)}
            fitted[key] = ParticipantFit(p, name, float(est.log_likelihood), k, n, bic(est.log_likelihood, k, n),
                                         params, bool(est.converged), gap, rnd, est)
            if gap > tol:
                new_pending.append(key)
        say(f"round {rnd}: {len(pending)} fits in {time.perf_counter() - t0:.1f} s, {len(order)} exact solves, "
            f"{len(new_pending)} to refit (largest gap {max(gaps.values()):.2e})")
        pending = new_pending
    for key in pending:  # still inexact after the last round: report the exact likelihood at the optimum
        h, est = results[key]
        exact_h = models[key[1]].bind(**fitted[key].params)
        with torch.no_grad():
            fitted[key].log_likelihood = float(exact_h.log_likelihood(env, env.true_reward, data[key[0]]))
        fitted[key].bic = bic(fitted[key].log_likelihood, fitted[key].n_params, fitted[key].n_observations)
    for (p, name), f in fitted.items():
        if p not in held:
            continue
        h = models[name]
        bound = h if not f.params else h.bind(**f.params)
        if isinstance(bound, MetaBoltzmann):
            bound = bound.with_solver(envelope)  # exact here: the fit's optimum was solved exactly
        with torch.no_grad():
            f.held_out_log_likelihood = float(bound.log_likelihood(env, env.true_reward, held[p]))
    finite = [f.gap for f in fitted.values() if np.isfinite(f.gap)]
    max_gap = max(finite) if finite else 0.0
    rows = [fitted[(p, name)] for p in people for name in models]
    info = {"n_participants": len(people), "n_models": len(models), "n_solves": n_solves,
            "solve_seconds": solve_seconds, "fit_seconds": fit_seconds,
            "total_seconds": time.perf_counter() - t_start, "rounds": used_rounds, "max_gap": max_gap,
            "n_classes": envelope.n_classes, "n_planes": envelope.n_planes, "unresolved": len(pending)}
    return rows, info


_FIT: dict[str, Any] = {}


def _one_blas_thread() -> Any:
    """A context limiting BLAS to one thread (when threadpoolctl is installed).

    The fits are tiny (three parameters): a multi-threaded BLAS only adds thread
    wake-ups to every L-BFGS step, which on a loaded machine cost more than the fit.
    """
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _run_fits(tasks: list, processes: int) -> list:
    import multiprocessing as mp

    if processes > 1 and len(tasks) > 1 and "fork" in mp.get_all_start_methods():
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(int(processes), mp_context=mp.get_context("fork")) as pool:
            return list(pool.map(_fit_one, tasks, chunksize=max(1, len(tasks) // (8 * processes))))
    with _one_blas_thread():
        return [_fit_one(t) for t in tasks]


def _nested_starts(models: dict, key: tuple, fitted: dict) -> list[np.ndarray]:
    """Starting points for ``key``'s model at the optima (``fitted``: estimates) of models nested in it."""
    p, name = key
    h = models[name]
    free = h.free_parameters() if hasattr(h, "free_parameters") else {}
    out = []
    for other, g in models.items():
        est = fitted.get((p, other))
        if other == name or est is None or type(g) is not type(h):
            continue
        g_free = g.free_parameters()
        if not set(g_free) <= set(free) or any(not (k in free or g.params[k] == h.params[k]) for k in g.params):
            continue
        values = {k.split(".", 1)[1]: float(v) for k, v in est.human_params.items() if not isinstance(v, dict)}
        values.update({k: float(v) for k, v in g.params.items() if k not in g_free})
        try:
            out.append(np.array([float(pr.to_unconstrained(torch.tensor(values[k], dtype=torch.float64)))
                                 for k, pr in free.items()]))
        except (KeyError, ValueError):
            continue
    return out


def _fit_one(task: tuple) -> tuple:
    """One MAP fit with the shared envelope (in this process or a forked worker)."""
    (p, name), x_prev, extra = task
    if _FIT.get("worker_pid") != os.getpid():  # a forked worker: small problems, one thread each
        torch.set_num_threads(1)
        _FIT["worker_pid"] = os.getpid()
        _FIT["blas"] = _one_blas_thread()
        _FIT["blas"].__enter__()
    return _fit_one_here(p, name, x_prev, extra)


def _fit_one_here(p: str, name: str, x_prev: Any, extra: list) -> tuple:
    from irl.solvers.maxent import MaxEnt

    env, data, envelope = _FIT["env"], _FIT["data"], _FIT["envelope"]
    h = _FIT["models"][name].with_solver(envelope)
    # this fit chooses its own starts (grid points, nested fits, the previous round's optimum)
    fitter = MaxEnt(human=h, max_iter=_FIT["max_iter"], n_starts=1, nested=False, check=False)
    if x_prev is not None:
        return (p, name), fitter.fit(env, data[p], init=x_prev)
    best = None  # first round: several starts from the best grid points (and nested fits), keep the best
    for x0 in _grid_start(h, envelope, data[p], env, _FIT["grid"], k=_FIT["starts"]) + list(extra):
        est = fitter.fit(env, data[p], init=x0)
        if best is None or est.log_likelihood + est.log_prior > best.log_likelihood + best.log_prior:
            best = est
    return (p, name), best


def _grid_start(human: Any, envelope: EnvelopeSolver, data: Any, env: MouselabMDP,
                grid: Sequence[tuple[float, float]], k: int = 1) -> list[np.ndarray]:
    """The ``k`` best grid points (cost, depth_cost), each with its best temperature, as MaxEnt starting points.

    The log-likelihood is not concave in the costs; starting L-BFGS from the
    best points of the grid the envelope was seeded on avoids poor local optima
    (e.g. a near-zero temperature for someone who never clicks).
    """
    meta = env.meta
    free = human.free_parameters()
    beliefs, actions, _ = data.decisions()
    avail = meta.available(beliefs)
    fixed = {k_: float(v) for k_, v in human.params.items() if k_ not in free}
    cands = sorted({(fixed.get("cost", c), fixed.get("depth_cost", d)) for c, d in grid})
    betas = np.exp(np.linspace(np.log(1e-3), np.log(20.0), 48)) if "beta" in free else np.array([fixed["beta"]])
    rows = np.arange(actions.size)
    scored = []
    for c, d in cands:
        phi = meta.params(c, d)
        q = envelope.q_planes(beliefs, phi) @ phi
        z = np.where(avail[None], betas[:, None, None] * q[None], -np.inf)
        m = z.max(axis=2, keepdims=True)
        lse = m[..., 0] + np.log(np.exp(z - m).sum(axis=2))
        total = (z[:, rows, actions] - lse).sum(axis=1)
        vals = {"cost": c, "depth_cost": d}
        total = total + sum(float(pr.distribution().log_prob(torch.tensor(vals[n], dtype=torch.float64)))
                            for n, pr in free.items() if n != "beta")
        if "beta" in free:
            total = total + free["beta"].distribution().log_prob(torch.from_numpy(betas)).numpy()
        i = int(np.argmax(total))
        vals["beta"] = float(betas[i])
        x = np.array([float(pr.to_unconstrained(torch.tensor(vals[n], dtype=torch.float64)))
                      for n, pr in free.items()])
        scored.append((float(total[i]), x))
    scored.sort(key=lambda t: -t[0])
    return [x for _, x in scored[:max(int(k), 1)]]


def _is_prior(x: Any) -> bool:
    from priors import is_prior

    return is_prior(x)


def random_effects_bms(log_evidence: Any, *, samples: int = 200_000, seed: int = 0, max_iter: int = 1000,
                       tol: float = 1e-10) -> dict[str, np.ndarray]:
    """Random-effects Bayesian model selection for a group (variational Bayes).

    Each participant's data come from one of ``K`` models, the model
    frequencies ``r ~ Dirichlet(alpha)``; given every participant's log evidence
    per model (e.g. ``-BIC / 2``), the posterior over ``r`` is approximated by
    ``Dirichlet(alpha)``.

    Args:
        log_evidence: ``(N, K)`` log evidence of each participant under each model.
        samples: Dirichlet draws for the exceedance probabilities.
        seed: their seed.

    Returns:
        ``alpha`` (posterior Dirichlet parameters), ``expected_count`` (expected
        number of participants generated by each model, ``alpha - 1``),
        ``expected_frequency`` (``alpha / sum(alpha)``) and ``exceedance``
        (probability that each model is the most frequent).

    References:
        Stephan, Penny, Daunizeau, Moran & Friston (2009), "Bayesian model
        selection for group studies", NeuroImage 46, 1004-1017.
    """
    from scipy.special import digamma, logsumexp

    L = np.asarray(log_evidence, dtype=np.float64)
    if L.ndim != 2 or L.shape[1] < 2 or not np.all(np.isfinite(L)):
        raise ValueError(f"log_evidence must be a finite (N participants, K >= 2 models) array: got {L.shape}")
    alpha0 = np.ones(L.shape[1])
    alpha = alpha0.copy()
    for _ in range(max_iter):
        u = L + digamma(alpha) - digamma(alpha.sum())
        g = np.exp(u - logsumexp(u, axis=1, keepdims=True))
        new = alpha0 + g.sum(axis=0)
        if np.abs(new - alpha).max() < tol:
            alpha = new
            break
        alpha = new
    draws = np.random.default_rng(seed).dirichlet(alpha, size=int(samples))
    exceed = np.bincount(draws.argmax(axis=1), minlength=alpha.size) / draws.shape[0]
    return {"alpha": alpha, "expected_count": alpha - alpha0, "expected_frequency": alpha / alpha.sum(),
            "exceedance": exceed}


def posterior_with_envelope(env: MouselabMDP, traces: Any, model: Any, envelope: EnvelopeSolver, *,
                            samples: int = 300, warmup: int = 300, chains: int = 4, seed: int = 0,
                            init: Any = None, init_radius: float = 0.3, check_draws: int = 12, rounds: int = 4,
                            scout: int = 100, tol: float = 1e-6, callback: Any = None, **sampler_options: Any
                            ) -> tuple[Any, dict[str, Any]]:
    """Bayesian IRL (:class:`irl.BayesianIRL`, HMC) of a deliberation model, with Q-values from an envelope.

    Sampling needs thousands of likelihood evaluations, far too many exact
    solves; the envelope makes each one cheap. It is exact only where its planes
    came from, so after sampling ``check_draws`` random draws are solved exactly:
    their planes are added, and if the envelope was off at any of them (by more
    than ``tol``) the posterior is sampled again, up to ``rounds`` times. While
    the envelope is still being refined the rounds are short (``scout`` warmup
    iterations and draws per chain): only the full-length round whose checked
    draws were all exact is returned (or the last round, flagged).

    Args:
        env: a Mouselab environment.
        traces: one participant's :class:`demos.DeliberationTraces`.
        model: a :class:`human_models.MetaBoltzmann` with priors.
        envelope: an :class:`EnvelopeSolver` with these traces' beliefs registered
            (e.g. the one :func:`fit_participants` used, or a fresh one seeded here);
            the checked draws' planes are added to it (pass ``envelope.copy()``
            to keep it as it is).
        samples: post-warmup draws per chain.
        warmup: adaptation iterations per chain.
        chains: number of chains.
        seed: random seed.
        init: starting point in the sampler's coordinates (e.g. the MAP fit's
            ``estimate.info["x"]``), ``(D,)``, or one per chain ``(chains, D)``.
        init_radius: a ``(D,)`` ``init`` is spread over the chains by uniform
            noise in ``[-init_radius, init_radius]`` per coordinate.
        check_draws: draws solved exactly after each round.
        rounds: maximum sampling rounds (short and full together; the last one is full).
        scout: warmup iterations and draws per chain of the short rounds (0: every round full).
        tol: largest accepted envelope error at the checked draws.
        callback: progress of each round's sampler, ``callback(iteration, total, phase)``
            (see :meth:`irl.BayesianIRL.fit`).
        **sampler_options: passed to :class:`irl.BayesianIRL` (e.g. ``max_leapfrog``).

    Returns:
        ``(posterior, info)`` with ``info`` holding ``rounds``, ``full_rounds``,
        ``gaps`` (per round, at the checked draws), ``seconds`` and
        ``exact_at_checked_draws`` (of the returned round).
    """
    from irl.solvers.bayesian import BayesianIRL

    t0 = time.perf_counter()
    beliefs = traces.decisions()[0]
    envelope.register(beliefs)
    rng = np.random.default_rng(seed)
    solver = BayesianIRL(human=model.with_solver(envelope), prior=None, **sampler_options)
    gaps: list[list[float]] = []
    full = int(scout) <= 0 or int(rounds) <= 1
    n_full = 0
    while True:
        n, w = (samples, warmup) if full else (min(int(scout), samples), min(int(scout), warmup))
        post = solver.fit(env, traces, samples=n, warmup=w, chains=chains, seed=seed, init=init,
                          init_radius=init_radius, check=False, callback=callback)
        gaps.append(_refine_at_draws(env, envelope, beliefs, model, post, check_draws, rng))
        n_full += full
        exact = max(gaps[-1]) <= tol
        if len(gaps) >= int(rounds) or (full and exact):
            break
        full = full or exact or len(gaps) == int(rounds) - 1
    return post, {"rounds": len(gaps), "full_rounds": n_full, "gaps": gaps, "seconds": time.perf_counter() - t0,
                  "exact_at_checked_draws": bool(exact)}


def _refine_at_draws(env: MouselabMDP, envelope: EnvelopeSolver, beliefs: np.ndarray, model: Any, post: Any,
                     k: int, rng: np.random.Generator) -> list[float]:
    """Solve ``k`` random posterior draws exactly: the envelope's gap at each, and their planes added."""
    label = model.name
    draws = {name: np.asarray(v).reshape(-1) for name, v in post.human.items()}
    n = next(iter(draws.values())).size
    out = []
    for i in rng.choice(n, size=min(int(k), n), replace=False):
        c = float(draws[f"{label}.cost"][i]) if f"{label}.cost" in draws else float(model.cost)
        d = float(draws[f"{label}.depth_cost"][i]) if f"{label}.depth_cost" in draws else float(model.depth_cost)
        out.append(envelope.refine(beliefs, env.meta.params(c, d)))
    return out
