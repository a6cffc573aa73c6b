"""Active reward learning: expected value difference against the number of queries, per criterion.

    python benchmarks/bench_active.py                 # gridworld-5x5 and gridworld-8x8, 10 seeds, 20 queries
    python benchmarks/bench_active.py --quick         # 3 seeds, 8 queries, smaller pools
    python benchmarks/bench_active.py --out active.json

For each environment and seed: a true reward is drawn from the prior (linear in
the environment's features, weights ~ N(0, 1)); a pool of trajectories (half
random, half soft-optimal for prior draws) and random pairwise queries among
them are sampled; a simulated Boltzmann human (the same model the learner
assumes) answers. Every criterion of :mod:`irl.active` starts from the same
prior draws and the same candidates, and after each answer the optimal plan for
the posterior-mean reward is judged by the true reward (expected value
difference, EVD; 0 is optimal). Prints a table (mean EVD over seeds after 0, 1,
2, 5, 10, ... queries, and the mean over all query counts) and writes every
curve to JSON, with the paired comparison of each criterion against random
queries (difference of the mean EVD over the curve, with its standard error
across seeds).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

import human_models as hm
import irl
import priors
from irl.active import CRITERIA, make_candidates, run


def one_env(name: str, seeds: int, n_queries: int, n_trajectories: int, n_candidates: int, n_samples: int,
            beta: float) -> dict:
    env = irl.envs.make(name)
    model = irl.rewards.LinearReward.from_mdp(env)
    prior = priors.Gaussian(0.0, 1.0)
    curves = {c: [] for c in CRITERIA}
    seconds = {c: 0.0 for c in CRITERIA}
    renewals = {c: 0 for c in CRITERIA}
    for seed in range(seeds):
        theta = prior.sample((model.n_params,), seed=1000 + seed)
        truth = model.reward_array(theta)
        cands = make_candidates(env, prior, n_trajectories=n_trajectories, n_queries=n_candidates, seed=seed)
        for crit in CRITERIA:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a collapsed belief would invalidate the comparison
                res = run(env, prior, cands, hm.Boltzmann(beta), truth, n_queries, criterion=crit, seed=seed,
                          n_samples=n_samples)
            seconds[crit] += time.perf_counter() - t0
            renewals[crit] += len(res.refits)
            curves[crit].append(res.evd.tolist())
    out = {"env": name, "seeds": seeds, "queries": n_queries, "trajectories": n_trajectories,
           "candidates": n_candidates, "samples": n_samples, "beta": beta, "criteria": {}}
    rnd = np.array(curves["random"])
    for crit in CRITERIA:
        ev = np.array(curves[crit])
        diff = ev[:, 1:].mean(1) - rnd[:, 1:].mean(1)  # paired over seeds: same truth, candidates, prior draws
        out["criteria"][crit] = {
            "mean_evd": ev.mean(0).round(4).tolist(), "se_evd": (ev.std(0, ddof=1) / np.sqrt(seeds)).round(4).tolist(),
            "mean_over_curve": round(float(ev[:, 1:].mean()), 4),
            "vs_random": round(float(diff.mean()), 4),
            "vs_random_se": round(float(diff.std(ddof=1) / np.sqrt(seeds)), 4),
            "seconds_per_run": round(seconds[crit] / seeds, 3), "renewals_per_run": renewals[crit] / seeds,
            "curves": ev.round(4).tolist()}
    return out


def timing(n_samples: int, n_queries: int, n_trajectories: int) -> list[dict]:
    """Seconds of one ``next_query`` over ``n_samples`` x ``n_queries`` on gridworld-8x8 (best of 3)."""
    from irl.active import as_samples, next_query

    env = irl.envs.make("gridworld-8x8")
    belief = as_samples(priors.Gaussian(0.0, 1.0), env, n=n_samples, seed=0)
    rows = []
    for k, answer in ((2, "choice"), (3, "choice"), (3, "ranking")):
        cands = make_candidates(env, n_trajectories=n_trajectories, n_queries=n_queries, k=k, answer=answer, seed=0)
        for crit in CRITERIA:
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                next_query(belief, cands, env, criterion=crit, human=hm.Boltzmann(1.0), seed=0)
                best = min(best, time.perf_counter() - t0)
            rows.append({"k": k, "answer": answer, "criterion": crit, "samples": n_samples,
                         "queries": cands.n_queries, "seconds": round(best, 4)})
    return rows


def table(result: dict) -> str:
    q = result["queries"]
    cols = [t for t in (0, 1, 2, 5, 10, 15, 20, 30, 40) if t <= q]
    head = f"{result['env']} ({result['seeds']} seeds, beta {result['beta']:g}): mean EVD after t queries"
    lines = [head, "criterion".ljust(18) + "".join(f"t={t}".rjust(9) for t in cols)
             + "  curve mean  vs random (se)   s/run"]
    for crit, r in result["criteria"].items():
        lines.append(crit.ljust(18) + "".join(f"{r['mean_evd'][t]:9.3f}" for t in cols)
                     + f"  {r['mean_over_curve']:10.3f}  {r['vs_random']:+7.3f} ({r['vs_random_se']:.3f})"
                     + f"  {r['seconds_per_run']:6.2f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds, 8 queries, smaller pools")
    ap.add_argument("--envs", nargs="+", default=["gridworld-5x5", "gridworld-8x8"])
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--queries", type=int, default=None)
    ap.add_argument("--beta", type=float, default=1.0, help="rationality of the simulated (and assumed) human")
    ap.add_argument("--out", type=Path, default=Path("bench_active.json"))
    args = ap.parse_args()
    seeds = args.seeds or (3 if args.quick else 10)
    n_queries = args.queries or (8 if args.quick else 20)
    sizes = dict(n_trajectories=30, n_candidates=200, n_samples=500) if args.quick else \
        dict(n_trajectories=60, n_candidates=500, n_samples=1000)
    results = []
    for name in args.envs:
        r = one_env(name, seeds, n_queries, beta=args.beta, **sizes)
        results.append(r)
        print(table(r), flush=True)
        print()
    n_time = (500, 1000) if args.quick else (2000, 5000)
    times = timing(*n_time, n_trajectories=200)
    print(f"seconds per next_query on gridworld-8x8, {n_time[0]} samples x {n_time[1]} candidate queries:")
    for row in times:
        print(f"  k={row['k']} {row['answer']:8s} {row['criterion']:17s} {row['seconds']:.3f}")
    from demos import atomic_write

    text = json.dumps({"benchmark": "active", "results": results, "timing": times}, indent=1)
    atomic_write(args.out, lambda f: f.write(text), binary=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
