"""Acting on an uncertain reward: robust (BROIL) planning over a posterior, and deferring.

A Bayesian posterior over rewards says where the demonstrations were silent. A
planner that optimises the posterior-mean reward ignores that; this module plans
with the whole posterior:

* :func:`broil` maximises ``lam * E[return] + (1 - lam) * CVaR_alpha(return - baseline)``
  over the occupancy measures of the MDP: one linear program (scipy's HiGHS, a
  sparse constraint matrix built from the MDP's CSR transitions), for discounted
  and for finite-horizon (time-indexed) MDPs, or, on larger MDPs, the same program
  by column generation over deterministic policies (a small program over mixtures
  of policies, one value iteration per round, a certified gap). ``baseline=None`` is the robust
  return; a demonstrator's occupancy as baseline gives robust regret against the
  demonstrator (Brown, Niekum & Petrik 2020).
* :func:`plan_posterior` (what :func:`irl.plan` calls for ``objective="mean"``,
  ``"map"`` or ``"cvar"`` and for ``defer=``) plans, reports the mean and the CVaR
  of the return over the posterior, and optionally defers: in the states where
  the posterior probability that the chosen action is optimal
  (:func:`prob_optimal`, batched value iteration over the reward samples) is
  below ``defer``, the policy asks (a mask in the result) or falls back to the
  demonstrator's behaviour.
* :func:`deferral_report` judges such a policy under a true reward: the share of
  (discounted) visits that are deferred, and the regret of the decisions the
  policy takes itself (the performance-difference decomposition of the regret).

Conventions are those of :mod:`irl.planning`: the occupancy of a finite-horizon MDP
is ``D[t, s, a] = gamma^t P(s_t = s, a_t = a)``, shape ``(H, S, A)``; of an
infinite-horizon one ``D[s, a] = sum_t gamma^t P(s_t = s, a_t = a)``, ``(S, A)``; a
terminal state pays ``r(s, a)`` once and absorbs the flow. The return of a policy
under reward ``r`` is ``sum D * r``, so an LP occupancy is exactly what
:func:`irl.planning.occupancy_measure` gives for the LP's policy.

``CVaR_alpha`` is the lower tail: the mean of the worst ``1 - alpha`` of the
posterior mass (``alpha = 0`` is the mean, ``alpha -> 1`` the worst case),
computed exactly for weighted samples by :func:`cvar`.

References:
    Brown, Niekum & Petrik (2020), "Bayesian Robust Optimization for Imitation
    Learning", NeurIPS (BROIL). Rockafellar & Uryasev (2000), "Optimization of
    conditional value-at-risk", Journal of Risk. Puterman (1994), "Markov Decision
    Processes", Sec. 6.9 (the dual linear program over occupancy measures). Petrik &
    Russel (2019), "Beyond Confidence Regions: Tight Bayesian Ambiguity Sets for
    Robust MDPs", NeurIPS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from irl import planning
from irl.mdp import MDPValidationError, TabularMDP, state_action_reward

__all__ = ["RobustPlan", "RewardSamples", "reward_samples", "broil", "plan_posterior", "cvar", "prob_optimal",
           "demonstration_occupancy", "demonstration_policy", "deferral_report", "flow_constraints", "OBJECTIVES",
           "LP_METHODS", "IPM_ABOVE"]

#: Objectives of :func:`plan_posterior` (``irl.plan(..., objective=...)``).
OBJECTIVES = ("mean", "map", "cvar")
#: Bytes of Q-values one chunk of :func:`prob_optimal` may hold.
_CHUNK_BYTES = 1 << 27
#: Methods :func:`broil` accepts: HiGHS on the whole linear program (``"highs"``, ``"highs-ds"``,
#: ``"highs-ipm"``), column generation over deterministic policies (``"policies"``), or ``"auto"``.
LP_METHODS = ("auto", "policies", "highs", "highs-ds", "highs-ipm")
#: With ``method="auto"``, programs with more occupancy variables than this use the interior-point method:
#: measured on discounted gridworlds with 1000 linear reward samples (benchmarks/bench_broil.py), HiGHS's default
#: (simplex) took 0.84 s at 5 120 occupancies and 721 s at 50 000; interior point 2.4 s and 239 s.
IPM_ABOVE = 20_000
#: With ``method="auto"``, programs with more occupancy variables than this are solved by column generation
#: (``"policies"``) when the MDP is discounted or has a horizon; see :func:`broil` for the measurements.
POLICIES_ABOVE = 2_000
#: Column generation stops when its certified gap (upper minus lower bound on the optimum) is at most this
#: times ``max(1, |objective|)``.
POLICIES_TOL = 1e-7
#: Column generation gives up (``ConvergenceError``) after this many rounds.
POLICIES_MAX_ROUNDS = 500


# --------------------------------------------------------------------- validation
def _check_alpha(alpha: Any) -> float:
    a = _number("alpha", alpha)
    if not 0.0 <= a < 1.0:
        raise ValueError(f"alpha is the CVaR level and must lie in [0, 1): got {alpha!r} "
                         f"(alpha = 0.95 averages the worst 5% of the posterior)")
    return a


def _check_lam(lam: Any) -> float:
    v = _number("lam", lam)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"lam weighs the expected return against the CVaR and must lie in [0, 1]: got {lam!r}")
    return v


def _number(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise ValueError(f"{name} must be a number: got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number: got {value!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite: got {value!r}")
    return v


def _check_weights(weights: Any, n: int) -> np.ndarray:
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape (N,) = ({n},), one per reward sample: got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be finite and >= 0: found {int((~np.isfinite(w)).sum())} NaN or inf")
    if np.any(w < 0):
        raise ValueError(f"weights must be finite and >= 0: got min {w.min():.6g}")
    if w.sum() <= 0:
        raise ValueError("weights must not all be zero")
    return w / w.sum()


# ------------------------------------------------------------------------ samples
@dataclass(frozen=True, eq=False)
class RewardSamples:
    """Reward hypotheses with probabilities: ``r_i = coef[i] @ basis`` (or ``coef[i]`` itself).

    Linear rewards keep their factored form (``basis`` = features ``(S*A, F)``, ``coef``
    = weights ``(N, F)``), so the per-sample rows of the linear program have ``F``
    entries instead of ``S*A``; tabular ones have ``basis=None`` and ``coef`` =
    rewards ``(N, S*A)``. Build them with :func:`reward_samples`.

    Attributes:
        coef: ``(N, m)`` per-sample coefficients.
        basis: ``(S*A, m)`` or ``None`` (then ``m = S*A``).
        probs: ``(N,)`` probabilities (sum to 1).
        n_states / n_actions: the MDP's ``S`` and ``A``.
        log_density: ``(N,)`` log posterior density of each sample, if known (for ``"map"``).
    """

    coef: np.ndarray
    basis: np.ndarray | None
    probs: np.ndarray
    n_states: int
    n_actions: int
    log_density: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.coef.shape[0])

    def rewards(self, index: Any = slice(None)) -> np.ndarray:
        """Rewards of the selected samples, ``(n, S, A)``."""
        c = self.coef[index]
        r = c if self.basis is None else c @ self.basis.T
        return r.reshape(-1, self.n_states, self.n_actions)

    def mean(self) -> np.ndarray:
        """The probability-weighted mean reward ``(S, A)``."""
        return self.mixture(self.probs)

    def mixture(self, weights: np.ndarray) -> np.ndarray:
        """The reward ``sum_i weights_i r_i`` ``(S, A)`` for ``(N,)`` weights."""
        c = weights @ self.coef
        r = c if self.basis is None else self.basis @ c
        return r.reshape(self.n_states, self.n_actions)

    def returns(self, occupancy: np.ndarray) -> np.ndarray:
        """Per-sample return ``sum D * r_i`` of a state-action occupancy ``([H,] S, A)``: ``(N,)``."""
        y = np.asarray(occupancy, dtype=np.float64).reshape(-1, self.n_states * self.n_actions).sum(axis=0)
        if self.basis is not None:
            y = self.basis.T @ y
        return self.coef @ y


def reward_samples(env: TabularMDP, samples: Any, *, weights: Any = None, reward_model: Any = None,
                   draws: int | None = None) -> RewardSamples:
    """Reward hypotheses from a posterior or from arrays.

    Args:
        env: the MDP the rewards are for.
        samples: an :class:`irl.Posterior` (its draws of ``theta``, pooled over chains,
            mapped to rewards by its reward model), an array of rewards ``(N, S)`` or
            ``(N, S, A)``, or a :class:`RewardSamples` (returned as is).
        weights: ``(N,)`` non-negative sample weights (default equal).
        reward_model: maps a posterior's ``theta`` to rewards; defaults to the model
            of the fit (a posterior fitted in this session), else the one named in
            ``posterior.info["reward_model"]`` (files written by ``irl fit``), else
            :func:`irl.rewards.default_reward_model` when its parameter count fits.
        draws: use at most this many draws of a posterior, spread evenly over the chains.

    Returns:
        :class:`RewardSamples` (factored when the reward model is linear).

    Raises:
        ValueError: no samples, shapes that do not fit ``env``, non-finite rewards,
            bad weights, or a posterior whose reward model cannot be determined.

    Example:
        >>> import numpy as np, irl
        >>> env = irl.envs.make("machine-replacement")
        >>> rs = irl.robust.reward_samples(env, np.zeros((3, 4, 2)))
        >>> len(rs), rs.mean().shape
        (3, (4, 2))
    """
    if isinstance(samples, RewardSamples):
        return samples
    S, A = env.n_states, env.n_actions
    if hasattr(samples, "theta") and hasattr(samples, "n_chains"):
        return _posterior_samples(env, samples, weights, reward_model, draws)
    if hasattr(samples, "detach"):
        samples = samples.detach().cpu().numpy()
    r = np.asarray(samples, dtype=np.float64)
    if r.ndim == 0 or r.shape[0] == 0:
        raise ValueError(f"reward samples must be a non-empty array (N, S) or (N, S, A): got shape {r.shape}")
    if r.shape[1:] == (S,):
        r = np.broadcast_to(r[:, :, None], (r.shape[0], S, A))
    elif r.shape[1:] != (S, A):
        raise ValueError(f"reward samples must have shape (N, S) = (N, {S}) or (N, S, A) = (N, {S}, {A}) for "
                         f"environment {env.name!r}: got {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("reward samples must be finite: found NaN or inf")
    n = r.shape[0]
    return RewardSamples(coef=np.ascontiguousarray(r.reshape(n, S * A)), basis=None,
                         probs=_check_weights(weights, n), n_states=S, n_actions=A)


def _posterior_samples(env: TabularMDP, post: Any, weights: Any, reward_model: Any, draws: int | None
                       ) -> RewardSamples:
    from irl.rewards import LinearReward, TabularReward

    theta = post.theta.reshape(-1, post.theta.shape[-1])
    if theta.shape[0] == 0:
        raise ValueError("the posterior holds no draws")
    idx = post._thinned(draws, 0)
    theta = theta[idx]
    model = reward_model or _posterior_reward_model(env, post)
    if model.n_params != theta.shape[1]:
        raise ValueError(f"the reward model has {model.n_params} parameters but the posterior's theta has "
                         f"{theta.shape[1]}")
    if (model.n_states, model.n_actions) != (env.n_states, env.n_actions):
        raise ValueError(f"the reward model is for (S, A) = ({model.n_states}, {model.n_actions}), the environment "
                         f"{env.name!r} has ({env.n_states}, {env.n_actions})")
    logd = None if post.log_density is None else np.asarray(post.log_density).reshape(-1)[idx]
    S, A = env.n_states, env.n_actions
    w = _check_weights(weights, theta.shape[0])
    if isinstance(model, LinearReward):
        basis = model.features.numpy().reshape(S * A, -1)
        return RewardSamples(coef=np.ascontiguousarray(theta), basis=basis, probs=w, n_states=S, n_actions=A,
                             log_density=logd)
    if isinstance(model, TabularReward) and model.state_only:
        basis = np.repeat(np.eye(S), A, axis=0)  # (S*A, S): the state reward of (s, a) is theta[s]
        return RewardSamples(coef=np.ascontiguousarray(theta), basis=basis, probs=w, n_states=S, n_actions=A,
                             log_density=logd)
    r = model.reward_array(theta).reshape(theta.shape[0], S * A)
    return RewardSamples(coef=np.ascontiguousarray(r), basis=None, probs=w, n_states=S, n_actions=A,
                         log_density=logd)


def _posterior_reward_model(env: TabularMDP, post: Any) -> Any:
    from irl.rewards import LinearReward, TabularReward, default_reward_model

    joint = getattr(post, "joint", None)
    if joint is not None:
        return joint.reward_model
    name = post.info.get("reward_model") if isinstance(post.info, dict) else None
    if name == "linear" and env.features is not None:
        return LinearReward.from_mdp(env)
    if name in ("tabular", "tabular-sa"):
        return TabularReward(env.n_states, env.n_actions, state_only=(name == "tabular"))
    model = default_reward_model(env)
    if model.n_params != post.theta.shape[-1]:
        raise ValueError(f"cannot tell which reward model maps this posterior's {post.theta.shape[-1]} parameters "
                         f"to rewards in {env.name!r}; pass reward_model=... or reward samples (N, S, A)")
    return model


# --------------------------------------------------------------------------- CVaR
def cvar(values: Any, alpha: float, weights: Any = None) -> float:
    """Lower-tail conditional value at risk of a discrete distribution.

    ``CVaR_alpha[X] = max_sigma sigma - E[(sigma - X)_+] / (1 - alpha)``: the mean of
    the worst ``1 - alpha`` of the probability mass (a sample on the boundary counts
    with the fraction of its weight that falls inside).

    Args:
        values: ``(N,)`` outcomes.
        alpha: level in ``[0, 1)``; 0 gives the mean.
        weights: ``(N,)`` probabilities (default equal).

    Returns:
        The CVaR.

    Example:
        >>> from irl.robust import cvar
        >>> cvar([1.0, 2.0, 3.0, 4.0], 0.5), cvar([1.0, 2.0, 3.0, 4.0], 0.0)
        (1.5, 2.5)

    References:
        Rockafellar & Uryasev (2000), "Optimization of conditional value-at-risk".
    """
    a = _check_alpha(alpha)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError("cvar needs at least one value")
    p = _check_weights(weights, v.size)
    order = np.argsort(v, kind="stable")
    v, p = v[order], p[order]
    tail = 1.0 - a
    before = np.concatenate([[0.0], np.cumsum(p)[:-1]])
    take = np.clip(tail - before, 0.0, p)
    return float(take @ v / tail)


# --------------------------------------------------------------- the linear program
def flow_constraints(mdp: TabularMDP, initial: Any = None) -> tuple[sp.csr_matrix, np.ndarray]:
    """Bellman flow constraints ``M u = b`` of the occupancy measures of ``mdp``.

    Infinite horizon: ``u`` is ``(S*A,)`` (index ``s*A + a``) and
    ``sum_a u(s, a) - gamma sum_{s', a'} P(s | s', a') u(s', a') = d0(s)``.
    Finite horizon ``H``: ``u`` is ``(H*S*A,)`` (index ``(t*S + s)*A + a``),
    ``sum_a u_0(s, a) = d0(s)`` and ``sum_a u_{t+1}(s, a) = gamma sum P(s | s', a') u_t(s', a')``.
    Terminal states absorb the flow (their rows of the transitions are dropped).
    Together with ``u >= 0`` these describe exactly the occupancy measures
    of :func:`irl.planning.occupancy_measure`.

    Args:
        mdp: the MDP.
        initial: start distribution ``(S,)`` (default ``mdp.initial``).

    Returns:
        ``(M, b)``: sparse CSR ``(S, S*A)`` or ``(H*S, H*S*A)``, and the right-hand side.

    Example:
        >>> import irl
        >>> env = irl.envs.make("machine-replacement")
        >>> M, b = irl.robust.flow_constraints(env)
        >>> M.shape, float(b.sum())
        ((4, 8), 1.0)
    """
    S, A = mdp.n_states, mdp.n_actions
    d0 = mdp.initial if initial is None else np.asarray(initial, dtype=np.float64)
    if d0.shape != (S,):
        raise MDPValidationError(f"initial must have shape ({S},): got {d0.shape}")
    E = sp.kron(sp.identity(S, format="csr"), np.ones((1, A)), format="csr")  # (S, S*A): sum over actions
    push = (mdp.discount * mdp.continuation.T).tocsr()  # (S, S*A): discounted inflow
    if mdp.horizon is None:
        return (E - push).tocsr(), d0.copy()
    H = mdp.horizon
    shift = sp.eye(H, H, k=-1, format="csr")  # row t+1 <- column t
    M = sp.kron(sp.identity(H, format="csr"), E, format="csr") - sp.kron(shift, push, format="csr")
    b = np.zeros(H * S)
    b[:S] = d0
    return M.tocsr(), b


def _aggregate(mdp: TabularMDP, rs: RewardSamples) -> sp.csr_matrix | None:
    """``Q`` with ``y = Q^T u`` the quantities the samples' returns are linear in (``None``: ``y = u``)."""
    SA = mdp.n_states * mdp.n_actions
    H = mdp.horizon
    if rs.basis is None and H is None:
        return None
    stack = sp.identity(SA, format="csr") if H is None else sp.vstack([sp.identity(SA, format="csr")] * H)
    return (stack @ sp.csr_matrix(rs.basis)).tocsr() if rs.basis is not None else stack.tocsr()


