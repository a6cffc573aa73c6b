"""Cognition-level human models: conformance, gradients, simulation, recovery, amplification, CLI."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import demos
import human_models as hm
import irl
import priors
from human_models import HumanModelError
from irl.envs.mouselab import mouselab

VALUES = ((-1.0, 1.0), (-2.0, 2.0), (-10.0, 10.0))


@pytest.fixture(scope="module")
def small():
    """A (2, 1, 2) tree with the 312 tree's shape of variance: solved exactly in milliseconds."""
    return mouselab((2, 1, 2), VALUES)


@pytest.mark.parametrize("model,n_first", [
    (hm.MetaBoltzmann(cost=1.13, depth_cost=0.37, beta=0.3), 4000),
    (hm.MetaBoltzmann(cost=0.6, depth_cost=-0.21, beta=1.7, solver="brute-force"), 2000),
    (hm.MetaBoltzmann(cost=0.8, depth_cost=0.11, beta=0.9, solver="myopic"), 4000),
    (hm.RandomClicks(), 4000),
], ids=["exact", "brute-force", "myopic", "random"])
def test_conformance(small, model, n_first):
    env = small if model.__dict__.get("solver") != "brute-force" else mouselab((2, 2), ((-1.0, 1.0), (-5.0, 5.0)))
    out = hm.check_meta_human_model(model, env, seed=3, n_first=n_first)
    assert out["grad_error"] < 1e-5 and out["max_frequency_error"] < 0.05 and out["n_decisions"] > 6


def test_conformance_with_object_level_values(small):
    reward = np.r_[0.0, 1.2, 0.7, 0.9, 0.9, 1.2, 0.7, 0.9, 0.9]
    out = hm.check_meta_human_model(hm.MetaBoltzmann(cost=1.13, depth_cost=0.37, beta=1.0, values="reward"), small,
                                    reward=reward, seed=1)
    assert out["grad_error"] < 1e-5


def test_object_level_policy_is_refused_with_a_pointer_to_the_meta_level(small):
    m = hm.MetaBoltzmann()
    with pytest.raises(HumanModelError, match="acts at the meta level"):
        m.action_log_probs(small, small.true_reward)


@pytest.mark.parametrize("model", [hm.MetaBoltzmann(cost=0.9, depth_cost=0.2, beta=0.7), hm.RandomClicks()],
                         ids=["meta-boltzmann", "random-clicks"])
def test_check_human_model_runs_the_meta_level_checks(model, small):
    """One conformance entry point for every human model: cognition-level ones get the meta-level rules."""
    out = hm.check_human_model(model)
    assert out["mdps"] == ["mouselab-212"] and out["grad_error"] < 1e-5
    assert hm.check_human_model(model, mdps=[small])["mdps"] == [small.name]


def test_check_human_model_reports_a_broken_meta_level_model(small):
    class Unnormalised(hm.MetaBoltzmann):
        def meta_log_probs(self, mdp, reward, beliefs):
            return super().meta_log_probs(mdp, reward, beliefs) + 0.1

    with pytest.raises(hm.ConformanceError, match="Unnormalised.*sum to 1"):
        hm.check_human_model(Unnormalised(cost=1.0, depth_cost=0.0, beta=1.0))


def test_expected_clicks_of_the_policy_match_simulation():
    """Simulation and the policy agree on whole deliberations, not only the first step."""
    env = mouselab((2, 2), ((-1.0, 1.0), (-5.0, 5.0)))
    model = hm.MetaBoltzmann(cost=0.7, depth_cost=0.3, beta=0.8)
    meta = env.meta
    t = meta.tree

    @lru_cache(maxsize=None)
    def expected_clicks(key):
        b = np.array([np.nan if x is None else x for x in key])
        p = model.meta_probs(env, env.true_reward, b[None])[0]
        total = 0.0
        for a in range(1, t.n_nodes):
            if p[a] == 0:
                continue
            vals, probs = t.values[t.depth[a] - 1], t.probs[t.depth[a] - 1]
            sub = sum(q * expected_clicks(tuple(v if i == a else x for i, x in enumerate(key))) for v, q in
                      zip(vals, probs))
            total += p[a] * (1 + sub)
        return total

    want = expected_clicks((0.0,) + (None,) * (t.n_nodes - 1))
    sim = demos.simulate(env, model, env.true_reward, n=6000, seed=0)
    se = sim.n_clicks.std() / np.sqrt(len(sim))
    assert abs(sim.n_clicks.mean() - want) < 4 * se


