"""Priors over reward parameters ``theta`` and human parameters ``phi``.

Every prior wraps a ``torch.distributions`` distribution of one scalar and treats
a parameter vector as i.i.d. draws: ``log_prob(theta)`` sums over the last axis.
The same objects serve two roles:

* as the reward prior of a solver: ``irl.MaxEnt(prior=priors.Gaussian(0, 1))``;
* in place of a number in a human model, making that parameter a random
  variable inferred with the reward: ``hm.Boltzmann(beta=priors.LogNormal(0, 1))``.
  Continuous parameters are optimised or sampled in an unconstrained space
  (``to_constrained`` via ``torch.distributions.biject_to``); discrete ones
  (:class:`Categorical`) are summed out exactly.

On the command line a prior reads ``name:key=value,...``, e.g. ``laplace:scale=1``
or ``categorical:values=1|2|3``.

Example:
    >>> import torch, priors
    >>> round(float(priors.Gaussian(0.0, 1.0).log_prob(torch.zeros(3))), 4)
    -2.7568
    >>> p = priors.LogNormal(0.0, 1.0)
    >>> float(p.to_constrained(torch.tensor(0.0)))
    1.0
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.distributions import biject_to, constraints

__all__ = ["Prior", "Gaussian", "Laplace", "Uniform", "LogNormal", "Gamma", "HalfNormal", "Exponential",
           "Categorical", "Flat", "make", "names", "is_prior"]

_F64 = torch.float64


def _t(x: float) -> torch.Tensor:
    return torch.tensor(float(x), dtype=_F64)


def _finite_number(cls: str, key: str, value: Any) -> float:
    """``value`` as a finite float, or a ValueError naming the prior, the parameter and what was found."""
    if isinstance(value, bool):
        raise ValueError(f"{cls} prior {key} must be a finite number: got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{cls} prior {key} must be a finite number: got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{cls} prior {key} must be a finite number: got {v}")
    return v


def _categorical_key(i: int, value: Any) -> Any:
    """A Categorical value's identity: a finite number (as float, so 1 == 1.0) or a label such as a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    return _finite_number("Categorical", f"values[{i}]", value)


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def _finite(cls: str, **kw: Any) -> None:
    for k, v in kw.items():
        _finite_number(cls, k, v)


def _positive(cls: str, **kw: Any) -> None:
    for k, v in kw.items():
        if not _finite_number(cls, k, v) > 0:
            raise ValueError(f"{cls} prior {k} must be a finite number > 0: got {v}")


class Prior:
    """Base class: an i.i.d. prior on each parameter, built on a torch distribution.

    Subclasses define :meth:`distribution`. ``discrete`` priors are enumerated
    instead of sampled or optimised.
    """

    name = "prior"
    discrete = False

    def distribution(self) -> torch.distributions.Distribution:
        """The torch distribution of one parameter."""
        raise TypeError(f"{type(self).__name__} has no distribution")

    @property
    def support(self) -> constraints.Constraint:
        """Where the parameter lives (a ``torch.distributions.constraints`` object)."""
        return self.distribution().support

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density summed over the last axis: ``(..., P) -> (...)``."""
        x = torch.as_tensor(x, dtype=_F64)
        return self.distribution().log_prob(x).sum(-1)

    def sample(self, shape: tuple[int, ...] = (), *, seed: int | None = None) -> torch.Tensor:
        """Draw parameters of ``shape`` with a seeded generator (global torch state is untouched)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 if seed is None else int(seed))
            return self.distribution().sample(torch.Size(shape)).to(_F64)

    def to_constrained(self, u: torch.Tensor) -> torch.Tensor:
        """Map an unconstrained value to the support."""
        return biject_to(self.support)(u)

    def to_unconstrained(self, x: torch.Tensor) -> torch.Tensor:
        """Map a value in the support to the unconstrained space."""
        return biject_to(self.support).inv(torch.as_tensor(x, dtype=_F64))

    def log_prob_unconstrained(self, u: torch.Tensor) -> torch.Tensor:
        """Elementwise log-density of the unconstrained variable (with the Jacobian term)."""
        t = biject_to(self.support)
        x = t(u)
        return self.distribution().log_prob(x) + t.log_abs_det_jacobian(u, x)

    def initial_value(self) -> torch.Tensor:
        """A central value of the prior (the median where known, else the mean), used to start optimisers."""
        d = self.distribution()
        try:
            return d.icdf(_t(0.5))
        except (NotImplementedError, AttributeError):
            return d.mean

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Gaussian(Prior):
    """``Normal(loc, scale)`` on each parameter (L2 regularisation in MAP).

    Args:
        loc: mean.
        scale: standard deviation, ``> 0``.
    """

    name = "gaussian"

    def __init__(self, loc: float = 0.0, scale: float = 1.0) -> None:
        _finite("Gaussian", loc=loc)
        _positive("Gaussian", scale=scale)
        self.loc, self.scale = float(loc), float(scale)

    def distribution(self) -> torch.distributions.Distribution:
        return torch.distributions.Normal(_t(self.loc), _t(self.scale))


