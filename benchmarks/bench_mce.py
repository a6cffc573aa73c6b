#!/usr/bin/env python
"""Side-by-side benchmark: pluggable-irl against imitation 1.0.1's tabular MCE IRL.

Both libraries run on the same random sparse MDPs (``A = 4`` actions, branching 4,
finite horizon ``H = 50``, a state reward linear in ``F = 16`` random features),
**each in its own fresh processes** (:func:`run_size`): first one process checks
that every planner backend of ours and imitation agree on the MDP; then rounds
alternate a fresh process per library and backend (ours on numba, ours on numpy,
imitation, ours on numba, ...), each reporting the median of its timed runs, so
that neither library's memory or threads disturb the other and both see the same
load. The machine's load average is recorded before and after every process.
Times are medians over rounds with their spread (interquartile range / median);
a ratio is printed only when both spreads are at most ``--max-spread``, else the
table says "noisy". For every size ``|S|`` it times

* ``svi_occ``: one soft value iteration and one occupancy pass.
  Ours: :func:`irl.planning.soft_value_iteration` + :func:`irl.planning.occupancy_measure`.
  imitation: ``mce_partition_fh`` + ``mce_occupancy_measures(pi=...)`` on the dense
  ``(S, A, S)`` transition tensor built from our sparse matrix.
* ``svi_occ_autodiff``: the same two sweeps through :func:`irl.autodiff.q_values`
  (what one MaxEnt evaluation costs): Q-values forward, then the backward pass of
  the log-partition ``sum_s d0(s) V_0(s)``, whose reward gradient is the occupancy
  (computed by the closed-form adjoint, one forward flow). The anchor time is the
  ``svi_occ`` anchor time (not re-run).
* ``maxent_fit``: a full fit to 200 demonstrations simulated from a known reward.
  Ours: ``irl.MaxEnt(hm.Boltzmann(1.0), tol=gap)`` (L-BFGS on the log-likelihood,
  stopping when its gradient per demonstration step is at most ``--gap``).
  imitation: ``MCEIRL`` with its default optimiser (Adam, lr 1e-2) and a linear
  reward net on the same features, given the same demonstrations as imitation
  ``Trajectory`` objects, stepped until its own feature-matching gap per step is
  at most ``--gap`` or the time cap is reached. See :func:`objective_gaps`.

Ours alone (imitation cannot run these: its dense transition tensor would need
``8 A S^2`` bytes, 320 GB at 10^5 states), see :func:`run_extras`:

* ``svi_occ`` at 10^5 and 10^6 states, with peak memory.
* ``svi_occ_float32``: the same pass with ``dtype=np.float32`` (at 10^3 states and
  up), and its largest relative difference from float64.
* ``svi_occ_batch32``: 32 reward hypotheses in one batched call against one
  (``batch_ratio`` = time of 32 / time of one), and ``loglik_grad_batch32``: the
  same for a log-likelihood and its gradient through :func:`irl.autodiff.soft_log_policy`
  (what a sampler with 32 chains evaluates).
* ``svi_discounted``: infinite horizon, discount 0.99: soft value iteration +
  occupancy (Newton's method with Krylov or sparse LU solves) against our own
  plain value iteration (``vi_only_s``), which needs ~2300 sweeps.

Before any timing, both libraries' outputs are compared on the same
MDP (:func:`compare_with_imitation`); the benchmark stops if they disagree.
With numba installed, ``numba_compile`` reports the seconds to the first result
in a fresh process with an empty kernel cache (compilation) and with a warm one.
Every case that has a target carries it (``target_s`` or
``target_batch_ratio``) and ``meets_target``.

Output: one JSON line per case on stdout,
``{"case", "states", "ours_s", "anchor_s", "ratio", "peak_mb", ...}`` with
``ratio = anchor_s / ours_s`` (``null`` where imitation cannot run), then a table.
``peak_mb`` is the growth of this process's peak resident set size during one
untimed run of our code (freed heap returned with ``malloc_trim``, then Linux
``VmHWM`` reset through ``/proc/self/clear_refs`` before the run; see
:func:`peak_rss_growth`); ``anchor_peak_mb`` is the same for imitation, excluding
its dense transition tensor, whose size is ``anchor_dense_mb``.

Usage::

    python benchmarks/bench_mce.py              # every case: 100 .. 10^4 side by side, 10^5 and 10^6 ours
    python benchmarks/bench_mce.py --quick      # 100, 1000 side by side (3 rounds), 10^5 ours, batch, discounted
    python benchmarks/bench_mce.py --sizes 1000 --rounds 9 --max-spread 0.1   # more rounds, a stricter gate
    python benchmarks/bench_mce.py --sizes 500 2000 --repeat 7   # only the side-by-side cases
    python benchmarks/bench_mce.py --sizes 1000 --large 100000 --batch-states 1000

imitation is imported only inside this file, never by the library.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy
import scipy.sparse as sp
import torch

import demos
import human_models as hm
import irl
from irl import planning
from irl.autodiff import q_values
from irl.rewards import LinearReward

N_ACTIONS = 4
BRANCHING = 4
HORIZON = 50
N_FEATURES = 16
N_DEMOS = 200
DEFAULT_SIZES = (100, 1000, 3000, 10_000)
QUICK_SIZES = (100, 1000)
#: ours-only sizes (imitation's dense tensor would need 320 GB / 32 TB)
DEFAULT_LARGE = (100_000, 1_000_000)
QUICK_LARGE = (100_000,)
#: sizes of the float32 rows (among all sizes run)
FLOAT32_MIN_STATES = 1000
#: hypotheses in the batched case
N_BATCH = 32
DEFAULT_DISCOUNTED = (1000, 10_000)
QUICK_DISCOUNTED = (1000,)
DISCOUNT = 0.99
#: issue 7's targets: seconds per case and size, the batch ratio, peak memory at 10^5 states
TARGET_S = {("svi_occ", 1000): 0.002, ("svi_occ", 10_000): 0.05, ("svi_occ", 100_000): 0.5,
            ("maxent_fit", 1000): 1.0, ("maxent_fit", 10_000): 10.0}
TARGET_BATCH_RATIO = 8.0
TARGET_PEAK_MB = {100_000: 1000.0}
#: agreement required between the two libraries (float64, same MDP)
AGREE_TOL = 1e-8


# --------------------------------------------------------------------------- problems
@dataclass
class Problem:
    """One benchmark MDP with its true reward and simulated demonstrations."""

    mdp: irl.TabularMDP
    theta: np.ndarray            # (F,) true reward weights
    reward: np.ndarray           # (S,) true state reward = features @ theta
    data: Any = None             # demos.Trajectories
    extra: dict = field(default_factory=dict)


def random_mdp(n_states: int, *, seed: int = 0, n_actions: int = N_ACTIONS, branching: int = BRANCHING,
               horizon: int = HORIZON, n_features: int = N_FEATURES, discount: float = 1.0) -> Problem:
    """A random sparse MDP: each ``(s, a)`` leads to ``branching`` distinct states.

    Transition probabilities are Dirichlet(1); features are standard normal;
    the start distribution is uniform; the true weights are ``N(0, 1/F)`` so that
    the true reward of a state is roughly standard normal. Built directly in
    sparse form (no dense array), so any size fits in memory.

    Args:
        n_states: ``|S|``.
        seed: random seed (the same seed gives the same MDP).
        n_actions, branching, horizon, n_features, discount: the MDP's shape.

    Returns:
        A :class:`Problem` without demonstrations.
    """
    if branching > n_states:
        raise ValueError(f"branching must be <= n_states: got {branching} > {n_states}")
    rng = np.random.default_rng([seed, n_states])
    rows = n_states * n_actions
    succ = rng.integers(0, n_states, size=(rows, branching))
    while True:  # redraw the rows that picked a successor twice
        s = np.sort(succ, axis=1)
        dup = np.flatnonzero((np.diff(s, axis=1) == 0).any(axis=1))
        if dup.size == 0:
            break
        succ[dup] = rng.integers(0, n_states, size=(dup.size, branching))
    prob = rng.dirichlet(np.ones(branching), size=rows)
    P = sp.csr_matrix((prob.ravel(), succ.ravel(), np.arange(0, rows * branching + 1, branching)),
                      shape=(rows, n_states))
    features = rng.standard_normal((n_states, n_features))
    theta = rng.standard_normal(n_features) / np.sqrt(n_features)
    mdp = irl.TabularMDP.from_arrays(P, n_actions=n_actions, features=features, horizon=horizon,
                                     discount=discount, initial=np.full(n_states, 1.0 / n_states),
                                     name=f"random-{n_states}")
    return Problem(mdp=mdp, theta=theta, reward=features @ theta)


def with_demos(problem: Problem, n: int = N_DEMOS, *, seed: int = 0) -> Problem:
    """Simulate ``n`` Boltzmann(1) demonstrations from the true reward (in place)."""
    problem.data = demos.simulate(problem.mdp, hm.Boltzmann(1.0), problem.reward, n=n, seed=seed)
    return problem


# --------------------------------------------------------------------------- imitation
def imitation_available() -> str | None:
    """``None`` if imitation can be imported, else the reason it cannot."""
    try:
        import imitation.algorithms.mce_irl  # noqa: F401
        import seals.base_envs  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the environment
        return f"imitation is not importable ({type(exc).__name__}: {exc}); pip install -e '.[imitation]'"
    return None


def dense_bytes(n_states: int, n_actions: int = N_ACTIONS) -> int:
    """Bytes of imitation's dense float64 ``(S, A, S)`` transition tensor."""
    return n_states * n_actions * n_states * 8


