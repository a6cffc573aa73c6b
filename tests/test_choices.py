"""Choice evidence (comparisons, corrections, e-stops): exact likelihoods, gradients, files, recovery."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import demos
import human_models as hm
import irl
from demos.trajectories import DemoValidationError


def _tiny(discount: float = 0.9) -> irl.TabularMDP:
    rng = np.random.default_rng(0)
    T = rng.dirichlet(np.ones(4), size=(4, 3))
    return irl.TabularMDP.from_arrays(T, horizon=3, discount=discount)


def _ret(reward: np.ndarray, states, actions, gamma: float) -> float:
    return float(sum(gamma ** t * reward[s, a] for t, (s, a) in enumerate(zip(states, actions))))


def test_comparison_likelihood_is_bradley_terry_on_discounted_returns():
    mdp = _tiny(0.9)
    r = np.random.default_rng(1).normal(size=(4, 3))
    a = demos.Trajectories.from_lists([[0, 1, 2], [3, 3]], [[0, 2], [1]])
    b = demos.Trajectories.from_lists([[1, 1], [2, 0, 1, 3]], [[2], [0, 0, 1]])
    c = demos.Comparisons.from_pairs(a, b, prefer_second=[True, False])
    beta = 1.7
    ll = float(hm.Boltzmann(beta).log_likelihood(mdp, r, c))
    want = 0.0
    for (x, y, pick_second) in zip(a, b, [True, False]):
        rx, ry = _ret(r, x.states, x.actions, 0.9), _ret(r, y.states, y.actions, 0.9)
        logits = beta * np.array([rx, ry])
        want += logits[int(pick_second)] - np.logaddexp(*logits)
    assert ll == pytest.approx(want, rel=1e-12)


def test_ranking_is_plackett_luce():
    mdp = _tiny(1.0)
    r = np.random.default_rng(2).normal(size=(4, 3))
    ranked = demos.Trajectories.from_lists([[0, 1], [1, 2], [2, 3]], [[0], [1], [2]])
    c = demos.Comparisons.from_rankings([ranked])
    vals = np.array([r[0, 0], r[1, 1], r[2, 2]])
    want = (vals[0] - np.log(np.exp(vals).sum())) + (vals[1] - np.log(np.exp(vals[1:]).sum()))
    assert float(hm.Boltzmann(1.0).log_likelihood(mdp, r, c)) == pytest.approx(want, rel=1e-12)
    assert c.n_options.tolist() == [3, 2]


def test_estop_options_are_prefixes_then_staying():
    robot = demos.Trajectories.from_lists([[0, 1, 2, 3]], [[1, 2, 1]])
    e = demos.EStops.from_stops(robot, stop_times=[1], stay_action=0)
    opts = [e.segments[i] for i in range(4)]
    assert opts[0].states.tolist() == [0, 0, 0, 0] and opts[0].actions.tolist() == [0, 0, 0]
    assert opts[1].states.tolist() == [0, 1, 1, 1] and opts[1].actions.tolist() == [1, 0, 0]
    assert opts[3].states.tolist() == [0, 1, 2, 3] and opts[3].actions.tolist() == [1, 2, 1]
    assert e.chosen.tolist() == [1]
    no_stop = demos.EStops.from_stops(robot, stop_times=[-1], stay_action=0)
    assert no_stop.chosen.tolist() == [3]


def test_corrections_choose_the_correction():
    mdp = _tiny(1.0)
    r = np.random.default_rng(3).normal(size=(4, 3))
    robot = demos.Trajectories.from_lists([[0, 1, 2]], [[0, 0]])
    fixed = demos.Trajectories.from_lists([[0, 2, 3]], [[2, 1]])
    c = demos.Corrections.from_trajectories(robot, fixed)
    rr, rf = r[0, 0] + r[1, 0], r[0, 2] + r[2, 1]
    want = 2.0 * rf - np.logaddexp(2.0 * rr, 2.0 * rf)
    assert float(hm.BoltzmannQ(2.0).log_likelihood(mdp, r, c)) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("kind", ["comparisons", "estops", "corrections"])
def test_choice_gradients_match_finite_differences(kind):
    env = irl.envs.make("gridworld-5x5")
    truth = irl.envs.true_reward(env)
    d = demos.simulate(env, hm.Boltzmann(2.0), truth, 6, seed=0)
    if kind == "comparisons":
        ev = demos.Comparisons.simulate(env, hm.Boltzmann(1.0), truth, 8, rng=0)
    elif kind == "estops":
        ev = demos.EStops.simulate(env, hm.Boltzmann(1.0), truth, d, stay_action=0, rng=0)
    else:
        ev = demos.Corrections.simulate(env, hm.Boltzmann(1.0), truth, d, rng=0)
    model = irl.rewards.LinearReward.from_mdp(env)
    joint = irl.LogJoint([irl.Evidence(env, ev, hm.Boltzmann(1.3))], model)
    theta = torch.tensor([0.3, -0.2, 0.1, -0.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: joint(x), (theta,), eps=1e-6, atol=1e-7, rtol=1e-6)


def test_batched_reward_gives_stacked_likelihoods():
    env = irl.envs.make("gridworld-5x5")
    c = demos.Comparisons.simulate(env, hm.Boltzmann(1.0), env.true_reward, 10, rng=1)
    r = torch.from_numpy(np.random.default_rng(4).normal(size=(3, env.n_states, env.n_actions)))
    h = hm.Boltzmann(0.7)
    batch = h.log_likelihood(env, r, c)
    single = torch.stack([h.log_likelihood(env, r[i], c) for i in range(3)])
    assert batch.shape == (3,) and torch.allclose(batch, single)


@pytest.mark.parametrize("ext", ["npz", "csv", "jsonl"])
@pytest.mark.parametrize("kind", ["comparisons", "estops", "corrections"])
def test_choice_files_round_trip(tmp_path, kind, ext):
    env = irl.envs.make("gridworld-5x5")
    d = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, 4, seed=0)
    ev = {"comparisons": lambda: demos.Comparisons.simulate(env, hm.Boltzmann(1.0), env.true_reward, 5, rng=0),
          "estops": lambda: demos.EStops.simulate(env, hm.Boltzmann(1.0), env.true_reward, d, stay_action=0, rng=0),
          "corrections": lambda: demos.Corrections.simulate(env, hm.Boltzmann(1.0), env.true_reward, d, rng=0)}[kind]()
    path = tmp_path / f"{kind}.{ext}"
    ev.save(path)
    back = demos.load(path)
    assert type(back) is type(ev) and back.kind == kind
    assert np.array_equal(back.chosen, ev.chosen) and np.array_equal(back.n_options, ev.n_options)
    assert np.array_equal(back.segments.states, ev.segments.states)
    assert float(hm.Boltzmann(1.0).log_likelihood(env, env.true_reward, back)) == pytest.approx(
        float(hm.Boltzmann(1.0).log_likelihood(env, env.true_reward, ev)))


def test_choice_validation_messages():
    seg = demos.Trajectories.from_lists([[0, 1], [0, 2]], [[0], [1]])
    with pytest.raises(DemoValidationError, match="needs at least 2"):
        demos.Choices(demos.Trajectories.from_lists([[0, 1]], [[0]]), n_options=[1], chosen=[0])
    with pytest.raises(DemoValidationError, match=r"chosen\[0\] = 2 is not one of its 2 options"):
        demos.Choices(seg, n_options=[2], chosen=[2])
    with pytest.raises(DemoValidationError, match="3 options in all but there are 2 segments"):
        demos.Choices(seg, n_options=[3], chosen=[0])
    with pytest.raises(DemoValidationError, match="stop_times\\[0\\] = 5"):
        demos.EStops.from_stops(demos.Trajectories.from_lists([[0, 1]], [[0]]), [5], stay_action=0)
    with pytest.raises(DemoValidationError, match="got 1 first segments but 2 second"):
        demos.Comparisons.from_pairs(seg.subset([0]), seg, prefer_second=[True])
    env = irl.envs.make("gridworld-5x5")
    bad = demos.Comparisons.from_pairs(demos.Trajectories.from_lists([[0, 99]], [[0]]),
                                       demos.Trajectories.from_lists([[0, 1]], [[0]]), [True])
    with pytest.raises(DemoValidationError, match="state id 99"):
        irl.Evidence(env, bad, hm.Boltzmann(1.0))


def test_recovery_from_comparisons_alone():
    env = irl.envs.make("gridworld-8x8")
    truth = irl.envs.true_reward(env)
    c = demos.Comparisons.simulate(env, hm.Boltzmann(1.0), truth, 400, rng=0)
    est = irl.MaxEnt(human=hm.Boltzmann(1.0)).fit(env, c)
    assert est.converged
    evd = irl.metrics.expected_value_difference(env, irl.plan(env, est.reward), truth)
    assert evd < 0.02 * irl.metrics.optimal_return(env, truth)
    cos = est.theta @ np.array([1.0, 0.0, -0.3, -1.0]) / np.linalg.norm(est.theta) / np.linalg.norm([1, 0, -0.3, -1])
    assert cos > 0.9
