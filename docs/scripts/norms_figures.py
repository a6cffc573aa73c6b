"""Draw the figure of the tutorial "Norms shared by several agents".

    python docs/scripts/norms_figures.py            # writes docs/img/shared-norms.png
    python docs/scripts/norms_figures.py --out DIR  # writes it into DIR

Left: the park (lawns, flowerbeds, the landmarks; A-D are the four agents' goals) with a
new agent's path to a new goal when it plans with the norm inferred from all agents.
Middle: the norm's weights, true, inferred from all four agents at once, and from each agent
alone. Right: how well the inferred norm serves new agents with new goals (mean expected
value difference over every path cell as a goal; lower is better).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "img"
TRAIN = ["A", "B", "C", "D"]


def fits(seed: int = 0, n: int = 5):
    """Norm weights and new-agent EVDs from all agents and from each one (the tutorial's numbers)."""
    import demos
    import human_models as hm
    import irl
    from irl.envs import park
    from irl.norms import SharedReward, transfer_evd

    env = irl.envs.make("park")
    evidence = [irl.Evidence(env, demos.simulate(env, hm.Boltzmann(3.0), park.agent_reward(env, g), n=n,
                                                 seed=seed * 100 + k), hm.Boltzmann(3.0), agent=g)
                for k, g in enumerate(TRAIN)]
    train = env.features[:, 2:6].sum(1)
    cells = np.flatnonzero((env.true_reward == 0) & (train == 0) & (env.initial > 0))
    goals = np.eye(env.n_states)[cells]

    def fit(items):
        model = SharedReward.from_features(env, shared=park.NORM_FEATURES, own=park.GOAL_FEATURES,
                                           agents=[ev.agent for ev in items])
        est = irl.MaxEnt(reward_model=model, prior=model.prior()).fit(items)
        return est.theta[:2], transfer_evd(env, est.reward[:, 0], env.true_reward, goals).mean()

    out = {"all agents": fit(evidence)}
    out.update({f"agent {ev.agent} alone": fit([ev]) for ev in evidence})
    out["no norm"] = (np.zeros(2), transfer_evd(env, np.zeros(env.n_states), env.true_reward, goals).mean())
    return env, out


def draw(path: Path) -> Path:
    import matplotlib.patches as patches
    from matplotlib.figure import Figure

    import irl
    from irl.envs import park

    env, out = fits()
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    ax, bx, cx = fig.subplots(1, 3, width_ratios=[1.0, 1.1, 1.2])
    colors = {".": "white", "l": "#a5d6a7", "f": "#f48fb1"}
    for r, row in enumerate(park.LAYOUT):
        for c, ch in enumerate(row):
            ax.add_patch(patches.Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=colors.get(ch, "white"),
                                           edgecolor="#bbbbbb", lw=0.5))
            if ch in park.GOALS:
                ax.text(c, r, ch, ha="center", va="center", fontsize=10,
                        weight="bold" if ch in TRAIN else "normal", color="#1a237e" if ch in TRAIN else "#555555")
    # a new agent (goal at row 8, column 9) starting at row 4, column 2, planning with the joint norm
    norm = env.features[:, :2] @ out["all agents"][0]
    goal = 8 * 10 + 9
    q = irl.planning.value_iteration(env, norm + np.eye(env.n_states)[goal]).q
    s, pts = 4 * 10 + 2, []
    moves = {0: (0, 0), 1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}
    for t in range(env.horizon):
        r, c = divmod(s, 10)
        pts.append((c, r))
        a = int(np.argmax(q[t, s]))
        dr, dc = moves[a]
        s = min(max(r + dr, 0), 9) * 10 + min(max(c + dc, 0), 9)
    pts = np.array(pts, dtype=float)
    ax.plot(pts[:, 0], pts[:, 1], "-o", ms=3, lw=2, color="#283593", label="new agent, new goal (★)")
    ax.plot(goal % 10, goal // 10, "*", ms=14, color="#ff6f00")
    ax.set_xlim(-0.5, 9.5)
    ax.set_ylim(9.5, -0.5)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=8, frameon=False)
    ax.set_title("park: lawns (green), flowerbeds (pink)", fontsize=10)
    names = ["true"] + [k for k in out if k != "no norm"]
    w = np.array([[park.NORM["lawn"], park.NORM["flowers"]]] + [out[k][0] for k in names[1:]])
    x = np.arange(2)
    width = 0.8 / len(names)
    palette = ["#90a4ae", "#283593", "#ef9a9a", "#e57373", "#ef5350", "#c62828"]
    for i, (name, col) in enumerate(zip(names, palette)):
        bx.bar(x - 0.4 + (i + 0.5) * width, w[i], width, label=name, color=col)
    bx.axhline(0, color="black", lw=0.8)
    bx.set_xticks(x, ["lawn", "flowers"])
    bx.set_title("the norm's weights (MAP)", fontsize=10)
    bx.legend(fontsize=7)
    keys = [k for k in out]
    evd = [out[k][1] for k in keys]
    cx.barh(np.arange(len(keys)), evd, color=["#283593", "#ef9a9a", "#e57373", "#ef5350", "#c62828", "#9e9e9e"])
    cx.set_yticks(np.arange(len(keys)), keys, fontsize=8)
    cx.invert_yaxis()
    cx.set_xscale("log")
    for i, v in enumerate(evd):
        cx.text(v * 1.05, i, f"{v:.3f}", va="center", fontsize=8)
    cx.set_xlim(min(evd) * 0.5, max(evd) * 4)
    cx.set_title("new agents' expected value difference", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default docs/img)")
    args = parser.parse_args(argv)
    return [draw(args.out / "shared-norms.png")]


if __name__ == "__main__":
    for written in main():
        print(written)
