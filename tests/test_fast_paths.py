"""The fast paths of irl.planning / irl.autodiff against a straightforward dense reference.

The planner runs on sparse action-major matrices through scipy's compiled
kernels, folds the discount into the matrix, computes the log-policy inside the
sweep, solves infinite-horizon problems by value iteration *or* Newton's method
(soft policy iteration / policy iteration) with sparse-LU, BiCGSTAB or
fixed-point linear solves, and can run in float32. Every one of these paths is
checked here on small random MDPs (finite and infinite horizon, with terminal
states, batched over reward hypotheses) against a reference written in this file
with plain numpy loops over dense ``T[s, a, s']``:

* values, Q-values and policies: backward induction / value iteration iterated
  to machine precision;
* occupancies and policy values: the forward recursion / the power series;
* reward gradients: forward-mode derivatives (the tangent recursion, one unit
  reward perturbation at a time), independent of the planner's reverse-mode
  adjoint.

The sweeps run on the backend :func:`irl.planning.backend` reports (the
compiled numba kernels when numba is installed); the section "backends" checks
that the numpy path, the reference implementation of the kernels, gives the
same numbers to 1e-12 on every pass and option, and that it is what runs
without numba.

Tolerances: 1e-10 (float64) and 1e-4 (float32), relative to ``max(1, |reference|)``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import irl
from irl import planning as P
from irl.planning import core as P_core, linear as P_linear, values as P_values
from irl.autodiff import q_values, soft_log_policy
from irl.mdp import MDPValidationError

S, A, H = 7, 3, 5
TOL = {np.float64: 1e-10, np.float32: 1e-4}


# ------------------------------------------------------------------ problems
def random_mdp(seed: int, *, horizon: int | None, discount: float, terminals: int = 0,
               leak: float = 0.0) -> tuple[irl.TabularMDP, np.ndarray, np.ndarray]:
    """Random dense ``T`` with exact zeros, ``terminals`` terminal states, optional leak into state 0.

    With ``leak > 0`` every (s, a) reaches terminal state 0 with at least that
    probability, so that every policy terminates (needed at discount 1, no horizon).
    """
    rng = np.random.default_rng(seed)
    T = rng.dirichlet(np.ones(S), size=(S, A))
    T = np.where(rng.random(T.shape) < 0.4, 0.0, T)
    T[np.arange(S)[:, None], np.arange(A)[None, :], rng.integers(0, S, (S, A))] += 0.1
    T /= T.sum(-1, keepdims=True)
    if leak:
        T = (1 - leak) * T
        T[:, :, 0] += leak
    term = np.zeros(S, bool)
    term[:terminals] = True
    mdp = irl.TabularMDP.from_arrays(T, initial=rng.dirichlet(np.ones(S)), horizon=horizon, discount=discount,
                                     terminal=term)
    return mdp, T, term


def rewards(seed: int, B: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed + 99)
    return rng.normal(size=(S, A) if B is None else (B, S, A))


# finite: discount 1 with terminals, discounted without; infinite: discounted (fast / slow contraction),
# discounted with terminals, and episodic (discount 1, every policy terminates)
SETTINGS = {
    "finite": dict(horizon=H, discount=1.0, terminals=2),
    "finite-discounted": dict(horizon=H, discount=0.9),
    "infinite-0.8": dict(horizon=None, discount=0.8),
    "infinite-0.99-terminal": dict(horizon=None, discount=0.99, terminals=1),
    "episodic": dict(horizon=None, discount=1.0, terminals=1, leak=0.2),
}


# ----------------------------------------------------------------- reference
def _cont(T: np.ndarray, term: np.ndarray) -> np.ndarray:
    """Dense continuation: transitions with terminal rows zeroed."""
    return T * (~term)[:, None, None]


def _sweeps(gamma: float) -> int:
    """Sweeps after which gamma^n (or the leaky episodic contraction) is far below rounding."""
    return 4000 if gamma >= 1.0 else int(np.ceil(np.log(1e-18) / np.log(gamma))) + 10


def ref_plan(mdp: irl.TabularMDP, T: np.ndarray, term: np.ndarray, r: np.ndarray, *, soft: bool, beta: float = 1.0
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q, v, pi) by backward induction (finite) or value iteration to machine precision (infinite)."""
    C, g = _cont(T, term), mdp.discount

    def backup(v_next: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = r + g * np.einsum("sap,p->sa", C, v_next)
        v = np.empty(S)
        pi = np.zeros((S, A))
        for s in range(S):
            m = q[s].max()
            if soft:
                z = np.exp(beta * (q[s] - m)).sum()
                v[s] = m + np.log(z) / beta
                pi[s] = np.exp(beta * (q[s] - v[s]))
            else:
                v[s] = m
                best = np.flatnonzero(q[s] >= m - 1e-12 * (1 + abs(m)))
                pi[s, best] = 1.0 / best.size
        return q, v, pi

    if mdp.horizon is not None:
        qs, vs, ps = np.empty((H, S, A)), np.zeros((H + 1, S)), np.empty((H, S, A))
        for t in range(H - 1, -1, -1):
            qs[t], vs[t], ps[t] = backup(vs[t + 1])
        return qs, vs, ps
    v = np.zeros(S)
    for _ in range(_sweeps(g)):
        q, v_new, pi = backup(v)
        done = np.array_equal(v_new, v)
        v = v_new
        if done:
            break
    return backup(v)


def ref_occupancy(mdp: irl.TabularMDP, T: np.ndarray, term: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """Forward recursion (finite) or the power series sum_t gamma^t P(s_t, a_t) (infinite)."""
    C, g = _cont(T, term), mdp.discount
    d = np.array(mdp.initial)
    if mdp.horizon is not None:
        D = np.empty((H, S, A))
        for t in range(H):
            D[t] = pi[t] * d[:, None]
            d = g * np.einsum("sa,sap->p", D[t], C)
        return D
    D = np.zeros((S, A))
    for _ in range(_sweeps(g)):
        step = pi * d[:, None]
        D += step
        d = g * np.einsum("sa,sap->p", step, C)
        if d.sum() < 1e-300:
            break
    return D


def ref_policy_values(mdp: irl.TabularMDP, T: np.ndarray, term: np.ndarray, r: np.ndarray, pi: np.ndarray
                      ) -> np.ndarray:
    C, g = _cont(T, term), mdp.discount
    if mdp.horizon is not None:
        v = np.zeros((H + 1, S))
        for t in range(H - 1, -1, -1):
            v[t] = (pi[t] * (r + g * C @ v[t + 1])).sum(-1)
        return v
    v = np.zeros(S)
    for _ in range(_sweeps(g)):
        v_new = (pi * (r + g * C @ v)).sum(-1)
        if np.array_equal(v_new, v):
            break
        v = v_new
    return v


def ref_reward_jacobian(mdp: irl.TabularMDP, T: np.ndarray, term: np.ndarray, pi: np.ndarray, *, log_policy: bool
                        ) -> np.ndarray:
    """Forward-mode derivative of Q (or of log pi) w.r.t. each r[s, a]: ``J[s, a] = dX / dr[s, a]``.

    Tangent recursion ``dQ = dr + gamma C dV'``, ``dV = sum_a pi dQ`` (``dV/dQ = pi``
    for the soft and the tie-free hard backup); ``d log pi = dQ - dV``.
    """
    C, g = _cont(T, term), mdp.discount
    shape = (H, S, A) if mdp.horizon is not None else (S, A)
    J = np.zeros((S, A) + shape)
    for s in range(S):
        for a in range(A):
            dr = np.zeros((S, A))
            dr[s, a] = 1.0
            if mdp.horizon is not None:
                dq, dv = np.empty((H, S, A)), np.zeros((H + 1, S))
                for t in range(H - 1, -1, -1):
                    dq[t] = dr + g * C @ dv[t + 1]
                    dv[t] = (pi[t] * dq[t]).sum(-1)
                J[s, a] = dq - dv[:H, :, None] if log_policy else dq
            else:
                dv = np.zeros(S)
                for _ in range(_sweeps(g)):
                    dq = dr + g * C @ dv
                    dv_new = (pi * dq).sum(-1)
                    if np.array_equal(dv_new, dv):
                        break
                    dv = dv_new
                dq = dr + g * C @ dv
                J[s, a] = dq - (pi * dq).sum(-1)[:, None] if log_policy else dq
    return J


def contract(J: np.ndarray, bar: np.ndarray) -> np.ndarray:
    """``sum_x J[s, a, x] bar[x]``: a reward gradient from the Jacobian."""
    return np.tensordot(J, bar, axes=bar.ndim)


def close(got: np.ndarray, want: np.ndarray, dtype=np.float64) -> None:
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == want.shape
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    assert err.max() <= TOL[dtype], f"max relative error {err.max():.3g} > {TOL[dtype]:g}"


# ------------------------------------------------------- solver path fixtures
def force_method(monkeypatch, method: str) -> None:
    """Infinite horizon: value iteration only, or Newton's method after a single sweep."""
    monkeypatch.setattr(P_values, "_VI_SWEEPS", 10**9 if method == "value-iteration" else 1)


# every setting; the infinite ones with each method
PLAN_CASES = [(s, "backward-induction") for s in SETTINGS if SETTINGS[s]["horizon"] is not None] + [
    (s, m) for s in SETTINGS if SETTINGS[s]["horizon"] is None for m in ("value-iteration", "newton")]


LINEAR_SOLVERS = ["lu", "bicgstab", "bicgstab-then-lu", "fixed-point"]


@pytest.fixture(params=LINEAR_SOLVERS)
def linear_solver(request, monkeypatch):
    """Force each route of the policy linear solves (see planning._policy_solve)."""
    mode = request.param
    if mode == "lu":
        monkeypatch.setattr(P_linear, "_LU_CHEAP", np.inf)
    else:
        monkeypatch.setattr(P_linear, "_LU_CHEAP", -1.0)
        monkeypatch.setattr(P_linear, "_LU_AFFORDABLE", np.inf if mode == "bicgstab-then-lu" else -1.0)
    if mode == "bicgstab-then-lu":
        monkeypatch.setattr(P_linear, "_KRYLOV_FIRST", 1)
    if mode == "fixed-point":
        monkeypatch.setattr(P_linear, "_bicgstab", lambda op, b, x0, rtol, maxiter: (np.array(x0, float),
                                                                             np.zeros(b.shape[1], bool)))
    calls = {"direct": 0}
    direct = P_linear._direct

    def counting(*args, **kwargs):
        calls["direct"] += 1
        return direct(*args, **kwargs)

    monkeypatch.setattr(P_linear, "_direct", counting)
    return mode, calls


# ------------------------------------------------------------------ planning
@pytest.mark.parametrize("setting, method", PLAN_CASES)
@pytest.mark.parametrize("soft", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_value_iteration_matches_reference(setting, method, soft, dtype, monkeypatch):
    force_method(monkeypatch, method)
    mdp, T, term = random_mdp(1, **SETTINGS[setting])
    R = rewards(2, B=3)
    beta = 1.7 if soft else 1.0
    kw = dict(beta=beta) if soft else {}
    fn = P.soft_value_iteration if soft else P.value_iteration
    res = fn(mdp, R, tol=1e-13, dtype=dtype, **kw)
    assert res.q.dtype == res.v.dtype == res.policy.dtype == np.dtype(dtype)
    for b in range(3):
        q, v, pi = ref_plan(mdp, T, term, R[b], soft=soft, beta=beta)
        close(res.q[b], q, dtype)
        close(res.v[b], v, dtype)
        close(res.policy[b], pi, dtype)
    single = fn(mdp, R[1], tol=1e-13, dtype=dtype, **kw)  # unbatched call = one column of the batch
    np.testing.assert_allclose(single.q, res.q[1], rtol=0, atol=10 * TOL[dtype])


@pytest.mark.parametrize("setting", ["infinite-0.8", "infinite-0.99-terminal", "episodic"])
@pytest.mark.parametrize("soft", [True, False])
def test_newton_matches_reference_with_every_linear_solver(setting, soft, linear_solver, monkeypatch):
    force_method(monkeypatch, "newton")
    mode, calls = linear_solver
    mdp, T, term = random_mdp(3, **SETTINGS[setting])
    r = rewards(4)
    res = (P.soft_value_iteration if soft else P.value_iteration)(mdp, r, tol=1e-13)
    q, v, pi = ref_plan(mdp, T, term, r, soft=soft)
    close(res.q, q)
    close(res.v, v)
    close(res.policy, pi)
    assert (calls["direct"] > 0) == (mode in ("lu", "bicgstab-then-lu"))


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_occupancy_and_policy_values_match_reference(setting, dtype, linear_solver):
    mdp, T, term = random_mdp(5, **SETTINGS[setting])
    R = rewards(6, B=2)
    pis = P.soft_value_iteration(mdp, R, beta=0.7).policy  # (2, [H,] S, A)
    D = P.occupancy_measure(mdp, pis, dtype=dtype)
    V = P.policy_evaluation(mdp, R, pis, dtype=dtype)
    assert D.dtype == V.dtype == np.dtype(dtype)
    for b in range(2):
        close(D[b], ref_occupancy(mdp, T, term, pis[b]), dtype)
        close(V[b], ref_policy_values(mdp, T, term, R[b], pis[b]), dtype)
    close(P.state_occupancy(mdp, pis[0], dtype=dtype), ref_occupancy(mdp, T, term, pis[0]).sum(-1), dtype)
    d0 = np.random.default_rng(7).dirichlet(np.ones(S))
    other = mdp.replace(initial=d0)
    close(P.occupancy_measure(mdp, pis[1], initial=d0, dtype=dtype), ref_occupancy(other, T, term, pis[1]), dtype)


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adjoints_match_forward_mode_reference(setting, dtype, linear_solver):
    mdp, T, term = random_mdp(8, **SETTINGS[setting])
    R = rewards(9, B=2)
    rng = np.random.default_rng(10)
    q, pi = P.bellman_q(mdp, R, dtype=dtype)
    log_pi, pi2 = P.soft_log_policy(mdp, R, dtype=dtype)
    np.testing.assert_allclose(pi2, pi, rtol=0, atol=TOL[dtype])
    bar = rng.normal(size=q.shape)
    g_q = P.bellman_q_vjp(mdp, pi, bar, dtype=dtype)
    g_lp = P.soft_log_policy_vjp(mdp, pi2, bar, dtype=dtype)
    assert g_q.shape == g_lp.shape == (2, S, A)
    for b in range(2):
        ref_pi = ref_plan(mdp, T, term, R[b], soft=True)[2]
        close(log_pi[b], np.log(ref_pi), dtype)
        J = ref_reward_jacobian(mdp, T, term, ref_pi, log_policy=False)
        close(g_q[b], contract(J, bar[b]), dtype)
        J = ref_reward_jacobian(mdp, T, term, ref_pi, log_policy=True)
        close(g_lp[b], contract(J, bar[b]), dtype)
    # unbatched arguments give the unbatched gradient
    close(P.bellman_q_vjp(mdp, pi[0], bar[0], dtype=dtype), np.asarray(g_q[0], np.float64), dtype)


@pytest.mark.parametrize("setting", ["finite", "infinite-0.8"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_functions_match_reference(setting, dtype):
    """q_values and soft_log_policy (float64 / float32 compute), a (2, 3) batch of rewards, gradients."""
    mdp, T, term = random_mdp(11, **SETTINGS[setting])
    R = torch.tensor(rewards(12, B=6).reshape(2, 3, S, A), requires_grad=True)
    np_dt = np.float64 if dtype == torch.float64 else np.float32
    rng = np.random.default_rng(13)
    for fn, lp in ((q_values, False), (soft_log_policy, True)):
        out = fn(mdp, R, dtype=dtype)
        assert out.dtype == torch.float64 and out.shape[:2] == (2, 3)
        w = torch.tensor(rng.normal(size=tuple(out.shape)))
        (out * w).sum().backward()
        for i in range(2):
            for j in range(3):
                ref_q, _, ref_pi = ref_plan(mdp, T, term, R[i, j].detach().numpy(), soft=True)
                close(out[i, j].detach().numpy(), np.log(ref_pi) if lp else ref_q, np_dt)
                J = ref_reward_jacobian(mdp, T, term, ref_pi, log_policy=lp)
                close(R.grad[i, j].numpy(), contract(J, w[i, j].numpy()), np_dt)
        R.grad = None
    # the log-policy is the log-softmax of the Q-values (and its gradient the same)
    r = torch.tensor(rewards(14), requires_grad=True)
    a = soft_log_policy(mdp, r)
    b = torch.log_softmax(q_values(mdp, r), -1)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    ga = torch.autograd.grad(a[..., 0].sum(), r)[0]
    gb = torch.autograd.grad(b[..., 0].sum(), r)[0]
    torch.testing.assert_close(ga, gb, rtol=0, atol=1e-12)


def test_torch_float32_reward_and_state_reward():
    """A float32 reward tensor gets float32 results and gradients; a state reward (S,) broadcasts."""
    mdp, T, term = random_mdp(15, **SETTINGS["finite"])
    r = torch.tensor(rewards(16)[:, 0], dtype=torch.float32, requires_grad=True)
    out = soft_log_policy(mdp, r, dtype=torch.float32)
    assert out.dtype == torch.float32
    out[0].sum().backward()
    assert r.grad.dtype == torch.float32 and r.grad.shape == (S,)
    ref_pi = ref_plan(mdp, T, term, np.repeat(r.detach().numpy()[:, None].astype(np.float64), A, 1), soft=True)[2]
    J = ref_reward_jacobian(mdp, T, term, ref_pi, log_policy=True)
    w = np.zeros((H, S, A))
    w[0] = 1.0
    close(r.grad.numpy(), contract(J, w).sum(-1), np.float32)


# ---------------------------------------------------------- sparse kernels
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("B", [1, 4])
@pytest.mark.parametrize("kernels", ["compiled", "scipy-operator"])
def test_sparse_kernels_match_dense_products(dtype, B, kernels, monkeypatch):
    """``y += M x`` and ``y += M^T x`` (the CSC reading of the same arrays), both with and without
    scipy's compiled kernels, against dense products; the discount is folded in."""
    if kernels == "scipy-operator":
        monkeypatch.setattr(P_core, "_KERNELS", None)
    rng = np.random.default_rng(17)
    M = sp.random(11, 6, density=0.4, random_state=18, format="csr")
    M.indices, M.indptr = M.indices.astype(np.int32), M.indptr.astype(np.int32)
    K = P_core._CSR(M, 0.9, np.dtype(dtype))
    x, xt = rng.normal(size=(6, B)).astype(dtype), rng.normal(size=(11, B)).astype(dtype)
    y, yt = np.ones((11, B), dtype), np.ones((6, B), dtype)
    K.addmul(x, y)
    K.addmul_T(xt, yt)
    dense = 0.9 * M.toarray()
    close(y, 1 + dense @ x.astype(np.float64), dtype)
    close(yt, 1 + dense.T @ xt.astype(np.float64), dtype)


def test_planner_without_compiled_kernels_gives_the_same_numbers(monkeypatch, numpy_backend):
    mdp, T, term = random_mdp(19, **SETTINGS["finite"])
    r = rewards(20, B=2)
    want = P.soft_value_iteration(mdp, r)
    monkeypatch.setattr(P_core, "_KERNELS", None)
    fresh = irl.TabularMDP.from_arrays(T, initial=mdp.initial, horizon=H, terminal=term)
    got = P.soft_value_iteration(fresh, r)
    close(got.q, want.q)
    close(P.occupancy_measure(fresh, got.policy), P.occupancy_measure(mdp, want.policy))


# --------------------------------------------------------------- the choices
def test_newton_is_used_and_needs_few_steps_where_value_iteration_needs_thousands(monkeypatch):
    """At gamma = 0.999 value iteration needs ~log(1e-13)/log(0.999) = 30000 sweeps; Newton a handful."""
    mdp, T, term = random_mdp(21, horizon=None, discount=0.999)
    r = rewards(22)
    solves = []
    orig = P_values._policy_solve
    monkeypatch.setattr(P_values, "_policy_solve", lambda *a, **k: solves.append(1) or orig(*a, **k))
    res = P.soft_value_iteration(mdp, r, tol=1e-12, max_iter=P_values._VI_SWEEPS + 30)
    assert 0 < len(solves) <= 30
    q, v, pi = ref_plan(mdp, T, term, r, soft=True)
    close(res.v, v)
    close(res.policy, pi)


def test_lu_cost_separates_banded_from_random_structure():
    """Gridworlds are banded after reverse Cuthill-McKee (cheap LU); random MDPs fill in."""
    grid = irl.envs.gridworld(30, 30, horizon=None, discount=0.99)
    rng = np.random.default_rng(23)
    n = grid.n_states
    rows = np.repeat(np.arange(n * 4), 4)
    P_rand = sp.csr_matrix((np.full(rows.size, 0.25), (rows, rng.integers(0, n, rows.size))), shape=(n * 4, n))
    rand = irl.TabularMDP.from_arrays(P_rand, n_actions=4, discount=0.99)
    assert P_linear._lu_cost(grid) <= P_linear._LU_CHEAP < P_linear._lu_cost(rand)
    assert P_linear._lu_cost(rand) > 20 * P_linear._lu_cost(grid)


def test_dtype_is_validated():
    mdp, _, _ = random_mdp(24, **SETTINGS["finite"])
    for fn in (P.soft_value_iteration, P.value_iteration, P.bellman_q, P.soft_log_policy):
        with pytest.raises(MDPValidationError, match=r"dtype must be float64 or float32: got .*int32"):
            fn(mdp, np.zeros(S), dtype=np.int32)
    with pytest.raises(MDPValidationError, match="dtype must be float64 or float32: got 'float16'"):
        P.occupancy_measure(mdp, np.full((H, S, A), 1 / A), dtype="float16")
    with pytest.raises(MDPValidationError, match=r"dtype must be float64 or float32: got torch.int64"):
        q_values(mdp, torch.zeros(S), dtype=torch.int64)
    for spelling in ("float32", np.float32, torch.float32, "float64", None, torch.float64):
        assert P_core._resolve_dtype(spelling) in (np.float32, np.float64)


def test_vjp_shape_errors_name_the_argument():
    mdp, _, _ = random_mdp(25, **SETTINGS["finite"])
    q, pi = P.bellman_q(mdp, rewards(26))
    with pytest.raises(MDPValidationError, match=r"q_bar and pi must have the same shape"):
        P.bellman_q_vjp(mdp, pi, np.zeros((H, S, A + 1)))
    with pytest.raises(MDPValidationError, match=r"g_bar must have shape \(\[B,\] 5, 7, 3\): got \(4, 7, 3\)"):
        P.soft_log_policy_vjp(mdp, pi[:4], np.zeros((4, S, A)))


# ------------------------------------------------------------ buffer reuse
def _big_mdp(seed: int, n: int = 3000, n_actions: int = 3, horizon: int = 5) -> irl.TabularMDP:
    """Large enough that the (H, A, S) results (360 KB) are recycled by the planner's buffer pool."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n * n_actions), 3)
    cols = rng.integers(0, n, rows.size)
    P_ = sp.csr_matrix((rng.random(rows.size) + 0.1, (rows, cols)), shape=(n * n_actions, n))
    P_ = sp.diags(1.0 / np.asarray(P_.sum(axis=1)).ravel()) @ P_
    return irl.TabularMDP.from_arrays(P_, n_actions=n_actions, horizon=horizon)


def test_recycled_buffers_never_overwrite_live_results():
    """Results (and views, slices, torch tensors sharing their memory) stay intact while later calls
    recycle buffers; dropped results' memory is reused instead of fresh memory."""
    mdp = _big_mdp(30)
    rng = np.random.default_rng(31)
    P.release_buffers()
    first = P.soft_value_iteration(mdp, rng.normal(size=mdp.n_states))
    D = P.occupancy_measure(mdp, first.policy)
    q_slice = first.q[2:4]
    log_pi = soft_log_policy(mdp, torch.tensor(rng.normal(size=mdp.n_states)))
    saved = [first.q.copy(), first.v.copy(), first.policy.copy(), D.copy(), q_slice.copy(), log_pi.clone()]
    n_bufs = len(P_core._POOL._bufs)
    for _ in range(4):  # results dropped at once: their buffers are reused, the pool does not grow
        res = P.soft_value_iteration(mdp, rng.normal(size=mdp.n_states))
        P.occupancy_measure(mdp, res.policy)
        soft_log_policy(mdp, torch.tensor(rng.normal(size=mdp.n_states)))
        del res
    assert len(P_core._POOL._bufs) <= n_bufs + 5
    for got, want in zip([first.q, first.v, first.policy, D, q_slice], saved[:5]):
        np.testing.assert_array_equal(got, want)
    torch.testing.assert_close(log_pi, saved[5], rtol=0, atol=0)
    del first, D, q_slice, log_pi
    assert P.release_buffers() > 0
    assert P.release_buffers() == 0 and all(not P_core._POOL._idle(i) for i in range(len(P_core._POOL._bufs)))


def test_buffer_pool_respects_its_budget():
    pool = P_core._BufferPool(budget=3 * 360_000)
    arrays = [pool.empty((5, 3, 3000, 1), np.float64) for _ in range(6)]  # 6 live buffers: none is idle
    assert len(pool._bufs) == 6
    del arrays
    keep = pool.empty((5, 3, 3000, 1), np.float64)  # reuses one; the idle rest is trimmed to the budget
    idle = sum(pool._bufs[i].nbytes for i in range(len(pool._bufs)) if pool._idle(i))
    assert idle <= 3 * 360_000 and len(pool._bufs) == 4 and not pool._idle(len(pool._bufs) - 1)
    keep[...] = 1.0
    assert pool.release() == 3 * 360_000 and len(pool._bufs) == 1
    small = pool.empty((10,), np.float64)  # below the size range: plain np.empty, not pooled
    assert small.base is None or small.base.nbytes == 80


# ------------------------------------------------------------------ backends
HAS_NUMBA = importlib.util.find_spec("numba") is not None
needs_numba = pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (the 'fast' extra)")


@pytest.fixture
def numpy_backend():
    previous = P.set_backend("numpy")
    yield
    P.set_backend(previous)


def run_on(backend: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with the planner on ``backend``; the previous choice restored."""
    previous = P.set_backend(backend)
    try:
        assert P.backend() == backend
        return fn(*args, **kwargs)
    finally:
        P.set_backend(previous)


def same(got, want, tol: float) -> None:
    """Agreement relative to ``max(1, |want|)`` (exact zeros and -inf of a log-policy included)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    inf = np.isinf(want)
    assert np.array_equal(np.isinf(got), inf) and np.array_equal(got[inf], want[inf])
    err = np.abs(got[~inf] - want[~inf]) / np.maximum(1.0, np.abs(want[~inf]))
    assert err.size == 0 or err.max() <= tol, f"max relative difference {err.max():.3g} > {tol:g}"


def every_pass(mdp, r, dtype, time_indexed_policy):
    """Every planner pass with a compiled kernel: soft/hard values, log-policy, occupancies (a given policy too)."""
    soft = P.soft_value_iteration(mdp, r, beta=1.7, dtype=dtype)
    hard = P.value_iteration(mdp, r, dtype=dtype)
    log_pi, pi = P.soft_log_policy(mdp, r, dtype=dtype)
    return {"soft.q": soft.q, "soft.v": soft.v, "soft.policy": soft.policy, "hard.q": hard.q, "hard.v": hard.v,
            "hard.policy": hard.policy, "log_pi": log_pi, "pi": pi,
            "occupancy(soft)": P.occupancy_measure(mdp, soft.policy, dtype=dtype),
            "occupancy(hard)": P.occupancy_measure(mdp, hard.policy, dtype=dtype),
            "occupancy(given)": P.occupancy_measure(mdp, time_indexed_policy, dtype=dtype)}


@needs_numba
@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("B", [None, 1, 32])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numba_kernels_agree_with_the_numpy_path(setting, B, dtype):
    """Finite (discount 1 with terminal states; discounted) and infinite horizon (value-iteration sweeps
    and Newton), soft (beta != 1), hard, the fused log-policy, occupancies of the planner's policies
    and of a given time-indexed policy; one reward, a batch of 1 and of 32: to 1e-12 in float64."""
    mdp, T, term = random_mdp(31, **SETTINGS[setting])
    r = rewards(32, B=B) * 3.0
    r[..., 0, :] = r[..., 1, :]  # exact ties between states and, below, between actions (hard backup)
    r[..., 2, 1] = r[..., 2, 0]
    rng = np.random.default_rng(33)
    shape = ((B,) if B else ()) + ((H,) if mdp.horizon is not None else ()) + (S, A)
    policy = rng.dirichlet(np.ones(A), size=shape[:-1])
    want = run_on("numpy", every_pass, mdp, r, dtype, policy)
    got = run_on("numba", every_pass, mdp, r, dtype, policy)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].dtype == want[key].dtype == np.dtype(dtype), key
        same(got[key], want[key], 1e-12 if dtype == np.float64 else 1e-4)
    if B == 32:  # the batch is the hypotheses one by one
        one = run_on("numba", every_pass, mdp, r[5], dtype, policy[5])
        for key in want:
            same(got[key][5], one[key], 1e-12 if dtype == np.float64 else 1e-4)


@needs_numba
def test_numba_kernels_agree_on_large_rewards_and_long_horizons():
    """Large rewards (values ~1e4, exponentials down to exp(-700) and beyond) and 200 steps."""
    mdp, T, term = random_mdp(34, horizon=200, discount=1.0, terminals=1)
    r = rewards(35, B=3) * np.array([1.0, 50.0, 400.0])[:, None, None]
    want = run_on("numpy", every_pass, mdp, r, np.float64, np.full((3, 200, S, A), 1.0 / A))
    got = run_on("numba", every_pass, mdp, r, np.float64, np.full((3, 200, S, A), 1.0 / A))
    for key in want:
        same(got[key], want[key], 1e-12)


@needs_numba
def test_gradients_agree_between_backends():
    """The autodiff functions (forward on the selected backend, closed-form adjoints) on both backends."""
    mdp, T, term = random_mdp(36, **SETTINGS["finite"])
    results = {}
    for backend in ("numpy", "numba"):
        r = torch.tensor(rewards(37, B=4), requires_grad=True)
        out = run_on(backend, soft_log_policy, mdp, r)
        run_on(backend, lambda: (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward())
        results[backend] = (out.detach().numpy(), r.grad.numpy())
    same(results["numba"][0], results["numpy"][0], 1e-12)
    same(results["numba"][1], results["numpy"][1], 1e-12)


def test_backend_is_explicit_and_validated(numpy_backend, monkeypatch):
    assert P.backend() == "numpy"
    with pytest.raises(ValueError, match="planner backend must be one of auto, numba, numpy: got 'cuda'"):
        P.set_backend("cuda")
    assert P.backend() == "numpy"  # a rejected name changes nothing
    monkeypatch.setitem(P_core._BACKEND, "requested", None)  # as in a fresh process: the environment decides
    monkeypatch.setenv(P.BACKEND_ENV, "numpy")
    assert P.backend() == "numpy"
    monkeypatch.setitem(P_core._BACKEND, "requested", None)
    monkeypatch.setenv(P.BACKEND_ENV, "fortran")
    with pytest.raises(ValueError, match="IRL_PLANNER_BACKEND must be one of auto, numba, numpy: got 'fortran'"):
        P.backend()
    monkeypatch.setitem(P_core._BACKEND, "requested", None)
    monkeypatch.setenv(P.BACKEND_ENV, "auto")
    assert P.backend() == ("numba" if HAS_NUMBA else "numpy")


def test_without_numba_the_numpy_path_runs(monkeypatch):
    """numba absent (its import blocked): ``auto`` falls back to numpy, ``numba`` says which extra to install."""
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` now raises ImportError
    monkeypatch.delitem(sys.modules, "irl._kernels", raising=False)
    monkeypatch.setitem(P_core._BACKEND, "requested", None)
    monkeypatch.setitem(P_core._BACKEND, "kernels", None)
    monkeypatch.delenv(P.BACKEND_ENV, raising=False)
    assert P.backend() == "numpy"
    with pytest.raises(ImportError, match=r"needs numba: pip install 'pluggable-irl\[fast\]'"):
        P.set_backend("numba")
    assert P.backend() == "numpy"
    mdp, T, term = random_mdp(38, **SETTINGS["finite"])
    r = rewards(39)
    q, v, pi = ref_plan(mdp, T, term, r, soft=True)
    res = P.soft_value_iteration(mdp, r)
    close(res.q, q)
    close(P.occupancy_measure(mdp, res.policy), ref_occupancy(mdp, T, term, pi))
    P.set_backend("auto")  # monkeypatch restores the module state afterwards


def test_a_fresh_process_without_numba_plans_with_numpy():
    code = ("import sys; sys.modules['numba'] = None\n"
            "import numpy as np, irl\n"
            "env = irl.envs.make('gridworld-5x5')\n"
            "res = irl.planning.soft_value_iteration(env, irl.envs.true_reward(env))\n"
            "print(irl.planning.backend(), 'numba' in sys.modules and sys.modules['numba'] is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, P.BACKEND_ENV: "auto"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["numpy", "False"]
