"""irl.Posterior and its diagnostics: R-hat and ESS against known cases, summaries, files, plots."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.signal

import irl
from demos import DemoFileError, save_arrays
from irl.posterior import ConvergenceWarning, Posterior, ess, ess_bulk, ess_tail, rhat


def ar1(phi: float, chains: int, n: int, seed: int) -> np.ndarray:
    """Stationary AR(1) chains ``y_t = phi y_{t-1} + e_t`` with unit innovations."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(chains, n))
    e[:, 0] /= np.sqrt(1 - phi ** 2)  # start in the stationary distribution
    return scipy.signal.lfilter([1.0], [1.0, -phi], e, axis=1)


# ------------------------------------------------------------------ R-hat and ESS
def test_iid_normal_draws_have_rhat_one_and_ess_near_n():
    x = np.random.default_rng(0).normal(size=(4, 1000))
    assert abs(rhat(x) - 1.0) < 0.01
    for f in (ess, ess_bulk):
        assert 3400 < f(x) < 4600, f.__name__
    assert 2800 < ess_tail(x) < 5200


@pytest.mark.parametrize("phi", [0.5, 0.9])
def test_ar1_ess_matches_theory(phi):
    # ESS of an AR(1) chain of length N is N (1 - phi) / (1 + phi); average 6 replicates so the
    # estimator's own noise (about 7% per replicate at phi = 0.9) cannot hide a wrong formula
    chains, n = 4, 5000
    theory = chains * n * (1 - phi) / (1 + phi)
    got = np.mean([ess(ar1(phi, chains, n, seed)) for seed in range(6)])
    bulk = np.mean([ess_bulk(ar1(phi, chains, n, seed)) for seed in range(6)])
    assert abs(got / theory - 1) < 0.1
    assert abs(bulk / theory - 1) < 0.1
    assert all(rhat(ar1(phi, chains, n, s)) < 1.02 for s in range(3))  # noisy at ESS ~ 260 per chain


def test_antithetic_chain_has_ess_above_n():
    x = ar1(-0.5, 4, 5000, 0)
    assert ess(x) > 1.5 * x.size  # theory: 3 N


def test_chains_with_different_means_have_large_rhat_and_warn():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 500)) + np.array([0.0, 0.0, 0.0, 3.0])[:, None]
    assert rhat(x) > 1.3
    ok = rng.normal(size=(4, 500))
    post = Posterior(theta=np.stack([ok, x], axis=-1), param_names=["fine", "stuck"])
    assert not post.converged
    assert list(post.problems()) == ["stuck"]
    with pytest.warns(ConvergenceWarning, match=r"stuck: R-hat") as rec:
        assert post.check() is False
    assert "fine" not in str(rec[0].message)


def test_folded_rhat_catches_chains_that_differ_only_in_scale():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 1000)) * np.array([1.0, 1.0, 1.0, 4.0])[:, None]
    assert abs(x.mean(axis=1)).max() < 0.3  # the means agree: only the folded draws tell
    assert rhat(x) > 1.05


def test_rank_normalised_diagnostics_handle_heavy_tails():
    x = np.random.default_rng(3).standard_cauchy(size=(4, 1000))
    assert rhat(x) < 1.01
    assert ess_bulk(x) > 3000


def test_constant_and_short_draws_are_not_computable():
    assert np.isnan(rhat(np.ones((4, 100))))
    assert np.isnan(ess(np.ones((2, 100))))
    assert np.isnan(rhat(np.zeros((4, 3))))
    post = Posterior(theta=np.ones((4, 100, 1)))
    assert "R-hat not computable" in post.problems()["theta[0]"][0]


def test_too_few_effective_draws_are_flagged():
    # 4 chains of AR(0.95): bulk ESS about 4 * 300 / 39 ~ 30, far below 100 per chain
    x = ar1(0.95, 4, 300, 4)
    post = Posterior(theta=x[..., None], param_names=["w"])
    reasons = post.problems()["w"]
    assert any(r.startswith("bulk-ESS") for r in reasons)


def test_rhat_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(chains, draws\)"):
        rhat(np.zeros((2, 3, 4)))


# ------------------------------------------------------------------ summaries
@pytest.fixture
def post() -> Posterior:
    rng = np.random.default_rng(5)
    theta = np.stack([rng.normal(1.0, 2.0, size=(4, 1000)), rng.normal(-1.0, 0.5, size=(4, 1000))], axis=-1)
    return Posterior(theta=theta, param_names=["w[0]", "w[1]"], human={"boltzmann.beta": rng.lognormal(size=(4, 1000))},
                     reward_mean=np.zeros((3, 2)), info={"sampler": "test"})


