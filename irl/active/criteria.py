"""Scoring candidate queries: the answer model and the criteria (information gain, volume removal, max
regret, Thompson, random), and :func:`next_query`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from irl.mdp import TabularMDP
from irl.active.samples import CRITERIA, RewardSamples, _BLOCK, as_samples
from irl.active.candidates import Candidates


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
