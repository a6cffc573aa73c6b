"""RLSP (Shah et al. 2019) as a fit: MaxEnt on the observed state of the world.

Moved here from :mod:`irl.envs.rlsp` (an environment module does not import
solvers); the problems themselves stay there.

References:
    Shah, Krasheninnikov, Alexander, Abbeel & Dragan (2019), "Preferences
    Implicit in the State of the World", ICLR.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["infer"]


def infer(prob: Any, *, start: str = "known", beta: float = 1.0, prior_scale: float = 0.5,
          human: Any = None) -> Any:
    """RLSP: the MAP reward weights given the observed world state (the paper's settings by default).

    Fits ``irl.MaxEnt`` (L-BFGS on the log-joint) to one piece of evidence,
    ``irl.Evidence(prob.human_mdp(), prob.world_state(), human)``, with a reward
    linear in the features and a Gaussian prior ``N(0, prior_scale^2)`` on each
    weight. The paper's "additive" combination plans on
    ``prob.task_weights + estimate.theta``.

    Args:
        prob: the experiment.
        start: ``"known"`` (the person started in ``s_{-T}``) or ``"uniform"``
            (a uniform prior over every state, Section 5.3 of the paper).
        beta: the person's rationality (``hm.Boltzmann(beta)``) when ``human`` is not given.
        prior_scale: standard deviation of the Gaussian prior on the weights.
        human: any human model (default ``hm.Boltzmann(beta)``).

    Returns:
        :class:`irl.RewardEstimate` whose ``theta`` are the inferred feature weights.

    Raises:
        ValueError: unknown ``start``.

    Example:
        >>> import irl
        >>> p = irl.envs.rlsp.problem("rlsp-room")
        >>> est = irl.solvers.rlsp.infer(p)
        >>> bool(est.theta[0] < -0.2)          # broken vases are bad
        True
        >>> irl.envs.rlsp.true_reward_fraction(p, p.task_weights + est.theta)
        1.0
    """
    import human_models as hm
    import priors
    from demos import WorldState
    from irl.evidence import Evidence
    from irl.rewards import LinearReward
    from irl.solvers import MaxEnt

    mdp = prob.human_mdp()
    if start == "known":
        ws = prob.world_state()
    elif start == "uniform":
        ws = WorldState(states=[prob.observed_state], horizon=prob.n_human_actions,
                        start_distribution=np.full(mdp.n_states, 1.0 / mdp.n_states))
    else:
        raise ValueError(f"start must be 'known' or 'uniform': got {start!r}")
    human = hm.Boltzmann(beta) if human is None else human
    solver = MaxEnt(human=human, reward_model=LinearReward.from_mdp(mdp), prior=priors.Gaussian(0.0, prior_scale))
    return solver.fit([Evidence(mdp, ws, human)])
