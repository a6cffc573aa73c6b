"""``irl envs``, ``irl human-models``, ``irl solvers``: what the registries hold.

Loaded by :mod:`irl.cli`, which registers the commands on its app (import ``irl.cli``, not this module).
"""

from __future__ import annotations

import json
from typing import Any

import typer

from irl.cli import JSON_OPTION, SOLVERS, _console, _handles_errors, _solver_names


def _print_listing(title: str, columns: tuple[str, ...], rows: Any, json_out: bool = False) -> None:
    """A table of names (first column, never wrapped) and their descriptions; JSON lines with ``--json``."""
    from rich.markup import escape
    from rich.table import Table

    if json_out:
        for row in rows:
            typer.echo(json.dumps(dict(zip(columns, row))))
        return
    t = Table(title=title)
    for i, col in enumerate(columns):
        t.add_column(col, no_wrap=i == 0)
    for row in rows:
        t.add_row(*(escape(str(x)) for x in row))
    _console().print(t)

@_handles_errors
def envs(json_out: bool = JSON_OPTION) -> None:
    """List the registered environments (built-in and from installed plugins).

    Any --env option also takes the path of an MDP file written by TabularMDP.save.

    Example: irl envs
    """
    import irl

    _print_listing("Environments (irl.envs.make(name))", ("name", "summary"), irl.envs.describe(), json_out)

@_handles_errors
def human_models_cmd(json_out: bool = JSON_OPTION) -> None:
    """List the registered human models (built-in, plugins) and their parameters.

    Example: irl human-models
    """
    import human_models as hm

    _print_listing("Human models (--human NAME:key=value)", ("name", "parameters", "summary"),
                   [(name, params, summary.replace("``", "")) for name, params, summary in hm.describe()], json_out)

@_handles_errors
def solvers(json_out: bool = JSON_OPTION) -> None:
    """List the solvers known to `irl fit --solver` (built-in and from installed plugins).

    Example: irl solvers
    """
    _print_listing("Solvers (irl fit --solver NAME)", ("name", "summary"),
                   [(name, SOLVERS[name].summary) for name in _solver_names()], json_out)


def register(app: Any) -> None:
    """Add this module's commands to ``app``."""
    app.command()(envs)
    app.command("human-models")(human_models_cmd)
    app.command()(solvers)
