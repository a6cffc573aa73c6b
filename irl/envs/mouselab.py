"""The Mouselab-MDP environment (kept for its old import path; the code lives in :mod:`irl.metalevel`).

The tree, the meta-level MDP and its solvers are in :mod:`irl.metalevel`
(:mod:`~irl.metalevel.tree`, :mod:`~irl.metalevel.mouselab`,
:mod:`~irl.metalevel.exact`, :mod:`~irl.metalevel.approx`); the study
workflow (``fit_participants``, ``random_effects_bms``, ``posterior_with_envelope``,
``ParticipantFit``, ``default_cost_grid``) moved to :mod:`irl.metalevel.population`
(see the changelog): an environment module does not import solvers.
"""

from __future__ import annotations

from irl.metalevel.approx import EnvelopeSolver, MyopicSolver
from irl.metalevel.exact import BruteForceSolver, SymmetricTreeSolver
from irl.metalevel.mdp import STOP, MetaLevelError, MetaSolver, meta_params
from irl.metalevel.mouselab import (FixedReward, MetaLevelMDP, MouselabMDP, depth_reward_model, mouselab,
                                    mouselab_312, optimal_policy_summary)
from irl.metalevel.tree import BRANCHING_312, VALUES_312, MouselabTree

__all__ = ["MouselabTree", "MetaLevelMDP", "MetaLevelError", "MetaSolver", "SymmetricTreeSolver",
           "BruteForceSolver", "MyopicSolver", "EnvelopeSolver", "MouselabMDP", "mouselab", "mouselab_312",
           "FixedReward", "depth_reward_model", "meta_params", "optimal_policy_summary", "STOP",
           "VALUES_312", "BRANCHING_312"]
