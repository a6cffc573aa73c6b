"""Biased human models: conformance, exact answers on small MDPs, priors, validation, the registry."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import demos
import human_models as hm
import irl
import priors
from human_models.base import HumanModelError
from human_models.biased import tempered_transitions, with_horizon
from human_models.hyperbolic import hyperbolic_expected_utilities
from irl import planning
from irl.envs.bias_envs import restaurant_path


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These tests run many small tensor operations, for which torch's thread pool costs more than it gives
    (up to 8x slower on a busy 2-core machine); restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _random_mdp(seed: int, *, horizon: int | None, S: int = 5, A: int = 3, discount: float = 1.0,
                terminal: bool = False) -> irl.TabularMDP:
    rng = np.random.default_rng(seed)
    T = rng.dirichlet(np.full(S, 0.5), size=(S, A))
    term = np.zeros(S, bool)
    if terminal:
        term[-1] = True
    return irl.TabularMDP.from_arrays(T, horizon=horizon, discount=discount, terminal=term, name=f"random-{seed}")


def _reward(seed: int, S: int = 5, A: int = 3) -> np.ndarray:
    return np.random.default_rng(100 + seed).normal(size=(S, A))


# ------------------------------------------------------------- conformance
MODELS = [
    hm.Myopic(horizon=2, beta=3.0), hm.Myopic(horizon=10, beta=0.7),
    hm.BoundedPlanner(iterations=2, beta=3.0), hm.BoundedPlanner(iterations=4, beta=2.0, soft=False),
    hm.HyperbolicDiscounter(k=1.0, kind="naive", beta=3.0),
    hm.HyperbolicDiscounter(k=0.5, kind="sophisticated", beta=2.0),
    hm.FalseBelief(confidence=3.0, beta=2.0), hm.FalseBelief(confidence=0.3, beta=2.0),
    hm.Noisy(hm.Boltzmann(2.0), epsilon=0.2), hm.Noisy(hm.Myopic(horizon=2, beta=3.0), epsilon=0.3),
]


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_biased_models_pass_conformance(model):
    report = hm.check_human_model(model, seed=1)
    assert report["mdps"] == ["tiny-finite", "tiny-terminal", "tiny-discounted"]
    assert 0.0 <= report["grad_error"] < 1e-5


def test_false_belief_with_given_transitions_passes_conformance():
    mdp = _random_mdp(0, horizon=4)
    believed = _random_mdp(1, horizon=4).dense_transitions()
    report = hm.check_human_model(hm.FalseBelief(transitions=believed, beta=2.0), mdps=[mdp])
    assert report["grad_error"] < 1e-5


def test_flags():
    assert hm.Myopic(2).time_dependent and not hm.BoundedPlanner(2).time_dependent
    assert hm.Noisy(hm.BoundedPlanner(2), 0.1).time_dependent is False
    assert hm.HyperbolicDiscounter().has_closed_form_gradient is False
    assert all(m.differentiable for m in MODELS)
    assert {m.name for m in MODELS} == {"myopic", "bounded", "hyperbolic", "false-belief", "noisy"}


# ----------------------------------------------------------------- Myopic
def test_myopic_replans_min_k_and_time_left_steps():
    mdp, r = _random_mdp(2, horizon=6), _reward(2)
    logp = hm.Myopic(horizon=3, beta=1.7).action_log_probs(mdp, r).numpy()
    for t in range(6):
        m = min(3, 6 - t)
        want = planning.soft_value_iteration(mdp.replace(horizon=m), r, beta=1.7).policy[0]
        np.testing.assert_allclose(np.exp(logp[t]), want, atol=1e-12)


def test_myopic_with_full_horizon_is_boltzmann():
    mdp, r = _random_mdp(3, horizon=5, terminal=True), _reward(3)
    a = hm.Myopic(horizon=5, beta=2.0).action_log_probs(mdp, r)
    b = hm.Boltzmann(2.0).action_log_probs(mdp, r)
    assert torch.allclose(a, b, atol=1e-12)
    assert torch.allclose(hm.Myopic(horizon=50, beta=2.0).action_log_probs(mdp, r), b, atol=1e-12)


def test_myopic_infinite_horizon_is_stationary_k_step_plan():
    mdp, r = _random_mdp(4, horizon=None, discount=0.9), _reward(4)
    p = hm.Myopic(horizon=4, beta=2.5).action_probs(mdp, r)
    want = planning.soft_value_iteration(mdp.replace(horizon=4), r, beta=2.5).policy[0]
    assert p.shape == (5, 3)
    np.testing.assert_allclose(p, want, atol=1e-12)


def _reach_probability(env, human, start, cell):
    """P(the episode from ``start`` ends in ``cell``), exactly (occupancy of the terminal cell)."""
    d0 = np.zeros(env.n_states)
    d0[env.state_names.index(start)] = 1.0
    occ = planning.state_occupancy(env, human.action_probs(env, env.true_reward), initial=d0)
    return float(occ[:, env.state_names.index(cell)].sum())


def test_myopic_is_lured_by_a_nearby_temptation():
    env = irl.envs.make("temptation-corridor")
    goal, temptation = "1,1", "1,9"
    # from (1,7): the temptation is 2 steps away, the goal 6
    assert _reach_probability(env, hm.Myopic(horizon=3, beta=5.0), "1,7", temptation) > 0.95
    assert _reach_probability(env, hm.Boltzmann(5.0), "1,7", goal) > 0.95
    # a myopic human who can see the goal goes there
    assert _reach_probability(env, hm.Myopic(horizon=3, beta=5.0), "1,3", goal) > 0.95


def test_with_horizon_is_cached():
    mdp = _random_mdp(5, horizon=None, discount=0.9)
    assert with_horizon(mdp, 3) is with_horizon(mdp, 3)
    assert with_horizon(mdp, 3).horizon == 3 and with_horizon(mdp, 3).discount == 0.9


# --------------------------------------------------------- BoundedPlanner
def test_bounded_soft_uses_k_sweeps_at_every_step():
    mdp, r = _random_mdp(6, horizon=5), _reward(6)
    p = hm.BoundedPlanner(iterations=2, beta=1.5).action_probs(mdp, r)
    want = planning.soft_value_iteration(mdp.replace(horizon=2), r, beta=1.5).policy[0]
    assert p.shape == (5, 5, 3)
    for t in range(5):
        np.testing.assert_allclose(p[t], want, atol=1e-12)


def test_bounded_hard_is_softmax_of_k_step_optimal_values():
    mdp, r = _random_mdp(7, horizon=None, discount=0.8), _reward(7)
    p = hm.BoundedPlanner(iterations=3, beta=4.0, soft=False).action_probs(mdp, r)
    q = planning.value_iteration(mdp.replace(horizon=3), r).q[0]
    want = np.exp(4.0 * q - np.logaddexp.reduce(4.0 * q, axis=-1, keepdims=True))
    np.testing.assert_allclose(p, want, atol=1e-12)


def test_bounded_and_myopic_agree_in_infinite_horizon_but_not_in_finite():
    inf, r = _random_mdp(8, horizon=None, discount=0.9), _reward(8)
    assert np.allclose(hm.BoundedPlanner(3, 2.0).action_probs(inf, r), hm.Myopic(3, 2.0).action_probs(inf, r),
                       atol=1e-12)
    fin = _random_mdp(8, horizon=6)
    b, m = hm.BoundedPlanner(3, 2.0).action_probs(fin, r), hm.Myopic(3, 2.0).action_probs(fin, r)
    assert np.allclose(b[:4], m[:4], atol=1e-12)  # 3 or more steps left: the same plan
    assert not np.allclose(b[5], m[5], atol=1e-3)  # last step: the myopic human knows it is the last


# -------------------------------------------------------------- Hyperbolic
def _reference_hyperbolic(T, r, terminal, H, k, beta, kind, gamma=1.0):
    """The agentmodels.org recursion, written out state by state with memoisation (slow, obviously right)."""
    S, A = r.shape

    @functools.lru_cache(maxsize=None)
    def act(t, s, d):
        eu = np.array([EU(t, s, a, d) for a in range(A)])
        z = beta * eu
        return np.exp(z - np.logaddexp.reduce(z))

    @functools.lru_cache(maxsize=None)
    def EU(t, s, a, d):
        u = r[s, a] / (1.0 + k * d)
        if terminal[s] or t == H - 1:
            return u
        future = 0.0
        for s2 in range(S):
            if T[s, a, s2] == 0:
                continue
            pi = act(t + 1, s2, d + 1 if kind == "naive" else 0)
            future += T[s, a, s2] * sum(pi[a2] * EU(t + 1, s2, a2, d + 1) for a2 in range(A))
        return u + gamma * future

    return np.array([[[EU(t, s, a, 0) for a in range(A)] for s in range(S)] for t in range(H)])


@pytest.mark.parametrize("kind", ["naive", "sophisticated"])
def test_hyperbolic_matches_the_recursion_written_out(kind):
    mdp = _random_mdp(9, horizon=5, terminal=True, discount=0.95)
    r = _reward(9)
    got = hyperbolic_expected_utilities(mdp, r, k=1.3, beta=2.0, kind=kind).numpy()
    want = _reference_hyperbolic(mdp.dense_transitions(), r, mdp.terminal, 5, 1.3, 2.0, kind, gamma=0.95)
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_hyperbolic_without_discounting_is_time_consistent():
    mdp, r = _random_mdp(10, horizon=5), _reward(10)
    naive = hm.HyperbolicDiscounter(k=0.0, kind="naive", beta=2.0).action_log_probs(mdp, r)
    soph = hm.HyperbolicDiscounter(k=0.0, kind="sophisticated", beta=2.0).action_log_probs(mdp, r)
    assert torch.allclose(naive, soph, atol=1e-12)
    # ... and naive != sophisticated once there is discounting
    a = hm.HyperbolicDiscounter(k=2.0, kind="naive", beta=2.0).action_log_probs(mdp, r)
    b = hm.HyperbolicDiscounter(k=2.0, kind="sophisticated", beta=2.0).action_log_probs(mdp, r)
    assert (a - b).abs().max() > 1e-3


def test_hyperbolic_restaurant_expected_utilities_by_hand():
    """At (3,5), one step from Donut N: the numbers of the book's naive agent, computed by hand."""
    env = irl.envs.make("restaurant-choice")
    eu = hm.HyperbolicDiscounter(k=1.0, kind="naive", beta=500.0).expected_utilities(env, env.true_reward)
    s = env.state_names.index("(3,5) from u")
    left, up = env.action_names.index("l"), env.action_names.index("u")
    # left: time cost now, then donut +10 at delay 1 and -10 at delay 2
    assert float(eu[4, s, left]) == pytest.approx(-0.01 + 10 / 2 - 10 / 3, abs=1e-9)
    # up: time costs at delays 0, 1, 2, then veg -10 at delay 3 and +20 at delay 4
    assert float(eu[4, s, up]) == pytest.approx(-0.01 - 0.01 / 2 - 0.01 / 3 - 10 / 4 + 20 / 5, abs=1e-6)


