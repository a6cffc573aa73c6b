"""The `irl` command with your own problem: MDP files, --horizon/--discount, --estimate-dynamics,
--json everywhere, and the command-line items of the bad-input list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import demos
import human_models as hm
import irl
from irl.cli import app

from test_cli import assert_clean_error, invoke, ok, runner

ENV = "gridworld-5x5"


def clean_error(res, *fragments: str, code: int | None = None) -> str:
    """One line ``Error: ...`` with the fragments, and the exit code ``code`` if given."""
    msg = assert_clean_error(res, *fragments)
    assert code is None or res.exit_code == code, (res.exit_code, msg)
    return msg


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("byo")
    env = irl.envs.make(ENV)
    paths = {"demos": root / "demos.npz", "mdp": root / "grid.npz", "root": root}
    demos.save(demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=60, seed=0), paths["demos"])
    env.save(paths["mdp"])
    return paths


def last_json(res) -> dict:
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_an_mdp_file_works_wherever_env_is_taken(files: dict[str, Path], tmp_path: Path) -> None:
    mdp = files["mdp"]
    a = last_json(ok("fit", files["demos"], "--env", mdp, "--out", tmp_path / "a.npz", "--json", "-q"))
    b = last_json(ok("fit", files["demos"], "--env", ENV, "--out", tmp_path / "b.npz", "--json", "-q"))
    assert a["parameters"] == pytest.approx(b["parameters"], abs=1e-9)
    ok("simulate", "--env", mdp, "--n", "5", "--out", tmp_path / "d.npz")
    ok("plan", tmp_path / "a.npz", "--env", mdp, "--out", tmp_path / "pol.npz")
    res = last_json(ok("evaluate", tmp_path / "pol.npz", "--env", mdp, "--json"))
    assert res["expected_value_difference"] < 0.05 * abs(res["optimal_return"])
    ok("compare", files["demos"], "--env", mdp, "--human", "boltzmann:beta=2", "--human", "boltzmann:beta=0.5",
       "--json")
    clean_error(invoke("fit", files["demos"], "--env", tmp_path / "nope.npz"), "nope.npz: no such file")
    clean_error(invoke("fit", files["demos"], "--env", "atlantis"), "unknown environment 'atlantis'; known:",
                "MDP file", code=2)


def test_horizon_and_discount_replace_the_environments_own(files: dict[str, Path], tmp_path: Path) -> None:
    res = last_json(ok("fit", files["demos"], "--env", ENV, "--discount", "0.9", "--horizon", "30",
                       "--out", tmp_path / "r.npz", "--json", "-q"))
    est = irl.RewardEstimate.load(str(tmp_path / "r.npz"))
    want = irl.MaxEnt().fit(irl.envs.make(ENV).replace(discount=0.9, horizon=30), demos.load(files["demos"]))
    np.testing.assert_allclose(list(res["parameters"].values()), want.theta, atol=1e-6)
    np.testing.assert_allclose(est.theta, want.theta, atol=1e-6)
    out = ok("plan", tmp_path / "r.npz", "--env", ENV, "--horizon", "30", "--out", tmp_path / "p.npz", "--json")
    assert last_json(out)["policy_shape"] == [30, 25, 5]
    res = invoke("fit", files["demos"], "--env", ENV, "--discount", "1.5")  # typer's own range check
    assert res.exit_code == 2 and "Invalid value for '--discount'" in res.output
    longest = int(demos.load(files["demos"]).lengths.max())
    res = invoke("fit", files["demos"], "--env", ENV, "--horizon", "2", "--out", tmp_path / "r2.npz")
    clean_error(res, "more than the MDP's horizon 2; pass a --horizon at least as long as the longest episode")
    assert longest > 2


def test_ill_posed_environment_fails_fast_and_a_fix_on_the_command_line_works(tmp_path: Path) -> None:
    data = tmp_path / "cw.npz"
    demos.Trajectories.from_lists([[36, 24, 25, 26]], [[0, 1, 1]]).save(str(data))
    msg = clean_error(invoke("fit", data, "--env", "cliffwalking", "--out", tmp_path / "r.npz", "-q"),
                      "ill-posed", "--horizon H", "--discount 0.95", code=1)
    assert "terminal" in msg
    ok("fit", data, "--env", "cliffwalking", "--horizon", "20", "--out", tmp_path / "r.npz", "-q")
    # the example of `irl simulate --help` works with the default human
    ok("simulate", "--env", "aima-4x3", "--horizon", "50", "--n", "10", "--out", tmp_path / "aima.npz")
    assert "irl simulate --env aima-4x3 --horizon 50" in invoke("simulate", "--help").output


def test_estimate_dynamics_from_logs(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.npz"
    res = ok("fit", files["demos"], "--estimate-dynamics", "--n-states", "25", "--n-actions", "5", "--horizon", "12",
             "--reward-model", "tabular", "--out", out, "--json", "-q")
    assert "Estimated dynamics from 720 logged transitions" in res.stderr
    mdp = irl.TabularMDP.load(tmp_path / "r.mdp.npz")
    assert mdp.visit_counts.sum() == 720 and mdp.horizon == 12
    ok("plan", out, "--env", tmp_path / "r.mdp.npz", "--out", tmp_path / "p.npz")
    # with --env, the environment gives the features and the start; only the transitions are estimated
    res = last_json(ok("fit", files["demos"], "--env", ENV, "--estimate-dynamics", "--out", tmp_path / "e.npz",
                       "--json", "-q"))
    assert list(res["parameters"]) == ["goal", "plain", "mud", "water"]
    assert max(res["parameters"], key=res["parameters"].get) == "goal"
    clean_error(invoke("fit", files["demos"], "--env", ENV, "--n-states", "25"), "only apply with --estimate-dynamics",
                code=2)
    clean_error(invoke("fit", files["demos"], "--estimate-dynamics", "--unvisited", "copy", "--horizon", "5"),
                "unknown --unvisited rule 'copy'; known: self-loop, uniform, error", code=2)
    clean_error(invoke("fit", files["demos"]), "--env is required", code=2)
    # an estimated MDP without a horizon or discount is ill-posed (self-loops on unvisited pairs): said at once
    clean_error(invoke("fit", files["demos"], "--estimate-dynamics", "--out", tmp_path / "x.npz", "-q"),
                "ill-posed", "--horizon H")


def test_fit_out_is_optional_and_printed(files: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = ok("fit", files["demos"], "--env", ENV, "-q")
    assert "Saved to reward.npz" in res.output and (tmp_path / "reward.npz").is_file()


def test_parameter_names_are_printed_literally(files: dict[str, Path], tmp_path: Path) -> None:
    res = ok("fit", files["demos"], "--env", ENV, "--reward-model", "tabular", "--out", tmp_path / "r.npz", "-q")
    assert "r[s=0]" in res.output and "r[s=7]" in res.output


@pytest.mark.parametrize("command", ["fit", "simulate", "plan", "evaluate", "compare", "envs", "human-models",
                                     "solvers"])
def test_every_result_command_has_json_and_help_has_no_type_noise(command: str) -> None:
    out = invoke(command, "--help").output
    assert "--json" in out and "<bool>" not in out


def test_listings_as_json() -> None:
    rows = [json.loads(line) for line in ok("envs", "--json").stdout.splitlines()]
    assert {"name": "aima-4x3", "summary": dict(irl.envs.describe())["aima-4x3"]} in rows
    assert {r["name"] for r in map(json.loads, ok("solvers", "--json").stdout.splitlines())} >= {"maxent", "bayes"}
    assert "boltzmann" in {json.loads(x)["name"] for x in ok("human-models", "--json").stdout.splitlines()}


def test_simulate_json(tmp_path: Path) -> None:
    rec = last_json(ok("simulate", "--env", ENV, "--n", "7", "--out", tmp_path / "d.npz", "--json"))
    assert rec["episodes"] == 7 and rec["env"] == ENV and rec["out"] == str(tmp_path / "d.npz")


# ------------------------------------------------------------- bad inputs (CLI)
def test_plan_on_a_reward_file_without_reward(tmp_path: Path) -> None:
    path = tmp_path / "r.npz"
    demos.save_arrays(path, "pluggable-irl/reward-estimate", {"theta": np.zeros(4)}, meta={"log_likelihood": 0.0})
    clean_error(invoke("plan", path, "--env", ENV, "--out", tmp_path / "p.npz"),
                f"{path}: reward-estimate file lacks the array 'reward'", code=1)


@pytest.mark.parametrize("value", ["abc", "100000", "0"])
def test_irl_torch_threads_is_checked(value: str) -> None:
    env = dict(os.environ, IRL_TORCH_THREADS=value)
    res = subprocess.run([sys.executable, "-c", "from irl.cli import main; main()", "envs"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith("Error: the environment variable IRL_TORCH_THREADS must be an integer from 1 to")
    assert repr(value) in res.stderr


def test_negative_seed_names_the_option(files: dict[str, Path], tmp_path: Path) -> None:
    for args in (("simulate", "--env", ENV, "--out", tmp_path / "d.npz"),
                 ("fit", files["demos"], "--env", ENV, "--solver", "bayes"),
                 ("demo",)):
        res = invoke(*args, "--seed", "-1")
        assert res.exit_code == 2 and "'--seed'" in res.output, res.output


def test_out_is_checked_before_the_work(files: dict[str, Path], tmp_path: Path) -> None:
    # 100000 draws or episodes would take minutes: each error comes before any of that work
    res = invoke("fit", files["demos"], "--env", ENV, "--solver", "bayes", "--samples", "100000", "--out", tmp_path)
    clean_error(res, f"--out {tmp_path}: is a directory", code=2)
    afile = tmp_path / "plain.txt"
    afile.write_text("x")
    res = invoke("simulate", "--env", ENV, "--n", "100000", "--out", afile / "sub" / "d.npz")
    clean_error(res, f"--out {afile / 'sub' / 'd.npz'}: cannot write there (folder {afile} is not writable)", code=2)
    blocked = tmp_path / "ro"
    blocked.mkdir()
    blocked.chmod(0o500)
    try:
        enforced = not os.access(blocked, os.W_OK)  # root may write anywhere: then only the cases above apply
        runs = (("fit", files["demos"], "--env", ENV, "--solver", "bayes", "--samples", "100000"),
                ("simulate", "--env", ENV, "--n", "100000")) if enforced else ()
        for args in runs:
            clean_error(invoke(*args, "--out", blocked / "x.npz"), f"--out {blocked / 'x.npz'}: cannot write there",
                        code=2)
    finally:
        blocked.chmod(0o700)


def test_out_extension_must_match_what_is_written(files: dict[str, Path], tmp_path: Path) -> None:
    # a reward, posterior or policy is an .npz and a network a torch file: `--out x.txt` would hide that
    res = invoke("fit", files["demos"], "--env", ENV, "--solver", "bayes", "--samples", "100000",
                 "--out", tmp_path / "reward.txt")
    clean_error(res, f"--out {tmp_path / 'reward.txt'}: this file is written as .npz; got extension '.txt'", code=2)
    assert not (tmp_path / "reward.txt").exists()
    res = invoke("plan", files["demos"], "--env", ENV, "--out", tmp_path / "policy")
    clean_error(res, f"--out {tmp_path / 'policy'}: this file is written as .npz; got extension '(none)'", code=2)
    res = invoke("train", tmp_path / "manifest.json", "--reward-model", "mlp:hidden=4", "--out", tmp_path / "net.npz")
    clean_error(res, f"--out {tmp_path / 'net.npz'}: this file is written as .pt or .pth", code=2)
