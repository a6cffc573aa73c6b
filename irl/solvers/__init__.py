"""Solvers turn prior x likelihood into an answer (a point estimate or a posterior)."""

from irl.solvers.base import LogJoint, RewardEstimate
from irl.solvers.maxent import MaxEnt
from irl.solvers.bayesian import BayesianIRL
from irl.solvers import samplers

__all__ = ["LogJoint", "RewardEstimate", "MaxEnt", "BayesianIRL", "samplers"]
from irl.solvers import rlsp  # noqa: E402  (RLSP as a fit: MaxEnt on world-state evidence)