def test_moments_quantiles_and_credible_intervals(post):
    assert abs(post.mean("w[0]") - 1.0) < 0.1 and abs(post.std("w[0]") - 2.0) < 0.1
    lo, hi = post.credible_interval("w[1]", 0.9)
    assert abs(lo - (-1 - 1.645 * 0.5)) < 0.05 and abs(hi - (-1 + 1.645 * 0.5)) < 0.05
    lo, hi = post.credible_interval("boltzmann.beta", 0.5)
    assert abs(lo - np.exp(-0.6745)) < 0.05 and abs(hi - np.exp(0.6745)) < 0.1
    assert post.quantile(0.5, "boltzmann.beta") == pytest.approx(1.0, abs=0.05)
    assert set(post.mean()) == {"w[0]", "w[1]", "boltzmann.beta"}
    assert post.draws().shape == (4, 1000, 3)
    np.testing.assert_allclose(post.theta_mean, [post.mean("w[0]"), post.mean("w[1]")])


def test_summary_table(post):
    s = post.summary(0.8)
    assert list(s) == ["w[0]", "w[1]", "boltzmann.beta"]
    row = s["w[1]"]
    d = post.draws("w[1]")
    assert row["mean"] == pytest.approx(d.mean()) and row["q_lo"] == pytest.approx(np.quantile(d, 0.1))
    assert row["rhat"] == pytest.approx(rhat(d)) and row["ess_bulk"] == pytest.approx(ess_bulk(d))
    text = str(s)
    assert text.splitlines()[0].split()[:6] == ["parameter", "mean", "sd", "q10", "median", "q90"]
    assert "boltzmann.beta" in text and "!" not in text
    assert post.converged


def test_unknown_names_and_bad_arguments(post):
    with pytest.raises(KeyError, match=r"known: w\[0\], w\[1\], boltzmann.beta"):
        post.draws("beta")
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        post.credible_interval("w[0]", 1.5)
    with pytest.raises(ValueError, match=r"\(chains, draws, P\)"):
        Posterior(theta=np.zeros((10, 2)))
    with pytest.raises(ValueError, match="unique"):
        Posterior(theta=np.zeros((1, 5, 1)), param_names=["a"], human={"a": np.zeros((1, 5))})
    with pytest.raises(ValueError, match=r"human\['b'\]"):
        Posterior(theta=np.zeros((1, 5, 1)), human={"b": np.zeros((2, 5))})


def test_reward_property_and_missing_reward():
    p = Posterior(theta=np.zeros((1, 10, 1)))
    with pytest.raises(ValueError, match="reward_mean"):
        p.reward


# ------------------------------------------------------------------ files and plots
def test_save_load_round_trip(post, tmp_path):
    post.discrete = {"myopic.horizon": {1: 0.25, 3: 0.75}}
    post.log_density = np.arange(4000.0).reshape(4, 1000)
    path = tmp_path / "post.npz"
    post.save(str(path))
    back = Posterior.load(str(path))
    np.testing.assert_array_equal(back.theta, post.theta)
    np.testing.assert_array_equal(back.human["boltzmann.beta"], post.human["boltzmann.beta"])
    np.testing.assert_array_equal(back.log_density, post.log_density)
    np.testing.assert_array_equal(back.reward_mean, post.reward_mean)
    assert back.param_names == post.param_names and back.discrete == post.discrete
    assert back.info["sampler"] == "test"
    assert back.summary()["w[0]"] == post.summary()["w[0]"]
    with pytest.raises(ValueError, match="env=, human= and reward_model="):
        back.predictive_policy()


def test_load_refuses_other_files(tmp_path):
    other = tmp_path / "other.npz"
    save_arrays(str(other), "pluggable-irl/reward-estimate", {"theta": np.zeros(2)})
    with pytest.raises(DemoFileError, match="expected a 'pluggable-irl/posterior' file"):
        Posterior.load(str(other))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, theta=np.array([{"a": 1}], dtype=object), format=np.array("pluggable-irl/posterior"))
    with pytest.raises(DemoFileError, match="refused"):
        Posterior.load(str(pickled))


def test_plot_marginals(post, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = post.plot(path=str(tmp_path / "marginals.png"))
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3
    assert "boltzmann.beta" in visible[2].get_title()
    assert len(visible[0].patches) >= 4  # one histogram per chain (+ the interval band)
    assert (tmp_path / "marginals.png").stat().st_size > 1000
    plt.close(fig)
    with pytest.raises(KeyError):
        post.plot(["nope"])


def test_posterior_is_exported():
    assert irl.Posterior is Posterior and issubclass(irl.ConvergenceWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Posterior(theta=np.random.default_rng(0).normal(size=(4, 500, 1))).check()


def test_divergences_are_counted_in_the_summary_and_make_a_fit_unconverged():
    rng = np.random.default_rng(0)
    clean = irl.Posterior(theta=rng.normal(size=(4, 1000, 1)), info={"divergences": 0})
    assert clean.converged and "divergent transitions after warmup: 0" in str(clean.summary())
    bad = irl.Posterior(theta=clean.theta, info={"divergences": 3})
    assert not bad.converged and bad.summary().divergences == 3
    assert "divergent transitions after warmup: 3" in str(bad.summary())
    with pytest.warns(irl.ConvergenceWarning, match="3 divergent transitions after warmup"):
        bad.check()
    assert "divergent" not in str(irl.Posterior(theta=clean.theta).summary())  # not reported: not shown
