#!/usr/bin/env python
"""Objectworld: expected value difference against the number of demonstrations, linear vs neural reward.

The protocol of Levine, Popović & Koltun (2011), Fig. 1 (discrete features, training map):
for each seed, one ``size x size`` objectworld (2 colours, discrete features), ``n``
demonstrations of 8 steps from the soft-optimal (Boltzmann(1)) policy on its true reward;
each method fits a reward, the optimal policy for the fitted reward is evaluated under
the true reward, and the expected value difference (EVD, uniform start distribution) is
reported on the training map and on ``--transfer`` fresh maps (other seeds, same layout of
features; the fitted reward is evaluated on their features).

Methods:

* ``maxent-linear``: ``irl.MaxEnt(hm.Boltzmann(1.0))``, reward linear in the features (L-BFGS).
* ``neural``: the same solver with ``irl.rewards.NeuralReward.from_spec(--spec)`` (default
  ``mlp:hidden=32,32``, no prior): maximum causal entropy deep IRL (Wulfmeier et al. 2015),
  with the exact planner's gradient, by L-BFGS.
* ``neural-l2``: the same network with a ``priors.Gaussian(0, --prior-scale)`` prior on its
  weights (MAP; L2 weight decay, as Wulfmeier et al. use). The default scale 1 was chosen among
  0.3, 1 and 3 on seed 0 with 16 demonstrations (EVD 3.72, 1.94, 2.44; 5.87 without the prior),
  so that one cell is not an independent test.

The published numbers (GPIRL paper, Fig. 1: MaxEnt and GPIRL at 4/8/16/32/64/128
demonstrations, training map) are attached to each summary line for comparison.

Throughput (``throughput`` cases): Lightning training (:mod:`irl.lightning`) on
``--throughput-maps`` maps of the same size, batch 4, maps per second per process measured
over the training steps after the first (warm-up) epoch only (not the process start); with ``--ddp`` also 2 CPU processes
(``strategy="ddp"``, gloo) in a subprocess, and the speed-up of the whole (2-process maps/s
over 1-process maps/s).

Output: one JSON line per case on stdout (every line has a ``"case"``), then a table on stderr.

Usage::

    python benchmarks/bench_objectworld.py --quick      # 32x32, 4/16/64 demonstrations, 2 seeds, 2 transfer maps
    python benchmarks/bench_objectworld.py              # 32x32, 4..128 demonstrations, 5 seeds, 4 transfer maps, --ddp
    python benchmarks/bench_objectworld.py --demos 8 32 --seeds 0 --spec mlp:hidden=64,64
    python benchmarks/bench_objectworld.py --throughput       # maps/s, 1 and 2 processes, and the DDP speed-up
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import demos  # noqa: E402
import human_models as hm  # noqa: E402
import irl  # noqa: E402
import priors  # noqa: E402

#: Levine, Popović & Koltun (2011), Fig. 1 (objectworld, discrete features, training map): EVD
PUBLISHED = {"maxent": {4: 30.8, 8: 25.7, 16: 14.8, 32: 12.3, 64: 10.2, 128: 8.65},
             "gpirl": {4: 5.83, 8: 0.48, 16: 0.49, 32: 0.37, 64: 0.22, 128: 0.13}}
HORIZON = 8


def evd(env: Any, reward: Any) -> float:
    """EVD of the optimal policy for ``reward`` under the true reward (uniform start)."""
    return irl.metrics.expected_value_difference(env, irl.plan(env, reward), env.true_reward)


def fit_and_score(method: str, env: Any, data: Any, transfer: list, *, spec: str, max_iter: int, seed: int,
                  prior_scale: float = 1.0) -> dict[str, Any]:
    """Fit one method on one training map; EVD on it and on the transfer maps."""
    t0 = time.perf_counter()
    if method == "maxent-linear":
        est = irl.MaxEnt(hm.Boltzmann(1.0), max_iter=max_iter).fit(env, data)
        on = [m.features @ est.theta for m in transfer]
        params = int(est.theta.size)
    elif method in ("neural", "neural-l2"):
        model = irl.rewards.NeuralReward.from_spec(spec, env, seed=seed)
        prior = priors.Gaussian(0.0, prior_scale) if method == "neural-l2" else None
        est = irl.MaxEnt(hm.Boltzmann(1.0), reward_model=model, prior=prior, max_iter=max_iter).fit(env, data)
        on = [model.reward(m) for m in transfer]
        params = model.n_params
    else:
        raise ValueError(f"unknown method {method!r}")
    seconds = time.perf_counter() - t0
    return {"evd_train": evd(env, est.reward),
            "evd_transfer": float(np.mean([evd(m, r) for m, r in zip(transfer, on)])) if transfer else None,
            "seconds": seconds, "evaluations": est.info["evaluations"], "converged": est.converged, "params": params}


def run_evd(*, size: int, demos_list: list[int], seeds: list[int], n_transfer: int, features: str, spec: str,
            max_iter: int, methods: tuple[str, ...] = ("maxent-linear", "neural", "neural-l2"),
            prior_scale: float = 1.0) -> list[dict[str, Any]]:
    """One record per (seed, demonstrations, method)."""
    records = []
    for seed in seeds:
        env = irl.envs.make("objectworld", size=size, features=features, seed=seed)
        transfer = [irl.envs.make("objectworld", size=size, features=features, seed=10_000 + 100 * seed + i)
                    for i in range(n_transfer)]
        for n in demos_list:
            data = demos.simulate(env, hm.Boltzmann(1.0), env.true_reward, n=n, seed=seed, horizon=HORIZON)
            for method in methods:
                rec = {"case": "evd", "method": method, "size": size, "features": features, "demos": n,
                       "seed": seed, "transfer_maps": n_transfer, **({"spec": spec} if method != "maxent-linear" else {}),
                       **({"prior_scale": prior_scale} if method == "neural-l2" else {})}
                rec.update(fit_and_score(method, env, data, transfer, spec=spec, max_iter=max_iter, seed=seed,
                                         prior_scale=prior_scale))
                print(f"  seed {seed} demos {n:4d} {method:14s} EVD train {rec['evd_train']:7.2f} transfer "
                      f"{rec['evd_transfer'] if rec['evd_transfer'] is None else round(rec['evd_transfer'], 2)} "
                      f"({rec['seconds']:.1f} s)", file=sys.stderr)
                print(json.dumps(rec), flush=True)  # as it comes: a long run that is stopped keeps its cases
                records.append(rec)
    return records


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds per (method, demonstrations), with the published values."""
    out = []
    keys = sorted({(r["method"], r["demos"]) for r in records if r["case"] == "evd"})
    for method, n in keys:
        rs = [r for r in records if r["case"] == "evd" and r["method"] == method and r["demos"] == n]
        tr = np.array([r["evd_train"] for r in rs])
        tf = np.array([r["evd_transfer"] for r in rs if r["evd_transfer"] is not None])
        out.append({"case": "evd_summary", "method": method, "demos": n, "seeds": len(rs),
                    "evd_train_mean": float(tr.mean()), "evd_train_sd": float(tr.std(ddof=1)) if len(tr) > 1 else None,
                    "evd_transfer_mean": float(tf.mean()) if tf.size else None,
                    "evd_transfer_sd": float(tf.std(ddof=1)) if tf.size > 1 else None,
                    "seconds_mean": float(np.mean([r["seconds"] for r in rs])),
                    "published_maxent": PUBLISHED["maxent"].get(n), "published_gpirl": PUBLISHED["gpirl"].get(n)})
    return out


