"""Demonstrations: the ragged trajectories type, its validation, files and simulation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import demos
import human_models as hm
import irl
from demos import DemoFileError, DemoValidationError, Trajectories


def _example(rewards: bool = True) -> Trajectories:
    """Three episodes of lengths 3, 0 and 2; the first terminated, the last truncated."""
    return Trajectories.from_lists(
        states=[[0, 1, 2, 3], [4], [2, 2, 0]],
        actions=[[1, 0, 2], [], [0, 1]],
        rewards=[[0.5, -1.0, 2.25], [], [0.0, 1e-3]] if rewards else None,
        terminated=[True, False, False], truncated=[False, False, True])


def _same(a: Trajectories, b: Trajectories) -> None:
    for name in ("states", "actions", "lengths", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert getattr(b, name).dtype == getattr(a, name).dtype, name
    if a.rewards is None:
        assert b.rewards is None
    else:
        np.testing.assert_array_equal(a.rewards, b.rewards)


# ------------------------------------------------------------ construction
def test_from_lists_ragged_and_indexing():
    d = _example()
    assert len(d) == 3
    assert d.lengths.tolist() == [3, 0, 2]
    assert d.states.tolist() == [0, 1, 2, 3, 4, 2, 2, 0] and d.states.dtype == np.int64
    assert d.actions.tolist() == [1, 0, 2, 0, 1]
    assert d.state_offsets.tolist() == [0, 4, 5, 8] and d.action_offsets.tolist() == [0, 3, 3, 5]
    first, empty, last = d[0], d[1], d[-1]
    assert first.states.tolist() == [0, 1, 2, 3] and first.actions.tolist() == [1, 0, 2]
    assert first.rewards.tolist() == [0.5, -1.0, 2.25] and first.terminated and not first.truncated
    assert empty.states.tolist() == [4] and empty.actions.size == 0 and empty.rewards.size == 0
    assert last.truncated and not last.terminated and last.states.tolist() == [2, 2, 0]
    assert [len(t.actions) for t in d] == [3, 0, 2]
    assert d.initial_states.tolist() == [0, 4, 2] and d.final_states.tolist() == [3, 4, 0]
    with pytest.raises(IndexError, match="trajectory index 3 out of range for 3 trajectories"):
        d[3]
    # arrays are read-only: a dataset cannot be changed behind a solver's back
    with pytest.raises(ValueError):
        d.states[0] = 7


def test_from_padded_matches_from_lists():
    S = np.array([[0, 1, 2, 3], [4, -1, -1, -1], [2, 2, 0, -1]])
    A = np.array([[1, 0, 2], [-1, -1, -1], [0, 1, -1]])
    R = np.array([[0.5, -1.0, 2.25], [9, 9, 9], [0.0, 1e-3, 9]])
    d = Trajectories.from_padded(S, A, [3, 0, 2], rewards=R, terminated=[True, False, False],
                                 truncated=[False, False, True])
    _same(_example(), d)
    flags = Trajectories.from_padded(S, A, [3, 0, 2], truncated=True)
    assert flags.truncated.tolist() == [True, True, True] and not flags.terminated.any()


def test_subset():
    d = _example()
    sub = d.subset([2, 0])
    assert sub.lengths.tolist() == [2, 3]
    assert sub.states.tolist() == [2, 2, 0, 0, 1, 2, 3]
    assert sub.rewards.tolist() == [0.0, 1e-3, 0.5, -1.0, 2.25]
    assert sub.terminated.tolist() == [False, True] and sub.truncated.tolist() == [True, False]
    _same(d.subset(slice(None)), d)
    assert len(d.subset(slice(1, 2))) == 1 and d.subset(slice(1, 2))[0].states.tolist() == [4]


def test_counts_by_time_and_total():
    d = _example(rewards=False)
    S, A, H = 5, 3, 4
    by_time = d.counts(S, A, horizon=H)
    assert by_time.shape == (H, S, A)
    want = np.zeros((H, S, A))
    for tr in d:
        for t, (s, a) in enumerate(zip(tr.states[:-1], tr.actions)):
            want[t, s, a] += 1
    np.testing.assert_array_equal(by_time, want)
    assert by_time[0, 0, 1] == 1 and by_time[0, 2, 0] == 1 and by_time[1, 2, 1] == 1 and by_time[2, 2, 2] == 1
    total = d.counts(S, A)
    np.testing.assert_array_equal(total, want.sum(0))
    assert total.sum() == d.lengths.sum() == 5
    t, s = d.step_index
    assert t.tolist() == [0, 1, 2, 0, 1] and s.tolist() == [0, 1, 2, 2, 2]


# -------------------------------------------------------------- validation
def test_ids_out_of_range_name_the_trajectory_and_range():
    d = _example()
    with pytest.raises(DemoValidationError,
                       match=r"state id 4 in trajectory 1 is out of range: the MDP has 4 states \(valid ids 0\.\.3\)"):
        d.validate(4, 3)
    with pytest.raises(DemoValidationError, match=r"action id 2 in trajectory 0 is out of range: "
                                                  r"the MDP has 2 actions \(valid ids 0\.\.1\)"):
        d.validate(5, 2)
    with pytest.raises(DemoValidationError, match=r"trajectory 0 has 3 actions, more than the MDP's horizon 2"):
        d.validate(5, 3, horizon=2)
    assert d.validate(5, 3, horizon=3) is d
    # an Evidence item checks its data against its MDP
    env = irl.envs.make("gridworld-5x5")
    bad = Trajectories.from_lists([[0, 30]], [[1]])
    with pytest.raises(DemoValidationError, match=r"state id 30 in trajectory 0 .* \(valid ids 0\.\.24\)"):
        irl.Evidence(env, bad, hm.Boltzmann(1.0))


def test_negative_ids():
    with pytest.raises(DemoValidationError, match=r"states ids must be >= 0: got -2 in trajectory 1"):
        Trajectories.from_lists([[0, 1], [3, -2]], [[0], [1]])
    with pytest.raises(DemoValidationError, match=r"actions ids must be >= 0: got -1 in trajectory 2"):
        Trajectories.from_lists([[0, 1], [1], [0, 1, 2]], [[0], [], [0, -1]])


def test_empty_dataset():
    with pytest.raises(DemoValidationError, match="a dataset needs at least one trajectory: got 0"):
        Trajectories.from_lists([], [])
    with pytest.raises(DemoValidationError, match="a dataset needs at least one trajectory: got 0"):
        Trajectories(states=np.zeros(0, int), actions=np.zeros(0, int), lengths=np.zeros(0, int))


def test_ragged_lists_that_do_not_line_up():
    with pytest.raises(DemoValidationError,
                       match="trajectory 1 must have one more state than actions: got 2 states, 2 actions"):
        Trajectories.from_lists([[0, 1], [0, 1]], [[0], [0, 1]])
    with pytest.raises(DemoValidationError, match="got 2 state sequences but 1 action sequences"):
        Trajectories.from_lists([[0, 1], [0]], [[0]])
    with pytest.raises(DemoValidationError, match=r"states must have 4 entries for these lengths .*: got 3"):
        Trajectories(states=np.array([0, 1, 2]), actions=np.array([0, 1]), lengths=np.array([1, 1]))
    with pytest.raises(DemoValidationError, match=r"rewards must align with actions \(2,\): got \(3,\)"):
        Trajectories(states=np.array([0, 1, 2, 3]), actions=np.array([0, 1]), lengths=np.array([1, 1]),
                     rewards=np.zeros(3))
    with pytest.raises(DemoValidationError, match=r"terminated must have shape \(2,\): got \(3,\)"):
        Trajectories(states=np.array([0, 1, 2, 3]), actions=np.array([0, 1]), lengths=np.array([1, 1]),
                     terminated=[True, False, False])


def test_non_integer_ids_and_lengths():
    with pytest.raises(DemoValidationError, match="states must hold integer ids: got dtype float64"):
        Trajectories.from_lists([[0, 1.5]], [[0]])
    with pytest.raises(DemoValidationError, match=r"lengths\[1\] must be >= 0: got -1"):
        Trajectories(states=np.array([0, 1]), actions=np.array([0]), lengths=np.array([1, -1]))


def test_both_terminated_and_truncated():
    with pytest.raises(DemoValidationError, match="trajectory 1 is marked both terminated and truncated"):
        Trajectories.from_lists([[0, 1], [0, 1]], [[0], [0]], terminated=[False, True], truncated=[False, True])


# ------------------------------------------------------------- round trips
@pytest.mark.parametrize("ext", [".npz", ".jsonl", ".csv"])
@pytest.mark.parametrize("with_rewards", [True, False])
def test_file_round_trip(tmp_path, ext, with_rewards):
    d = _example(with_rewards)
    path = tmp_path / f"demos{ext}"
    d.save(str(path))
    back = demos.load(path)
    _same(d, back)
    # saving what was loaded gives the same bytes again (deterministic writers for text formats)
    if ext != ".npz":
        again = tmp_path / f"again{ext}"
        demos.save(back, again)
        assert again.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("ext", [".npz", ".jsonl", ".csv"])
def test_simulated_round_trip(tmp_path, ext):
    env = irl.envs.make("aima-4x3", discount=0.9)
    # the Q-softmax human heads for the +1 exit (a soft-optimal one, whose entropy bonus outweighs
    # the exit at discount 0.9, would wander), so both flags occur
    data = demos.simulate(env, hm.BoltzmannQ(10.0), env.true_reward, n=30, seed=5, horizon=8)
    assert data.terminated.any() and data.truncated.any()
    demos.save(data, tmp_path / f"d{ext}")
    _same(data, demos.load(tmp_path / f"d{ext}"))


def test_npz_has_format_and_version(tmp_path):
    path = tmp_path / "d.npz"
    _example().save(str(path))
    with np.load(path, allow_pickle=False) as z:
        assert str(z["format"]) == "pluggable-irl/trajectories" and int(z["version"]) == 1
    fmt, arrays, meta = demos.load_arrays(path, "pluggable-irl/trajectories")
    assert fmt == "pluggable-irl/trajectories" and arrays["lengths"].tolist() == [3, 0, 2]
    with pytest.raises(DemoFileError, match="expected a 'pluggable-irl/other' file, found format"):
        demos.load_arrays(path, "pluggable-irl/other")


def test_newer_version_and_unknown_format_are_refused(tmp_path):
    newer = tmp_path / "newer.npz"
    np.savez(newer, format=np.array("pluggable-irl/trajectories"), version=np.array(99),
             states=np.array([0, 1]), actions=np.array([0]), lengths=np.array([1]))
    with pytest.raises(DemoFileError, match="format version 99 is newer than this library reads"):
        demos.load(newer)
    for bad in (0, -1):
        np.savez(newer, format=np.array("pluggable-irl/trajectories"), version=np.array(bad),
                 states=np.array([0, 1]), actions=np.array([0]), lengths=np.array([1]))
        with pytest.raises(DemoFileError, match=rf"format version must be a positive integer \(1 to 1\): got {bad}"):
            demos.load(newer)
    other = tmp_path / "other.npz"
    demos.save_arrays(other, "someone/else", {"x": np.arange(3)})
    with pytest.raises(DemoFileError, match=r"unknown evidence format 'someone/else'; known: .*trajectories"):
        demos.load(other)


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(DemoFileError, match=r"unknown extension '\.pkl'; known: \['\.csv', '\.jsonl', '\.npz'\]"):
        _example().save(str(tmp_path / "d.pkl"))
    (tmp_path / "d.pkl").write_bytes(b"")
    with pytest.raises(DemoFileError, match=r"unknown extension '\.pkl'"):
        demos.load(tmp_path / "d.pkl")
    with pytest.raises(DemoFileError, match="no such file"):
        demos.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 a damaged zip archive")
    with pytest.raises(DemoFileError, match="junk.npz: not a readable .npz file"):
        demos.load(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", np.arange(3))
    os.replace(tmp_path / "single.npy", tmp_path / "single.npz")
    with pytest.raises(DemoFileError, match=r"single.npz: not an .npz archive \(found a single ndarray\)$"):
        demos.load(tmp_path / "single.npz")
    # numpy reads a file that is neither zip nor .npy as a pickle: refused as well
    (tmp_path / "text.npz").write_bytes(b"just some text")
    with pytest.raises(DemoFileError, match="text.npz: .*refused"):
        demos.load(tmp_path / "text.npz")


# ------------------------------------------------------- no pickle, ever
class _Payload:
    """Unpickling this object creates a file: the marker proves whether code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_npz_with_object_array_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.npz"
    payload = np.empty(1, dtype=object)
    payload[0] = _Payload(str(marker))
    np.savez(evil, format=np.array("pluggable-irl/trajectories"), version=np.array(1), states=payload,
             actions=np.array([0]), lengths=np.array([1]))
    for load in (demos.load, demos.load_arrays, irl.RewardEstimate.load):
        with pytest.raises(DemoFileError, match=r"object \(pickled\) arrays, which are refused"):
            load(evil)
        assert not marker.exists()

    # the file really is malicious: a careless pickle-enabled load would run the payload
    control = tmp_path / "control"
    payload[0] = _Payload(str(control))
    np.savez(tmp_path / "control.npz", states=payload)
    with np.load(tmp_path / "control.npz", allow_pickle=True) as z:
        z["states"]
    assert control.exists()
    assert not marker.exists()


