"""Which human model explains the data best? Held-out log-likelihood and information criteria.

Each candidate (a human model, optionally with its own reward model) is fitted
by MAP on training evidence; it is scored by the log-likelihood of held-out
evidence at the fitted parameters and by BIC on the training evidence. Human
parameters given as priors are fitted too (and counted as free parameters);
discrete ones are summed out.

For posteriors (:class:`irl.Posterior` from :class:`irl.BayesianIRL`),
:func:`pointwise_log_likelihood` gives the log-likelihood of every observation
at every draw, and :func:`waic` and :func:`psis_loo` estimate the expected log
predictive density of new data from it (higher is better;
:meth:`InformationCriterion.difference` gives a paired standard error).
:func:`compare_posteriors` does all of it for a set of candidate human models:
it samples each one's posterior on all of the data and ranks them by PSIS-LOO.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch
from irl.evidence import Evidence
from irl.mdp import TabularMDP
from irl.posterior import ConvergenceWarning
from irl.rewards import RewardModel, default_reward_model
from irl.solvers.base import IdentifiabilityWarning, LocalOptimaWarning, LogJoint, RewardEstimate, n_observations

__all__ = ["ModelScore", "compare", "bic", "held_out_log_likelihood", "pointwise_log_likelihood", "waic",
           "psis", "psis_loo", "InformationCriterion", "PosteriorScore", "compare_posteriors", "PARETO_K_THRESHOLD"]

#: Above this Pareto shape ``k`` the PSIS-LOO estimate for an observation is unreliable (Vehtari et al. 2017).
PARETO_K_THRESHOLD = 0.7


def bic(log_likelihood: float, n_params: int, n_observations: int) -> float:
    """Bayesian information criterion ``-2 log L + k log n`` (lower is better).

    References:
        Schwarz (1978), "Estimating the dimension of a model", Annals of Statistics.
    """
    return -2.0 * float(log_likelihood) + int(n_params) * np.log(max(int(n_observations), 1))


def held_out_log_likelihood(estimate: RewardEstimate, env: TabularMDP, data: Any, human: Any,
                            reward_model: RewardModel | None = None) -> float:
    """Log-likelihood of ``data`` at a fitted estimate (its reward and human parameters).

    Args:
        estimate: a :class:`RewardEstimate` from :class:`irl.MaxEnt` fitted with ``human``.
        env: the MDP of ``data``.
        data: held-out evidence.
        human: the same human model object the estimate was fitted with.
        reward_model: the reward model used in the fit (default as in the fit).
    """
    model = reward_model or default_reward_model(env)
    joint = LogJoint([Evidence(env, data, human)], model)
    x = np.asarray(estimate.info.get("x", estimate.theta), dtype=np.float64)
    if x.size != joint.dim:
        raise ValueError(f"the estimate has {x.size} parameters but this human/reward model needs {joint.dim}: "
                         f"pass the human model the estimate was fitted with")
    with torch.no_grad():
        return float(joint.log_likelihood(torch.from_numpy(x)))


@dataclass
class ModelScore:
    """One row of a model comparison.

    Attributes:
        name: the candidate's label.
        train_log_likelihood: at the MAP fit, on the training evidence.
        held_out_log_likelihood: at the MAP fit, on the held-out evidence (``nan`` if none).
        bic: BIC on the training evidence.
        n_params: free parameters (reward + continuous human parameters).
        estimate: the fit (``estimate.starts``, ``estimate.n_starts_at_best``,
            ``estimate.flat_directions`` tell how far to trust it).
        nests: the other candidates this one contains (see :func:`human_models.nesting`):
            they were fitted first and their optima are among this fit's starts, so its
            training log-likelihood is never below theirs.
    """

    name: str
    train_log_likelihood: float
    held_out_log_likelihood: float
    bic: float
    n_params: int
    estimate: RewardEstimate
    nests: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        """Whether the fit's optimiser converged, its starts agreed and no nested model fits better."""
        return bool(self.estimate.converged)

    def problems(self) -> list[str]:
        """Why this row's numbers may not be trusted, one message per problem (empty when all is well)."""
        return [f"candidate {self.name!r}: {p}" for p in self.estimate.problems]