@pytest.mark.parametrize("kind,path", [("naive", "naive"), ("sophisticated", "sophisticated")])
def test_hyperbolic_agents_take_the_books_paths(kind, path):
    env = irl.envs.make("restaurant-choice")
    data = hm.HyperbolicDiscounter(k=1.0, kind=kind, beta=500.0).sample(env, env.true_reward, 20, rng=0)
    want = restaurant_path(env, path)
    assert all(np.array_equal(tr.states, want[0].states) for tr in data)
    # a time-consistent agent with the same utilities walks straight to Veg
    straight = hm.HyperbolicDiscounter(k=0.0, beta=500.0).sample(env, env.true_reward, 5, rng=0)
    assert all(np.array_equal(tr.states, restaurant_path(env, "veg_direct")[0].states) for tr in straight)


def test_hyperbolic_infinite_horizon_uses_truncated_limit():
    mdp, r = _random_mdp(11, horizon=None, discount=0.7), _reward(11)
    h = hm.HyperbolicDiscounter(k=1.0, beta=2.0)
    p = h.action_probs(mdp, r)
    longer = hm.HyperbolicDiscounter(k=1.0, beta=2.0, max_delay=200).action_probs(mdp, r)
    assert p.shape == (5, 3)
    np.testing.assert_allclose(p, longer, atol=1e-6)
    assert not np.allclose(p, hm.HyperbolicDiscounter(k=1.0, beta=2.0, max_delay=2).action_probs(mdp, r), atol=1e-4)


