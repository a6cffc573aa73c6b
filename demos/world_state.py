"""World-state evidence: the state a person left the world in, after acting unobserved.

The robot sees one (or several) world states ``s_0`` and knows — or has a prior
over — the state ``s_{-T}`` in which the person started ``T`` actions earlier.
Everything in between is unobserved. The likelihood of a reward is the
probability that the person's policy, started at ``s_{-T}``, leaves the world in
``s_0`` after ``T`` actions:

    p(s_0 | theta) = sum_{s_{-T}} p(s_{-T}) sum_{a, s along the way} prod_t pi_t(a_t | s_t; theta) P(s_{t+1} | s_t, a_t)

It is computed exactly by one forward pass over the state distribution
(``d_{t+1}(s') = sum_{s,a} d_t(s) pi_t(a|s) P(s'|s,a)``), and its gradient by the
transpose (backward) pass, so gradients are exact and cost as much as the
likelihood. The pass works for any human model: it only needs the model's
``action_log_probs``.

References:
    Shah, Krasheninnikov, Alexander, Abbeel & Dragan (2019), "Preferences
    Implicit in the State of the World", ICLR (the RLSP algorithm).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from demos.trajectories import DemoValidationError

__all__ = ["WorldState", "FORMAT"]

#: Format string stored in the ``.npz`` files of :class:`WorldState`.
FORMAT = "pluggable-irl/world-state"

# mdp -> {T: the same MDP with horizon T}; weak keys, so MDPs are not kept alive
_HORIZON_CACHE: "weakref.WeakKeyDictionary[Any, dict[int, Any]]" = weakref.WeakKeyDictionary()


def _with_horizon(mdp: Any, T: int) -> Any:
    if mdp.horizon == T:
        return mdp
    per = _HORIZON_CACHE.setdefault(mdp, {})
    if T not in per:
        per[T] = mdp.replace(horizon=T)
    return per[T]


def _ro(a: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return None
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _int_ids(name: str, x: Any) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or
                               (np.issubdtype(a.dtype, np.floating) and np.all(np.isfinite(a))
                                and np.all(a == np.round(a)))):
        raise DemoValidationError(f"{name} must be integer state ids: got {a.dtype} values {a.ravel()[:5].tolist()}")
    a = a.astype(np.int64)
    if np.any(a < 0):
        k = int(np.flatnonzero(a.ravel() < 0)[0])
        raise DemoValidationError(f"{name}[{k}] must be a state id >= 0: got {a.ravel()[k]}")
    return a


@dataclass(frozen=True, eq=False)
class WorldState:
    """Observed world states after a person acted for ``horizon`` unobserved steps.

    Each observation ``i`` is a state ``states[i]`` in which the world was found
    ``horizon`` actions after the person started. The start is given per
    observation (``start``), as a prior distribution (``start_distribution``),
    or, when neither is given, is the MDP's own ``initial`` distribution. A
    person who reaches a terminal state stops there and the world stays in it.

    Args:
        states: ``(N,)`` observed states (ids), ``N >= 1``; an int for one.
        horizon: ``T >= 1``, the number of actions the person took.
        start: ``s_{-T}``: one state id for every observation, or ``(N,)`` ids.
        start_distribution: ``(S,)`` prior over ``s_{-T}`` (an unknown start).

    Raises:
        DemoValidationError: bad ids, ``T < 1``, both starts given, or a start
            distribution that is not a probability vector.

    Example:
        >>> import numpy as np, irl, human_models as hm, demos
        >>> env = irl.envs.make("rlsp-room")
        >>> p = irl.envs.rlsp.problem("rlsp-room")
        >>> ws = demos.WorldState(states=[p.observed_state], horizon=6, start=p.start_state)
        >>> ll = ws.log_likelihood_under(hm.Boltzmann(1.0), env, np.zeros(env.n_states))
        >>> bool(-20 < float(ll) < 0)
        True

    References:
        Shah et al. (2019), "Preferences Implicit in the State of the World", ICLR.
    """

    states: np.ndarray
    horizon: int
    start: np.ndarray | None = None
    start_distribution: np.ndarray | None = None

    def __post_init__(self) -> None:
        s = _int_ids("states", self.states)
        if s.ndim == 0:
            s = s[None]
        if s.ndim != 1 or s.size == 0:
            raise DemoValidationError(f"states must be a non-empty 1-D array of state ids: got shape {s.shape}")
        object.__setattr__(self, "states", _ro(s))
        H = self.horizon
        if isinstance(H, (bool, np.bool_)) or not isinstance(H, (int, np.integer)) or int(H) < 1:
            raise DemoValidationError(f"horizon (T, the number of unobserved actions) must be an integer >= 1: "
                                      f"got {H!r}")
        object.__setattr__(self, "horizon", int(H))
        if self.start is not None and self.start_distribution is not None:
            raise DemoValidationError("give either start (known s_-T) or start_distribution (a prior over s_-T), "
                                      "not both")
        if self.start is not None:
            st = _int_ids("start", self.start)
            if st.ndim == 0:
                st = np.full(s.shape, int(st))
            if st.shape != s.shape:
                raise DemoValidationError(f"start must be one state id or one per observation ({s.size},): "
                                          f"got shape {st.shape}")
            object.__setattr__(self, "start", _ro(st))
        if self.start_distribution is not None:
            p = np.asarray(self.start_distribution, dtype=np.float64)
            if p.ndim != 1:
                raise DemoValidationError(f"start_distribution must be a 1-D probability vector (S,): "
                                          f"got shape {p.shape}")
            if not np.all(np.isfinite(p)) or np.any(p < 0):
                k = int(np.flatnonzero(~(np.isfinite(p) & (p >= 0)))[0])
                raise DemoValidationError(f"start_distribution[{k}] must be a probability >= 0: got {p[k]}")
            if abs(p.sum() - 1.0) > 1e-6:
                raise DemoValidationError(f"start_distribution must sum to 1: got {p.sum():.6g}")
            object.__setattr__(self, "start_distribution", _ro(p / p.sum()))

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return int(self.states.size)

    @property
    def n_observations(self) -> int:
        """Number of scored observations (observed states), for information criteria and objective scaling."""
        return int(self.states.size)

    def validate(self, n_states: int, n_actions: int, *, horizon: int | None = None) -> "WorldState":
        """Check state ids and the start distribution against an MDP's sizes.

        ``horizon`` (the MDP's own) is accepted for the common evidence
        interface and ignored: the person's horizon is :attr:`horizon`.

        Raises:
            DemoValidationError: naming the first bad entry.
        """
        for name, arr in (("observed state", self.states), ("start state", self.start)):
            if arr is None:
                continue
            bad = arr >= n_states
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                raise DemoValidationError(f"{name} id {arr[k]} (observation {k}) is out of range: the MDP has "
                                          f"{n_states} states (valid ids 0..{n_states - 1})")
        if self.start_distribution is not None and self.start_distribution.shape != (n_states,):
            raise DemoValidationError(f"start_distribution has {self.start_distribution.size} entries but the MDP "
                                      f"has {n_states} states")
        return self

    def _groups(self, mdp: Any) -> tuple[np.ndarray, np.ndarray]:
        """Start distributions ``(G, S)`` and observed-state counts ``(G, S)``, one row per distinct start."""
        S = mdp.n_states
        if self.start is None:
            p0 = mdp.initial if self.start_distribution is None else self.start_distribution
            counts = np.bincount(self.states, minlength=S).astype(np.float64)[None]
            return np.asarray(p0, dtype=np.float64)[None], counts
        uniq, inv = np.unique(self.start, return_inverse=True)
        starts = np.zeros((uniq.size, S))
        starts[np.arange(uniq.size), uniq] = 1.0
        counts = np.zeros((uniq.size, S))
        np.add.at(counts, (inv, self.states), 1.0)
        return starts, counts

    def sufficient_statistics(self, mdp: Any) -> tuple[np.ndarray, np.ndarray]:
        """Start distributions and observed-state counts ``(G, S)``, computed once per MDP.

        Raises:
            DemoValidationError: ids out of range for ``mdp``.
        """
        from demos.statistics import memo

        def compute() -> tuple[np.ndarray, np.ndarray]:
            self.validate(mdp.n_states, mdp.n_actions)
            starts, counts = self._groups(mdp)
            for a in (starts, counts):
                a.setflags(write=False)
            return starts, counts

        return memo(self, mdp, "final_states", compute)

    def _policy(self, human: Any, mdp_T: Any, reward: Any) -> torch.Tensor:
        logp = human.action_log_probs(mdp_T, reward)
        if not isinstance(logp, torch.Tensor):
            logp = torch.as_tensor(np.asarray(logp, dtype=np.float64))
        S, A, T = mdp_T.n_states, mdp_T.n_actions, self.horizon
        timed = bool(getattr(human, "time_dependent", True)) or (
            logp.ndim >= 3 and tuple(logp.shape[-3:]) == (T, S, A))  # a stationary model may still index time
        if timed:
            if logp.ndim < 3 or tuple(logp.shape[-3:]) != (T, S, A):
                raise DemoValidationError(f"the human model's policy has shape {tuple(logp.shape)}; a time-dependent "
                                          f"policy for T = {T} must end in (T, S, A) = ({T}, {S}, {A})")
            return logp
        if logp.ndim < 2 or tuple(logp.shape[-2:]) != (S, A):
            raise DemoValidationError(f"the human model's policy has shape {tuple(logp.shape)}; it must end in "
                                      f"(S, A) = ({S}, {A})")
        return logp.unsqueeze(-3).expand(*logp.shape[:-2], T, S, A)

    # -------------------------------------------------------------- likelihood
    def log_likelihood_under(self, human: Any, mdp: Any, reward: Any) -> torch.Tensor:
        """``sum_i log P(s_T = states[i] | start_i)`` under ``human`` acting on ``reward`` for ``T`` steps.

        The person's policy is ``human.action_log_probs(mdp.replace(horizon=T), reward)``
        (time-indexed, or stationary for models that are not time-dependent).
        The forward pass is exact; its backward pass is the closed-form
        transpose pass, so the result is differentiable in ``reward`` through
        whatever the human model does.

        Args:
            human: any human model.
            mdp: the MDP (its horizon is replaced by :attr:`horizon`).
            reward: ``(S,)``, ``(S, A)`` or a batch ``(B, S, A)``.

        Returns:
            A torch scalar, or ``(B,)`` for a batch of rewards. ``-inf`` where an
            observed state is impossible under the policy (its gradient is then 0).

        Raises:
            DemoValidationError: ids out of range for ``mdp``, or a policy of the wrong shape.
        """
        starts, counts = self.sufficient_statistics(mdp)
        mdp_T = _with_horizon(mdp, self.horizon)
        logp = self._policy(human, mdp_T, reward)
        lead = logp.shape[:-3]
        flat = logp.reshape(-1, *logp.shape[-3:])
        out = _FinalStateLogLik.apply(flat, mdp_T, starts, counts)
        return out.reshape(lead)

    def final_state_distribution(self, human: Any, mdp: Any, reward: Any) -> np.ndarray:
        """The distribution of ``s_T`` per distinct start: ``(G, S)`` (``G = 1`` for a shared start).

        Rows follow the sorted distinct values of :attr:`start` (or the single
        start distribution). No gradient.
        """
        self.validate(mdp.n_states, mdp.n_actions)
        mdp_T = _with_horizon(mdp, self.horizon)
        with torch.no_grad():
            logp = self._policy(human, mdp_T, reward)
        if logp.ndim != 3:
            raise DemoValidationError(f"final_state_distribution takes one reward, not a batch: policy shape "
                                      f"{tuple(logp.shape)}")
        starts, _ = self._groups(mdp_T)
        d = _forward(mdp_T, np.exp(logp.detach().double().numpy())[None], starts)[-1]  # (S, G, 1)
        return np.ascontiguousarray(d[:, :, 0].T)

    # --------------------------------------------------------------- simulation
    @classmethod
    def simulate(cls, mdp: Any, human: Any, reward: Any, n: int, *, horizon: int, start: int | None = None,
                 start_distribution: Any = None, seed: int | np.random.Generator | None = None) -> "WorldState":
        """Sample ``n`` world states: the person acts for ``horizon`` steps, the final state is kept.

        Delegates the roll-outs to ``human.sample`` (so simulation and the
        likelihood use the same model). The start is ``start`` (recorded as
        known), else drawn from ``start_distribution`` (recorded as a prior,
        the drawn starts are not kept), else from ``mdp.initial``.

        Args:
            mdp: the MDP.
            human: any human model with ``sample(mdp, reward, n, rng, initial=...)``.
            reward: the reward the person acts on.
            n: number of observations.
            horizon: ``T``, actions per roll-out.
            start: known start state.
            start_distribution: ``(S,)`` prior over the start.
            seed: seed or generator (the same seed gives the same states).

        Returns:
            :class:`WorldState` with ``n`` observations.

        Example:
            >>> import irl, human_models as hm, demos
            >>> env = irl.envs.make("rlsp-room")
            >>> ws = demos.WorldState.simulate(env, hm.Boltzmann(1.0), env.true_reward, 5, horizon=6,
            ...                                start=0, seed=0)
            >>> len(ws), ws.horizon
            (5, 6)
        """
        if int(n) < 1:
            raise DemoValidationError(f"n must be >= 1: got {n}")
        proto = cls(states=[0], horizon=horizon, start=start, start_distribution=start_distribution)
        if start is not None:
            proto.validate(mdp.n_states, mdp.n_actions)
            p0 = np.zeros(mdp.n_states)
            p0[int(start)] = 1.0
        elif start_distribution is not None:
            proto.validate(mdp.n_states, mdp.n_actions)
            p0 = proto.start_distribution
        else:
            p0 = np.asarray(mdp.initial, dtype=np.float64)
        mdp_T = _with_horizon(mdp, proto.horizon)
        data = human.sample(mdp_T, reward, int(n), rng=seed, initial=p0)
        final = getattr(data, "final_states", None)
        if final is None:
            raise TypeError(f"{type(human).__name__}.sample must return trajectories (with final_states) to "
                            f"simulate world states: got {type(data).__name__}")
        return cls(states=np.asarray(final), horizon=proto.horizon, start=start,
                   start_distribution=proto.start_distribution)

    # ---------------------------------------------------------------- files
    def _save_npz(self, path: Any) -> None:
        from demos.io import save_arrays

        save_arrays(path, FORMAT, {"states": self.states, "horizon": np.array(self.horizon),
                                   "start": self.start, "start_distribution": self.start_distribution})

    def save(self, path: Any) -> None:
        """Write a versioned ``.npz`` (or ``.csv`` / ``.jsonl`` by extension) atomically; read it with :func:`demos.load`."""
        from demos.io import save

        save(self, path)

    @classmethod
    def _from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict) -> "WorldState":
        missing = {"states", "horizon"} - set(arrays)
        if missing:
            raise DemoValidationError(f"world-state file lacks arrays {sorted(missing)}")
        return cls(states=arrays["states"], horizon=int(arrays["horizon"]), start=arrays.get("start"),
                   start_distribution=arrays.get("start_distribution"))

    def __repr__(self) -> str:
        how = ("start given" if self.start is not None else
               "start distribution" if self.start_distribution is not None else "start = mdp.initial")
        return f"WorldState(N={len(self)}, T={self.horizon}, {how})"


# ----------------------------------------------------------- the forward pass
def _forward(mdp: Any, pi: np.ndarray, starts: np.ndarray) -> list[np.ndarray]:
    """State distributions ``d_0 .. d_T``, each ``(S, G, B)``, for policies ``pi (B, T, S, A)``."""
    B, T, S, A = pi.shape
    G = starts.shape[0]
    pit = np.ascontiguousarray(np.moveaxis(pi, 0, -1))  # (T, S, A, B)
    contT = mdp.continuation_T
    term = None if mdp.terminal is None or not mdp.terminal.any() else mdp.terminal.astype(np.float64)
    d = np.repeat(starts.T[:, :, None], B, axis=2)  # (S, G, B)
    out = [d]
    for t in range(T):
        x = d[:, None, :, :] * pit[t][:, :, None, :]  # (S, A, G, B)
        nxt = (contT @ x.reshape(S * A, G * B)).reshape(S, G, B)
        if term is not None:
            nxt += term[:, None, None] * d
        d = nxt
        out.append(d)
    return out


class _FinalStateLogLik(torch.autograd.Function):
    """``sum_{g,s} counts[g,s] log d_T[s, g]`` for each policy in a batch; backward = transpose pass."""

    @staticmethod
    def forward(ctx: Any, logp: torch.Tensor, mdp: Any, starts: np.ndarray,  # type: ignore[override]
                counts: np.ndarray) -> torch.Tensor:
        pi = np.exp(logp.detach().to(torch.float64).cpu().numpy())  # (B, T, S, A)
        ds = _forward(mdp, pi, starts)
        dT = ds[-1]  # (S, G, B)
        c = counts.T[:, :, None]  # (S, G, 1)
        mask = np.broadcast_to(c > 0, dT.shape)
        with np.errstate(divide="ignore"):
            logd = np.where(mask, np.log(np.where(mask, dT, 1.0)), 0.0)
        ll = (c * logd).sum(axis=(0, 1))  # (B,)
        ctx.mdp, ctx.pi, ctx.ds, ctx.c, ctx.dtype = mdp, pi, ds, c, logp.dtype
        return torch.from_numpy(ll).to(logp.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple:  # type: ignore[override]
        mdp, pi, ds, c = ctx.mdp, ctx.pi, ctx.ds, ctx.c
        B, T, S, A = pi.shape
        G = c.shape[1]
        gb = g.detach().to(torch.float64).cpu().numpy().reshape(1, 1, B)
        dT = ds[-1]
        ok = (c > 0) & (dT > 0)
        lam = np.where(ok, c * gb / np.where(ok, dT, 1.0), 0.0)  # dL/d d_T, (S, G, B)
        cont = mdp.continuation
        term = None if mdp.terminal is None or not mdp.terminal.any() else mdp.terminal.astype(np.float64)
        grad = np.empty((B, T, S, A))
        for t in range(T - 1, -1, -1):
            u = (cont @ lam.reshape(S, G * B)).reshape(S, A, G, B)  # E[lambda_{t+1}(s') | s, a]
            pit = np.moveaxis(pi[:, t], 0, -1)[:, :, None, :]  # (S, A, 1, B)
            w = pit * u
            grad[:, t] = np.moveaxis((ds[t][:, None, :, :] * w).sum(axis=2), -1, 0)  # d/d log pi
            new = w.sum(axis=1)
            if term is not None:
                new += term[:, None, None] * lam
            lam = new
        return torch.from_numpy(grad).to(ctx.dtype), None, None, None


def _load(arrays: dict[str, np.ndarray], meta: dict) -> WorldState:
    return WorldState._from_arrays(arrays, meta)


def _register() -> None:
    import demos

    demos.registry[FORMAT] = _load


_register()
