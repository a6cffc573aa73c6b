"""Bernoulli metareasoning (Hay et al. 2012): exact DP size and time, cost recovery, myopic vs exact, amplification.

    python benchmarks/bench_bernoulli.py            # k = 3, horizon 10 and 20; 8 simulated people
    python benchmarks/bench_bernoulli.py --quick    # 4 people

Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import demos
import human_models as hm
import irl
import priors
from irl.metalevel import population


def dp_size_and_time() -> None:
    for k, horizon in [(2, 20), (3, 10), (3, 20), (4, 12)]:
        env = irl.envs.make("metareasoning-bernoulli", k=k, horizon=horizon)
        s = env.meta.solver("exact").build()
        times = []
        for c in (0.011, 0.012, 0.013):
            t0 = time.perf_counter()
            s.solve(env.meta.params(c))
            times.append(time.perf_counter() - t0)
        print(json.dumps({"k": k, "horizon": horizon, "states": env.meta.n_states,
                          "build_s": round(s.build_seconds, 3), "solve_s": round(min(times), 4)}))


def people(n_people: int) -> None:
    env = irl.envs.make("metareasoning-bernoulli", k=3, horizon=10)
    grid = np.linspace(0.0, 0.08, 321)
    costs = np.linspace(0.005, 0.04, n_people)
    cover, err = 0, []
    for i, c in enumerate(costs):
        person = hm.MetaBoltzmann(cost=float(c), beta=300.0)
        train = demos.simulate(env, person, env.true_reward, n=300, seed=10 + i)
        test = demos.simulate(env, person, env.true_reward, n=200, seed=100 + i)
        fit = irl.MaxEnt(human=hm.MetaBoltzmann(cost=priors.Gaussian(0.0, 0.1), beta=priors.LogNormal(4.0, 2.0))
                         ).fit(env, train)
        prof = population.cost_interval(env, train, hm.MetaBoltzmann(cost=0.0, beta=1.0), grid)
        lo, hi = prof["interval"]
        cover += lo <= c <= hi
        err.append(fit.human_params["meta-boltzmann.cost"] - c)
        rows = irl.compare({"exact": hm.MetaBoltzmann(cost=priors.Gaussian(0.0, 0.1), beta=priors.LogNormal(4.0, 2.0)),
                            "myopic": hm.MetaBoltzmann(cost=priors.Gaussian(0.0, 0.1), beta=priors.LogNormal(4.0, 2.0),
                                                       solver="myopic")}, env, train, test)
        held = {r.name: r.held_out_log_likelihood for r in rows}
        bound = person.bind(cost=fit.human_params["meta-boltzmann.cost"], beta=fit.human_params["meta-boltzmann.beta"])
        amp = hm.amplify(bound, env, env.true_reward, test, cost_factors=(1.0, 0.25, 0.0), repeats=10, seed=i)
        map_cost = fit.human_params["meta-boltzmann.cost"]
        print(json.dumps({"true_cost": round(float(c), 4), "map_cost": round(map_cost, 4),
                          "map_beta": round(fit.human_params["meta-boltzmann.beta"], 1),
                          "interval95": [round(lo, 4), round(hi, 4)], "held_out_exact": round(held["exact"], 1),
                          "held_out_myopic": round(held["myopic"], 1), "winner": rows[0].name,
                          "amplify": {r["setting"]: [round(r["mean_value"], 3), round(r["mean_clicks"], 2)]
                                      for r in amp}}))
    print(json.dumps({"people": len(costs), "interval_coverage": cover / len(costs),
                      "mean_abs_error": round(float(np.mean(np.abs(err))), 4)}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    dp_size_and_time()
    people(4 if args.quick else 8)
