"""Objectworld and binaryworld follow their published definitions (Levine et al. 2011; Wulfmeier et al. 2015)."""

import re

import numpy as np
import pytest

import irl
from irl.envs.objectworld import binaryworld, objectworld
from irl.mdp import MDPValidationError



@pytest.mark.parametrize("name", ["objectworld", "binaryworld"])
def test_registered_and_seeded(name):
    a, b = irl.envs.make(name, size=8, seed=0), irl.envs.make(name, size=8, seed=0)
    c = irl.envs.make(name, size=8, seed=1)
    assert name in irl.envs.names()
    np.testing.assert_array_equal(a.features, b.features)
    assert not np.array_equal(a.features, c.features)
    assert (a.n_states, a.n_actions, a.discount, a.horizon, a.grid_shape) == (64, 5, 0.9, None, (8, 8))
    np.testing.assert_allclose(a.initial, 1 / 64)


def test_transitions_intended_0_7_others_0_075():
    P = irl.envs.make("objectworld", size=6, seed=0).dense_transitions()
    moves = {"stay": (0, 0), "up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
    r0, c0 = 3, 2  # an interior cell: every move lands on a different cell
    s = r0 * 6 + c0
    for a, (dr, dc) in enumerate(moves.values()):
        for b, (er, ec) in enumerate(moves.values()):
            expect = 0.7 if a == b else 0.075
            assert P[s, a, (r0 + er) * 6 + (c0 + ec)] == pytest.approx(expect)
    # in a corner the moves off the grid stay put: up and left from (0, 0) add to "stay"
    assert P[0, 0, 0] == pytest.approx(0.7 + 2 * 0.075)
    assert P[0, 1, 0] == pytest.approx(0.7 + 2 * 0.075)
    np.testing.assert_allclose(P.sum(-1), 1.0)


@pytest.mark.parametrize("seed", [0, 3])
def test_objectworld_features_and_reward_rule(seed):
    N, C = 12, 3
    cont = objectworld(N, colours=C, features="continuous", placement_prob=0.1, seed=seed)
    disc = objectworld(N, colours=C, features="discrete", placement_prob=0.1, seed=seed)
    assert cont.n_features == 2 * C
    assert disc.n_features == 2 * C * (N - 1)
    assert disc.feature_names[:2 * C] == ("outer1<1", "outer2<1", "outer3<1", "inner1<1", "inner2<1", "inner3<1")
    dist = cont.features
    # an object sits where a distance is 0; every cell's distance is the minimum over those cells (brute force)
    rows, cols = np.divmod(np.arange(N * N), N)
    for k in range(2 * C):
        at = np.flatnonzero(dist[:, k] == 0)
        for s in range(N * N):
            expect = min((np.hypot(rows[s] - rows[o], cols[s] - cols[o]) for o in at), default=np.sqrt(2) * N)
            assert dist[s, k] == pytest.approx(expect)
    # discrete indicator (d, k) is "distance < d"
    for d in range(1, N):
        for k in range(2 * C):
            np.testing.assert_array_equal(disc.features[:, (d - 1) * 2 * C + k], dist[:, k] < d)
    # reward rule: +5 near (<3) outer colour 1 and near (<2) outer colour 2, -10 near colour 1 only, else 0
    for s in range(N * N):
        expect = (5.0 if dist[s, 1] < 2 else -10.0) if dist[s, 0] < 3 else 0.0
        assert cont.true_reward[s] == expect
    np.testing.assert_array_equal(cont.true_reward, disc.true_reward)
    assert {-10.0, 0.0} <= set(np.unique(cont.true_reward))


def test_objectworld_paper_size_object_density():
    env = objectworld(seed=0)  # 32x32, 2 colours, discrete features, placement 0.05
    assert (env.n_states, env.n_features) == (1024, 2 * 2 * 31)
    n_objects = int((env.features[:, :4].sum(axis=1) > 0).sum())  # "distance < 1" means an object in the cell
    assert 0.03 * 1024 < n_objects < 0.07 * 1024
    assert set(np.unique(env.true_reward)) == {-10.0, 0.0, 5.0}


def test_binaryworld_reward_counts_blue_neighbourhood():
    env = binaryworld(7, seed=2)
    assert env.n_features == 9
    blue = env.features[:, 4].reshape(7, 7).astype(bool)  # the cell itself
    for r in range(7):
        for c in range(7):
            nb = [blue[r + dr, c + dc] if 0 <= r + dr < 7 and 0 <= c + dc < 7 else False
                  for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
            s = r * 7 + c
            np.testing.assert_array_equal(env.features[s], nb)
            n = sum(nb)
            assert env.true_reward[s] == (1.0 if n == 4 else -1.0 if n == 5 else 0.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 1}, "size must be an integer >= 2"),
    ({"colours": 1}, "colours must be an integer >= 2"),
    ({"features": "pixels"}, "features must be 'discrete' or 'continuous'"),
    ({"placement_prob": 0.0}, "placement_prob must lie in (0, 1]"),
    ({"discount": 1.0}, "discount must lie in [0, 1)"),
])
def test_objectworld_validation(kwargs, message):
    with pytest.raises(MDPValidationError, match=re.escape(message)):
        objectworld(**kwargs)


def test_benchmark_records_on_a_tiny_problem():
    """benchmarks/bench_objectworld.py: the records it writes (no timing assertions)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_objectworld.py"
    spec = importlib.util.spec_from_file_location("bench_objectworld", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    recs = bench.run_evd(size=6, demos_list=[8], seeds=[0, 1], n_transfer=1, features="continuous",
                         spec="mlp:hidden=4", max_iter=20, prior_scale=0.5)
    assert [(r["method"], r["seed"]) for r in recs] == [
        ("maxent-linear", 0), ("neural", 0), ("neural-l2", 0), ("maxent-linear", 1), ("neural", 1), ("neural-l2", 1)]
    assert all(r["evd_train"] >= 0 and r["evd_transfer"] >= 0 for r in recs)
    assert [r.get("prior_scale") for r in recs[:3]] == [None, None, 0.5]
    summary = bench.summarise(recs)
    assert [s["method"] for s in summary] == ["maxent-linear", "neural", "neural-l2"]
    assert summary[0]["published_maxent"] == 25.7 and summary[1]["published_gpirl"] == 0.48
    assert summary[0]["evd_train_mean"] == pytest.approx(np.mean([recs[0]["evd_train"], recs[3]["evd_train"]]))
