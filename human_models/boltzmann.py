"""Boltzmann-rational humans: soft-optimal (maximum causal entropy) and softmax over optimal Q."""

from __future__ import annotations

from typing import Any

import torch

from human_models.base import BaseHumanModel, per_batch, positive_param
from irl.autodiff import as_reward_tensor, q_values, soft_log_policy
from irl.mdp import TabularMDP

__all__ = ["Boltzmann", "BoltzmannQ"]


class Boltzmann(BaseHumanModel):
    """Soft-optimal human: ``pi(a|s) ∝ exp(beta * Q_soft(s, a))`` with soft values of ``beta * r``.

    The policy of maximum causal entropy IRL: the human plans with soft value
    iteration on the reward scaled by ``beta``; ``beta -> inf`` is optimal,
    ``beta -> 0`` uniformly random. Its gradient w.r.t. the reward is one
    occupancy pass (``has_closed_form_gradient``), and with a fixed ``beta`` its
    log-likelihood is concave in a linear reward's parameters
    (``concave_in_reward``: one optimiser start suffices).

    Args:
        beta: rationality (inverse temperature), ``> 0``, or a prior over it
            (e.g. ``priors.LogNormal(0, 1)``) to infer it with the reward.

    Example:
        >>> import irl, human_models as hm
        >>> env = irl.envs.make("gridworld-5x5")
        >>> logp = hm.Boltzmann(beta=2.0).action_log_probs(env, env.true_reward)
        >>> tuple(logp.shape) == (env.horizon, env.n_states, env.n_actions)
        True

    References:
        Ziebart, Bagnell & Dey (2010), "Modeling interaction via the principle of
        maximum causal entropy", ICML.
    """

    name = "boltzmann"
    has_closed_form_gradient = True
    temperature = "beta"  # the policy depends on (beta, r) only through beta * r
    concave_in_reward = True

    def __init__(self, beta: float = 1.0) -> None:
        self.beta = positive_param("beta", beta)

    @property
    def params(self) -> dict[str, Any]:
        return {"beta": self.beta}

    def action_log_probs(self, mdp: TabularMDP, reward: Any) -> torch.Tensor:
        r = as_reward_tensor(reward, mdp)
        return soft_log_policy(mdp, per_batch(self._value("beta"), r) * r)  # = log_softmax(q_values(...))


class BoltzmannQ(BaseHumanModel):
    """Softmax over the *optimal* Q-values: ``pi(a|s) ∝ exp(beta * Q*(s, a))``.

    The likelihood of Bayesian IRL (Ramachandran & Amir 2007): the human knows
    the optimal action values and picks noisily among them (no entropy in the
    planning itself). The gradient of ``Q*`` is the occupancy pass of the
    greedy policy (``has_closed_form_gradient``); it is a subgradient where
    optimal actions tie.

    Args:
        beta: rationality (inverse temperature), ``> 0``.

    Example:
        >>> import irl, human_models as hm
        >>> env = irl.envs.make("gridworld-5x5")
        >>> p = hm.BoltzmannQ(beta=10.0).action_probs(env, env.true_reward)
        >>> bool(abs(p.sum(-1) - 1).max() < 1e-9)
        True

    References:
        Ramachandran & Amir (2007), "Bayesian Inverse Reinforcement Learning", IJCAI.
    """

    name = "boltzmann-q"
    has_closed_form_gradient = True
    temperature = "beta"  # Q* is positively homogeneous in r: the policy depends only on beta * r

    def __init__(self, beta: float = 1.0) -> None:
        self.beta = positive_param("beta", beta)

    @property
    def params(self) -> dict[str, Any]:
        return {"beta": self.beta}

    def action_log_probs(self, mdp: TabularMDP, reward: Any) -> torch.Tensor:
        r = as_reward_tensor(reward, mdp)
        q = q_values(mdp, r, soft=False)
        beta = per_batch(self._value("beta"), r)
        return torch.log_softmax((beta[..., None] if isinstance(beta, torch.Tensor) and mdp.horizon is not None
                                  else beta) * q, dim=-1)