class Laplace(Prior):
    """``Laplace(loc, scale)`` on each parameter (sparse rewards; L1 in MAP)."""

    name = "laplace"

    def __init__(self, loc: float = 0.0, scale: float = 1.0) -> None:
        _finite("Laplace", loc=loc)
        _positive("Laplace", scale=scale)
        self.loc, self.scale = float(loc), float(scale)

    def distribution(self) -> torch.distributions.Distribution:
        return torch.distributions.Laplace(_t(self.loc), _t(self.scale))


class Uniform(Prior):
    """``Uniform(low, high)`` on each parameter (a box)."""

    name = "uniform"

    def __init__(self, low: float = -1.0, high: float = 1.0) -> None:
        _finite("Uniform", low=low, high=high)
        if not float(high) > float(low):
            raise ValueError(f"Uniform prior needs low < high: got low={low}, high={high}")
        self.low, self.high = float(low), float(high)

    def distribution(self) -> torch.distributions.Distribution:
        return torch.distributions.Uniform(_t(self.low), _t(self.high))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=_F64)
        inside = (x >= self.low) & (x <= self.high)
        lp = torch.where(inside, torch.full_like(x, -torch.log(_t(self.high - self.low)).item()),
                         torch.full_like(x, -torch.inf))
        return lp.sum(-1)


class LogNormal(Prior):
    """``LogNormal(loc, scale)``: a positive parameter whose log is ``Normal(loc, scale)`` (e.g. rationality)."""

    name = "lognormal"

    def __init__(self, loc: float = 0.0, scale: float = 1.0) -> None:
        _finite("LogNormal", loc=loc)
        _positive("LogNormal", scale=scale)
        self.loc, self.scale = float(loc), float(scale)

    def distribution(self) -> torch.distributions.Distribution:
        return torch.distributions.LogNormal(_t(self.loc), _t(self.scale))

    def initial_value(self) -> torch.Tensor:
        return torch.exp(_t(self.loc))


class Gamma(Prior):
    """``Gamma(concentration, rate)`` on a positive parameter (mean ``concentration / rate``)."""

    name = "gamma"

    def __init__(self, concentration: float = 2.0, rate: float = 1.0) -> None:
        _positive("Gamma", concentration=concentration, rate=rate)
        self.concentration, self.rate = float(concentration), float(rate)

    def distribution(self) -> torch.distributions.Distribution:
        return torch.distributions.Gamma(_t(self.concentration), _t(self.rate))


class HalfNormal(Prior):
    """``HalfNormal(scale)`` on a positive parameter."""

    name = "halfnormal"

    def __init__(self, scale: float = 1.0) -> None:
        _positive("HalfNormal", scale=scale)
        self.scale = float(scale)

    def distribution(self) -> torch.distributions.Distribution:
        return torch.distributions.HalfNormal(_t(self.scale))

    def initial_value(self) -> torch.Tensor:
        return _t(self.scale * 0.6744897501960817)  # the median


