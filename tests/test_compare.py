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
