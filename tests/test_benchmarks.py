"""Correctness of the side-by-side benchmark against imitation's MCE IRL (no timing assertions).

The benchmark (benchmarks/bench_mce.py) refuses to report times unless both
libraries compute the same thing on the same MDP; these tests run that
comparison on small MDPs, check that it would notice a wrong answer, and check
that the fit harness measures each library's gap the way the library itself does.
"""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

# imitation is needed here: `make test` installs every extra, including `imitation`.
_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_mce.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_mce", _PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_mce"] = mod
    spec.loader.exec_module(mod)
    return mod


bench = _load_bench()


@pytest.fixture(scope="module")
def small():
    return bench.with_demos(bench.random_mdp(40, seed=7), n=60, seed=1)


def test_imitation_is_available_for_the_comparison():
    assert bench.imitation_available() is None


def test_random_mdp_is_sparse_stochastic_and_seeded():
    a = bench.random_mdp(50, seed=3)
    b = bench.random_mdp(50, seed=3)
    c = bench.random_mdp(50, seed=4)
    P = a.mdp.transitions
    assert P.shape == (50 * bench.N_ACTIONS, 50)
    assert np.all(np.diff(P.indptr) == bench.BRANCHING)          # exactly `branching` distinct successors
    np.testing.assert_allclose(np.asarray(P.sum(axis=1)).ravel(), 1.0, atol=1e-12)
    assert a.mdp.horizon == bench.HORIZON and a.mdp.features.shape == (50, bench.N_FEATURES)
    np.testing.assert_allclose(a.reward, a.mdp.features @ a.theta)
    assert (P != b.mdp.transitions).nnz == 0 and np.array_equal(a.theta, b.theta)
    assert not np.array_equal(a.theta, c.theta)


@pytest.mark.parametrize("discount", [1.0, 0.9])
def test_ours_and_imitation_agree_on_the_same_mdp(small, discount):
    prob = small if discount == 1.0 else bench.Problem(small.mdp.replace(discount=discount), small.theta,
                                                       small.reward)
    env = bench.imitation_env(prob)
    grad = bench.autodiff_pass(prob.mdp, prob.reward)
    diffs = bench.compare_with_imitation(prob, env, grad=grad)
    assert set(diffs) == {"q", "v", "v_final_row_zero", "policy", "occupancy_t<H", "occupancy_t=H",
                          "occupancy_cum", "autodiff_occupancy"}
    bench.assert_agreement(diffs, 1e-10)
    # the compared quantities are not trivially zero
    res, occ = bench.ours_pass(prob.mdp, prob.reward)
    assert np.abs(res.q).max() > 1.0 and occ.sum() == pytest.approx(sum(discount ** t for t in range(50)))


def test_comparison_catches_a_wrong_answer(small):
    env = bench.imitation_env(small)
    wrong_reward = small.reward + 0.05 * np.random.default_rng(0).standard_normal(small.reward.shape)
    ours_wrong = bench.ours_pass(small.mdp, wrong_reward)
    diffs = bench.compare_with_imitation(small, env, ours=ours_wrong)
    assert diffs["policy"] > 1e-4 and diffs["occupancy_t<H"] > 1e-5
    with pytest.raises(AssertionError, match="disagree"):
        bench.assert_agreement(diffs)
    # dropping imitation's extra time row (t = H) is exactly what separates the cumulative occupancies
    res, occ = bench.ours_pass(small.mdp, small.reward)
    _, _, _, D, Dcum = bench.imitation_pass(env, small.reward)
    assert np.abs(occ.sum(axis=(0, 2)) - Dcum).max() > 1e-3
    np.testing.assert_allclose(occ.sum(axis=(0, 2)) + D[-1], Dcum, atol=1e-12)


def test_fits_reach_their_own_gap_as_the_harness_measures_it(small):
    target = 2e-3
    ours = bench.fit_ours(small, target)
    theirs = bench.fit_imitation(small, bench.imitation_env(small), target, cap_s=15.0)
    assert not theirs["capped"] and theirs["iterations"] >= 1
    g_ours = bench.objective_gaps(small, ours["theta"])
    g_theirs = bench.objective_gaps(small, theirs["theta"])
    assert g_ours["ours"] <= target                      # L-BFGS's stopping rule, recomputed independently
    assert g_theirs["imitation"] <= target               # imitation's gap, recomputed with our planner
    assert g_theirs["imitation"] == pytest.approx(theirs["own_gap"], abs=1e-5)  # float32 reward net
    # the two objectives differ: each fit is not at the other's optimum, yet both estimate the truth
    assert g_theirs["ours"] > target and g_ours["imitation"] > target
    assert np.abs(ours["theta"] - small.theta).max() < 0.5
    assert np.abs(theirs["theta"] - small.theta).max() < 0.5


