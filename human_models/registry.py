"""String names for human models (used by the command line only).

A spec is ``name`` or ``name:key=value,key=value``, e.g. ``boltzmann:beta=5``.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from human_models.base import BaseHumanModel, HumanModelError
from human_models.boltzmann import Boltzmann, BoltzmannQ

__all__ = ["register", "make", "names", "describe", "parse_spec"]

_REGISTRY: dict[str, Callable[..., BaseHumanModel]] = {}


def register(name: str, factory: Callable[..., BaseHumanModel]) -> None:
    """Register a human model factory under ``name`` (for ``--human name:...``)."""
    _REGISTRY[name] = factory


def names() -> list[str]:
    """Registered names, sorted."""
    return sorted(_REGISTRY)


def _value(text: str) -> Any:
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name:k=v,k=v"`` into ``(name, {k: v})`` with numbers converted.

    Raises:
        HumanModelError: a malformed ``key=value`` pair.
    """
    name, _, rest = spec.strip().partition(":")
    kwargs: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, val = part.partition("=")
        if not eq or not key.strip():
            raise HumanModelError(f"in {spec!r}: expected key=value, got {part!r}")
        kwargs[key.strip()] = _value(val.strip())
    return name.strip().lower(), kwargs


def make(spec: str) -> BaseHumanModel:
    """Build a human model from a spec string such as ``"boltzmann:beta=5"``.

    Raises:
        HumanModelError: unknown name (the message lists the known ones) or bad parameters.

    Example:
        >>> import human_models as hm
        >>> hm.make("boltzmann:beta=5").beta
        5
    """
    name, kwargs = parse_spec(spec)
    if name not in _REGISTRY:
        raise HumanModelError(f"unknown human model {name!r}; known: {', '.join(names())}")
    factory = _REGISTRY[name]
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError:
        params = list(inspect.signature(factory).parameters)
        raise HumanModelError(f"human model {name!r} takes parameters {params}: got {sorted(kwargs)}") from None
    return factory(**kwargs)


def describe() -> list[tuple[str, str, str]]:
    """``(name, parameters, summary)`` for every registered model."""
    rows = []
    for name in names():
        f = _REGISTRY[name]
        params = ", ".join(f"{p.name}={p.default!r}" for p in inspect.signature(f).parameters.values()
                           if p.default is not inspect.Parameter.empty)
        doc = (inspect.getdoc(f) or "").splitlines()
        rows.append((name, params, doc[0] if doc else ""))
    return rows


register("boltzmann", Boltzmann)
register("boltzmann-q", BoltzmannQ)
