"""Fitting a study: deliberation models for every participant, model comparison, random-effects selection.

This is a **layer-5 workflow** (it uses the solvers :class:`irl.MaxEnt` and
:class:`irl.BayesianIRL`, and :mod:`irl.compare`); the meta-level problems and
solvers it uses live in the layer-2 core of :mod:`irl.metalevel`.

References:
    Callaway et al. (2022), "Rational use of cognitive resources in human
    planning", Nature Human Behaviour. Jain et al. (2023), Behavior Research
    Methods. Stephan, Penny, Daunizeau, Moran & Friston (2009), "Bayesian model
    selection for group studies", NeuroImage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from irl.compare import bic
from irl.metalevel.approx import EnvelopeSolver
from irl.metalevel.mdp import MetaLevelError
from irl.metalevel.mouselab import MouselabMDP

__all__ = ["ParticipantFit", "fit_participants", "default_cost_grid", "random_effects_bms",
           "posterior_with_envelope", "cost_interval"]


# ------------------------------------------------------------------ fitting many people
@dataclass
class ParticipantFit:
    """One participant's MAP fit of one model.

    Attributes:
        participant: the participant id.
        model: the model's label.
        log_likelihood: at the fit (exact, see ``gap``).
        n_params: free parameters.
        n_observations: scored decisions (clicks and stops).
        bic: ``-2 log L + k log n``.
        params: fitted human parameters by name.
        converged: the optimiser's verdict.
        gap: largest difference between exact and envelope values over the
            participant's belief classes at the fitted parameters (0 when the
            envelope was exact there, ``nan`` for models without a solver).
        rounds: how many refits the participant needed.
        estimate: the :class:`~irl.RewardEstimate` (``None`` for fixed models).
        held_out_log_likelihood: of the participant's held-out trials at the fit
            (``nan`` without held-out trials).
    """

    participant: str
    model: str
    log_likelihood: float
    n_params: int
    n_observations: int
    bic: float
    params: dict[str, float]
    converged: bool
    gap: float
    rounds: int
    estimate: Any = None
    held_out_log_likelihood: float = float("nan")


_WORKER: dict[str, Any] = {}


def _worker_solve(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    if "blas" not in _WORKER:  # a forked worker: one BLAS thread each (the pool has one worker per core)
        _WORKER["blas"] = _one_blas_thread()
        _WORKER["blas"].__enter__()
    t0 = time.perf_counter()
    solver, ids = _WORKER["solver"], _WORKER["ids"]
    V, stats = solver.solve(phi)
    return V[ids].copy(), stats[ids].copy(), time.perf_counter() - t0


def _solve_many(env: MouselabMDP, envelope: EnvelopeSolver, phis: list[np.ndarray], processes: int
                ) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
    """Exact solutions at the registered classes for several ``phi``, in ``processes`` forked workers.

    The workers are forked from this process, so they share its solver tables
    (copy-on-write) and need no ``if __name__ == "__main__"`` guard; they use
    numpy only. Where ``fork`` is unavailable the solves run here.
    """
    import multiprocessing as mp

    ids = envelope.registered_ids()
    t0 = time.perf_counter()
    if processes <= 1 or len(phis) <= 1 or "fork" not in mp.get_all_start_methods():
        out = []
        for phi in phis:
            V, stats = envelope.exact_solver.solve(phi)
            out.append((V[ids].copy(), stats[ids].copy()))
        return out, time.perf_counter() - t0
    from concurrent.futures import ProcessPoolExecutor

    _WORKER.update(solver=envelope.exact_solver.build(), ids=ids)
    try:
        with ProcessPoolExecutor(int(processes), mp_context=mp.get_context("fork")) as pool:
            res = list(pool.map(_worker_solve, phis))
    finally:
        _WORKER.clear()
    return [(V, st) for V, st, _ in res], time.perf_counter() - t0


def default_cost_grid() -> list[tuple[float, float]]:
    """The grid of ``(cost, depth_cost)`` the envelope starts from (60 points)."""
    costs = (-2.0, 0.0, 1.0, 2.0, 3.5, 5.0, 8.0, 13.0, 20.0, 35.0)
    depth = (-2.0, -1.0, 0.0, 1.0, 2.5, 5.0)
    return [(c, d) for c in costs for d in depth]


def fit_participants(env: MouselabMDP, traces: Any, models: dict[str, Any], *,
                     grid: Sequence[tuple[float, float]] | None = None, rounds: int = 8, tol: float = 1e-6,
                     processes: int = 1, envelope: EnvelopeSolver | None = None, max_iter: int = 200,
                     starts: int = 3, held_out: Any = None, log: Any = None,
                     checkpoint: str | os.PathLike | None = None) -> tuple[list[ParticipantFit], dict[str, Any]]:
    """MAP fits of several deliberation models for every participant, exact at the reported optima.

    All fits share one :class:`EnvelopeSolver`: exact solves on a ``grid`` of
    costs seed it; every participant and model is then fitted by
    :class:`irl.MaxEnt` (L-BFGS on the log-joint) with Q-values from the
    envelope; the exact solver is run at every optimum, and a fit whose
    envelope differed from the exact values there (by more than ``tol`` at any
    of the participant's belief classes) is refitted from its optimum with the
    new planes, for up to ``rounds`` rounds. At the end every reported
    likelihood was computed from exact Q-values.

    Args:
        env: a Mouselab environment with a symmetric tree.
        traces: :class:`demos.DeliberationTraces` of all participants.
        models: ``{label: human model}``: :class:`human_models.MetaBoltzmann`
            with ``values="points"`` (priors on the parameters to fit), or
            models without free parameters (e.g. ``RandomClicks``), which are
            scored as they are.
        grid: ``(cost, depth_cost)`` points to seed the envelope (default
            :func:`default_cost_grid`).
        rounds: maximum refit rounds.
        tol: largest envelope-vs-exact gap accepted at an optimum.
        processes: worker processes for the exact solves.
        envelope: an existing envelope to extend (must have all beliefs registered).
        max_iter: L-BFGS iteration limit per fit.
        starts: L-BFGS starts per fit in the first round, from the best grid
            points (the likelihood is not concave in the costs).
        held_out: traces of the same participants to score at the fits
            (``held_out_log_likelihood``); exact at no extra solve, since the
            envelope holds the exact planes of every fit's optimum for them too.
        log: ``log(message)`` for progress.
        checkpoint: a folder in which every participant's results are saved
            (atomically, as JSON) as soon as all of their fits are final. A
            rerun with the same folder and the same settings skips the
            participants already there, so a killed run resumes; their rows
            come back without ``estimate`` (the fitted numbers are all kept).

    Returns:
        ``(rows, info)``: one :class:`ParticipantFit` per participant and model,
        and timings and counts (``n_solves``, ``solve_seconds``, ``fit_seconds``,
        ``total_seconds``, ``rounds``, ``max_gap``, ``resumed``: participants
        read from the checkpoint).

    Raises:
        MetaLevelError: a model with ``values="reward"``.
        ValueError: the checkpoint folder was written with other settings
            (environment, models, data, grid, rounds, tol, max_iter, starts or
            held-out data); the message names them.
    """
    from human_models.cognitive import MetaBoltzmann

    t_start = time.perf_counter()
    say = log or (lambda msg: None)
    meta = env.meta
    grid = default_cost_grid() if grid is None else list(grid)
    store = None
    done_before: dict[str, list[ParticipantFit]] = {}
    if checkpoint is not None:
        store = _Checkpoint(checkpoint, _settings(env, traces, models, grid, rounds, tol, max_iter, starts, held_out))
        done_before = store.load(traces.participants(), list(models))
        if done_before:
            say(f"checkpoint {store.folder}: {len(done_before)} participants already fitted, skipped")
    people = [p for p in traces.participants() if p not in done_before]
    if not people:
        rows = [f for p in traces.participants() for f in done_before[p]]
        return rows, {"n_participants": len(done_before), "n_models": len(models), "n_solves": 0,
                      "solve_seconds": 0.0, "fit_seconds": 0.0, "total_seconds": time.perf_counter() - t_start,
                      "rounds": 0, "max_gap": max([f.gap for f in rows if np.isfinite(f.gap)] or [0.0]),
                      "n_classes": 0, "n_planes": 0, "unresolved": 0, "resumed": len(done_before)}
    exact = meta.solver("exact")
    exact.build()
    envelope = envelope or EnvelopeSolver(exact)
    data = {p: traces.select(participant=p) for p in people}
    held = {}
    if held_out is not None:
        have = set(held_out.participants())
        held = {p: held_out.select(participant=p) for p in people if p in have}
        for h_ in held.values():
            envelope.register(h_.decisions()[0])
    classes = {}
    for p in people:
        beliefs = data[p].decisions()[0]
        if not envelope.points:
            envelope.register(beliefs)
        succ, _ = exact.successors(beliefs)
        classes[p] = np.unique(succ[succ >= 0])
    ids = envelope.registered_ids()
    where = {p: np.searchsorted(ids, classes[p]) for p in people}
    solve_seconds, n_solves = 0.0, 0
    phis = [meta.params(c, d) for c, d in grid]
    solved = {tuple(np.round(phi, 12).tolist()) for phi in envelope.points}
    if phis:
        sols, sec = _solve_many(env, envelope, phis, processes)
        for phi, (_, st) in zip(phis, sols):
            envelope.add(phi, st)
            solved.add(tuple(np.round(phi, 12).tolist()))
        solve_seconds += sec
        n_solves += len(phis)
        say(f"envelope seeded with {len(phis)} exact solves in {sec:.1f} s ({envelope.n_classes} classes, "
            f"{envelope.n_planes} planes)")
    fitted: dict[tuple[str, str], ParticipantFit] = {}
    finished: set[str] = set()

    def finish(done_now: list[str]) -> None:
        """Held-out scores of participants whose fits are final, and their checkpoint files."""
        for p in done_now:
            for name in models:
                f = fitted[(p, name)]
                if p in held:
                    h = models[name]
                    bound = h if not f.params else h.bind(**f.params)
                    if isinstance(bound, MetaBoltzmann):
                        bound = bound.with_solver(envelope)  # exact here: the fit's optimum was solved exactly
                    with torch.no_grad():
                        f.held_out_log_likelihood = float(bound.log_likelihood(env, env.true_reward, held[p]))
            if store is not None:
                store.save(p, [fitted[(p, name)] for name in models])
            finished.add(p)

    pending = []
    for name, h in models.items():
        free = h.free_parameters() if hasattr(h, "free_parameters") else {}
        if isinstance(h, MetaBoltzmann) and h.values != "points":
            raise MetaLevelError("fit_participants fits models with values='points' (the study's models)")
        for p in people:
            if not free:
                with torch.no_grad():
                    ll = float(h.log_likelihood(env, env.true_reward, data[p]))
                n = data[p].n_observations
                fitted[(p, name)] = ParticipantFit(p, name, ll, 0, n, bic(ll, 0, n), {}, True, float("nan"), 0)
            else:
                pending.append((p, name))
    prev_x: dict[tuple[str, str], np.ndarray] = {}
    fit_seconds = 0.0
    max_gap = 0.0
    used_rounds = 0
    for rnd in range(1, int(rounds) + 1):
        if not pending:
            break
        used_rounds = rnd
        t0 = time.perf_counter()
        _FIT.update(env=env, data=data, models=models, envelope=envelope, grid=grid, starts=starts,
                    max_iter=max_iter, worker_pid=os.getpid())
        try:
            done, round_est = [], {}
            # first round: model after model, so that a model can also start from the optimum of a model
            # nested in it (e.g. effort + depth from the effort-only fit with depth_cost = 0)
            stages = [[k for k in pending if k[1] == name] for name in models] if rnd == 1 else [pending]
            for stage in stages:
                tasks = []
                for key in stage:
                    extra = [] if key in prev_x else _nested_starts(models, key, round_est)
                    tasks.append((key, prev_x.get(key), extra))
                done += _run_fits(tasks, processes)
                round_est.update(done)
        finally:
            _FIT.clear()
        results = {key: (models[key[1]], est) for key, est in done}
        for key, est in done:
            prev_x[key] = np.asarray(est.info["x"])
        fit_seconds += time.perf_counter() - t0
        phis, keys_of = [], []
        for key, (h, est) in results.items():
            hp = est.human_params
            label = h.name
            c = float(hp.get(f"{label}.cost", h.cost if not _is_prior(h.cost) else 0.0))
            d = float(hp.get(f"{label}.depth_cost", h.depth_cost if not _is_prior(h.depth_cost) else 0.0))
            phis.append(meta.params(c, d))
            keys_of.append(key)
        uniq: dict[tuple, int] = {}
        order = []
        for phi in phis:
            k = tuple(np.round(phi, 12).tolist())
            if k not in uniq:
                uniq[k] = len(order)
                order.append(phi)
        todo = [phi for phi in order if tuple(np.round(phi, 12).tolist()) not in solved]
        sols, sec = _solve_many(env, envelope, todo, processes) if todo else ([], 0.0)
        solve_seconds += sec
        n_solves += len(todo)
        values = dict(zip((tuple(np.round(phi, 12).tolist()) for phi in todo), (V for V, _ in sols)))
        gaps = {}
        for key, phi in zip(keys_of, phis):
            k_ = tuple(np.round(phi, 12).tolist())
            p = key[0]
            if k_ not in values or not classes[p].size:  # solved before: its planes are in the envelope
                gaps[key] = 0.0
                continue
            env_v = envelope.state_planes(classes[p], phi) @ phi
            gaps[key] = float(np.max(values[k_][where[p]] - env_v))
        for phi, (_, st) in zip(todo, sols):
            envelope.add(phi, st)
            solved.add(tuple(np.round(phi, 12).tolist()))
        new_pending = []
        for key in pending:
            h, est = results[key]
            p, name = key
            gap = gaps[key]
            k = int(est.info["n_free_params"])
            n = int(est.info["n_observations"])
            params = {n_.split(".", 1)[1]: float(v) for n_, v in est.human_params.items() if not isinstance(v, dict)}
            fitted[key] = ParticipantFit(p, name, float(est.log_likelihood), k, n, bic(est.log_likelihood, k, n),
                                         params, bool(est.converged), gap, rnd, est)
            if gap > tol:
                new_pending.append(key)
        say(f"round {rnd}: {len(pending)} fits in {time.perf_counter() - t0:.1f} s, {len(order)} exact solves, "
            f"{len(new_pending)} to refit (largest gap {max(gaps.values()):.2e})")
        pending = new_pending
        still = {key[0] for key in pending}
        finish([p for p in people if p not in still and p not in finished])
    for key in pending:  # still inexact after the last round: report the exact likelihood at the optimum
        h, est = results[key]
        exact_h = models[key[1]].bind(**fitted[key].params)
        with torch.no_grad():
            fitted[key].log_likelihood = float(exact_h.log_likelihood(env, env.true_reward, data[key[0]]))
        fitted[key].bic = bic(fitted[key].log_likelihood, fitted[key].n_params, fitted[key].n_observations)
    finish([p for p in people if p not in finished])
    for p, rows_p in done_before.items():
        for f in rows_p:
            fitted[(p, f.model)] = f
    finite = [f.gap for f in fitted.values() if np.isfinite(f.gap)]
    max_gap = max(finite) if finite else 0.0
    rows = [fitted[(p, name)] for p in traces.participants() for name in models]
    info = {"n_participants": len(people) + len(done_before), "n_models": len(models), "n_solves": n_solves,
            "solve_seconds": solve_seconds, "fit_seconds": fit_seconds,
            "total_seconds": time.perf_counter() - t_start, "rounds": used_rounds, "max_gap": max_gap,
            "n_classes": envelope.n_classes, "n_planes": envelope.n_planes, "unresolved": len(pending),
            "resumed": len(done_before)}
    return rows, info


# ------------------------------------------------------------------ checkpoints of a study
_CHECKPOINT_FORMAT = "pluggable-irl/participant-fits"


def _digest(data: Any) -> str | None:
    """A hash of a data set's arrays (``None`` for no data)."""
    if data is None:
        return None
    arrays = data._arrays() if hasattr(data, "_arrays") else dict(zip(("beliefs", "actions", "trial_of"),
                                                                      data.decisions()))
    h = hashlib.sha1()
    for name in sorted(arrays):
        a = np.ascontiguousarray(np.asarray(arrays[name]))
        h.update(name.encode())
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes() if a.dtype.kind != "U" else "\x1f".join(a.ravel().tolist()).encode())
    return h.hexdigest()


