"""A park walked by several agents with different goals and the same norms (keep off the lawns and flowerbeds).

The built-in problem for shared norms (:mod:`irl.norms`): a 10x10 park of
paths, lawns and flowerbeds with six landmarks (``A`` to ``F``). Each agent
walks to its own landmark and stays there; every agent obeys the same norm,
a cost for each step on a lawn and a larger one on a flowerbed. The lawns and
flowerbeds lie in different parts of the park, so one agent's walks only show
the norm where that agent goes; a new agent with a new goal needs all of it.

Features (in order): ``lawn``, ``flowers`` (the norm features,
:data:`NORM_FEATURES`) and ``goal_A`` ... ``goal_F`` (one indicator per
landmark, :data:`GOAL_FEATURES`). The environment's ``true_reward`` is the
norm alone; :func:`agent_reward` adds an agent's goal.

Example:
    >>> import irl
    >>> env = irl.envs.make("park")
    >>> env.n_states, env.n_actions, env.feature_names[:2]
    (100, 5, ('lawn', 'flowers'))
    >>> float(irl.envs.park.agent_reward(env, "A").max())
    1.0
"""

from __future__ import annotations

import numpy as np

from irl.envs.gridworld import gridworld
from irl.mdp import MDPValidationError, TabularMDP

__all__ = ["park", "agent_reward", "LAYOUT", "NORM", "NORM_FEATURES", "GOAL_FEATURES", "GOALS"]

#: The map: ``.`` path, ``l`` lawn, ``f`` flowerbed, ``A``-``F`` landmarks (on the path).
LAYOUT = (
    "A...f.ff.B",
    ".ll.f..f..",
    ".ll....f..",
    ".ll..C....",
    "..........",
    "D..fff....",
    "...f.f.ll.",
    "...f...ll.",
    ".......ll.",
    "E....F....",
)
#: True norm weights: reward of a step on each norm feature.
NORM = {"lawn": -1.0, "flowers": -2.5}
#: Names of the norm features and of the goal features.
NORM_FEATURES = ("lawn", "flowers")
GOALS = ("A", "B", "C", "D", "E", "F")
GOAL_FEATURES = tuple(f"goal_{g}" for g in GOALS)


def park(*, slip: float = 0.1, horizon: int = 14, norm: dict[str, float] | None = None) -> TabularMDP:
    """The park MDP: 5 actions (stay, up, down, left, right), slippery moves, starts on any path cell.

    Args:
        slip: probability that a move is replaced by a uniformly random one.
        horizon: episode length.
        norm: norm weights by feature (default :data:`NORM`).

    Returns:
        :class:`irl.TabularMDP` with features ``(100, 8)`` and ``true_reward`` the norm.
    """
    w = dict(NORM if norm is None else norm)
    unknown = sorted(set(w) - set(NORM_FEATURES))
    if unknown:
        raise MDPValidationError(f"norm names unknown features {unknown}; norm features: {list(NORM_FEATURES)}")
    cells = np.array([list(r) for r in LAYOUT])
    rows, cols = cells.shape
    base = gridworld(rows, cols, terrain=np.ones((rows, cols), dtype=np.int64), slip=slip, horizon=horizon)
    flat = cells.ravel()
    feats = np.stack([flat == "l", flat == "f"] + [flat == g for g in GOALS], axis=1).astype(np.float64)
    norm_reward = feats[:, :2] @ np.array([w.get(n, 0.0) for n in NORM_FEATURES])
    start = np.isin(flat, [".", *GOALS]).astype(np.float64)
    return base.replace(features=feats, feature_names=NORM_FEATURES + GOAL_FEATURES, true_reward=norm_reward,
                        initial=start / start.sum(), name="park")


def agent_reward(env: TabularMDP, goal: str, *, goal_value: float = 1.0) -> np.ndarray:
    """The reward ``(S,)`` of an agent whose goal is landmark ``goal``: the norm plus ``goal_value`` per step there.

    Raises:
        ValueError: an unknown landmark (listing the known ones).
    """
    if goal not in GOALS:
        raise ValueError(f"unknown landmark {goal!r}; known: {', '.join(GOALS)}")
    col = list(env.feature_names).index(f"goal_{goal}")
    return np.asarray(env.true_reward) + env.features[:, col] * float(goal_value)
