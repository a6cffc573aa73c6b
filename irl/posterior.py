"""Posterior draws with diagnostics: the result type of Bayesian IRL.

:class:`Posterior` holds draws of the reward parameters and of the human's own
parameters (``chains x draws``), summarises them (means, quantiles, credible
intervals), diagnoses them (rank-normalised split R-hat, bulk and tail effective
sample sizes) and turns them into behaviour (posterior-mean reward, posterior
predictive policy). The diagnostics are plain numpy functions, usable on any
``(chains, draws)`` array: :func:`rhat`, :func:`ess_bulk`, :func:`ess_tail`,
:func:`ess`.

Convergence rule (Vehtari et al. 2021, Sec. 4-5): a parameter is flagged when its
rank-normalised split R-hat exceeds 1.01, or its bulk or tail effective sample
size is below 100 per chain (400 for the recommended 4 chains), or when any
post-warmup transition diverged (Betancourt 2017). A flagged fit raises a
:class:`ConvergenceWarning` naming the parameters; it is never returned silently.

References:
    Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021), "Rank-normalization,
    folding, and localization: An improved R-hat for assessing convergence of
    MCMC", Bayesian Analysis 16(2). Geyer (1992), "Practical Markov chain Monte
    Carlo", Statistical Science 7(4). Gelman & Rubin (1992), "Inference from
    iterative simulation using multiple sequences".
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import scipy.special
import scipy.stats

__all__ = ["Posterior", "PosteriorSummary", "ConvergenceWarning", "rhat", "ess", "ess_bulk", "ess_tail",
           "RHAT_THRESHOLD", "ESS_PER_CHAIN"]

#: Flag a parameter whose rank-normalised split R-hat exceeds this (Vehtari et al. 2021).
RHAT_THRESHOLD = 1.01
#: Flag a parameter whose bulk- or tail-ESS is below this many per chain (Vehtari et al. 2021).
ESS_PER_CHAIN = 100

_FORMAT = "pluggable-irl/posterior"


class ConvergenceWarning(UserWarning):
    """The sampler's draws have not mixed (R-hat, ESS or divergences); the message names the parameters."""


# ------------------------------------------------------------------ diagnostics
def _as_chains(x: Any, name: str = "draws") -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (chains, draws) or (draws,): got {a.shape}")
    return a


def _split(a: np.ndarray) -> np.ndarray:
    """Split each chain in two halves (the middle draw of an odd chain is dropped): ``(2M, N // 2)``."""
    half = a.shape[1] // 2
    return np.concatenate([a[:, :half], a[:, a.shape[1] - half:]], axis=0)


def _rank_normalise(a: np.ndarray) -> np.ndarray:
    """Normal scores of the pooled ranks (average ranks for ties), Blom's offset 3/8."""
    r = scipy.stats.rankdata(a, method="average").reshape(a.shape)
    return scipy.special.ndtri((r - 0.375) / (a.size + 0.25))


def _rhat_basic(a: np.ndarray) -> float:
    """Gelman-Rubin potential scale reduction of ``(M, N)`` chains (no splitting)."""
    m, n = a.shape
    if n < 2 or m < 2:
        return float("nan")
    w = a.var(axis=1, ddof=1).mean()
    b_over_n = a.mean(axis=1).var(ddof=1)
    if w <= 0:
        return float("nan") if b_over_n <= 0 else float("inf")
    var_plus = (n - 1) / n * w + b_over_n
    return float(math.sqrt(var_plus / w))


def rhat(draws: Any) -> float:
    """Rank-normalised split R-hat: the larger of the bulk and the folded (tail) R-hat.

    Args:
        draws: ``(chains, draws)`` or ``(draws,)`` samples of one parameter.

    Returns:
        R-hat (1 for well-mixed chains; ``nan`` for constant draws or fewer
        than 4 draws, ``inf`` when each chain is constant but they differ).

    Example:
        >>> import numpy as np
        >>> from irl.posterior import rhat
        >>> x = np.random.default_rng(0).normal(size=(4, 1000))
        >>> bool(rhat(x) < 1.01), bool(rhat(x + np.arange(4)[:, None]) > 1.5)
        (True, True)

    References:
        Vehtari et al. (2021), Sec. 4.1-4.2.
    """
    a = _as_chains(draws)
    if a.shape[1] < 4 or not np.all(np.isfinite(a)):
        return float("nan")
    s = _split(a)
    if np.ptp(a) == 0:
        return float("nan")
    bulk = _rhat_basic(_rank_normalise(s))
    folded = np.abs(a - np.median(a))
    tail = _rhat_basic(_rank_normalise(_split(folded))) if np.ptp(folded) > 0 else bulk
    return float(max(bulk, tail))


