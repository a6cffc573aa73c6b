"""The log-joint that every solver consumes, and the point-estimate result type."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from irl.evidence import Evidence
from irl.rewards import RewardModel


#: Largest number of combinations of several discrete human parameters of one model that the
#: log-joint enumerates (one plan of the human model each, per evaluation). A single
#: ``priors.Categorical`` has its own bound (``max_values``).
MAX_COMBINATIONS = 1000


def check_option(owner: str, name: str, value: Any, *, integer: bool = False, minimum: float | None = None,
                 exclusive: bool = False) -> Any:
    """A solver option as a finite number (an ``int`` when ``integer``), at least ``minimum``.

    Raises:
        ValueError: naming the solver, the option, the rule and what was found.

    Example:
        >>> check_option("MaxEnt", "max_iter", 10, integer=True, minimum=1)
        10
    """
    kind = "an integer" if integer else "a finite number"
    bound = "" if minimum is None else f" {'>' if exclusive else '>='} {minimum:g}"
    rule = f"{owner} {name} must be {kind}{bound}: got {value!r}"
    if isinstance(value, bool) or (integer and not isinstance(value, (int, np.integer))
                                   and not (isinstance(value, (float, np.floating)) and float(value).is_integer())):
        raise ValueError(rule)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(rule) from None
    if not np.isfinite(v) or (minimum is not None and (v <= minimum if exclusive else v < minimum)):
        raise ValueError(rule)
    return int(v) if integer else v


def check_reward_prior(prior: Any) -> None:
    """Refuse a reward prior that cannot be one: no ``log_prob``, or a discrete (enumerated) prior.

    Raises:
        TypeError: an object without ``log_prob(theta)``.
        ValueError: a discrete prior such as ``priors.Categorical`` (it is for human parameters
            such as a planning horizon, which are summed out; reward parameters are continuous).
    """
    if prior is None:
        return
    if getattr(prior, "discrete", False):
        raise ValueError(f"the reward prior must be a continuous prior (priors.Gaussian, priors.Laplace, ...): got "
                         f"{prior!r}, a discrete prior over a finite set of values, which is meant for a human "
                         f"parameter such as a planning horizon (hm.Myopic(horizon=priors.Categorical(...)))")
    if not callable(getattr(prior, "log_prob", None)):
        raise TypeError(f"the reward prior must have log_prob(theta) (e.g. priors.Gaussian(0, 1)) or be None: "
                        f"got {type(prior).__name__}")
__all__ = ["LogJoint", "RewardEstimate", "FlatDirection", "LocalOptimaWarning", "IdentifiabilityWarning",
           "n_observations", "check_option", "check_reward_prior"]


class LocalOptimaWarning(UserWarning):
    """A point estimate whose optimiser starts disagree, or that fits worse than a model it contains."""


class IdentifiabilityWarning(UserWarning):
    """The data do not determine the reward along some direction (a flat ridge of the likelihood)."""


def n_observations(observation: Any) -> int:
    """How many scored observations an evidence item holds (actions, choices, states...).

    Used for information criteria (BIC's ``n``) and to scale objectives.
    """
    n = getattr(observation, "n_observations", None)
    if n is not None:
        return int(n)
    lengths = getattr(observation, "lengths", None)
    if lengths is not None:
        return int(np.sum(lengths))
    return len(observation)


class LogJoint:
    """``log p(theta) + sum_k log p(phi_k) + sum_i log p(evidence_i | reward(theta), human_i(phi))``.

    The one callable every solver consumes: maximum-entropy IRL maximises it, a
    sampler samples it. Its argument is a flat vector ``x = [theta, u]`` (batched
    over leading axes): ``theta`` the reward parameters, ``u`` the *unconstrained*
    values of the human parameters given as continuous priors (e.g.
    ``Boltzmann(beta=priors.LogNormal(0, 1))``). Human parameters with a discrete
    prior (``priors.Categorical``) are summed out exactly, per human model, over
    all evidence that model explains. The same human model object in several
    evidence items shares its parameters.
    A reward model with ``evidence_rewards(theta, evidence)`` scores each item
    with its own reward (:class:`irl.norms.SharedReward`: the reward of the
    item's ``agent``); every other model gives all items the same reward.

    Args:
        evidence: the evidence items (each with its MDP and human model).
        reward_model: maps ``theta (..., P)`` to rewards ``(..., S, A)``.
        prior: reward prior with ``log_prob(theta) -> (...)``, or ``None`` (flat).

    Example:
        >>> import torch, irl, human_models as hm, demos, priors
        >>> env = irl.envs.make("gridworld-5x5")
        >>> d = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=5, seed=0)
        >>> joint = irl.LogJoint([irl.Evidence(env, d, hm.Boltzmann(beta=priors.LogNormal(0, 1)))],
        ...                      irl.rewards.LinearReward.from_mdp(env))
        >>> joint.dim, joint.param_names()[-1]
        (5, 'boltzmann.beta')
    """

    def __init__(self, evidence: list[Evidence], reward_model: RewardModel, prior: Any = None) -> None:
        check_reward_prior(prior)
        self.evidence, self.reward_model, self.prior = evidence, reward_model, prior
        for i, ev in enumerate(evidence):
            if getattr(reward_model, "per_mdp", False):  # a reward per MDP (e.g. a network over each map's features)
                reward_model.check_layout(ev.mdp)
            elif (ev.mdp.n_states, ev.mdp.n_actions) != (reward_model.n_states, reward_model.n_actions):
                raise ValueError(f"evidence {i} is in an MDP with (S, A) = ({ev.mdp.n_states}, {ev.mdp.n_actions}) "
                                 f"but the reward model expects ({reward_model.n_states}, {reward_model.n_actions})")
            if not getattr(ev.human, "finite_lookahead", False) and hasattr(ev.mdp, "check_well_posed"):
                ev.mdp.check_well_posed()  # milliseconds, instead of a long loop of value iteration
        check_joint = getattr(reward_model, "check_joint", None)  # a reward per agent (irl.norms): labels, prior
        if check_joint is not None:
            check_joint(evidence, prior)
        self.humans: list[Any] = []
        self.groups: list[list[Evidence]] = []
        for ev in evidence:
            for k, h in enumerate(self.humans):
                if h is ev.human:
                    self.groups[k].append(ev)
                    break
            else:
                self.humans.append(ev.human)
                self.groups.append([ev])
        labels = [getattr(h, "name", type(h).__name__) for h in self.humans]
        self.human_labels = [lab if labels.count(lab) == 1 else f"{lab}#{labels[:k + 1].count(lab)}"
                             for k, lab in enumerate(labels)]
        self.continuous: list[tuple[int, str, Any]] = []
        self.discrete: list[list[tuple[str, Any]]] = [[] for _ in self.humans]
        for k, h in enumerate(self.humans):
            free = h.free_parameters() if hasattr(h, "free_parameters") else {}
            for name, pr in free.items():
                if getattr(pr, "discrete", False):
                    self.discrete[k].append((name, pr))
                else:
                    self.continuous.append((k, name, pr))
        for k, items in enumerate(self.discrete):
            sizes = [len(pr.enumerate()[0]) for _, pr in items]
            combos = int(np.prod(sizes)) if sizes else 1
            if combos > max([MAX_COMBINATIONS] + sizes):
                names = " x ".join(f"{n} ({m})" for (n, _), m in zip(items, sizes))
                raise ValueError(
                    f"{self.human_labels[k]}: the discrete priors {names} make {combos} combinations, each one "
                    f"plan of the human model per evaluation of the log-joint, more than "
                    f"irl.solvers.base.MAX_COMBINATIONS = {MAX_COMBINATIONS}; use coarser grids, or raise the limit "
                    f"on purpose")
        self.n_reward = reward_model.n_params

    @property
    def dim(self) -> int:
        """Length of the flat parameter vector ``x``."""
        return self.n_reward + len(self.continuous)

    def param_names(self) -> list[str]:
        """Names of the entries of ``x`` (human parameters as ``model.name``)."""
        return self.reward_model.param_names() + [f"{self.human_labels[k]}.{n}" for k, n, _ in self.continuous]

    def discrete_names(self) -> list[str]:
        """Names of the summed-out discrete human parameters."""
        return [f"{self.human_labels[k]}.{n}" for k, items in enumerate(self.discrete) for n, _ in items]

    def initial_point(self) -> torch.Tensor:
        """Zeros for the reward and each human prior's central value (unconstrained)."""
        u = [pr.to_unconstrained(pr.initial_value()) for _, _, pr in self.continuous]
        start = getattr(self.reward_model, "initial_theta", None)
        return torch.cat([start() if start is not None else torch.zeros(self.n_reward, dtype=torch.float64),
                          torch.stack(u) if u else torch.zeros(0, dtype=torch.float64)])

    def _check(self, x: Any) -> torch.Tensor:
        x = x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.float64)
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"LogJoint expects x of shape (..., {self.dim}) = reward parameters "
                             f"{self.n_reward} + human parameters {len(self.continuous)}: got {tuple(x.shape)}")
        return x

    def human_values(self, x: Any) -> dict[str, torch.Tensor]:
        """Constrained values of the continuous human parameters, by name (batched like ``x``)."""
        x = self._check(x)
        return {f"{self.human_labels[k]}.{n}": pr.to_constrained(x[..., self.n_reward + j])
                for j, (k, n, pr) in enumerate(self.continuous)}

    def _bound_humans(self, x: torch.Tensor, jacobian: bool) -> tuple[list[Any], torch.Tensor]:
        values: list[dict[str, torch.Tensor]] = [{} for _ in self.humans]
        lp = torch.zeros(x.shape[:-1], dtype=x.dtype)
        for j, (k, n, pr) in enumerate(self.continuous):
            u = x[..., self.n_reward + j]
            v = pr.to_constrained(u)
            values[k][n] = v
            lp = lp + (pr.log_prob_unconstrained(u) if jacobian else pr.distribution().log_prob(v))
        bound = [h.bind(**vals) if vals else h for h, vals in zip(self.humans, values)]
        return bound, lp

    def _rewards(self, theta: torch.Tensor) -> Any:
        """``evidence item -> reward (..., S, A)``: one evaluation of the reward model in total; one per MDP
        for a ``per_mdp`` model (a network over each map's features); one per item for a model with
        ``evidence_rewards(theta, evidence)`` (a reward per agent, :mod:`irl.norms`)."""
        model = self.reward_model
        per_item = getattr(model, "evidence_rewards", None)
        if per_item is not None:
            table = dict(zip(map(id, self.evidence), per_item(theta, self.evidence)))
            return lambda ev: table[id(ev)]
        if not getattr(model, "per_mdp", False):
            reward = model(theta)
            return lambda ev: reward
        cache: dict[int, torch.Tensor] = {}
        if theta.ndim == 1 and hasattr(model, "rewards"):  # one network pass per group of same-sized maps
            mdps = list({id(ev.mdp): ev.mdp for ev in self.evidence}.values())
            cache.update(zip(map(id, mdps), model.rewards(mdps, theta)))

        def of(ev: Any) -> torch.Tensor:
            if id(ev.mdp) not in cache:
                cache[id(ev.mdp)] = model.reward_for(ev.mdp, theta)
            return cache[id(ev.mdp)]
        return of

    def _group_terms(self, k: int, human: Any, reward: Any) -> torch.Tensor:
        """Log-likelihood of group ``k`` for each combination of its discrete parameters: ``(C, ...)``; ``reward``
        maps an evidence item to its reward (see :meth:`_rewards`)."""
        combos: list[dict[str, Any]] = [{}]
        logp = [torch.zeros((), dtype=torch.float64)]
        for name, pr in self.discrete[k]:
            vals, lps = pr.enumerate()
            combos = [dict(c, **{name: v}) for c in combos for v in vals]
            logp = [a + b for a in logp for b in lps]
        terms = []
        for combo, lp in zip(combos, logp):
            h = human.bind(**combo) if combo else human
            terms.append(lp + sum(h.log_likelihood(ev.mdp, reward(ev), ev.observation) for ev in self.groups[k]))
        return torch.stack(terms)

    def log_likelihood(self, x: Any) -> torch.Tensor:
        """Sum of the evidence log-likelihoods at ``x`` (discrete human parameters summed out)."""
        x = self._check(x)
        bound, _ = self._bound_humans(x, jacobian=False)
        reward = self._rewards(x[..., :self.n_reward])
        total = torch.zeros(x.shape[:-1], dtype=x.dtype)
        for k, h in enumerate(bound):
            total = total + torch.logsumexp(self._group_terms(k, h, reward), dim=0)
        return total

    def log_prior(self, x: Any, *, jacobian: bool = False) -> torch.Tensor:
        """Log prior density of reward and continuous human parameters (0 for flat)."""
        x = self._check(x)
        theta = x[..., :self.n_reward]
        lp = torch.zeros(x.shape[:-1], dtype=x.dtype) if self.prior is None else self.prior.log_prob(theta)
        return lp + self._bound_humans(x, jacobian)[1]

    def discrete_posterior(self, x: Any) -> dict[str, dict[Any, float]]:
        """Conditional posterior of each discrete human parameter at ``x`` (unbatched)."""
        x = self._check(x).detach()
        bound, _ = self._bound_humans(x, jacobian=False)
        reward = self._rewards(x[..., :self.n_reward])
        out: dict[str, dict[Any, float]] = {}
        with torch.no_grad():
            for k, h in enumerate(bound):
                if not self.discrete[k]:
                    continue
                post = torch.softmax(self._group_terms(k, h, reward), dim=0)
                combos: list[tuple] = [()]
                for _, pr in self.discrete[k]:
                    combos = [c + (v,) for c in combos for v in pr.enumerate()[0]]
                for i, (name, _) in enumerate(self.discrete[k]):
                    marg: dict[Any, float] = {}
                    for c, p in zip(combos, post.tolist()):
                        marg[c[i]] = marg.get(c[i], 0.0) + p
                    out[f"{self.human_labels[k]}.{name}"] = marg
        return out

    def __call__(self, x: Any, *, jacobian: bool = True) -> torch.Tensor:
        """``log p(x, evidence)``; ``jacobian=True`` includes the change of variables (for samplers)."""
        return self.log_prior(x, jacobian=jacobian) + self.log_likelihood(x)


