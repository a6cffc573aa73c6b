"""Constraint inference (irl.constraints): exact gains, posterior, constrained planning, the 9x9 example."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import demos
import human_models as hm
import irl
from irl import constraints as C
from irl.envs import constraint_grid as G

H = 4
FORBIDDEN = 6


@pytest.fixture(scope="module")
def tiny():
    """A deterministic 4x4 grid (5 moves, horizon 4) whose goal cell 6 is forbidden (and never a start)."""
    terrain = np.ones((4, 4), dtype=np.int64)
    terrain[1, 2] = 0  # goal terrain: the nominal human loves cell 6
    env = irl.envs.gridworld(4, slip=0.0, horizon=H, terrain=terrain, weights=(2.0, 0.0, -0.3, -1.0))
    start = np.full(16, 1.0 / 15)
    start[FORBIDDEN] = 0.0
    env = env.replace(initial=start)
    r = np.asarray(env.true_reward)
    data = demos.simulate(env, hm.Boltzmann(1.0), C.constrained_reward(env, r, [C.candidates(env)[FORBIDDEN]]),
                          n=10, seed=1)
    return env, r, data


def _enumerate(env):
    """All trajectories of the deterministic tiny grid: states (S, A^H, H+1), actions (A^H, H)."""
    S, A = env.n_states, env.n_actions
    dest = env.dense_transitions().argmax(axis=2)  # (S, A)
    seqs = np.array(list(itertools.product(range(A), repeat=H)))
    states = np.zeros((S, len(seqs), H + 1), dtype=np.int64)
    states[:, :, 0] = np.arange(S)[:, None]
    for t in range(H):
        states[:, :, t + 1] = dest[states[:, :, t], seqs[None, :, t]]
    return states, seqs


def _brute_ll(env, r, data, mask, beta=1.0):
    """Trajectory-level MaxEnt log-likelihood, ``sum_i beta R(xi_i) - log Z_feasible(s0_i)``, by enumeration."""
    states, seqs = _enumerate(env)
    rsa = np.broadcast_to(r[:, None], (env.n_states, env.n_actions)) if r.ndim == 1 else r
    R = rsa[states[:, :, :-1], seqs[None]].sum(-1)  # (S, A^H)
    ok = ~mask[states[:, :, :-1], seqs[None]].any(-1)
    logz = np.array([np.logaddexp.reduce(beta * R[s][ok[s]]) if ok[s].any() else -np.inf
                     for s in range(env.n_states)])
    total = 0.0
    for i in range(len(data)):
        tr = data[i]
        total += beta * rsa[tr.states[:-1], tr.actions].sum() - logz[tr.states[0]]
    return total


def test_first_constraint_is_the_forbidden_state(tiny):
    env, r, data = tiny
    fit = C.infer(env, data, r, kind="states", max_constraints=3)
    assert fit.constraints[0] == C.candidates(env, "states")[FORBIDDEN]
    runner_up = np.sort(fit.step_gains[0][np.isfinite(fit.step_gains[0])])[-2]
    assert fit.gains[0] > 3 * runner_up  # by far the most likely constraint


def test_gains_equal_brute_force(tiny):
    env, r, data = tiny
    fit = C.infer(env, data, r, kind="states", max_constraints=3, stop=None)
    masks, _ = C.removal_masks(env, fit.candidates)
    cur = np.zeros((env.n_states, env.n_actions), bool)
    base = _brute_ll(env, r, data, cur)
    assert fit.log_likelihood[0] == pytest.approx(base, abs=1e-8)
    for step, c in enumerate(fit.constraints):
        row = fit.step_gains[step]
        for k in np.flatnonzero(np.isfinite(row)):  # every candidate's gain at this step
            assert row[k] == pytest.approx(_brute_ll(env, r, data, cur | masks[k]) - base, abs=1e-7)
        k = fit.candidates.index(c)
        cur = cur | masks[k]
        base = _brute_ll(env, r, data, cur)
        assert fit.log_likelihood[step + 1] == pytest.approx(base, abs=1e-7)
    # KL criterion: it falls by exactly the gain per demonstration
    assert np.allclose(-np.diff(fit.kl), fit.gains / len(data))
    assert (fit.kl >= -1e-12).all()  # a divergence of the empirical distribution from a proper model


def test_violated_candidates_are_never_chosen(tiny):
    env, r, data = tiny
    fit = C.infer(env, data, r, kind=("states", "actions"), max_constraints=5, stop=None)
    visited = set(data.states.tolist())
    assert fit.violated[[c.index for c in fit.candidates[:env.n_states] if c.index in visited]].all()
    assert not any(fit.violated[fit.candidates.index(c)] for c in fit.constraints)
    assert not (fit.removed.reshape(-1)[data.step_index[1] * env.n_actions + data.actions]).any()


def test_stopping_rules(tiny):
    env, r, data = tiny
    kl = C.infer(env, data, r, kind="states", stop="kl", threshold=0.1)
    lr = C.infer(env, data, r, kind="states", stop="lr", threshold=0.05)
    for fit in (kl, lr):
        assert fit.constraints[0].index == FORBIDDEN
    assert (kl.gains / len(data) >= 0.1).all() and kl.stopped.startswith(("kl", "no candidate"))
    assert lr.stopped.startswith(("lr", "no candidate"))
    assert (lr.gains >= np.log(1 / 0.05)).all()
    none = C.infer(env, data, r, kind="states", stop=None, max_constraints=2)
    assert len(none.constraints) == 2 and none.stopped == "max_constraints reached"


def test_a_biased_human_can_read_the_demonstrations(tiny):
    env, r, data = tiny
    myopic = hm.Myopic(horizon=2, beta=1.0)
    d = demos.simulate(env, myopic, C.constrained_reward(env, r, [C.candidates(env)[FORBIDDEN]]), n=10, seed=2)
    fit = C.infer(env, d, r, kind="states", human=myopic, max_constraints=2)
    assert fit.constraints[0].index == FORBIDDEN
    assert "Myopic" in fit.human


def test_a_noisy_human_cannot_be_held_to_hard_constraints(tiny):
    env, r, data = tiny
    with pytest.raises(C.ConstraintError, match="does not exclude removed actions"):
        C.infer(env, data, r, kind="states", human=hm.Noisy(hm.Boltzmann(1.0), epsilon=0.1))


def test_posterior_exact_equals_enumeration(tiny):
    env, r, data = tiny
    data = data.subset(np.arange(4))  # few demonstrations: 9 candidates unbroken, 512 sets
    cands = [c for c in C.candidates(env, ("states", "actions"))]
    post = C.posterior(env, data, r, candidates=cands, prior=0.2, method="exact")
    masks, _ = C.removal_masks(env, cands)
    free = np.flatnonzero(~post.violated)
    assert free.size == 9
    logp, incl = [], []
    for z in itertools.product([0, 1], repeat=free.size):
        z = np.array(z, bool)
        mask = masks[free[z]].any(axis=0) if z.any() else np.zeros(masks.shape[1:], bool)
        logp.append(_brute_ll(env, r, data, mask) + z.sum() * np.log(0.2) + (len(cands) - z.sum()) * np.log(0.8))
        incl.append(z)
    logp = np.array(logp)
    w = np.exp(logp - np.logaddexp.reduce(logp))
    expect = np.zeros(len(cands))
    expect[free] = w @ np.array(incl, float)
    assert np.allclose(post.inclusion, expect, atol=1e-10)
    assert post.log_evidence == pytest.approx(np.logaddexp.reduce(logp), abs=1e-7)
    assert post.inclusion[FORBIDDEN] == post.inclusion.max() > 0.85 and (post.inclusion[post.violated] == 0).all()
    # a count prior (torch distribution over the number of constraints)
    pois = C.posterior(env, data, r, candidates=cands, prior=torch.distributions.Poisson(1.0), method="exact")
    assert pois.inclusion[FORBIDDEN] == pois.inclusion.max()


def test_posterior_mh_matches_exact(tiny):
    env, r, data = tiny
    data = data.subset(np.arange(4))
    cands = C.candidates(env, ("states", "actions"))
    exact = C.posterior(env, data, r, candidates=cands, prior=0.3, method="exact")
    mh = C.posterior(env, data, r, candidates=cands, prior=0.3, method="mh", samples=3000, warmup=300, chains=4,
                     seed=0)
    assert np.abs(mh.inclusion - exact.inclusion).max() < 0.05
    assert 0 < mh.acceptance < 1
    assert set(mh.map_set) == set(exact.map_set)
    again = C.posterior(env, data, r, candidates=cands, prior=0.3, method="mh", samples=3000, warmup=300, chains=4,
                        seed=0)
    assert np.array_equal(again.inclusion, mh.inclusion)


def test_plan_with_constraints_never_visits_them(tiny):
    env, r, data = tiny
    goal = C.candidates(env, "states")[FORBIDDEN]
    pi = irl.plan(env, r, constraints=[goal])
    occ = irl.planning.state_occupancy(env, pi).sum(axis=0)
    assert occ[FORBIDDEN] == 0.0  # never entered
    assert irl.planning.state_occupancy(env, irl.plan(env, r)).sum(axis=0)[FORBIDDEN] > 1.0  # the nominal plan does
    soft = irl.plan(env, r, constraints=[goal], objective="soft", beta=2.0)
    mask = C.removed_mask(env, [goal])
    alive = ~mask.all(axis=1)  # states with an allowed action
    assert (soft[:, alive][:, mask[alive]] == 0).all()
    assert irl.planning.state_occupancy(env, soft).sum(axis=0)[FORBIDDEN] == 0.0


def test_plan_refuses_a_forbidden_start():
    env = irl.envs.gridworld(3, slip=0.0, horizon=3)
    env = env.replace(initial=np.eye(9)[4])
    with pytest.raises(C.ConstraintError, match="no policy avoids the constraints"):
        irl.plan(env, env.true_reward, constraints=[C.candidates(env, "states")[4]])


def test_removal_masks_stochastic_tolerance():
    env = irl.envs.make("scobee-9x9", slip=0.1)
    c = C.candidates(env, "states")[40]
    strict = C.removed_mask(env, [c])
    loose = C.removed_mask(env, [c], tolerance=0.05)
    assert strict.sum() > loose.sum() == 16  # 8 intended moves in (probability 0.9125) + 8 out
    colour = C.candidates(env, "features")[1]  # blue: cells 4, 13, 22
    _, forbidden = C.removal_masks(env, [colour])
    assert forbidden[0].nonzero()[0].tolist() == list(G.BLUE)


@pytest.mark.parametrize("kwargs,match", [
    ({"kind": "walls"}, "unknown constraint kind 'walls'"),
    ({"stop": "aic"}, "unknown stopping rule 'aic'"),
    ({"stop": "lr", "threshold": 2.0}, r"alpha\) must lie in \(0, 1\)"),
    ({"max_constraints": -1}, "max_constraints must be an integer >= 0"),
    ({"tolerance": 1.0}, r"tolerance must be a probability in \[0, 1\)"),
    ({"penalty": -3}, "penalty must be a finite number > 0"),
    ({"human": "boltzmann"}, "human must be a human model"),
])
def test_bad_inputs(tiny, kwargs, match):
    env, r, data = tiny
    with pytest.raises(C.ConstraintError, match=match):
        C.infer(env, data, r, **kwargs)


def test_bad_data_and_posterior_inputs(tiny):
    env, r, data = tiny
    with pytest.raises(C.ConstraintError, match="needs demonstrations"):
        C.infer(env, np.zeros(3), r)
    with pytest.raises(C.ConstraintError, match="needs an MDP with features"):
        C.candidates(env.replace(features=None, feature_names=None), "features")
    with pytest.raises(Exception, match="nominal_reward must have shape"):
        C.infer(env, data, np.zeros(5))
    with pytest.raises(C.ConstraintError, match="more than max_exact"):
        C.posterior(env, data, r, kind="states", method="exact", max_exact=2)
    with pytest.raises(C.ConstraintError, match=r"inclusion probability must lie in \(0, 1\)"):
        C.posterior(env, data, r, prior=1.5)
    with pytest.raises(C.ConstraintError, match="a posterior is not a set of constraints"):
        post = C.posterior(env, data, r, kind="actions")
        irl.plan(env, r, constraints=post)


def _truth(env):
    cands = C.candidates(env, ("states", "actions", "features"))
    t = G.scobee_constraints()
    keep = {"state": t["states"], "action": t["actions"], "feature": t["features"]}
    return cands, [c for c in cands if c.index in keep[c.kind]]


def test_scobee_example_recovers_the_constraints():
    env = irl.envs.make("scobee-9x9")
    cands, truth = _truth(env)
    human = hm.Boltzmann(2.0)
    data = demos.simulate(env, human, C.constrained_reward(env, env.true_reward, truth), n=100, seed=0, horizon=80)
    kl = C.infer(env, data, env.true_reward, kind=("states", "actions", "features"), human=human)
    lr = C.infer(env, data, env.true_reward, kind=("states", "actions", "features"), human=human, stop="lr")
    # measured (seed 0): kl chooses blue, states 31, 39, 47, 41 and up-right (precision 1, recall 6/9); lr also
    # up-left and green (recall 8/9); cell 51 is off every path and never found
    for fit, recall in ((kl, 5), (lr, 7)):
        chosen = set(fit.constraints)
        assert chosen <= set(truth)  # precision 1
        assert len(chosen) >= recall
        assert len(set(fit.indices("state")) & set(G.CONSTRAINED_STATES)) >= 3
    assert set(lr.indices("action")) == {4, 5}


def test_cli_constraints(tmp_path, tiny):
    import json

    from typer.testing import CliRunner

    from irl.cli import app

    env = irl.envs.make("scobee-9x9")
    _, truth = _truth(env)
    data = demos.simulate(env, hm.Boltzmann(2.0), C.constrained_reward(env, env.true_reward, truth), n=40, seed=0,
                          horizon=80)
    path = tmp_path / "demos.npz"
    data.save(str(path))
    runner = CliRunner()
    res = runner.invoke(app, ["constraints", str(path), "--env", "scobee-9x9", "--human", "boltzmann:beta=2",
                              "--kind", "states,actions,features", "--max", "4", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    direct = C.infer(env, data, env.true_reward, kind=("states", "actions", "features"), human=hm.Boltzmann(2.0),
                     max_constraints=4)
    assert [c["label"] for c in out["constraints"]] == direct.labels
    assert np.allclose([c["gain"] for c in out["constraints"]], direct.gains)
    res = runner.invoke(app, ["constraints", str(path), "--env", "scobee-9x9", "--kind", "actions", "--posterior",
                              "--samples", "200"])
    assert res.exit_code == 0, res.output
    assert "Constraints inferred from 40 demonstrations" in res.output and "Posterior (exact)" in res.output
    res = runner.invoke(app, ["constraints", str(path), "--env", "scobee-9x9", "--kind", "walls"])
    assert res.exit_code == 2 and "unknown --kind 'walls'; known: states, actions, features" in res.output
    res = runner.invoke(app, ["constraints", str(path), "--env", "scobee-9x9", "--stop", "aic"])
    assert res.exit_code == 2 and "unknown --stop 'aic'" in res.output


def test_posterior_is_calibrated():
    """Draw constraints from the prior, demonstrations from them; inclusion probabilities match the frequencies."""
    terrain = np.ones((4, 4), dtype=np.int64)
    terrain[1:3, 1:3] = 0  # the four interior cells attract the nominal human
    env = irl.envs.gridworld(4, slip=0.0, horizon=H, terrain=terrain, weights=(1.0, 0.0, -0.3, -1.0))
    env = env.replace(initial=np.eye(16)[0])
    cands = [C.candidates(env)[s] for s in (5, 6, 9, 10)]  # interior cells; the start cell is never one
    masks, _ = C.removal_masks(env, cands)
    rng = np.random.default_rng(0)
    truth, probs = [], []
    for rep in range(150):
        z = rng.random(len(cands)) < 0.3
        reward = C.constrained_reward(env, env.true_reward, masks[z].any(axis=0))
        data = demos.simulate(env, hm.Boltzmann(1.0), reward, n=5, seed=rep)
        post = C.posterior(env, data, env.true_reward, candidates=cands, prior=0.3, method="exact")
        truth.append(z)
        probs.append(post.inclusion)
    truth, probs = np.array(truth, float), np.array(probs)
    # E[z_k] = E[p(z_k = 1 | data)] under the model: the mean difference is within Monte Carlo error
    diff = truth - probs
    assert (np.abs(diff.mean(axis=0)) < 3 * diff.std(axis=0, ddof=1) / np.sqrt(len(diff)) + 1e-9).all()
    # informative and reliable: confident "no" answers are right, and the Brier score beats the prior's 0.21
    assert (probs < 0.1).sum() > 100 and truth[probs < 0.1].mean() < 0.05
    assert ((probs - truth) ** 2).mean() < 0.75 * 0.3 * 0.7


def test_dead_ends_and_state_action_features():
    env = irl.envs.gridworld(3, slip=0.0, horizon=3)
    every_action = C.candidates(env, "actions")
    with pytest.raises(C.ConstraintError, match="no policy avoids the constraints"):
        irl.plan(env, env.true_reward, constraints=every_action)  # every state is a dead end
    # a cell walled in by forbidden neighbours is a dead end the plan never enters
    walls = [C.candidates(env)[s] for s in (1, 3, 5, 7)]  # the centre's four neighbours
    start = np.zeros(9)
    start[0] = 1.0
    pi = irl.plan(env.replace(initial=start), env.true_reward, constraints=walls)
    assert irl.planning.state_occupancy(env.replace(initial=start), pi).sum(axis=0)[[1, 3, 5, 7, 4]].max() == 0.0
    # state-action features: a feature removes exactly the state-actions that have it
    feats = np.zeros((9, 5, 2))
    feats[:, 2, 0] = 1.0  # "down" everywhere
    feats[4, :, 1] = 1.0  # any action in the centre
    sa = env.replace(features=feats, feature_names=("down", "centre"))
    removed, forbidden = C.removal_masks(sa, C.candidates(sa, "features"))
    assert np.array_equal(removed, feats.transpose(2, 0, 1) != 0) and not forbidden.any()


def test_a_misspecified_human_model_invents_constraints():
    """A myopic demonstrator never reaches the goal: read as Boltzmann, the goal itself looks forbidden."""
    env = irl.envs.make("scobee-9x9", horizon=30)
    _, truth = _truth(env)
    myopic = hm.Myopic(horizon=3, beta=2.0)
    data = demos.simulate(env, myopic, C.constrained_reward(env, env.true_reward, truth), n=100, seed=0)
    kinds = ("states", "actions", "features")
    wrong = C.infer(env, data, env.true_reward, kind=kinds, human=hm.Boltzmann(2.0), stop="lr")
    right = C.infer(env, data, env.true_reward, kind=kinds, human=myopic, stop="lr")
    assert C.Constraint("state", 8, "state 8") in wrong.constraints  # measured: chosen first
    assert set(right.constraints) <= set(truth) and len(right.constraints) >= 5  # measured: 6, all true


def test_too_many_candidates_are_refused(tiny, monkeypatch):
    env, r, data = tiny
    monkeypatch.setattr(C, "MAX_MASK_ENTRIES", 100)
    with pytest.raises(C.ConstraintError, match=r"16 candidate constraints x 16 states x 5 actions = 1.28e\+03 mask"):
        C.infer(env, data, r, kind="states")


def test_plan_takes_a_fit_a_list_or_a_mask(tiny):
    env, r, data = tiny
    with pytest.raises(C.ConstraintError, match=r"start states \[11\] \(positive initial probability\) have no"):
        irl.plan(env, r, constraints=C.infer(env, data, r, kind="states", max_constraints=2))  # 6, then start 11
    fit = C.infer(env, data, r, kind="states", max_constraints=1)
    by_fit = irl.plan(env, r, constraints=fit)
    assert np.array_equal(by_fit, irl.plan(env, r, constraints=list(fit.constraints)))
    assert np.array_equal(by_fit, irl.plan(env, r, constraints=fit.removed))
    with pytest.raises(C.ConstraintError, match=r"mask must have shape \(S, A\) = \(16, 5\): got \(3, 5\)"):
        irl.plan(env, r, constraints=np.zeros((3, 5), bool))
    with pytest.raises(C.ConstraintError, match="constraints\\[0\\] must be an irl.constraints.Constraint"):
        irl.plan(env, r, constraints=[4])


def test_results_are_read_only(tiny):
    env, r, data = tiny
    fit = C.infer(env, data, r, kind="states", max_constraints=1)
    with pytest.raises(ValueError, match="read-only"):
        fit.removed[0, 0] = True
    with pytest.raises(AttributeError):
        fit.gains = np.zeros(1)
    post = C.posterior(env, data, r, kind="actions")
    with pytest.raises(ValueError, match="read-only"):
        post.inclusion[0] = 1.0


def test_scobee_grid_layout():
    env = irl.envs.make("scobee-9x9", slip=0.1)
    T = env.dense_transitions()
    assert env.action_names == ("left", "right", "up", "down", "up-left", "up-right", "down-left", "down-right")
    assert T[40, 2, 49] == pytest.approx(0.9 + 0.1 / 8)  # "up" adds 9; a slip executes any of the 8 moves
    assert T[40, 2, 31] == pytest.approx(0.1 / 8)  # ... e.g. "down"
    assert T[0, 0, 0] == pytest.approx(0.9 + 5 * 0.1 / 8)  # off-grid moves stay: 5 of 8 from the corner
    r = irl.envs.make("scobee-9x9").true_reward
    assert r[40, 0] == -4.0 and r[40, 5] == pytest.approx(-4 * np.sqrt(2)) and r[7, 1] == pytest.approx(6.0)
    assert env.terminal.nonzero()[0].tolist() == [8] and env.initial[0] == 1.0
    assert env.features[list(G.BLUE), 1].all() and env.features[list(G.GREEN), 2].all()
    assert env.features.sum() == 81


@pytest.fixture(scope="module")
def g5_files(tmp_path_factory):
    """Demonstrations in gridworld-5x5 and, for --reward, a reward of another size."""
    d = tmp_path_factory.mktemp("constraints_cli")
    env = irl.envs.make("gridworld-5x5")
    demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=3, seed=0).save(str(d / "demos.npz"))
    irl.RewardEstimate(reward=np.zeros((4, 2)), theta=np.zeros(2), log_likelihood=0.0,
                       info={"env": "machine-replacement"}).save(str(d / "small.npz"))
    return d


@pytest.mark.parametrize("extra, message", [
    (["--threshold", "-1"], "--threshold (nats per demonstration for --stop kl) must be a finite number >= 0: got -1.0"),
    (["--stop", "lr", "--threshold", "1"], "--threshold (the test level alpha for --stop lr) must be a finite number "
                                           "in (0, 1): got 1.0"),
    (["--stop", "none", "--threshold", "0.1"], "--threshold only applies to --stop kl or lr, not --stop none"),
    (["--tolerance", "2"], "--tolerance must be a finite number in [0, 1): got 2.0"),
    (["--posterior", "--prior", "1.5"], "--prior must be a finite number in (0, 1): got 1.5"),
    (["--prior", "0.3"], "--prior only applies to --posterior, not a run without --posterior"),
    (["--samples", "5", "--seed", "3"], "--samples, --seed only apply to --posterior"),
])
def test_cli_constraints_option_checks(g5_files, extra, message):
    from typer.testing import CliRunner

    from irl.cli import app

    res = CliRunner().invoke(app, ["constraints", str(g5_files / "demos.npz"), "--env", "gridworld-5x5", *extra])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert res.stderr.strip() == f"Error: {message}" or message in res.stderr, res.stderr


def test_cli_constraints_file_errors_name_the_file(g5_files):
    from typer.testing import CliRunner

    from irl.cli import app

    data, small = g5_files / "demos.npz", g5_files / "small.npz"
    runner = CliRunner()
    res = runner.invoke(app, ["constraints", str(data), "--env", "gridworld-5x5", "--reward", str(small)])
    assert res.exit_code == 2 and res.stderr.startswith(f"Error: --reward {small}: the reward has shape (4, 2) but "
                                                        f"environment 'gridworld-5x5' has (S, A) = (25, 5)"), res.stderr
    res = runner.invoke(app, ["constraints", str(data), "--env", "gridworld-5x5", "--reward", str(data)])
    assert res.exit_code == 2 and f"--reward {data}: expected a 'pluggable-irl/reward-estimate' file" in res.stderr
    res = runner.invoke(app, ["constraints", str(data), "--env", "aima-4x3"])
    assert res.exit_code == 1 and res.stderr.startswith(f"Error: {data}: state id"), res.stderr
    assert "do not fit environment 'aima-4x3'" in res.stderr and "Traceback" not in res.output
