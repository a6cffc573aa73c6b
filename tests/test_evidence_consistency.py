"""Different kinds of evidence from one human tell one story (issue 5, "Combining evidence").

Comparisons and demonstrations are simulated from the same Boltzmann human (the
same ``beta``) acting on gridworld-5x5's true reward ``w = (goal 1, plain 0,
mud -0.3, water -1)``. Each is fitted on its own with :class:`irl.BayesianIRL`,
``beta`` given a LogNormal prior, and the two posteriors must agree: the 90%
credible intervals of ``beta`` and of every reward weight overlap. A Bayesian fit on
both together (a list of :class:`irl.Evidence` sharing one human object, hence one
``beta``) must also work and cover the truth.
"""

from __future__ import annotations

import numpy as np
import pytest

import demos
import human_models as hm
import irl
import priors

ENV = "gridworld-5x5"
BETA = 2.0
TRUE_W = np.array([1.0, 0.0, -0.3, -1.0])  # goal, plain, mud, water (exact: features @ w = true reward)
NAMES = ["goal", "plain", "mud", "water", "boltzmann.beta"]


def _human() -> hm.Boltzmann:
    return hm.Boltzmann(beta=priors.LogNormal(float(np.log(BETA)), 0.5))


def _solver() -> irl.BayesianIRL:
    return irl.BayesianIRL(_human(), prior=priors.Gaussian(0.0, 1.0), max_leapfrog=24)


@pytest.fixture(scope="module")
def evidence() -> tuple:
    env = irl.envs.make(ENV)
    truth = irl.envs.true_reward(env)
    assert np.allclose(env.features @ TRUE_W, env.true_reward)
    human = hm.Boltzmann(BETA)
    trajectories = demos.simulate(env, human, truth, n=40, seed=1)
    # candidate segments from a less rational agent, so the pairs differ in return and the answers inform
    candidates = demos.simulate(env, hm.Boltzmann(0.5), truth, n=400, seed=2)
    comparisons = demos.Comparisons.simulate(env, human, truth, 200, rng=3, candidates=candidates)
    return env, trajectories, comparisons


@pytest.fixture(scope="module")
def posteriors(evidence: tuple) -> dict[str, irl.Posterior]:
    env, trajectories, comparisons = evidence
    kw = dict(samples=100, warmup=120, chains=2, seed=0, check=False)
    out = {"demonstrations": _solver().fit(env, trajectories, **kw),
           "comparisons": _solver().fit(env, comparisons, **kw)}
    shared = _human()  # one object: one beta for both kinds of evidence
    out["combined"] = _solver().fit([irl.Evidence(env, trajectories, shared), irl.Evidence(env, comparisons, shared)],
                                    **kw)
    return out


def test_demonstrations_and_comparisons_give_overlapping_intervals(posteriors: dict[str, irl.Posterior]) -> None:
    demo, comp = posteriors["demonstrations"], posteriors["comparisons"]
    for post in (demo, comp):
        assert post.names == NAMES
        # each kind of evidence alone already orders the weights as the truth does: goal best, water worst
        mean = post.theta_mean
        assert int(np.argmax(mean)) == 0 and int(np.argmin(mean)) == 3, mean
    for name in NAMES:
        (a_lo, a_hi), (b_lo, b_hi) = demo.credible_interval(name, 0.9), comp.credible_interval(name, 0.9)
        assert a_lo <= b_hi and b_lo <= a_hi, f"{name}: demonstrations {(a_lo, a_hi)} vs comparisons {(b_lo, b_hi)}"


def test_combined_evidence_fit_shares_beta_and_covers_the_truth(posteriors: dict[str, irl.Posterior],
                                                                evidence: tuple) -> None:
    env = evidence[0]
    post = posteriors["combined"]
    assert post.info["n_evidence"] == 2 and post.names == NAMES
    assert post.rhat("boltzmann.beta") < 1.1
    lo, hi = post.credible_interval("boltzmann.beta", 0.9)
    assert lo < BETA < hi, (lo, hi)
    # beta * w is what the likelihood pins down; its interval for the goal weight covers the truth
    bw = post.draws("boltzmann.beta") * post.draws("goal")
    q5, q95 = np.quantile(bw, [0.05, 0.95])
    assert q5 < BETA * TRUE_W[0] < q95, (q5, q95)
    # planning on the posterior-mean reward is near-optimal under the true reward
    truth = irl.envs.true_reward(env)
    evd = irl.metrics.expected_value_difference(env, irl.plan(env, post.reward), truth)
    assert evd < 0.05 * abs(irl.metrics.optimal_return(env, truth))