def compare(candidates: Mapping[str, Any], env: TabularMDP, train: Any, test: Any = None, *,
            reward_model: RewardModel | None = None, prior: Any = None,
            fit: Callable[..., RewardEstimate] | None = None, n_starts: int | None = None, seed: int = 0,
            check: bool = True) -> list[ModelScore]:
    """Fit every candidate human model and rank them (best first).

    Ranking is by held-out log-likelihood when ``test`` is given, else by BIC.
    A candidate that contains another one (``Noisy(m, epsilon=prior)`` contains
    ``m``; see :func:`human_models.nesting`) is fitted after it and started at its
    optimum (:class:`irl.MaxEnt` ``nested_fits``), so on the training data it never
    scores below the model it contains; every fit also runs the solver's random
    restarts (``n_starts``), and each row says how many starts reached its best value.

    Args:
        candidates: ``{label: human model}``.
        env: the MDP of the evidence.
        train: training evidence (e.g. :class:`demos.Trajectories`).
        test: held-out evidence of the same kind, or ``None``.
        reward_model: shared reward model (default linear in features / tabular).
        prior: reward prior for the MAP fits.
        fit: ``fit(human) -> RewardEstimate`` to override the default MaxEnt fit.
        n_starts: optimiser starts per candidate (see :class:`irl.MaxEnt`; ``None``: 1 for
            concave problems, 3 otherwise).
        seed: seed of the random starts.
        check: warn about each row's :meth:`ModelScore.problems`
            (:class:`irl.LocalOptimaWarning`, :class:`irl.IdentifiabilityWarning`).

    Returns:
        A list of :class:`ModelScore`, best first.

    Example:
        >>> import irl, human_models as hm, demos
        >>> env = irl.envs.make("gridworld-5x5")
        >>> d = demos.simulate(env, hm.Boltzmann(5.0), env.true_reward, n=60, seed=0)
        >>> rows = irl.compare({"boltzmann": hm.Boltzmann(5.0), "myopic": hm.Myopic(horizon=2, beta=5.0)},
        ...                    env, d.subset(slice(0, 40)), d.subset(slice(40, None)))
        >>> [r.name for r in rows]
        ['boltzmann', 'myopic']
    """
    from human_models.base import nesting
    from irl.solvers.maxent import MaxEnt

    if not candidates:
        raise ValueError("compare needs at least one candidate human model")
    model = reward_model or default_reward_model(env)
    contains = {name: [other for other, h in candidates.items()
                       if other != name and repr(h) != repr(human) and nesting(human, h, env) is not None]
                for name, human in candidates.items()}
    fits: dict[str, RewardEstimate] = {}
    for name in _nested_first(contains):
        human = candidates[name]
        if fit is not None:
            fits[name] = fit(human)
            continue
        solver = MaxEnt(human=human, reward_model=model, prior=prior, n_starts=n_starts, seed=seed, check=False)
        fits[name] = solver.fit(env, train, nested_fits=[(candidates[o], fits[o]) for o in contains[name]
                                                         if o in fits])
    rows = []
    for name, human in candidates.items():
        est = fits[name]
        k = int(est.info.get("n_free_params", est.theta.size))
        n = int(est.info.get("n_observations", n_observations(train)))
        held = (held_out_log_likelihood(est, env, test, human, model) if test is not None else float("nan"))
        rows.append(ModelScore(name=name, train_log_likelihood=est.log_likelihood, held_out_log_likelihood=held,
                               bic=bic(est.log_likelihood, k, n), n_params=k, estimate=est,
                               nests=list(contains[name])))
    if check:
        for r in rows:
            for p in r.problems():
                warnings.warn(p, IdentifiabilityWarning if "flat directions" in p else LocalOptimaWarning,
                              stacklevel=2)
    key = (lambda r: -r.held_out_log_likelihood) if test is not None else (lambda r: r.bic)
    return sorted(rows, key=key)


def _nested_first(contains: Mapping[str, list[str]]) -> list[str]:
    """Candidate names ordered so that every model comes after the models it contains (input order otherwise)."""
    order: list[str] = []
    pending = list(contains)
    while pending:
        ready = [n for n in pending if all(o in order for o in contains[n] if o not in _cycle(n, contains))]
        pick = ready[0] if ready else pending[0]
        order.append(pick)
        pending.remove(pick)
    return order


def _cycle(name: str, contains: Mapping[str, list[str]]) -> set[str]:
    """Candidates that also contain ``name`` (equivalent models): no order is needed between them."""
    return {o for o in contains[name] if name in contains.get(o, [])}


