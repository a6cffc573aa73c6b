"""Candidate queries: a pool of trajectory segments and the ``(Q, K)`` queries over it, their files,
and :func:`make_candidates`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from irl.mdp import TabularMDP
from irl.active.samples import ANSWERS, RewardSamples, _BLOCK, as_samples


_FORMAT = "pluggable-irl/queries"

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
