"""Partially observed behaviour: state-only trajectories and logged transitions.

* :class:`StateOnly`: trajectories of states without the actions. The likelihood
  marginalises the unobserved action at every step,
  ``p(s_{t+1} | s_t) = sum_a pi_t(a | s_t) P(s_{t+1} | s_t, a)``.
* :class:`Transitions`: logged ``(s, a)`` or ``(s, a, s')`` pairs without a time
  index (from other tasks, other people, logs). A stationary policy scores a
  pair as ``pi(a | s)``; a time-indexed one by the probability of ``a`` at a
  random visit to ``s``, ``sum_t d_t(s) pi_t(a|s) / sum_t d_t(s)`` with ``d_t`` the
  human's own state distribution (computed exactly, differentiably). With known
  dynamics the recorded ``s'`` carries no information about the reward; it is
  kept for the record and checked against the dynamics.

Both work under any human model: they only need its ``action_log_probs``.

References:
    Torabi, Warnell & Stone (2018), "Behavioral Cloning from Observation" (learning
    from state-only demonstrations); Jeon, Milli & Dragan (2020) on off-policy
    evidence as reward-rational choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from demos.trajectories import DemoValidationError, Trajectories

__all__ = ["StateOnly", "Transitions"]

_STATE_ONLY = "pluggable-irl/state-only"
_TRANSITIONS = "pluggable-irl/transitions"


def _logp(human: Any, mdp: Any, reward: Any) -> tuple[torch.Tensor, bool]:
    """The human's log-policy and whether it is time-indexed ``(..., H, S, A)``."""
    logp = human.action_log_probs(mdp, reward)
    timed = mdp.horizon is not None and logp.ndim >= 3 and logp.shape[-3] == mdp.horizon
    return logp, timed


def _transition_logprob(mdp: Any, s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
    """``log P(s_next | s, a)`` for every action: ``(n, A)`` (``-inf`` where impossible)."""
    A = mdp.n_actions
    rows = (s[:, None] * A + np.arange(A)[None, :]).ravel()
    p = np.asarray(mdp.transitions[rows, np.repeat(s_next, A)]).reshape(len(s), A)
    with np.errstate(divide="ignore"):
        return np.log(p)


class _PushForward(torch.autograd.Function):
    """``y = P^T x`` for ``x (S*A, B)`` through scipy; backward ``P g``. (Terminal rows of ``P`` are zero.)"""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, mdp: Any) -> torch.Tensor:  # type: ignore[override]
        ctx.mdp = mdp
        return torch.from_numpy(mdp.continuation_T @ x.detach().numpy()).to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple:  # type: ignore[override]
        return torch.from_numpy(ctx.mdp.continuation @ g.detach().numpy()).to(g.dtype), None


