"""Bernoulli metareasoning: which option to think about next, and when to stop thinking and choose.

The problem of Hay, Russell, Tolpin & Shimony (2012), "Selecting computations":
``k`` options, each with an unknown success probability ``p_i ~ Beta(a, b)``.
A **computation** samples one option: a Bernoulli draw with probability
``p_i`` (a simulated outcome, a memory retrieved, a rollout), at a cost. The
**stop** action chooses the option with the best posterior mean; its value is
``w * max_i (a + s_i) / (a + b + s_i + f_i)`` with ``s_i``, ``f_i`` the successes
and failures seen so far and ``w`` the utility of a success. At most
``horizon`` samples are taken in all (then stopping is forced).

Beliefs are the counts ``(s_1, .., s_k, f_1, .., f_k)``; action ``i`` (1..k)
samples option ``i``. Computations have no depth: ``phi = (cost, depth_cost,
w)`` with ``depth_cost`` without effect (keep it at 0).

Solvers:

* :class:`BernoulliExactSolver`: backward induction over all count states
  with ``n <= horizon`` samples, one vectorised pass per ``n`` (``C(horizon +
  2k, 2k)`` states: 230,230 for ``k = 3``, ``horizon = 20``). It returns the
  planes ``(-N, 0, T)`` (expected samples, expected posterior mean of the
  option finally chosen), so gradients in ``(cost, w)`` are exact.
* :class:`BernoulliMyopicSolver`: the myopic value of computation (one sample,
  then stop; Russell & Wefald 1991), the "blinkered"/"myopic" policy the paper
  compares against.

References:
    Hay, Russell, Tolpin & Shimony (2012), "Selecting computations: Theory and
    applications", UAI. Russell & Wefald (1991), "Do the right thing".
    Callaway, Gul, Krueger, Griffiths & Lieder (2018), "Learning to select
    computations", UAI.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from math import comb
from typing import Any

import numpy as np
import scipy.sparse as sp

from irl.metalevel.mdp import STOP, _TIE, MetaEnv, MetaLevelError, MetaMDP, MetaSolver

__all__ = ["BernoulliMetaMDP", "BernoulliExactSolver", "BernoulliMyopicSolver", "BernoulliEnv",
           "metareasoning_bernoulli"]


class BernoulliMetaMDP(MetaMDP):
    """The meta-level MDP of Bernoulli metareasoning (see the module docstring).

    Args:
        k: number of options (>= 2).
        prior: ``(a, b)`` of the Beta prior on every option's success probability.
        horizon: largest number of samples in a trial.
        fee: the task's own price of a sample (the true cost of computation).

    Example:
        >>> from irl.metalevel.bernoulli import BernoulliMetaMDP
        >>> meta = BernoulliMetaMDP(k=2, prior=(1, 1), horizon=3)
        >>> b = meta.initial_beliefs(1)
        >>> float(meta.terminal_value(b)[0]), meta.available(b).tolist()
        (0.5, [[True, True, True]])
    """

    weight_unit = "success"

    def __init__(self, k: int = 3, prior: Any = (1.0, 1.0), horizon: int = 10, fee: float = 0.0) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
            raise MetaLevelError(f"k (number of options) must be an integer >= 2: got {k!r}")
        a, b = (float(x) for x in np.asarray(prior, dtype=np.float64).ravel()[:2]) if np.size(prior) == 2 else (
            np.nan, np.nan)
        if not (np.isfinite(a) and np.isfinite(b) and a > 0 and b > 0):
            raise MetaLevelError(f"prior must be two finite numbers (a, b) > 0 of a Beta distribution: got {prior!r}")
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise MetaLevelError(f"horizon (largest number of samples) must be an integer >= 1: got {horizon!r}")
        if not np.isfinite(fee) or fee < 0:
            raise MetaLevelError(f"fee (price of a sample) must be a finite number >= 0: got {fee}")
        self.k, self.a, self.b, self.horizon, self.fee = int(k), a, b, int(horizon), float(fee)
        self._solvers: dict[str, MetaSolver] = {}

    # ---------------------------------------------------------------- sizes
    @property
    def n_actions(self) -> int:
        """Stop plus one sample action per option: ``k + 1``."""
        return self.k + 1

    @property
    def n_weights(self) -> int:
        """One utility: that of a success."""
        return 1

    @property
    def n_states(self) -> int:
        """Number of count states with at most ``horizon`` samples: ``C(horizon + 2k, 2k)``."""
        return comb(self.horizon + 2 * self.k, 2 * self.k)

    def signature(self) -> str:
        """Hash of ``(k, prior, horizon)``."""
        return hashlib.sha1(repr((self.k, self.a, self.b, self.horizon)).encode()).hexdigest()[:16]

    def action_depth(self) -> np.ndarray:
        """All zeros: sampling has no depth."""
        return np.zeros(self.n_actions, np.int64)

    def weight_states(self) -> list[np.ndarray]:
        """The object-level states of the ``k`` options (states ``1..k``)."""
        return [np.arange(1, self.k + 1)]

    def weight_label(self, k: int) -> str:
        return "the options"

    # ---------------------------------------------------------------- beliefs
    def initial_beliefs(self, n: int = 1) -> np.ndarray:
        """``(n, 2k)`` zero counts."""
        return np.zeros((int(n), 2 * self.k))

    def check_beliefs(self, beliefs: Any) -> np.ndarray:
        """Counts ``(D, 2k)``: non-negative integers summing to at most ``horizon``."""
        b = np.asarray(beliefs, dtype=np.float64)
        if b.ndim == 1:
            b = b[None]
        if b.ndim != 2 or b.shape[1] != 2 * self.k:
            raise MetaLevelError(f"beliefs must be counts (successes, failures) of shape (D, 2k) = (D, {2 * self.k}): "
                                 f"got {b.shape}")
        bad = ~np.isfinite(b) | (b < 0) | (b != np.round(b))
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise MetaLevelError(f"belief {i}: count {j} must be a non-negative integer: got {b[i, j]}")
        n = b.sum(axis=1)
        if np.any(n > self.horizon):
            i = int(np.argmax(n > self.horizon))
            raise MetaLevelError(f"belief {i} holds {int(n[i])} samples, more than the horizon ({self.horizon})")
        return b

    def posterior_means(self, beliefs: Any) -> np.ndarray:
        """``(D, k)`` posterior mean success probability of every option."""
        b = self.check_beliefs(beliefs)
        s, f = b[:, :self.k], b[:, self.k:]
        return (self.a + s) / (self.a + self.b + s + f)

    def available(self, beliefs: Any) -> np.ndarray:
        """Stop always; sampling while fewer than ``horizon`` samples were taken."""
        b = self.check_beliefs(beliefs)
        ok = np.repeat((b.sum(axis=1) < self.horizon)[:, None], self.n_actions, axis=1)
        ok[:, STOP] = True
        return ok

    def terminal_value(self, beliefs: Any, weights: Any = None) -> np.ndarray:
        """``w * max_i E[p_i | counts]``."""
        return self._w(weights) * self.posterior_means(beliefs).max(axis=1)

    def stop_planes(self, beliefs: Any, weights: Any = None) -> np.ndarray:
        """``(0, 0, max_i E[p_i | counts])``."""
        m = self.posterior_means(beliefs).max(axis=1)
        out = np.zeros((m.size, self.n_params))
        out[:, 2] = m
        return out

    def _w(self, weights: Any) -> float:
        w = np.ones(1) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
        if w.size != 1 or not np.isfinite(w[0]):
            raise MetaLevelError(f"weights must be one finite utility of a success: got {w.tolist()}")
        return float(w[0])

    # ---------------------------------------------------------------- solving
    def solver(self, kind: Any = "exact") -> MetaSolver:
        """``"exact"`` (:class:`BernoulliExactSolver`) or ``"myopic"`` (:class:`BernoulliMyopicSolver`)."""
        if isinstance(kind, MetaSolver):
            return kind
        if kind not in self._solvers:
            if kind == "exact":
                self._solvers[kind] = BernoulliExactSolver(self)
            elif kind == "myopic":
                self._solvers[kind] = BernoulliMyopicSolver(self)
            else:
                raise MetaLevelError(f"unknown meta-level solver {kind!r}; known: exact, myopic (or pass a "
                                     f"MetaSolver object)")
        return self._solvers[kind]

    # ---------------------------------------------------------------- simulation and choices
    def sample_instances(self, n: int, rng: Any = None) -> np.ndarray:
        """``(n, k)`` success probabilities drawn from the prior."""
        return np.random.default_rng(rng).beta(self.a, self.b, size=(int(n), self.k))

    def check_instances(self, instances: Any, n: int) -> np.ndarray:
        """``(n, k)`` probabilities in ``[0, 1]``."""
        inst = np.array(instances, dtype=np.float64)
        if inst.shape != (n, self.k) or not np.all((inst >= 0) & (inst <= 1)):
            raise MetaLevelError(f"instances must be success probabilities in [0, 1] of shape (n, k) = ({n}, "
                                 f"{self.k}): got shape {inst.shape}")
        return inst

    def compute(self, beliefs: np.ndarray, actions: np.ndarray, instances: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Sample option ``actions[i]`` once: a success with probability ``instances[i, option]``."""
        rows = np.arange(actions.size)
        opt = np.asarray(actions) - 1
        success = rng.random(actions.size) < instances[rows, opt]
        out = np.array(beliefs, dtype=np.float64, copy=True)
        out[rows, np.where(success, opt, opt + self.k)] += 1.0
        return out, success.astype(np.float64)

    def choose(self, beliefs: Any, weights: Any = None, rng: Any = None) -> np.ndarray:
        """The option with the best posterior mean (``0..k-1``; ties at random when ``rng`` is given)."""
        v = self.posterior_means(beliefs)
        top = v >= v.max(axis=1, keepdims=True) - 1e-12
        if rng is None:
            return top.argmax(axis=1)
        return (np.random.default_rng(rng).random(v.shape) * top).argmax(axis=1)

    def choice_values(self, instances: np.ndarray, choices: np.ndarray, weights: Any = None) -> np.ndarray:
        """``w * p_chosen``: the expected utility of the chosen option on each instance."""
        inst = np.asarray(instances, dtype=np.float64)
        return self._w(weights) * inst[np.arange(inst.shape[0]), np.asarray(choices)]

    def best_choices(self, instances: np.ndarray, weights: Any = None) -> np.ndarray:
        """The option with the highest true success probability."""
        return np.asarray(instances).argmax(axis=1)

    def make_traces(self, instances: np.ndarray, computations: list[list[int]], outcomes: list[list[float]],
                    choices: np.ndarray, *, participant: Any, block: Any) -> Any:
        """:class:`demos.SamplingTraces` of simulated trials."""
        from demos.sampling import SamplingTraces

        return SamplingTraces.from_trials(self.k, computations, outcomes, choices, probabilities=instances,
                                          participant=participant, block=block, fee=self.fee)

    def traces_instances(self, traces: Any) -> np.ndarray:
        """The true success probabilities of every trial."""
        return traces.probabilities

    def traces_choices(self, traces: Any) -> np.ndarray:
        """The chosen options (``-1`` where not recorded)."""
        return traces.choice

    def __repr__(self) -> str:
        return f"BernoulliMetaMDP(k={self.k}, prior=({self.a:g}, {self.b:g}), horizon={self.horizon}, fee={self.fee})"


