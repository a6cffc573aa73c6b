"""Evidence data types, simulation from a human model, and files.

The lowest layer of the library: it depends on numpy only (torch where a type
needs it) and never imports the layers above. :func:`simulate` delegates to the
``sample`` method of the human model it is given.

Example:
    >>> import irl, human_models as hm, demos
    >>> env = irl.envs.make("gridworld-5x5")
    >>> data = demos.simulate(env, hm.Boltzmann(beta=2.0), irl.envs.true_reward(env), n=5, seed=0)
    >>> len(data)
    5
"""

from __future__ import annotations

from typing import Any

from demos.trajectories import DemoValidationError, Trajectories, Trajectory
from demos.io import DemoFileError, load, save, save_arrays, load_arrays, atomic_write, registry
from demos import trajectory_files  # noqa: F401  (registers the trajectory formats with demos.io)

from demos.world_state import WorldState  # noqa: E402  (registers its file format in `registry`)
from demos.choices import Choices, Comparisons, Corrections, EStops, _from_npz as _choices_from_npz  # noqa: E402

from demos.partial import StateOnly, Transitions, _load_state_only, _load_transitions  # noqa: E402
from demos.deliberation import DeliberationTraces, TraceSet, load_mouselab, load_traces  # noqa: E402
from demos.sampling import SamplingTraces  # noqa: E402
from demos import datasets  # noqa: E402

registry["pluggable-irl/choices"] = _choices_from_npz
registry["pluggable-irl/state-only"] = _load_state_only
registry["pluggable-irl/transitions"] = _load_transitions

from demos import tables  # noqa: E402  (registers the .csv / .jsonl layouts of every evidence type)
from demos.tables import from_dataframe  # noqa: E402
from demos.interop import from_imitation, from_minari, to_imitation, to_minari  # noqa: E402  (lazy imports inside)

__all__ = ["Trajectories", "Trajectory", "DemoValidationError", "DemoFileError", "load", "save", "simulate",
           "save_arrays", "load_arrays", "atomic_write", "registry", "WorldState",
           "Choices", "Comparisons", "Corrections", "EStops", "StateOnly", "Transitions",
           "DeliberationTraces", "SamplingTraces", "TraceSet", "load_mouselab", "load_traces", "datasets", "tables",
           "from_dataframe", "from_imitation", "to_imitation", "from_minari", "to_minari"]


def simulate(mdp: Any, human: Any, reward: Any, n: int, *, seed: int | None = None, **kwargs: Any) -> Any:
    """Simulate ``n`` episodes of evidence from ``human`` acting on ``reward`` in ``mdp``.

    Only delegates to ``human.sample(mdp, reward, n, rng=seed, **kwargs)``, so that
    simulation and inference use the same model.

    Args:
        mdp: a :class:`irl.TabularMDP`.
        human: any object with the ``HumanModel`` interface.
        reward: ``(S,)`` or ``(S, A)`` reward the human acts on.
        n: number of episodes.
        seed: random seed (the same seed gives the same data).
        **kwargs: passed on (e.g. ``horizon`` for infinite-horizon MDPs).

    Returns:
        :class:`Trajectories` (or the evidence type the model produces).

    Raises:
        TypeError: ``human`` has no ``sample`` method.
        ValueError: ``n`` is not an integer >= 1, or ``seed`` neither ``None`` nor an integer >= 0.
    """
    import numpy as np

    def integer(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if not (integer(n) and n >= 1):
        raise ValueError(f"n (the number of episodes) must be an integer >= 1: got {n!r}")
    if not (seed is None or isinstance(seed, np.random.Generator) or (integer(seed) and seed >= 0)):
        raise ValueError(f"seed must be None or an integer >= 0: got {seed!r}")
    if not hasattr(human, "sample"):
        raise TypeError(f"human must have a sample(mdp, reward, n, rng) method: got {type(human).__name__}")
    return human.sample(mdp, reward, n, rng=seed, **kwargs)
