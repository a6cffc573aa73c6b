"""Named environments and the gymnasium adapter.

The gymnasium toy-text environments are checked against gymnasium's own
transition tables ``env.unwrapped.P[s][a] = [(p, s', r, done), ...]`` and against
a plain-Python value iteration written here over those tables, so that the
adapter, the terminal-state convention and the planners are tested against an
independent reading of the same environment.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import irl
from irl.envs import UnknownEnvError
from irl.mdp import MDPValidationError


# ----------------------------------------------------------------- helpers
def _table(env_id: str, **kwargs):
    """Dense transitions, expected rewards and the terminal set read directly from gymnasium's P."""
    env = gym.make(env_id, **kwargs)
    P = env.unwrapped.P
    S, A = env.observation_space.n, env.action_space.n
    T = np.zeros((S, A, S))
    R = np.zeros((S, A))
    done_into: set[int] = set()
    for s in range(S):
        for a in range(A):
            for p, nxt, r, done in P[s][a]:
                T[s, a, int(nxt)] += p
                R[s, a] += p * r
                if done:
                    done_into.add(int(nxt))
    return env, P, T, R, done_into


def _plain_value_iteration(P: dict, n_states: int, n_actions: int, horizon: int | None,
                           discount: float = 1.0, sweeps: int = 10_000) -> list[float]:
    """Optimal values from gymnasium's own table, in plain Python (no numpy, no library code).

    A ``done`` transition ends the episode: its reward is paid and nothing follows.
    Finite horizon: backward induction over ``horizon`` steps; otherwise iterate to a fixed point.
    """
    V = [0.0] * n_states
    steps = horizon if horizon is not None else sweeps
    for _ in range(steps):
        new = []
        for s in range(n_states):
            best = -float("inf")
            for a in range(n_actions):
                q = 0.0
                for p, nxt, r, done in P[s][a]:
                    q += p * (r + (0.0 if done else discount * V[int(nxt)]))
                best = max(best, q)
            new.append(best)
        if horizon is None and max(abs(x - y) for x, y in zip(new, V)) < 1e-12:
            return new
        V = new
    return V


# ------------------------------------------------------------- registry
@pytest.mark.parametrize("name", irl.envs.names())
def test_every_registered_env_builds_and_validates(name):
    env = irl.envs.make(name)
    assert isinstance(env, irl.TabularMDP)
    S, A = env.n_states, env.n_actions
    assert env.transitions.shape == (S * A, S)
    sums = np.asarray(env.transitions.sum(axis=1)).ravel().reshape(S, A)
    live = ~env.terminal
    np.testing.assert_allclose(sums[live], 1.0, atol=1e-12)
    assert np.all(env.transitions.data >= 0)
    assert env.initial.sum() == pytest.approx(1.0)
    assert not np.any(env.initial[env.terminal] > 0), "episodes must not start in a terminal state"
    # rebuilding through the validating constructor keeps everything
    again = env.replace()
    # (renormalising rows that already sum to one may move an entry by an ulp)
    assert abs(again.transitions - env.transitions).max() <= 1e-15
    np.testing.assert_array_equal(again.terminal, env.terminal)
    if env.true_reward is None:  # an environment may leave the reward to be inferred
        with pytest.raises(ValueError, match="defines no true reward"):
            irl.envs.true_reward(env)
        return
    truth = irl.envs.true_reward(env)
    assert truth.shape in ((S,), (S, A)) and np.all(np.isfinite(truth))
    # the optimal value exists and is finite (every env is a well-posed planning problem)
    v = irl.metrics.optimal_return(env, truth)
    assert np.isfinite(v)
    # and no policy does better than the optimal one
    uniform = np.full((S, A), 1.0 / A)
    assert irl.metrics.policy_return(env, uniform, truth) <= v + 1e-9


def test_unknown_env_lists_known_names():
    with pytest.raises(UnknownEnvError) as exc:
        irl.envs.make("gridworld-3x3x3")
    msg = str(exc.value)
    assert "gridworld-3x3x3" in msg
    for name in irl.envs.names():
        assert name in msg
    assert isinstance(exc.value, KeyError)


def test_true_reward_missing_is_an_error():
    T = np.full((2, 1, 2), 0.5)
    mdp = irl.TabularMDP.from_arrays(T, horizon=2, name="bare")
    with pytest.raises(ValueError, match="'bare' defines no true reward"):
        irl.envs.true_reward(mdp)


