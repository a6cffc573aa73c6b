"""Draw the figure of the guide "Constraints from demonstrations".

    python docs/scripts/constraints_figures.py            # writes docs/img/constraints-9x9.png
    python docs/scripts/constraints_figures.py --out DIR  # writes it into DIR

Left: the 9x9 grid with the demonstrations' visits, the blue and green cells, the hidden
forbidden cells and the cells the likelihood-ratio rule recovers from 100 demonstrations.
Right: precision and recall of the recovered constraints against the number of
demonstrations (10 data sets each; the numbers of benchmarks/bench_constraints.py).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "docs" / "img"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_constraints", ROOT / "benchmarks" / "bench_constraints.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import demos
    import human_models as hm
    import irl
    from irl import constraints as C
    from irl.envs import constraint_grid as G

    bench = _bench()
    env = irl.envs.make("scobee-9x9")
    _, true = bench.truth(env)
    human = hm.Boltzmann(2.0)
    data = demos.simulate(env, human, C.constrained_reward(env, env.true_reward, true), n=100, seed=0, horizon=80)
    fit = C.infer(env, data, env.true_reward, kind=bench.KINDS, human=human, stop="lr")
    ns = [5, 10, 20, 50, 100]
    rows = bench.recovery(ns, args.seeds, 2.0, ["kl", "lr"])

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.3), gridspec_kw={"width_ratios": [1, 1.25]})
    visits = np.bincount(data.states, minlength=81).reshape(9, 9)
    ax.imshow(np.log1p(visits), origin="lower", cmap="Greys", vmin=0, vmax=np.log1p(visits.max()) * 1.6)
    for cells, colour in ((G.BLUE, "tab:blue"), (G.GREEN, "tab:green")):
        for s in cells:
            ax.add_patch(plt.Rectangle((s % 9 - 0.5, s // 9 - 0.5), 1, 1, color=colour, alpha=0.55))
    for s in G.CONSTRAINED_STATES:
        ax.plot(s % 9, s // 9, "kx", ms=14, mew=2.5)
    found = fit.indices("state")
    ax.plot([s % 9 for s in found], [s // 9 for s in found], "o", mfc="none", mec="tab:red", ms=20, mew=2)
    ax.text(0, 0, "S", ha="center", va="center", fontsize=12, weight="bold", color="tab:orange")
    ax.text(8, 0, "G", ha="center", va="center", fontsize=12, weight="bold", color="tab:orange")
    ax.set_xticks(range(9))
    ax.set_yticks(range(9))
    ax.set_xlabel("x")
    ax.set_ylabel("y (up adds 9 to the state id)")
    moves = ", ".join(c.label.removeprefix("action ") for c in fit.constraints if c.kind == "action")
    colours = ", ".join(c.label.removeprefix("feature ") for c in fit.constraints if c.kind == "feature")
    ax.set_title(f"100 demonstrations; x hidden, o recovered (lr)\nmoves: {moves}; colours: {colours}", fontsize=9)

    styles = {"kl": ("tab:purple", "KL rule (0.1 nats/demo)"), "lr": ("tab:red", "LR rule (alpha 0.05)")}
    for rule, (colour, label) in styles.items():
        sel = [r for r in rows if r["stop"] == rule]
        n = [r["demos"] for r in sel]
        bx.errorbar(n, [r["recall"] for r in sel], [r["recall_sd"] for r in sel], color=colour, marker="o",
                    capsize=3, label=f"recall, {label}")
        bx.errorbar(n, [r["precision"] for r in sel], [r["precision_sd"] for r in sel], color=colour, marker="s",
                    ls="--", capsize=3, label=f"precision, {label}")
    bx.set_xscale("log")
    bx.set_xticks(ns)
    bx.set_xticklabels([str(n) for n in ns])
    bx.set_ylim(0, 1.05)
    bx.set_xlabel("number of demonstrations")
    bx.set_ylabel("of the 9 hidden constraints")
    bx.set_title(f"Recovered constraints ({args.seeds} data sets per point, mean ± sd)", fontsize=9)
    bx.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "constraints-9x9.png", dpi=110)
    print(f"wrote {args.out / 'constraints-9x9.png'}")


if __name__ == "__main__":
    main()
