"""Further ``irl`` subcommands, one module per area, registered on the app of :mod:`irl.cli`.

Each module listed in :data:`MODULES` defines ``register(app)``, which adds its
commands to the typer app with ``@app.command()``. They may use the helpers of
:mod:`irl.cli` (``CLIError``, ``_console``, ``load_*``): ``irl.cli`` imports this
package only after the app and its helpers exist.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Modules of this package whose ``register(app)`` adds commands (one name per line).
MODULES: tuple[str, ...] = (
    "simulate",
    "fit",
    "plan",
    "compare",
    "train",
    "listings",
    "plot",
    "constraints",
    "active",
    "side_effects",
    "norms",
)


def register_all(app: Any) -> None:
    """Add the commands of every module in :data:`MODULES` to ``app``."""
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}").register(app)
