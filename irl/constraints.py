"""Constraints from demonstrations: which states, actions or features the human never uses, and why.

Maximum likelihood constraint inference (Scobee & Sastry 2020) with the library's own
planner and human models. Given an MDP, a *nominal* reward and demonstrations, a
constraint is a set of state-actions removed from the MDP; the constrained MDP is the
same MDP without them. The demonstrations are scored by a human model acting in the
constrained MDP (Boltzmann by default, any model built on the planner works, e.g. a
myopic or hyperbolic one), and constraints are chosen greedily, each time the one whose
removal raises the likelihood of the demonstrations most.

Candidates (``kind``):

* ``"states"`` -- forbid a state ``s``: remove every state-action that enters ``s`` with
  probability ``> tolerance`` and the actions taken in ``s``;
* ``"actions"`` -- forbid an action everywhere;
* ``"features"`` -- forbid every state whose feature ``k`` is non-zero (state features
  ``(S, F)``, like a state constraint on all of them), or every state-action whose feature
  ``k`` is non-zero (state-action features ``(S, A, F)``).

Actions taken in terminal states are never removed (an episode ends there, the data hold
no action for them). The likelihood is that of the demonstrations' actions given their start
states (the start distribution is not part of it), so a state that no demonstration starts in
may be forbidden even if the start distribution gives it weight; :func:`plan` then refuses it. A state left with no action is a *dead end*: no trajectory may pass
through it (it can only be the last state of a finite-horizon episode); the planner makes
it unreachable and :func:`plan` raises :class:`ConstraintError` when a start state is one.

Removal is exact in floating point: a removed state-action gets the reward
``r(s, a) - penalty`` with a penalty so large (by default ``50 * (1 + span(r) * H_eff)``,
``H_eff`` the horizon or ``1 / (1 - discount)``) that its probability underflows; every
likelihood evaluation checks that the human model gives the removed actions of the
states the demonstrations visit less than ``1e-9`` probability, and refuses otherwise
(a human model that mixes in random actions cannot be held to hard constraints).
Evaluating all candidates of a step is one batched planner call (a batch of rewards),
not one call per candidate.

Stopping rules (``stop``):

* ``"kl"`` -- the criterion of Scobee & Sastry: ``D_KL(P_D || P_C)``, the divergence of the
  model from the empirical distribution of the demonstrations, falls by the gain per
  demonstration; stop when the best remaining constraint lowers it by less than
  ``threshold`` nats (default 0.1);
* ``"lr"`` -- a likelihood-ratio test: add the best constraint only when its likelihood
  ratio exceeds ``K / alpha`` (``K`` candidates, ``threshold = alpha``, default 0.05).
  Under the current model the likelihood ratio of a fixed alternative has expectation at
  most 1, so by Markov's inequality and a union bound over the ``K`` candidates a
  constraint that does not hold is added with probability at most ``alpha``; for
  Boltzmann demonstrations in deterministic MDPs ``1 / LR`` is the exact probability that
  ``N`` demonstrations all avoid the candidate by chance;
* ``None`` -- add ``max_constraints`` (while the likelihood still rises).

:func:`posterior` is the Bayesian version: a posterior over which candidate constraints
hold (inclusion indicators with a prior on their number), exact by enumeration for small
candidate sets and by Metropolis-Hastings otherwise, giving inclusion probabilities that
a planner can be robust to (``plan(env, r, constraints=post.above(0.1))``).

References:
    Scobee & Sastry (2020), "Maximum Likelihood Constraint Inference for Inverse
    Reinforcement Learning", ICLR. Wasserman, Ramdas & Balakrishnan (2020), "Universal
    inference", PNAS (likelihood-ratio tests by Markov's inequality).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from irl import planning
from irl.mdp import TabularMDP, state_action_reward

__all__ = ["Constraint", "InferredConstraints", "ConstraintPosterior", "ConstraintError", "KINDS",
           "candidates", "removal_masks", "removed_mask", "constrained_reward", "infer", "posterior", "plan",
           "log_likelihoods"]

#: The kinds of candidate constraints.
KINDS = ("states", "actions", "features")
_SINGULAR = {"states": "state", "actions": "action", "features": "feature"}
#: Largest probability the human model may give a removed action in a state the demonstrations visit.
_LEAK = 1e-9
#: Float64 numbers per policy of a batched planner call (a chunk's policy stays below 64 MB).
_CHUNK_NUMBERS = 1 << 23
#: Largest ``K * S * A`` of the candidates' masks (bool bytes; the entering pass holds 8x that in float64).
MAX_MASK_ENTRIES = 1 << 27


class ConstraintError(ValueError):
    """Constraint inference or constrained planning was asked something it cannot do; the message says why."""


@dataclass(frozen=True)
class Constraint:
    """One candidate constraint.

    Attributes:
        kind: ``"state"``, ``"action"`` or ``"feature"``.
        index: the state, action or feature id.
        label: a readable name (``"state 31"``, ``"action up-left"``, ``"feature green"``).
    """

    kind: str
    index: int
    label: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "index": int(self.index), "label": self.label}


# ------------------------------------------------------------------------------------------ candidates
def _kinds(kind: Any) -> tuple[str, ...]:
    ks = (kind,) if isinstance(kind, str) else tuple(kind)
    if not ks:
        raise ConstraintError(f"kind must name at least one of {', '.join(KINDS)}: got an empty list")
    for k in ks:
        if k not in KINDS:
            raise ConstraintError(f"unknown constraint kind {k!r}; known: {', '.join(KINDS)}")
    return ks


def candidates(env: TabularMDP, kind: Any = "states") -> tuple[Constraint, ...]:
    """Every candidate constraint of the given kind(s), in a fixed order.

    Args:
        env: the MDP.
        kind: ``"states"``, ``"actions"``, ``"features"`` or a sequence of them.

    Returns:
        The candidates: states ``0..S-1``, then actions, then features.

    Raises:
        ConstraintError: an unknown kind, or ``"features"`` for an MDP without features.

    Example:
        >>> import irl
        >>> env = irl.envs.make("scobee-9x9")
        >>> [c.label for c in irl.constraints.candidates(env, "actions")][4:6]
        ['action up-left', 'action up-right']
    """
    out: list[Constraint] = []
    for k in _kinds(kind):
        if k == "states":
            names = env.state_names or tuple(str(s) for s in range(env.n_states))
        elif k == "actions":
            names = env.action_names or tuple(str(a) for a in range(env.n_actions))
        else:
            if env.features is None:
                raise ConstraintError(f"kind 'features' needs an MDP with features: {env.name!r} has none")
            names = env.feature_names or tuple(str(f) for f in range(env.n_features))
        out += [Constraint(_SINGULAR[k], i, f"{_SINGULAR[k]} {n}") for i, n in enumerate(names)]
    return tuple(out)


def _entering(env: TabularMDP, states: np.ndarray, tolerance: float) -> np.ndarray:
    """``(K, S, A)``: the state-actions that enter any state of ``states[k]`` (``(K, S)`` bool) w.p. ``> tolerance``."""
    P = env.transitions
    mass = P @ sp.csr_matrix(states.T.astype(np.float64))  # (S*A, K): probability of entering the set
    mass = mass.toarray() if sp.issparse(mass) else np.asarray(mass)
    return (mass.T > tolerance).reshape(-1, env.n_states, env.n_actions)


def _check_tolerance(tolerance: Any) -> float:
    try:
        tol = float(tolerance)
    except (TypeError, ValueError):
        raise ConstraintError(f"tolerance must be a probability in [0, 1): got {tolerance!r}") from None
    if not 0.0 <= tol < 1.0:
        raise ConstraintError(f"tolerance must be a probability in [0, 1): got {tolerance!r}")
    return tol


def removal_masks(env: TabularMDP, constraints: Sequence[Constraint], *, tolerance: float = 0.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The state-actions each constraint removes, and the states it forbids.

    Args:
        env: the MDP.
        constraints: ``K`` constraints (from :func:`candidates`).
        tolerance: a state-action *enters* a forbidden state when it does so with
            probability ``> tolerance`` (0: any chance; with slippery dynamics a larger
            value keeps the moves that only slip into it).

    Returns:
        ``(removed, forbidden)``: bool arrays ``(K, S, A)`` and ``(K, S)``.

    Raises:
        ConstraintError: an unknown kind or an index out of range.

    Example:
        >>> import irl
        >>> env = irl.envs.make("scobee-9x9")
        >>> c = irl.constraints.candidates(env, "states")[31]
        >>> removed, forbidden = irl.constraints.removal_masks(env, [c])
        >>> int(removed.sum()), forbidden[0].nonzero()[0].tolist()   # 8 moves in, 8 moves out
        (16, [31])
    """
    tol = _check_tolerance(tolerance)
    S, A, K = env.n_states, env.n_actions, len(constraints)
    if K * S * A > MAX_MASK_ENTRIES:
        raise ConstraintError(
            f"{K} candidate constraints x {S} states x {A} actions = {K * S * A:.3g} mask entries, more than "
            f"irl.constraints.MAX_MASK_ENTRIES = {MAX_MASK_ENTRIES:.3g}: pass fewer candidates (candidates=[...], "
            f"e.g. the states near the demonstrations) or raise the limit if the machine has the memory")
    forbidden = np.zeros((K, S), bool)
    removed = np.zeros((K, S, A), bool)
    live = ~env.terminal
    sizes = {"state": S, "action": A, "feature": env.n_features}
    sa_feature = env.features is not None and env.features.ndim == 3
    for k, c in enumerate(constraints):  # K masks, each a vectorised slice (no loop over states or actions)
        if not isinstance(c, Constraint):
            raise ConstraintError(f"constraints[{k}] must be an irl.constraints.Constraint: got {type(c).__name__}")
        if c.kind not in sizes:
            raise ConstraintError(f"constraints[{k}] has unknown kind {c.kind!r}; known: state, action, feature")
        if not 0 <= int(c.index) < sizes[c.kind]:
            raise ConstraintError(f"constraints[{k}] ({c.label}): {c.kind} id must lie in 0..{sizes[c.kind] - 1}: "
                                  f"got {c.index}")
        if c.kind == "state":
            forbidden[k, c.index] = True
        elif c.kind == "action":
            removed[k, live, c.index] = True
        elif sa_feature:
            removed[k] = env.features[:, :, c.index] != 0
        else:
            forbidden[k] = env.features[:, c.index] != 0
    has = forbidden.any(axis=1)
    if has.any():
        removed[has] |= _entering(env, forbidden[has], tol)
        removed[has] |= forbidden[has][:, :, None] & live[None, :, None]
    return removed, forbidden