def _autocov(a: np.ndarray) -> np.ndarray:
    """Autocovariance of each chain at all lags (biased, divided by N), by FFT: ``(M, N)``."""
    m, n = a.shape
    c = a - a.mean(axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(c, n=size, axis=1)
    return np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n] / n


def ess(draws: Any) -> float:
    """Effective sample size of ``(chains, draws)`` (no splitting or rank normalisation).

    Combines the chains' autocovariances into one autocorrelation estimate
    ``rho_t = 1 - (W - mean_m acov_m(t)) / var_plus`` (Vehtari et al. 2021,
    eq. 10), sums it with Geyer's initial monotone sequence (pairs
    ``rho_{2k} + rho_{2k+1}`` truncated at the first negative pair and made
    non-increasing) and returns ``M N / tau``, capped at ``M N log10(M N)``.

    Args:
        draws: ``(chains, draws)`` or ``(draws,)``.

    Returns:
        The effective sample size (``nan`` for constant or non-finite draws or
        fewer than 4 draws per chain).

    Example:
        >>> import numpy as np
        >>> from irl.posterior import ess
        >>> x = np.random.default_rng(1).normal(size=(4, 1000))
        >>> bool(3400 < ess(x) < 4600)
        True

    References:
        Geyer (1992); Vehtari et al. (2021), Sec. 3.2.
    """
    a = _as_chains(draws)
    m, n = a.shape
    if n < 4 or not np.all(np.isfinite(a)) or np.ptp(a) == 0:
        return float("nan")
    acov = _autocov(a)
    w = acov[:, 0].mean() * n / (n - 1)
    var_plus = w * (n - 1) / n + (a.mean(axis=1).var(ddof=1) if m > 1 else 0.0)
    if var_plus <= 0:
        return float("nan")
    rho = 1.0 - (w - acov.mean(axis=0)) / var_plus
    rho[0] = 1.0
    n_pairs = n // 2
    pairs = rho[:2 * n_pairs].reshape(n_pairs, 2).sum(axis=1)
    negative = np.flatnonzero(pairs < 0)
    k = negative[0] if negative.size else n_pairs
    kept = np.minimum.accumulate(pairs[:k]) if k > 0 else pairs[:1]
    tau = -1.0 + 2.0 * float(kept.sum())
    total = m * n
    if tau <= 0:
        return float(total * math.log10(total))
    return float(min(total / tau, total * math.log10(total)))


def ess_bulk(draws: Any) -> float:
    """Bulk effective sample size: :func:`ess` of the rank-normalised split chains.

    Example:
        >>> import numpy as np
        >>> from irl.posterior import ess_bulk
        >>> bool(ess_bulk(np.random.default_rng(0).standard_cauchy((4, 500))) > 1000)  # ranks: heavy tails are fine
        True

    References:
        Vehtari et al. (2021), Sec. 4.1.
    """
    a = _as_chains(draws)
    if a.shape[1] < 8 or not np.all(np.isfinite(a)) or np.ptp(a) == 0:
        return float("nan")
    return ess(_rank_normalise(_split(a)))


def ess_tail(draws: Any, *, prob: float = 0.9) -> float:
    """Tail effective sample size: the smaller ESS of the indicators of the 5% and 95% quantiles.

    Args:
        draws: ``(chains, draws)`` or ``(draws,)``.
        prob: central mass whose two quantiles are checked (0.9: the 5% and 95% quantiles).

    References:
        Vehtari et al. (2021), Sec. 4.3.
    """
    a = _as_chains(draws)
    if a.shape[1] < 8 or not np.all(np.isfinite(a)) or np.ptp(a) == 0:
        return float("nan")
    s = _split(a)
    lo, hi = np.quantile(a, [(1 - prob) / 2, (1 + prob) / 2])
    out = []
    for q in (lo, hi):
        ind = (s <= q).astype(np.float64)
        out.append(ess(ind) if np.ptp(ind) > 0 else float("nan"))
    return float(np.nanmin(out)) if not all(np.isnan(out)) else float("nan")