def test_log_joint_gradient_in_unconstrained_space(small):
    data = demos.simulate(small, hm.MetaBoltzmann(cost=1.1, depth_cost=0.3, beta=1.0), small.true_reward, n=30, seed=2)
    model = hm.MetaBoltzmann(cost=priors.Gaussian(0, 5), depth_cost=priors.Gaussian(0, 5),
                             beta=priors.LogNormal(0, 1))
    joint = irl.LogJoint([irl.Evidence(small, data, model)], irl.rewards.default_reward_model(small))
    assert joint.param_names() == ["meta-boltzmann.cost", "meta-boltzmann.depth_cost", "meta-boltzmann.beta"]
    x = torch.tensor([0.83, 0.27, -0.11], dtype=torch.float64, requires_grad=True)
    joint(x).backward()
    eps = 1e-6
    for j in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[j] = eps
        fd = (float(joint(x.detach() + e)) - float(joint(x.detach() - e))) / (2 * eps)
        assert float(x.grad[j]) == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_cost_parameters_are_recovered(small):
    truth = {"cost": 1.4, "depth_cost": 0.5, "beta": 1.5}
    data = demos.simulate(small, hm.MetaBoltzmann(**truth), small.true_reward, n=500, seed=4)
    model = hm.MetaBoltzmann(cost=priors.Gaussian(0, 10), depth_cost=priors.Gaussian(0, 10),
                             beta=priors.LogNormal(0, 2))
    est = irl.MaxEnt(human=model).fit(small, data)
    got = {k.split(".")[1]: v for k, v in est.human_params.items()}
    assert est.converged
    assert got["cost"] == pytest.approx(truth["cost"], abs=0.3)
    assert got["depth_cost"] == pytest.approx(truth["depth_cost"], abs=0.2)
    assert got["beta"] == pytest.approx(truth["beta"], rel=0.2)
    # the right model beats the null by a wide margin on the same data
    null = float(hm.RandomClicks().log_likelihood(small, small.true_reward, data))
    assert est.log_likelihood > null + 100


def test_object_level_values_are_recovered_with_fixed_temperature(small):
    """values='reward': the utility of a point at each depth is the reward, inferred by MaxEnt."""
    truth = np.r_[0.0, 1.0, 1.0, 0.4, 0.4, 1.0, 1.0, 0.4, 0.4]  # leaves count for less than their points
    person = hm.MetaBoltzmann(cost=0.3, depth_cost=0.0, beta=1.0, values="reward")
    data = demos.simulate(small, person, truth, n=500, seed=5)
    model = hm.MetaBoltzmann(cost=priors.Gaussian(0, 5), depth_cost=0.0, beta=1.0, values="reward")
    est = irl.MaxEnt(human=model, reward_model=irl.envs.mouselab.depth_reward_model(small),
                     prior=priors.Gaussian(0, 5)).fit(small, data, init=np.ones(3))
    w = est.theta
    assert est.param_names == ["utility@depth1", "utility@depth2", "utility@depth3"]
    assert w[2] == pytest.approx(0.4, abs=0.15) and w[2] < w[0] - 0.2


