#!/usr/bin/env python
"""IRL for cognition on real Mouselab-MDP click data: exact meta-level values, per-participant fits, amplification.

Data: ``../shared/extdata/mouselab-planning-depth`` (read in place; see its SOURCE.md).
The script measures and prints, in one run:

1. ``data``: the loader's statistics of the test block against those of SOURCE.md.
2. ``solver``: the exact meta-level solver of the 13-node 312 tree (build time, solve
   time, belief classes vs raw belief states), the properties the study relies on
   (the optimal first click is on a leaf; the optimal expected score against not
   planning), and the myopic approximation's expected score and speed.
3. ``fits``: MAP fits of three models for every participant on the test block
   (random clicks; effort cost; effort + planning-depth cost), exact at every
   reported optimum (shared envelope of exact solves, see
   :func:`irl.metalevel.population.fit_participants`); BIC winners, random-effects Bayesian
   model selection (expected counts, exceedance) and the comparison with the
   original study (depth model expected 47.9 of 125 participants, effort only 33.6).
4. ``bayes`` (with ``--bayes K``): Bayesian posteriors of the depth model (HMC through
   the envelope, see :func:`irl.metalevel.population.posterior_with_envelope`) for the first K
   participants, in ``--processes`` worker processes, each participant with its own seed
   and its own copy of the envelope (the same numbers whatever the order or the number of
   processes); per participant the medians, 95% intervals, R-hat and ESS, and a summary
   (how many converged, how many 95% intervals of ``cost`` and ``depth_cost`` exclude 0, the
   medians of the posterior medians, the time).
5. ``held_out``: fits on the even test trials, log-likelihood of the odd ones.
6. ``amplification``: each participant's inferred deliberation re-run on their
   held-out (odd) trials with the costs of computation halved, set to zero, and
   with full information, judged by the points (their values in the model);
   the same on simulated people whose true costs are known.

Usage::

    python benchmarks/bench_mouselab.py                 # everything (about 15-25 minutes on 2 cores)
    python benchmarks/bench_mouselab.py --quick         # 24 participants, fewer repeats (a few minutes)
    python benchmarks/bench_mouselab.py --json out.json # also write all numbers (the figure script reads them)
    python benchmarks/bench_mouselab.py --bayes-only --bayes 123 --bayes-draws 200 --json bayes.json
        # MAP fits, then every participant's posterior: 6 + 55 minutes on 2 cores (4 chains x 200
        # draws; 200 rarely reach the 100 effective draws per chain that irl.Posterior.converged asks)

Output: one JSON line per measurement on stdout, then a summary; progress on stderr.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
import zlib
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # tiny problems: one thread each
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "extdata" / "mouselab-planning-depth"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def emit(record: dict) -> None:
    record = {"case": f"mouselab-{record.get('section', '?')}", **record, "load_average_1min": os.getloadavg()[0], "cpus": os.cpu_count()}
    print(json.dumps(record, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)), flush=True)


def models():
    import human_models as hm
    import priors

    return {"null": hm.RandomClicks(),
            "effort": hm.MetaBoltzmann(cost=priors.Gaussian(1.0, 20.0), depth_cost=0.0,
                                       beta=priors.LogNormal(-1.0, 1.5)),
            "depth": hm.MetaBoltzmann(cost=priors.Gaussian(1.0, 20.0), depth_cost=priors.Gaussian(0.0, 10.0),
                                      beta=priors.LogNormal(-1.0, 1.5))}


def section_data(path: Path) -> tuple:
    import demos

    t0 = time.perf_counter()
    traces = demos.load_mouselab(path)
    seconds = time.perf_counter() - t0
    test = traces.select(block="test")
    s = test.summary()
    want = {"mean_clicks": 3.90, "no_click_share": 0.042, "first_click_leaf_share": 0.721,
            "first_click_depth1": 0.246, "first_click_depth2": 0.033, "leaf_click_share": 0.707, "mean_score": 37.1}
    got = {"mean_clicks": s["mean_clicks"], "no_click_share": s["no_click_share"],
           "first_click_leaf_share": s["first_click_leaf_share"],
           "first_click_depth1": s["first_click_depth_share"][1], "first_click_depth2": s["first_click_depth_share"][2],
           "leaf_click_share": s["leaf_click_share"], "mean_score": s["mean_score"]}
    emit({"section": "data", "load_seconds": seconds, "trials": len(traces), "participants": len(traces.participants()),
          "test_trials": len(test), "test_participants": len(test.participants()), "statistics": got,
          "source_md": want})
    return traces, test, got, want


def section_solver(env) -> dict:
    from irl.envs import mouselab as ml
    from irl.metalevel import population

    meta = env.meta
    solver = meta.solver("exact")
    t0 = time.perf_counter()
    solver.build()
    build = time.perf_counter() - t0
    times = []
    for k in range(3):
        t0 = time.perf_counter()
        solver.solve(meta.params(1.0 + 1e-7 * k))
        times.append(time.perf_counter() - t0)
    summary = ml.optimal_policy_summary(env)
    # the myopic approximation: its greedy policy's expected score, by simulation on common instances
    rng = np.random.default_rng(0)
    inst = meta.sample_instances(20000, rng)
    scores = {}
    qtime = {}
    for kind in ("exact", "myopic"):
        s_ = meta.solver(kind)
        phi = meta.params(1.0)
        b = meta.initial_beliefs(len(inst))
        clicks = np.zeros(len(inst))
        active = np.ones(len(inst), bool)
        t0 = time.perf_counter()
        n_q = 0
        while active.any():
            rows = np.flatnonzero(active)
            a = s_.q_values(b[rows], phi).argmax(axis=1)
            n_q += rows.size
            stop = a == 0
            active[rows[stop]] = False
            go = rows[~stop]
            b[go, a[~stop]] = inst[go, a[~stop]]
            clicks[go] += 1
        qtime[kind] = (time.perf_counter() - t0) / n_q
        best = meta.best_paths(b)
        sc = (inst * meta.tree.path_matrix[best]).sum(axis=1) - clicks
        scores[kind] = {"mean_score": float(sc.mean()), "se": float(sc.std() / np.sqrt(sc.size)),
                        "mean_clicks": float(clicks.mean())}
    out = {"section": "solver", "belief_states_raw": 5 ** 12, "belief_classes": solver.n_states,
           "branch_states": solver.NB, "build_seconds": build, "solve_seconds_median": float(np.median(times)),
           "solve_seconds_all": times, "table_mb": solver.table_megabytes,
           "optimal_value": summary["value"], "optimal_expected_clicks": summary["expected_clicks"],
           "no_planning_value": summary["no_planning_value"], "first_click_depth": summary["first_click_depth"],
           "first_click_q_by_depth": summary["first_click_q"], "stop_q": summary["stop_q"],
           "simulated_scores": scores, "q_seconds_per_belief": qtime}
    emit(out)
    return out


def bic_table(rows) -> dict:
    from irl.envs import mouselab as ml
    from irl.metalevel import population

    by = collections.defaultdict(dict)
    for r in rows:
        by[r.participant][r.model] = r
    names = list(next(iter(by.values())).keys())
    winners = collections.Counter(min(d, key=lambda m: d[m].bic) for d in by.values())
    beats_null = {m: int(sum(d[m].bic < d["null"].bic for d in by.values())) for m in names if m != "null"}
    either = int(sum(min(d[m].bic for m in names if m != "null") < d["null"].bic for d in by.values()))
    L = np.array([[-0.5 * d[m].bic for m in names] for d in by.values()])
    bms = population.random_effects_bms(L)
    return {"participants": len(by), "models": names, "bic_winners": {m: winners.get(m, 0) for m in names},
            "beats_null_by_bic": beats_null, "fitted_beats_null": either,
            "bms_expected_count": dict(zip(names, bms["expected_count"])),
            "bms_expected_frequency": dict(zip(names, bms["expected_frequency"])),
            "bms_exceedance": dict(zip(names, bms["exceedance"]))}


def section_fits(env, test, processes: int, quiz: set[str] | None) -> tuple:
    from irl.envs import mouselab as ml
    from irl.metalevel import population

    log(f"fitting {len(test.participants())} participants x 3 models ...")
    envelope = ml.EnvelopeSolver(env.meta.solver("exact"))
    rows, info = population.fit_participants(env, test, models(), processes=processes, envelope=envelope, log=log)
    table = bic_table(rows)
    out = {"section": "fits", **info, **table,
           "study": {"depth_expected_count": 47.9, "effort_expected_count": 33.6, "of": 125,
                     "depth_exceedance": 0.94, "effort_exceedance": 0.06}}
    if quiz:
        sub = [r for r in rows if r.participant in quiz]
        if sub:
            out["authors_sample"] = bic_table(sub)
    emit(out)
    params = [{"participant": r.participant, "model": r.model, "log_likelihood": r.log_likelihood, "bic": r.bic,
               "n": r.n_observations, "k": r.n_params, "params": r.params, "converged": r.converged, "gap": r.gap}
              for r in rows]
    return out, params, rows, envelope


BAYES_OPTIONS = {"samples": 300, "warmup": 300, "chains": 4, "max_leapfrog": 16, "target_accept": 0.8, "scout": 50,
                 "rounds": 3}
_BAYES: dict = {}  # what the posterior workers share (set before they are forked)


def participant_seed(p: str) -> int:
    """A seed of the participant's own (the same whoever else is sampled, in whatever order)."""
    return zlib.crc32(str(p).encode()) % 2 ** 31