def test_object_arrays_are_never_written(tmp_path):
    with pytest.raises(DemoFileError, match="refusing to save object array 'x'"):
        demos.save_arrays(tmp_path / "o.npz", "fmt", {"x": np.array([{"a": 1}], dtype=object)})
    assert not (tmp_path / "o.npz").exists()


# ----------------------------------------------------------- malformed JSONL
def _jsonl(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


_HEADER = json.dumps({"format": "pluggable-irl/trajectories", "version": 1})
_GOOD = json.dumps({"states": [0, 1], "actions": [1]})


@pytest.mark.parametrize("line, message", [
    ('{"states": [0, 1], "actions": [1]', r"line 3: not valid JSON"),
    (json.dumps({"states": [0, 1]}), r"line 3: missing list field 'actions'"),
    (json.dumps({"states": [0, 1], "actions": 1}), r"line 3: missing list field 'actions'"),
    (json.dumps({"states": [0, "1"], "actions": [1]}), r"line 3: 'states' must be a list of integer ids"),
    (json.dumps({"states": [0, 1.5], "actions": [1]}), r"line 3: 'states' must be a list of integer ids"),
    (json.dumps({"states": [0, 1], "actions": [True]}), r"line 3: 'actions' must be a list of integer ids"),
    (json.dumps({"states": [0, 1, 2], "actions": [1]}),
     r"line 3: need one more state than actions: got 3 states, 1 actions"),
    (json.dumps([0, 1]), r"line 3: expected a JSON object, found list"),
    (json.dumps({"states": [0, 1], "actions": [1], "rewards": [1.0]}),
     r"line 3: 'rewards' must be given for every episode or none"),
    (json.dumps({"states": [0, -1], "actions": [1]}), r"states ids must be >= 0: got -1 in trajectory 1"),
])
def test_malformed_jsonl(tmp_path, line, message):
    p = _jsonl(tmp_path, [_HEADER, _GOOD, line])
    with pytest.raises(DemoFileError, match=message) as exc:
        demos.load(p)
    assert str(p) in str(exc.value)


def test_jsonl_empty_and_wrong_format(tmp_path):
    with pytest.raises(DemoFileError, match="contains no trajectories"):
        demos.load(_jsonl(tmp_path, [_HEADER]))
    with pytest.raises(DemoFileError, match="expected format 'pluggable-irl/trajectories', found 'x/y'"):
        demos.load(_jsonl(tmp_path, [json.dumps({"format": "x/y"}), _GOOD]))
    # a file without header and with blank lines is fine
    d = demos.load(_jsonl(tmp_path, ["", _GOOD, "", json.dumps({"states": [3], "actions": []})]))
    assert d.lengths.tolist() == [1, 0] and d.states.tolist() == [0, 1, 3]


# ------------------------------------------------------------- malformed CSV
_CSV_HEAD = "episode,step,state,action,reward,end"


@pytest.mark.parametrize("rows, message", [
    (["episode,step,action", "0,0,1"], r"header must contain \['action', 'episode', 'state', 'step'\]"),
    ([_CSV_HEAD, "0,0,0,1,,", "0,1,x,,,"], r"line 3: state must be an integer id: got 'x'"),
    ([_CSV_HEAD, "0,0,0,1,,", "0,1,2,,,", "1,0,3,0,,", "1,1,1,1,,"],
     r"episode 1 has no final row \(a state with an empty action\)"),
    ([_CSV_HEAD, "0,0,0,1,,", "0,2,2,,,"], r"line 3: episode 0 expects step 1, got 2"),
    ([_CSV_HEAD, "0,0,0,1,,", "0,1,2,,,", "0,2,3,,,"], r"line 4: episode 0 continues after a row with no action"),
    ([_CSV_HEAD, "0,0,0,a,,", "0,1,2,,,"], r"line 2: action must be an integer id: got 'a'"),
    ([_CSV_HEAD, "0,0,0,1,abc,", "0,1,2,,,"], r"line 2: reward must be a number: got 'abc'"),
    ([_CSV_HEAD, "0,0,0,1,,", "0,1,2,,,done"], r"episode 0 has end 'done'; expected terminated, truncated or empty"),
    ([_CSV_HEAD], r"contains no trajectories"),
    ([_CSV_HEAD, "0,0,0,1,1.0,", "0,1,2,0,,", "0,2,1,,,"],
     r"rewards must be given on every action row or on none: episode 0 has 1 rewards for 2 actions"),
    ([_CSV_HEAD, "0,0,0,1,1.0,", "0,1,2,,,", "1,0,0,1,,", "1,1,2,,,"],
     r"rewards must be given on every action row or on none: episode 1 has 0 rewards for 1 actions"),
])
def test_malformed_csv(tmp_path, rows, message):
    p = tmp_path / "bad.csv"
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DemoFileError, match=message) as exc:
        demos.load(p)
    assert str(p) in str(exc.value)


