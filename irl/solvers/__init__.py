"""Solvers turn prior x likelihood into an answer (a point estimate or a posterior)."""

from irl.solvers.base import FlatDirection, IdentifiabilityWarning, LocalOptimaWarning, LogJoint, RewardEstimate
from irl.solvers.maxent import MaxEnt
from irl.solvers.bayesian import BayesianIRL
from irl.solvers import samplers

__all__ = ["LogJoint", "RewardEstimate", "FlatDirection", "IdentifiabilityWarning", "LocalOptimaWarning", "MaxEnt",
           "BayesianIRL", "samplers", "rlsp"]
from irl.solvers import rlsp  # noqa: E402  (RLSP as a fit: MaxEnt on world-state evidence)
