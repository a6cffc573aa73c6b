"""Bayesian IRL: samplers, simulation-based calibration, recovery, agreement, every kind of human model.

Simulation-based calibration (Talts et al. 2018): draw (theta, beta) from the prior,
simulate demonstrations, sample the posterior, and record the rank of each true
parameter among L thinned posterior draws. If the sampler is right the ranks are
uniform on {0..L}; we bin them and require the chi-square goodness-of-fit p-value
to exceed 0.001 for every parameter (fixed seeds make the tests deterministic).
To afford hundreds of posteriors, the replicates are sampled in one batch: row
``i`` of the batched log-density belongs to replicate ``i // chains`` (the
samplers' ``indexed``/``groups`` options), which is checked against LogJoint.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.stats
import torch

import demos
import human_models as hm
import irl
import priors
from human_models.base import BaseHumanModel
from irl.posterior import ConvergenceWarning, ess_bulk, ess_tail
from irl.rewards import RewardModel
from irl.solvers import samplers


class AnchoredReward(RewardModel):
    """``r(s) = features[s, free] . theta + features[s] . anchor``: the anchor fixes the reward's scale.

    With an anchored scale (here: the goal is worth 1, plain ground 0) the
    rationality beta is identified by the data, not only by the prior.
    """

    def __init__(self, env: irl.TabularMDP, free: list[int], anchor: list[float]) -> None:
        f = torch.from_numpy(np.array(env.features, dtype=np.float64))
        self.n_states, self.n_actions = env.n_states, env.n_actions
        self.free = f[:, free]
        self.anchor = f @ torch.tensor(anchor, dtype=torch.float64)
        self.names = [env.feature_names[i] for i in free]

    @property
    def n_params(self) -> int:
        return int(self.free.shape[1])

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        t = self._check(theta)
        r = torch.einsum("sf,...f->...s", self.free, t) + self.anchor
        return r[..., None].expand(*r.shape, self.n_actions)

    def param_names(self) -> list[str]:
        return list(self.names)


def tiny_env() -> irl.TabularMDP:
    """2x2 gridworld: plain, mud / water, goal; horizon 4."""
    return irl.envs.gridworld(2, 2, terrain=np.array([[1, 2], [3, 0]]), slip=0.1, horizon=4)


PRIOR_THETA = priors.Gaussian(0.0, 1.0)
PRIOR_BETA = priors.LogNormal(0.0, 0.5)


# ------------------------------------------------------------------ samplers on known densities
def test_hmc_samples_a_correlated_gaussian():
    cov = np.array([[1.0, 0.95 * 10], [0.95 * 10, 100.0]])
    prec = torch.from_numpy(np.linalg.inv(cov))
    mean = torch.tensor([1.0, -5.0], dtype=torch.float64)

    def logp(x):
        z = x - mean
        return -0.5 * torch.einsum("bi,ij,bj->b", z, prec, z)

    res = samplers.hmc(logp, np.zeros((4, 2)), samples=250, warmup=150, seed=0)
    d = res.draws.reshape(-1, 2)
    ess0 = ess_bulk(res.draws[..., 0])
    assert ess0 > 400
    assert abs(d[:, 0].mean() - 1.0) < 4 * 1.0 / np.sqrt(ess0)
    np.testing.assert_allclose(np.cov(d.T), cov, rtol=0.15, atol=0.3)
    assert res.info["metric"] == "dense" and res.info["divergences"] == 0
    assert res.stats["n_steps"].shape == (4, 250)
    # the adapted inverse mass matrix is the covariance: correlation learned
    m = np.array(res.info["inv_mass"][0])
    assert m[0, 1] / np.sqrt(m[0, 0] * m[1, 1]) > 0.85


def test_hmc_diagonal_metric_and_reproducibility():
    sd = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
    run = lambda: samplers.hmc(lambda x: -0.5 * ((x / sd) ** 2).sum(-1), np.ones((2, 3)), samples=250,  # noqa: E731
                               warmup=150, seed=3, metric="diag")
    a, b = run(), run()
    np.testing.assert_array_equal(a.draws, b.draws)
    np.testing.assert_allclose(a.draws.reshape(-1, 3).std(0), sd.numpy(), rtol=0.2)
    np.testing.assert_allclose(a.info["inv_mass"][0], (sd ** 2).numpy(), rtol=0.5)


def test_policywalk_walks_on_its_grid_inside_its_box():
    delta = 0.25
    x0 = np.array([[0.1, -0.2], [0.3, 0.05]])
    res = samplers.policywalk(lambda x: -0.5 * (x ** 2).sum(-1), x0, samples=5000, warmup=500, seed=0,
                              delta=delta, bounds=(-1.0, 1.5))
    steps = (res.draws - x0[:, None, :]) / delta
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)  # never leaves the grid x0 + delta Z^D
    assert res.draws.min() >= -1.0 and res.draws.max() <= 1.5
    moved = np.abs(np.diff(res.draws, axis=1)).sum(-1)
    assert set(np.round(np.unique(moved), 9)) <= {0.0, delta}  # one coordinate by one step at a time
    # truncated standard normal on [-1, 1.5]: mean (phi(-1) - phi(1.5)) / (Phi(1.5) - Phi(-1))
    n = scipy.stats.norm
    mean = (n.pdf(-1) - n.pdf(1.5)) / (n.cdf(1.5) - n.cdf(-1))
    assert abs(res.draws.mean() - mean) < 0.08
    assert res.info["cache_hits"] > 0.5 * 2 * 5000  # a walk on a lattice revisits its points


# ------------------------------------------------------------------ simulation-based calibration
def _sbc_problem(replicates: int, seed: int):
    env = tiny_env()
    model = AnchoredReward(env, [2, 3], [1.0, 0.0, 0.0, 0.0])
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(replicates, 2))
    log_beta = 0.5 * rng.normal(size=replicates)
    counts = []
    for r in range(replicates):
        with torch.no_grad():
            reward = model(torch.from_numpy(theta[r])).numpy()
        d = demos.simulate(env, hm.Boltzmann(float(np.exp(log_beta[r]))), reward, n=8, seed=seed * 10_000 + r)
        counts.append(d.counts(env.n_states, env.n_actions, horizon=env.horizon))
    return env, model, np.column_stack([theta, log_beta]), torch.from_numpy(np.stack(counts))


def _batched_log_joint(env, model, counts, chains):
    human = hm.Boltzmann(1.0)

    def logp(x, rows):
        rep = torch.from_numpy(np.asarray(rows) // chains)
        th, u = x[:, :2], x[:, 2]
        lp = PRIOR_THETA.log_prob(th) + PRIOR_BETA.log_prob_unconstrained(u)
        logpi = human.bind(beta=PRIOR_BETA.to_constrained(u)).action_log_probs(env, model(th))
        return lp + (counts[rep] * logpi).sum(dim=(-3, -2, -1))

    return logp


def test_batched_sbc_density_is_the_log_joint():
    env, model, truth, counts = _sbc_problem(3, seed=7)
    logp = _batched_log_joint(env, model, counts, chains=2)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(6, 3)))
    got = logp(x, np.arange(6))
    for r in range(3):  # rebuild replicate r's trajectories and score them with the library's log-joint
        ev = irl.Evidence(env, _sbc_data(env, model, truth[r], 7, r), hm.Boltzmann(beta=PRIOR_BETA))
        joint = irl.LogJoint([ev], model, PRIOR_THETA)
        np.testing.assert_allclose(got[2 * r:2 * r + 2].numpy(), joint(x[2 * r:2 * r + 2]).numpy(), rtol=1e-10)


def _sbc_data(env, model, truth_row, seed, r):
    with torch.no_grad():
        reward = model(torch.from_numpy(truth_row[:2])).numpy()
    return demos.simulate(env, hm.Boltzmann(float(np.exp(truth_row[2]))), reward, n=8, seed=seed * 10_000 + r)


@functools.lru_cache(maxsize=None)
def _sbc_draws(sampler: str, replicates: int, seed: int, samples: int, warmup: int):
    """Posterior draws ``(replicates, draws, 3)`` of every replicate (chains pooled) and the true values."""
    env, model, truth, counts = _sbc_problem(replicates, seed)
    chains = 2
    logp = _batched_log_joint(env, model, counts, chains)
    x0 = np.random.default_rng(seed + 1).uniform(-1, 1, size=(replicates * chains, 3))
    with samplers.torch_threads(1):
        if sampler == "hmc":
            res = samplers.hmc(logp, x0, samples=samples, warmup=warmup, seed=seed + 2, indexed=True,
                               groups=np.arange(replicates * chains) // chains)
        else:
            res = samplers.policywalk(logp, x0, samples=samples, warmup=warmup, seed=seed + 2, indexed=True)
    return res.draws.reshape(replicates, -1, 3), truth


def _ranks(draws: np.ndarray, truth: np.ndarray, n_thin: int) -> np.ndarray:
    """Rank of each true value among ``n_thin`` evenly thinned draws: ``(replicates, 3)`` in ``0..n_thin``."""
    idx = np.linspace(0, draws.shape[1] - 1, n_thin).round().astype(np.int64)
    return (draws[:, idx, :] < truth[:, None, :]).sum(axis=1)


def _uniformity_pvalues(ranks: np.ndarray, n_thin: int, bins: int) -> list[float]:
    per_bin = (n_thin + 1) // bins
    assert per_bin * bins == n_thin + 1
    return [float(scipy.stats.chisquare(np.bincount(ranks[:, j] // per_bin, minlength=bins)).pvalue)
            for j in range(ranks.shape[1])]


SBC_TOL = 1e-3  # every parameter's chi-square p-value must exceed this
SBC_SMALL = {"hmc": dict(replicates=30, seed=11, samples=80, warmup=80),
             "policywalk": dict(replicates=40, seed=11, samples=1200, warmup=400)}


@pytest.mark.parametrize("sampler", ["hmc", "policywalk"])
def test_sbc_small(sampler):
    draws, truth = _sbc_draws(sampler, **SBC_SMALL[sampler])
    p = _uniformity_pvalues(_ranks(draws, truth, 9), 9, bins=5)
    assert min(p) > SBC_TOL, (sampler, p)  # reward weights (mud, water) and log beta


def test_sbc_detects_a_miscalibrated_posterior():
    # the same check must reject posteriors that are too narrow (draws shrunk toward their mean)
    # or shifted by one posterior standard deviation
    draws, truth = _sbc_draws("policywalk", **SBC_SMALL["policywalk"])
    centre, sd = draws.mean(axis=1, keepdims=True), draws.std(axis=1, keepdims=True)
    narrow = centre + 0.4 * (draws - centre)
    assert min(_uniformity_pvalues(_ranks(narrow, truth, 9), 9, bins=5)) < SBC_TOL
    shifted = draws + 1.0 * sd
    assert min(_uniformity_pvalues(_ranks(shifted, truth, 9), 9, bins=5)) < SBC_TOL


@pytest.mark.slow
@pytest.mark.parametrize("sampler, kw", [
    ("hmc", dict(samples=200, warmup=200)),
    ("policywalk", dict(samples=4000, warmup=1000)),
])
def test_sbc_large(sampler, kw):
    draws, truth = _sbc_draws(sampler, replicates=300, seed=21, **kw)
    p = _uniformity_pvalues(_ranks(draws, truth, 19), 19, bins=10)
    assert min(p) > SBC_TOL, (sampler, p)


# ------------------------------------------------------------------ BayesianIRL end to end
@pytest.fixture(scope="module")
def tiny_fit():
    env = tiny_env()
    model = AnchoredReward(env, [2, 3], [1.0, 0.0, 0.0, 0.0])
    truth = torch.tensor([-0.3, -1.0], dtype=torch.float64)
    with torch.no_grad():
        reward = model(truth).numpy()
    data = demos.simulate(env, hm.Boltzmann(2.0), reward, n=100, seed=1)
    solver = irl.BayesianIRL(human=hm.Boltzmann(beta=PRIOR_BETA), prior=PRIOR_THETA, reward_model=model)
    # R-hat <= 1.01 for every parameter needs more draws than a unit test affords (the threshold is
    # tuned for ESS in the thousands), so the fixture is judged by explicit, looser bounds below
    post = solver.fit(env, data, samples=200, warmup=120, chains=4, seed=5, check=False)
    return env, model, data, post


def test_fit_returns_a_converged_posterior_in_constrained_space(tiny_fit):
    env, model, data, post = tiny_fit
    assert post.theta.shape == (4, 200, 2) and post.param_names == ["mud", "water"]
    beta = post.draws("boltzmann.beta")
    assert beta.shape == (4, 200) and beta.min() > 0
    np.testing.assert_allclose(np.log(beta), post.unconstrained[..., 2])  # reported as beta, sampled as log beta
    # folded R-hat from 4 x 200 draws fluctuates by a few hundredths; a broken sampler gives > 1.1
    assert max(post.rhat().values()) < 1.05 and min(post.ess_bulk().values()) > 400
    assert post.info["sampler"] == "hmc" and post.info["divergences"] == 0
    assert post.info["chains"] == 4 and 0.6 < post.info["mean_accept_prob"] <= 1.0
    with torch.no_grad():
        mean_reward = model(torch.from_numpy(post.theta.reshape(-1, 2))).mean(0).numpy()
    np.testing.assert_allclose(post.reward, mean_reward, atol=1e-12)
    # the posterior is the distribution of the log-joint: its recorded values are the joint at the draws
    joint = post.joint
    with torch.no_grad():
        lj = joint(torch.from_numpy(post.unconstrained[:, :5].reshape(-1, 3))).numpy()
    np.testing.assert_allclose(post.log_density[:, :5].reshape(-1), lj, rtol=1e-10)


def test_fit_is_reproducible_and_seed_dependent(tiny_fit):
    env, model, data, _ = tiny_fit
    solver = irl.BayesianIRL(human=hm.Boltzmann(beta=PRIOR_BETA), prior=PRIOR_THETA, reward_model=model,
                             max_leapfrog=16)
    kw = dict(samples=20, warmup=20, chains=2, check=False)
    a, b, c = solver.fit(env, data, seed=1, **kw), solver.fit(env, data, seed=1, **kw), solver.fit(env, data, seed=2, **kw)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert not np.array_equal(a.theta, c.theta)


def test_predictive_policy_and_planning_for_the_posterior(tiny_fit):
    env, model, data, post = tiny_fit
    pi = post.predictive_policy(draws=50)
    assert pi.shape == (env.horizon, env.n_states, env.n_actions)
    np.testing.assert_allclose(pi.sum(-1), 1.0, atol=1e-12)
    # by hand: the average of the Boltzmann policies of 50 evenly spaced draws
    flat = post.unconstrained.reshape(-1, 3)
    idx = np.linspace(0, len(flat) - 1, 50).round().astype(int)
    by_hand = np.mean([hm.Boltzmann(float(np.exp(flat[i, 2]))).action_probs(env, model(torch.from_numpy(flat[i, :2])))
                       for i in idx], axis=0)
    np.testing.assert_allclose(pi, by_hand, atol=1e-10)
    policy = irl.plan(env, post)
    assert irl.metrics.expected_value_difference(env, policy, post.reward) == pytest.approx(0.0, abs=1e-9)


def test_the_two_samplers_agree(tiny_fit):
    env, model, data, post = tiny_fit
    pw = irl.BayesianIRL(human=hm.Boltzmann(beta=PRIOR_BETA), prior=PRIOR_THETA, reward_model=model,
                         sampler="policywalk").fit(env, data, samples=12000, warmup=2000, chains=4, seed=6,
                                                   check=False)
    # single-coordinate moves mix slowly along the beta-reward correlation: nearly, not fully, mixed
    assert pw.info["sampler"] == "policywalk" and max(pw.rhat().values()) < 1.05
    for name in post.names:
        a, b = post.draws(name), pw.draws(name)
        se = np.sqrt(a.var() / ess_bulk(a) + b.var() / ess_bulk(b))
        assert abs(a.mean() - b.mean()) < 4 * se, name  # means within Monte Carlo error
        for q in (0.05, 0.95):  # 90% interval ends within Monte Carlo error too
            # se of a quantile: sqrt(q (1 - q) / ESS_tail) / density there (density of a normal approximation)
            dens = scipy.stats.norm.pdf(scipy.stats.norm.ppf(q)) / a.std()
            se_q = np.sqrt(q * (1 - q) * (1 / ess_tail(a) + 1 / ess_tail(b))) / dens
            assert abs(np.quantile(a, q) - np.quantile(b, q)) < 4 * se_q, (name, q)


def test_posterior_concentrates_with_more_demonstrations():
    env = irl.envs.gridworld(3, terrain=np.array([[1, 1, 2], [3, 2, 1], [1, 3, 0]]), slip=0.1)
    model = AnchoredReward(env, [2, 3], [1.0, 0.0, 0.0, 0.0])
    truth = env.true_reward  # weights (goal 1, plain 0, mud -0.3, water -1): theta = (-0.3, -1)
    # a wide reward prior: a tight one shrinks the weights toward 0 and, to explain the same choices,
    # pushes beta up (a real finite-sample effect of the prior, not of the sampler)
    solver = irl.BayesianIRL(human=hm.Boltzmann(beta=priors.LogNormal(1.0, 0.7)), prior=priors.Gaussian(0.0, 3.0),
                             reward_model=model)
    evd, width = [], []
    for n in (20, 300):
        data = demos.simulate(env, hm.Boltzmann(3.0), truth, n=n, seed=n)
        # R-hat <= 1.05 is a claim about many draws: with the ESS per draw of this posterior (about 0.3;
        # its water weight has a one-sided flat tail) a correct sampler's 2 x 80 draws exceed 1.05 about
        # half the time (AR(1) chains of that ESS, max over 3 parameters), 4 x 200 in under 2%
        post = solver.fit(env, data, samples=200, warmup=150, chains=4, seed=0, check=False)
        assert max(post.rhat().values()) < 1.05
        evd.append(irl.metrics.expected_value_difference(env, irl.plan(env, post), truth))
        lo, hi = post.credible_interval("boltzmann.beta", 0.95)
        width.append(hi - lo)
        assert lo < 3.0 < hi  # the 95% credible interval of beta covers the true beta
    optimal = irl.metrics.optimal_return(env, truth)
    assert evd[1] < 0.01 * abs(optimal)  # the posterior-mean reward's plan is optimal for the truth
    assert evd[1] <= evd[0]
    assert width[1] < 0.5 * width[0]  # and the posterior of beta concentrates (about sqrt(20/300) ~ 0.26)


# ------------------------------------------------------------------ every kind of human model
class EpsilonGreedy(BaseHumanModel):
    """Optimal action with probability 1 - eps, else uniform: not differentiable in the reward."""

    name = "eps-greedy"
    differentiable = False

    def __init__(self, eps: float = 0.2) -> None:
        self.eps = eps

    @property
    def params(self):
        return {"eps": self.eps}

    def action_log_probs(self, mdp, reward):
        r = reward.detach().numpy() if isinstance(reward, torch.Tensor) else np.asarray(reward)
        q = irl.planning.value_iteration(mdp, r).q
        best = np.eye(mdp.n_actions)[q.argmax(-1)]
        return torch.from_numpy(np.log((1 - self.eps) * best + self.eps / mdp.n_actions))


def test_non_differentiable_human_needs_policywalk():
    env = tiny_env()
    model = AnchoredReward(env, [2, 3], [1.0, 0.0, 0.0, 0.0])
    data = demos.simulate(env, EpsilonGreedy(0.2), env.true_reward, n=40, seed=0)
    with pytest.raises(TypeError, match="sampler='policywalk'"):
        irl.BayesianIRL(human=EpsilonGreedy(0.2), reward_model=model).fit(env, data, samples=10)
    post = irl.BayesianIRL(human=EpsilonGreedy(0.2), reward_model=model, sampler="policywalk").fit(
        env, data, samples=6000, warmup=1000, chains=4, seed=0, check=False)
    assert max(post.rhat().values()) < 1.1  # a piecewise-constant likelihood: slow, but it moves
    # the walk prefers rewards whose optimal policy matches the data: water below the goal (worth 1)
    assert post.quantile(0.95, "water") < 1.0
    policy = irl.plan(env, post)
    assert irl.metrics.expected_value_difference(env, policy, env.true_reward) < 0.05


def test_discrete_human_parameter_is_summed_out():
    env = tiny_env()
    model = AnchoredReward(env, [2, 3], [1.0, 0.0, 0.0, 0.0])
    data = demos.simulate(env, hm.Boltzmann(8.0), env.true_reward, n=200, seed=2)
    post = irl.BayesianIRL(human=hm.Boltzmann(beta=priors.Categorical([0.5, 8.0])), prior=PRIOR_THETA,
                           reward_model=model).fit(env, data, samples=40, warmup=40, chains=2, seed=0, check=False)
    table = post.discrete["boltzmann.beta"]
    assert set(table) == {0.5, 8.0} and sum(table.values()) == pytest.approx(1.0)
    assert table[8.0] > 0.99
    assert post.human == {}  # nothing continuous to report
    pi = post.predictive_policy(draws=20)
    np.testing.assert_allclose(pi.sum(-1), 1.0, atol=1e-12)


def test_boltzmann_q_human_the_likelihood_of_the_paper():
    env = tiny_env()
    data = demos.simulate(env, hm.BoltzmannQ(4.0), env.true_reward, n=40, seed=3)
    # Q* is piecewise linear in the reward: HMC still works (the gradient is a subgradient at ties)
    post = irl.BayesianIRL(human=hm.BoltzmannQ(4.0), max_leapfrog=32).fit(env, data, samples=40, warmup=60,
                                                                          chains=2, seed=1, check=False)
    assert np.all(np.isfinite(post.log_density)) and post.info["divergences"] == 0
    assert max(post.rhat().values()) < 1.05
    assert post.mean("water") < post.mean("goal")


def test_evidence_list_shares_the_reward():
    env = tiny_env()
    h = hm.Boltzmann(beta=PRIOR_BETA)
    d1 = demos.simulate(env, hm.Boltzmann(1.0), env.true_reward, n=5, seed=0)
    d2 = demos.simulate(env, hm.Boltzmann(1.0), env.true_reward, n=5, seed=1)
    post = irl.BayesianIRL().fit([irl.Evidence(env, d1, h), irl.Evidence(env, d2, hm.Boltzmann(2.0))],
                                 samples=20, warmup=20, chains=2, check=False)
    # two human models of the same kind are told apart; only the first has a free parameter
    assert list(post.human) == ["boltzmann#1.beta"] and post.theta.shape == (2, 20, 4)


def test_an_unmixed_fit_warns_loudly():
    env = tiny_env()
    data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=5, seed=0)
    with pytest.warns(ConvergenceWarning, match=r"has not mixed \(2 chains x 15 draws\).*goal"):
        post = irl.BayesianIRL().fit(env, data, samples=15, warmup=15, chains=2, seed=0)
    assert not post.converged and "!" in str(post.summary())


def test_bad_arguments():
    env = tiny_env()
    data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=2, seed=0)
    with pytest.raises(ValueError, match="unknown sampler 'gibbs'; known: hmc, policywalk, nuts"):
        irl.BayesianIRL(sampler="gibbs")
    with pytest.raises(ValueError, match="chains must be an integer >= 1: got 0"):
        irl.BayesianIRL().fit(env, data, chains=0)
    with pytest.raises(TypeError, match=r"samples must be an integer >= 1: got 2\.5 \(float\)"):
        irl.BayesianIRL().fit(env, data, samples=2.5)
    with pytest.raises(ValueError, match=r"init must be finite: got nan at index 1 .*names goal, plain, mud, water"):
        irl.BayesianIRL().fit(env, data, init=[0.0, float("nan"), 0.0, 0.0])
    with pytest.raises(ValueError, match="init_radius must be a finite number >= 0: got -1"):
        irl.BayesianIRL().fit(env, data, init_radius=-1)
    with pytest.raises(ValueError, match="unknown reparam 'log'; known: auto, scale, none"):
        irl.BayesianIRL(reparam="log")
    with pytest.raises(ValueError, match="reparam='scale' needs one human model with a temperature"):
        irl.BayesianIRL(reparam="scale").fit(env, data, samples=2, chains=1)  # beta is fixed: no ridge
    with pytest.raises(ValueError, match="checkpoint= needs sampler='hmc'"):
        irl.BayesianIRL(sampler="policywalk").fit(env, data, samples=2, chains=1, checkpoint="x.npz")
    with pytest.raises(ValueError, match=r"init must have shape \(4,\) or \(2, 4\)"):
        irl.BayesianIRL().fit(env, data, chains=2, init=np.zeros(3))
    with pytest.raises(ValueError, match="metric must be"):
        irl.BayesianIRL(metric="full").fit(env, data, samples=2, chains=1)
    with pytest.raises(ValueError, match="delta must be > 0"):
        irl.BayesianIRL(sampler="policywalk", delta=-1.0).fit(env, data, samples=2, chains=1)


def test_nuts_backend():
    env = tiny_env()
    data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=20, seed=0)
    solver = irl.BayesianIRL(human=hm.Boltzmann(2.0), sampler="nuts")
    try:
        import pyro  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pluggable-irl\[bayes\]"):
            solver.fit(env, data, samples=5, chains=1)
        return
    post = solver.fit(env, data, samples=20, warmup=20, chains=1, seed=0, check=False)
    assert post.theta.shape == (1, 20, 4) and post.info["sampler"] == "nuts"
    assert np.all(np.isfinite(post.log_density)) and np.ptp(post.theta) > 0


@pytest.mark.slow
def test_nuts_agrees_with_hmc():
    import pyro  # noqa: F401  (the slow comparison needs the bayes extra)

    env = tiny_env()
    data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=20, seed=0)
    post = irl.BayesianIRL(human=hm.Boltzmann(2.0), sampler="nuts").fit(env, data, samples=400, warmup=300,
                                                                         chains=2, seed=0, check=False)
    ref = irl.BayesianIRL(human=hm.Boltzmann(2.0)).fit(env, data, samples=400, warmup=300, chains=4, seed=0)
    for name in ref.names:
        a, b = post.draws(name), ref.draws(name)
        se = np.sqrt(a.var() / ess_bulk(a) + b.var() / ess_bulk(b))
        assert abs(a.mean() - b.mean()) < 4 * se, name


def test_sampling_thread_setting_is_restored():
    before = torch.get_num_threads()
    with samplers.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with samplers.torch_threads(1):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_warmup_windows_follow_stan_schedule():
    assert samplers.warmup_windows(1000) == [100, 150, 250, 450, 950]  # 75 init, 25-doubling, 50 term
    for w in (20, 60, 149, 150, 300, 2000):
        ends = samplers.warmup_windows(w)
        assert ends == sorted(ends) and ends[-1] <= w and w - ends[-1] >= min(50, int(0.1 * w))
    assert samplers.warmup_windows(10) == []


def test_a_broken_density_fails_loudly_at_the_start_and_extreme_points_are_rejected():
    def broken(x):
        raise ValueError("reward must have shape (S,) = (4,): got (3,)")

    with pytest.raises(ValueError, match=r"reward must have shape"):  # the user's error, not swallowed
        samplers.hmc(broken, np.zeros((2, 2)), samples=2, warmup=0)

    def cliff(x):  # fails (like a planner that cannot converge) far out, in a region of no mass
        if torch.any(x.detach().abs() > 3.0):
            raise RuntimeError("did not converge")
        return -0.5 * (x ** 2).sum(-1)

    res = samplers.hmc(cliff, np.zeros((2, 1)), samples=300, warmup=100, seed=0)
    assert np.abs(res.draws).max() <= 3.0 and abs(res.draws.std() - 0.97) < 0.15  # truncated normal on [-3, 3]


# cognition-level models act in meta-level environments (mouselab); their own tests cover them
TRAJECTORY_MODELS = [n for n in hm.names() if n not in ("deliberation", "random-clicks")]


@pytest.mark.parametrize("name", TRAJECTORY_MODELS)
def test_every_registered_human_model_with_beta_as_a_random_variable(name):
    env = tiny_env()
    human = hm.make(name)
    data = demos.simulate(env, human, env.true_reward, n=10, seed=0)
    free = human.bind(beta=priors.LogNormal(0.0, 1.0))
    post = irl.BayesianIRL(human=free, max_leapfrog=8).fit(env, data, samples=8, warmup=8, chains=2, seed=0,
                                                           check=False)
    key = f"{free.name}.beta"
    assert list(post.human) == [key] and post.draws(key).min() > 0
    assert np.all(np.isfinite(post.log_density)) and np.all(np.isfinite(post.theta))


def test_one_init_point_is_spread_over_the_chains_and_per_chain_starts_are_kept():
    """``init_radius`` applies around a (D,) ``init`` (it was ignored, so all chains began at one point)."""
    env = tiny_env()
    data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=2, seed=0)
    joint = irl.BayesianIRL().log_joint(irl.Evidence(env, data, hm.Boltzmann(2.0)))
    rng = np.random.default_rng(0)
    x = irl.BayesianIRL._start(joint, np.full(joint.dim, 0.5), 4, 0.3, rng)
    assert x.shape == (4, joint.dim) and np.all(np.abs(x - 0.5) <= 0.3)
    assert len({tuple(row) for row in x}) == 4  # four different starts
    given = rng.normal(size=(4, joint.dim))
    np.testing.assert_array_equal(irl.BayesianIRL._start(joint, given, 4, 0.3, rng), given)


# ------------------------------------------------------------------ the scale ridge and its reparameterisation
def test_scale_reparam_is_a_bijection_with_the_right_jacobian():
    env = tiny_env()
    data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=5, seed=0)
    joint = irl.BayesianIRL(hm.Boltzmann(beta=priors.Gamma(2.0, 1.0))).log_joint(env, data)
    rp = irl.solvers.bayesian.ScaleReparam.find(joint)
    assert rp is not None and rp.index == 4
    z = torch.from_numpy(np.random.default_rng(0).normal(size=(3, 5)))
    x, log_det = rp.to_joint(z)
    np.testing.assert_allclose(rp.from_joint(x).numpy(), z.numpy(), rtol=1e-12)
    for i in range(3):  # log |det dx/dz| by autograd's Jacobian
        jac = torch.autograd.functional.jacobian(lambda v: rp.to_joint(v)[0], z[i])
        np.testing.assert_allclose(torch.logdet(jac).item(), log_det[i].item(), rtol=1e-10)
    # no ridge to remove: an anchored (inhomogeneous) reward, a fixed beta, or two human models
    anchored = AnchoredReward(env, [2, 3], [1.0, 0.0, 0.0, 0.0])
    assert irl.solvers.bayesian.ScaleReparam.find(
        irl.BayesianIRL(hm.Boltzmann(beta=PRIOR_BETA), reward_model=anchored).log_joint(env, data)) is None
    assert irl.solvers.bayesian.ScaleReparam.find(irl.BayesianIRL(hm.Boltzmann(2.0)).log_joint(env, data)) is None
    two = irl.BayesianIRL().log_joint([irl.Evidence(env, data, hm.Boltzmann(beta=PRIOR_BETA)),
                                       irl.Evidence(env, data, hm.Boltzmann(beta=PRIOR_BETA))])
    assert irl.solvers.bayesian.ScaleReparam.find(two) is None


def _sbc_scale_draws(replicates: int, seed: int, samples: int, warmup: int):
    """SBC through the scale reparameterisation: linear reward in all 4 features, beta ~ LogNormal(0, 0.5)."""
    env = tiny_env()
    model = irl.rewards.LinearReward.from_mdp(env)
    rng = np.random.default_rng(seed)
    truth = np.column_stack([rng.normal(size=(replicates, 4)), 0.5 * rng.normal(size=replicates)])
    counts = []
    for r in range(replicates):
        reward = model.reward_array(truth[r, :4])
        d = demos.simulate(env, hm.Boltzmann(float(np.exp(truth[r, 4]))), reward, n=8, seed=seed * 10_000 + r)
        counts.append(d.counts(env.n_states, env.n_actions, horizon=env.horizon))
    counts = torch.from_numpy(np.stack(counts))
    chains, human = 2, hm.Boltzmann(1.0)

    def logp(x, rows):
        rep = torch.from_numpy(np.asarray(rows) // chains)
        th, u = x[:, :4], x[:, 4]
        logpi = human.bind(beta=PRIOR_BETA.to_constrained(u)).action_log_probs(env, model(th))
        return (PRIOR_THETA.log_prob(th) + PRIOR_BETA.log_prob_unconstrained(u)
                + (counts[rep] * logpi).sum(dim=(-3, -2, -1)))

    rp = irl.solvers.bayesian.ScaleReparam(4, 4, PRIOR_BETA)
    x0 = rng.uniform(-1, 1, size=(replicates * chains, 5))
    with samplers.torch_threads(1):
        res = samplers.hmc(lambda z, rows: rp.density(lambda x: logp(x, rows))(z), rp.from_joint(x0),
                           samples=samples, warmup=warmup, seed=seed + 2, indexed=True,
                           groups=np.arange(replicates * chains) // chains)
    draws, _ = rp.to_joint_draws(res.draws, res.log_density)
    return draws.reshape(replicates, -1, 5), truth, res.info["divergences"]


def test_sbc_through_the_scale_reparameterisation():
    draws, truth, divergences = _sbc_scale_draws(replicates=30, seed=5, samples=80, warmup=80)
    p = _uniformity_pvalues(_ranks(draws, truth, 9), 9, bins=5)
    assert min(p) > SBC_TOL, p  # goal, plain, mud, water and log beta
    assert divergences == 0


def _ridge_case(side: int = 5):
    """The issue's case: a 25-state discounted gridworld, 150 demonstrations, beta inferred with the reward."""
    env = irl.envs.gridworld(side, horizon=None, discount=0.9)
    data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=150, seed=0, horizon=4 * side)
    return env, data, irl.BayesianIRL(human=hm.Boltzmann(beta=priors.LogNormal(0, 1)), prior=priors.Gaussian(0, 1))


