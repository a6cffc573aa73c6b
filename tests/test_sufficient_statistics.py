"""Evidence counts its data once per MDP: values equal a step-by-step recount, gradients are right.

Every evidence type precomputes its sufficient statistics when it is bound to an
MDP (``irl.Evidence`` or the first likelihood call), so that a likelihood
evaluation is one planner call plus a gather. These tests compare each type with
a plain recount of its data (a loop over episodes and steps, the definition of
the likelihood) to 1e-12, check gradients with ``torch.autograd.gradcheck`` and
check that a second evaluation does not touch the raw data again.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import demos
import human_models as hm
import irl
from demos.statistics import memo


def _mdp(horizon=4):
    rng = np.random.default_rng(3)
    T = rng.dirichlet(np.ones(5) * 0.6, size=(5, 3))
    return irl.TabularMDP.from_arrays(T, horizon=horizon, discount=0.9 if horizon is None else 1.0)


def _data(mdp, n=40, seed=0):
    r = np.random.default_rng(seed).normal(size=(mdp.n_states, mdp.n_actions))
    return demos.simulate(mdp, hm.Boltzmann(1.0), r, n=n, seed=seed, **({} if mdp.horizon else {"horizon": 6}))


def _rewards(mdp, b=3, seed=1):
    return torch.tensor(np.random.default_rng(seed).normal(size=(b, mdp.n_states, mdp.n_actions)),
                        dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("horizon", [4, None])
def test_trajectory_likelihood_equals_a_step_by_step_recount(horizon):
    mdp = _mdp(horizon)
    data, human, r = _data(mdp), hm.Boltzmann(1.3), _rewards(mdp)
    got = human.log_likelihood(mdp, r, data)
    logp = human.action_log_probs(mdp, r).detach().numpy()
    want = np.zeros(r.shape[0])
    for ep in data:
        for t, (s, a) in enumerate(zip(ep.states[:-1], ep.actions)):
            want += logp[:, t, s, a] if horizon else logp[:, s, a]
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-12, atol=0)
    # and a second call (from the stored statistics) gives the same numbers to the last bit
    assert torch.equal(human.log_likelihood(mdp, r, data), got)


def test_state_only_and_transitions_equal_a_recount():
    mdp = _mdp()
    data, human, r = _data(mdp), hm.Boltzmann(0.7), _rewards(mdp)
    logp = human.action_log_probs(mdp, r).detach().numpy()
    P = mdp.dense_transitions()
    want = np.zeros(r.shape[0])
    for ep in data:
        for t, (s, s1) in enumerate(zip(ep.states[:-1], ep.states[1:])):
            want += np.log(np.exp(logp[:, t, s, :]) @ P[s, :, s1])
    got = human.log_likelihood(mdp, r, demos.StateOnly(data))
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-12, atol=0)

    pairs = demos.Transitions.from_trajectories(data)
    stationary = _mdp(None)
    logp = human.action_log_probs(stationary, r).detach().numpy()
    want = sum(logp[:, s, a] for s, a in zip(pairs.states, pairs.actions))
    got = human.log_likelihood(stationary, r, pairs)
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-12, atol=0)


def test_comparisons_equal_a_recount():
    mdp = _mdp()
    data, human, r = _data(mdp, n=12), hm.Boltzmann(0.8), _rewards(mdp)
    comps = demos.Choices(segments=data, n_options=np.full(4, 3), chosen=np.arange(4) % 3)
    rr = r.detach().numpy()
    seg, opt = comps.segments, comps.option_index()
    ret = np.zeros((r.shape[0], len(seg)))
    for i, ep in enumerate(seg):
        for t, (s, a) in enumerate(zip(ep.states[:-1], ep.actions)):
            ret[:, i] += mdp.discount ** t * rr[:, s, a]
    want = np.zeros(r.shape[0])
    for i, row in enumerate(opt):
        v = 0.8 * ret[:, row[row >= 0]]
        want += v[:, comps.chosen[i]] - np.log(np.exp(v).sum(-1))
    got = human.log_likelihood(mdp, r, comps)
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("kind", ["trajectories", "state-only", "transitions", "world-state"])
def test_gradients_of_the_stored_statistics_path(kind):
    mdp = _mdp(3)
    data = _data(mdp, n=8)
    obs = {"trajectories": data, "state-only": demos.StateOnly(data),
           "transitions": demos.Transitions.from_trajectories(data),
           "world-state": demos.WorldState(data.final_states, horizon=3)}[kind]
    ev = irl.Evidence(mdp, obs, hm.Boltzmann(1.1))
    r = _rewards(mdp, b=2)
    assert torch.autograd.gradcheck(lambda x: ev.log_likelihood(x), (r,), eps=1e-6, atol=1e-5)


def test_binding_counts_once_and_later_calls_never_recount(monkeypatch):
    mdp = _mdp()
    data = _data(mdp)
    ev = irl.Evidence(mdp, data, hm.Boltzmann(1.0))  # counts here

    def boom(*args, **kwargs):
        raise AssertionError("the data were recounted")

    monkeypatch.setattr(demos.Trajectories, "counts", boom)
    monkeypatch.setattr(demos.Trajectories, "step_index", property(boom))
    r = _rewards(mdp)
    for _ in range(3):
        ev.log_likelihood(r).sum().backward()
    # another MDP (even an identical one) is another binding: counted for itself
    with pytest.raises(AssertionError, match="recounted"):
        irl.Evidence(_mdp(), data, hm.Boltzmann(1.0))


def test_memo_is_per_mdp_and_released_with_it():
    data = _data(_mdp())
    mdp = _mdp()
    assert memo(data, mdp, "x", lambda: 1) == 1
    assert memo(data, mdp, "x", lambda: 2) == 1
    assert memo(data, _mdp(), "x", lambda: 3) == 3
    del mdp
    import gc

    gc.collect()
    assert len(data.__dict__["_statistics"]) == 0
