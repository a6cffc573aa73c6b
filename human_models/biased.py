"""Biased humans: bounded planning, false beliefs about the dynamics, random slips.

Each model here is a :class:`~human_models.base.BaseHumanModel`: it works with
every solver, passes :func:`~human_models.conformance.check_human_model`,
samples demonstrations, and every parameter may be a number or a prior (see
each class for which priors fit which parameter). Time-inconsistent discounting
lives in :mod:`human_models.hyperbolic`.

* :class:`Myopic` -- plans only ``horizon`` steps ahead (receding horizon);
* :class:`BoundedPlanner` -- acts on ``iterations`` sweeps of value iteration
  from zero values, the same policy at every time step;
* :class:`FalseBelief` -- plans in believed dynamics (given, or the true ones
  made over- or under-confident) while acting in the true ones;
* :class:`Noisy` -- any model mixed with uniformly random actions.

References:
    Evans, Stuhlmüller & Goodman (2016), "Learning the preferences of ignorant,
    inconsistent agents", AAAI. Shah, Gundotra, Abbeel & Dragan (2019), "On the
    feasibility of learning, rather than assuming, human biases for reward
    inference", ICML. Reddy, Dragan & Levine (2018), "Where do you think you're
    going? Inferring beliefs about dynamics from behavior", NeurIPS.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
import torch

from human_models.base import BaseHumanModel, HumanModelError, Nesting, check_array_param, per_batch, positive_param
from irl.autodiff import as_reward_tensor, q_values
from irl.mdp import MDPValidationError, TabularMDP, check_horizon

__all__ = ["Myopic", "BoundedPlanner", "FalseBelief", "Noisy", "tempered_transitions", "with_horizon"]


# ------------------------------------------------------------------ validation
def _is_prior(value: Any) -> bool:
    from priors import is_prior

    return is_prior(value)


def _discrete_only(name: str, value: Any, rule: str, check: Callable[[Any], bool]) -> Any:
    """A discrete prior passes if all its values satisfy ``check``; a continuous one is refused."""
    from priors import Categorical

    if not isinstance(value, Categorical):
        raise HumanModelError(f"{name} is discrete: give a number or a priors.Categorical over {rule} "
                              f"(summed out exactly by the solvers): got {value!r}")
    bad = [v for v in value.values if not check(v)]
    if bad:
        raise HumanModelError(f"{name} must be {rule}, so every value of its prior must be: got {bad[0]!r} "
                              f"in {value!r}")
    return value


def _is_int_at_least(v: Any, low: int) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return math.isfinite(f) and f == int(f) and int(f) >= low


def int_param(name: str, value: Any, *, minimum: int = 1) -> Any:
    """Validate an integer ``>= minimum`` (e.g. a planning horizon) or a Categorical prior over such integers.

    Raises:
        HumanModelError: a non-integer, a value below ``minimum``, or a continuous prior.
    """
    rule = f"an integer >= {minimum}"
    if _is_prior(value):
        return _discrete_only(name, value, rule, lambda v: _is_int_at_least(v, minimum))
    if isinstance(value, (torch.Tensor, np.ndarray)):
        if value.ndim != 0:
            raise HumanModelError(f"{name} must be {rule}: got a tensor of shape {tuple(value.shape)} "
                                  f"(a discrete parameter cannot be batched)")
        value = value.item()
    if isinstance(value, bool) or not _is_int_at_least(value, minimum):
        raise HumanModelError(f"{name} must be {rule}: got {value!r}")
    return int(float(value))


def nonnegative_param(name: str, value: Any) -> Any:
    """Validate a number ``>= 0``; a tensor passes through; a prior must live on ``[0, inf)``.

    Raises:
        HumanModelError: a negative or non-finite number, or a prior with negative support.
    """
    from priors import Categorical

    if isinstance(value, (torch.Tensor, np.ndarray)):
        return check_array_param(name, value, ">= 0", lambda v: v >= 0)
    if _is_prior(value):
        if isinstance(value, Categorical):
            ok = all(_number(v) is not None and _number(v) >= 0 for v in value.values)
        else:
            sup = value.support
            lb = getattr(sup, "lower_bound", None)
            ok = sup in (torch.distributions.constraints.positive,
                         torch.distributions.constraints.nonnegative) or (lb is not None and float(lb) >= 0)
        if not ok:
            raise HumanModelError(f"{name} must be >= 0, so its prior must live on [0, inf): got {value!r}")
        return value
    v = _number(value)
    if v is None or not math.isfinite(v) or v < 0:
        raise HumanModelError(f"{name} must be a finite number >= 0: got {value!r}")
    return v


def unit_interval_param(name: str, value: Any) -> Any:
    """Validate a probability in ``[0, 1]``; a tensor passes through; a prior must live inside ``[0, 1]``.

    ``positive_param`` does not fit a mixing weight (it allows values above 1), hence this check.

    Raises:
        HumanModelError: a number outside ``[0, 1]`` or a prior whose support leaves it.
    """
    from priors import Categorical

    if isinstance(value, (torch.Tensor, np.ndarray)):
        return check_array_param(name, value, "in [0, 1] (a probability)", lambda v: (v >= 0) & (v <= 1))
    if _is_prior(value):
        if isinstance(value, Categorical):
            ok = all(_number(v) is not None and 0.0 <= _number(v) <= 1.0 for v in value.values)
        else:
            sup = value.support
            lb, ub = getattr(sup, "lower_bound", None), getattr(sup, "upper_bound", None)
            ok = lb is not None and ub is not None and float(lb) >= 0.0 and float(ub) <= 1.0
        if not ok:
            raise HumanModelError(f"{name} is a probability, so its prior must live inside [0, 1] "
                                  f"(e.g. priors.Uniform(0, 1)): got {value!r}")
        return value
    v = _number(value)
    if v is None or not 0.0 <= v <= 1.0:
        raise HumanModelError(f"{name} must be a probability in [0, 1]: got {value!r}")
    return v


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _bound_number(model: Any, name: str, check: Callable[[str, Any], Any]) -> Any:
    """The current value of a parameter, validated again (``bind`` sets values without checks)."""
    return check(name, model._value(name))


def with_horizon(mdp: TabularMDP, k: int) -> TabularMDP:
    """``mdp`` with a finite horizon of ``k`` steps (same dynamics and discount), cached on ``mdp``.

    The k-step planning problem of a myopic or bounded human. The copy is kept in
    ``mdp``'s cache so that repeated likelihood evaluations do not rebuild it.

    Example:
        >>> import irl
        >>> from human_models.biased import with_horizon
        >>> with_horizon(irl.envs.make("aima-4x3"), 3).horizon
        3
    """
    key = ("human_models.horizon", int(k))
    out = mdp._cache.get(key)
    if out is None:
        try:
            check_horizon(k, mdp.n_states, mdp.n_actions, name="the human's planning horizon")
        except MDPValidationError as e:
            raise HumanModelError(str(e)) from None
        out = mdp.replace(horizon=int(k), name=f"{mdp.name} (planning horizon {int(k)})")
        mdp._cache[key] = out
    return out


# ---------------------------------------------------------------------- Myopic
class Myopic(BaseHumanModel):
    """A receding-horizon planner: at every step, the first step of a soft plan ``horizon`` steps deep.

    At time ``t`` of an episode with ``H`` steps the human plans ``m = min(k, H - t)``
    steps ahead with soft value iteration on ``beta * r`` (the same discount as the
    MDP, values beyond the plan taken as zero) and acts by
    ``pi_t(a|s) ∝ exp(Q^(m)(s, a))``, where ``Q^(m)`` is the soft Q-function with
    ``m`` steps to go. The policy is therefore time-indexed ``(H, S, A)``; with
    ``k >= H`` it is exactly :class:`~human_models.Boltzmann`. In an
    infinite-horizon MDP the plan is always ``k`` steps deep and the policy is
    stationary ``(S, A)``.

    Rewards more than ``k`` steps away do not move this human, so a small
    nearby reward can lure them away from a large distant one.

    Args:
        horizon: planning depth ``k >= 1``, or a ``priors.Categorical`` over
            positive integers (summed out exactly by the solvers).
        beta: rationality ``> 0``, or a prior on positive numbers.

    Raises:
        HumanModelError: a horizon that is not a positive integer (or a continuous
            prior for it), or a bad ``beta``.

    Example:
        >>> import irl, human_models as hm
        >>> env = irl.envs.make("gridworld-5x5")
        >>> logp = hm.Myopic(horizon=2, beta=5.0).action_log_probs(env, env.true_reward)
        >>> tuple(logp.shape) == (env.horizon, env.n_states, env.n_actions)
        True

    References:
        Evans, Stuhlmüller & Goodman (2016), "Learning the preferences of ignorant,
        inconsistent agents", AAAI (myopic agents).
    """

    name = "myopic"
    finite_lookahead = True
    has_closed_form_gradient = True

    def __init__(self, horizon: Any = 3, beta: Any = 1.0) -> None:
        self.horizon = int_param("horizon", horizon)
        self.beta = positive_param("beta", beta)

    @property
    def params(self) -> dict[str, Any]:
        return {"horizon": self.horizon, "beta": self.beta}

    def nested_models(self, mdp: TabularMDP) -> tuple[Nesting, ...]:
        """In a finite-horizon MDP with ``H`` steps, a horizon ``k >= H`` is :class:`~human_models.Boltzmann`.

        With a ``priors.Categorical`` horizon the containment holds at its largest value
        ``>= H`` (up to that value's prior mass). In infinite-horizon MDPs no built-in
        model is a special case (Boltzmann is only the limit ``k -> inf``).
        """
        from human_models.boltzmann import Boltzmann
        from priors import is_prior

        H = mdp.horizon
        if H is None:
            return ()
        values = self.horizon.values if is_prior(self.horizon) else [self.horizon]
        long = [v for v in values if _is_int_at_least(v, int(H))]
        return (Nesting(Boltzmann(beta=self.beta), {"horizon": long[-1]}),) if long else ()

    def action_log_probs(self, mdp: TabularMDP, reward: Any) -> torch.Tensor:
        r = as_reward_tensor(reward, mdp)
        k = _bound_number(self, "horizon", int_param)
        br = per_batch(_bound_number(self, "beta", positive_param), r) * r
        H = mdp.horizon
        if H is None:
            return torch.log_softmax(q_values(with_horizon(mdp, k), br)[..., 0, :, :], dim=-1)
        k = min(k, H)
        q = q_values(with_horizon(mdp, k), br)  # (..., k, S, A); q[j] plans k - j steps
        first = torch.tensor([k - min(k, H - t) for t in range(H)])
        return torch.log_softmax(q.index_select(-3, first), dim=-1)


# -------------------------------------------------------------- BoundedPlanner
class BoundedPlanner(BaseHumanModel):
    """Acts on ``iterations`` sweeps of value iteration from zero values, the same way at every step.

    ``Q_k = B^k(0)`` where ``B`` is the stationary Bellman operator of the MDP
    (soft: log-sum-exp of ``beta * r``; hard: max of ``r``), and the policy is
    ``softmax(Q_k)`` (soft) or ``softmax(beta * Q_k)`` (hard) at *every* time
    step: an anytime planner stopped after ``k`` sweeps that does not track the
    time left in the episode.

    How it differs from :class:`Myopic`: in a finite-horizon MDP the myopic human
    re-plans ``min(k, H - t)`` steps at time ``t`` (it knows when the episode
    ends); the bounded planner uses the same ``k``-sweep values at every ``t``
    (``time_dependent`` is ``False``). In an infinite-horizon MDP, soft
    ``BoundedPlanner(k, beta)`` and ``Myopic(k, beta)`` are the same policy; the
    hard variant (``soft=False``) is a Boltzmann choice over ``k``-step *optimal*
    values, as in :class:`~human_models.BoltzmannQ` with truncated planning.

    Args:
        iterations: sweeps ``k >= 1``, or a ``priors.Categorical`` over positive integers.
        beta: rationality ``> 0``, or a prior on positive numbers.
        soft: soft (maximum-entropy) or hard (max) sweeps.

    Raises:
        HumanModelError: ``iterations`` not a positive integer, or a bad ``beta``.

    Example:
        >>> import irl, human_models as hm
        >>> env = irl.envs.make("aima-4x3")
        >>> p = hm.BoundedPlanner(iterations=2, beta=5.0).action_probs(env, env.true_reward)
        >>> p.shape == (env.n_states, env.n_actions)
        True

    References:
        Evans, Stuhlmüller & Goodman (2016); Shah et al. (2019), "On the feasibility
        of learning, rather than assuming, human biases for reward inference", ICML.
    """

    name = "bounded"
    finite_lookahead = True
    has_closed_form_gradient = True

    def __init__(self, iterations: Any = 3, beta: Any = 1.0, *, soft: bool = True) -> None:
        self.iterations = int_param("iterations", iterations)
        self.beta = positive_param("beta", beta)
        if not isinstance(soft, bool):
            raise HumanModelError(f"soft must be True or False: got {soft!r}")
        self.soft = soft

    @property
    def time_dependent(self) -> bool:
        return False

    @property
    def params(self) -> dict[str, Any]:
        return {"iterations": self.iterations, "beta": self.beta}

    def nested_models(self, mdp: TabularMDP) -> tuple[Nesting, ...]:
        """:class:`Myopic` with ``horizon = iterations``: the same policy in an infinite-horizon MDP
        (soft sweeps), and in any MDP after one sweep (both act on ``softmax(beta * r)``).

        Plain Boltzmann is only the limit of many sweeps, never a special case.
        """
        from priors import is_prior

        k = self.iterations
        if is_prior(k) or not ((self.soft and mdp.horizon is None) or int(k) == 1):
            return ()
        return (Nesting(Myopic(horizon=k, beta=self.beta), {}),)

    def action_log_probs(self, mdp: TabularMDP, reward: Any) -> torch.Tensor:
        r = as_reward_tensor(reward, mdp)
        k = _bound_number(self, "iterations", int_param)
        beta = per_batch(_bound_number(self, "beta", positive_param), r)
        planning = with_horizon(mdp, k)
        if self.soft:
            logits = q_values(planning, beta * r, soft=True)[..., 0, :, :]
        else:
            logits = beta * q_values(planning, r, soft=False)[..., 0, :, :]
        logp = torch.log_softmax(logits, dim=-1)
        if mdp.horizon is None:
            return logp
        return logp.unsqueeze(-3).expand(*logp.shape[:-2], mdp.horizon, *logp.shape[-2:])

    def __repr__(self) -> str:
        return f"BoundedPlanner(iterations={self.iterations!r}, beta={self.beta!r}, soft={self.soft})"


# ----------------------------------------------------------------- FalseBelief
def tempered_transitions(transitions: sp.spmatrix, confidence: float) -> sp.csr_matrix:
    """Over- or under-confident beliefs about the dynamics: ``T_c(s'|s,a) ∝ T(s'|s,a) ** c``.

    Each row is raised to the power ``c`` on its support and renormalised:

    * ``c = 1``: the true dynamics;
    * ``c > 1``: overconfident -- the most likely (intended) outcome gains
      probability, and ``c -> inf`` believes it certain;
    * ``c < 1``: underconfident -- outcomes look more alike, and ``c = 0`` is
      uniform over the outcomes that are possible at all.

    Outcomes of probability 0 stay impossible; empty rows (terminal states) stay empty.

    Args:
        transitions: ``(S*A, S)`` sparse transition matrix.
        confidence: ``c >= 0``.

    Returns:
        The believed ``(S*A, S)`` CSR matrix.

    Raises:
        HumanModelError: ``confidence`` negative or not finite.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> from human_models.biased import tempered_transitions
        >>> T = sp.csr_matrix(np.array([[0.8, 0.2, 0.0]]))
        >>> np.round(tempered_transitions(T, 2.0).toarray(), 4)
        array([[0.9412, 0.0588, 0.    ]])
    """
    c = _number(confidence)
    if c is None or not math.isfinite(c) or c < 0:
        raise HumanModelError(f"confidence must be a finite number >= 0: got {confidence!r}")
    P = sp.csr_matrix(transitions, dtype=np.float64, copy=True)
    P.eliminate_zeros()
    P.data = P.data ** c
    sums = np.asarray(P.sum(axis=1)).ravel()
    P = sp.diags(np.where(sums > 0, 1.0 / np.where(sums > 0, sums, 1.0), 0.0)) @ P
    return sp.csr_matrix(P)


class FalseBelief(BaseHumanModel):
    """A soft-optimal human who plans with wrong beliefs about the dynamics.

    The human is :class:`~human_models.Boltzmann`-rational in a *believed* MDP
    (same states, actions, horizon, discount and terminal states, believed
    transitions ``T_b``), and the resulting policy is executed in the true MDP,
    where demonstrations are generated and scored. ``T_b`` is

    * the ``transitions`` given (a dense ``(S, A, S)`` array or a sparse
      ``(S*A, S)`` matrix), tempered by ``confidence``; or
    * the true dynamics tempered by ``confidence``:
      ``T_b(s'|s,a) ∝ T(s'|s,a) ** c`` (see :func:`tempered_transitions`):
      ``c > 1`` overconfident about actions succeeding, ``c < 1`` underconfident,
      ``c = 1`` correct beliefs.

    ``confidence`` is inferred by enumeration: give a ``priors.Categorical`` over
    candidate values (``priors.Categorical([0.5, 1, 2, 4])``); it needs no gradient.
    A continuous prior is refused.

    Args:
        transitions: believed dynamics, or ``None`` for the true ones.
        confidence: ``c >= 0`` or a Categorical prior over such values.
        beta: rationality ``> 0``, or a prior on positive numbers.

    Raises:
        HumanModelError: bad ``confidence`` or ``beta``; believed transitions whose
            shape does not fit the MDP (when the policy is computed).

    Example:
        >>> import irl, human_models as hm
        >>> env = irl.envs.make("gridworld-5x5")
        >>> p = hm.FalseBelief(confidence=4.0, beta=5.0).action_probs(env, env.true_reward)
        >>> p.shape == (env.horizon, env.n_states, env.n_actions)
        True

    References:
        Reddy, Dragan & Levine (2018), "Where do you think you're going? Inferring
        beliefs about dynamics from behavior", NeurIPS. Shah et al. (2019), "On the
        feasibility of learning, rather than assuming, human biases for reward
        inference", ICML.
    """

    name = "false-belief"
    has_closed_form_gradient = True

    def __init__(self, transitions: Any = None, confidence: Any = 1.0, beta: Any = 1.0) -> None:
        self.transitions = None if transitions is None else self._as_matrix(transitions)
        self.confidence = self._check_confidence("confidence", confidence)
        self.beta = positive_param("beta", beta)
        self._token = object()  # identifies this belief in the MDP's cache

    @staticmethod
    def _as_matrix(transitions: Any) -> sp.csr_matrix:
        if sp.issparse(transitions):
            return sp.csr_matrix(transitions, dtype=np.float64)
        t = transitions.detach().cpu().numpy() if hasattr(transitions, "detach") else transitions
        T = np.asarray(t, dtype=np.float64)
        if T.ndim != 3 or T.shape[0] != T.shape[2]:
            raise HumanModelError(f"believed transitions must be an (S, A, S) array or an (S*A, S) sparse "
                                  f"matrix: got an array of shape {T.shape}")
        if not np.all(np.isfinite(T)) or np.any(T < 0):
            raise HumanModelError("believed transitions must be finite probabilities >= 0")
        return sp.csr_matrix(T.reshape(T.shape[0] * T.shape[1], T.shape[0]))

    @staticmethod
    def _check_confidence(name: str, value: Any) -> Any:
        if _is_prior(value):
            return _discrete_only(name, value, "numbers >= 0",
                                  lambda v: _number(v) is not None and math.isfinite(_number(v)) and _number(v) >= 0)
        if isinstance(value, torch.Tensor):
            if value.ndim != 0 or value.requires_grad:
                raise HumanModelError(f"{name} is inferred by enumeration (a priors.Categorical), not by "
                                      f"gradient: got a tensor of shape {tuple(value.shape)}"
                                      f"{' that requires grad' if value.requires_grad else ''}")
            value = value.item()
        v = _number(value)
        if v is None or not math.isfinite(v) or v < 0:
            raise HumanModelError(f"{name} must be a finite number >= 0: got {value!r}")
        return v

    @property
    def params(self) -> dict[str, Any]:
        return {"confidence": self.confidence, "beta": self.beta}

    def nested_models(self, mdp: TabularMDP) -> tuple[Nesting, ...]:
        """Beliefs tempered from the true dynamics at ``confidence = 1`` are the truth: :class:`~human_models.Boltzmann`."""
        from human_models.boltzmann import Boltzmann

        return () if self.transitions is not None else (Nesting(Boltzmann(beta=self.beta), {"confidence": 1.0}),)

    def believed_mdp(self, mdp: TabularMDP) -> TabularMDP:
        """The MDP the human thinks it is in (cached on ``mdp``).

        Raises:
            HumanModelError: the believed transitions do not have ``mdp``'s shape.
        """
        c = _bound_number(self, "confidence", self._check_confidence)
        key = ("human_models.false_belief", self._token, c)
        out = mdp._cache.get(key)
        if out is not None:
            return out
        base = mdp.transitions if self.transitions is None else self.transitions
        want = (mdp.n_states * mdp.n_actions, mdp.n_states)
        if base.shape != want:
            raise HumanModelError(f"believed transitions must have shape (S*A, S) = {want} for MDP "
                                  f"{mdp.name!r}: got {base.shape}")
        P = base if c == 1.0 else tempered_transitions(base, c)
        out = mdp.replace(transitions=P, name=f"{mdp.name} (believed, confidence {c:g})")
        mdp._cache[key] = out
        return out

    def action_log_probs(self, mdp: TabularMDP, reward: Any) -> torch.Tensor:
        r = as_reward_tensor(reward, mdp)
        beta = per_batch(_bound_number(self, "beta", positive_param), r)
        return torch.log_softmax(q_values(self.believed_mdp(mdp), beta * r, soft=True), dim=-1)

    def __repr__(self) -> str:
        given = "given" if self.transitions is not None else "true"
        return (f"FalseBelief(transitions={given}, confidence={self.confidence!r}, beta={self.beta!r})")


# ----------------------------------------------------------------------- Noisy
_INNER = "model."


def _outer_name(name: str) -> str:
    return _INNER + name if name == "epsilon" or name.startswith(_INNER) else name


def _inner_name(name: str) -> str:
    return name[len(_INNER):] if name.startswith(_INNER) else name


class Noisy(BaseHumanModel):
    """Any human model contaminated by uniformly random actions: ``(1 - eps) pi + eps / A``.

    With probability ``epsilon`` the human ignores its policy and picks an action
    uniformly at random (a slip, a distraction, a corrupted record). Computed in
    log space: ``log((1 - eps) pi(a|s) + eps / A)``. The wrapped model's own
    parameters are this model's parameters too (an inner ``epsilon`` is exposed as
    ``model.epsilon``), so priors on them are inferred as usual.

    Args:
        model: the human model to contaminate.
        epsilon: probability of a random action, in ``[0, 1]``, or a prior inside
            ``[0, 1]`` (e.g. ``priors.Uniform(0, 1)``, or a ``priors.Categorical``).

    Raises:
        HumanModelError: ``model`` is not a human model, or ``epsilon`` leaves ``[0, 1]``.

    Example:
        >>> import irl, human_models as hm
        >>> env = irl.envs.make("gridworld-5x5")
        >>> p = hm.Noisy(hm.Boltzmann(50.0), epsilon=0.5).action_probs(env, env.true_reward)
        >>> bool(p.min() >= 0.5 / env.n_actions - 1e-12)
        True

    References:
        Zheng, Liu & Ni (2014), "Robust Bayesian inverse reinforcement learning with
        sparse behavior noise", AAAI (demonstrations with random errors).
    """

    name = "noisy"
    has_closed_form_gradient = False

    def __init__(self, model: Any, epsilon: Any = 0.1) -> None:
        if not hasattr(model, "action_log_probs"):
            raise HumanModelError(f"Noisy wraps a human model (with action_log_probs): got {type(model).__name__}")
        self.model = model
        self.epsilon = unit_interval_param("epsilon", epsilon)

    @property
    def differentiable(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.model, "differentiable", False))

    @property
    def time_dependent(self) -> bool:
        return bool(getattr(self.model, "time_dependent", True))

    @property
    def finite_lookahead(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.model, "finite_lookahead", False))

    @property
    def params(self) -> dict[str, Any]:
        inner = getattr(self.model, "params", {})
        return {"epsilon": self.epsilon, **{_outer_name(k): v for k, v in inner.items()}}

    def nested_models(self, mdp: TabularMDP) -> tuple[Nesting, ...]:
        """The wrapped model, at ``epsilon = 0``."""
        return (Nesting(self.model, {"epsilon": 0.0}),)

    def bind(self, **values: Any) -> "Noisy":
        """A copy with ``epsilon`` and/or the wrapped model's parameters set.

        Raises:
            HumanModelError: a name that is not a parameter.
        """
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise HumanModelError(f"Noisy has no parameter {unknown[0]!r}; it has {sorted(self.params)}")
        new = copy.copy(self)
        if "epsilon" in values:
            new.epsilon = values.pop("epsilon")
        inner = {_inner_name(k): v for k, v in values.items()}
        if inner:
            new.model = self.model.bind(**inner)
        return new

    def action_log_probs(self, mdp: TabularMDP, reward: Any) -> torch.Tensor:
        logp = self.model.action_log_probs(mdp, reward)
        eps = _bound_number(self, "epsilon", unit_interval_param)
        eps = torch.as_tensor(eps, dtype=logp.dtype)
        if eps.ndim:
            eps = eps.reshape(*eps.shape, *([1] * (logp.ndim - eps.ndim)))
        return torch.logaddexp(torch.log1p(-eps) + logp, torch.log(eps / mdp.n_actions))

    def choice_log_probs(self, values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The wrapped model's choice rule mixed with a uniform pick among the real options.

        ``log((1 - eps) P(c) + eps / C)`` with ``C`` the number of options (``mask`` marks them).

        Raises:
            HumanModelError: the wrapped model has no choice rule.
        """
        rule = getattr(self.model, "choice_log_probs", None)
        if rule is None:
            raise HumanModelError(f"{type(self.model).__name__} has no choice_log_probs: Noisy cannot score choices")
        logp = rule(values, mask)
        eps = torch.as_tensor(_bound_number(self, "epsilon", unit_interval_param), dtype=logp.dtype)
        if eps.ndim:
            eps = eps.reshape(*eps.shape, *([1] * (logp.ndim - eps.ndim)))
        n = (mask.sum(-1, keepdim=True).to(logp.dtype) if mask is not None
             else torch.full((), values.shape[-1], dtype=logp.dtype))
        out = torch.logaddexp(torch.log1p(-eps) + logp, torch.log(eps) - torch.log(n))
        return out if mask is None else torch.where(mask, out, torch.full((), -torch.inf, dtype=out.dtype))

    def __repr__(self) -> str:
        return f"Noisy({self.model!r}, epsilon={self.epsilon!r})"