class Exponential(Prior):
    """``Exponential(rate)`` on a positive parameter."""

    name = "exponential"

    def __init__(self, rate: float = 1.0) -> None:
        _positive("Exponential", rate=rate)
        self.rate = float(rate)

    def distribution(self) -> torch.distributions.Distribution:
        return torch.distributions.Exponential(_t(self.rate))


class Categorical(Prior):
    """A discrete prior over a finite set of values (e.g. a planning horizon); summed out exactly.

    Args:
        values: the possible values (distinct finite numbers, or labels such as strings).
        probs: their prior probabilities (default uniform).
        max_values: refuse more values than this (default 1000). Each value costs
            one likelihood term, i.e. one plan of the human model, in every
            evaluation of the log-joint; raise the limit only on purpose.

    Raises:
        ValueError: no values, non-finite or repeated values, bad probabilities,
            or more than ``max_values`` values (with an estimate of the cost).

    Example:
        >>> import priors
        >>> p = priors.Categorical([1, 2, 3])
        >>> [round(float(x), 4) for x in p.enumerate()[1].exp()]
        [0.3333, 0.3333, 0.3333]
    """

    name = "categorical"
    discrete = True

    def __init__(self, values: Any, probs: Any = None, *, max_values: int = 1000) -> None:
        try:
            vals = [v for v in values]
        except TypeError:
            raise ValueError(f"Categorical prior values must be a list of numbers: got {values!r}") from None
        if not vals:
            raise ValueError("Categorical prior needs at least one value: got an empty list")
        keys = [_categorical_key(i, v) for i, v in enumerate(vals)]
        limit = _finite_number("Categorical", "max_values", max_values)
        if limit != int(limit) or limit < 1:
            raise ValueError(f"Categorical prior max_values must be a positive integer: got {max_values!r}")
        if len(vals) > limit:
            raise ValueError(
                f"Categorical prior has {len(vals)} values ({vals[0]!r} .. {vals[-1]!r}), more than max_values = "
                f"{int(limit)}: it is summed out exactly, so every evaluation of the log-joint computes one "
                f"likelihood term (one plan of the human model, e.g. one planner call per horizon value) per value, "
                f"{len(vals)} planner calls per evaluation, and a fit makes hundreds to thousands of evaluations "
                f"(at 1 ms to 1 s per planner call: {_duration(len(vals) * 1e-3 * 300)} to "
                f"{_duration(len(vals) * 300.0)} for 300 evaluations). Use a coarser grid (values=1|2|4|8|...), or "
                f"raise the limit on purpose: Categorical(values, max_values={len(vals)}) in Python; on the command "
                f"line categorical:values=...,max_values={len(vals)}, or prior:categorical(...;max_values={len(vals)}) "
                f"inside a human model")
        seen: dict[Any, int] = {}
        for i, (k, v) in enumerate(zip(keys, vals)):
            if k in seen:
                raise ValueError(f"Categorical prior values must be distinct: values[{seen[k]}] and "
                                 f"values[{i}] are both {v!r}")
            seen[k] = i
        if probs is None:
            p = torch.full((len(vals),), 1.0 / len(vals), dtype=_F64)
        else:
            try:
                p = torch.as_tensor([_finite_number("Categorical", "probs", x) for x in probs], dtype=_F64)
            except TypeError:
                raise ValueError(f"Categorical probs must be a list of numbers: got {probs!r}") from None
        if p.shape != (len(vals),) or (p < 0).any() or abs(float(p.sum()) - 1.0) > 1e-8:
            raise ValueError(f"Categorical probs must be {len(vals)} non-negative numbers summing to 1: got {probs}")
        self.values, self.probs = vals, p.tolist()

    def enumerate(self) -> tuple[list[Any], torch.Tensor]:
        """``(values, log_probs)`` of the support."""
        return list(self.values), torch.log(torch.as_tensor(self.probs, dtype=_F64))

    def distribution(self) -> torch.distributions.Distribution:
        return torch.distributions.Categorical(probs=torch.as_tensor(self.probs, dtype=_F64))

    def sample(self, shape: tuple[int, ...] = (), *, seed: int | None = None) -> torch.Tensor:
        idx = super().sample(shape, seed=seed).long()
        return torch.as_tensor(self.values, dtype=_F64)[idx]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=_F64)
        vals = torch.as_tensor(self.values, dtype=_F64)
        lp = torch.log(torch.as_tensor(self.probs, dtype=_F64))
        match = x[..., None] == vals
        out = torch.where(match.any(-1), (match * lp).nan_to_num(0.0).sum(-1), torch.full_like(x, -torch.inf))
        return out.sum(-1)

    def initial_value(self) -> torch.Tensor:
        return torch.as_tensor(self.values[int(torch.as_tensor(self.probs).argmax())], dtype=_F64)