def throughput(*, size: int, n_maps: int, epochs: int, devices: int, features: str, spec: str, folder: Path
               ) -> dict[str, Any] | None:
    """Lightning training throughput (maps per second over the training steps), on this process's rank 0."""
    import pytorch_lightning as pl

    import irl.lightning as irl_pl

    path = folder / "manifest.json"
    if not path.exists():
        irl.datasets.simulate_manifest(folder, "objectworld", seeds=list(range(n_maps)), n=16, horizon=HORIZON,
                                       env_kwargs={"size": size, "features": features})

    class Clock(pl.Callback):
        """Seconds and maps of the training steps after the first epoch (warm-up: the first steps compile,
        fill caches and, with DDP, build the gradient buckets), or of all steps when there is one epoch."""

        def __init__(self) -> None:
            self.seconds, self.maps, self.t = 0.0, 0, 0.0

        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, idx: int) -> None:
            self.t = time.perf_counter()

        def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, idx: int) -> None:
            if trainer.current_epoch > 0 or trainer.max_epochs == 1:
                self.seconds += time.perf_counter() - self.t
                self.maps += len(batch.mdps)

    data = irl_pl.MapDataModule.from_manifest(path, batch_size=4, shuffle=False)
    model = irl_pl.RewardNetModule.from_spec(spec, data.example_mdp(), lr=1e-3, seed=0)
    clock = Clock()
    trainer = irl_pl.trainer(max_epochs=epochs, devices=devices, strategy="ddp" if devices > 1 else "auto",
                             callbacks=[clock], enable_progress_bar=False, num_sanity_val_steps=0,
                             limit_val_batches=0, default_root_dir=str(folder / "logs"))
    trainer.fit(model, data)
    per_process = clock.maps / clock.seconds
    total = torch.tensor([per_process], dtype=torch.float64)
    if trainer.world_size > 1:
        total = trainer.strategy.reduce(total, reduce_op="sum")
    if trainer.global_rank != 0:
        return None
    return {"case": "throughput", "processes": trainer.world_size, "size": size, "features": features,
            "spec": spec, "maps": n_maps, "epochs": epochs, "batch_size_per_process": 4,
            "maps_per_s_per_process": per_process, "maps_per_s_total": float(total[0]),
            "load_1min": os.getloadavg()[0]}


