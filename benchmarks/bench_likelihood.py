"""Demonstration likelihood with many demonstrations: data counted once versus recounted per call.

Simulates ``--demos`` Boltzmann demonstrations on gridworld-8x8 (default 10^5
episodes of 20 steps, 2*10^6 steps) and times, in one process:

* ``likelihood``: one log-joint evaluation with its gradient for 4 chains (the
  call a sampler makes per leapfrog step), from the statistics stored when the
  evidence was bound to the MDP (``ours_s``) and with the statistics dropped
  before each call, i.e. the data recounted on every call as the library did
  before (``recount_s``);
* ``hmc_iteration``: seconds per HMC iteration (all 4 chains, warmup and draws,
  ``--iterations`` of each) with the stored statistics and with recounting.

Both paths must agree to 1e-12 (checked before any timing). Prints one JSON line
per case, then a short table; progress goes to stderr.

Usage:
    .venv/bin/python benchmarks/bench_likelihood.py            # 10^5 demonstrations
    .venv/bin/python benchmarks/bench_likelihood.py --quick    # 10^4 demonstrations, fewer repeats
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

import demos
import human_models as hm
import irl
import priors
from irl.solvers import samplers


def _forget(data) -> None:
    data.__dict__.pop("_statistics", None)


def _recounting(joint, data):
    def log_density(x):
        _forget(data)
        return joint(x)

    return log_density


def _time_call(f, x, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat + 1):
        xt = x.clone().requires_grad_(True)
        t0 = time.perf_counter()
        f(xt).sum().backward()
        times.append(time.perf_counter() - t0)
    return times[1:]  # the first call is a warm-up


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demos", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="10^4 demonstrations, 3 repeats, 3 HMC iterations")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=5, help="HMC warmup and draw iterations (each)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.quick:
        args.demos, args.repeat, args.iterations = min(args.demos, 10_000), 3, 3
    torch.set_num_threads(1)
    env = irl.envs.make("gridworld-8x8")
    print(f"simulating {args.demos} demonstrations ...", file=sys.stderr)
    data = demos.simulate(env, hm.Boltzmann(2.0), irl.envs.true_reward(env), n=args.demos, seed=args.seed)
    t0 = time.perf_counter()
    joint = irl.BayesianIRL(human=hm.Boltzmann(2.0), prior=priors.Gaussian(0, 1)).log_joint(env, data)
    bind_s = time.perf_counter() - t0
    x = torch.tensor(np.random.default_rng(args.seed).normal(size=(4, joint.dim)), dtype=torch.float64)
    recount = _recounting(joint, data)
    with torch.no_grad():
        a, b = joint(x), recount(x)
    diff = float((a - b).abs().max() / a.abs().max())
    if not diff <= 1e-12:
        raise SystemExit(f"stored statistics and recounting disagree: relative difference {diff:.3g}")
    common = {"env": env.name, "demos": args.demos, "steps": int(data.lengths.sum()), "chains": 4,
              "max_rel_diff": diff}
    rows = []
    t_ours = _time_call(joint, x, args.repeat)
    t_rec = _time_call(recount, x, args.repeat)
    rows.append(dict(case="likelihood", ours_s=statistics.median(t_ours), recount_s=statistics.median(t_rec),
                     bind_s=bind_s, runs=args.repeat, **common))
    print(json.dumps(rows[-1]), flush=True)
    x0 = x.numpy()
    for name, f in (("ours", joint), ("recount", recount)):
        print(f"HMC with {name} ...", file=sys.stderr)
        t0 = time.perf_counter()
        res = samplers.hmc(f, x0, samples=args.iterations, warmup=args.iterations, seed=args.seed)
        per = (time.perf_counter() - t0) / (2 * args.iterations)
        rows.append(dict(case="hmc_iteration", path=name, seconds_per_iteration=per,
                         gradient_evaluations_per_iteration=float(np.sum(res.info["gradient_evaluations"]))
                         / (2 * args.iterations) / 4, target_s=0.3, meets_target=per <= 0.3,
                         load_1min=os.getloadavg()[0], **common))
        print(json.dumps(rows[-1]), flush=True)
    lk = rows[0]
    print(f"\n{'case':<16}{'stored':>12}{'recount':>12}{'ratio':>8}", file=sys.stdout)
    print(f"{'likelihood':<16}{lk['ours_s'] * 1e3:>10.1f}ms{lk['recount_s'] * 1e3:>10.1f}ms"
          f"{lk['recount_s'] / lk['ours_s']:>8.1f}")
    h_ours, h_rec = rows[1]["seconds_per_iteration"], rows[2]["seconds_per_iteration"]
    print(f"{'hmc_iteration':<16}{h_ours:>11.3f}s{h_rec:>11.3f}s{h_rec / h_ours:>8.1f}   "
          f"(target <= 0.3 s: {'met' if h_ours <= 0.3 else 'missed'})")


if __name__ == "__main__":
    main()