def imitation_env(problem: Problem) -> Any:
    """imitation/seals ``TabularModelPOMDP`` with the dense form of our MDP.

    Observations are our features, the reward matrix the true state reward,
    the start distribution ours; discount is passed to imitation's functions.
    """
    from seals.base_envs import TabularModelPOMDP

    mdp = problem.mdp
    if mdp.terminal is not None and mdp.terminal.any():
        raise ValueError("imitation's finite-horizon model has no terminal states; use an MDP without them")
    T = mdp.dense_transitions(max_states=mdp.n_states)
    return TabularModelPOMDP(transition_matrix=T, observation_matrix=np.array(mdp.features),
                             reward_matrix=np.array(problem.reward), horizon=mdp.horizon,
                             initial_state_dist=np.array(mdp.initial))


def imitation_pass(env: Any, reward: np.ndarray, discount: float = 1.0) -> tuple:
    """imitation's soft value iteration and occupancy pass: ``(V, Q, pi, D, Dcum)``."""
    from imitation.algorithms.mce_irl import mce_occupancy_measures, mce_partition_fh

    V, Q, pi = mce_partition_fh(env, reward=reward, discount=discount)
    D, Dcum = mce_occupancy_measures(env, reward=reward, pi=pi, discount=discount)
    return V, Q, pi, D, Dcum


def ours_pass(mdp: irl.TabularMDP, reward: np.ndarray) -> tuple:
    """Our soft value iteration and occupancy pass: ``(PlanningResult, occupancy (H, S, A))``."""
    res = planning.soft_value_iteration(mdp, reward)
    return res, planning.occupancy_measure(mdp, res.policy)


def autodiff_pass(mdp: irl.TabularMDP, reward: np.ndarray) -> torch.Tensor:
    """One soft value iteration and one occupancy pass through :func:`irl.autodiff.q_values`.

    Forward: soft Q-values for all ``t``. Backward of the log-partition
    ``L = sum_s d0(s) V_0(s)`` (``V_0 = logsumexp_a Q_0``): its gradient with respect
    to the ``(S, A)`` reward is the soft-optimal policy's occupancy summed over
    time, ``sum_t P(s_t = s, a_t = a)``, computed by the closed-form adjoint (one
    forward flow), not by unrolled autograd. The same two sweeps as one MaxEnt
    log-likelihood-and-gradient evaluation.
    """
    r = torch.tensor(np.broadcast_to(reward[:, None], (mdp.n_states, mdp.n_actions)), dtype=torch.float64,
                     requires_grad=True)
    q = q_values(mdp, r)
    log_z = (torch.tensor(np.array(mdp.initial)) * torch.logsumexp(q[0], dim=-1)).sum()
    log_z.backward()
    return r.grad


def compare_with_imitation(problem: Problem, env: Any = None, *, ours: tuple | None = None,
                           anchor: tuple | None = None, grad: torch.Tensor | None = None) -> dict[str, float]:
    """Largest absolute differences between our and imitation's pass on the same MDP.

    The exact relation (finite horizon ``H``, discount ``gamma``, state reward ``r``):

    * imitation's ``Q[t]``, ``V[t]``, ``pi[t]`` for ``t = 0..H-1`` are ours
      (``Q_{H-1} = r``, i.e. our ``V_H = 0``); our ``v`` has the extra row ``V_H = 0``.
    * imitation's ``D`` has ``H + 1`` rows of *undiscounted* state probabilities
      ``P(s_t = s)``, ``t = 0..H``; our occupancy is ``(H, S, A)`` with
      ``gamma^t P(s_t = s, a_t = a)``, ``t = 0..H-1`` (no action, no reward at ``t = H``).
      So ``ours.sum(-1)[t] = gamma^t D[t]`` for ``t < H``, and ``D[H]`` is one more
      push-forward of our last row.
    * imitation's ``Dcum = sum_{t=0..H} gamma^t D[t]`` counts ``H + 1`` states; ours
      counts ``H``: ``Dcum = ours.sum((0, 2)) + gamma^H D[H]``.
    * The autodiff gradient of the log-partition (:func:`autodiff_pass`), summed
      over actions, is ``sum_{t<H} gamma^t D[t] = Dcum - gamma^H D[H]``.

    Args:
        problem: the problem (its ``mdp`` and true ``reward`` are used).
        env: imitation environment (built when omitted).
        ours: precomputed :func:`ours_pass` output (computed when omitted).
        anchor: precomputed :func:`imitation_pass` output (computed when omitted).
        grad: optional :func:`autodiff_pass` gradient ``(S, A)`` to check as well.

    Returns:
        ``{quantity: max |difference|}``; ``q``/``v`` are relative to ``max(1, |Q|)``.
    """
    mdp, r = problem.mdp, problem.reward
    H, g = mdp.horizon, mdp.discount
    env = imitation_env(problem) if env is None else env
    res, occ = ours_pass(mdp, r) if ours is None else ours
    V, Q, pi, D, Dcum = imitation_pass(env, r, g) if anchor is None else anchor
    disc = g ** np.arange(H + 1)
    d_state = occ.sum(-1)                                        # (H, S), discounted
    d_last = g * np.asarray(mdp.continuation_T @ occ[H - 1].ravel()).ravel()  # gamma^H P(s_H = s)
    scale = max(1.0, float(np.abs(Q).max()))
    out = {
        "q": float(np.abs(res.q - Q).max()) / scale,
        "v": float(np.abs(res.v[:H] - V).max()) / scale,
        "v_final_row_zero": float(np.abs(res.v[H]).max()),
        "policy": float(np.abs(res.policy - pi).max()),
        "occupancy_t<H": float(np.abs(d_state - disc[:H, None] * D[:H]).max()),
        "occupancy_t=H": float(np.abs(d_last - disc[H] * D[H]).max()),
        "occupancy_cum": float(np.abs(d_state.sum(0) + d_last - Dcum).max()),
    }
    if grad is not None:
        g_state = grad.detach().numpy().sum(axis=-1)
        out["autodiff_occupancy"] = float(np.abs(g_state - (Dcum - disc[H] * D[H])).max())
    return out


