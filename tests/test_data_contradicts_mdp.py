"""Data that contradict the MDP they are bound to: each an error naming the episode and step,
with an explicit ``irl.Evidence(..., allow=...)`` for the cases a user may want."""

from __future__ import annotations

import numpy as np
import pytest

import demos
import human_models as hm
import irl
from demos import DemoValidationError


def _chain():
    """0 -> 1 -> 2 (terminal) under action 0; action 1 stays. Starts in 0 only."""
    S, A = 3, 2
    T = np.zeros((S, A, S))
    T[0, 0, 1] = T[1, 0, 2] = 1.0
    T[0, 1, 0] = T[1, 1, 1] = 1.0
    return irl.TabularMDP.from_arrays(T, initial=[1, 0, 0], horizon=4, terminal=[False, False, True])


def _traj(states, actions, **kw):
    return demos.Trajectories.from_lists(states, actions, **kw)


GOOD = ([[0, 1, 2], [0, 0, 1]], [[0, 0], [1, 0]])


def test_consistent_data_bind_without_complaint():
    ev = irl.Evidence(_chain(), _traj(*GOOD, terminated=[True, False]), hm.Boltzmann(1.0))
    assert np.isfinite(float(ev.log_likelihood(np.zeros(3))))


def test_a_start_outside_the_initial_distribution_is_refused_unless_allowed():
    data = _traj([[0, 1, 2], [1, 1, 2]], [[0, 0], [1, 0]])
    with pytest.raises(DemoValidationError, match=r"trajectory 1, step 0: it starts in state 1, where the MDP's "
                                                  r"initial distribution is 0 \(expected one of the start states 0\)"
                                                  r".*allow=\('off_initial_start',\)"):
        irl.Evidence(_chain(), data, hm.Boltzmann(1.0))
    ev = irl.Evidence(_chain(), data, hm.Boltzmann(1.0), allow=("off_initial_start",))
    assert np.isfinite(float(ev.log_likelihood(np.zeros(3))))


def test_a_transition_of_probability_zero_is_refused_unless_allowed():
    data = _traj([[0, 1, 2], [0, 0, 2]], [[0, 0], [1, 0]])  # episode 1, step 1: 0 --0--> 2 is impossible
    with pytest.raises(DemoValidationError, match=r"trajectory 1, step 1: state 0 --action 0--> state 2 has "
                                                  r"probability 0 under the MDP's dynamics"):
        irl.Evidence(_chain(), data, hm.Boltzmann(1.0))
    irl.Evidence(_chain(), data, hm.Boltzmann(1.0), allow=["impossible_transitions"])


def test_actions_after_a_terminal_state_are_always_refused():
    data = _traj([[0, 1, 2, 2]], [[0, 0, 1]])
    for allow in ((), tuple(__import__("demos.consistency").consistency.ALLOW)):
        with pytest.raises(DemoValidationError, match=r"trajectory 0, step 2: action 1 is taken in state 2, which "
                                                      r"is terminal in the MDP"):
            irl.Evidence(_chain(), data, hm.Boltzmann(1.0), allow=allow)


def test_terminated_on_a_non_terminal_state_is_refused_unless_allowed():
    data = _traj([[0, 1, 2], [0, 1]], [[0, 0], [0]], terminated=[True, True])
    with pytest.raises(DemoValidationError, match=r"trajectory 1, step 1: terminated=True, but its last state 1 "
                                                  r"is not terminal in the MDP"):
        irl.Evidence(_chain(), data, hm.Boltzmann(1.0))
    irl.Evidence(_chain(), data, hm.Boltzmann(1.0), allow={"terminated_elsewhere"})


def test_state_only_data_are_checked_under_any_action():
    ok = demos.StateOnly.from_states([[0, 0, 1, 2]])
    irl.Evidence(_chain(), ok, hm.Boltzmann(1.0))
    bad = demos.StateOnly.from_states([[0, 2]])
    with pytest.raises(DemoValidationError, match=r"trajectory 0, step 0: state 0 --> state 2 \(under any action\) "
                                                  r"has probability 0"):
        irl.Evidence(_chain(), bad, hm.Boltzmann(1.0))


@pytest.mark.parametrize("allow, message", [
    ("off_initial_start", "allow must be a collection of names"),
    (("start",), "unknown allow name 'start'; known: off_initial_start, impossible_transitions"),
])
def test_allow_names_are_checked(allow, message):
    with pytest.raises(ValueError, match=message):
        irl.Evidence(_chain(), _traj(*GOOD), hm.Boltzmann(1.0), allow=allow)


def test_the_checks_run_on_simulated_data_of_every_packaged_kind():
    for name in ("gridworld-8x8", "frozenlake-4x4", "taxi"):
        env = irl.envs.make(name)
        data = demos.simulate(env, hm.Boltzmann(1.0), irl.envs.true_reward(env), n=50, seed=0)
        irl.Evidence(env, data, hm.Boltzmann(1.0))
        irl.Evidence(env, demos.StateOnly(data), hm.Boltzmann(1.0))


def test_the_command_line_names_the_file_and_the_allow_option(tmp_path):
    from typer.testing import CliRunner

    from irl.cli import app

    env = tmp_path / "chain.mdp.npz"
    _chain().save(env)
    bad = tmp_path / "bad.npz"
    _traj([[0, 1, 2], [0, 0, 2]], [[0, 0], [1, 0]]).save(str(bad))

    def run(*args):
        return CliRunner().invoke(app, [str(a) for a in args])

    res = run("fit", bad, "--env", env, "--out", tmp_path / "r.npz", "--quiet")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.stderr.startswith(f"Error: {bad}: trajectory 1, step 1: state 0 --action 0--> state 2 has probability 0")
    assert res.stderr.rstrip().endswith("pass --allow impossible_transitions; first check that --env is the "
                                        "environment the data were recorded in"), res.stderr
    assert run("fit", bad, "--env", env, "--out", tmp_path / "r.npz", "--quiet",
               "--allow", "impossible_transitions").exit_code == 0
    res = run("fit", bad, "--env", env, "--out", tmp_path / "r.npz", "--allow", "start")
    assert res.exit_code == 2 and "unknown --allow name 'start'; known: off_initial_start, impossible_transitions" \
        in res.stderr
    res = run("compare", bad, "--env", env, "--human", "boltzmann", "--human", "boltzmann:beta=2")
    assert res.exit_code == 1 and f"Error: {bad}: trajectory 1, step 1" in res.stderr
    assert "irl compare cannot accept them (irl fit --allow impossible_transitions can)" in res.stderr
    good = tmp_path / "good.npz"
    _traj(*GOOD, terminated=[True, False]).save(str(good))
    res = run("compare", good, "--env", env, "--test", bad, "--human", "boltzmann", "--human", "boltzmann:beta=2")
    assert res.exit_code == 1 and res.stderr.startswith(f"Error: {bad}: trajectory 1, step 1"), res.stderr
