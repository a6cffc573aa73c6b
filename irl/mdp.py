"""Tabular Markov decision processes with sparse transitions.

The central data structure of the library. Transitions are stored as one sparse
matrix of shape ``(S*A, S)`` whose row ``s*A + a`` is the distribution over next
states after action ``a`` in state ``s``; a dense ``(S, A, S)`` tensor is never
built unless asked for with :meth:`TabularMDP.dense_transitions`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["TabularMDP", "MDPValidationError", "as_reward_array", "check_horizon", "MAX_PLAN_BYTES"]

_ATOL = 1e-6


class MDPValidationError(ValueError):
    """An MDP (or an array given for one) breaks a rule; the message says which."""


def _readonly(a: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return None
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _check_finite(name: str, a: np.ndarray) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise MDPValidationError(f"{name}{list(idx)} must be finite: got {a[idx]}")


#: Largest time-indexed plan (``horizon x S x A`` float64 numbers, one reward hypothesis) an MDP may
#: ask for. Finite-horizon planning stores a value per (t, s, a), so a horizon is refused, before
#: anything is allocated, when that table would exceed this many bytes. Raise it on purpose on a
#: machine with the memory (``irl.mdp.MAX_PLAN_BYTES = 64 * 2**30``).
MAX_PLAN_BYTES = 8 * 2 ** 30


def _size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:.3g} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.3g} PiB"  # pragma: no cover


def check_horizon(horizon: Any, n_states: int, n_actions: int, *, name: str = "horizon") -> int:
    """A horizon as a positive ``int`` whose time-indexed plan fits in :data:`MAX_PLAN_BYTES`.

    Args:
        horizon: number of actions per episode.
        n_states: the MDP's ``S``.
        n_actions: the MDP's ``A``.
        name: what to call it in messages.

    Returns:
        ``int(horizon)``.

    Raises:
        MDPValidationError: not a positive integer (NaN, inf, 2.5, True, "3"), or a plan of
            ``horizon x S x A`` float64 values larger than :data:`MAX_PLAN_BYTES` (the message
            gives the size).

    Example:
        >>> check_horizon(20.0, 64, 5)
        20
    """
    bad = MDPValidationError(f"{name} must be a positive integer or None: got {horizon!r}")
    if isinstance(horizon, (bool, np.bool_, str, bytes)):
        raise bad
    try:
        h = float(horizon)
    except (TypeError, ValueError):
        raise bad from None
    if not np.isfinite(h) or h != int(h) or h < 1:
        raise bad
    need = h * n_states * n_actions * 8.0
    if need > MAX_PLAN_BYTES:
        raise MDPValidationError(
            f"{name} = {int(h)} is too long for this MDP: a time-indexed plan needs {int(h)} x {n_states} states x "
            f"{n_actions} actions float64 values = {_size(need)} per reward hypothesis, more than "
            f"irl.mdp.MAX_PLAN_BYTES = {_size(MAX_PLAN_BYTES)}; use a shorter horizon, or an infinite horizon "
            f"(horizon=None with discount < 1), or raise irl.mdp.MAX_PLAN_BYTES if the machine has the memory")
    return int(h)


@dataclass(frozen=True, eq=False)
class TabularMDP:
    """A finite MDP: sparse transitions, reward features, start distribution, time.

    Build one with :meth:`from_arrays` (dense or sparse transitions), :meth:`from_gymnasium`
    or an environment in :mod:`irl.envs`; the constructor validates every field.

    Attributes:
        transitions: CSR matrix of shape ``(S*A, S)``; row ``s*A + a`` holds
            ``P(s' | s, a)``. Rows of terminal states may be all zero.
        n_states: ``S``.
        n_actions: ``A``.
        initial: start distribution, shape ``(S,)``.
        discount: ``gamma`` in ``[0, 1]``.
        horizon: number of actions in an episode (finite horizon), or ``None`` for
            an infinite-horizon problem (then ``discount < 1`` or every policy must
            reach a terminal state).
        features: reward features, shape ``(S, F)`` (state features) or
            ``(S, A, F)`` (state-action features), or ``None``.
        terminal: boolean mask ``(S,)``; in a terminal state the agent receives
            ``r(s, a)`` once and the episode ends (no continuation).
        true_reward: the environment's own reward, ``(S,)`` or ``(S, A)``, if it
            defines one (used by :func:`irl.envs.true_reward` and metrics).
        name: a label used in reports.
        state_names / action_names: optional labels.
        grid_shape: ``(rows, cols)`` for gridworlds whose state ``s`` is cell
            ``divmod(s, cols)``; used for plotting.
        feature_names: optional labels of the ``F`` features.

    Example:
        >>> import numpy as np, irl
        >>> T = np.zeros((2, 2, 2)); T[:, 0, 0] = 1; T[:, 1, 1] = 1
        >>> mdp = irl.TabularMDP.from_arrays(T, initial=[1, 0], horizon=3)
        >>> mdp.n_states, mdp.n_actions, mdp.transitions.shape
        (2, 2, (4, 2))
    """

    transitions: sp.csr_matrix
    n_states: int
    n_actions: int
    initial: np.ndarray
    discount: float = 1.0
    horizon: int | None = None
    features: np.ndarray | None = None
    terminal: np.ndarray | None = None
    true_reward: np.ndarray | None = None
    name: str = "mdp"
    state_names: tuple[str, ...] | None = None
    action_names: tuple[str, ...] | None = None
    grid_shape: tuple[int, int] | None = None
    feature_names: tuple[str, ...] | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ checks
    def __post_init__(self) -> None:
        S, A = int(self.n_states), int(self.n_actions)
        if S < 1 or A < 1:
            raise MDPValidationError(f"n_states and n_actions must be >= 1: got {S}, {A}")
        object.__setattr__(self, "n_states", S)
        object.__setattr__(self, "n_actions", A)
        P = self.transitions
        if not sp.issparse(P):
            raise MDPValidationError(
                f"transitions must be a scipy.sparse matrix of shape (S*A, S) = ({S * A}, {S}): "
                f"got {type(P).__name__}; use TabularMDP.from_arrays for dense arrays")
        if P.shape != (S * A, S):
            raise MDPValidationError(
                f"transitions must have shape (S*A, S) = ({S * A}, {S}): got {P.shape}")
        P = sp.csr_matrix(P, dtype=np.float64)
        P.sum_duplicates()
        P.sort_indices()
        P.eliminate_zeros()
        data = P.data
        if not np.all(np.isfinite(data)):
            k = int(np.flatnonzero(~np.isfinite(data))[0])
            row = int(np.searchsorted(P.indptr, k, side="right") - 1)
            raise MDPValidationError(
                f"transitions[s={row // A}, a={row % A}, s'={P.indices[k]}] must be finite: got {data[k]}")
        if np.any(data < 0):
            k = int(np.flatnonzero(data < 0)[0])
            row = int(np.searchsorted(P.indptr, k, side="right") - 1)
            raise MDPValidationError(
                f"transitions[s={row // A}, a={row % A}, s'={P.indices[k]}] must be a probability "
                f">= 0: got {data[k]}")
        terminal = np.zeros(S, bool) if self.terminal is None else np.asarray(self.terminal)
        if terminal.shape != (S,):
            raise MDPValidationError(f"terminal must be a boolean mask of shape ({S},): got {terminal.shape}")
        terminal = terminal.astype(bool)
        sums = np.asarray(P.sum(axis=1)).ravel()
        empty_ok = np.repeat(terminal, A) & (sums == 0)
        bad = ~empty_ok & (np.abs(sums - 1.0) > _ATOL)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise MDPValidationError(
                f"transitions[s={row // A}, a={row % A}] must sum to 1: got {sums[row]:.6g}"
                + (" (only terminal states may have empty rows)" if sums[row] == 0 else ""))
        # renormalise tiny float error so that probabilities sum to one exactly
        scale = np.where(sums > 0, sums, 1.0)
        P = sp.diags(1.0 / scale) @ P
        P = sp.csr_matrix(P)
        object.__setattr__(self, "transitions", P)
        object.__setattr__(self, "terminal", _readonly(terminal))

        init = np.asarray(self.initial, dtype=np.float64)
        if init.shape != (S,):
            raise MDPValidationError(f"initial must have shape ({S},): got {init.shape}")
        _check_finite("initial", init)
        if np.any(init < 0):
            i = int(np.flatnonzero(init < 0)[0])
            raise MDPValidationError(f"initial[{i}] must be a probability >= 0: got {init[i]}")
        if abs(init.sum() - 1.0) > _ATOL:
            raise MDPValidationError(f"initial must sum to 1: got {init.sum():.6g}")
        object.__setattr__(self, "initial", _readonly(init / init.sum()))

        g = float(self.discount)
        if not (0.0 <= g <= 1.0):
            raise MDPValidationError(f"discount must lie in [0, 1]: got {g}")
        object.__setattr__(self, "discount", g)
        if self.horizon is not None:
            object.__setattr__(self, "horizon", check_horizon(self.horizon, S, A))

        if self.features is not None:
            f = np.asarray(self.features, dtype=np.float64)
            if f.ndim == 1:
                f = f[:, None]
            if f.ndim not in (2, 3) or f.shape[0] != S or (f.ndim == 3 and f.shape[1] != A):
                raise MDPValidationError(
                    f"features must have shape (S, F) = ({S}, F) or (S, A, F) = ({S}, {A}, F): got {f.shape}")
            _check_finite("features", f)
            object.__setattr__(self, "features", _readonly(f))
        if self.true_reward is not None:
            object.__setattr__(self, "true_reward", _readonly(as_reward_array(self.true_reward, S, A,
                                                                               name="true_reward")))
        for attr, n in (("state_names", S), ("action_names", A)):
            names = getattr(self, attr)
            if names is not None:
                names = tuple(str(x) for x in names)
                if len(names) != n:
                    raise MDPValidationError(f"{attr} must have {n} entries: got {len(names)}")
                object.__setattr__(self, attr, names)
        if self.feature_names is not None:
            names = tuple(str(x) for x in self.feature_names)
            if len(names) != self.n_features:
                raise MDPValidationError(f"feature_names must have F = {self.n_features} entries: got {len(names)}")
            object.__setattr__(self, "feature_names", names)
        if self.grid_shape is not None:
            rows, cols = (int(x) for x in self.grid_shape)
            if rows * cols != S:
                raise MDPValidationError(f"grid_shape {rows}x{cols} must have S = {S} cells")
            object.__setattr__(self, "grid_shape", (rows, cols))

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(cls, transitions: Any, *, n_actions: int | None = None, **kwargs: Any) -> "TabularMDP":
        """Build an MDP from a dense ``(S, A, S)`` array or a sparse ``(S*A, S)`` matrix.

        Args:
            transitions: dense array ``T[s, a, s']`` (numpy or torch), or a
                ``scipy.sparse`` matrix of shape ``(S*A, S)`` (then give ``n_actions``).
            n_actions: number of actions; required for a sparse matrix.
            **kwargs: any other field of :class:`TabularMDP` (``initial``,
                ``discount``, ``horizon``, ``features``, ``terminal``, ...).
                ``initial`` defaults to uniform over non-terminal states.

        Returns:
            The validated MDP.

        Raises:
            MDPValidationError: with the offending entry, e.g.
                ``transitions[s=3, a=1] must sum to 1: got 0.93``.

        Example:
            >>> import numpy as np, irl
            >>> T = np.full((3, 2, 3), 1 / 3)
            >>> irl.TabularMDP.from_arrays(T, discount=0.9).n_states
            3
        """
        if sp.issparse(transitions):
            if n_actions is None:
                raise MDPValidationError("n_actions is required with a sparse (S*A, S) transition matrix")
            P = sp.csr_matrix(transitions)
            S = P.shape[1]
            A = int(n_actions)
        else:
            T = np.asarray(transitions.detach().cpu().numpy() if hasattr(transitions, "detach") else transitions,
                           dtype=np.float64)
            if T.ndim != 3 or T.shape[0] != T.shape[2]:
                raise MDPValidationError(f"transitions must have shape (S, A, S): got {T.shape}")
            _check_finite("transitions", T)
            S, A = T.shape[0], T.shape[1]
            P = sp.csr_matrix(T.reshape(S * A, S))
        if "initial" not in kwargs or kwargs["initial"] is None:
            term = kwargs.get("terminal")
            live = np.ones(S) if term is None else (~np.asarray(term, bool)).astype(float)
            if live.sum() == 0:
                live = np.ones(S)
            kwargs["initial"] = live / live.sum()
        return cls(transitions=P, n_states=S, n_actions=A, **kwargs)

    @classmethod
    def from_gymnasium(cls, env_or_id: Any, *, horizon: int | None = None, discount: float = 1.0,
                       **make_kwargs: Any) -> "TabularMDP":
        """Build an MDP from a gymnasium toy-text environment's transition table.

        Works for environments that expose ``env.unwrapped.P[s][a] = [(p, s', r, done), ...]``
        (FrozenLake, Taxi, CliffWalking). The environment's rewards are kept as
        ``true_reward[s, a] = E[r | s, a]``; states reached by a ``done`` transition
        become terminal. Needs the ``gymnasium`` extra.

        Args:
            env_or_id: an environment or its id, e.g. ``"FrozenLake-v1"``.
            horizon: finite horizon; defaults to the ``TimeLimit`` of the environment.
            discount: discount factor.
            **make_kwargs: passed to ``gymnasium.make`` when an id is given.

        Example:
            >>> import irl
            >>> mdp = irl.TabularMDP.from_gymnasium("FrozenLake-v1")  # doctest: +SKIP
        """
        from irl.gym_tables import tables_from_gymnasium  # lazy: gymnasium is an optional extra

        try:
            tables = tables_from_gymnasium(env_or_id, horizon=horizon, discount=discount, **make_kwargs)
        except ValueError as e:
            raise MDPValidationError(str(e)) from None
        return cls(**tables)

    def replace(self, **changes: Any) -> "TabularMDP":
        """A copy with some fields changed (validated again)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "_cache"}
        fields.update(changes)
        return TabularMDP(**fields)

    # ------------------------------------------------------------- properties
    @property
    def n_features(self) -> int:
        """Number of reward features ``F`` (0 when the MDP has none)."""
        return 0 if self.features is None else int(self.features.shape[-1])

    @property
    def continuation(self) -> sp.csr_matrix:
        """Transitions with the rows of terminal states zeroed, ``(S*A, S)``."""
        if "cont" not in self._cache:
            if self.terminal is not None and self.terminal.any():
                keep = np.repeat(~self.terminal, self.n_actions).astype(np.float64)
                self._cache["cont"] = sp.csr_matrix(sp.diags(keep) @ self.transitions)
            else:
                self._cache["cont"] = self.transitions
        return self._cache["cont"]

    @property
    def continuation_T(self) -> sp.csr_matrix:
        """Transpose of :attr:`continuation` as CSR, ``(S, S*A)``, for forward (occupancy) passes."""
        if "contT" not in self._cache:
            self._cache["contT"] = sp.csr_matrix(self.continuation.T)
        return self._cache["contT"]

    def dense_transitions(self, max_states: int = 2000) -> np.ndarray:
        """The dense ``(S, A, S)`` transition array (only for small MDPs)."""
        if self.n_states > max_states:
            raise MDPValidationError(
                f"refusing to build a dense (S, A, S) array for S = {self.n_states} > max_states = {max_states}")
        return self.transitions.toarray().reshape(self.n_states, self.n_actions, self.n_states)

    def feature_matrix(self) -> np.ndarray:
        """Features broadcast to state-action form, shape ``(S, A, F)``."""
        if self.features is None:
            raise MDPValidationError(f"MDP {self.name!r} has no reward features")
        f = self.features
        if f.ndim == 2:
            f = np.broadcast_to(f[:, None, :], (self.n_states, self.n_actions, f.shape[1]))
        return f

    def __repr__(self) -> str:
        h = "inf" if self.horizon is None else self.horizon
        return (f"TabularMDP(name={self.name!r}, S={self.n_states}, A={self.n_actions}, "
                f"nnz={self.transitions.nnz}, F={self.n_features}, horizon={h}, discount={self.discount})")


def as_reward_array(reward: Any, n_states: int, n_actions: int, *, name: str = "reward") -> np.ndarray:
    """Convert a reward given as ``(S,)``, ``(S, A)`` or batched ``(B, S, A)`` to float64 numpy.

    State rewards ``(S,)`` are kept as given (callers broadcast); anything else
    must end in ``(S, A)``.

    Raises:
        MDPValidationError: wrong shape or non-finite entries.
    """
    if hasattr(reward, "detach"):
        reward = reward.detach().cpu().numpy()
    r = np.asarray(reward, dtype=np.float64)
    ok = (r.ndim == 1 and r.shape[0] == n_states) or (r.ndim >= 2 and r.shape[-2:] == (n_states, n_actions))
    if not ok:
        raise MDPValidationError(
            f"{name} must have shape (S,) = ({n_states},) or (..., S, A) = (..., {n_states}, {n_actions}): "
            f"got {r.shape}")
    _check_finite(name, r)
    return r


def state_action_reward(reward: Any, n_states: int, n_actions: int, *, name: str = "reward") -> np.ndarray:
    """``reward`` as a float64 array of shape ``(..., S, A)`` (state rewards broadcast over actions)."""
    r = as_reward_array(reward, n_states, n_actions, name=name)
    if r.ndim == 1:
        r = np.broadcast_to(r[:, None], (n_states, n_actions))
    return r
