"""Plugins: environments, human models, priors and solvers from other installed packages.

A package adds names to the registries by declaring entry points in its
``pyproject.toml``; once it is installed, the names work in Python
(``irl.envs.make``, ``hm.make``, ``priors.make``) and in every ``irl`` command::

    [project.entry-points."pluggable_irl.envs"]
    my-maze = "my_package.envs:my_maze"            # a function returning a TabularMDP

    [project.entry-points."pluggable_irl.human_models"]
    my-human = "my_package.humans:MyHuman"         # a class or factory: --human my-human:k=v

    [project.entry-points."pluggable_irl.priors"]
    my-prior = "my_package.priors:MyPrior"         # a priors.Prior subclass: --prior my-prior:k=v

    [project.entry-points."pluggable_irl.solvers"]
    my-solver = "my_package.solvers:build"         # build(*, human, prior, reward_model, max_iter, callback)

Entry points are looked up when a registry is listed or asked for a name it
does not know, and loaded (imported) only then; a name registered in-process
(the built-ins, ``hm.register``, ``irl.envs.register``) takes precedence over a
plugin of the same name. A plugin that fails to load is skipped with a warning
naming it and its error (once per process), so that one broken package does not
break the others.
"""

from __future__ import annotations

import warnings
from importlib import metadata
from typing import Any, Callable

__all__ = ["GROUPS", "load_plugins", "PluginWarning"]

#: Entry-point group of each registry.
GROUPS = {"envs": "pluggable_irl.envs", "human_models": "pluggable_irl.human_models",
          "priors": "pluggable_irl.priors", "solvers": "pluggable_irl.solvers"}


class PluginWarning(UserWarning):
    """An installed plugin could not be loaded (it is skipped)."""


_FAILED: set[tuple[str, str, str]] = set()  # (group, name, value) of plugins that failed: warned about once


def load_plugins(kind: str, known: Callable[[], Any], register: Callable[[str, Any, str], None]) -> list[str]:
    """Register the entry points of ``kind`` that are not registered yet.

    Args:
        kind: a key of :data:`GROUPS` (``"envs"``, ``"human_models"``, ``"priors"``, ``"solvers"``).
        known: returns the names registered so far (these are not loaded again).
        register: called as ``register(name, loaded_object, distribution_name)``.

    Returns:
        The names registered by this call.

    Example:
        >>> from irl.plugins import load_plugins
        >>> load_plugins("envs", lambda: [], lambda name, obj, dist: None)  # nothing installed here
        []
    """
    added = []
    have = set(known())
    for ep in metadata.entry_points(group=GROUPS[kind]):
        if ep.name in have or (ep.group, ep.name, ep.value) in _FAILED:
            continue
        dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
        try:
            obj = ep.load()
            register(ep.name, obj, dist)
        except Exception as e:  # noqa: BLE001 - any failure of third-party code: skip the plugin, say why
            _FAILED.add((ep.group, ep.name, ep.value))
            warnings.warn(f"plugin {ep.name!r} ({GROUPS[kind]} entry point {ep.value!r} of the package {dist!r}) "
                          f"could not be loaded and is skipped: {type(e).__name__}: {e}", PluginWarning,
                          stacklevel=2)
            continue
        have.add(ep.name)
        added.append(ep.name)
    return added
