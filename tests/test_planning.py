"""Correctness of irl.planning and irl.autodiff against brute force.

Every planner output is compared with an independent computation on a tiny MDP:
explicit enumeration of every trajectory (finite horizon), dense power series
(infinite horizon), brute-force search over deterministic policies (hard value
iteration) and a direct numerical maximisation of the causal-entropy objective
(soft value iteration). Conventions under test (see the irl.planning package):

* finite horizon H: actions a_0 .. a_{H-1}, reward r(s_t, a_t) for t < H, V_H = 0,
  time-indexed policies pi[t, s, a];
* a terminal state visited at time t < H: the agent still draws a_t ~ pi_t(.|s_t)
  and receives r(s_t, a_t) once, then the episode ends (no successor). Rollouts
  record the terminal state as the last state, with no action, terminated=True;
* occupancy D[t, s, a] = gamma^t P(s_t = s, a_t = a) (a terminal state is counted
  with its policy's action probabilities, then absorbs the flow).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.optimize
import torch

import irl
from irl import planning as P
from irl.autodiff import q_values
from irl.mdp import MDPValidationError

S, A, H = 3, 2, 3


# ---------------------------------------------------------------- helpers
def random_dynamics(seed: int, n_states: int = S, n_actions: int = A, zero_frac: float = 0.3) -> np.ndarray:
    """Random stochastic T[s, a, s'] with some exact zeros (sparse rows), every row a distribution."""
    rng = np.random.default_rng(seed)
    T = rng.dirichlet(np.ones(n_states), size=(n_states, n_actions))
    drop = rng.random(T.shape) < zero_frac
    keep = T.argmax(-1)
    drop[np.arange(n_states)[:, None], np.arange(n_actions)[None, :], keep] = False
    T = np.where(drop, 0.0, T)
    return T / T.sum(-1, keepdims=True)


def make_mdp(seed: int = 0, *, discount: float = 1.0, horizon: int | None = H, terminal=None, T=None
             ) -> tuple[irl.TabularMDP, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1000)
    T = random_dynamics(seed) if T is None else T
    p0 = rng.dirichlet(np.ones(T.shape[0]))
    r = rng.normal(size=T.shape[:2])
    mdp = irl.TabularMDP.from_arrays(T, initial=p0, discount=discount, horizon=horizon, terminal=terminal)
    return mdp, T, r


class Enumeration:
    """Every trajectory with positive probability under the dynamics, as padded arrays.

    A trajectory is (s_0, a_0, s_1, ..., ) and ends after H actions, or right after
    the action taken in a terminal state (that action's reward is received, no
    successor is drawn). ``base`` = p0(s_0) * prod_t P(s_{t+1} | s_t, a_t); the
    policy factor is applied by :meth:`probs`.
    """

    def __init__(self, T: np.ndarray, terminal: np.ndarray, horizon: int, p0: np.ndarray) -> None:
        n_s, n_a, _ = T.shape
        rows: list[tuple[list[int], list[int], float]] = []

        def extend(states: list[int], actions: list[int], prob: float) -> None:
            s, t = states[-1], len(actions)
            if t == horizon:
                rows.append((states, actions, prob))
                return
            for a in range(n_a):
                if terminal[s]:
                    rows.append((states, actions + [a], prob))
                    continue
                for s2 in np.flatnonzero(T[s, a] > 0):
                    extend(states + [int(s2)], actions + [a], prob * T[s, a, s2])

        for s0 in np.flatnonzero(p0 > 0):
            extend([int(s0)], [], float(p0[s0]))
        n = len(rows)
        self.horizon = horizon
        self.states = np.full((n, horizon + 1), -1)
        self.actions = np.full((n, horizon), -1)
        self.n_act = np.array([len(a) for _, a, _ in rows])
        self.base = np.array([p for _, _, p in rows])
        for i, (s, a, _) in enumerate(rows):
            self.states[i, :len(s)] = s
            self.actions[i, :len(a)] = a
        self.valid = np.arange(horizon)[None, :] < self.n_act[:, None]  # (N, H): step t was taken
        self.s = self.states[:, :horizon].clip(0)
        self.a = self.actions.clip(0)
        # ended by a terminal state before the horizon (its action was taken: as many states as actions)
        self.ended = np.array([len(s) == len(a) for s, a, _ in rows])

    def probs(self, pi: np.ndarray) -> np.ndarray:
        """p(tau) for a time-indexed policy ``pi`` (H, S, A)."""
        t = np.arange(self.horizon)[None, :]
        f = np.where(self.valid, pi[t, self.s, self.a], 1.0)
        return self.base * f.prod(axis=1)

    def step_sum(self, per_step: np.ndarray, discount: float) -> np.ndarray:
        """sum_t gamma^t x[t, s_t, a_t] over taken steps, for x (H, S, A)."""
        t = np.arange(self.horizon)[None, :]
        x = np.where(self.valid, per_step[t, self.s, self.a], 0.0)
        return (x * discount ** t).sum(axis=1)

    def occupancy(self, pi: np.ndarray, discount: float, n_states: int, n_actions: int) -> np.ndarray:
        p = self.probs(pi)
        D = np.zeros((self.horizon, n_states, n_actions))
        tt = np.broadcast_to(np.arange(self.horizon), self.valid.shape)
        w = (p[:, None] * discount ** tt)[self.valid]
        np.add.at(D, (tt[self.valid], self.s[self.valid], self.a[self.valid]), w)
        return D

    def per_start(self, values: np.ndarray, n_states: int) -> np.ndarray:
        """sum over trajectories grouped by s_0 (use with p0 = ones to get conditional expectations)."""
        return np.bincount(self.states[:, 0], weights=values, minlength=n_states)


def dense_occupancy_series(T, terminal, pi, p0, discount, n_terms):
    """sum_t gamma^t P(s_t, a_t) for a stationary policy by plain dense iteration."""
    cont = np.where(terminal[:, None, None], 0.0, T)
    d, D = p0.copy(), np.zeros(pi.shape)
    for _ in range(n_terms):
        x = d[:, None] * pi
        D += x
        d = discount * np.einsum("sa,sap->p", x, cont)
    return D


def random_policy(rng, *shape):
    return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])


