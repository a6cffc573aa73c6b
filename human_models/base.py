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
not by unrolled autograd), ``time_dependent`` (the policy depends on t),
``temperature`` (the name of a parameter that enters only as a factor of the
reward, as ``beta`` does in ``pi(. | beta, r) = pi(. | 1, beta * r)``, or ``None``;
Bayesian IRL then samples the reward in units of it, which removes the scale ridge) and
``concave_in_reward`` (the log-likelihood is concave in a linear reward's
parameters, so one optimiser start finds the optimum).

A model also declares which simpler models it contains
(:meth:`BaseHumanModel.nested_models`): ``Noisy(m)`` is ``m`` at ``epsilon = 0``.
:func:`nesting` decides whether one model contains another, so that a fit of the
larger model can start at the smaller model's optimum and can never end below it.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Protocol, runtime_checkable

import numpy as np
import torch

from irl.mdp import TabularMDP

__all__ = ["HumanModel", "BaseHumanModel", "HumanModelError", "Nesting", "NestingMatch", "nesting"]


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


@dataclass(frozen=True)
class Nesting:
    """A simpler model that the declaring model contains: ``model`` is the declaring model at ``at``.

    Attributes:
        model: the simpler human model; its parameters are the declaring model's
            parameters of the same names.
        at: values of the declaring model's parameters at which both act
            identically (e.g. ``{"epsilon": 0.0}`` for ``Noisy``).
    """

    model: Any
    at: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NestingMatch:
    """How a general model contains a special one (the answer of :func:`nesting`).

    Attributes:
        at: values of the general model's parameters at which it acts as the special one.
        log_mass: ``sum log p(value)`` over the values that fall on a summed-out discrete
            prior (0 if none): the general model's log-likelihood is at least the special
            one's plus ``log_mass`` at the same reward.
    """

    at: Mapping[str, Any]
    log_mass: float = 0.0


class BaseHumanModel(ABC):
    """Shared behaviour of the built-in models: validation, scoring, sampling.

    Subclasses implement :meth:`action_log_probs` and list their parameters in
    ``params`` (name -> value) for reports and files.
    """

    name: ClassVar[str] = "human"
    differentiable: ClassVar[bool] = True
    has_closed_form_gradient: ClassVar[bool] = False
    temperature: ClassVar[str | None] = None
    concave_in_reward: ClassVar[bool] = False

    def nested_models(self, mdp: TabularMDP) -> tuple[Nesting, ...]:
        """The simpler models this one contains in ``mdp`` (none by default).

        Declare only exact identities: the declaring model at ``Nesting.at`` must give
        the same action probabilities as ``Nesting.model`` for every reward. Solvers
        start a fit at the nested model's optimum (see :func:`nesting`).
        """
        return ()
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


def check_array_param(name: str, value: Any, rule: str, ok: Any) -> Any:
    """Validate every entry of a tensor or array parameter like a number; other values pass through.

    A tensor (or numpy array, returned as a float64 tensor) given for a parameter,
    e.g. a batch of values ``(B,)``, must be finite and satisfy ``ok`` entrywise,
    exactly as a plain number would. Its autograd graph is kept.

    Args:
        name: the parameter's name (for messages).
        value: anything; only ``torch.Tensor`` and ``numpy.ndarray`` are checked here.
        rule: the rule in words, e.g. ``"> 0"`` (empty: any finite number).
        ok: ``(numpy array) -> boolean array`` of the entries that satisfy the rule.

    Raises:
        HumanModelError: naming the first bad entry, e.g. ``beta must be a finite number > 0: got -1.0
            (entry 0 of a tensor of shape ())``.
    """
    must = f"{name} must be a finite number{' ' + rule if rule else ''}"
    if isinstance(value, np.ndarray):
        if value.dtype == bool or not np.issubdtype(value.dtype, np.number):
            raise HumanModelError(f"{must}: got an array of dtype {value.dtype}")
        value = torch.from_numpy(np.array(value, dtype=np.float64))
    if not isinstance(value, torch.Tensor):
        return value
    if value.dtype == torch.bool or value.is_complex():
        raise HumanModelError(f"{must}: got a tensor of dtype {value.dtype}")
    v = value.detach().cpu().double().numpy()
    good = np.isfinite(v) & ok(v)
    if not good.all():
        k = int(np.flatnonzero(~good.ravel())[0])
        where = "" if v.ndim == 0 else f" (entry {k} of a tensor of shape {tuple(v.shape)})"
        raise HumanModelError(f"{must}: got {float(v.ravel()[k])}{where}")
    return value


