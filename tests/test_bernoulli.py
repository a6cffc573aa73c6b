"""Bernoulli metareasoning: exact values against brute force, recovery of the cost, myopic vs exact, amplification."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

import demos
import human_models as hm
import irl
import priors
from irl.metalevel import MetaLevelError, population
from irl.metalevel.bernoulli import BernoulliMetaMDP


def _brute_force(k: int, a: float, b: float, horizon: int, cost: float) -> tuple[dict, dict]:
    """Values and Q-values of every count state by plain recursion from the definitions (no vectorisation)."""

    @lru_cache(maxsize=None)
    def value(counts: tuple) -> float:
        return max(q(counts))

    @lru_cache(maxsize=None)
    def q(counts: tuple) -> tuple:
        means = [(a + counts[i]) / (a + b + counts[i] + counts[k + i]) for i in range(k)]
        out = [max(means)]
        if sum(counts) < horizon:
            for i in range(k):
                win, lose = list(counts), list(counts)
                win[i] += 1
                lose[k + i] += 1
                out.append(means[i] * value(tuple(win)) + (1 - means[i]) * value(tuple(lose)) - cost)
        return tuple(out)

    states = [c for c in np.ndindex(*(horizon + 1,) * (2 * k)) if sum(c) <= horizon]
    return {c: value(c) for c in states}, {c: q(c) for c in states}


@pytest.mark.parametrize("k,prior,horizon,cost", [(2, (1.0, 1.0), 4, 0.01), (2, (2.0, 0.5), 3, 0.05),
                                                  (3, (1.0, 1.0), 3, 0.0)])
def test_exact_values_match_brute_force_enumeration(k, prior, horizon, cost):
    meta = BernoulliMetaMDP(k=k, prior=prior, horizon=horizon)
    V, Q = _brute_force(k, prior[0], prior[1], horizon, cost)
    states = np.array(list(V), dtype=np.float64)
    assert states.shape[0] == meta.n_states  # every count state with at most `horizon` samples
    solver = meta.solver("exact")
    phi = meta.params(cost)
    np.testing.assert_allclose(solver.value(states, phi), [V[tuple(map(int, s))] for s in states], atol=1e-12)
    q = solver.q_values(states, phi)
    want = np.full(q.shape, -np.inf)
    for i, s in enumerate(states):
        qs = Q[tuple(map(int, s))]
        want[i, :len(qs)] = qs
    np.testing.assert_allclose(q, want, atol=1e-12)
    # the planes give the value as -cost * E[samples] + E[chosen mean], and the gradient in cost exactly
    planes = solver.q_planes(states, phi)
    np.testing.assert_allclose(np.where(np.isfinite(want), planes @ phi, -np.inf), want, atol=1e-12)
    eps = 1e-6
    fin = np.isfinite(want)
    up = np.where(fin, solver.q_values(states, meta.params(cost + eps)), 0.0)
    dn = np.where(fin, solver.q_values(states, meta.params(cost - eps)), 0.0)
    right, left = (up - np.where(fin, q, 0.0)) / eps, (np.where(fin, q, 0.0) - dn) / eps
    smooth = fin & (np.abs(right - left) < 1e-6)  # away from the costs where the optimal policy switches
    assert smooth[:, 1:].sum() > 0.5 * fin[:, 1:].sum()  # cost 0 sits on many ties of sampling and stopping
    np.testing.assert_allclose(planes[..., 0][smooth], right[smooth], atol=1e-6)


def test_myopic_solver_is_one_step_look_ahead_and_below_exact():
    env = irl.envs.make("metareasoning-bernoulli", k=2, horizon=6)
    meta = env.meta
    b = np.array([[0, 0, 0, 0], [1, 0, 0, 1], [2, 1, 1, 1]], dtype=float)
    qm = meta.q_values(b, cost=0.01, solver="myopic")
    qe = meta.q_values(b, cost=0.01, solver="exact")
    # by hand at the prior: a success on option 1 makes it 2/3, a failure leaves option 2 at 1/2
    assert qm[0, 1] == pytest.approx(0.5 * 2 / 3 + 0.5 * 0.5 - 0.01)
    np.testing.assert_allclose(qm[:, 0], qe[:, 0])  # stopping is the same
    assert np.all(qm[:, 1:] <= qe[:, 1:] + 1e-12)  # looking one step ahead never over-values sampling
    assert np.any(qm[:, 1:] < qe[:, 1:] - 1e-3)


def test_environment_and_validation():
    env = irl.envs.make("metareasoning-bernoulli", k=3, prior=(2, 3), horizon=5, cost=0.02)
    assert "metareasoning-bernoulli" in irl.envs.names()
    assert (env.n_states, env.n_actions, env.meta.n_actions, env.meta.fee) == (4, 3, 4, 0.02)
    assert env.meta.n_states == 462  # C(5 + 6, 6)
    full = env.meta.initial_beliefs(1) + np.array([[2, 1, 0, 1, 1, 0]])
    assert env.meta.available(full).tolist() == [[True, False, False, False]]
    with pytest.raises(MetaLevelError, match="k \\(number of options\\) must be an integer >= 2: got 1"):
        BernoulliMetaMDP(k=1)
    with pytest.raises(MetaLevelError, match="prior must be two finite numbers"):
        BernoulliMetaMDP(prior=(0, 1))
    with pytest.raises(MetaLevelError, match="more than the horizon \\(5\\)"):
        env.meta.check_beliefs(full + 1)
    with pytest.raises(MetaLevelError, match="count 0 must be a non-negative integer: got 0.5"):
        env.meta.check_beliefs([[0.5, 0, 0, 0, 0, 0]])
    with pytest.raises(MetaLevelError, match="unknown meta-level solver 'fast'; known: exact, myopic"):
        env.meta.solver("fast")
    with pytest.raises(MetaLevelError, match="would need"):
        BernoulliMetaMDP(k=6, horizon=40).solver("exact")


def test_sampling_traces_decisions_files_and_checks(tmp_path):
    env = irl.envs.make("metareasoning-bernoulli", k=2, horizon=4)
    t = demos.SamplingTraces.from_trials(2, [[1, 2, 1], []], [[1, 0, 0], []], [0, 1], probabilities=[[0.9, 0.1],
                                                                                                   [0.5, 0.5]])
    beliefs, actions, trial_of = t.decisions()
    assert actions.tolist() == [1, 2, 1, 0, 0] and trial_of.tolist() == [0, 0, 0, 0, 1]
    assert beliefs.tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 1], [1, 0, 1, 1], [0, 0, 0, 0]]
    t.save(tmp_path / "s.npz")
    back = demos.load(tmp_path / "s.npz")
    assert isinstance(back, demos.SamplingTraces) and back.samples.tolist() == [1, 2, 1]
    ll = hm.MetaBoltzmann(cost=0.01, beta=50.0).log_likelihood(env, env.true_reward, t)
    assert np.isfinite(float(ll))
    with pytest.raises(demos.DemoValidationError, match="samples are meta-level actions 1..2"):
        demos.SamplingTraces.from_trials(2, [[3]], [[1]], [0])
    with pytest.raises(demos.DemoValidationError, match="outcomes must be 1 values in \\{0, 1\\}"):
        demos.SamplingTraces.from_trials(2, [[1]], [[0.5]], [0])
    with pytest.raises(demos.DemoValidationError, match="recorded with 2 options but the environment has 3"):
        hm.MetaBoltzmann().log_likelihood(irl.envs.make("metareasoning-bernoulli", k=3, horizon=4),
                                          np.ones(4), t)
    with pytest.raises(demos.DemoValidationError, match="more than the environment's horizon \\(2\\)"):
        hm.MetaBoltzmann().log_likelihood(irl.envs.make("metareasoning-bernoulli", k=2, horizon=2),
                                          np.ones(3), t)


def test_meta_boltzmann_conformance_on_bernoulli():
    env = irl.envs.make("metareasoning-bernoulli", k=2, horizon=4)
    out = hm.check_meta_human_model(hm.MetaBoltzmann(cost=0.013, beta=40.0), env, n_first=3000)
    assert out["grad_error"] < 1e-5
    out = hm.check_meta_human_model(hm.MetaBoltzmann(cost=0.013, beta=40.0, values="reward"), env,
                                    reward=np.array([0.0, 1.3, 1.3]), n_first=1000, grad_params=("cost", "beta"))
    assert out["grad_error"] < 1e-5


@pytest.fixture(scope="module")
def simulated():
    env = irl.envs.make("metareasoning-bernoulli", k=3, horizon=10)
    person = hm.MetaBoltzmann(cost=0.01, beta=300.0)
    data = demos.simulate(env, person, env.true_reward, n=300, seed=1)
    held_out = demos.simulate(env, person, env.true_reward, n=200, seed=2)
    return env, person, data, held_out


def test_recovers_the_cost_of_computation(simulated):
    env, person, data, _ = simulated
    fit = irl.MaxEnt(human=hm.MetaBoltzmann(cost=priors.Gaussian(0.0, 0.1), beta=priors.LogNormal(4.0, 2.0))).fit(
        env, data)
    cost, beta = fit.human_params["meta-boltzmann.cost"], fit.human_params["meta-boltzmann.beta"]
    assert abs(cost - 0.01) < 0.002 and 200 < beta < 450
    grid = np.linspace(0.0, 0.03, 31)
    prof = population.cost_interval(env, data, hm.MetaBoltzmann(cost=0.0, beta=1.0), grid)
    lo, hi = prof["interval"]
    assert lo <= 0.01 <= hi and hi - lo <= 0.006 and not prof["at_edge"]
    assert abs(prof["cost"] - cost) <= 0.0011  # the grid's best point is next to the MAP


def test_exact_model_beats_the_myopic_one(simulated):
    env, _, data, held_out = simulated
    cands = {"exact": hm.MetaBoltzmann(cost=priors.Gaussian(0.0, 0.1), beta=priors.LogNormal(4.0, 2.0)),
             "myopic": hm.MetaBoltzmann(cost=priors.Gaussian(0.0, 0.1), beta=priors.LogNormal(4.0, 2.0),
                                        solver="myopic")}
    rows = irl.compare(cands, env, data, held_out)
    assert [r.name for r in rows] == ["exact", "myopic"]
    assert rows[0].held_out_log_likelihood > rows[1].held_out_log_likelihood + 100


def test_amplification_with_cheaper_thinking():
    env = irl.envs.make("metareasoning-bernoulli", k=3, horizon=10)
    person = hm.MetaBoltzmann(cost=0.03, beta=300.0)  # samples about twice per trial
    held_out = demos.simulate(env, person, env.true_reward, n=200, seed=2)
    rows = hm.amplify(person, env, env.true_reward, held_out, cost_factors=(1.0, 0.25, 0.0), repeats=10)
    by = {r["setting"]: r for r in rows}
    assert list(by) == ["actual", "cost x 1", "cost x 0.25", "cost x 0", "full information"]
    # the same person re-run at their own cost chooses as well as they did; cheaper thinking samples more
    # and picks options with higher success probabilities, up to the full-information limit (E max of 3 U(0,1))
    assert abs(by["cost x 1"]["mean_value"] - by["actual"]["mean_value"]) < 0.03
    assert by["cost x 0.25"]["mean_clicks"] > by["cost x 1"]["mean_clicks"] + 3
    assert by["cost x 0"]["mean_value"] > by["cost x 1"]["mean_value"] + 0.04
    assert by["full information"]["mean_value"] >= by["cost x 0"]["mean_value"]
    assert np.isnan(by["full information"]["mean_clicks"])  # knowing p exactly takes unboundedly many samples