# ---------------------------------------------- (a) soft VI = max causal entropy
@pytest.mark.parametrize("discount", [1.0, 0.9])
@pytest.mark.parametrize("with_terminal", [False, True])
def test_soft_value_is_expected_reward_plus_causal_entropy(discount, with_terminal):
    terminal = np.array([False, False, True]) if with_terminal else None
    mdp, T, r = make_mdp(1, discount=discount, terminal=terminal)
    res = P.soft_value_iteration(mdp, r)
    pi = res.policy
    np.testing.assert_allclose(np.log(pi), res.q - res.v[:-1, :, None], atol=1e-12)
    en = Enumeration(T, mdp.terminal, H, np.ones(S))  # p0 = 1 for every start: conditional on s_0
    p = en.probs(pi)
    np.testing.assert_allclose(en.per_start(p, S), 1.0, atol=1e-12)  # a distribution per start state
    # V_0(s) = E[sum_t gamma^t (r(s_t, a_t) - log pi_t(a_t | s_t)) | s_0 = s]
    soft_return = en.step_sum(r[None] - np.log(pi), discount)
    v0_enum = en.per_start(p * soft_return, S)
    err = np.abs(v0_enum - res.v[0]).max()
    assert err < 1e-12, err
    assert np.all(res.v[-1] == 0)


@pytest.mark.parametrize("discount", [1.0, 0.9])
@pytest.mark.parametrize("with_terminal", [False, True])
def test_soft_policy_maximises_causal_entropy_objective(discount, with_terminal):
    """Direct numerical maximisation over all time-indexed policies finds the soft-VI policy."""
    terminal = np.array([False, True, False]) if with_terminal else None
    mdp, T, r = make_mdp(2, discount=discount, terminal=terminal)
    en = Enumeration(T, mdp.terminal, H, mdp.initial)
    base = torch.from_numpy(en.base)
    valid = torch.from_numpy(en.valid)
    tt = torch.arange(H)[None, :].expand_as(valid)
    s_idx, a_idx = torch.from_numpy(en.s), torch.from_numpy(en.a)
    rr = torch.from_numpy(r)
    disc = torch.tensor(discount, dtype=torch.float64) ** tt

    def objective(logits_flat):
        lp = torch.log_softmax(logits_flat.reshape(H, S, A), -1)
        step_lp = torch.where(valid, lp[tt, s_idx, a_idx], torch.zeros((), dtype=torch.float64))
        prob = base * step_lp.sum(1).exp()
        step = torch.where(valid, rr[s_idx, a_idx] - lp[tt, s_idx, a_idx], torch.zeros((), dtype=torch.float64))
        return (prob * (step * disc).sum(1)).sum()

    def f(x):
        xt = torch.tensor(x, requires_grad=True)
        val = -objective(xt)
        val.backward()
        return float(val.detach()), xt.grad.numpy().copy()

    opt = scipy.optimize.minimize(f, np.zeros(H * S * A), jac=True, method="L-BFGS-B",
                                  options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 2000})
    res = P.soft_value_iteration(mdp, r)
    j_vi = -f(np.log(res.policy).ravel())[0]
    assert j_vi == pytest.approx(float(mdp.initial @ res.v[0]), abs=1e-12)
    assert j_vi >= -opt.fun - 1e-12  # nothing beats soft VI
    assert j_vi - (-opt.fun) < 1e-9
    # and the maximiser is the soft-VI policy wherever (t, s) is reachable
    pi_opt = torch.softmax(torch.tensor(opt.x).reshape(H, S, A), -1).numpy()
    reach = P.state_occupancy(mdp.replace(discount=1.0), res.policy) > 1e-3
    assert reach.sum() >= 6
    err = np.abs(pi_opt - res.policy)[reach].max()
    assert err < 1e-4, err
    # any other policy is strictly worse
    rng = np.random.default_rng(0)
    for _ in range(20):
        other = random_policy(rng, H, S, A)
        assert -f(np.log(other).ravel())[0] < j_vi - 1e-6


