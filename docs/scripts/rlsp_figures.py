"""Draw the figure of the tutorial "Learning what not to do from the state of the world".

    python docs/scripts/rlsp_figures.py            # writes docs/img/rlsp-room.png
    python docs/scripts/rlsp_figures.py --out DIR  # writes it into DIR

Left: the room (vase, carpets, the goal spot (0,1)), where the person started and
where the robot finds them, and the robot's path when it plans on the specified
reward alone (through the vase) and on specified + RLSP (around it). Right: the
inferred feature weights beside the true ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "img"


def _pos(label: str) -> tuple[int, int]:
    x, y = label.split(";")[0].removeprefix("agent (").rstrip(")").split(",")
    return int(x), int(y)


def robot_path(p, weights, steps: int = 6) -> list[tuple[int, int]]:
    """Agent positions of the robot planning optimally on ``weights`` (first best action on ties)."""
    import irl

    mdp = p.mdp
    q = irl.planning.value_iteration(mdp, p.reward(weights)).q
    s, path = p.observed_state, []
    for t in range(steps):
        path.append(_pos(p.state_label(s)))
        a = int(np.argmax(q[t, s] >= q[t, s].max() - 1e-9))
        s = int(mdp.transitions[s * mdp.n_actions + a].indices[0])
    return path


def draw_room(ax) -> None:
    """The 5x3 room of ``rlsp-room`` on ``ax``: carpets, the vase, the goal spot (y = 0 at the top)."""
    from matplotlib.patches import Rectangle

    W, H = 5, 3
    for x in range(W):
        for y in range(H):
            color = "#e8d9b5" if (x, y) in ((1, 1), (3, 1)) else "white"
            ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor=color, edgecolor="#999999"))
    ax.text(2, 1, "vase", ha="center", va="center", fontsize=11, weight="bold", color="#7a3b00")
    ax.text(0, 1.3, "goal", ha="center", va="center", fontsize=9, color="#1b5e20")
    ax.text(1, 0.72, "carpet", ha="center", fontsize=7, color="#7a6a40")
    ax.text(3, 0.72, "carpet", ha="center", fontsize=7, color="#7a6a40")
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.set_xticks(range(W))
    ax.set_yticks(range(H))


def draw(path: Path) -> Path:
    from matplotlib.figure import Figure

    import irl
    from irl.envs import rlsp

    p = rlsp.problem("rlsp-room")
    est = irl.solvers.rlsp.infer(p)
    final = p.task_weights + est.theta
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    ax, bx = fig.subplots(1, 2, width_ratios=[1.3, 1])
    draw_room(ax)
    ax.plot(2, 2, "o", ms=12, mfc="none", mec="#555555")
    ax.text(2.15, 2.3, "person started", fontsize=8, color="#555555")
    ax.plot(2, 0, "o", ms=12, color="#555555")
    ax.text(2.15, -0.3, "person now", fontsize=8, color="#555555")
    for w, color, name, dy in ((p.task_weights, "#c62828", "specified reward only: breaks the vase", -0.08),
                               (final, "#2e7d32", "specified + RLSP: walks round it", 0.08)):
        pts = np.array(robot_path(p, w), dtype=float)
        ax.plot(pts[:, 0], pts[:, 1] + dy, "-", lw=2.5, color=color, label=name, alpha=0.85)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), fontsize=8, ncol=1, frameon=False)
    ax.set_title("rlsp-room: the robot's plan")
    names = [n.replace("agent_", "").replace("num_", "") for n in p.mdp.feature_names]
    x = np.arange(len(names))
    bx.bar(x - 0.2, p.true_weights, 0.4, label="true", color="#90a4ae")
    bx.bar(x + 0.2, est.theta, 0.4, label="inferred from the world state", color="#3949ab")
    bx.axhline(0, color="black", lw=0.8)
    bx.set_xticks(x, names, rotation=15, fontsize=8)
    bx.set_title("feature weights")
    bx.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default docs/img)")
    args = parser.parse_args(argv)
    return [draw(args.out / "rlsp-room.png")]


if __name__ == "__main__":
    for written in main():
        print(written)
