"""Shared norms and partial pooling (irl.norms): is the shared part recovered better from all agents together?

Two studies, several seeds each; one JSON object per line, then a summary line per study.

1. ``shared-norm`` on the ``park`` environment: four agents (goals A-D) with the same norm
   (keep off lawns and flowerbeds) each give ``--demos`` Boltzmann demonstrations. The norm is
   inferred (MAP, ``irl.MaxEnt`` with a :class:`irl.norms.SharedReward`) from all four agents at
   once and from each agent alone. A *new* agent with a *new* goal (every path cell that is not
   one of the four goals, one at a time) plans with the inferred norm plus its known goal; the
   score is its expected value difference under the true norm + goal, averaged over the goals.
   Reference points: planning with no norm, and with the true norm (EVD 0). With ``--bayes`` the
   joint fit is also run as a posterior (HMC), planning with the posterior-mean norm.
2. ``pooling`` on ``gridworld-8x8``: ``--participants`` people whose reward weights are drawn
   around a population mean (scale ``--tau``) each give ``--few`` demonstrations. Separate MAP fits
   (``priors.Gaussian(0, 1)`` each) against one partially pooled fit (``pooling=True``: group mean
   and scale inferred) and complete pooling (one reward for all), all linear in the terrain features
   relative to ``plain`` (``goal``, ``mud``, ``water``: a constant reward changes no policy here). Score: each participant's EVD
   when planning with their own estimate, under their own true reward, averaged.

    python benchmarks/bench_norms.py             # 10 seeds each
    python benchmarks/bench_norms.py --quick     # 3 seeds each
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import demos
import human_models as hm
import irl
import priors
from irl.envs import park
from irl.posterior import rhat
from irl.norms import SharedReward, select_features, transfer_evd

TRAIN = ("A", "B", "C", "D")


def new_goal_cells(env: irl.TabularMDP) -> list[int]:
    """Cells a new agent may aim for: path cells that are none of the training agents' goals."""
    goals = env.features[:, [list(env.feature_names).index(f"goal_{g}") for g in TRAIN]].sum(1)
    return [int(s) for s in np.flatnonzero((env.true_reward == 0) & (goals == 0) & (env.initial > 0))]


def new_agent_evd(env: irl.TabularMDP, norm: np.ndarray, cells: list[int]) -> float:
    """Mean EVD of new agents (goal value 1 at each cell) planning with ``norm`` ``(S,)``, judged under the true norm."""
    return float(transfer_evd(env, norm, env.true_reward, np.eye(env.n_states)[cells]).mean())


def park_evidence(env: irl.TabularMDP, agents: tuple[str, ...], n: int, seed: int, beta: float
                  ) -> list[irl.Evidence]:
    return [irl.Evidence(env, demos.simulate(env, hm.Boltzmann(beta), park.agent_reward(env, g), n=n,
                                             seed=seed * 100 + k), hm.Boltzmann(beta), agent=g)
            for k, g in enumerate(agents)]


def fit_norm(env: irl.TabularMDP, evidence: list[irl.Evidence], *, bayes: bool = False, seed: int = 0
             ) -> np.ndarray:
    """The inferred norm ``(S,)`` (shared component) from ``evidence`` (MAP, or posterior mean with ``bayes``)."""
    model = SharedReward.from_features(env, shared=park.NORM_FEATURES, own=park.GOAL_FEATURES,
                                       agents=[ev.agent for ev in evidence])
    if not bayes:
        est = irl.MaxEnt(reward_model=model, prior=model.prior()).fit(evidence)
        return est.reward[:, 0]
    post = irl.BayesianIRL(reward_model=model, prior=model.prior(), max_leapfrog=32).fit(
        evidence, samples=150, warmup=150, chains=2, seed=seed, check=False)
    return post.reward_mean[:, 0]


def shared_norm(seed: int, n: int, beta: float, bayes: bool) -> dict:
    env = irl.envs.make("park")
    cells = new_goal_cells(env)
    evidence = park_evidence(env, TRAIN, n, seed, beta)
    t0 = time.perf_counter()
    joint = new_agent_evd(env, fit_norm(env, evidence), cells)
    seconds = time.perf_counter() - t0
    single = {ev.agent: new_agent_evd(env, fit_norm(env, [ev]), cells) for ev in evidence}
    row = {"study": "shared-norm", "seed": seed, "demos_per_agent": n, "beta": beta, "new_goals": len(cells),
           "evd_joint": round(joint, 5), "evd_single": {k: round(v, 5) for k, v in single.items()},
           "evd_best_single": round(min(single.values()), 5), "evd_mean_single": round(float(np.mean(
               list(single.values()))), 5), "evd_no_norm": round(new_agent_evd(env, np.zeros(env.n_states), cells), 5),
           "joint_beats_every_single": bool(joint < min(single.values())), "joint_fit_s": round(seconds, 3)}
    if bayes:
        t0 = time.perf_counter()
        row["evd_joint_bayes"] = round(new_agent_evd(env, fit_norm(env, evidence, bayes=True, seed=seed), cells), 5)
        row["joint_bayes_s"] = round(time.perf_counter() - t0, 1)
    return row


