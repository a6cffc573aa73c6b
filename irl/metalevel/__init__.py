"""Cognition-level modelling: deliberation as a meta-level MDP, and its solvers.

Layer 2 of the library (beside :mod:`irl.planning`): the mathematics of
meta-level MDPs, usable by the human models.

* :mod:`irl.metalevel.mdp`: the interface every deliberation problem
  implements (:class:`MetaMDP`: beliefs, computations with costs, the stop
  action and its value) and every solver (:class:`MetaSolver`);
* problems: :mod:`irl.metalevel.mouselab` (the Mouselab-MDP tree task,
  :mod:`irl.metalevel.tree`, solvers in :mod:`irl.metalevel.exact` and
  :mod:`irl.metalevel.approx`) and :mod:`irl.metalevel.bernoulli` (Bernoulli
  metareasoning: which option to sample next); both are registered
  environments (``irl.envs.make("mouselab-312")``,
  ``irl.envs.make("metareasoning-bernoulli")``);
* :mod:`irl.metalevel.population` (layer 5, imported on its own): fitting a
  study, per-participant fits, model comparison and random-effects selection.

Example:
    >>> import irl
    >>> env = irl.envs.make("metareasoning-bernoulli", k=2, horizon=4)
    >>> env.meta.n_actions   # stop, or sample one of the two options
    3
"""

from __future__ import annotations

from irl.metalevel.mdp import STOP, MetaEnv, MetaLevelError, MetaMDP, MetaSolver, meta_params
from irl.metalevel.tree import BRANCHING_312, VALUES_312, MouselabTree
from irl.metalevel.exact import BruteForceSolver, SymmetricTreeSolver
from irl.metalevel.approx import EnvelopeSolver, MyopicSolver
from irl.metalevel.mouselab import (FixedReward, MetaLevelMDP, MouselabMDP, depth_reward_model, mouselab,
                                    mouselab_312, optimal_policy_summary)
from irl.metalevel.bernoulli import (BernoulliMetaMDP, BernoulliExactSolver, BernoulliMyopicSolver,
                                     metareasoning_bernoulli)

__all__ = ["STOP", "MetaEnv", "MetaLevelError", "MetaMDP", "MetaSolver", "meta_params", "MouselabTree",
           "BRANCHING_312", "VALUES_312", "BruteForceSolver", "SymmetricTreeSolver", "EnvelopeSolver",
           "MyopicSolver", "MetaLevelMDP", "MouselabMDP", "FixedReward", "depth_reward_model", "mouselab",
           "mouselab_312", "optimal_policy_summary", "BernoulliMetaMDP", "BernoulliExactSolver",
           "BernoulliMyopicSolver", "metareasoning_bernoulli"]
