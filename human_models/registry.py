"""String names for human models (used by the command line only).

A spec is ``name`` or ``name:key=value,key=value``, e.g. ``boltzmann:beta=5``.

A value written ``prior:NAME(ARGS)`` is a prior (inferred with the reward):
``ARGS`` are ``key=value`` pairs or positional values in the order of the
prior's parameters, separated by ``;`` (or ``,``), with ``a..b`` an inclusive
integer range and ``a|b|c`` a list, e.g.
``myopic:horizon=prior:categorical(1..10),beta=5``,
``boltzmann:beta=prior:lognormal(loc=0;scale=1)``,
``hyperbolic:k=1,kind=prior:categorical(naive|sophisticated)``,
``noisy:epsilon=prior:uniform(0;1),model=boltzmann(beta=5)``.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from human_models.base import BaseHumanModel, HumanModelError
from human_models.boltzmann import Boltzmann, BoltzmannQ

__all__ = ["register", "make", "names", "describe", "parse_spec"]

_REGISTRY: dict[str, Callable[..., BaseHumanModel]] = {}

#: Deepest nesting of parentheses a spec may have (``noisy:model=noisy(model=...)``); deeper ones are refused
#: before they are parsed, recursively, into a RecursionError.
MAX_SPEC_NESTING = 32


def register(name: str, factory: Callable[..., BaseHumanModel]) -> None:
    """Register a human model factory under ``name`` (for ``--human name:...``)."""
    _REGISTRY[name] = factory


def _load_plugins() -> None:
    """Register human models of installed plugins (entry-point group ``pluggable_irl.human_models``)."""
    from irl.plugins import load_plugins

    def add(name: str, factory: Any, dist: str) -> None:
        if not callable(factory):
            raise TypeError(f"expected a human model class or factory, got {type(factory).__name__}")
        register(name, factory)

    load_plugins("human_models", lambda: _REGISTRY, add)


def names() -> list[str]:
    """Registered names (built-in, ``register``-ed and from installed plugins), sorted."""
    _load_plugins()
    return sorted(_REGISTRY)


def _value(text: str) -> Any:
    if text.lower().startswith("prior:"):
        return _prior(text)
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
    for part in filter(None, (p.strip() for p in _split_top(rest, ","))):
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
        5.0
    """
    depth, deepest = 0, 0
    for ch in str(spec):
        depth += (ch == "(") - (ch == ")")
        deepest = max(deepest, depth)
    if deepest > MAX_SPEC_NESTING:
        raise HumanModelError(f"human model spec {str(spec)[:40]!r}... is nested {deepest} parentheses deep, more than "
                              f"human_models.registry.MAX_SPEC_NESTING = {MAX_SPEC_NESTING}")
    name, kwargs = parse_spec(spec)
    if name not in _REGISTRY:
        _load_plugins()
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


