"""Shared norms (irl.norms): a hierarchical reward r_i = r_shared + r_own_i fitted to several agents at once.

Checks: the parameter layout and rewards per agent; exact gradients of the log-joint w.r.t. the shared,
own and group parameters (finite differences); that one LogJoint mechanism serves MaxEnt and Bayesian IRL;
identifiability (overlap of the blocks, the warning without a prior); bad input; and the two claims of the
feature, with margins from measured runs (benchmarks/bench_norms.py): the norm learned from all agents lets a
new agent with a new goal do better than the norm learned from any single agent, and partial pooling beats
separate fits when each participant gave few demonstrations.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import demos
import human_models as hm
import irl
import priors
from irl.envs import park
from irl.norms import NonIdentifiedWarning, SharedReward, select_features, transfer_evd

TRAIN = ["A", "B", "C", "D"]


def park_evidence(env, agents, n, seed, beta=3.0):
    return [irl.Evidence(env, demos.simulate(env, hm.Boltzmann(beta), park.agent_reward(env, g), n=n,
                                             seed=seed * 100 + k), hm.Boltzmann(beta), agent=g)
            for k, g in enumerate(agents)]


@pytest.fixture(scope="module")
def env():
    return irl.envs.make("park")


def test_layout_and_rewards(env):
    m = SharedReward.from_features(env, shared=park.NORM_FEATURES, own=park.GOAL_FEATURES, agents=["A", "B"])
    assert m.n_params == 2 + 2 * 6 and m.param_names()[:3] == ["shared.lawn", "shared.flowers", "A.goal_A"]
    theta = torch.zeros(m.n_params, dtype=torch.float64)
    theta[:2] = torch.tensor([-1.0, -2.5])
    theta[2] = 1.0          # A's weight on goal_A
    theta[2 + 6 + 1] = 1.0  # B's weight on goal_B
    r = m.agent_rewards(theta)
    assert r.shape == (2, env.n_states, env.n_actions)
    np.testing.assert_allclose(r[0, :, 0].numpy(), park.agent_reward(env, "A"))
    np.testing.assert_allclose(m.agent_reward(theta, "B")[:, 0].numpy(), park.agent_reward(env, "B"))
    np.testing.assert_allclose(m(theta)[:, 0].numpy(), env.true_reward)  # the population reward is the norm
    batch = torch.stack([theta, 2 * theta])
    assert torch.allclose(m.agent_rewards(batch)[1], 2 * r) and m.homogeneous
    with pytest.raises(KeyError, match="unknown agent 'Z'; known: A, B"):
        m.agent_reward(theta, "Z")


def test_pooled_layout():
    env = irl.envs.make("gridworld-5x5")
    lin = irl.rewards.LinearReward.from_mdp(env)
    m = SharedReward(None, lin, ["p1", "p2", "p3"], pooling=True)
    assert m.n_params == 4 * 5 and not m.homogeneous
    assert m.param_names()[:1] == ["mean.goal"] and m.param_names()[4] == "log_scale.goal"
    assert m.param_names()[8] == "p1.z.goal"
    theta = torch.randn(2, m.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    parts = m.split(theta)
    own = parts["mean"][:, None, :] + torch.exp(theta[:, 4:8])[:, None, :] * theta[:, 8:].reshape(2, 3, 4)
    assert torch.allclose(parts["own"], own)
    assert torch.allclose(m.agent_rewards(theta), lin(own))
    assert torch.allclose(m(theta), lin(parts["mean"]))  # the population reward: the group mean's


def test_gradient_of_log_joint_wrt_shared_own_and_group_parameters(env):
    evs = park_evidence(env, ["A", "B"], n=3, seed=0)
    m = SharedReward.from_features(env, shared=park.NORM_FEATURES, own=park.GOAL_FEATURES, agents=["A", "B"])
    joint = irl.LogJoint(evs, m, m.prior())
    x = torch.randn(joint.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: joint(t), (x,), eps=1e-6, atol=1e-6, rtol=1e-5)
    # the same with partial pooling (mean, log-scale and offsets) and an inferred rationality
    grid = irl.envs.make("gridworld-5x5")
    d = [demos.simulate(grid, hm.Boltzmann(2.0), grid.true_reward, n=2, seed=s) for s in range(2)]
    human = hm.Boltzmann(beta=priors.LogNormal(0.5, 0.5))
    pooled = SharedReward(select_features(grid, ["mud", "water"]), select_features(grid, ["goal", "plain"]),
                          ["p", "q"], pooling=True)
    joint = irl.LogJoint([irl.Evidence(grid, d[0], human, agent="p"), irl.Evidence(grid, d[1], human, agent="q")],
                         pooled, pooled.prior())
    x = 0.5 * torch.randn(joint.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x.requires_grad_(True)
    assert joint.dim == 2 + 2 * 4 + 1
    assert torch.autograd.gradcheck(lambda t: joint(t), (x,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_log_joint_sums_each_agent_under_its_own_reward(env):
    evs = park_evidence(env, ["A", "B"], n=4, seed=3)
    m = SharedReward.from_features(env, shared=park.NORM_FEATURES, own=park.GOAL_FEATURES, agents=["A", "B"])
    theta = torch.randn(m.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    joint = irl.LogJoint(evs, m)
    want = sum(ev.log_likelihood(m.agent_reward(theta, ev.agent)) for ev in evs)
    assert torch.allclose(joint.log_likelihood(theta), want)
    # batched over leading axes like every log-joint (chains of a sampler)
    batch = torch.stack([theta, -theta])
    assert torch.allclose(joint.log_likelihood(batch)[0], want)


def test_prior_blocks():
    grid = irl.envs.make("gridworld-5x5")
    m = SharedReward(select_features(grid, ["mud"]), select_features(grid, ["goal"]), ["a", "b"])
    p = m.prior(shared=priors.Laplace(0, 2), own=priors.Gaussian(0, 3))
    theta = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    want = priors.Laplace(0, 2).log_prob(theta[:1]) + priors.Gaussian(0, 3).log_prob(theta[1:])
    assert torch.allclose(p.log_prob(theta), want)
    pm = SharedReward(None, select_features(grid, ["goal", "mud"]), ["a", "b"], pooling=True)
    pp = pm.prior(mean=priors.Gaussian(0, 2), scale=priors.HalfNormal(0.5))
    x = torch.tensor([0.3, -0.2, np.log(0.4), 0.1, 1.0, -1.0, 0.5, 0.2], dtype=torch.float64)
    tau = torch.exp(x[2:4])
    want = (priors.Gaussian(0, 2).log_prob(x[:2]) + (torch.distributions.HalfNormal(torch.tensor(0.5, dtype=torch.float64))
            .log_prob(tau) + x[2:4]).sum() + torch.distributions.Normal(0.0, 1.0).log_prob(x[4:]).sum())
    assert torch.allclose(pp.log_prob(x), want)


def test_overlap_and_identifiability_warning(env):
    m = SharedReward.from_features(env, shared=park.NORM_FEATURES, own=park.GOAL_FEATURES, agents=["A"])
    assert m.overlap() == 0  # disjoint, independent features: the split is identified
    tab = irl.rewards.TabularReward(env.n_states, env.n_actions)
    both = SharedReward(select_features(env, list(park.NORM_FEATURES)), tab, ["A"])
    assert both.overlap() == 2  # everything the norm expresses, a tabular own block can too
    evs = park_evidence(env, ["A"], n=2, seed=0)
    with pytest.warns(NonIdentifiedWarning, match="2 direction"):
        irl.LogJoint(evs, both)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        irl.LogJoint(evs, both, both.prior())  # a prior decides the split: no warning
        irl.LogJoint(evs, m)  # identified without a prior


def test_bad_input(env):
    evs = park_evidence(env, ["A"], n=2, seed=0)
    m = SharedReward.from_features(env, shared=park.NORM_FEATURES, own=park.GOAL_FEATURES, agents=["A", "B"])
    unlabelled = irl.Evidence(env, evs[0].observation, hm.Boltzmann(3.0))
    with pytest.raises(ValueError, match=r"evidence 1 has agent=None.*agents \['A', 'B'\].*agent='A'"):
        irl.LogJoint([evs[0], unlabelled], m)
    stranger = irl.Evidence(env, evs[0].observation, hm.Boltzmann(3.0), agent="Z")
    with pytest.raises(ValueError, match="evidence 0 has agent='Z'"):
        irl.MaxEnt(reward_model=m).fit([stranger])
    with pytest.raises(TypeError, match="Evidence.agent must be a non-empty string"):
        irl.Evidence(env, evs[0].observation, hm.Boltzmann(3.0), agent=3)
    with pytest.raises(ValueError, match="distinct: \\['A'\\]"):
        SharedReward.from_features(env, shared=None, own=park.GOAL_FEATURES, agents=["A", "A"])
    with pytest.raises(ValueError, match="non-empty list of non-empty strings"):
        SharedReward.from_features(env, shared=None, own=park.GOAL_FEATURES, agents=[])
    with pytest.raises(irl.MDPValidationError, match=r"\['grass'\] are not features of 'park'; known: \['lawn'"):
        select_features(env, ["grass"])
    pooled = SharedReward.from_features(env, shared=park.NORM_FEATURES, own=park.GOAL_FEATURES, agents=["A"],
                                        pooling=True)
    with pytest.raises(ValueError, match="pooling=True\\) needs its own hierarchical prior"):
        irl.LogJoint(evs, pooled, priors.Gaussian(0, 1))
    with pytest.raises(ValueError, match="scale prior of partial pooling must be a prior on positive values"):
        pooled.prior(scale=priors.Gaussian(0, 1))
    with pytest.raises(ValueError, match="give mean= and scale="):
        pooled.prior(own=priors.Gaussian(0, 1))
    with pytest.raises(ValueError, match="pooling=True"):
        m.prior(scale=priors.HalfNormal(1.0))
    with pytest.raises(ValueError, match=r"goals \(K, \*that shape\): got norm \(100,\), true_norm \(100,\), goals \(100,\)"):
        transfer_evd(env, env.true_reward, env.true_reward, env.true_reward)
    other = irl.rewards.TabularReward(4, 2)
    with pytest.raises(ValueError, match="same \\(S, A\\)"):
        SharedReward(other, irl.rewards.TabularReward(5, 2), ["a"])


def fit_norm(env, evidence):
    model = SharedReward.from_features(env, shared=park.NORM_FEATURES, own=park.GOAL_FEATURES,
                                       agents=[ev.agent for ev in evidence])
    return irl.MaxEnt(reward_model=model, prior=model.prior()).fit(evidence).reward[:, 0]


def new_goals(env):
    """Every third path cell that is none of the training agents' landmarks: new agents with new goals."""
    train = env.features[:, 2:6].sum(1)
    cells = np.flatnonzero((env.true_reward == 0) & (train == 0) & (env.initial > 0))[::3]
    return np.eye(env.n_states)[cells]


