"""demos.WorldState: the likelihood of an observed world state, checked against brute force.

The likelihood ``P(s_T = s_obs)`` is computed by a forward pass over state
distributions; here it is compared with an explicit sum over every action and
successor sequence of a tiny stochastic MDP (with a terminal state, which stops
the person and keeps the world in it), for time-indexed and stationary human
models, known and unknown starts, single and batched rewards. Gradients are
checked against finite differences; validation messages, files and simulation
are tested too.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import demos
import human_models as hm
import irl
from demos import DemoFileError, DemoValidationError, WorldState
from human_models.base import BaseHumanModel


def _tiny(horizon: int = 3) -> irl.TabularMDP:
    """4 states, 2 actions, stochastic moves; state 3 is terminal."""
    T = np.zeros((4, 2, 4))
    T[0, 0] = [0.6, 0.3, 0.1, 0.0]
    T[0, 1] = [0.0, 0.2, 0.5, 0.3]
    T[1, 0] = [0.5, 0.0, 0.5, 0.0]
    T[1, 1] = [0.0, 0.7, 0.0, 0.3]
    T[2, 0] = [0.2, 0.2, 0.6, 0.0]
    T[2, 1] = [0.1, 0.0, 0.3, 0.6]
    T[3, :, 3] = 1.0
    terminal = np.array([False, False, False, True])
    return irl.TabularMDP.from_arrays(T, initial=[0.5, 0.3, 0.2, 0.0], terminal=terminal, horizon=horizon,
                                      features=np.eye(4))


def _brute_final(mdp: irl.TabularMDP, pi: np.ndarray, start: int) -> np.ndarray:
    """P(s_T = s) by enumerating every action and successor sequence from ``start``; ``pi`` is (T, S, A)."""
    T = pi.shape[0]
    P = mdp.dense_transitions()
    out = np.zeros(mdp.n_states)
    S, A = mdp.n_states, mdp.n_actions
    for acts in itertools.product(range(A), repeat=T):
        for succ in itertools.product(range(S), repeat=T):
            s, p = start, 1.0
            for t in range(T):
                if mdp.terminal[s]:  # the person stopped; the world stays (later draws must repeat s)
                    if succ[t] != s or acts[t] != 0:
                        p = 0.0
                        break
                    continue
                p *= pi[t, s, acts[t]] * P[s, acts[t], succ[t]]
                s = succ[t]
                if p == 0.0:
                    break
            out[s] += p
    return out


class _Stationary(BaseHumanModel):
    """A non-time-dependent human: softmax of beta * (reward + features . w), differentiable."""

    name = "stationary-test"

    def __init__(self, beta: float = 1.5) -> None:
        self.beta = beta

    @property
    def time_dependent(self) -> bool:
        return False

    def action_log_probs(self, mdp, reward):
        r = irl.autodiff.as_reward_tensor(reward, mdp)
        bias = torch.arange(mdp.n_actions, dtype=r.dtype) * 0.3
        return torch.log_softmax(self.beta * r + bias, dim=-1)


REWARD = np.array([[0.3, -0.2], [1.0, 0.1], [-0.5, 0.4], [0.2, 0.2]])


# --------------------------------------------------------------- exactness
@pytest.mark.parametrize("human", [hm.Boltzmann(1.3), hm.BoltzmannQ(2.0), _Stationary()],
                         ids=["boltzmann", "boltzmann-q", "stationary"])
def test_likelihood_equals_brute_force_enumeration(human):
    mdp = _tiny()
    T = 3
    pi = human.action_probs(mdp.replace(horizon=T), REWARD)
    if pi.ndim == 2:
        pi = np.broadcast_to(pi, (T,) + pi.shape)
    for start in (0, 1):
        brute = _brute_final(mdp, pi, start)
        assert abs(brute.sum() - 1.0) < 1e-12  # every path ends somewhere
        assert brute[3] > 0.05  # the terminal state is reached: the absorbing rule is exercised
        obs = [2, 3, 2, 0]
        ws = WorldState(states=obs, horizon=T, start=start)
        ll = float(ws.log_likelihood_under(human, mdp, REWARD))
        assert ll == pytest.approx(float(np.log(brute[obs]).sum()), abs=1e-12)
        np.testing.assert_allclose(ws.final_state_distribution(human, mdp, REWARD)[0], brute, atol=1e-13)


def test_per_observation_starts_and_unknown_start_are_mixtures():
    mdp, human, T = _tiny(), hm.Boltzmann(0.7), 2
    pi = human.action_probs(mdp.replace(horizon=T), REWARD)
    brute = {s: _brute_final(mdp, pi, s) for s in range(3)}
    # one start per observation: grouped internally, each with its own forward pass
    ws = WorldState(states=[1, 2, 2, 0], horizon=T, start=[0, 2, 0, 1])
    expect = np.log([brute[0][1], brute[2][2], brute[0][2], brute[1][0]]).sum()
    assert float(ws.log_likelihood_under(human, mdp, REWARD)) == pytest.approx(expect, abs=1e-12)
    # unknown start: a prior over s_-T gives the mixture sum_s p(s) P(obs | s)
    prior = np.array([0.1, 0.6, 0.3, 0.0])
    ws = WorldState(states=[2, 1], horizon=T, start_distribution=prior)
    mix = sum(prior[s] * brute[s] for s in range(3))
    assert float(ws.log_likelihood_under(human, mdp, REWARD)) == pytest.approx(np.log(mix[[2, 1]]).sum(), abs=1e-12)
    # no start given: the MDP's own initial distribution is the prior
    ws = WorldState(states=[2], horizon=T)
    mix = sum(mdp.initial[s] * brute[s] for s in range(3))
    assert float(ws.log_likelihood_under(human, mdp, REWARD)) == pytest.approx(np.log(mix[2]), abs=1e-12)


def test_batched_rewards_match_one_at_a_time():
    mdp, human = _tiny(), hm.Boltzmann(1.0)
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(3, 4, 2))
    ws = WorldState(states=[0, 2, 3], horizon=4, start=[0, 1, 1])
    together = ws.log_likelihood_under(human, mdp, torch.from_numpy(batch))
    assert together.shape == (3,)
    one = [float(ws.log_likelihood_under(human, mdp, batch[b])) for b in range(3)]
    np.testing.assert_allclose(together.numpy(), one, atol=1e-12)
    assert len(set(np.round(one, 6))) == 3  # the rewards really differ in likelihood


def test_impossible_observation_is_minus_infinity_with_zero_gradient():
    T = np.zeros((3, 1, 3))
    T[0, 0, 1] = T[1, 0, 2] = T[2, 0, 2] = 1.0  # a chain 0 -> 1 -> 2 -> 2
    mdp = irl.TabularMDP.from_arrays(T, initial=[1, 0, 0], horizon=1)
    r = torch.zeros(3, requires_grad=True)
    ll = WorldState(states=[0], horizon=1, start=0).log_likelihood_under(hm.Boltzmann(1.0), mdp, r)
    assert float(ll.detach()) == -np.inf
    ll.backward()
    assert torch.all(r.grad == 0)
    sure = WorldState(states=[2], horizon=2, start=0)  # 0 -> 1 -> 2 whatever the person does
    assert float(sure.log_likelihood_under(hm.Boltzmann(1.0), mdp, r.detach())) == 0.0


# ----------------------------------------------------------------- gradients
def test_gradient_matches_finite_differences():
    mdp = _tiny()
    ws = WorldState(states=[2, 3, 0, 2], horizon=3, start=[0, 0, 1, 2])
    for human in (hm.Boltzmann(1.3), _Stationary()):
        r = torch.tensor(REWARD, dtype=torch.float64, requires_grad=True)
        ws.log_likelihood_under(human, mdp, r).backward()
        g = r.grad.numpy()
        assert np.abs(g).max() > 1e-3  # a non-trivial gradient
        fd = np.zeros_like(REWARD)
        eps = 1e-6
        for idx in np.ndindex(REWARD.shape):
            up, dn = REWARD.copy(), REWARD.copy()
            up[idx] += eps
            dn[idx] -= eps
            fd[idx] = (float(ws.log_likelihood_under(human, mdp, up))
                       - float(ws.log_likelihood_under(human, mdp, dn))) / (2 * eps)
        np.testing.assert_allclose(g, fd, atol=1e-7, rtol=1e-6)


def test_gradcheck_through_policy_and_batch():
    mdp = _tiny()
    ws = WorldState(states=[1, 2], horizon=3, start_distribution=[0.2, 0.5, 0.3, 0.0])
    r = torch.tensor(np.random.default_rng(1).normal(size=(2, 4, 2)), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: ws.log_likelihood_under(hm.Boltzmann(0.8), mdp, x), (r,),
                                    eps=1e-6, atol=1e-7)
    # and directly with respect to the policy's log-probabilities (any human model's output)
    logits = torch.tensor(np.random.default_rng(2).normal(size=(3, 4, 2)), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda lg: _policy_ll(ws, mdp, lg), (logits,), eps=1e-6, atol=1e-7)


def _policy_ll(ws: WorldState, mdp, logits: torch.Tensor) -> torch.Tensor:
    class Direct(BaseHumanModel):
        def action_log_probs(self, mdp, reward):
            return torch.log_softmax(logits, -1)

    return ws.log_likelihood_under(Direct(), mdp, REWARD)


def test_maxent_fits_world_state_evidence_with_demonstrations():
    """Evidence items add up in the log-joint, and MaxEnt fits a world-state likelihood."""
    env = irl.envs.make("gridworld-5x5")
    truth = irl.envs.true_reward(env)
    human = hm.Boltzmann(2.0)
    ws = WorldState.simulate(env, human, truth, 30, horizon=8, seed=0)
    dem = demos.simulate(env, human, truth, n=5, seed=1)
    items = [irl.Evidence(env, ws, human), irl.Evidence(env, dem, human)]
    model = irl.rewards.LinearReward.from_mdp(env)
    joint = irl.LogJoint(items, model)
    x = torch.tensor([0.5, -0.1, 0.2, -0.7], dtype=torch.float64)
    r = model(x)
    assert float(joint.log_likelihood(x)) == pytest.approx(
        float(ws.log_likelihood_under(human, env, r)) + float(dem.log_likelihood_under(human, env, r)), abs=1e-9)
    est = irl.MaxEnt(human=human).fit([irl.Evidence(env, ws, human)])
    assert est.converged
    # the estimate explains the world states better than the zero reward and than a wrong-signed truth
    zero = float(ws.log_likelihood_under(human, env, np.zeros(env.n_states)))
    assert est.log_likelihood > zero + 1.0
    assert est.log_likelihood >= float(ws.log_likelihood_under(human, env, truth)) - 1e-6
    assert est.log_likelihood > float(ws.log_likelihood_under(human, env, -truth))


# --------------------------------------------------------------- validation
def test_validation_messages():
    with pytest.raises(DemoValidationError, match=r"horizon \(T, the number of unobserved actions\) must be an "
                                                  r"integer >= 1: got 0"):
        WorldState(states=[0], horizon=0)
    with pytest.raises(DemoValidationError, match="must be an integer >= 1: got -2"):
        WorldState(states=[0], horizon=-2)
    with pytest.raises(DemoValidationError, match="must be an integer >= 1: got 2.5"):
        WorldState(states=[0], horizon=2.5)
    with pytest.raises(DemoValidationError, match="must be an integer >= 1: got True"):
        WorldState(states=[0], horizon=True)
    with pytest.raises(DemoValidationError, match=r"states\[1\] must be a state id >= 0: got -1"):
        WorldState(states=[0, -1], horizon=2)
    with pytest.raises(DemoValidationError, match="states must be integer state ids"):
        WorldState(states=[0.5], horizon=2)
    with pytest.raises(DemoValidationError, match="non-empty 1-D array"):
        WorldState(states=[], horizon=2)
    with pytest.raises(DemoValidationError, match="either start .* or start_distribution"):
        WorldState(states=[0], horizon=2, start=0, start_distribution=[1.0, 0.0])
    with pytest.raises(DemoValidationError, match=r"start must be one state id or one per observation \(2,\): "
                                                  r"got shape \(3,\)"):
        WorldState(states=[0, 1], horizon=2, start=[0, 1, 2])
    with pytest.raises(DemoValidationError, match="start_distribution must sum to 1: got 0.9"):
        WorldState(states=[0], horizon=2, start_distribution=[0.5, 0.4])
    with pytest.raises(DemoValidationError, match=r"start_distribution\[1\] must be a probability >= 0: got -0.5"):
        WorldState(states=[0], horizon=2, start_distribution=[1.5, -0.5])
    mdp = _tiny()
    ws = WorldState(states=[1, 7], horizon=2, start=0)
    msg = r"observed state id 7 \(observation 1\) is out of range: the MDP has 4 states \(valid ids 0..3\)"
    with pytest.raises(DemoValidationError, match=msg):
        ws.log_likelihood_under(hm.Boltzmann(1.0), mdp, REWARD)
    with pytest.raises(DemoValidationError, match=msg):
        irl.Evidence(mdp, ws, hm.Boltzmann(1.0))  # caught when the evidence is assembled
    with pytest.raises(DemoValidationError, match=r"start state id 9 \(observation 0\) is out of range"):
        WorldState(states=[1], horizon=2, start=9).validate(4, 2)
    with pytest.raises(DemoValidationError, match="start_distribution has 2 entries but the MDP has 4 states"):
        WorldState(states=[1], horizon=2, start_distribution=[0.5, 0.5]).validate(4, 2)

    class Bad(BaseHumanModel):
        def action_log_probs(self, mdp, reward):
            return torch.zeros(mdp.n_states, mdp.n_actions)

    with pytest.raises(DemoValidationError, match=r"time-dependent policy for T = 2 must end in \(T, S, A\)"):
        WorldState(states=[1], horizon=2).log_likelihood_under(Bad(), mdp, REWARD)
    # arrays are read-only
    with pytest.raises(ValueError):
        ws.states[0] = 3


# ---------------------------------------------------------------- files
@pytest.mark.parametrize("kind", ["given", "per-observation", "distribution", "default"])
def test_save_load_round_trip(tmp_path, kind):
    kw = {"given": {"start": 2}, "per-observation": {"start": [0, 1, 2]},
          "distribution": {"start_distribution": [0.25, 0.25, 0.5, 0.0]}, "default": {}}[kind]
    ws = WorldState(states=[3, 0, 2], horizon=5, **kw)
    path = tmp_path / "ws.npz"
    demos.save(ws, path)
    back = demos.load(path)
    assert isinstance(back, WorldState) and back.horizon == 5
    np.testing.assert_array_equal(back.states, ws.states)
    for name in ("start", "start_distribution"):
        a, b = getattr(ws, name), getattr(back, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_array_equal(a, b)
    mdp = _tiny()
    assert float(back.log_likelihood_under(hm.Boltzmann(1.0), mdp, REWARD)) == \
        float(ws.log_likelihood_under(hm.Boltzmann(1.0), mdp, REWARD))
    ws.save(tmp_path / "again.npz")
    assert demos.load_arrays(tmp_path / "again.npz")[0] == "pluggable-irl/world-state"
    for ext in ("jsonl", "csv"):  # the text layouts hold the same observation
        ws.save(tmp_path / f"ws.{ext}")
        text = demos.load(tmp_path / f"ws.{ext}")
        assert isinstance(text, demos.WorldState) and text.horizon == ws.horizon
        np.testing.assert_array_equal(text.states, ws.states)
        for a, b in ((text.start, ws.start), (text.start_distribution, ws.start_distribution)):
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_array_equal(a, b)


def test_load_rejects_broken_world_state_files(tmp_path):
    demos.save_arrays(tmp_path / "a.npz", "pluggable-irl/world-state", {"states": np.array([1, 2])})
    with pytest.raises(DemoFileError, match=r"a.npz: world-state file lacks arrays \['horizon'\]"):
        demos.load(tmp_path / "a.npz")
    demos.save_arrays(tmp_path / "b.npz", "pluggable-irl/world-state",
                      {"states": np.array([1, 2]), "horizon": np.array(0)})
    with pytest.raises(DemoFileError, match="b.npz: horizon .* must be an integer >= 1: got 0"):
        demos.load(tmp_path / "b.npz")


# ---------------------------------------------------------------- simulation
def test_simulate_matches_the_likelihood_and_is_seeded():
    mdp, human, T = _tiny(), hm.Boltzmann(1.3), 3
    n = 20000
    ws = WorldState.simulate(mdp, human, REWARD, n, horizon=T, start=0, seed=3)
    assert len(ws) == n == ws.n_observations and ws.horizon == T and ws.start.tolist() == [0] * n
    freq = np.bincount(ws.states, minlength=4) / n
    p = ws.final_state_distribution(human, mdp, REWARD)[0]
    # every frequency within 4.5 binomial standard errors of the exact probability
    assert np.all(np.abs(freq - p) <= 4.5 * np.sqrt(p * (1 - p) / n) + 1e-12), (freq, p)
    again = WorldState.simulate(mdp, human, REWARD, n, horizon=T, start=0, seed=3)
    np.testing.assert_array_equal(again.states, ws.states)
    # an unknown start: drawn from the prior, recorded as the prior
    prior = np.array([0.0, 0.0, 1.0, 0.0])
    ws2 = WorldState.simulate(mdp, human, REWARD, 2000, horizon=T, start_distribution=prior, seed=4)
    assert ws2.start is None and ws2.start_distribution.tolist() == prior.tolist()
    p2 = WorldState(states=[0], horizon=T, start=2).final_state_distribution(human, mdp, REWARD)[0]
    freq2 = np.bincount(ws2.states, minlength=4) / 2000
    assert np.all(np.abs(freq2 - p2) <= 4.5 * np.sqrt(p2 * (1 - p2) / 2000) + 1e-12)
    with pytest.raises(DemoValidationError, match="n must be >= 1: got 0"):
        WorldState.simulate(mdp, human, REWARD, 0, horizon=T)
