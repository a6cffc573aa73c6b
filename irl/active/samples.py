"""The belief about the reward in active learning: weighted reward samples (:class:`RewardSamples`) and
the names of criteria and answer kinds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from irl.mdp import TabularMDP


#: The query-selection criteria, by name.
CRITERIA: tuple[str, ...] = ("information_gain", "volume_removal", "max_regret", "thompson", "random")

#: What a human answers to a query of ``K`` options: the best one, or a full ranking.
ANSWERS: tuple[str, ...] = ("choice", "ranking")

#: Elements of an ``(N, Q, K)`` block scored at once (about 32 MB of float64).
_BLOCK = 4_000_000

class WeightDegeneracyWarning(UserWarning):
    """The importance weights of the reward samples have collapsed (few effective samples)."""

@dataclass(frozen=True, eq=False)
class RewardSamples:
    """A belief about the reward as ``N`` weighted samples.

    Attributes:
        rewards: ``(N, S, A)`` float64 reward samples (read-only).
        log_weights: ``(N,)`` normalised log-weights (``logsumexp = 0``); uniform by default.
        human: per-sample values of the human's inferred parameters, ``name -> (N,)``
            (e.g. ``"boltzmann.beta"`` from an :class:`irl.Posterior`).
        theta: ``(N, P)`` the reward parameters behind the rewards, when known
            (draws of a prior or a posterior); :func:`run` moves them when the
            weights degenerate.

    Example:
        >>> import numpy as np
        >>> from irl.active import RewardSamples
        >>> b = RewardSamples(np.zeros((4, 3, 2)), np.log([0.7, 0.1, 0.1, 0.1]))
        >>> round(b.ess, 3), b.mean_reward.shape
        (1.923, (3, 2))
    """

    rewards: np.ndarray
    log_weights: np.ndarray | None = None
    human: dict[str, np.ndarray] = field(default_factory=dict)
    theta: np.ndarray | None = None

    def __post_init__(self) -> None:
        r = np.array(self.rewards, dtype=np.float64)
        if r.ndim != 3 or r.shape[0] < 1:
            raise ValueError(f"reward samples must have shape (N, S, A) with N >= 1: got {r.shape}")
        if not np.all(np.isfinite(r)):
            raise ValueError("reward samples must be finite: found NaN or inf")
        n = r.shape[0]
        lw = np.zeros(n) if self.log_weights is None else np.array(self.log_weights, dtype=np.float64)
        if lw.shape != (n,):
            raise ValueError(f"log_weights must have one entry per sample ({n},): got {lw.shape}")
        if np.any(np.isnan(lw)) or np.any(lw == np.inf) or not np.any(np.isfinite(lw)):
            raise ValueError("log_weights must be finite or -inf, and not all -inf")
        lw = lw - np.logaddexp.reduce(lw)
        human = {k: np.array(v, dtype=np.float64).reshape(-1) for k, v in self.human.items()}
        for k, v in human.items():
            if v.shape != (n,):
                raise ValueError(f"human[{k!r}] must have one value per sample ({n},): got {v.shape}")
        theta = None if self.theta is None else np.array(self.theta, dtype=np.float64)
        if theta is not None and (theta.ndim != 2 or theta.shape[0] != n):
            raise ValueError(f"theta must have shape (N, P) with N = {n}: got {theta.shape}")
        for a in (r, lw, *human.values(), *([] if theta is None else [theta])):
            a.setflags(write=False)
        object.__setattr__(self, "theta", theta)
        object.__setattr__(self, "rewards", r)
        object.__setattr__(self, "log_weights", lw)
        object.__setattr__(self, "human", human)

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def weights(self) -> np.ndarray:
        """``(N,)`` normalised weights."""
        return np.exp(self.log_weights)

    @property
    def ess(self) -> float:
        """Kish's effective sample size ``1 / sum_n w_n ** 2`` (``N`` for equal weights, 1 for one sample)."""
        return float(1.0 / np.sum(self.weights ** 2))

    @property
    def mean_reward(self) -> np.ndarray:
        """``(S, A)`` the weighted mean reward (what a planner of the posterior mean optimises)."""
        return np.tensordot(self.weights, self.rewards, axes=1)

    def reweighted(self, log_likelihood: Any) -> "RewardSamples":
        """A copy with weights multiplied by ``exp(log_likelihood)`` ``(N,)`` (Bayes' rule on the samples)."""
        ll = np.asarray(log_likelihood, dtype=np.float64)
        if ll.shape != (len(self),):
            raise ValueError(f"log_likelihood must have one entry per sample ({len(self)},): got {ll.shape}")
        return RewardSamples(self.rewards, self.log_weights + ll, self.human, self.theta)