# -------------------------------------------------------- gymnasium adapter
def test_frozenlake_matches_gymnasium_table():
    env, P, T, R, done_into = _table("FrozenLake-v1")
    mdp = irl.TabularMDP.from_gymnasium("FrozenLake-v1")
    np.testing.assert_allclose(mdp.dense_transitions(), T, atol=1e-12)
    desc = np.asarray(env.unwrapped.desc).ravel()
    holes_and_goal = {int(i) for i in np.flatnonzero((desc == b"H") | (desc == b"G"))}
    assert holes_and_goal == done_into == {5, 7, 11, 12, 15}
    assert set(np.flatnonzero(mdp.terminal).tolist()) == holes_and_goal
    # expected rewards: gymnasium pays nothing from a terminal state, and this library neither
    np.testing.assert_allclose(mdp.true_reward, R, atol=1e-12)
    assert np.all(mdp.true_reward[mdp.terminal] == 0)
    # the reward is the probability of slipping into the goal: 1/3 from 14 moving down/right/up
    assert mdp.true_reward[14].tolist() == pytest.approx([0.0, 1 / 3, 1 / 3, 1 / 3])
    assert mdp.horizon == 100 == env.spec.max_episode_steps
    assert mdp.initial.tolist() == [1.0] + [0.0] * 15
    assert mdp.grid_shape == (4, 4)
    # the registered name builds the same MDP
    reg = irl.envs.make("frozenlake-4x4")
    assert (reg.transitions != mdp.transitions).nnz == 0


def test_registered_gymnasium_envs_keep_gymnasium_time_limits():
    for name, env_id in (("frozenlake-4x4", "FrozenLake-v1"), ("frozenlake-8x8", "FrozenLake8x8-v1"),
                         ("taxi", "Taxi-v3")):
        mdp = irl.envs.make(name)
        env, P, T, R, _ = _table(env_id)
        assert mdp.horizon == env.spec.max_episode_steps, name
        np.testing.assert_allclose(mdp.dense_transitions(), T, atol=1e-12)
        summary = dict(irl.envs.describe())[name]
        assert f"horizon {mdp.horizon}" in summary, (name, summary)
    assert irl.envs.make("frozenlake-8x8").horizon == 200


@pytest.mark.parametrize("env_id", ["Taxi-v3", "CliffWalking-v0"])
def test_from_gymnasium_taxi_and_cliffwalking(env_id):
    env, P, T, R, done_into = _table(env_id)
    mdp = irl.TabularMDP.from_gymnasium(env_id)
    S, A = env.observation_space.n, env.action_space.n
    assert (mdp.n_states, mdp.n_actions) == (S, A)
    np.testing.assert_allclose(mdp.dense_transitions(), T, atol=1e-12)
    assert set(np.flatnonzero(mdp.terminal).tolist()) == done_into and done_into
    live = ~mdp.terminal
    np.testing.assert_allclose(mdp.true_reward[live], R[live], atol=1e-12)
    # a terminal state ends the episode: it pays nothing, whatever its table says
    assert np.all(mdp.true_reward[mdp.terminal] == 0)
    np.testing.assert_allclose(mdp.initial, env.unwrapped.initial_state_distrib)
    assert mdp.horizon == env.spec.max_episode_steps


def test_cliffwalking_optimal_return_is_13_steps():
    """The shortest safe path along the cliff edge is 13 moves of reward -1 (Sutton & Barto, Ex. 6.6)."""
    env, P, T, R, _ = _table("CliffWalking-v0")
    mdp = irl.envs.make("cliffwalking")
    start = int(np.flatnonzero(mdp.initial)[0])
    plain = _plain_value_iteration(P, mdp.n_states, mdp.n_actions, horizon=None)
    assert plain[start] == pytest.approx(-13.0)
    assert irl.metrics.optimal_return(mdp, mdp.true_reward) == pytest.approx(-13.0, abs=1e-9)
    v = irl.planning.value_iteration(mdp, mdp.true_reward).v
    live = ~mdp.terminal
    np.testing.assert_allclose(v[live], np.asarray(plain)[live], atol=1e-8)


