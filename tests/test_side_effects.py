"""Side-effect penalties (irl.side_effects): exact reachability, baselines, penalised planning, RLSP's comparisons.

* reachability against brute force (all deterministic policies of a tiny
  stochastic MDP, all Markov policies for the finite-horizon variants, shortest
  paths on a deterministic gridworld);
* every penalty is zero along its baseline, and the stepwise attainable-utility
  penalty is Turner et al.'s ``|Q(s, a) - Q(s, noop)|`` from the planner's Q-values;
* planning a time-indexed (inaction-baseline) penalty on the unrolled MDP equals
  enumerating every action sequence;
* in the vase room the specified reward breaks the vase and every penalised
  planner avoids it while still reaching the goal;
* the "deviation" and "reachability" columns of RLSP's Table 1 (Shah et al. 2019),
  cell by cell against the authors' numbers (``reference_results.json``, produced
  by running their code; required: the test fails, not skips, without it).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path

import irl
from irl import planning, side_effects as se
from irl.envs import rlsp
from irl.mdp import MDPValidationError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "extdata" / "rlsp-gridworlds"
KEYS = {"rlsp-room": "room_default", "rlsp-train": "train_default", "rlsp-apples": "apples_default",
        "rlsp-batteries-easy": "batteries_easy", "rlsp-batteries": "batteries_default",
        "rlsp-room-bad": "room_bad"}


@pytest.fixture(scope="module")
def reference() -> dict:
    path = DATA / "reference_results.json"
    if not path.is_file():
        pytest.fail(f"RLSP reference results missing: {path} not found (see the SOURCE.md beside it)", pytrace=False)
    return json.loads(path.read_text())["results"]


def _bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "rlsp_table.py"
    spec = importlib.util.spec_from_file_location("rlsp_table", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["rlsp_table"] = mod
    spec.loader.exec_module(mod)
    return mod


def tiny_mdp(S: int = 4, A: int = 2, seed: int = 0, horizon: int | None = None) -> irl.TabularMDP:
    """A random sparse stochastic MDP with an irreversible part: state S-1 is absorbing."""
    rng = np.random.default_rng(seed)
    P = np.zeros((S, A, S))
    for s in range(S):
        for a in range(A):
            nxt = rng.choice(S, size=2, replace=False)
            P[s, a, nxt] = rng.dirichlet([1.0, 1.0])
    P[S - 1] = 0.0
    P[S - 1, :, S - 1] = 1.0
    init = np.zeros(S)
    init[0] = 1.0
    return irl.TabularMDP(transitions=sp.csr_matrix(P.reshape(S * A, S)), n_states=S, n_actions=A, initial=init,
                          horizon=horizon, action_names=tuple(["stay"] + [f"a{i}" for i in range(1, A)]))


# ------------------------------------------------------------------ reachability
def test_discounted_reachability_is_the_best_policy_by_brute_force():
    env = tiny_mdp(S=5, A=2, seed=3)
    S, A, g = env.n_states, env.n_actions, 0.9
    P = env.dense_transitions()
    brute = np.zeros((S, S))
    for y in range(S):
        for pol in itertools.product(range(A), repeat=S):  # stationary deterministic policies are optimal
            M = g * P[np.arange(S), list(pol)]
            M[y] = 0.0  # y is reached: stop
            b = np.zeros(S)
            b[y] = 1.0
            brute[:, y] = np.maximum(brute[:, y], np.linalg.solve(np.eye(S) - M, b))
    R = se.reachability(env, discount=g)
    np.testing.assert_allclose(R, brute, atol=1e-10)
    assert np.all(R[S - 1, :S - 1] == 0) and R[S - 1, S - 1] == 1  # nothing leaves the absorbing state


def _markov_policies(S: int, A: int, h: int):
    return itertools.product(itertools.product(range(A), repeat=S), repeat=h)


def test_finite_horizon_reachability_by_brute_force_over_markov_policies():
    env = tiny_mdp(S=3, A=2, seed=5)
    S, A, h, g = 3, 2, 3, 0.8
    P = env.dense_transitions()
    within = np.zeros((S, S))
    exactly = np.zeros((S, S))
    for y in range(S):
        for pols in _markov_policies(S, A, h):
            # within h: first passage discounted by g^steps; exactly h: P(s_h = y)
            reached = np.zeros(S)
            reached[y] = 1.0  # value-to-go of "already at y" at every stage
            v_within = reached.copy()
            v_exact = reached.copy()
            for t in reversed(range(h)):
                Pt = P[np.arange(S), list(pols[t])]
                v_within = np.where(np.arange(S) == y, 1.0, g * Pt @ v_within)
                v_exact = Pt @ v_exact
            within[:, y] = np.maximum(within[:, y], v_within)
            exactly[:, y] = np.maximum(exactly[:, y], v_exact)
    np.testing.assert_allclose(se.reachability(env, discount=g, horizon=h), within, atol=1e-12)
    np.testing.assert_allclose(se.reachability(env, horizon=h, at_horizon=True), exactly, atol=1e-12)


def test_reachability_on_a_deterministic_world_is_discount_to_the_shortest_path():
    env = irl.envs.make("rlsp-train")
    S, A = env.n_states, env.n_actions
    adj = sp.csr_matrix((env.transitions.toarray().reshape(S, A, S).max(axis=1)))
    dist = shortest_path(adj, unweighted=True)
    want = np.where(np.isfinite(dist), 0.9 ** np.where(np.isfinite(dist), dist, 0), 0.0)
    np.testing.assert_allclose(se.reachability(env, discount=0.9), want, atol=1e-12)


# ------------------------------------------------------------------ penalties
@pytest.fixture(scope="module")
def room():
    return rlsp.problem("rlsp-room")


@pytest.mark.parametrize("make", [se.relative_reachability, se.attainable_utility, se.feature_deviation])
@pytest.mark.parametrize("baseline", se.BASELINES)
def test_penalty_is_zero_along_the_baseline(room, make, baseline):
    env = room.mdp
    pen = make(env, baseline=baseline)
    noop, s0 = 4, room.observed_state  # the action named "stay"
    assert pen.noop == (None if baseline == "starting" else noop) and np.all(pen.table >= 0)
    if baseline == "stepwise":
        assert pen.table.shape == (env.n_states, env.n_actions)
        assert np.all(pen.table[:, noop] == 0)
    elif baseline == "starting":
        assert pen.table.shape == (env.n_states,) and pen.table[s0] == 0
    else:
        assert pen.table.shape == (env.horizon, env.n_states)
        s = s0
        for t in range(env.horizon):  # the no-op rollout from s_0 is the baseline
            assert pen.table[t, s] == 0
            s = int(env.transitions[s * env.n_actions + noop].indices[0])
    # the policy that always takes the no-op collects no penalty at all
    stay = np.zeros((env.horizon, env.n_states, env.n_actions))
    stay[..., noop] = 1.0
    pen_reward = se.penalised_reward(env, np.zeros(env.n_states), pen)
    if pen_reward.ndim == 2:
        assert planning.expected_return(env, pen_reward, stay) == pytest.approx(0.0, abs=1e-12)
    else:
        D = planning.occupancy_measure(env, stay)
        assert float((D * pen_reward).sum()) == pytest.approx(0.0, abs=1e-12)
    # ... and breaking the vase costs something under every measure and baseline
    broken = np.array(["broken" in room.state_label(s) for s in range(env.n_states)])
    flat = pen.table if pen.table.ndim == 1 else pen.table.max(axis=0) if baseline == "inaction" else None
    if flat is not None:
        assert flat[broken].min() > 0


def test_stepwise_attainable_utility_is_turners_q_difference(room):
    env = room.mdp
    rng = np.random.default_rng(1)
    aux = rng.uniform(size=(6, env.n_states))
    g = 0.95
    pen = se.attainable_utility(env, aux, discount=g)
    aux_sa = np.repeat(aux[:, :, None], env.n_actions, axis=2)
    q = planning.value_iteration(env.replace(discount=g, horizon=None), aux_sa).q  # (N, S, A)
    turner = np.abs(q - q[:, :, pen.noop:pen.noop + 1]).mean(axis=0) / g
    np.testing.assert_allclose(pen.table, turner, atol=1e-8)


def test_normalize_and_weight(room):
    pen = se.relative_reachability(room.mdp, baseline="starting", normalize=True, weight=3.0)
    assert pen.table.max() == 1.0 and pen.weight == 3.0
    assert pen.scaled(0.5).weight == 0.5 and pen.scaled(0.5).table is pen.table
    r = se.penalised_reward(room.mdp, np.zeros(room.mdp.n_states), pen)
    np.testing.assert_allclose(r, -3.0 * np.repeat(pen.table[:, None], 5, axis=1))


# ------------------------------------------------------------------ planning
def test_time_indexed_penalty_planning_equals_enumerating_action_sequences():
    env = tiny_mdp(S=4, A=2, seed=2, horizon=3)
    S, A, H = 4, 2, 3
    task = np.random.default_rng(0).normal(size=S)
    pen = se.relative_reachability(env, baseline="inaction", discount=0.9, weight=2.0)
    r = se.penalised_reward(env, task, pen)  # (H, S, A)
    P = env.dense_transitions()
    # brute force over Markov policies: the optimum of a finite-horizon MDP is a deterministic Markov policy
    best = -np.inf
    for pols in _markov_policies(S, A, H):
        d = env.initial.copy()
        total = 0.0
        for t in range(H):
            a = np.array(pols[t])
            total += float(d @ r[t, np.arange(S), a])
            d = d @ P[np.arange(S), a]
        best = max(best, total)
    res = se.plan_penalised(env, task, pen)
    assert res.q.shape == (H, S, A) and res.v.shape == (H + 1, S)
    assert float(res.v[0] @ env.initial) == pytest.approx(best, abs=1e-12)
    D = planning.occupancy_measure(env, res.policy)
    assert float((D * r).sum()) == pytest.approx(best, abs=1e-12)
    # a stationary reward planned on the unrolled MDP is the ordinary plan
    direct = planning.value_iteration(env, task)
    unrolled = planning.value_iteration(se.time_expanded(env), np.tile(task, H))
    np.testing.assert_allclose(unrolled.v[0, :S], direct.v[0], atol=1e-12)


def _p_broken(prob, policy) -> float:
    env = prob.mdp
    D = planning.occupancy_measure(env, policy)[-1].sum(axis=-1)
    broken = np.array(["broken" in prob.state_label(s) for s in range(env.n_states)])
    return float(D[broken].sum())


@pytest.mark.parametrize("make", [se.relative_reachability, se.attainable_utility])
@pytest.mark.parametrize("baseline", se.BASELINES)
def test_penalised_planner_leaves_the_vase_intact(room, make, baseline):
    env = room.mdp
    task, true = room.reward(room.task_weights), room.reward(room.true_weights)
    spec = rlsp._first_greedy(planning.value_iteration(env, task).q)  # the authors' tie-breaking: it walks through
    assert _p_broken(room, spec) == 1.0
    assert _p_broken(room, irl.plan(env, task)) > 0.4  # even ties: breaks it with probability > 0.4
    pen = make(env, baseline=baseline)
    pi = irl.plan(env, task, penalty=pen)
    assert _p_broken(room, pi) == 0.0
    # ... and still does the task: as well as a planner that knows the true reward
    best = planning.expected_return(env, true, irl.plan(env, true))
    assert planning.expected_return(env, true, pi) == pytest.approx(best, abs=1e-9)
    assert planning.expected_return(env, task, pi) == pytest.approx(best, abs=1e-9)
    soft = irl.plan(env, task, penalty=pen, objective="soft", beta=5.0)
    assert soft.shape == pi.shape and np.allclose(soft.sum(-1), 1.0)


# ---------------------------------------------------------- RLSP's comparisons
@pytest.mark.parametrize("name", list(KEYS))
def test_deviation_column_of_the_rlsp_table(name, reference):
    prob = rlsp.problem(name)
    bench = _bench()
    frac, weights = bench.cell(prob, "deviation")
    assert frac == pytest.approx(reference[KEYS[name]]["deviation"]["true_reward_fraction"], abs=1e-5)
    np.testing.assert_allclose(weights, reference[KEYS[name]]["deviation"]["final_reward_vector"])
    assert reference[KEYS[name]]["deviation"]["deviation_weight"] == bench.DEVIATION_WEIGHT


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "rlsp-apples" else n
                                  for n in KEYS])
def test_reachability_column_of_the_rlsp_table(name, reference):
    prob = rlsp.problem(name)
    frac, _ = _bench().cell(prob, "reachability")
    ref = reference[KEYS[name]]["reachability"]["true_reward_fraction"]
    assert frac == pytest.approx(ref, abs=1e-5)
    # the penalty matters where the table says so: the vase rooms are saved, batteries-easy is hurt
    spec = reference[KEYS[name]]["spec"]["true_reward_fraction"]
    if name in ("rlsp-room", "rlsp-train", "rlsp-room-bad"):
        assert spec < 0.6 and frac == 1.0
    if name == "rlsp-batteries-easy":
        assert spec == 1.0 and frac < 0.9


# ------------------------------------------------------------------ bad input
def test_bad_inputs_are_explained(room):
    env = room.mdp
    with pytest.raises(MDPValidationError, match="unknown baseline 'inactive'; known: starting, inaction, stepwise"):
        se.relative_reachability(env, baseline="inactive")
    with pytest.raises(MDPValidationError, match="unknown deviation measure 'l1'"):
        se.penalty(env, env.features, deviation="l1")
    with pytest.raises(MDPValidationError, match="needs a finite horizon"):
        se.relative_reachability(env.replace(horizon=None, discount=0.9), baseline="inaction")
    with pytest.raises(MDPValidationError, match="pass start="):
        se.feature_deviation(env.replace(initial=np.full(env.n_states, 1 / env.n_states)))
    with pytest.raises(MDPValidationError, match="pass noop="):
        se.attainable_utility(env.replace(action_names=("n", "s", "e", "w", "x")), n_rewards=2)
    with pytest.raises(MDPValidationError, match=r"noop must be an action index in \[0, 5\): got 7"):
        se.feature_deviation(env, noop=7)
    # the starting baseline compares states with the start state: no no-op needed (a given one is still checked)
    nameless = env.replace(action_names=("n", "s", "e", "w", "x"))
    start = se.relative_reachability(nameless, baseline="starting")
    np.testing.assert_array_equal(start.table, se.relative_reachability(env, baseline="starting").table)
    assert start.noop is None
    with pytest.raises(MDPValidationError, match=r"noop must be an action index in \[0, 5\): got 9"):
        se.relative_reachability(nameless, baseline="starting", noop=9)
    with pytest.raises(MDPValidationError, match="discount must be in"):
        se.reachability(env, discount=0.0)
    with pytest.raises(MDPValidationError, match="at_horizon=True needs a horizon"):
        se.reachability(env, at_horizon=True)
    with pytest.raises(MDPValidationError, match=r"auxiliary values must have shape \(S, N\) = \(29, N\)"):
        se.penalty(env, np.zeros((3, 2)))
    pen = se.relative_reachability(env, baseline="inaction")
    with pytest.raises(MDPValidationError, match=r"needs \(10, 29\): build the penalty for this MDP"):
        irl.plan(env.replace(horizon=10), env.true_reward, penalty=pen)
    with pytest.raises(ValueError, match="cannot be combined with a side-effect penalty"):
        irl.plan(env, env.true_reward, penalty=pen, objective="cvar")
    with pytest.raises(MDPValidationError, match="must be finite and >= 0"):
        pen.scaled(-1.0)


# ------------------------------------------------------------------ command line
def test_command_line_plans_with_a_penalty(room, tmp_path):
    from typer.testing import CliRunner

    from irl.cli import app
    from irl.plan import load_policy

    env = room.mdp
    task = np.repeat(room.reward(room.task_weights)[:, None], env.n_actions, axis=1)
    reward = tmp_path / "reward.npz"
    irl.RewardEstimate(reward=task, theta=room.task_weights.copy(), log_likelihood=0.0,
                       info={"env": env.name}).save(str(reward))
    runner = CliRunner()
    out = tmp_path / "policy.npz"
    res = runner.invoke(app, ["side-effects", str(reward), "--env", "rlsp-room", "--baseline", "inaction",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "relative reachability penalty, inaction baseline, weight 1" in " ".join(res.output.split())
    policy, meta = load_policy(out)
    pen = se.relative_reachability(env, baseline="inaction")
    np.testing.assert_allclose(policy, irl.plan(env, task, penalty=pen))
    assert meta["penalty"] == "relative-reachability" and _p_broken(room, policy) == 0.0
    res = runner.invoke(app, ["side-effects", str(reward), "--env", "rlsp-room", "--measure", "vase", "--out",
                              str(out)])
    assert res.exit_code == 2 and "unknown --measure 'vase'; known: relative-reachability" in res.output
    res = runner.invoke(app, ["side-effects", str(reward), "--env", "rlsp-room", "--baseline", "never", "--out",
                              str(out)])
    assert res.exit_code == 2 and "unknown --baseline 'never'; known: starting, inaction, stepwise" in res.output


@pytest.mark.parametrize("extra, message", [
    (["--weight", "-1"], "--weight must be a finite number >= 0: got -1.0"),
    (["--weight", "nan"], "--weight must be a finite number >= 0: got nan"),
    (["--discount", "0"], "--discount must be a finite number in (0, 1]: got 0.0"),
    (["--measure", "attainable-utility", "--discount", "1.5"], "--discount must be a finite number in [0, 1]: got 1.5"),
    (["--noop", "9"], "--noop must be an action index of 'rlsp-room', in [0, 5): got 9"),
    (["--baseline", "inaction", "--start", "99"], "--start must be a state index of 'rlsp-room', in [0, 29): got 99"),
    (["--objective", "soft", "--beta", "-1"], "--beta must be a finite number > 0: got -1.0"),
    (["--objective", "cvar"], "--objective 'cvar' cannot be combined with a side-effect penalty"),
    # options the chosen measure, baseline or objective would ignore
    (["--n-rewards", "5"], "--n-rewards only applies to --measure attainable-utility, not --measure "
                           "relative-reachability"),
    (["--seed", "3"], "--seed only applies to --measure attainable-utility"),
    (["--measure", "feature-deviation", "--discount", "0.5"], "--discount only applies to --measure "
                                                                "relative-reachability or attainable-utility"),
    (["--start", "3"], "--start only applies to --baseline starting or inaction, not --baseline stepwise"),
    (["--baseline", "starting", "--noop", "4"], "--noop only applies to --baseline inaction or stepwise"),
    (["--beta", "2"], "--beta only applies to --objective soft, not --objective optimal"),
])
def test_command_line_refuses_bad_and_ignored_options(room, tmp_path, extra, message):
    from typer.testing import CliRunner

    from irl.cli import app

    reward = tmp_path / "reward.npz"
    irl.RewardEstimate(reward=np.zeros((room.mdp.n_states, room.mdp.n_actions)), theta=room.task_weights.copy(),
                       log_likelihood=0.0, info={"env": "rlsp-room"}).save(str(reward))
    out = tmp_path / "policy.npz"
    res = CliRunner().invoke(app, ["side-effects", str(reward), "--env", "rlsp-room", *extra, "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert res.stderr.strip() == f"Error: {message}" or message in res.stderr, res.stderr
    assert "Traceback" not in res.output and not out.exists()


def test_inaction_baseline_stays_in_a_terminal_state():
    # a chain 0 -> 1 -> 2 (terminal) under the no-op; "jump" goes to 2 at once
    S, A = 3, 2
    P = np.zeros((S, A, S))
    P[0, 0, 1] = P[1, 0, 2] = 1.0
    P[0, 1, 2] = P[1, 1, 2] = 1.0
    init = np.array([1.0, 0.0, 0.0])
    env = irl.TabularMDP(transitions=sp.csr_matrix(P.reshape(S * A, S)), n_states=S, n_actions=A, initial=init,
                         horizon=4, terminal=np.array([False, False, True]), action_names=("noop", "jump"))
    pen = se.feature_deviation(env, baseline="inaction", features=np.eye(S))
    # baseline: 0, 1, 2, 2 -> zero penalty there, sqrt(2) elsewhere
    np.testing.assert_allclose(pen.table, np.sqrt(2) * (1 - np.eye(S)[[0, 1, 2, 2]]))


def test_infinite_horizon_stationary_penalties():
    env = irl.envs.make("gridworld-5x5").replace(horizon=None, discount=0.9)
    for pen in (se.relative_reachability(env, baseline="stepwise", weight=2.0),
                se.attainable_utility(env, baseline="starting", start=0, n_rewards=4)):
        pi = irl.plan(env, env.true_reward, penalty=pen)
        assert pi.shape == (env.n_states, env.n_actions)
        direct = planning.value_iteration(env, se.penalised_reward(env, env.true_reward, pen)).policy
        np.testing.assert_allclose(pi, direct)


# ------------------------------------------------------- inaction rollouts
def conveyor() -> irl.TabularMDP:
    """A vase on a shelf (0), on a conveyor belt (1), broken (2, absorbing); actions stay, push, lift.

    Pushing the vase onto the belt is harmless for one step: lifting it off again
    is still possible, but if nothing is done the belt carries it off the end and
    it breaks. The harm is *delayed*: it happens on the no-op, so a stepwise
    penalty without rollouts never sees it.
    """
    S, A = 3, 3
    nxt = np.array([[0, 1, 0],    # shelf: stay, push onto the belt, lift (nothing to lift)
                    [2, 2, 0],    # belt: the belt moves it off the end (stay, push) or it is lifted back
                    [2, 2, 2]])   # broken
    P = np.zeros((S, A, S))
    P[np.arange(S)[:, None], np.arange(A)[None], nxt] = 1.0
    return irl.TabularMDP.from_arrays(P, initial=np.array([1.0, 0, 0]), discount=0.9,
                                      action_names=("stay", "push", "lift"))


def test_inaction_rollouts_penalise_a_delayed_effect_when_it_is_caused():
    env, g = conveyor(), 0.99
    R = se.reachability(env, discount=g)
    np.testing.assert_allclose(R, [[1, g, g * g], [g, 1, g], [0, 0, 1]], atol=1e-12)
    d_belt = (1 - g) / 3   # d(belt; shelf): only the shelf is one step further away
    d_broken = (1 + g) / 3  # d(broken; shelf): shelf and belt are lost
    plain = se.relative_reachability(env, discount=g)
    assert plain.table[0, 1] == pytest.approx(d_belt, abs=1e-12)
    assert plain.table[1, :2].max() == pytest.approx(0.0, abs=1e-12)  # the break itself is the baseline's outcome
    d_lift = (1 - g * g) / 3  # lifting it back makes "broken" (reachable from the belt) two steps away
    assert plain.table[1, 2] == pytest.approx(d_lift, abs=1e-12)
    for K in (1, 5, 40):  # the no-op reaches a fixed point after one step: every K >= 1 gives the same
        rolled = se.relative_reachability(env, discount=g, rollout=K)
        assert rolled.table[0, 1] == pytest.approx((1 - g) * d_belt + g * d_broken, abs=1e-12)
        assert np.all(rolled.table[:, 0] == 0.0) and rolled.table[1, 2] == pytest.approx(d_lift, abs=1e-12)
    # hand-rolled for a random stochastic MDP: the weighted deviations of N^k V along both rollouts
    env2 = tiny_mdp(S=5, A=3, seed=4)
    V = se.reachability(env2, discount=0.9)
    P, noop, K, gr = env2.dense_transitions(), 0, 3, 0.8
    N = P[:, noop]
    want = np.zeros((5, 3))
    Vk = V
    for k in range(K + 1):
        w = gr ** k * ((1 - gr) if k < K else 1.0)
        E = P @ Vk  # (S, A, N): E[Vk[s'] | s, a]
        want += w * np.maximum(E[:, noop:noop + 1] - E, 0).mean(-1)
        Vk = N @ Vk
    got = se.penalty(env2, V, baseline="stepwise", rollout=K, rollout_discount=gr)
    np.testing.assert_allclose(got.table, want, atol=1e-12)
    np.testing.assert_allclose(se.penalty(env2, V, rollout=0).table, se.penalty(env2, V).table)


def test_with_rollouts_the_planner_leaves_the_vase_on_the_shelf():
    env = conveyor()
    task = np.zeros((3, 3))
    task[0, 1] = 0.2  # the specified reward pays for pushing the vase onto the belt, and says nothing of breaking
    task[1, 2] = -0.25  # lifting it back is effort (so pushing and lifting in a loop does not pay)
    true = task.copy()
    true[2] = -1.0    # ... but a broken vase costs 1 per step
    plain = irl.plan(env, task, penalty=se.relative_reachability(env, weight=1.0))
    rolled = irl.plan(env, task, penalty=se.relative_reachability(env, weight=1.0, rollout=10))
    assert plain[0].argmax() == 1 and rolled[0].argmax() != 1  # without rollouts it pushes; with them it does not
    ret = planning.expected_return
    assert ret(env, true, plain) == pytest.approx(0.2 - 0.9 ** 2 / (1 - 0.9), abs=1e-9)  # pushed, then broken
    assert ret(env, true, rolled) == pytest.approx(0.0, abs=1e-12)  # the vase stays on the shelf


def test_rollout_errors_and_command_line(room, tmp_path):
    env = room.mdp
    with pytest.raises(MDPValidationError, match="apply to the stepwise baseline only: got baseline 'inaction'"):
        se.relative_reachability(env, baseline="inaction", rollout=2)
    with pytest.raises(MDPValidationError, match=r"rollout must be an integer >= 0 \(no-op steps\): got -1"):
        se.penalty(env, env.features, rollout=-1)
    with pytest.raises(MDPValidationError, match=r"rollout_discount must be a number in \[0, 1\): got 1.0"):
        se.penalty(env, env.features, rollout=2, rollout_discount=1.0)
    from typer.testing import CliRunner

    from irl.cli import app
    from irl.plan import load_policy

    task = np.repeat(room.reward(room.task_weights)[:, None], env.n_actions, axis=1)
    reward = tmp_path / "reward.npz"
    irl.RewardEstimate(reward=task, theta=room.task_weights.copy(), log_likelihood=0.0,
                       info={"env": env.name}).save(str(reward))
    out = tmp_path / "policy.npz"
    res = CliRunner().invoke(app, ["side-effects", str(reward), "--env", "rlsp-room", "--rollout", "5",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    policy, meta = load_policy(out)
    np.testing.assert_allclose(policy, irl.plan(env, task, penalty=se.relative_reachability(env, rollout=5)))
    assert meta["rollout"] == 5 and _p_broken(room, policy) == 0.0
    res = CliRunner().invoke(app, ["side-effects", str(reward), "--env", "rlsp-room", "--rollout", "5",
                                   "--baseline", "inaction", "--out", str(out)])
    assert res.exit_code == 2 and "--rollout 5 applies to --baseline stepwise" in res.output
