"""Effective samples per second of the Bayesian IRL samplers, side by side in one run.

Problem: a terrain gridworld (``--sizes 10`` is 10x10 = 100 states, horizon 40),
a linear reward in its 4 terrain features with a Gaussian(0, 1) prior, a
Boltzmann human whose rationality is inferred too (``beta ~ LogNormal(0.5, 0.5)``),
demonstrations simulated from the true reward with beta = 2. Every likelihood
evaluation plans (soft value iteration over the horizon) for every chain.

Samplers compared (4 chains each):

* ``hmc``             the built-in HMC, chains advanced together (one batched call per leapfrog step);
* ``hmc-sequential``  the same sampler run one chain at a time (what batching buys);
* ``hmc-centred``     the same sampler in the original coordinates ``(theta, log beta)``
                      (``reparam="none"``): what sampling the reward in units of beta buys;
* ``policywalk``      PolicyWalk (Ramachandran & Amir 2007), chains batched;
* ``nuts``            pyro's NUTS with a potential function, chains one after another
                      (only when pyro-ppl is installed).

Reported per sampler: wall seconds, minimum bulk and tail ESS over the parameters,
ESS per second (min bulk-ESS / seconds), post-warmup draws per minute, the largest
R-hat, and ratios against PolicyWalk. Numbers depend on the machine and its load:
compare ratios from one run. Usage::

    .venv/bin/python benchmarks/bench_bayes.py --sizes 10 --demos 50
    .venv/bin/python benchmarks/bench_bayes.py --sizes 5 10 20 --quick
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import torch

import demos
import human_models as hm
import irl
import priors
from irl.posterior import ConvergenceWarning, ess_bulk, ess_tail, rhat


def problem(side: int, n_demos: int, seed: int = 0):
    env = irl.envs.gridworld(side)
    data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=n_demos, seed=seed)
    return env, data


def run(sampler: str, env, data, *, chains: int, samples: int, warmup: int, seed: int, sequential: bool = False,
        reparam: str = "auto"):
    solver = irl.BayesianIRL(human=hm.Boltzmann(beta=priors.LogNormal(0.5, 0.5)), prior=priors.Gaussian(0, 1),
                             sampler=sampler, reparam=reparam)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # judged below from the numbers
        if sequential:
            parts = [solver.fit(env, data, samples=samples, warmup=warmup, chains=1, seed=seed + c, check=False)
                     for c in range(chains)]
            draws = np.concatenate([p.draws() for p in parts], axis=0)
            info = parts[0].info
        else:
            post = solver.fit(env, data, samples=samples, warmup=warmup, chains=chains, seed=seed, check=False)
            draws, info = post.draws(), post.info
    seconds = time.perf_counter() - t0
    k = draws.shape[-1]
    bulk = min(ess_bulk(draws[..., i]) for i in range(k))
    tail = min(ess_tail(draws[..., i]) for i in range(k))
    rh = max(rhat(draws[..., i]) for i in range(k))
    n = draws.shape[0] * draws.shape[1]
    name = sampler + ("-sequential" if sequential else "") + ("-centred" if reparam == "none" else "")
    return {"case": f"bayes-{name}", "sampler": name, "ours_s": round(seconds, 2), "seconds": round(seconds, 2),
            "draws": n, "min_ess_bulk": round(bulk, 1), "min_ess_tail": round(tail, 1), "max_rhat": round(rh, 4),
            "ess_per_s": round(bulk / seconds, 3), "draws_per_min": round(n / seconds * 60, 1),
            "calls": info.get("calls"), "mean_leapfrog_steps": info.get("mean_leapfrog_steps"),
            "divergences": info.get("divergences"), "reparam": info.get("reparam"),
            "mean_accept_prob": round(float(info.get("mean_accept_prob", float("nan"))), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10], help="grid sides (10 = 100 states)")
    ap.add_argument("--demos", type=int, default=50)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--samples", type=int, default=400, help="HMC / NUTS draws per chain")
    ap.add_argument("--warmup", type=int, default=300, help="HMC / NUTS warmup per chain")
    ap.add_argument("--pw-samples", type=int, default=6000, help="PolicyWalk steps per chain")
    ap.add_argument("--pw-warmup", type=int, default=2000)
    ap.add_argument("--samplers", nargs="+", default=["hmc", "hmc-centred", "hmc-sequential", "policywalk", "nuts"])
    ap.add_argument("--quick", action="store_true", help="a quarter of the draws")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    q = 4 if args.quick else 1
    torch.set_num_threads(1)  # as BayesianIRL.fit does while sampling; also for pyro's NUTS
    rows = []
    for side in args.sizes:
        env, data = problem(side, args.demos, args.seed)
        print(f"\n== gridworld {side}x{side}: {env.n_states} states, horizon {env.horizon}, "
              f"{env.n_features} reward features + beta, {args.demos} demonstrations ==", flush=True)
        for name in args.samplers:
            if name == "nuts":
                try:
                    import pyro  # noqa: F401
                except ImportError:
                    print("nuts: skipped (pip install 'pluggable-irl[bayes]')")
                    continue
            if name == "policywalk":
                row = run("policywalk", env, data, chains=args.chains, samples=args.pw_samples // q,
                          warmup=args.pw_warmup // q, seed=args.seed)
            else:
                row = run(name.replace("-sequential", "").replace("-centred", ""), env, data, chains=args.chains,
                          samples=args.samples // q, warmup=args.warmup // q, seed=args.seed,
                          sequential=name.endswith("-sequential"), reparam="none" if name.endswith("-centred") else "auto")
            row["states"] = env.n_states
            rows.append(row)
            print(json.dumps(row), flush=True)
        base = next((r for r in rows if r["states"] == env.n_states and r["sampler"] == "policywalk"), None)
        print(f"\n{'sampler':<16}{'seconds':>9}{'min ESS':>9}{'ESS/s':>9}{'draws/min':>11}{'max R-hat':>10}"
              f"{'x PolicyWalk':>13}")
        for r in (r for r in rows if r["states"] == env.n_states):
            ratio = r["ess_per_s"] / base["ess_per_s"] if base and base["ess_per_s"] > 0 else float("nan")
            print(f"{r['sampler']:<16}{r['seconds']:>9.1f}{r['min_ess_bulk']:>9.0f}{r['ess_per_s']:>9.2f}"
                  f"{r['draws_per_min']:>11.0f}{r['max_rhat']:>10.3f}{ratio:>13.1f}")
    if args.json:
        from demos import atomic_write

        atomic_write(args.json, lambda f: f.write(json.dumps(rows, indent=1).encode()))


if __name__ == "__main__":
    main()