def _solve_lp(mdp: TabularMDP, rs: RewardSamples, alpha: float, lam: float, baseline: np.ndarray | None,
              method: str = "auto") -> tuple[np.ndarray, dict[str, Any]]:
    """Solve the BROIL linear program; returns the occupancy ``u`` (flat) and LP facts."""
    t0 = time.perf_counter()
    M, b = flow_constraints(mdp)
    n_u = M.shape[1]
    N = len(rs)
    Q = _aggregate(mdp, rs)
    K = rs.coef  # (N, m)
    m = K.shape[1]
    n_y = 0 if Q is None else m
    robust = lam < 1.0
    n = n_u + n_y + (1 + N if robust else 0)
    c = np.zeros(n)
    ycols = slice(0, n_u) if Q is None else slice(n_u, n_u + m)
    c[ycols] = -lam * (rs.probs @ K)
    eq = [sp.hstack([M, sp.csr_matrix((M.shape[0], n - n_u))], format="csr")]
    beq = [b]
    if Q is not None:  # y - Q^T u = 0
        eq.append(sp.hstack([-Q.T, sp.identity(m), sp.csr_matrix((m, n - n_u - m))], format="csr"))
        beq.append(np.zeros(m))
    A_eq = sp.vstack(eq, format="csr")
    b_eq = np.concatenate(beq)
    A_ub = b_ub = None
    bounds = [(0, None)] * n_u + [(None, None)] * n_y
    if robust:
        s_col = n_u + n_y
        c[s_col] = -(1.0 - lam)
        c[s_col + 1:] = (1.0 - lam) / (1.0 - alpha) * rs.probs
        # sigma - z_i - K_i y <= -baseline_i
        left = sp.csr_matrix((N, ycols.start)) if ycols.start else None
        blocks = [sp.csr_matrix(-K), sp.csr_matrix(np.ones((N, 1))), -sp.identity(N, format="csr")]
        A_ub = sp.hstack(([left] if left is not None else []) + blocks, format="csr")
        b_ub = -(np.zeros(N) if baseline is None else baseline)
        bounds += [(None, None)] + [(0, None)] * N
    build = time.perf_counter() - t0
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method=method,
                  options={"primal_feasibility_tolerance": 1e-9, "dual_feasibility_tolerance": 1e-9})
    seconds = time.perf_counter() - t0
    if res.status == 3:
        raise ValueError(f"the robust planning problem is unbounded in {mdp.name!r}: with discount "
                         f"{mdp.discount} and no horizon, some policy collects unbounded reward under the samples "
                         f"(use discount < 1 or a finite horizon)")
    if res.status == 2:
        raise ValueError(f"no occupancy measure of {mdp.name!r} is finite: with discount {mdp.discount} and no "
                         f"horizon every policy must reach a terminal state (use discount < 1 or a finite horizon)")
    if res.status != 0:
        raise RuntimeError(f"the BROIL linear program was not solved (HiGHS status {res.status}: {res.message})")
    nnz = A_eq.nnz + (0 if A_ub is None else A_ub.nnz)
    info = {"solver": "linear program", "variables": n, "equality_constraints": A_eq.shape[0],
            "inequality_constraints": 0 if A_ub is None else A_ub.shape[0], "nonzeros": int(nnz),
            "build_seconds": build, "seconds": seconds, "status": res.message, "method": method,
            "objective": float(-res.fun)}
    return np.clip(res.x[:n_u], 0.0, None), info


