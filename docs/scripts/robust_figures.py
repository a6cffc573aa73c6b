"""Draw the figures of the tutorial "Acting on an uncertain reward" (needs matplotlib).

    python docs/scripts/robust_figures.py            # writes docs/img/uncertain-reward-*.png
    python docs/scripts/robust_figures.py --out DIR  # writes the same files into DIR

The numbers come from the same computation as the tutorial (the lava corridor, its
single demonstration, Bayesian IRL with the same sampler, seed and thinning), so the
figures show what a reader who runs the tutorial gets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "img"
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 41), 3)


def posterior_samples() -> tuple[object, object, np.ndarray]:
    """``(env, demonstration, (2000, S) reward samples)`` exactly as in the tutorial."""
    import human_models as hm
    import irl
    import priors

    env = irl.envs.make("lava-corridor")
    demo = irl.envs.broil.lava_corridor_demonstrations()
    post = irl.BayesianIRL(hm.BoltzmannQ(beta=10.0), prior=priors.Gaussian(0.0, 1.0), sampler="policywalk").fit(
        env, demo, samples=2000, warmup=500, chains=4, seed=0, check=False)
    w = post.theta.reshape(-1, 2)[::4]
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    return env, demo, w @ env.features.T


def tradeoff(env: object, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of deferred visits and regret of the policy's own decisions for each threshold."""
    import irl

    mean = irl.plan(env, samples, objective="mean")
    p_opt = irl.robust.prob_optimal(env, samples, mean.policy)
    rates, regrets = [], []
    for p in THRESHOLDS:
        rep = irl.robust.deferral_report(env, mean.policy, p_opt < p, env.true_reward)
        rates.append(rep["deferred_visits"])
        regrets.append(rep["regret_autonomous"])
    return np.array(rates), np.array(regrets)


def returns_figure(env: object, demo: object, samples: np.ndarray, path: Path) -> Path:
    """Histograms of the regret against the demonstrator under each posterior sample, per policy."""
    import irl
    from matplotlib.figure import Figure

    plans = {"mean reward": irl.plan(env, samples, objective="mean", baseline=demo),
             "robust return (lam = 0)": irl.plan(env, samples, objective="cvar", alpha=0.95, lam=0.0, baseline=None),
             "robust regret (lam = 0)": irl.plan(env, samples, objective="cvar", alpha=0.95, lam=0.0, baseline=demo)}
    base = plans["mean reward"].baseline_returns
    fig = Figure(figsize=(7.5, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    diffs = {k: p.returns - base for k, p in plans.items()}
    edges = np.histogram_bin_edges(np.concatenate(list(diffs.values())), bins=40)
    for (k, d), c in zip(diffs.items(), ("tab:red", "tab:orange", "tab:blue")):
        ax.hist(d, bins=edges, histtype="step", lw=1.8, color=c, label=f"{k}: CVaR$_{{0.95}}$ {irl.robust.cvar(d, 0.95):.3f}")
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_xlabel("return minus the demonstrator's return, under each posterior sample")
    ax.set_ylabel("samples")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def tradeoff_figure(env: object, samples: np.ndarray, path: Path) -> Path:
    from matplotlib.figure import Figure

    rates, regrets = tradeoff(env, samples)
    fig = Figure(figsize=(5.0, 3.4))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(100 * rates, regrets, "-o", ms=3)
    for p, x, y in zip(THRESHOLDS, rates, regrets):
        if p in (0.5, 0.9, 0.99, 1.0):
            ax.annotate(f"p = {p:g}", (100 * x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("deferred visits (%)")
    ax.set_ylabel("regret of the policy's own decisions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    env, demo, samples = posterior_samples()
    written = [returns_figure(env, demo, samples, args.out / "uncertain-reward-returns.png"),
               tradeoff_figure(env, samples, args.out / "uncertain-reward-deferral.png")]
    for p in written:
        print(p)
    return written


if __name__ == "__main__":
    main()
