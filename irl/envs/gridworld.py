"""Gridworlds with terrain features and a goal (the library's built-in test problems)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from irl.mdp import MDPValidationError, TabularMDP

__all__ = ["gridworld", "grid_transitions", "ACTIONS", "TERRAIN"]

#: Action names and their (row, col) moves.
ACTIONS = {"stay": (0, 0), "up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
#: Terrain feature names, in feature order.
TERRAIN = ("goal", "plain", "mud", "water")


def _terrain(rows: int, cols: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.choice(np.arange(1, 4), size=(rows, cols), p=[0.65, 0.2, 0.15])
    t[0, 0] = 1
    t[rows - 1, cols - 1] = 0
    return t


def grid_transitions(rows: int, cols: int, slip: float) -> sp.csr_matrix:
    """Sparse ``(S*A, S)`` transitions of a grid with the five :data:`ACTIONS`.

    The intended move happens with probability ``1 - slip``; with probability
    ``slip`` a uniformly random one of the five actions is taken instead (so the
    intended move has ``1 - slip + slip / 5`` in total, each other ``slip / 5``).
    Moves off the grid leave the agent in place; state ``s`` is cell ``divmod(s, cols)``.

    Example:
        >>> P = grid_transitions(2, 2, 0.375)
        >>> round(float(P[0 * 5 + 4, 1]), 3)  # right from (0, 0): 0.7 intended
        0.7
    """
    S, A = rows * cols, len(ACTIONS)
    r, c = np.divmod(np.arange(S), cols)
    moves = np.array(list(ACTIONS.values()))
    nr = np.clip(r[:, None] + moves[None, :, 0], 0, rows - 1)
    nc = np.clip(c[:, None] + moves[None, :, 1], 0, cols - 1)
    dest = nr * cols + nc  # (S, A) deterministic destination of each move
    # row (s, a): (1 - slip) on dest[s, a], slip / A on each dest[s, b]
    rows_idx = np.repeat(np.arange(S * A), A + 1)
    cols_idx = np.concatenate([dest[:, :, None], np.repeat(dest[:, None, :], A, axis=1)], axis=2).reshape(-1)
    vals = np.tile(np.concatenate([[1.0 - slip], np.full(A, slip / A)]), S * A)
    P = sp.csr_matrix((vals, (rows_idx, cols_idx)), shape=(S * A, S))
    return P


def gridworld(rows: int, cols: int | None = None, *, terrain: np.ndarray | None = None, slip: float = 0.1,
              horizon: int | None = None, discount: float = 1.0, weights: tuple[float, ...] = (1.0, 0.0, -0.3, -1.0),
              seed: int = 0, name: str | None = None) -> TabularMDP:
    """A gridworld: 5 actions (stay, up, down, left, right), slippery moves, terrain features.

    Each cell has one terrain type (goal, plain, mud, water); the features are the
    one-hot terrain indicators ``(S, 4)`` and the true reward is linear in them
    (``weights``). With probability ``slip`` the move is replaced by a uniformly
    random one of the five; moves off the grid leave the agent in place. Episodes
    start in a uniformly random cell. State ``s`` is cell ``divmod(s, cols)``.

    Args:
        rows: number of rows of the grid.
        cols: number of columns (defaults to ``rows``).
        terrain: ``(rows, cols)`` ints indexing ``TERRAIN``; default a fixed random layout.
        slip: probability of a random move.
        horizon: episode length (default ``2 * (rows + cols)``); ``None`` is not allowed
            unless ``discount < 1``.
        discount: discount factor.
        weights: true reward weight per terrain type.
        seed: seed of the default terrain layout.
        name: label.

    Example:
        >>> import irl
        >>> env = irl.envs.gridworld(4, slip=0.0)
        >>> env.n_states, env.n_actions, env.n_features
        (16, 5, 4)
    """
    cols = rows if cols is None else cols
    if rows < 1 or cols < 1:
        raise MDPValidationError(f"grid must be at least 1x1: got {rows}x{cols}")
    if not 0.0 <= slip <= 1.0:
        raise MDPValidationError(f"slip must lie in [0, 1]: got {slip}")
    t = _terrain(rows, cols, seed) if terrain is None else np.asarray(terrain, dtype=np.int64)
    if t.shape != (rows, cols) or t.min() < 0 or t.max() >= len(TERRAIN):
        raise MDPValidationError(f"terrain must be a ({rows}, {cols}) array of ints in 0..{len(TERRAIN) - 1}")
    if len(weights) != len(TERRAIN):
        raise MDPValidationError(f"weights must have {len(TERRAIN)} entries {TERRAIN}: got {len(weights)}")
    S, A = rows * cols, len(ACTIONS)
    P = grid_transitions(rows, cols, slip)
    feats = np.eye(len(TERRAIN))[t.reshape(-1)]
    if horizon is None and discount >= 1.0:
        horizon = 2 * (rows + cols)
    mdp = TabularMDP(transitions=P, n_states=S, n_actions=A, initial=np.full(S, 1.0 / S), discount=discount,
                     horizon=horizon, features=feats, true_reward=feats @ np.asarray(weights, dtype=np.float64),
                     name=name or f"gridworld-{rows}x{cols}", action_names=tuple(ACTIONS),
                     grid_shape=(rows, cols), feature_names=TERRAIN)
    return mdp