@dataclass(frozen=True, eq=False)
class StateOnly:
    """Trajectories of states only (the actions were not observed).

    Attributes:
        trajectories: the episodes, as :class:`Trajectories` whose actions are
            ignored (use :meth:`from_states` to build one without actions).

    Example:
        >>> import demos
        >>> d = demos.StateOnly.from_states([[0, 1, 2], [3, 3]])
        >>> len(d), d.n_observations
        (2, 3)
    """

    trajectories: Trajectories
    kind = "state-only"

    def __post_init__(self) -> None:
        if not isinstance(self.trajectories, Trajectories):
            raise DemoValidationError(f"StateOnly wraps demos.Trajectories: got {type(self.trajectories).__name__}")

    @classmethod
    def from_states(cls, states: Any, *, terminated: Any = None) -> "StateOnly":
        """Build from per-episode state sequences (each at least one state)."""
        seqs = [np.asarray(s) for s in states]
        for i, s in enumerate(seqs):
            if s.ndim != 1 or s.size < 1:
                raise DemoValidationError(f"episode {i} must be a non-empty 1-D sequence of state ids")
        return cls(Trajectories.from_lists(seqs, [np.zeros(len(s) - 1, np.int64) for s in seqs],
                                           terminated=terminated))

    @classmethod
    def simulate(cls, mdp: Any, human: Any, reward: Any, n: int, *, rng: Any = None, **kwargs: Any) -> "StateOnly":
        """Sample ``n`` episodes from ``human`` and hide the actions."""
        return cls(human.sample(mdp, reward, n, rng=rng, **kwargs))

    def __len__(self) -> int:
        return len(self.trajectories)

    @property
    def n_observations(self) -> int:
        """Number of observed state transitions."""
        return int(self.trajectories.lengths.sum())

    def validate(self, n_states: int, n_actions: int, *, horizon: int | None = None) -> "StateOnly":
        """Check state ids and lengths against an MDP."""
        tr = self.trajectories
        Trajectories(tr.states, np.zeros_like(tr.actions), tr.lengths).validate(n_states, n_actions, horizon=horizon)
        return self

    def check_consistency(self, mdp: Any, *, allow: Any = ()) -> "StateOnly":
        """Refuse state sequences that contradict ``mdp`` (see :mod:`demos.consistency`); a step is
        impossible when no action can produce it.

        Raises:
            DemoValidationError: naming the trajectory and the step.
        """
        from demos.consistency import check_trajectories

        check_trajectories(self.trajectories, mdp, allow=allow, actions=False)
        return self

    def log_likelihood_under(self, human: Any, mdp: Any, reward: Any) -> torch.Tensor:
        """``sum_i sum_t log sum_a pi_t(a|s_t) P(s_{t+1}|s_t,a)``; differentiable in ``reward``.

        Returns ``-inf`` if an observed step is impossible under the dynamics.
        """
        t, s, logP, weights = self.sufficient_statistics(mdp)
        logp, timed = _logp(human, mdp, reward)
        pol = logp[..., t, s, :] if timed else logp[..., s, :]
        return torch.logsumexp(pol + logP, dim=-1) @ weights.to(pol.dtype)

    def sufficient_statistics(self, mdp: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The distinct observed steps ``(t, s, s')``, counted once per MDP (see :mod:`demos.statistics`).

        Returns:
            ``(t, s, log_P, counts)``: time and source state of each distinct step
            ``(K,)``, ``log P(s' | s, a)`` for every action ``(K, A)`` and how often
            the step occurs ``(K,)`` (``float64``).
        """
        from demos.statistics import memo

        def compute() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
            self.validate(mdp.n_states, mdp.n_actions, horizon=mdp.horizon)
            tr = self.trajectories
            t, s = tr.step_index
            s_next = np.delete(tr.states, tr.state_offsets[:-1])  # every state but each episode's first
            S = mdp.n_states
            keys, counts = np.unique((t * S + s) * S + s_next, return_counts=True)
            t, rest = np.divmod(keys, S * S)
            s, s_next = np.divmod(rest, S)
            return (torch.from_numpy(t), torch.from_numpy(s), torch.from_numpy(_transition_logprob(mdp, s, s_next)),
                    torch.from_numpy(counts.astype(np.float64)))

        return memo(self, mdp, "steps", compute)

    def _save_npz(self, path: Any) -> None:
        from demos.io import save_arrays

        tr = self.trajectories
        save_arrays(path, _STATE_ONLY, {"states": tr.states, "lengths": tr.lengths, "terminated": tr.terminated,
                                        "truncated": tr.truncated})

    def save(self, path: Any) -> None:
        """Write a versioned ``.npz`` atomically (no pickle)."""
        from demos.io import save

        save(self, path)

    def __repr__(self) -> str:
        return f"StateOnly(n={len(self)}, steps={self.n_observations})"


@dataclass(frozen=True, eq=False)
class Transitions:
    """Logged ``(s, a)`` or ``(s, a, s')`` pairs without time index.

    Attributes:
        states: ``(N,)`` state ids.
        actions: ``(N,)`` action ids.
        next_states: ``(N,)`` successor ids, or ``None``.

    Example:
        >>> import demos
        >>> demos.Transitions(states=[0, 1], actions=[1, 0]).n_observations
        2
    """

    states: Any
    actions: Any
    next_states: Any = None
    kind = "transitions"

    def __post_init__(self) -> None:
        names = ("states", "actions", "next_states")
        arrays = []
        for k in names:
            try:
                arrays.append(None if getattr(self, k) is None else np.asarray(getattr(self, k)))
            except ValueError:
                raise DemoValidationError(f"{k} must be a flat 1-D sequence of integer ids: got a ragged "
                                          f"nested list") from None
        n = arrays[0].shape
        for name, a in zip(names, arrays):
            if a is None:
                continue
            if a.ndim != 1 or a.shape != n:
                raise DemoValidationError(f"{name} must be a 1-D array of the same length as states {n}: "
                                          f"got shape {a.shape}")
            if a.size and not np.issubdtype(a.dtype, np.integer):
                first = a.ravel()[0]
                raise DemoValidationError(f"{name} must hold integer ids: got dtype {a.dtype} (e.g. {first!r})")
            if np.any(a < 0):
                raise DemoValidationError(f"{name} ids must be >= 0: got {a[a < 0][0]}")
            a = a.astype(np.int64)
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        if arrays[0].size == 0:
            raise DemoValidationError("a Transitions dataset needs at least one pair: got 0")

    @classmethod
    def from_trajectories(cls, data: Trajectories, *, with_next: bool = True) -> "Transitions":
        """Flatten trajectories into pairs (the time index is dropped)."""
        _, s = data.step_index
        nxt = np.delete(data.states, data.state_offsets[:-1]) if with_next else None
        return cls(states=s, actions=data.actions, next_states=nxt)

    @classmethod
    def simulate(cls, mdp: Any, human: Any, reward: Any, n: int, *, rng: Any = None, **kwargs: Any) -> "Transitions":
        """Flatten ``n`` sampled episodes of ``human`` into shuffled ``(s, a, s')`` pairs."""
        rng = np.random.default_rng(rng)
        flat = cls.from_trajectories(human.sample(mdp, reward, n, rng=rng, **kwargs))
        order = rng.permutation(flat.n_observations)
        return cls(flat.states[order], flat.actions[order], flat.next_states[order])

    def __len__(self) -> int:
        return int(self.states.size)

    @property
    def n_observations(self) -> int:
        """Number of pairs."""
        return len(self)

    def validate(self, n_states: int, n_actions: int, *, horizon: int | None = None) -> "Transitions":
        """Check ids against an MDP's sizes."""
        for name, arr, n in (("state", self.states, n_states), ("action", self.actions, n_actions),
                             ("next state", self.next_states, n_states)):
            if arr is not None and np.any(arr >= n):
                k = int(np.flatnonzero(arr >= n)[0])
                raise DemoValidationError(f"{name} id {arr[k]} in pair {k} is out of range: the MDP has {n} "
                                          f"{name.split()[-1]}s (valid ids 0..{n - 1})")
        return self

    def log_likelihood_under(self, human: Any, mdp: Any, reward: Any) -> torch.Tensor:
        """``sum_i log p(a_i | s_i)`` under the human's policy (visit-weighted if time-indexed).

        Raises:
            DemoValidationError: ids out of range, or an ``s'`` the dynamics cannot produce.
        """
        s, a, weights = self.sufficient_statistics(mdp)
        logp, timed = _logp(human, mdp, reward)
        if timed:
            logp = _visit_weighted_log_policy(mdp, logp)
        observed = logp[..., s, a]
        return observed @ weights.to(observed.dtype)

    def sufficient_statistics(self, mdp: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The distinct observed pairs ``(s, a)`` and their counts ``(K,)``, once per MDP.

        Raises:
            DemoValidationError: ids out of range, or an ``s'`` the dynamics cannot produce.
        """
        from demos.statistics import memo

        def compute() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            self.validate(mdp.n_states, mdp.n_actions)
            if self.next_states is not None:
                ok = np.isfinite(_transition_logprob(mdp, self.states, self.next_states)[np.arange(len(self)),
                                                                                          self.actions])
                if not ok.all():
                    k = int(np.flatnonzero(~ok)[0])
                    raise DemoValidationError(f"pair {k}: ({self.states[k]}, {self.actions[k]}) -> "
                                              f"{self.next_states[k]} is impossible under the MDP's dynamics")
            keys, counts = np.unique(self.states * mdp.n_actions + self.actions, return_counts=True)
            s, a = np.divmod(keys, mdp.n_actions)
            return torch.from_numpy(s), torch.from_numpy(a), torch.from_numpy(counts.astype(np.float64))

        return memo(self, mdp, "pairs", compute)

    def _save_npz(self, path: Any) -> None:
        from demos.io import save_arrays

        save_arrays(path, _TRANSITIONS, {"states": self.states, "actions": self.actions,
                                         "next_states": self.next_states})

    def save(self, path: Any) -> None:
        """Write a versioned ``.npz`` atomically (no pickle)."""
        from demos.io import save

        save(self, path)

    def __repr__(self) -> str:
        return f"Transitions(n={len(self)}, with_next={self.next_states is not None})"


def _visit_weighted_log_policy(mdp: Any, logp: torch.Tensor) -> torch.Tensor:
    """``log sum_t d_t(s) pi_t(a|s) - log sum_t d_t(s)`` for a time-indexed policy ``(..., H, S, A)``.

    ``d_t`` is the human's own state distribution from ``mdp.initial``, propagated
    differentiably through the sparse dynamics. States never visited get the
    time-averaged policy.
    """
    lead = logp.shape[:-3]
    H, S, A = logp.shape[-3:]
    pi = logp.exp().reshape(-1, H, S, A)
    B = pi.shape[0]
    d = torch.from_numpy(np.array(mdp.initial)).to(pi.dtype)[:, None].expand(S, B)
    joint = []
    for t in range(H):
        x = d.T[:, :, None] * pi[:, t]  # (B, S, A)
        joint.append(x)
        if t + 1 < H:
            d = _PushForward.apply(x.permute(1, 2, 0).reshape(S * A, B), mdp)  # undiscounted visits
    total = torch.stack(joint).sum(0)  # (B, S, A)
    visits = total.sum(-1, keepdim=True)
    fallback = pi.mean(1)
    p = torch.where(visits > 0, total / torch.where(visits > 0, visits, torch.ones_like(visits)), fallback)
    return torch.log(p).reshape(*lead, S, A)


def _need(arrays: dict, names: tuple[str, ...], what: str) -> None:
    missing = [k for k in names if k not in arrays]
    if missing:
        raise DemoValidationError(f"{what} file lacks arrays {missing}")


def _load_state_only(arrays: dict, meta: dict) -> StateOnly:
    _need(arrays, ("states", "lengths"), "state-only")
    lengths = arrays["lengths"]
    tr = Trajectories(arrays["states"], np.zeros(int(lengths.sum()), np.int64), lengths,
                      terminated=arrays.get("terminated"), truncated=arrays.get("truncated"))
    return StateOnly(tr)


def _load_transitions(arrays: dict, meta: dict) -> Transitions:
    _need(arrays, ("states", "actions"), "transitions")
    return Transitions(arrays["states"], arrays["actions"], arrays.get("next_states"))
