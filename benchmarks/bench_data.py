#!/usr/bin/env python
"""Large-data benchmark: the costs of handling many episodes (not of fitting).

Cases, each on ``N`` random episodes of 1..20 steps (50 states, 4 actions, rewards):

* ``iterate``: ``for tr in data`` over every episode.
* ``subset``: ``data.subset(index)`` of a random half of the episodes.
* ``save_jsonl`` / ``save_csv``: writing the dataset as JSON Lines (one object per
  episode) and as a per-step CSV; ``load_jsonl`` / ``load_csv``: reading them back.
* ``to_dataframe`` / ``from_dataframe``: the pandas round trip (skipped without pandas).

Output: one JSON line per case on stdout, ``{"case", "episodes", "steps", "seconds"}``.
Times are single runs (these are seconds-long operations, not microbenchmarks).

Usage::

    python benchmarks/bench_data.py            # 50,000 and 100,000 episodes
    python benchmarks/bench_data.py --quick    # 10,000 episodes
    python benchmarks/bench_data.py --episodes 1000 20000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import demos  # noqa: E402


def make_data(n: int, seed: int = 0) -> demos.Trajectories:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 21, size=n)
    steps = int(lengths.sum())
    return demos.Trajectories(states=rng.integers(0, 50, size=steps + n), actions=rng.integers(0, 4, size=steps),
                              lengths=lengths, rewards=rng.normal(size=steps),
                              terminated=rng.random(n) < 0.5)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run(n: int, tmp: Path) -> list[dict]:
    data = make_data(n)
    rows = []

    def report(case: str, seconds: float) -> None:
        row = {"case": case, "episodes": n, "steps": int(data.lengths.sum()), "seconds": round(seconds, 4)}
        print(json.dumps(row), flush=True)
        rows.append(row)

    _, s = timed(lambda: sum(1 for _ in data))
    report("iterate", s)
    idx = np.random.default_rng(1).permutation(n)[: n // 2]
    _, s = timed(lambda: data.subset(idx))
    report("subset", s)
    for ext in ("jsonl", "csv"):
        path = tmp / f"d.{ext}"
        _, s = timed(lambda: data.save(str(path)))
        report(f"save_{ext}", s)
        back, s = timed(lambda: demos.load(path))
        assert np.array_equal(back.states, data.states) and np.array_equal(back.actions, data.actions)
        report(f"load_{ext}", s)
    try:
        import pandas  # noqa: F401
    except ImportError:
        return rows
    df, s = timed(data.to_dataframe)
    report("to_dataframe", s)
    back, s = timed(lambda: demos.Trajectories.from_dataframe(df))
    assert np.array_equal(back.states, data.states)
    report("from_dataframe", s)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="10,000 episodes only")
    ap.add_argument("--episodes", type=int, nargs="+", default=None)
    args = ap.parse_args(argv)
    sizes = args.episodes or ([10_000] if args.quick else [50_000, 100_000])
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            run(n, Path(d))


if __name__ == "__main__":
    main()