def assert_agreement(diffs: dict[str, float], tol: float = AGREE_TOL) -> None:
    """Raise ``AssertionError`` naming every quantity that differs by more than ``tol``."""
    bad = {k: v for k, v in diffs.items() if not v <= tol}
    if bad:
        raise AssertionError(f"ours and imitation disagree by more than {tol:g}: {bad}")


# --------------------------------------------------------------------------- gaps
def objective_gaps(problem: Problem, theta: np.ndarray) -> dict[str, float]:
    """How far reward weights ``theta`` are from each library's optimum, per demonstration step.

    Each number is the largest component (over the ``F`` features) of the
    gradient of one library's objective, divided by the number of steps it counts:

    * ``ours``: our MaxEnt objective, the log-likelihood of the demonstrated
      actions under the Boltzmann(1) policy, ``sum_i sum_{t<H} log pi_t(a_t | s_t)``,
      divided by ``n * H``. L-BFGS stops when it is at most ``tol``.
    * ``imitation``: imitation's MCE IRL gradient, the demonstrations' mean
      feature counts over their ``H + 1`` observed states minus the soft-optimal
      policy's expected counts over ``t = 0..H`` from the MDP's start distribution,
      divided by ``H + 1``.

    Both vanish at the true reward in expectation; with finite data they differ
    (the likelihood conditions on the observed start states and transitions,
    feature matching does not), so the two optima are close but not equal.
    """
    mdp, data = problem.mdp, problem.data
    phi = np.asarray(mdp.features)
    S, H, n = mdp.n_states, mdp.horizon, len(data)
    th = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    ll = irl.Evidence(mdp, data, hm.Boltzmann(1.0)).log_likelihood(LinearReward.from_mdp(mdp)(th))
    ll.backward()
    ours = float(th.grad.abs().max()) / float(data.lengths.sum())
    res = planning.soft_value_iteration(mdp, phi @ theta)
    occ = planning.occupancy_measure(mdp, res.policy)
    e_states = occ.sum(axis=(0, 2)) + mdp.discount * np.asarray(mdp.continuation_T @ occ[-1].ravel()).ravel()
    d_states = (data.counts(S, mdp.n_actions).sum(axis=-1) + np.bincount(data.final_states, minlength=S)) / n
    return {"ours": ours, "imitation": float(np.abs((d_states - e_states) @ phi).max()) / (H + 1)}


# --------------------------------------------------------------------------- measuring
def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0])  # kB
    return out


def _can_reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        _status()
        return True
    except OSError:
        return False


_PEAK_OK = _can_reset_peak() if sys.platform.startswith("linux") else False


def _malloc_trim() -> Callable[[], None]:
    """glibc's ``malloc_trim(0)`` (hands freed heap pages back to the kernel), or a no-op."""
    try:
        import ctypes

        fn = ctypes.CDLL("libc.so.6").malloc_trim
        fn.argtypes = [ctypes.c_size_t]
        return lambda: None if fn(0) is None else None
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return lambda: None


_TRIM = _malloc_trim()


def peak_rss_growth(fn: Callable[[], Any]) -> tuple[Any, float | None, float]:
    """Run ``fn`` once: ``(result, peak RSS growth in MB or None, seconds)``.

    The planner's idle result buffers are released and freed heap memory is
    handed back to the kernel (glibc ``malloc_trim``),
    so that memory the allocator reuses has to be faulted in again and is counted;
    then the peak resident set size (``VmHWM``) is reset to the current RSS. The
    growth is the most memory the call held above what the process already had
    (numpy, scipy and torch allocations alike). ``None`` where the kernel offers
    no reset (not Linux).
    """
    gc.collect()
    planning.release_buffers()  # a cold run: no recycled result buffers (see irl.planning.release_buffers)
    _TRIM()
    before = None
    if _PEAK_OK:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        before = _status()["VmRSS"]
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = None if before is None else max(0.0, (_status()["VmHWM"] - before) / 1024.0)
    return out, peak, dt


@dataclass
class Timing:
    seconds: float          # median
    runs: int
    peak_mb: float | None
    result: Any
    cold_s: float = float("nan")  # the untimed first run (fresh memory, no recycled buffers)
    min_s: float = float("nan")   # fastest timed run (least disturbed by other work on the machine)


def measure(fn: Callable[[], Any], *, repeat: int, budget: float) -> Timing:
    """timeit-style: one untimed warm-up run (which gives the peak memory), then up to
    ``repeat`` timed runs with the garbage collector off, stopping early once
    ``budget`` seconds are spent; the median is reported. A warm-up longer than the
    budget is itself the only sample (``runs = 1``)."""
    result, peak, first = peak_rss_growth(fn)
    if first >= budget:
        return Timing(first, 1, peak, result, first, first)
    times: list[float] = []
    spent = first
    for _ in range(max(1, repeat)):
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            result = fn()
            dt = time.perf_counter() - t0
        finally:
            gc.enable()
        times.append(dt)
        spent += dt
        if spent >= budget:
            break
    return Timing(statistics.median(times), len(times), peak, result, first, min(times))


# --------------------------------------------------------------------------- fits
def fit_ours(problem: Problem, gap: float) -> dict[str, Any]:
    """``irl.MaxEnt(hm.Boltzmann(1.0))`` with L-BFGS, stopping at per-step gap ``gap``."""
    est = irl.MaxEnt(hm.Boltzmann(1.0), tol=gap).fit(problem.mdp, problem.data)
    return {"theta": np.asarray(est.theta), "iterations": len(est.history),
            "evaluations": int(est.info["evaluations"]), "converged": bool(est.converged)}