def test_deterministic_dynamics_give_maxent_trajectory_distribution():
    """Deterministic transitions: p(tau | s_0) = exp(sum_t r(s_t, a_t) - V_0(s_0)) (Ziebart et al. 2008)."""
    rng = np.random.default_rng(3)
    nxt = rng.integers(0, S, size=(S, A))
    T = np.zeros((S, A, S))
    T[np.arange(S)[:, None], np.arange(A)[None, :], nxt] = 1.0
    mdp, _, r = make_mdp(3, T=T)
    res = P.soft_value_iteration(mdp, r)
    en = Enumeration(T, mdp.terminal, H, np.ones(S))
    assert len(en.base) == S * A ** H
    p = en.probs(res.policy)
    ret = en.step_sum(r[None].repeat(H, 0), 1.0)
    expected = np.exp(ret - res.v[0][en.states[:, 0]])
    np.testing.assert_allclose(p, expected, rtol=1e-12, atol=0)


def test_soft_value_iteration_beta_is_reward_scaling():
    mdp, _, r = make_mdp(4, discount=0.9)
    a = P.soft_value_iteration(mdp, r, beta=3.0)
    b = P.soft_value_iteration(mdp, 3.0 * r)
    np.testing.assert_allclose(a.policy, b.policy, atol=1e-13)
    np.testing.assert_allclose(3.0 * a.v, b.v, atol=1e-12)


# ------------------------------------------------------------- hard VI
@pytest.mark.parametrize("with_terminal", [False, True])
def test_value_iteration_matches_best_deterministic_policy(with_terminal):
    terminal = np.array([True, False, False]) if with_terminal else None
    mdp, T, r = make_mdp(5, discount=0.95, terminal=terminal)
    en = Enumeration(T, mdp.terminal, H, np.ones(S))
    best = np.full(S, -np.inf)
    for choice in itertools.product(range(A), repeat=H * S):  # all 2^9 deterministic time-indexed policies
        pi = np.eye(A)[np.array(choice).reshape(H, S)]
        v = en.per_start(en.probs(pi) * en.step_sum(r[None].repeat(H, 0), 0.95), S)
        best = np.maximum(best, v)
    res = P.value_iteration(mdp, r)
    np.testing.assert_allclose(res.v[0], best, atol=1e-12)
    np.testing.assert_allclose(P.policy_evaluation(mdp, r, res.policy)[0], best, atol=1e-12)


def test_infinite_horizon_value_iteration_matches_best_stationary_policy():
    mdp, T, r = make_mdp(6, discount=0.8, horizon=None)
    best = np.full(S, -np.inf)
    for choice in itertools.product(range(A), repeat=S):
        pi = np.eye(A)[list(choice)]
        P_pi = np.einsum("sa,sap->sp", pi, T)
        v = np.linalg.solve(np.eye(S) - 0.8 * P_pi, (pi * r).sum(1))
        best = np.maximum(best, v)
    res = P.value_iteration(mdp, r)
    np.testing.assert_allclose(res.v, best, atol=1e-9)


# ------------------------------------------------------------ (b) occupancy
@pytest.mark.parametrize("discount", [1.0, 0.9])
@pytest.mark.parametrize("with_terminal", [False, True])
def test_occupancy_matches_enumeration(discount, with_terminal):
    terminal = np.array([False, False, True]) if with_terminal else None
    mdp, T, r = make_mdp(7, discount=discount, terminal=terminal)
    en = Enumeration(T, mdp.terminal, H, mdp.initial)
    rng = np.random.default_rng(0)
    for pi in (P.soft_value_iteration(mdp, r).policy, random_policy(rng, H, S, A)):
        D = P.occupancy_measure(mdp, pi)
        D_enum = en.occupancy(pi, discount, S, A)
        err = np.abs(D - D_enum).max()
        assert err < 1e-13, err
        np.testing.assert_allclose(P.state_occupancy(mdp, pi), D_enum.sum(-1), atol=1e-13)
        # D[0] is the start distribution spread by the policy
        np.testing.assert_allclose(D[0], mdp.initial[:, None] * pi[0], atol=1e-15)
        if not with_terminal:
            want = H if discount == 1 else (1 - discount ** H) / (1 - discount)
            assert D.sum() == pytest.approx(want, abs=1e-12)
        else:  # terminal states absorb: less total mass than without them
            assert D.sum() < (H if discount == 1 else (1 - discount ** H) / (1 - discount)) - 1e-3
    # a custom start distribution
    p0 = np.array([0.0, 1.0, 0.0])
    pi = random_policy(rng, H, S, A)
    en1 = Enumeration(T, mdp.terminal, H, p0)
    np.testing.assert_allclose(P.occupancy_measure(mdp, pi, initial=p0), en1.occupancy(pi, discount, S, A),
                               atol=1e-13)


