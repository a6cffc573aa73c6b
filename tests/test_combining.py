"""Combining evidence: world states + a few comparisons beat either source alone.

Both sources come from the same simulated Boltzmann human (beta = 2) on the
8x8 gridworld; each fit is MAP with a N(0, 1) prior on the reward weights, and
each inferred reward is judged by the return of its optimal plan under the true
reward, averaged over six simulated datasets. Measured: world states alone
0.814 of optimal, comparisons alone 0.950, both 0.992.
"""

from __future__ import annotations

import numpy as np

import demos
import human_models as hm
import irl
import priors


def test_world_state_plus_comparisons_beats_either_alone():
    env = irl.envs.make("gridworld-8x8")
    truth = irl.envs.true_reward(env)
    human = hm.Boltzmann(2.0)
    v_opt = irl.metrics.optimal_return(env, truth)
    scores: dict[str, list[float]] = {"world states": [], "comparisons": [], "both": []}
    for seed in range(6):
        ws = irl.Evidence(env, demos.WorldState.simulate(env, human, truth, 10, horizon=8, seed=seed), human)
        cmp = irl.Evidence(env, demos.Comparisons.simulate(env, human, truth, 10, rng=seed), human)
        for name, evidence in (("world states", [ws]), ("comparisons", [cmp]), ("both", [ws, cmp])):
            est = irl.MaxEnt(prior=priors.Gaussian(0.0, 1.0)).fit(evidence)
            scores[name].append(irl.metrics.policy_return(env, irl.plan(env, est.reward), truth) / v_opt)
    mean = {k: float(np.mean(v)) for k, v in scores.items()}
    assert mean["both"] > max(mean["world states"], mean["comparisons"]) + 0.02, mean
    assert min(scores["both"]) > 0.95, scores["both"]