def _posterior_one(p: str) -> dict:
    """One participant's posterior (depth model) on a private copy of the shared envelope."""
    from irl.envs import mouselab as ml
    from irl.metalevel import population

    torch.set_num_threads(1)
    env, test, fit, envelope = _BAYES["env"], _BAYES["test"], _BAYES["fits"][p], _BAYES["envelope"]
    post, info = population.posterior_with_envelope(env, test.select(participant=p), models()["depth"], envelope.copy(),
                                                    init=np.asarray(fit.estimate.info["x"]), seed=participant_seed(p),
                                                    **_BAYES["options"])
    rec = {"participant": p, "map": fit.params, "seconds": info["seconds"], "rounds": info["rounds"],
           "full_rounds": info["full_rounds"], "largest_gap_last_round": max(info["gaps"][-1]),
           "exact_at_checked_draws": info["exact_at_checked_draws"], "converged": bool(post.converged),
           "problems": post.problems(), "divergences": int(post.info.get("divergences", 0) or 0),
           "step_size": post.info.get("step_size")}
    for name in post.human:
        lo, hi = post.credible_interval(name, 0.95)
        rec[name.split(".", 1)[1]] = {"median": float(np.median(post.human[name])), "ci95": [lo, hi],
                                      "rhat": float(post.rhat(name)), "ess_bulk": float(post.ess_bulk(name)),
                                      "ess_tail": float(post.ess_tail(name))}
    log(f"posterior of {p}: {info['seconds']:.0f} s, {info['rounds']} rounds, converged {rec['converged']}")
    emit({"section": "bayes-participant", **rec})  # as each ends: a run cut short keeps what it had
    return rec


