"""Bring your own problem: MDP files, dynamics from logs, the ill-posed-MDP check, plugins."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import demos
import human_models as hm
import irl
import priors
from irl.mdp import IllPosedMDPError, MDPValidationError


# ------------------------------------------------------------------ MDP files
def test_save_load_round_trip_keeps_every_field(tmp_path: Path) -> None:
    env = irl.envs.make("gridworld-5x5").replace(discount=0.9)
    path = tmp_path / "grid.npz"
    env.save(path)
    back = irl.TabularMDP.load(path)
    assert (back.transitions != env.transitions).nnz == 0
    for name in ("n_states", "n_actions", "discount", "horizon", "name", "feature_names", "grid_shape",
                 "state_names", "action_names"):
        assert getattr(back, name) == getattr(env, name), name
    for name in ("initial", "terminal", "features", "true_reward"):
        np.testing.assert_array_equal(getattr(back, name), getattr(env, name))
    aima = irl.envs.make("aima-4x3")
    aima.save(tmp_path / "aima.npz")
    back = irl.TabularMDP.load(tmp_path / "aima.npz")
    assert back.horizon is None and back.state_names == aima.state_names and back.terminal.sum() == 2


def test_mdp_file_holds_no_pickle_and_is_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    irl.envs.make("gridworld-5x5").save(path)
    with np.load(path, allow_pickle=False) as z:  # every array loads without pickle
        assert str(z["format"]) == "pluggable-irl/mdp" and int(z["version"]) >= 1
        assert all(z[k].dtype != object for k in z.files)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary file left behind


def test_bad_mdp_files_give_clear_errors(tmp_path: Path) -> None:
    env = irl.envs.make("gridworld-5x5")
    with pytest.raises(demos.DemoFileError, match="no such file"):
        irl.TabularMDP.load(tmp_path / "missing.npz")
    irl.RewardEstimate(reward=np.zeros((25, 5)), theta=np.zeros(4), log_likelihood=0.0).save(str(tmp_path / "r.npz"))
    with pytest.raises(demos.DemoFileError, match="expected a 'pluggable-irl/mdp' file"):
        irl.TabularMDP.load(tmp_path / "r.npz")
    env.save(tmp_path / "ok.npz")
    with np.load(tmp_path / "ok.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    broken = dict(arrays)
    del broken["initial"]
    np.savez(tmp_path / "no_initial.npz", **broken)
    with pytest.raises(demos.DemoFileError, match="lacks the arrays initial"):
        irl.TabularMDP.load(tmp_path / "no_initial.npz")
    broken = dict(arrays, transitions_data=arrays["transitions_data"] * 2)
    np.savez(tmp_path / "sums.npz", **broken)
    with pytest.raises(demos.DemoFileError, match=r"sums\.npz: transitions\[s=0, a=0\] must sum to 1"):
        irl.TabularMDP.load(tmp_path / "sums.npz")
    broken = dict(arrays, transitions_indptr=arrays["transitions_indptr"][:-3])
    np.savez(tmp_path / "indptr.npz", **broken)
    with pytest.raises(demos.DemoFileError, match="do not form an"):
        irl.TabularMDP.load(tmp_path / "indptr.npz")
    broken = dict(arrays, meta=np.array('{"n_states": "many", "n_actions": 5}'))
    np.savez(tmp_path / "meta.npz", **broken)
    with pytest.raises(demos.DemoFileError, match="n_states as an integer"):
        irl.TabularMDP.load(tmp_path / "meta.npz")
    np.savez(tmp_path / "pickled.npz", format=np.array("pluggable-irl/mdp"), evil=np.array([object()], dtype=object))
    with pytest.raises(demos.DemoFileError, match="refused"):
        irl.TabularMDP.load(tmp_path / "pickled.npz")


# -------------------------------------------------------- ill-posed MDPs fail fast
def test_trap_states_match_brute_force_on_small_chains() -> None:
    # 0 -a0-> 1 (terminal); 0 -a1-> 2; 2 loops on itself under both actions; 3 unreachable loop
    T = np.zeros((4, 2, 4))
    T[0, 0, 1] = 1
    T[0, 1, 2] = 1
    T[2, :, 2] = 1
    T[3, :, 3] = 1
    term = np.array([False, True, False, False])
    mdp = irl.TabularMDP.from_arrays(T, initial=[1, 0, 0, 0], terminal=term)
    assert mdp.trap_states().tolist() == [2]  # a policy goes 0 -> 2 and stays there; 3 is unreachable
    T2 = T.copy()
    T2[2, :, :] = 0
    T2[2, :, 1] = 1  # now 2 leads to the terminal state: every policy terminates
    assert irl.TabularMDP.from_arrays(T2, initial=[1, 0, 0, 0], terminal=term).trap_states().size == 0
    # a state with one safe action (stay) and one that may end: a policy can stay forever
    T3 = np.zeros((2, 2, 2))
    T3[0, 0, 0] = 1
    T3[0, 1] = [0.5, 0.5]
    assert irl.TabularMDP.from_arrays(T3, initial=[1, 0], terminal=[False, True]).trap_states().tolist() == [0]
    # a long chain whose every action moves on (no loop anywhere): no trap, found in one round
    S = 500
    T4 = np.zeros((S, 2, S))
    T4[np.arange(S - 1), 0, np.arange(1, S)] = 1
    T4[np.arange(S - 1), 1, np.arange(1, S)] += 0.5
    T4[np.arange(S - 1), 1, S - 1] += 0.5
    chain = irl.TabularMDP.from_arrays(T4, initial=np.eye(S)[0], terminal=np.eye(S, dtype=bool)[S - 1])
    assert chain.trap_states().size == 0
    T4[S // 2, 0] = np.eye(S)[S // 2 - 1]  # now two states can bounce between each other forever
    chain = irl.TabularMDP.from_arrays(T4, initial=np.eye(S)[0], terminal=np.eye(S, dtype=bool)[S - 1])
    assert chain.trap_states().tolist() == [S // 2 - 1, S // 2]
    # ... but not when every action may end the episode
    T3[0, 0] = [0.9, 0.1]
    assert irl.TabularMDP.from_arrays(T3, initial=[1, 0], terminal=[False, True]).trap_states().size == 0


def test_cliffwalking_fit_fails_in_milliseconds_naming_the_fixes() -> None:
    env = irl.envs.make("cliffwalking")
    data = demos.Trajectories.from_lists([[36, 24, 25, 26]], [[0, 1, 1]])
    with pytest.raises(IllPosedMDPError) as err:
        irl.MaxEnt().fit(env, data)
    msg = str(err.value)
    for fix in ("discount 1, no horizon", "horizon=H", "--horizon", "discount=0.95", "terminal"):
        assert fix in msg, (fix, msg)
    with pytest.raises(IllPosedMDPError):
        irl.BayesianIRL().fit(env, data, samples=5)
    # each fix makes it well posed
    env.replace(horizon=30).check_well_posed()
    env.replace(discount=0.95).check_well_posed()
    cells = np.zeros(env.n_states, bool)
    cells[24:36] = True  # make the row above the cliff terminal too: every policy ends
    T = env.dense_transitions()
    assert env.replace(terminal=env.terminal | cells | (np.arange(48) < 24)).trap_states().size < env.trap_states().size
    assert irl.MaxEnt().fit(env.replace(horizon=30), data).converged


def test_models_with_finite_lookahead_still_fit_an_undiscounted_infinite_mdp() -> None:
    env = irl.envs.make("aima-4x3")
    data = demos.simulate(env, hm.Myopic(horizon=3, beta=2.0), env.true_reward, n=20, seed=0, horizon=15)
    est = irl.MaxEnt(human=hm.Myopic(horizon=3, beta=2.0), reward_model=irl.rewards.TabularReward(
        env.n_states, env.n_actions, state_only=True), prior=priors.Gaussian(0, 1)).fit(env, data)
    assert np.isfinite(est.log_likelihood)
    with pytest.raises(IllPosedMDPError):
        irl.MaxEnt(human=hm.Boltzmann(2.0)).fit(env, data)
    assert hm.Noisy(hm.Myopic(horizon=3)).finite_lookahead and not hm.Noisy(hm.Boltzmann()).finite_lookahead


# ------------------------------------------------------------ dynamics from logs
def test_from_transitions_counts_smooths_and_follows_the_unvisited_rule() -> None:
    logs = demos.Transitions(states=[0, 0, 0, 0, 1], actions=[1, 1, 1, 0, 1], next_states=[1, 1, 2, 0, 2])
    mle = irl.TabularMDP.from_transitions(logs, n_states=3, n_actions=2, pseudocount=0.0, terminal=[2], horizon=4)
    P = mle.dense_transitions()
    np.testing.assert_allclose(P[0, 1], [0, 2 / 3, 1 / 3])
    np.testing.assert_allclose(P[0, 0], [1, 0, 0])
    np.testing.assert_allclose(P[1, 0], [0, 1, 0])  # never tried: self-loop
    assert mle.visit_counts.tolist() == [[1, 3], [0, 1], [0, 0]]
    assert P[2].sum() == 0  # terminal: empty rows
    smooth = irl.TabularMDP.from_transitions(logs, n_states=3, n_actions=2, pseudocount=1.0, terminal=[2],
                                             unvisited="uniform", horizon=4)
    P = smooth.dense_transitions()
    np.testing.assert_allclose(P[0, 1], [1 / 6, 3 / 6, 2 / 6])  # (N + 1) / (3 + 3)
    np.testing.assert_allclose(P[1, 0], [1 / 3, 1 / 3, 1 / 3])
    with pytest.raises(MDPValidationError, match=r"\(s=1, a=0\) was never visited .*1 of 4 non-terminal pairs"):
        irl.TabularMDP.from_transitions(logs, n_states=3, n_actions=2, terminal=[2], unvisited="error")
    with pytest.raises(MDPValidationError, match="unknown rule unvisited='copy'; known: self-loop, uniform, error"):
        irl.TabularMDP.from_transitions(logs, unvisited="copy")
    with pytest.raises(MDPValidationError, match=r"next state id 2 in the logs is out of range \[0, 2\)"):
        irl.TabularMDP.from_transitions(logs, n_states=2)
    with pytest.raises(MDPValidationError, match="needs next states"):
        irl.TabularMDP.from_transitions(demos.Transitions(states=[0], actions=[0]))
    with pytest.raises(MDPValidationError, match="pseudocount must be a finite number >= 0"):
        irl.TabularMDP.from_transitions(logs, pseudocount=-1)


def test_from_transitions_on_trajectories_recovers_the_true_dynamics() -> None:
    env = irl.envs.make("gridworld-5x5")
    data = demos.simulate(env, hm.Boltzmann(0.5), env.true_reward, n=400, seed=1)
    est = irl.TabularMDP.from_transitions(data, n_states=env.n_states, n_actions=env.n_actions, pseudocount=0.0,
                                          horizon=env.horizon, features=env.features)
    err = np.abs(est.transitions.toarray() - env.transitions.toarray()).sum(axis=1)
    n = est.visit_counts.ravel()
    # the L1 error of an empirical distribution shrinks like 1/sqrt(N)
    assert (n >= 20).sum() > 100 and err[n >= 20].mean() < 0.15 and err[n >= 50].mean() < 0.09
    assert err[n >= 50].mean() < err[(n >= 5) & (n < 20)].mean()
    np.testing.assert_allclose(est.initial, np.bincount(data.initial_states, minlength=25) / len(data))
    pooled = irl.TabularMDP.from_transitions([data.subset(slice(0, 200)), data.subset(slice(200, None))],
                                             n_states=25, n_actions=5, pseudocount=0.0, horizon=env.horizon)
    assert (pooled.transitions != est.transitions).nnz == 0


# ----------------------------------------------------------------------- plugins
PLUGIN = '''
"""A third-party package that adds a maze, a human model, a prior and a solver."""
import numpy as np

import irl
import priors
from human_models import Boltzmann


def corridor():
    """Five-cell corridor, goal on the right (plugin test)."""
    S, A = 5, 2
    T = np.zeros((S, A, S))
    for s in range(S):
        T[s, 0, max(s - 1, 0)] = 1
        T[s, 1, min(s + 1, S - 1)] = 1
    return irl.TabularMDP.from_arrays(T, initial=np.eye(S)[0], horizon=6, features=np.eye(S),
                                      true_reward=np.eye(S)[-1], name="corridor")


class Greedy(Boltzmann):
    """A very rational Boltzmann human (plugin test)."""

    name = "greedy"

    def __init__(self, beta=20.0):
        super().__init__(beta=beta)


class Wide(priors.Gaussian):
    name = "wide"

    def __init__(self, scale=10.0):
        super().__init__(0.0, scale)


def build(*, human, prior, reward_model, max_iter, callback):
    """MaxEnt under a plugin's name."""
    return irl.MaxEnt(human=human, prior=prior, reward_model=reward_model, max_iter=max_iter, callback=callback)


