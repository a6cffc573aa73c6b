"""The object-level problem of Mouselab: a tree with independent node rewards whose distribution depends on depth.

Example:
    >>> from irl.metalevel.tree import MouselabTree, VALUES_312
    >>> MouselabTree.from_branching((3, 1, 2), VALUES_312).n_paths
    6
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from irl.metalevel.mdp import MetaLevelError

__all__ = ["MouselabTree", "BRANCHING_312", "VALUES_312"]

#: Branching of the 13-node tree of the planning-depth experiment: 3 branches, a chain of 1, then 2 leaves.
BRANCHING_312 = (3, 1, 2)
#: Reward supports by depth in the "high increasing variance" 312 environment (uniform on each).
VALUES_312 = ((-4.0, -2.0, 2.0, 4.0), (-8.0, -4.0, 4.0, 8.0), (-48.0, -24.0, 24.0, 48.0))


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
        >>> from irl.metalevel.tree import MouselabTree, VALUES_312
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