@pytest.mark.parametrize("seed", [0, 1])
def test_norm_from_all_agents_serves_a_new_agent_better_than_from_any_single_agent(env, seed):
    # measured (benchmarks/bench_norms.py, 5 demonstrations per agent, all 72 new goals): joint EVD 0.089 and 0.074
    # against 0.137 and 0.117 for the best single agent (seeds 0, 1); 6 of 6 seeds won, mean 0.100 vs 0.135.
    evidence = park_evidence(env, TRAIN, n=5, seed=seed)
    goals = new_goals(env)
    joint = transfer_evd(env, fit_norm(env, evidence), env.true_reward, goals).mean()
    single = [transfer_evd(env, fit_norm(env, [ev]), env.true_reward, goals).mean() for ev in evidence]
    no_norm = transfer_evd(env, np.zeros(env.n_states), env.true_reward, goals).mean()
    assert joint < 0.8 * min(single), (joint, single)
    assert joint < 0.1 * no_norm


def pooling_study(env, n_people, few, seed, tau=0.3, beta=2.0):
    """Participants with weights around a population mean; features relative to "plain" (a constant is no policy)."""
    terrain = select_features(env, ["goal", "mud", "water"])
    W = np.array([1.0, 0.0, -0.3, -1.0]) + tau * np.random.default_rng(seed).normal(size=(n_people, 4))
    people = [f"p{i}" for i in range(n_people)]
    study = [irl.Evidence(env, demos.simulate(env, hm.Boltzmann(beta), env.features @ W[i], n=few,
                                              seed=seed * 1000 + i), hm.Boltzmann(beta), agent=p)
             for i, p in enumerate(people)]
    separate = np.stack([irl.MaxEnt(reward_model=terrain, prior=priors.Gaussian(0, 1)).fit([ev]).theta
                         for ev in study])
    G = terrain.features[:, 0, :].numpy()

    def evd(w):
        return np.mean([irl.metrics.expected_value_difference(env, irl.plan(env, G @ w[i]), env.features @ W[i])
                        for i in range(n_people)])
    return SharedReward(None, terrain, people, pooling=True), study, separate, evd