# ------------------------------------------------------------- posteriors: WAIC and PSIS-LOO
@dataclass
class InformationCriterion:
    """An estimate of the expected log predictive density (elpd) of new data, from posterior draws.

    Attributes:
        method: ``"waic"`` or ``"psis-loo"``.
        elpd: estimated elpd (higher is better); ``-2 * elpd`` is on the deviance scale.
        se: its standard error, ``sqrt(n * var(pointwise))``.
        p_eff: effective number of parameters.
        pointwise: ``(n,)`` per-observation contributions to ``elpd``.
        pareto_k: ``(n,)`` PSIS tail shapes (``psis-loo`` only); above 0.7 the
            estimate for that observation is unreliable.
    """

    method: str
    elpd: float
    se: float
    p_eff: float
    pointwise: np.ndarray
    pareto_k: np.ndarray | None = None

    def difference(self, other: "InformationCriterion") -> tuple[float, float]:
        """``(elpd_self - elpd_other, its standard error)`` from the paired pointwise values."""
        if self.pointwise.shape != other.pointwise.shape:
            raise ValueError(f"the criteria were computed on different data: {self.pointwise.shape} vs "
                             f"{other.pointwise.shape} observations")
        d = self.pointwise - other.pointwise
        return float(d.sum()), float(np.sqrt(d.size * d.var()))


def _logsumexp(a: np.ndarray, axis: int = 0) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def pointwise_log_likelihood(posterior: Any, env: TabularMDP, data: Any, human: Any,
                             reward_model: RewardModel | None = None, *, max_draws: int | None = 1000
                             ) -> np.ndarray:
    """``(draws, n)`` log-likelihood of each observation of ``data`` at each posterior draw.

    An observation is one element of ``data`` (an episode of trajectories, one
    choice of comparisons, ...), taken with ``data.subset(i)``.

    Args:
        posterior: an :class:`irl.Posterior` fitted with ``human`` (it needs its ``unconstrained`` draws).
        env: the MDP of ``data``.
        data: evidence with ``len`` and ``subset``.
        human: the human model object of the fit (its parameters given as priors map the draws).
        reward_model: the reward model of the fit (default as in the fit).
        max_draws: use at most this many draws, evenly spaced over the chains (``None``: all).

    Returns:
        ``(draws, n)`` array.

    Raises:
        ValueError: no unconstrained draws, a size mismatch, or a summed-out discrete human
            parameter (shared by all observations, so the likelihood does not factorise).
    """
    model = reward_model or default_reward_model(env)
    u = getattr(posterior, "unconstrained", None)
    if u is None:
        raise ValueError("the posterior has no unconstrained draws (fit it with irl.BayesianIRL)")
    x = np.asarray(u, dtype=np.float64).reshape(-1, np.shape(u)[-1])
    if max_draws is not None and x.shape[0] > max_draws:
        x = x[np.linspace(0, x.shape[0] - 1, max_draws).round().astype(np.int64)]
    n = len(data)
    out = np.empty((x.shape[0], n))
    xt = torch.from_numpy(np.ascontiguousarray(x))
    for i in range(n):
        joint = LogJoint([Evidence(env, data.subset(np.array([i])), human)], model)
        if joint.discrete_names():
            raise ValueError(f"pointwise log-likelihoods need continuous human parameters; "
                             f"{joint.discrete_names()} are summed out jointly over all observations")
        if joint.dim != x.shape[1]:
            raise ValueError(f"the posterior has {x.shape[1]} coordinates but this human/reward model needs "
                             f"{joint.dim}: pass the human model the posterior was fitted with")
        with torch.no_grad():
            out[:, i] = joint.log_likelihood(xt).numpy()
    return out


def waic(loglik: Any) -> InformationCriterion:
    """Widely applicable information criterion from ``(draws, n)`` pointwise log-likelihoods.

    ``elpd_waic = sum_i [log mean_s p(y_i | theta_s) - var_s log p(y_i | theta_s)]``.

    Example:
        >>> import numpy as np
        >>> ll = np.random.default_rng(0).normal(-1.0, 0.1, size=(400, 20))
        >>> w = waic(ll)
        >>> bool(abs(w.elpd + 20.1) < 0.3 and 0.1 < w.p_eff < 0.3)
        True

    References:
        Watanabe (2010), JMLR 11; Vehtari, Gelman & Gabry (2017), "Practical Bayesian model
        evaluation using leave-one-out cross-validation and WAIC", Statistics and Computing.
    """
    ll = np.asarray(loglik, dtype=np.float64)
    if ll.ndim != 2 or ll.shape[0] < 2:
        raise ValueError(f"loglik must have shape (draws >= 2, n): got {ll.shape}")
    lppd = _logsumexp(ll, 0) - np.log(ll.shape[0])
    p = ll.var(axis=0, ddof=1)
    pw = lppd - p
    return InformationCriterion("waic", float(pw.sum()), float(np.sqrt(pw.size * pw.var())), float(p.sum()), pw)