def test_csv_layout(tmp_path):
    p = tmp_path / "d.csv"
    _example().save(str(p))
    lines = p.read_text(encoding="utf-8").splitlines()
    assert lines[0] == _CSV_HEAD
    assert lines[1:5] == ["0,0,0,1,0.5,", "0,1,1,0,-1.0,", "0,2,2,2,2.25,", "0,3,3,,,terminated"]
    assert lines[5] == "1,0,4,,," and lines[-1] == "2,2,0,,,truncated"


def test_not_utf8(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DemoFileError, match="not a UTF-8 text file"):
        demos.load(p)


# ----------------------------------------------------------- atomic writes
def test_atomic_write_leaves_no_temp_files(tmp_path):
    for ext in (".npz", ".jsonl", ".csv"):
        _example().save(str(tmp_path / f"d{ext}"))
    demos.save_arrays(tmp_path / "a.npz", "fmt", {"x": np.arange(4)})
    assert sorted(os.listdir(tmp_path)) == ["a.npz", "d.csv", "d.jsonl", "d.npz"]


def test_failed_write_keeps_the_existing_file(tmp_path):
    path = tmp_path / "d.jsonl"
    _example().save(str(path))
    before = path.read_bytes()

    def half_then_fail(f):
        f.write(b"partial content that must never be seen")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        demos.atomic_write(path, half_then_fail)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["d.jsonl"]
    _same(_example(), demos.load(path))
    # an interrupted save (KeyboardInterrupt) cleans up too
    def interrupted(f):
        f.write(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        demos.atomic_write(path, interrupted)
    assert os.listdir(tmp_path) == ["d.jsonl"] and path.read_bytes() == before


def test_atomic_write_creates_parent_folders(tmp_path):
    path = tmp_path / "a" / "b" / "d.npz"
    _example().save(str(path))
    _same(_example(), demos.load(path))


# ---------------------------------------------------------------- simulate
def test_simulate_is_reproducible_by_seed():
    env = irl.envs.make("gridworld-5x5")
    truth = irl.envs.true_reward(env)
    a = demos.simulate(env, hm.Boltzmann(2.0), truth, n=20, seed=7)
    b = demos.simulate(env, hm.Boltzmann(2.0), truth, n=20, seed=7)
    c = demos.simulate(env, hm.Boltzmann(2.0), truth, n=20, seed=8)
    _same(a, b)
    assert not np.array_equal(a.states, c.states)
    assert len(a) == 20 and np.all(a.lengths == env.horizon)
    # the recorded rewards are the true rewards of the visited states
    t, s = a.step_index
    np.testing.assert_allclose(a.rewards, truth[s])
    # a generator gives the same data as its seed
    d = demos.simulate(env, hm.Boltzmann(2.0), truth, n=20, seed=np.random.default_rng(7))
    _same(a, d)


def test_simulate_delegates_to_human_sample():
    calls = []
    sentinel = object()

    class Recorder:
        def sample(self, mdp, reward, n, rng=None, **kwargs):
            calls.append((mdp, reward, n, rng, kwargs))
            return sentinel

    env, reward = object(), object()
    out = demos.simulate(env, Recorder(), reward, 3, seed=11, horizon=9)
    assert out is sentinel
    assert calls == [(env, reward, 3, 11, {"horizon": 9})]
    # and a real model's simulate is exactly its own sample
    mdp = irl.envs.make("gridworld-5x5")
    model = hm.BoltzmannQ(4.0)
    _same(demos.simulate(mdp, model, mdp.true_reward, 5, seed=3), model.sample(mdp, mdp.true_reward, 5, rng=3))


def test_simulate_refuses_non_models():
    with pytest.raises(TypeError, match=r"human must have a sample\(mdp, reward, n, rng\) method: got str"):
        demos.simulate(irl.envs.make("gridworld-5x5"), "boltzmann", np.zeros(25), 3, seed=0)


def test_infinite_horizon_simulation_needs_a_horizon():
    env = irl.envs.make("aima-4x3", discount=0.9)
    with pytest.raises(irl.MDPValidationError, match="rollout needs a horizon for an infinite-horizon MDP"):
        demos.simulate(env, hm.Boltzmann(1.0), env.true_reward, 3, seed=0)
    d = demos.simulate(env, hm.Boltzmann(1.0), env.true_reward, 50, seed=0, horizon=4)
    # episodes stop at a terminal state (terminated) or are cut at the horizon (truncated)
    assert np.all(d.terminated | d.truncated) and not np.any(d.terminated & d.truncated)
    assert np.all(env.terminal[d.final_states[d.terminated]]) and np.all(d.lengths[d.truncated] == 4)