def test_partial_pooling_map_beats_separate_fits_on_average():
    # measured (benchmarks/bench_norms.py, gridworld-8x8, 8 participants, 3 demonstrations each, spread 0.3), mean
    # EVD over seeds 0-2: separate 0.70, pooled MAP 0.24 (a participant set where separate fits fail, 1.66, weighs
    # in); over 10 seeds 0.30 against 0.13 (medians 0.13 and 0.07), though pooled wins in only 4 of 10 seeds: the
    # MAP group scale sits near its prior's mode (about 1.5, true 0.3), so the MAP pools weakly (see the slow test)
    env = irl.envs.make("gridworld-8x8")
    separate, pooled = [], []
    for seed in range(3):
        model, study, sep, evd = pooling_study(env, 8, 3, seed)
        est = irl.MaxEnt(reward_model=model, prior=model.prior()).fit(study)
        separate.append(evd(sep))
        pooled.append(evd(model.split(est.theta)["own"].numpy()))
    assert np.mean(pooled) < 0.6 * np.mean(separate), (pooled, separate)


@pytest.mark.slow
def test_partial_pooling_posterior_beats_separate_fits_and_recovers_the_spread():
    # measured (bench_norms.py --only pooling --pool-env gridworld-5x5 --participants 6 --few 4 --bayes), seed 0:
    # EVD separate 0.034, pooled posterior mean 0.0245 (4 of 4 seeds won, mean 0.037 vs 0.084); posterior-mean group
    # scale 0.34-0.64 (true 0.3; MAP 1.2-1.6)
    env = irl.envs.make("gridworld-5x5")
    model, study, sep, evd = pooling_study(env, 6, 4, seed=0)
    post = irl.BayesianIRL(reward_model=model, prior=model.prior(), max_leapfrog=16).fit(
        study, samples=200, warmup=200, chains=2, seed=0, check=False)
    draws = model.split(torch.from_numpy(post.theta.reshape(-1, model.n_params)))
    assert evd(draws["own"].mean(0).numpy()) < 0.85 * evd(sep)
    assert (draws["scale"].mean(0).numpy() < 0.9).all()


