"""irl.adapters: the inferred-reward gymnasium wrapper and the ArviZ export."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import demos
import human_models as hm
import irl
import priors

gym = pytest.importorskip("gymnasium")


def _lake():
    return gym.make("FrozenLake-v1", is_slippery=False)


# ------------------------------------------------------------------ the wrapper
@pytest.mark.parametrize("shape", ["s", "sa", "sas"])
def test_wrapper_pays_the_inferred_reward_of_each_shape(shape):
    from irl.adapters import InferredRewardWrapper

    rng = np.random.default_rng(0)
    r = {"s": rng.normal(size=16), "sa": rng.normal(size=(16, 4)), "sas": rng.normal(size=(16, 4, 16))}[shape]
    env = InferredRewardWrapper(_lake(), r)
    obs, _ = env.reset(seed=0)
    path = [(1, 4), (1, 8), (2, 9), (2, 10), (1, 14)]  # down, down, right, right, down: deterministic moves
    s = obs
    for a, s_next in path:
        obs, reward, terminated, truncated, info = env.step(a)
        assert obs == s_next
        want = r[s] if shape == "s" else r[s, a] if shape == "sa" else r[s, a, s_next]
        assert reward == want and info["original_reward"] == 0.0
        s = obs
    obs, reward, terminated, truncated, info = env.step(2)  # into the goal: the environment pays 1
    assert obs == 15 and terminated and info["original_reward"] == 1.0


def test_wrapper_from_an_estimate_and_a_posterior():
    from irl.adapters import InferredRewardWrapper

    mdp = irl.envs.make("frozenlake-4x4")
    data = demos.simulate(mdp, hm.Boltzmann(5.0), irl.envs.true_reward(mdp), n=40, seed=0)
    est = irl.MaxEnt(human=hm.Boltzmann(5.0), reward_model=irl.rewards.TabularReward(16, 4)).fit(mdp, data)
    env = InferredRewardWrapper(_lake(), est)
    np.testing.assert_array_equal(env.reward, est.reward)
    post = irl.Posterior(theta=np.random.default_rng(1).normal(size=(2, 30, 16)),
                         reward_mean=np.arange(16.0)[:, None] * np.ones(4))
    env = InferredRewardWrapper(_lake(), post)
    assert env.mode == "mean"
    env.reset(seed=0)
    assert env.step(2)[1] == 0.0 and env.step(2)[1] == 1.0  # r(s=0) then r(s=1) of the posterior mean


def test_sample_mode_draws_a_reward_per_episode():
    import torch
    from irl.adapters import InferredRewardWrapper

    theta = np.random.default_rng(2).normal(size=(2, 25, 16))
    post = irl.Posterior(theta=theta)
    env = InferredRewardWrapper(_lake(), post, mode="sample", reward_model=lambda th: th, seed=0)
    seen = set()
    for episode in range(6):
        obs, info = env.reset(seed=episode)
        k = info["posterior_draw"]
        seen.add(k)
        _, r, *_, step_info = env.step(2)
        assert r == theta.reshape(-1, 16)[k, 0] and step_info["posterior_draw"] == k
    assert len(seen) > 1
    # the same seed gives the same draws (a tensor-returning reward model works too)
    one, two = (InferredRewardWrapper(_lake(), post, mode="sample", reward_model=torch.as_tensor, seed=0)
                for _ in range(2))
    assert [one.reset()[1]["posterior_draw"] for _ in range(6)] == [two.reset()[1]["posterior_draw"] for _ in range(6)]


def test_wrapper_errors():
    from irl.adapters import InferredRewardWrapper

    with pytest.raises(ValueError, match="the reward has 9 states but the environment's observation space has 16"):
        InferredRewardWrapper(_lake(), np.zeros(9))
    with pytest.raises(ValueError, match="the reward has 3 actions but the environment's action space has 4"):
        InferredRewardWrapper(_lake(), np.zeros((16, 3)))
    with pytest.raises(ValueError, match="unknown mode 'best'; known: \\['point', 'mean', 'sample'\\]"):
        InferredRewardWrapper(_lake(), np.zeros(16), mode="best")
    with pytest.raises(ValueError, match="mode='sample' draws from a posterior"):
        InferredRewardWrapper(_lake(), np.zeros(16), mode="sample")
    with pytest.raises(ValueError, match="mode='sample' of a loaded posterior needs reward_model="):
        InferredRewardWrapper(_lake(), irl.Posterior(theta=np.zeros((1, 3, 16))), mode="sample")
    with pytest.raises(ValueError, match="must be finite"):
        InferredRewardWrapper(_lake(), np.full(16, np.nan))
    with pytest.raises(ValueError, match="observation space must be Discrete"):
        InferredRewardWrapper(gym.make("CartPole-v1"), np.zeros(16))


# ------------------------------------------------------------------ ArviZ
def test_arviz_export_and_loo_agree_with_ours():
    az = pytest.importorskip("arviz")
    from irl.compare import psis_loo

    env = irl.envs.make("gridworld-5x5")
    data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=15, seed=0)
    h = hm.Boltzmann(2.0)
    post = irl.BayesianIRL(human=h, prior=priors.Gaussian(0.0, 1.0)).fit(env, data, samples=200, chains=2, seed=0,
                                                                         progress=False, check=False)
    idata = irl.adapters.to_arviz(post, env, data, h)
    assert idata.posterior["theta"].shape == (2, 200, len(post.param_names))
    assert list(idata.posterior["theta"].coords["reward_param"].values) == post.param_names
    assert idata.log_likelihood["obs"].shape == (2, 200, 15)
    assert int(idata.sample_stats["diverging"].sum()) == post.info["divergences"]
    np.testing.assert_allclose(idata.sample_stats["lp"].values, post.log_density)
    ll = idata.log_likelihood["obs"].values
    ours = psis_loo(ll.reshape(-1, 15))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ArviZ's advice on large Pareto k
        theirs = az.loo(idata, pointwise=True)
    # Monte Carlo error of the estimate, from the spread of the two chains' own estimates
    per_chain = [psis_loo(ll[c]).elpd for c in range(2)]
    mcse = abs(per_chain[0] - per_chain[1]) / 2
    assert abs(ours.elpd - float(theirs.elpd_loo)) <= max(3 * mcse, 0.05), (ours.elpd, float(theirs.elpd_loo), mcse)
    assert abs(ours.se - float(theirs.se)) < 0.05 * ours.se
    np.testing.assert_allclose(ours.pointwise, theirs.loo_i.values, atol=max(3 * mcse, 0.05))


def test_to_arviz_shape_errors():
    pytest.importorskip("arviz")
    post = irl.Posterior(theta=np.zeros((2, 10, 3)))
    with pytest.raises(ValueError, match=r"log_likelihood must have shape \(2, 10, n\) or \(20, n\)"):
        post.to_arviz(log_likelihood=np.zeros((7, 4)))
    idata = post.to_arviz()
    assert "log_likelihood" not in idata.groups() and idata.posterior["theta"].shape == (2, 10, 3)
