"""Checks that demonstrations could have happened in the MDP they are bound to.

Ids in range and lengths within the horizon are checked by each data type's
``validate``. These checks go further and compare the data with the MDP's
dynamics, start distribution and terminal states; they run once, when the data
meet an MDP in :class:`irl.Evidence`, and are vectorised (no loop over steps).

Each finding is an error naming the trajectory and the step. Three of them can
be legitimate and are accepted when named in ``allow``:

* ``"off_initial_start"``: an episode starts where the MDP's initial distribution
  is 0 (data recorded from other starts; the likelihood of actions does not use
  the start distribution);
* ``"impossible_transitions"``: a step the dynamics give probability 0 (data from
  a slightly different system than the model);
* ``"terminated_elsewhere"``: ``terminated=True`` on an episode whose last state
  is not terminal in the MDP (the MDP does not mark every terminal state).

An action taken in a terminal state is always an error: the episode has ended
there, and the MDP has no dynamics after it.

Example:
    >>> import numpy as np, irl, human_models as hm, demos
    >>> T = np.zeros((2, 1, 2)); T[0, 0, 1] = T[1, 0, 1] = 1.0
    >>> mdp = irl.TabularMDP.from_arrays(T, initial=[1, 0], horizon=2)
    >>> late = demos.Trajectories.from_lists([[1, 1]], [[0]])          # starts in state 1
    >>> try:
    ...     irl.Evidence(mdp, late, hm.Boltzmann(1.0))
    ... except demos.DemoValidationError as e:
    ...     print(str(e)[:75])
    trajectory 0, step 0: it starts in state 1, where the MDP's initial distrib
    >>> ev = irl.Evidence(mdp, late, hm.Boltzmann(1.0), allow=("off_initial_start",))
"""

from __future__ import annotations

from typing import Any, Collection

import numpy as np

from demos.trajectories import DemoValidationError

__all__ = ["ALLOW", "check_allow", "check_trajectories"]

#: The names ``allow`` accepts, with what each one accepts.
ALLOW = {
    "off_initial_start": "episodes that start where the MDP's initial distribution is 0",
    "impossible_transitions": "steps that the MDP's dynamics give probability 0",
    "terminated_elsewhere": "terminated=True on an episode whose last state is not terminal in the MDP",
}


def check_allow(allow: Any) -> frozenset[str]:
    """``allow`` as a frozenset of known names.

    Raises:
        ValueError: a string instead of a collection, or an unknown name (listing the known ones).
    """
    if isinstance(allow, str):
        raise ValueError(f"allow must be a collection of names, e.g. ('off_initial_start',): got the string "
                         f"{allow!r}; known names: {', '.join(ALLOW)}")
    names = frozenset(allow)
    unknown = sorted(str(n) for n in names - set(ALLOW))
    if unknown:
        raise ValueError(f"unknown allow name {unknown[0]!r}; known: {', '.join(ALLOW)}")
    return names


def _possible(mdp: Any, rows: np.ndarray, s_next: np.ndarray) -> np.ndarray | None:
    """Whether ``P[rows, s_next] > 0`` for each pair (``None`` if the MDP has no sparse transitions)."""
    P = getattr(mdp, "transitions", None)
    if P is None or not all(hasattr(P, k) for k in ("indptr", "indices", "data")):
        return None
    S = int(mdp.n_states)
    nz = P.data != 0
    keys = np.repeat(np.arange(P.shape[0], dtype=np.int64), np.diff(P.indptr))[nz] * S + P.indices[nz]
    keys = np.sort(keys)
    q = rows.astype(np.int64) * S + s_next
    if keys.size == 0:
        return np.zeros(q.shape, bool)
    return keys[np.minimum(np.searchsorted(keys, q), keys.size - 1)] == q


def check_trajectories(tr: Any, mdp: Any, *, allow: Collection[str] = (), actions: bool = True) -> None:
    """Refuse trajectories that contradict ``mdp`` (see the module docstring).

    Args:
        tr: :class:`demos.Trajectories` (ids already validated against ``mdp``).
        mdp: the MDP (``initial``, ``terminal``, sparse ``transitions``, sizes).
        allow: names from :data:`ALLOW` to accept instead of refusing.
        actions: whether ``tr.actions`` are observed (``False`` for state-only data:
            a step is then impossible when no action can produce it).

    Raises:
        DemoValidationError: naming the trajectory, the step and what was found.
    """
    allow = check_allow(allow)
    A = int(mdp.n_actions)
    so = tr.state_offsets
    ao = np.concatenate([[0], np.cumsum(tr.lengths)])
    t = np.arange(tr.actions.size) - np.repeat(ao[:-1], tr.lengths)
    last = so[1:] - 1
    s = np.delete(tr.states, last)
    s_next = np.delete(tr.states, so[:-1])

    def episode(k: int) -> int:
        return int(np.searchsorted(ao, k, side="right") - 1)

    terminal = getattr(mdp, "terminal", None)
    terminal = np.zeros(int(mdp.n_states), bool) if terminal is None else np.asarray(terminal, bool)
    bad = terminal[s]
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        what = f"action {tr.actions[k]} is taken" if actions else "the episode continues"
        raise DemoValidationError(f"trajectory {episode(k)}, step {t[k]}: {what} in state {s[k]}, which is "
                                  f"terminal in the MDP; an episode ends when it reaches a terminal state "
                                  f"(expected the trajectory to stop at step {t[k]})")
    if "off_initial_start" not in allow:
        s0 = tr.states[so[:-1]]
        bad = np.asarray(mdp.initial)[s0] == 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            support = np.flatnonzero(np.asarray(mdp.initial) > 0)
            shown = ", ".join(map(str, support[:8])) + (", ..." if support.size > 8 else "")
            raise DemoValidationError(
                f"trajectory {i}, step 0: it starts in state {s0[i]}, where the MDP's initial distribution is 0 "
                f"(expected one of the start states {shown}); if the data were recorded from other starts, pass "
                f"allow=('off_initial_start',) to irl.Evidence")
    if "impossible_transitions" not in allow and s.size:
        if actions:
            ok = _possible(mdp, s * A + tr.actions, s_next)
        else:
            rows = (s[:, None] * A + np.arange(A)[None, :]).ravel()
            ok = _possible(mdp, rows, np.repeat(s_next, A))
            ok = None if ok is None else ok.reshape(-1, A).any(-1)
        if ok is not None and not ok.all():
            k = int(np.flatnonzero(~ok)[0])
            step = (f"state {s[k]} --action {tr.actions[k]}--> state {s_next[k]}" if actions
                    else f"state {s[k]} --> state {s_next[k]} (under any action)")
            raise DemoValidationError(
                f"trajectory {episode(k)}, step {t[k]}: {step} has probability 0 under the MDP's dynamics "
                f"(expected a successor the transitions allow); if the data come from a slightly different "
                f"system, pass allow=('impossible_transitions',) to irl.Evidence")
    if "terminated_elsewhere" not in allow:
        bad = np.asarray(tr.terminated, bool) & ~terminal[tr.states[last]]
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DemoValidationError(
                f"trajectory {i}, step {int(tr.lengths[i])}: terminated=True, but its last state "
                f"{tr.states[last[i]]} is not terminal in the MDP (expected a terminal state, or "
                f"truncated=True for an episode cut off by a time limit); if the MDP does not mark every "
                f"terminal state, pass allow=('terminated_elsewhere',) to irl.Evidence")
