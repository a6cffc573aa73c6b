"""Reward models: maps from parameters ``theta`` to rewards ``r(s, a)``.

A reward model is called on a parameter tensor ``(..., P)`` and returns a reward
tensor ``(..., S, A)``; autograd carries gradients back to ``theta``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

from irl.mdp import MDPValidationError, TabularMDP

__all__ = ["RewardModel", "TabularReward", "LinearReward", "default_reward_model"]


class RewardModel(ABC):
    """Base class: ``n_params``, ``__call__(theta) -> (..., S, A)`` and parameter names.

    ``homogeneous`` declares ``reward(c * theta) = c * reward(theta)`` for every
    ``c > 0`` (linear and tabular models; not a model with a fixed offset or a
    neural network), which lets Bayesian IRL sample the reward in units of the
    human's temperature.

    ``linear`` tells solvers that the reward is linear in ``theta`` (so a
    Boltzmann log-likelihood is concave in it and one optimiser start suffices).
    """

    n_states: int
    n_actions: int
    homogeneous: bool = False
    linear: bool = False

    @property
    @abstractmethod
    def n_params(self) -> int:
        """Number of parameters ``P``."""

    @abstractmethod
    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """Reward ``(..., S, A)`` for parameters ``(..., P)``."""

    def param_names(self) -> list[str]:
        """Readable names of the parameters (for summaries)."""
        return [f"theta[{i}]" for i in range(self.n_params)]

    def _check(self, theta: Any) -> torch.Tensor:
        t = theta if isinstance(theta, torch.Tensor) else torch.from_numpy(np.array(theta, dtype=np.float64))
        if t.ndim < 1 or t.shape[-1] != self.n_params:
            raise MDPValidationError(f"{type(self).__name__} expects parameters of shape (..., {self.n_params}): "
                                     f"got {tuple(t.shape)}")
        return t

    def reward_array(self, theta: Any) -> np.ndarray:
        """The reward as a numpy array ``(..., S, A)``."""
        with torch.no_grad():
            return self(self._check(theta)).cpu().numpy()


class TabularReward(RewardModel):
    """One parameter per state (``state_only=True``) or per state-action pair.

    Example:
        >>> import torch, irl
        >>> m = irl.rewards.TabularReward(3, 2)
        >>> m(torch.tensor([1.0, 2.0, 3.0])).shape
        torch.Size([3, 2])
    """

    homogeneous = True
    linear = True

    def __init__(self, n_states: int, n_actions: int, *, state_only: bool = True) -> None:
        self.n_states, self.n_actions, self.state_only = int(n_states), int(n_actions), bool(state_only)

    @property
    def n_params(self) -> int:
        return self.n_states if self.state_only else self.n_states * self.n_actions

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        t = self._check(theta)
        if self.state_only:
            return t[..., :, None].expand(*t.shape, self.n_actions)
        return t.reshape(*t.shape[:-1], self.n_states, self.n_actions)

    def param_names(self) -> list[str]:
        if self.state_only:
            return [f"r[s={s}]" for s in range(self.n_states)]
        return [f"r[s={s},a={a}]" for s in range(self.n_states) for a in range(self.n_actions)]


class LinearReward(RewardModel):
    """``r(s, a) = phi(s, a) . theta`` with features ``(S, F)`` or ``(S, A, F)``.

    Example:
        >>> import irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> m = irl.rewards.LinearReward.from_mdp(env)
        >>> m.n_params == env.n_features
        True
    """

    homogeneous = True
    linear = True

    def __init__(self, features: Any, n_actions: int | None = None, *, names: list[str] | None = None) -> None:
        f = np.asarray(features, dtype=np.float64)
        if f.ndim == 2:
            if n_actions is None:
                raise MDPValidationError("LinearReward with state features (S, F) needs n_actions")
            f = np.broadcast_to(f[:, None, :], (f.shape[0], int(n_actions), f.shape[1]))
        if f.ndim != 3:
            raise MDPValidationError(f"features must have shape (S, F) or (S, A, F): got {f.shape}")
        # a copy: features of an MDP are read-only, which torch.from_numpy warns about
        self.features = torch.from_numpy(np.array(f, dtype=np.float64, order="C"))
        self.n_states, self.n_actions = f.shape[0], f.shape[1]
        self._names = names

    @classmethod
    def from_mdp(cls, mdp: TabularMDP) -> "LinearReward":
        """The linear model on the MDP's own features."""
        if mdp.features is None:
            raise MDPValidationError(f"MDP {mdp.name!r} has no features; use TabularReward instead")
        return cls(mdp.features, mdp.n_actions, names=None if mdp.feature_names is None else list(mdp.feature_names))

    @property
    def n_params(self) -> int:
        return int(self.features.shape[-1])

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        t = self._check(theta).to(self.features.dtype)
        return torch.einsum("saf,...f->...sa", self.features, t)

    def param_names(self) -> list[str]:
        return list(self._names) if self._names else [f"w[{i}]" for i in range(self.n_params)]


def default_reward_model(mdp: TabularMDP) -> RewardModel:
    """Linear in the MDP's features if it has any, else a tabular state reward."""
    if mdp.features is not None:
        return LinearReward.from_mdp(mdp)
    return TabularReward(mdp.n_states, mdp.n_actions)