# ------------------------------------------------------------------ summary table
class PosteriorSummary(dict):
    """``name -> {mean, sd, q_lo, median, q_hi, rhat, ess_bulk, ess_tail}``; prints as a table.

    ``str(summary)`` (or the REPL display of ``post.summary()``) is an aligned
    text table with a ``!`` next to every parameter that fails the convergence
    rule of :class:`Posterior`, and the number of divergent transitions after
    warmup (``divergences``, when the sampler reported it; any makes the fit not converged).
    """

    def __init__(self, rows: dict[str, dict[str, float]], prob: float, flags: dict[str, list[str]],
                 divergences: int | None = None) -> None:
        super().__init__(rows)
        self.prob, self.flags, self.divergences = prob, flags, divergences

    def table(self) -> str:
        """The aligned text table."""
        lo, hi = f"q{100 * (1 - self.prob) / 2:g}", f"q{100 * (1 + self.prob) / 2:g}"
        head = ["parameter", "mean", "sd", lo, "median", hi, "rhat", "ess_bulk", "ess_tail", ""]
        lines = [head]
        for name, row in self.items():
            lines.append([name] + [f"{row[k]:.4g}" for k in ("mean", "sd", "q_lo", "median", "q_hi")]
                         + [f"{row['rhat']:.3f}", f"{row['ess_bulk']:.0f}", f"{row['ess_tail']:.0f}",
                            "!" if name in self.flags else ""])
        widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
        out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
               for r in lines]
        if self.divergences is not None:
            out.append(f"divergent transitions after warmup: {self.divergences}")
        if self.flags:
            out.append("! not converged: " + "; ".join(f"{k} ({', '.join(v)})" for k, v in self.flags.items()))
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return self.table()