def _settings(env: Any, traces: Any, models: dict[str, Any], grid: list, rounds: int, tol: float, max_iter: int,
              starts: int, held_out: Any) -> dict[str, Any]:
    """Everything a study's results depend on (a checkpoint is reused only when all of it is the same)."""
    return {"environment": f"{env.meta.signature()} fee={env.meta.fee!r}",
            "models": {name: repr(h) for name, h in models.items()},
            "data": _digest(traces), "held_out": _digest(held_out),
            "grid": [[float(c), float(d)] for c, d in grid], "rounds": int(rounds), "tol": float(tol),
            "max_iter": int(max_iter), "starts": int(starts)}


class _Checkpoint:
    """Per-participant results in a folder: ``settings.json``, ``participants/<id>.json`` (each written atomically)."""

    def __init__(self, folder: Any, settings: dict[str, Any]) -> None:
        from demos.io import atomic_write

        self.folder = Path(folder)
        self.settings = settings
        path = self.folder / "settings.json"
        if path.exists():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                raise ValueError(f"{path}: not a readable checkpoint settings file ({e})") from None
            if old.get("format") != _CHECKPOINT_FORMAT:
                raise ValueError(f"{path}: not a checkpoint of fit_participants (format {old.get('format')!r})")
            differ = sorted(k for k in set(settings) | set(old.get("settings", {}))
                            if old.get("settings", {}).get(k) != settings.get(k))
            if differ:
                raise ValueError(f"{self.folder}: this checkpoint was written with other settings ({', '.join(differ)} "
                                 f"differ); use another folder, or delete it to start again")
        else:
            text = json.dumps({"format": _CHECKPOINT_FORMAT, "version": 1, "settings": settings}, indent=1)
            atomic_write(path, lambda f: f.write(text), binary=False)

    def _file(self, participant: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", participant)[:40]
        return self.folder / "participants" / f"{safe}-{hashlib.sha1(participant.encode()).hexdigest()[:8]}.json"

    def save(self, participant: str, rows: list[ParticipantFit]) -> None:
        from demos.io import atomic_write

        out = []
        for f in rows:
            row = {k: v for k, v in dataclasses.asdict(f).items() if k != "estimate"}
            row["x"] = None if f.estimate is None else np.asarray(f.estimate.info.get("x")).tolist()
            out.append(row)
        text = json.dumps({"participant": participant, "rows": out})
        atomic_write(self._file(participant), lambda fh: fh.write(text), binary=False)

    def load(self, participants: list[str], models: list[str]) -> dict[str, list[ParticipantFit]]:
        names = {f.name for f in dataclasses.fields(ParticipantFit)} - {"estimate"}
        out = {}
        for p in participants:
            path = self._file(p)
            if not path.exists():
                continue
            try:
                rec = json.loads(path.read_text(encoding="utf-8"))
                rows = [ParticipantFit(**{k: v for k, v in r.items() if k in names}) for r in rec["rows"]]
            except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{path}: not a readable participant result ({e}); delete it to refit "
                                 f"participant {p!r}") from None
            if rec.get("participant") != p or [r.model for r in rows] != models:
                raise ValueError(f"{path}: holds participant {rec.get('participant')!r} with models "
                                 f"{[r.model for r in rows]}, expected {p!r} with {models}")
            out[p] = rows
        return out