def test_frozenlake_optimal_success_probability():
    """With 100 steps the best a FrozenLake 4x4 agent can do is reach the goal about 74% of the time."""
    env, P, T, R, _ = _table("FrozenLake-v1")
    mdp = irl.envs.make("frozenlake-4x4")
    plain = _plain_value_iteration(P, 16, 4, horizon=100)
    ours = irl.planning.value_iteration(mdp, mdp.true_reward)
    assert ours.v.shape == (101, 16)
    np.testing.assert_allclose(ours.v[0][~mdp.terminal], np.asarray(plain)[~mdp.terminal], atol=1e-12)
    v_opt = irl.metrics.optimal_return(mdp, mdp.true_reward)
    assert v_opt == pytest.approx(plain[0], abs=1e-12)
    assert v_opt == pytest.approx(0.74, abs=0.01)
    # with fewer steps the success probability can only drop
    short = irl.envs.make("frozenlake-4x4", horizon=20)
    assert irl.metrics.optimal_return(short, short.true_reward) < v_opt - 0.05


def test_frozenlake_rollouts_agree_with_expected_return():
    mdp = irl.envs.make("frozenlake-4x4")
    truth = mdp.true_reward
    policy = irl.plan(mdp, truth)
    expected = irl.planning.expected_return(mdp, truth, policy)
    n = 4000
    data = irl.planning.rollout(mdp, policy, n, rng=1, reward=truth)
    episode = np.repeat(np.arange(n), data.lengths)
    returns = np.bincount(episode, weights=data.rewards, minlength=n)
    success = (data.final_states == 15).astype(float)
    se = np.sqrt(expected * (1 - expected) / n)
    assert abs(returns.mean() - expected) < 4 * se
    assert abs(success.mean() - expected) < 4 * se
    # episodes end exactly at holes or the goal, or run the full 100 steps
    ended = data.terminated
    assert np.all(mdp.terminal[data.final_states[ended]])
    assert np.all(data.lengths[~ended] == 100)

    # the same policy run in gymnasium's own environment
    genv = gym.make("FrozenLake-v1")
    rng = np.random.default_rng(2)
    wins, n_gym = 0, 600
    for i in range(n_gym):
        s, _ = genv.reset(seed=1000 + i)
        for t in range(100):
            a = int(rng.choice(4, p=policy[t, s]))
            s, r, term, trunc, _ = genv.step(a)
            if term or trunc:
                break
        wins += r > 0
    se_gym = np.sqrt(expected * (1 - expected) / n_gym)
    assert abs(wins / n_gym - expected) < 4 * se_gym


# -------------------------------------------------------- gridworld checks
@pytest.mark.parametrize("slip", [-0.1, 1.5])
def test_gridworld_bad_slip(slip):
    with pytest.raises(MDPValidationError, match=rf"slip must lie in \[0, 1\]: got {slip}"):
        irl.envs.gridworld(4, slip=slip)


@pytest.mark.parametrize("terrain", [np.zeros((3, 4), int), np.full((4, 4), 4), np.full((4, 4), -1)])
def test_gridworld_bad_terrain(terrain):
    with pytest.raises(MDPValidationError, match=r"terrain must be a \(4, 4\) array of ints in 0\.\.3"):
        irl.envs.gridworld(4, terrain=terrain)


def test_gridworld_bad_weights_and_size():
    with pytest.raises(MDPValidationError, match="weights must have 4 entries"):
        irl.envs.gridworld(3, weights=(1.0, 0.0))
    with pytest.raises(MDPValidationError, match="grid must be at least 1x1: got 0x3"):
        irl.envs.gridworld(0, 3)


def test_gridworld_dynamics_and_reward():
    env = irl.envs.gridworld(3, 4, slip=0.2, terrain=np.array([[1, 1, 2, 3], [1, 3, 1, 1], [2, 1, 1, 0]]))
    T = env.dense_transitions()
    # from the top-left corner, "up" is blocked: stays with 0.8 + slip mass of stay/up/left (3 * 0.04)
    assert T[0, 1, 0] == pytest.approx(0.8 + 3 * 0.04)
    assert T[0, 1, 1] == pytest.approx(0.04) and T[0, 1, 4] == pytest.approx(0.04)
    # "right" from cell (1, 1) = state 5 goes to state 6 with 0.8 + 0.04
    assert T[5, 4, 6] == pytest.approx(0.84)
    np.testing.assert_allclose(T.sum(-1), 1.0)
    assert env.true_reward[11] == 1.0 and env.true_reward[3] == -1.0 and env.true_reward[2] == -0.3
    assert env.horizon == 2 * (3 + 4) and env.grid_shape == (3, 4)
