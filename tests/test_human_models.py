"""Human models: the conformance suite, parameter validation, the registry and limiting behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import human_models as hm
import irl
from human_models.base import BaseHumanModel, HumanModelError
from human_models.conformance import ConformanceError


def _random_mdp(seed: int, *, horizon: int | None, S: int = 6, A: int = 3, discount: float = 1.0) -> irl.TabularMDP:
    rng = np.random.default_rng(seed)
    T = rng.dirichlet(np.full(S, 0.4), size=(S, A))
    return irl.TabularMDP.from_arrays(T, horizon=horizon, discount=discount, name=f"random-{seed}")


# ------------------------------------------------------------- conformance
@pytest.mark.parametrize("model", [hm.Boltzmann(0.5), hm.Boltzmann(2.0), hm.Boltzmann(10.0),
                                   hm.BoltzmannQ(0.5), hm.BoltzmannQ(2.0), hm.BoltzmannQ(10.0)], ids=repr)
def test_builtin_models_pass_conformance(model):
    report = hm.check_human_model(model, seed=3)
    assert report["mdps"] == ["tiny-finite", "tiny-terminal", "tiny-discounted"]
    assert 0.0 <= report["grad_error"] < 1e-5


class _Unnormalised(hm.Boltzmann):
    """Broken: probabilities sum to exp(-0.1) instead of 1."""

    def action_log_probs(self, mdp, reward):
        return super().action_log_probs(mdp, reward) - 0.1


class _WrongLikelihood(hm.Boltzmann):
    """Broken: the likelihood forgets half of the data."""

    def log_likelihood(self, mdp, reward, evidence):
        return 0.5 * super().log_likelihood(mdp, reward, evidence)


class _WrongGradient(hm.Boltzmann):
    """Broken: the right values, but the gradient w.r.t. the reward is halved."""

    def action_log_probs(self, mdp, reward):
        logp = super().action_log_probs(mdp, reward)
        return logp.detach() + 0.5 * (logp - logp.detach())


class _NotBoolFlag(hm.Boltzmann):
    differentiable = "yes"  # type: ignore[assignment]


class _WrongShape(hm.Boltzmann):
    def action_log_probs(self, mdp, reward):
        return super().action_log_probs(mdp, reward)[..., :-1]


@pytest.mark.parametrize("model, rule", [
    (_Unnormalised(2.0), r"_Unnormalised on tiny-finite: action probabilities must sum to 1"),
    (_WrongLikelihood(2.0), r"_WrongLikelihood on tiny-finite: log_likelihood .* != sum of sampled action log-probs"),
    (_WrongGradient(2.0), r"_WrongGradient on tiny-finite: gradient d logL / d r\[\d+,\d+\] = .* but finite "
                          r"differences give"),
    (_NotBoolFlag(2.0), r"_NotBoolFlag\.differentiable must be a bool: got 'yes'"),
    (_WrongShape(2.0), r"_WrongShape on tiny-finite: action_log_probs shape must be \(4, 5, 3\): got \(4, 5, 2\)"),
])
def test_conformance_catches_broken_models(model, rule):
    with pytest.raises(ConformanceError, match=rule):
        hm.check_human_model(model)


def test_wrong_gradient_really_is_wrong():
    """The broken-gradient model has the right values, so only the gradient rule can catch it."""
    mdp = _random_mdp(0, horizon=3)
    r = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    good, bad = hm.Boltzmann(2.0), _WrongGradient(2.0)
    assert torch.allclose(good.action_log_probs(mdp, r), bad.action_log_probs(mdp, r))
    x = r.clone().requires_grad_()
    (ga,) = torch.autograd.grad(good.action_log_probs(mdp, x)[0, 0, 0], [x])
    x = r.clone().requires_grad_()
    (gb,) = torch.autograd.grad(bad.action_log_probs(mdp, x)[0, 0, 0], [x])
    assert torch.allclose(gb, 0.5 * ga) and ga.abs().max() > 0.01


def test_conformance_error_is_an_assertion_error():
    assert issubclass(ConformanceError, AssertionError)


# ---------------------------------------------------------------- beta
@pytest.mark.parametrize("cls", [hm.Boltzmann, hm.BoltzmannQ])
@pytest.mark.parametrize("beta, message", [
    (0, r"beta must be a finite number > 0: got 0"),
    (-1, r"beta must be a finite number > 0: got -1"),
    (float("nan"), r"beta must be a finite number > 0: got nan"),
    (float("inf"), r"beta must be a finite number > 0: got inf"),
    ("x", r"beta must be a number > 0: got 'x'"),
    (None, r"beta must be a number > 0: got None"),
])
def test_beta_validation(cls, beta, message):
    with pytest.raises(HumanModelError, match=message):
        cls(beta=beta)


def test_beta_accepts_numbers_and_tensors():
    assert hm.Boltzmann("2.5").beta == 2.5
    b = torch.tensor(3.0, requires_grad=True)
    assert hm.Boltzmann(b).beta is b  # a tensor passes through so that beta can be inferred
    assert repr(hm.BoltzmannQ(4.0)) == "BoltzmannQ(beta=4.0)"


# ---------------------------------------------------------------- registry
def test_registry_make():
    m = hm.make("boltzmann:beta=5")
    assert isinstance(m, hm.Boltzmann) and m.beta == 5
    q = hm.make(" Boltzmann-Q : beta = 0.25 ")
    assert isinstance(q, hm.BoltzmannQ) and q.beta == 0.25
    assert isinstance(hm.make("boltzmann"), hm.Boltzmann)
    assert {"boltzmann", "boltzmann-q"} <= set(hm.names())
    rows = {name: (params, summary) for name, params, summary in hm.describe()}
    assert rows["boltzmann"][0] == "beta=1.0" and rows["boltzmann"][1].startswith("Soft-optimal")


def test_registry_unknown_name_lists_known_ones():
    with pytest.raises(HumanModelError) as exc:
        hm.make("botlzmann:beta=5")
    msg = str(exc.value)
    assert "unknown human model 'botlzmann'" in msg
    for name in hm.names():
        assert name in msg


def test_registry_bad_key_lists_parameters():
    with pytest.raises(HumanModelError, match=r"human model 'boltzmann' takes parameters \['beta'\]: got \['gamma'\]"):
        hm.make("boltzmann:gamma=2")
    with pytest.raises(HumanModelError, match=r"expected key=value, got 'beta'"):
        hm.make("boltzmann:beta")
    with pytest.raises(HumanModelError, match=r"beta must be a finite number > 0: got 0"):
        hm.make("boltzmann:beta=0")


def test_register_a_user_model():
    class Lazy(hm.Boltzmann):
        name = "lazy-test"

    hm.register("lazy-test", Lazy)
    try:
        assert isinstance(hm.make("lazy-test:beta=3"), Lazy)
        assert "lazy-test" in hm.names()
    finally:
        from human_models import registry

        registry._REGISTRY.pop("lazy-test")
    assert "lazy-test" not in hm.names()


# ------------------------------------------------------- limiting behaviour
def test_large_beta_approaches_optimal_policy():
    env = irl.envs.make("gridworld-5x5")
    truth = irl.envs.true_reward(env)
    v_opt = irl.metrics.optimal_return(env, truth)
    q_star = irl.planning.value_iteration(env, truth).q  # (H, S, A)
    optimal = q_star >= q_star.max(-1, keepdims=True) - 1e-9
    gaps = []
    for beta in (1.0, 10.0, 1000.0):
        for model in (hm.Boltzmann(beta), hm.BoltzmannQ(beta)):
            p = model.action_probs(env, truth)
            gaps.append(v_opt - irl.metrics.policy_return(env, p, truth))
    gaps = np.array(gaps).reshape(3, 2)
    assert np.all(gaps >= -1e-9)
    assert np.all(np.diff(gaps, axis=0) < 0), f"the gap to optimal must shrink with beta: {gaps}"
    assert np.all(gaps[-1] < 1e-3 * abs(v_opt))
    # at beta = 1000 the Q-softmax puts (almost) all mass on the optimal actions
    p = hm.BoltzmannQ(1000.0).action_probs(env, truth)
    mass = (p * optimal).sum(-1)
    gap_q = np.where(optimal, np.inf, q_star.max(-1, keepdims=True) - q_star).min(-1)
    clear = gap_q > 0.02  # states where the best non-optimal action is clearly worse
    assert clear.mean() > 0.5 and mass[clear].min() > 1 - 1e-6


def test_small_beta_approaches_uniform():
    env = irl.envs.make("gridworld-5x5")
    truth = irl.envs.true_reward(env)
    for model in (hm.Boltzmann(1e-5), hm.BoltzmannQ(1e-5)):
        p = model.action_probs(env, truth)
        np.testing.assert_allclose(p, 1.0 / env.n_actions, atol=1e-4)
    # and the uniform limit is approached from a clearly non-uniform policy
    assert np.abs(hm.Boltzmann(5.0).action_probs(env, truth) - 0.2).max() > 0.3


def test_boltzmann_and_boltzmann_q_agree_on_one_step_problems():
    """With one action left, soft and hard Q-values are both just the reward."""
    rng = np.random.default_rng(4)
    r = rng.normal(size=(6, 3))
    one = _random_mdp(1, horizon=1)
    for beta in (0.3, 2.0):
        a = hm.Boltzmann(beta).action_log_probs(one, r)
        b = hm.BoltzmannQ(beta).action_log_probs(one, r)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
        torch.testing.assert_close(a[0], torch.log_softmax(beta * torch.as_tensor(r), -1), rtol=0, atol=1e-12)


def test_boltzmann_and_boltzmann_q_differ_in_general():
    rng = np.random.default_rng(4)
    r = rng.normal(size=(6, 3))
    longer = _random_mdp(1, horizon=5)
    a = hm.Boltzmann(2.0).action_log_probs(longer, r)
    b = hm.BoltzmannQ(2.0).action_log_probs(longer, r)
    # the last step is a one-step problem: the same; earlier steps see soft vs hard futures
    torch.testing.assert_close(a[-1], b[-1], rtol=0, atol=1e-12)
    assert float((a[0] - b[0]).abs().max()) > 1e-2
    # the soft future includes an entropy bonus: soft Q >= hard Q at every step
    soft_q = irl.planning.soft_value_iteration(longer, r, beta=2.0).q
    hard_q = irl.planning.value_iteration(longer, r).q
    assert np.all(soft_q >= hard_q - 1e-12) and np.any(soft_q > hard_q + 1e-3)
    # infinite-horizon discounted problems differ too
    disc = _random_mdp(1, horizon=None, discount=0.8)
    a = hm.Boltzmann(2.0).action_log_probs(disc, r)
    b = hm.BoltzmannQ(2.0).action_log_probs(disc, r)
    assert a.shape == b.shape == (6, 3) and float((a - b).abs().max()) > 1e-2


def test_policies_sum_to_one_and_are_time_indexed():
    env = _random_mdp(2, horizon=4)
    r = np.random.default_rng(0).normal(size=6)  # a state reward is accepted and broadcast
    for model in (hm.Boltzmann(3.0), hm.BoltzmannQ(3.0)):
        p = model.action_probs(env, r)
        assert p.shape == (4, 6, 3)
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-12)
        assert model.time_dependent and model.differentiable and model.has_closed_form_gradient
    assert math.isclose(hm.Boltzmann(3.0).beta, 3.0)


def test_non_model_evidence_is_refused():
    env = _random_mdp(2, horizon=4)
    with pytest.raises(HumanModelError, match="list is not an evidence type"):
        hm.Boltzmann(1.0).log_likelihood(env, np.zeros(6), [0, 1, 2])


def test_protocol_is_structural():
    assert isinstance(hm.Boltzmann(1.0), hm.HumanModel)
    assert issubclass(hm.Boltzmann, BaseHumanModel)
    assert not isinstance(object(), hm.HumanModel)