_FIT: dict[str, Any] = {}


def _one_blas_thread() -> Any:
    """A context limiting BLAS to one thread (when threadpoolctl is installed).

    The fits are tiny (three parameters): a multi-threaded BLAS only adds thread
    wake-ups to every L-BFGS step, which on a loaded machine cost more than the fit.
    """
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _run_fits(tasks: list, processes: int) -> list:
    import multiprocessing as mp

    if processes > 1 and len(tasks) > 1 and "fork" in mp.get_all_start_methods():
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(int(processes), mp_context=mp.get_context("fork")) as pool:
            return list(pool.map(_fit_one, tasks, chunksize=max(1, len(tasks) // (8 * processes))))
    with _one_blas_thread():
        return [_fit_one(t) for t in tasks]


def _nested_starts(models: dict, key: tuple, fitted: dict) -> list[np.ndarray]:
    """Starting points for ``key``'s model at the optima (``fitted``: estimates) of models nested in it."""
    p, name = key
    h = models[name]
    free = h.free_parameters() if hasattr(h, "free_parameters") else {}
    out = []
    for other, g in models.items():
        est = fitted.get((p, other))
        if other == name or est is None or type(g) is not type(h):
            continue
        g_free = g.free_parameters()
        if not set(g_free) <= set(free) or any(not (k in free or g.params[k] == h.params[k]) for k in g.params):
            continue
        values = {k.split(".", 1)[1]: float(v) for k, v in est.human_params.items() if not isinstance(v, dict)}
        values.update({k: float(v) for k, v in g.params.items() if k not in g_free})
        try:
            out.append(np.array([float(pr.to_unconstrained(torch.tensor(values[k], dtype=torch.float64)))
                                 for k, pr in free.items()]))
        except (KeyError, ValueError):
            continue
    return out


def _fit_one(task: tuple) -> tuple:
    """One MAP fit with the shared envelope (in this process or a forked worker)."""
    (p, name), x_prev, extra = task
    if _FIT.get("worker_pid") != os.getpid():  # a forked worker: small problems, one thread each
        torch.set_num_threads(1)
        _FIT["worker_pid"] = os.getpid()
        _FIT["blas"] = _one_blas_thread()
        _FIT["blas"].__enter__()
    return _fit_one_here(p, name, x_prev, extra)


def _fit_one_here(p: str, name: str, x_prev: Any, extra: list) -> tuple:
    from irl.solvers.maxent import MaxEnt

    env, data, envelope = _FIT["env"], _FIT["data"], _FIT["envelope"]
    h = _FIT["models"][name].with_solver(envelope)
    # this fit chooses its own starts (grid points, nested fits, the previous round's optimum)
    fitter = MaxEnt(human=h, max_iter=_FIT["max_iter"], n_starts=1, nested=False, check=False)
    if x_prev is not None:
        return (p, name), fitter.fit(env, data[p], init=x_prev)
    best = None  # first round: several starts from the best grid points (and nested fits), keep the best
    for x0 in _grid_start(h, envelope, data[p], env, _FIT["grid"], k=_FIT["starts"]) + list(extra):
        est = fitter.fit(env, data[p], init=x0)
        if best is None or est.log_likelihood + est.log_prior > best.log_likelihood + best.log_prior:
            best = est
    return (p, name), best


def _grid_start(human: Any, envelope: EnvelopeSolver, data: Any, env: MouselabMDP,
                grid: Sequence[tuple[float, float]], k: int = 1) -> list[np.ndarray]:
    """The ``k`` best grid points (cost, depth_cost), each with its best temperature, as MaxEnt starting points.

    The log-likelihood is not concave in the costs; starting L-BFGS from the
    best points of the grid the envelope was seeded on avoids poor local optima
    (e.g. a near-zero temperature for someone who never clicks).
    """
    meta = env.meta
    free = human.free_parameters()
    beliefs, actions, _ = data.decisions()
    avail = meta.available(beliefs)
    fixed = {k_: float(v) for k_, v in human.params.items() if k_ not in free}
    cands = sorted({(fixed.get("cost", c), fixed.get("depth_cost", d)) for c, d in grid})
    betas = np.exp(np.linspace(np.log(1e-3), np.log(20.0), 48)) if "beta" in free else np.array([fixed["beta"]])
    rows = np.arange(actions.size)
    scored = []
    for c, d in cands:
        phi = meta.params(c, d)
        q = envelope.q_planes(beliefs, phi) @ phi
        z = np.where(avail[None], betas[:, None, None] * q[None], -np.inf)
        m = z.max(axis=2, keepdims=True)
        lse = m[..., 0] + np.log(np.exp(z - m).sum(axis=2))
        total = (z[:, rows, actions] - lse).sum(axis=1)
        vals = {"cost": c, "depth_cost": d}
        total = total + sum(float(pr.distribution().log_prob(torch.tensor(vals[n], dtype=torch.float64)))
                            for n, pr in free.items() if n != "beta")
        if "beta" in free:
            total = total + free["beta"].distribution().log_prob(torch.from_numpy(betas)).numpy()
        i = int(np.argmax(total))
        vals["beta"] = float(betas[i])
        x = np.array([float(pr.to_unconstrained(torch.tensor(vals[n], dtype=torch.float64)))
                      for n, pr in free.items()])
        scored.append((float(total[i]), x))
    scored.sort(key=lambda t: -t[0])
    return [x for _, x in scored[:max(int(k), 1)]]


def _is_prior(x: Any) -> bool:
    from priors import is_prior

    return is_prior(x)


def random_effects_bms(log_evidence: Any, *, samples: int = 200_000, seed: int = 0, max_iter: int = 1000,
                       tol: float = 1e-10) -> dict[str, np.ndarray]:
    """Random-effects Bayesian model selection for a group (variational Bayes).

    Each participant's data come from one of ``K`` models, the model
    frequencies ``r ~ Dirichlet(alpha)``; given every participant's log evidence
    per model (e.g. ``-BIC / 2``), the posterior over ``r`` is approximated by
    ``Dirichlet(alpha)``.

    Args:
        log_evidence: ``(N, K)`` log evidence of each participant under each model.
        samples: Dirichlet draws for the exceedance probabilities.
        seed: their seed.

    Returns:
        ``alpha`` (posterior Dirichlet parameters), ``expected_count`` (expected
        number of participants generated by each model, ``alpha - 1``),
        ``expected_frequency`` (``alpha / sum(alpha)``) and ``exceedance``
        (probability that each model is the most frequent).

    References:
        Stephan, Penny, Daunizeau, Moran & Friston (2009), "Bayesian model
        selection for group studies", NeuroImage 46, 1004-1017.
    """
    from scipy.special import digamma, logsumexp

    L = np.asarray(log_evidence, dtype=np.float64)
    if L.ndim != 2 or L.shape[1] < 2 or not np.all(np.isfinite(L)):
        raise ValueError(f"log_evidence must be a finite (N participants, K >= 2 models) array: got {L.shape}")
    alpha0 = np.ones(L.shape[1])
    alpha = alpha0.copy()
    for _ in range(max_iter):
        u = L + digamma(alpha) - digamma(alpha.sum())
        g = np.exp(u - logsumexp(u, axis=1, keepdims=True))
        new = alpha0 + g.sum(axis=0)
        if np.abs(new - alpha).max() < tol:
            alpha = new
            break
        alpha = new
    draws = np.random.default_rng(seed).dirichlet(alpha, size=int(samples))
    exceed = np.bincount(draws.argmax(axis=1), minlength=alpha.size) / draws.shape[0]
    return {"alpha": alpha, "expected_count": alpha - alpha0, "expected_frequency": alpha / alpha.sum(),
            "exceedance": exceed}


def posterior_with_envelope(env: MouselabMDP, traces: Any, model: Any, envelope: EnvelopeSolver, *,
                            samples: int = 300, warmup: int = 300, chains: int = 4, seed: int = 0,
                            init: Any = None, init_radius: float = 0.3, check_draws: int = 12, rounds: int = 4,
                            scout: int = 100, tol: float = 1e-6, callback: Any = None, **sampler_options: Any
                            ) -> tuple[Any, dict[str, Any]]:
    """Bayesian IRL (:class:`irl.BayesianIRL`, HMC) of a deliberation model, with Q-values from an envelope.

    Sampling needs thousands of likelihood evaluations, far too many exact
    solves; the envelope makes each one cheap. It is exact only where its planes
    came from, so after sampling ``check_draws`` random draws are solved exactly:
    their planes are added, and if the envelope was off at any of them (by more
    than ``tol``) the posterior is sampled again, up to ``rounds`` times. While
    the envelope is still being refined the rounds are short (``scout`` warmup
    iterations and draws per chain): only the full-length round whose checked
    draws were all exact is returned (or the last round, flagged).

    Args:
        env: a Mouselab environment.
        traces: one participant's :class:`demos.DeliberationTraces`.
        model: a :class:`human_models.MetaBoltzmann` with priors.
        envelope: an :class:`EnvelopeSolver` with these traces' beliefs registered
            (e.g. the one :func:`fit_participants` used, or a fresh one seeded here);
            the checked draws' planes are added to it (pass ``envelope.copy()``
            to keep it as it is).
        samples: post-warmup draws per chain.
        warmup: adaptation iterations per chain.
        chains: number of chains.
        seed: random seed.
        init: starting point in the sampler's coordinates (e.g. the MAP fit's
            ``estimate.info["x"]``), ``(D,)``, or one per chain ``(chains, D)``.
        init_radius: a ``(D,)`` ``init`` is spread over the chains by uniform
            noise in ``[-init_radius, init_radius]`` per coordinate.
        check_draws: draws solved exactly after each round.
        rounds: maximum sampling rounds (short and full together; the last one is full).
        scout: warmup iterations and draws per chain of the short rounds (0: every round full).
        tol: largest accepted envelope error at the checked draws.
        callback: progress of each round's sampler, ``callback(iteration, total, phase)``
            (see :meth:`irl.BayesianIRL.fit`).
        **sampler_options: passed to :class:`irl.BayesianIRL` (e.g. ``max_leapfrog``).

    Returns:
        ``(posterior, info)`` with ``info`` holding ``rounds``, ``full_rounds``,
        ``gaps`` (per round, at the checked draws), ``seconds`` and
        ``exact_at_checked_draws`` (of the returned round).
    """
    from irl.solvers.bayesian import BayesianIRL

    t0 = time.perf_counter()
    beliefs = traces.decisions()[0]
    envelope.register(beliefs)
    rng = np.random.default_rng(seed)
    solver = BayesianIRL(human=model.with_solver(envelope), prior=None, **sampler_options)
    gaps: list[list[float]] = []
    full = int(scout) <= 0 or int(rounds) <= 1
    n_full = 0
    while True:
        n, w = (samples, warmup) if full else (min(int(scout), samples), min(int(scout), warmup))
        post = solver.fit(env, traces, samples=n, warmup=w, chains=chains, seed=seed, init=init,
                          init_radius=init_radius, check=False, callback=callback)
        gaps.append(_refine_at_draws(env, envelope, beliefs, model, post, check_draws, rng))
        n_full += full
        exact = max(gaps[-1]) <= tol
        if len(gaps) >= int(rounds) or (full and exact):
            break
        full = full or exact or len(gaps) == int(rounds) - 1
    return post, {"rounds": len(gaps), "full_rounds": n_full, "gaps": gaps, "seconds": time.perf_counter() - t0,
                  "exact_at_checked_draws": bool(exact)}


def _refine_at_draws(env: MouselabMDP, envelope: EnvelopeSolver, beliefs: np.ndarray, model: Any, post: Any,
                     k: int, rng: np.random.Generator) -> list[float]:
    """Solve ``k`` random posterior draws exactly: the envelope's gap at each, and their planes added."""
    label = model.name
    draws = {name: np.asarray(v).reshape(-1) for name, v in post.human.items()}
    n = next(iter(draws.values())).size
    out = []
    for i in rng.choice(n, size=min(int(k), n), replace=False):
        c = float(draws[f"{label}.cost"][i]) if f"{label}.cost" in draws else float(model.cost)
        d = float(draws[f"{label}.depth_cost"][i]) if f"{label}.depth_cost" in draws else float(model.depth_cost)
        out.append(envelope.refine(beliefs, env.meta.params(c, d)))
    return out


def cost_interval(env: Any, traces: Any, model: Any, costs: Sequence[float], *, level: float = 0.95
                  ) -> dict[str, Any]:
    """A person's cost of computation with a profile-likelihood interval (the temperature profiled out).

    For every ``cost`` on the grid the meta-level Q-values are solved once (by
    the model's solver) and the log-likelihood is maximised over ``beta`` (a
    one-dimensional concave problem); the interval spans the grid costs whose
    profile log-likelihood is within ``chi2_1(level) / 2`` of the best (Wilks),
    widened by one grid step on each side (its true ends lie in those steps).
    The other parameters (``depth_cost``) are held at the model's values.

    Args:
        env: an environment with a meta-level problem.
        traces: one person's deliberation traces.
        model: a :class:`human_models.MetaBoltzmann` (its ``depth_cost`` a number).
        costs: ``(G,)`` increasing grid of costs.
        level: coverage of the interval.

    Returns:
        ``cost`` (the grid maximum), ``beta`` (its profiled temperature),
        ``interval`` ``(low, high)``, ``at_edge`` (the interval touches the end of
        the grid: widen it), ``costs``, ``profile`` ``(G,)`` log-likelihoods and ``betas``.

    Raises:
        ValueError: a grid of fewer than 3 increasing costs, or a ``depth_cost`` that is a prior.
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp
    from scipy.stats import chi2

    grid = np.asarray(costs, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 3 or np.any(np.diff(grid) <= 0):
        raise ValueError(f"costs must be an increasing grid of at least 3 numbers: got {grid.tolist()}")
    if _is_prior(model.depth_cost):
        raise ValueError("cost_interval holds depth_cost fixed: give the model a number for it, not a prior")
    meta = env.meta
    solver = meta.solver(model.solver) if isinstance(model.solver, str) else model.solver
    beliefs, actions, _ = traces.decisions()
    avail = meta.available(beliefs)
    rows = np.arange(actions.size)
    prof, betas = [], []
    for c in grid:
        q = np.where(avail, solver.q_values(beliefs, meta.params(float(c), float(model.depth_cost))), 0.0)
        qa = q[rows, actions]

        def nll(log_beta: float) -> float:
            b = np.exp(log_beta)
            return -float((b * qa - logsumexp(np.where(avail, b * q, -np.inf), axis=1)).sum())

        res = minimize_scalar(nll, bounds=(np.log(1e-4), np.log(1e6)), method="bounded",
                              options={"xatol": 1e-6})
        prof.append(-float(res.fun))
        betas.append(float(np.exp(res.x)))
    prof_a = np.array(prof)
    best = int(np.argmax(prof_a))
    inside = np.flatnonzero(prof_a >= prof_a[best] - chi2.ppf(level, 1) / 2)
    lo, hi = max(int(inside[0]) - 1, 0), min(int(inside[-1]) + 1, grid.size - 1)  # the boundary lies in the next step
    return {"cost": float(grid[best]), "beta": betas[best], "interval": (float(grid[lo]), float(grid[hi])),
            "at_edge": bool(inside[0] == 0 or inside[-1] == grid.size - 1), "costs": grid, "profile": prof_a,
            "betas": np.array(betas)}