# ------------------------------------------------- priors and nested specs in values
def _split_top(text: str, seps: str) -> list[str]:
    """Split ``text`` at the characters in ``seps`` that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise HumanModelError(f"unbalanced parentheses in {text!r}")
        if ch in seps and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise HumanModelError(f"unbalanced parentheses in {text!r}")
    parts.append("".join(cur))
    return parts


def _call_form(text: str, what: str) -> tuple[str, list[str]]:
    """``"name(a;b=c)"`` -> ``("name", ["a", "b=c"])``; a bare ``"name"`` has no arguments."""
    text = text.strip()
    if "(" not in text:
        return text, []
    if not text.endswith(")"):
        raise HumanModelError(f"{what} {text!r} must read NAME(ARGS)")
    name, _, inner = text[:-1].partition("(")
    return name.strip(), [p.strip() for p in _split_top(inner, ";,") if p.strip()]


def _prior(text: str) -> Any:
    """Build the prior written ``prior:NAME(ARGS)`` (see the module docstring)."""
    import priors

    name, args = _call_form(text.strip()[len("prior:"):], "prior")
    name = name.lower()
    if name not in priors.names():
        raise HumanModelError(f"in {text!r}: unknown prior {name!r}; known: {', '.join(priors.names())}")
    cls = priors._REGISTRY.get(name)  # built-in or plugin prior: its parameters give the positional order
    order = list(inspect.signature(cls).parameters) if cls is not None else []
    pairs = []
    for i, arg in enumerate(args):
        if "=" in arg:
            pairs.append(arg)
        elif i < len(order) and all("=" not in a for a in args[:i]):
            pairs.append(f"{order[i]}={arg}")
        else:
            raise HumanModelError(f"in {text!r}: write the argument {arg!r} as key=value")
    kv = dict(p.split("=", 1) for p in pairs)
    values = kv.get("values", "")
    if name == "categorical" and values and ".." not in values and not all(
            _is_number(v) for v in values.split("|")):
        if set(kv) - {"values"}:
            raise HumanModelError(f"in {text!r}: a categorical prior over names takes only its values")
        return priors.Categorical(values.split("|"))
    try:
        return priors.make(f"{name}:{','.join(pairs)}")
    except ValueError as err:
        raise HumanModelError(f"in {text!r}: {err}") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _nested(spec: Any) -> BaseHumanModel:
    """A wrapped model written ``name`` or ``name(k=v;k=v)`` inside another spec (or a model object)."""
    if hasattr(spec, "action_log_probs"):
        return spec
    name, args = _call_form(str(spec), "model")
    return make(f"{name}:{','.join(args)}" if args else name)


# ------------------------------------------------------------------ biased humans
from human_models.biased import BoundedPlanner, FalseBelief, Myopic, Noisy  # noqa: E402
from human_models.hyperbolic import HyperbolicDiscounter  # noqa: E402


def _myopic(horizon: Any = 3, beta: Any = 1.0) -> BaseHumanModel:
    """Receding-horizon planner: plans `horizon` steps ahead at every step."""
    return Myopic(horizon=horizon, beta=beta)


def _bounded(iterations: Any = 3, beta: Any = 1.0, soft: bool = True) -> BaseHumanModel:
    """Acts on `iterations` sweeps of (soft) value iteration from zero, at every step."""
    return BoundedPlanner(iterations=iterations, beta=beta, soft=soft)


def _hyperbolic(k: Any = 1.0, kind: Any = "naive", beta: Any = 1.0) -> BaseHumanModel:
    """Hyperbolic discounter 1/(1 + k d), naive or sophisticated (Evans et al. 2016)."""
    return HyperbolicDiscounter(k=k, kind=kind, beta=beta)


def _false_belief(confidence: Any = 1.0, beta: Any = 1.0) -> BaseHumanModel:
    """Plans with dynamics T^c (c > 1 overconfident, c < 1 underconfident), acts in the true ones."""
    return FalseBelief(confidence=confidence, beta=beta)


def _noisy(epsilon: Any = 0.1, model: Any = "boltzmann") -> BaseHumanModel:
    """Mixes a model (written name(k=v;...)) with uniformly random actions, probability epsilon."""
    return Noisy(_nested(model), epsilon=epsilon)


register("myopic", _myopic)
register("bounded", _bounded)
register("hyperbolic", _hyperbolic)
register("false-belief", _false_belief)
register("noisy", _noisy)


# ------------------------------------------------------------ cognition-level humans
from human_models.cognitive import MetaBoltzmann, RandomClicks  # noqa: E402


def _deliberation(cost: Any = 1.0, depth_cost: Any = 0.0, beta: Any = 1.0, values: str = "points",
                  solver: str = "exact") -> BaseHumanModel:
    """Deliberation (meta-level softmax): clicks cost `cost` + `depth_cost` x depth; fit to deliberation traces."""
    return MetaBoltzmann(cost=cost, depth_cost=depth_cost, beta=beta, values=values, solver=solver)


def _random_clicks() -> BaseHumanModel:
    """Null model of deliberation: every possible click, or stopping, equally likely."""
    return RandomClicks()


register("deliberation", _deliberation)
register("random-clicks", _random_clicks)