def _deterministic_column(mdp: TabularMDP, rs: RewardSamples, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The optimal deterministic policy's occupancy for the reward ``sum_i weights_i r_i``, and its returns ``(N,)``."""
    q = planning.value_iteration(mdp, rs.mixture(weights)).q
    occ = planning.occupancy_measure(mdp, planning.greedy_policy(q))
    return occ, rs.returns(occ)


def _master(R: np.ndarray, p: np.ndarray, alpha: float, lam: float, b: np.ndarray) -> tuple[Any, np.ndarray]:
    """BROIL restricted to mixtures of the policies whose returns are the rows of ``R`` ``(J, N)``.

    Variables ``(w_1..w_J, sigma, z_1..z_N)``; returns HiGHS's result and the duals ``mu >= 0``
    of the CVaR rows ``sigma - z_i - sum_j R_ji w_j <= -b_i``.
    """
    J, N = R.shape
    c = np.concatenate([-lam * (R @ p), [-(1.0 - lam)], (1.0 - lam) / (1.0 - alpha) * p])
    A_eq = sp.csr_matrix(np.concatenate([np.ones(J), np.zeros(1 + N)])[None])
    A_ub = sp.hstack([sp.csr_matrix(-R.T), sp.csr_matrix(np.ones((N, 1))), -sp.identity(N, format="csr")],
                     format="csr")
    bounds = [(0, None)] * J + [(None, None)] + [(0, None)] * N
    res = linprog(c, A_ub=A_ub, b_ub=-b, A_eq=A_eq, b_eq=[1.0], bounds=bounds, method="highs",
                  options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10})
    if res.status != 0:
        raise RuntimeError(f"the BROIL master program was not solved (HiGHS status {res.status}: {res.message})")
    return res, np.clip(-res.ineqlin.marginals, 0.0, None)


