"""The `irl` command line, end to end through typer's test runner."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import typer.main
from typer.testing import CliRunner

import demos
import human_models as hm
import irl
import priors
from irl.cli import SOLVERS, app
from irl.plan import load_policy, save_policy

ENV = "gridworld-5x5"
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def ok(*args: str):
    res = invoke(*args)
    assert res.exit_code == 0, f"irl {' '.join(map(str, args))} failed ({res.exit_code}):\n{res.output}"
    return res


def assert_clean_error(res, *fragments: str) -> str:
    """Non-zero exit, no traceback, one line on stderr starting with 'Error:' that contains the fragments."""
    assert res.exit_code != 0, res.output
    assert isinstance(res.exception, SystemExit), f"unexpected exception {res.exception!r}"
    assert "Traceback" not in res.output
    msg = res.stderr.strip()
    assert msg.startswith("Error: ") and "\n" not in msg, repr(msg)
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    return msg


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """simulate -> fit -> plan on gridworld-5x5 (shared by several tests)."""
    d = tmp_path_factory.mktemp("chain")
    paths = {k: d / f"{k}.npz" for k in ("demos", "reward", "policy")}
    ok("simulate", "--env", ENV, "--human", "boltzmann:beta=5", "--n", "200", "--seed", "0", "--out",
       paths["demos"])
    fit_res = ok("fit", paths["demos"], "--env", ENV, "--human", "boltzmann:beta=5", "--solver", "maxent",
                 "--out", paths["reward"])
    ok("plan", paths["reward"], "--env", ENV, "--out", paths["policy"])
    return paths, fit_res


def test_chain_files_exist_load_and_agree_with_the_library(chain):
    paths, fit_res = chain
    env = irl.envs.make(ENV)
    truth = irl.envs.true_reward(env)
    assert all(p.exists() for p in paths.values())

    data = demos.load(paths["demos"])
    assert len(data) == 200 and np.all(data.lengths == env.horizon)
    # same seed, same data as the library call
    again = demos.simulate(env, hm.Boltzmann(5.0), truth, n=200, seed=0)
    np.testing.assert_array_equal(data.states, again.states)
    np.testing.assert_array_equal(data.actions, again.actions)

    est = irl.RewardEstimate.load(str(paths["reward"]))
    assert est.theta.shape == (env.n_features,) and est.converged
    assert est.info["env"] == ENV and est.info["human_spec"] == "boltzmann:beta=5"
    assert irl.metrics.reward_correlation(env, est.reward, truth) > 0.95
    # the printed table shows every fitted parameter with its value
    for name, v in zip(est.param_names, est.theta):
        row = re.escape(name) + r"\s*│\s*" + re.escape(f"{v:+.4f}")
        assert re.search(row, fit_res.stdout), (name, v, fit_res.stdout)
    assert "converged=True" in fit_res.stdout

    policy, meta = load_policy(paths["policy"])
    assert policy.shape == (env.horizon, env.n_states, env.n_actions) and meta["env"] == ENV
    np.testing.assert_allclose(policy, irl.plan(env, est.reward), atol=1e-12)


def test_evaluate_reports_small_expected_value_difference(chain):
    paths, _ = chain
    env = irl.envs.make(ENV)
    truth = irl.envs.true_reward(env)
    res = ok("evaluate", paths["policy"], "--env", ENV, "--data", paths["demos"])
    out = res.stdout
    v_opt = float(re.search(r"optimal \(knows the true reward\)\s*│\s*(-?[\d.]+)", out).group(1))
    evd = float(re.search(r"expected value difference: (\S+)", out).group(1))
    assert v_opt == pytest.approx(irl.metrics.optimal_return(env, truth), abs=1e-4)
    assert 0 <= evd < 0.02 * abs(v_opt)
    assert re.search(r"human \(200 episodes in demos.npz, recorded rewards\)\s*│\s*-?[\d.]+ ± [\d.]+", out), out

    numbers = json.loads(ok("evaluate", paths["policy"], "--env", ENV, "--data", paths["demos"], "--json").stdout)
    policy, _ = load_policy(paths["policy"])
    assert numbers["optimal_return"] == pytest.approx(irl.metrics.optimal_return(env, truth), rel=1e-12)
    assert numbers["policy_return"] == pytest.approx(irl.metrics.policy_return(env, policy, truth), rel=1e-12)
    assert numbers["expected_value_difference"] == pytest.approx(
        numbers["optimal_return"] - numbers["policy_return"], abs=1e-9)
    assert numbers["expected_value_difference"] < 0.02 * abs(numbers["optimal_return"])
    data = demos.load(paths["demos"])
    per_episode = np.add.reduceat(data.rewards, data.action_offsets[:-1])
    assert numbers["human_reward_source"] == "recorded"
    assert numbers["human_return"] == pytest.approx(per_episode.mean(), rel=1e-12)
    assert numbers["random_return"] < numbers["human_return"] <= numbers["optimal_return"] + 4 * numbers[
        "human_return_se"]


def test_other_formats_and_objectives(chain, tmp_path):
    paths, _ = chain
    env = irl.envs.make(ENV)
    ref = demos.load(paths["demos"])
    for ext in ("jsonl", "csv"):
        out = tmp_path / f"demos.{ext}"
        ok("simulate", "--env", ENV, "--human", "boltzmann:beta=5", "--n", "200", "--seed", "0", "--out", out)
        got = demos.load(out)
        np.testing.assert_array_equal(got.states, ref.states)
        np.testing.assert_array_equal(got.actions, ref.actions)
        np.testing.assert_allclose(got.rewards, ref.rewards)
    # the soft planner gets --beta through: the same policy as the library call
    soft = tmp_path / "soft.npz"
    ok("plan", paths["reward"], "--env", ENV, "--objective", "soft", "--beta", "3", "--out", soft)
    est = irl.RewardEstimate.load(str(paths["reward"]))
    np.testing.assert_allclose(load_policy(soft)[0], irl.plan(env, est.reward, objective="soft", beta=3.0),
                               atol=1e-12)
    assert_clean_error(invoke("plan", paths["reward"], "--env", ENV, "--beta", "3", "--out", soft), "--beta")
    assert_clean_error(invoke("plan", paths["reward"], "--env", ENV, "--objective", "cvarr", "--out", soft),
                       "cvarr", "optimal", "soft")


def test_prior_shrinks_and_reward_models(chain, tmp_path):
    paths, _ = chain
    env = irl.envs.make(ENV)
    ml = irl.RewardEstimate.load(str(paths["reward"]))
    ok("fit", paths["demos"], "--env", ENV, "--human", "boltzmann:beta=5", "--prior", "gaussian:scale=0.3",
       "--quiet", "--out", tmp_path / "map.npz")
    mp = irl.RewardEstimate.load(str(tmp_path / "map.npz"))
    # MAP with a zero-mean Gaussian prior never has a larger norm than the maximum-likelihood estimate
    assert np.linalg.norm(mp.theta) < np.linalg.norm(ml.theta) - 1e-3
    assert mp.log_prior == pytest.approx(float(priors.Gaussian(0.0, 0.3).log_prob(torch.tensor(mp.theta))), rel=1e-9)
    assert mp.log_likelihood <= ml.log_likelihood + 1e-6
    ok("fit", paths["demos"], "--env", ENV, "--reward-model", "tabular-sa", "--prior", "gaussian:scale=1",
       "--max-iter", "5", "--quiet", "--out", tmp_path / "sa.npz")
    sa = irl.RewardEstimate.load(str(tmp_path / "sa.npz"))
    assert sa.theta.shape == (env.n_states * env.n_actions,) and len(sa.history) <= 5


def test_demo_runs_and_prints_the_report():
    res = ok("demo", "--env", ENV, "--n", "100")
    out = res.stdout
    for text in ("pluggable-irl demo", "Reward weights", "goal", "water", "optimal (knows the true reward)",
                 "planner on the inferred reward", "the simulated human"):
        assert text in out, text
    frac = float(re.search(r"\(([\d.]+)% of optimal\)", out).group(1))
    assert frac < 2.0


def test_infinite_horizon_terminals_human_return_matches_expectation(tmp_path):
    """aima-4x3: episodes end in terminal states whose reward the data side must count once."""
    env = irl.envs.make("aima-4x3")
    truth = irl.envs.true_reward(env)
    assert_clean_error(invoke("simulate", "--env", "aima-4x3", "--out", tmp_path / "x.npz"), "--horizon")
    data_path, pol_path = tmp_path / "aima.npz", tmp_path / "opt.npz"
    ok("simulate", "--env", "aima-4x3", "--human", "boltzmann-q:beta=5", "--n", "3000", "--horizon", "200",
       "--out", data_path)
    save_policy(pol_path, irl.plan(env, truth), meta={"env": "aima-4x3"})
    res = ok("evaluate", pol_path, "--env", "aima-4x3", "--data", data_path, "--json")
    numbers = json.loads(res.stdout)
    assert numbers["expected_value_difference"] == pytest.approx(0.0, abs=1e-9)
    expected = irl.metrics.policy_return(env, hm.BoltzmannQ(5.0).action_probs(env, truth), truth)
    assert abs(numbers["human_return"] - expected) < 4 * numbers["human_return_se"]
    # precise enough to see the terminal reward: summing only the recorded rewards gives about -1.32 here
    assert numbers["human_return_se"] < 0.05 and numbers["human_return"] > -1.0


@pytest.mark.parametrize("kind, args, known", [
    ("environment", ["fit", "D", "--env", "no-such-env", "--out", "r.npz"], irl.envs.names()),
    ("human model", ["simulate", "--env", ENV, "--human", "no-such-human:beta=1", "--out", "d.npz"], hm.names()),
    ("solver", ["fit", "D", "--env", ENV, "--solver", "no-such-solver", "--out", "r.npz"], sorted(SOLVERS)),
    ("prior", ["fit", "D", "--env", ENV, "--prior", "no-such-prior:scale=1", "--out", "r.npz"], priors.names()),
    ("reward model", ["fit", "D", "--env", ENV, "--reward-model", "no-such-model", "--out", "r.npz"],
     ["linear", "tabular", "tabular-sa"]),
    ("environment", ["evaluate", "P", "--env", "nowhere"], irl.envs.names()),
])
def test_unknown_names_list_the_known_ones(chain, tmp_path, kind, args, known):
    paths, _ = chain
    args = [paths["demos"] if a == "D" else paths["policy"] if a == "P" else a for a in args]
    args = [tmp_path / a if isinstance(a, str) and a.endswith(".npz") and not a.startswith("-") else a
            for a in args]
    msg = assert_clean_error(invoke(*args), f"unknown {kind}", "known:")
    listed = msg.split("known:")[1]
    for name in known:
        assert name in listed, (name, msg)
    assert not any(p.exists() for p in tmp_path.iterdir())  # nothing written


class _Payload:
    """Unpickling this would create a marker file: the loaders must never get that far."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_npz_with_object_arrays_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.npz"
    arr = np.empty(1, dtype=object)
    arr[0] = _Payload(marker)
    np.savez(evil, states=arr, actions=np.zeros(0, int), lengths=np.zeros(1, int), policy=arr, reward=arr,
             theta=arr)
    for args in (["fit", evil, "--env", ENV, "--out", tmp_path / "r.npz"],
                 ["plan", evil, "--env", ENV, "--out", tmp_path / "p.npz"],
                 ["evaluate", evil, "--env", ENV],
                 ["plot", evil, "--env", ENV, "--out", tmp_path / "r.png"]):
        assert_clean_error(invoke(*args), str(evil), "object", "refused")
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.npz"]