@pytest.mark.parametrize("reparam", ["auto", pytest.param("none", marks=pytest.mark.slow)])
def test_joint_reward_and_beta_posterior_has_no_divergences_fast(reparam):
    """The same ridge on a 9-state discounted gridworld: no divergence after the reparameterisation.

    In the original coordinates the funnel gives divergent transitions, and such a
    posterior is never called converged: the summary and the warning say why.
    """
    env, data, _ = _ridge_case(side=3)
    solver = irl.BayesianIRL(human=hm.Boltzmann(beta=priors.LogNormal(0, 1)), prior=priors.Gaussian(0, 1),
                             reparam=reparam)
    post = solver.fit(env, data, samples=60, warmup=60, chains=2, seed=0, check=False)
    n = post.info["divergences"]
    if reparam == "auto":
        assert post.info["reparam"].startswith("scale") and n == 0
        assert max(post.rhat().values()) < 1.05
        lo, hi = post.credible_interval("boltzmann.beta", 0.95)
        assert lo < 2.0 < hi
    else:
        assert n > 0
        assert not post.converged and f"{n} divergent transitions after warmup" in str(post.summary())
        with pytest.warns(ConvergenceWarning, match=f"{n} divergent transitions after warmup"):
            post.check()


@pytest.mark.slow
def test_joint_reward_and_beta_posterior_has_no_divergences_at_the_defaults():
    env, data, solver = _ridge_case()
    post = solver.fit(env, data)  # all defaults: 4 chains, 1000 warmup, 1000 draws
    assert post.info["divergences"] == 0 and post.converged