def _solve_policies(mdp: TabularMDP, rs: RewardSamples, alpha: float, lam: float, baseline: np.ndarray | None,
                    ) -> tuple[np.ndarray, dict[str, Any]]:
    """BROIL by column generation over deterministic policies; returns the occupancy ``u`` (flat) and facts.

    The occupancy polytope is the convex hull of the deterministic policies' occupancies, so the
    program is a small linear program over mixtures of policies (:func:`_master`) plus a pricing
    step: the duals ``mu`` of the CVaR rows weigh the samples (``lam p_i + mu_i``, a distribution
    in CVaR's risk envelope), and the optimal policy for that weighted reward is the column of
    largest reduced cost. Lagrangian duality bounds the optimum by ``sum_i (lam p_i + mu_i) R_i(u*)
    - mu . b`` for that policy's occupancy ``u*``, so every round gives a certified gap; the loop
    stops when the gap is below ``POLICIES_TOL * max(1, |objective|)`` (finitely many deterministic
    policies: it terminates) and raises after ``POLICIES_MAX_ROUNDS`` rounds.
    """
    tol, max_rounds = POLICIES_TOL, POLICIES_MAX_ROUNDS
    t0 = time.perf_counter()
    p = rs.probs
    b = np.zeros(len(rs)) if baseline is None else baseline
    occ0, ret0 = _deterministic_column(mdp, rs, p)
    occs, rets = [occ0], [ret0]
    if lam >= 1.0:  # the mean-optimal policy is the optimum
        lower = upper = float(p @ ret0)
        weights, rounds = np.ones(1), 0
    else:
        for rounds in range(1, max_rounds + 1):
            res, mu = _master(np.stack(rets), p, alpha, lam, b)
            lower, weights = float(-res.fun), res.x[:len(rets)]
            mix = lam * p + mu
            occ, ret = _deterministic_column(mdp, rs, mix)
            upper = float(mix @ ret - mu @ b)
            if upper - lower <= tol * max(1.0, abs(lower)):
                break
            occs.append(occ)
            rets.append(ret)
        else:
            raise planning.ConvergenceError(
                f"BROIL by column generation did not reach its tolerance in {max_rounds} rounds: the optimum lies in "
                f"[{lower:.10g}, {upper:.10g}]; use method='highs' (the whole linear program) instead")
    keep = weights > 0
    u = np.tensordot(weights[keep], np.stack(occs)[keep], axes=1)
    seconds = time.perf_counter() - t0
    info = {"solver": "column generation", "method": "policies", "rounds": rounds, "policies": int(keep.sum()),
            "columns": len(occs), "gap": max(0.0, upper - lower), "build_seconds": 0.0, "seconds": seconds,
            "status": "optimal within the gap", "objective": lower}
    return np.clip(u.reshape(-1), 0.0, None), info


