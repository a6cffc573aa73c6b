"""Russell & Norvig's 4x3 world (AIMA, 3rd ed., Fig. 17.1)."""

from __future__ import annotations

import numpy as np

from irl.mdp import TabularMDP

__all__ = ["aima_4x3", "AIMA_CELLS"]

#: (col, row) of every state, 1-indexed from the bottom-left, the wall (2, 2) left out.
AIMA_CELLS = [(c, r) for r in (1, 2, 3) for c in (1, 2, 3, 4) if (c, r) != (2, 2)]
_MOVES = {"U": (0, 1), "D": (0, -1), "L": (-1, 0), "R": (1, 0)}
_PERP = {"U": ("L", "R"), "D": ("L", "R"), "L": ("U", "D"), "R": ("U", "D")}


def aima_4x3(*, living_reward: float = -0.04, p_intended: float = 0.8, discount: float = 1.0) -> TabularMDP:
    """The 4x3 world: 0.8 intended move, 0.1 each perpendicular; walls and edges stop the agent.

    Terminal states (4,3) = +1 and (4,2) = -1; every other state gives
    ``living_reward``. Infinite horizon, start at (1,1) (state 0). State names are
    ``"col,row"``; actions are U, D, L, R.

    Example:
        >>> import irl
        >>> env = irl.envs.make("aima-4x3")
        >>> env.state_names[0], env.action_names
        ('1,1', ('U', 'D', 'L', 'R'))

    References:
        Russell & Norvig, "Artificial Intelligence: A Modern Approach", 3rd ed., Ch. 17.
    """
    index = {cell: i for i, cell in enumerate(AIMA_CELLS)}
    S, A = len(AIMA_CELLS), len(_MOVES)
    T = np.zeros((S, A, S))
    p_side = (1.0 - p_intended) / 2

    def step(cell: tuple[int, int], move: str) -> int:
        dc, dr = _MOVES[move]
        nxt = (cell[0] + dc, cell[1] + dr)
        return index.get(nxt, index[cell])

    for cell, s in index.items():
        for a, move in enumerate(_MOVES):
            T[s, a, step(cell, move)] += p_intended
            for side in _PERP[move]:
                T[s, a, step(cell, side)] += p_side
    terminal = np.zeros(S, bool)
    reward = np.full(S, living_reward)
    for cell, value in {(4, 3): 1.0, (4, 2): -1.0}.items():
        terminal[index[cell]] = True
        reward[index[cell]] = value
    initial = np.eye(S)[index[(1, 1)]]
    return TabularMDP.from_arrays(T, initial=initial, discount=discount, horizon=None, terminal=terminal,
                                  true_reward=reward, features=np.eye(S), name="aima-4x3",
                                  state_names=[f"{c},{r}" for c, r in AIMA_CELLS], action_names=list(_MOVES))
