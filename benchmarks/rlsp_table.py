#!/usr/bin/env python
"""Reproduce Table 1 of RLSP ("Preferences Implicit in the State of the World") beside the authors' numbers.

For each of the six environments of :mod:`irl.envs.rlsp` it evaluates

* ``spec``: a planner given the specified (task) reward only;
* ``deviation``: the task reward minus ``0.5 * ||f(s) - f(s_0)||_2``, the
  distance of the state's features from the observed state's
  (``irl.side_effects.feature_deviation``, starting-state baseline, weight 0.5);
* ``reachability``: the task reward minus the relative reachability penalty
  against the inaction baseline (``irl.side_effects.relative_reachability``:
  undiscounted reachability after exactly 20 steps, baseline = the no-op
  rollout from ``s_0``, time-indexed, divided by its largest value, weight 1),
  as the RLSP authors' code computes their comparison methods;
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

    python benchmarks/rlsp_table.py             # all cells (about 2 minutes; apples' reachability ~40 s, 1 GB)
    python benchmarks/rlsp_table.py --no-uniform
    python benchmarks/rlsp_table.py --methods spec,deviation,reachability
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


import irl
from irl import side_effects
from irl.envs import rlsp

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "extdata" / "rlsp-gridworlds" / "reference_results.json"
KEYS = {"rlsp-room": "room_default", "rlsp-train": "train_default", "rlsp-apples": "apples_default",
        "rlsp-batteries-easy": "batteries_easy", "rlsp-batteries": "batteries_default", "rlsp-room-bad": "room_bad"}
REF_METHOD = {"spec": "spec", "deviation": "deviation", "reachability": "reachability", "rlsp": "rlsp",
              "rlsp_uniform": "rlsp_uniform_prior_s-T"}
#: The authors' weight of the feature-deviation penalty (their ``-w 0.5``); reachability uses weight 1.
DEVIATION_WEIGHT = 0.5


def comparison_penalty(prob: rlsp.RLSPProblem, method: str) -> side_effects.SideEffectPenalty:
    """The side-effect penalty of the paper's comparison ``method`` ("deviation" or "reachability")."""
    if method == "deviation":
        return side_effects.feature_deviation(prob.mdp, baseline="starting", weight=DEVIATION_WEIGHT)
    return side_effects.relative_reachability(prob.mdp, baseline="inaction", horizon=rlsp.EVAL_HORIZON,
                                              at_horizon=True, normalize=True, weight=1.0)


def cell(prob: rlsp.RLSPProblem, method: str) -> tuple[float, list[float]]:
    """``(true_reward_fraction, planning weights)`` of one method on one environment."""
    if method in ("spec", "deviation", "reachability"):
        pen = None if method == "spec" else comparison_penalty(prob, method)
        return rlsp.true_reward_fraction(prob, prob.task_weights, penalty=pen), list(prob.task_weights)
    est = irl.solvers.rlsp.infer(prob, start="known" if method == "rlsp" else "uniform")
    weights = prob.task_weights + est.theta
    return rlsp.true_reward_fraction(prob, weights), list(weights)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-uniform", action="store_true", help="skip the uniform-prior-over-s_-T column")
    ap.add_argument("--methods", default=None, help=f"comma-separated columns (default: all of {list(REF_METHOD)})")
    args = ap.parse_args(argv)
    if not DATA.is_file():
        print(f"error: the authors' reference results are missing: {DATA} (see SOURCE.md beside it)", file=sys.stderr)
        return 2
    reference = json.loads(DATA.read_text())["results"]
    methods = args.methods.split(",") if args.methods else [m for m in REF_METHOD
                                                            if not (args.no_uniform and m == "rlsp_uniform")]
    unknown = [m for m in methods if m not in REF_METHOD]
    if unknown:
        print(f"error: unknown methods {unknown}; known: {', '.join(REF_METHOD)}", file=sys.stderr)
        return 2
    rows: dict[str, dict[str, tuple[float, float]]] = {}
    for name, key in KEYS.items():
        prob = rlsp.problem(name)
        rows[name] = {}
        for method in methods:
            t0 = time.perf_counter()
            frac, weights = cell(prob, method)
            seconds = time.perf_counter() - t0
            ref = reference[key][REF_METHOD[method]]["true_reward_fraction"]
            rows[name][method] = (frac, ref)
            print(json.dumps({"env": name, "method": method, "true_reward_fraction": round(frac, 6),
                              "reference": ref, "seconds": round(seconds, 3),
                              "weights": [round(float(w), 6) for w in weights]}), flush=True)
    head = f"{'env (T)':<26}" + "".join(f"{m + ' ours / ref':>27}" for m in methods)
    print()
    print(head)
    print("-" * len(head))
    for name, cells in rows.items():
        label = f"{name} ({rlsp.problem(name).T})"
        print(f"{label:<26}" + "".join(f"{cells[m][0]:>16.4f} / {cells[m][1]:<8.4f}" for m in methods))
    worst = max(abs(a - b) for cells in rows.values() for a, b in cells.values())
    print(f"\nlargest |ours - reference| = {worst:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