def _choose_method(mdp: TabularMDP, method: str) -> str:
    """``method`` of :func:`broil`, with ``"auto"`` resolved by the program's size."""
    bounded = mdp.horizon is not None or mdp.discount < 1.0
    if method == "policies" and not bounded:
        raise ValueError(f"method='policies' needs a discount below 1 or a finite horizon ({mdp.name!r} has discount "
                         f"{mdp.discount} and no horizon); use method='highs'")
    if method != "auto":
        return method
    n_u = mdp.n_states * mdp.n_actions * (mdp.horizon or 1)
    if bounded and n_u > POLICIES_ABOVE:
        return "policies"
    return "highs-ipm" if n_u > IPM_ABOVE else "highs"


# ------------------------------------------------------------------------ results
@dataclass(frozen=True, eq=False)
class RobustPlan:
    """A policy planned over a reward posterior, with its return distribution.

    Usable wherever a policy array is expected (``np.asarray(plan)`` is :attr:`policy`).

    Attributes:
        policy: action probabilities ``(H, S, A)`` (finite horizon) or ``(S, A)``; in
            deferred states this is the fallback's behaviour (``fallback="ask"``: the
            planner's own proposal, to be confirmed by asking).
        occupancy: the policy's occupancy measure, shape of ``policy``.
        objective: ``"mean"``, ``"map"`` or ``"cvar"``.
        alpha: CVaR level used for :attr:`cvar`.
        lam: weight of the expected return (``objective="cvar"``), else ``None``.
        expected_return: posterior-expected return ``sum_i p_i R_i``.
        cvar: ``CVaR_alpha`` of ``return - baseline`` over the posterior.
        returns: ``(N,)`` return under each reward sample.
        baseline_returns: ``(N,)`` the baseline's return under each sample, or ``None``.
        probs: ``(N,)`` sample probabilities.
        defer: boolean mask ``(H, S)`` or ``(S,)`` of the states where the policy
            defers, or ``None`` (no ``defer=`` given).
        p_optimal: posterior probability that the planned action is optimal,
            ``(H, S)`` or ``(S,)``, or ``None``.
        lp: facts about the solver (method, objective, seconds; variables,
            constraints, nonzeros and HiGHS status for the whole program; rounds,
            policies and the certified gap for column generation), empty for
            ``"mean"``/``"map"``.
    """

    policy: np.ndarray
    occupancy: np.ndarray
    objective: str
    alpha: float
    lam: float | None
    expected_return: float
    cvar: float
    returns: np.ndarray
    baseline_returns: np.ndarray | None
    probs: np.ndarray
    defer: np.ndarray | None = None
    p_optimal: np.ndarray | None = None
    lp: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("policy", "occupancy", "returns", "baseline_returns", "probs", "defer", "p_optimal"):
            a = getattr(self, name)
            if a is not None:
                a = np.array(a, copy=True)
                a.setflags(write=False)
                object.__setattr__(self, name, a)
        if self.occupancy.shape != self.policy.shape:
            raise ValueError(f"occupancy {self.occupancy.shape} and policy {self.policy.shape} must have one shape")
        if self.returns.shape != self.probs.shape:
            raise ValueError(f"returns {self.returns.shape} and probs {self.probs.shape} must have one shape")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.array(self.policy, dtype=dtype, copy=True)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of :attr:`policy`."""
        return self.policy.shape

    @property
    def deferral_rate(self) -> float:
        """Share of the (discounted) state visits that fall in deferred states (0 without ``defer``)."""
        if self.defer is None:
            return 0.0
        d = self.occupancy.sum(axis=-1)
        return float(d[self.defer].sum() / d.sum()) if d.sum() > 0 else 0.0

    def __repr__(self) -> str:
        lam = "" if self.lam is None else f", lam={self.lam:g}"
        deferred = "" if self.defer is None else f", deferred visits={self.deferral_rate:.3f}"
        return (f"RobustPlan(objective={self.objective!r}, alpha={self.alpha:g}{lam}, "
                f"expected_return={self.expected_return:.6g}, cvar={self.cvar:.6g}, samples={self.returns.size}"
                f"{deferred})")


# ------------------------------------------------------------------- policies
def _policy_from_occupancy(mdp: TabularMDP, occ: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """``pi(a|s) = u(s, a) / sum_a u(s, a)``; states the policy never reaches take ``fill``'s rows."""
    mass = occ.sum(axis=-1, keepdims=True)
    reached = mass > 1e-12 * max(1.0, float(occ.sum()))
    with np.errstate(invalid="ignore", divide="ignore"):
        pi = np.where(reached, occ / np.where(reached, mass, 1.0), np.broadcast_to(fill, occ.shape))
    return pi / pi.sum(axis=-1, keepdims=True)


