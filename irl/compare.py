"""Which human model explains the data best? Held-out log-likelihood and information criteria.

Each candidate (a human model, optionally with its own reward model) is fitted
by MAP on training evidence; it is scored by the log-likelihood of held-out
evidence at the fitted parameters and by BIC on the training evidence. Human
parameters given as priors are fitted too (and counted as free parameters);
discrete ones are summed out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch

from irl.evidence import Evidence
from irl.mdp import TabularMDP
from irl.rewards import RewardModel, default_reward_model
from irl.solvers.base import LogJoint, RewardEstimate, n_observations

__all__ = ["ModelScore", "compare", "bic", "held_out_log_likelihood"]


def bic(log_likelihood: float, n_params: int, n_observations: int) -> float:
    """Bayesian information criterion ``-2 log L + k log n`` (lower is better).

    References:
        Schwarz (1978), "Estimating the dimension of a model", Annals of Statistics.
    """
    return -2.0 * float(log_likelihood) + int(n_params) * np.log(max(int(n_observations), 1))


def held_out_log_likelihood(estimate: RewardEstimate, env: TabularMDP, data: Any, human: Any,
                            reward_model: RewardModel | None = None) -> float:
    """Log-likelihood of ``data`` at a fitted estimate (its reward and human parameters).

    Args:
        estimate: a :class:`RewardEstimate` from :class:`irl.MaxEnt` fitted with ``human``.
        env: the MDP of ``data``.
        data: held-out evidence.
        human: the same human model object the estimate was fitted with.
        reward_model: the reward model used in the fit (default as in the fit).
    """
    model = reward_model or default_reward_model(env)
    joint = LogJoint([Evidence(env, data, human)], model)
    x = np.asarray(estimate.info.get("x", estimate.theta), dtype=np.float64)
    if x.size != joint.dim:
        raise ValueError(f"the estimate has {x.size} parameters but this human/reward model needs {joint.dim}: "
                         f"pass the human model the estimate was fitted with")
    with torch.no_grad():
        return float(joint.log_likelihood(torch.from_numpy(x)))


@dataclass
class ModelScore:
    """One row of a model comparison.

    Attributes:
        name: the candidate's label.
        train_log_likelihood: at the MAP fit, on the training evidence.
        held_out_log_likelihood: at the MAP fit, on the held-out evidence (``nan`` if none).
        bic: BIC on the training evidence.
        n_params: free parameters (reward + continuous human parameters).
        estimate: the fit.
    """

    name: str
    train_log_likelihood: float
    held_out_log_likelihood: float
    bic: float
    n_params: int
    estimate: RewardEstimate


def compare(candidates: Mapping[str, Any], env: TabularMDP, train: Any, test: Any = None, *,
            reward_model: RewardModel | None = None, prior: Any = None,
            fit: Callable[..., RewardEstimate] | None = None) -> list[ModelScore]:
    """Fit every candidate human model and rank them (best first).

    Ranking is by held-out log-likelihood when ``test`` is given, else by BIC.

    Args:
        candidates: ``{label: human model}``.
        env: the MDP of the evidence.
        train: training evidence (e.g. :class:`demos.Trajectories`).
        test: held-out evidence of the same kind, or ``None``.
        reward_model: shared reward model (default linear in features / tabular).
        prior: reward prior for the MAP fits.
        fit: ``fit(human) -> RewardEstimate`` to override the default MaxEnt fit.

    Returns:
        A list of :class:`ModelScore`, best first.

    Example:
        >>> import irl, human_models as hm, demos
        >>> env = irl.envs.make("gridworld-5x5")
        >>> d = demos.simulate(env, hm.Boltzmann(5.0), env.true_reward, n=60, seed=0)
        >>> rows = irl.compare({"boltzmann": hm.Boltzmann(5.0), "myopic": hm.Myopic(horizon=2, beta=5.0)},
        ...                    env, d.subset(slice(0, 40)), d.subset(slice(40, None)))
        >>> [r.name for r in rows]
        ['boltzmann', 'myopic']
    """
    from irl.solvers.maxent import MaxEnt

    if not candidates:
        raise ValueError("compare needs at least one candidate human model")
    model = reward_model or default_reward_model(env)
    rows = []
    for name, human in candidates.items():
        est = fit(human) if fit is not None else MaxEnt(human=human, reward_model=model, prior=prior).fit(env, train)
        k = int(est.info.get("n_free_params", est.theta.size))
        n = int(est.info.get("n_observations", n_observations(train)))
        held = (held_out_log_likelihood(est, env, test, human, model) if test is not None else float("nan"))
        rows.append(ModelScore(name=name, train_log_likelihood=est.log_likelihood, held_out_log_likelihood=held,
                               bic=bic(est.log_likelihood, k, n), n_params=k, estimate=est))
    key = (lambda r: -r.held_out_log_likelihood) if test is not None else (lambda r: r.bic)
    return sorted(rows, key=key)