# -------------------------------------------------------------- FalseBelief
def test_tempered_transitions_by_hand():
    T = sp.csr_matrix(np.array([[0.8, 0.2, 0.0], [0.0, 0.0, 0.0], [0.5, 0.25, 0.25]]))
    np.testing.assert_allclose(tempered_transitions(T, 2.0).toarray(),
                               [[0.64 / 0.68, 0.04 / 0.68, 0], [0, 0, 0],
                                [0.25 / 0.375, 0.0625 / 0.375, 0.0625 / 0.375]])
    np.testing.assert_allclose(tempered_transitions(T, 0.0).toarray(), [[0.5, 0.5, 0], [0, 0, 0], [1 / 3] * 3])
    np.testing.assert_allclose(tempered_transitions(T, 1.0).toarray(), T.toarray())


def test_false_belief_with_correct_beliefs_is_boltzmann():
    mdp, r = _random_mdp(12, horizon=4, terminal=True), _reward(12)
    a = hm.FalseBelief(confidence=1.0, beta=2.0).action_log_probs(mdp, r)
    assert torch.allclose(a, hm.Boltzmann(2.0).action_log_probs(mdp, r), atol=1e-12)
    given = hm.FalseBelief(transitions=mdp.dense_transitions(), beta=2.0).action_log_probs(mdp, r)
    assert torch.allclose(given, a, atol=1e-12)