def test_bayesian_irl_samples_the_same_log_joint(env):
    """HMC on the hierarchical reward: the same LogJoint as MaxEnt; the norm's posterior is negative on both."""
    evidence = park_evidence(env, TRAIN, n=5, seed=0)
    model = SharedReward.from_features(env, shared=park.NORM_FEATURES, own=park.GOAL_FEATURES, agents=TRAIN)
    solver = irl.BayesianIRL(reward_model=model, prior=model.prior(), max_leapfrog=8)
    joint = solver.log_joint(evidence)
    x = torch.randn(joint.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(joint(x), irl.LogJoint(evidence, model, model.prior())(x))
    post = solver.fit(evidence, samples=30, warmup=30, chains=2, seed=0, check=False)
    assert post.theta.shape == (2, 30, model.n_params) and post.param_names[:2] == ["shared.lawn", "shared.flowers"]
    norm = post.theta[..., :2].reshape(-1, 2).mean(0)
    assert (norm < -0.3).all(), norm
    np.testing.assert_allclose(post.reward_mean[:, 0], env.features[:, :2] @ norm, atol=1e-9)  # population = norm
    # the predictive policy of an evidence item is its agent's (not the population's)
    th = torch.from_numpy(post.theta.reshape(-1, model.n_params))
    want = hm.Boltzmann(3.0).action_log_probs(env, model.agent_reward(th, "B")).exp().mean(0).numpy()
    np.testing.assert_allclose(post.predictive_policy(draws=None, evidence=1), want, atol=1e-12)


def test_inferred_rationality_and_the_scale_reparameterisation(env):
    """Human parameters given as priors sit after the reward blocks; HMC's scale coordinates apply (homogeneous)."""
    from irl.solvers.bayesian import ScaleReparam

    human = hm.Boltzmann(beta=priors.LogNormal(1.0, 0.5))
    evidence = [irl.Evidence(env, ev.observation, human, agent=ev.agent) for ev in park_evidence(env, TRAIN, 5, 0)]
    model = SharedReward.from_features(env, shared=park.NORM_FEATURES, own=park.GOAL_FEATURES, agents=TRAIN)
    est = irl.MaxEnt(reward_model=model, prior=model.prior()).fit(evidence)
    assert est.converged and est.theta.shape == (model.n_params,) and "boltzmann.beta" in est.human_params
    assert (est.theta[:2] < 0).all()
    joint = irl.LogJoint(evidence, model, model.prior())
    assert ScaleReparam.find(joint) is not None  # linear blocks without pooling: reward(c theta) = c reward(theta)
    pooled = SharedReward.from_features(env, shared=park.NORM_FEATURES, own=park.GOAL_FEATURES, agents=TRAIN,
                                        pooling=True)
    assert ScaleReparam.find(irl.LogJoint(evidence, pooled, pooled.prior())) is None


def test_cli_fit_norms(env, tmp_path):
    from typer.testing import CliRunner

    from irl.cli import app

    files = []
    for k, g in enumerate(TRAIN):
        path = tmp_path / f"{g}.npz"
        demos.simulate(env, hm.Boltzmann(3.0), park.agent_reward(env, g), n=5, seed=k).save(str(path))
        files.append(str(path))
    out = tmp_path / "norms.npz"
    res = CliRunner().invoke(app, ["fit-norms", *files, "--env", "park", "--shared", "lawn,flowers", "--own",
                                   ",".join(park.GOAL_FEATURES), "--human", "boltzmann:beta=3", "--quiet",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "shared.lawn" in res.output and "D.goal_D" in res.output
    est = irl.RewardEstimate.load(str(out))
    # the same numbers as the Python fit of the tutorial (agents labelled by the file names)
    evidence = park_evidence(env, TRAIN, n=5, seed=0)
    np.testing.assert_allclose(est.reward[:, 0], fit_norm(env, evidence), atol=1e-6)
    assert est.param_names[:2] == ["shared.lawn", "shared.flowers"] and est.info["agents"] == TRAIN
    bad = CliRunner().invoke(app, ["fit-norms", *files[:2], "--env", "park", "--shared", "grass", "--own", "goal_A",
                                   "--out", str(out)])
    assert bad.exit_code == 2 and "--shared 'grass'" in bad.output and "lawn, flowers" in bad.output
    bad = CliRunner().invoke(app, ["fit-norms", *files[:2], "--env", "park", "--own", "goal_A", "--agent", "x",
                                   "--out", str(out)])
    assert bad.exit_code == 2 and "--agent was given 1 times for 2 files" in bad.output


@pytest.mark.parametrize("extra, message", [
    (["--samples", "5", "--chains", "2"], "--samples, --chains only apply to sampling solvers (bayes), not --solver maxent"),
    (["--warmup", "5"], "--warmup only applies to sampling solvers (bayes), not --solver maxent"),
    (["--seed", "1"], "--seed only applies to sampling solvers (bayes), not --solver maxent"),
])
def test_cli_fit_norms_refuses_sampling_options_with_maxent(env, tmp_path, extra, message):
    from typer.testing import CliRunner

    from irl.cli import app

    path = tmp_path / "A.npz"
    demos.simulate(env, hm.Boltzmann(3.0), park.agent_reward(env, "A"), n=2, seed=0).save(str(path))
    out = tmp_path / "norms.npz"
    res = CliRunner().invoke(app, ["fit-norms", str(path), "--env", "park", "--own", "goal_A", *extra, "--quiet",
                                   "--out", str(out)])
    assert res.exit_code == 2 and res.stderr.strip() == f"Error: {message}", res.output
    assert not out.exists()


def test_cli_fit_norms_names_the_data_file_that_does_not_fit(env, tmp_path):
    from typer.testing import CliRunner

    from irl.cli import app

    good, other = tmp_path / "A.npz", tmp_path / "other.npz"
    demos.simulate(env, hm.Boltzmann(3.0), park.agent_reward(env, "A"), n=2, seed=0).save(str(good))
    g8 = irl.envs.make("gridworld-8x8")
    demos.simulate(g8, hm.Boltzmann(3.0), g8.true_reward, n=2, seed=0).save(str(other))
    res = CliRunner().invoke(app, ["fit-norms", str(good), str(other), "--env", "park", "--own", "goal_A", "--quiet",
                                   "--out", str(tmp_path / "norms.npz")])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    msg = res.stderr.strip()
    assert msg.startswith(f"Error: {other}: ") and "first check that --env is the environment" in msg, msg
    assert "--horizon" not in msg  # fit-norms has no --horizon to suggest


@pytest.mark.parametrize("sampler", ["policywalk", "nuts"])
def test_other_samplers_take_the_same_model(env, sampler):
    if sampler == "nuts":
        pytest.importorskip("pyro")
    evidence = park_evidence(env, ["A", "B"], n=5, seed=0)
    model = SharedReward.from_features(env, shared=park.NORM_FEATURES, own=["goal_A", "goal_B"], agents=["A", "B"])
    post = irl.BayesianIRL(reward_model=model, prior=model.prior(), sampler=sampler).fit(
        evidence, samples=8, warmup=8, chains=2, seed=0, check=False)
    assert post.theta.shape == (2, 8, model.n_params) and np.isfinite(post.log_density).all()