def pooling(seed: int, participants: int, few: int, tau: float, beta: float, *, env_name: str = "gridworld-8x8",
            bayes: bool = False) -> dict:
    env = irl.envs.make(env_name)
    F = env.features
    rng = np.random.default_rng(seed)
    w_pop = np.array([1.0, 0.0, -0.3, -1.0])  # the environment's own weights as the population mean
    W = w_pop + tau * rng.normal(size=(participants, F.shape[1]))
    agents = [f"p{i}" for i in range(participants)]
    evidence = [irl.Evidence(env, demos.simulate(env, hm.Boltzmann(beta), F @ W[i], n=few, seed=seed * 1000 + i),
                             hm.Boltzmann(beta), agent=a) for i, a in enumerate(agents)]

    # the weights relative to "plain": a constant reward changes no policy here (fixed horizon, no terminal
    # states), so with all four one-hot terrain features the common level would be left to the prior alone
    lin = select_features(env, ["goal", "mud", "water"])
    G = np.asarray(lin.features[:, 0, :])

    def evd(est: np.ndarray) -> float:
        return float(np.mean([irl.metrics.expected_value_difference(env, irl.plan(env, G @ est[i]), F @ W[i])
                              for i in range(participants)]))

    separate = np.stack([irl.MaxEnt(reward_model=lin, prior=priors.Gaussian(0, 1)).fit([ev]).theta
                         for ev in evidence])
    complete = irl.MaxEnt(reward_model=lin, prior=priors.Gaussian(0, 1)).fit(evidence).theta  # one for everybody
    model = SharedReward(None, lin, agents, pooling=True)
    t0 = time.perf_counter()
    est = irl.MaxEnt(reward_model=model, prior=model.prior()).fit(evidence)
    seconds = time.perf_counter() - t0
    parts = model.split(torch.from_numpy(est.theta))
    pooled = parts["own"].numpy()
    e_sep, e_pool, e_all = evd(separate), evd(pooled), evd(np.repeat(complete[None], participants, 0))
    row = {"study": "pooling", "env": env_name, "seed": seed, "participants": participants,
           "demos_per_participant": few, "tau": tau, "beta": beta, "evd_separate": round(e_sep, 5),
           "evd_pooled": round(e_pool, 5), "evd_complete_pooling": round(e_all, 5),
           "pooled_beats_separate": bool(e_pool < e_sep), "group_mean": np.round(parts["mean"].numpy(), 3).tolist(),
           "group_scale": np.round(parts["scale"].numpy(), 3).tolist(), "pooled_fit_s": round(seconds, 3)}
    if bayes:  # the posterior of the same model: HMC, posterior-mean weights per participant
        t0 = time.perf_counter()
        post = irl.BayesianIRL(reward_model=model, prior=model.prior(), max_leapfrog=16).fit(
            evidence, samples=200, warmup=200, chains=2, seed=seed, check=False)
        draws = model.split(torch.from_numpy(post.theta.reshape(-1, model.n_params)))
        e_bayes = evd(draws["own"].mean(0).numpy())
        row.update(evd_pooled_bayes=round(e_bayes, 5), bayes_beats_separate=bool(e_bayes < e_sep),
                   group_scale_bayes=np.round(draws["scale"].mean(0).numpy(), 3).tolist(),
                   rhat_max=round(max(rhat(post.theta[..., j]) for j in range(model.n_params)), 3),
                   bayes_s=round(time.perf_counter() - t0, 1))
    return row


def summary(rows: list[dict], keys: list[str], win: str) -> dict:
    out: dict = {"study": rows[0]["study"] + "-summary", "seeds": len(rows)}
    for k in keys:
        v = np.array([r[k] for r in rows], dtype=np.float64)
        out[k] = {"mean": round(float(v.mean()), 5), "median": round(float(np.median(v)), 5),
                  "max": round(float(v.max()), 5)}
    out["wins"] = f"{sum(r[win] for r in rows)}/{len(rows)}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds per study")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--demos", type=int, default=5, help="demonstrations per agent (shared norm)")
    ap.add_argument("--beta", type=float, default=3.0, help="rationality of the park's agents")
    ap.add_argument("--bayes", action="store_true", help="also fit the joint norm / the pooled model by HMC (slow)")
    ap.add_argument("--only", choices=["shared-norm", "pooling"], default=None, help="run one study")
    ap.add_argument("--pool-env", default="gridworld-8x8", help="environment of the pooling study")
    ap.add_argument("--participants", type=int, default=8)
    ap.add_argument("--few", type=int, default=3, help="demonstrations per participant (pooling)")
    ap.add_argument("--tau", type=float, default=0.3, help="spread of the participants' weights")
    args = ap.parse_args()
    seeds = range(args.seeds if args.seeds is not None else (3 if args.quick else 10))
    torch.set_num_threads(1)
    if args.only in (None, "shared-norm"):
        rows = []
        for s in seeds:
            rows.append(shared_norm(s, args.demos, args.beta, args.bayes))
            print(json.dumps(rows[-1]), flush=True)
        keys = ["evd_joint", "evd_best_single", "evd_mean_single", "evd_no_norm"] + (
            ["evd_joint_bayes"] if args.bayes else [])
        print(json.dumps(summary(rows, keys, "joint_beats_every_single")), flush=True)
    if args.only in (None, "pooling"):
        rows = []
        for s in seeds:
            rows.append(pooling(s, args.participants, args.few, args.tau, 2.0, env_name=args.pool_env,
                                bayes=args.bayes))
            print(json.dumps(rows[-1]), flush=True)
        keys = ["evd_separate", "evd_pooled", "evd_complete_pooling"] + (["evd_pooled_bayes"] if args.bayes else [])
        print(json.dumps(summary(rows, keys, "pooled_beats_separate")), flush=True)


if __name__ == "__main__":
    main()