def test_amplification_is_better_by_the_true_values(small):
    """A simulated person with a high cost of thinking: re-running their inferred deliberation more cheaply
    chooses paths worth more by the person's true values (the points) on held-out problems."""
    truth = hm.MetaBoltzmann(cost=2.5, depth_cost=0.5, beta=2.0)
    train = demos.simulate(small, truth, small.true_reward, n=300, seed=6)
    held_out = demos.simulate(small, truth, small.true_reward, n=300, seed=7)
    model = hm.MetaBoltzmann(cost=priors.Gaussian(0, 10), depth_cost=priors.Gaussian(0, 10),
                             beta=priors.LogNormal(0, 2))
    est = irl.MaxEnt(human=model).fit(small, train)
    fitted = model.bind(**{k.split(".")[1]: v for k, v in est.human_params.items()})
    rows = {r["setting"]: r for r in hm.amplify(fitted, small, small.true_reward, held_out,
                                                 cost_factors=(1.0, 0.25, 0.0), repeats=10, seed=0)}
    actual = rows["actual"]["mean_value"]
    # the actual choices, judged by the true values, are those recorded in the held-out traces
    assert actual == pytest.approx(np.mean(held_out.path_rewards()))
    # more thinking: more clicks and better choices; full information is the ceiling
    assert rows["cost x 0.25"]["mean_clicks"] > rows["cost x 1"]["mean_clicks"] + 0.5
    assert rows["cost x 0.25"]["mean_value"] > actual + 0.5
    assert rows["cost x 0"]["mean_value"] >= rows["cost x 0.25"]["mean_value"] - 0.2
    assert rows["full information"]["mean_value"] >= rows["cost x 0"]["mean_value"]
    # the re-run at the inferred costs reproduces the person (within noise)
    assert abs(rows["cost x 1"]["mean_value"] - actual) < 0.5


def test_simulate_delegates_and_is_reproducible(small):
    m = hm.MetaBoltzmann(cost=0.5, beta=2.0)
    a = demos.simulate(small, m, small.true_reward, n=40, seed=11)
    b = demos.simulate(small, m, small.true_reward, n=40, seed=11)
    c = demos.simulate(small, m, small.true_reward, n=40, seed=12)
    assert isinstance(a, demos.DeliberationTraces) and a.n_nodes == small.n_states
    assert np.array_equal(a.clicks, b.clicks) and np.array_equal(a.paths, b.paths)
    assert not np.array_equal(a.rewards, c.rewards)
    assert set(a.block.tolist()) == {"simulated"}
    # the path taken is the best one in expectation given what was revealed
    beliefs, actions, trial_of = a.decisions()
    stops = beliefs[actions == 0]
    best = small.meta.path_values(stops).max(axis=1)
    taken = [small.meta.path_values(stops[i:i + 1])[0][
        [list(p[p >= 0]) for p in small.meta.tree.paths].index(a.trial_path(i).tolist())] for i in range(len(a))]
    assert np.allclose(taken, best)


