"""Maximum-entropy IRL: recovery, the log-joint and its gradient, the result object.

Recovery is judged the way the design asks: by how the planner does under the
true reward (expected value difference, EVD), since rewards are identifiable
only up to shaping and scale; parameter closeness is checked only where the
parametrisation makes it meaningful (a linear reward with beta known).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import demos
import human_models as hm
import irl
import priors
from human_models.base import BaseHumanModel
from irl.rewards import LinearReward, TabularReward

TRUE_W = np.array([1.0, 0.0, -0.3, -1.0])  # gridworld weights for (goal, plain, mud, water)


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def grid():
    env = irl.envs.make("gridworld-8x8")
    truth = irl.envs.true_reward(env)
    data = demos.simulate(env, hm.Boltzmann(beta=5.0), truth, n=200, seed=0)
    return env, truth, data


@pytest.fixture(scope="module")
def grid_fit(grid):
    env, _, data = grid
    return irl.MaxEnt(human=hm.Boltzmann(beta=5.0)).fit(env, data)


def _evd_fraction(env, reward, truth) -> tuple[float, float]:
    policy = irl.plan(env, reward)
    evd = irl.metrics.expected_value_difference(env, policy, truth)
    v_opt = irl.metrics.optimal_return(env, truth)
    return evd / abs(v_opt), v_opt


# ------------------------------------------------------------------ recovery
def test_recovery_gridworld_8x8(grid, grid_fit):
    env, truth, data = grid
    est = grid_fit
    assert est.converged
    frac, v_opt = _evd_fraction(env, est.reward, truth)
    assert v_opt > 0
    assert 0.0 <= frac < 0.02, f"EVD is {100 * frac:.4f}% of the optimal value {v_opt:.4f}"
    # the test is not vacuous: acting on a wrong reward (flipped sign) is far from optimal
    bad, _ = _evd_fraction(env, -truth, truth)
    assert bad > 0.5
    # and the inferred reward orders the cells like the truth does
    assert irl.metrics.reward_correlation(env, est.reward, truth) > 0.95


def test_theta_direction_gridworld_8x8(grid_fit):
    theta = grid_fit.theta
    # the one-hot terrain features sum to 1 in every cell, and every episode lasts the full horizon,
    # so adding a constant to all weights changes no policy: that direction is not identified, and the
    # fit (started at 0, with gradients orthogonal to it) must not move along it
    assert abs(theta.sum()) < 1e-6
    cos = theta @ TRUE_W / (np.linalg.norm(theta) * np.linalg.norm(TRUE_W))
    centred = TRUE_W - TRUE_W.mean()
    cos_identified = theta @ centred / (np.linalg.norm(theta) * np.linalg.norm(centred))
    assert cos > 0.95 and cos_identified > 0.95, (cos, cos_identified)
    # with beta known the scale is identified too
    assert np.linalg.norm(theta) == pytest.approx(np.linalg.norm(centred), rel=0.25)


def test_recovery_frozenlake():
    """FrozenLake has no features: a tabular state reward with a Gaussian prior.

    gymnasium pays 1 for the move that enters the goal. In this library a terminal
    state pays its own reward once on arrival, so "1 in the goal state" is the same
    task as gymnasium's reward; a *state* reward with one parameter per cell is
    therefore a well-specified family (16 parameters, rather than 64 for state-action
    rewards, which are identified only up to shaping). The Gaussian prior keeps the
    rewards of rarely visited cells bounded, so the MAP estimate always exists.
    """
    env = irl.envs.make("frozenlake-4x4")
    truth = irl.envs.true_reward(env)
    human = hm.Boltzmann(beta=20.0)
    data = demos.simulate(env, human, truth, n=200, seed=0)
    model = TabularReward(env.n_states, env.n_actions, state_only=True)
    est = irl.MaxEnt(human=human, reward_model=model, prior=priors.Gaussian(0.0, 1.0)).fit(env, data)
    assert est.converged
    frac, v_opt = _evd_fraction(env, est.reward, truth)
    assert v_opt == pytest.approx(0.744, abs=0.01)
    assert 0.0 <= frac < 0.02, f"EVD is {100 * frac:.4f}% of the optimal value {v_opt:.4f}"
    # the goal cell carries the largest inferred reward
    assert int(np.argmax(est.theta)) == 15
    # the human itself is far from optimal: the planner does better than the demonstrator
    human_frac = 1 - irl.metrics.policy_return(env, human.action_probs(env, truth), truth) / v_opt
    assert human_frac > 10 * frac


# --------------------------------------------------------- prior and objective
def test_gaussian_prior_shrinks_and_objective_is_the_log_joint(grid):
    env, _, data = grid
    few = data.subset(slice(0, 15))
    human = hm.Boltzmann(beta=5.0)
    ml = irl.MaxEnt(human=human).fit(env, few)
    prior = priors.Gaussian(0.0, 0.3)
    mp = irl.MaxEnt(human=human, prior=prior).fit(env, few)
    assert ml.converged and mp.converged
    assert np.linalg.norm(mp.theta) < 0.9 * np.linalg.norm(ml.theta)
    assert ml.log_prior == 0.0
    # the fields hold what they say, computed independently here
    ev = irl.Evidence(env, few, human)
    assert mp.log_likelihood == pytest.approx(float(ev.log_likelihood(mp.reward)), rel=1e-12)
    want_lp = float(np.sum(-0.5 * (mp.theta / 0.3) ** 2 - np.log(0.3 * np.sqrt(2 * np.pi))))
    assert mp.log_prior == pytest.approx(want_lp, rel=1e-12)
    assert mp.history[-1]["objective"] == pytest.approx(mp.log_likelihood + mp.log_prior, rel=1e-9)
    # each optimum beats the other on its own objective, and only on it
    ll_at = lambda th: float(ev.log_likelihood(LinearReward.from_mdp(env).reward_array(th)))  # noqa: E731
    lp_at = lambda th: float(prior.log_prob(torch.as_tensor(th)))  # noqa: E731
    assert ml.log_likelihood >= mp.log_likelihood
    assert mp.log_likelihood + mp.log_prior >= ll_at(ml.theta) + lp_at(ml.theta)
    # MAP stationarity: the likelihood gradient balances the prior's pull, theta / scale^2
    joint = irl.LogJoint([ev], LinearReward.from_mdp(env))
    th = torch.tensor(mp.theta, requires_grad=True)
    joint(th).backward()
    np.testing.assert_allclose(th.grad.numpy(), mp.theta / 0.3**2, atol=1e-6 * few.lengths.sum())


def test_two_evidence_items_equal_the_whole_dataset(grid, grid_fit):
    env, _, data = grid
    human = hm.Boltzmann(beta=5.0)
    halves = [irl.Evidence(env, data.subset(slice(0, 100)), human),
              irl.Evidence(env, data.subset(slice(100, 200)), human)]
    split = irl.MaxEnt(human=human).fit(halves)
    assert split.info["n_evidence"] == 2 and grid_fit.info["n_evidence"] == 1
    np.testing.assert_allclose(split.theta, grid_fit.theta, atol=1e-6)
    assert split.log_likelihood == pytest.approx(grid_fit.log_likelihood, rel=1e-9)
    # one Evidence item is accepted as is
    single = irl.MaxEnt().fit(irl.Evidence(env, data, human))
    np.testing.assert_allclose(single.theta, grid_fit.theta, atol=1e-9)


def test_estimate_round_trips_through_a_file(tmp_path, grid_fit):
    path = tmp_path / "reward.npz"
    grid_fit.save(str(path))
    back = irl.RewardEstimate.load(str(path))
    np.testing.assert_array_equal(back.reward, grid_fit.reward)
    np.testing.assert_array_equal(back.theta, grid_fit.theta)
    assert back.log_likelihood == grid_fit.log_likelihood and back.log_prior == grid_fit.log_prior
    assert back.converged == grid_fit.converged
    assert back.history == grid_fit.history
    assert back.param_names == grid_fit.param_names == ["goal", "plain", "mud", "water"]
    assert back.info["solver"] == "maxent" and back.info["human"] == "Boltzmann(beta=5.0)"
    assert [p.name for p in tmp_path.iterdir()] == ["reward.npz"]
    # a trajectories file is not a reward estimate
    demos.Trajectories.from_lists([[0, 1]], [[0]]).save(str(tmp_path / "d.npz"))
    with pytest.raises(demos.DemoFileError, match="expected a 'pluggable-irl/reward-estimate' file"):
        irl.RewardEstimate.load(str(tmp_path / "d.npz"))


class _Oracle(BaseHumanModel):
    """A human model with no gradient (think: a black-box simulator)."""

    name = "oracle"
    differentiable = False

    def action_log_probs(self, mdp, reward):
        with torch.no_grad():
            return hm.Boltzmann(1.0).action_log_probs(mdp, reward)


def test_non_differentiable_human_is_refused(grid):
    env, _, data = grid
    with pytest.raises(TypeError, match=r"MaxEnt needs differentiable human models: _Oracle is not"):
        irl.MaxEnt(human=_Oracle()).fit(env, data)
    mixed = [irl.Evidence(env, data, hm.Boltzmann(5.0)), irl.Evidence(env, data, _Oracle())]
    with pytest.raises(TypeError, match="_Oracle"):
        irl.MaxEnt().fit(mixed)


def test_history_is_recorded_and_final_gradient_small(grid, grid_fit):
    env, _, data = grid
    hist = grid_fit.history
    assert len(hist) >= 3
    assert [h["iteration"] for h in hist] == list(range(1, len(hist) + 1))
    obj = np.array([h["objective"] for h in hist])
    assert np.all(np.diff(obj) >= -1e-9 * np.abs(obj[:-1])), "L-BFGS must not decrease the log-joint"
    assert hist[-1]["grad_norm"] < 1e-5
    assert hist[0]["grad_norm"] > 100 * hist[-1]["grad_norm"]
    # the per-step gradient at the answer, recomputed independently, is small
    joint = irl.LogJoint([irl.Evidence(env, data, hm.Boltzmann(5.0))], LinearReward.from_mdp(env))
    th = torch.tensor(grid_fit.theta, requires_grad=True)
    joint(th).backward()
    assert np.abs(th.grad.numpy()).max() / data.lengths.sum() < 1e-5
    # the callback sees the same records
    seen = []
    irl.MaxEnt(human=hm.Boltzmann(5.0), callback=lambda i, f, g: seen.append((i, f, g))).fit(env, data)
    assert seen == [(h["iteration"], h["objective"], h["grad_norm"]) for h in hist]


def test_bad_fit_arguments(grid):
    env, _, data = grid
    with pytest.raises(ValueError, match=r"init must have shape \(4,\).*: got \(3,\)"):
        irl.MaxEnt().fit(env, data, init=np.zeros(3))
    with pytest.raises(TypeError, match="the data argument is missing"):
        irl.MaxEnt().fit(env)
    with pytest.raises(TypeError, match=r"takes a non-empty list of irl.Evidence"):
        irl.MaxEnt().fit([])


# ------------------------------------------------------------ gradient checks
def _stochastic_mdp(horizon, discount, seed=0):
    rng = np.random.default_rng(seed)
    S, A = 7, 3
    T = rng.dirichlet(np.full(S, 0.6), size=(S, A))
    feats = rng.normal(size=(S, A, 3))
    return irl.TabularMDP.from_arrays(T, horizon=horizon, discount=discount, features=feats,
                                      name=f"stochastic-h{horizon}-g{discount}")


def _case(kind):
    if kind == "finite":
        return _stochastic_mdp(6, 1.0), None
    if kind == "discounted":
        return _stochastic_mdp(None, 0.85), 12
    if kind == "terminal":
        env = irl.envs.make("aima-4x3", discount=0.9)
        feats = np.random.default_rng(1).normal(size=(env.n_states, 3))
        return env.replace(features=feats), 12
    raise AssertionError(kind)


def _reward_model(env, kind):
    if kind == "linear":
        return LinearReward.from_mdp(env)
    if kind == "tabular":
        return TabularReward(env.n_states, env.n_actions, state_only=True)
    if kind == "tabular-sa":
        return TabularReward(env.n_states, env.n_actions, state_only=False)
    raise AssertionError(kind)


def _finite_difference(f, theta, eps):
    g = np.empty_like(theta)
    for i in range(theta.size):
        up, dn = theta.copy(), theta.copy()
        up[i] += eps
        dn[i] -= eps
        g[i] = (f(up) - f(dn)) / (2 * eps)
    return g


@pytest.mark.parametrize("mdp_kind", ["finite", "discounted", "terminal"])
@pytest.mark.parametrize("reward_kind", ["linear", "tabular", "tabular-sa"])
@pytest.mark.parametrize("human", [hm.Boltzmann(1.5), hm.BoltzmannQ(1.5)], ids=repr)
def test_log_joint_gradient_matches_finite_differences(mdp_kind, reward_kind, human):
    env, sim_horizon = _case(mdp_kind)
    rng = np.random.default_rng(7)
    truth = rng.normal(size=(env.n_states, env.n_actions))
    data = demos.simulate(env, hm.Boltzmann(2.0), truth, n=25, seed=3, horizon=sim_horizon)
    model = _reward_model(env, reward_kind)
    prior = priors.Gaussian(0.0, 2.0) if reward_kind == "linear" else None
    joint = irl.LogJoint([irl.Evidence(env, data, human)], model, prior)
    theta = rng.normal(size=model.n_params)

    t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    value = joint(t)
    assert value.dtype == torch.float64 and value.shape == ()
    value.backward()
    grad = t.grad.numpy()

    def f(x):
        with torch.no_grad():
            return float(joint(torch.tensor(x, dtype=torch.float64)))

    fd = _finite_difference(f, theta, 1e-5)
    rel = np.linalg.norm(grad - fd) / np.linalg.norm(fd)
    assert np.linalg.norm(fd) > 1e-3
    assert rel < 1e-6, f"relative gradient error {rel:.3g}"


def test_gradient_is_empirical_minus_expected_feature_counts():
    """Deterministic dynamics, Boltzmann(beta=1): the classic MaxEnt gradient (Ziebart et al. 2008)."""
    env = irl.envs.gridworld(5, slip=0.0, horizon=8)
    assert set(np.unique(env.transitions.data)) == {1.0}
    data = demos.simulate(env, hm.Boltzmann(2.0), irl.envs.true_reward(env), n=40, seed=2)
    model = LinearReward.from_mdp(env)
    joint = irl.LogJoint([irl.Evidence(env, data, hm.Boltzmann(1.0))], model)
    theta = np.array([0.8, -0.2, 0.1, -0.6])
    t = torch.tensor(theta, requires_grad=True)
    joint(t).backward()

    phi = env.feature_matrix()  # (S, A, F)
    _, s = data.step_index
    empirical = phi[s, data.actions].sum(0)
    start = np.bincount(data.initial_states, minlength=env.n_states) / len(data)
    policy = hm.Boltzmann(1.0).action_probs(env, model.reward_array(theta))
    D = irl.planning.occupancy_measure(env, policy, initial=start)  # (H, S, A)
    expected = len(data) * np.einsum("tsa,saf->f", D, phi)
    np.testing.assert_allclose(t.grad.numpy(), empirical - expected, rtol=1e-9, atol=1e-9)
    assert np.abs(empirical - expected).max() > 1.0  # theta is not the optimum: a real check