_FORMAT = "pluggable-irl/reward-estimate"


@dataclass
class FlatDirection:
    """A direction of the fitted parameters along which the log-likelihood does not change.

    An eigenvector of the Hessian of the negative log-likelihood at the estimate
    whose eigenvalue is (numerically) zero: the data say nothing about how far
    along it the answer lies.

    Attributes:
        vector: ``(D,)`` unit vector over the fitted coordinates ``x = [theta, u]``
            (reward parameters, then unconstrained human parameters).
        eigenvalue: the Hessian's eigenvalue along it (``~0``).
        names: the parameters it mixes (weight at least a tenth of the largest), largest first.
        weights: their components of ``vector``, in the order of ``names``.
        exact: moving along it left the log-likelihood unchanged (a linear
            invariance of the reward parameters, e.g. potential shaping); the
            estimate was then moved to the canonical point along it.
    """

    vector: np.ndarray
    eigenvalue: float
    names: list[str]
    weights: list[float]
    exact: bool = False

    def describe(self, max_terms: int = 6) -> str:
        """``"0.45*r[s=3] + 0.45*r[s=4] - ..."`` (the largest components)."""
        terms = [f"{w:+.3g}*{n}" for n, w in zip(self.names[:max_terms], self.weights[:max_terms])]
        more = f" ... ({len(self.names) - max_terms} more)" if len(self.names) > max_terms else ""
        return " ".join(terms).lstrip("+") + more

    def to_json(self) -> dict[str, Any]:
        return {"vector": self.vector.tolist(), "eigenvalue": self.eigenvalue, "names": self.names,
                "weights": self.weights, "exact": self.exact}


