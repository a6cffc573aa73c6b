"""Objectworld and binaryworld: benchmarks whose true reward is a nonlinear function of the features.

Objectworld (Levine, Popović & Koltun 2011) scatters coloured objects over a
grid; the reward depends on the distances to objects of two outer colours in a
way no linear function of the distance features can express. Binaryworld
(Wulfmeier, Ondrúška & Posner 2015) colours every cell blue or red; the reward
depends on the count of blue cells in the 3x3 neighbourhood. Both are the
standard test problems for nonlinear (Gaussian-process, neural) reward models,
and both come as families of maps (one per ``seed``) with the same feature
layout, so a reward learned on some maps can be evaluated on others.
"""

from __future__ import annotations

import numpy as np

from irl.envs.gridworld import ACTIONS, grid_transitions
from irl.mdp import MDPValidationError, TabularMDP

__all__ = ["objectworld", "binaryworld", "objectworld_reward", "binaryworld_reward", "INTENDED", "SLIP"]

#: Probability that the intended action is executed; each of the other four actions has
#: ``(1 - INTENDED) / 4 = 0.075`` (Levine et al. 2011).
INTENDED = 0.7
#: The ``slip`` of :func:`irl.envs.gridworld.grid_transitions` that gives :data:`INTENDED`.
SLIP = (1.0 - INTENDED) * len(ACTIONS) / (len(ACTIONS) - 1)


def _grid_mdp(size: int, features: np.ndarray, reward: np.ndarray, feature_names: tuple[str, ...], name: str,
              discount: float) -> TabularMDP:
    S = size * size
    return TabularMDP(transitions=grid_transitions(size, size, SLIP), n_states=S, n_actions=len(ACTIONS),
                      initial=np.full(S, 1.0 / S), discount=discount, horizon=None, features=features,
                      true_reward=reward, name=name, action_names=tuple(ACTIONS), grid_shape=(size, size),
                      feature_names=feature_names)


def _check_common(size: int, discount: float) -> None:
    if int(size) != size or size < 2:
        raise MDPValidationError(f"size must be an integer >= 2: got {size}")
    if not 0.0 <= discount < 1.0:
        raise MDPValidationError(f"discount must lie in [0, 1) (objectworlds have no horizon): got {discount}")


def objectworld_reward(outer_distance: np.ndarray) -> np.ndarray:
    """The objectworld reward from the distances to the nearest object of outer colours 1 and 2.

    ``+5`` where the distance to outer colour 1 is ``< 3`` and to outer colour 2 is
    ``< 2``; ``-10`` where it is ``< 3`` to colour 1 only; ``0`` elsewhere.

    Args:
        outer_distance: ``(S, C)`` distances (``C >= 2``); columns 0 and 1 are colours 1 and 2.

    Returns:
        ``(S,)`` rewards.

    Example:
        >>> objectworld_reward(np.array([[1.0, 1.0], [1.0, 2.0], [3.0, 0.0]])).tolist()
        [5.0, -10.0, 0.0]
    """
    near1, near2 = outer_distance[:, 0] < 3.0, outer_distance[:, 1] < 2.0
    return np.where(near1, np.where(near2, 5.0, -10.0), 0.0)


