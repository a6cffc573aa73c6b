"""The active learning loop: ask a simulated human, reweight the samples, renew them by resample-move
or a refit when they degenerate.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from irl.mdp import TabularMDP
from irl.active.samples import RewardSamples, WeightDegeneracyWarning, _reward_model_of, as_samples
from irl.active.candidates import Candidates
from irl.active.criteria import _bound_human, _check_criterion, _default_human, _pick, _scores, answer_log_probs, scores


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