class Flat(Prior):
    """Improper flat prior (log-density 0 everywhere): maximum likelihood."""

    name = "flat"

    @property
    def support(self) -> constraints.Constraint:
        return constraints.real

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=_F64)
        return torch.zeros(x.shape[:-1], dtype=_F64)

    def log_prob_unconstrained(self, u: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(torch.as_tensor(u, dtype=_F64))

    def sample(self, shape: tuple[int, ...] = (), *, seed: int | None = None) -> torch.Tensor:
        raise ValueError("a flat prior is improper: it cannot be sampled")

    def initial_value(self) -> torch.Tensor:
        return _t(0.0)


def is_prior(x: Any) -> bool:
    """Whether ``x`` is a prior (rather than a fixed number)."""
    return isinstance(x, Prior)


_REGISTRY: dict[str, type[Prior]] = {
    "gaussian": Gaussian, "normal": Gaussian, "laplace": Laplace, "uniform": Uniform, "lognormal": LogNormal,
    "gamma": Gamma, "halfnormal": HalfNormal, "exponential": Exponential, "categorical": Categorical, "flat": Flat,
}


def _load_plugins() -> None:
    """Register priors of installed plugins (entry-point group ``pluggable_irl.priors``)."""
    from irl.plugins import load_plugins

    def add(name: str, cls: Any, dist: str) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Prior)):
            raise TypeError(f"expected a subclass of priors.Prior, got {cls!r}")
        _REGISTRY[name] = cls

    load_plugins("priors", lambda: _REGISTRY, add)


def names() -> list[str]:
    """Known prior names for the command line (built-in and from installed plugins)."""
    _load_plugins()
    return sorted(_REGISTRY)


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"in prior {where!r}: expected a number, got {text!r}") from None


def make(spec: str) -> Prior:
    """Build a prior from ``"name:key=value,..."``.

    Lists are written with ``|``: ``categorical:values=1|2|3`` (optionally
    ``probs=0.2|0.3|0.5``); a range ``values=1..10`` is inclusive.

    Raises:
        ValueError: unknown name (listing the known ones) or bad parameters.

    Example:
        >>> import priors
        >>> priors.make("gaussian:scale=0.5")
        Gaussian(loc=0.0, scale=0.5)
        >>> priors.make("categorical:values=1..3").values
        [1, 2, 3]
    """
    name, _, rest = spec.strip().partition(":")
    kwargs: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        k, eq, v = part.partition("=")
        if not eq:
            raise ValueError(f"in prior {spec!r}: expected key=value, got {part!r}")
        k, v = k.strip(), v.strip()
        if ".." in v:
            lo, _, hi = v.partition("..")
            kwargs[k] = list(range(int(_number(lo, spec)), int(_number(hi, spec)) + 1))
        elif "|" in v or k in ("values", "probs"):
            nums = [_number(x, spec) for x in v.split("|")]
            kwargs[k] = [int(x) if k == "values" and math.isfinite(x) and x == int(x) else x for x in nums]
        else:
            kwargs[k] = _number(v, spec)
    if name.strip().lower() not in _REGISTRY:
        _load_plugins()
    cls = _REGISTRY.get(name.strip().lower())
    if cls is None:
        raise ValueError(f"unknown prior {name!r}; known: {', '.join(names())}")
    try:
        return cls(**kwargs)
    except TypeError:
        import inspect

        params = list(inspect.signature(cls).parameters)
        raise ValueError(f"prior {name!r} takes {params}: got {sorted(kwargs)}") from None