def bayes_summary(records: list, seconds: float) -> dict:
    """Counts over the participants' posteriors: converged, 95% intervals excluding 0, medians of medians."""
    def excludes_zero(name: str) -> dict:
        ci = np.array([r[name]["ci95"] for r in records])
        return {"positive": int((ci[:, 0] > 0).sum()), "negative": int((ci[:, 1] < 0).sum())}

    def failing(why: str) -> int:  # participants with a parameter failing the convergence rule for this reason
        return int(sum(any(w.startswith(why) for v in r["problems"].values() for w in v) for r in records))

    names = ("cost", "depth_cost", "beta")
    return {"participants": len(records), "converged": int(sum(r["converged"] for r in records)),
            "not_converged_by_reason": {w: failing(w) for w in ("R-hat", "bulk-ESS", "tail-ESS")}
            | {"divergences": int(sum(r["divergences"] > 0 for r in records))},
            "exact_at_checked_draws": int(sum(r["exact_at_checked_draws"] for r in records)),
            "ci95_excludes_zero": {n: excludes_zero(n) for n in ("cost", "depth_cost")},
            "median_of_medians": {n: float(np.median([r[n]["median"] for r in records])) for n in names},
            "median_of_medians_converged": {n: float(np.median([r[n]["median"] for r in records if r["converged"]]))
                                            for n in names} if any(r["converged"] for r in records) else None,
            "seconds": seconds, "participant_seconds": float(sum(r["seconds"] for r in records))}


def section_bayes(env, test, rows, envelope, k: int, processes: int, options: dict) -> dict:
    """Posteriors (HMC through the envelope, checked against exact solves) for the first k participants.

    Each participant samples on its own copy of the fits' envelope with its own
    seed, so the result does not depend on ``processes`` or on the order.
    """
    people = test.participants()[:k]
    log(f"posteriors of {len(people)} participants in {processes} processes ...")
    _BAYES.update(env=env, test=test, fits={r.participant: r for r in rows if r.model == "depth"},
                  envelope=envelope, options=options)
    t0 = time.perf_counter()
    try:
        out = run_pool(_posterior_one, people, processes)
    finally:
        _BAYES.clear()
    res = {"section": "bayes", "options": options, "summary": bayes_summary(out, time.perf_counter() - t0),
           "participants": out}
    emit(res)
    return res