def broken():
    raise RuntimeError("never called")
'''

ENTRY_POINTS = '''
[pluggable_irl.envs]
corridor = byo_plugin:corridor
nowhere = byo_plugin_missing:thing

[pluggable_irl.human_models]
greedy = byo_plugin:Greedy

[pluggable_irl.priors]
wide = byo_plugin:Wide

[pluggable_irl.solvers]
plugin-maxent = byo_plugin:build
'''


@pytest.fixture()
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real installed distribution: a module and a dist-info folder with entry_points.txt on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "byo_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "byo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: byo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    yield site
    import human_models.registry as reg
    from irl import envs
    from irl.cli import SOLVERS

    for name in ("corridor", "nowhere"):
        envs._REGISTRY.pop(name, None)
    reg._REGISTRY.pop("greedy", None)
    priors._REGISTRY.pop("wide", None)
    SOLVERS.pop("plugin-maxent", None)
    sys.modules.pop("byo_plugin", None)


def test_plugins_register_envs_humans_priors_and_solvers(plugin: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from irl.cli import app
    from irl.plugins import PluginWarning

    with pytest.warns(PluginWarning, match="plugin 'nowhere' .*byo-plugin.*ModuleNotFoundError"):
        names = irl.envs.names()
    assert "corridor" in names and "nowhere" not in names
    env = irl.envs.make("corridor")
    assert env.n_states == 5 and dict(irl.envs.describe())["corridor"].endswith("[plugin: byo-plugin]")
    assert "greedy" in hm.names() and hm.make("greedy:beta=7").beta == 7.0
    assert "wide" in priors.names() and priors.make("wide:scale=3").scale == 3.0
    with pytest.raises(hm.HumanModelError, match="must live on positive numbers: got Wide"):  # found by name
        hm.make("boltzmann:beta=prior:wide(4)")

    runner = CliRunner()

    def run(*args: object):
        res = runner.invoke(app, [str(a) for a in args])
        assert res.exit_code == 0, res.output
        return res

    assert "corridor" in run("envs").output and "greedy" in run("human-models").output
    assert "plugin-maxent" in run("solvers").output
    run("simulate", "--env", "corridor", "--human", "greedy", "--n", "30", "--out", tmp_path / "d.npz")
    res = run("fit", tmp_path / "d.npz", "--env", "corridor", "--human", "greedy", "--solver", "plugin-maxent",
              "--prior", "wide:scale=5", "--out", tmp_path / "r.npz", "--json", "-q")
    import json

    fitted = json.loads(res.stdout.strip().splitlines()[-1])
    assert fitted["solver"] == "plugin-maxent" and max(fitted["parameters"], key=fitted["parameters"].get) == "w[4]"


def test_models_registered_in_process_are_visible_to_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import human_models.registry as reg
    from irl.cli import app

    class Careful(hm.Boltzmann):
        """A careful human (registered in-process)."""

        name = "careful"

    hm.register("careful", Careful)
    try:
        res = CliRunner().invoke(app, ["human-models", "--json"])
        assert res.exit_code == 0 and any(json_line["name"] == "careful" for json_line in
                                          map(__import__("json").loads, res.stdout.splitlines()))
        res = CliRunner().invoke(app, ["simulate", "--env", "gridworld-5x5", "--human", "careful:beta=3", "--n", "5",
                                       "--out", str(tmp_path / "d.npz")])
        assert res.exit_code == 0, res.output
    finally:
        reg._REGISTRY.pop("careful")