def _gpd_fit(x: np.ndarray) -> tuple[float, float]:
    """Shape ``k`` and scale ``sigma`` of a generalised Pareto fit to exceedances ``x`` (ascending).

    The empirical-Bayes estimate of Zhang & Stephens (2009), with the weak prior
    on ``k`` used by Vehtari et al. (2017).
    """
    n = x.size
    m = 30 + int(np.sqrt(n))
    j = np.arange(1, m + 1)
    quart = x[max(int(np.floor(n / 4 + 0.5)) - 1, 0)]
    b = 1.0 / x[-1] + (1.0 - np.sqrt(m / (j - 0.5))) / (3.0 * quart)
    kb = np.mean(np.log1p(-b[:, None] * x[None, :]), axis=1)
    lik = n * (np.log(-b / kb) - kb - 1.0)
    w = 1.0 / np.sum(np.exp(lik[None, :] - lik[:, None]), axis=1)
    b_post = float(np.sum(b * w))
    k = float(np.mean(np.log1p(-b_post * x)))
    sigma = -k / b_post
    k = (n * k + 10 * 0.5) / (n + 10)
    return k, sigma


def psis(log_ratios: Any) -> tuple[np.ndarray, np.ndarray]:
    """Pareto-smoothed importance sampling: normalised log-weights ``(draws, n)`` and ``k (n,)``.

    For each column, the largest ``M = min(0.2 S, 3 sqrt(S))`` importance ratios are
    replaced by the expected order statistics of a generalised Pareto distribution
    fitted to them, then truncated at the largest raw ratio.

    Example:
        >>> import numpy as np
        >>> lr = np.random.default_rng(1).normal(size=(1000, 1))
        >>> lw, k = psis(lr)
        >>> bool(np.isclose(np.exp(lw).sum(), 1.0) and k[0] < 0.5)
        True

    References:
        Vehtari, Simpson, Gelman, Yao & Gabry (2024), "Pareto smoothed importance sampling", JMLR;
        Zhang & Stephens (2009), "A new and efficient estimation method for the generalized Pareto
        distribution", Technometrics.
    """
    lr = np.array(log_ratios, dtype=np.float64)
    if lr.ndim != 2:
        raise ValueError(f"log_ratios must have shape (draws, n): got {lr.shape}")
    s, n = lr.shape
    m = int(min(np.ceil(0.2 * s), np.ceil(3 * np.sqrt(s))))
    ks = np.full(n, np.inf)
    for i in range(n):
        lw = lr[:, i] - lr[:, i].max()
        order = np.argsort(lw)
        if m >= 5 and s > m + 1:
            tail = order[-m:]
            cutoff = lw[order[-m - 1]]
            exceed = np.exp(lw[tail]) - np.exp(cutoff)
            if np.any(exceed > 0):
                exceed = np.maximum(exceed, 1e-300)
                k, sigma = _gpd_fit(np.sort(exceed))
                if np.isfinite(k) and sigma > 0:
                    p = (np.arange(1, m + 1) - 0.5) / m
                    q = sigma * np.expm1(-k * np.log1p(-p)) / k if abs(k) > 1e-12 else -sigma * np.log1p(-p)
                    lw[tail] = np.minimum(np.log(q + np.exp(cutoff)), 0.0)
                    ks[i] = k
        lr[:, i] = lw - _logsumexp(lw)
    return lr, ks