def test_false_belief_plans_in_believed_dynamics_and_acts_in_true_ones():
    mdp, r = _random_mdp(13, horizon=4), _reward(13)
    believed = _random_mdp(14, horizon=4)
    human = hm.FalseBelief(transitions=believed.dense_transitions(), beta=2.0)
    np.testing.assert_allclose(human.action_probs(mdp, r), hm.Boltzmann(2.0).action_probs(believed, r), atol=1e-12)
    # the data come from the true dynamics: every observed transition is possible in the true MDP
    data = human.sample(mdp, r, 50, rng=0)
    t, s = data.step_index
    nxt = np.delete(data.states, data.state_offsets[:-1])
    assert np.all(mdp.dense_transitions()[s, data.actions, nxt] > 0)


def test_overconfident_human_falls_off_the_cliff_more_often():
    env = irl.envs.make("cliff-shortcut")
    cliff = env.features[:, env.feature_names.index("cliff")] == 1

    def p_fall(human):
        return float(planning.state_occupancy(env, human.action_probs(env, env.true_reward))[:, cliff].sum())

    assert p_fall(hm.FalseBelief(confidence=4.0, beta=5.0)) > 0.3 > 0.1 > p_fall(hm.Boltzmann(5.0))


# ------------------------------------------------------------------- Noisy
def test_noisy_mixes_with_uniform_exactly():
    mdp, r = _random_mdp(15, horizon=3), _reward(15)
    inner = hm.Myopic(horizon=2, beta=3.0)
    p = inner.action_probs(mdp, r)
    np.testing.assert_allclose(hm.Noisy(inner, 0.25).action_probs(mdp, r), 0.75 * p + 0.25 / 3, atol=1e-12)
    np.testing.assert_allclose(hm.Noisy(inner, 0.0).action_probs(mdp, r), p, atol=1e-12)
    np.testing.assert_allclose(hm.Noisy(inner, 1.0).action_probs(mdp, r), np.full_like(p, 1 / 3), atol=1e-12)


