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
from scipy.sparse import csgraph

__all__ = ["TabularMDP", "MDPValidationError", "IllPosedMDPError", "as_reward_array", "check_horizon", "MAX_PLAN_BYTES",
           "UNVISITED_RULES"]

_ATOL = 1e-6

#: Format tag of MDP files written by :meth:`TabularMDP.save`.
MDP_FORMAT = "pluggable-irl/mdp"

#: What :meth:`TabularMDP.from_transitions` does with a never-visited ``(s, a)`` of a non-terminal state.
UNVISITED_RULES = {
    "self-loop": "the action keeps the agent where it is (nothing observed, nothing assumed to happen)",
    "uniform": "the action leads to every state with equal probability (the mean of a flat Dirichlet prior)",
    "error": "refuse: raise an error naming the first never-visited (s, a) and how many there are",
}


class MDPValidationError(ValueError):
    """An MDP (or an array given for one) breaks a rule; the message says which."""


class IllPosedMDPError(MDPValidationError):
    """Values are infinite: discount 1, no horizon, and a policy can avoid every terminal state.

    Raised in milliseconds by :meth:`TabularMDP.check_well_posed` (at the start of
    every fit) instead of after a long loop of value iteration; the message names
    the states and the fixes (a horizon, a discount below 1, terminal states).
    """


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
        visit_counts: ``(S, A)`` how often each ``(s, a)`` was seen in the logs an
            MDP was estimated from (:meth:`from_transitions`), else ``None``.

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
    visit_counts: np.ndarray | None = None
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
        if terminal.dtype != bool:
            flags = np.isin(terminal, (0, 1)) if terminal.dtype.kind in "iuf" else np.zeros(S, bool)
            if not flags.all():
                k = int(np.flatnonzero(~flags)[0])
                raise MDPValidationError(f"terminal must be a boolean mask (True/False or 1/0): got "
                                         f"terminal[{k}] = {terminal[k]!r}")
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
        if self.visit_counts is not None:
            c = np.asarray(self.visit_counts)
            if c.shape != (S, A) or not np.issubdtype(c.dtype, np.number) or np.any(c < 0):
                raise MDPValidationError(f"visit_counts must be non-negative counts of shape (S, A) = ({S}, {A}): "
                                         f"got shape {c.shape}")
            object.__setattr__(self, "visit_counts", _readonly(c.astype(np.int64)))
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
            try:
                T = np.asarray(transitions.detach().cpu().numpy() if hasattr(transitions, "detach") else transitions,
                               dtype=np.float64)
            except (TypeError, ValueError) as e:  # ragged nested lists, strings, objects
                raise MDPValidationError(f"transitions must be an (S, A, S) array of probabilities, e.g. nested lists "
                                         f"of equal lengths: got {type(transitions).__name__} that numpy cannot turn "
                                         f"into one ({' '.join(str(e).split())})") from None
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

    @classmethod
    def from_transitions(cls, data: Any, *, n_states: int | None = None, n_actions: int | None = None,
                         pseudocount: float = 0.1, unvisited: str = "self-loop", terminal: Any = None,
                         initial: Any = None, max_dense_entries: int = 50_000_000,
                         **kwargs: Any) -> "TabularMDP":
        """Estimate the dynamics from logged behaviour: counts with Dirichlet smoothing.

        For every ``(s, a)`` seen in the data,
        ``P(s' | s, a) = (N(s, a, s') + alpha) / (N(s, a) + alpha S)``, the posterior
        mean under a symmetric ``Dirichlet(alpha)`` prior (``alpha = pseudocount``;
        ``0`` gives the maximum-likelihood frequencies and keeps the matrix as sparse
        as the data). A never-visited ``(s, a)`` of a non-terminal state follows the
        rule ``unvisited``:

        * ``"self-loop"`` (default): the action keeps the agent where it is;
        * ``"uniform"``: every next state equally likely (the prior mean);
        * ``"error"``: raise, naming the first such pair and how many there are.

        Terminal states keep empty rows (episodes end there). The counts ``N(s, a)``
        are kept in :attr:`visit_counts` so that you can see how much each
        estimate rests on.

        Args:
            data: ``demos.Trajectories`` (every step is a transition; the final
                state of an episode with ``terminated=True`` becomes terminal unless
                ``terminal`` is given), ``demos.Transitions`` with ``next_states``,
                a tuple ``(states, actions, next_states)`` of integer arrays, or a
                list of these (pooled).
            n_states: ``S``; default: the largest state id seen plus one.
            n_actions: ``A``; default: the largest action id seen plus one.
            pseudocount: ``alpha >= 0`` added to every next state of a visited pair.
            unvisited: ``"self-loop"``, ``"uniform"`` or ``"error"`` (above).
            terminal: boolean mask ``(S,)`` or state ids; default as described for ``data``.
            initial: start distribution ``(S,)``; default: the empirical
                distribution of the episodes' first states (trajectories), else
                uniform over non-terminal states.
            max_dense_entries: a limit on ``visited pairs x S`` when
                ``pseudocount > 0`` (smoothing fills whole rows).
            **kwargs: other fields (``features``, ``discount``, ``horizon``,
                ``feature_names``, ``true_reward``, ``name``, ...).

        Returns:
            The estimated MDP, with :attr:`visit_counts` ``(S, A)``.

        Raises:
            MDPValidationError: ids out of range, a negative pseudocount, an unknown
                rule, or unvisited pairs under ``unvisited="error"``.

        Example:
            >>> import demos, irl
            >>> logs = demos.Transitions(states=[0, 0, 0, 1], actions=[0, 0, 0, 1], next_states=[1, 1, 0, 1])
            >>> mdp = irl.TabularMDP.from_transitions(logs, n_states=2, n_actions=2, pseudocount=0.0, horizon=5)
            >>> mdp.dense_transitions()[0, 0].round(3).tolist(), mdp.visit_counts.tolist()
            ([0.333, 0.667], [[3, 0], [0, 1]])
            >>> mdp.dense_transitions()[0, 1].tolist()  # never tried: self-loop
            [1.0, 0.0]
        """
        s, a, s2, term_default, init_default = _logged_transitions(data)
        S = int(n_states) if n_states is not None else int(max(s.max(), s2.max())) + 1
        A = int(n_actions) if n_actions is not None else int(a.max()) + 1
        for name, ids, n in (("state", s, S), ("next state", s2, S), ("action", a, A)):
            if ids.size and (ids.max() >= n or ids.min() < 0):
                bad = int(ids[(ids >= n) | (ids < 0)][0])
                raise MDPValidationError(f"{name} id {bad} in the logs is out of range [0, {n}) "
                                         f"(n_{'actions' if name == 'action' else 'states'} = {n})")
        alpha = float(pseudocount)
        if not (np.isfinite(alpha) and alpha >= 0):
            raise MDPValidationError(f"pseudocount must be a finite number >= 0: got {pseudocount}")
        if unvisited not in UNVISITED_RULES:
            raise MDPValidationError(f"unknown rule unvisited={unvisited!r}; known: {', '.join(UNVISITED_RULES)}")
        if terminal is None:
            term = np.zeros(S, bool)
            if term_default is not None:
                term[term_default] = True
        else:
            t = np.asarray(terminal)
            term = t.astype(bool) if t.dtype == bool else np.isin(np.arange(S), t)
            if term.shape != (S,):
                raise MDPValidationError(f"terminal must be a boolean mask of shape ({S},) or state ids: "
                                         f"got shape {t.shape}")
        rows = s * A + a
        counts = sp.csr_matrix((np.ones(rows.size), (rows, s2)), shape=(S * A, S))
        counts.sum_duplicates()
        visits = np.asarray(counts.sum(axis=1)).ravel()
        live = ~np.repeat(term, A)
        seen = (visits > 0) & live
        missing = ~seen & live
        if unvisited == "error" and missing.any():
            k = int(np.flatnonzero(missing)[0])
            raise MDPValidationError(
                f"(s={k // A}, a={k % A}) was never visited in the logs ({int(missing.sum())} of {int(live.sum())} "
                f"non-terminal pairs are unvisited); choose unvisited='self-loop' or 'uniform', or log more")
        keep = sp.diags(seen.astype(np.float64))
        P = sp.csr_matrix(keep @ counts)
        if alpha > 0:
            if int(seen.sum()) * S > max_dense_entries:
                raise MDPValidationError(
                    f"smoothing with pseudocount {alpha} fills {int(seen.sum())} x {S} entries, more than "
                    f"max_dense_entries = {max_dense_entries}; use pseudocount=0 or raise the limit")
            P = sp.csr_matrix(P + sp.csr_matrix(np.outer(seen, np.full(S, alpha))))
        denom = np.asarray(P.sum(axis=1)).ravel()
        P = sp.csr_matrix(sp.diags(np.where(denom > 0, 1.0 / np.where(denom > 0, denom, 1.0), 0.0)) @ P)
        idx = np.flatnonzero(missing)
        if unvisited == "self-loop":
            fill = sp.csr_matrix((np.ones(idx.size), (idx, idx // A)), shape=(S * A, S))
        else:
            fill = sp.csr_matrix((np.full(idx.size * S, 1.0 / S), (np.repeat(idx, S), np.tile(np.arange(S), idx.size))),
                                 shape=(S * A, S))
        P = sp.csr_matrix(P + fill)
        if initial is None:
            init = init_default if init_default is not None else None
            if init is not None:
                initial = np.bincount(init, minlength=S).astype(np.float64)
                initial = initial / initial.sum()
        kwargs.setdefault("name", "estimated")
        return cls.from_arrays(P, n_actions=A, terminal=term, initial=initial,
                               visit_counts=visits.reshape(S, A).astype(np.int64), **kwargs)

    # ----------------------------------------------------------------- files
    def save(self, path: Any) -> None:
        """Write the MDP to a versioned ``.npz`` file, atomically and without pickle.

        The file holds the sparse transitions (CSR arrays), the initial
        distribution, terminal states, discount, horizon, features with their
        names, the true reward if any, labels and visit counts; see the File
        formats page. Read it with :meth:`load`, or give its path to any
        ``--env`` option of the ``irl`` command.

        Example:
            >>> import irl
            >>> env = irl.envs.make("gridworld-5x5")
            >>> env.save("grid.npz")
            >>> back = irl.TabularMDP.load("grid.npz")
            >>> (back.transitions != env.transitions).nnz, back.horizon, back.feature_names == env.feature_names
            (0, 12, True)
        """
        from demos.io import save_arrays

        P = self.transitions
        arrays = {"transitions_data": P.data, "transitions_indices": P.indices.astype(np.int64),
                  "transitions_indptr": P.indptr.astype(np.int64), "initial": self.initial,
                  "terminal": self.terminal, "features": self.features, "true_reward": self.true_reward,
                  "visit_counts": self.visit_counts}
        meta = {"n_states": self.n_states, "n_actions": self.n_actions, "discount": self.discount,
                "horizon": self.horizon, "name": self.name,
                "state_names": None if self.state_names is None else list(self.state_names),
                "action_names": None if self.action_names is None else list(self.action_names),
                "feature_names": None if self.feature_names is None else list(self.feature_names),
                "grid_shape": None if self.grid_shape is None else list(self.grid_shape)}
        save_arrays(path, MDP_FORMAT, arrays, meta=meta)

    @classmethod
    def load(cls, path: Any) -> "TabularMDP":
        """Read an MDP written by :meth:`save` (no pickle; every field validated again).

        Raises:
            demos.DemoFileError: a missing or unreadable file, another kind of file,
                missing arrays or metadata, or a field that breaks a rule (the
                message names the file and the field).
        """
        from demos.io import DemoFileError, load_arrays

        _, arrays, meta = load_arrays(path, MDP_FORMAT)
        need = ("transitions_data", "transitions_indices", "transitions_indptr", "initial")
        missing = [k for k in need if k not in arrays]
        if missing:
            raise DemoFileError(f"{path}: MDP file lacks the arrays {', '.join(missing)}")
        for key in ("n_states", "n_actions"):
            if not isinstance(meta.get(key), int) or isinstance(meta.get(key), bool):
                raise DemoFileError(f"{path}: MDP file metadata must give {key} as an integer: got "
                                    f"{meta.get(key)!r}")
        S, A = meta["n_states"], meta["n_actions"]
        for key in ("transitions_indices", "transitions_indptr"):
            if arrays[key].dtype.kind not in "iu":
                raise DemoFileError(f"{path}: {key} must hold integer positions: got dtype {arrays[key].dtype}")
        try:
            P = sp.csr_matrix((arrays["transitions_data"], arrays["transitions_indices"],
                               arrays["transitions_indptr"]), shape=(S * A, S))
            P.check_format(full_check=True)
        except (ValueError, TypeError) as e:
            raise DemoFileError(f"{path}: the transition arrays do not form an (S*A, S) = ({S * A}, {S}) "
                                f"sparse matrix: {e}") from None
        fields = {k: meta.get(k) for k in ("discount", "horizon", "name", "state_names", "action_names",
                                           "feature_names", "grid_shape") if meta.get(k) is not None}
        fields.update({k: arrays[k] for k in ("terminal", "features", "true_reward", "visit_counts") if k in arrays})
        try:
            return cls(transitions=P, n_states=S, n_actions=A, initial=arrays["initial"], **fields)
        except (MDPValidationError, TypeError, ValueError) as e:
            raise DemoFileError(f"{path}: {e}") from None

    # --------------------------------------------------------------- checks
    def trap_states(self) -> np.ndarray:
        """States in which a policy can keep the agent forever without reaching a terminal state.

        The states of the end components of the non-terminal part of the MDP (sets of
        states with, in each, actions whose successors all stay in the set and that
        connect it), restricted to those reachable from the initial distribution: a
        policy can go there with positive probability and stay forever, so with
        discount 1 and no horizon its values are infinite. Computed on the sparse
        transition graph by rounds of strongly connected components
        (:mod:`scipy.sparse.csgraph`) that drop the actions leaving their component,
        then one breadth-first search from the start; no loop over states. Cached.

        Returns:
            Sorted state ids, ``(K,)``; empty when every policy ends in a terminal state.

        Example:
            >>> import numpy as np, irl
            >>> T = np.zeros((3, 2, 3)); T[0, 0, 1] = T[0, 1, 2] = T[1, :, 1] = T[2, :, 2] = 1
            >>> mdp = irl.TabularMDP.from_arrays(T, initial=[1, 0, 0], terminal=[False, True, False])
            >>> mdp.trap_states().tolist()  # action 1 leads to state 2, which loops forever
            [2]
        """
        if "traps" not in self._cache:
            S, A = self.n_states, self.n_actions
            E = sp.coo_matrix(self.transitions > 0)
            row, col = E.row.astype(np.int64), E.col.astype(np.int64)
            src = row // A  # the state each edge leaves
            inside = ~self.terminal
            ok = np.zeros(S * A, bool)
            ok[np.unique(row)] = True  # empty rows (terminal states) are no actions
            while True:
                # an action is usable if all its successors are inside; a state needs a usable action
                ok &= np.bincount(row, weights=~inside[col], minlength=S * A) == 0
                ok &= np.repeat(inside, A)
                use = ok[row]
                graph = sp.csr_matrix((np.ones(int(use.sum())), (src[use], col[use])), shape=(S, S))
                _, label = csgraph.connected_components(graph, directed=True, connection="strong")
                # keep only the actions whose successors all lie in the state's own component
                ok &= np.bincount(row, weights=label[col] != label[src], minlength=S * A) == 0
                now = inside & ok.reshape(S, A).any(axis=1)
                if np.array_equal(now, inside):
                    break
                inside = now
            # state graph s -> s' under any action (terminal states have no successors)
            graph = sp.csr_matrix(sp.kron(sp.identity(S), np.ones((1, A))) @ (self.continuation > 0))
            start = np.flatnonzero(self.initial > 0)
            seed = sp.csr_matrix((np.ones(start.size), (np.zeros(start.size, np.int64), start)), shape=(1, S))
            full = sp.bmat([[graph, None], [seed, sp.csr_matrix((1, 1))]]).tocsr()
            reach = np.zeros(S + 1, bool)
            reach[csgraph.breadth_first_order(full, S, directed=True, return_predecessors=False)] = True
            self._cache["traps"] = np.flatnonzero(inside & reach[:S])
        return self._cache["traps"]

    def check_well_posed(self) -> None:
        """Refuse an MDP whose values are infinite: discount 1, no horizon and a trap (:meth:`trap_states`).

        Cheap (a graph search, cached) and called at the start of every fit, so that
        an ill-posed problem is named in milliseconds instead of after a long loop
        of value iteration.

        Raises:
            IllPosedMDPError: naming the states and the fixes.

        Example:
            >>> import numpy as np, irl
            >>> T = np.zeros((2, 1, 2)); T[:, 0, 1] = 1          # state 1 loops forever
            >>> mdp = irl.TabularMDP.from_arrays(T, initial=[1, 0])
            >>> try:
            ...     mdp.check_well_posed()
            ... except irl.mdp.IllPosedMDPError as e:
            ...     print(str(e)[:60])
            MDP 'mdp' is ill-posed: discount 1, no horizon, and from sta
            >>> mdp.replace(discount=0.95).check_well_posed()      # any one of the fixes
        """
        if self.discount < 1.0 or self.horizon is not None:
            return
        traps = self.trap_states()
        if traps.size:
            names = [f"{int(i)} ({self.state_names[i]})" if self.state_names else str(int(i)) for i in traps[:5]]
            raise IllPosedMDPError(
                f"MDP {self.name!r} is ill-posed: discount 1, no horizon, and from state"
                f"{'s' if traps.size > 1 else ''} {', '.join(names)}{' ...' if traps.size > 5 else ''} "
                f"({traps.size} reachable from the start) a policy can avoid every terminal state forever, so "
                f"values are infinite. Fix it with a finite horizon (horizon=H, --horizon H), a discount below 1 "
                f"(discount=0.95, --discount 0.95), or terminal states where episodes end (terminal=...)")

    def replace(self, **changes: Any) -> "TabularMDP":
        """A copy with some fields changed (validated again)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "_cache"}
        fields.update(changes)
        return type(self)(**fields)

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


def _logged_transitions(data: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None,
                                            np.ndarray | None]:
    """``(s, a, s', terminal state ids or None, first states or None)`` from logged data."""
    from demos import Trajectories, Transitions

    if isinstance(data, list):  # several datasets: their transitions pooled
        if not data:
            raise MDPValidationError("no data to estimate the dynamics from: got an empty list")
        parts = [_logged_transitions(d) for d in data]
        cat = [np.concatenate([p[i] for p in parts]) for i in range(3)]
        extra = [None if all(p[i] is None for p in parts) else
                 np.concatenate([p[i] for p in parts if p[i] is not None]) for i in (3, 4)]
        return cat[0], cat[1], cat[2], extra[0], extra[1]
    if isinstance(data, Trajectories):
        if data.actions.size == 0:
            raise MDPValidationError("the trajectories hold no transitions (every episode has length 0)")
        t = Transitions.from_trajectories(data)
        term = None if data.terminated is None else data.final_states[np.asarray(data.terminated, bool)]
        return t.states, t.actions, t.next_states, term, data.initial_states
    if isinstance(data, Transitions):
        if data.next_states is None:
            raise MDPValidationError("estimating dynamics needs next states: these Transitions hold only (s, a) "
                                     "pairs; log (s, a, s') or give trajectories")
        return data.states, data.actions, data.next_states, None, None
    if isinstance(data, tuple) and len(data) == 3:
        t = Transitions(*data)
        return t.states, t.actions, t.next_states, None, None
    raise MDPValidationError(f"data must be demos.Trajectories, demos.Transitions with next_states, or a tuple "
                             f"(states, actions, next_states): got {type(data).__name__}")
