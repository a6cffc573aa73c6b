"""pluggable-irl: inverse reinforcement learning with a swappable model of the human.

Example:
    >>> import irl, human_models as hm, demos
    >>> env = irl.envs.make("gridworld-5x5")
    >>> truth = irl.envs.true_reward(env)
    >>> data = demos.simulate(env, hm.Boltzmann(beta=5.0), truth, n=50, seed=0)
    >>> est = irl.MaxEnt(human=hm.Boltzmann(beta=5.0)).fit(env, data)
    >>> policy = irl.plan(env, est.reward)
    >>> bool(irl.metrics.expected_value_difference(env, policy, truth) < 0.05 * irl.metrics.optimal_return(env, truth))
    True
"""

# layer 2 first (the mathematics of MDPs), then the layers that use it
from irl.mdp import MDPValidationError, TabularMDP
from irl import planning, rewards, autodiff
from irl import envs
from irl.evidence import Evidence
from irl.solvers import (FlatDirection, IdentifiabilityWarning, LocalOptimaWarning, LogJoint, MaxEnt,
                         RewardEstimate)
from irl.plan import plan
from irl import side_effects
from irl import metrics
from irl import constraints
from irl import robust
from irl.compare import PosteriorScore, compare, compare_posteriors
from irl.posterior import ConvergenceWarning, Posterior
from irl.solvers import BayesianIRL
from irl import adapters  # layer 5: its third-party imports happen only when an adapter is used
from irl import datasets
from irl import active
from irl import norms  # noqa: E402  (shared norms, partial pooling: irl.norms.SharedReward)

from irl._version import __version__

__all__ = ["TabularMDP", "MDPValidationError", "planning", "rewards", "autodiff", "envs", "Evidence", "LogJoint",
           "MaxEnt", "RewardEstimate", "plan", "metrics", "__version__",
           "BayesianIRL", "Posterior", "ConvergenceWarning", "compare", "compare_posteriors", "PosteriorScore",
           "FlatDirection", "IdentifiabilityWarning", "LocalOptimaWarning", "adapters", "datasets"]