def _amplify_one(args):
    import human_models as hm

    torch.set_num_threads(1)
    env, fitted, held, factors, repeats, seed, judge = args
    return hm.amplify(fitted, env, env.true_reward, held, cost_factors=factors, repeats=repeats, seed=seed,
                      judge=judge)


def run_pool(fn, jobs, processes: int) -> list:
    """``[fn(j) for j in jobs]`` in ``processes`` forked workers (here when 1 or without fork)."""
    import multiprocessing as mp

    if processes > 1 and len(jobs) > 1 and "fork" in mp.get_all_start_methods():
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(processes, mp_context=mp.get_context("fork")) as pool:
            return list(pool.map(fn, jobs))
    return [fn(j) for j in jobs]


def section_held_out(env, test, processes: int, repeats: int) -> tuple:
    import human_models as hm
    from irl.envs import mouselab as ml
    from irl.metalevel import population

    even = test.subset(test.trial % 2 == 0)
    odd = test.subset(test.trial % 2 == 1)
    ms = models()
    log("held-out: fitting the even test trials ...")
    rows, info = population.fit_participants(env, even, ms, processes=processes, held_out=odd, log=log)
    fits = {(r.participant, r.model): r for r in rows}
    people = [p for p in even.participants() if p in set(odd.participants())]
    held = {(p, m): fits[(p, m)].held_out_log_likelihood for p in people for m in ms}
    names = list(ms)
    winners = collections.Counter(max(names, key=lambda m: held[(p, m)]) for p in people)
    total = {m: sum(held[(p, m)] for p in people) for m in names}
    out = {"section": "held_out", "participants": len(people), "fit_seconds": info["total_seconds"],
           "held_out_winners": {m: winners.get(m, 0) for m in names}, "held_out_total_log_likelihood": total,
           "fitted_beats_null": int(sum(max(held[(p, "effort")], held[(p, "depth")]) > held[(p, "null")]
                                        for p in people))}
    emit(out)
    # amplification with each participant's depth-model fit (the fuller model), on the odd trials
    factors = (1.0, 0.5, 0.0)
    jobs = [(env, ms["depth"].bind(**fits[(p, "depth")].params), odd.select(participant=p), factors, repeats, k,
             None) for k, p in enumerate(people)]
    log(f"amplification: {len(jobs)} participants x {len(factors)} cost levels ...")
    t0 = time.perf_counter()
    res = run_pool(_amplify_one, jobs, processes)
    per = [{"participant": p, **{r["setting"]: r["mean_value"] for r in rr},
            **{"clicks " + r["setting"]: r["mean_clicks"] for r in rr}} for p, rr in zip(people, res)]
    settings = [r["setting"] for r in res[0]]
    mean = {s: float(np.mean([d[s] for d in per])) for s in settings}
    gain = {s: mean[s] - mean["actual"] for s in settings}
    improved = {s: int(sum(d[s] > d["actual"] for d in per)) for s in settings if s != "actual"}
    amp = {"section": "amplification", "participants": len(per), "seconds": time.perf_counter() - t0,
           "mean_value": mean, "gain": gain, "participants_improved": improved,
           "mean_clicks": {s: float(np.mean([d["clicks " + s] for d in per])) for s in settings}}
    emit(amp)
    return out, amp, per, fits