def broil(env: TabularMDP, samples: Any, *, alpha: float = 0.95, lam: float = 0.0, baseline: Any = None,
          weights: Any = None, method: str = "auto") -> RobustPlan:
    """Bayesian robust optimisation (BROIL) over a reward posterior, as one linear program.

    Maximises ``lam * E[R(u)] + (1 - lam) * CVaR_alpha(R(u) - R(u_E))`` over occupancy
    measures ``u`` of ``env`` (``R_i(u) = sum u * r_i``), with the CVaR in its
    Rockafellar-Uryasev form: one free variable ``sigma`` and one slack
    ``z_i >= sigma - (R_i(u) - b_i), z_i >= 0`` per sample. The Bellman flow
    constraints are a sparse matrix built from the MDP's transitions
    (:func:`flow_constraints`); linear rewards enter through their feature
    expectations, so a sample adds ``F`` nonzeros rather than ``S*A``. Solved with
    HiGHS (``scipy.optimize.linprog(method="highs")``). The optimum is in general a
    stochastic policy.

    Args:
        env: the MDP (discounted, or finite horizon: a time-indexed program).
        samples: an :class:`irl.Posterior`, rewards ``(N, S)``/``(N, S, A)``, or :class:`RewardSamples`.
        alpha: CVaR level in ``[0, 1)`` (0.95: the worst 5% of the posterior).
        lam: weight of the expected return in ``[0, 1]`` (1: the mean-optimal policy,
            0: fully robust).
        baseline: ``None`` (robust return), :class:`demos.Trajectories` (robust regret
            against the demonstrator's empirical occupancy, see
            :func:`demonstration_occupancy`), or an occupancy array ``([H,] S, A)``.
        weights: ``(N,)`` sample weights (arrays only; default equal).
        method: ``"policies"``: column generation over deterministic policies (a
            small linear program over mixtures of policies, and one value iteration per
            round for the policy the duals price best; it stops at a certified gap of
            :data:`POLICIES_TOL` relative, reported as ``lp["gap"]``; needs a discount
            below 1 or a horizon). Or HiGHS on the whole program: ``"highs"`` (its
            default choice), ``"highs-ds"`` (dual simplex), ``"highs-ipm"`` (interior
            point). ``"auto"`` (default): ``"policies"`` above :data:`POLICIES_ABOVE`
            occupancy variables when it applies, else ``"highs"``, or interior point
            above :data:`IPM_ABOVE` (measured in ``benchmarks/bench_broil.py``: with
            1000 tabular reward samples, 10^3 states took 0.77 s by column generation
            and 32 s by HiGHS).

    Returns:
        :class:`RobustPlan` with the policy, its occupancy (the LP solution), the
        expected return, the CVaR of ``return - baseline`` and the solver's facts
        (``lp``: method, objective, seconds; the program's size for HiGHS, rounds and
        gap for column generation).

    Raises:
        ValueError: ``alpha`` or ``lam`` out of range, bad samples or baseline, or an
            unbounded problem (discount 1 without a horizon).

    Example:
        >>> import numpy as np, irl
        >>> env = irl.envs.make("machine-replacement")
        >>> samples = irl.envs.broil.machine_replacement_samples(500, seed=0)
        >>> res = irl.robust.broil(env, samples, alpha=0.99, lam=0.0)
        >>> bool(res.cvar >= irl.robust.broil(env, samples, alpha=0.99, lam=1.0).cvar - 1e-9)
        True

    References:
        Brown, Niekum & Petrik (2020), "Bayesian Robust Optimization for Imitation
        Learning", NeurIPS. Rockafellar & Uryasev (2000). Dantzig & Wolfe (1960),
        "Decomposition principle for linear programs", Operations Research (column
        generation).
    """
    a, lm = _check_alpha(alpha), _check_lam(lam)
    if method not in LP_METHODS:
        raise ValueError(f"method must be one of {', '.join(LP_METHODS)}: got {method!r}")
    rs = reward_samples(env, samples, weights=weights)
    base_occ = _baseline_occupancy(env, baseline)
    base = None if base_occ is None else rs.returns(base_occ)
    method = _choose_method(env, method)
    if method == "policies":
        u, info = _solve_policies(env, rs, a, lm, base)
    else:
        u, info = _solve_lp(env, rs, a, lm, base, method)
    shape = ((env.horizon,) if env.horizon is not None else ()) + (env.n_states, env.n_actions)
    occ = u.reshape(shape)
    fill = planning.value_iteration(env, rs.mean()).policy
    policy = _policy_from_occupancy(env, occ, fill)
    return _result(env, rs, policy, occ, "cvar", a, lm, base, info)


def _result(env: TabularMDP, rs: RewardSamples, policy: np.ndarray, occ: np.ndarray, objective: str, alpha: float,
            lam: float | None, base: np.ndarray | None, info: dict[str, Any]) -> RobustPlan:
    ret = rs.returns(occ)
    diff = ret if base is None else ret - base
    return RobustPlan(policy=policy, occupancy=occ, objective=objective, alpha=alpha, lam=lam,
                      expected_return=float(rs.probs @ ret), cvar=cvar(diff, alpha, rs.probs), returns=ret,
                      baseline_returns=base, probs=rs.probs, lp=info)


# ---------------------------------------------------------- demonstrations
def demonstration_occupancy(env: TabularMDP, demonstrations: Any) -> np.ndarray:
    """Empirical occupancy of demonstrations, in the planner's convention.

    ``D[t, s, a] = (1/n) sum_episodes gamma^t 1[s_t = s, a_t = a]`` (finite horizon,
    ``(H, S, A)``) or summed over ``t`` (``(S, A)``). An episode that ends in a
    terminal state with steps left visits it once more (``gamma^T``, spread evenly
    over actions: the planner pays ``r(s, a)`` there once).

    Args:
        env: the MDP.
        demonstrations: :class:`demos.Trajectories`.

    Returns:
        The occupancy, shape of :func:`irl.planning.occupancy_measure`.

    Example:
        >>> import irl, human_models as hm, demos
        >>> env = irl.envs.make("gridworld-5x5")
        >>> data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=5, seed=0)
        >>> round(float(irl.robust.demonstration_occupancy(env, data).sum()), 6) == env.horizon
        True
    """
    if not hasattr(demonstrations, "step_index") or not hasattr(demonstrations, "lengths"):
        raise ValueError(f"demonstrations must be demos.Trajectories: got {type(demonstrations).__name__}")
    S, A, H = env.n_states, env.n_actions, env.horizon
    demonstrations.validate(S, A, horizon=H)
    n = len(demonstrations)
    if n == 0:
        raise ValueError("demonstrations are empty: no episode to take an occupancy from")
    t, s = (np.asarray(x) for x in demonstrations.step_index)
    a = np.asarray(demonstrations.actions)
    g = env.discount ** t.astype(np.float64)
    T = H if H is not None else 1
    tt = t if H is not None else np.zeros_like(t)
    occ = np.bincount((tt * S + s) * A + a, weights=g, minlength=T * S * A).reshape(T, S, A)
    lengths = np.asarray(demonstrations.lengths)
    final = np.asarray(demonstrations.final_states)
    ends = env.terminal[final] & (lengths < H if H is not None else True)
    if ends.any():
        tl = lengths[ends] if H is not None else np.zeros(int(ends.sum()), np.int64)
        w = env.discount ** lengths[ends].astype(np.float64) / A
        flat = np.repeat(tl * S + final[ends], A) * A + np.tile(np.arange(A), int(ends.sum()))
        occ += np.bincount(flat, weights=np.repeat(w, A), minlength=T * S * A).reshape(T, S, A)
    occ /= n
    return occ if H is not None else occ[0]


def demonstration_policy(env: TabularMDP, demonstrations: Any) -> tuple[np.ndarray, np.ndarray]:
    """The demonstrator's empirical action frequencies per state, and where it has any.

    Returns:
        ``(policy, seen)``: ``(S, A)`` frequencies (uniform where unseen) and the
        boolean mask ``(S,)`` of the states the demonstrations visit.
    """
    counts = demonstrations.counts(env.n_states, env.n_actions)
    seen = counts.sum(axis=1) > 0
    pol = np.where(seen[:, None], counts / np.maximum(counts.sum(axis=1, keepdims=True), 1), 1.0 / env.n_actions)
    return pol, seen