# ---------------------------------------------------------------------------- count states
@functools.lru_cache(maxsize=4096)
def _compositions(n: int, parts: int) -> np.ndarray:
    """All ``(M, parts)`` non-negative integer vectors summing to ``n`` (stars and bars), lexicographic."""
    if parts == 1:
        return np.array([[n]], np.int64)
    rows = [np.concatenate([np.full((sub.shape[0], 1), first), sub], axis=1)
            for first in range(n, -1, -1) for sub in (_compositions(n - first, parts - 1),)]
    return np.concatenate(rows, axis=0)


class BernoulliExactSolver(MetaSolver):
    """Exact Q-values of Bernoulli metareasoning by backward induction over count states.

    Layer ``n`` holds every count vector with ``n`` samples; a sample leads to
    layer ``n + 1`` (a success or a failure of the sampled option), so each
    layer is one vectorised pass over its states and the ``k`` sample actions.
    States are looked up by a mixed-radix code (sorted, binary search).

    ``solve(phi)`` returns per layer the optimal values and the statistics of
    the optimal continuation ``(N, 0, T)`` (expected samples, expected posterior
    mean of the option chosen at the stop), with ``V = -c N + w T``. The last
    two solutions are cached.

    Args:
        meta: the problem.
        max_states: refuse problems with more count states than this.

    Raises:
        MetaLevelError: too many states.

    Example:
        >>> from irl.metalevel.bernoulli import BernoulliMetaMDP
        >>> meta = BernoulliMetaMDP(k=2, horizon=2)
        >>> s = meta.solver("exact")
        >>> round(float(s.value(meta.initial_beliefs(1), meta.params(cost=0.01))[0]), 4)
        0.5733
    """

    exact = True

    def __init__(self, meta: BernoulliMetaMDP, *, max_states: int = 5_000_000) -> None:
        super().__init__(meta)
        if meta.n_states > max_states:
            raise MetaLevelError(f"the exact solver would need {meta.n_states:,} count states (> max_states = "
                                 f"{max_states:,}); lower the horizon or use solver='myopic'")
        self._built = False
        self._cache: OrderedDict[tuple, tuple[list, list]] = OrderedDict()
        self.build_seconds = float("nan")
        self.last_solve_seconds = float("nan")

    def _code(self, counts: np.ndarray) -> np.ndarray:
        return (np.asarray(counts, np.int64) * self._radix).sum(axis=-1)

    def build(self) -> "BernoulliExactSolver":
        """Enumerate the layers and their successors (once)."""
        if self._built:
            return self
        t0 = time.perf_counter()
        m, k, H = self.meta, self.meta.k, self.meta.horizon
        self._radix = (H + 1) ** np.arange(2 * k, dtype=np.int64)
        self.layers = [_compositions(n, 2 * k) for n in range(H + 1)]
        self.codes, self.order = [], []
        for L in self.layers:
            c = self._code(L)
            o = np.argsort(c)
            self.codes.append(c[o])
            self.order.append(o)
        # successors of every sample action in the next layer, and the success probabilities
        self.succ, self.p_success, self.means = [], [], []
        for n, L in enumerate(self.layers):
            s, f = L[:, :k].astype(np.float64), L[:, k:].astype(np.float64)
            mean = (m.a + s) / (m.a + m.b + s + f)
            self.means.append(mean)
            self.p_success.append(mean)  # the predictive probability of a success is the posterior mean
            if n == H:
                self.succ.append(None)
                continue
            eye = np.eye(2 * k, dtype=np.int64)
            up = np.empty((L.shape[0], k, 2), np.int64)
            for i in range(k):
                up[:, i, 0] = self._index(n + 1, L + eye[i])
                up[:, i, 1] = self._index(n + 1, L + eye[k + i])
            self.succ.append(up)
        self._built = True
        self.build_seconds = time.perf_counter() - t0
        return self

    def _index(self, n: int, counts: np.ndarray) -> np.ndarray:
        code = self._code(counts)
        pos = np.searchsorted(self.codes[n], code)
        return self.order[n][pos]

    @property
    def n_states(self) -> int:
        """Number of count states."""
        return self.meta.n_states

    def solve(self, phi: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Optimal values and statistics ``(N, 0, T)`` of every count state, per layer ``n = 0..horizon``."""
        phi = self._phi(phi)
        key = tuple(phi.tolist())
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        self.build()
        t0 = time.perf_counter()
        c, w = phi[0] + phi[1] * 0.0, phi[2]
        H = self.meta.horizon
        V: list[np.ndarray] = [None] * (H + 1)  # type: ignore[list-item]
        stats: list[np.ndarray] = [None] * (H + 1)  # type: ignore[list-item]
        for n in range(H, -1, -1):
            mean = self.means[n]
            best_opt = mean.argmax(axis=1)
            rows = np.arange(mean.shape[0])
            v = w * mean[rows, best_opt]
            st = np.zeros((mean.shape[0], 3))
            st[:, 2] = mean[rows, best_opt]
            if n < H:
                up, p = self.succ[n], self.p_success[n]
                Vn, Sn = V[n + 1], stats[n + 1]
                q = p * Vn[up[..., 0]] + (1 - p) * Vn[up[..., 1]] - c  # (M, k)
                a = q.argmax(axis=1)
                qa = q[rows, a]
                go = qa > v + _TIE
                if go.any():
                    r = rows[go]
                    pa = p[r, a[go]][:, None]
                    st[r] = pa * Sn[up[r, a[go], 0]] + (1 - pa) * Sn[up[r, a[go], 1]]
                    st[r, 0] += 1.0
                    v = np.where(go, qa, v)
            V[n], stats[n] = v, st
        self.last_solve_seconds = time.perf_counter() - t0
        self._cache[key] = (V, stats)
        while len(self._cache) > 2:
            self._cache.popitem(last=False)
        return V, stats

    def _locate(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = b.sum(axis=1).astype(np.int64)
        idx = np.zeros(b.shape[0], np.int64)
        for layer in np.unique(n):
            rows = np.flatnonzero(n == layer)
            idx[rows] = self._index(int(layer), b[rows].astype(np.int64))
        return n, idx

    def value(self, beliefs: Any, phi: Any) -> np.ndarray:
        """``(D,)`` optimal meta-level value of beliefs."""
        b = self.meta.check_beliefs(beliefs)
        V, _ = self.solve(phi)
        n, idx = self._locate(b)
        return np.array([V[n_][i] for n_, i in zip(n, idx)])

    def q_planes(self, beliefs: Any, phi: Any) -> np.ndarray:
        b = self.meta.check_beliefs(beliefs)
        phi = self._phi(phi)
        _, stats = self.solve(phi)
        meta, k = self.meta, self.meta.k
        out = np.zeros((b.shape[0], meta.n_actions, meta.n_params))
        out[:, STOP] = meta.stop_planes(b)
        n, idx = self._locate(b)
        for layer in np.unique(n):
            if layer >= meta.horizon:
                continue
            rows = np.flatnonzero(n == layer)
            up, p = self.succ[layer][idx[rows]], self.p_success[layer][idx[rows]]  # (r, k, 2), (r, k)
            Sn = stats[layer + 1]
            pl = p[..., None] * Sn[up[..., 0]] + (1 - p[..., None]) * Sn[up[..., 1]]  # (r, k, 3)
            pl[..., 0] = -(pl[..., 0] + 1.0)
            pl[..., 1] = 0.0
            out[rows, 1:] = pl
        return out


class BernoulliMyopicSolver(MetaSolver):
    """The myopic value of computation: ``Q(b, i) = E[terminal value after one sample of i] - cost``.

    Example:
        >>> from irl.metalevel.bernoulli import BernoulliMetaMDP
        >>> meta = BernoulliMetaMDP(k=2, horizon=5)
        >>> q = meta.q_values(meta.initial_beliefs(1), cost=0.01, solver="myopic")
        >>> q.round(4).tolist()   # after a success the option is worth 2/3, after a failure the other one 1/2
        [[0.5, 0.5733, 0.5733]]
    """

    def q_planes(self, beliefs: Any, phi: Any) -> np.ndarray:
        meta, k = self.meta, self.meta.k
        b = meta.check_beliefs(beliefs)
        out = np.zeros((b.shape[0], meta.n_actions, meta.n_params))
        out[:, STOP] = meta.stop_planes(b)
        room = b.sum(axis=1) < meta.horizon
        if not room.any():
            return out
        r = np.flatnonzero(room)
        p = meta.posterior_means(b[r])
        for i in range(k):
            succ, fail = b[r].copy(), b[r].copy()
            succ[:, i] += 1.0
            fail[:, k + i] += 1.0
            after_s, after_f = meta.posterior_means(succ).max(axis=1), meta.posterior_means(fail).max(axis=1)
            t = p[:, i] * after_s + (1 - p[:, i]) * after_f
            out[r, 1 + i, 0] = -1.0
            out[r, 1 + i, 2] = t
        return out


# ---------------------------------------------------------------------------- the environment
@dataclass(frozen=True, eq=False)
class BernoulliEnv(MetaEnv):
    """The Bernoulli metareasoning environment: a one-step choice among ``k`` options, and its meta-level problem.

    Object level: state 0 is the decision, action ``i`` leads to the terminal
    state ``i + 1`` (option ``i`` chosen), horizon 1. Its ``true_reward`` is the
    utility of a success of each option (1), the reward a human model with
    ``values="reward"`` reads.
    """

    def __repr__(self) -> str:
        return f"BernoulliEnv(name={self.name!r}, meta={self.meta!r})"


def metareasoning_bernoulli(k: int = 3, prior: Any = (1.0, 1.0), horizon: int = 10, cost: float = 0.0,
                            name: str = "metareasoning-bernoulli") -> BernoulliEnv:
    """Build a Bernoulli metareasoning environment (registered as ``"metareasoning-bernoulli"``).

    Args:
        k: number of options.
        prior: ``(a, b)`` of the Beta prior on each option's success probability.
        horizon: largest number of samples per trial.
        cost: the task's price of one sample (``env.meta.fee``).
        name: environment name.

    Example:
        >>> import irl
        >>> env = irl.envs.make("metareasoning-bernoulli", k=3, horizon=6)
        >>> env.n_states, env.n_actions, env.meta.n_actions, env.meta.n_states
        (4, 3, 4, 924)
    """
    meta = BernoulliMetaMDP(k, prior, horizon, fee=cost)
    S, A = meta.k + 1, meta.k
    rows = np.arange(S * A)
    cols = np.concatenate([np.arange(1, S), np.repeat(np.arange(1, S), A)])  # from 0: option a; terminals stay
    P = sp.csr_matrix((np.ones(S * A), (rows, cols)), shape=(S * A, S))
    initial = np.zeros(S)
    initial[0] = 1.0
    terminal = np.zeros(S, bool)
    terminal[1:] = True
    utility = np.ones(S)
    utility[0] = 0.0
    return BernoulliEnv(transitions=P, n_states=S, n_actions=A, initial=initial, discount=1.0, horizon=1,
                        features=np.zeros((S, 0)), terminal=terminal, true_reward=utility, name=name,
                        state_names=("decide",) + tuple(f"chose option {i}" for i in range(A)),
                        action_names=tuple(f"option {i}" for i in range(A)), feature_names=(), meta=meta)