def fit_imitation(problem: Problem, env: Any, gap: float, cap_s: float, *, max_iter: int = 100_000
                  ) -> dict[str, Any]:
    """imitation's ``MCEIRL`` (default Adam, lr 1e-2) with a linear reward net.

    The reward net is ``BasicRewardNet`` on the state observation (our features)
    with no hidden layer (``Linear(F, 1)`` with a bias, which does not change a
    finite-horizon policy), initialised at zero like ours. The demonstrations
    are ours, converted to imitation ``Trajectory`` objects (MCEIRL counts their
    ``H + 1`` observed states). Steps are ``MCEIRL._train_step`` — the body of
    ``MCEIRL.train`` — driven here so that it stops when its own gap (imitation's
    gradient per step, see :func:`objective_gaps`) reaches the same target as
    ours, and so that the run can be capped: no step
    is started that would end after ``cap_s`` seconds (estimated from the last one).
    The returned weights are those whose occupancy met (or last measured) the gap,
    i.e. before the final Adam step, as ``MCEIRL.train`` returns that policy too.
    """
    from imitation.algorithms.mce_irl import MCEIRL
    from imitation.data import types as itypes
    from imitation.rewards.reward_nets import BasicRewardNet
    from imitation.util import logger as ilogger

    mdp = problem.mdp
    trajs = [itypes.Trajectory(obs=np.asarray(tr.states), acts=np.asarray(tr.actions), infos=None, terminal=True)
             for tr in problem.data]
    phi = np.asarray(mdp.features)
    with tempfile.TemporaryDirectory(prefix="bench-imitation-") as logdir:
        t0 = time.perf_counter()
        net = BasicRewardNet(env.observation_space, env.action_space, use_action=False, hid_sizes=[])
        with torch.no_grad():
            for p in net.parameters():
                p.zero_()
        algo = MCEIRL(trajs, env, net, rng=np.random.default_rng(0), log_interval=None,
                      custom_logger=ilogger.configure(logdir, format_strs=[]))
        obs = torch.as_tensor(env.observation_matrix, dtype=net.dtype, device=net.device)
        lin = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][0]
        it, capped, own_gap, last = 0, False, float("inf"), 0.0
        w = lin.weight.detach().double().numpy().ravel().copy()
        while it < max_iter:
            elapsed = time.perf_counter() - t0
            if it > 0 and elapsed + last > cap_s:
                capped = True
                break
            ts = time.perf_counter()
            w_before = lin.weight.detach().double().numpy().ravel().copy()
            _, visits = algo._train_step(obs)  # occupancy at w_before, then one Adam step
            it += 1
            own_gap = float(np.abs((visits - algo.demo_state_om) @ phi).max()) / (mdp.horizon + 1)
            w = w_before
            last = time.perf_counter() - ts
            if own_gap <= gap:
                break
        seconds = time.perf_counter() - t0
    # the weights whose occupancy was last measured (imitation's train() also returns that policy)
    return {"theta": w, "iterations": it, "seconds": seconds, "capped": capped, "own_gap": own_gap}


# --------------------------------------------------------------------------- cases
def _ratio(anchor: float | None, ours: float) -> float | None:
    return None if anchor is None or ours <= 0 else anchor / ours


def _r(x: float | None, nd: int = 6) -> float | None:
    return None if x is None else float(f"{x:.{nd}g}")


def warm_up(anchor: bool) -> None:
    """Run every code path once on a tiny MDP, so that one-time costs (lazy imports,
    first-call initialisation of torch, scipy and imitation) are charged to no case;
    also checks agreement there."""
    prob = with_demos(random_mdp(20, seed=12345), n=10, seed=1)
    res = ours_pass(prob.mdp, prob.reward)
    grad = autodiff_pass(prob.mdp, prob.reward)
    float32_pass(prob.mdp, prob.reward)
    loglik_grad(prob, batch_rewards(prob, 2))
    disc = random_mdp(20, seed=12345, horizon=None, discount=DISCOUNT)
    ours_pass(disc.mdp, disc.reward)
    fit_ours(prob, 1e-3)
    objective_gaps(prob, np.zeros(N_FEATURES))
    if anchor:
        env = imitation_env(prob)
        assert_agreement(compare_with_imitation(prob, env, ours=res, grad=grad))
        fit_imitation(prob, env, 1e-3, cap_s=60.0, max_iter=3)


# --------------------------------------------------------------------------- isolation
#: marks the one result line a worker prints on stdout
WORKER_MARK = "BENCH_WORKER_RESULT "
#: a ratio is printed only when both sides' spread (interquartile range / median over rounds) is at most this
MAX_SPREAD = 0.15


def load_1min() -> float | None:
    """The machine's 1-minute load average (``None`` where the platform has none)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def spread_stats(samples: list[float]) -> dict[str, Any]:
    """Median, relative interquartile range (IQR / median), fastest and count of timing samples."""
    a = np.asarray(samples, dtype=np.float64)
    med = float(np.median(a))
    q1, q3 = np.percentile(a, [25, 75])
    spread = None if a.size < 2 else (float((q3 - q1) / med) if med > 0 else float("inf"))
    return {"median": med, "spread": spread, "min": float(a.min()), "n": int(a.size)}


def gated_ratio(ours: dict[str, Any], anchor: dict[str, Any], max_spread: float = MAX_SPREAD
                ) -> tuple[float | None, str | None]:
    """``(anchor median / ours median, None)`` when both spreads are small, else ``(None, why it is noisy)``.

    A spread needs at least two samples (fresh processes); with one, it is unknown and so is the ratio.
    """
    if ours["n"] < 2 or anchor["n"] < 2:
        return None, f"noisy: {min(ours['n'], anchor['n'])} sample(s), spread unknown"
    if ours["spread"] > max_spread or anchor["spread"] > max_spread:
        return None, (f"noisy: spread (IQR/median) ours {ours['spread']:.0%}, imitation {anchor['spread']:.0%}"
                      f" > {max_spread:.0%}")
    return anchor["median"] / ours["median"], None


def spawn(spec: dict[str, Any], *, env: dict[str, str] | None = None, timeout: float = 3600.0) -> dict[str, Any]:
    """Run :func:`run_worker` on ``spec`` in a fresh interpreter; its result, with the load before and after."""
    before = load_1min()
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                         capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith(WORKER_MARK)]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark worker {spec} failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    res = json.loads(lines[-1][len(WORKER_MARK):])
    res["load_before"], res["load_after"] = before, load_1min()
    return res


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One library's measurements in this (fresh) process; ``spec`` says which.

    ``spec["lib"]``: ``"ours"`` (cases ``svi_occ``, ``svi_occ_autodiff``, ``maxent_fit`` on
    ``spec["backend"]``), ``"imitation"`` (``svi_occ``, ``maxent_fit``), ``"check"``
    (the agreement check: every backend of ours against the others and against imitation,
    raising if they disagree) or ``"compile"`` (seconds to the first planner result on a
    tiny MDP: numba's compilation, or its cache load when the cache is warm).
    Each timed case starts with an untimed run (its peak memory, ``cold_s``), after a
    warm-up of the same code on a 20-state MDP (``setup_s``: lazy imports, compilation).
    """
    torch.set_num_threads(spec.get("torch_threads") or torch.get_num_threads())
    lib, out = spec["lib"], {}
    if lib == "compile":
        t0 = time.perf_counter()
        planning.set_backend(spec["backend"])
        tiny = random_mdp(20, seed=12345)
        t1 = time.perf_counter()
        ours_pass(tiny.mdp, tiny.reward)
        t2 = time.perf_counter()
        float32_pass(tiny.mdp, tiny.reward)
        planning.value_iteration(tiny.mdp, tiny.reward)
        t3 = time.perf_counter()
        return {"backend": planning.backend(), "import_s": t1 - t0, "first_pass_s": t2 - t1,
                "other_kernels_s": t3 - t2}
    if lib in ("ours", "check"):
        planning.set_backend(spec.get("backend") or "auto")
    prob = random_mdp(spec["states"], seed=spec["seed"])
    if "maxent_fit" in spec.get("cases", ()):
        with_demos(prob, seed=spec["seed"] + 1)
    mdp, r = prob.mdp, prob.reward
    if lib == "check":
        results = {}
        for backend in spec["backends"]:
            planning.set_backend(backend)
            results[backend] = (ours_pass(mdp, r), autodiff_pass(mdp, r))
        first = results[spec["backends"][0]]
        for backend, (res, grad) in results.items():  # our backends against each other, relative to max(1, |x|)
            scale = max(1.0, float(np.abs(first[0][0].q).max()))
            diff = max(float(np.abs(res[0].q - first[0][0].q).max()) / scale,
                       float(np.abs(res[0].policy - first[0][0].policy).max()),
                       float(np.abs(res[1] - first[0][1]).max()), float((grad - first[1]).abs().max()))
            if not diff <= 1e-12:
                raise AssertionError(f"backends {backend} and {spec['backends'][0]} differ by {diff:.3g} > 1e-12")
            out[f"diff_{backend}"] = diff
        if spec.get("anchor"):
            env = imitation_env(prob)
            for backend, (res, grad) in results.items():
                diffs = compare_with_imitation(prob, env, ours=res, grad=grad)
                assert_agreement(diffs)
                out[f"max_abs_diff_{backend}"] = max(diffs.values())
        return out
    tiny = with_demos(random_mdp(20, seed=12345), n=10, seed=1)
    t0 = time.perf_counter()
    if lib == "ours":
        ours_pass(tiny.mdp, tiny.reward)
        autodiff_pass(tiny.mdp, tiny.reward)
        if "maxent_fit" in spec["cases"]:
            fit_ours(tiny, 1e-3)
        fns = {"svi_occ": lambda: ours_pass(mdp, r), "svi_occ_autodiff": lambda: autodiff_pass(mdp, r),
               "maxent_fit": lambda: fit_ours(prob, spec["gap"])}
        out["backend"] = planning.backend()
    else:
        tenv = imitation_env(tiny)
        imitation_pass(tenv, tiny.reward)
        if "maxent_fit" in spec["cases"]:
            fit_imitation(tiny, tenv, 1e-3, cap_s=60.0, max_iter=3)
        env = imitation_env(prob)
        fns = {"svi_occ": lambda: imitation_pass(env, r)}
    out["setup_s"] = time.perf_counter() - t0
    for case in spec["cases"]:
        if lib == "imitation" and case == "maxent_fit":  # one capped run: its own clock
            fi, peak, _ = peak_rss_growth(lambda: fit_imitation(prob, env, spec["gap"], spec["anchor_cap"]))
            out[case] = {"seconds": fi["seconds"], "runs": 1, "peak_mb": peak,
                         "fit": {**fi, "theta": np.asarray(fi["theta"]).tolist()}}
            continue
        t = measure(fns[case], repeat=spec["repeat"], budget=spec["budget"])
        out[case] = {"seconds": t.seconds, "min_s": t.min_s, "cold_s": t.cold_s, "runs": t.runs, "peak_mb": t.peak_mb}
        if case == "maxent_fit":
            out[case]["fit"] = {**t.result, "theta": np.asarray(t.result["theta"]).tolist()}
    return out


