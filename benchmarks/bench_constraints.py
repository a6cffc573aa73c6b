"""Constraint inference on the 9x9 example (Scobee & Sastry 2020): precision and recall against the number of demos.

    python benchmarks/bench_constraints.py            # N = 5, 10, 20, 50, 100; 10 seeds; both stopping rules
    python benchmarks/bench_constraints.py --quick    # N = 5, 20, 100; 3 seeds
    python benchmarks/bench_constraints.py --out results.json

The demonstrator is a Boltzmann human (``--beta``, default 2) acting on the nominal reward in
the 9x9 grid without its hidden constraints (5 cells, the up-left and up-right moves, the blue
and green cells); the constraints are inferred with the same human model from all candidates
(81 states, 8 actions, 3 colours). Precision and recall are reported on two levels:

* ``constraint``: the chosen constraints against the 9 true ones;
* ``state_action``: the state-actions the chosen constraints remove against those the true
  ones remove (forbidding the 3 blue cells one by one is as good as forbidding blue).

One more case times the evaluation of all 92 candidates of a step by
:func:`irl.constraints.log_likelihoods` (batched planner calls for a finite horizon, one call
per hypothesis for an infinite one, where the planner's Newton steps solve one sparse LU per
hypothesis anyway) against one call per candidate (same numbers; ``batch_ratio`` = loop time /
batched time), with horizon 40 and with the example's infinite horizon.

With ``--reference FILE`` (``data/scobee_example_trajectories.json`` of the soft_constraint_irl
re-implementation: its 10 sets of 100 demonstrations) the greedy selection also runs on those
demonstrations, to set beside the output of Scobee & Sastry's algorithm listed in that project.

Prints one JSON object per line; ``--out`` also writes them all as one JSON document.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import demos
import human_models as hm
import irl
from irl import constraints as C
from irl.envs import constraint_grid as G

KINDS = ("states", "actions", "features")


def truth(env: irl.TabularMDP) -> tuple[tuple, list]:
    cands = C.candidates(env, KINDS)
    t = G.scobee_constraints()
    keep = {"state": t["states"], "action": t["actions"], "feature": t["features"]}
    return cands, [c for c in cands if c.index in keep[c.kind]]


def precision_recall(chosen: set, true: set) -> tuple[float, float]:
    hit = len(chosen & true)
    return (hit / len(chosen) if chosen else 1.0), hit / len(true)


def scores(env: irl.TabularMDP, fit: C.InferredConstraints, true: list, true_mask: np.ndarray) -> dict:
    p, r = precision_recall(set(fit.constraints), set(true))
    removed = fit.removed
    sa_p = float((removed & true_mask).sum() / removed.sum()) if removed.any() else 1.0
    sa_r = float((removed & true_mask).sum() / true_mask.sum())
    return {"precision": p, "recall": r, "sa_precision": sa_p, "sa_recall": sa_r, "k": len(fit.constraints)}


def recovery(ns: list[int], seeds: int, beta: float, rules: list[str]) -> list[dict]:
    env = irl.envs.make("scobee-9x9")
    _, true = truth(env)
    true_mask = C.removed_mask(env, true)
    r_true = C.constrained_reward(env, env.true_reward, true)
    human = hm.Boltzmann(beta)
    rows = []
    for rule in rules:
        for n in ns:
            per = []
            t0 = time.perf_counter()
            for seed in range(seeds):
                data = demos.simulate(env, human, r_true, n=n, seed=seed, horizon=80)
                fit = C.infer(env, data, env.true_reward, kind=KINDS, human=human, stop=rule, max_constraints=20)
                per.append(scores(env, fit, true, true_mask))
            seconds = (time.perf_counter() - t0) / seeds
            row = {"case": "recovery", "stop": rule, "demos": n, "seeds": seeds, "beta": beta,
                   "fit_s": round(seconds, 3)}
            for key in ("precision", "recall", "sa_precision", "sa_recall", "k"):
                vals = np.array([p[key] for p in per], float)
                row[key] = round(float(vals.mean()), 4)
                row[key + "_sd"] = round(float(vals.std(ddof=1)), 4) if seeds > 1 else 0.0
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def batching(beta: float, repeat: int, horizon: int | None) -> dict:
    env = irl.envs.make("scobee-9x9", horizon=horizon)
    cands, true = truth(env)
    human = hm.Boltzmann(beta)
    data = demos.simulate(env, human, C.constrained_reward(env, env.true_reward, true), n=100, seed=0,
                          horizon=80 if horizon is None else None)
    masks, _ = C.removal_masks(env, cands)
    C.log_likelihoods(env, data, env.true_reward, masks[:2], human=human)  # warm caches and compiled kernels
    t_batch, t_loop = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        batched = C.log_likelihoods(env, data, env.true_reward, masks, human=human)
        t_batch.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        looped = np.array([C.log_likelihoods(env, data, env.true_reward, m[None], human=human)[0] for m in masks])
        t_loop.append(time.perf_counter() - t0)
    row = {"case": "batched_candidates", "horizon": horizon, "candidates": len(cands), "batched_s": round(min(t_batch), 5),
           "loop_s": round(min(t_loop), 5), "batch_ratio": round(min(t_loop) / min(t_batch), 2),
           "max_abs_diff": float(np.abs(batched[np.isfinite(batched)] - looped[np.isfinite(batched)]).max()),
           "same_impossible": bool(np.array_equal(np.isinf(batched), np.isinf(looped)))}
    print(json.dumps(row), flush=True)
    return row


def reference(path: Path, betas: tuple[float, ...], horizon: int) -> list[dict]:
    """Our greedy selection on the demonstration sets of the soft_constraint_irl re-implementation.

    ``path`` is its ``data/scobee_example_trajectories.json`` (``[{"trajs": [{"state_seq": [[...]],
    "action_seq": [[...]]}, ...]}]``: 10 sets of 100 deterministic demonstrations), read as JSON.
    """
    sets = json.loads(Path(path).read_text())[0]["trajs"]
    env = irl.envs.make("scobee-9x9", horizon=horizon, discount=1.0)
    _, true = truth(env)
    true_mask = C.removed_mask(env, true)
    rows = []
    for beta in betas:
        human = hm.Boltzmann(beta)
        for i, demo_set in enumerate(sets):
            states, actions = demo_set["state_seq"], demo_set["action_seq"]
            data = demos.Trajectories.from_lists(states, actions, terminated=env.terminal[[s[-1] for s in states]])
            order = C.infer(env, data, env.true_reward, kind=KINDS, human=human, stop=None, max_constraints=9)
            lr = C.infer(env, data, env.true_reward, kind=KINDS, human=human, stop="lr")
            row = {"case": "reference_demos", "set": i, "demos": len(data), "beta": beta, "horizon": horizon,
                   "first_nine": order.labels, "kl": [round(float(v), 3) for v in order.kl],
                   "lr_chosen": lr.labels, **scores(env, lr, true, true_mask),
                   "log_likelihood_true": float(C.log_likelihoods(env, data, env.true_reward, true_mask[None],
                                                                  human=human)[0])}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N = 5, 20, 100 and 3 seeds")
    ap.add_argument("--seeds", type=int, default=None, help="data sets per N (default 10, quick 3)")
    ap.add_argument("--beta", type=float, default=2.0, help="rationality of the demonstrator (and of the model)")
    ap.add_argument("--out", type=Path, default=None, help="also write all rows to this JSON file")
    ap.add_argument("--reference", type=Path, default=None,
                    help="soft_constraint_irl's data/scobee_example_trajectories.json: also run on its demonstrations "
                         "(Boltzmann beta 1 and 3, horizon 20, no discount)")
    args = ap.parse_args()
    ns = [5, 20, 100] if args.quick else [5, 10, 20, 50, 100]
    seeds = args.seeds or (3 if args.quick else 10)
    rows = [batching(args.beta, 2 if args.quick else 5, h) for h in (40, None)]
    rows += recovery(ns, seeds, args.beta, ["kl", "lr"])
    if args.reference is not None:
        rows += reference(args.reference, (1.0, 3.0), 20)
    if args.out is not None:
        from demos import atomic_write

        text = json.dumps(rows, indent=1)
        atomic_write(args.out, lambda f: f.write(text), binary=False)


if __name__ == "__main__":
    main()
