"""Gymnasium toy-text tables as arrays (the ``gymnasium`` extra), read lazily by :meth:`irl.TabularMDP.from_gymnasium`.

This adapter sits beside :mod:`irl.mdp` in layer 2 and never imports it: it
returns plain arrays, and the MDP builds itself from them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["tables_from_gymnasium", "require_gymnasium"]


def require_gymnasium() -> Any:
    """Import gymnasium or raise an ImportError naming the extra to install."""
    try:
        import gymnasium
    except ImportError:
        raise ImportError("this needs gymnasium: pip install 'pluggable-irl[gymnasium]'") from None
    return gymnasium


def tables_from_gymnasium(env_or_id: Any, *, horizon: int | None = None, discount: float = 1.0,
                          **make_kwargs: Any) -> dict[str, Any]:
    """Read a toy-text environment's transition table ``P[s][a] = [(p, s', r, done), ...]`` into arrays.

    The expected reward ``E[r | s, a]`` becomes ``true_reward (S, A)``; states entered
    by a ``done`` transition become terminal. ``horizon`` defaults to the
    environment's time limit.

    Returns:
        The keyword arguments of :class:`irl.TabularMDP` (``transitions``, ``n_states``, ...).

    Raises:
        ValueError: the environment has no tabular transition table (the MDP
            turns it into an ``MDPValidationError``).
    """
    gym = require_gymnasium()
    env = gym.make(env_or_id, **make_kwargs) if isinstance(env_or_id, str) else env_or_id
    raw = env.unwrapped
    table = getattr(raw, "P", None)
    if not isinstance(table, dict):
        raise ValueError(f"{raw!r} has no tabular transition table env.unwrapped.P; only toy-text "
                                 f"environments (FrozenLake, Taxi, CliffWalking) can be converted")
    S, A = int(env.observation_space.n), int(env.action_space.n)
    rows, cols, vals = [], [], []
    reward = np.zeros((S, A))
    terminal = np.zeros(S, bool)
    for s in range(S):
        for a in range(A):
            for p, nxt, r, done in table[s][a]:
                rows.append(s * A + a)
                cols.append(int(nxt))
                vals.append(float(p))
                reward[s, a] += float(p) * float(r)
                if done:
                    terminal[int(nxt)] = True
    # the episode is over once a done transition enters a state: gymnasium pays nothing from there,
    # so a terminal state's own reward (paid once on arrival in this library's convention) is 0
    reward[terminal] = 0.0
    P = sp.csr_matrix((vals, (rows, cols)), shape=(S * A, S))
    initial = getattr(raw, "initial_state_distrib", None)
    if initial is None:
        raise ValueError(f"{raw!r} exposes no initial_state_distrib")
    if horizon is None and env.spec is not None:
        horizon = env.spec.max_episode_steps
    spec_id = env.spec.id if env.spec is not None else type(raw).__name__
    desc = getattr(raw, "desc", None)
    grid = tuple(np.asarray(desc).shape) if desc is not None and np.asarray(desc).size == S else None
    return dict(transitions=P, n_states=S, n_actions=A, initial=np.asarray(initial, dtype=np.float64),
                discount=discount, horizon=horizon, terminal=terminal, true_reward=reward, name=spec_id,
                grid_shape=grid)
