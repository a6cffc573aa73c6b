"""Draw the figures of the tutorial "IRL for cognition" from a run of the Mouselab benchmark (needs matplotlib).

    python benchmarks/bench_mouselab.py --json /tmp/mouselab.json     # the full run (15-25 minutes on 2 cores)
    python docs/scripts/mouselab_figures.py /tmp/mouselab.json         # writes docs/img/mouselab-*.png
    python docs/scripts/mouselab_figures.py /tmp/mouselab.json --out DIR

Figures:

* ``mouselab-costs.png``: every participant's inferred static and depth costs (the
  effort + depth model), coloured by the model their BIC prefers;
* ``mouselab-model-comparison.png``: how many participants each model explains best
  (BIC winners and random-effects expected counts) next to the original study's;
* ``mouselab-amplification.png``: the points of the paths chosen on held-out trials,
  actual against the person's deliberation re-run with cheaper thinking and with full
  information, for the real participants and for simulated people (judged by their
  true values).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "img"
COLORS = {"null": "#9e9e9e", "effort": "#1f77b4", "depth": "#d62728"}


def costs_figure(res: dict, out: Path) -> None:
    import matplotlib.pyplot as plt

    params = res["params"]
    by: dict[str, dict] = {}
    for r in params:
        by.setdefault(r["participant"], {})[r["model"]] = r
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for model in ("null", "effort", "depth"):
        xs, ys = [], []
        for p, d in by.items():
            if min(d, key=lambda m: d[m]["bic"]) != model:
                continue
            xs.append(d["depth"]["params"]["cost"])
            ys.append(d["depth"]["params"]["depth_cost"])
        ax.scatter(np.clip(xs, -25, 60), np.clip(ys, -12, 25), s=22, alpha=0.8, color=COLORS[model],
                   label=f"BIC prefers {model} ({len(xs)})")
    ax.axvline(1.0, color="k", lw=0.8, ls=":")
    ax.axhline(0.0, color="k", lw=0.8, ls=":")
    ax.set_xlabel("static cost per click (points; the task's fee is 1)")
    ax.set_ylabel("extra cost per level of depth (points)")
    ax.set_title("Inferred costs of computation, effort + depth model\n(one dot per participant, test block)")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "mouselab-costs.png", dpi=120)
    plt.close(fig)


def comparison_figure(res: dict, out: Path) -> None:
    import matplotlib.pyplot as plt

    fits = res["fits"]
    models = ["null", "effort", "depth"]
    n = fits["participants"]
    bic = [fits["bic_winners"][m] for m in models]
    bms = [fits["bms_expected_count"][m] for m in models]
    study = [0.0, 33.6 * n / 125, 47.9 * n / 125]
    x = np.arange(3)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.bar(x - 0.27, bic, 0.27, label="BIC winners (this library)", color="#4c72b0")
    ax.bar(x, bms, 0.27, label="random-effects BMS, expected count (this library)", color="#55a868")
    ax.bar(x + 0.27, study, 0.27, label=f"original study, expected count (scaled to {n})", color="#c44e52")
    ax.set_xticks(x, ["random clicks (null)", "effort cost", "effort + depth cost"])
    ax.set_ylabel(f"participants (of {n})")
    ax.set_title("Which model of deliberation explains each participant best")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "mouselab-model-comparison.png", dpi=120)
    plt.close(fig)


def amplification_figure(res: dict, out: Path) -> None:
    import matplotlib.pyplot as plt

    amp, sim = res["amplification"], res["simulated"]
    settings = list(amp["mean_value"].keys())
    labels = {"actual": "actual choices", "cost x 1": "re-run at\ninferred cost", "cost x 0.5": "half the\ncost",
              "cost x 0": "free\nthinking", "full information": "full\ninformation"}
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.0), sharey=True)
    for ax, means, title in ((axes[0], amp["mean_value"], f"real participants ({amp['participants']})"),
                             (axes[1], sim["mean_value_by_true_values"],
                              f"simulated people ({sim['people']}), by their true values")):
        vals = [means[s] for s in settings]
        colors = ["#9e9e9e"] + ["#4c72b0"] * (len(settings) - 2) + ["#55a868"]
        ax.bar(range(len(settings)), vals, color=colors)
        for i, v in enumerate(vals):
            ax.text(i, v + 0.5, f"{v:.1f}", ha="center", fontsize=8)
        ax.set_xticks(range(len(settings)), [labels.get(s, s) for s in settings], fontsize=8)
        ax.set_title(title)
    axes[0].set_ylabel("mean points of the chosen path (held-out trials)")
    fig.suptitle("What would they choose with more time to think?")
    fig.tight_layout()
    fig.savefig(out / "mouselab-amplification.png", dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", type=Path, help="the --json output of benchmarks/bench_mouselab.py")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    res = json.loads(args.results.read_text(encoding="utf-8"))
    args.out.mkdir(parents=True, exist_ok=True)
    costs_figure(res, args.out)
    comparison_figure(res, args.out)
    amplification_figure(res, args.out)
    print(f"wrote {', '.join(f'mouselab-{n}.png' for n in ('costs', 'model-comparison', 'amplification'))} "
          f"to {args.out}")


if __name__ == "__main__":
    main()