def compile_record(log: Callable[[str], None]) -> dict[str, Any] | None:
    """Seconds numba needs to compile the kernels (fresh cache) and to load them (warm cache), in fresh processes."""
    if importlib.util.find_spec("numba") is None:
        return None
    with tempfile.TemporaryDirectory(prefix="bench-numba-cache-") as cache:
        log("numba: compiling the planner kernels into an empty cache, then loading them from it")
        cold = spawn({"lib": "compile", "backend": "numba"}, env={"NUMBA_CACHE_DIR": cache})
        warm = spawn({"lib": "compile", "backend": "numba"}, env={"NUMBA_CACHE_DIR": cache})
    return {"case": "numba_compile", "states": 20, "backend": "numba", "ours_s": _r(cold["first_pass_s"]),
            "anchor_s": None, "ratio": None, "peak_mb": None, "compile_s": _r(cold["first_pass_s"]),
            "compile_other_s": _r(cold["other_kernels_s"]), "cache_load_s": _r(warm["first_pass_s"]),
            "import_s": _r(warm["import_s"]), "load_range": [cold["load_before"], warm["load_after"]],
            "anchor_note": "first call in a fresh process: compile (empty cache) / cache load (warm cache)"}


def run_size(n_states: int, args: argparse.Namespace, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """All side-by-side cases for one ``|S|``, each library in its own fresh processes; one record per case.

    First the agreement check (one process: every backend of ours and imitation on the
    same MDP; the run stops if they disagree). Then ``args.rounds`` rounds, each
    spawning a fresh process per library and backend in turn (ours, ..., imitation,
    ours, ...), so that both see the same load and never each other's memory; each
    process reports the median of its timed runs, and the rounds' medians give the
    median and its spread. Fits: ``args.fit_rounds`` rounds the same way.
    """
    reason = None if importlib.util.find_spec("imitation") is not None else \
        "imitation is not installed; pip install -e '.[imitation]'"
    need = dense_bytes(n_states)
    if reason is None and need > args.anchor_max_gb * 1e9:
        reason = (f"imitation needs a dense (S, A, S) float64 tensor of {need / 1e9:.1f} GB "
                  f"> --anchor-max-gb {args.anchor_max_gb:g}")
    anchor = reason is None
    common = {"states": n_states, "seed": args.seed, "repeat": args.repeat, "budget": args.budget,
              "gap": args.gap, "anchor_cap": args.anchor_cap, "torch_threads": args.torch_threads}
    log(f"|S| = {n_states}: agreement check ({', '.join(args.backends)}{' and imitation' if anchor else ''})")
    check = spawn({**common, "lib": "check", "backends": args.backends, "anchor": anchor})
    base = {"states": n_states, "actions": N_ACTIONS, "branching": BRANCHING, "horizon": HORIZON,
            "features": N_FEATURES}
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    loads: list[float] = [x for x in (check["load_before"], check["load_after"]) if x is not None]

    def run(lib: str, backend: str | None, cases: list[str]) -> None:
        res = spawn({**common, "lib": lib, "backend": backend, "cases": cases})
        loads.extend(x for x in (res["load_before"], res["load_after"]) if x is not None)
        for case in cases:
            samples.setdefault((case, backend or lib), []).append({**res[case], "setup_s": res["setup_s"]})

    for k in range(args.rounds):
        log(f"  round {k + 1}/{args.rounds}: svi_occ, svi_occ_autodiff: "
            + ", ".join(f"ours ({b})" for b in args.backends) + (", imitation" if anchor else ""))
        for backend in args.backends:
            run("ours", backend, ["svi_occ", "svi_occ_autodiff"])
        if anchor:
            run("imitation", None, ["svi_occ"])
    for k in range(args.fit_rounds):
        log(f"  fit round {k + 1}/{args.fit_rounds}: ours ({args.backends[0]})"
            + (f", imitation (capped at {args.anchor_cap:g} s)" if anchor else ""))
        run("ours", args.backends[0], ["maxent_fit"])
        if anchor:
            run("imitation", None, ["maxent_fit"])

    def stats(case: str, who: str) -> dict[str, Any]:
        return spread_stats([x["seconds"] for x in samples[(case, who)]])

    records = []
    load_range = [min(loads), max(loads)] if loads else None
    a_stats = stats("svi_occ", "imitation") if anchor else None
    for case in ("svi_occ", "svi_occ_autodiff", "maxent_fit"):
        for backend in (args.backends if case != "maxent_fit" else args.backends[:1]):
            o = stats(case, backend)
            first = samples[(case, backend)][0]
            rec = {"case": case, **base, "backend": backend, "ours_s": _r(o["median"]), "ours_spread": _r(o["spread"], 3),
                   "ours_min_s": _r(o["min"]), "rounds": o["n"], "anchor_s": None, "ratio": None,
                   "peak_mb": _r(first.get("peak_mb"), 4), "setup_s": _r(statistics.median(
                       x["setup_s"] for x in samples[(case, backend)])), "load_range": load_range}
            if case == "svi_occ":
                rec["ours_cold_s"] = _r(statistics.median(x["cold_s"] for x in samples[(case, backend)]))
            if case == "maxent_fit":
                fo = first["fit"]
                rec.update(demos=N_DEMOS, target_gap=args.gap, ours_iterations=fo["iterations"],
                           ours_evaluations=fo["evaluations"])
            if anchor:
                a = a_stats if case != "maxent_fit" else stats(case, "imitation")
                ratio, noisy = gated_ratio(o, a, args.max_spread)
                rec.update(anchor_s=_r(a["median"]), anchor_spread=_r(a["spread"], 3), anchor_rounds=a["n"],
                           ratio=_r(ratio, 4), noisy=noisy is not None, anchor_dense_mb=_r(need / 1e6, 4),
                           max_abs_diff=_r(check[f"max_abs_diff_{backend}"], 3))
                if noisy:
                    rec["noise_note"] = noisy
                if case == "svi_occ":
                    rec["anchor_peak_mb"] = _r(samples[("svi_occ", "imitation")][0].get("peak_mb"), 4)
                if case == "svi_occ_autodiff":
                    rec["anchor_note"] = "anchor = the svi_occ imitation time"
            else:
                rec["anchor_note"] = reason
            records.append(rec)
    # the fits: how far each library's answer is from each objective's optimum (computed here, ours)
    fit_rec = records[-1]
    prob = with_demos(random_mdp(n_states, seed=args.seed), seed=args.seed + 1)
    fo = samples[("maxent_fit", args.backends[0])][0]["fit"]
    gaps_o = objective_gaps(prob, np.asarray(fo["theta"]))
    fit_rec["ours_gap"] = _r(gaps_o["ours"], 3)
    if anchor:
        fi = samples[("maxent_fit", "imitation")][0]["fit"]
        gaps_i = objective_gaps(prob, np.asarray(fi["theta"]))
        fit_rec.update(anchor_iterations=fi["iterations"], anchor_iter_s=_r(fi["seconds"] / max(1, fi["iterations"]), 4),
                       anchor_gap=_r(gaps_i["imitation"], 3), anchor_capped=fi["capped"],
                       anchor_gap_ours_objective=_r(gaps_i["ours"], 3),
                       ours_gap_anchor_objective=_r(gaps_o["imitation"], 3),
                       anchor_peak_mb=_r(samples[("maxent_fit", "imitation")][0].get("peak_mb"), 4),
                       theta_max_diff=_r(float(np.abs(np.asarray(fo["theta"]) - np.asarray(fi["theta"])).max()), 3),
                       theta_true_max_diff_ours=_r(float(np.abs(np.asarray(fo["theta"]) - prob.theta).max()), 3),
                       theta_true_max_diff_anchor=_r(float(np.abs(np.asarray(fi["theta"]) - prob.theta).max()), 3))
        if any(x["fit"]["capped"] for x in samples[("maxent_fit", "imitation")]):
            fit_rec["anchor_note"] = "capped: anchor_s and ratio are lower bounds"
    return records


# --------------------------------------------------------------------------- ours only
def _f32_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference of float32 ``a`` from float64 ``b``, relative to ``max(1, |b|)``."""
    return float(np.max(np.abs(np.asarray(a, np.float64) - b) / np.maximum(1.0, np.abs(b))))


def float32_pass(mdp: irl.TabularMDP, reward: np.ndarray) -> tuple:
    """:func:`ours_pass` in float32."""
    res = planning.soft_value_iteration(mdp, reward, dtype=np.float32)
    return res, planning.occupancy_measure(mdp, res.policy, dtype=np.float32)


def batch_rewards(problem: Problem, n: int = N_BATCH, *, seed: int = 0) -> np.ndarray:
    """``n`` reward hypotheses ``(n, S, A)`` (state rewards linear in the problem's features, weights
    ``N(0, I/F)``, the same for every action); the first is the true reward."""
    rng = np.random.default_rng([seed, 32])
    thetas = rng.standard_normal((n, N_FEATURES)) / np.sqrt(N_FEATURES)
    thetas[0] = problem.theta
    r = thetas @ np.asarray(problem.mdp.features).T
    return np.ascontiguousarray(np.broadcast_to(r[:, :, None], r.shape + (problem.mdp.n_actions,)))


def loglik_grad(problem: Problem, reward: np.ndarray) -> np.ndarray:
    """Log-likelihood of the demonstrations under Boltzmann(1) for a reward ``([B,] S, A)`` and its gradient
    (summed over hypotheses): what one evaluation of a sampler with ``B`` chains costs."""
    r = torch.tensor(reward, dtype=torch.float64, requires_grad=True)
    ll = irl.Evidence(problem.mdp, problem.data, hm.Boltzmann(1.0)).log_likelihood(r)
    ll.sum().backward()
    return r.grad.numpy()


class _value_iteration_only:
    """Context manager: the planner's infinite-horizon solver without Newton's method."""

    def __enter__(self) -> None:
        self.saved = planning.values._VI_SWEEPS
        planning.values._VI_SWEEPS = 10**12

    def __exit__(self, *exc: Any) -> None:
        planning.values._VI_SWEEPS = self.saved


def prime(mdp: irl.TabularMDP) -> float:
    """Build the MDP's cached action-major transition operator (once per MDP, as in a fit's first
    evaluation) so that it is charged to no timed run; returns the seconds it took. Below 10^6 states
    the untimed first run of each case does this anyway; at 10^6 that run is the only sample."""
    t0 = time.perf_counter()
    planning._ops(mdp).P  # noqa: B018 - the property builds and caches the operator
    return time.perf_counter() - t0


def interleaved(fns: dict[str, Callable[[], Any]], *, rounds: int, repeat: int) -> dict[str, list[float]]:
    """In this process: ``rounds`` rounds, each running every function ``repeat`` times in turn; per function
    and round the median run (so that a burst of load hits all of them alike)."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times = []
            for _ in range(max(1, repeat)):
                gc.collect()
                gc.disable()
                try:
                    t0 = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - t0)
                finally:
                    gc.enable()
            out[name].append(statistics.median(times))
    return out