def _baseline_occupancy(env: TabularMDP, baseline: Any) -> np.ndarray | None:
    if baseline is None:
        return None
    if isinstance(baseline, str):
        raise ValueError(f"baseline must be None, demonstrations (demos.Trajectories) or an occupancy array: got "
                         f"{baseline!r} (baseline='demonstrations' needs a posterior fitted to demonstrations in "
                         f"this session; otherwise pass the demonstrations themselves)")
    if hasattr(baseline, "step_index"):
        return demonstration_occupancy(env, baseline)
    occ = np.asarray(baseline, dtype=np.float64)
    shape = ((env.horizon,) if env.horizon is not None else ()) + (env.n_states, env.n_actions)
    if occ.shape != shape:
        raise ValueError(f"a baseline occupancy must have shape {shape} for environment {env.name!r}: got {occ.shape}")
    if not np.all(np.isfinite(occ)) or np.any(occ < 0):
        raise ValueError("a baseline occupancy must be finite and >= 0")
    return occ


def _fitted_demonstrations(samples: Any) -> Any:
    """The demonstrations a posterior was fitted to in this session, else ``None``."""
    joint = getattr(samples, "joint", None)
    if joint is None:
        return None
    for ev in joint.evidence:
        if hasattr(ev.observation, "step_index"):
            return ev.observation
    return None


