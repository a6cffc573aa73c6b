"""``irl plot``: the inferred state reward as a heatmap on the environment's grid.

Loaded by :mod:`irl.cli`, which registers the commands on its app (import ``irl.cli``, not this module).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer

from irl.cli import CLIError, _console, _handles_errors, _make_env, _reward_of, _warn_env_mismatch


@_handles_errors
def plot(
    reward: Path = typer.Argument(..., help="A reward saved by `irl fit`, e.g. reward.npz."),
    env: str = typer.Option(..., "--env", help="A gridworld environment, e.g. gridworld-8x8."),
    out: Path = typer.Option(..., "--out", "-o", help="Image file (.png, .pdf, .svg), e.g. --out reward.png."),
    inferred_only: bool = typer.Option(False, "--inferred-only",
                                       help="Draw only the inferred reward, not the environment's true reward "
                                            "beside it, e.g. --inferred-only."),
) -> None:
    """Draw the inferred state reward as a heatmap on the environment's grid.

    Needs matplotlib (the `plot` extra). A state-action reward is averaged over actions.

    Example: irl plot reward.npz --env gridworld-8x8 --out reward.png
    """
    import irl
    from demos import atomic_write
    from irl.mdp import state_action_reward

    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise CLIError("`irl plot` needs matplotlib: pip install 'pluggable-irl[plot]'") from None
    mdp = _make_env(env)
    if mdp.grid_shape is None:
        grids = [n for n in irl.envs.names() if n.startswith("gridworld")]
        raise CLIError(f"environment {env!r} has no grid layout to draw on; environments with one include "
                       f"{', '.join(grids)}", code=2)
    est = irl.RewardEstimate.load(str(reward))
    _reward_of(est, mdp, reward)
    _warn_env_mismatch(est.info.get("env"), mdp, reward)
    S, A = mdp.n_states, mdp.n_actions
    panels = [("inferred reward", state_action_reward(est.reward, S, A).mean(axis=-1))]
    if not inferred_only and mdp.true_reward is not None:
        panels.append(("true reward", state_action_reward(mdp.true_reward, S, A).mean(axis=-1)))
    fig = Figure(figsize=(4.2 * len(panels), 3.8), layout="constrained")
    rows, cols = mdp.grid_shape
    for k, (title, values) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        grid = values.reshape(rows, cols)
        im = ax.imshow(grid, cmap="viridis", origin="upper")
        if rows * cols <= 100:
            lo, hi = float(grid.min()), float(grid.max())
            for (i, j), v in np.ndenumerate(grid):
                bright = hi > lo and (v - lo) / (hi - lo) > 0.6  # light end of viridis: dark text
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if bright else "white")
        ax.set_title(f"{title} ({mdp.name})")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8)
    fmt = out.suffix.lstrip(".").lower()
    supported = sorted(fig.canvas.get_supported_filetypes())
    if fmt not in supported:
        raise CLIError(f"--out {out}: unknown image type {out.suffix!r}; known: {', '.join(supported)}", code=2)
    atomic_write(out, lambda f: fig.savefig(f, format=fmt, dpi=120))
    _console().print(f"Saved {out}", soft_wrap=True)


def register(app: Any) -> None:
    """Add this module's commands to ``app``."""
    app.command()(plot)
