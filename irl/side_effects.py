"""Side-effect penalties as planner objectives: relative reachability and attainable utility.

A reward specified for a task says what to do and usually nothing about what to
leave alone. A *side-effect penalty* subtracts from it how far the agent's state
has moved away from a *baseline*, the state the world would be in had the agent
done nothing, measured by a *deviation measure* on *auxiliary values*:

    r_pen = r - weight * d(s_t ; s'_t)

(Krakovna et al. 2019). Each part is a choice, named as in the papers:

* **auxiliary values** ``V (S, N)``: ``V[s, i]`` is what can still be attained
  from state ``s`` for the auxiliary goal ``i``:

  - :func:`reachability`: ``R[x, y] = max_pi E[gamma^N(x -> y)]``, the discounted
    reachability of every state ``y`` (one goal per state; Krakovna et al.);
  - :func:`attainable_values`: optimal values ``V*_{R_i}`` of auxiliary rewards
    ``R_i``, by default uniformly random state rewards (Turner et al. 2020);
  - the features ``f(s)`` themselves (the RLSP paper's "deviation" comparison).

* **deviation measure** ``d`` (``deviation=``): ``"truncation"``, the mean of
  ``max(V[s', i] - V[s, i], 0)`` over goals (only *losses* of attainable value
  count: relative reachability), ``"absolute"``, the mean of ``|V[s', i] - V[s, i]|``
  (attainable utility preservation), or ``"euclidean"``, ``||V[s'] - V[s]||_2``.

* **baseline** ``s'_t`` (``baseline=``):

  - ``"starting"``: the state the agent started in, ``s'_t = s_0``;
  - ``"inaction"``: the state at time ``t`` had the agent taken the no-op action
    from ``s_0`` on (``s'_t ~ N^t s_0`` for the no-op transition matrix ``N``);
  - ``"stepwise"``: the state the no-op would have led to from the agent's
    *previous* state, ``s'_{t+1} ~ P(. | s_t, noop)``. Without inaction
    rollouts (``rollout=0``, the default) only the next states are compared;
    with ``rollout=K`` both next states are continued by ``K`` no-ops in
    parallel and the deviations along the two rollouts are averaged,
    ``(1 - g) sum_{k<K} g^k d(s_k; s'_k) + g^K d(s_K; s'_K)`` with
    ``g = rollout_discount``: an action whose harm shows only later (a vase
    set on a conveyor belt) is penalised when it is taken, not never.

How the history dependence is handled. A penalty ``d(s_t; s'_t)`` depends on the
baseline trajectory, which depends on the start state and the time; the
penalised objective is a Markov reward only on a suitable state:

* ``"starting"``: ``s_0`` is fixed (the start must be a known state, ``start=``
  or a one-hot ``env.initial``), so the penalty is a state reward ``(S,)``;
* ``"inaction"``: the baseline at ``t`` is a fixed distribution ``N^t s_0``, so
  the penalty is a *time-indexed* state reward ``(H, S)``, exact for a finite
  horizon ``H`` and a known start; the planner then runs on the MDP unrolled in
  time (states ``(t, s)``, see :func:`time_expanded`), whose optimal policy is
  the time-indexed optimal policy of the original MDP. An infinite-horizon
  MDP is refused: choose a horizon or the stepwise baseline;
* ``"stepwise"``: the penalty of ``a_t`` in ``s_t`` compares the next state with
  the no-op's next state from the same ``s_t``: a state-action reward ``(S, A)``
  (Turner et al.'s ``|Q(s, a) - Q(s, noop)|``, divided by the discount, is this
  with ``"absolute"``).

Approximation, documented: when the baseline state (or the agent's next state)
is random, the deviation is taken between *expected* auxiliary values, e.g.
``d(V[s], E_{s'~N^t s_0} V[s'])``, not as the expected deviation; the two agree
for deterministic dynamics (all the RLSP gridworlds but apples). This keeps every
penalty one sparse product away from ``V``. It is what Turner et al.'s
``|Q(s,a) - Q(s,noop)|`` does for the stepwise baseline; the RLSP authors' code
takes the expectation outside for the inaction baseline (their apples cell is
reproduced all the same).

A :class:`SideEffectPenalty` holds the finished penalty table; :func:`plan`
(or ``irl.plan(env, reward, penalty=...)``) plans with ``reward - penalty``.

Example:
    >>> import irl
    >>> from irl import side_effects
    >>> p = irl.envs.rlsp.problem("rlsp-room")
    >>> task = p.reward(p.task_weights)                     # walk to (0,1); says nothing about the vase
    >>> pen = side_effects.relative_reachability(p.mdp, baseline="inaction")
    >>> pi = irl.plan(p.mdp, task, penalty=pen)
    >>> true = p.reward(p.true_weights)
    >>> spec_only = irl.plan(p.mdp, task)                    # breaks the vase half of the time (ties split)
    >>> ret = irl.planning.expected_return
    >>> float(ret(p.mdp, true, pi)), float(ret(p.mdp, true, spec_only))
    (17.0, 7.5)

References:
    Krakovna, Orseau, Kumar, Martic & Legg (2019), "Penalizing side effects using
    stepwise relative reachability", AI Safety workshop at IJCAI (arXiv 1806.01186).
    Turner, Hadfield-Menell & Tadepalli (2020), "Conservative agency via attainable
    utility preservation", AIES (arXiv 1902.09725).
    Shah, Krasheninnikov, Alexander, Abbeel & Dragan (2019), "Preferences implicit
    in the state of the world", ICLR (the "deviation" and "reachability"
    comparisons of its Table 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from irl import planning
from irl.mdp import MDPValidationError, TabularMDP, state_action_reward

__all__ = ["SideEffectPenalty", "BASELINES", "DEVIATIONS", "reachability", "attainable_values", "penalty",
           "relative_reachability", "attainable_utility", "feature_deviation", "noop_action", "penalised_reward",
           "time_expanded", "plan_penalised", "plan"]

#: The baselines of Krakovna et al. (2019).
BASELINES = ("starting", "inaction", "stepwise")
#: Deviation measures between auxiliary value vectors.
DEVIATIONS = ("truncation", "absolute", "euclidean")
#: Action names recognised as the no-op when ``noop`` is not given.
NOOP_NAMES = ("stay", "noop", "no-op", "none", "wait", "nothing")
#: Goals per block in :func:`reachability`: the working array ``(S*A, block)`` stays near 256 MB.
_BLOCK_BYTES = 1 << 28


# ------------------------------------------------------------ auxiliary values
def reachability(env: TabularMDP, *, discount: float = 0.99, horizon: int | None = None, at_horizon: bool = False,
                 tol: float = 1e-12, max_iter: int = 100_000) -> np.ndarray:
    """Reachability of every state from every state, exactly, batched over all goal states.

    ``R[x, y] = max_pi E[discount^N]`` where ``N`` is the number of steps policy
    ``pi`` takes from ``x`` to first reach ``y`` (``R[y, y] = 1``; ``0`` when ``y``
    cannot be reached). It is the optimal value of the goal-reaching problem for
    goal ``y``; all ``S`` goals are solved at once by value iteration on an
    ``(S, goals)`` block, ``R <- max(I, discount * max_a P R)``, from ``R = I``.
    (The planner of :mod:`irl.planning` would store Q-values and policies for
    every goal, ``S^2 A`` numbers per step; only values are needed here, in blocks
    of goals that bound the memory.) Terminal states reach only themselves.

    Cost: one sparse ``(S*A, S)`` by dense ``(S, goals)`` product per sweep and an
    ``(S, S)`` result. Deterministic worlds converge after as many sweeps as their
    diameter; on the 5280-state stochastic apples world of RLSP, 20 sweeps
    (``horizon=20``) take about 40 s and 1 GB, and the unbounded discounted version
    needs about 250 sweeps (24 minutes measured on a loaded 2-core machine):
    prefer a horizon on large stochastic worlds.

    Args:
        env: the MDP (its own reward, discount and horizon are not used).
        discount: ``gamma_r`` in ``(0, 1]``; 1 gives the probability of reaching
            ``y`` at all (within ``horizon`` steps when one is given).
        horizon: at most this many steps (``None``: unbounded; iterate to ``tol``).
        at_horizon: instead, the largest probability of being in ``y`` after
            *exactly* ``horizon`` steps (``discount`` unused): the "coverage" of the
            RLSP authors' relative-reachability comparison.
        tol: convergence tolerance on ``R`` (unbounded horizon).
        max_iter: sweep limit (unbounded horizon).

    Returns:
        ``(S, S)`` array ``R[x, y]`` in ``[0, 1]``.

    Raises:
        MDPValidationError: a discount outside ``(0, 1]``, a bad horizon, or
            ``at_horizon`` without a horizon.
        planning.ConvergenceError: no convergence within ``max_iter`` sweeps.

    Example:
        >>> import irl
        >>> from irl.side_effects import reachability
        >>> env = irl.envs.make("rlsp-room")
        >>> R = reachability(env, discount=0.5)
        >>> s = int(env.initial.argmax())
        >>> float(R[s, s]), bool((R[:, s] < 1).sum() > 0)   # a broken vase cannot be undone
        (1.0, True)

    References:
        Krakovna et al. (2019), "Penalizing side effects using stepwise relative
        reachability" (discounted reachability).
    """
    if not 0.0 < discount <= 1.0:
        raise MDPValidationError(f"reachability discount must be in (0, 1]: got {discount}")
    if horizon is not None and (int(horizon) != horizon or horizon < 0):
        raise MDPValidationError(f"reachability horizon must be an integer >= 0 or None: got {horizon!r}")
    if at_horizon and horizon is None:
        raise MDPValidationError("reachability with at_horizon=True needs a horizon (the number of steps)")
    S, A = env.n_states, env.n_actions
    P = env.continuation
    block = max(1, min(S, _BLOCK_BYTES // (8 * S * A)))
    steps = max_iter if horizon is None else int(horizon)
    out = np.empty((S, S))
    for lo in range(0, S, block):
        cols = np.arange(lo, min(S, lo + block))
        R, converged = _reach_block(P, S, A, cols, discount, steps, at_horizon, tol if horizon is None else 0.0)
        if horizon is None and not converged:
            raise planning.ConvergenceError(f"reachability did not converge to tol {tol:g} in {max_iter} sweeps "
                                            f"(goal states {cols[0]}..{cols[-1]})")
        out[:, cols] = R
    return out


def _reach_block(P: sp.csr_matrix, S: int, A: int, cols: np.ndarray, discount: float, steps: int,
                 at_horizon: bool, tol: float) -> tuple[np.ndarray, bool]:
    """Reachability of the goals ``cols`` (``(S, len(cols))``) and whether the sweeps converged to ``tol``."""
    n = cols.size
    R = np.zeros((S, n))
    R[cols, np.arange(n)] = 1.0
    for _ in range(steps):
        best = (P @ R).reshape(S, A, n).max(axis=1)
        if at_horizon:
            R = best
            continue
        best *= discount
        best[cols, np.arange(n)] = 1.0  # max(1[x = y], ...): values never exceed 1
        change = float(np.abs(best - R).max()) if R.size else 0.0
        R = best
        if change <= tol:
            return R, True
    return R, at_horizon or steps == 0


def attainable_values(env: TabularMDP, rewards: Any = None, *, n_rewards: int = 20, seed: int = 0,
                      discount: float = 0.99, horizon: int | None = None) -> np.ndarray:
    """Optimal values of auxiliary rewards: what the agent could still attain from each state.

    ``V[s, i] = max_pi E[sum_t discount^t R_i(s_t, a_t) | s_0 = s]``, computed by
    :func:`irl.planning.value_iteration` on the batch of auxiliary rewards.

    Args:
        env: the MDP (its discount and horizon are replaced by ``discount`` and ``horizon``).
        rewards: auxiliary rewards ``(N, S)`` or ``(N, S, A)``; by default
            ``n_rewards`` state rewards drawn uniformly from ``[0, 1]`` (Turner et al.).
        n_rewards: number of random auxiliary rewards when ``rewards`` is None.
        seed: seed of the random auxiliary rewards.
        discount: discount of the auxiliary values (``< 1`` unless every policy
            terminates or ``horizon`` is given).
        horizon: finite horizon of the auxiliary problems, or ``None``.

    Returns:
        ``(S, N)`` values.

    Raises:
        MDPValidationError: bad shapes or a bad discount.

    Example:
        >>> import irl
        >>> from irl.side_effects import attainable_values
        >>> attainable_values(irl.envs.make("rlsp-room"), n_rewards=3).shape
        (29, 3)

    References:
        Turner, Hadfield-Menell & Tadepalli (2020), "Conservative agency via
        attainable utility preservation", AIES.
    """
    if not 0.0 <= discount <= 1.0:
        raise MDPValidationError(f"auxiliary discount must be in [0, 1]: got {discount}")
    if rewards is None:
        if int(n_rewards) < 1:
            raise MDPValidationError(f"n_rewards must be >= 1: got {n_rewards}")
        rewards = np.random.default_rng(seed).uniform(0.0, 1.0, size=(int(n_rewards), env.n_states))
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim not in (2, 3) or r.shape[1] != env.n_states or (r.ndim == 3 and r.shape[2] != env.n_actions):
        raise MDPValidationError(f"auxiliary rewards must have shape (N, S) = (N, {env.n_states}) or (N, S, A) = "
                                 f"(N, {env.n_states}, {env.n_actions}): got {r.shape}")
    r = state_action_reward(r if r.ndim == 3 else np.broadcast_to(r[:, :, None], r.shape + (env.n_actions,)),
                            env.n_states, env.n_actions, name="auxiliary rewards")
    aux = env.replace(discount=float(discount), horizon=horizon, true_reward=None)
    v = planning.value_iteration(aux, r).v  # (N, S) or (N, H+1, S)
    return np.ascontiguousarray((v if horizon is None else v[:, 0]).T)


# ------------------------------------------------------------------ penalties
@dataclass(frozen=True, eq=False)
class SideEffectPenalty:
    """A side-effect penalty, ready to subtract from a reward (see the module docstring).

    Attributes:
        table: the unweighted penalty, ``>= 0``: ``(S,)`` for the starting-state
            baseline, ``(H, S)`` (time-indexed) for the inaction baseline,
            ``(S, A)`` for the stepwise baseline. Read-only.
        weight: the multiplier ``lambda`` (``beta`` in Krakovna et al.), ``>= 0``.
        baseline: one of :data:`BASELINES`.
        measure: a label, e.g. ``"relative reachability"``.
        start: the start state ``s_0`` the starting and inaction baselines refer to.
        noop: the no-op action (``None`` for the starting baseline when none was given:
            it needs none).

    Example:
        >>> import irl
        >>> from irl.side_effects import relative_reachability
        >>> pen = relative_reachability(irl.envs.make("rlsp-room"), baseline="stepwise")
        >>> pen.table.shape, pen.time_indexed
        ((29, 5), False)
    """

    table: np.ndarray
    weight: float
    baseline: str
    measure: str
    start: int | None
    noop: int | None

    def __post_init__(self) -> None:
        if self.baseline not in BASELINES:
            raise MDPValidationError(f"unknown baseline {self.baseline!r}; known: {', '.join(BASELINES)}")
        t = np.asarray(self.table, dtype=np.float64)
        if t.flags.writeable:  # keep a private read-only copy (a read-only table is shared, e.g. by scaled())
            t = t.copy()
        if not np.all(np.isfinite(t)):
            raise MDPValidationError("the side-effect penalty table must be finite: found NaN or inf")
        if t.size and t.min() < -1e-12:
            raise MDPValidationError(f"a side-effect penalty must be >= 0: got {t.min():.6g}")
        if not (np.isfinite(self.weight) and self.weight >= 0):
            raise MDPValidationError(f"the penalty weight must be finite and >= 0: got {self.weight}")
        t.setflags(write=False)
        object.__setattr__(self, "table", t)
        object.__setattr__(self, "weight", float(self.weight))

    @property
    def time_indexed(self) -> bool:
        """Whether the penalty depends on the time step (the inaction baseline)."""
        return self.baseline == "inaction"

    def scaled(self, weight: float) -> "SideEffectPenalty":
        """The same penalty with another weight."""
        return SideEffectPenalty(self.table, weight, self.baseline, self.measure, self.start, self.noop)

    def __repr__(self) -> str:
        return (f"SideEffectPenalty({self.measure}, baseline={self.baseline!r}, weight={self.weight:g}, "
                f"table shape {self.table.shape})")


def noop_action(env: TabularMDP, noop: int | None = None) -> int:
    """The no-op action: ``noop`` when given, else the action named ``stay``/``noop``/... in ``env.action_names``.

    Raises:
        MDPValidationError: out of range, or no action name recognised (pass ``noop=``).
    """
    if noop is None:
        names = [str(n).lower() for n in (env.action_names or ())]
        hits = [i for i, n in enumerate(names) if n in NOOP_NAMES]
        if not hits:
            raise MDPValidationError(f"the baselines need a no-op action; none of {env.name!r}'s actions "
                                     f"{list(env.action_names) if env.action_names else '(unnamed)'} is named one of "
                                     f"{list(NOOP_NAMES)}: pass noop=<action index>")
        return hits[0]
    if int(noop) != noop or not 0 <= noop < env.n_actions:
        raise MDPValidationError(f"noop must be an action index in [0, {env.n_actions}): got {noop!r}")
    return int(noop)


def _start_state(env: TabularMDP, start: int | None) -> int:
    if start is None:
        nz = np.flatnonzero(env.initial)
        if nz.size != 1:
            raise MDPValidationError(
                f"the starting-state and inaction baselines refer to one start state, but {env.name!r} starts in "
                f"{nz.size} states: pass start=<state index> (or use baseline='stepwise')")
        return int(nz[0])
    if int(start) != start or not 0 <= start < env.n_states:
        raise MDPValidationError(f"start must be a state index in [0, {env.n_states}): got {start!r}")
    return int(start)


def _noop_matrix(env: TabularMDP, a0: int) -> sp.csr_matrix:
    """``(S, S)`` row-stochastic no-op dynamics ``P(. | s, noop)``; a terminal state stays where it is."""
    S, A = env.n_states, env.n_actions
    Pn = env.continuation[np.arange(S) * A + a0]
    stuck = 1.0 - np.asarray(Pn.sum(axis=1)).ravel()
    return (Pn + sp.diags(np.where(stuck > 1e-12, stuck, 0.0))).tocsr()


def _deviation(agent: np.ndarray, base: np.ndarray, how: str) -> np.ndarray:
    """``d`` between value vectors along the last axis: ``agent (..., N)``, ``base`` broadcastable."""
    if how == "truncation":
        return np.maximum(base - agent, 0.0).mean(axis=-1)
    if how == "absolute":
        return np.abs(base - agent).mean(axis=-1)
    return np.sqrt(((base - agent) ** 2).sum(axis=-1))


def _blocks(n: int, per_row_bytes: int) -> list[slice]:
    """Row blocks of ``n`` rows whose temporaries stay near ``_BLOCK_BYTES`` (``per_row_bytes`` each)."""
    step = max(1, _BLOCK_BYTES // max(1, per_row_bytes))
    return [slice(lo, min(n, lo + step)) for lo in range(0, n, step)]


def penalty(env: TabularMDP, values: Any, *, baseline: str = "stepwise", deviation: str = "truncation",
            weight: float = 1.0, normalize: bool = False, start: int | None = None, noop: int | None = None,
            measure: str = "custom", rollout: int = 0, rollout_discount: float = 0.99) -> SideEffectPenalty:
    """A side-effect penalty from auxiliary values, a deviation measure and a baseline.

    ``"starting"``: ``p(s) = d(V[s], V[s_0])``; ``"inaction"``: ``p(t, s) = d(V[s],
    E[V[s'_t]])`` with ``s'_t ~ N^t s_0`` for ``t < H``; ``"stepwise"``: ``p(s, a)
    = d(E[V[s'] | s, a], E[V[s'] | s, noop])``, and with ``rollout=K`` the average
    ``(1 - g) sum_{k<K} g^k d_k + g^K d_K`` of ``d_k = d(E[(N^k V)[s'] | s, a],
    E[(N^k V)[s'] | s, noop])`` over ``k`` further no-ops (inaction rollouts,
    Krakovna et al. 2019, Sec. 2.3; ``g = rollout_discount``). Along the
    baseline the penalty is 0.

    Args:
        env: the MDP (a finite horizon ``H`` for the inaction baseline).
        values: ``(S, N)`` auxiliary values (:func:`reachability`,
            :func:`attainable_values`, features, ...).
        baseline: one of :data:`BASELINES`.
        deviation: one of :data:`DEVIATIONS`.
        weight: the multiplier of the penalty in the objective.
        normalize: divide the table by its largest entry (the RLSP authors'
            convention: ``weight`` is then relative to the largest penalty).
        start: start state of the starting and inaction baselines (default: the
            one state of a one-hot ``env.initial``).
        noop: the no-op action of the inaction and stepwise baselines (default: found
            by name, see :func:`noop_action`); the starting baseline needs none.
        measure: a label for reports.
        rollout: stepwise baseline only: number ``K >= 0`` of no-op steps of the
            parallel inaction rollouts (0: compare the next states only). The last
            rollout state stands for all later ones, which is exact once the no-op
            dynamics have settled (a fixed point) within ``K`` steps.
        rollout_discount: ``g`` in ``[0, 1)``, the weight of later rollout steps
            (0.99, the reachability discount of Krakovna et al.'s code).

    Returns:
        :class:`SideEffectPenalty`.

    Raises:
        MDPValidationError: unknown baseline or deviation, wrong shape of
            ``values``, inaction without a finite horizon, no start or no-op,
            rollouts with another baseline, a negative ``rollout`` or a
            ``rollout_discount`` outside ``[0, 1)``.

    Example:
        >>> import numpy as np, irl
        >>> from irl.side_effects import penalty
        >>> env = irl.envs.make("rlsp-room")
        >>> pen = penalty(env, env.features, baseline="starting", deviation="euclidean")
        >>> float(pen.table[int(env.initial.argmax())])
        0.0
    """
    if baseline not in BASELINES:
        raise MDPValidationError(f"unknown baseline {baseline!r}; known: {', '.join(BASELINES)}")
    if deviation not in DEVIATIONS:
        raise MDPValidationError(f"unknown deviation measure {deviation!r}; known: {', '.join(DEVIATIONS)}")
    if isinstance(rollout, bool) or not isinstance(rollout, (int, np.integer)) or rollout < 0:
        raise MDPValidationError(f"rollout must be an integer >= 0 (no-op steps): got {rollout!r}")
    if rollout and baseline != "stepwise":
        raise MDPValidationError(f"inaction rollouts (rollout={rollout}) apply to the stepwise baseline only: "
                                 f"got baseline {baseline!r}")
    if not (isinstance(rollout_discount, (int, float)) and 0.0 <= rollout_discount < 1.0):
        raise MDPValidationError(f"rollout_discount must be a number in [0, 1): got {rollout_discount!r}")
    V = np.asarray(values, dtype=np.float64)
    S, A = env.n_states, env.n_actions
    if V.ndim != 2 or V.shape[0] != S:
        raise MDPValidationError(f"auxiliary values must have shape (S, N) = ({S}, N): got {V.shape}")
    # the starting baseline compares with the start state itself: no action is involved
    a0 = None if baseline == "starting" and noop is None else noop_action(env, noop)
    P = env.continuation
    s0 = None
    n = V.shape[1]
    if baseline == "stepwise":
        M = _noop_matrix(env, a0) if rollout else None
        table = np.zeros((S, A))
        Vk = V
        for k in range(int(rollout) + 1):  # Vk = N^k V: the values after k more no-ops
            w = 1.0 if rollout == 0 else (rollout_discount ** k) * (1.0 - rollout_discount if k < rollout else 1.0)
            for sl in _blocks(S, 16 * A * n):
                Vn = (P[sl.start * A:sl.stop * A] @ Vk).reshape(-1, A, n)  # E[Vk[s'] | s, a]
                table[sl] += w * _deviation(Vn, Vn[:, a0:a0 + 1], deviation)
            if k < rollout:
                Vk = M @ Vk
    else:
        s0 = _start_state(env, start)
        if baseline == "starting":
            base = V[s0][None]
        else:
            H = env.horizon
            if H is None:
                raise MDPValidationError(
                    f"the inaction baseline is time-indexed and needs a finite horizon, but {env.name!r} has none: "
                    f"use env.replace(horizon=...) or baseline='stepwise'")
            N = _noop_matrix(env, a0).T.tocsr()
            d = np.zeros(S)
            d[s0] = 1.0
            base = np.empty((H, V.shape[1]))
            for t in range(H):
                base[t] = d @ V
                d = N @ d
        table = np.empty((base.shape[0], S))
        for sl in _blocks(S, 16 * base.shape[0] * n):
            table[:, sl] = _deviation(V[None, sl], base[:, None], deviation)
        if baseline == "starting":
            table = table[0]
    table = np.maximum(table, 0.0)
    if normalize and table.max() > 0:
        table = table / table.max()
    return SideEffectPenalty(table=table, weight=weight, baseline=baseline, measure=measure, start=s0, noop=a0)


def relative_reachability(env: TabularMDP, *, baseline: str = "stepwise", weight: float = 1.0,
                          discount: float = 0.99, horizon: int | None = None, at_horizon: bool = False,
                          deviation: str = "truncation", normalize: bool = False, start: int | None = None,
                          noop: int | None = None, rollout: int = 0) -> SideEffectPenalty:
    """Relative reachability penalty (Krakovna et al. 2019).

    ``d_RR(s; s') = (1/S) sum_y max(R(s'; y) - R(s; y), 0)``: the average loss of
    reachability of all states relative to the baseline ``s'``. The reachability
    table comes from :func:`reachability`; the rest from :func:`penalty`.

    Args:
        env: the MDP.
        baseline: one of :data:`BASELINES` (the paper recommends ``"stepwise"``).
        weight: the penalty multiplier (``beta``; 30 in Krakovna et al.'s gridworld code).
        discount: reachability discount ``gamma_r`` (0.99 in that code).
        horizon: at most this many steps of reachability (see :func:`reachability`).
        at_horizon: reachability after exactly ``horizon`` steps (see :func:`reachability`).
        deviation: ``"truncation"`` (relative reachability) or ``"absolute"``.
        normalize: divide by the largest penalty (see :func:`penalty`).
        start: start state of the starting and inaction baselines (see :func:`penalty`).
        noop: the no-op action (see :func:`penalty`).
        rollout: stepwise baseline: no-op steps of the inaction rollouts, weighted
            by ``discount`` (see :func:`penalty`; 0: none).

    Returns:
        :class:`SideEffectPenalty`.

    Example:
        >>> import irl
        >>> from irl.side_effects import relative_reachability
        >>> p = irl.envs.rlsp.problem("rlsp-room")
        >>> pen = relative_reachability(p.mdp, baseline="starting")
        >>> broken = [s for s in range(p.mdp.n_states) if "broken" in p.state_label(s)]
        >>> bool(pen.table[broken].min() > pen.table[p.observed_state])   # breaking the vase costs reachability
        True

    References:
        Krakovna, Orseau, Kumar, Martic & Legg (2019), "Penalizing side effects using
        stepwise relative reachability" (arXiv 1806.01186).
    """
    R = reachability(env, discount=discount, horizon=horizon, at_horizon=at_horizon)
    return penalty(env, R, baseline=baseline, deviation=deviation, weight=weight, normalize=normalize,
                   start=start, noop=noop, measure="relative reachability", rollout=rollout, rollout_discount=discount)


def attainable_utility(env: TabularMDP, rewards: Any = None, *, baseline: str = "stepwise", weight: float = 1.0,
                       n_rewards: int = 20, seed: int = 0, discount: float = 0.99, horizon: int | None = None,
                       deviation: str = "absolute", normalize: bool = False, start: int | None = None,
                       noop: int | None = None, rollout: int = 0) -> SideEffectPenalty:
    """Attainable utility preservation (Turner, Hadfield-Menell & Tadepalli 2020).

    ``d_AU(s; s') = (1/N) sum_i |V_i(s') - V_i(s)|`` over auxiliary rewards
    ``R_i``; with the stepwise baseline the penalty of ``a`` in ``s`` is
    ``(1/N) sum_i |E[V_i(s') | s, a] - E[V_i(s') | s, noop]|``, i.e. the paper's
    ``|Q_i(s, a) - Q_i(s, noop)|`` divided by the discount (the state reward
    ``R_i(s)`` cancels).

    Args:
        env: the MDP.
        rewards: auxiliary rewards ``(N, S)``/``(N, S, A)``; default ``n_rewards``
            uniform random state rewards drawn with ``seed``.
        baseline: one of :data:`BASELINES` (the paper uses ``"stepwise"``).
        weight: ``lambda``.
        n_rewards: number of random auxiliary rewards (see :func:`attainable_values`).
        seed: their seed.
        discount: discount of the auxiliary values.
        horizon: horizon of the auxiliary problems (``None``: infinite).
        deviation: ``"absolute"`` (AUP) or ``"truncation"`` (only decreases count).
        normalize: divide by the largest penalty (see :func:`penalty`).
        start: start state of the starting and inaction baselines (see :func:`penalty`).
        noop: the no-op action (see :func:`penalty`).
        rollout: stepwise baseline: no-op steps of the inaction rollouts, weighted
            by ``discount`` (see :func:`penalty`; 0: none).

    Returns:
        :class:`SideEffectPenalty`.

    Example:
        >>> import irl
        >>> from irl.side_effects import attainable_utility
        >>> pen = attainable_utility(irl.envs.make("rlsp-room"), n_rewards=5)
        >>> pen.baseline, float(pen.table[:, pen.noop].max())      # the no-op itself costs nothing
        ('stepwise', 0.0)

    References:
        Turner, Hadfield-Menell & Tadepalli (2020), "Conservative agency via
        attainable utility preservation", AIES (arXiv 1902.09725).
    """
    V = attainable_values(env, rewards, n_rewards=n_rewards, seed=seed, discount=discount, horizon=horizon)
    return penalty(env, V, baseline=baseline, deviation=deviation, weight=weight, normalize=normalize,
                   start=start, noop=noop, measure="attainable utility", rollout=rollout, rollout_discount=discount)


def feature_deviation(env: TabularMDP, *, baseline: str = "starting", weight: float = 1.0, features: Any = None,
                      normalize: bool = False, start: int | None = None, noop: int | None = None
                      ) -> SideEffectPenalty:
    """Euclidean distance of the state's features from the baseline's: the RLSP paper's "deviation" comparison.

    ``p(s) = ||f(s) - f(s_0)||_2`` with the starting-state baseline (the RLSP
    authors' setting, with ``weight = 0.5``).

    Args:
        env: the MDP (state features ``(S, F)`` unless ``features`` is given).
        baseline: one of :data:`BASELINES` (the RLSP authors: ``"starting"``).
        weight: the penalty multiplier (the RLSP authors: 0.5).
        features: ``(S, F)`` features to compare instead of ``env.features``.
        normalize: divide by the largest penalty (see :func:`penalty`).
        start: start state of the starting and inaction baselines (see :func:`penalty`).
        noop: the no-op action (see :func:`penalty`).

    Returns:
        :class:`SideEffectPenalty`.

    Raises:
        MDPValidationError: no state features.

    Example:
        >>> import irl
        >>> from irl.side_effects import feature_deviation
        >>> feature_deviation(irl.envs.make("rlsp-room"), weight=0.5).table.shape
        (29,)

    References:
        Shah et al. (2019), "Preferences implicit in the state of the world", ICLR
        (comparison "deviation").
    """
    f = env.features if features is None else np.asarray(features, dtype=np.float64)
    if f is None or f.ndim != 2 or f.shape[0] != env.n_states:
        raise MDPValidationError(f"feature_deviation needs state features (S, F) = ({env.n_states}, F): got "
                                 f"{None if f is None else f.shape}")
    return penalty(env, f, baseline=baseline, deviation="euclidean", weight=weight, normalize=normalize,
                   start=start, noop=noop, measure="feature deviation")


# ------------------------------------------------------------------ planning
def penalised_reward(env: TabularMDP, reward: Any, penalty: SideEffectPenalty) -> np.ndarray:
    """``reward - weight * penalty`` as ``(S, A)``, or ``(H, S, A)`` for the time-indexed inaction baseline.

    Args:
        env: the MDP.
        reward: ``(S,)`` or ``(S, A)``.
        penalty: a :class:`SideEffectPenalty` built for ``env``.

    Returns:
        The penalised reward.

    Raises:
        MDPValidationError: a penalty built for another MDP (shape mismatch).
    """
    S, A = env.n_states, env.n_actions
    r = state_action_reward(reward, S, A)
    if r.ndim != 2:
        raise MDPValidationError(f"a penalised plan takes one reward (S,) or (S, A): got {np.shape(reward)}")
    t = penalty.table
    want = {"starting": (S,), "inaction": (env.horizon, S), "stepwise": (S, A)}[penalty.baseline]
    if t.shape != want:
        raise MDPValidationError(f"the {penalty.baseline} penalty table has shape {t.shape} but {env.name!r} needs "
                                 f"{want}: build the penalty for this MDP (and horizon)")
    w = penalty.weight
    if penalty.baseline == "starting":
        return r - w * t[:, None]
    if penalty.baseline == "stepwise":
        return r - w * t
    return r[None] - w * t[:, :, None]


def time_expanded(env: TabularMDP) -> TabularMDP:
    """The finite-horizon MDP unrolled in time: state ``t * S + s`` is ``s`` at step ``t``.

    Step ``t`` leads to step ``t + 1`` (the last layer to itself: its
    continuation is never used within the horizon), so a time-indexed reward
    ``r_t(s, a)`` is a stationary reward ``(H * S, A)`` here and the ordinary
    planner solves it exactly. Starts in layer 0 with ``env.initial``.

    Args:
        env: an MDP with a finite horizon ``H``.

    Returns:
        A :class:`TabularMDP` with ``H * S`` states, the same actions, discount and horizon.

    Raises:
        MDPValidationError: infinite horizon.
    """
    H, S = env.horizon, env.n_states
    if H is None:
        raise MDPValidationError(f"time_expanded needs a finite horizon: {env.name!r} has none")
    shift = sp.csr_matrix((np.ones(H), (np.arange(H), np.minimum(np.arange(H) + 1, H - 1))), shape=(H, H))
    P = sp.csr_matrix(sp.kron(shift, env.transitions, format="csr"))
    init = np.zeros(H * S)
    init[:S] = env.initial
    term = None if env.terminal is None else np.tile(env.terminal, H)
    return TabularMDP(transitions=P, n_states=H * S, n_actions=env.n_actions, initial=init, discount=env.discount,
                      horizon=H, terminal=term, name=f"{env.name} (unrolled over {H} steps)",
                      action_names=env.action_names)


def plan_penalised(env: TabularMDP, reward: Any, penalty: SideEffectPenalty, *, soft: bool = False,
                   beta: float = 1.0) -> planning.PlanningResult:
    """Value iteration on ``reward - weight * penalty``, with time-indexed results for every baseline.

    Stationary penalties (starting, stepwise) go straight to the planner; the
    time-indexed inaction penalty is planned on :func:`time_expanded` and the
    results are read back on the original states.

    Args:
        env: the MDP.
        reward: the task reward ``(S,)`` or ``(S, A)`` (e.g. an inferred reward).
        penalty: a :class:`SideEffectPenalty` for ``env``.
        soft: Boltzmann (soft) instead of optimal planning.
        beta: rationality of the soft planner.

    Returns:
        :class:`irl.planning.PlanningResult` with ``q``/``policy`` ``(H, S, A)``
        and ``v`` ``(H + 1, S)`` (or stationary shapes for an infinite horizon).

    Example:
        >>> import irl
        >>> from irl.side_effects import plan_penalised, relative_reachability
        >>> env = irl.envs.make("rlsp-room")
        >>> res = plan_penalised(env, env.true_reward, relative_reachability(env, baseline="inaction"))
        >>> res.policy.shape
        (20, 29, 5)
    """
    r = penalised_reward(env, reward, penalty)

    def solve(mdp: TabularMDP, rew: np.ndarray) -> planning.PlanningResult:
        if soft:
            return planning.soft_value_iteration(mdp, rew, beta=beta)
        return planning.value_iteration(mdp, rew)

    if r.ndim == 2:
        return solve(env, r)
    H, S, A = r.shape
    res = solve(time_expanded(env), r.reshape(H * S, A))
    diag = np.arange(H)
    q = res.q.reshape(H, H, S, A)[diag, diag]
    pi = res.policy.reshape(H, H, S, A)[diag, diag]
    v = np.zeros((H + 1, S))
    v[:H] = res.v[:H].reshape(H, H, S)[diag, diag]
    return planning.PlanningResult(q=q, v=v, policy=pi)


def plan(env: TabularMDP, reward: Any, penalty: SideEffectPenalty, *, objective: str = "optimal",
         beta: float | None = None) -> np.ndarray:
    """The policy for ``irl.plan(env, reward, penalty=...)``: see :func:`plan_penalised`.

    Args:
        env: the MDP.
        reward: ``(S,)`` or ``(S, A)``.
        penalty: a :class:`SideEffectPenalty`.
        objective: ``"optimal"`` or ``"soft"``.
        beta: rationality for ``"soft"`` (default 1).

    Returns:
        Action probabilities ``(H, S, A)`` (or ``(S, A)`` for an infinite horizon).

    Raises:
        ValueError: an objective other than ``"optimal"`` or ``"soft"``.
    """
    if objective not in ("optimal", "soft"):
        raise ValueError(f"planning objective {objective!r} cannot be combined with a side-effect penalty; "
                         f"known with a penalty: optimal, soft")
    return plan_penalised(env, reward, penalty, soft=objective == "soft",
                          beta=1.0 if beta is None else beta).policy