# ------------------------------------------------------------------ deferring
def prob_optimal(env: TabularMDP, samples: Any, policy: Any, *, weights: Any = None, tol: float = 1e-9
                 ) -> np.ndarray:
    """Posterior probability that the policy's action is optimal, per state (and time).

    ``P(s) = sum_i p_i sum_a pi(a|s) 1[a is optimal in s under r_i]``, with the
    optimal actions of every sample from one batched value iteration (chunks of
    samples; ties within ``tol`` relative count as optimal).

    Args:
        env: the MDP.
        samples: posterior, reward array or :class:`RewardSamples`.
        policy: ``([H,] S, A)`` action probabilities.
        weights: sample weights for arrays.
        tol: relative tolerance under which two Q-values tie.

    Returns:
        ``(H, S)`` for a finite horizon, ``(S,)`` otherwise.

    Example:
        >>> import numpy as np, irl
        >>> env = irl.envs.make("machine-replacement")
        >>> samples = irl.envs.broil.machine_replacement_samples(200, seed=0)
        >>> p = irl.robust.prob_optimal(env, samples, irl.plan(env, samples, objective="mean"))
        >>> p.shape, bool(((0 <= p) & (p <= 1)).all())
        ((4,), True)
    """
    rs = reward_samples(env, samples, weights=weights)
    pi = np.asarray(policy, dtype=np.float64)
    S, A, H = env.n_states, env.n_actions, env.horizon
    if H is not None and pi.shape == (S, A):
        pi = np.broadcast_to(pi, (H, S, A))
    per = (H or 1) * S * A * 8
    step = max(1, _CHUNK_BYTES // per)
    out = np.zeros(pi.shape[:-1])
    for lo in range(0, len(rs), step):
        q = planning.value_iteration(env, rs.rewards(slice(lo, lo + step))).q
        top = q.max(axis=-1, keepdims=True)
        best = q >= top - tol * (1.0 + np.abs(top))
        out += np.einsum("n,n...a,...a->...", rs.probs[lo:lo + step], best.astype(np.float64), pi)
    return np.clip(out, 0.0, 1.0)


def _apply_defer(env: TabularMDP, policy: np.ndarray, p_opt: np.ndarray, threshold: float, fallback: Any,
                 demonstrations: Any) -> tuple[np.ndarray, np.ndarray]:
    mask = p_opt < threshold
    if isinstance(fallback, str) and fallback == "ask":
        return policy, mask
    if hasattr(fallback, "step_index"):  # the demonstrations themselves
        fallback, demonstrations = "demonstrations", fallback
    if isinstance(fallback, str) and fallback == "demonstrations":
        if demonstrations is None:
            raise ValueError("fallback='demonstrations' needs the demonstrations: fit the posterior to them in this "
                             "session or pass baseline=demonstrations")
        fb, seen = demonstration_policy(env, demonstrations)
        seen_mask = np.broadcast_to(seen, mask.shape)
    elif isinstance(fallback, str):
        raise ValueError(f"fallback must be 'ask', 'demonstrations' or a policy array: got {fallback!r}")
    else:
        fb = np.asarray(fallback, dtype=np.float64)
        if fb.shape not in (policy.shape, policy.shape[-2:]):
            raise ValueError(f"a fallback policy must have shape {policy.shape} or {policy.shape[-2:]}: got {fb.shape}")
        seen_mask = np.ones(mask.shape, bool)
    fb = np.broadcast_to(fb, policy.shape)
    use = mask & seen_mask
    return np.where(use[..., None], fb, policy), mask


# ------------------------------------------------------------------- planning
def plan_posterior(env: TabularMDP, samples: Any, *, objective: str = "mean", alpha: float | None = None,
                   lam: float | None = None, baseline: Any = None, weights: Any = None, defer: float | None = None,
                   fallback: Any = "ask", reward_model: Any = None, draws: int | None = None,
                   method: str | None = None) -> RobustPlan:
    """Plan over a reward posterior (the work behind ``irl.plan(env, posterior, objective=...)``).

    Args:
        env: the MDP to act in.
        samples: an :class:`irl.Posterior`, reward samples ``(N, S)``/``(N, S, A)``,
            or :class:`RewardSamples`.
        objective: ``"mean"`` (maximise the posterior-expected return: the optimal
            policy of the mean reward), ``"map"`` (optimal for the draw with the
            highest posterior density; needs a posterior with ``log_density``) or
            ``"cvar"`` (:func:`broil`).
        alpha: CVaR level in ``[0, 1)`` (default 0.95); also the level reported for
            ``"mean"`` and ``"map"``.
        lam: for ``"cvar"``: weight of the expected return in ``[0, 1]`` (default 0).
        baseline: ``None``, ``"demonstrations"`` (those the posterior was fitted to),
            :class:`demos.Trajectories` or an occupancy array: the CVaR is then of the
            regret against it (``"cvar"``) or reported against it (other objectives).
        weights: ``(N,)`` sample weights for arrays.
        defer: threshold in ``[0, 1]``: the policy defers in the states where the
            posterior probability that its action is optimal is below it.
        fallback: what a deferring policy does: ``"ask"`` (keep the proposal and mark
            the state in :attr:`RobustPlan.defer`), ``"demonstrations"`` (the
            demonstrator's action frequencies where it was seen: those the posterior
            was fitted to, or the ``baseline`` demonstrations), demonstrations
            (:class:`demos.Trajectories`) or a policy array.
        reward_model: maps a posterior's ``theta`` to rewards (see :func:`reward_samples`).
        draws: use at most this many posterior draws.
        method: for ``"cvar"``: how :func:`broil` solves the program (default
            ``"auto"``; ``"policies"``: column generation, ``"highs"``: the whole
            linear program; see :data:`LP_METHODS`).

    Returns:
        :class:`RobustPlan`.

    Raises:
        ValueError: unknown objective, ``alpha``/``lam``/``defer`` out of range, bad
            samples, or ``"map"`` without log densities.

    Example:
        >>> import irl
        >>> env = irl.envs.make("machine-replacement")
        >>> samples = irl.envs.broil.machine_replacement_samples(300, seed=0)
        >>> mean = irl.plan(env, samples, objective="mean")
        >>> robust = irl.plan(env, samples, objective="cvar", alpha=0.99, lam=0.0)
        >>> bool(robust.cvar > mean.cvar and mean.expected_return >= robust.expected_return)
        True

    References:
        Brown, Niekum & Petrik (2020), "Bayesian Robust Optimization for Imitation
        Learning", NeurIPS. Ramachandran & Amir (2007) for the mean reward as the
        Bayes-optimal point estimate.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown planning objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    a = 0.95 if alpha is None else _check_alpha(alpha)
    for name, value in (("lam", lam), ("method", method)):
        if value is not None and objective != "cvar":
            raise ValueError(f"{name} only applies to objective='cvar': got objective={objective!r}")
    if defer is not None:
        defer = _number("defer", defer)
        if not 0.0 <= defer <= 1.0:
            raise ValueError(f"defer is a probability threshold and must lie in [0, 1]: got {defer}")
    demos_fit = _fitted_demonstrations(samples)
    if isinstance(baseline, str) and baseline == "demonstrations":
        if demos_fit is None:
            raise ValueError("baseline='demonstrations' needs a posterior fitted to demonstrations in this session; "
                             "otherwise pass the demonstrations (demos.Trajectories) as baseline=")
        baseline = demos_fit
    demonstrations = baseline if hasattr(baseline, "step_index") else demos_fit
    rs = reward_samples(env, samples, weights=weights, reward_model=reward_model, draws=draws)
    if objective == "cvar":
        res = broil(env, rs, alpha=a, lam=0.0 if lam is None else lam, baseline=baseline,
                    method="auto" if method is None else method)
    else:
        if objective == "mean":
            reward = rs.mean()
        else:
            if rs.log_density is None:
                raise ValueError("objective='map' needs an irl.Posterior with log_density (the draws' log posterior "
                                 "density); for reward arrays use objective='mean' or 'cvar'")
            reward = rs.rewards(int(np.argmax(rs.log_density)))[0]
        policy = planning.value_iteration(env, reward).policy
        occ = planning.occupancy_measure(env, policy)
        base_occ = _baseline_occupancy(env, baseline)
        res = _result(env, rs, policy, occ, objective, a, None,
                      None if base_occ is None else rs.returns(base_occ), {})
    if defer is None:
        return res
    p_opt = prob_optimal(env, rs, res.policy)
    policy, mask = _apply_defer(env, res.policy, p_opt, defer, fallback, demonstrations)
    occ = planning.occupancy_measure(env, policy) if policy is not res.policy else res.occupancy
    out = _result(env, rs, policy, occ, res.objective, a, res.lam, res.baseline_returns, res.lp)
    return RobustPlan(**{**{f: getattr(out, f) for f in out.__dataclass_fields__}, "defer": mask, "p_optimal": p_opt})


# ------------------------------------------------------------------ evaluation
def deferral_report(env: TabularMDP, policy: Any, defer: Any, true_reward: Any) -> dict[str, float]:
    """Judge a deferring policy under a true reward.

    By the performance-difference identity the regret ``V*(d0) - V^pi(d0)`` is
    ``sum_s d_pi(s) (V*(s) - sum_a pi(a|s) Q*(s, a))`` (per ``(t, s)`` for a finite
    horizon, ``d_pi`` the policy's discounted state occupancy): a sum of per-state
    losses. The report splits it into the states where the policy defers and the
    rest, whose part is the regret of the decisions the policy takes itself.

    Args:
        env: the MDP.
        policy: ``([H,] S, A)`` the behaviour that is executed (deferred states included).
        defer: boolean mask ``([H,] S)`` of the deferred states (a stationary ``(S,)``
            mask is broadcast over time).
        true_reward: ``(S,)`` or ``(S, A)``.

    Returns:
        ``{"deferred_visits", "regret_autonomous", "regret_deferred", "regret"}``:
        the share of discounted visits in deferred states and the regret split.

    Example:
        >>> import numpy as np, irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> pi = irl.plan(env, env.true_reward)
        >>> rep = irl.robust.deferral_report(env, pi, np.zeros(env.n_states, bool), env.true_reward)
        >>> rep["deferred_visits"], abs(rep["regret"]) < 1e-9
        (0.0, True)
    """
    S, A, H = env.n_states, env.n_actions, env.horizon
    pi = np.asarray(policy, dtype=np.float64)
    if H is not None and pi.shape == (S, A):
        pi = np.broadcast_to(pi, (H, S, A))
    mask = np.asarray(defer, dtype=bool)
    if mask.shape not in (pi.shape[:-1], (S,)):
        raise ValueError(f"defer must be a boolean mask of shape {pi.shape[:-1]} or ({S},): got {mask.shape}")
    mask = np.broadcast_to(mask, pi.shape[:-1])
    r = state_action_reward(np.asarray(true_reward, dtype=np.float64), S, A)
    opt = planning.value_iteration(env, r)
    v = opt.v[:-1] if H is not None else opt.v  # V*_t for t < H
    gap = v - (pi * opt.q).sum(axis=-1)
    d = planning.occupancy_measure(env, pi).sum(axis=-1)
    loss = d * np.maximum(gap, 0.0)
    total = d.sum()
    return {"deferred_visits": float(d[mask].sum() / total) if total > 0 else 0.0,
            "regret_autonomous": float(loss[~mask].sum()), "regret_deferred": float(loss[mask].sum()),
            "regret": float(loss.sum())}
