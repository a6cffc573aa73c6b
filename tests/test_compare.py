"""Model comparison: held-out log-likelihood and BIC pick the model that generated the data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import demos
import human_models as hm
import irl
import priors


@pytest.fixture(scope="module")
def split():
    env = irl.envs.make("gridworld-8x8")
    d = demos.simulate(env, hm.BoltzmannQ(3.0), env.true_reward, n=120, seed=3)
    return env, d.subset(slice(0, 80)), d.subset(slice(80, None))


def test_generating_model_ranks_first_on_held_out_data(split):
    env, train, test = split
    rows = irl.compare({"boltzmann-q": hm.BoltzmannQ(3.0), "boltzmann": hm.Boltzmann(3.0)}, env, train, test,
                       prior=priors.Gaussian(0, 3))
    assert [r.name for r in rows][0] == "boltzmann-q"
    assert rows[0].held_out_log_likelihood > rows[1].held_out_log_likelihood + 5
    assert all(np.isfinite(r.bic) for r in rows)


def test_bic_formula_and_penalty_for_extra_parameters():
    assert irl.compare.__module__ == "irl.compare"
    from irl.compare import bic

    assert bic(-10.0, 3, 100) == pytest.approx(20.0 + 3 * np.log(100))
    env = irl.envs.make("gridworld-5x5")
    d = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=40, seed=0)
    rows = irl.compare({"fixed": hm.Boltzmann(2.0), "free-beta": hm.Boltzmann(priors.LogNormal(0.7, 0.5))}, env, d,
                       prior=priors.Gaussian(0, 1))
    by = {r.name: r for r in rows}
    assert by["free-beta"].n_params == by["fixed"].n_params + 1
    assert by["free-beta"].bic == pytest.approx(bic(by["free-beta"].train_log_likelihood, by["free-beta"].n_params,
                                                    int(d.lengths.sum())))
    assert np.isnan(by["fixed"].held_out_log_likelihood)


def test_held_out_log_likelihood_is_the_log_joint_likelihood_at_the_fit(split):
    env, train, test = split
    human = hm.Boltzmann(priors.LogNormal(0.0, 1.0))
    est = irl.MaxEnt(human=human, prior=priors.Gaussian(0, 2)).fit(env, train)
    from irl.compare import held_out_log_likelihood

    got = held_out_log_likelihood(est, env, test, human)
    beta = est.human_params["boltzmann.beta"]
    want = float(hm.Boltzmann(beta).log_likelihood(env, torch.from_numpy(est.reward), test))
    assert got == pytest.approx(want, rel=1e-9)
    with pytest.raises(ValueError, match="pass the human model the estimate was fitted with"):
        held_out_log_likelihood(est, env, test, hm.Boltzmann(1.0))


def test_compare_needs_candidates(split):
    env, train, test = split
    with pytest.raises(ValueError, match="at least one candidate"):
        irl.compare({}, env, train, test)


# ------------------------------------------------------------ posteriors: PSIS-LOO and WAIC
def test_compare_posteriors_ranks_the_noisy_model_above_boltzmann() -> None:
    """Misspecification is detected: data from Noisy(Boltzmann(3), epsilon=0.4); a Boltzmann model ignores the noise.

    Measured: elpd_loo(noisy) - elpd_loo(boltzmann with a free beta) = 38.8 +- 8.6
    (seed 7, 80 draws x 2 chains, about 9 s); asserted > 2 standard errors. The
    Boltzmann fit has one observation with Pareto k 0.71, so check=True warns about it.
    """
    import warnings

    env = irl.envs.make("gridworld-5x5")
    data = demos.simulate(env, hm.Noisy(hm.Boltzmann(3.0), epsilon=0.4), env.true_reward, n=40, seed=7)
    candidates = {"boltzmann": hm.Boltzmann(beta=priors.LogNormal(float(np.log(3.0)), 0.5)),
                  "noisy": hm.Noisy(hm.Boltzmann(3.0), epsilon=priors.Uniform(0.0, 1.0))}
    calls = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = irl.compare_posteriors(candidates, env, data, prior=priors.Gaussian(0.0, 1.0), samples=80, chains=2,
                                      seed=0, max_leapfrog=16, callback=lambda *a: calls.append(a))
    assert [r.name for r in rows] == ["noisy", "boltzmann"]
    best, worst = rows
    assert (best.elpd_diff, best.elpd_diff_se) == (0.0, 0.0)
    assert worst.elpd_diff < -2 * worst.elpd_diff_se, (worst.elpd_diff, worst.elpd_diff_se)
    assert best.waic.difference(worst.waic)[0] > 2 * worst.elpd_diff_se  # WAIC agrees
    assert (worst.elpd_diff, worst.elpd_diff_se) == pytest.approx(worst.loo.difference(best.loo))
    assert best.max_pareto_k == pytest.approx(best.loo.pareto_k.max()) and best.max_pareto_k < 0.7
    assert best.loo.pointwise.shape == best.waic.pointwise.shape == (40,)
    assert abs(best.loo.elpd - best.waic.elpd) < 1.0
    assert [r.n_params for r in rows] == [5, 5] and best.posterior.theta.shape == (2, 80, 4)
    assert set(best.human_params) == {"noisy.epsilon"} and 0.2 < best.human_params["noisy.epsilon"] < 0.6
    assert all(r.converged == r.posterior.converged for r in rows)
    # check=True warns once per problem of a row, naming the candidate
    assert [str(w.message) for w in caught] == [m for r in rows for m in r.problems()]
    assert all(issubclass(w.category, irl.ConvergenceWarning) for w in caught)
    # the callback sees every iteration of both candidates (warmup = samples = 80)
    assert {c[0] for c in calls} == {"noisy", "boltzmann"} and ("noisy", 160, 160, "sampling") in calls


def test_posterior_score_problems_name_the_candidate_and_the_reason() -> None:
    from irl.compare import InformationCriterion, PosteriorScore

    rng = np.random.default_rng(0)
    mixed = irl.Posterior(theta=rng.normal(size=(4, 500, 1)))
    stuck = irl.Posterior(theta=rng.normal(size=(4, 500, 1)) + np.arange(4)[:, None, None])
    loo = InformationCriterion("psis-loo", -10.0, 1.0, 1.0, np.full(3, -10 / 3), np.array([0.1, 0.9, 0.8]))
    good = PosteriorScore("a", loo, loo, 0.0, 0.0, 0.1, 1, mixed.converged, mixed)
    assert good.problems() == [] and good.human_params == {}
    bad = PosteriorScore("b", loo, loo, -1.0, 0.5, 0.9, 1, stuck.converged, stuck)
    msgs = bad.problems()
    assert len(msgs) == 2 and all(m.startswith("candidate 'b'") for m in msgs)
    assert "not mixed" in msgs[0] and "R-hat" in msgs[0]
    assert "2 of 3 observations" in msgs[1] and "0.90 > 0.7" in msgs[1]


def test_compare_posteriors_refuses_summed_out_discrete_parameters_before_sampling() -> None:
    env = irl.envs.make("gridworld-5x5")
    data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=5, seed=0)
    myopic = hm.Myopic(horizon=priors.Categorical([1, 2, 3]), beta=2.0)
    with pytest.raises(ValueError, match=r"candidate 'myopic'.*myopic\.horizon.*give the parameter a value.*"
                                         r"compare by MAP"):
        irl.compare_posteriors({"boltzmann": hm.Boltzmann(2.0), "myopic": myopic}, env, data, samples=5000)
    with pytest.raises(ValueError, match="at least one candidate"):
        irl.compare_posteriors({}, env, data)