def test_stationary_policy_in_finite_horizon_is_broadcast():
    mdp, T, _ = make_mdp(8, discount=0.9)
    pi = random_policy(np.random.default_rng(1), S, A)
    D = P.occupancy_measure(mdp, pi)
    assert D.shape == (H, S, A)
    np.testing.assert_allclose(D, Enumeration(T, mdp.terminal, H, mdp.initial).occupancy(
        np.broadcast_to(pi, (H, S, A)), 0.9, S, A), atol=1e-13)


# --------------------------------------------------- (c) infinite horizon
def test_infinite_horizon_discounted_occupancy_matches_power_series():
    mdp, T, _ = make_mdp(9, discount=0.8, horizon=None)
    pi = random_policy(np.random.default_rng(2), S, A)
    D = P.occupancy_measure(mdp, pi)
    assert D.shape == (S, A)
    D_series = dense_occupancy_series(T, mdp.terminal, pi, mdp.initial, 0.8, 400)
    err = np.abs(D - D_series).max()
    assert err < 1e-8, err
    assert D.sum() == pytest.approx(1 / (1 - 0.8), abs=1e-10)
    # the first H terms of the series are the finite-horizon occupancy, which enumeration confirms
    fin = mdp.replace(horizon=H)
    en = Enumeration(T, mdp.terminal, H, mdp.initial)
    np.testing.assert_allclose(dense_occupancy_series(T, mdp.terminal, pi, mdp.initial, 0.8, H),
                               en.occupancy(np.broadcast_to(pi, (H, S, A)), 0.8, S, A).sum(0), atol=1e-14)
    np.testing.assert_allclose(P.occupancy_measure(fin, pi).sum(0),
                               dense_occupancy_series(T, mdp.terminal, pi, mdp.initial, 0.8, H), atol=1e-14)


def proper_mdp(seed: int, *, discount: float = 1.0):
    """Every action reaches the terminal state 2 with probability >= 0.3: all policies are proper."""
    T = 0.7 * random_dynamics(seed) + 0.3 * np.eye(S)[2][None, None, :]
    return make_mdp(seed, discount=discount, horizon=None, terminal=np.array([False, False, True]), T=T)


def test_infinite_horizon_with_terminal_and_discount_one():
    mdp, T, r = proper_mdp(10)
    pi = random_policy(np.random.default_rng(3), S, A)
    D = P.occupancy_measure(mdp, pi)
    np.testing.assert_allclose(D, dense_occupancy_series(T, mdp.terminal, pi, mdp.initial, 1.0, 300), atol=1e-10)
    assert D[2].sum() == pytest.approx(1.0, abs=1e-12)  # the terminal state is reached exactly once
    v = P.policy_evaluation(mdp, r, pi)
    assert float(mdp.initial @ v) == pytest.approx(float((D * r).sum()), abs=1e-10)
    np.testing.assert_allclose(v[2], (pi[2] * r[2]).sum(), atol=1e-14)  # r(s, a) once at the terminal
    # soft VI converges (proper MDP) and its values are expected reward + causal entropy
    res = P.soft_value_iteration(mdp, r)
    np.testing.assert_allclose(res.v, P.policy_evaluation(mdp, r - np.log(res.policy), res.policy), atol=1e-8)


@pytest.mark.parametrize("soft", [True, False])
def test_infinite_horizon_bellman_fixed_point(soft):
    mdp, T, r = make_mdp(11, discount=0.8, horizon=None)
    res = P.soft_value_iteration(mdp, r) if soft else P.value_iteration(mdp, r)
    q = r + 0.8 * np.einsum("sap,p->sa", T, res.v)
    np.testing.assert_allclose(res.q, q, atol=1e-9)
    v = np.log(np.exp(q).sum(1)) if soft else q.max(1)
    np.testing.assert_allclose(res.v, v, atol=1e-9)
    if soft:  # soft value = discounted reward + causal entropy of its own policy
        np.testing.assert_allclose(res.v, P.policy_evaluation(mdp, r - np.log(res.policy), res.policy),
                                   atol=1e-8)