@dataclass
class RewardEstimate:
    """A point estimate of the reward.

    Attributes:
        reward: ``(S, A)`` inferred reward.
        theta: ``(P,)`` reward parameters.
        log_likelihood: log-likelihood of the evidence at ``theta``.
        log_prior: log prior density at ``theta`` (0 for maximum likelihood).
        converged: whether the optimiser met its tolerance.
        history: per-iteration records ``{"iteration", "objective", "grad_norm"}``.
        param_names: readable parameter names.
        info: solver details (human model, evaluations, message, timings).
        human_params: inferred human parameters: a number per continuous one,
            a ``{value: probability}`` table per discrete one.
        starts: one record per optimiser start ``{"start", "log_joint",
            "log_likelihood", "converged"}`` (``start`` is ``"init"``, ``"random"``
            or ``"nested:<model>"``).
        n_starts_at_best: how many starts reached the best value (within the solver's tolerance).
        flat_directions: directions along which the log-likelihood is flat at the
            estimate (see :class:`FlatDirection`); empty when every parameter is identified.
        problems: why the estimate may not be trusted as it is (empty when all is well).
        reward_model: the fitted reward model (a :class:`~irl.rewards.NeuralReward` holds
            the trained network: ``est.reward_model.reward(other_mdp)``); not written by :meth:`save`.
    """

    reward: np.ndarray
    theta: np.ndarray
    log_likelihood: float
    log_prior: float = 0.0
    converged: bool = True
    history: list[dict[str, float]] = field(default_factory=list)
    param_names: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    human_params: dict[str, Any] = field(default_factory=dict)
    starts: list[dict[str, Any]] = field(default_factory=list)
    n_starts_at_best: int = 1
    flat_directions: list[FlatDirection] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def identifiable(self) -> bool:
        """``False`` when the likelihood is flat along some direction (see :attr:`flat_directions`)."""
        return not self.flat_directions
    reward_model: Any = field(default=None, repr=False, compare=False)

    @property
    def state_reward(self) -> np.ndarray:
        """``(S,)`` reward when it does not depend on the action (mean over actions otherwise)."""
        return self.reward.mean(axis=-1)

    def save(self, path: str) -> None:
        """Write a versioned ``.npz`` atomically (no pickle)."""
        from demos import save_arrays

        save_arrays(path, _FORMAT, {"reward": self.reward, "theta": self.theta},
                    meta={"log_likelihood": self.log_likelihood, "log_prior": self.log_prior,
                          "converged": self.converged, "history": self.history,
                          "param_names": self.param_names, "info": _jsonable(self.info),
                          "human_params": _jsonable({k: (list(v.items()) if isinstance(v, dict) else v)
                                                     for k, v in self.human_params.items()}),
                          "starts": _jsonable(self.starts), "n_starts_at_best": self.n_starts_at_best,
                          "flat_directions": [d.to_json() for d in self.flat_directions],
                          "problems": list(self.problems)})

    @classmethod
    def load(cls, path: str) -> "RewardEstimate":
        """Read a file written by :meth:`save`.

        Raises:
            demos.DemoFileError: a missing, foreign or incomplete file (the message names it).
        """
        from demos import DemoFileError, load_arrays
        from demos.io import finite_array

        _, arrays, meta = load_arrays(path, _FORMAT)
        missing = [k for k in ("reward", "theta") if k not in arrays]
        if missing:
            raise DemoFileError(f"{path}: reward-estimate file lacks the array{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(repr(k) for k in missing)}")
        try:
            log_likelihood = float(meta["log_likelihood"])
        except (KeyError, TypeError, ValueError):
            raise DemoFileError(f"{path}: reward-estimate file metadata lacks a numeric 'log_likelihood'") from None
        reward = finite_array(path, "reward", arrays["reward"], (1, 2))
        theta = finite_array(path, "theta", arrays["theta"], (1,))
        try:
            return cls(reward=reward, theta=theta, log_likelihood=log_likelihood,
                       log_prior=float(meta.get("log_prior", 0.0)), converged=bool(meta.get("converged", True)),
                       history=list(meta.get("history", [])), param_names=list(meta.get("param_names", [])),
                       info=dict(meta.get("info", {})),
                       human_params={k: (dict((a, b) for a, b in v) if isinstance(v, list) else v)
                                     for k, v in meta.get("human_params", {}).items()},
                       starts=list(meta.get("starts", [])), n_starts_at_best=int(meta.get("n_starts_at_best", 1)),
                       flat_directions=[FlatDirection(vector=np.asarray(d["vector"], dtype=np.float64),
                                                      eigenvalue=float(d["eigenvalue"]), names=list(d["names"]),
                                                      weights=[float(w) for w in d["weights"]],
                                                      exact=bool(d["exact"]))
                                        for d in meta.get("flat_directions", [])],
                       problems=[str(p) for p in meta.get("problems", [])])
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # metadata of the wrong shape
            raise DemoFileError(f"{path}: malformed reward-estimate metadata ({type(e).__name__}: {e})") from None

    def __repr__(self) -> str:
        flat = f", flat_directions={len(self.flat_directions)}" if self.flat_directions else ""
        starts = f", starts_at_best={self.n_starts_at_best}/{len(self.starts)}" if len(self.starts) > 1 else ""
        return (f"RewardEstimate(P={self.theta.size}, log_likelihood={self.log_likelihood:.4f}, "
                f"converged={self.converged}, iterations={len(self.history)}{starts}{flat})")


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=lambda o: o.tolist() if hasattr(o, "tolist") else repr(o)))
