"""Gymnasium toy-text environments as :class:`~irl.mdp.TabularMDP` (needs the ``gymnasium`` extra)."""

from __future__ import annotations

from typing import Any

from irl.gym_tables import require_gymnasium
from irl.mdp import TabularMDP

__all__ = ["mdp_from_gymnasium", "require_gymnasium"]


def mdp_from_gymnasium(env_or_id: Any, *, horizon: int | None = None, discount: float = 1.0,
                       **make_kwargs: Any) -> TabularMDP:
    """Read a toy-text environment's transition table (see :meth:`irl.TabularMDP.from_gymnasium`).

    Raises:
        MDPValidationError: the environment has no tabular transition table.
    """
    return TabularMDP.from_gymnasium(env_or_id, horizon=horizon, discount=discount, **make_kwargs)