def _as_mask(env: TabularMDP, constraints: Any, tolerance: float) -> np.ndarray:
    """Constraints given as a result, a list of :class:`Constraint` or a ``(S, A)`` bool mask -> ``(S, A)`` mask."""
    if isinstance(constraints, ConstraintPosterior):
        raise ConstraintError("a posterior is not a set of constraints: give posterior.above(q), the candidates "
                              "that hold with probability > q")
    if isinstance(constraints, InferredConstraints):  # what the fit removed, with the tolerance it used
        constraints = constraints.removed
    if isinstance(constraints, np.ndarray) and constraints.dtype == bool:
        if constraints.shape != (env.n_states, env.n_actions):
            raise ConstraintError(f"a constraint mask must have shape (S, A) = ({env.n_states}, {env.n_actions}): "
                                  f"got {constraints.shape}")
        return constraints.copy()
    cs = list(constraints)
    if not cs:
        return np.zeros((env.n_states, env.n_actions), bool)
    return removal_masks(env, cs, tolerance=tolerance)[0].any(axis=0)


def removed_mask(env: TabularMDP, constraints: Any, *, tolerance: float = 0.0) -> np.ndarray:
    """The state-actions removed by a set of constraints, ``(S, A)`` bool.

    Args:
        env: the MDP.
        constraints: a list of :class:`Constraint`, an :class:`InferredConstraints` (its
            ``removed`` mask, made with its own tolerance), or an ``(S, A)`` bool mask (returned as
            a copy).
        tolerance: see :func:`removal_masks` (for a list of constraints).

    Example:
        >>> import irl
        >>> env = irl.envs.make("scobee-9x9")
        >>> up_left = irl.constraints.candidates(env, "actions")[4]
        >>> int(irl.constraints.removed_mask(env, [up_left]).sum())   # every cell but the goal
        80
    """
    return _as_mask(env, constraints, _check_tolerance(tolerance))


