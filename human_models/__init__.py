"""Interchangeable models of how humans act on their rewards.

Every model implements the :class:`HumanModel` interface and works with every
solver. Built-in models are also registered by name for the command line
(``irl human-models`` lists them)::

    import human_models as hm
    hm.Boltzmann(beta=5.0)       # soft-optimal (maximum causal entropy)
    hm.BoltzmannQ(beta=5.0)      # softmax over optimal Q (Bayesian IRL)
    hm.make("boltzmann:beta=5")  # the same, from a CLI string
"""

from __future__ import annotations

from human_models.base import BaseHumanModel, HumanModel, HumanModelError
from human_models.boltzmann import Boltzmann, BoltzmannQ
from human_models.registry import describe, make, names, register
from human_models.conformance import check_human_model

__all__ = ["HumanModel", "BaseHumanModel", "HumanModelError", "Boltzmann", "BoltzmannQ", "make", "names",
           "register", "describe", "check_human_model"]
