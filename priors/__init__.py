"""Priors over reward parameters ``theta`` and human parameters ``phi``.

Priors are thin wrappers around ``torch.distributions`` that sum the log-density
over independent parameters. This first set serves MAP estimation
(``irl.MaxEnt(prior=...)``); the Bayesian solver builds on the same objects.

Example:
    >>> import torch, priors
    >>> p = priors.Gaussian(0.0, 1.0)
    >>> round(float(p.log_prob(torch.zeros(3))), 4)
    -2.7568
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["Prior", "Gaussian", "Laplace", "Flat", "make", "names"]


class Prior:
    """An i.i.d. prior over every parameter: ``log_prob(theta)`` sums over the last axis."""

    name = "prior"

    def distribution(self) -> torch.distributions.Distribution:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} has no distribution")

    def log_prob(self, theta: torch.Tensor) -> torch.Tensor:
        """Log-density summed over the last axis: ``(..., P) -> (...)``."""
        return self.distribution().log_prob(theta).sum(-1)

    def sample(self, shape: tuple[int, ...], *, seed: int | None = None) -> torch.Tensor:
        """Draw parameters of ``shape`` (seeded)."""
        g = torch.Generator().manual_seed(0 if seed is None else seed)
        d = self.distribution()
        u = torch.rand(shape, generator=g, dtype=torch.float64)
        return d.icdf(u)


class Gaussian(Prior):
    """Independent ``Normal(loc, scale)`` on every parameter (L2 regularisation in MAP).

    Args:
        loc: mean.
        scale: standard deviation ``> 0``.
    """

    name = "gaussian"

    def __init__(self, loc: float = 0.0, scale: float = 1.0) -> None:
        if not float(scale) > 0:
            raise ValueError(f"Gaussian prior scale must be > 0: got {scale}")
        self.loc, self.scale = float(loc), float(scale)

    def distribution(self) -> torch.distributions.Distribution:
        return torch.distributions.Normal(torch.tensor(self.loc, dtype=torch.float64),
                                          torch.tensor(self.scale, dtype=torch.float64))

    def __repr__(self) -> str:
        return f"Gaussian(loc={self.loc}, scale={self.scale})"


class Laplace(Prior):
    """Independent ``Laplace(loc, scale)`` on every parameter (sparse rewards; L1 in MAP)."""

    name = "laplace"

    def __init__(self, loc: float = 0.0, scale: float = 1.0) -> None:
        if not float(scale) > 0:
            raise ValueError(f"Laplace prior scale must be > 0: got {scale}")
        self.loc, self.scale = float(loc), float(scale)

    def distribution(self) -> torch.distributions.Distribution:
        return torch.distributions.Laplace(torch.tensor(self.loc, dtype=torch.float64),
                                           torch.tensor(self.scale, dtype=torch.float64))

    def __repr__(self) -> str:
        return f"Laplace(loc={self.loc}, scale={self.scale})"


class Flat(Prior):
    """Improper flat prior (log-density 0): maximum likelihood."""

    name = "flat"

    def log_prob(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.zeros(theta.shape[:-1], dtype=theta.dtype)

    def __repr__(self) -> str:
        return "Flat()"


_REGISTRY = {"gaussian": Gaussian, "normal": Gaussian, "laplace": Laplace, "flat": Flat}


def names() -> list[str]:
    """Known prior names for the command line."""
    return sorted(_REGISTRY)


def make(spec: str) -> Prior:
    """Build a prior from ``"name:key=value,..."``, e.g. ``"gaussian:scale=0.5"``.

    Raises:
        ValueError: unknown name (listing the known ones) or bad parameters.
    """
    name, _, rest = spec.strip().partition(":")
    kwargs: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        k, eq, v = part.partition("=")
        if not eq:
            raise ValueError(f"in prior {spec!r}: expected key=value, got {part!r}")
        try:
            kwargs[k.strip()] = float(v)
        except ValueError:
            raise ValueError(f"in prior {spec!r}: {k.strip()} must be a number, got {v!r}") from None
    cls = _REGISTRY.get(name.strip().lower())
    if cls is None:
        raise ValueError(f"unknown prior {name!r}; known: {', '.join(names())}")
    try:
        return cls(**kwargs)
    except TypeError:
        raise ValueError(f"prior {name!r} does not take {sorted(kwargs)}") from None