def as_samples(belief: Any, env: TabularMDP | None = None, *, reward_model: Any = None, weights: Any = None,
               n: int = 1000, seed: int | None = None, max_samples: int | None = None) -> RewardSamples:
    """A belief about the reward as :class:`RewardSamples`.

    Args:
        belief: one of

            * :class:`RewardSamples` (returned as is);
            * an :class:`irl.Posterior`: its draws mapped to rewards by ``reward_model``
              (default: the fit's, or the default model of ``env`` for a loaded file);
              the draws of the human's inferred parameters come along;
            * an array of rewards ``(N, S)`` or ``(N, S, A)``;
            * a prior over the reward parameters (:mod:`priors`): ``n`` draws mapped
              to rewards by ``reward_model`` (default: the default model of ``env``).
        env: the MDP (needed for ``(N, S)`` rewards, priors and loaded posteriors).
        reward_model: maps parameters ``(..., P)`` to rewards ``(..., S, A)``.
        weights: optional ``(N,)`` non-negative weights of an array of rewards.
        n: number of draws from a prior.
        seed: seed of the prior draws.
        max_samples: keep at most this many draws of a posterior (evenly thinned).

    Returns:
        :class:`RewardSamples`.

    Raises:
        ValueError: shapes that do not fit, negative or all-zero weights.
        TypeError: an unsupported kind of belief.

    Example:
        >>> import irl, priors
        >>> from irl.active import as_samples
        >>> env = irl.envs.make("gridworld-5x5")
        >>> as_samples(priors.Gaussian(0.0, 1.0), env, n=50, seed=0).rewards.shape
        (50, 25, 5)
    """
    from priors import is_prior

    if isinstance(belief, RewardSamples):
        return belief
    lw = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or np.any(~np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
            raise ValueError(f"weights must be a 1-D array of finite numbers >= 0, not all 0: got shape {w.shape}")
        with np.errstate(divide="ignore"):
            lw = np.log(w)
    if hasattr(belief, "theta") and hasattr(belief, "param_names"):  # an irl.Posterior
        model = _reward_model_of(belief, env, reward_model)
        theta = belief.theta.reshape(-1, belief.theta.shape[-1])
        keep = np.arange(theta.shape[0])
        if max_samples is not None and max_samples < theta.shape[0]:
            keep = np.linspace(0, theta.shape[0] - 1, int(max_samples)).round().astype(np.int64)
        with torch.no_grad():
            rewards = model(torch.as_tensor(theta[keep])).numpy()
        human = {k: v.reshape(-1)[keep] for k, v in belief.human.items()}
        return RewardSamples(rewards, None if lw is None else lw[keep], human, theta[keep])
    if is_prior(belief):
        model = _reward_model_of(belief, env, reward_model)
        theta = belief.sample((int(n), model.n_params), seed=seed)
        with torch.no_grad():
            return RewardSamples(model(theta).numpy(), lw, theta=theta.numpy())
    if isinstance(belief, (np.ndarray, torch.Tensor, list, tuple)):
        r = belief.detach().cpu().numpy() if isinstance(belief, torch.Tensor) else np.asarray(belief, np.float64)
        if r.ndim == 2:
            if env is None:
                raise ValueError("state rewards (N, S) need env= (for the number of actions); or pass (N, S, A)")
            if r.shape[1] != env.n_states:
                raise ValueError(f"reward samples (N, S) must have S = {env.n_states} states: got {r.shape}")
            r = np.broadcast_to(r[:, :, None], (*r.shape, env.n_actions))
        if env is not None and (r.ndim != 3 or r.shape[1:] != (env.n_states, env.n_actions)):
            raise ValueError(f"reward samples must have shape (N, S, A) = (N, {env.n_states}, {env.n_actions}) "
                             f"for environment {env.name!r}: got {r.shape}")
        return RewardSamples(r, lw)
    raise TypeError(f"a belief must be an irl.Posterior, RewardSamples, a prior or an array of rewards "
                    f"(N, S[, A]): got {type(belief).__name__}")

def _reward_model_of(belief: Any, env: TabularMDP | None, reward_model: Any) -> Any:
    """The map from a prior's or a posterior's parameters to rewards: given, the fit's, or ``env``'s default."""
    if reward_model is not None:
        return reward_model
    joint = getattr(belief, "joint", None)
    if joint is not None:
        return joint.reward_model
    if env is None:
        raise ValueError("mapping reward parameters to rewards needs env= (its default reward model is used) or "
                         "reward_model= (a loaded posterior or a prior carries none)")
    from irl.rewards import default_reward_model

    return default_reward_model(env)
