"""Per-step tables (CSV, JSON Lines, pandas) and the text layouts of every evidence type; bad data files."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

import demos
from demos import DemoFileError, DemoValidationError


def _example() -> demos.Trajectories:
    return demos.Trajectories.from_lists([[0, 1, 2, 3], [4], [5, 6]], [[1, 0, 2], [], [3]],
                                         rewards=[[0.5, -1.0, 2.25], [], [1e-3]],
                                         terminated=[True, False, False], truncated=[False, False, True])


def _same(a: demos.Trajectories, b: demos.Trajectories) -> None:
    for k in ("states", "actions", "lengths", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)
    assert (a.rewards is None) == (b.rewards is None)
    if a.rewards is not None:
        np.testing.assert_array_equal(a.rewards, b.rewards)


def _write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


# ------------------------------------------------------------ a gymnasium loop's CSV
def test_gymnasium_loop_csv_without_final_rows(tmp_path):
    """One row per env.step: the final state is the last row's next_state; flags on the last step."""
    p = _write(tmp_path, "log.csv", [
        "episode,step,state,action,reward,next_state,terminated,truncated",
        "0,0,0,1,0.0,4,False,False", "0,1,4,2,0.0,5,False,False", "0,2,5,1,1.0,9,True,False",
        "1,0,0,3,0.0,0,False,True"])
    d = demos.load(p)
    assert d.states.tolist() == [0, 4, 5, 9, 0, 0] and d.actions.tolist() == [1, 2, 1, 3]
    assert d.lengths.tolist() == [3, 1] and d.rewards.tolist() == [0.0, 0.0, 1.0, 0.0]
    assert d.terminated.tolist() == [True, False] and d.truncated.tolist() == [False, True]


def test_rows_out_of_order_and_string_episode_ids(tmp_path):
    p = _write(tmp_path, "log.csv", ["episode,step,state,action,next_state",
                                     "b,1,2,0,3", "a,0,7,1,8", "b,0,1,1,2"])
    d = demos.load(p)
    # episodes in order of first appearance, steps sorted within each
    assert d.states.tolist() == [1, 2, 3, 7, 8] and d.actions.tolist() == [1, 0, 1]


def test_column_names_configurable(tmp_path):
    p = _write(tmp_path, "log.csv", ["ep,t,obs,act,r,obs2,done", "0,0,3,1,0.5,4,1"])
    cols = {"episode": "ep", "step": "t", "state": "obs", "action": "act", "reward": "r",
            "next_state": "obs2", "terminated": "done"}
    for given in (cols, ",".join(f"{k}={v}" for k, v in cols.items())):
        d = demos.load(p, columns=given)
        assert d.states.tolist() == [3, 4] and d.rewards.tolist() == [0.5] and d.terminated.tolist() == [True]
    with pytest.raises(DemoFileError, match=r"header must contain .* missing \['episode', 'step', 'state', 'action'\]; found \['act'"):
        demos.load(p)
    with pytest.raises(DemoValidationError, match=r"unknown column name\(s\) \['obs'\]; known: \['episode'"):
        demos.load(p, columns="obs=state")


def test_per_step_jsonl(tmp_path):
    rows = [{"episode": 0, "step": 0, "state": 0, "action": 1, "reward": 1, "next_state": 2, "terminated": True},
            {"episode": 1, "step": 0, "state": 5, "action": None}]
    p = _write(tmp_path, "s.jsonl", [json.dumps(r) for r in rows])
    d = demos.load(p)
    assert d.states.tolist() == [0, 2, 5] and d.lengths.tolist() == [1, 0] and d.terminated.tolist() == [True, False]


@pytest.mark.parametrize("ext", ["csv", "jsonl", "npz"])
def test_round_trip(tmp_path, ext):
    d = _example()
    d.save(str(tmp_path / f"d.{ext}"))
    _same(demos.load(tmp_path / f"d.{ext}"), d)


