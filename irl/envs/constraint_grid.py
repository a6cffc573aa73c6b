"""The 9x9 grid world of maximum likelihood constraint inference (Scobee & Sastry 2020).

A 9x9 grid with eight moves (four straight, four diagonal), a start in one corner and a goal
in the next corner, three blue and three green cells. The nominal reward charges for distance
moved and pays on reaching the goal; the demonstrator also obeys hidden hard constraints
(five forbidden cells, no up-left or up-right moves, no coloured cells), which
:func:`irl.constraints.infer` should recover from its demonstrations.

The layout follows the re-implementation of the example in Rahgooy's ``soft_constraint_irl``
(``scobee_example``): state ``s`` is the cell ``(x, y) = (s % 9, s // 9)``; "up" increases
``y`` (so it adds 9 to the state id); moves off the grid leave the agent in place; with
probability ``slip`` the executed move is uniformly random among the eight; each move costs 4
per unit of distance (``4 * sqrt(2)`` diagonally); entering the goal pays 10 and ends the
episode; planning is discounted by 0.9.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from irl.mdp import MDPValidationError, TabularMDP

__all__ = ["scobee_9x9", "scobee_constraints", "MOVES", "COLOURS", "BLUE", "GREEN",
           "CONSTRAINED_STATES", "CONSTRAINED_ACTIONS", "CONSTRAINED_COLOURS"]

#: Action names and their ``(dx, dy)`` moves, in action order ("up" is ``+y``, i.e. state id ``+ 9``).
MOVES = {"left": (-1, 0), "right": (1, 0), "up": (0, 1), "down": (0, -1),
         "up-left": (-1, 1), "up-right": (1, 1), "down-left": (-1, -1), "down-right": (1, -1)}
#: Colour feature names, in feature order.
COLOURS = ("no colour", "blue", "green")
#: Blue and green cells.
BLUE = (4, 13, 22)
GREEN = (58, 67, 76)
#: The demonstrator's hidden constraints: forbidden cells, forbidden moves (action ids), forbidden colours
#: (feature ids).
CONSTRAINED_STATES = (31, 39, 41, 47, 51)
CONSTRAINED_ACTIONS = (4, 5)  # up-left, up-right
CONSTRAINED_COLOURS = (1, 2)  # blue, green


def scobee_9x9(*, slip: float = 0.0, discount: float = 0.9, horizon: int | None = None, start: int = 0,
               goal: int = 8, goal_reward: float = 10.0, move_cost: float = 4.0) -> TabularMDP:
    """The 9x9 constraint-inference grid world with its *nominal* reward (no constraints).

    Features are the colour indicators ``(S, 3)`` (no colour, blue, green); ``true_reward``
    is the nominal reward ``r(s, a) = -move_cost * |move| + goal_reward * P(s' = goal | s, a)``.
    The constraints the demonstrator obeys are :func:`scobee_constraints`.

    Args:
        slip: probability that the executed move is uniformly random among the eight
            (0 in the hard-constraint experiments; 0.1 in the soft ones).
        discount: discount factor (0.9, as in the reference implementation).
        horizon: ``None`` (infinite horizon, discounted) or a number of steps.
        start: start cell.
        goal: goal cell (terminal).
        goal_reward: reward for entering the goal.
        move_cost: cost per unit of distance moved.

    Returns:
        A :class:`~irl.mdp.TabularMDP` with 81 states and 8 actions.

    Example:
        >>> import irl
        >>> env = irl.envs.make("scobee-9x9")
        >>> env.n_states, env.n_actions, env.action_names[4]
        (81, 8, 'up-left')

    References:
        Scobee & Sastry (2020), "Maximum Likelihood Constraint Inference for Inverse
        Reinforcement Learning", ICLR (the example of their Figure 3).
    """
    if not 0.0 <= slip <= 1.0:
        raise MDPValidationError(f"slip must lie in [0, 1]: got {slip}")
    n, S, A = 9, 81, len(MOVES)
    for name, s in (("start", start), ("goal", goal)):
        if not 0 <= int(s) < S:
            raise MDPValidationError(f"{name} must be a cell id in 0..{S - 1}: got {s}")
    x, y = np.arange(S) % n, np.arange(S) // n
    d = np.array(list(MOVES.values()))
    nx, ny = x[:, None] + d[None, :, 0], y[:, None] + d[None, :, 1]
    inside = (nx >= 0) & (nx < n) & (ny >= 0) & (ny < n)
    dest = np.where(inside, ny * n + nx, np.arange(S)[:, None])  # (S, A) cell reached by each executed move
    T = np.zeros((S, A, S))
    rows = np.repeat(np.arange(S), A)
    T[rows, np.tile(np.arange(A), S), dest.reshape(-1)] += 1.0 - slip
    for b in range(A):  # a slip executes move b whatever was chosen
        T[np.arange(S), :, dest[:, b]] += slip / A
    colour = np.zeros(S, dtype=np.int64)
    colour[list(BLUE)] = 1
    colour[list(GREEN)] = 2
    cost = move_cost * np.hypot(d[:, 0], d[:, 1])
    reward = -cost[None, :] + goal_reward * T[:, :, goal]
    terminal = np.zeros(S, bool)
    terminal[goal] = True
    reward[goal] = 0.0
    initial = np.zeros(S)
    initial[start] = 1.0
    return TabularMDP(transitions=sp.csr_matrix(T.reshape(S * A, S)), n_states=S, n_actions=A, initial=initial,
                      discount=discount, horizon=horizon, features=np.eye(len(COLOURS))[colour],
                      terminal=terminal, true_reward=reward, name="scobee-9x9", action_names=tuple(MOVES),
                      grid_shape=(n, n), feature_names=COLOURS)


def scobee_constraints() -> dict[str, tuple[int, ...]]:
    """The hidden constraints of the example, by kind: ``{"states": ..., "actions": ..., "features": ...}``.

    Example:
        >>> scobee_constraints()["actions"]
        (4, 5)
    """
    return {"states": CONSTRAINED_STATES, "actions": CONSTRAINED_ACTIONS, "features": CONSTRAINED_COLOURS}