def objectworld(size: int = 32, *, colours: int = 2, features: str = "discrete", placement_prob: float = 0.05,
                discount: float = 0.9, seed: int = 0) -> TabularMDP:
    """Objectworld: an ``size x size`` grid with randomly placed objects of two colours each.

    Each cell holds an object with probability ``placement_prob``; an object has
    an outer and an inner colour, each drawn uniformly from ``colours`` colours.
    Five actions (stay, up, down, left, right): the intended one is executed
    with probability 0.7, each other one with 0.075; moves off the grid stay in
    place. Discount 0.9, no horizon, uniform start distribution.

    The true reward (:func:`objectworld_reward`) is ``+5`` within Euclidean distance
    ``< 3`` of outer colour 1 *and* ``< 2`` of outer colour 2, ``-10`` within ``< 3``
    of outer colour 1 only, ``0`` elsewhere. Distances are between cell
    coordinates; with no object of a colour the distance is ``sqrt(2) * size``.

    Features (``2C`` colours: the ``C`` outer colours, then the ``C`` inner ones):

    * ``"discrete"``: binary indicators "an object of colour ``k`` lies at distance
      ``< d``" for ``d = 1 .. size - 1``, ordered by ``d`` then colour:
      ``2C (size - 1)`` features, as in the authors' toolkit (the paper rounds it to ``2CN``);
    * ``"continuous"``: the ``2C`` distances themselves.

    Args:
        size: grid side ``N`` (the paper: 32).
        colours: number of colours ``C >= 2`` (inner and outer alike; the paper: 2).
        features: ``"discrete"`` or ``"continuous"``.
        placement_prob: probability of an object in a cell (the paper: 0.05).
        discount: discount factor (the paper: 0.9).
        seed: seed of the object layout (one map per seed).

    Returns:
        :class:`irl.TabularMDP` with ``features (S, F)``, ``true_reward (S,)`` and
        ``grid_shape = (size, size)``; features reshape to maps ``(F, size, size)``.

    Raises:
        MDPValidationError: a parameter out of range, or an unknown feature kind.

    Example:
        >>> import irl
        >>> env = irl.envs.make("objectworld", size=10, seed=1)
        >>> env.n_states, env.n_actions, env.n_features
        (100, 5, 36)

    References:
        Levine, Popović & Koltun (2011), "Nonlinear Inverse Reinforcement Learning
        with Gaussian Processes", NeurIPS. Wulfmeier, Ondrúška & Posner (2015),
        "Maximum Entropy Deep Inverse Reinforcement Learning", arXiv:1507.04888.
    """
    _check_common(size, discount)
    if int(colours) != colours or colours < 2:
        raise MDPValidationError(f"colours must be an integer >= 2 (the reward uses outer colours 1 and 2): "
                                 f"got {colours}")
    if features not in ("discrete", "continuous"):
        raise MDPValidationError(f"features must be 'discrete' or 'continuous': got {features!r}")
    if not 0.0 < placement_prob <= 1.0:
        raise MDPValidationError(f"placement_prob must lie in (0, 1]: got {placement_prob}")
    size, C = int(size), int(colours)
    rng = np.random.default_rng(seed)
    cells = np.stack(np.divmod(np.arange(size * size), size), axis=1).astype(np.float64)  # (S, 2) row, col
    has = rng.random(size * size) < placement_prob
    outer = rng.integers(0, C, size=size * size)
    inner = rng.integers(0, C, size=size * size)
    dist = np.sqrt(((cells[:, None, :] - cells[None, has, :]) ** 2).sum(-1))  # (S, K) to every object
    colour_of = np.concatenate([np.eye(C, dtype=bool)[outer[has]], np.eye(C, dtype=bool)[inner[has]]], axis=1)
    far = np.sqrt(2.0) * size
    nearest = np.where(colour_of[None, :, :], dist[:, :, None], far).min(axis=1, initial=far)  # (S, 2C)
    kinds = [f"outer{k + 1}" for k in range(C)] + [f"inner{k + 1}" for k in range(C)]
    if features == "discrete":
        d = np.arange(1, size)
        feats = (nearest[:, None, :] < d[None, :, None]).reshape(size * size, -1).astype(np.float64)
        names = tuple(f"{k}<{di}" for di in d for k in kinds)
    else:
        feats, names = nearest, tuple(f"dist_{k}" for k in kinds)
    return _grid_mdp(size, feats, objectworld_reward(nearest[:, :C]), names,
                     f"objectworld-{size}x{size}-c{C}-{features}-seed{seed}", discount)


def binaryworld_reward(blue_count: np.ndarray) -> np.ndarray:
    """The binaryworld reward from the number of blue cells in each 3x3 neighbourhood.

    ``+1`` for exactly 4 blue cells, ``-1`` for exactly 5, ``0`` otherwise.

    Example:
        >>> binaryworld_reward(np.array([3, 4, 5, 9])).tolist()
        [0.0, 1.0, -1.0, 0.0]
    """
    return np.where(blue_count == 4, 1.0, np.where(blue_count == 5, -1.0, 0.0))


def binaryworld(size: int = 32, *, blue_prob: float = 0.5, discount: float = 0.9, seed: int = 0) -> TabularMDP:
    """Binaryworld: every cell is blue or red; the reward counts blue cells around the agent.

    Dynamics, discount and start distribution as in :func:`objectworld`. The
    features of a cell are the 9 indicators "blue" of its 3x3 neighbourhood
    (row-major, the cell itself in the middle; cells outside the grid count as
    red). The true reward (:func:`binaryworld_reward`) is ``+1`` for exactly 4 blue
    cells in the neighbourhood, ``-1`` for exactly 5, ``0`` otherwise.

    Args:
        size: grid side (the paper: 32).
        blue_prob: probability that a cell is blue.
        discount: discount factor.
        seed: seed of the colouring (one map per seed).

    Example:
        >>> import irl
        >>> env = irl.envs.make("binaryworld", size=8, seed=0)
        >>> env.n_states, env.n_features
        (64, 9)

    References:
        Wulfmeier, Ondrúška & Posner (2015), "Maximum Entropy Deep Inverse
        Reinforcement Learning", arXiv:1507.04888.
    """
    _check_common(size, discount)
    if not 0.0 <= blue_prob <= 1.0:
        raise MDPValidationError(f"blue_prob must lie in [0, 1]: got {blue_prob}")
    size = int(size)
    blue = np.random.default_rng(seed).random((size, size)) < blue_prob
    padded = np.pad(blue, 1, constant_values=False)
    shifts = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
    feats = np.stack([padded[1 + dr:1 + dr + size, 1 + dc:1 + dc + size].reshape(-1) for dr, dc in shifts],
                     axis=1).astype(np.float64)
    names = tuple(f"blue[{dr:+d},{dc:+d}]" for dr, dc in shifts)
    return _grid_mdp(size, feats, binaryworld_reward(feats.sum(axis=1)), names, f"binaryworld-{size}x{size}-seed{seed}",
                     discount)
