#!/usr/bin/env python
"""Reproduce Table 1 of RLSP ("Preferences Implicit in the State of the World") beside the authors' numbers.

For each of the six environments of :mod:`irl.envs.rlsp` it evaluates

* ``spec``: a planner given the specified (task) reward only;
* ``rlsp``: task reward + the reward inferred from the observed world state
  (``irl.solvers.rlsp.infer``: Boltzmann human with beta = 1, Gaussian prior
  N(0, 0.5^2), MAP by L-BFGS, the person's start state ``s_{-T}`` known);
* ``rlsp_uniform``: the same with a uniform prior over ``s_{-T}`` (Section 5.3);

by ``true_reward_fraction``: the true return over 20 steps of an optimal planner
for that reward, plus 1 per step, divided by the same for a planner that knows
the true reward. The authors' numbers come from
``../shared/extdata/rlsp-gridworlds/reference_results.json`` (their code, run once).

Output: one JSON line per cell on stdout,
``{"env", "method", "true_reward_fraction", "reference", "seconds", "weights"}``,
then a table. Usage::

    python benchmarks/rlsp_table.py             # all cells (about 20 s)
    python benchmarks/rlsp_table.py --no-uniform
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


import irl
from irl.envs import rlsp

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "extdata" / "rlsp-gridworlds" / "reference_results.json"
KEYS = {"rlsp-room": "room_default", "rlsp-train": "train_default", "rlsp-apples": "apples_default",
        "rlsp-batteries-easy": "batteries_easy", "rlsp-batteries": "batteries_default", "rlsp-room-bad": "room_bad"}
REF_METHOD = {"spec": "spec", "rlsp": "rlsp", "rlsp_uniform": "rlsp_uniform_prior_s-T"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-uniform", action="store_true", help="skip the uniform-prior-over-s_-T column")
    args = ap.parse_args(argv)
    if not DATA.is_file():
        print(f"error: the authors' reference results are missing: {DATA} (see SOURCE.md beside it)", file=sys.stderr)
        return 2
    reference = json.loads(DATA.read_text())["results"]
    methods = ["spec", "rlsp"] + ([] if args.no_uniform else ["rlsp_uniform"])
    rows: dict[str, dict[str, tuple[float, float]]] = {}
    for name, key in KEYS.items():
        prob = rlsp.problem(name)
        rows[name] = {}
        for method in methods:
            t0 = time.perf_counter()
            if method == "spec":
                weights = prob.task_weights
            else:
                est = irl.solvers.rlsp.infer(prob, start="known" if method == "rlsp" else "uniform")
                weights = prob.task_weights + est.theta
            frac = rlsp.true_reward_fraction(prob, weights)
            seconds = time.perf_counter() - t0
            ref = reference[key][REF_METHOD[method]]["true_reward_fraction"]
            rows[name][method] = (frac, ref)
            print(json.dumps({"env": name, "method": method, "true_reward_fraction": round(frac, 6),
                              "reference": ref, "seconds": round(seconds, 3),
                              "weights": [round(float(w), 6) for w in weights]}), flush=True)
    head = f"{'env (T)':<26}" + "".join(f"{m + ' ours / ref':>28}" for m in methods)
    print()
    print(head)
    print("-" * len(head))
    for name, cells in rows.items():
        label = f"{name} ({rlsp.problem(name).T})"
        print(f"{label:<26}" + "".join(f"{cells[m][0]:>16.4f} / {cells[m][1]:<9.4f}" for m in methods))
    worst = max(abs(a - b) for cells in rows.values() for a, b in cells.values())
    print(f"\nlargest |ours - reference| = {worst:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
