"""Deliberation traces: the Mouselab loader against the statistics of SOURCE.md, files, validation."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

import demos
from demos import DeliberationTraces, DemoFileError, DemoValidationError

# the third-party copy beside the repository (../shared/extdata), found from a checkout or a worktree of it
EXTDATA = next((p / "shared" / "extdata" / "mouselab-planning-depth" for p in Path(__file__).resolve().parents
                if (p / "shared" / "extdata").is_dir()),
               Path(__file__).resolve().parents[1].parent / "shared" / "extdata" / "mouselab-planning-depth")
MAIN = EXTDATA / "methods_main" / "mouselab-mdp.csv.gz"
EXTENSION = EXTDATA / "methods_main_extension" / "mouselab-mdp.csv.gz"
PARENTS = [-1, 0, 1, 2, 2, 0, 5, 6, 6, 0, 9, 10, 10]


def _require(path: Path) -> Path:
    assert path.exists(), (f"the Mouselab data is missing: expected {path} (see "
                           f"../shared/extdata/mouselab-planning-depth/SOURCE.md); these tests read it in place")
    return path


@pytest.fixture(scope="module")
def main_traces() -> DeliberationTraces:
    return demos.load_mouselab(_require(MAIN))


# ------------------------------------------------------------------ the statistics of SOURCE.md
def test_counts_of_source_md(main_traces):
    t = main_traces
    assert len(t) == 4917 and len(t.participants()) == 125
    test, train = t.select(block="test"), t.select(block="training")
    assert len(test) == 2448 and len(train) == 2469
    per = {p: int((test.participant == p).sum()) for p in test.participants()}
    assert sorted(per.values()) == [8] + [20] * 122
    assert set(train.trial.tolist()) == set(range(20)) and set(test.trial.tolist()) == set(range(20, 40))
    ext = demos.load_mouselab(_require(EXTENSION))
    assert len(ext) == 360 and len(ext.participants()) == 9 and len(ext.select(block="test")) == 180


def test_test_block_statistics_of_source_md(main_traces):
    s = main_traces.select(block="test").summary()
    assert round(s["mean_clicks"], 2) == 3.90
    assert round(100 * s["no_click_share"], 1) == 4.2
    assert round(100 * s["first_click_leaf_share"], 1) == 72.1
    assert round(100 * s["first_click_depth_share"][1], 1) == 24.6
    assert round(100 * s["first_click_depth_share"][2], 1) == 3.3
    assert s["first_click_depth_share"][3] == s["first_click_leaf_share"]
    assert round(100 * s["leaf_click_share"], 1) == 70.7
    assert round(s["mean_score"], 1) == 37.1
    # no node is ever clicked twice (validation would have refused the file), and every score checked out
    t = main_traces
    assert all(len(set(t.trial_clicks(i).tolist())) == t.n_clicks[i] for i in range(len(t)))


def test_decisions_of_a_real_trial(main_traces):
    t = main_traces.select(block="test")
    i = int(np.flatnonzero(t.n_clicks == 3)[0])
    one = t.subset([i])
    beliefs, actions, trial_of = one.decisions()
    cl = t.trial_clicks(i)
    assert actions.tolist() == cl.tolist() + [0]
    assert trial_of.tolist() == [0, 0, 0, 0]
    assert np.isnan(beliefs[0, 1:]).all() and beliefs[0, 0] == 0
    assert beliefs[3, cl].tolist() == t.rewards[i, cl].tolist()
    assert np.isnan(np.delete(beliefs[3], np.r_[0, cl])).all()


# ------------------------------------------------------------------ malformed rows
def _row(**over):
    row = {"pid": "7", "block": "test", "trial_index": "20.0",
           "state_rewards": "['', -2, 4, -48, -24, -2, 4, 48, -24, 4, -4, 24, -48]",
           "queries": "{'click': {'state': {'target': ['7', '5'], 'time': [1, 2]}}}",
           "path": "['0', '0', '5', '6', '7']", "score": "48.0"}
    row.update(over)
    return row


def _write(tmp_path, rows, gz=True, name="export.csv.gz"):
    path = tmp_path / name
    fields = list(rows[0].keys())
    opener = gzip.open if gz else open
    with opener(path, "wt", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return path


def test_a_tiny_export_loads(tmp_path):
    t = demos.load_mouselab(_write(tmp_path, [_row(), _row(pid="8", queries="{'click': {'state': {'target': []}}}",
                                                      path="['0', '0', '1', '2', '3']", score="-46")],
                                   gz=False, name="plain.csv"))
    assert len(t) == 2 and t.participants() == ["7", "8"]
    assert t.trial_clicks(0).tolist() == [7, 5] and t.trial_path(0).tolist() == [0, 5, 6, 7]
    assert t.scores().tolist() == [48.0, -46.0]


@pytest.mark.parametrize("bad,message", [
    ({"state_rewards": "['', 1, 2]"},
     "row 2 \\(pid '7', trial_index '20.0'\\): state_rewards must list 13 node rewards"),
    ({"state_rewards": "['', -2, 4, 'x', -24, -2, 4, 48, -24, 4, -4, 24, -48]"},
     "row 2 .*state_rewards\\[3\\] must be a number"),
    ({"queries": "{'click': {'state': {'target': ['0']}}}"}, "row 2 .*click 0 is on the root"),
    ({"queries": "{'click': {'state': {'target': ['7', '7']}}}"},
     "row 2 .*node 7 is clicked twice \\(clicks 0 and 1\\)"),
    ({"queries": "{'click': {'state': {'target': ['13']}}}"},
     "row 2 .*click 0 is node 13, not a node of the 13-node tree"),
    ({"queries": "{'mouseover': {}}"}, "row 2 .*queries has no \\['click'\\]\\['state'\\]\\['target'\\]"),
    ({"queries": "{'click': __import__('os')}"}, "row 2 .*queries is not a Python literal"),
    ({"path": "['0', '0', '5', '2', '3']"}, "row 2 .*node 2 is not a child of node 5"),
    ({"path": "['0', '0', '5', '6']"}, "row 2 .*ends at node 6, which is not a leaf"),
    ({"score": "40"}, "row 2 .*score 40 does not equal the path reward minus 1 per click \\(48\\)"),
    ({"pid": "abc"}, "row 2 .*pid must be an integer: got 'abc'"),
    ({"trial_index": "2.5"}, "row 2 .*trial_index must be an integer"),
])
def test_malformed_rows_are_named(tmp_path, bad, message):
    path = _write(tmp_path, [_row(), _row(**bad)])
    with pytest.raises(DemoFileError, match=message):
        demos.load_mouselab(path)


def test_loader_file_errors(tmp_path):
    with pytest.raises(DemoFileError, match="no such file"):
        demos.load_mouselab(tmp_path / "missing.csv.gz")
    rows = [{k: v for k, v in _row().items() if k != "queries"}]
    with pytest.raises(DemoFileError, match="missing columns \\['queries'\\]"):
        demos.load_mouselab(_write(tmp_path, rows))
    with pytest.raises(DemoFileError, match="no trials in blocks \\['nope'\\]; the file has blocks \\['test'\\]"):
        demos.load_mouselab(_write(tmp_path, [_row()]), blocks=["nope"])
    # the score check can be switched off, and the tree read from a structure file
    t = demos.load_mouselab(_write(tmp_path, [_row(score="1")]), check_scores=False,
                            structure=_require(EXTDATA / "environment" / "structure_312_2_4_24.json"))
    assert t.parents.tolist() == PARENTS


# ------------------------------------------------------------------ the data type
def tiny(**over):
    kw = dict(parents=[-1, 0, 1, 1, 0, 4, 4], rewards=[[0, 1, 5, -5, -1, 3, -3], [0, 2, -6, 6, -2, 4, -4]],
              clicks=[[2, 5], []], paths=[[0, 1, 2], [0, 4, 6]], participant=["a", "b"], block=["test", "test"])
    kw.update(over)
    return DeliberationTraces.from_trials(**kw)


def test_decisions_and_summary_by_hand():
    t = tiny()
    b, a, tr = t.decisions()
    assert a.tolist() == [2, 5, 0, 0] and tr.tolist() == [0, 0, 0, 1]
    assert np.isnan(b[0, 1:]).all()
    assert b[1, 2] == 5 and np.isnan(b[1, 5])
    assert b[2, 2] == 5 and b[2, 5] == 3
    assert t.n_observations == 4
    s = t.summary()
    assert s["mean_clicks"] == 1.0 and s["no_click_share"] == 0.5
    assert s["first_click_leaf_share"] == 1.0 and s["leaf_click_share"] == 1.0
    assert s["first_click_depth_share"] == {1: 0.0, 2: 1.0}
    assert t.scores().tolist() == [(1 + 5) - 2.0, (-2 - 4) - 0.0]
    assert s["mean_score"] == pytest.approx(np.mean([4.0, -6.0]))


@pytest.mark.parametrize("over,message", [
    ({"clicks": [[0], []]}, "trial 0: click 0 is on the root"),
    ({"clicks": [[2, 2], []]}, "trial 0: node 2 is clicked twice \\(clicks 0 and 1\\)"),
    ({"clicks": [[9], []]}, "trial 0: click 0 is node 9, not a node of the 7-node tree"),
    ({"rewards": [[0, 1, np.nan, -5, -1, 3, -3], [0, 2, -6, 6, -2, 4, -4]]},
     "trial 0: node 2 is clicked but its reward is not recorded"),
    ({"paths": [[0, 1, 5], [0, 4, 6]]}, "trial 0: path \\[0, 1, 5\\] is not a root-to-leaf path of the tree: node 5 is "
                                        "not a child of node 1"),
    ({"paths": [[0, 4], [0, 4, 6]]}, "trial 0: path \\[0, 4\\] ends at node 4, which is not a leaf"),
    ({"paths": [[1, 2], [0, 4, 6]]}, "trial 0: the path must start at the root"),
    ({"rewards": [[0, 1, 5, -5, -1, 3, -3]]}, "n_clicks must be 1 integers"),
    ({"parents": [-1, 0, 3, 1, 0, 4, 4]}, "parents\\[2\\] must be a node id in 0..1"),
    ({"participant": ["a"]}, "participant must have one entry per trial \\(2\\)"),
    ({"rewards": [[0, 1, 5, -5, -1, 3, np.inf], [0, 2, -6, 6, -2, 4, -4]]},
     "trial 0: the reward of node 6 is infinite"),
])
def test_validation_messages(over, message):
    with pytest.raises(DemoValidationError, match=message):
        tiny(**over)


def test_select_subset_concat():
    t = tiny()
    assert len(t.select(participant="a")) == 1 and t.select(block="test").participants() == ["a", "b"]
    with pytest.raises(DemoValidationError, match="no trials with participant in \\['z'\\]; known: a, b"):
        t.select(participant="z")
    both = DeliberationTraces.concat([t, t.subset([1])])
    assert len(both) == 3 and both.trial_clicks(2).tolist() == [] and both.trial_clicks(0).tolist() == [2, 5]
    with pytest.raises(DemoValidationError, match="another tree"):
        DeliberationTraces.concat([t, DeliberationTraces.from_trials([-1, 0, 0], [[0, 1, 2]], [[]], [[0, 1]])])
    with pytest.raises(DemoValidationError, match="no trials"):
        t.subset(np.zeros(2, bool))


@pytest.mark.parametrize("suffix", [".npz", ".jsonl", ".csv"])
def test_file_round_trips(tmp_path, suffix):
    t = tiny(rewards=[[0, 1, 5, -5, -1, 3, np.nan], [0, 2, -6, 6, -2, 4, -4.5]], fee=0.5)
    path = tmp_path / f"traces{suffix}"
    t.save(path)
    back = demos.load_traces(path)
    for name in ("parents", "clicks", "n_clicks", "paths", "participant", "block", "trial"):
        assert np.array_equal(getattr(back, name), getattr(t, name)), name
    assert np.array_equal(back.rewards, t.rewards, equal_nan=True) and back.fee == 0.5
    assert np.array_equal(demos.load(path).clicks, t.clicks)  # demos.load recognises the traces in any format


def test_plain_formats_written_by_hand(tmp_path):
    (tmp_path / "mine.csv").write_text(
        "participant,block,trial,rewards,clicks,path\n"
        "p1,test,0,0 1 5 -5 -1 3 NA,2 5,0 1 2\n"
        "p1,test,1,0 2 -6 6 -2 4 -4,,0 4 6\n", encoding="utf-8")
    t = demos.load_traces(tmp_path / "mine.csv", parents=[-1, 0, 1, 1, 0, 4, 4])
    assert t.n_clicks.tolist() == [2, 0] and np.isnan(t.rewards[0, 6]) and t.fee == 1.0
    lines = [json.dumps({"format": "pluggable-irl/deliberation-traces", "version": 1, "parents": [-1, 0, 0],
                         "fee": 2}),
             json.dumps({"participant": "x", "rewards": [0, 1, None], "clicks": [1], "path": [0, 1]})]
    (tmp_path / "mine.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    j = demos.load_traces(tmp_path / "mine.jsonl")
    assert j.fee == 2.0 and j.scores().tolist() == [1 - 2.0]
    (tmp_path / "bad.jsonl").write_text(lines[0] + "\n" + '{"rewards": [0, 1, 2], "clicks": [0], "path": [0, 1]}\n',
                                        encoding="utf-8")
    with pytest.raises(DemoFileError, match="bad.jsonl, line 2: click 0 is on the root"):
        demos.load_traces(tmp_path / "bad.jsonl")
    (tmp_path / "short.csv").write_text("participant,rewards,clicks,path\np,0 1,,0 1\n", encoding="utf-8")
    with pytest.raises(DemoFileError, match="short.csv, row 1: rewards has 2 entries but the tree has 13 nodes"):
        demos.load_traces(tmp_path / "short.csv")
    (tmp_path / "nohead.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(DemoFileError, match="the header must name the columns \\['clicks', 'path', 'rewards'\\]"):
        demos.load_traces(tmp_path / "nohead.csv")
    (tmp_path / "x.txt").write_text("", encoding="utf-8")
    with pytest.raises(DemoFileError, match="unknown extension '.txt'"):
        demos.load_traces(tmp_path / "x.txt")


def test_scoring_needs_a_meta_level_model():
    import human_models as hm
    import irl

    env = irl.envs.make("mouselab-312")
    t = tiny()
    with pytest.raises(DemoValidationError, match="recorded on a 7-node tree but the environment has 13"):
        t.log_likelihood_under(hm.RandomClicks(), env, env.true_reward)
    real = DeliberationTraces.from_trials(PARENTS, [[0] + [1.0] * 12], [[3]], [[0, 1, 2, 3]])
    with pytest.raises(TypeError, match="Boltzmann has no meta-level policy"):
        real.log_likelihood_under(hm.Boltzmann(1.0), env, env.true_reward)
    ll = real.log_likelihood_under(hm.RandomClicks(), env, env.true_reward)
    assert float(ll) == pytest.approx(-np.log(13) - np.log(12))


# ------------------------------------------------------------------ the packaged dataset
def test_packaged_dataset_loads_from_the_package_alone():
    from importlib import resources

    assert demos.datasets.names() == ["mouselab-planning-depth"]
    res = demos.datasets.path("mouselab-planning-depth")
    root = resources.files("demos")
    assert str(res).startswith(str(root)) and res.is_file()  # package data, no path outside the package
    for extra in ("LICENSE", "README.md"):  # credit and licence ship beside the data
        text = demos.datasets.path("mouselab-planning-depth", extra).read_text(encoding="utf-8")
        assert "Max-Planck" in text or "MIT" in text
    t = demos.datasets.load("mouselab-planning-depth")
    assert len(t) == 4917 and len(t.participants()) == 125  # the main experiment, both blocks
    test = demos.datasets.load("mouselab-planning-depth", blocks=["test"])
    assert len(test) == 2448 and round(test.summary()["mean_clicks"], 2) == 3.90
    with pytest.raises(KeyError, match="unknown dataset 'nope'; known: mouselab-planning-depth"):
        demos.datasets.load("nope")
    with pytest.raises(DemoFileError, match="no trials in blocks \\['practice'\\]"):
        demos.datasets.load("mouselab-planning-depth", blocks=["practice"])