def test_errors(small):
    grid = irl.envs.make("gridworld-5x5")
    with pytest.raises(HumanModelError, match="needs an environment with a meta-level problem.*'gridworld-5x5'"):
        hm.MetaBoltzmann().meta_log_probs(grid, grid.true_reward, np.zeros((1, 25)))
    asym = np.r_[0.0, 1.0, 1.0, 1.0, 0.5, 1.0, 1.0, 1.0, 1.0]
    with pytest.raises(HumanModelError, match="same utility at every node of a depth"):
        hm.MetaBoltzmann(values="reward").meta_log_probs(small, asym, small.meta.initial_beliefs(1))
    with pytest.raises(HumanModelError, match="values must be 'points' or 'reward'"):
        hm.MetaBoltzmann(values="money")
    with pytest.raises(HumanModelError, match="beta must be a finite number > 0"):
        hm.MetaBoltzmann(beta=-1.0)
    with pytest.raises(HumanModelError, match="unknown meta-level solver 'quick'"):
        hm.MetaBoltzmann(solver="quick")
    with pytest.raises(HumanModelError, match="is a prior"):
        hm.MetaBoltzmann(cost=priors.Gaussian(0, 1)).sample(small, small.true_reward, 2, rng=0)
    m = hm.MetaBoltzmann(cost=torch.tensor([1.0, 2.0]), beta=torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(HumanModelError, match="batched parameters must all have shape"):
        m.meta_log_probs(small, small.true_reward, small.meta.initial_beliefs(1))


def test_batched_parameters_give_stacked_results(small):
    b = small.meta.initial_beliefs(2)
    b[1, 3] = 10.0
    batched = hm.MetaBoltzmann(cost=torch.tensor([0.5, 2.0]), beta=torch.tensor([1.0, 0.3])).meta_log_probs(
        small, small.true_reward, b)
    one = hm.MetaBoltzmann(cost=0.5, beta=1.0).meta_log_probs(small, small.true_reward, b)
    two = hm.MetaBoltzmann(cost=2.0, beta=0.3).meta_log_probs(small, small.true_reward, b)
    assert torch.allclose(batched, torch.stack([one, two]))


def test_registry_names():
    m = hm.make("deliberation:cost=2,depth_cost=prior:gaussian(0;5),beta=0.5")
    assert isinstance(m, hm.MetaBoltzmann) and m.cost == 2.0 and m.beta == 0.5
    assert isinstance(m.depth_cost, priors.Gaussian) and list(m.free_parameters()) == ["depth_cost"]
    assert isinstance(hm.make("random-clicks"), hm.RandomClicks)
    assert {"deliberation", "random-clicks"} <= set(hm.names())


def test_cli_simulates_and_fits_deliberation_traces(tmp_path):
    from irl.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["simulate", "--env", "mouselab-312",
                              "--human", "deliberation:cost=3,beta=0.5,solver=myopic",
                              "--n", "60", "--seed", "0", "--out", str(tmp_path / "traces.npz")])
    assert res.exit_code == 0, res.output
    assert "DeliberationTraces(trials=60" in res.output
    data = demos.load(tmp_path / "traces.npz")
    assert isinstance(data, demos.DeliberationTraces) and len(data) == 60
    res = runner.invoke(app, ["simulate", "--env", "mouselab-312", "--human", "deliberation:solver=myopic",
                              "--n", "3", "--out", str(tmp_path / "traces.csv")])
    assert res.exit_code == 0 and len(demos.load(tmp_path / "traces.csv")) == 3
    res = runner.invoke(app, ["fit", str(tmp_path / "traces.npz"), "--env", "mouselab-312", "--quiet",
                              "--human", "deliberation:solver=myopic,cost=prior:gaussian(0;10),"
                                         "beta=prior:lognormal(0;1)", "--out", str(tmp_path / "fit.npz")])
    assert res.exit_code == 0, res.output
    est = irl.RewardEstimate.load(str(tmp_path / "fit.npz"))
    assert est.info["evidence"] == ["DeliberationTraces"] and est.theta.size == 0
    assert est.human_params["meta-boltzmann.cost"] == pytest.approx(3.0, abs=1.0)
    # a deliberation model on an environment without a meta-level problem: one clean line
    res = runner.invoke(app, ["simulate", "--env", "gridworld-5x5", "--human", "deliberation", "--n", "2",
                              "--out", str(tmp_path / "x.npz")])
    assert res.exit_code != 0 and "meta-level problem" in res.stderr and "Traceback" not in res.output


@pytest.mark.slow
def test_recovery_and_amplification_on_the_312_tree():
    """The exact solver of the real task: recovery of both costs and amplification gains (about a minute)."""
    env = irl.envs.make("mouselab-312")
    truth = hm.MetaBoltzmann(cost=4.0, depth_cost=1.0, beta=0.5)
    train = demos.simulate(env, truth, env.true_reward, n=200, seed=0)
    held_out = demos.simulate(env, truth, env.true_reward, n=100, seed=1)
    model = hm.MetaBoltzmann(cost=priors.Gaussian(0, 10), depth_cost=priors.Gaussian(0, 10),
                             beta=priors.LogNormal(0, 2))
    est = irl.MaxEnt(human=model).fit(env, train)
    got = {k.split(".")[1]: v for k, v in est.human_params.items()}
    assert got["cost"] == pytest.approx(4.0, abs=1.0) and got["depth_cost"] == pytest.approx(1.0, abs=0.5)
    rows = {r["setting"]: r for r in hm.amplify(model.bind(**got), env, env.true_reward, held_out,
                                                 cost_factors=(0.25,), repeats=5)}
    assert rows["cost x 0.25"]["mean_value"] > rows["actual"]["mean_value"] + 2
    assert rows["full information"]["mean_value"] > rows["cost x 0.25"]["mean_value"]


