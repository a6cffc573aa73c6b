"""The log-joint that every solver consumes, and the point-estimate result type."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from irl.evidence import Evidence
from irl.rewards import RewardModel

__all__ = ["LogJoint", "RewardEstimate"]


class LogJoint:
    """``log p(theta) + sum_i log p(evidence_i | reward_model(theta))``: one callable.

    Maximum-entropy IRL maximises it; a sampler would sample it. Batched over a
    leading axis of ``theta``.

    Args:
        evidence: the evidence items (each with its MDP and human model).
        reward_model: maps ``theta (..., P)`` to rewards ``(..., S, A)``.
        prior: an object with ``log_prob(theta) -> (...)``, or ``None`` (flat).
    """

    def __init__(self, evidence: list[Evidence], reward_model: RewardModel, prior: Any = None) -> None:
        self.evidence, self.reward_model, self.prior = evidence, reward_model, prior
        for i, ev in enumerate(evidence):
            if (ev.mdp.n_states, ev.mdp.n_actions) != (reward_model.n_states, reward_model.n_actions):
                raise ValueError(f"evidence {i} is in an MDP with (S, A) = ({ev.mdp.n_states}, {ev.mdp.n_actions}) "
                                 f"but the reward model expects ({reward_model.n_states}, {reward_model.n_actions})")

    def log_likelihood(self, theta: torch.Tensor) -> torch.Tensor:
        """Sum of the evidence log-likelihoods at ``theta``."""
        reward = self.reward_model(theta)
        return sum(ev.log_likelihood(reward) for ev in self.evidence)  # type: ignore[return-value]

    def log_prior(self, theta: torch.Tensor) -> torch.Tensor:
        """Log prior density (0 for a flat prior)."""
        if self.prior is None:
            return torch.zeros(theta.shape[:-1], dtype=theta.dtype)
        return self.prior.log_prob(theta)

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        return self.log_prior(theta) + self.log_likelihood(theta)


_FORMAT = "pluggable-irl/reward-estimate"


@dataclass
class RewardEstimate:
    """A point estimate of the reward.

    Attributes:
        reward: ``(S, A)`` inferred reward.
        theta: ``(P,)`` reward parameters.
        log_likelihood: log-likelihood of the evidence at ``theta``.
        log_prior: log prior density at ``theta`` (0 for maximum likelihood).
        converged: whether the optimiser met its tolerance.
        history: per-iteration records ``{"iteration", "objective", "grad_norm"}``.
        param_names: readable parameter names.
        info: solver details (human model, evaluations, message, timings).
    """

    reward: np.ndarray
    theta: np.ndarray
    log_likelihood: float
    log_prior: float = 0.0
    converged: bool = True
    history: list[dict[str, float]] = field(default_factory=list)
    param_names: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def state_reward(self) -> np.ndarray:
        """``(S,)`` reward when it does not depend on the action (mean over actions otherwise)."""
        return self.reward.mean(axis=-1)

    def save(self, path: str) -> None:
        """Write a versioned ``.npz`` atomically (no pickle)."""
        from demos import save_arrays

        save_arrays(path, _FORMAT, {"reward": self.reward, "theta": self.theta},
                    meta={"log_likelihood": self.log_likelihood, "log_prior": self.log_prior,
                          "converged": self.converged, "history": self.history,
                          "param_names": self.param_names, "info": _jsonable(self.info)})

    @classmethod
    def load(cls, path: str) -> "RewardEstimate":
        """Read a file written by :meth:`save`."""
        from demos import load_arrays

        _, arrays, meta = load_arrays(path, _FORMAT)
        return cls(reward=arrays["reward"], theta=arrays["theta"], log_likelihood=float(meta["log_likelihood"]),
                   log_prior=float(meta.get("log_prior", 0.0)), converged=bool(meta.get("converged", True)),
                   history=list(meta.get("history", [])), param_names=list(meta.get("param_names", [])),
                   info=dict(meta.get("info", {})))

    def __repr__(self) -> str:
        return (f"RewardEstimate(P={self.theta.size}, log_likelihood={self.log_likelihood:.4f}, "
                f"converged={self.converged}, iterations={len(self.history)})")


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=lambda o: o.tolist() if hasattr(o, "tolist") else repr(o)))