def test_a_killed_run_resumed_ten_times_gives_the_uninterrupted_draws(tmp_path):
    env = tiny_env()
    data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=20, seed=0)
    solver = irl.BayesianIRL(hm.Boltzmann(beta=PRIOR_BETA), max_leapfrog=16)
    kw = dict(samples=24, warmup=30, chains=2, seed=4, check=False)
    whole = solver.fit(env, data, **kw)
    path = tmp_path / "run.npz"

    class Killed(Exception):
        pass

    kills = 0
    for attempt in range(20):
        def die(i, total, phase, stop=30 + 2 * (attempt + 1)):
            if i == stop:
                raise Killed

        try:
            post = solver.fit(env, data, **kw, checkpoint=path, checkpoint_every=2, callback=die)
            break
        except Killed:
            kills += 1
    assert kills >= 10
    np.testing.assert_array_equal(post.unconstrained, whole.unconstrained)
    np.testing.assert_array_equal(post.log_density, whole.log_density)
    assert post.info["divergences"] == whole.info["divergences"]


@pytest.mark.parametrize("change, named", [
    (dict(data_seed=1), "data: checkpoint"),
    (dict(prior=priors.Laplace(0.0, 1.0)), "prior: checkpoint 'Gaussian(loc=0.0, scale=1.0)', this run 'Laplace"),
    (dict(human=hm.Boltzmann(beta=priors.LogNormal(0.0, 1.0))), "human: checkpoint ['Boltzmann(beta=LogNormal(loc=0.0, scale=0.5))']"),
    (dict(reward_model="tabular"), "reward_model: checkpoint 'LinearReward(goal, plain, mud, water"),
    (dict(seed=1), "seed: checkpoint 0, this run 1"),
    (dict(warmup=12), "warmup: checkpoint 10, this run 12"),
    (dict(chains=3), "chains: checkpoint 2, this run 3"),
    (dict(max_leapfrog=9), "sampler_options: checkpoint {'max_leapfrog': 8}, this run {'max_leapfrog': 9}"),
    (dict(reparam="none"), "reparam: checkpoint 'scale"),
    (dict(env=irl.envs.gridworld(2, 2, terrain=np.array([[1, 2], [3, 0]]), slip=0.2, horizon=4)), "mdp: checkpoint"),
])
def test_resume_refuses_a_checkpoint_of_another_run(tmp_path, change, named):
    env = tiny_env()

    def run(env=env, data_seed=0, prior=PRIOR_THETA, human=hm.Boltzmann(beta=PRIOR_BETA), reward_model=None,
            seed=0, warmup=10, chains=2, max_leapfrog=8, reparam="auto"):
        data = demos.simulate(tiny_env(), hm.Boltzmann(2.0), tiny_env().true_reward, n=5, seed=data_seed)
        rm = irl.rewards.TabularReward(4, 5) if reward_model == "tabular" else None
        return irl.BayesianIRL(human, prior=prior, reward_model=rm, max_leapfrog=max_leapfrog, reparam=reparam).fit(
            env, data, samples=4, warmup=warmup, chains=chains, seed=seed, check=False,
            checkpoint=tmp_path / "c.npz", checkpoint_every=2)

    run()
    with pytest.raises(ValueError) as err:
        run(**change)
    text = str(err.value)
    assert "belongs to another run" in text and named in text, text
    assert text.count(", this run ") == 1, text  # exactly what differs, nothing else