def test_noisy_exposes_and_binds_the_inner_parameters():
    model = hm.Noisy(hm.Noisy(hm.Boltzmann(priors.LogNormal(0, 1)), 0.1), priors.Uniform(0, 1))
    assert set(model.params) == {"epsilon", "model.epsilon", "beta"}
    assert set(model.free_parameters()) == {"epsilon", "beta"}
    bound = model.bind(epsilon=0.3, beta=2.0, **{"model.epsilon": 0.2})
    assert bound.epsilon == 0.3 and bound.model.epsilon == 0.2 and bound.model.model.beta == 2.0
    assert model.epsilon is not bound.epsilon and model.model.model.beta is not bound.model.model.beta
    with pytest.raises(HumanModelError, match="no parameter 'gamma'"):
        model.bind(gamma=1.0)


def test_noisy_choice_rule_mixes_with_a_uniform_pick():
    values = torch.tensor([[1.0, 2.0, 0.0], [0.5, 0.0, -9.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    inner = hm.Boltzmann(2.0)
    got = hm.Noisy(inner, 0.4).choice_log_probs(values, mask).exp()
    want = 0.6 * inner.choice_log_probs(values, mask).exp() + 0.4 / mask.sum(-1, keepdim=True)
    assert torch.allclose(got[mask], want[mask], atol=1e-12) and float(got[1, 2]) == 0.0


def test_noisy_random_actions_show_in_samples():
    env = irl.envs.make("lava-detour")
    data = hm.Noisy(hm.Boltzmann(20.0), 1.0).sample(env, env.true_reward, 400, rng=0)
    freq = np.bincount(data.actions, minlength=4) / data.actions.size
    assert np.all(np.abs(freq - 0.25) < 0.03)


# ------------------------------------------------------------ priors, batching
def test_discrete_priors_are_summed_out_by_the_log_joint():
    mdp = _random_mdp(16, horizon=4)
    truth = _reward(16)
    data = hm.Myopic(2, 2.0).sample(mdp, truth, 30, rng=0)
    model = irl.rewards.TabularReward(5, 3, state_only=False)
    theta = torch.as_tensor(truth.ravel())
    prior = priors.Categorical([1, 2, 3], probs=[0.2, 0.3, 0.5])
    joint = irl.LogJoint([irl.Evidence(mdp, data, hm.Myopic(prior, 2.0))], model)
    manual = torch.logsumexp(torch.stack([math.log(p) + hm.Myopic(k, 2.0).log_likelihood(mdp, truth, data)
                                          for k, p in zip([1, 2, 3], [0.2, 0.3, 0.5])]), 0)
    assert float(joint.log_likelihood(theta)) == pytest.approx(float(manual), abs=1e-9)
    post = joint.discrete_posterior(theta)["myopic.horizon"]
    terms = torch.stack([math.log(p) + hm.Myopic(k, 2.0).log_likelihood(mdp, truth, data)
                         for k, p in zip([1, 2, 3], [0.2, 0.3, 0.5])])
    want = torch.softmax(terms, 0).tolist()
    assert [post[k] for k in (1, 2, 3)] == pytest.approx(want, abs=1e-12)
    # with more data and a longer episode the true horizon stands out
    longer = mdp.replace(horizon=6)
    more = hm.Myopic(2, 2.0).sample(longer, truth, 2000, rng=1)
    joint = irl.LogJoint([irl.Evidence(longer, more, hm.Myopic(priors.Categorical([1, 2, 5]), 2.0))], model)
    post = joint.discrete_posterior(theta)["myopic.horizon"]
    assert post[2] > 0.95


@pytest.mark.parametrize("make_model,name", [
    (lambda: hm.HyperbolicDiscounter(k=priors.LogNormal(0, 1), beta=2.0), "hyperbolic.k"),
    (lambda: hm.HyperbolicDiscounter(k=1.0, beta=priors.LogNormal(0, 1)), "hyperbolic.beta"),
    (lambda: hm.Noisy(hm.Boltzmann(2.0), priors.Uniform(0, 1)), "noisy.epsilon"),
    (lambda: hm.Myopic(2, priors.Gamma(2.0, 1.0)), "myopic.beta"),
    (lambda: hm.FalseBelief(confidence=2.0, beta=priors.LogNormal(0, 1)), "false-belief.beta"),
])
def test_continuous_priors_batch_and_differentiate(make_model, name):
    mdp = _random_mdp(17, horizon=4)
    data = hm.Boltzmann(2.0).sample(mdp, _reward(17), 20, rng=0)
    joint = irl.LogJoint([irl.Evidence(mdp, data, make_model())], irl.rewards.TabularReward(5, 3))
    assert joint.param_names()[-1] == name
    x = torch.randn(3, joint.dim, dtype=torch.float64)
    batched = joint(x)
    single = torch.stack([joint(x[i]) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-10)
    xi = x[0].clone().requires_grad_(True)
    joint(xi).backward()
    assert torch.isfinite(xi.grad).all() and float(xi.grad[-1].abs()) > 0
    # the gradient w.r.t. the human parameter is right (central differences)
    e = torch.zeros_like(x[0])
    e[-1] = 1e-6
    fd = (float(joint(x[0] + e)) - float(joint(x[0] - e))) / 2e-6
    assert float(xi.grad[-1]) == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_false_belief_confidence_is_enumerated():
    env = irl.envs.make("cliff-shortcut")
    data = hm.FalseBelief(confidence=4.0, beta=5.0).sample(env, env.true_reward, 200, rng=0)
    human = hm.FalseBelief(confidence=priors.Categorical([0.5, 1.0, 4.0]), beta=5.0)
    joint = irl.LogJoint([irl.Evidence(env, data, human)], irl.rewards.LinearReward.from_mdp(env))
    post = joint.discrete_posterior(torch.tensor([-0.1, 10.0, -10.0], dtype=torch.float64))
    assert post["false-belief.confidence"][4.0] > 0.99


def test_hyperbolic_kind_is_enumerated_on_the_restaurant_paths():
    env = irl.envs.make("restaurant-choice")
    human = hm.HyperbolicDiscounter(k=1.0, kind=priors.Categorical(["naive", "sophisticated"]), beta=500.0)
    theta = torch.as_tensor(irl.envs.bias_envs.restaurant_reward())
    for path, kind in (("naive", "naive"), ("sophisticated", "sophisticated")):
        joint = irl.LogJoint([irl.Evidence(env, restaurant_path(env, path), human)],
                             irl.rewards.LinearReward.from_mdp(env))
        assert joint.discrete_posterior(theta)["hyperbolic.kind"][kind] > 0.99


# --------------------------------------------------------------- validation
@pytest.mark.parametrize("make,match", [
    (lambda: hm.Myopic(horizon=0), r"horizon must be an integer >= 1: got 0"),
    (lambda: hm.Myopic(horizon=2.5), r"horizon must be an integer >= 1: got 2.5"),
    (lambda: hm.Myopic(horizon=priors.LogNormal(0, 1)), r"horizon is discrete: give a number or a priors.Categorical"),
    (lambda: hm.Myopic(horizon=priors.Categorical([1, 0])), r"every value of its prior must be: got 0"),
    (lambda: hm.BoundedPlanner(iterations=-1), r"iterations must be an integer >= 1"),
    (lambda: hm.BoundedPlanner(iterations=2, soft="yes"), r"soft must be True or False"),
    (lambda: hm.Myopic(horizon=2, beta=0.0), r"beta must be a finite number > 0"),
    (lambda: hm.HyperbolicDiscounter(k=-1.0), r"k must be a finite number >= 0: got -1.0"),
    (lambda: hm.HyperbolicDiscounter(k=priors.Gaussian(0, 1)), r"k must be >= 0, so its prior must live on"),
    (lambda: hm.HyperbolicDiscounter(kind="lazy"), r"kind must be one of \('naive', 'sophisticated'\): got 'lazy'"),
    (lambda: hm.HyperbolicDiscounter(max_delay=0), r"max_delay must be a positive integer"),
    (lambda: hm.FalseBelief(confidence=-1.0), r"confidence must be a finite number >= 0: got -1.0"),
    (lambda: hm.FalseBelief(confidence=priors.LogNormal(0, 1)), r"confidence is discrete: give a number or a"),
    (lambda: hm.FalseBelief(transitions=np.ones((3, 2))), r"an array of shape \(3, 2\)"),
    (lambda: hm.Noisy(hm.Boltzmann(), epsilon=1.5), r"epsilon must be a probability in \[0, 1\]: got 1.5"),
    (lambda: hm.Noisy(hm.Boltzmann(), epsilon=priors.LogNormal(0, 1)), r"prior must live inside \[0, 1\]"),
    (lambda: hm.Noisy("boltzmann", epsilon=0.1), r"Noisy wraps a human model .* got str"),
])
def test_bad_parameters_are_refused_with_a_message(make, match):
    with pytest.raises(HumanModelError, match=match):
        make()


def test_bound_values_are_checked_when_used():
    mdp, r = _random_mdp(18, horizon=3), _reward(18)
    with pytest.raises(HumanModelError, match="horizon must be an integer >= 1: got 0"):
        hm.Myopic(horizon=priors.Categorical([1, 2])).bind(horizon=0).action_log_probs(mdp, r)
    with pytest.raises(HumanModelError, match="is a prior"):
        hm.Myopic(horizon=priors.Categorical([1, 2])).action_log_probs(mdp, r)


def test_believed_transitions_of_the_wrong_size_are_refused():
    mdp, r = _random_mdp(19, horizon=3), _reward(19)
    human = hm.FalseBelief(transitions=np.full((4, 3, 4), 0.25))
    with pytest.raises(HumanModelError, match=r"must have shape \(S\*A, S\) = \(15, 5\) .* got \(12, 4\)"):
        human.action_log_probs(mdp, r)


# ------------------------------------------------------------------ registry
def test_registry_builds_the_biased_models():
    assert {"myopic", "bounded", "hyperbolic", "false-belief", "noisy"} <= set(hm.names())
    m = hm.make("myopic:horizon=prior:categorical(1..10),beta=5")
    assert isinstance(m, hm.Myopic) and m.horizon.values == list(range(1, 11)) and m.beta == 5
    h = hm.make("hyperbolic:k=1,kind=sophisticated,beta=500")
    assert (h.k, h.kind, h.beta) == (1, "sophisticated", 500)
    kinds = hm.make("hyperbolic:kind=prior:categorical(naive|sophisticated)").kind
    assert kinds.values == ["naive", "sophisticated"]
    n = hm.make("noisy:epsilon=prior:uniform(0;1),model=myopic(horizon=3,beta=5)")
    assert isinstance(n.epsilon, priors.Uniform) and (n.epsilon.low, n.epsilon.high) == (0.0, 1.0)
    assert isinstance(n.model, hm.Myopic) and (n.model.horizon, n.model.beta) == (3, 5)
    b = hm.make("bounded:iterations=4,soft=false,beta=prior:lognormal(loc=0;scale=2)")
    assert b.soft is False and b.iterations == 4 and b.beta.scale == 2.0
    f = hm.make("false-belief:confidence=prior:categorical(values=0.5|1|2)")
    assert f.confidence.values == [0.5, 1, 2]
    described = {name: params for name, params, _ in hm.describe()}
    assert described["noisy"] == "epsilon=0.1, model='boltzmann'"


@pytest.mark.parametrize("spec,match", [
    ("myopic:horizon=prior:nosuch(1)", r"unknown prior 'nosuch'; known: .*categorical"),
    ("myopic:horizon=prior:categorical(1..3", r"unbalanced parentheses"),
    ("noisy:model=myopic(horizon=3", r"unbalanced parentheses"),
    ("myopic:horizon=prior:gaussian(loc=0;1)", r"write the argument '1' as key=value"),
    ("myopic:horizon=prior:lognormal(0;1)", r"horizon is discrete"),
])
def test_registry_errors_name_the_problem(spec, match):
    with pytest.raises(HumanModelError, match=match):
        hm.make(spec)


def test_registry_models_simulate_like_the_classes():
    env = irl.envs.make("temptation-corridor")
    a = demos.simulate(env, hm.make("myopic:horizon=3,beta=2"), env.true_reward, n=10, seed=4)
    b = demos.simulate(env, hm.Myopic(horizon=3, beta=2.0), env.true_reward, n=10, seed=4)
    assert np.array_equal(a.states, b.states) and np.array_equal(a.actions, b.actions)


# ------------------------------------------------------------- environments
def test_ascii_gridworld_builds_what_the_map_says():
    from irl.envs.bias_envs import ascii_gridworld

    env = ascii_gridworld(["#####", "#S.G#", "#####"], weights={"goal": 1.0, "step": -0.1}, horizon=4)
    assert env.grid_shape == (3, 5) and env.feature_names == ("step", "goal")
    s, g = env.state_names.index("1,1"), env.state_names.index("1,3")
    P = env.dense_transitions()
    right, up = env.action_names.index("right"), env.action_names.index("up")
    assert P[s, right, env.state_names.index("1,2")] == 1.0 and P[s, up, s] == 1.0  # a wall stops the move
    assert env.terminal[g] and env.initial[s] == 1.0 and env.true_reward[g] == 1.0
    slippery = ascii_gridworld(["S.G"], weights={"goal": 1.0}, slip=0.2, horizon=3)
    assert slippery.dense_transitions()[0, right, 1] == pytest.approx(0.8 + 0.2 / 4)


@pytest.mark.parametrize("layout,kw,match", [
    (["S.G", "S."], {}, r"same length: got lengths \[3, 2\]"),
    (["S.X"], {}, r"unknown cell characters \['X'\]"),
    (["..G"], {}, r"at least one start cell 'S'"),
    (["S.G"], {"slip": 1.5}, r"slip must lie in \[0, 1\]: got 1.5"),
    (["S.G"], {"weights": {"lava": 1.0}}, r"weights name unknown features \['lava'\]"),
])
def test_ascii_gridworld_refuses_bad_maps(layout, kw, match):
    from irl.envs.bias_envs import ascii_gridworld

    kw = {"weights": {"goal": 1.0}, "horizon": 3, **kw}
    with pytest.raises(irl.MDPValidationError, match=match):
        ascii_gridworld(layout, **kw)


def test_restaurant_world_forbids_turning_back():
    env = irl.envs.make("restaurant-choice")
    s = env.state_names.index("(3,2) from u")  # a street with walls left and right, arrived from below
    illegal = env.feature_names.index("illegal")
    assert [bool(env.features[s, a, illegal]) for a in range(4)] == [True, True, False, True]  # only "u"
    free = irl.envs.bias_envs.restaurant_choice(no_reverse=False)
    assert not free.features[s, env.action_names.index("d"), illegal]
    with pytest.raises(KeyError, match="known: \\['donut_south', 'naive', 'sophisticated', 'veg_direct'\\]"):
        restaurant_path(env, "noodles")
    with pytest.raises(irl.MDPValidationError, match="weights must have 10 entries"):
        irl.envs.bias_envs.restaurant_choice(weights=np.zeros(3))