def psis_loo(loglik: Any) -> InformationCriterion:
    """Leave-one-out cross-validation by Pareto-smoothed importance sampling.

    ``elpd_loo = sum_i log sum_s w_is p(y_i | theta_s)`` with ``w_is`` the
    smoothed, normalised weights of the ratios ``1 / p(y_i | theta_s)``.

    Example:
        >>> import numpy as np
        >>> ll = np.random.default_rng(0).normal(-1.0, 0.1, size=(400, 20))
        >>> loo = psis_loo(ll)
        >>> bool(abs(loo.elpd - waic(ll).elpd) < 0.05 and np.all(loo.pareto_k < 0.5))
        True

    References:
        Vehtari, Gelman & Gabry (2017), "Practical Bayesian model evaluation using leave-one-out
        cross-validation and WAIC", Statistics and Computing 27.
    """
    ll = np.asarray(loglik, dtype=np.float64)
    if ll.ndim != 2 or ll.shape[0] < 2:
        raise ValueError(f"loglik must have shape (draws >= 2, n): got {ll.shape}")
    lw, k = psis(-ll)
    pw = _logsumexp(lw + ll, 0)
    lppd = _logsumexp(ll, 0) - np.log(ll.shape[0])
    return InformationCriterion("psis-loo", float(pw.sum()), float(np.sqrt(pw.size * pw.var())),
                                float((lppd - pw).sum()), pw, k)


# ------------------------------------------------------- posteriors: ranking human models
@dataclass
class PosteriorScore:
    """One row of :func:`compare_posteriors`.

    Attributes:
        name: the candidate's label.
        loo: PSIS-LOO estimate of the elpd (``loo.pareto_k`` has shape ``(n,)``).
        waic: WAIC estimate of the same quantity.
        elpd_diff: ``elpd_loo`` of this row minus that of the best row (``<= 0``; 0 for the best).
        elpd_diff_se: standard error of ``elpd_diff`` from the paired pointwise values (0 for the best).
        max_pareto_k: the largest Pareto ``k`` of ``loo``; above :data:`PARETO_K_THRESHOLD`
            (0.7) ``elpd_loo`` is unreliable.
        n_params: free dimensions of the posterior (reward + continuous human parameters).
        converged: whether the posterior passed the R-hat/ESS/divergence rule of
            :meth:`irl.Posterior.problems`.
        posterior: the fitted :class:`irl.Posterior`.
    """

    name: str
    loo: InformationCriterion
    waic: InformationCriterion
    elpd_diff: float
    elpd_diff_se: float
    max_pareto_k: float
    n_params: int
    converged: bool
    posterior: Any

    @property
    def human_params(self) -> dict[str, float]:
        """Posterior means of the continuous human parameters, by name (empty if all are fixed)."""
        return {k: self.posterior.mean(k) for k in self.posterior.human}

    def problems(self) -> list[str]:
        """Why this row's numbers may not be trusted, one message per problem (empty when all is well)."""
        out = []
        if not self.converged:
            why = "; ".join(f"{k}: {', '.join(v)}" for k, v in self.posterior.problems().items())
            out.append(f"candidate {self.name!r}: the posterior has not mixed ({why}); draw more samples or "
                       f"a longer warmup before trusting its elpd")
        if self.max_pareto_k > PARETO_K_THRESHOLD:
            bad = int(np.sum(self.loo.pareto_k > PARETO_K_THRESHOLD))
            out.append(f"candidate {self.name!r}: PSIS-LOO is unreliable for {bad} of {self.loo.pareto_k.size} "
                       f"observations (max Pareto k {self.max_pareto_k:.2f} > {PARETO_K_THRESHOLD}), which are "
                       f"highly influential; compare on held-out data instead (irl.compare with a test set, "
                       f"`irl compare --solver maxent`)")
        return out


def _require_factorising(name: str, joint: LogJoint) -> None:
    """Refuse a candidate whose likelihood has no per-observation terms (a summed-out discrete parameter)."""
    discrete = joint.discrete_names()
    if discrete:
        raise ValueError(f"candidate {name!r}: the discrete human parameter(s) {', '.join(discrete)} are summed out "
                         f"over all observations jointly, so there are no pointwise log-likelihoods for PSIS-LOO "
                         f"or WAIC; give the parameter a value (one candidate per value), or compare by MAP "
                         f"(irl.compare, `irl compare --solver maxent`)")


