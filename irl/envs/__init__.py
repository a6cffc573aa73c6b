"""Named environments: ``irl.envs.make(name)``, ``irl.envs.names()``, ``irl.envs.true_reward(env)``.

Built in: ``gridworld-5x5``, ``gridworld-8x8``, ``gridworld-16x16`` (terrain
gridworlds), ``aima-4x3`` (Russell & Norvig), ``objectworld`` and ``binaryworld``
(one map per ``seed``), and with the ``gymnasium`` extra
``frozenlake-4x4``, ``frozenlake-8x8``, ``taxi``, ``cliffwalking``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from irl.envs import constraint_grid
from irl.envs.aima import aima_4x3
from irl.envs.gridworld import gridworld
from irl.envs.gym_adapter import mdp_from_gymnasium
from irl.mdp import TabularMDP

__all__ = ["make", "names", "register", "true_reward", "describe", "gridworld", "aima_4x3", "UnknownEnvError"]


class UnknownEnvError(KeyError):
    """An environment name is not registered; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


_REGISTRY: dict[str, tuple[Callable[..., TabularMDP], str]] = {}


def register(name: str, factory: Callable[..., TabularMDP], summary: str = "") -> None:
    """Register an environment factory under ``name``."""
    _REGISTRY[name] = (factory, summary)


def _load_plugins() -> None:
    """Register environments of installed plugins (entry-point group ``pluggable_irl.envs``)."""
    from irl.plugins import load_plugins

    def add(name: str, factory: Any, dist: str) -> None:
        if not callable(factory):
            raise TypeError(f"expected a function returning a TabularMDP, got {type(factory).__name__}")
        doc = (getattr(factory, "__doc__", None) or "").strip().splitlines()
        register(name, factory, f"{doc[0] if doc else ''} [plugin: {dist}]".strip())

    load_plugins("envs", lambda: _REGISTRY, add)


def names() -> list[str]:
    """Registered environment names (built-in, registered in-process, and from plugins), sorted."""
    _load_plugins()
    return sorted(_REGISTRY)


def describe() -> list[tuple[str, str]]:
    """``(name, summary)`` for every registered environment."""
    return [(n, _REGISTRY[n][1]) for n in names()]


def make(name: str, **kwargs: Any) -> TabularMDP:
    """Build a registered environment (built-in, registered, or from an installed plugin).

    Raises:
        UnknownEnvError: unknown name, listing the known ones.

    Example:
        >>> import irl
        >>> irl.envs.make("gridworld-8x8").n_states
        64
    """
    if name not in _REGISTRY:
        _load_plugins()
    if name not in _REGISTRY:
        raise UnknownEnvError(f"unknown environment {name!r}; known: {', '.join(names())}")
    mdp = _REGISTRY[name][0](**kwargs)
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"environment {name!r}: its factory must return a TabularMDP, got {type(mdp).__name__}")
    return mdp


def true_reward(env: TabularMDP) -> np.ndarray:
    """The environment's own reward ``(S,)`` or ``(S, A)``.

    Raises:
        ValueError: the environment defines none.
    """
    if env.true_reward is None:
        raise ValueError(f"environment {env.name!r} defines no true reward")
    return np.array(env.true_reward)


for _n, _h in ((5, 12), (8, 20), (16, 40)):
    register(f"gridworld-{_n}x{_n}", (lambda n=_n, h=_h, **kw: gridworld(n, horizon=kw.pop("horizon", h), **kw)),
             f"{_n}x{_n} terrain gridworld, 5 actions, slip 0.1, horizon {_h}, 4 terrain features")
register("scobee-9x9", lambda **kw: constraint_grid.scobee_9x9(**kw),
         "9x9 grid, 8 moves, start 0, goal 8, blue/green cells, discount 0.9; the constraint-inference example "
         "of Scobee & Sastry (hidden constraints: irl.envs.constraint_grid.scobee_constraints())")
register("aima-4x3", aima_4x3, "Russell & Norvig's 4x3 world, infinite horizon, terminals +1/-1")
register("frozenlake-4x4", lambda **kw: mdp_from_gymnasium("FrozenLake-v1", map_name="4x4", **kw),
         "gymnasium FrozenLake-v1 4x4 (slippery), horizon 100 [gymnasium extra]")
register("frozenlake-8x8", lambda **kw: mdp_from_gymnasium("FrozenLake8x8-v1", **kw),
         "gymnasium FrozenLake-v1 8x8 (slippery), horizon 200 [gymnasium extra]")
register("taxi", lambda **kw: mdp_from_gymnasium("Taxi-v3", **kw), "gymnasium Taxi-v3, horizon 200 [gymnasium extra]")
register("cliffwalking", lambda **kw: mdp_from_gymnasium("CliffWalking-v0", **kw),
         "gymnasium CliffWalking-v0 [gymnasium extra]")

# RLSP gridworlds (Shah et al. 2019, "Preferences Implicit in the State of the World")
from irl.envs import rlsp  # noqa: E402

for _name in rlsp.names():
    register(_name, (lambda n=_name, **kw: rlsp.make(n, **kw)), rlsp.summary(_name))

# Environments that expose a bias (temptation, risky shortcut, lava, Evans et al.'s restaurant choice)
from irl.envs import bias_envs  # noqa: E402

for _name, (_factory, _summary) in bias_envs.ENVIRONMENTS.items():
    register(_name, _factory, _summary)

# A park walked by agents with different goals and the same norms (irl.norms)
from irl.envs import park  # noqa: E402

register("park", park.park, "10x10 park: paths, lawns and flowerbeds (a shared norm), landmarks A-F as agents' "
         "goals; 5 actions, slip 0.1, horizon 14")

# Meta-level problems (deliberation as a decision problem; see irl.metalevel)
from irl.envs import mouselab  # noqa: E402
from irl.metalevel.bernoulli import metareasoning_bernoulli  # noqa: E402

register("mouselab-312", mouselab.mouselab_312,
         "Mouselab-MDP 13-node tree (3 branches, chain, 2 leaves), rewards by depth +-{2,4},{4,8},{24,48}, "
         "click fee 1; meta-level problem in env.meta")
register("metareasoning-bernoulli", metareasoning_bernoulli,
         "Bernoulli metareasoning (Hay et al. 2012): k options with Beta beliefs, sample one per computation, "
         "stop picks the best posterior mean; k=3, prior=(1, 1), horizon=10, cost=0; meta-level problem in env.meta")

# Objectworld and binaryworld (Levine et al. 2011; Wulfmeier et al. 2015): nonlinear rewards, one map per seed
from irl.envs import objectworld as _objectworld  # noqa: E402

register("objectworld", _objectworld.objectworld,
         "Levine et al.'s objectworld (default 32x32, 2 colours, discrete features, seed=...), slip 0.3, "
         "discount 0.9; nonlinear reward +5/-10/0")
register("binaryworld", _objectworld.binaryworld,
         "Wulfmeier et al.'s binaryworld (default 32x32, seed=...): reward +1/-1 for 4/5 blue cells in the "
         "3x3 neighbourhood")

# The small problems of BROIL (Brown, Niekum & Petrik 2020): robust planning over a reward posterior
from irl.envs import broil  # noqa: E402

for _name, (_factory, _summary) in broil.ENVIRONMENTS.items():
    register(_name, _factory, _summary)