# ------------------------------------------------------------------ pandas
def test_pandas_round_trip_keeps_ids_integer(tmp_path):
    pd = pytest.importorskip("pandas")
    d = _example()
    df = d.to_dataframe()
    assert list(df.columns) == ["episode", "step", "state", "action", "reward", "end"]
    assert str(df["action"].dtype) == "Int64" and df["action"].isna().sum() == 3
    _same(demos.Trajectories.from_dataframe(df), d)
    # written by pandas and read back: the action column becomes float (1.0) and empty cells NaN
    p = tmp_path / "d.csv"
    d.save(str(p))
    pd.read_csv(p).to_csv(tmp_path / "again.csv", index=False)
    assert "1.0" in (tmp_path / "again.csv").read_text()
    _same(demos.load(tmp_path / "again.csv"), d)
    _same(demos.Trajectories.from_dataframe(pd.read_csv(p)), d)


def test_pandas_fractional_id_and_renamed_columns():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"episode": [0, 0], "step": [0, 1], "obs": [3.0, 1.5], "action": [1, 0],
                       "next_state": [1, 2]})
    with pytest.raises(DemoValidationError, match=r"row 1: obs must be an integer id: got 1.5"):
        demos.Trajectories.from_dataframe(df, columns={"state": "obs"})
    df["obs"] = [3.0, 1.0]
    assert demos.Trajectories.from_dataframe(df, columns={"state": "obs"}).states.tolist() == [3, 1, 2]
    df.loc[0, "next_state"] = 5
    with pytest.raises(DemoValidationError, match=r"row 0: episode 0: next_state 5 differs from the next row's obs 1"):
        demos.Trajectories.from_dataframe(df, columns={"state": "obs"})


# ------------------------------------------------- the other evidence types as text
@pytest.mark.parametrize("ext", ["csv", "jsonl"])
def test_state_only_and_transitions_text_round_trip(tmp_path, ext):
    so = demos.StateOnly.from_states([[0, 1, 2], [3]], terminated=[True, False])
    so.save(tmp_path / f"so.{ext}")
    back = demos.load(tmp_path / f"so.{ext}")
    assert isinstance(back, demos.StateOnly)
    _same(back.trajectories, so.trajectories)
    for nxt in ([1, 2, 0], None):
        tr = demos.Transitions(states=[0, 1, 2], actions=[1, 0, 3], next_states=nxt)
        tr.save(tmp_path / f"tr.{ext}")
        back = demos.load(tmp_path / f"tr.{ext}")
        assert isinstance(back, demos.Transitions)
        assert back.states.tolist() == [0, 1, 2] and back.actions.tolist() == [1, 0, 3]
        assert (back.next_states is None) == (nxt is None)
        if nxt is not None:
            assert back.next_states.tolist() == nxt


def test_text_layouts_are_plain_tables(tmp_path):
    demos.Transitions(states=[0, 1], actions=[1, 0], next_states=[1, 2]).save(tmp_path / "t.csv")
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert json.loads(lines[0][1:]) == {"format": "pluggable-irl/transitions", "version": 1}
    assert lines[1:] == ["state,action,next_state", "0,1,1", "1,0,2"]
    c = demos.Comparisons.from_pairs(demos.Trajectories.from_lists([[0, 1]], [[2]]),
                                     demos.Trajectories.from_lists([[0, 3]], [[1]]), prefer_second=[True])
    c.save(tmp_path / "c.csv")
    lines = (tmp_path / "c.csv").read_text().splitlines()
    assert lines[1:] == ["choice,option,chosen,step,state,action,end", "0,0,1,0,0,2,", "0,0,1,1,1,,",
                         "0,1,1,0,0,1,", "0,1,1,1,3,,"]


# ------------------------------------------------------------------- bad files
def test_npz_without_its_arrays(tmp_path):
    demos.save_arrays(tmp_path / "so.npz", "pluggable-irl/state-only", {"lengths": np.array([1])})
    with pytest.raises(DemoFileError, match=r"so.npz: state-only file lacks arrays \['states'\]"):
        demos.load(tmp_path / "so.npz")
    demos.save_arrays(tmp_path / "tr.npz", "pluggable-irl/transitions", {"states": np.array([1])})
    with pytest.raises(DemoFileError, match=r"tr.npz: transitions file lacks arrays \['actions'\]"):
        demos.load(tmp_path / "tr.npz")