# --------------------------------------------- (d) policy evaluation, returns
@pytest.mark.parametrize("discount", [1.0, 0.9])
@pytest.mark.parametrize("with_terminal", [False, True])
def test_policy_evaluation_matches_enumeration(discount, with_terminal):
    terminal = np.array([False, True, False]) if with_terminal else None
    mdp, T, r = make_mdp(12, discount=discount, terminal=terminal)
    pi = random_policy(np.random.default_rng(4), H, S, A)
    V = P.policy_evaluation(mdp, r, pi)
    assert V.shape == (H + 1, S)
    assert np.all(V[H] == 0)
    for t in range(H):  # V_t(s): the (H - t)-step problem that uses pi[t:]
        en = Enumeration(T, mdp.terminal, H - t, np.ones(S))
        v_enum = en.per_start(en.probs(pi[t:]) * en.step_sum(np.broadcast_to(r, (H - t, S, A)), discount), S)
        np.testing.assert_allclose(V[t], v_enum, atol=1e-13)
    en = Enumeration(T, mdp.terminal, H, mdp.initial)
    ret = float((en.probs(pi) * en.step_sum(np.broadcast_to(r, (H, S, A)), discount)).sum())
    assert P.expected_return(mdp, r, pi) == pytest.approx(ret, abs=1e-13)
    # expected return = <occupancy, reward>
    assert P.expected_return(mdp, r, pi) == pytest.approx(float((P.occupancy_measure(mdp, pi) * r).sum()), abs=1e-13)


def test_infinite_horizon_policy_evaluation_matches_power_series():
    mdp, T, r = make_mdp(13, discount=0.8, horizon=None)
    pi = random_policy(np.random.default_rng(5), S, A)
    P_pi = np.einsum("sa,sap->sp", pi, T)
    v, term = np.zeros(S), (pi * r).sum(1)
    for _ in range(400):
        v += term
        term = 0.8 * P_pi @ term
    np.testing.assert_allclose(P.policy_evaluation(mdp, r, pi), v, atol=1e-9)
    assert P.expected_return(mdp, r, pi) == pytest.approx(float(mdp.initial @ v), abs=1e-9)


def test_state_reward_equals_broadcast_state_action_reward():
    mdp, _, _ = make_mdp(14, discount=0.9)
    rs = np.random.default_rng(6).normal(size=S)
    rsa = np.repeat(rs[:, None], A, 1)
    for fn in (P.soft_value_iteration, P.value_iteration):
        a, b = fn(mdp, rs), fn(mdp, rsa)
        np.testing.assert_array_equal(a.q, b.q)
        np.testing.assert_array_equal(a.policy, b.policy)
    pi = P.soft_value_iteration(mdp, rs).policy
    assert P.expected_return(mdp, rs, pi) == P.expected_return(mdp, rsa, pi)


# ---------------------------------------------------------- (e) terminals
def test_terminal_transition_rows_are_ignored():
    """A terminal state's outgoing transitions (empty or not) never matter."""
    T = random_dynamics(15)
    T_empty = T.copy()
    T_empty[2] = 0.0
    term = np.array([False, False, True])
    a, _, r = make_mdp(15, T=T, terminal=term, discount=0.9)
    b, _, _ = make_mdp(15, T=T_empty, terminal=term, discount=0.9)
    pi = random_policy(np.random.default_rng(7), H, S, A)
    for fn in (lambda m: P.soft_value_iteration(m, r).q, lambda m: P.value_iteration(m, r).v,
               lambda m: P.occupancy_measure(m, pi), lambda m: P.policy_evaluation(m, r, pi)):
        np.testing.assert_array_equal(fn(a), fn(b))
    # Q at a terminal state is r(s, a) at every step: no continuation
    np.testing.assert_array_equal(P.soft_value_iteration(a, r).q[:, 2], np.broadcast_to(r[2], (H, A)))


