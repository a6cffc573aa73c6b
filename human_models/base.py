"""The human-model interface: how a human with a given reward acts.

A human model owns both directions, so simulation and inference cannot drift
apart:

* ``action_log_probs(mdp, reward)`` (the one required method): log-probabilities
  of actions, ``(..., H, S, A)`` time-indexed for a finite horizon or
  ``(..., S, A)`` stationary, as a torch tensor differentiable in ``reward``;
* ``log_likelihood(mdp, reward, evidence)``: the log-probability of an
  observation; delegates to ``evidence.log_likelihood_under(self, mdp, reward)``
  so that each evidence type knows how to score itself;
* ``sample(mdp, reward, n, rng)``: simulated evidence.

Capability flags tell solvers what a model can do (solvers branch on flags,
never on classes): ``differentiable`` (gradients w.r.t. the reward exist),
``has_closed_form_gradient`` (the gradient is computed by an occupancy pass,
not by unrolled autograd) and ``time_dependent`` (the policy depends on t).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

from irl.mdp import TabularMDP

__all__ = ["HumanModel", "BaseHumanModel", "HumanModelError"]


class HumanModelError(ValueError):
    """A human model was given an invalid parameter or asked for something it cannot do."""


@runtime_checkable
class HumanModel(Protocol):
    """Structural interface every human model satisfies (use it in type hints)."""

    name: str
    differentiable: bool
    has_closed_form_gradient: bool
    time_dependent: bool

    def action_log_probs(self, mdp: TabularMDP, reward: Any) -> torch.Tensor: ...

    def log_likelihood(self, mdp: TabularMDP, reward: Any, evidence: Any) -> torch.Tensor: ...

    def sample(self, mdp: TabularMDP, reward: Any, n: int, rng: Any = None, **kwargs: Any) -> Any: ...


class BaseHumanModel(ABC):
    """Shared behaviour of the built-in models: validation, scoring, sampling.

    Subclasses implement :meth:`action_log_probs` and list their parameters in
    ``params`` (name -> value) for reports and files.
    """

    name: ClassVar[str] = "human"
    differentiable: ClassVar[bool] = True
    has_closed_form_gradient: ClassVar[bool] = False
    #: The model plans only a bounded number of steps ahead, so it has finite values even in an
    #: ill-posed MDP (discount 1, no horizon, terminal states avoidable); fits then skip the
    #: :meth:`irl.TabularMDP.check_well_posed` check for it.
    finite_lookahead: ClassVar[bool] = False

    @property
    def time_dependent(self) -> bool:  # finite-horizon policies are time-indexed
        return True

    @property
    def params(self) -> dict[str, float]:
        """The model's own parameters (``phi`` in the design), by name."""
        return {}

    def free_parameters(self) -> dict[str, Any]:
        """The parameters given as priors (to be inferred), by name."""
        from priors import is_prior

        return {k: v for k, v in self.params.items() if is_prior(v)}

    def bind(self, **values: Any) -> "BaseHumanModel":
        """A copy with some parameters set to values (numbers or tensors, possibly batched ``(B,)``).

        Solvers call this with the current draw of the human's parameters.

        Raises:
            HumanModelError: a name that is not a parameter of this model.
        """
        new = copy.copy(self)
        for k, v in values.items():
            if k not in self.params:
                raise HumanModelError(f"{type(self).__name__} has no parameter {k!r}; it has {sorted(self.params)}")
            setattr(new, k, v)
        return new

    def _value(self, name: str) -> Any:
        """A parameter's value for computation; refuses an unbound prior."""
        from priors import is_prior

        v = getattr(self, name)
        if is_prior(v):
            raise HumanModelError(f"{type(self).__name__}.{name} is a prior ({v!r}), not a value: fit it with a "
                                  f"solver, or bind a value with .bind({name}=...)")
        return v

    @abstractmethod
    def action_log_probs(self, mdp: TabularMDP, reward: Any) -> torch.Tensor:
        """Log action probabilities, ``(..., H, S, A)`` or ``(..., S, A)``, differentiable in ``reward``."""

    def choice_log_probs(self, values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Log-probabilities of choosing among options worth ``values`` ``(..., C)``.

        The human's choice rule for evidence that is a choice between behaviours
        (comparisons, corrections, e-stops): Boltzmann-rational with the model's
        rationality ``beta`` (1 if it has none), ``P(c) ∝ exp(beta * value_c)``.
        ``mask`` marks real options (padding is ``False``). A batched ``beta``
        ``(B,)`` applies to a leading batch axis of ``values``.

        References:
            Jeon, Milli & Dragan (2020), "Reward-rational (implicit) choice: A unifying
            formalism for reward learning", NeurIPS.
        """
        beta = self._value("beta") if "beta" in self.params else 1.0
        if isinstance(beta, torch.Tensor) and beta.ndim > 0:
            beta = beta.reshape(*beta.shape, *([1] * (values.ndim - beta.ndim)))
        z = beta * values
        if mask is not None:
            z = torch.where(mask, z, torch.full((), -torch.inf, dtype=z.dtype))
        return torch.log_softmax(z, dim=-1)

    def action_probs(self, mdp: TabularMDP, reward: Any) -> np.ndarray:
        """Action probabilities as a numpy array (no gradient)."""
        with torch.no_grad():
            return self.action_log_probs(mdp, reward).exp().cpu().numpy()

    def log_likelihood(self, mdp: TabularMDP, reward: Any, evidence: Any) -> torch.Tensor:
        """Log-probability of ``evidence`` under this model acting on ``reward`` in ``mdp``.

        Returns:
            A scalar tensor (or ``(B,)`` for a batch of rewards).
        """
        score = getattr(evidence, "log_likelihood_under", None)
        if score is None:
            raise HumanModelError(f"{type(evidence).__name__} is not an evidence type: it has no "
                                  f"log_likelihood_under(human, mdp, reward) method")
        return score(self, mdp, reward)

    def sample(self, mdp: TabularMDP, reward: Any, n: int, rng: Any = None, *, horizon: int | None = None,
               **kwargs: Any) -> Any:
        """Simulate ``n`` demonstrations (trajectories) from this model.

        Args:
            mdp: the MDP.
            reward: the reward the human acts on.
            n: number of episodes.
            rng: seed or ``numpy.random.Generator``.
            horizon: episode length for infinite-horizon MDPs.

        Returns:
            :class:`demos.Trajectories` with the true rewards recorded.
        """
        from irl.planning import rollout

        probs = self.action_probs(mdp, reward)
        r = reward.detach().cpu().numpy() if isinstance(reward, torch.Tensor) else np.asarray(reward)
        return rollout(mdp, probs, n, rng=rng, horizon=horizon, reward=r, **kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def per_batch(value: Any, reward: torch.Tensor) -> Any:
    """Shape a (possibly batched ``(B,)``) parameter to broadcast against ``reward (..., S, A)``."""
    if isinstance(value, torch.Tensor) and value.ndim > 0:
        return value.reshape(*value.shape, 1, 1)
    return value


def positive_param(name: str, value: Any) -> Any:
    """Validate a positive number; a tensor passes through, a prior must live on positive numbers."""
    from priors import Categorical, is_prior

    if isinstance(value, torch.Tensor):
        return value
    if is_prior(value):
        if isinstance(value, Categorical):
            ok = all(float(v) > 0 for v in value.values)
        else:
            sup = value.support
            lb = getattr(sup, "lower_bound", None)
            ok = sup is torch.distributions.constraints.positive or (lb is not None and float(lb) >= 0)
        if not ok:
            raise HumanModelError(f"{name} must be > 0, so its prior must live on positive numbers: got {value!r}")
        return value
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise HumanModelError(f"{name} must be a number > 0: got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise HumanModelError(f"{name} must be a finite number > 0: got {value!r}")
    return v
