"""State-only trajectories and logged transitions: exact likelihoods, gradients, files, recovery."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import demos
import human_models as hm
import irl
from demos.trajectories import DemoValidationError


def _mdp(horizon=3, discount=1.0, terminal=None):
    rng = np.random.default_rng(5)
    T = rng.dirichlet(np.ones(4) * 0.7, size=(4, 3))
    return irl.TabularMDP.from_arrays(T, horizon=horizon, discount=discount, terminal=terminal)


def test_state_only_likelihood_marginalises_actions_exactly():
    mdp = _mdp()
    r = np.random.default_rng(0).normal(size=(4, 3))
    human = hm.Boltzmann(1.5)
    seqs = [[0, 1, 2, 3], [2, 2], [3, 0, 1]]
    got = float(human.log_likelihood(mdp, r, demos.StateOnly.from_states(seqs)))
    pi = human.action_probs(mdp, r)
    T = mdp.dense_transitions()
    want = 0.0
    for seq in seqs:  # enumerate every action sequence consistent with the states
        total = 0.0
        for acts in itertools.product(range(3), repeat=len(seq) - 1):
            p = 1.0
            for t, a in enumerate(acts):
                p *= pi[t, seq[t], a] * T[seq[t], a, seq[t + 1]]
            total += p
        want += np.log(total)
    assert got == pytest.approx(want, rel=1e-12)


def test_transitions_use_the_visit_weighted_policy_for_time_indexed_models():
    mdp = _mdp(horizon=4)
    r = np.random.default_rng(1).normal(size=(4, 3))
    human = hm.Boltzmann(0.8)
    pairs = demos.Transitions(states=[0, 1, 2, 3, 1], actions=[2, 0, 1, 1, 1])
    D = irl.planning.occupancy_measure(mdp, human.action_probs(mdp, r)).sum(0)  # discount 1: expected visits
    marginal = D / D.sum(-1, keepdims=True)
    want = np.log(marginal[pairs.states, pairs.actions]).sum()
    assert float(human.log_likelihood(mdp, r, pairs)) == pytest.approx(want, rel=1e-12)


def test_transitions_under_a_stationary_policy_are_plain_log_probs():
    mdp = _mdp(horizon=None, discount=0.9)
    r = np.random.default_rng(2).normal(size=(4, 3))
    human = hm.BoltzmannQ(2.0)
    pairs = demos.Transitions(states=[0, 1, 3], actions=[2, 0, 1])
    lp = np.log(human.action_probs(mdp, r))
    assert float(human.log_likelihood(mdp, r, pairs)) == pytest.approx(lp[[0, 1, 3], [2, 0, 1]].sum(), rel=1e-12)


@pytest.mark.parametrize("kind", ["state-only", "transitions"])
def test_gradients_match_finite_differences(kind):
    mdp = _mdp(horizon=3, terminal=[False, False, False, True])
    data = demos.simulate(mdp, hm.Boltzmann(1.0), np.arange(4.0), 6, seed=0)
    ev = demos.StateOnly(data) if kind == "state-only" else demos.Transitions.from_trajectories(data)
    r = torch.from_numpy(np.random.default_rng(3).normal(size=(4, 3))).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: hm.Boltzmann(1.3).log_likelihood(mdp, x, ev), (r,), eps=1e-6,
                                    atol=1e-7, rtol=1e-6)


def test_batched_rewards_give_stacked_likelihoods():
    mdp = _mdp()
    data = demos.simulate(mdp, hm.Boltzmann(1.0), np.arange(4.0), 5, seed=1)
    r = torch.from_numpy(np.random.default_rng(4).normal(size=(2, 4, 3)))
    for ev in (demos.StateOnly(data), demos.Transitions.from_trajectories(data)):
        b = hm.Boltzmann(1.0).log_likelihood(mdp, r, ev)
        assert b.shape == (2,)
        assert torch.allclose(b, torch.stack([hm.Boltzmann(1.0).log_likelihood(mdp, r[i], ev) for i in range(2)]))


def test_files_round_trip(tmp_path):
    env = irl.envs.make("gridworld-5x5")
    so = demos.StateOnly.simulate(env, hm.Boltzmann(2.0), env.true_reward, 4, rng=0)
    tr = demos.Transitions.simulate(env, hm.Boltzmann(2.0), env.true_reward, 4, rng=0)
    for ev, name in ((so, "so.npz"), (tr, "tr.npz")):
        ev.save(tmp_path / name)
        back = demos.load(tmp_path / name)
        assert type(back) is type(ev)
        assert float(hm.Boltzmann(1.0).log_likelihood(env, env.true_reward, back)) == pytest.approx(
            float(hm.Boltzmann(1.0).log_likelihood(env, env.true_reward, ev)))


def test_validation_messages():
    mdp = _mdp()
    with pytest.raises(DemoValidationError, match="at least one pair"):
        demos.Transitions(states=np.zeros(0, int), actions=np.zeros(0, int))
    with pytest.raises(DemoValidationError, match="same length as states"):
        demos.Transitions(states=[0, 1], actions=[0])
    with pytest.raises(DemoValidationError, match="action id 7 in pair 1 is out of range"):
        hm.Boltzmann(1.0).log_likelihood(mdp, np.zeros(4), demos.Transitions(states=[0, 1], actions=[0, 7]))
    T = mdp.dense_transitions()
    s, a = np.argwhere(T[:, :, 0] == 0)[0] if (T[:, :, 0] == 0).any() else (None, None)
    if s is not None:
        with pytest.raises(DemoValidationError, match="impossible under the MDP's dynamics"):
            hm.Boltzmann(1.0).log_likelihood(mdp, np.zeros(4), demos.Transitions([s], [a], [0]))
    with pytest.raises(DemoValidationError, match="non-empty 1-D"):
        demos.StateOnly.from_states([[]])
    with pytest.raises(DemoValidationError, match="state id 9"):
        hm.Boltzmann(1.0).log_likelihood(mdp, np.zeros(4), demos.StateOnly.from_states([[0, 9]]))


@pytest.mark.parametrize("kind", ["state-only", "transitions"])
def test_recovery_from_partial_observations(kind):
    env = irl.envs.make("gridworld-8x8")
    truth = irl.envs.true_reward(env)
    cls = demos.StateOnly if kind == "state-only" else demos.Transitions
    ev = cls.simulate(env, hm.Boltzmann(5.0), truth, 150, rng=0)
    est = irl.MaxEnt(human=hm.Boltzmann(5.0)).fit(env, ev)
    evd = irl.metrics.expected_value_difference(env, irl.plan(env, est.reward), truth)
    assert evd < 0.02 * irl.metrics.optimal_return(env, truth)
