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

Solvers (:mod:`irl.metalevel.exact`, :mod:`irl.metalevel.approx`): ``"exact"``
(symmetric trees), ``"brute-force"`` (tiny trees), ``"myopic"`` (any tree) and
the :class:`~irl.metalevel.approx.EnvelopeSolver` shared by many fits.

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

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from irl.mdp import MDPValidationError
from irl.metalevel.approx import MyopicSolver
from irl.metalevel.exact import BruteForceSolver, _shared_symmetric
from irl.metalevel.mdp import STOP, MetaEnv, MetaLevelError, MetaMDP, MetaSolver
from irl.metalevel.tree import BRANCHING_312, VALUES_312, MouselabTree, _branching_of
from irl.rewards import RewardModel

__all__ = ["MetaLevelMDP", "MouselabMDP", "mouselab", "mouselab_312", "FixedReward", "depth_reward_model",
           "optimal_policy_summary"]


# ------------------------------------------------------------------- the meta-level MDP
class MetaLevelMDP(MetaMDP):
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
        >>> from irl.metalevel.mouselab import MetaLevelMDP, MouselabTree, VALUES_312
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
    def n_weights(self) -> int:
        """``H``: one utility per depth."""
        return self.tree.height

    def signature(self) -> str:
        """The tree's signature (structure and reward distributions)."""
        return self.tree.signature()

    def action_depth(self) -> np.ndarray:
        """``(n_nodes,)`` depth of every clicked node (0 for stop)."""
        return self.tree.depth

    def weight_states(self) -> list[np.ndarray]:
        """The nodes of each depth ``1 .. H``."""
        return [np.flatnonzero(self.tree.depth == k) for k in range(1, self.tree.height + 1)]

    weight_unit = "depth"
    weight_rule = "at every node of a depth (the branches are exchangeable)"
    weight_hint = "use irl.envs.mouselab.depth_reward_model(env)"

    def weight_label(self, k: int) -> str:
        return f"the nodes of depth {k}"

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

    def check_instances(self, instances: Any, n: int) -> np.ndarray:
        """``(n, n_nodes)`` finite node rewards (the root's is ignored)."""
        inst = np.array(instances, dtype=np.float64)
        if inst.shape != (n, self.tree.n_nodes) or not np.all(np.isfinite(inst[:, 1:])):
            raise MetaLevelError(f"instances must be finite node rewards of shape (n, n_nodes) = ({n}, "
                                 f"{self.tree.n_nodes}): got {inst.shape}")
        return inst

    def compute(self, beliefs: np.ndarray, actions: np.ndarray, instances: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Reveal node ``actions[i]`` of instance ``i``: new beliefs and the revealed rewards."""
        rows = np.arange(actions.size)
        out = np.array(beliefs, dtype=np.float64, copy=True)
        vals = instances[rows, actions]
        out[rows, actions] = vals
        return out, vals

    def choose(self, beliefs: Any, weights: Any = None, rng: Any = None) -> np.ndarray:
        """The path the terminal action takes (:meth:`best_paths`)."""
        return self.best_paths(beliefs, weights, rng=rng)

    def choice_values(self, instances: np.ndarray, choices: np.ndarray, weights: Any = None) -> np.ndarray:
        """``(D,)`` points on each chosen path, each node weighted by its depth's utility."""
        node_w = self._node_weights(weights)
        nodes = self.tree.paths[np.asarray(choices)]
        ok = nodes >= 0
        rows = np.arange(nodes.shape[0])[:, None]
        vals = np.where(ok, instances[rows, np.maximum(nodes, 0)] * node_w[np.maximum(nodes, 0)], 0.0)
        return vals.sum(axis=1)

    def best_choices(self, instances: np.ndarray, weights: Any = None) -> np.ndarray:
        """The best path on each fully known instance."""
        full = np.asarray(instances, dtype=np.float64) * self._node_weights(weights)
        return (full @ self.tree.path_matrix.T.astype(np.float64)).argmax(axis=1)

    @property
    def full_information_computations(self) -> float:  # type: ignore[override]
        """Every node but the root."""
        return float(self.tree.n_nodes - 1)

    def make_traces(self, instances: np.ndarray, computations: list[list[int]], outcomes: list[list[float]],
                    choices: np.ndarray, *, participant: Any, block: Any) -> Any:
        """:class:`demos.DeliberationTraces` of simulated trials (the chosen paths)."""
        from demos.deliberation import DeliberationTraces

        paths = [self.tree.paths[k][self.tree.paths[k] >= 0].tolist() for k in choices]
        return DeliberationTraces.from_trials(self.tree.parents, instances, computations, paths,
                                              participant=participant, block=block, fee=self.fee)

    def traces_instances(self, traces: Any) -> np.ndarray:
        """The node rewards of every trial."""
        return traces.rewards

    def traces_choices(self, traces: Any) -> np.ndarray:
        """The index of each trial's chosen path (``-1`` where none was recorded)."""
        leaf_path = {int(p[p >= 0][-1]): k for k, p in enumerate(self.tree.paths)}
        return np.array([leaf_path.get(int(traces.trial_path(i)[-1]), -1) if traces.trial_path(i).size else -1
                         for i in range(len(traces))], np.int64)

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



# ------------------------------------------------------------------ the environment
@dataclass(frozen=True, eq=False)
class MouselabMDP(MetaEnv):
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
        >>> from irl.metalevel.mouselab import mouselab
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

