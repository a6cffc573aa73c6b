"""Draw the figure of the tutorial "Asking the right question" (needs matplotlib).

    python docs/scripts/active_figures.py                          # runs the benchmark, writes docs/img/active-evd.png
    python docs/scripts/active_figures.py --from-json bench_active.json   # plots a saved benchmark run
    python docs/scripts/active_figures.py --quick --out DIR        # 3 seeds, 8 queries, into DIR

One panel per environment: the mean expected value difference (EVD) of the plan
for the posterior-mean reward against the number of answered queries, one line
per query criterion, with the standard error over seeds as a band. The numbers
are those of ``benchmarks/bench_active.py`` (same settings, same seeds).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "docs" / "img"
STYLE = {"information_gain": ("C0", "-"), "volume_removal": ("C1", "--"), "max_regret": ("C2", "-."),
         "thompson": ("C4", ":"), "random": ("0.4", "-")}


def _bench():
    spec = importlib.util.spec_from_file_location("bench_active", ROOT / "benchmarks" / "bench_active.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def results(quick: bool) -> list[dict]:
    """The benchmark's results for gridworld-5x5 and gridworld-8x8."""
    bench = _bench()
    seeds, queries = (3, 8) if quick else (10, 20)
    sizes = dict(n_trajectories=30, n_candidates=200, n_samples=500) if quick else \
        dict(n_trajectories=60, n_candidates=500, n_samples=1000)
    return [bench.one_env(name, seeds, queries, beta=1.0, **sizes) for name in ("gridworld-5x5", "gridworld-8x8")]


def draw(res: list[dict], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from demos import atomic_write

    fig, axes = plt.subplots(1, len(res), figsize=(5.2 * len(res), 3.6), squeeze=False)
    for ax, r in zip(axes[0], res):
        t = np.arange(r["queries"] + 1)
        for crit, row in r["criteria"].items():
            colour, dash = STYLE.get(crit, ("k", "-"))
            m, se = np.array(row["mean_evd"]), np.array(row["se_evd"])
            ax.plot(t, m, dash, color=colour, lw=1.8, label=crit.replace("_", " "))
            ax.fill_between(t, np.maximum(m - se, 1e-3), m + se, color=colour, alpha=0.12, lw=0)
        ax.set_yscale("symlog", linthresh=0.05)
        ax.set_xlabel("queries answered")
        ax.set_ylabel("expected value difference")
        ax.set_title(f"{r['env']} ({r['seeds']} seeds, Boltzmann beta {r['beta']:g})", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, frameon=False, loc="upper right")
    fig.tight_layout()
    path = out / "active-evd.png"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--from-json", type=Path, default=None, help="a file written by benchmarks/bench_active.py")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    res = json.loads(args.from_json.read_text())["results"] if args.from_json else results(args.quick)
    print(draw(res, args.out))


if __name__ == "__main__":
    main()