def section_simulated(env, processes: int, repeats: int, n_people: int) -> dict:
    import demos
    import human_models as hm
    from irl.envs import mouselab as ml
    from irl.metalevel import population

    rng = np.random.default_rng(2024)
    truth = []
    parts_train, parts_test = [], []
    for k in range(n_people):
        c = float(rng.choice([2.0, 4.0, 7.0, 10.0]))
        d = float(rng.choice([0.0, 0.0, 1.5, 3.0]))
        beta = float(rng.choice([0.3, 0.6, 1.0]))
        person = hm.MetaBoltzmann(cost=c, depth_cost=d, beta=beta)
        tr = demos.simulate(env, person, env.true_reward, n=40, seed=100 + k, participant=f"sim{k}")
        parts_train.append(tr.subset(slice(0, 20)))
        parts_test.append(tr.subset(slice(20, 40)))
        truth.append({"participant": f"sim{k}", "cost": c, "depth_cost": d, "beta": beta})
    train = demos.DeliberationTraces.concat(parts_train)
    log(f"simulated people: fitting {n_people} ...")
    rows, info = population.fit_participants(env, train, models(), processes=processes, log=log)
    fits = {(r.participant, r.model): r for r in rows}
    table = bic_table(rows)
    ms = models()
    jobs = [(env, ms["depth"].bind(**fits[(t["participant"], "depth")].params), parts_test[k], (1.0, 0.5, 0.0),
             repeats, k, None) for k, t in enumerate(truth)]
    res = run_pool(_amplify_one, jobs, processes)
    per = []
    for t, rr in zip(truth, res):
        f = fits[(t["participant"], "depth")].params
        per.append({**t, "fitted": f, **{r["setting"]: r["mean_value"] for r in rr}})
    settings = [r["setting"] for r in res[0]]
    mean = {s: float(np.mean([d[s] for d in per])) for s in settings}
    out = {"section": "simulated", "people": n_people, "fit_seconds": info["total_seconds"], **table,
           "recovery": [{"participant": d["participant"], "true": [d["cost"], d["depth_cost"], d["beta"]],
                         "fitted": [d["fitted"]["cost"], d["fitted"]["depth_cost"], d["fitted"]["beta"]]}
                        for d in per],
           "mean_value_by_true_values": mean, "gain": {s: mean[s] - mean["actual"] for s in settings},
           "improved": {s: int(sum(d[s] > d["actual"] for d in per)) for s in settings if s != "actual"}}
    emit(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="24 participants, fewer simulation repeats")
    ap.add_argument("--processes", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--json", type=Path, default=None, help="write every number to this JSON file")
    ap.add_argument("--data", type=Path, default=DATA, help="the mouselab-planning-depth folder")
    ap.add_argument("--bayes", type=int, default=3, help="participants with a Bayesian posterior (HMC), default 3")
    ap.add_argument("--bayes-only", action="store_true",
                    help="fit only the first --bayes participants and sample their posteriors, nothing else")
    ap.add_argument("--bayes-draws", type=int, default=BAYES_OPTIONS["samples"],
                    help=f"posterior draws (and warmup iterations) per chain, default {BAYES_OPTIONS['samples']}")
    args = ap.parse_args()
    torch.set_num_threads(1)
    import irl

    main_csv = args.data / "methods_main" / "mouselab-mdp.csv.gz"
    if not main_csv.exists():
        sys.exit(f"missing data: {main_csv} (see SOURCE.md of mouselab-planning-depth)")
    t_all = time.perf_counter()
    log("loading ...")
    traces, test, got, want = section_data(main_csv)
    quiz_file = args.data / "methods_main" / "quiz-and-demo.csv"
    quiz = None
    if quiz_file.exists():
        import csv

        with open(quiz_file, newline="", encoding="utf-8") as f:
            quiz = {str(int(float(r["pid"]))) for r in csv.DictReader(f)}
    env = irl.envs.make("mouselab-312")
    log("exact solver ...")
    solver = section_solver(env)
    people = test.participants()
    repeats = 20
    n_sim = 12
    if args.quick:
        test = test.select(participant=people[:24])
        repeats, n_sim = 8, 6
        args.bayes = min(args.bayes, 1)
    options = dict(BAYES_OPTIONS, samples=args.bayes_draws, warmup=args.bayes_draws)
    if args.bayes_only:
        sub = test.select(participant=people[:max(args.bayes, 1)])
        fits, params, fit_rows, envelope = section_fits(env, sub, args.processes, quiz)
        bayes = section_bayes(env, sub, fit_rows, envelope, args.bayes, args.processes, options)
        print_bayes(bayes)
        print(f"  total {(time.perf_counter() - t_all) / 60:.1f} min")
        write_json(args.json, {"solver": solver, "fits": fits, "params": params, "bayes": bayes,
                               "total_seconds": time.perf_counter() - t_all})
        return
    fits, params, fit_rows, envelope = section_fits(env, test, args.processes, quiz)
    bayes = section_bayes(env, test, fit_rows, envelope, args.bayes, args.processes, options) if args.bayes else None
    held, amp, amp_per, _ = section_held_out(env, test, args.processes, repeats)
    sim = section_simulated(env, args.processes, repeats, n_sim)
    total = time.perf_counter() - t_all

    print("\nSummary")
    print(f"  data: test block mean clicks {got['mean_clicks']:.2f} (SOURCE.md {want['mean_clicks']:.2f}), first click "
          f"on a leaf {100 * got['first_click_leaf_share']:.1f}% ({100 * want['first_click_leaf_share']:.1f}%), "
          f"clicks on leaves {100 * got['leaf_click_share']:.1f}% ({100 * want['leaf_click_share']:.1f}%), mean "
          f"score {got['mean_score']:.1f} ({want['mean_score']:.1f})")
    print(f"  exact solver: {solver['belief_classes']:,} belief classes (raw beliefs {solver['belief_states_raw']:,}),"
          f" build {solver['build_seconds']:.1f} s, one solve {solver['solve_seconds_median']:.2f} s "
          f"({solver['table_mb']:.0f} MB of tables)")
    print(f"  optimal policy (cost 1): first click at depth {solver['first_click_depth']}, expected score "
          f"{solver['optimal_value']:.2f} vs {solver['no_planning_value']:.1f} without planning; "
          f"{solver['optimal_expected_clicks']:.2f} clicks; myopic approximation "
          f"{solver['simulated_scores']['myopic']['mean_score']:.2f} (exact policy simulated "
          f"{solver['simulated_scores']['exact']['mean_score']:.2f})")
    print(f"  fits: {fits['participants']} participants x 3 models in {fits['total_seconds']:.0f} s "
          f"({fits['n_solves']} exact solves, {args.processes} processes, largest envelope gap "
          f"{fits['max_gap']:.1e}, unresolved {fits['unresolved']})")
    print(f"  BIC winners {fits['bic_winners']}; fitted model beats the null for {fits['fitted_beats_null']} of "
          f"{fits['participants']}")
    ec = fits["bms_expected_count"]
    print(f"  random-effects BMS expected counts: depth {ec['depth']:.1f}, effort {ec['effort']:.1f}, null "
          f"{ec['null']:.1f} (study: depth 47.9, effort 33.6 of 125); exceedance "
          f"{ {k: round(float(v), 3) for k, v in fits['bms_exceedance'].items()} }")
    if "authors_sample" in fits:
        a = fits["authors_sample"]
        print(f"  authors' sample ({a['participants']} in quiz-and-demo.csv): BIC winners {a['bic_winners']}, BMS "
              f"expected counts { {k: round(float(v), 1) for k, v in a['bms_expected_count'].items()} }")
    print(f"  held-out (fit on even, score odd trials): winners {held['held_out_winners']}, fitted beats null "
          f"{held['fitted_beats_null']} of {held['participants']}")
    print(f"  amplification (real, odd trials, by the points): " + ", ".join(
        f"{s} {v:.2f}" for s, v in amp["mean_value"].items()) + f"; clicks " + ", ".join(
        f"{s} {v:.2f}" for s, v in amp["mean_clicks"].items()))
    print(f"  amplification (simulated, by the true values): " + ", ".join(
        f"{s} {v:.2f}" for s, v in sim["mean_value_by_true_values"].items()))
    if bayes:
        print_bayes(bayes)
    print(f"  total {total / 60:.1f} min")
    write_json(args.json, {"solver": solver, "fits": fits, "params": params, "held_out": held, "bayes": bayes,
                           "amplification": amp, "amplification_per_participant": amp_per, "simulated": sim,
                           "total_seconds": total})


def print_bayes(bayes: dict) -> None:
    """The posteriors' summary, and each participant's when there are few."""
    s = bayes["summary"]
    print(f"  posteriors: {s['participants']} participants in {s['seconds'] / 60:.1f} min, converged "
          f"{s['converged']}, envelope exact at the checked draws {s['exact_at_checked_draws']}; 95% interval "
          f"excludes 0: " + ", ".join(f"{n} {d['positive']} above / {d['negative']} below"
                                     for n, d in s["ci95_excludes_zero"].items())
          + "; medians of posterior medians " + ", ".join(f"{n} {v:.2f}" for n, v in s["median_of_medians"].items()))
    if len(bayes["participants"]) > 10:
        return
    for b in bayes["participants"]:
        print(f"  posterior of {b['participant']} ({b['seconds']:.0f} s, exact at checked draws: "
              f"{b['exact_at_checked_draws']}, converged: {b['converged']}): " + ", ".join(
                  f"{k} {b[k]['median']:.2f} [{b[k]['ci95'][0]:.2f}, {b[k]['ci95'][1]:.2f}]"
                  for k in ("cost", "depth_cost", "beta")) + "; MAP " + ", ".join(
                  f"{k} {v:.2f}" for k, v in b["map"].items()))


def write_json(path: Path | None, record: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)),
                    encoding="utf-8")


if __name__ == "__main__":
    main()