@pytest.mark.slow  # seven fresh processes, three of them importing imitation: about a minute
def test_main_prints_one_json_line_per_case_with_consistent_ratios():
    """Side by side in fresh processes (agreement checked first), rounds interleaved, the noise gate."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        records = bench.main(["--sizes", "25", "--repeat", "1", "--budget", "0.5", "--gap", "1e-2",
                              "--anchor-cap", "10", "--rounds", "2", "--fit-rounds", "1", "--backends", "numpy",
                              "--max-spread", "1e9"])
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    assert [r["case"] for r in lines] == ["svi_occ", "svi_occ_autodiff", "maxent_fit"] == [r["case"] for r in records]
    for r in lines:
        assert {"case", "states", "ours_s", "anchor_s", "ratio", "peak_mb", "load_range", "backend"} <= set(r)
        assert r["states"] == 25 and r["ours_s"] > 0 and r["anchor_s"] > 0 and r["backend"] == "numpy"
        assert r["load_range"][0] <= r["load_range"][1]
    for r in lines[:2]:  # two rounds each: a spread, and (with --max-spread 1e9) a ratio
        assert r["rounds"] == r["anchor_rounds"] == 2 and r["ours_spread"] >= 0 and not r["noisy"]
        assert r["ratio"] == pytest.approx(r["anchor_s"] / r["ours_s"], rel=1e-2)
        assert r["max_abs_diff"] <= 1e-10
    # the ratio is printed only with a known spread: one fit round is "noisy"
    fit = lines[2]
    assert fit["ratio"] is None and fit["noisy"] and "spread unknown" in fit["noise_note"]
    assert fit["ours_gap"] <= 1e-2 and (fit["anchor_capped"] or fit["anchor_gap"] <= 1e-2)
    table = out.getvalue()
    assert "pluggable-irl vs imitation" in table and "noisy" in table        # the table follows the JSON lines
    assert "round 2/2" in err.getvalue() and "agreement check" in err.getvalue()


def test_ratio_is_printed_only_when_both_spreads_are_small():
    quiet = bench.spread_stats([1.0, 1.02, 0.99, 1.01, 1.0])
    busy = bench.spread_stats([1.0, 1.6, 0.7, 2.5, 1.1])
    slow = bench.spread_stats([10.0, 10.1, 9.9, 10.0, 10.05])
    assert quiet["median"] == 1.0 and quiet["n"] == 5 and quiet["spread"] == pytest.approx(0.01)
    assert busy["spread"] > bench.MAX_SPREAD
    assert bench.gated_ratio(quiet, slow) == (pytest.approx(10.0), None)
    ratio, why = bench.gated_ratio(busy, slow)
    assert ratio is None and "noisy" in why and "ours 55%" in why
    ratio, why = bench.gated_ratio(quiet, busy)
    assert ratio is None and "imitation 55%" in why
    one = bench.spread_stats([1.0])
    assert one["spread"] is None
    assert bench.gated_ratio(one, slow) == (None, "noisy: 1 sample(s), spread unknown")


def test_each_library_runs_in_its_own_fresh_process():
    """A worker reports its own measurements and the load around it; ours does not import imitation."""
    spec = {"lib": "ours", "backend": "numpy", "cases": ["svi_occ"], "states": 25, "seed": 0, "repeat": 1,
            "budget": 0.5, "gap": 1e-2, "anchor_cap": 10.0, "torch_threads": 1}
    res = bench.spawn(spec)
    assert res["backend"] == "numpy" and res["svi_occ"]["seconds"] > 0 and res["svi_occ"]["runs"] == 1
    assert res["load_before"] is not None and res["load_after"] is not None
    code = ("import sys, runpy; sys.argv = ['bench_mce.py', '--worker', " + repr(json.dumps(spec)) + "]\n"
            "runpy.run_path(" + repr(str(_PATH)) + ", run_name='__main__')\n"
            "print('imitation' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
    with pytest.raises(RuntimeError, match="benchmark worker .* failed"):
        bench.spawn({**spec, "cases": ["no-such-case"]})


def test_anchor_is_reported_not_runnable_beyond_the_memory_limit():
    args = bench.parse_args(["--sizes", "25", "--repeat", "1", "--budget", "0.5", "--gap", "1e-2",
                             "--anchor-max-gb", "1e-6", "--rounds", "1", "--fit-rounds", "1", "--backends", "numpy"])
    records = bench.run_size(25, args, lambda msg: None)
    assert [r["case"] for r in records] == ["svi_occ", "svi_occ_autodiff", "maxent_fit"]
    for r in records:
        assert r["anchor_s"] is None and r["ratio"] is None and "dense" in r["anchor_note"]
        assert r["ours_s"] > 0
    assert bench.dense_bytes(10_000) == 3_200_000_000 and bench.dense_bytes(100_000) > 4e9