def _effective_horizon(env: TabularMDP) -> float:
    if env.horizon is not None:
        return float(env.horizon)
    return 1.0 / (1.0 - env.discount) if env.discount < 1.0 else float(env.n_states)


def default_penalty(env: TabularMDP, reward: np.ndarray) -> float:
    """``50 * (1 + span(r) * H_eff)``: larger than any difference of action values, by 50 nats at ``beta = 1``."""
    span = float(reward.max() - reward.min()) if reward.size else 0.0
    return 50.0 * (1.0 + span * _effective_horizon(env))


def _check_penalty(env: TabularMDP, r: np.ndarray, penalty: Any) -> float:
    if penalty is None:
        return default_penalty(env, r)
    from human_models.base import HumanModelError, positive_param

    try:
        return float(positive_param("penalty", penalty))
    except (HumanModelError, TypeError) as e:
        raise ConstraintError(f"penalty must be a finite number > 0: got {penalty!r}") from e


def constrained_reward(env: TabularMDP, reward: Any, constraints: Any, *, penalty: float | None = None,
                       tolerance: float = 0.0) -> np.ndarray:
    """The reward of the constrained MDP: ``r(s, a) - penalty`` on every removed state-action.

    A Boltzmann (or any softmax-of-values) human acting on it never takes a removed
    action (its probability underflows), so this *is* the MDP with those state-actions
    removed; simulate constrained demonstrations with it.

    Args:
        env: the MDP.
        reward: nominal reward ``(S,)`` or ``(S, A)``.
        constraints: see :func:`removed_mask`.
        penalty: default :func:`default_penalty`.
        tolerance: see :func:`removal_masks`.

    Returns:
        ``(S, A)`` float64.

    Example:
        >>> import irl, human_models as hm, demos
        >>> env = irl.envs.make("scobee-9x9")
        >>> cs = irl.constraints.candidates(env, "actions")[4:6]
        >>> r = irl.constraints.constrained_reward(env, env.true_reward, cs)
        >>> data = demos.simulate(env, hm.Boltzmann(), r, n=20, seed=0, horizon=60)
        >>> bool(set(data.actions.tolist()) & {4, 5})
        False
    """
    r = np.array(state_action_reward(reward, env.n_states, env.n_actions, name="reward"))
    mask = _as_mask(env, constraints, _check_tolerance(tolerance))
    r[mask] -= _check_penalty(env, r, penalty)
    return r


# ---------------------------------------------------------------------------------------- likelihoods
def _trajectories(env: TabularMDP, data: Any) -> Any:
    from demos import Trajectories

    if not isinstance(data, Trajectories):
        raise ConstraintError(f"constraint inference needs demonstrations (demos.Trajectories): got "
                              f"{type(data).__name__}")
    if len(data) == 0:
        raise ConstraintError("constraint inference needs at least one demonstration: got an empty dataset")
    data.validate(env.n_states, env.n_actions, horizon=env.horizon)
    return data


def _default_human(human: Any) -> Any:
    if human is None:
        from human_models import Boltzmann

        return Boltzmann(1.0)
    if not hasattr(human, "action_log_probs"):
        raise ConstraintError(f"human must be a human model (with action_log_probs(mdp, reward)): got "
                              f"{type(human).__name__}")
    return human