def test_bad_files_give_the_library_message(chain, tmp_path):
    paths, _ = chain
    assert_clean_error(invoke("fit", tmp_path / "missing.npz", "--env", ENV, "--out", tmp_path / "r.npz"),
                       "missing.npz", "no such file")
    # a reward for one environment does not plan in another
    assert_clean_error(invoke("plan", paths["reward"], "--env", "gridworld-8x8", "--out", tmp_path / "p.npz"),
                       "(25, 5)", "(64, 5)")
    # a reward file is not a policy file
    assert_clean_error(invoke("evaluate", paths["reward"], "--env", ENV), "pluggable-irl/policy")
    # a policy whose rows are not distributions
    bad = tmp_path / "bad_policy.npz"
    save_policy(bad, np.full((12, 25, 5), 0.3))
    assert_clean_error(invoke("evaluate", bad, "--env", ENV), "sum to 1")
    # demonstrations with out-of-range states for this environment
    small = tmp_path / "oor.jsonl"
    small.write_text(json.dumps({"states": [0, 99], "actions": [1]}) + "\n")
    assert_clean_error(invoke("fit", small, "--env", ENV, "--out", tmp_path / "r.npz"), "state id 99",
                       "out of range")
    assert_clean_error(invoke("simulate", "--env", ENV, "--out", tmp_path / "d.txt"), ".txt", ".npz")


