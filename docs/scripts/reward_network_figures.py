"""Draw the figure of the tutorial "A reward network for many maps".

    python docs/scripts/reward_network_figures.py            # writes docs/img/reward-network-unseen.png
    python docs/scripts/reward_network_figures.py --out DIR  # writes it into DIR

Trains the tutorial's network (same maps, seeds and settings), then draws the true reward
of the first unseen map (seed 100) beside the network's reward there, with the objects
marked (outer colour 1 and 2).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "img"


def train() -> object:
    """The tutorial's training run; returns the trained ``NeuralReward``."""
    import torch

    import irl
    import irl.lightning as irl_pl

    folder = Path(tempfile.mkdtemp(prefix="reward_network_"))
    path = irl.datasets.simulate_manifest(folder / "maps", "objectworld", seeds=range(10), n=32, horizon=8,
                                          env_kwargs={"size": 12, "placement_prob": 0.1},
                                          splits=["train"] * 8 + ["val"] * 2, seed=0)
    data = irl_pl.MapDataModule.from_manifest(path, batch_size=4)
    torch.manual_seed(0)
    module = irl_pl.RewardNetModule.from_spec("mlp:hidden=32,32", data.example_mdp(), lr=3e-2, seed=0)
    irl_pl.trainer(max_epochs=15, enable_progress_bar=False, num_sanity_val_steps=0, check_val_every_n_epoch=15,
                   default_root_dir=str(folder)).fit(module, data)
    return module.reward_model


def draw(path: Path, model: object) -> Path:
    from matplotlib.figure import Figure

    import irl

    env = irl.envs.make("objectworld", size=12, placement_prob=0.1, seed=100)
    n = env.grid_shape[0]
    learned = model.reward(env).mean(axis=1).reshape(n, n)
    truth = env.true_reward.reshape(n, n)
    evd = irl.metrics.expected_value_difference(env, irl.plan(env, model.reward(env)), env.true_reward)
    fig = Figure(figsize=(8.4, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, img, title in ((axes[0], truth, "true reward (+5 / 0 / −10)"),
                           (axes[1], learned, f"network's reward (EVD {evd:.2f})")):
        im = ax.imshow(img, cmap="RdYlGn")
        fig.colorbar(im, ax=ax, shrink=0.85)
        for k, marker in ((0, "o"), (1, "s")):  # objects: "outer colour k+1 within distance < 1"
            cells = np.flatnonzero(env.features[:, k] > 0)
            r, c = np.divmod(cells, n)
            ax.scatter(c, r, marker=marker, s=40, facecolors="none", edgecolors="black",
                       label=f"outer colour {k + 1}")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(loc="lower left", fontsize=7, framealpha=0.8)
    fig.suptitle("An unseen 12 x 12 objectworld map (seed 100)")
    out = path / "reward-network-unseen.png"
    fig.savefig(out, dpi=110)
    return out


def main(argv: list[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    written = [draw(args.out, train())]
    for w in written:
        print(w)
    return written


if __name__ == "__main__":
    main()
