"""Draw the figure of the tutorial "Learning what not to do" (side-effect penalties beside RLSP).

    python docs/scripts/side_effects_figures.py            # writes docs/img/side-effects-room.png
    python docs/scripts/side_effects_figures.py --out DIR  # writes it into DIR

Left: the vase room and the robot's path from the observed state when it plans
on the specified reward alone (through the vase), on specified + RLSP, and on the
specified reward with the stepwise relative-reachability and attainable-utility
penalties. Right: the fraction of the true reward (the RLSP paper's measure) of
each method in five of the paper's environments (apples is left out: its
reachability table takes about 40 s and 1 GB). About two minutes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "img"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the room drawing of rlsp_figures.py
ENVS = ("rlsp-room", "rlsp-train", "rlsp-room-bad", "rlsp-batteries-easy", "rlsp-batteries")
METHODS = ("spec", "rlsp", "deviation", "reachability\n(authors)", "RR stepwise", "AUP stepwise")


def _penalty(p, method: str):
    from irl import side_effects

    if method == "deviation":
        return side_effects.feature_deviation(p.mdp, weight=0.5)
    if method.startswith("reachability"):
        return side_effects.relative_reachability(p.mdp, baseline="inaction", horizon=20, at_horizon=True,
                                                  normalize=True)
    if method == "RR stepwise":
        return side_effects.relative_reachability(p.mdp, baseline="stepwise")
    if method == "AUP stepwise":
        return side_effects.attainable_utility(p.mdp, baseline="stepwise")
    return None


def _weights(p, method: str) -> np.ndarray:
    import irl

    return p.task_weights + irl.solvers.rlsp.infer(p).theta if method == "rlsp" else p.task_weights


def robot_path(p, method: str, steps: int = 6) -> list[tuple[int, int]]:
    """Agent positions of the robot planning optimally (first best action on ties) with ``method``."""
    from irl import planning, side_effects
    from rlsp_figures import _pos

    pen = _penalty(p, method)
    r = p.reward(_weights(p, method))
    q = planning.value_iteration(p.mdp, r).q if pen is None else side_effects.plan_penalised(p.mdp, r, pen).q
    s, path = p.observed_state, []
    for t in range(steps):
        path.append(_pos(p.state_label(s)))
        a = int(np.argmax(q[t, s] >= q[t, s].max() - 1e-9))
        s = int(p.mdp.transitions[s * p.mdp.n_actions + a].indices[0])
    return path


def fractions() -> np.ndarray:
    """``(len(ENVS), len(METHODS))`` true-reward fractions."""
    from irl.envs import rlsp

    out = np.empty((len(ENVS), len(METHODS)))
    for i, name in enumerate(ENVS):
        p = rlsp.problem(name)
        for j, method in enumerate(METHODS):
            out[i, j] = rlsp.true_reward_fraction(p, _weights(p, method), penalty=_penalty(p, method))
    return out


def draw(path: Path) -> Path:
    from matplotlib.figure import Figure

    from irl.envs import rlsp
    from rlsp_figures import draw_room

    p = rlsp.problem("rlsp-room")
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    ax, bx = fig.subplots(1, 2, width_ratios=[1.1, 1.3])
    draw_room(ax)
    ax.plot(2, 0, "o", ms=12, color="#555555")
    ax.text(2.15, -0.3, "robot starts", fontsize=8, color="#555555")
    styles = (("spec", "#c62828", "specified reward only"), ("rlsp", "#3949ab", "specified + RLSP"),
              ("RR stepwise", "#2e7d32", "relative reachability (stepwise)"),
              ("AUP stepwise", "#ef6c00", "attainable utility (stepwise)"))
    for k, (method, color, name) in enumerate(styles):
        pts = np.array(robot_path(p, method), dtype=float)
        dy = (k - 1.5) * 0.06
        ax.plot(pts[:, 0] + dy, pts[:, 1] + dy, "-", lw=2.2, color=color, label=name, alpha=0.85)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), fontsize=8, ncol=2, frameon=False)
    ax.set_title("rlsp-room: the robot's first steps")
    f = fractions()
    im = bx.imshow(f, vmin=0.4, vmax=1.0, cmap="RdYlGn", aspect="auto")
    for i in range(f.shape[0]):
        for j in range(f.shape[1]):
            bx.text(j, i, f"{f[i, j]:.2f}", ha="center", va="center", fontsize=8)
    bx.set_xticks(range(len(METHODS)), METHODS, fontsize=8)
    bx.set_yticks(range(len(ENVS)), ENVS, fontsize=8)
    bx.set_title("fraction of the true reward (1 = as if it knew it)")
    fig.colorbar(im, ax=bx, shrink=0.8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default docs/img)")
    args = parser.parse_args(argv)
    return [draw(args.out / "side-effects-room.png")]


if __name__ == "__main__":
    for written in main():
        print(written)