def test_plot_writes_an_image_and_names_the_extra(chain, tmp_path, monkeypatch):
    paths, _ = chain
    png = tmp_path / "reward.png"
    ok("plot", paths["reward"], "--env", ENV, "--out", png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    assert_clean_error(invoke("plot", paths["reward"], "--env", "aima-4x3", "--out", png), "grid")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert_clean_error(invoke("plot", paths["reward"], "--env", ENV, "--out", tmp_path / "again.png"),
                       "matplotlib", "pluggable-irl[plot]")
    assert not (tmp_path / "again.png").exists()


def test_listing_commands():
    out = ok("envs").stdout
    assert all(name in out for name in irl.envs.names())
    out = ok("human-models").stdout
    assert all(name in out for name in hm.names()) and "beta" in out
    out = ok("solvers").stdout
    assert all(name in out for name in SOLVERS)


COMMANDS = sorted(typer.main.get_command(app).commands)


@pytest.mark.parametrize("command", [None] + COMMANDS)
def test_help_of_every_command_has_an_example(command):
    res = ok(*([command] if command else []), "--help")
    assert "Example" in res.stdout
    if command:
        assert f"irl {command}" in res.stdout.split("Example", 1)[1]
    cmd = typer.main.get_command(app)
    for param in (cmd.commands[command] if command else cmd).params:
        if param.name != "help":
            text = param.help or ""
            assert "e.g." in text or "Example" in text, (command, param.name, text)


def test_every_documented_command_exists():
    assert {"demo", "simulate", "fit", "plan", "evaluate", "envs", "human-models", "plot"} <= set(COMMANDS)


def test_installed_console_script():
    script = pathlib.Path(sys.executable).with_name("irl")
    assert script.exists(), f"console script not installed next to {sys.executable}"
    res = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Example" in res.stdout and "simulate" in res.stdout and "evaluate" in res.stdout
    res = subprocess.run([str(script), "fit", "x.npz", "--env", "atlantis", "--out", "r.npz"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("Error: unknown environment 'atlantis'; known:")
    assert "Traceback" not in res.stderr


# ------------------------------------------------------- other evidence kinds
@pytest.mark.parametrize("kind,cls", [("state-only", demos.StateOnly), ("transitions", demos.Transitions),
                                      ("comparisons", demos.Comparisons), ("corrections", demos.Corrections),
                                      ("estops", demos.EStops)])
def test_simulate_every_evidence_kind_and_fit_reads_it(tmp_path, kind, cls):
    out = tmp_path / f"{kind}.npz"
    ok("simulate", "--env", ENV, "--human", "boltzmann:beta=3", "--evidence", kind, "--n", "40", "--seed", "1",
       "--out", out)
    data = demos.load(out)
    assert type(data) is cls
    env = irl.envs.make(ENV)
    ok("fit", out, "--env", ENV, "--human", "boltzmann:beta=3", "--out", tmp_path / "r.npz", "-q")
    est = irl.RewardEstimate.load(tmp_path / "r.npz")
    direct = irl.MaxEnt(human=hm.Boltzmann(3.0)).fit(env, data)
    assert np.allclose(est.theta, direct.theta, atol=1e-5)
    assert est.info["evidence"] == [cls.__name__]


def test_fit_combines_several_files_into_one_log_joint(tmp_path):
    paths = []
    for kind in ("comparisons", "trajectories"):
        p = tmp_path / f"{kind}.npz"
        ok("simulate", "--env", ENV, "--human", "boltzmann:beta=2", "--evidence", kind, "--n", "30", "--out", p)
        paths.append(p)
    ok("fit", *paths, "--env", ENV, "--human", "boltzmann:beta=2", "--out", tmp_path / "r.npz", "-q")
    est = irl.RewardEstimate.load(tmp_path / "r.npz")
    env = irl.envs.make(ENV)
    h = hm.Boltzmann(2.0)
    direct = irl.MaxEnt(human=h).fit([irl.Evidence(env, demos.load(p), h) for p in paths])
    assert np.allclose(est.theta, direct.theta, atol=1e-5)
    assert est.info["evidence"] == ["Comparisons", "Trajectories"]


def test_world_state_evidence_from_the_shell(tmp_path):
    out = tmp_path / "ws.npz"
    res = invoke("simulate", "--env", "rlsp-room", "--evidence", "world-state", "--n", "1", "--out", out)
    assert_clean_error(res, "--horizon T")
    ok("simulate", "--env", "rlsp-room", "--evidence", "world-state", "--horizon", "6", "--n", "2", "--out", out)
    ws = demos.load(out)
    assert isinstance(ws, demos.WorldState) and len(ws) == 2 and ws.horizon == 6


def test_evidence_option_errors(tmp_path):
    assert_clean_error(invoke("simulate", "--env", ENV, "--evidence", "telepathy", "--out", tmp_path / "x.npz"),
                       "unknown evidence kind 'telepathy'", "comparisons", "world-state")
    assert_clean_error(invoke("simulate", "--env", ENV, "--evidence", "comparisons", "--out", tmp_path / "x.txt"),
                       "unknown extension '.txt' for comparisons")
    assert_clean_error(invoke("simulate", "--env", ENV, "--evidence", "estops", "--stay-action", "9", "--out",
                              tmp_path / "x.npz"), "--stay-action 9 is out of range")


@pytest.mark.parametrize("kind", ["comparisons", "transitions", "state-only"])
def test_every_evidence_kind_as_csv_from_the_shell(tmp_path, kind):
    out = tmp_path / f"{kind}.csv"
    ok("simulate", "--env", ENV, "--evidence", kind, "--n", "20", "--out", out)
    assert type(demos.load(out)).__name__ == {"comparisons": "Comparisons", "transitions": "Transitions",
                                              "state-only": "StateOnly"}[kind]
    ok("fit", out, "--env", ENV, "--out", tmp_path / "r.npz", "--quiet")


def test_columns_option_reads_a_gymnasium_style_log(tmp_path):
    """A per-step log with its own column names and no final rows, through fit and evaluate."""
    d = demos.simulate(irl.envs.make(ENV), hm.Boltzmann(2.0), irl.envs.make(ENV).true_reward, 30, seed=0)
    rows = ["ep,t,obs,act,obs2,done"]
    for i, tr in enumerate(d):
        for t in range(len(tr.actions)):
            rows.append(f"{i},{t},{tr.states[t]},{tr.actions[t]},{tr.states[t + 1]},"
                        f"{int(tr.terminated and t == len(tr.actions) - 1)}")
    log = tmp_path / "log.csv"
    log.write_text("\n".join(rows) + "\n")
    cols = "episode=ep,step=t,state=obs,action=act,next_state=obs2,terminated=done"
    assert_clean_error(invoke("fit", log, "--env", ENV, "--out", tmp_path / "r.npz"), "header must contain",
                       "found ['act', 'done', 'ep', 'obs', 'obs2', 't']")
    ok("fit", log, "--env", ENV, "--out", tmp_path / "r.npz", "--quiet", "--columns", cols)
    direct = irl.MaxEnt(human=hm.Boltzmann(1.0)).fit(irl.envs.make(ENV), d.subset(d.lengths > 0))
    est = irl.RewardEstimate.load(str(tmp_path / "r.npz"))
    assert np.allclose(est.theta, direct.theta, atol=1e-5)
    ok("plan", tmp_path / "r.npz", "--env", ENV, "--out", tmp_path / "p.npz")
    res = ok("evaluate", tmp_path / "p.npz", "--env", ENV, "--data", log, "--columns", cols, "--json")
    assert "human_return" in res.stdout


# ------------------------------------------------------------------- compare
@pytest.mark.parametrize("truth_spec", ["boltzmann:beta=2", "myopic:horizon=3,beta=2",
                                        "noisy:model=boltzmann(beta=2),epsilon=0.3"])
def test_compare_ranks_the_generating_model_first(tmp_path, truth_spec):
    data = tmp_path / "d.npz"
    ok("simulate", "--env", "temptation-corridor", "--human", truth_spec, "--n", "200", "--seed", "3", "--out", data)
    candidates = ["boltzmann:beta=2", "myopic:horizon=3,beta=2", "noisy:model=boltzmann(beta=2),epsilon=0.3"]
    args = ["compare", data, "--env", "temptation-corridor", "--json"]
    for c in candidates:
        args += ["--human", c]
    rows = [json.loads(line) for line in ok(*args).stdout.splitlines() if line.startswith("{")]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[0]["human"] == truth_spec, rows
    assert rows[0]["held_out_log_likelihood"] > rows[1]["held_out_log_likelihood"]


def test_compare_table_and_errors(tmp_path):
    data = tmp_path / "d.npz"
    ok("simulate", "--env", ENV, "--human", "boltzmann:beta=2", "--n", "30", "--out", data)
    res = ok("compare", data, "--env", ENV, "--human", "boltzmann:beta=2", "--human", "boltzmann-q:beta=2",
             "--test-fraction", "0")
    assert "ranked by BIC" in res.stdout
    assert_clean_error(invoke("compare", data, "--env", ENV, "--human", "boltzmann"), "at least two different")
    prefs = tmp_path / "p.npz"
    ok("simulate", "--env", ENV, "--evidence", "comparisons", "--n", "10", "--out", prefs)
    assert_clean_error(invoke("compare", prefs, "--env", ENV, "--human", "boltzmann", "--human", "boltzmann-q"),
                       "trajectories only")


# ------------------------------------------------------- compare --solver bayes
BAYES_JSON_KEYS = {"rank", "human", "elpd_loo", "elpd_loo_se", "p_loo", "elpd_diff", "elpd_diff_se", "max_pareto_k",
                   "elpd_waic", "elpd_waic_se", "p_waic", "n_params", "n_observations", "converged", "human_params"}


@pytest.fixture(scope="module")
def noisy_demos(tmp_path_factory):
    path = tmp_path_factory.mktemp("loo") / "noisy.npz"
    ok("simulate", "--env", ENV, "--human", "noisy:model=boltzmann(beta=3),epsilon=0.4", "--n", "40", "--seed", "7",
       "--out", path)
    return path


def test_compare_bayes_ranks_by_psis_loo(noisy_demos, monkeypatch):
    """Measured (2 chains x 60 draws, about 8 s): elpd_loo noisy -636.6 +- 14.6, boltzmann -677.8 +- 16.7;
    difference -41.2 +- 8.6."""
    fitted = []  # the table is drawn from the rows of the JSON run: sample once

    def sample_once(*args, **kwargs):
        fitted[:] = fitted or [real(*args, **kwargs)]
        return fitted[0]

    real = irl.compare_posteriors
    monkeypatch.setattr(irl, "compare_posteriors", sample_once)
    noisy = "noisy:model=boltzmann(beta=3),epsilon=0.4"
    args = ["compare", noisy_demos, "--env", ENV, "--human", "boltzmann:beta=3", "--human", noisy,
            "--solver", "bayes", "--samples", "60", "--chains", "2", "--seed", "1", "--quiet", "--allow-unconverged"]
    res = ok(*args, "--json")
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2] and [r["human"] for r in rows] == [noisy, "boltzmann:beta=3"]
    assert all(set(r) == BAYES_JSON_KEYS for r in rows)
    assert all(np.isfinite([r[k] for k in ("elpd_loo", "elpd_loo_se", "elpd_waic", "p_loo")]).all() for r in rows)
    assert rows[0]["elpd_diff"] == 0.0 and rows[1]["elpd_diff"] < -2 * rows[1]["elpd_diff_se"]
    assert [r["n_params"] for r in rows] == [4, 4] and rows[0]["n_observations"] == 40
    assert rows[0]["human_params"] == {} and isinstance(rows[0]["converged"], bool)
    # every problem (not mixed, large Pareto k) is one warning line on stderr, never in the JSON
    warned = [line for line in res.stderr.splitlines() if line]
    assert all(line.startswith("Warning: candidate '") for line in warned)
    assert len(warned) >= sum(not r["converged"] for r in rows)
    table = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "ranked by PSIS-LOO (gridworld-5x5, 40 observations" in table.stdout
    for r in rows:
        assert f"{r['elpd_loo']:.1f} ± {r['elpd_loo_se']:.1f}" in table.stdout
        assert f"{r['elpd_diff']:.1f} ± {r['elpd_diff_se']:.1f}" in table.stdout
    assert table.stderr == res.stderr


def test_compare_bayes_exits_3_when_a_posterior_has_not_converged(noisy_demos):
    """As ``irl fit --solver bayes``: the ranking is printed, then exit code 3 unless --allow-unconverged."""
    args = ["compare", noisy_demos, "--env", ENV, "--human", "boltzmann:beta=3", "--human", "boltzmann:beta=1",
            "--solver", "bayes", "--samples", "6", "--warmup", "6", "--chains", "2", "--quiet", "--json"]
    res = invoke(*args)
    assert res.exit_code == 3, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 2 and not all(r["converged"] for r in rows)  # the ranking is still printed
    assert re.search(r"^Error: the posterior of '.*' has not converged: exit code 3; draw more \(--samples, "
                     r"--warmup\), or pass --allow-unconverged", res.stderr, re.M), res.stderr
    assert "Traceback" not in res.output
    accepted = invoke(*args, "--allow-unconverged")
    assert accepted.exit_code == 0 and accepted.stdout == res.stdout and "Error:" not in accepted.stderr


def test_compare_solver_option_errors(noisy_demos, tmp_path):
    base = ["compare", noisy_demos, "--env", ENV, "--human", "boltzmann:beta=3", "--human", "boltzmann-q:beta=3"]
    assert_clean_error(invoke(*base, "--samples", "10"), "--samples only applies to sampling solvers (bayes)",
                       "not --solver maxent")
    assert_clean_error(invoke(*base, "--solver", "bayes", "--test", noisy_demos), "--test",
                       "uses all of DATA", "--solver maxent")
    assert_clean_error(invoke(*base, "--solver", "policywalk"), "unknown solver 'policywalk'", "maxent, bayes")
    res = invoke("compare", noisy_demos, "--env", ENV, "--human", "boltzmann:beta=3", "--human",
                 "myopic:horizon=prior:categorical(1..4),beta=3", "--solver", "bayes", "--samples", "5000")
    assert_clean_error(res, "candidate 'myopic:horizon=prior:categorical(1..4),beta=3'", "myopic.horizon",
                       "give the parameter a value", "--solver maxent")


@pytest.mark.parametrize("command", [
    ["demo"], ["simulate", "--env", "gridworld-5x5", "--out", "x.npz"],
    ["fit", "d.npz", "--env", "gridworld-5x5", "--solver", "bayes", "--out", "x.npz"],
    ["compare", "d.npz", "--env", "gridworld-5x5", "--human", "boltzmann"],
    ["candidates", "--env", "gridworld-5x5", "--out", "x.npz"], ["query", "p.npz", "--candidates", "c.npz"],
    ["constraints", "d.npz", "--env", "gridworld-5x5"], ["side-effects", "r.npz", "--env", "rlsp-room", "--out", "x.npz"],
    ["fit-norms", "d.npz", "--env", "park", "--own", "goal_A", "--out", "x.npz"], ["train", "m.json", "--out", "x.pt"],
])
def test_a_negative_seed_is_a_usage_error_in_every_command(command):
    res = invoke(*command, "--seed", "-1")
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    text = " ".join(res.output.replace("│", " ").split())
    assert "Invalid value for '--seed': a random seed must be an integer >= 0: got -1" in text, text
