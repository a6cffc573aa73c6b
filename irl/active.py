"""Which question to ask next: active reward learning from comparisons and k-way choices.

A *query* shows the human ``K`` trajectory segments (``K = 2``: a pairwise
comparison; ``K > 2``: pick the best of ``K``) and records which one they
choose, or, for ``answer="ranking"`` candidates, their order of all ``K``
(Plackett-Luce: successive choices of the best remaining one). The answer is scored
exactly as :class:`demos.Comparisons` evidence is: the human model's choice
rule over the segments' discounted returns,
``P(k | query, r) = human.choice_log_probs(G_r(query)).exp()``, Boltzmann over
returns for every built-in model (and a mixture with uniform for
:class:`human_models.Noisy`). Any human model with a ``choice_log_probs``
method can therefore be both the model of the answerer and the simulated
answerer.

The belief about the reward is a set of weighted reward samples
(:class:`RewardSamples`): the draws of an :class:`irl.Posterior`, draws from a
prior, or any array of rewards. Every criterion is computed for all samples and
all candidate queries at once (tensors ``(N, Q, K)``, chunked over queries to
bound memory):

* ``information_gain``: the mutual information between the answer and the
  reward, ``I = H(E_r[P(.|r)]) - E_r[H(P(.|r))]`` in nats (Bıyık et al. 2019);
* ``volume_removal``: the expected removed volume ``1 - sum_k pbar_k ** 2`` with
  ``pbar_k = E_r[P(k|r)]`` (Sadigh et al. 2017, in the form of Bıyık et al. 2019);
  larger is better;
* ``max_regret``: the expected regret between posterior samples inside the query,
  ``E_{r, r'}[G_r(best_r) - G_r(best_{r'})]`` (for a pair of samples whose best
  options differ this is the pairwise regret of Wilde et al. 2020);
* ``thompson``: draw ``K`` rewards from the belief; the best query is the one whose
  options are the draws' favourite candidate trajectories (score: minus the
  summed regret of the options under the draws, best assignment);
* ``random``: a uniformly random query (the baseline).

:func:`run` closes the loop: it asks a simulated human, reweights the samples by
the likelihood of each answer (importance reweighting of a fixed sample set) and
reports the effective sample size. When that collapses it renews the samples, by
a user's ``refit`` (e.g. Bayesian IRL on all answers so far) or by resample-move
steps (:func:`resample_move`) when the starting density is known (a prior, or a
posterior fitted in the session); otherwise it warns with
:class:`WeightDegeneracyWarning`.

References:
    Sadigh, Dragan, Sastry & Seshia (2017), "Active Preference-Based Learning of
    Reward Functions", RSS. Bıyık, Palan, Landolfi, Losey & Sadigh (2019),
    "Asking Easy Questions: A User-Friendly Approach to Active Reward Learning",
    CoRL. Wilde, Kulić & Smith (2020), "Active Preference Learning using Maximum
    Regret", IROS. Bıyık, Talati & Sadigh (2022), "APReL: A Library for Active
    Preference-based Reward Learning Algorithms", HRI. Thompson (1933), "On the
    likelihood that one unknown probability exceeds another in view of the
    evidence of two samples", Biometrika.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from irl.mdp import TabularMDP

__all__ = ["CRITERIA", "ANSWERS", "RewardSamples", "Candidates", "Query", "ActiveRun", "WeightDegeneracyWarning",
           "as_samples", "make_candidates", "answer_log_probs", "scores", "next_query", "run", "resample_move"]

#: The query-selection criteria, by name.
CRITERIA: tuple[str, ...] = ("information_gain", "volume_removal", "max_regret", "thompson", "random")
#: What a human answers to a query of ``K`` options: the best one, or a full ranking.
ANSWERS: tuple[str, ...] = ("choice", "ranking")

_FORMAT = "pluggable-irl/queries"
#: Elements of an ``(N, Q, K)`` block scored at once (about 32 MB of float64).
_BLOCK = 4_000_000


class WeightDegeneracyWarning(UserWarning):
    """The importance weights of the reward samples have collapsed (few effective samples)."""


# ------------------------------------------------------------------ the belief
@dataclass(frozen=True, eq=False)
class RewardSamples:
    """A belief about the reward as ``N`` weighted samples.

    Attributes:
        rewards: ``(N, S, A)`` float64 reward samples (read-only).
        log_weights: ``(N,)`` normalised log-weights (``logsumexp = 0``); uniform by default.
        human: per-sample values of the human's inferred parameters, ``name -> (N,)``
            (e.g. ``"boltzmann.beta"`` from an :class:`irl.Posterior`).
        theta: ``(N, P)`` the reward parameters behind the rewards, when known
            (draws of a prior or a posterior); :func:`run` moves them when the
            weights degenerate.

    Example:
        >>> import numpy as np
        >>> from irl.active import RewardSamples
        >>> b = RewardSamples(np.zeros((4, 3, 2)), np.log([0.7, 0.1, 0.1, 0.1]))
        >>> round(b.ess, 3), b.mean_reward.shape
        (1.923, (3, 2))
    """

    rewards: np.ndarray
    log_weights: np.ndarray | None = None
    human: dict[str, np.ndarray] = field(default_factory=dict)
    theta: np.ndarray | None = None

    def __post_init__(self) -> None:
        r = np.array(self.rewards, dtype=np.float64)
        if r.ndim != 3 or r.shape[0] < 1:
            raise ValueError(f"reward samples must have shape (N, S, A) with N >= 1: got {r.shape}")
        if not np.all(np.isfinite(r)):
            raise ValueError("reward samples must be finite: found NaN or inf")
        n = r.shape[0]
        lw = np.zeros(n) if self.log_weights is None else np.array(self.log_weights, dtype=np.float64)
        if lw.shape != (n,):
            raise ValueError(f"log_weights must have one entry per sample ({n},): got {lw.shape}")
        if np.any(np.isnan(lw)) or np.any(lw == np.inf) or not np.any(np.isfinite(lw)):
            raise ValueError("log_weights must be finite or -inf, and not all -inf")
        lw = lw - np.logaddexp.reduce(lw)
        human = {k: np.array(v, dtype=np.float64).reshape(-1) for k, v in self.human.items()}
        for k, v in human.items():
            if v.shape != (n,):
                raise ValueError(f"human[{k!r}] must have one value per sample ({n},): got {v.shape}")
        theta = None if self.theta is None else np.array(self.theta, dtype=np.float64)
        if theta is not None and (theta.ndim != 2 or theta.shape[0] != n):
            raise ValueError(f"theta must have shape (N, P) with N = {n}: got {theta.shape}")
        for a in (r, lw, *human.values(), *([] if theta is None else [theta])):
            a.setflags(write=False)
        object.__setattr__(self, "theta", theta)
        object.__setattr__(self, "rewards", r)
        object.__setattr__(self, "log_weights", lw)
        object.__setattr__(self, "human", human)

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def weights(self) -> np.ndarray:
        """``(N,)`` normalised weights."""
        return np.exp(self.log_weights)

    @property
    def ess(self) -> float:
        """Kish's effective sample size ``1 / sum_n w_n ** 2`` (``N`` for equal weights, 1 for one sample)."""
        return float(1.0 / np.sum(self.weights ** 2))

    @property
    def mean_reward(self) -> np.ndarray:
        """``(S, A)`` the weighted mean reward (what a planner of the posterior mean optimises)."""
        return np.tensordot(self.weights, self.rewards, axes=1)

    def reweighted(self, log_likelihood: Any) -> "RewardSamples":
        """A copy with weights multiplied by ``exp(log_likelihood)`` ``(N,)`` (Bayes' rule on the samples)."""
        ll = np.asarray(log_likelihood, dtype=np.float64)
        if ll.shape != (len(self),):
            raise ValueError(f"log_likelihood must have one entry per sample ({len(self)},): got {ll.shape}")
        return RewardSamples(self.rewards, self.log_weights + ll, self.human, self.theta)


