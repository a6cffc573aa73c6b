"""Griffe extension used by the docs build: adapt the library's docstrings to mkdocstrings.

The docstrings follow the Google style with two habits that mkdocstrings does not
read as intended:

* the section title ``Example:`` (singular). Griffe's Google parser knows only
  ``Examples:``, and would render the doctest as a quoted paragraph; it is
  renamed so that the example shows as a Python code block;
* Sphinx roles such as ``:class:`TabularMDP``` or ``:func:`~irl.planning.rollout```.
  They become optional cross-references: a link when the target is documented on
  the site, plain code otherwise (never a broken link, never a build warning).

Only the rendered text changes; the source files are not touched.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`(~?)([\w.]+)(?:\(\))?`")
_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
_OWN_PACKAGES = ("irl", "human_models", "priors", "demos")


def _resolve(obj: griffe.Object, name: str) -> str:
    """The full dotted path of ``name`` as seen from ``obj`` (``name`` itself if unknown)."""
    if name.split(".", 1)[0] in _OWN_PACKAGES:
        return name
    head, _, rest = name.partition(".")
    scope: Any = obj
    while scope is not None:
        try:
            full = scope.resolve(head)
        except Exception:  # griffe raises NameResolutionError (or others for odd scopes)
            scope = scope.parent
            continue
        return f"{full}.{rest}" if rest else full
    return name


def _rewrite(obj: griffe.Object, text: str) -> str:
    def role(match: re.Match) -> str:
        tilde, name = match.groups()
        full = _resolve(obj, name)
        shown = name.rsplit(".", 1)[-1] if tilde else name
        return f'<autoref identifier="{full}" optional><code>{shown}</code></autoref>'

    return _EXAMPLE.sub(r"\1Examples:", _ROLE.sub(role, text))


class SphinxRolesAndExamples(griffe.Extension):
    """Rewrite every docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        self._visit(pkg, set())

    def _visit(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = _rewrite(obj, obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._visit(member, seen)