def positive_param(name: str, value: Any) -> Any:
    """Validate a positive number; a tensor is checked entrywise, a prior must live on positive numbers."""
    from priors import Categorical, is_prior

    if isinstance(value, (torch.Tensor, np.ndarray)):
        return check_array_param(name, value, "> 0", lambda v: v > 0)
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


# ------------------------------------------------------------------ nesting
def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        try:
            return float(a) == float(b)
        except (TypeError, ValueError, RuntimeError):
            return False
    try:
        return bool(a == b) or repr(a) == repr(b)
    except (TypeError, ValueError, RuntimeError):
        return repr(a) == repr(b)


def _settable(model: Any, at: Mapping[str, Any]) -> float | None:
    """``log_mass`` if each parameter of ``model`` can take its value in ``at``, else ``None``.

    A fixed parameter must already equal the value; a continuous prior must contain
    it in its support; a discrete prior must list it (its log-probability is added).
    """
    from priors import is_prior

    params = getattr(model, "params", {})
    mass = 0.0
    for name, value in at.items():
        if name not in params:
            return None
        cur = params[name]
        if not is_prior(cur):
            if not _same(cur, value):
                return None
        elif getattr(cur, "discrete", False):
            vals, lps = cur.enumerate()
            hits = [float(lp) for v, lp in zip(vals, lps) if _same(v, value)]
            if not hits:
                return None
            mass += hits[0]
        else:
            try:
                inside = bool(cur.support.check(torch.as_tensor(float(value), dtype=torch.float64)))
            except (TypeError, ValueError):
                return None
            if not inside:
                return None
    return mass


def _by_freeing(general: Any, special: Any) -> NestingMatch | None:
    """Same kind of model, where ``general`` has priors on some parameters that ``special`` fixes."""
    from priors import is_prior

    if type(general) is not type(special):
        return None
    gp, sp_ = getattr(general, "params", {}), getattr(special, "params", {})
    if set(gp) != set(sp_):
        return None
    at = {k: sp_[k] for k in gp if is_prior(gp[k]) and not is_prior(sp_[k])}
    mass = _settable(general, at)
    if mass is None or not hasattr(general, "bind"):
        return None
    return NestingMatch(at, mass) if repr(general.bind(**at)) == repr(special) else None


def nesting(general: Any, special: Any, mdp: TabularMDP, *, _depth: int = 0) -> NestingMatch | None:
    """Whether ``general`` contains ``special``, and at which of its parameter values.

    ``general`` contains ``special`` when some setting of its parameters acts exactly
    like ``special``: the same model (equal ``repr``); the same kind of model with
    priors where ``special`` has numbers inside their support (``Boltzmann(beta=prior)``
    contains ``Boltzmann(5)``); or, through the models it declares in
    ``nested_models(mdp)``, recursively (``Noisy(Boltzmann(beta=prior), epsilon=prior)``
    contains ``Boltzmann(5)`` at ``epsilon = 0, beta = 5``).

    Args:
        general: the larger human model.
        special: the candidate special case.
        mdp: the MDP (some identities hold only in some MDPs, e.g. finite horizons).

    Returns:
        A :class:`NestingMatch`, or ``None`` if no containment is known.

    Example:
        >>> import irl, human_models as hm, priors
        >>> env = irl.envs.make("gridworld-5x5")
        >>> m = hm.nesting(hm.Noisy(hm.Boltzmann(5.0), epsilon=priors.Uniform(0, 1)), hm.Boltzmann(5.0), env)
        >>> dict(m.at), m.log_mass
        ({'epsilon': 0.0}, 0.0)
        >>> hm.nesting(hm.Boltzmann(5.0), hm.Noisy(hm.Boltzmann(5.0), epsilon=0.1), env) is None
        True
    """
    if repr(general) == repr(special):
        return NestingMatch({}, 0.0)
    found = _by_freeing(general, special)
    if found is not None or _depth > 8:
        return found
    declared = getattr(general, "nested_models", None)
    for nest in (declared(mdp) if declared is not None else ()):
        if repr(nest.model) == repr(general):
            continue
        inner = nesting(nest.model, special, mdp, _depth=_depth + 1)
        if inner is None:
            continue
        at = {**inner.at, **nest.at}
        mass = _settable(general, at)
        if mass is not None and math.isfinite(mass):
            return NestingMatch(at, mass)
    return None