def test_rollouts_stop_at_terminal_states():
    term = np.array([False, False, True])
    T = 0.6 * random_dynamics(16) + 0.4 * np.eye(S)[2][None, None, :]
    mdp, _, r = make_mdp(16, T=T, terminal=term, discount=1.0)
    mdp = mdp.replace(initial=np.array([0.5, 0.3, 0.2]))  # some episodes start in the terminal state
    pi = P.soft_value_iteration(mdp, r).policy
    n = 20_000
    data = P.rollout(mdp, pi, n, rng=123, reward=r)
    final = data.final_states
    np.testing.assert_array_equal(data.terminated, term[final])
    assert not data.truncated.any()  # finite-horizon MDP: the horizon is part of the problem
    assert np.all(data.lengths[~data.terminated] == H)
    assert np.any(data.lengths == 0) and np.any((data.lengths > 0) & data.terminated)
    # no terminal state anywhere but at the end; actions never recorded in a terminal state
    t_idx, s_idx = data.step_index
    assert not term[s_idx].any()
    # step rewards are r(s_t, a_t) of the recorded actions
    np.testing.assert_array_equal(data.rewards, r[s_idx, data.actions])
    # P(episode ends in the terminal state after k actions) vs enumeration
    en = Enumeration(T, mdp.terminal, H, mdp.initial)
    p = en.probs(pi)
    for k in range(H + 1):
        if k < H:  # enumerated: the terminal action is taken at step k, so k + 1 actions
            want = p[en.ended & (en.n_act == k + 1)].sum()
        else:  # the terminal state is reached by the H-th action: the horizon ends the episode first
            want = p[~en.ended & term[en.states[:, H]]].sum()
        assert want > 0.01
        got = np.mean(data.terminated & (data.lengths == k))
        se = np.sqrt(want * (1 - want) / n)
        assert abs(got - want) <= 5 * se + 1e-12, (k, got, want)
    # mean recorded return + expected reward at the terminal state = expected return
    # (rewards align with actions, so the terminal state's r(s, a) is not in data.rewards)
    rec_ret = np.add.reduceat(data.rewards, data.action_offsets[:-1]) if data.rewards.size else 0
    rec_ret = np.where(data.lengths > 0, rec_ret, 0.0)
    # (reaching the terminal state with the H-th action gives nothing: V_H = 0)
    at_term = data.terminated & (data.lengths < H)
    term_r = np.where(at_term, (pi[np.minimum(data.lengths, H - 1), final] * r[final]).sum(-1), 0.0)
    total = rec_ret + term_r
    want = P.expected_return(mdp, r, pi)
    assert abs(total.mean() - want) <= 5 * total.std() / np.sqrt(n), (total.mean(), want)


# ------------------------------------------------------------ (f) batching
def test_every_planning_function_is_batched():
    rng = np.random.default_rng(17)
    B = 4
    for horizon, discount, terminal in ((H, 1.0, None), (H, 0.9, np.array([False, True, False])),
                                        (None, 0.8, None), (None, 1.0, np.array([False, False, True]))):
        T = random_dynamics(17)
        if horizon is None and discount == 1.0:
            T = 0.7 * T + 0.3 * np.eye(S)[2][None, None, :]
        mdp = irl.TabularMDP.from_arrays(T, discount=discount, horizon=horizon, terminal=terminal)
        R = rng.normal(size=(B, S, A))
        pol_shape = (B, H, S, A) if horizon else (B, S, A)
        PI = rng.dirichlet(np.ones(A), size=pol_shape[:-1])
        for fn in (P.soft_value_iteration, P.value_iteration,
                   lambda m, x: P.soft_value_iteration(m, x, beta=2.5)):
            batch = fn(mdp, R)
            for b in range(B):
                single = fn(mdp, R[b])
                for name in ("q", "v", "policy"):
                    np.testing.assert_allclose(getattr(batch, name)[b], getattr(single, name), atol=1e-12,
                                               err_msg=f"{name} horizon={horizon}")
        D = P.occupancy_measure(mdp, PI)
        SD = P.state_occupancy(mdp, PI)
        V_both = P.policy_evaluation(mdp, R, PI)
        V_r = P.policy_evaluation(mdp, R, PI[0])
        V_pi = P.policy_evaluation(mdp, R[0], PI)
        ER = P.expected_return(mdp, R, PI)
        assert D.shape == pol_shape and ER.shape == (B,)
        for b in range(B):
            np.testing.assert_allclose(D[b], P.occupancy_measure(mdp, PI[b]), atol=1e-13)
            np.testing.assert_allclose(SD[b], P.state_occupancy(mdp, PI[b]), atol=1e-13)
            np.testing.assert_allclose(V_both[b], P.policy_evaluation(mdp, R[b], PI[b]), atol=1e-12)
            np.testing.assert_allclose(V_r[b], P.policy_evaluation(mdp, R[b], PI[0]), atol=1e-12)
            np.testing.assert_allclose(V_pi[b], P.policy_evaluation(mdp, R[0], PI[b]), atol=1e-12)
            assert ER[b] == pytest.approx(P.expected_return(mdp, R[b], PI[b]), abs=1e-12)
        for soft in (True, False):
            rt = torch.tensor(R, requires_grad=True)
            qb = q_values(mdp, rt, soft=soft)
            w = torch.from_numpy(rng.normal(size=qb.shape))
            (qb * w).sum().backward()
            for b in range(B):
                r1 = torch.tensor(R[b], requires_grad=True)
                q1 = q_values(mdp, r1, soft=soft)
                (q1 * w[b]).sum().backward()
                np.testing.assert_allclose(qb[b].detach().numpy(), q1.detach().numpy(), atol=1e-12)
                np.testing.assert_allclose(rt.grad[b].numpy(), r1.grad.numpy(), atol=1e-12)
    with pytest.raises(MDPValidationError, match="reward batch 4 and policy batch 3 differ"):
        P.policy_evaluation(mdp, R, PI[:3])


