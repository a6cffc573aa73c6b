"""Draw the figures of the tutorial "Why the human model matters" (needs matplotlib).

    python docs/scripts/model_matters_figures.py            # writes docs/img/why-model-matters-*.png
    python docs/scripts/model_matters_figures.py --out DIR  # writes the same files into DIR

The numbers come from the same computation as the tutorial (same environments,
human models, seeds and fits), so the figures show what a reader who runs the
tutorial gets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "img"
ARROWS = {"up": (0, -0.32), "down": (0, 0.32), "left": (-0.32, 0), "right": (0.32, 0)}


def cases() -> list[tuple[str, str, object, object]]:
    """``(label, environment, biased human, Boltzmann model)`` as in the tutorial."""
    import human_models as hm

    return [
        ("myopic\n(corridor)", "temptation-corridor", hm.Myopic(horizon=3, beta=2.0), hm.Boltzmann(2.0)),
        ("bounded\n(corridor)", "temptation-corridor", hm.BoundedPlanner(iterations=3, beta=2.0), hm.Boltzmann(2.0)),
        ("hyperbolic\n(corridor)", "temptation-corridor", hm.HyperbolicDiscounter(k=1.0, kind="naive", beta=2.0),
         hm.Boltzmann(2.0)),
        ("false belief\n(cliff)", "cliff-shortcut", hm.FalseBelief(confidence=4.0, beta=5.0), hm.Boltzmann(5.0)),
        ("noisy\n(lava)", "lava-detour", hm.Noisy(hm.Boltzmann(5.0), epsilon=0.3), hm.Boltzmann(5.0)),
    ]


def run_case(env_name: str, biased: object, boltzmann: object) -> dict:
    """Simulate, fit with both models, plan; returns as fractions of the optimal return, and the fits."""
    import demos
    import irl

    env = irl.envs.make(env_name)
    truth = irl.envs.true_reward(env)
    data = demos.simulate(env, biased, truth, n=1000, seed=0)
    best = irl.metrics.optimal_return(env, truth)
    out = {"env": env, "truth": truth,
           "human": irl.metrics.policy_return(env, biased.action_probs(env, truth), truth) / best}
    for label, model in (("wrong", boltzmann), ("right", biased)):
        est = irl.MaxEnt(human=model).fit(env, data)
        plan = irl.plan(env, est)
        out[label] = irl.metrics.policy_return(env, plan, truth) / best
        out[label + "_est"], out[label + "_plan"] = est, plan
    return out


def corridor_rewards(result: dict, path: Path) -> Path:
    """True and inferred rewards on the corridor, with the first move of each plan drawn as arrows."""
    from matplotlib.figure import Figure

    env = result["env"]
    rows, cols = env.grid_shape
    wall = env.features.sum(axis=1) == 0
    panels = [("true reward (plan = optimal)", result["truth"], irl_plan(env, result["truth"])),
              ("reward inferred with Boltzmann(2)", result["wrong_est"].state_reward, result["wrong_plan"]),
              ("reward inferred with Myopic(horizon=3)", result["right_est"].state_reward, result["right_plan"])]
    fig = Figure(figsize=(7.5, 7.0), layout="constrained")
    for k, (title, reward, plan) in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, k + 1)
        grid = np.ma.masked_array(np.asarray(reward, float), mask=wall).reshape(rows, cols)
        lim = float(np.abs(grid).max())
        ax.imshow(grid, cmap="RdYlGn", vmin=-lim, vmax=lim)
        first = np.asarray(plan)[0] if np.asarray(plan).ndim == 3 else np.asarray(plan)
        for s in range(env.n_states):
            i, j = divmod(s, cols)
            if wall[s]:
                ax.add_patch(_wall_patch(i, j))
                continue
            ax.text(j, i + 0.3, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7.5)
            if not env.terminal[s]:
                dx, dy = ARROWS[env.action_names[int(first[s].argmax())]]
                ax.annotate("", xy=(j + dx, i - 0.1 + dy), xytext=(j, i - 0.1),
                            arrowprops={"arrowstyle": "->", "lw": 1.1})
        ax.set_title(title, fontsize=11)
        ax.set_xlim(0.5, cols - 1.5)
        ax.set_ylim(rows - 1.5, 0.5)
        ax.set_xticks([])
        ax.set_yticks([])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def _wall_patch(i: int, j: int):
    from matplotlib.patches import Rectangle

    return Rectangle((j - 0.5, i - 0.5), 1, 1, color="0.35")


def irl_plan(env, reward):
    import irl

    return irl.plan(env, reward)


def returns_chart(results: list[tuple[str, dict]], path: Path) -> Path:
    """The human's own return and the two planners' returns, as a share of the optimal return."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.5, 3.8), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(results))
    bars = [("the biased human", "human", "0.6"), ("plan, reward from Boltzmann", "wrong", "tab:red"),
            ("plan, reward from the right model", "right", "tab:green")]
    for k, (label, key, color) in enumerate(bars):
        vals = [100 * r[key] for _, r in results]
        ax.bar(x + (k - 1) * 0.27, vals, width=0.27, label=label, color=color)
        for xi, v in zip(x + (k - 1) * 0.27, vals):
            ax.text(xi, max(v, 0) + 2, f"{v:.0f}", ha="center", fontsize=7)
    ax.axhline(100, color="k", lw=0.8, ls="--")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(x, [name for name, _ in results], fontsize=8)
    ax.set_ylabel("% of the optimal return")
    ax.set_ylim(-30, 112)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 1.14), ncol=3, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    """Write every figure; return their paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default docs/img)")
    args = parser.parse_args(argv)
    results = [(label, run_case(env, biased, wrong)) for label, env, biased, wrong in cases()]
    written = [corridor_rewards(results[0][1], args.out / "why-model-matters-rewards.png"),
               returns_chart(results, args.out / "why-model-matters-returns.png")]
    for p in written:
        print(f"wrote {p}")
    return written


if __name__ == "__main__":
    main()