def run_extras(args: argparse.Namespace, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """The ours-only cases: large sizes, float32, batched hypotheses, discounted infinite horizon."""
    records: list[dict[str, Any]] = []
    base = {"actions": N_ACTIONS, "branching": BRANCHING, "horizon": HORIZON, "features": N_FEATURES}
    note = "imitation: not runnable (dense (S, A, S) tensor of {gb:.3g} GB)"
    f32_sizes = sorted({n for n in list(args.sizes) + list(args.large) if n >= FLOAT32_MIN_STATES}) \
        if args.float32 else []
    for n in sorted(set(args.large) | set(f32_sizes)):
        prob = random_mdp(n, seed=args.seed)
        mdp = prob.mdp
        log(f"|S| = {n}: {mdp!r} (ours only)")
        setup_s = prime(mdp)
        ref = None
        if n in args.large:
            log("  svi_occ: ours")
            t = measure(lambda: ours_pass(mdp, prob.reward), repeat=args.repeat, budget=args.budget)
            records.append({"case": "svi_occ", "states": n, **base, "ours_s": _r(t.seconds), "anchor_s": None,
                            "ratio": None, "peak_mb": _r(t.peak_mb, 4), "runs": t.runs, "ours_cold_s": _r(t.cold_s),
                            "ours_min_s": _r(t.min_s), "setup_s": _r(setup_s),
                            "anchor_note": note.format(gb=dense_bytes(n) / 1e9)})
            ref = t.result if n <= 100_000 else None
            del t
        if n in f32_sizes:
            log("  svi_occ_float32: ours")
            t = measure(lambda: float32_pass(mdp, prob.reward), repeat=args.repeat, budget=args.budget)
            if ref is None and n <= 100_000:
                ref = ours_pass(mdp, prob.reward)
            diff = None if ref is None else max(_f32_diff(t.result[0].q, ref[0].q), _f32_diff(t.result[1], ref[1]))
            records.append({"case": "svi_occ_float32", "states": n, **base, "ours_s": _r(t.seconds),
                            "anchor_s": None, "ratio": None, "peak_mb": _r(t.peak_mb, 4), "runs": t.runs,
                            "ours_cold_s": _r(t.cold_s), "ours_min_s": _r(t.min_s),
                            "max_rel_diff_float64": _r(diff, 3), "anchor_note": "ours only"})
            del t
        del ref, prob, mdp
        gc.collect()

    if args.batch_states:
        n = args.batch_states
        prob = with_demos(random_mdp(n, seed=args.seed), seed=args.seed + 1)
        mdp = prob.mdp
        R = batch_rewards(prob, seed=args.seed)
        for backend in args.backends:
            planning.set_backend(backend)
            log(f"|S| = {n}: {N_BATCH} reward hypotheses in one call against one ({backend}, "
                f"{args.rounds} interleaved rounds)")
            for case, fn in ((f"svi_occ_batch{N_BATCH}", ours_pass), (f"loglik_grad_batch{N_BATCH}",
                                                                      lambda m, r: loglik_grad(prob, r))):
                one_r, many_r, diff = fn(mdp, R[0]), fn(mdp, R), None
                one_out = one_r[1] if isinstance(one_r, tuple) else one_r
                many_out = many_r[1][0] if isinstance(many_r, tuple) else many_r[0]
                diff = float(np.abs(many_out - one_out).max())
                t = interleaved({"one": lambda: fn(mdp, R[0]), "many": lambda: fn(mdp, R)}, rounds=args.rounds,
                                repeat=args.repeat)
                one, many = spread_stats(t["one"]), spread_stats(t["many"])
                ratio = many["median"] / one["median"]
                noisy = one["n"] < 2 or max(one["spread"], many["spread"]) > args.max_spread
                records.append({"case": case, "states": n, **base, "batch": N_BATCH, "backend": backend,
                                "ours_s": _r(many["median"]), "ours_spread": _r(many["spread"], 3),
                                "anchor_s": None, "ratio": None, "peak_mb": None, "rounds": many["n"],
                                "single_s": _r(one["median"]), "single_spread": _r(one["spread"], 3),
                                "batch_ratio": _r(ratio, 4), "batch_ratio_min": _r(many["min"] / one["min"], 4),
                                "noisy": noisy, "per_hypothesis_s": _r(many["median"] / N_BATCH),
                                "max_abs_diff_single": _r(diff, 3), "anchor_note": "ours only",
                                **({"demos": len(prob.data)} if case.startswith("loglik") else {})})
        planning.set_backend(args.backends[0])
        del prob, mdp, R
        gc.collect()

    for n in args.discounted:
        prob = random_mdp(n, seed=args.seed, horizon=None, discount=DISCOUNT)
        mdp = prob.mdp
        log(f"|S| = {n}: infinite horizon, discount {DISCOUNT}")
        fast = measure(lambda: ours_pass(mdp, prob.reward), repeat=args.repeat, budget=args.budget)
        with _value_iteration_only():
            slow, _, slow_s = peak_rss_growth(lambda: ours_pass(mdp, prob.reward))
        scale = max(1.0, float(np.abs(slow[0].v).max()))
        diff = max(float(np.abs(fast.result[0].v - slow[0].v).max()) / scale,
                   float(np.abs(fast.result[1] - slow[1]).max() / max(1.0, float(np.abs(slow[1]).max()))))
        records.append({"case": "svi_discounted", "states": n, "actions": N_ACTIONS, "branching": BRANCHING,
                        "horizon": None, "discount": DISCOUNT, "ours_s": _r(fast.seconds), "anchor_s": None,
                        "ratio": None, "peak_mb": _r(fast.peak_mb, 4), "runs": fast.runs, "vi_only_s": _r(slow_s),
                        "speedup_vs_vi": _r(slow_s / fast.seconds, 4), "max_rel_diff_vi": _r(diff, 3),
                        "anchor_note": "imitation has no infinite-horizon MCE; vi_only_s = our value iteration"})
        del prob, mdp, fast, slow
        gc.collect()
    return records


def add_targets(rec: dict[str, Any]) -> dict[str, Any]:
    """Attach issue 7's target for this case and size, if it has one, and whether it is met."""
    target = TARGET_S.get((rec["case"], rec["states"]))
    checks = []
    if target is not None:
        rec["target_s"] = target
        checks.append(rec["ours_s"] is not None and rec["ours_s"] <= target)
    if rec["case"] in (f"svi_occ_batch{N_BATCH}",):
        rec["target_batch_ratio"] = TARGET_BATCH_RATIO
        checks.append(rec["batch_ratio"] <= TARGET_BATCH_RATIO)
    peak = TARGET_PEAK_MB.get(rec["states"]) if rec["case"] == "svi_occ" else None
    if peak is not None:
        rec["target_peak_mb"] = peak
        checks.append(rec["peak_mb"] is None or rec["peak_mb"] < peak)
    if checks:
        rec["meets_target"] = all(checks)
    return rec


# --------------------------------------------------------------------------- output
def _fmt_s(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x * 1e3:.3g} ms" if x < 1 else f"{x:.3g} s"


def _fmt_target(r: dict[str, Any]) -> str:
    parts = []
    if r.get("target_s") is not None:
        parts.append(f"≤ {_fmt_s(r['target_s'])}")
    if r.get("target_batch_ratio") is not None:
        parts.append(f"≤ {r['target_batch_ratio']:g}× one")
    if r.get("target_peak_mb") is not None:
        parts.append(f"< {r['target_peak_mb']:g} MB")
    if not parts:
        return "—"
    return ", ".join(parts) + (" ✓" if r.get("meets_target") else " ✗")


def _fmt_spread(x: float | None) -> str:
    return "" if x is None else f" ±{x:.0%}"


def print_table(records: list[dict[str, Any]], header: str) -> None:
    """A readable rich table of the records (stdout). Times are medians over rounds (fresh processes for the
    side-by-side cases) with their spread (IQR / median); a ratio whose sides are too spread reads "noisy"."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="pluggable-irl vs imitation 1.0.1 MCE IRL", caption=header)
    for col, just in (("case", "left"), ("|S|", "right"), ("backend", "left"), ("ours", "right"),
                      ("imitation", "right"), ("ratio", "right"), ("peak MB (ours)", "right"),
                      ("peak MB (imitation)", "right"), ("target", "left"), ("notes", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in records:
        notes = []
        if r["case"] == "numba_compile":
            notes.append(f"compile (empty cache) {_fmt_s(r['compile_s'])} + {_fmt_s(r['compile_other_s'])} "
                         f"for float32/hard; cache load {_fmt_s(r['cache_load_s'])}")
        if r["case"] == "maxent_fit":
            notes.append(f"ours {r['ours_iterations']} it / {r['ours_evaluations']} ev, gap {r['ours_gap']:.2g}")
            if r.get("anchor_iterations") is not None:
                notes.append(f"imitation {r['anchor_iterations']} it, gap {r['anchor_gap']:.2g}"
                             + (f" (capped, {_fmt_s(r['anchor_iter_s'])}/it)" if r.get("anchor_capped") else ""))
        elif r.get("max_abs_diff") is not None:
            notes.append(f"agree to {r['max_abs_diff']:.1g}")
        if r.get("ours_cold_s") is not None and r["case"].startswith("svi_occ"):
            notes.append(f"first call {_fmt_s(r['ours_cold_s'])}")
        if r.get("batch_ratio") is not None:
            notes.append(f"one: {_fmt_s(r['single_s'])}{_fmt_spread(r.get('single_spread'))}, {r['batch']} = "
                         f"{r['batch_ratio']:.3g}× one" + (" (noisy)" if r.get("noisy") else ""))
        if r.get("max_rel_diff_float64") is not None:
            notes.append(f"float64 − float32: {r['max_rel_diff_float64']:.1g} rel.")
        if r.get("vi_only_s") is not None:
            notes.append(f"value iteration alone: {_fmt_s(r['vi_only_s'])} ({r['speedup_vs_vi']:.3g}× slower), "
                         f"agree to {r['max_rel_diff_vi']:.1g}")
        if r.get("anchor_s") is None and r.get("anchor_note") and r["case"] != "numba_compile":
            notes.append("imitation: not runnable" if "dense" in r["anchor_note"] else r["anchor_note"])
        if r.get("load_range"):
            notes.append(f"load {r['load_range'][0]:.1f}–{r['load_range'][1]:.1f}")
        ratio = r.get("ratio")
        if r.get("anchor_s") is not None and ratio is None:
            ratio_s = "noisy"
        else:
            ratio_s = "—" if ratio is None else (f"≥ {ratio:.3g}×" if r.get("anchor_capped") else f"{ratio:.3g}×")
        dense = r.get("anchor_dense_mb")
        ipeak = r.get("anchor_peak_mb")
        ipeak_s = "—" if ipeak is None else f"{ipeak:.3g}" + (f" (+{dense:.3g} dense T)" if dense else "")
        table.add_row(r["case"], str(r["states"]), r.get("backend") or "—",
                      _fmt_s(r["ours_s"]) + _fmt_spread(r.get("ours_spread")),
                      _fmt_s(r.get("anchor_s")) + _fmt_spread(r.get("anchor_spread")), ratio_s,
                      "—" if r.get("peak_mb") is None else f"{r['peak_mb']:.3g}", ipeak_s, _fmt_target(r),
                      "; ".join(notes))
    Console(file=sys.stdout, width=220).print(table)


def machine_info() -> str:
    """One line describing this machine and the software versions."""
    try:
        from importlib.metadata import version

        iv = version("imitation")  # its version without importing it into this process
    except Exception:  # pragma: no cover
        iv = "absent"
    try:
        nv = version("numba")
    except Exception:  # pragma: no cover
        nv = "absent"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
            f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), numba {nv}, imitation {iv}, "
            f"planner backend {planning.backend()}, load average {load}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="side by side at 100 and 1000 states, ours at 10^5, batch and discounted at 1000 "
                        "(finishes in < 2 minutes)")
    p.add_argument("--sizes", type=int, nargs="+",
                   help=f"state counts of the side-by-side cases (default {' '.join(map(str, DEFAULT_SIZES))}); "
                        "given alone, only these cases run")
    p.add_argument("--large", type=int, nargs="*",
                   help=f"ours-only sizes for svi_occ (default {' '.join(map(str, DEFAULT_LARGE))})")
    p.add_argument("--batch-states", type=int, default=None,
                   help=f"state count of the {N_BATCH}-hypothesis batch cases (default 1000; 0 = skip)")
    p.add_argument("--discounted", type=int, nargs="*",
                   help=f"sizes of the infinite-horizon case, discount {DISCOUNT} (default "
                        f"{' '.join(map(str, DEFAULT_DISCOUNTED))})")
    p.add_argument("--no-float32", dest="float32", action="store_false", default=None,
                   help=f"skip the float32 rows (default: at every size >= {FLOAT32_MIN_STATES})")
    p.add_argument("--repeat", type=int, default=None, help="timed runs per case, median reported (default 5; quick 3)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of timed runs per case before repetition stops early (default 20; quick 8)")
    p.add_argument("--gap", type=float, default=1e-3, help="target per-step gap of the fits: each library's own objective gradient, max over features")
    p.add_argument("--anchor-cap", type=float, default=60.0, help="time cap in seconds for imitation's fit")
    p.add_argument("--anchor-max-gb", type=float, default=4.0,
                   help="skip imitation where its dense (S, A, S) tensor needs more GB than this")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch intra-op threads, process-wide (default 1, as the irl command and the tests; "
                        "0 = torch's own default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=None,
                   help="fresh processes per library (and backend) for each side-by-side case, interleaved; "
                        "also the interleaved rounds of the batch case (default 5; quick 3)")
    p.add_argument("--fit-rounds", type=int, default=None,
                   help="rounds of the fits (one fresh process per library each; default 3; quick 1)")
    p.add_argument("--max-spread", type=float, default=MAX_SPREAD,
                   help="largest spread (IQR / median over rounds) of either side for which a ratio is "
                        f"printed; above it the table says noisy (default {MAX_SPREAD:g})")
    p.add_argument("--backends", nargs="+", choices=("numba", "numpy"), default=None,
                   help="planner backends of ours to time (default: numba and numpy when numba is installed)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        return args
    only_sizes = args.sizes is not None and args.large is None and args.batch_states is None \
        and args.discounted is None and args.float32 is None
    if args.sizes is None:
        args.sizes = list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    if args.large is None:
        args.large = [] if only_sizes else list(QUICK_LARGE if args.quick else DEFAULT_LARGE)
    if args.batch_states is None:
        args.batch_states = 0 if only_sizes else 1000
    if args.discounted is None:
        args.discounted = [] if only_sizes else list(QUICK_DISCOUNTED if args.quick else DEFAULT_DISCOUNTED)
    if args.float32 is None:
        args.float32 = not only_sizes
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    if args.budget is None:
        args.budget = 8.0 if args.quick else 20.0
    if args.rounds is None:
        args.rounds = 3 if args.quick else 5
    if args.fit_rounds is None:
        args.fit_rounds = 1 if args.quick else 3
    if args.backends is None:
        args.backends = ["numba", "numpy"] if importlib.util.find_spec("numba") is not None else ["numpy"]
    if args.rounds < 1 or args.fit_rounds < 1:
        p.error("--rounds and --fit-rounds must be >= 1")
    if any(s < BRANCHING for s in list(args.sizes) + list(args.large) + list(args.discounted)) or (
            args.batch_states and args.batch_states < BRANCHING):
        p.error(f"every state count must be >= the branching factor {BRANCHING}")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    if args.worker is not None:  # a fresh process measuring one library (see spawn / run_worker)
        print(WORKER_MARK + json.dumps(run_worker(json.loads(args.worker))), flush=True)
        return []
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    planning.set_backend(args.backends[0])

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    header = machine_info()
    log(header)
    if not _PEAK_OK:
        log("peak memory is not measurable here (/proc/self/clear_refs unavailable): peak_mb = null")
    records = []
    t0 = time.perf_counter()
    load0 = load_1min()

    def emit(rec: dict[str, Any]) -> None:
        add_targets(rec)
        rec["load_1min"] = load_1min()  # other work on this machine when the case finished, for the record
        print(json.dumps(rec), flush=True)
        records.append(rec)

    if "numba" in args.backends:
        rec = compile_record(log)
        if rec is not None:
            emit(rec)
    for n in args.sizes:
        for rec in run_size(n, args, log):
            emit(rec)
    if args.large or args.float32 or args.batch_states or args.discounted:
        log("warming up ours on a 20-state MDP (this process: the ours-only cases)")
        warm_up(False)
        for rec in run_extras(args, log):
            emit(rec)
    print_table(records, header + f"; load average {load0} at the start, {load_1min()} at the end; "
                f"total {time.perf_counter() - t0:.0f} s")
    return records


if __name__ == "__main__":
    main()