def compare_posteriors(candidates: Mapping[str, Any], env: TabularMDP, data: Any, *,
                       reward_model: RewardModel | None = None, prior: Any = None, samples: int = 500,
                       chains: int = 4, warmup: int | None = None, seed: int = 0, sampler: str = "hmc",
                       check: bool = True, callback: Callable[[str, int, int, str], None] | None = None,
                       **sampler_options: Any) -> list[PosteriorScore]:
    """Sample every candidate's posterior on all of ``data`` and rank them by PSIS-LOO (best first).

    Each candidate human model is fitted with :class:`irl.BayesianIRL` (the reward
    and the human parameters given as continuous priors). The ``(draws, n)``
    log-likelihood of each of the ``n`` observations of ``data`` at each draw (at
    most 1000 draws, evenly spaced over the chains; see :func:`pointwise_log_likelihood`)
    gives the expected log predictive density (elpd) of new data, estimated by
    PSIS-LOO and by WAIC. No data are held out: leave-one-out is estimated from the
    posterior itself. Prefer this to :func:`compare` when the data are too few to spare a
    test set, or when the candidates' parameters are uncertain (the posterior,
    not one point, is scored, and ``p_loo`` measures the effective complexity).

    Args:
        candidates: ``{label: human model}``; human parameters given as continuous priors are sampled.
        env: the MDP of ``data``.
        data: evidence with ``len`` and ``subset`` (e.g. :class:`demos.Trajectories`, one
            observation per episode).
        reward_model: shared reward model (default linear in features / tabular).
        prior: reward prior (default ``priors.Gaussian(0, 1)``).
        samples: post-warmup draws per chain.
        chains: chains per candidate.
        warmup: adaptation iterations per chain (default ``samples``).
        seed: sampler seed, the same for every candidate.
        sampler: ``"hmc"``, ``"policywalk"`` or ``"nuts"`` (see :class:`irl.BayesianIRL`).
        check: warn (:class:`irl.ConvergenceWarning`) for every row with :meth:`PosteriorScore.problems`:
            a posterior that has not mixed, or a Pareto ``k`` above 0.7.
        callback: called as ``callback(label, iteration, total, phase)`` while a candidate is
            sampled (``phase`` is ``"warmup"`` or ``"sampling"``), e.g. for a progress bar.
        **sampler_options: passed to :class:`irl.BayesianIRL`, e.g. ``max_leapfrog``.

    Returns:
        A list of :class:`PosteriorScore`, best ``elpd_loo`` first.

    Raises:
        ValueError: no candidates, or a candidate with a summed-out discrete human parameter
            (its likelihood does not split into per-observation terms).

    Example:
        >>> import irl, human_models as hm, demos
        >>> env = irl.envs.make("gridworld-5x5")
        >>> data = demos.simulate(env, hm.Noisy(hm.Boltzmann(3.0), epsilon=0.4), env.true_reward, n=30, seed=7)
        >>> rows = irl.compare_posteriors({"boltzmann": hm.Boltzmann(3.0),
        ...                                "noisy": hm.Noisy(hm.Boltzmann(3.0), epsilon=0.4)},
        ...                               env, data, samples=40, chains=2, seed=0, check=False, max_leapfrog=16)
        >>> [r.name for r in rows], rows[0].elpd_diff, rows[0].loo.pareto_k.shape
        (['noisy', 'boltzmann'], 0.0, (30,))
        >>> bool(rows[1].elpd_diff < -2 * rows[1].elpd_diff_se)
        True

    References:
        Vehtari, Gelman & Gabry (2017), "Practical Bayesian model evaluation using leave-one-out
        cross-validation and WAIC", Statistics and Computing 27; Watanabe (2010), "Asymptotic
        equivalence of Bayes cross validation and widely applicable information criterion in
        singular learning theory", JMLR 11.
    """
    from irl.solvers.bayesian import BayesianIRL

    if not candidates:
        raise ValueError("compare_posteriors needs at least one candidate human model")
    solvers = {name: BayesianIRL(human, prior="default" if prior is None else prior, reward_model=reward_model,
                                 sampler=sampler, **sampler_options) for name, human in candidates.items()}
    for name, solver in solvers.items():  # before any sampling: fail fast
        _require_factorising(name, solver.log_joint(env, data))
    scored = []
    for name, solver in solvers.items():
        progress = None if callback is None else functools.partial(callback, name)
        post = solver.fit(env, data, samples=samples, chains=chains, warmup=warmup, seed=seed, check=False,
                          callback=progress)
        ll = pointwise_log_likelihood(post, env, data, solver.human, reward_model)
        scored.append((name, post, psis_loo(ll), waic(ll)))
    scored.sort(key=lambda row: -row[2].elpd)
    best = scored[0][2]
    rows = [PosteriorScore(name, loo, w, *loo.difference(best), max_pareto_k=float(np.max(loo.pareto_k)),
                           n_params=int(post.unconstrained.shape[-1]), converged=post.converged, posterior=post)
            for name, post, loo, w in scored]
    if check:
        for msg in (m for r in rows for m in r.problems()):
            warnings.warn(msg, ConvergenceWarning, stacklevel=2)
    return rows