# ------------------------------------------------------------ (g) gradients
GRAD_CASES = [("finite", H, 1.0, None), ("finite-discounted-terminal", H, 0.9, np.array([False, True, False])),
              ("infinite", None, 0.8, None), ("infinite-terminal", None, 1.0, np.array([False, False, True]))]


@pytest.mark.parametrize("soft", [True, False], ids=["soft", "hard"])
@pytest.mark.parametrize("case", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_q_values_gradcheck(case, soft):
    _, horizon, discount, terminal = case
    T = random_dynamics(18)
    if horizon is None and discount == 1.0:
        T = 0.7 * T + 0.3 * np.eye(S)[2][None, None, :]
    mdp = irl.TabularMDP.from_arrays(T, discount=discount, horizon=horizon, terminal=terminal)
    r = torch.tensor(np.random.default_rng(19).normal(size=(2, S, A)), requires_grad=True)  # a batch of 2
    # hard backups are piecewise linear: make sure the random reward has no near-ties in Q
    q = q_values(mdp, r.detach(), soft=False).numpy()
    gaps = np.abs(np.diff(np.sort(q, -1), axis=-1))
    assert gaps.min() > 1e-4
    assert torch.autograd.gradcheck(lambda x: q_values(mdp, x, soft=soft), (r,), eps=1e-6, atol=1e-6, rtol=1e-5)
    # and through a log-likelihood-like scalar (log-softmax of Q weighted by counts)
    w = torch.from_numpy(np.random.default_rng(20).random(q.shape))
    assert torch.autograd.gradcheck(lambda x: (w * torch.log_softmax(q_values(mdp, x, soft=soft), -1)).sum(),
                                    (r,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_bellman_q_vjp_is_the_adjoint_of_bellman_q():
    """<q_bar, dQ/dr . dr> = <vjp(q_bar), dr> with dQ from central differences.

    bellman_q / bellman_q_vjp take and return the public layout, batch first
    (S != A here, so a transposed layout would be caught).
    """
    for horizon, discount, terminal in ((H, 0.9, None), (H, 1.0, [False, True, False]), (None, 0.8, None)):
        T = random_dynamics(21)
        mdp = irl.TabularMDP.from_arrays(T, discount=discount, horizon=horizon, terminal=terminal)
        rng = np.random.default_rng(22)
        for r in (rng.normal(size=(2, S, A)), rng.normal(size=(S, A))):  # a batch of 2 hypotheses, and one
            for soft in (True, False):
                q, pi = P.bellman_q(mdp, r, soft=soft)
                assert q.shape == r.shape[:-2] + ((H,) if horizon else ()) + (S, A) == pi.shape
                q_bar = rng.normal(size=q.shape)
                dr = rng.normal(size=r.shape)
                eps = 1e-6
                q_plus, _ = P.bellman_q(mdp, r + eps * dr, soft=soft)
                q_minus, _ = P.bellman_q(mdp, r - eps * dr, soft=soft)
                lhs = float((q_bar * (q_plus - q_minus) / (2 * eps)).sum())
                grad = P.bellman_q_vjp(mdp, pi, q_bar)
                assert grad.shape == r.shape
                rhs = float((grad * dr).sum())
                assert lhs == pytest.approx(rhs, rel=1e-6, abs=1e-8), (horizon, soft)


# -------------------------------------------------------------- rollouts
def test_rollout_frequencies_match_occupancy():
    mdp, T, r = make_mdp(23, discount=1.0, horizon=5)
    pi = P.soft_value_iteration(mdp, r).policy
    n = 20_000
    data = P.rollout(mdp, pi, n, rng=7)
    assert len(data) == n and np.all(data.lengths == 5)
    counts = data.counts(S, A, horizon=5) / n
    D = P.occupancy_measure(mdp, pi)  # discount 1: D[t, s, a] = P(s_t = s, a_t = a)
    se = np.sqrt(D * (1 - D) / n)
    z = np.abs(counts - D) / np.maximum(se, 1e-12)
    assert z.max() < 5, z.max()
    assert np.abs(counts - D).max() < 0.02
    # state frequencies at every time step, including the last state s_H
    states = data.states.reshape(n, 6)
    for t in range(6):
        freq = np.bincount(states[:, t], minlength=S) / n
        if t < 5:
            want = D[t].sum(-1)
        else:  # s_H: one more push of the flow
            want = np.einsum("sa,sap->p", D[4], T)
        assert np.all(np.abs(freq - want) <= 5 * np.sqrt(want * (1 - want) / n) + 1e-12), (t, freq, want)


def test_rollout_is_reproducible():
    mdp, _, r = make_mdp(24, discount=0.9)
    pi = P.soft_value_iteration(mdp, r).policy
    a = P.rollout(mdp, pi, 500, rng=11, reward=r)
    b = P.rollout(mdp, pi, 500, rng=11, reward=r)
    c = P.rollout(mdp, pi, 500, rng=12, reward=r)
    d = P.rollout(mdp, pi, 500, rng=np.random.default_rng(11), reward=r)
    for x in (b, d):
        np.testing.assert_array_equal(a.states, x.states)
        np.testing.assert_array_equal(a.actions, x.actions)
        np.testing.assert_array_equal(a.rewards, x.rewards)
    assert not np.array_equal(a.states, c.states)


def test_rollout_in_infinite_horizon_mdp_is_truncated():
    mdp, _, r = make_mdp(25, discount=0.8, horizon=None)
    pi = P.soft_value_iteration(mdp, r).policy
    data = P.rollout(mdp, pi, 50, rng=0, horizon=7)
    assert np.all(data.lengths == 7) and data.truncated.all() and not data.terminated.any()
    with pytest.raises(MDPValidationError, match="needs a horizon"):
        P.rollout(mdp, pi, 5, rng=0)


# ------------------------------------------------------------- bad input
def test_planning_rejects_reward_of_wrong_shape():
    mdp, _, _ = make_mdp(26)
    for bad in (np.zeros(S + 1), np.zeros((A, S)), np.zeros((2, S, A + 1)), np.zeros((S, A, 1)),
                np.zeros((2, 2, S, A))):
        for fn in (P.soft_value_iteration, P.value_iteration,
                   lambda m, x: P.expected_return(m, x, np.full((S, A), 0.5))):
            with pytest.raises(MDPValidationError, match=r"reward must have shape .*got \("):
                fn(mdp, bad)
    with pytest.raises(MDPValidationError, match=r"reward must have shape"):
        q_values(mdp, torch.zeros(S + 1))
    with pytest.raises(MDPValidationError, match=r"reward\[1, 0\] must be finite: got nan"):
        P.soft_value_iteration(mdp, np.array([[0, 0], [np.nan, 0], [0, 0]]))
    with pytest.raises(MDPValidationError, match="reward must be finite"):
        q_values(mdp, torch.tensor([0.0, float("inf"), 0.0]))
    with pytest.raises(MDPValidationError, match="beta must be > 0: got 0"):
        P.soft_value_iteration(mdp, np.zeros(S), beta=0.0)


def test_planning_rejects_policy_of_wrong_shape():
    mdp, _, _ = make_mdp(27)
    with pytest.raises(MDPValidationError, match=r"policy must end in \(S, A\) = \(3, 2\): got \(3, 3, 3\)"):
        P.occupancy_measure(mdp, np.full((H, S, S), 1 / 3))
    with pytest.raises(MDPValidationError, match="policy must have 3 time steps: got 4"):
        P.occupancy_measure(mdp, np.full((2, 4, S, A), 0.5))
    with pytest.raises(MDPValidationError, match=r"initial must have shape \(3,\)"):
        P.occupancy_measure(mdp, np.full((H, S, A), 0.5), initial=[1.0, 0.0])


def test_soft_value_iteration_without_terminals_at_discount_one_raises():
    mdp, _, r = make_mdp(28, discount=1.0, horizon=None)
    with pytest.raises(P.ConvergenceError, match=r"soft value iteration did not converge in max_iter = 300 sweeps"
                       r".*discount = 1\.0.*terminal state"):
        P.soft_value_iteration(mdp, r, max_iter=300)
    # occupancy and policy evaluation: I - P_pi is singular; a direct solve would return NaN or
    # huge finite garbage, so the planner must detect the non-terminating states itself
    pi = np.full((S, A), 0.5)
    with pytest.raises(P.ConvergenceError, match=r"the discounted flow is infinite: with discount =? ?1 and no "
                       r"finite horizon.*terminal state.*from state\S* \[?0\b.* it never does"):
        P.occupancy_measure(mdp, pi)
    with pytest.raises(P.ConvergenceError, match=r"the value of the policy is infinite.*from state\S* \[?0\b"):
        P.policy_evaluation(mdp, r, pi)
    # only the states that cannot reach a terminal state are named
    T = np.zeros((4, 2, 4))
    T[0, :, 1] = T[1, :, 2] = T[2, :, 2] = T[3, 0, 3] = T[3, 1, 0] = 1.0  # 3 loops on itself under action 0
    chain = irl.TabularMDP.from_arrays(T, discount=1.0, terminal=[False, False, True, False], initial=[1, 0, 0, 0])
    loop = np.array([[1.0, 0.0]] * 4)
    with pytest.raises(P.ConvergenceError, match=r"from state\S* \[?3\]? it never does"):
        P.occupancy_measure(chain, loop)
    leave = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0]])
    np.testing.assert_allclose(P.occupancy_measure(chain, leave)[:, 0], [1, 1, 1, 0])
    np.testing.assert_allclose(P.policy_evaluation(chain, np.ones(4), leave), [3, 2, 1, 4])