@pytest.mark.parametrize("version, message", [
    (np.array([1, 2]), r"'version' must be a single integer: got int64 array of shape \(2,\)"),
    (np.array("one"), r"'version' must be a single integer: got <U3 array of shape \(\) \('one'\)"),
])
def test_npz_bad_version(tmp_path, version, message):
    p = tmp_path / "v.npz"
    np.savez(p, states=np.array([0, 1]), actions=np.array([0]), lengths=np.array([1]),
             format=np.array("pluggable-irl/trajectories"), version=version)
    with pytest.raises(DemoFileError, match=str(p).replace(".", r"\.") + ": " + message):
        demos.load(p)


def test_npz_meta_not_json(tmp_path):
    p = tmp_path / "m.npz"
    np.savez(p, states=np.array([0, 1]), actions=np.array([0]), lengths=np.array([1]),
             format=np.array("pluggable-irl/trajectories"), version=np.array(1), meta=np.array("{not json"))
    with pytest.raises(DemoFileError, match=r"m.npz: 'meta' must be a JSON object stored as one string"):
        demos.load(p)


@pytest.mark.parametrize("row, message", [
    ({"states": [0, 1], "actions": [0], "rewards": ["high"]}, r"line 2: 'rewards' must be a list of finite numbers"),
    ({"states": [0, 1], "actions": [0], "rewards": [float("nan")]}, r"'rewards' must be a list of finite numbers"),
    ({"states": [0, 1], "actions": [0], "terminated": "no"}, r"line 2: 'terminated' must be true or false: got 'no'"),
])
def test_jsonl_bad_values(tmp_path, row, message):
    p = _write(tmp_path, "d.jsonl", [json.dumps({"format": "pluggable-irl/trajectories", "version": 1}),
                                     json.dumps(row)])
    with pytest.raises(DemoFileError, match=message):
        demos.load(p)


def test_newer_text_versions_are_refused(tmp_path):
    p = _write(tmp_path, "d.jsonl", [json.dumps({"format": "pluggable-irl/trajectories", "version": 99}),
                                     json.dumps({"states": [0], "actions": []})])
    with pytest.raises(DemoFileError, match="format version 99 is newer than this library reads"):
        demos.load(p)
    p = _write(tmp_path, "t.csv", ['# {"format": "pluggable-irl/transitions", "version": 99}', "state,action", "0,1"])
    with pytest.raises(DemoFileError, match="t.csv: format version 99 is newer"):
        demos.load(p)
    p = _write(tmp_path, "old.jsonl", [json.dumps({"format": "pluggable-irl/trajectories", "version": -1}),
                                       json.dumps({"states": [0], "actions": []})])
    with pytest.raises(DemoFileError, match="old.jsonl: format version must be a positive integer"):
        demos.load(p)


def test_deep_json_and_huge_csv_fields(tmp_path):
    p = tmp_path / "deep.jsonl"
    p.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(DemoFileError, match=r"deep.jsonl, line 1: JSON nested too deeply to read"):
        demos.load(p)
    p = _write(tmp_path, "big.csv", ["episode,step,state,action", "0,0," + "1" * 200_000 + ",", ])
    with pytest.raises(DemoFileError, match=r"big.csv, line 2: not valid CSV \(field larger than field limit"):
        demos.load(p)
    p = _write(tmp_path, "delib.csv", ["# parents=-1 0; fee=1", "rewards,clicks,path", "0 " + "1" * 200_000 + ",,0 1"])
    with pytest.raises(DemoFileError, match=r"delib.csv: not valid CSV \(field larger than field limit"):
        demos.load(p)
    p = _write(tmp_path, "fee.csv", ["# parents=-1 0; fee=abc", "rewards,clicks,path", "NA 1,,0 1"])
    with pytest.raises(DemoFileError, match=r"fee.csv: the '# fee=' comment must give a number: got 'abc'"):
        demos.load(p)


