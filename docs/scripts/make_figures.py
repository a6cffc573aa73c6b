"""Draw the figures of the documentation (run from anywhere; needs matplotlib).

    python docs/scripts/make_figures.py            # writes docs/img/*.png
    python docs/scripts/make_figures.py --out DIR  # writes the same files into DIR

The figures come from the same computation as the tutorial "Your first reward
inference" (same environment, human model, seed and fit), so they show exactly
what a reader who runs the tutorial gets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "img"


def first_fit() -> dict:
    """Run the tutorial's pipeline and return what the figure shows."""
    import demos
    import human_models as hm
    import irl

    env = irl.envs.make("gridworld-8x8")
    truth = irl.envs.true_reward(env)
    data = demos.simulate(env, hm.Boltzmann(beta=5.0), truth, n=200, seed=0)
    est = irl.MaxEnt(human=hm.Boltzmann(beta=5.0)).fit(env, data)
    visits = np.bincount(data.states, minlength=env.n_states)
    return {"env": env, "truth": truth, "inferred": est.state_reward, "visits": visits, "theta": est.theta}


def reward_heatmap(result: dict, path: Path) -> Path:
    """True reward, inferred reward and visit counts of the demonstrations, side by side."""
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    env = result["env"]
    rows, cols = env.grid_shape
    # rewards are identified only up to a constant here (one-hot features, fixed horizon):
    # shift the inferred reward so that plain cells read 0, as in the true reward
    inferred = result["inferred"] - result["theta"][1]
    panels = [
        ("true reward", result["truth"], "RdYlGn", (-1.1, 1.1)),
        ("inferred reward (MaxEnt, shifted)", inferred, "RdYlGn", (-1.1, 1.1)),
        ("visits in 200 demonstrations (log scale)", result["visits"], "Blues", None),
    ]
    fig = Figure(figsize=(10.5, 3.4), layout="constrained")
    for k, (title, values, cmap, lim) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        grid = np.asarray(values, dtype=float).reshape(rows, cols)
        if lim is None:  # counts: log colour scale, so that the goal cell does not wash out the rest
            kw = {"norm": LogNorm(vmin=max(grid.min(), 1.0), vmax=grid.max())}
        else:
            kw = {"vmin": lim[0], "vmax": lim[1]}
        im = ax.imshow(grid, cmap=cmap, origin="upper", **kw)
        for (i, j), v in np.ndenumerate(grid):
            text = f"{v:.0f}" if lim is None else f"{v:.2f}"
            dark = lim is None and v > np.sqrt(max(grid.max(), 1.0))
            ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color="white" if dark else "black")
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.85)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    """Write every figure; return their paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default docs/img)")
    args = parser.parse_args(argv)
    written = [reward_heatmap(first_fit(), args.out / "first-fit-reward.png")]
    for p in written:
        print(f"wrote {p}")
    return written


if __name__ == "__main__":
    main()
