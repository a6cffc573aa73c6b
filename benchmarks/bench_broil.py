#!/usr/bin/env python
"""BROIL (robust planning over a reward posterior): the paper's two problems, and the linear program's size and time.

Cases (one JSON line each on stdout, then a short table on stderr):

* ``machine_replacement``: Brown, Niekum & Petrik's (2020) machine replacement (4 states,
  2 actions, discount 0.95, 2000 samples of the uncertain costs, alpha 0.99), the policy's
  repair probability per state, its expected return and CVaR as ``lam`` sweeps 0 .. 1.
* ``lava_corridor``: Bayesian IRL (Boltzmann over optimal Q, beta 10, PolicyWalk) on the
  single demonstration of the 3 x 5 lava corridor, 2000 unit-norm samples, alpha 0.95:
  how often the mean, robust-return and robust-regret policies visit lava, and their
  expected value difference under the true reward.
* ``lp_scaling``: the BROIL program (alpha 0.95, lam 0.5) on discounted gridworlds
  of 10^3 and 10^4 states (5 actions, slip 0.1, discount 0.95) with 1000 reward samples,
  both with linear rewards (4 terrain features: the factored program, a sample costs F
  nonzeros) and with tabular state rewards (a sample costs S*A nonzeros), solved twice
  side by side: HiGHS on the whole linear program (variables, constraints, nonzeros,
  build and solve seconds, peak memory growth) and column generation over deterministic
  policies (``method="policies"``: rounds, certified gap); the speed-up and the
  difference of the two optima.

    python benchmarks/bench_broil.py            # full sizes (10^3 and 10^4 states, 1000 samples)
    python benchmarks/bench_broil.py --quick    # 10^2 and 10^3 states, 200 samples
    python benchmarks/bench_broil.py --out results.json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import irl  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine_replacement(n: int = 2000, seed: int = 0) -> dict:
    env = irl.envs.make("machine-replacement")
    samples = irl.envs.broil.machine_replacement_samples(n, seed=seed)
    rows = []
    for lam in (0.0, 0.3, 0.5, 0.75, 0.95, 0.99, 1.0):
        res = irl.plan(env, samples, objective="cvar", alpha=0.99, lam=lam)
        rows.append({"lam": lam, "repair_prob": np.round(res.policy[:, 1], 4).tolist(),
                     "expected_return": round(res.expected_return, 4), "cvar": round(res.cvar, 4),
                     "lp_seconds": round(res.lp["seconds"], 4)})
    return {"case": "machine_replacement", "samples": n, "alpha": 0.99, "discount": env.discount, "frontier": rows}


def lava_posterior(n: int = 2000, seed: int = 0) -> np.ndarray:
    import human_models as hm
    import priors

    env = irl.envs.make("lava-corridor")
    demo = irl.envs.broil.lava_corridor_demonstrations()
    post = irl.BayesianIRL(hm.BoltzmannQ(beta=10.0), prior=priors.Gaussian(0.0, 1.0), sampler="policywalk").fit(
        env, demo, samples=n, warmup=500, chains=4, seed=seed, check=False)
    theta = post.theta.reshape(-1, 2)[post._thinned(n, 0)]
    return theta / np.linalg.norm(theta, axis=1, keepdims=True)


def lava_corridor(n: int = 2000) -> dict:
    env = irl.envs.make("lava-corridor")
    demo = irl.envs.broil.lava_corridor_demonstrations()
    t0 = time.perf_counter()
    w = lava_posterior(n)
    fit_s = time.perf_counter() - t0
    samples = w @ env.features.T
    lava = env.features[:, 1] == 1
    out = {"case": "lava_corridor", "samples": n, "alpha": 0.95, "fit_s": round(fit_s, 3), "policies": {}}
    plans = {"mean": irl.plan(env, samples, objective="mean", baseline=demo)}
    for lam in (0.0, 0.5, 1.0):
        plans[f"robust_lam{lam:g}"] = irl.plan(env, samples, objective="cvar", alpha=0.95, lam=lam)
        plans[f"regret_lam{lam:g}"] = irl.plan(env, samples, objective="cvar", alpha=0.95, lam=lam, baseline=demo)
    for name, p in plans.items():
        out["policies"][name] = {
            "lava_visits": round(float(p.occupancy.sum(-1)[lava].sum()), 4),
            "evd_true": round(irl.metrics.expected_value_difference(env, p, env.true_reward), 5),
            "top_row": [env.action_names[a] for a in p.policy.argmax(-1)[:5]],
            "expected_return": round(p.expected_return, 4), "cvar": round(p.cvar, 4)}
    return out


def lp_scaling(states: int, samples: int, reward: str, seed: int = 0, whole: bool = True) -> dict:
    """The same BROIL problem by HiGHS on the whole program (unless ``whole=False``) and by column generation."""
    side = int(round(np.sqrt(states)))
    env = irl.envs.gridworld(side, discount=0.95, horizon=None)
    rng = np.random.default_rng(seed)
    w = np.asarray([1.0, 0.0, -0.3, -1.0]) + rng.normal(0, 0.5, size=(samples, 4))
    if reward == "linear":
        arg = irl.Posterior(theta=w[None], param_names=list(env.feature_names))  # factored: F per sample
    else:
        arg = w @ env.features.T  # (N, S) tabular state rewards: S*A per sample
    n_u = env.n_states * env.n_actions
    lp_method = "highs-ipm" if n_u > irl.robust.IPM_ABOVE else "highs"
    out = {"case": "lp_scaling", "reward": reward, "states": env.n_states, "actions": env.n_actions,
           "samples": samples}
    for key, method in ((("lp", lp_method),) if whole else ()) + (("policies", "policies"),):
        base = peak_mb()
        t0 = time.perf_counter()
        res = irl.robust.broil(env, arg, alpha=0.95, lam=0.5, method=method)
        total = time.perf_counter() - t0
        check = np.abs(irl.planning.occupancy_measure(env, res.policy) - res.occupancy).max()
        row = {"method": method, "total_s": round(total, 4), "objective": res.lp["objective"],
               "peak_growth_mb": round(peak_mb() - base, 1), "max_occupancy_error": float(check),
               "expected_return": round(res.expected_return, 4), "cvar": round(res.cvar, 4)}
        if key == "lp":
            row.update(variables=res.lp["variables"], nonzeros=res.lp["nonzeros"],
                       constraints=res.lp["equality_constraints"] + res.lp["inequality_constraints"],
                       build_s=round(res.lp["build_seconds"], 4),
                       solve_s=round(res.lp["seconds"] - res.lp["build_seconds"], 4))
        else:
            row.update(rounds=res.lp["rounds"], policies=res.lp["policies"], gap=res.lp["gap"])
        out[key] = row
    if whole:
        out["speedup"] = round(out["lp"]["total_s"] / out["policies"]["total_s"], 2)
        out["objective_difference"] = abs(out["lp"]["objective"] - out["policies"]["objective"])
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (10^2 and 10^3 states, 200 samples)")
    ap.add_argument("--out", type=Path, help="also write the results as a JSON list to this file")
    ap.add_argument("--max-dense-states", type=int, default=1100,
                    help="largest state count at which tabular (unfactored) samples are also given to HiGHS as the "
                         "whole program (above it, column generation only: the program's S*A*N nonzeros need ~160 "
                         "bytes each)")
    args = ap.parse_args(argv)
    sizes, n = ((100, 1000), 200) if args.quick else ((1000, 10_000), 1000)
    results = [machine_replacement(), lava_corridor(500 if args.quick else 2000)]
    for s in sizes:
        for reward in ("linear", "tabular"):
            results.append(lp_scaling(s, n, reward, whole=reward == "linear" or s <= args.max_dense_states))
    for r in results:
        print(json.dumps(r))
    for r in results:
        if r["case"] == "lp_scaling":
            cg = r["policies"]
            lp = (f"{r['lp']['method']}: vars={r['lp']['variables']} nnz={r['lp']['nonzeros']} {r['lp']['total_s']:.2f}s "
                  f"(peak +{r['lp']['peak_growth_mb']:.0f} MB)" if "lp" in r else "whole program not run")
            gain = (f"speed-up {r['speedup']:.1f}x  |objective difference| {r['objective_difference']:.1e}"
                    if "lp" in r else f"gap {cg['gap']:.1e}")
            print(f"{r['reward']:8s} S={r['states']:6d} N={r['samples']:5d}  {lp}  policies: {cg['rounds']} rounds "
                  f"{cg['total_s']:.2f}s (peak +{cg['peak_growth_mb']:.0f} MB)  {gain}", file=sys.stderr)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