def table(records: list[dict[str, Any]]) -> str:
    lines = [f"{'method':14s} {'demos':>5s} {'EVD train':>14s} {'EVD transfer':>14s} {'MaxEnt (pub.)':>13s} "
             f"{'GPIRL (pub.)':>12s}"]
    for r in records:
        if r["case"] != "evd_summary":
            continue
        sd = f" ± {r['evd_train_sd']:.2f}" if r["evd_train_sd"] is not None else ""
        tsd = f" ± {r['evd_transfer_sd']:.2f}" if r["evd_transfer_sd"] is not None else ""
        tf = "-" if r["evd_transfer_mean"] is None else f"{r['evd_transfer_mean']:.2f}{tsd}"
        lines.append(f"{r['method']:14s} {r['demos']:5d} {r['evd_train_mean']:7.2f}{sd:7s} {tf:>14s} "
                     f"{r['published_maxent'] or '-':>13} {r['published_gpirl'] or '-':>12}")
    for r in records:
        if r["case"] == "throughput":
            lines.append(f"throughput: {r['processes']} process(es), {r['size']}x{r['size']} maps: "
                         f"{r['maps_per_s_per_process']:.1f} maps/s per process, {r['maps_per_s_total']:.1f} total")
        if r["case"] == "ddp_speedup":
            lines.append(f"DDP speed-up (2 processes / 1): {r['speedup']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="4/16/64 demonstrations, 2 seeds, 2 transfer maps")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--features", default="discrete", choices=["discrete", "continuous"])
    p.add_argument("--demos", type=int, nargs="+", default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--transfer", type=int, default=None, help="fresh maps for transfer EVD (default 4, quick 2)")
    p.add_argument("--spec", default="mlp:hidden=32,32", help="the neural reward's network")
    p.add_argument("--max-iter", type=int, default=300)
    p.add_argument("--methods", nargs="+", default=["maxent-linear", "neural", "neural-l2"],
                   choices=["maxent-linear", "neural", "neural-l2"])
    p.add_argument("--prior-scale", type=float, default=1.0, help="neural-l2: the Gaussian prior's scale on the weights")
    p.add_argument("--throughput-maps", type=int, default=32)
    p.add_argument("--throughput-epochs", type=int, default=None,
                   help="epochs of the throughput runs; the first is warm-up and not timed (default 4, quick 2)")
    p.add_argument("--ddp", action="store_true", help="also measure 2-process DDP throughput (default in a full run)")
    p.add_argument("--throughput", action="store_true",
                   help="only the throughput cases (1 process, and 2 with --ddp or without --quick), no EVD")
    p.add_argument("--throughput-only", type=int, default=0, metavar="DEVICES", help=argparse.SUPPRESS)
    p.add_argument("--workdir", default=None, help="folder for the throughput maps (default: a temporary one)")
    args = p.parse_args(argv)
    if args.throughput_epochs is None:
        args.throughput_epochs = 2 if args.quick else 4
    torch.set_num_threads(1)

    import tempfile

    folder = Path(args.workdir or tempfile.mkdtemp(prefix="bench_objectworld_"))
    if args.throughput_only:  # the DDP subprocess (Lightning re-launches this same command per rank)
        rec = throughput(size=args.size, n_maps=args.throughput_maps, epochs=args.throughput_epochs,
                         devices=args.throughput_only,
                         features=args.features, spec=args.spec, folder=folder)
        if rec is not None:
            print(json.dumps(rec), flush=True)
        return

    demos_list = args.demos or ([4, 16, 64] if args.quick else [4, 8, 16, 32, 64, 128])
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2, 3, 4])
    n_transfer = args.transfer if args.transfer is not None else (2 if args.quick else 4)
    records = [] if args.throughput else run_evd(
        size=args.size, demos_list=demos_list, seeds=seeds, n_transfer=n_transfer, features=args.features,
        spec=args.spec, max_iter=args.max_iter, methods=tuple(args.methods), prior_scale=args.prior_scale)
    summaries = summarise(records)
    for r in summaries:
        print(json.dumps(r), flush=True)
    records += summaries
    thr = []
    rec = throughput(size=args.size, n_maps=args.throughput_maps, epochs=args.throughput_epochs, devices=1,
                     features=args.features, spec=args.spec, folder=folder)
    thr.append(rec)
    if args.ddp or not args.quick:
        cmd = [sys.executable, __file__, "--throughput-only", "2", "--size", str(args.size), "--features",
               args.features, "--spec", args.spec, "--throughput-maps", str(args.throughput_maps),
               "--throughput-epochs", str(args.throughput_epochs), "--workdir",
               str(folder)]
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
        if res.returncode != 0 or not lines:
            print(res.stderr[-2000:], file=sys.stderr)
        else:
            thr.append(lines[0])
            thr.append({"case": "ddp_speedup", "speedup": lines[0]["maps_per_s_total"] / rec["maps_per_s_total"],
                        "note": "2 CPU processes on the same machine; shared with other jobs (load_1min)",
                        "load_1min": os.getloadavg()[0]})
    for r in thr:
        print(json.dumps(r), flush=True)
    print(table(records + thr), file=sys.stderr)


if __name__ == "__main__":
    main()
