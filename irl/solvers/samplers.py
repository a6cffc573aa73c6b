"""MCMC samplers over a batched log-density: batched HMC, PolicyWalk, and pyro's NUTS.

Every sampler takes ``log_density(x) -> (B,)`` for a batch ``x`` of shape
``(B, D)`` (torch, float64) and a start ``x0`` of shape ``(C, D)``, one row per
chain, and returns a :class:`SamplerResult` with ``(C, N, D)`` draws. The
log-density of Bayesian IRL is :class:`~irl.solvers.base.LogJoint`, whose planner
is batched over reward hypotheses, so *all chains are advanced together*: one
call evaluates every chain's likelihood (and its gradient), instead of running
the chains one after another.

* :func:`hmc` — Hamiltonian Monte Carlo with, per chain, a step size tuned by
  dual averaging, a diagonal mass matrix estimated in Stan-style warmup windows
  and trajectory lengths drawn from the U-turn times learned in warmup (eHMC),
  which jitters them and needs no tree building, so chains stay in lockstep.
* :func:`policywalk` — the grid random walk of Ramachandran & Amir (2007); needs
  no gradient.
* :func:`pyro_nuts` — pyro's NUTS with a potential function (the ``bayes`` extra);
  chains run one after another, each likelihood unbatched.

References:
    Neal (2011), "MCMC using Hamiltonian dynamics", Handbook of MCMC.
    Hoffman & Gelman (2014), "The No-U-Turn Sampler", JMLR (dual averaging).
    Wu, Stoehr & Robert (2018), "Faster Hamiltonian Monte Carlo by learning
    leapfrog scale", arXiv:1810.04449 (eHMC).
    Stan Reference Manual, "HMC algorithm parameters" (warmup windows).
    Ramachandran & Amir (2007), "Bayesian Inverse Reinforcement Learning", IJCAI.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["SamplerResult", "hmc", "policywalk", "pyro_nuts", "warmup_windows", "torch_threads"]

LogDensity = Callable[[torch.Tensor], torch.Tensor]
Callback = Callable[[int, int, str], None]


@dataclass
class SamplerResult:
    """Draws of a sampler and what it did.

    Attributes:
        draws: ``(C, N, D)`` post-warmup draws.
        log_density: ``(C, N)`` log-density at each draw.
        stats: per-transition arrays ``(C, N)``: ``accept_prob``, ``n_steps``
            (leapfrog steps or 1), ``diverging``.
        info: settings and totals: adapted step sizes, trajectory length, mass
            matrix, number of batched calls and of per-chain evaluations, seconds.
    """

    draws: np.ndarray
    log_density: np.ndarray
    stats: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads (``None``: unchanged); the old setting is restored.

    The tensors of a likelihood evaluation are small (chains x horizon x S x A),
    and on them OpenMP threads cost more in synchronisation than they gain:
    measured on the 2-core machines of this project, one 100-state gridworld
    log-joint gradient for 4 chains took 6-9 ms with 1 thread and 58-87 ms with
    2 threads while other processes were running.
    """
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ---------------------------------------------------------------- evaluation
class _Evaluator:
    """Calls the batched log-density, counting calls; non-finite values and failures become ``-inf``.

    With ``indexed=True`` the density is called as ``log_density(x, chains)``,
    ``chains`` being the chain index of each row (for batches of independent
    problems, where row ``i`` needs to know its own data).
    """

    def __init__(self, log_density: LogDensity, dim: int, indexed: bool = False) -> None:
        self.f, self.dim, self.indexed = log_density, dim, indexed
        self.calls = 0
        self.evaluations = 0

    def _one_batch(self, x: np.ndarray, rows: np.ndarray, grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=grad)
        call = (lambda t: self.f(t, rows)) if self.indexed else self.f
        if grad:
            v = call(xt)
            g, = torch.autograd.grad(v.sum(), xt)
            return v.detach().numpy().astype(np.float64), g.numpy().astype(np.float64)
        with torch.no_grad():
            return call(xt).numpy().astype(np.float64), None

    def __call__(self, x: np.ndarray, *, grad: bool, chains: Any = None, strict: bool = False
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(B,)`` values and ``(B, D)`` gradients (zeros where the value is not finite).

        ``strict`` lets exceptions through (used at the starting points, where a failure is the
        user's error to see, not an extreme point visited by a trajectory).
        """
        b = x.shape[0]
        chains = np.arange(b) if chains is None else np.asarray(chains)
        out_v = np.full(b, -np.inf)
        out_g = np.zeros((b, self.dim)) if grad else None
        if b == 0:
            return out_v, out_g
        ok = np.all(np.isfinite(x), axis=1)
        idx = np.flatnonzero(ok)
        if idx.size:
            self.calls += 1
            self.evaluations += idx.size
            if strict:
                v, g = self._one_batch(x[idx], chains[idx], grad)
            else:
                v = g = None
            try:
                if v is None:
                    v, g = self._one_batch(x[idx], chains[idx], grad)
            except (ArithmeticError, ValueError, RuntimeError):
                # a failure somewhere in the batch (e.g. a planner that cannot converge at an
                # extreme point): find the culprits one by one, the others keep their values
                v = np.full(idx.size, -np.inf)
                g = np.zeros((idx.size, self.dim)) if grad else None
                for j, i in enumerate(idx):
                    try:
                        vj, gj = self._one_batch(x[i:i + 1], chains[i:i + 1], grad)
                    except (ArithmeticError, ValueError, RuntimeError):
                        continue
                    v[j] = vj[0]
                    if grad:
                        g[j] = gj[0]
            fin = np.isfinite(v) if not grad else np.isfinite(v) & np.all(np.isfinite(g), axis=1)
            out_v[idx[fin]] = v[fin]
            if grad:
                out_g[idx[fin]] = g[fin]
        return out_v, out_g


def warmup_windows(warmup: int) -> list[int]:
    """Iterations (exclusive ends) at which the mass matrix is re-estimated (Stan's schedule).

    An initial buffer (15%, at most 75 iterations) adapts only the step size;
    then slow windows doubling from 25 iterations estimate the mass matrix; a
    terminal buffer (10%, at most 50; for a warmup under 150, 25% and at least
    10 iterations) adapts the step size to the final matrix.

    Example:
        >>> from irl.solvers.samplers import warmup_windows
        >>> warmup_windows(1000)
        [100, 150, 250, 450, 950]
    """
    if warmup < 20:
        return []
    init = min(75, int(0.15 * warmup))
    term = min(50, int(0.1 * warmup))
    if warmup < 150:  # short warmups: keep at least 10 iterations to adapt the step to the final metric
        init, term = int(0.15 * warmup), max(10, int(0.25 * warmup))
    end_slow = warmup - term
    ends = []
    start, size = init, 25 if warmup >= 150 else max(5, (end_slow - init) // 3)
    while start < end_slow:
        stop = start + size
        if stop + 2 * size > end_slow:  # the last window absorbs the rest
            stop = end_slow
        ends.append(stop)
        start, size = stop, 2 * size
    return ends


def _group_index(groups: Any, c: int) -> tuple[np.ndarray, int]:
    if groups is None:
        return np.zeros(c, dtype=np.int64), 1
    g = np.asarray(groups)
    if g.shape != (c,):
        raise ValueError(f"groups must have one label per chain ({c}): got shape {g.shape}")
    _, inv = np.unique(g, return_inverse=True)
    return inv.astype(np.int64), int(inv.max()) + 1


def _group_mean(a: np.ndarray, gidx: np.ndarray, ng: int, w: np.ndarray | None = None) -> np.ndarray:
    """Weighted mean of ``a`` ``(C, ...)`` within each group: ``(G, ...)``."""
    w = np.ones(a.shape[0]) if w is None else w
    num = np.zeros((ng,) + a.shape[1:])
    np.add.at(num, gidx, a * w.reshape(-1, *([1] * (a.ndim - 1))))
    den = np.bincount(gidx, weights=w, minlength=ng).reshape(-1, *([1] * (a.ndim - 1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


class _Metric:
    """Inverse mass matrix of each chain: diagonal ``(C, D)`` or dense ``(C, D, D)`` (= a covariance estimate)."""

    def __init__(self, c: int, d: int, dense: bool) -> None:
        self.dense = dense
        self.cov = np.broadcast_to(np.eye(d), (c, d, d)).copy() if dense else np.ones((c, d))
        self.chol = self.cov.copy() if dense else None

    def velocity(self, p: np.ndarray, idx: Any = slice(None)) -> np.ndarray:
        if self.dense:
            return np.einsum("cij,cj->ci", self.cov[idx], p)
        return self.cov[idx] * p

    def kinetic(self, p: np.ndarray, idx: Any = slice(None)) -> np.ndarray:
        return 0.5 * np.sum(p * self.velocity(p, idx), axis=1)

    def momentum(self, rng: np.random.Generator) -> np.ndarray:
        """``p ~ N(0, cov^-1)``."""
        z = rng.standard_normal(self.cov.shape[:2])
        if self.dense:
            return np.linalg.solve(np.swapaxes(self.chol, 1, 2), z[..., None])[..., 0]
        return z / np.sqrt(self.cov)

    def update(self, draws: np.ndarray, gidx: np.ndarray, ng: int) -> None:
        """Re-estimate from warmup draws ``(n, C, D)``, pooled within each group, regularised as in Stan."""
        n, c, d = draws.shape
        cnt = n * np.bincount(gidx, minlength=ng).astype(np.float64)
        mean = _group_mean(draws.mean(0), gidx, ng)  # (G, D)
        w = cnt / (cnt + 5.0)
        if self.dense:
            second = _group_mean(np.einsum("nci,ncj->cij", draws, draws) / n, gidx, ng)
            cov = second - np.einsum("gi,gj->gij", mean, mean)
            cov = cov * (cnt / np.maximum(cnt - 1, 1))[:, None, None]
            cov = w[:, None, None] * cov + (1e-3 * (1 - w))[:, None, None] * np.eye(d)
            cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
            try:
                chol = np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:  # degenerate window: keep only the diagonal
                cov = np.einsum("gii->gi", cov)[:, :, None] * np.eye(d)
                chol = np.linalg.cholesky(cov)
            self.cov, self.chol = cov[gidx], chol[gidx]
        else:
            var = np.maximum(_group_mean((draws ** 2).mean(0), gidx, ng) - mean ** 2, 0.0)
            var = var * (cnt / np.maximum(cnt - 1, 1))[:, None]
            self.cov = (w[:, None] * var + (1e-3 * (1 - w))[:, None])[gidx]

    def summary(self, gidx: np.ndarray, ng: int) -> list:
        return _group_mean(self.cov, gidx, ng).tolist()


# ---------------------------------------------------------------- HMC
def _check_start(x0: Any, samples: int, warmup: int) -> np.ndarray:
    """Starting points ``(chains, D)`` as a fresh float64 array, and the draw counts, validated."""
    x = np.array(x0, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x0 must have shape (chains, D): got {x.shape}")
    if samples < 1 or warmup < 0:
        raise ValueError(f"samples must be >= 1 and warmup >= 0: got samples={samples}, warmup={warmup}")
    return x


def _leapfrog(ev: Any, mm: "_Metric", x: np.ndarray, p: np.ndarray, grad: np.ndarray, e: np.ndarray,
              chains: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One leapfrog step of the chains ``chains`` (rows of ``x``, ``p``, ``grad``; step sizes ``e`` ``(c, 1)``).

    Returns the new position, momentum, log density and its gradient.
    """
    ph = p + 0.5 * e * grad
    xn = x + e * mm.velocity(ph, chains)
    lv, gv = ev(xn, grad=True, chains=chains)
    return xn, ph + 0.5 * e * gv, lv, gv


def hmc(log_density: LogDensity, x0: Any, *, samples: int, warmup: int, seed: int = 0,
        target_accept: float = 0.8, max_leapfrog: int = 256, metric: str = "auto", groups: Any = None,
        indexed: bool = False, callback: Callback | None = None, state: dict | None = None,
        checkpoint: Callable[[dict], None] | None = None, checkpoint_every: int = 100) -> SamplerResult:
    """Hamiltonian Monte Carlo with all chains advanced together (one batched call per leapfrog step).

    Warmup adapts, per chain, the step size by dual averaging toward
    ``target_accept``, and per *group* of chains (by default all chains: they
    share the target) the inverse mass matrix, a covariance estimate from the
    pooled draws of Stan-style doubling windows: dense (it removes linear
    correlations, e.g. between the reward scale and the rationality ``beta``)
    or diagonal. The trajectory length is learned as in eHMC: during
    warmup, trajectories are continued past their proposal until they make a
    U-turn in the whitened metric (``(x_t - x_0) . p_t < 0``) and the time is
    recorded (in the terminal buffer, and until 20 times are known under each
    new metric); each iteration integrates for a duration drawn from the
    empirical distribution of those U-turn times (since the last mass-matrix
    update), which is both a good length and a jitter. Chain ``c`` takes ``ceil(t / eps_c)``
    leapfrog steps (at most ``max_leapfrog``); a chain that has finished, or
    diverged (energy error > 1000), sits out the remaining batch calls, so a
    batch call evaluates only the chains still moving. Draws are taken after
    warmup with everything frozen, so the chains are valid MCMC.

    Args:
        log_density: batched ``(B, D) -> (B,)`` log-density, differentiable by torch.
        x0: ``(C, D)`` starting points, one per chain.
        samples: post-warmup draws per chain.
        warmup: adaptation iterations per chain (discarded).
        seed: seed of the momenta, lengths and acceptance tests.
        target_accept: target mean acceptance probability of the step-size adaptation.
        max_leapfrog: cap on leapfrog steps per iteration.
        metric: ``"dense"``, ``"diag"`` or ``"auto"`` (dense up to 64 dimensions).
        groups: optional label per chain; chains with the same label share the
            mass matrix and trajectory lengths (e.g. independent problems sampled
            in one batch).
        indexed: call ``log_density(x, chains)`` with the chain index of each row.
        callback: called as ``callback(iteration, total, phase)``.
        state: a sampling state handed to ``checkpoint`` by an earlier run with the
            same arguments: the run continues from it (no new warmup) and gives
            exactly the draws the uninterrupted run gives.
        checkpoint: called as ``checkpoint(state)`` after every ``checkpoint_every``
            draws per chain (and after the last): ``state`` is a dict of numpy arrays
            and JSON-serialisable values (the draws so far, the chains' positions,
            step sizes, mass matrices, trajectory times and the generator's state).
        checkpoint_every: draws per chain between checkpoints.

    Returns:
        :class:`SamplerResult`; ``info`` has the adapted ``step_size (C,)``,
        ``mean_trajectory_time (G,)``, ``inv_mass`` (per group), ``calls`` (batched
        evaluations), ``gradient_evaluations`` (per chain) and ``seconds``.

    Example:
        >>> import torch, numpy as np
        >>> from irl.solvers.samplers import hmc
        >>> res = hmc(lambda x: -0.5 * (x ** 2).sum(-1), np.zeros((4, 2)), samples=300, warmup=200, seed=0)
        >>> res.draws.shape, bool(abs(res.draws.std() - 1) < 0.15)
        ((4, 300, 2), True)

    References:
        Neal (2011); Hoffman & Gelman (2014), Alg. 5-6 (dual averaging, U-turn);
        Wu, Stoehr & Robert (2018), "Faster Hamiltonian Monte Carlo by learning
        leapfrog scale", arXiv:1810.04449 (eHMC); Stan Reference Manual (windows).
    """
    t_start = time.perf_counter()
    x = _check_start(x0, samples, warmup)
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must lie in (0, 1): got {target_accept}")
    if max_leapfrog < 1:
        raise ValueError(f"max_leapfrog must be >= 1: got {max_leapfrog}")
    c, d = x.shape
    gidx, ng = _group_index(groups, c)
    rng = np.random.default_rng(seed)
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1: got {checkpoint_every}")
    ev = _Evaluator(log_density, d, indexed)
    if metric not in ("auto", "dense", "diag"):
        raise ValueError(f"metric must be 'auto', 'dense' or 'diag': got {metric!r}")
    mm = _Metric(c, d, metric == "dense" or (metric == "auto" and d <= 64))
    if state is None:
        logp, grad = ev(x, grad=True, strict=True)
        if not np.all(np.isfinite(logp)):
            bad = np.flatnonzero(~np.isfinite(logp)).tolist()
            raise ValueError(f"the log-density is not finite at the starting point of chains {bad} "
                             f"(check the prior's support and the initial values)")

    def find_step(eps: np.ndarray) -> np.ndarray:
        """Double or halve each chain's step until one leapfrog step's acceptance crosses 1/2."""
        eps = eps.copy()
        p = mm.momentum(rng)
        h0 = -logp + mm.kinetic(p)
        direction = np.zeros(c)
        done = np.zeros(c, dtype=bool)
        for _ in range(40):
            todo = np.flatnonzero(~done)
            if todo.size == 0:
                break
            xn, pn, lv, gv = _leapfrog(ev, mm, x[todo], p[todo], grad[todo], eps[todo, None], todo)
            with np.errstate(invalid="ignore", over="ignore"):
                dh = h0[todo] - (-lv + mm.kinetic(pn, todo))
            up = np.where(np.isfinite(dh), dh, -np.inf) > math.log(0.5)
            first = direction[todo] == 0
            direction[todo[first]] = np.where(up[first], 1.0, -1.0)
            dirs = direction[todo]
            crossed = ((dirs > 0) & ~up) | ((dirs < 0) & up)
            done[todo[crossed]] = True
            move = todo[~crossed]
            eps[move] = np.clip(eps[move] * np.where(direction[move] > 0, 2.0, 0.5), 1e-10, 1e3)
        return eps

    eps = eps_reset = find_step(np.full(c, 0.1)) if state is None else np.ones(c)
    gamma, t0, kappa = 0.05, 10.0, 0.75  # dual averaging constants of Hoffman & Gelman (2014)
    mu, hbar, log_eps_bar, da_t = np.log(10 * eps), np.zeros(c), np.log(eps), 0
    windows = warmup_windows(warmup)
    term_start = windows[-1] if windows else 0
    window_start = (min(75, int(0.15 * warmup)) if warmup >= 150 else int(0.15 * warmup)) if windows else warmup
    win_draws: list[np.ndarray] = []
    uturn_times: list[list[float]] = [[] for _ in range(ng)]  # since the last metric update
    older_times: list[list[float]] = [[] for _ in range(ng)]

    draws = np.empty((c, samples, d))
    dens = np.empty((c, samples))
    acc_out = np.empty((c, samples))
    nstep_out = np.empty((c, samples), dtype=np.int64)
    div_out = np.zeros((c, samples), dtype=bool)
    total = warmup + samples
    time_table: list[np.ndarray] = []
    start = 0
    if state is not None:
        start = warmup + _restore_hmc(state, mm, rng, ev, (c, d), ng, draws, dens, acc_out, nstep_out, div_out)
        x, logp, grad = (np.array(state[k], dtype=np.float64) for k in ("x", "logp", "grad"))
        eps = np.array(state["step_size"], dtype=np.float64)
        time_table = [np.asarray(t, dtype=np.float64) for t in state["trajectory_times"]]

    for it in range(start, total):
        sampling = it >= warmup
        if sampling and it == warmup:
            for g in range(ng):  # fall back to older times if the final buffer was too short
                ts = uturn_times[g] if len(uturn_times[g]) >= 20 else uturn_times[g] + older_times[g]
                time_table.append(np.asarray(ts if ts else [float(np.mean(eps)) * 10], dtype=np.float64))
        p0 = mm.momentum(rng)
        h0 = -logp + mm.kinetic(p0)
        if sampling:
            t_draw = np.array([rng.choice(time_table[g]) for g in gidx])
        else:
            pools = [ut if len(ut) >= 20 else ut + ot for ut, ot in zip(uturn_times, older_times)]
            t_draw = np.array([rng.choice(pools[g]) if pools[g] else rng.uniform(1, 10) * eps[ci]
                               for ci, g in enumerate(gidx)])
        n_steps = np.clip(np.ceil(t_draw / eps).astype(np.int64), 1, max_leapfrog)
        # warmup: integrate on past the proposal until the U-turn, to learn its time; the proposal
        # itself is the state after the independently drawn n_steps, so the move stays reversible.
        # U-turns are sought while a group has fewer than 20 times under the current metric, and
        # throughout the terminal buffer (the metric is final there)
        if sampling:
            seeking = np.zeros(c, dtype=bool)
        elif it >= term_start:
            seeking = np.ones(c, dtype=bool)
        else:
            seeking = np.array([len(uturn_times[g]) < 20 for g in gidx])
        xq, pq, gq, lq = x.copy(), p0.copy(), grad.copy(), logp.copy()
        prop = [xq.copy(), pq.copy(), gq.copy(), lq.copy()]
        diverged = np.zeros(c, dtype=bool)
        running = np.ones(c, dtype=bool)
        taken = np.zeros(c, dtype=np.int64)
        for step in range(max_leapfrog):
            act = np.flatnonzero(running & ((step < n_steps) | seeking))
            if act.size == 0:
                break
            xn, pn, lv, gv = _leapfrog(ev, mm, xq[act], pq[act], gq[act], eps[act, None], act)
            xq[act], pq[act], gq[act], lq[act] = xn, pn, gv, lv
            taken[act] += 1
            with np.errstate(invalid="ignore", over="ignore"):
                err = (-lv + mm.kinetic(pn, act)) - h0[act]
            bad = ~np.isfinite(err) | (err > 1000.0)
            running[act[bad]] = False
            diverged[act[bad & (taken[act] <= n_steps[act])]] = True
            seeking[act[bad]] = False
            at = act[(taken[act] == n_steps[act]) & ~bad]
            for arr, src in zip(prop, (xq, pq, gq, lq)):
                arr[at] = src[at]
            if not sampling:
                ut = act[seeking[act] & (np.sum((xn - x[act]) * pn, axis=1) < 0)]
                seeking[ut] = False
                for ci in ut:
                    uturn_times[gidx[ci]].append(float(taken[ci] * eps[ci]))
        xq, pq, gq, lq = prop
        with np.errstate(invalid="ignore", over="ignore"):
            log_alpha = np.minimum(0.0, h0 - (-lq + mm.kinetic(pq)))
        log_alpha = np.where(np.isfinite(log_alpha) & ~diverged, log_alpha, -np.inf)
        alpha = np.exp(log_alpha)
        accept = np.log(rng.random(c)) < log_alpha
        x = np.where(accept[:, None], xq, x)
        logp = np.where(accept, lq, logp)
        grad = np.where(accept[:, None], gq, grad)
        taken = np.minimum(taken, n_steps)

        if not sampling:
            da_t += 1
            w = 1.0 / (da_t + t0)
            hbar = (1 - w) * hbar + w * (target_accept - alpha)
            log_eps = mu - math.sqrt(da_t) / gamma * hbar
            k = da_t ** (-kappa)
            log_eps_bar = k * log_eps + (1 - k) * log_eps_bar
            eps = np.exp(np.clip(log_eps, -23.0, 7.0))
            if it + 1 > window_start and windows:
                win_draws.append(x.copy())
            if windows and it + 1 == windows[0]:
                windows.pop(0)
                mm.update(np.stack(win_draws), gidx, ng)
                win_draws = []
                older_times, uturn_times = uturn_times, [[] for _ in range(ng)]
                eps = eps_reset = find_step(eps)
                mu, hbar, log_eps_bar, da_t = np.log(10 * eps), np.zeros(c), np.log(eps), 0
            if it + 1 == warmup:
                # the averaged iterate needs a few iterations; before that the heuristic step is safer
                eps = np.exp(log_eps_bar) if da_t >= 10 else eps_reset
        else:
            j = it - warmup
            draws[:, j], dens[:, j] = x, logp
            acc_out[:, j], nstep_out[:, j], div_out[:, j] = alpha, taken, diverged
            if checkpoint is not None and ((j + 1) % checkpoint_every == 0 or j + 1 == samples):
                checkpoint({"draws": draws[:, :j + 1].copy(), "log_density": dens[:, :j + 1].copy(),
                            "accept_prob": acc_out[:, :j + 1].copy(), "n_steps": nstep_out[:, :j + 1].copy(),
                            "diverging": div_out[:, :j + 1].copy(), "x": x.copy(), "logp": logp.copy(),
                            "grad": grad.copy(), "step_size": eps.copy(), "inv_mass": mm.cov.copy(),
                            "inv_mass_chol": None if mm.chol is None else mm.chol.copy(),
                            "trajectory_times": [t.tolist() for t in time_table],
                            "rng": rng.bit_generator.state, "calls": ev.calls, "evaluations": ev.evaluations})
        if callback is not None:
            callback(it + 1, total, "sampling" if sampling else "warmup")

    return SamplerResult(
        draws=draws, log_density=dens,
        stats={"accept_prob": acc_out, "n_steps": nstep_out, "diverging": div_out},
        info={"sampler": "hmc", "step_size": eps.tolist(),
              "mean_trajectory_time": [float(np.mean(t)) for t in time_table],
              "metric": "dense" if mm.dense else "diag", "inv_mass": mm.summary(gidx, ng), "calls": ev.calls,
              "gradient_evaluations": ev.evaluations, "divergences": int(div_out.sum()),
              "mean_accept_prob": float(acc_out.mean()), "mean_leapfrog_steps": float(nstep_out.mean()),
              "warmup": warmup, "samples": samples, "seconds": time.perf_counter() - t_start})


def _restore_hmc(state: dict, mm: "_Metric", rng: np.random.Generator, ev: _Evaluator, shape: tuple[int, int],
                 ng: int, *outs: np.ndarray) -> int:
    """Load a checkpointed sampling state of :func:`hmc` into the run; returns the draws already taken."""
    c, d = shape
    done = np.asarray(state["draws"]).shape[1] if np.ndim(state["draws"]) == 3 else -1
    want = {"draws": (c, done, d), "log_density": (c, done), "accept_prob": (c, done), "n_steps": (c, done),
            "diverging": (c, done), "x": (c, d), "logp": (c,), "grad": (c, d), "step_size": (c,),
            "inv_mass": (c, d, d) if mm.dense else (c, d)}
    for k, shp in want.items():
        got = np.shape(state.get(k))
        if got != shp:
            raise ValueError(f"hmc state[{k!r}] must have shape {shp} for {c} chains in {d} dimensions: got {got}")
    if not 0 < done <= outs[0].shape[1] or len(state["trajectory_times"]) != ng:
        raise ValueError(f"hmc state holds {done} draws per chain and {len(state['trajectory_times'])} trajectory "
                         f"tables: expected 1..{outs[0].shape[1]} draws and {ng} tables")
    for out, k in zip(outs, ("draws", "log_density", "accept_prob", "n_steps", "diverging")):
        out[:, :done] = state[k]
    mm.cov = np.array(state["inv_mass"], dtype=np.float64)
    if mm.dense:
        mm.chol = np.array(state["inv_mass_chol"], dtype=np.float64)
    rng.bit_generator.state = state["rng"]
    ev.calls, ev.evaluations = int(state["calls"]), int(state["evaluations"])
    return done


# ---------------------------------------------------------------- PolicyWalk
def policywalk(log_density: LogDensity, x0: Any, *, samples: int, warmup: int, seed: int = 0,
               delta: Any = None, bounds: tuple[float, float] | None = None, target_accept: float = 0.44,
               cache: bool = True, indexed: bool = False, callback: Callback | None = None) -> SamplerResult:
    """PolicyWalk: Metropolis on a grid, one coordinate ``+-delta`` at a time (Ramachandran & Amir 2007).

    Each step picks a neighbour of the current point on the grid
    ``x_anchor + delta * Z^D`` (one coordinate moved by ``+delta`` or
    ``-delta``, uniformly) and accepts it with probability
    ``min(1, p(x') / p(x))``. The proposal is symmetric, so the chain samples
    the posterior restricted to the grid. All chains' proposals are scored in
    one batched call. With ``bounds=(-R, R)`` the walk stays in the box of the
    paper (moves out of it are rejected without evaluation).

    Reuse ("policy reuse" of the paper). In the paper a proposal costs one
    policy evaluation of the current optimal policy, and policy iteration is
    re-run only when that policy stops being optimal for the proposal. Here the
    density comes from the human model, which plans for itself inside its
    likelihood (``BoltzmannQ`` runs value iteration for ``Q*``; in a
    finite-horizon MDP that is one backward sweep, the cost of the paper's
    policy evaluation), so what is worth reusing is the *result*: a rejected
    proposal leaves the current density in place (never recomputed), and with
    ``cache=True`` the density of every grid point visited after warmup is kept,
    so a walk that returns to a point (frequent: it moves on a lattice) does not
    plan again. ``info["cache_hits"]`` counts the saved evaluations.

    Args:
        log_density: batched ``(B, D) -> (B,)`` log-density (no gradient needed).
        x0: ``(C, D)`` starting points.
        samples: post-warmup steps per chain (every step is a draw).
        warmup: steps that tune ``delta`` (discarded). With a given ``delta``
            they are plain burn-in.
        seed: seed of the walk.
        delta: grid step (a number, as in the paper, or one per coordinate);
            default: one step per chain and coordinate, tuned during warmup
            (Robbins-Monro on ``log delta`` of the coordinate moved) toward
            ``target_accept`` (0.44, the optimum for one-dimensional random-walk
            updates), because reward weights and ``log beta`` live on different scales.
        bounds: optional ``(low, high)`` box for every coordinate.
        target_accept: acceptance rate the ``delta`` tuning aims for.
        cache: memoise the density of visited grid points after warmup.
        indexed: call ``log_density(x, chains)`` with the chain index of each row.
        callback: called as ``callback(step, total, phase)``.

    Returns:
        :class:`SamplerResult`; ``info`` has ``delta (C, D)``, ``calls``,
        ``evaluations``, ``cache_hits`` and ``seconds``.

    Example:
        >>> import numpy as np
        >>> from irl.solvers.samplers import policywalk
        >>> res = policywalk(lambda x: -0.5 * (x ** 2).sum(-1), np.zeros((4, 2)), samples=2000, warmup=500)
        >>> bool(abs(res.draws.mean()) < 0.2)
        True

    References:
        Ramachandran & Amir (2007), "Bayesian Inverse Reinforcement Learning",
        IJCAI, Sec. 4 (PolicyWalk). Roberts, Gelman & Gilks (1997) (optimal
        acceptance of random-walk Metropolis).
    """
    t_start = time.perf_counter()
    x = _check_start(x0, samples, warmup)
    c, d = x.shape
    rng = np.random.default_rng(seed)
    tune = delta is None
    if tune:
        step = np.full((c, d), 0.5)
    else:
        dl = np.asarray(delta, dtype=np.float64)
        if np.any(dl <= 0) or dl.ndim > 1 or (dl.ndim == 1 and dl.shape != (d,)):
            raise ValueError(f"delta must be > 0, a number or one per coordinate ({d}): got {delta}")
        step = np.broadcast_to(dl, (c, d)).copy()
    lo, hi = (-np.inf, np.inf) if bounds is None else (float(bounds[0]), float(bounds[1]))
    if not lo < hi:
        raise ValueError(f"bounds must be (low, high) with low < high: got {bounds}")
    if np.any(x < lo) or np.any(x > hi):
        raise ValueError(f"the starting points must lie inside bounds {bounds}")
    ev = _Evaluator(log_density, d, indexed)
    logp, _ = ev(x, grad=False, strict=True)
    if not np.all(np.isfinite(logp)):
        bad = np.flatnonzero(~np.isfinite(logp)).tolist()
        raise ValueError(f"the log-density is not finite at the starting point of chains {bad}")
    memo: list[dict[tuple, float]] = [{} for _ in range(c)]
    anchor = x.copy()
    hits = 0
    draws = np.empty((c, samples, d))
    dens = np.empty((c, samples))
    acc_out = np.empty((c, samples))
    total = warmup + samples
    log_step = np.log(step)
    for it in range(total):
        sampling = it >= warmup
        if sampling and it == warmup:
            anchor = x.copy()  # the grid is fixed from here on
            for ci in range(c):
                memo[ci] = {(0,) * d: float(logp[ci])} if cache else {}
        coord = rng.integers(0, d, size=c)
        sign = rng.choice(np.array([-1.0, 1.0]), size=c)
        prop = x.copy()
        prop[np.arange(c), coord] += sign * step[np.arange(c), coord]
        inside = np.all((prop >= lo) & (prop <= hi), axis=1)
        lq = np.full(c, -np.inf)
        todo = []
        keys: list[tuple | None] = [None] * c
        for ci in np.flatnonzero(inside):
            if sampling and cache:
                key = tuple(np.rint((prop[ci] - anchor[ci]) / step[ci]).astype(np.int64).tolist())
                keys[ci] = key
                got = memo[ci].get(key)
                if got is not None:
                    lq[ci] = got
                    hits += 1
                    continue
            todo.append(ci)
        if todo:
            idx = np.asarray(todo)
            v, _ = ev(prop[idx], grad=False, chains=idx)
            lq[idx] = v
            if sampling and cache:
                for ci, val in zip(todo, v.tolist()):
                    memo[ci][keys[ci]] = val
        with np.errstate(invalid="ignore"):
            log_alpha = np.minimum(0.0, lq - logp)
        log_alpha = np.where(np.isfinite(log_alpha), log_alpha, -np.inf)
        accept = np.log(rng.random(c)) < log_alpha
        x = np.where(accept[:, None], prop, x)
        logp = np.where(accept, lq, logp)
        alpha = np.exp(log_alpha)
        if not sampling:
            if tune:  # Robbins-Monro on the log step of the coordinate that moved
                rate = (it / d + 10.0) ** -0.6
                rows = np.arange(c)
                log_step[rows, coord] += rate * (alpha - target_accept)
                step = np.exp(np.clip(log_step, -12, 5))
        else:
            j = it - warmup
            draws[:, j], dens[:, j], acc_out[:, j] = x, logp, alpha
        if callback is not None:
            callback(it + 1, total, "sampling" if sampling else "warmup")
    return SamplerResult(
        draws=draws, log_density=dens,
        stats={"accept_prob": acc_out, "n_steps": np.ones((c, samples), dtype=np.int64),
               "diverging": np.zeros((c, samples), dtype=bool)},
        info={"sampler": "policywalk", "delta": step.tolist(), "calls": ev.calls, "evaluations": ev.evaluations,
              "cache_hits": hits, "divergences": 0, "mean_accept_prob": float(acc_out.mean()),
              "warmup": warmup, "samples": samples, "seconds": time.perf_counter() - t_start})


# ---------------------------------------------------------------- pyro NUTS
def pyro_nuts(log_density: LogDensity, x0: Any, *, samples: int, warmup: int, seed: int = 0,
              target_accept: float = 0.8, max_tree_depth: int = 10, callback: Callback | None = None
              ) -> SamplerResult:
    """pyro's NUTS on ``log_density`` through a potential function; chains run one after another.

    pyro adapts the step size and a diagonal mass matrix during warmup. Each
    chain's likelihood is evaluated unbatched (pyro's MCMC cannot advance
    several chains in one process together). Global RNG state is saved and
    restored around the run.

    Args:
        log_density: batched ``(B, D) -> (B,)`` log-density (called with ``B = 1``).
        x0: ``(C, D)`` starting points.
        samples: draws per chain.
        warmup: warmup iterations per chain.
        seed: seed (chain ``c`` uses ``seed + c``).
        target_accept: NUTS target acceptance probability.
        max_tree_depth: NUTS tree depth limit.
        callback: called as ``callback(chain, chains, "chain")`` after each chain.

    Raises:
        ImportError: pyro-ppl is not installed (``pip install 'pluggable-irl[bayes]'``).

    References:
        Hoffman & Gelman (2014); Bingham et al. (2019), "Pyro: Deep Universal
        Probabilistic Programming", JMLR.
    """
    try:
        from pyro.infer import MCMC, NUTS
    except ImportError:
        raise ImportError("sampler='nuts' needs pyro-ppl: pip install 'pluggable-irl[bayes]' "
                          "(or use the built-in sampler='hmc')") from None
    t_start = time.perf_counter()
    x = _check_start(x0, samples, warmup)
    c, d = x.shape
    counter = {"n": 0}

    def potential(params: dict[str, torch.Tensor]) -> torch.Tensor:
        counter["n"] += 1
        v = log_density(params["x"].reshape(1, d))[0]
        return -v

    draws = np.empty((c, samples, d))
    dens = np.empty((c, samples))
    acc, div = [], 0
    for ci in range(c):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) + ci)
            kernel = NUTS(potential_fn=potential, target_accept_prob=target_accept, max_tree_depth=max_tree_depth,
                          adapt_step_size=True, adapt_mass_matrix=True, full_mass=False)
            mcmc = MCMC(kernel, num_samples=samples, warmup_steps=warmup,
                        initial_params={"x": torch.tensor(x[ci], dtype=torch.float64)}, disable_progbar=True)
            mcmc.run()
        draws[ci] = mcmc.get_samples()["x"].detach().numpy().reshape(samples, d)
        diag = mcmc.diagnostics()
        acc.append(float(diag.get("acceptance rate", {}).get("chain 0", float("nan"))))
        div += len(diag.get("divergences", {}).get("chain 0", []))
        if callback is not None:
            callback(ci + 1, c, "chain")
    with torch.no_grad():
        dens[:] = log_density(torch.from_numpy(draws.reshape(-1, d))).numpy().reshape(c, samples)
    return SamplerResult(
        draws=draws, log_density=dens,
        stats={"accept_prob": np.broadcast_to(np.array(acc)[:, None], (c, samples)).copy(),
               "n_steps": np.zeros((c, samples), dtype=np.int64), "diverging": np.zeros((c, samples), dtype=bool)},
        info={"sampler": "nuts", "calls": counter["n"], "gradient_evaluations": counter["n"], "divergences": div,
              "mean_accept_prob": float(np.nanmean(acc)), "warmup": warmup, "samples": samples,
              "seconds": time.perf_counter() - t_start})
