"""Adapters to other tools: a gymnasium reward wrapper, ArviZ export, imitation, Minari, pandas.

Each adapter imports its library only when used, and a missing one raises an
ImportError naming the extra to install. The data converters live with the data
(:mod:`demos.interop`, :mod:`demos.tables`) and are re-exported here.

* :class:`InferredRewardWrapper`: train any gymnasium agent (stable-baselines3, ...) on
  an inferred reward, a posterior mean or a posterior draw per episode.
* :func:`to_arviz`: a posterior with its pointwise log-likelihood as an ArviZ ``InferenceData``.
* :func:`demos.from_imitation`, :meth:`demos.Trajectories.to_imitation`,
  :func:`demos.from_minari`, :func:`demos.to_minari`,
  :meth:`demos.Trajectories.from_dataframe`, :meth:`demos.Trajectories.to_dataframe`.
"""

from __future__ import annotations

from demos.interop import from_imitation, from_minari, to_imitation, to_minari
from demos.tables import from_dataframe, to_dataframe
from irl.adapters.arviz_export import to_arviz

__all__ = ["InferredRewardWrapper", "to_arviz", "from_imitation", "to_imitation", "from_minari", "to_minari",
           "from_dataframe", "to_dataframe"]


def __getattr__(name: str) -> object:
    if name == "InferredRewardWrapper":  # imports gymnasium: only when asked for
        from irl.adapters.reward_wrapper import InferredRewardWrapper

        return InferredRewardWrapper
    raise AttributeError(f"module 'irl.adapters' has no attribute {name!r}")
