"""Interchangeable models of how humans act on their rewards.

Every model implements the :class:`HumanModel` interface and works with every
solver. Built-in models are also registered by name for the command line
(``irl human-models`` lists them)::

    import human_models as hm
    hm.Boltzmann(beta=5.0)       # soft-optimal (maximum causal entropy)
    hm.BoltzmannQ(beta=5.0)      # softmax over optimal Q (Bayesian IRL)
    hm.make("boltzmann:beta=5")  # the same, from a CLI string

Biased humans (the model you swap in changes what is learned)::

    hm.Myopic(horizon=3, beta=5.0)                  # plans 3 steps ahead
    hm.BoundedPlanner(iterations=3, beta=5.0)        # 3 sweeps of value iteration
    hm.HyperbolicDiscounter(k=1.0, kind="naive")     # time-inconsistent (Evans et al. 2016)
    hm.FalseBelief(confidence=4.0, beta=5.0)         # overconfident about the dynamics
    hm.Noisy(hm.Boltzmann(5.0), epsilon=0.2)         # 20% random actions

Cognition-level humans (policies over computations, scored on deliberation traces)::

    hm.MetaBoltzmann(cost=1.0, depth_cost=0.5, beta=0.3)  # softmax over meta-level Q-values
    hm.RandomClicks()                                     # null model of deliberation
"""

from __future__ import annotations

from human_models.base import BaseHumanModel, HumanModel, HumanModelError, Nesting, NestingMatch, nesting
from human_models.boltzmann import Boltzmann, BoltzmannQ
from human_models.biased import BoundedPlanner, FalseBelief, Myopic, Noisy
from human_models.hyperbolic import HyperbolicDiscounter
from human_models.registry import describe, make, names, register
from human_models.conformance import ConformanceError, check_human_model
from human_models.cognitive import MetaBoltzmann, RandomClicks, amplify, check_meta_human_model

__all__ = ["HumanModel", "BaseHumanModel", "HumanModelError", "Boltzmann", "BoltzmannQ", "make", "names",
           "register", "describe", "check_human_model", "ConformanceError", "Myopic", "BoundedPlanner",
           "HyperbolicDiscounter", "FalseBelief", "Noisy", "MetaBoltzmann", "RandomClicks", "amplify",
           "check_meta_human_model", "Nesting", "NestingMatch", "nesting"]