def as_samples(belief: Any, env: TabularMDP | None = None, *, reward_model: Any = None, weights: Any = None,
               n: int = 1000, seed: int | None = None, max_samples: int | None = None) -> RewardSamples:
    """A belief about the reward as :class:`RewardSamples`.

    Args:
        belief: one of

            * :class:`RewardSamples` (returned as is);
            * an :class:`irl.Posterior`: its draws mapped to rewards by ``reward_model``
              (default: the fit's, or the default model of ``env`` for a loaded file);
              the draws of the human's inferred parameters come along;
            * an array of rewards ``(N, S)`` or ``(N, S, A)``;
            * a prior over the reward parameters (:mod:`priors`): ``n`` draws mapped
              to rewards by ``reward_model`` (default: the default model of ``env``).
        env: the MDP (needed for ``(N, S)`` rewards, priors and loaded posteriors).
        reward_model: maps parameters ``(..., P)`` to rewards ``(..., S, A)``.
        weights: optional ``(N,)`` non-negative weights of an array of rewards.
        n: number of draws from a prior.
        seed: seed of the prior draws.
        max_samples: keep at most this many draws of a posterior (evenly thinned).

    Returns:
        :class:`RewardSamples`.

    Raises:
        ValueError: shapes that do not fit, negative or all-zero weights.
        TypeError: an unsupported kind of belief.

    Example:
        >>> import irl, priors
        >>> from irl.active import as_samples
        >>> env = irl.envs.make("gridworld-5x5")
        >>> as_samples(priors.Gaussian(0.0, 1.0), env, n=50, seed=0).rewards.shape
        (50, 25, 5)
    """
    from priors import is_prior

    if isinstance(belief, RewardSamples):
        return belief
    lw = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or np.any(~np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
            raise ValueError(f"weights must be a 1-D array of finite numbers >= 0, not all 0: got shape {w.shape}")
        with np.errstate(divide="ignore"):
            lw = np.log(w)
    if hasattr(belief, "theta") and hasattr(belief, "param_names"):  # an irl.Posterior
        model = _reward_model_of(belief, env, reward_model)
        theta = belief.theta.reshape(-1, belief.theta.shape[-1])
        keep = np.arange(theta.shape[0])
        if max_samples is not None and max_samples < theta.shape[0]:
            keep = np.linspace(0, theta.shape[0] - 1, int(max_samples)).round().astype(np.int64)
        with torch.no_grad():
            rewards = model(torch.as_tensor(theta[keep])).numpy()
        human = {k: v.reshape(-1)[keep] for k, v in belief.human.items()}
        return RewardSamples(rewards, None if lw is None else lw[keep], human, theta[keep])
    if is_prior(belief):
        model = _reward_model_of(belief, env, reward_model)
        theta = belief.sample((int(n), model.n_params), seed=seed)
        with torch.no_grad():
            return RewardSamples(model(theta).numpy(), lw, theta=theta.numpy())
    if isinstance(belief, (np.ndarray, torch.Tensor, list, tuple)):
        r = belief.detach().cpu().numpy() if isinstance(belief, torch.Tensor) else np.asarray(belief, np.float64)
        if r.ndim == 2:
            if env is None:
                raise ValueError("state rewards (N, S) need env= (for the number of actions); or pass (N, S, A)")
            if r.shape[1] != env.n_states:
                raise ValueError(f"reward samples (N, S) must have S = {env.n_states} states: got {r.shape}")
            r = np.broadcast_to(r[:, :, None], (*r.shape, env.n_actions))
        if env is not None and (r.ndim != 3 or r.shape[1:] != (env.n_states, env.n_actions)):
            raise ValueError(f"reward samples must have shape (N, S, A) = (N, {env.n_states}, {env.n_actions}) "
                             f"for environment {env.name!r}: got {r.shape}")
        return RewardSamples(r, lw)
    raise TypeError(f"a belief must be an irl.Posterior, RewardSamples, a prior or an array of rewards "
                    f"(N, S[, A]): got {type(belief).__name__}")


def _reward_model_of(belief: Any, env: TabularMDP | None, reward_model: Any) -> Any:
    """The map from a prior's or a posterior's parameters to rewards: given, the fit's, or ``env``'s default."""
    if reward_model is not None:
        return reward_model
    joint = getattr(belief, "joint", None)
    if joint is not None:
        return joint.reward_model
    if env is None:
        raise ValueError("mapping reward parameters to rewards needs env= (its default reward model is used) or "
                         "reward_model= (a loaded posterior or a prior carries none)")
    from irl.rewards import default_reward_model

    return default_reward_model(env)


# ------------------------------------------------------------------ candidate queries
@dataclass(frozen=True, eq=False)
class Candidates:
    """Candidate queries: a pool of trajectory segments and the ``K``-tuples of them that may be shown.

    Attributes:
        segments: the pool of ``M`` segments (:class:`demos.Trajectories`).
        queries: ``(Q, K)`` int64 indices into ``segments``: query ``q`` shows
            ``segments[queries[q]]``; ``K >= 2`` distinct options each.
        discount: discount of segment returns (``None``: the MDP's).
        answer: what the human answers: ``"choice"`` (the best of the ``K`` options;
            answer ``a`` is option ``a``) or ``"ranking"`` (all ``K`` ordered best first,
            Plackett-Luce; answer ``a`` is the ``a``-th ordering of :meth:`orders`).

    Files: :meth:`save` writes a versioned ``.npz`` atomically (no pickle) and
    :meth:`load` reads it back.

    Example:
        >>> import demos
        >>> from irl.active import Candidates
        >>> seg = demos.Trajectories.from_lists([[0, 1], [0, 2], [0, 0]], [[0], [1], [2]])
        >>> c = Candidates(seg, [[0, 1], [1, 2]])
        >>> c.n_queries, c.k
        (2, 2)
    """

    segments: Any
    queries: Any
    discount: float | None = None
    answer: str = "choice"

    def __post_init__(self) -> None:
        from demos import Trajectories

        if self.answer not in ANSWERS:
            raise ValueError(f"unknown answer kind {self.answer!r}; known: {', '.join(ANSWERS)}")
        if not isinstance(self.segments, Trajectories):
            raise TypeError(f"Candidates.segments must be demos.Trajectories: got {type(self.segments).__name__}")
        q = np.asarray(self.queries)
        if q.ndim != 2:
            raise ValueError(f"queries must have shape (Q, K): got {q.shape}")
        if q.shape[0] == 0:
            raise ValueError("there are no candidate queries (Q = 0): give at least one")
        if q.shape[1] < 2:
            raise ValueError(f"a query needs K >= 2 options: got K = {q.shape[1]}")
        if not np.issubdtype(q.dtype, np.integer):
            raise ValueError(f"queries must hold integer segment indices: got dtype {q.dtype}")
        m = len(self.segments)
        bad = (q < 0) | (q >= m)
        if bad.any():
            i, j = (int(x) for x in np.argwhere(bad)[0])
            raise ValueError(f"queries[{i}, {j}] = {q[i, j]} is not a segment index (there are {m} segments)")
        srt = np.sort(q, axis=1)
        dup = np.any(srt[:, 1:] == srt[:, :-1], axis=1)
        if dup.any():
            i = int(np.flatnonzero(dup)[0])
            raise ValueError(f"query {i} shows the same segment twice: {q[i].tolist()}")
        if self.discount is not None and not 0.0 <= float(self.discount) <= 1.0:
            raise ValueError(f"discount must lie in [0, 1]: got {self.discount}")
        q = q.astype(np.int64)
        q.setflags(write=False)
        object.__setattr__(self, "queries", q)

    @property
    def n_queries(self) -> int:
        """Number of candidate queries ``Q``."""
        return int(self.queries.shape[0])

    @property
    def k(self) -> int:
        """Options per query ``K``."""
        return int(self.queries.shape[1])

    @property
    def n_answers(self) -> int:
        """Number of possible answers: ``K`` (choice) or ``K!`` (ranking)."""
        return self.k if self.answer == "choice" else math.factorial(self.k)

    def orders(self) -> np.ndarray:
        """``(n_answers, K)``: the options of each answer, best first (a choice lists only its pick first)."""
        if self.answer == "choice":
            return np.array([[a] + [b for b in range(self.k) if b != a] for a in range(self.k)], dtype=np.int64)
        return np.array(list(itertools.permutations(range(self.k))), dtype=np.int64)

    def returns(self, env: TabularMDP, rewards: Any) -> torch.Tensor:
        """Discounted return of every segment under every reward: ``(N, S, A) -> (N, M)`` (or ``(S, A) -> (M,)``).

        The same returns :class:`demos.Comparisons` evidence scores choices by.
        """
        from demos.choices import _reward_tensor, _segment_returns

        self.segments.validate(env.n_states, env.n_actions)
        gamma = env.discount if self.discount is None else float(self.discount)
        r = (rewards.detach().to(torch.float64) if isinstance(rewards, torch.Tensor)
             else torch.from_numpy(np.array(rewards, dtype=np.float64)))
        r = _reward_tensor(r, env.n_states, env.n_actions)
        return _segment_returns(self.segments, r, gamma)

    def comparisons(self, index: Sequence[int], answers: Sequence[int]) -> Any:
        """The answered queries as :class:`demos.Comparisons` evidence (answer ``answers[i]`` to query ``index[i]``).

        A ranking becomes ``K - 1`` successive choices of the best remaining segment
        (:meth:`demos.Comparisons.from_rankings`), the likelihood the scores use.

        Raises:
            ValueError: an index or answer out of range.
        """
        from demos import Comparisons

        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        ans = np.asarray(answers, dtype=np.int64).reshape(-1)
        if idx.size == 0 or idx.shape != ans.shape:
            raise ValueError(f"need one answer per asked query (at least one): got {idx.size} queries and "
                             f"{ans.size} answers")
        if np.any((idx < 0) | (idx >= self.n_queries)):
            raise ValueError(f"query indices must lie in 0..{self.n_queries - 1}: got {idx.tolist()}")
        if np.any((ans < 0) | (ans >= self.n_answers)):
            raise ValueError(f"answers must lie in 0..{self.n_answers - 1} ({self.answer} of {self.k} options): "
                             f"got {ans.tolist()}")
        if self.answer == "ranking":
            orders = self.orders()
            ranked = [self.segments.subset(self.queries[i][orders[a]]) for i, a in zip(idx, ans)]
            return Comparisons.from_rankings(ranked, discount=self.discount)
        seg = self.segments.subset(self.queries[idx].reshape(-1))
        return Comparisons(seg, np.full(idx.size, self.k), ans, self.discount)

    def save(self, path: Any, *, meta: dict[str, Any] | None = None) -> None:
        """Write a versioned ``.npz`` atomically (no pickle); ``meta`` is stored as JSON (e.g. the environment)."""
        from demos import save_arrays

        seg = self.segments
        save_arrays(path, _FORMAT, {"states": seg.states, "actions": seg.actions, "lengths": seg.lengths,
                                    "terminated": seg.terminated, "truncated": seg.truncated,
                                    "queries": self.queries},
                    meta={"discount": self.discount, "answer": self.answer, **(meta or {})})

    @classmethod
    def load(cls, path: Any) -> "Candidates":
        """Read a file written by :meth:`save`.

        Raises:
            demos.DemoFileError: missing or foreign file, pickled arrays (refused), missing arrays.
            ValueError: queries that do not fit the segments.
        """
        from demos import DemoFileError, Trajectories, load_arrays

        _, arrays, meta = load_arrays(path, _FORMAT)
        need = {"states", "actions", "lengths", "queries"}
        if not need <= set(arrays):
            raise DemoFileError(f"{path}: candidate-query file lacks arrays {sorted(need - set(arrays))}")
        seg = Trajectories(states=arrays["states"], actions=arrays["actions"], lengths=arrays["lengths"],
                           terminated=arrays.get("terminated"), truncated=arrays.get("truncated"))
        out = cls(seg, arrays["queries"], meta.get("discount"), str(meta.get("answer", "choice")))
        object.__setattr__(out, "_meta", dict(meta))
        return out

    @property
    def meta(self) -> dict[str, Any]:
        """Notes read from the file (empty for candidates built in memory)."""
        return dict(getattr(self, "_meta", {}))

    def __repr__(self) -> str:
        kind = "" if self.answer == "choice" else f", answer={self.answer!r}"
        return f"Candidates(segments={len(self.segments)}, queries={self.n_queries}, k={self.k}{kind})"


def make_candidates(env: TabularMDP, belief: Any = None, *, n_trajectories: int = 100, n_queries: int | None = 500,
                    k: int = 2, answer: str = "choice", beta: float = 1.0, horizon: int | None = None,
                    seed: int | None = None) -> Candidates:
    """Sample a pool of trajectories from ``env`` and random ``k``-option queries among them.

    Half the pool (all of it without a belief) are rollouts of the uniformly random
    policy; the other half are rollouts of soft-optimal policies (``beta``) for
    rewards drawn from ``belief``, one trajectory per drawn reward, so that the pool
    holds behaviour the candidate rewards would actually produce. With a belief,
    queries whose options have equal returns under every sample (e.g. equal
    feature counts under a linear reward) are left out: no answer to them can
    say anything about the reward, yet their answer is the most uncertain, which
    is what volume removal maximises (Bıyık et al. 2019).

    Args:
        env: the MDP.
        belief: optional belief (anything :func:`as_samples` accepts) whose rewards drive half the pool.
        n_trajectories: pool size ``M`` (``>= k``).
        n_queries: number of distinct random queries (fewer if the pool has fewer
            distinguishable ones); ``None`` for every ``k``-subset of the pool.
        k: options per query (2: pairwise comparisons).
        answer: ``"choice"`` (pick the best) or ``"ranking"`` (order all ``k``).
        beta: rationality of the soft-optimal rollouts.
        horizon: rollout length (required for infinite-horizon MDPs).
        seed: random seed.

    Returns:
        :class:`Candidates`.

    Raises:
        ValueError: ``k < 2``, a pool smaller than ``k``, ``n_queries < 1``, no distinguishable query.

    Example:
        >>> import irl
        >>> from irl.active import make_candidates
        >>> c = make_candidates(irl.envs.make("gridworld-5x5"), n_trajectories=20, n_queries=30, seed=0)
        >>> c.n_queries, c.k, len(c.segments)
        (30, 2, 20)
    """
    from demos import Trajectories

    from irl import planning

    if k < 2:
        raise ValueError(f"a query needs k >= 2 options: got k = {k}")
    if answer not in ANSWERS:
        raise ValueError(f"unknown answer kind {answer!r}; known: {', '.join(ANSWERS)}")
    if n_trajectories < k:
        raise ValueError(f"the pool needs at least k = {k} trajectories: got n_trajectories = {n_trajectories}")
    if n_queries is not None and n_queries < 1:
        raise ValueError(f"n_queries must be >= 1 (or None for all subsets): got {n_queries}")
    rng = np.random.default_rng(seed)
    samples = None if belief is None else as_samples(belief, env)
    n_soft = 0 if samples is None else n_trajectories // 2
    uniform = np.full((env.n_states, env.n_actions), 1.0 / env.n_actions)
    parts = [planning.rollout(env, uniform, n_trajectories - n_soft, rng=rng, horizon=horizon)]
    if n_soft:
        pick = rng.choice(len(samples), size=n_soft, p=samples.weights)
        policies = planning.soft_value_iteration(env, samples.rewards[pick], beta=beta).policy  # batched
        parts += [planning.rollout(env, pi, 1, rng=rng, horizon=horizon) for pi in policies]
    pool = Trajectories.from_lists([t.states for p in parts for t in p], [t.actions for p in parts for t in p],
                                   terminated=np.concatenate([p.terminated for p in parts]),
                                   truncated=np.concatenate([p.truncated for p in parts]))
    m = len(pool)
    distinct = _distinguishable(Candidates(pool, np.arange(k)[None, :], float(env.discount)), env, samples)
    total = math.comb(m, k)
    if n_queries is None or n_queries >= total:
        queries = np.array(list(itertools.combinations(range(m), k)), dtype=np.int64)
        queries = queries[distinct(queries)]
        queries = queries[rng.permutation(len(queries))][:n_queries]
    else:
        seen: set[tuple[int, ...]] = set()
        rows: list[tuple[int, ...]] = []
        for _ in range(100):  # rejection of repeats (and of indistinguishable options)
            batch = np.sort(rng.random((2 * n_queries, m)).argsort(axis=1)[:, :k], axis=1)
            for row in batch[distinct(batch)]:
                key = tuple(int(x) for x in row)
                if key not in seen and len(rows) < n_queries:
                    seen.add(key)
                    rows.append(key)
            if len(rows) == n_queries:
                break
        queries = np.array(rows, dtype=np.int64).reshape(-1, k)
    if len(queries) == 0:
        raise ValueError(f"no query of {k} trajectories with different returns under the belief was found among "
                         f"{m} trajectories: sample more (n_trajectories) or longer (horizon) trajectories")
    return Candidates(pool, queries, float(env.discount), answer)


def _distinguishable(pool: Candidates, env: TabularMDP,
                     samples: RewardSamples | None) -> Callable[[np.ndarray], np.ndarray]:
    """``queries (Q, K) -> (Q,)`` True where some sample's returns of the options differ (all True without samples)."""
    if samples is None:
        return lambda q: np.ones(len(q), dtype=bool)
    with torch.no_grad():
        g = pool.returns(env, samples.rewards).numpy()  # (N, M)

    def keep(q: np.ndarray) -> np.ndarray:
        step = max(1, _BLOCK // max(1, g.shape[0] * q.shape[1]))
        out = []
        for lo in range(0, len(q), step):  # chunks of queries bound memory
            gq = g[:, q[lo:lo + step]]  # (N, Q_chunk, K)
            out.append(np.any(gq.max(-1) - gq.min(-1) > 1e-9 * (1.0 + np.abs(gq).max(-1)), axis=0))
        return np.concatenate(out) if out else np.zeros(0, dtype=bool)

    return keep


# ------------------------------------------------------------------ scoring
def _bound_human(human: Any, samples: RewardSamples) -> Any:
    """``human`` with its inferred parameters bound to the per-sample draws ``(N,)``."""
    free = human.free_parameters() if hasattr(human, "free_parameters") else {}
    if not free:
        return human
    values = {}
    for name in free:
        keys = [key for key in samples.human if key == name or key.endswith("." + name)]
        if len(keys) != 1:
            raise ValueError(f"the human model's parameter {name!r} is a prior, so each reward sample needs its "
                             f"value: the samples carry {sorted(samples.human) or 'no human parameters'}; bind a "
                             f"value with human.bind({name}=...)")
        values[name] = torch.from_numpy(samples.human[keys[0]].copy())
    return human.bind(**values)


def answer_log_probs(human: Any, returns: torch.Tensor, *, ranking: bool = False) -> torch.Tensor:
    """Log-probability of each answer to queries whose options return ``returns (..., K)``.

    The choice rule of :class:`demos.Comparisons` evidence, ``human.choice_log_probs``
    (Boltzmann over returns for the built-in models); a batched parameter ``(N,)``
    of the human applies to the leading sample axis.

    Args:
        human: the model of the answerer.
        returns: ``(..., K)`` the options' returns, e.g. ``(N, Q, K)``.
        ranking: score full rankings (Plackett-Luce: successive choices of the best
            remaining option) instead of the choice of the best one.

    Returns:
        ``(..., K)`` (choice) or ``(..., K!)`` (ranking, in the order of
        :meth:`Candidates.orders`).

    Raises:
        TypeError: a human model without a choice rule.

    References:
        Plackett (1975), "The analysis of permutations", JRSS C.
    """
    rule = getattr(human, "choice_log_probs", None)
    if rule is None:
        raise TypeError(f"{type(human).__name__} has no choice_log_probs(values, mask): it cannot answer queries")
    if not ranking:
        return rule(returns)
    k = returns.shape[-1]
    perms = list(itertools.permutations(range(k)))  # best first, the order of Candidates.orders()
    # each step of a ranking chooses among the options not yet placed: score every such set once
    subsets = sorted({frozenset(p[j:]) for p in perms for j in range(k - 1)}, key=sorted)
    which = {sub: i for i, sub in enumerate(subsets)}
    mask = torch.tensor([[o in sub for o in range(k)] for sub in subsets])  # (U, K)
    logp = rule(returns[..., None, :].expand(*returns.shape[:-1], *mask.shape), mask)  # (..., U, K)
    sub_id = torch.tensor([[which[frozenset(p[j:])] for j in range(k - 1)] for p in perms])  # (P, K-1)
    chosen = torch.tensor([list(p[:k - 1]) for p in perms])  # (P, K-1)
    return logp[..., sub_id, chosen].sum(-1)


def _information_gain(w: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    p = logp.exp()
    pbar = torch.einsum("n,nqk->qk", w, p)
    h_cond = -torch.einsum("n,nqk->q", w, torch.special.xlogy(p, p))
    return -torch.special.xlogy(pbar, pbar).sum(-1) - h_cond


def _volume_removal(w: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    pbar = torch.einsum("n,nqk->qk", w, logp.exp())
    return 1.0 - (pbar ** 2).sum(-1)


def _max_regret(w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    # E_{r,r'}[G_r(best_r) - G_r(best_r')] = E_r[max_k G_r] - sum_k P(k is best) E_r[G_r(k)]
    best = torch.nn.functional.one_hot(g.argmax(-1), g.shape[-1]).to(g.dtype)
    p_best = torch.einsum("n,nqk->qk", w, best)
    return torch.einsum("n,nq->q", w, g.amax(-1)) - (p_best * torch.einsum("n,nqk->qk", w, g)).sum(-1)


def scores(belief: Any, candidates: Candidates, env: TabularMDP, *, criterion: str = "information_gain",
           human: Any = None, seed: Any = None, reward_model: Any = None) -> np.ndarray:
    """The criterion's value of every candidate query (larger is better).

    Args:
        belief: the current belief (anything :func:`as_samples` accepts), ``N`` samples.
        candidates: the ``Q`` candidate queries.
        env: the MDP the segments live in (discount, state and action ids).
        criterion: one of :data:`CRITERIA`.
        human: the model of the answerer (its ``choice_log_probs``); default
            ``human_models.Boltzmann(1.0)``. Parameters given as priors take each
            sample's drawn value.
        seed: seed or ``numpy.random.Generator`` (``thompson`` and ``random``).
        reward_model: passed to :func:`as_samples`.

    Returns:
        ``(Q,)`` float64 scores: mutual information in nats, at most ``log n_answers`` (``information_gain``),
        expected removed volume in ``[0, 1 - 1/n_answers]`` (``volume_removal``), expected
        regret in return units (``max_regret``), minus the summed regret of the
        options under the Thompson draws (``thompson``, 0 is ideal), uniform noise (``random``).

    Raises:
        ValueError: unknown criterion (listing the known ones), segments that do not fit ``env``.
    """
    _check_criterion(criterion)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if criterion == "random":
        return rng.random(candidates.n_queries)
    samples = as_samples(belief, env, reward_model=reward_model)
    with torch.no_grad():
        g = candidates.returns(env, samples.rewards)  # (N, M)
    return _scores(samples, g, candidates, criterion, _default_human(human), rng)


def _check_criterion(criterion: str) -> None:
    if criterion not in CRITERIA:
        raise ValueError(f"unknown query criterion {criterion!r}; known: {', '.join(CRITERIA)}")


def _default_human(human: Any) -> Any:
    if human is None:
        from human_models import Boltzmann

        return Boltzmann(1.0)
    return human


def _scores(samples: RewardSamples, g: torch.Tensor, candidates: Candidates, criterion: str, human: Any,
            rng: np.random.Generator) -> np.ndarray:
    """:func:`scores` given the returns ``g (N, M)`` of the pool under the samples."""
    if criterion == "random":
        return rng.random(candidates.n_queries)
    q = torch.from_numpy(candidates.queries.copy())
    with torch.no_grad():
        if criterion == "thompson":
            return _thompson(samples, g, q, rng)
        bound = _bound_human(human, samples)
        w = torch.from_numpy(samples.weights)
        n, (nq, k) = g.shape[0], q.shape
        ranking = candidates.answer == "ranking"
        step = max(1, _BLOCK // max(1, n * k * (2 ** k if ranking else 1)))
        out = []
        for lo in range(0, nq, step):  # chunks of queries bound memory; all samples at once
            gq = g[:, q[lo:lo + step]]  # (N, Q_chunk, K)
            if criterion == "max_regret":
                out.append(_max_regret(w, gq))
            else:
                logp = answer_log_probs(bound, gq, ranking=ranking)
                out.append(_information_gain(w, logp) if criterion == "information_gain" else _volume_removal(w, logp))
        return torch.cat(out).numpy()


def _thompson(samples: RewardSamples, g: torch.Tensor, q: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
    k = q.shape[1]
    n = len(samples)
    w = samples.weights
    draws = rng.choice(n, size=k, replace=bool(np.count_nonzero(w) < k), p=w)
    gd = g[torch.from_numpy(draws)]  # (K, M): the draws' returns of every pool segment
    # only segments that appear in some query can be shown: the draws' favourites among them
    shown = torch.unique(q)
    regret = gd[:, shown].amax(-1, keepdim=True) - gd  # (K, M) >= 0 on shown segments
    best = None
    for perm in itertools.permutations(range(k)):  # K! assignments of draws to options (K is small)
        total = regret[torch.arange(k), q[:, list(perm)]].sum(-1)  # (Q,)
        best = total if best is None else torch.minimum(best, total)
    return (-best).numpy()


@dataclass(frozen=True)
class Query:
    """The chosen query.

    Attributes:
        index: its row in ``candidates.queries``.
        options: ``(K,)`` segment indices it shows.
        score: its criterion value.
        criterion: the criterion's name.
        scores: ``(Q,)`` every candidate's value (asked ones excluded are ``-inf``).
    """

    index: int
    options: np.ndarray
    score: float
    criterion: str
    scores: np.ndarray = field(repr=False)


def next_query(belief: Any, candidates: Candidates, env: TabularMDP, *, criterion: str = "information_gain",
               human: Any = None, seed: Any = None, exclude: Sequence[int] = (), reward_model: Any = None) -> Query:
    """The candidate query the criterion values most.

    Args:
        belief: the current belief (an :class:`irl.Posterior`, :class:`RewardSamples`,
            a prior, or reward samples ``(N, S[, A])``).
        candidates: the candidate queries (:func:`make_candidates`, :meth:`Candidates.load`).
        env: the MDP.
        criterion: one of :data:`CRITERIA`.
        human: the model of the answerer (default ``Boltzmann(1.0)``).
        seed: seed or generator (``thompson``, ``random``).
        exclude: query indices not to ask again (e.g. those already asked).
        reward_model: passed to :func:`as_samples`.

    Returns:
        :class:`Query` (ties go to the lowest index).

    Raises:
        ValueError: unknown criterion, every query excluded, segments that do not fit ``env``.

    Example:
        >>> import irl, priors, human_models as hm
        >>> from irl.active import make_candidates, next_query
        >>> env = irl.envs.make("gridworld-5x5")
        >>> cands = make_candidates(env, n_trajectories=30, n_queries=100, seed=0)
        >>> q = next_query(priors.Gaussian(0.0, 1.0), cands, env, human=hm.Boltzmann(1.0))
        >>> 0 <= q.index < 100 and 0.0 < q.score <= 0.6932
        True

    References:
        Bıyık et al. (2019) (information gain); Sadigh et al. (2017) (volume removal);
        Wilde et al. (2020) (maximum regret).
    """
    s = np.array(scores(belief, candidates, env, criterion=criterion, human=human, seed=seed,
                        reward_model=reward_model), dtype=np.float64)
    return _pick(s, candidates, criterion, exclude)


def _pick(s: np.ndarray, candidates: Candidates, criterion: str, exclude: Sequence[int]) -> Query:
    s = np.array(s, dtype=np.float64)
    ex = np.asarray(list(exclude), dtype=np.int64)
    if ex.size:
        s[ex] = -np.inf
    if np.all(s == -np.inf):
        raise ValueError(f"every one of the {candidates.n_queries} candidate queries is excluded: nothing left to ask")
    i = int(np.argmax(s))
    return Query(i, candidates.queries[i].copy(), float(s[i]), criterion, s)


# ------------------------------------------------------------------ the loop
@dataclass(frozen=True, eq=False)
class ActiveRun:
    """The record of :func:`run`.

    Attributes:
        samples: the final belief (:class:`RewardSamples`).
        comparisons: every answer as :class:`demos.Comparisons` evidence (refit with any solver).
        queries: ``(T,)`` the asked query indices.
        answers: ``(T,)`` each answer: the chosen option, or the ordering's row of
            :meth:`Candidates.orders` for rankings.
        scores: ``(T,)`` the criterion value of each asked query.
        ess: ``(T + 1,)`` effective sample size at the start and after each answer's
            reweighting (before any re-sampling: the diagnostic of the weights).
        evd: ``(T + 1,)`` expected value difference of the plan for the posterior-mean
            reward, judged by the true reward (``nan`` with ``evaluate=False``).
        refits: the steps (answers so far) after which the samples were re-sampled.
        acceptance: mean Metropolis acceptance rate of each resample-move step.
    """

    samples: RewardSamples
    comparisons: Any
    queries: np.ndarray
    answers: np.ndarray
    scores: np.ndarray
    ess: np.ndarray
    evd: np.ndarray
    refits: tuple[int, ...] = ()
    acceptance: tuple[float, ...] = ()


def _evd(env: TabularMDP, samples: RewardSamples, true_reward: Any) -> float:
    from irl.metrics import expected_value_difference
    from irl.plan import plan

    return expected_value_difference(env, plan(env, samples.mean_reward), true_reward)


def _base_density(belief: Any, samples: RewardSamples) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The log-density the starting samples represent, as a function of ``theta (N, P)``, when it is known.

    A prior: its ``log_prob``. A posterior fitted in this session whose log-joint
    has no human parameters: the log-joint. Otherwise ``None`` (no moves).
    """
    from priors import is_prior

    if samples.theta is None:
        return None
    if is_prior(belief):
        return belief.log_prob
    joint = getattr(belief, "joint", None)
    if joint is not None and getattr(joint, "dim", None) == samples.theta.shape[1]:
        return lambda theta: joint(theta)
    return None


def resample_move(samples: RewardSamples, log_density: Callable[[torch.Tensor], torch.Tensor], reward_model: Any,
                  *, rng: Any = None, steps: int = 20) -> tuple[RewardSamples, float]:
    """Resample by weight, then move every particle by random-walk Metropolis steps (all particles at once).

    Systematic resampling keeps the particles the answers favour; the moves
    (Gaussian proposals scaled ``2.38 / sqrt(P)`` times the particles' weighted
    standard deviation per parameter, shrunk or widened between steps to keep the
    population's acceptance rate in 0.15-0.45) target ``log_density`` and restore
    distinct samples, so the belief keeps its effective sample size (resample-move
    sequential Monte Carlo).

    Args:
        samples: weighted samples with ``theta`` ``(N, P)``.
        log_density: ``theta (N, P) -> (N,)`` the unnormalised log-posterior (torch).
        reward_model: maps ``theta`` to rewards ``(N, S, A)``.
        rng: seed or generator.
        steps: Metropolis steps per particle.

    Returns:
        ``(samples, acceptance)``: equally weighted moved samples and the mean acceptance rate.

    Raises:
        ValueError: samples without ``theta``.

    References:
        Gilks & Berzuini (2001), "Following a moving target: Monte Carlo inference
        for dynamic Bayesian models", JRSS B. Chopin (2002), "A sequential particle
        filter method for static models", Biometrika.
    """
    if samples.theta is None:
        raise ValueError("resample_move needs the samples' reward parameters theta (N, P)")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n, p = samples.theta.shape
    w = samples.weights
    idx = np.searchsorted(np.cumsum(w), (rng.random() + np.arange(n)) / n).clip(max=n - 1)
    mean = w @ samples.theta
    scale = torch.from_numpy(2.38 / math.sqrt(p) * np.maximum(np.sqrt(w @ (samples.theta - mean) ** 2), 1e-8))
    theta = torch.from_numpy(samples.theta[idx].copy())
    accepted = 0.0
    with torch.no_grad():
        cur = log_density(theta)
        for _ in range(steps):
            prop = theta + scale * torch.from_numpy(rng.standard_normal((n, p)))
            new = log_density(prop)
            ok = torch.from_numpy(np.log(rng.random(n))) < (new - cur)  # NaN proposals are refused
            theta = torch.where(ok[:, None], prop, theta)
            cur = torch.where(ok, new, cur)
            rate = float(ok.double().mean())
            accepted += rate
            # the population's acceptance tunes the next step's scale (each step is a valid Metropolis kernel)
            scale = scale * (0.7 if rate < 0.15 else 1.3 if rate > 0.45 else 1.0)
        rewards = reward_model(theta).numpy()
    human = {k: v[idx] for k, v in samples.human.items()}
    return RewardSamples(rewards, None, human, theta.numpy()), accepted / max(steps, 1)


def run(env: TabularMDP, belief: Any, candidates: Candidates, human: Any, true_reward: Any, n_queries: int, *,
        criterion: str = "information_gain", answerer: Any = None, seed: int | None = None, n_samples: int = 1000,
        min_ess: float | None = None, refit: Callable[[Any], Any] | None = None, moves: int = 20,
        reward_model: Any = None, evaluate: bool = True) -> ActiveRun:
    """Ask ``n_queries`` questions of a simulated human, updating the belief after each answer.

    Each step picks :func:`next_query` (never a query already asked), draws the
    answer from ``answerer``'s choice rule on the true reward, and multiplies each
    sample's weight by the likelihood of that answer under ``human`` (importance
    reweighting: exact Bayes' rule on the fixed sample set). Each informative
    answer roughly halves the effective sample size, so when it falls below
    ``min_ess`` the samples are renewed:

    * by ``refit(comparisons)`` if given (e.g. an :class:`irl.BayesianIRL` fit on
      all answers so far and the original evidence), returning a new belief;
    * else, when the starting belief's density is known (a prior, or a posterior
      fitted in this session without human parameters), by :func:`resample_move`
      targeting that density times the likelihood of all answers so far;
    * else a :class:`WeightDegeneracyWarning` is raised (once) and the loop goes on
      with the degenerate weights.

    Args:
        env: the MDP.
        belief: the starting belief (a prior, a posterior, reward samples).
        candidates: the candidate queries.
        human: the model of the answerer used for the update (any human model with
            ``choice_log_probs``), ``None`` for ``Boltzmann(1.0)``.
        true_reward: the reward the simulated human judges by ``(S,)``/``(S, A)``.
        n_queries: number of questions ``T``.
        criterion: one of :data:`CRITERIA`.
        answerer: the simulated human (default ``human``; another model studies misspecification).
        seed: random seed (prior draws, answers, Thompson draws, random queries, moves).
        n_samples: draws from a prior belief.
        min_ess: ESS below which to renew the samples or warn (default ``min(100, N / 2)``).
        refit: ``comparisons -> belief``, re-sampling from the answers so far.
        moves: Metropolis steps per particle of :func:`resample_move`.
        reward_model: maps parameters to rewards (default: the fit's or ``env``'s default).
        evaluate: record the expected value difference after every answer.

    Returns:
        :class:`ActiveRun`.

    Raises:
        ValueError: ``n_queries`` larger than the number of candidates, unknown criterion.

    Example:
        >>> import irl, priors, human_models as hm
        >>> from irl.active import make_candidates, run
        >>> env = irl.envs.make("gridworld-5x5")
        >>> cands = make_candidates(env, n_trajectories=40, n_queries=300, seed=0)
        >>> res = run(env, priors.Gaussian(0.0, 1.0), cands, hm.Boltzmann(5.0), env.true_reward, 10, seed=0)
        >>> res.evd.shape, bool(res.evd[-1] < 0.1 * res.evd[0])
        ((11,), True)

    References:
        Sadigh et al. (2017); Bıyık et al. (2019); Bıyık et al. (2022) (APReL);
        Chopin (2002) (resample-move).
    """
    _check_criterion(criterion)
    if not 1 <= n_queries <= candidates.n_queries:
        raise ValueError(f"n_queries must lie in 1..{candidates.n_queries} (the number of candidates, each asked "
                         f"at most once): got {n_queries}")
    rng = np.random.default_rng(seed)
    human = _default_human(human)
    answerer = human if answerer is None else answerer
    samples = as_samples(belief, env, reward_model=reward_model, n=n_samples, seed=seed)
    base = _base_density(belief, samples) if refit is None else None
    model = _reward_model_of(belief, env, reward_model) if base is not None else None
    floor = min(100.0, len(samples) / 2) if min_ess is None else float(min_ess)
    with torch.no_grad():
        truth = candidates.returns(env, true_reward)  # (M,)
        g = candidates.returns(env, samples.rewards)  # (N, M), fixed while only the weights change
    asked: list[int] = []
    answers: list[int] = []
    picked: list[float] = []
    ess = [samples.ess]
    evd = [_evd(env, samples, true_reward) if evaluate else float("nan")]
    refits: list[int] = []
    acceptance: list[float] = []
    warned = False
    for t in range(n_queries):
        query = _pick(_scores(samples, g, candidates, criterion, human, rng), candidates, criterion, asked)
        opts = torch.from_numpy(query.options)
        with torch.no_grad():
            ranking = candidates.answer == "ranking"
            p = answer_log_probs(answerer, truth[opts], ranking=ranking).exp().numpy()
            answer = int(rng.choice(candidates.n_answers, p=p / p.sum()))
            ll = answer_log_probs(_bound_human(human, samples), g[:, opts], ranking=ranking)[:, answer]
        samples = samples.reweighted(ll.numpy())
        asked.append(query.index)
        answers.append(answer)
        picked.append(query.score)
        ess.append(samples.ess)
        if samples.ess < floor and (refit is not None or base is not None):
            if refit is not None:
                samples = as_samples(refit(candidates.comparisons(asked, answers)), env, reward_model=reward_model)
            else:
                samples, rate = resample_move(samples, _answers_density(base, model, candidates, env, human,
                                                                        samples, asked, answers),
                                              model, rng=rng, steps=moves)
                acceptance.append(rate)
            with torch.no_grad():
                g = candidates.returns(env, samples.rewards)
            refits.append(t + 1)
        elif samples.ess < floor and not warned:
            warnings.warn(f"the effective sample size fell to {samples.ess:.1f} of {len(samples)} samples after "
                          f"{t + 1} answers (below {floor:g}) and the starting belief's density is unknown, so the "
                          f"samples cannot be moved: the reweighted belief rests on few samples. Start from more "
                          f"samples, or pass refit= to re-sample the posterior from the answers",
                          WeightDegeneracyWarning, stacklevel=2)
            warned = True
        evd.append(_evd(env, samples, true_reward) if evaluate else float("nan"))
    return ActiveRun(samples, candidates.comparisons(asked, answers), np.array(asked), np.array(answers),
                     np.array(picked), np.array(ess), np.array(evd), tuple(refits), tuple(acceptance))


def _answers_density(base: Callable[[torch.Tensor], torch.Tensor], model: Any, candidates: Candidates,
                     env: TabularMDP, human: Any, samples: RewardSamples, asked: list[int],
                     answers: list[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``theta -> base(theta) + sum_t log P(answer_t | query_t, reward(theta))``, batched over ``theta (N, P)``."""
    opts = torch.from_numpy(candidates.queries[asked].copy())  # (T, K)
    ans = torch.tensor(answers)
    steps = torch.arange(len(asked))
    bound = _bound_human(human, RewardSamples(samples.rewards[:1]))  # fixed parameters only: moves keep no draws of phi

    def density(theta: torch.Tensor) -> torch.Tensor:
        g = candidates.returns(env, model(theta))  # (N, M)
        logp = answer_log_probs(bound, g[:, opts], ranking=candidates.answer == "ranking")  # (N, T, answers)
        return base(theta) + logp[:, steps, ans].sum(-1)

    return density