def test_irl_compare_ranks_the_generating_model_above_the_null(small):
    """The generic model comparison takes deliberation models, the parameter-free null included."""
    data = demos.simulate(small, hm.MetaBoltzmann(cost=0.9, depth_cost=0.3, beta=1.5), small.true_reward, n=120,
                          seed=9)
    rows = irl.compare({"null": hm.RandomClicks(),
                        "effort": hm.MetaBoltzmann(cost=priors.Gaussian(0, 5), beta=priors.LogNormal(0, 1)),
                        "depth": hm.MetaBoltzmann(cost=priors.Gaussian(0, 5), depth_cost=priors.Gaussian(0, 5),
                                                  beta=priors.LogNormal(0, 1))},
                       small, data.subset(slice(0, 80)), data.subset(slice(80, None)))
    by = {r.name: r for r in rows}
    assert rows[-1].name == "null" and by["null"].n_params == 0
    assert by["depth"].held_out_log_likelihood > by["null"].held_out_log_likelihood + 20
    assert by["null"].estimate.log_likelihood == pytest.approx(
        float(hm.RandomClicks().log_likelihood(small, small.true_reward, data.subset(slice(0, 80)))))


@pytest.mark.slow  # about 100 s: HMC through the envelope of exact meta-level solves, end to end in the CLI
def test_cli_bayes_samples_deliberation_models_through_an_envelope(tmp_path):
    """`irl fit --solver bayes` on traces: MAP start, HMC on envelope Q-values checked against exact solves.

    Plain HMC would solve the 13-node meta-level MDP at every leapfrog step (hours); measured on
    60 simulated trials with 200 + 200 iterations x 2 chains: 81 s, 90% intervals cost [0.40, 1.19],
    depth_cost [0.36, 0.70], beta [0.85, 1.43] around the truth (1, 0.5, 1). Here a short run.
    """
    from irl.cli import _samples_through_envelope, app

    env = irl.envs.make("mouselab-312")
    truth = hm.MetaBoltzmann(cost=1.0, depth_cost=0.5, beta=1.0)
    data = demos.simulate(env, truth, env.true_reward, n=60, seed=0)
    path = tmp_path / "traces.npz"
    data.save(str(path))
    spec = "deliberation:cost=prior:gaussian(1;20),depth_cost=prior:gaussian(0;10),beta=prior:lognormal(-1;1.5)"
    exact = hm.make(spec)
    assert _samples_through_envelope([irl.Evidence(env, data, exact)])
    assert not _samples_through_envelope([irl.Evidence(env, data, exact.with_solver("myopic"))])
    assert not _samples_through_envelope([irl.Evidence(env, data, exact)] * 2)
    runner = CliRunner()
    args = ["fit", str(path), "--env", "mouselab-312", "--human", spec, "--solver", "bayes", "--samples", "40",
            "--warmup", "40", "--chains", "2", "--quiet", "--out", str(tmp_path / "post.npz")]
    res = runner.invoke(app, args + ["--resume"])
    assert res.exit_code == 2 and "not checkpointed" in res.stderr
    res = runner.invoke(app, args + ["--allow-unconverged"])  # 2 x 40 draws: a short run, not a converged one
    assert res.exit_code == 0, res.output
    post = irl.Posterior.load(str(tmp_path / "post.npz"))
    assert post.info["envelope_rounds"] >= 1 and post.n_chains == 2 and post.n_draws == 40
    means = {k.split(".")[1]: float(np.mean(v)) for k, v in post.human.items()}
    assert 0.2 < means["cost"] < 2.0 and 0.2 < means["depth_cost"] < 0.9 and 0.6 < means["beta"] < 1.6, means
