"""Sufficient statistics of evidence, computed once per (observation, MDP).

A likelihood evaluation should cost one planner call plus a gather. Everything
that depends only on the data and the MDP (counts of ``(t, s, a)``, index
tensors, log transition probabilities of observed steps, visit tables) is
computed the first time an observation meets an MDP (when an
:class:`irl.Evidence` binds them) and reused by every later call. The table is
keyed weakly by the MDP object: it is dropped with the MDP, and a different
MDP (even an equal one) gets its own statistics.

Example:
    >>> import numpy as np, demos
    >>> from demos.statistics import memo
    >>> class M: pass
    >>> d, mdp, calls = demos.Trajectories.from_lists([[0, 1]], [[0]]), M(), []
    >>> for _ in range(3):
    ...     _ = memo(d, mdp, "n", lambda: calls.append(1) or len(d))
    >>> len(calls)
    1
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, TypeVar

__all__ = ["memo"]

T = TypeVar("T")


def memo(observation: Any, mdp: Any, name: str, compute: Callable[[], T]) -> T:
    """``compute()`` once per ``(observation, mdp, name)``; later calls return the stored value.

    Args:
        observation: an evidence object (frozen dataclasses are fine: the table
            lives in the instance dictionary).
        mdp: the MDP the statistics belong to (held weakly).
        name: which statistic (one observation may store several).
        compute: builds the value; it is not called again while ``mdp`` lives.

    Returns:
        The stored (or freshly computed) value.
    """
    table = observation.__dict__.get("_statistics")
    if table is None:
        table = weakref.WeakKeyDictionary()
        object.__setattr__(observation, "_statistics", table)
    try:
        per = table.setdefault(mdp, {})
    except TypeError:  # an MDP that cannot be referenced weakly: no memo, still correct
        return compute()
    if name not in per:
        per[name] = compute()
    return per[name]