@pytest.mark.parametrize("lines, message", [
    (["episode,step,state,action,reward", "0,0,0,1,inf", "0,1,1,,"], r"line 2: reward must be finite: got inf"),
    (["episode,step,state,action,reward", "0,0,0,1,high", "0,1,1,,"], r"line 2: reward must be a number: got 'high'"),
    (["episode,step,state,action", "0,0,s1,1", "0,1,1,"], r"line 2: state must be an integer id: got 's1'"),
    (["episode,step,state,action", "0,0,0,1.5", "0,1,1,"], r"line 2: action must be an integer id: got 1.5"),
    (["episode,step,state,action,terminated", "0,0,0,1,no", "0,1,1,0,maybe", "0,2,1,,"],
     r"line 3: terminated must be true or false \(or 1/0\): got 'maybe'"),
    (["episode,step,state,action,terminated", "0,0,0,1,1", "0,1,1,0,0", "0,2,1,,"],
     r"line 2: episode 0 is terminated before its last step"),
    (["episode,step,state,action", "0,0,0,1", "0,0,1,"], r"line 3: episode 0 repeats step 0"),
    (["episode,step,state,action,next_state", "0,0,0,1,", "0,1,1,2,"],
     r"episode 0 has no final row \(a state with an empty action\) and no next_state on its last step"),
    (["episode,step,state,action,reward", "0,0,0,1,1", "0,1,1,,2"],
     r"line 3: a reward on a final row \(one without an action\) belongs to no step"),
])
def test_malformed_per_step_csv(tmp_path, lines, message):
    p = _write(tmp_path, "bad.csv", lines)
    with pytest.raises(DemoFileError, match=message) as exc:
        demos.load(p)
    assert str(p) in str(exc.value)


@pytest.mark.parametrize("name", ["d.csv", "d.jsonl", "d.npz"])
def test_unreadable_file_is_a_demo_file_error(tmp_path, monkeypatch, name):
    import builtins

    p = tmp_path / name
    _example().save(str(p))
    real_open = builtins.open

    def no_permission(file, *args, **kwargs):  # what a file without read permission gives (root reads anything)
        if str(file) == str(p):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_permission)
    with pytest.raises(DemoFileError, match=f"{name}: .*Permission denied"):
        demos.load(p)


def test_nonfinite_and_malformed_trajectories():
    with pytest.raises(DemoValidationError, match=r"rewards must be finite: got nan at step 1 of trajectory 0"):
        demos.Trajectories.from_lists([[0, 1, 2]], [[0, 1]], rewards=[[0.0, float("nan")]])
    with pytest.raises(DemoValidationError, match=r"states of trajectory 0 must be integer ids: got \['s0', 's1'\]"):
        demos.Trajectories.from_lists([["s0", "s1"]], [[0]])
    with pytest.raises(DemoValidationError, match=r"states must be a flat 1-D sequence of integer ids: got a ragged"):
        demos.Transitions(states=[[0, 1], [2]], actions=[0, 1])
    with pytest.raises(DemoValidationError, match=r"states must hold integer ids: got dtype <U2 \(e.g. np.str_\('s0'\)\)"
                       r"|states must hold integer ids: got dtype <U2 \(e.g. 's0'\)"):
        demos.Transitions(states=["s0", "s1"], actions=[0, 1])


def test_stale_temporary_files_are_removed(tmp_path):
    target = tmp_path / "d.npz"
    stale, fresh = tmp_path / ".d.npz.abc123.tmp", tmp_path / ".d.npz.def456.tmp"
    stale.write_bytes(b"left by a killed writer")
    fresh.write_bytes(b"another writer, still running")
    old = time.time() - 2 * demos.io.STALE_TMP_SECONDS
    os.utime(stale, (old, old))
    _example().save(str(target))
    assert not stale.exists() and fresh.exists() and target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".d.npz.def456.tmp", "d.npz"]


def test_large_data_benchmark_runs(tmp_path):
    """benchmarks/bench_data.py runs and reports every case (its times are not asserted)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_data.py"
    out = subprocess.run([sys.executable, str(script), "--episodes", "300"], capture_output=True, text=True,
                         check=True, timeout=300).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    cases = {r["case"] for r in rows}
    assert {"iterate", "subset", "save_jsonl", "load_jsonl", "save_csv", "load_csv"} <= cases
    assert all(r["episodes"] == 300 and r["seconds"] >= 0 for r in rows)
