"""Bad inputs to priors, human models, horizons and solver options: each refused with a message
that says what was wrong, what was expected and what was found."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import demos
import human_models as hm
import irl
import priors
from human_models import HumanModelError
from irl import MDPValidationError


# ------------------------------------------------------------------ priors
@pytest.mark.parametrize("make, message", [
    (lambda: priors.Gaussian(scale=math.inf), "Gaussian prior scale must be a finite number: got inf"),
    (lambda: priors.Gaussian(loc=math.nan), "Gaussian prior loc must be a finite number: got nan"),
    (lambda: priors.Gaussian(scale=0.0), "Gaussian prior scale must be a finite number > 0: got 0.0"),
    (lambda: priors.Laplace(loc=math.inf), "Laplace prior loc must be a finite number: got inf"),
    (lambda: priors.Laplace(scale=-1), "Laplace prior scale must be a finite number > 0: got -1"),
    (lambda: priors.LogNormal(loc=math.nan), "LogNormal prior loc must be a finite number: got nan"),
    (lambda: priors.Gamma(concentration=math.nan), "Gamma prior concentration must be a finite number: got nan"),
    (lambda: priors.Gamma(rate=math.inf), "Gamma prior rate must be a finite number: got inf"),
    (lambda: priors.HalfNormal(scale="wide"), "HalfNormal prior scale must be a finite number: got 'wide'"),
    (lambda: priors.Exponential(rate=0), "Exponential prior rate must be a finite number > 0: got 0"),
    (lambda: priors.Uniform(low=-math.inf), "Uniform prior low must be a finite number: got -inf"),
    (lambda: priors.Uniform(1, 1), "Uniform prior needs low < high: got low=1, high=1"),
    (lambda: priors.Categorical([]), "Categorical prior needs at least one value: got an empty list"),
    (lambda: priors.Categorical([1, 2, 1.0]), r"values must be distinct: values\[0\] and values\[2\] are both 1.0"),
    (lambda: priors.Categorical([1, math.nan]), r"Categorical prior values\[1\] must be a finite number: got nan"),
    (lambda: priors.Categorical([1, 2], probs=[math.nan, 1.0]), "Categorical prior probs must be a finite number"),
    (lambda: priors.Categorical([1, 2], probs=[0.2, 0.2]), "probs must be 2 non-negative numbers summing to 1"),
    (lambda: priors.make("categorical:values=1|nan"), r"values\[1\] must be a finite number: got nan"),
    (lambda: priors.make("gaussian:scale=inf"), "scale must be a finite number: got inf"),
])
def test_priors_refuse_bad_parameters(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_categorical_labels_are_still_allowed():
    assert priors.Categorical(["naive", "sophisticated"]).values == ["naive", "sophisticated"]


def test_an_enumerated_prior_is_bounded_with_a_cost_estimate_and_an_override():
    with pytest.raises(ValueError) as e:
        priors.make("categorical:values=1..100000")
    msg = str(e.value)
    assert "100000 values (1 .. 100000), more than max_values = 1000" in msg
    assert "100000 planner calls per evaluation" in msg and "hours" in msg  # the time it would take
    assert "max_values=100000" in msg  # how to override, in Python and on the command line
    assert len(priors.make("categorical:values=1..1500,max_values=1500").values) == 1500
    assert len(priors.Categorical(range(1, 1201), max_values=1200).values) == 1200
    with pytest.raises(ValueError, match="max_values must be a positive integer: got 2.5"):
        priors.Categorical([1, 2], max_values=2.5)


def test_myopic_with_a_huge_enumerated_horizon_fails_at_once_not_after_30_minutes():
    with pytest.raises(ValueError, match="more than max_values"):
        hm.make("myopic:horizon=prior:categorical(1..100000)")
    assert len(hm.make("myopic:horizon=prior:categorical(1..1001;max_values=1001)").horizon.values) == 1001


def test_several_enumerated_parameters_are_bounded_together():
    env = irl.envs.make("gridworld-5x5")
    data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=3, seed=0)
    human = hm.Myopic(horizon=priors.Categorical(range(1, 101)), beta=1.0)
    human = hm.Noisy(human, epsilon=priors.Categorical(np.linspace(0, 1, 11).tolist()))
    with pytest.raises(ValueError, match=r"epsilon \(11\) x horizon \(100\) make 1100 combinations, each one plan of the human model .*"
                                         r"base.MAX_COMBINATIONS = 1000"):
        irl.MaxEnt(human=human).fit(env, data)


# -------------------------------------------------------- solvers and priors
@pytest.fixture(scope="module")
def small():
    env = irl.envs.make("gridworld-5x5")
    return env, demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=20, seed=0)


def test_a_discrete_reward_prior_is_refused(small):
    env, data = small
    with pytest.raises(ValueError, match="reward prior must be a continuous prior .* got Categorical"):
        irl.MaxEnt(prior=priors.Categorical([0.0, 1.0]))
    with pytest.raises(ValueError, match="reward prior must be a continuous prior"):
        irl.BayesianIRL(prior=priors.Categorical([0.0, 1.0])).fit(env, data, samples=2, warmup=2)
    with pytest.raises(TypeError, match="reward prior must have log_prob"):
        irl.MaxEnt(prior="gaussian")


def test_a_non_finite_log_joint_is_never_converged(small):
    env, data = small
    # zeros lie outside Uniform(1, 2): log-prior -inf, the gradient of the log-prior is 0 there
    est = irl.MaxEnt(prior=priors.Uniform(1, 2), max_iter=20).fit(env, data)
    assert est.log_prior == -math.inf
    assert est.converged is False
    assert "log-joint is not finite" in est.info["message"] and "not converged" in est.info["message"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_iter=0), "MaxEnt max_iter must be an integer >= 1: got 0"),
    (dict(max_iter=2.5), "MaxEnt max_iter must be an integer >= 1: got 2.5"),
    (dict(max_iter=True), "MaxEnt max_iter must be an integer >= 1: got True"),
    (dict(tol=-1e-3), "MaxEnt tol must be a finite number >= 0: got -0.001"),
    (dict(tol=math.nan), "MaxEnt tol must be a finite number >= 0: got nan"),
    (dict(tol="small"), "MaxEnt tol must be a finite number >= 0: got 'small'"),
])
def test_maxent_options_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        irl.MaxEnt(**kwargs)


def test_maxent_callback_must_be_callable():
    with pytest.raises(TypeError, match="callback must be callable"):
        irl.MaxEnt(callback=3)


# ------------------------------------------------------------- human models
@pytest.mark.parametrize("make, message", [
    (lambda: hm.Boltzmann(beta=torch.tensor(-1.0)), "beta must be a finite number > 0: got -1.0"),
    (lambda: hm.Boltzmann(beta=torch.tensor([1.0, math.nan])),
     r"beta must be a finite number > 0: got nan \(entry 1 of a tensor of shape \(2,\)\)"),
    (lambda: hm.BoltzmannQ(beta=np.array([2.0, 0.0])), "beta must be a finite number > 0: got 0.0"),
    (lambda: hm.Boltzmann(beta=torch.tensor([True])), "beta must be a finite number > 0: got a tensor of dtype"),
    (lambda: hm.Myopic(horizon=3, beta=torch.tensor(math.inf)), "beta must be a finite number > 0: got inf"),
    (lambda: hm.Myopic(horizon=math.nan), "horizon must be an integer >= 1: got nan"),
    (lambda: hm.Myopic(horizon=torch.tensor([2, 3])), "horizon must be an integer >= 1: got a tensor of shape"),
    (lambda: hm.BoundedPlanner(iterations=0), "iterations must be an integer >= 1: got 0"),
    (lambda: hm.Noisy(hm.Boltzmann(1.0), epsilon=torch.tensor(1.5)),
     r"epsilon must be a finite number in \[0, 1\] \(a probability\): got 1.5"),
    (lambda: hm.Noisy(hm.Boltzmann(1.0), epsilon=np.array([0.1, -0.1])), "epsilon must be a finite number in"),
    (lambda: hm.HyperbolicDiscounter(k=torch.tensor(-0.5)), "k must be a finite number >= 0: got -0.5"),
    (lambda: hm.MetaBoltzmann(cost=torch.tensor(math.nan)), "cost must be a finite number: got nan"),
])
def test_tensor_and_array_parameters_are_checked_like_numbers(make, message):
    with pytest.raises(HumanModelError, match=message):
        make()


def test_good_tensor_parameters_keep_their_graph():
    beta = torch.tensor([1.0, 2.0], requires_grad=True)
    assert hm.Boltzmann(beta=beta).beta is beta


# ------------------------------------------------------------------ horizons
@pytest.mark.parametrize("horizon, message", [
    (math.nan, "horizon must be a positive integer or None: got nan"),
    (math.inf, "horizon must be a positive integer or None: got inf"),
    (2.5, "horizon must be a positive integer or None: got 2.5"),
    (True, "horizon must be a positive integer or None: got True"),
    ("10", "horizon must be a positive integer or None: got '10'"),
    (0, "horizon must be a positive integer or None: got 0"),
])
def test_mdp_horizon_must_be_a_positive_integer(horizon, message):
    with pytest.raises(MDPValidationError, match=message):
        irl.envs.make("gridworld-8x8").replace(horizon=horizon)


def test_a_horizon_whose_plan_cannot_fit_in_memory_is_refused_before_allocating():
    env = irl.envs.make("gridworld-8x8")
    with pytest.raises(MDPValidationError) as e:
        env.replace(horizon=10 ** 12)
    msg = str(e.value)
    assert "horizon = 1000000000000 is too long" in msg and "64 states x 5 actions" in msg
    assert "2.27 PiB per reward hypothesis" in msg and "irl.mdp.MAX_PLAN_BYTES" in msg
    assert env.replace(horizon=1000).horizon == 1000


@pytest.mark.parametrize("model", [hm.Myopic(horizon=10 ** 12), hm.BoundedPlanner(iterations=10 ** 12)])
def test_a_model_horizon_too_long_for_memory_is_refused_with_its_size(model):
    env = irl.envs.make("aima-4x3")  # infinite horizon: the model's own horizon decides the plan's size
    with pytest.raises(HumanModelError, match=r"the human's planning horizon = 1000000000000 is too long .* 320 TiB"):
        model.action_log_probs(env, env.true_reward)


# ------------------------------------------- third-party messages replaced by ours
def test_ragged_transitions_are_refused_with_the_expected_shape():
    for T in ([[[1, 0], [0, 1]], [[1, 0]]], [[[1, 0], [0, 1]], [[1, 0], [0]]], [[["a", "b"]]]):
        with pytest.raises(MDPValidationError, match=r"transitions must be an \(S, A, S\) array of probabilities, "
                                                     r"e.g. nested lists of equal lengths: got list"):
            irl.TabularMDP.from_arrays(T)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(n=2.5), ValueError, r"n \(the number of episodes\) must be an integer >= 1: got 2.5"),
    (dict(n=0), ValueError, r"n \(the number of episodes\) must be an integer >= 1: got 0"),
    (dict(n=2, seed=-1), ValueError, r"seed must be None or an integer >= 0: got -1"),
    (dict(n=2, seed=1.5), ValueError, r"seed must be None or an integer >= 0: got 1.5"),
    (dict(n=2, horizon=math.nan), MDPValidationError, r"horizon must be a positive integer or None: got nan"),
    (dict(n=2, horizon=10 ** 12), MDPValidationError, r"horizon = 1000000000000 is too long"),
])
def test_simulate_checks_its_counts_seed_and_horizon(kwargs, error, message):
    env = irl.envs.make("gridworld-5x5")
    with pytest.raises(error, match=message):
        demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, **kwargs)


def test_negative_seeds_are_refused_by_the_solvers(small):
    env, data = small
    with pytest.raises(ValueError, match="MaxEnt seed must be an integer >= 0: got -1"):
        irl.MaxEnt(seed=-1)
    with pytest.raises(ValueError, match="seed must be an integer >= 0: got -1"):
        irl.BayesianIRL().fit(env, data, seed=-1, samples=2, warmup=2)


# ------------------------------------------------- result files: every problem a DemoFileError
@pytest.fixture(scope="module")
def result_files(small, tmp_path_factory):
    env, data = small
    d = tmp_path_factory.mktemp("results")
    irl.MaxEnt(max_iter=5).fit(env, data).save(str(d / "r.npz"))
    irl.BayesianIRL().fit(env, data, samples=4, warmup=4, chains=2, check=False).save(str(d / "p.npz"))
    return d


def _rewrite(src, dst, **changes):
    arrays = dict(np.load(src, allow_pickle=False))
    arrays.update(changes)
    np.savez(dst, **{k: v for k, v in arrays.items() if v is not None})
    return dst


@pytest.mark.parametrize("which, changes, message", [
    ("r", dict(reward=np.array("x")),
     r"'reward' must be a 1-D or 2-D array of finite numbers: got <U1 array of shape \(\)"),
    ("r", dict(reward=np.full((25, 5), np.nan)), r"'reward' must be a 1-D or 2-D array of finite numbers: got nan at "
                                                 r"index \(0, 0\)"),
    ("r", dict(theta=np.zeros((2, 2))), r"'theta' must be a 1-D array of finite numbers: got float64 array of shape"),
    ("r", dict(meta=np.array('{"log_likelihood": 1.0, "human_params": [1]}')), r"malformed reward-estimate metadata"),
    ("p", dict(theta=np.array("x")), r"'theta' must be a 3-D array of finite numbers: got <U1"),
    ("p", dict(theta=np.array([1.0])), r"'theta' must be a 3-D array of finite numbers: got float64 array of shape"),
    ("p", dict(theta=np.full((2, 4, 4), np.inf)), r"'theta' must be a 3-D array of finite numbers: got inf"),
    ("p", dict(theta=np.zeros((2, 4, 3))), r"malformed posterior file \(ValueError: "),
    ("p", dict(log_density=np.array([np.nan])), r"'log_density' must be a 2-D array of finite numbers"),
])
def test_broken_reward_and_posterior_files_name_the_file_and_array(result_files, which, changes, message):
    src = result_files / f"{which}.npz"
    dst = _rewrite(src, result_files / f"bad_{which}.npz", **changes)
    load = irl.RewardEstimate.load if which == "r" else irl.Posterior.load
    with pytest.raises(demos.DemoFileError, match=str(dst).replace(".", r"\.") + ": " + message):
        load(str(dst))
    load(str(src))  # the unchanged file still loads


# ---------------------------------------- bad files from the shell: one line naming the file
def _bad_file(tmp_path, kind):
    import json

    p = tmp_path / {"deep": "d.jsonl", "high": "d.jsonl", "delib_field": "d.csv", "fee": "d.csv"}.get(kind, "d.npz")
    traj = dict(states=np.array([0, 1]), actions=np.array([0]), lengths=np.array([1]),
                format=np.array("pluggable-irl/trajectories"))
    header = json.dumps({"format": "pluggable-irl/trajectories", "version": 1})
    if kind == "state_only":
        demos.save_arrays(p, "pluggable-irl/state-only", {"lengths": np.array([1])})
    elif kind == "transitions":
        demos.save_arrays(p, "pluggable-irl/transitions", {"states": np.array([1])})
    elif kind in ("version_array", "version_one", "meta", "nan_rewards"):
        extra = {"version_array": dict(version=np.array([1, 2])), "version_one": dict(version=np.array("one")),
                 "meta": dict(version=np.array(1), meta=np.array("{not json")),
                 "nan_rewards": dict(version=np.array(1), rewards=np.array([np.nan]))}[kind]
        np.savez(p, **traj, **extra)
    elif kind == "deep":
        p.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    elif kind == "high":
        p.write_text(header + "\n" + json.dumps({"states": [0, 1], "actions": [0], "rewards": ["high"]}) + "\n")
    elif kind == "delib_field":
        p.write_text("# parents=-1 0; fee=1\nrewards,clicks,path\n0 " + "1" * 200_000 + ",,0 1\n")
    elif kind == "fee":
        p.write_text("# parents=-1 0; fee=abc\nrewards,clicks,path\nNA 1,,0 1\n")
    return p


@pytest.mark.parametrize("kind, message", [
    ("state_only", r"state-only file lacks arrays \['states'\]"),
    ("transitions", r"transitions file lacks arrays \['actions'\]"),
    ("version_array", r"'version' must be a single integer: got int64 array of shape \(2,\)"),
    ("version_one", r"'version' must be a single integer: got <U3 array of shape \(\) \('one'\)"),
    ("meta", r"'meta' must be a JSON object stored as one string"),
    ("nan_rewards", r"rewards must be finite: got nan at step 0 of trajectory 0"),
    ("deep", r", line 1: JSON nested too deeply to read"),
    ("high", r", line 2: 'rewards' must be a list of finite numbers: got \[\"high\"\]"),
    ("delib_field", r": not valid CSV \(field larger than field limit \(131072\)\)"),
    ("fee", r": the '# fee=' comment must give a number: got 'abc'"),
])
def test_bad_files_from_the_shell_are_one_line_errors_naming_the_file(tmp_path, kind, message):
    import re

    from typer.testing import CliRunner

    from irl.cli import app

    path = _bad_file(tmp_path, kind)
    res = CliRunner().invoke(app, ["fit", str(path), "--env", "gridworld-5x5", "--out", str(tmp_path / "r.npz")])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit) and "Traceback" not in res.output
    assert re.fullmatch(re.escape(f"Error: {path}") + ".*" + message + ".*", res.stderr.strip()), res.stderr


def test_terminal_masks_and_sparse_positions_are_checked(tmp_path):
    T = np.full((3, 2, 3), 1 / 3)
    for terminal, found in (([0, 0.5, 1], "terminal[1] = np.float64(0.5)"), ([0, math.nan, 0], "terminal[1] = "),
                            (["no", "no", "yes"], "terminal[0] = ")):
        with pytest.raises(MDPValidationError, match=r"terminal must be a boolean mask \(True/False or 1/0\): got "
                                                     + re.escape(found)):
            irl.TabularMDP.from_arrays(T, terminal=terminal)
    assert irl.TabularMDP.from_arrays(T, terminal=[0, 0, 1]).terminal.tolist() == [False, False, True]
    path = tmp_path / "m.npz"
    irl.envs.make("gridworld-5x5").save(path)
    arrays = dict(np.load(path, allow_pickle=False))
    arrays["transitions_indices"] = arrays["transitions_indices"] + 0.5
    np.savez(path, **arrays)
    with pytest.raises(demos.DemoFileError, match=r"m.npz: transitions_indices must hold integer positions: got "
                                                  r"dtype float64"):
        irl.TabularMDP.load(path)


@pytest.mark.parametrize("columns, message", [
    ("episode", "--columns 'episode': columns must be name=column pairs separated by commas: got 'episode'"),
    ("episode=ep,episode=x", "--columns 'episode=ep,episode=x': columns names 'episode' twice"),
    ("foo=bar", "--columns 'foo=bar': unknown column name(s) ['foo']; known: ['episode', 'step', 'state'"),
])
def test_a_malformed_columns_option_is_named(tmp_path, columns, message):
    from typer.testing import CliRunner

    from irl.cli import app

    path = tmp_path / "d.csv"
    path.write_text("episode,step,state,action\n0,0,0,1\n0,1,1,\n")
    res = CliRunner().invoke(app, ["fit", str(path), "--env", "gridworld-5x5", "--columns", columns, "--out",
                                   str(tmp_path / "r.npz")])
    assert res.exit_code == 2 and res.stderr.startswith("Error: " + message), res.stderr


def test_a_human_model_spec_nested_too_deeply_is_refused_before_parsing():
    spec = "noisy:model=" + "noisy(model=" * 3000 + "boltzmann" + ")" * 3000
    with pytest.raises(HumanModelError, match=r"is nested 3000 parentheses deep, more than "
                                              r"human_models.registry.MAX_SPEC_NESTING = 32"):
        hm.make(spec)
    assert isinstance(hm.make("noisy:model=" + "noisy(model=" * 5 + "boltzmann" + ")" * 5), hm.Noisy)
    from typer.testing import CliRunner

    from irl.cli import app

    res = CliRunner().invoke(app, ["simulate", "--env", "gridworld-5x5", "--human", spec, "--out", "never.npz"])
    assert res.exit_code == 2 and "Traceback" not in res.output and len(res.stderr) < 400, res.stderr
    assert res.stderr.startswith("Error: --human 'noisy:model=noisy(model=")
    assert f"({len(spec)} characters)" in res.stderr
