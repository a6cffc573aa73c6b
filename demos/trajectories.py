"""Ragged trajectories of states and actions: the demonstration data type."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterator, Sequence

import numpy as np

from demos.errors import DemoValidationError

__all__ = ["Trajectories", "Trajectory", "DemoValidationError"]


def _ro(a: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return None
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def _numeric(x: Any, name: str, i: int) -> np.ndarray:
    """One episode's ids or rewards as a flat float array; text or nested lists are a clear error."""
    try:
        a = np.asarray(x)
        if a.dtype.kind not in "iufb":
            raise ValueError
        return a.astype(np.float64).ravel()
    except (TypeError, ValueError):
        what = "numbers" if name == "rewards" else "integer ids"
        shown = repr(list(x)[:5]) if hasattr(x, "__iter__") and not isinstance(x, str) else repr(x)
        raise DemoValidationError(f"{name} of trajectory {i} must be {what}: got {shown}") from None


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(starts[i], starts[i] + counts[i])`` over ``i``, without a Python loop."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(counts)
    return np.arange(total) - np.repeat(ends - counts, counts) + np.repeat(np.asarray(starts, np.int64), counts)


@dataclass(frozen=True)
class Trajectory:
    """One episode: ``states`` has one more entry than ``actions``.

    Attributes:
        states: ``(L + 1,)`` int state ids ``s_0 .. s_L``.
        actions: ``(L,)`` int action ids ``a_0 .. a_{L-1}``.
        rewards: ``(L,)`` rewards received, or ``None``.
        terminated: the last state is terminal (the episode ended by itself).
        truncated: the episode was cut off (time limit) before it ended.
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray | None = None
    terminated: bool = False
    truncated: bool = False


@dataclass(frozen=True, eq=False)
class Trajectories:
    """A dataset of episodes of different lengths, stored flat (no Python objects).

    Episode ``i`` has states ``states[state_offsets[i]:state_offsets[i+1]]`` and
    actions ``actions[action_offsets[i]:action_offsets[i+1]]``, with one more state
    than actions. Build with :meth:`from_lists` or :meth:`from_padded`; save with
    :meth:`save` and read with :func:`demos.load`.

    Attributes:
        states: flat ``int64`` state ids, ``(sum_i (L_i + 1),)``.
        actions: flat ``int64`` action ids, ``(sum_i L_i,)``.
        lengths: ``(N,)`` number of actions per episode.
        rewards: flat rewards aligned with ``actions``, or ``None``.
        terminated: ``(N,)`` bool: the episode reached a terminal state.
        truncated: ``(N,)`` bool: the episode was cut off by a time limit.

    Example:
        >>> import demos
        >>> d = demos.Trajectories.from_lists(states=[[0, 1, 2], [0, 2]], actions=[[1, 1], [0]])
        >>> len(d), d.lengths.tolist(), d[1].states.tolist()
        (2, [2, 1], [0, 2])
    """

    states: np.ndarray
    actions: np.ndarray
    lengths: np.ndarray
    rewards: np.ndarray | None = None
    terminated: np.ndarray | None = None
    truncated: np.ndarray | None = None

    kind = "trajectories"

    def __post_init__(self) -> None:
        lengths = np.asarray(self.lengths)
        if lengths.ndim != 1:
            raise DemoValidationError(f"lengths must be 1-D: got shape {lengths.shape}")
        if lengths.size == 0:
            raise DemoValidationError("a dataset needs at least one trajectory: got 0")
        if not np.issubdtype(lengths.dtype, np.integer):
            raise DemoValidationError(f"lengths must be integers: got dtype {lengths.dtype}")
        if np.any(lengths < 0):
            i = int(np.flatnonzero(lengths < 0)[0])
            raise DemoValidationError(f"lengths[{i}] must be >= 0: got {lengths[i]}")
        n = lengths.size
        for name, arr, want in (("states", self.states, int(lengths.sum()) + n),
                                ("actions", self.actions, int(lengths.sum()))):
            a = np.asarray(arr)
            if a.ndim != 1:
                raise DemoValidationError(f"{name} must be a flat 1-D array: got shape {a.shape}")
            if a.size and not np.issubdtype(a.dtype, np.integer):
                if not (np.issubdtype(a.dtype, np.floating) and np.all(np.isfinite(a)) and np.all(a == np.round(a))):
                    raise DemoValidationError(f"{name} must hold integer ids: got dtype {a.dtype}")
            if a.size != want:
                raise DemoValidationError(
                    f"{name} must have {want} entries for these lengths (one more state than actions "
                    f"per trajectory): got {a.size}")
            object.__setattr__(self, name, _ro(a.astype(np.int64)))
        object.__setattr__(self, "lengths", _ro(lengths.astype(np.int64)))
        if self.rewards is not None:
            try:
                r = np.asarray(self.rewards, dtype=np.float64)
            except (TypeError, ValueError):
                raise DemoValidationError("rewards must be numbers: got values that are not") from None
            if r.shape != self.actions.shape:
                raise DemoValidationError(f"rewards must align with actions {self.actions.shape}: got {r.shape}")
            if not np.all(np.isfinite(r)):
                k = int(np.flatnonzero(~np.isfinite(r))[0])
                raise DemoValidationError(f"rewards must be finite: got {r[k]} at step "
                                          f"{k - int(self.action_offsets[self._trajectory_of(k, 'actions')])} of "
                                          f"trajectory {self._trajectory_of(k, 'actions')}")
            object.__setattr__(self, "rewards", _ro(r))
        for name in ("terminated", "truncated"):
            v = getattr(self, name)
            v = np.zeros(n, bool) if v is None else np.asarray(v)
            if v.shape != (n,):
                raise DemoValidationError(f"{name} must have shape ({n},): got {v.shape}")
            object.__setattr__(self, name, _ro(v.astype(bool)))
        both = self.terminated & self.truncated
        if both.any():
            raise DemoValidationError(
                f"trajectory {int(np.flatnonzero(both)[0])} is marked both terminated and truncated")
        if np.any(self.states < 0) or np.any(self.actions < 0):
            which, arr = ("states", self.states) if np.any(self.states < 0) else ("actions", self.actions)
            k = int(np.flatnonzero(arr < 0)[0])
            raise DemoValidationError(f"{which} ids must be >= 0: got {arr[k]} in trajectory "
                                      f"{self._trajectory_of(k, which)}")

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_lists(cls, states: Sequence[Sequence[int]], actions: Sequence[Sequence[int]], *,
                   rewards: Sequence[Sequence[float]] | None = None, terminated: Sequence[bool] | None = None,
                   truncated: Sequence[bool] | None = None) -> "Trajectories":
        """Build from per-episode lists (each ``states[i]`` one longer than ``actions[i]``).

        Raises:
            DemoValidationError: ragged lists that do not line up, naming the episode.
        """
        if len(states) != len(actions):
            raise DemoValidationError(f"got {len(states)} state sequences but {len(actions)} action sequences")
        lengths = np.array([len(a) for a in actions], dtype=np.int64)
        for i, (s, a) in enumerate(zip(states, actions)):
            if len(s) != len(a) + 1:
                raise DemoValidationError(
                    f"trajectory {i} must have one more state than actions: got {len(s)} states, {len(a)} actions")
        flat_s = np.concatenate([_numeric(s, "states", i) for i, s in enumerate(states)]) if states else []
        flat_a = (np.concatenate([_numeric(a, "actions", i) for i, a in enumerate(actions)])
                  if len(actions) and lengths.sum() else np.zeros(0, np.int64))
        flat_r = None
        if rewards is not None:
            flat_r = (np.concatenate([_numeric(r, "rewards", i) for i, r in enumerate(rewards)])
                      if lengths.sum() else np.zeros(0))
        return cls(states=np.asarray(flat_s), actions=np.asarray(flat_a), lengths=lengths, rewards=flat_r,
                   terminated=terminated, truncated=truncated)

    @classmethod
    def from_padded(cls, states: np.ndarray, actions: np.ndarray, lengths: np.ndarray, *,
                    rewards: np.ndarray | None = None, terminated: Any = None, truncated: Any = None
                    ) -> "Trajectories":
        """Build from padded arrays ``states (N, H+1)``, ``actions (N, H)`` and ``lengths (N,)``."""
        lengths = np.asarray(lengths, dtype=np.int64)
        N, H = np.asarray(actions).shape
        smask = np.arange(H + 1)[None, :] <= lengths[:, None]
        amask = np.arange(H)[None, :] < lengths[:, None]
        return cls(states=np.asarray(states)[smask], actions=np.asarray(actions)[amask], lengths=lengths,
                   rewards=None if rewards is None else np.asarray(rewards)[amask],
                   terminated=None if terminated is None else np.broadcast_to(terminated, (N,)),
                   truncated=None if truncated is None else np.broadcast_to(truncated, (N,)))

    # --------------------------------------------------------------- access
    @cached_property
    def state_offsets(self) -> np.ndarray:
        """``(N + 1,)`` start of each episode in :attr:`states` (computed once; read-only)."""
        return _ro(np.concatenate([[0], np.cumsum(self.lengths + 1)]))

    @cached_property
    def action_offsets(self) -> np.ndarray:
        """``(N + 1,)`` start of each episode in :attr:`actions` (computed once; read-only)."""
        return _ro(np.concatenate([[0], np.cumsum(self.lengths)]))

    def _trajectory_of(self, k: int, which: str) -> int:
        off = self.state_offsets if which == "states" else self.action_offsets
        return int(np.searchsorted(off, k, side="right") - 1)

    def __len__(self) -> int:
        return int(self.lengths.size)

    def __getitem__(self, i: int) -> Trajectory:
        if not -len(self) <= i < len(self):
            raise IndexError(f"trajectory index {i} out of range for {len(self)} trajectories")
        i %= len(self)
        so, ao = self.state_offsets, self.action_offsets
        return Trajectory(states=self.states[so[i]:so[i + 1]], actions=self.actions[ao[i]:ao[i + 1]],
                          rewards=None if self.rewards is None else self.rewards[ao[i]:ao[i + 1]],
                          terminated=bool(self.terminated[i]), truncated=bool(self.truncated[i]))

    def __iter__(self) -> Iterator[Trajectory]:
        return (self[i] for i in range(len(self)))

    def subset(self, index: Any) -> "Trajectories":
        """The episodes selected by an index array or slice, as a new dataset."""
        idx = np.atleast_1d(np.arange(len(self))[index])
        so, ao = self.state_offsets, self.action_offsets
        s_take, a_take = _ranges(so[idx], self.lengths[idx] + 1), _ranges(ao[idx], self.lengths[idx])
        return Trajectories(states=self.states[s_take], actions=self.actions[a_take], lengths=self.lengths[idx],
                            rewards=None if self.rewards is None else self.rewards[a_take],
                            terminated=self.terminated[idx], truncated=self.truncated[idx])

    @property
    def step_index(self) -> tuple[np.ndarray, np.ndarray]:
        """``(time, source_state)`` for every action in :attr:`actions` (flat, aligned)."""
        ao = self.action_offsets
        t = np.arange(self.actions.size) - np.repeat(ao[:-1], self.lengths)
        s = np.delete(self.states, self.state_offsets[1:] - 1)  # drop each episode's last state
        return t, s

    @property
    def final_states(self) -> np.ndarray:
        """``(N,)`` last state of every episode."""
        return self.states[self.state_offsets[1:] - 1]

    @property
    def initial_states(self) -> np.ndarray:
        """``(N,)`` first state of every episode."""
        return self.states[self.state_offsets[:-1]]

    def validate(self, n_states: int, n_actions: int, *, horizon: int | None = None) -> "Trajectories":
        """Check ids against an MDP's sizes (and lengths against its horizon).

        Raises:
            DemoValidationError: naming the first bad entry and its trajectory.
        """
        for name, arr, n in (("state", self.states, n_states), ("action", self.actions, n_actions)):
            bad = arr >= n
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                raise DemoValidationError(
                    f"{name} id {arr[k]} in trajectory {self._trajectory_of(k, name + 's')} is out of range: "
                    f"the MDP has {n} {name}s (valid ids 0..{n - 1})")
        if horizon is not None and np.any(self.lengths > horizon):
            i = int(np.flatnonzero(self.lengths > horizon)[0])
            raise DemoValidationError(
                f"trajectory {i} has {self.lengths[i]} actions, more than the MDP's horizon {horizon}")
        return self

    def counts(self, n_states: int, n_actions: int, *, horizon: int | None = None) -> np.ndarray:
        """Action counts: ``(H, S, A)`` by time step when ``horizon`` is given, else ``(S, A)``."""
        self.validate(n_states, n_actions, horizon=horizon)
        t, s = self.step_index
        if horizon is None:
            return np.bincount(s * n_actions + self.actions, minlength=n_states * n_actions
                               ).reshape(n_states, n_actions).astype(np.float64)
        flat = (t * n_states + s) * n_actions + self.actions
        return np.bincount(flat, minlength=horizon * n_states * n_actions
                           ).reshape(horizon, n_states, n_actions).astype(np.float64)

    def log_likelihood_under(self, human: Any, mdp: Any, reward: Any) -> Any:
        """``sum_i sum_t log pi_t(a_t | s_t)`` under ``human``'s policy for ``reward``.

        Terminal states end an episode without an action, so they contribute
        nothing. Returns a torch scalar (``(B,)`` for a batch of rewards),
        differentiable in ``reward``.
        """
        shape, where, weights = self.sufficient_statistics(mdp)
        logp = human.action_log_probs(mdp, reward)
        if tuple(logp.shape[-len(shape):]) != shape:
            raise DemoValidationError(f"the human model's policy has shape {tuple(logp.shape)}, which does not "
                                      f"end in the data's count shape {shape}")
        # score only the observed (t, s, a) entries: a gather of a few thousand log-probabilities instead of a
        # product over the whole (B, H, S, A) policy (and its backward), which dominated batched samplers
        observed = logp[(Ellipsis, *where)]  # no copy of a strided policy
        return observed @ weights.to(observed.dtype)

    def sufficient_statistics(self, mdp: Any) -> tuple[tuple[int, ...], tuple[Any, ...], Any]:
        """What the likelihood needs from the data, counted once per MDP (see :mod:`demos.statistics`).

        Returns:
            ``(shape, where, weights)``: the count table's shape (``(H, S, A)`` for a
            finite horizon, else ``(S, A)``), the index tensors of its non-zero
            entries and their counts (``float64``), so that the log-likelihood is
            ``logp[..., *where] @ weights``.

        Raises:
            DemoValidationError: ids or lengths that do not fit ``mdp``.
        """
        from demos.statistics import memo

        def compute() -> tuple[tuple[int, ...], tuple[Any, ...], Any]:
            import torch

            counts = self.counts(mdp.n_states, mdp.n_actions, horizon=mdp.horizon)
            flat = counts.ravel()
            idx = np.flatnonzero(flat)
            where = tuple(torch.from_numpy(i) for i in np.unravel_index(idx, counts.shape))
            return tuple(counts.shape), where, torch.from_numpy(flat[idx])

        return memo(self, mdp, "action_counts", compute)

    def check_consistency(self, mdp: Any, *, allow: Any = ()) -> "Trajectories":
        """Refuse data that contradict ``mdp``: starts outside its initial distribution, steps its
        dynamics give probability 0, actions after a terminal state, ``terminated`` on a non-terminal
        state (see :mod:`demos.consistency`; ``allow`` accepts the first, second and last).

        Raises:
            DemoValidationError: naming the trajectory and the step.
        """
        from demos.consistency import check_trajectories

        check_trajectories(self, mdp, allow=allow)
        return self

    @classmethod
    def from_dataframe(cls, df: Any, *, columns: Any = None) -> "Trajectories":
        """From a pandas DataFrame with one row per step; see :func:`demos.tables.from_dataframe`.

        Example:
            >>> import pandas as pd, demos
            >>> df = pd.DataFrame({"episode": [0, 0], "step": [0, 1], "obs": [3, 4], "action": [1, 0],
            ...                    "next_state": [4, 5], "terminated": [False, True]})
            >>> d = demos.Trajectories.from_dataframe(df, columns={"state": "obs"})
            >>> d.states.tolist(), d.terminated.tolist()
            ([3, 4, 5], [True])
        """
        from demos.tables import from_dataframe

        return from_dataframe(df, columns=columns)

    def to_dataframe(self) -> Any:
        """A pandas DataFrame with one row per state (``episode, step, state, action, reward, end``).

        Each episode ends with a row holding its final state, a missing action
        (``<NA>``) and ``end`` in {``"terminated"``, ``"truncated"``, ``""``};
        :meth:`from_dataframe` reads it back.
        """
        from demos.tables import to_dataframe

        return to_dataframe(self)

    def to_imitation(self) -> list:
        """imitation ``TrajectoryWithRew`` objects (``Trajectory`` without rewards); see :func:`demos.to_imitation`."""
        from demos.interop import to_imitation

        return to_imitation(self)

    def save(self, path: str) -> None:
        """Write a versioned ``.npz`` (or ``.jsonl`` / ``.csv`` by extension) atomically."""
        from demos.io import save

        save(self, path)

    def __repr__(self) -> str:
        return (f"Trajectories(n={len(self)}, steps={int(self.lengths.sum())}, "
                f"mean_length={float(self.lengths.mean()):.2f}, terminated={int(self.terminated.sum())})")