# ------------------------------------------------------------------ the posterior
@dataclass
class Posterior:
    """Posterior draws of the reward parameters and the human's parameters.

    Attributes:
        theta: ``(chains, draws, P)`` reward parameters.
        human: constrained human parameters by name (``"boltzmann.beta"``), each ``(chains, draws)``.
        param_names: names of the ``P`` reward parameters.
        reward_mean: ``(S, A)`` posterior mean of the reward (mean over draws of
            ``reward_model(theta)``), or ``None``.
        log_density: ``(chains, draws)`` log-joint at each draw (unconstrained, with Jacobian).
        discrete: posterior of each summed-out discrete human parameter,
            ``name -> {value: probability}`` (averaged over draws).
        unconstrained: ``(chains, draws, D)`` the sampler's own coordinates ``[theta, u]``.
        info: sampler details (name, warmup, step sizes, acceptance, divergences, timings).

    The :attr:`reward` property makes a posterior usable wherever a reward is
    expected, e.g. ``irl.plan(env, post)`` plans for the posterior-mean reward.

    Example:
        >>> import numpy as np, irl
        >>> rng = np.random.default_rng(0)
        >>> post = irl.Posterior(theta=rng.normal(size=(4, 500, 2)), param_names=["w[0]", "w[1]"],
        ...                      human={"boltzmann.beta": rng.lognormal(size=(4, 500))})
        >>> lo, hi = post.credible_interval("w[0]", 0.9)
        >>> bool(-2.0 < lo < -1.3 and 1.3 < hi < 2.0), post.converged
        (True, True)

    References:
        Vehtari et al. (2021) for the diagnostics; Ramachandran & Amir (2007),
        "Bayesian Inverse Reinforcement Learning", IJCAI, for the posterior mean
        reward as the loss-minimising point estimate.
    """

    theta: np.ndarray
    param_names: list[str] = field(default_factory=list)
    human: dict[str, np.ndarray] = field(default_factory=dict)
    reward_mean: np.ndarray | None = None
    log_density: np.ndarray | None = None
    discrete: dict[str, dict[Any, float]] = field(default_factory=dict)
    unconstrained: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    joint: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.theta = np.asarray(self.theta, dtype=np.float64)
        if self.theta.ndim != 3:
            raise ValueError(f"Posterior.theta must have shape (chains, draws, P): got {self.theta.shape}")
        c, n, p = self.theta.shape
        if not self.param_names:
            self.param_names = [f"theta[{i}]" for i in range(p)]
        if len(self.param_names) != p:
            raise ValueError(f"Posterior.param_names has {len(self.param_names)} names for P = {p} parameters")
        self.human = {k: np.asarray(v, dtype=np.float64) for k, v in self.human.items()}
        for k, v in self.human.items():
            if v.shape != (c, n):
                raise ValueError(f"Posterior.human[{k!r}] must have shape (chains, draws) = ({c}, {n}): got {v.shape}")
        clash = set(self.param_names) & set(self.human)
        if clash:
            raise ValueError(f"parameter names must be unique: {sorted(clash)} name both a reward and a human parameter")

    # ------------------------------------------------------------- access
    @property
    def n_chains(self) -> int:
        """Number of chains."""
        return int(self.theta.shape[0])

    @property
    def n_draws(self) -> int:
        """Draws per chain."""
        return int(self.theta.shape[1])

    @property
    def names(self) -> list[str]:
        """All continuous parameter names: reward parameters, then human parameters."""
        return list(self.param_names) + list(self.human)

    def draws(self, name: str | None = None) -> np.ndarray:
        """Draws of one parameter ``(chains, draws)``, or of all of them ``(chains, draws, K)`` in :attr:`names` order.

        Raises:
            KeyError: unknown name (listing the known ones).
        """
        if name is None:
            extra = [v[..., None] for v in self.human.values()]
            return np.concatenate([self.theta] + extra, axis=-1)
        if name in self.human:
            return self.human[name]
        if name in self.param_names:
            return self.theta[:, :, self.param_names.index(name)]
        raise KeyError(f"unknown parameter {name!r}; known: {', '.join(self.names)}")

    def _per_name(self, fn: Any, name: str | None) -> Any:
        if name is not None:
            return fn(self.draws(name))
        return {k: fn(self.draws(k)) for k in self.names}

    def mean(self, name: str | None = None) -> Any:
        """Posterior mean of one parameter (a float) or of all (a dict)."""
        return self._per_name(lambda a: float(a.mean()), name)

    def std(self, name: str | None = None) -> Any:
        """Posterior standard deviation of one parameter or of all."""
        return self._per_name(lambda a: float(a.std(ddof=1)), name)

    def quantile(self, q: Any, name: str | None = None) -> Any:
        """Posterior quantile(s) ``q`` in ``[0, 1]`` of one parameter or of all."""
        qq = np.asarray(q, dtype=np.float64)
        if np.any((qq < 0) | (qq > 1)):
            raise ValueError(f"quantiles must lie in [0, 1]: got {q}")
        return self._per_name(lambda a: np.quantile(a, qq) if qq.ndim else float(np.quantile(a, qq)), name)

    def credible_interval(self, name: str, prob: float = 0.9) -> tuple[float, float]:
        """Equal-tailed credible interval of one parameter holding ``prob`` of the posterior mass.

        Raises:
            ValueError: ``prob`` outside ``(0, 1)``.
            KeyError: unknown name.
        """
        if not 0 < prob < 1:
            raise ValueError(f"credible interval probability must lie in (0, 1): got {prob}")
        lo, hi = np.quantile(self.draws(name), [(1 - prob) / 2, (1 + prob) / 2])
        return float(lo), float(hi)

    def rhat(self, name: str | None = None) -> Any:
        """Rank-normalised split R-hat of one parameter or of all (see :func:`rhat`)."""
        return self._per_name(rhat, name)

    def ess_bulk(self, name: str | None = None) -> Any:
        """Bulk effective sample size of one parameter or of all (see :func:`ess_bulk`)."""
        return self._per_name(ess_bulk, name)

    def ess_tail(self, name: str | None = None) -> Any:
        """Tail effective sample size of one parameter or of all (see :func:`ess_tail`)."""
        return self._per_name(ess_tail, name)

    # ------------------------------------------------------------- diagnostics
    def problems(self) -> dict[str, list[str]]:
        """Parameters that fail the convergence rule, with the reasons (empty when all is well).

        A parameter fails when R-hat > :data:`RHAT_THRESHOLD` (1.01) or is not
        computable, or its bulk- or tail-ESS is below :data:`ESS_PER_CHAIN` (100)
        times the number of chains. Divergent transitions after warmup are
        reported under the key ``"(sampler)"``.
        """
        need = ESS_PER_CHAIN * self.n_chains
        out: dict[str, list[str]] = {}
        for k in self.names:
            a = self.draws(k)
            why = []
            r, eb, et = rhat(a), ess_bulk(a), ess_tail(a)
            if not r <= RHAT_THRESHOLD:
                why.append(f"R-hat {r:.3f} > {RHAT_THRESHOLD}" if np.isfinite(r) or r == np.inf
                           else "R-hat not computable (constant or too few draws)")
            if not eb >= need:
                why.append(f"bulk-ESS {eb:.0f} < {need}")
            if not et >= need:
                why.append(f"tail-ESS {et:.0f} < {need}")
            if why:
                out[k] = why
        div = int(self.info.get("divergences", 0) or 0)
        if div > 0:
            out["(sampler)"] = [f"{div} divergent transitions after warmup"]
        return out

    @property
    def converged(self) -> bool:
        """Whether no parameter fails the convergence rule (see :meth:`problems`)."""
        return not self.problems()

    def check(self, *, stacklevel: int = 2) -> bool:
        """Warn with :class:`ConvergenceWarning` naming every flagged parameter; return :attr:`converged`."""
        bad = self.problems()
        if bad:
            text = "; ".join(f"{k}: {', '.join(v)}" for k, v in bad.items())
            warnings.warn(
                f"the posterior has not mixed ({self.n_chains} chains x {self.n_draws} draws): {text}. "
                f"Run longer (more samples or warmup), more chains, or reparameterise; do not trust these draws yet.",
                ConvergenceWarning, stacklevel=stacklevel + 1)
        return not bad

    def summary(self, prob: float = 0.9) -> PosteriorSummary:
        """Mean, sd, quantiles, R-hat and bulk/tail ESS per parameter (prints as a table).

        Args:
            prob: mass of the central interval shown (``q_lo``, ``q_hi``).

        Returns:
            :class:`PosteriorSummary`, a dict of rows whose ``str`` is the table.
        """
        if not 0 < prob < 1:
            raise ValueError(f"summary probability must lie in (0, 1): got {prob}")
        rows = {}
        for k in self.names:
            a = self.draws(k)
            lo, med, hi = np.quantile(a, [(1 - prob) / 2, 0.5, (1 + prob) / 2])
            rows[k] = {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if a.size > 1 else float("nan"),
                       "q_lo": float(lo), "median": float(med), "q_hi": float(hi), "rhat": rhat(a),
                       "ess_bulk": ess_bulk(a), "ess_tail": ess_tail(a)}
        div = self.info.get("divergences")
        return PosteriorSummary(rows, prob, self.problems(), None if div is None else int(div))

    # ------------------------------------------------------------- behaviour
    @property
    def reward(self) -> np.ndarray:
        """Posterior-mean reward ``(S, A)`` (what :func:`irl.plan` plans for).

        Raises:
            ValueError: the posterior was built without a reward mean.
        """
        if self.reward_mean is None:
            raise ValueError("this posterior has no reward_mean (build it with one, or fit it with BayesianIRL)")
        return self.reward_mean

    @property
    def theta_mean(self) -> np.ndarray:
        """``(P,)`` posterior mean of the reward parameters."""
        return self.theta.reshape(-1, self.theta.shape[-1]).mean(axis=0)

    def _thinned(self, n: int | None, seed: int) -> np.ndarray:
        """Flat indices of up to ``n`` draws spread evenly over the pooled chains."""
        total = self.n_chains * self.n_draws
        if n is None or n >= total:
            return np.arange(total)
        return np.linspace(0, total - 1, int(n)).round().astype(np.int64)

    def predictive_policy(self, env: Any = None, human: Any = None, *, draws: int | None = 200,
                          evidence: int = 0, reward_model: Any = None, batch: int = 64) -> np.ndarray:
        """Posterior predictive policy: the human model's policy averaged over posterior draws.

        ``pi(a | s) = E_posterior[ pi_human(a | s; reward(theta), phi) ]`` with
        the human's parameters at their drawn values (summed-out discrete ones
        weighted by their conditional posterior at each draw).

        Args:
            env: the MDP (default: that of evidence item ``evidence`` of the fit).
            human: the human model (default: the fit's model for that evidence).
            draws: number of draws used (evenly thinned), ``None`` for all.
            evidence: which evidence item's MDP and human model to use.
            reward_model: maps ``theta`` to rewards (default: the fit's).
            batch: draws planned together in one batched call.

        Returns:
            ``(H, S, A)`` or ``(S, A)`` action probabilities.

        Raises:
            ValueError: a loaded posterior without ``env``, ``human`` and ``reward_model``.
        """
        import torch

        joint = self.joint
        if joint is not None:
            ev = joint.evidence[evidence]
            env = ev.mdp if env is None else env
            human = ev.human if human is None else human
            reward_model = joint.reward_model if reward_model is None else reward_model
        if env is None or human is None or reward_model is None:
            raise ValueError("predictive_policy of a loaded posterior needs env=, human= and reward_model= "
                             "(the fitted objects are not stored in the file)")
        free = human.free_parameters() if hasattr(human, "free_parameters") else {}
        label = getattr(human, "name", type(human).__name__)
        if joint is not None and any(h is human for h in joint.humans):
            label = joint.human_labels[next(i for i, h in enumerate(joint.humans) if h is human)]
        cont = {n: p for n, p in free.items() if not getattr(p, "discrete", False)}
        disc = [(n, p) for n, p in free.items() if getattr(p, "discrete", False)]
        values: dict[str, np.ndarray] = {}
        for n in cont:
            key = f"{label}.{n}" if f"{label}.{n}" in self.human else next(
                (k for k in self.human if k.endswith("." + n) and k.split(".")[0].split("#")[0] == label), None)
            if key is None:
                raise ValueError(f"the posterior has no draws of {label}.{n}; it has {sorted(self.human)}")
            values[n] = self.human[key].reshape(-1)
        idx = self._thinned(draws, 0)
        theta = self.theta.reshape(-1, self.theta.shape[-1])[idx]
        total = None
        with torch.no_grad():
            for start in range(0, idx.size, batch):
                sl = slice(start, start + batch)
                th = torch.as_tensor(theta[sl])
                per_item = getattr(reward_model, "evidence_rewards", None) if joint is not None else None
                r = reward_model(th) if per_item is None else per_item(th, [joint.evidence[evidence]])[0]  # its agent's
                bound = human.bind(**{n: torch.as_tensor(v[idx][sl]) for n, v in values.items()}) if values else human
                if disc:
                    probs = self._discrete_mixture(bound, disc, env, r, joint, evidence)
                else:
                    probs = bound.action_log_probs(env, r).exp()
                s = probs.sum(dim=0).numpy()
                total = s if total is None else total + s
        return total / idx.size

    def _discrete_mixture(self, bound: Any, disc: list, env: Any, r: Any, joint: Any, evidence: int) -> Any:
        import torch

        combos: list[dict[str, Any]] = [{}]
        for name, pr in disc:
            combos = [dict(c, **{name: v}) for c in combos for v in pr.enumerate()[0]]
        if joint is not None:
            k = next(i for i, h in enumerate(joint.humans) if h is joint.evidence[evidence].human)
            # (C, B) conditional posterior per draw; _group_terms takes the reward as a function of the evidence item
            w = torch.softmax(joint._group_terms(k, bound, lambda _ev: r), dim=0)
        else:  # no data at hand: weight by the pooled posterior table
            marg = [self.discrete.get(f"{getattr(bound, 'name', '')}.{n}", {}) for n, _ in disc]
            w = torch.tensor([math.prod(float(m.get(c[n], m.get(str(c[n]), 0.0))) for m, (n, _) in zip(marg, disc))
                              for c in combos], dtype=torch.float64)
            w = (w / w.sum())[:, None].expand(len(combos), r.shape[0])
        out = 0.0
        for j, c in enumerate(combos):
            p = bound.bind(**c).action_log_probs(env, r).exp()
            out = out + w[j].reshape(-1, *([1] * (p.ndim - 1))) * p
        return out

    # ------------------------------------------------------------- plots
    def plot(self, names: Iterable[str] | None = None, *, path: str | None = None, bins: int = 40) -> Any:
        """Histogram of each parameter's marginal, one colour per chain (needs matplotlib).

        Args:
            names: parameters to show (default all).
            path: if given, the figure is saved there.
            bins: histogram bins.

        Returns:
            The matplotlib ``Figure``.

        Raises:
            ImportError: matplotlib is missing (install the ``plot`` extra).
        """
        try:
            import matplotlib

            if path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("Posterior.plot needs matplotlib: pip install 'pluggable-irl[plot]'") from None
        keys = list(self.names if names is None else names)
        for k in keys:
            self.draws(k)  # validates names
        cols = min(4, max(1, len(keys)))
        rows = math.ceil(len(keys) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
        for ax, k in zip(axes.ravel(), keys):
            a = self.draws(k)
            edges = np.histogram_bin_edges(a, bins=bins)
            for c in range(self.n_chains):
                ax.hist(a[c], bins=edges, histtype="step", density=True, alpha=0.8)
            lo, hi = self.credible_interval(k, 0.9)
            ax.axvspan(lo, hi, color="0.85", zorder=0)
            ax.axvline(a.mean(), color="k", lw=1)
            ax.set_title(f"{k}  (R-hat {rhat(a):.3f})", fontsize=9)
            ax.set_yticks([])
        for ax in axes.ravel()[len(keys):]:
            ax.set_visible(False)
        fig.tight_layout()
        if path is not None:
            from demos import atomic_write

            fmt = str(path).rsplit(".", 1)[-1] if "." in str(path) else "png"
            atomic_write(path, lambda f: fig.savefig(f, format=fmt))
        return fig

    # ------------------------------------------------------------- files
    def to_arviz(self, *, log_likelihood: Any = None) -> Any:
        """This posterior as an ArviZ ``InferenceData`` (needs the ``arviz`` extra).

        Groups: ``posterior`` with ``theta`` (``chain, draw, reward_param``, named by
        :attr:`param_names`) and one variable per human parameter; ``sample_stats``
        with ``lp`` (the log-joint, when known) and ``diverging`` (when the sampler
        recorded which draws diverged); ``log_likelihood`` with ``obs``
        (``chain, draw, obs_id``) when ``log_likelihood`` is given. To compute it from
        the data use :func:`irl.adapters.to_arviz`.

        Args:
            log_likelihood: ``(chains, draws, n)`` or ``(chains * draws, n)`` pointwise
                log-likelihoods (e.g. :func:`irl.compare.pointwise_log_likelihood` with
                ``max_draws=None``).

        Raises:
            ImportError: arviz is not installed.
            ValueError: a log-likelihood whose shape does not match the draws.

        Example:
            >>> import numpy as np, irl
            >>> post = irl.Posterior(theta=np.zeros((2, 50, 3)), human={"boltzmann.beta": np.ones((2, 50))})
            >>> idata = post.to_arviz(log_likelihood=np.zeros((100, 7)))
            >>> idata.posterior["theta"].shape, idata.log_likelihood["obs"].shape
            ((2, 50, 3), (2, 50, 7))
        """
        try:
            with warnings.catch_warnings():  # arviz announces its coming refactor on import
                warnings.simplefilter("ignore", FutureWarning)
                import arviz as az
        except ImportError:
            raise ImportError("Posterior.to_arviz needs arviz: pip install 'pluggable-irl[arviz]'") from None
        c, d = self.n_chains, self.n_draws
        post: dict[str, np.ndarray] = {"theta": self.theta, **self.human}
        stats: dict[str, np.ndarray] = {}
        if self.log_density is not None:
            stats["lp"] = np.asarray(self.log_density, dtype=np.float64).reshape(c, d)
        where = self.info.get("divergent_draws")
        if where is not None:
            div = np.zeros((c, d), bool)
            idx = np.asarray(where, dtype=np.int64).reshape(-1, 2)
            div[idx[:, 0], idx[:, 1]] = True
            stats["diverging"] = div
        ll = None
        if log_likelihood is not None:
            ll = np.asarray(log_likelihood, dtype=np.float64)
            if ll.ndim == 2 and ll.shape[0] == c * d:
                ll = ll.reshape(c, d, -1)
            if ll.ndim != 3 or ll.shape[:2] != (c, d):
                raise ValueError(f"log_likelihood must have shape ({c}, {d}, n) or ({c * d}, n) for {c} chains of "
                                 f"{d} draws: got {np.shape(log_likelihood)}")
        return az.from_dict(posterior=post, sample_stats=stats or None,
                            log_likelihood=None if ll is None else {"obs": ll},
                            coords={"reward_param": list(self.param_names)}, dims={"theta": ["reward_param"]})

    def save(self, path: str) -> None:
        """Write a versioned ``.npz`` atomically (no pickle); the fitted objects are not stored.

        Example:
            >>> import numpy as np, os, tempfile, irl
            >>> post = irl.Posterior(theta=np.zeros((2, 10, 1)) + np.arange(10)[:, None])
            >>> p = os.path.join(tempfile.mkdtemp(), "post.npz")
            >>> post.save(p); irl.Posterior.load(p).theta.shape
            (2, 10, 1)
        """
        from demos import save_arrays

        hnames = list(self.human)
        arrays = {"theta": self.theta,
                  "human": (np.stack([self.human[k] for k in hnames], axis=-1) if hnames
                            else np.zeros(self.theta.shape[:2] + (0,))),
                  "reward_mean": self.reward_mean, "log_density": self.log_density,
                  "unconstrained": self.unconstrained}
        meta = {"param_names": list(self.param_names), "human_names": hnames,
                "discrete": {k: [[_json_key(a), float(b)] for a, b in v.items()] for k, v in self.discrete.items()},
                "info": json.loads(json.dumps(self.info, default=_json_default))}
        save_arrays(path, _FORMAT, arrays, meta=meta)

    @classmethod
    def load(cls, path: str) -> "Posterior":
        """Read a file written by :meth:`save`.

        Raises:
            demos.DemoFileError: missing or foreign file, pickled arrays (refused), or missing arrays.
        """
        from demos import DemoFileError, load_arrays
        from demos.io import finite_array

        _, arrays, meta = load_arrays(path, _FORMAT)
        if "theta" not in arrays:
            raise DemoFileError(f"{path}: posterior file lacks the array 'theta'")
        a = {k: finite_array(path, k, arrays.get(k), nd) for k, nd in (
            ("theta", (3,)), ("human", (3,)), ("reward_mean", (1, 2)), ("log_density", (2,)), ("unconstrained", (3,)))}
        try:
            hnames = list(meta.get("human_names", []))
            h = a["human"]
            if hnames and (h is None or h.shape[-1] != len(hnames)):
                raise DemoFileError(f"{path}: 'human' must have shape (chains, draws, {len(hnames)})")
            return cls(theta=a["theta"], param_names=list(meta.get("param_names", [])),
                       human={k: h[..., i] for i, k in enumerate(hnames)},
                       reward_mean=a["reward_mean"], log_density=a["log_density"],
                       discrete={k: {a: b for a, b in v} for k, v in meta.get("discrete", {}).items()},
                       unconstrained=a["unconstrained"], info=dict(meta.get("info", {})))
        except DemoFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # arrays that disagree, malformed metadata
            raise DemoFileError(f"{path}: malformed posterior file ({type(e).__name__}: {e})") from None

    def __repr__(self) -> str:
        return (f"Posterior(chains={self.n_chains}, draws={self.n_draws}, parameters={len(self.names)}, "
                f"sampler={self.info.get('sampler', '?')!r}, converged={self.converged})")


def _json_key(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


def _json_default(o: Any) -> Any:
    return o.tolist() if hasattr(o, "tolist") else repr(o)