class _Scorer:
    """Log-likelihood of the demonstrations under a human model for a batch of removed-state-action masks."""

    def __init__(self, env: TabularMDP, data: Any, human: Any, reward: np.ndarray, penalty: float) -> None:
        self.env, self.data, self.human, self.reward, self.penalty = env, data, human, reward, penalty
        self.shape, where, weights = data.sufficient_statistics(env)
        self.where = where
        self.weights = weights.numpy()
        # the (t, s) of every observed step (state index is the second-to-last entry of `where`)
        self.obs_states = where[-2].numpy()
        self.calls = 0

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        """``(B, S, A)`` bool -> ``(B,)`` log-likelihoods (chunks of one batched planner call each)."""
        masks = np.asarray(masks, bool)
        per = int(np.prod(self.shape))
        # Finite horizon: one batched backward sweep for the whole chunk (measured 3.7x faster than one call per
        # hypothesis on scobee-9x9 with horizon 40). Infinite horizon: the planner's Newton steps solve one sparse
        # LU per hypothesis, and a batch is then slower than single calls (measured 0.4x); evaluate one by one.
        chunk = max(1, _CHUNK_NUMBERS // max(per, 1)) if self.env.horizon is not None else 1
        out = [self._chunk(masks[i:i + chunk]) for i in range(0, len(masks), chunk)]
        return np.concatenate(out) if out else np.zeros(0)

    def _chunk(self, masks: np.ndarray) -> np.ndarray:
        self.calls += 1
        r = np.where(masks, self.reward[None] - self.penalty, self.reward[None])
        with torch.no_grad():
            logp = self.human.action_log_probs(self.env, torch.from_numpy(r))
        if tuple(logp.shape[-len(self.shape):]) != self.shape:
            raise ConstraintError(f"the human model's policy has shape {tuple(logp.shape)}, which does not end in "
                                  f"the data's count shape {self.shape}")
        logp = logp.reshape(len(masks), *self.shape)
        rows = logp[(slice(None), *self.where[:-1])].double().numpy()  # (B, n_obs, A): the visited (t, s)
        a = self.where[-1].numpy()
        broken = masks[:, self.obs_states, a].any(axis=1)  # a demonstration takes a removed action: impossible
        leak = (np.exp(rows[~broken]) * masks[~broken][:, self.obs_states, :]).sum(-1)  # removed mass where data act
        if leak.size and leak.max() > _LEAK:
            b, j = np.unravel_index(int(leak.argmax()), leak.shape)
            raise ConstraintError(
                f"the human model {self.human!r} gives removed actions probability {leak[b, j]:.3g} in state "
                f"{self.obs_states[j]}, which the demonstrations visit (at most {_LEAK:g} allowed): its policy "
                f"does not exclude removed actions (a model that mixes in random actions cannot be held to hard "
                f"constraints), or the penalty {self.penalty:.3g} is too small for its rationality; pass a "
                f"larger penalty=")
        picked = np.take_along_axis(rows, a[None, :, None], axis=2)[..., 0]
        return np.where(broken, -np.inf, picked @ self.weights)


def log_likelihoods(env: TabularMDP, data: Any, nominal_reward: Any, masks: np.ndarray, *, human: Any = None,
                    penalty: float | None = None) -> np.ndarray:
    """Log-likelihood of the demonstrations in the MDP without the state-actions of each mask.

    Args:
        env: the MDP.
        data: :class:`demos.Trajectories`.
        nominal_reward: ``(S,)`` or ``(S, A)``.
        masks: ``(B, S, A)`` bool, removed state-actions per hypothesis.
        human: human model (default ``Boltzmann(1.0)``).
        penalty: see :func:`constrained_reward`.

    Returns:
        ``(B,)`` log-likelihoods (one batched planner call per chunk of hypotheses); ``-inf``
        where a demonstration takes a removed state-action.

    Raises:
        ConstraintError: bad data, or a human model that does not exclude removed actions.

    Example:
        >>> import numpy as np, irl, human_models as hm, demos
        >>> env = irl.envs.make("scobee-9x9")
        >>> data = demos.simulate(env, hm.Boltzmann(), env.true_reward, n=5, seed=0, horizon=60)
        >>> ll = irl.constraints.log_likelihoods(env, data, env.true_reward, np.zeros((2, 81, 8), bool))
        >>> bool(ll[0] == ll[1])
        True
    """
    data = _trajectories(env, data)
    r = np.array(state_action_reward(nominal_reward, env.n_states, env.n_actions, name="nominal_reward"))
    masks = np.asarray(masks)
    if masks.dtype != bool or masks.ndim != 3 or masks.shape[1:] != (env.n_states, env.n_actions):
        raise ConstraintError(f"masks must be a bool array (B, S, A) = (B, {env.n_states}, {env.n_actions}): "
                              f"got {masks.dtype} {masks.shape}")
    return _Scorer(env, data, _default_human(human), r, _check_penalty(env, r, penalty))(masks)


def _violations(data: Any, removed: np.ndarray, forbidden: np.ndarray) -> np.ndarray:
    """``(K,)`` bool: candidate ``k`` is broken by some demonstration (uses a removed step or visits a forbidden state)."""
    K, S, A = removed.shape
    _, s = data.step_index
    used = np.unique(s * A + data.actions)
    visited = np.unique(data.states)
    return removed.reshape(K, S * A)[:, used].any(axis=1) | forbidden[:, visited].any(axis=1)


def _trajectory_constant(env: TabularMDP, data: Any) -> float:
    """``sum_i [log P_hat(xi_i) - log d0(s0_i) - sum_t log T(s_t+1 | s_t, a_t)]``: turns a log-likelihood into a KL."""
    n = len(data)
    L = int(data.lengths.max()) + 1
    pad = np.full((n, 2 * L), -1, dtype=np.int64)
    so, ao = data.state_offsets, data.action_offsets
    for name, flat, off, base in (("s", data.states, so, 0), ("a", data.actions, ao, L)):
        lens = np.diff(off)
        row = np.repeat(np.arange(n), lens)
        col = np.arange(flat.size) - np.repeat(off[:-1], lens)
        pad[row, base + col] = flat
    _, inverse, counts = np.unique(pad, axis=0, return_inverse=True, return_counts=True)
    log_emp = np.log(counts[inverse.ravel()] / n).sum()
    with np.errstate(divide="ignore"):
        log_d0 = np.log(env.initial[data.initial_states]).sum()
        _, s = data.step_index
        nxt = np.delete(data.states, so[:-1])
        p = np.asarray(env.transitions[s * env.n_actions + data.actions, nxt]).ravel()
        log_t = np.log(p).sum()
    return float(log_emp - log_d0 - log_t)


# ------------------------------------------------------------------------------------------- greedy fit
def _freeze(result: Any) -> None:
    """Make the array fields of a frozen result read-only (its own copies)."""
    for name, value in vars(result).items():
        if isinstance(value, np.ndarray):
            a = np.array(value, copy=True)
            a.setflags(write=False)
            object.__setattr__(result, name, a)


@dataclass(frozen=True)
class InferredConstraints:
    """The constraints chosen by :func:`infer`, in order, with what each bought.

    Attributes:
        constraints: the chosen constraints, in the order they were added.
        gains: ``(k,)`` log-likelihood gain of each (summed over the demonstrations).
        log_likelihood: ``(k + 1,)`` log-likelihood of the demonstrations with no constraint, then
            after each one.
        kl: ``(k + 1,)`` the KL criterion ``D_KL(P_D || P_C)`` (nats) with no constraint, then after each
            (``inf`` when the start distribution or dynamics cannot produce a demonstration).
        candidates: every candidate considered.
        violated: ``(K,)`` bool, candidates some demonstration breaks (never chosen).
        step_gains: ``(steps, K)`` the gain of every candidate at every step (``nan`` for candidates
            already chosen, violated or adding no new state-action).
        removed: ``(S, A)`` bool, the state-actions the chosen constraints remove.
        stop: the stopping rule (``"kl"``, ``"lr"`` or ``None``) and ``threshold`` its value.
        stopped: why the selection ended.
        n_demos: number of demonstrations.
        human: the human model (``repr``).
        tolerance, penalty: as used.
    """

    constraints: tuple[Constraint, ...]
    gains: np.ndarray
    log_likelihood: np.ndarray
    kl: np.ndarray
    candidates: tuple[Constraint, ...]
    violated: np.ndarray
    step_gains: np.ndarray
    removed: np.ndarray
    stop: str | None
    threshold: float | None
    stopped: str
    n_demos: int
    human: str
    tolerance: float
    penalty: float
    _extra: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        _freeze(self)

    @property
    def labels(self) -> list[str]:
        """The chosen constraints' labels, in order."""
        return [c.label for c in self.constraints]

    def indices(self, kind: str) -> list[int]:
        """Ids of the chosen constraints of one kind (``"state"``, ``"action"`` or ``"feature"``)."""
        return [int(c.index) for c in self.constraints if c.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the chosen constraints with their gains and KL values)."""
        kl = [None if not np.isfinite(v) else float(v) for v in self.kl]
        return {"constraints": [dict(c.to_dict(), gain=float(g), kl=kl[i + 1])
                                for i, (c, g) in enumerate(zip(self.constraints, self.gains))],
                "log_likelihood": [float(v) for v in self.log_likelihood], "kl": kl,
                "stop": self.stop, "threshold": self.threshold, "stopped": self.stopped,
                "n_demos": self.n_demos, "human": self.human, "n_candidates": len(self.candidates),
                "n_violated": int(self.violated.sum())}

    def __repr__(self) -> str:
        return (f"InferredConstraints({self.labels}, gains={np.round(self.gains, 3).tolist()}, "
                f"stopped={self.stopped!r})")


def _check_stop(stop: Any, threshold: Any) -> tuple[str | None, float | None]:
    if stop not in ("kl", "lr", None, "none"):
        raise ConstraintError(f"unknown stopping rule {stop!r}; known: kl, lr, None")
    stop = None if stop == "none" else stop
    if stop is None:
        return None, None
    default = 0.1 if stop == "kl" else 0.05
    t = default if threshold is None else threshold
    try:
        t = float(t)
    except (TypeError, ValueError):
        raise ConstraintError(f"threshold must be a number: got {threshold!r}") from None
    if stop == "kl" and not (np.isfinite(t) and t >= 0):
        raise ConstraintError(f"threshold of the kl rule (nats per demonstration) must be >= 0: got {threshold!r}")
    if stop == "lr" and not 0 < t < 1:
        raise ConstraintError(f"threshold of the lr rule (a test level alpha) must lie in (0, 1): got {threshold!r}")
    return stop, t


def _count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConstraintError(f"{name} must be an integer >= {minimum}: got {value!r}")
    return int(value)


def _setup(env: TabularMDP, data: Any, nominal_reward: Any, kind: Any, cands: Any, human: Any, tolerance: Any,
           penalty: Any) -> tuple:
    if not isinstance(env, TabularMDP):
        raise ConstraintError(f"env must be an irl.TabularMDP: got {type(env).__name__}")
    data = _trajectories(env, data)
    r = np.array(state_action_reward(nominal_reward, env.n_states, env.n_actions, name="nominal_reward"))
    cands = candidates(env, kind) if cands is None else tuple(cands)
    if not cands:
        raise ConstraintError("no candidate constraints were given")
    tol = _check_tolerance(tolerance)
    removed, forbidden = removal_masks(env, cands, tolerance=tol)
    human = _default_human(human)
    pen = _check_penalty(env, r, penalty)
    return data, r, cands, tol, removed, forbidden, human, pen, _Scorer(env, data, human, r, pen)


def infer(env: TabularMDP, data: Any, nominal_reward: Any, *, kind: Any = "states", max_constraints: int = 10,
          human: Any = None, stop: str | None = "kl", threshold: float | None = None,
          candidates: Sequence[Constraint] | None = None, tolerance: float = 0.0,
          penalty: float | None = None) -> InferredConstraints:
    """Greedy maximum likelihood constraint inference.

    At each step every remaining candidate that no demonstration breaks is added in turn
    (one batched planner call for all of them); the one that raises the log-likelihood of
    the demonstrations most is kept, until the stopping rule says the gain is too small,
    ``max_constraints`` are chosen, or no candidate raises the likelihood.

    Args:
        env: the MDP (its reward-free dynamics; the demonstrator acts in it minus the constraints).
        data: :class:`demos.Trajectories` of the constrained demonstrator.
        nominal_reward: the reward the demonstrator is known to pursue, ``(S,)`` or ``(S, A)``.
        kind: ``"states"``, ``"actions"``, ``"features"`` or a sequence of them (all compete).
        max_constraints: at most this many constraints.
        human: the human model that scores the demonstrations (default ``Boltzmann(1.0)``);
            any model whose policy is a softmax of values (myopic, bounded, hyperbolic,
            false-belief ones) can be used.
        stop: ``"kl"`` (default), ``"lr"`` or ``None``; see the module documentation.
        threshold: nats per demonstration for ``"kl"`` (default 0.1), the level ``alpha`` for
            ``"lr"`` (default 0.05).
        candidates: explicit candidates (default: all of ``kind``).
        tolerance: see :func:`removal_masks`.
        penalty: see :func:`constrained_reward`.

    Returns:
        :class:`InferredConstraints`.

    Raises:
        ConstraintError: bad arguments (unknown kind or rule, empty data, bad threshold), or a
            human model that does not exclude removed actions.

    Example:
        >>> import irl, human_models as hm, demos
        >>> env = irl.envs.make("scobee-9x9")
        >>> truth = irl.constraints.candidates(env, "actions")[5:6]      # never up-right
        >>> r = irl.constraints.constrained_reward(env, env.true_reward, truth)
        >>> data = demos.simulate(env, hm.Boltzmann(), r, n=30, seed=0, horizon=60)
        >>> fit = irl.constraints.infer(env, data, env.true_reward, kind="actions")
        >>> fit.labels
        ['action up-right']

    References:
        Scobee & Sastry (2020), "Maximum Likelihood Constraint Inference for Inverse
        Reinforcement Learning", ICLR, Algorithm 2 and the KL criterion of Sec. 4.
    """
    max_constraints = _count(max_constraints, "max_constraints", 0)
    stop, thr = _check_stop(stop, threshold)
    data, r, cands, tol, removed, forbidden, human, pen, score = _setup(
        env, data, nominal_reward, kind, candidates, human, tolerance, penalty)
    n = len(data)
    K = len(cands)
    violated = _violations(data, removed, forbidden)
    current = np.zeros((env.n_states, env.n_actions), bool)
    ll = [float(score(current[None])[0])]
    chosen: list[int] = []
    gains: list[float] = []
    table: list[np.ndarray] = []
    stopped = "max_constraints reached"
    while True:
        if len(chosen) >= max_constraints:
            break
        new = (removed & ~current[None]).reshape(K, -1).any(axis=1)
        open_ = ~violated & new
        open_[chosen] = False
        idx = np.flatnonzero(open_)
        if idx.size == 0:
            stopped = "no candidate left (every other one is broken by a demonstration or adds nothing)"
            break
        row = np.full(K, np.nan)
        row[idx] = score(removed[idx] | current[None]) - ll[-1]
        table.append(row)
        best = int(idx[np.argmax(row[idx])])
        g = float(row[best])
        if not g > 0:
            stopped = "no candidate raises the likelihood"
            break
        if stop == "kl" and g / n < thr:
            stopped = f"kl: the best candidate lowers D_KL by {g / n:.4g} < {thr:g} nats per demonstration"
            break
        if stop == "lr" and g < math.log(idx.size / thr):
            stopped = (f"lr: the best candidate's log likelihood ratio {g:.4g} < log(K / alpha) = "
                       f"log({idx.size} / {thr:g}) = {math.log(idx.size / thr):.4g}")
            break
        chosen.append(best)
        gains.append(g)
        current |= removed[best]
        ll.append(ll[-1] + g)
    const = _trajectory_constant(env, data)
    kl = (const - np.array(ll)) / n
    return InferredConstraints(
        constraints=tuple(cands[i] for i in chosen), gains=np.array(gains), log_likelihood=np.array(ll), kl=kl,
        candidates=cands, violated=violated,
        step_gains=np.array(table) if table else np.zeros((0, K)), removed=current, stop=stop, threshold=thr,
        stopped=stopped, n_demos=n, human=repr(human), tolerance=tol, penalty=pen,
        _extra={"planner_calls": score.calls})


# --------------------------------------------------------------------------------------------- planning
def plan(env: TabularMDP, reward: Any, constraints: Any, *, objective: str = "optimal", beta: float | None = None,
         tolerance: float = 0.0) -> np.ndarray:
    """Plan in the MDP with the constrained state-actions removed (what :func:`irl.plan` calls).

    Args:
        env: the MDP.
        reward: ``(S,)`` or ``(S, A)``.
        constraints: a list of :class:`Constraint`, an :class:`InferredConstraints`, or an
            ``(S, A)`` bool mask of removed state-actions.
        objective: ``"optimal"`` or ``"soft"`` (Boltzmann at ``beta``).
        beta: rationality for ``"soft"``.
        tolerance: see :func:`removal_masks`.

    Returns:
        Action probabilities ``([H,] S, A)``, exactly zero on removed state-actions wherever
        the state has an allowed action.

    Raises:
        ConstraintError: no policy avoids the constraints from the start distribution (a
            start state is forbidden or a dead end).

    Example:
        >>> import irl
        >>> env = irl.envs.make("scobee-9x9")
        >>> cs = irl.constraints.candidates(env, "actions")[4:6]
        >>> pi = irl.plan(env, env.true_reward, constraints=cs)         # stationary (S, A): infinite horizon
        >>> float(pi[~env.terminal][:, 4:6].max())                      # actions in the goal are not removed
        0.0
    """
    if objective not in ("optimal", "soft"):
        raise ValueError(f"unknown planning objective {objective!r}; known: optimal, soft")
    mask = _as_mask(env, constraints, _check_tolerance(tolerance))
    r = np.array(state_action_reward(reward, env.n_states, env.n_actions, name="reward"))
    pen = 100.0 * default_penalty(env, r)
    r[mask] -= pen
    if objective == "optimal":
        pi = planning.value_iteration(env, r).policy
    else:
        pi = planning.soft_value_iteration(env, r, beta=1.0 if beta is None else beta).policy
    allowed = np.where(mask, 0.0, pi)
    mass = allowed.sum(axis=-1, keepdims=True)
    pi = np.where(mass > 0, allowed / np.where(mass > 0, mass, 1.0), pi)
    occ = planning.occupancy_measure(env, pi)
    bad = (occ * mask).reshape(-1, env.n_states, env.n_actions).sum(axis=0) if occ.ndim == 3 else occ * mask
    if bad.sum() > 1e-9:
        s, a = np.unravel_index(int(bad.argmax()), bad.shape)
        dead = np.flatnonzero((env.initial > 0) & mask.all(axis=1) & ~env.terminal)
        why = (f"start states {dead[:10].tolist()} (positive initial probability) have no allowed action"
               if dead.size else "from some start state every way runs into removed state-actions")
        raise ConstraintError(
            f"no policy avoids the constraints from the start distribution: {why}; the best policy still takes "
            f"removed action {a} in state {s} (discounted expected count {bad.sum():.3g})")
    return pi


# -------------------------------------------------------------------------------------------- posterior
@dataclass(frozen=True)
class ConstraintPosterior:
    """A posterior over which candidate constraints hold.

    Attributes:
        candidates: the ``K`` candidates.
        inclusion: ``(K,)`` posterior probability that each holds (0 for candidates a
            demonstration breaks).
        violated: ``(K,)`` bool.
        method: ``"exact"`` (enumeration of all subsets of the unbroken candidates) or ``"mh"``.
        log_evidence: ``log p(data)`` up to the likelihood's constant (exact only, else ``nan``).
        map_set: the most probable set found (indices into ``candidates``).
        inclusion_se: ``(K,)`` Monte Carlo standard errors (batch means over chains; 0 when exact).
        acceptance: MH acceptance rate (``nan`` when exact).
        n_evaluations: number of distinct constraint sets whose likelihood was computed.
    """

    candidates: tuple[Constraint, ...]
    inclusion: np.ndarray
    violated: np.ndarray
    method: str
    log_evidence: float
    map_set: tuple[int, ...]
    inclusion_se: np.ndarray
    acceptance: float
    n_evaluations: int

    def __post_init__(self) -> None:
        _freeze(self)

    def above(self, q: float) -> list[Constraint]:
        """The candidates that hold with posterior probability ``> q`` (avoid them to be safe at level ``q``)."""
        return [c for c, p in zip(self.candidates, self.inclusion) if p > q]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary, candidates sorted by inclusion probability."""
        order = np.argsort(-self.inclusion, kind="stable")
        return {"method": self.method, "acceptance": None if np.isnan(self.acceptance) else float(self.acceptance),
                "log_evidence": None if np.isnan(self.log_evidence) else float(self.log_evidence),
                "map_set": [self.candidates[i].label for i in self.map_set],
                "inclusion": [dict(self.candidates[i].to_dict(), p=float(self.inclusion[i]),
                                   se=float(self.inclusion_se[i])) for i in order if self.inclusion[i] > 0]}


def _log_prior(prior: Any, K: int) -> Any:
    """``log p(z)`` as a function of the number of included candidates ``k`` (vectorised over ``k``)."""
    if isinstance(prior, torch.distributions.Distribution):
        ks = torch.arange(K + 1, dtype=torch.float64)
        try:
            lp = prior.log_prob(ks).double().numpy()
        except (ValueError, RuntimeError) as e:
            raise ConstraintError(f"prior must be a distribution over the number of constraints 0..{K}: "
                                  f"{prior!r} failed on them ({e})") from None
        log_binom = np.array([math.lgamma(K + 1) - math.lgamma(k + 1) - math.lgamma(K - k + 1)
                              for k in range(K + 1)])
        table = lp - log_binom
        return lambda k: table[k]
    try:
        rho = float(prior)
    except (TypeError, ValueError):
        raise ConstraintError(f"prior must be an inclusion probability in (0, 1) or a torch distribution over "
                              f"the number of constraints: got {prior!r}") from None
    if not 0.0 < rho < 1.0:
        raise ConstraintError(f"prior inclusion probability must lie in (0, 1): got {prior!r}")
    return lambda k: k * math.log(rho) + (K - k) * math.log1p(-rho)


def posterior(env: TabularMDP, data: Any, nominal_reward: Any, *, kind: Any = "states",
              candidates: Sequence[Constraint] | None = None, human: Any = None, prior: Any = 0.1,
              method: str = "auto", samples: int = 2000, warmup: int = 500, chains: int = 4,
              seed: int | None = None, max_exact: int = 12, tolerance: float = 0.0,
              penalty: float | None = None) -> ConstraintPosterior:
    """Posterior over which candidate constraints hold.

    ``p(z | D) ∝ p(z) p(D | MDP without the state-actions of {c_k : z_k = 1})`` with
    inclusion indicators ``z``; candidates that a demonstration breaks have likelihood 0
    and inclusion probability 0. ``"exact"`` enumerates every subset of the remaining
    candidates (batched planner calls; at most ``2 ** max_exact`` subsets); ``"mh"`` runs
    ``chains`` Metropolis-Hastings chains whose moves flip one indicator or exchange an
    included candidate for an excluded one (the chains' proposals are scored together;
    likelihoods are cached by set).

    Args:
        env: the MDP.
        data: :class:`demos.Trajectories`.
        nominal_reward: ``(S,)`` or ``(S, A)``.
        kind: candidate kinds, as in :func:`infer`.
        candidates: explicit candidates (default: all of ``kind``).
        human: the human model (default ``Boltzmann(1.0)``).
        prior: an inclusion probability ``rho`` (independent indicators) or a
            ``torch.distributions`` over the number of constraints ``k`` (then every set of
            size ``k`` is equally likely), e.g. ``torch.distributions.Poisson(3.0)``.
        method: ``"exact"``, ``"mh"`` or ``"auto"`` (exact when at most ``max_exact``
            candidates remain).
        samples: MH iterations per chain after ``warmup``.
        warmup: MH iterations discarded per chain.
        chains: number of MH chains.
        seed: random seed.
        max_exact: largest number of unbroken candidates enumerated.
        tolerance: see :func:`removal_masks`.
        penalty: see :func:`constrained_reward`.

    Returns:
        :class:`ConstraintPosterior`.

    Raises:
        ConstraintError: bad arguments, or ``"exact"`` with more than ``max_exact`` candidates.

    Example:
        >>> import irl, human_models as hm, demos
        >>> env = irl.envs.make("scobee-9x9")
        >>> cs = irl.constraints.candidates(env, "actions")
        >>> r = irl.constraints.constrained_reward(env, env.true_reward, cs[5:6])
        >>> data = demos.simulate(env, hm.Boltzmann(), r, n=30, seed=0, horizon=60)
        >>> post = irl.constraints.posterior(env, data, env.true_reward, kind="actions")
        >>> post.method, [c.label for c in post.above(0.9)]
        ('exact', ['action up-right'])
    """
    if method not in ("auto", "exact", "mh"):
        raise ConstraintError(f"unknown posterior method {method!r}; known: auto, exact, mh")
    samples = _count(samples, "samples", 1)
    warmup = _count(warmup, "warmup", 0)
    chains = _count(chains, "chains", 1)
    max_exact = _count(max_exact, "max_exact", 0)
    data, r, cands, tol, removed, forbidden, human, pen, score = _setup(
        env, data, nominal_reward, kind, candidates, human, tolerance, penalty)
    K = len(cands)
    violated = _violations(data, removed, forbidden)
    free = np.flatnonzero(~violated)
    log_prior = _log_prior(prior, K)
    if method == "auto":
        method = "exact" if free.size <= max_exact else "mh"
    if method == "exact" and free.size > max_exact:
        raise ConstraintError(f"exact enumeration of {free.size} candidates needs 2^{free.size} likelihoods, more "
                              f"than max_exact = {max_exact} allows: use method='mh', fewer candidates, or raise "
                              f"max_exact")
    flat = removed[free].reshape(free.size, env.n_states * env.n_actions)

    def masks_of(z: np.ndarray) -> np.ndarray:  # (B, F) bool -> (B, S, A): union of the included masks
        return ((z.astype(np.float64) @ flat) > 0).reshape(len(z), env.n_states, env.n_actions)

    inclusion = np.zeros(K)
    se = np.zeros(K)
    if method == "exact":
        F = free.size
        z = ((np.arange(2 ** F)[:, None] >> np.arange(F)[None, :]) & 1).astype(bool)
        logp = score(masks_of(z)) + log_prior(z.sum(axis=1))
        log_ev = float(np.logaddexp.reduce(logp))
        w = np.exp(logp - log_ev)
        inclusion[free] = w @ z
        best = z[int(np.argmax(logp))]
        return ConstraintPosterior(cands, inclusion, violated, "exact", log_ev, tuple(int(i) for i in free[best]),
                                   se, float("nan"), 2 ** F)
    rng = np.random.default_rng(seed)
    F = free.size
    cache: dict[bytes, float] = {}

    def log_post(zs: np.ndarray) -> np.ndarray:
        keys = [np.packbits(z).tobytes() for z in zs]
        todo = [i for i, k in enumerate(keys) if k not in cache]
        if todo:
            uniq = {keys[i]: i for i in todo}
            vals = score(masks_of(zs[list(uniq.values())]))
            cache.update(zip(uniq.keys(), vals.tolist()))
        return np.array([cache[k] for k in keys]) + log_prior(zs.sum(axis=1))

    z = rng.random((chains, F)) < 0.5 if F else np.zeros((chains, 0), bool)
    cur = log_post(z) if F else np.zeros(chains)
    counts = np.zeros((chains, F))
    accepted = 0
    best_lp, best_z = -np.inf, z[0].copy()
    for it in range(warmup + samples):
        if F == 0:
            break
        rows = np.arange(chains)
        prop = z.copy()
        prop[rows, rng.integers(F, size=chains)] ^= True
        # half of the moves exchange an included candidate for an excluded one (symmetric: the number included
        # stays the same; a chain with nothing to exchange stays put), so that one explanation can replace another
        swap = (rng.random(chains) < 0.5)
        can = z.any(axis=1) & (~z).any(axis=1)
        out_ = np.argmax(np.where(z, rng.random((chains, F)), -1.0), axis=1)
        in_ = np.argmax(np.where(~z, rng.random((chains, F)), -1.0), axis=1)
        prop[swap] = z[swap]
        both = swap & can
        prop[rows[both], out_[both]] = False
        prop[rows[both], in_[both]] = True
        lp = log_post(prop)
        accept = np.log(rng.random(chains)) < lp - cur
        z[accept] = prop[accept]
        cur[accept] = lp[accept]
        if it >= warmup:
            counts += z
            accepted += int(accept.sum())
        j = int(np.argmax(cur))
        if cur[j] > best_lp:
            best_lp, best_z = float(cur[j]), z[j].copy()
    per_chain = counts / samples
    inclusion[free] = per_chain.mean(axis=0)
    if chains > 1:
        se[free] = per_chain.std(axis=0, ddof=1) / math.sqrt(chains)
    return ConstraintPosterior(cands, inclusion, violated, "mh", float("nan"),
                               tuple(int(i) for i in free[best_z]), se,
                               accepted / (samples * chains) if F else float("nan"), len(cache))
