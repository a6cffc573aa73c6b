"""The Mouselab environment and its meta-level MDP: exact values against brute force, solvers, properties."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import torch

import irl
from irl.envs import mouselab as ml
from irl.metalevel import population
from irl.envs.mouselab import MetaLevelError


# ----------------------------------------------------------------- an independent brute force
def brute_force(parents, values, probs, cost, depth_cost, weights):
    """Optimal meta-level Q-values by exhaustive expectimax over every adaptive click policy.

    Written from the definition, independently of the library: a belief is a
    tuple of revealed values (``None`` hidden); stopping is worth the best
    path's expected value; clicking node ``n`` costs ``cost + depth_cost *
    depth(n)`` and leads to each of its values with its probability.
    """
    n = len(parents)
    depth = [0] * n
    for k in range(1, n):
        depth[k] = depth[parents[k]] + 1
    children = {k: [j for j in range(n) if parents[j] == k] for k in range(n)}
    paths = []

    def walk(node, acc):
        if not children[node]:
            paths.append(acc)
        for c in children[node]:
            walk(c, acc + [c])

    walk(0, [])
    means = [0.0] + [sum(v * p for v, p in zip(values[d - 1], probs[d - 1])) for d in depth[1:]]

    def stop(b):
        return max(sum(weights[depth[k] - 1] * (means[k] if b[k] is None else b[k]) for k in p) for p in paths)

    @lru_cache(maxsize=None)
    def V(b):
        return max(Q(b).values())

    def Q(b):
        out = {0: stop(b)}
        for k in range(1, n):
            if b[k] is None:
                d = depth[k]
                total = -(cost + depth_cost * d)
                for v, p in zip(values[d - 1], probs[d - 1]):
                    nb = list(b)
                    nb[k] = v
                    total += p * V(tuple(nb))
                out[k] = total
        return out

    return V, Q


def tiny_env(branching=(2, 1, 2), values=((-1.0, 1.0), (-2.0, 2.0), (-10.0, 10.0)), probs=None):
    return ml.mouselab(branching, values, probs)


def random_beliefs(env, rng, n):
    """Beliefs with a random subset of nodes revealed at random support values."""
    t = env.meta.tree
    b = env.meta.initial_beliefs(n)
    for i in range(n):
        for k in range(1, t.n_nodes):
            if rng.random() < 0.4:
                b[i, k] = rng.choice(t.values[t.depth[k] - 1])
    return b


CASES = [
    ((2, 2), ((-1.0, 1.0), (-5.0, 5.0)), None, (0.7, 0.2, (1.0, 1.0))),
    ((2, 1, 2), ((-1.0, 1.0), (-2.0, 2.0), (-10.0, 10.0)), None, (1.3, 0.45, (1.0, 1.0, 1.0))),
    ((2, 1, 2), ((-1.0, 2.0), (-3.0, 1.0, 4.0), (-8.0, 6.0)), ((0.3, 0.7), (0.2, 0.5, 0.3), (0.6, 0.4)),
     (0.35, -0.1, (0.8, 1.3, 0.6))),
    ((3, 2), ((-2.0, 2.0), (-6.0, 6.0)), None, (2.1, 0.3, (1.0, 1.0))),
]


@pytest.mark.parametrize("branching,values,probs,params", CASES)
def test_exact_solver_matches_brute_force(branching, values, probs, params):
    env = tiny_env(branching, values, probs)
    cost, dcost, w = params
    t = env.meta.tree
    V, Q = brute_force(t.parents.tolist(), [list(v) for v in t.values], [list(p) for p in t.probs], cost, dcost, w)
    phi = env.meta.params(cost, dcost, w)
    rng = np.random.default_rng(0)
    beliefs = np.vstack([env.meta.initial_beliefs(1), random_beliefs(env, rng, 25)])
    q_lib = env.meta.solver("exact").q_values(beliefs, phi)
    q_bf = env.meta.solver("brute-force").q_values(beliefs, phi)
    for i, b in enumerate(beliefs):
        key = tuple(None if np.isnan(x) else float(x) for x in b)
        key = (0.0,) + key[1:]
        want = Q(key)
        for a in range(t.n_nodes):
            if a in want:
                assert q_lib[i, a] == pytest.approx(want[a], abs=1e-10), (i, a)
                assert q_bf[i, a] == pytest.approx(want[a], abs=1e-10), (i, a)
            else:
                assert np.isneginf(q_lib[i, a]) and np.isneginf(q_bf[i, a])
    v = env.meta.solver("exact").value(beliefs, phi)
    assert v == pytest.approx([V((0.0,) + tuple(None if np.isnan(x) else float(x) for x in b[1:])) for b in beliefs],
                              abs=1e-10)


@pytest.mark.parametrize("branching,values,probs,params", CASES[1:3])
def test_planes_are_the_gradient_of_the_values(branching, values, probs, params):
    """Q = plane . phi, and each plane entry is dQ/dphi (finite differences away from policy switches)."""
    env = tiny_env(branching, values, probs)
    cost, dcost, w = params
    phi = env.meta.params(cost, dcost, w)
    solver = env.meta.solver("exact")
    beliefs = np.vstack([env.meta.initial_beliefs(1), random_beliefs(env, np.random.default_rng(1), 8)])
    planes = solver.q_planes(beliefs, phi)
    q = solver.q_values(beliefs, phi)
    avail = env.meta.available(beliefs)
    assert np.allclose((planes @ phi)[avail], q[avail], atol=1e-12)
    eps = 1e-6
    for j in range(phi.size):
        e = np.zeros(phi.size)
        e[j] = eps
        up, dn = (np.where(avail, solver.q_values(beliefs, x), 0.0) for x in (phi + e, phi - e))
        fd = (up - dn) / (2 * eps)
        assert np.allclose(fd[avail], planes[..., j][avail], atol=1e-6), j


def test_symmetric_form_and_state_count():
    env = irl.envs.make("mouselab-312")
    s = ml.SymmetricTreeSolver(env.meta)
    assert (s.B, s.L, s.K) == (3, 2, 2)
    assert s.NB == 25 * 9  # 5 x 5 chain states, leaves: none revealed, or (hidden count, best value)
    assert s.n_states == 227 * 226 * 225 // 6  # multisets of 3 branch states
    assert ml.mouselab((2, 2, 2), ((-1, 1),) * 3).meta.tree.symmetric_form() is None


@pytest.fixture(scope="module")
def env312():
    return irl.envs.make("mouselab-312")


def test_312_environment(env312):
    env = env312
    t = env.meta.tree
    assert env.n_states == 13 and env.horizon == 3 and env.n_features == 0
    assert t.leaves.tolist() == [3, 4, 7, 8, 11, 12]
    assert t.paths[:, 1:].tolist() == [[1, 2, 3], [1, 2, 4], [5, 6, 7], [5, 6, 8], [9, 10, 11], [9, 10, 12]]
    assert env.terminal.tolist() == [k in (3, 4, 7, 8, 11, 12) for k in range(13)]
    assert [v.tolist() for v in t.values] == [[-4, -2, 2, 4], [-8, -4, 4, 8], [-48, -24, 24, 48]]
    assert env.meta.fee == 1.0
    # moving: action a goes to the a-th child; the object-level MDP reaches a leaf in 3 moves
    P = env.dense_transitions()
    assert P[0, 0, 1] == 1 and P[0, 1, 5] == 1 and P[0, 2, 9] == 1 and P[2, 1, 4] == 1
    assert env.replace(name="x").meta is env.meta


def test_optimal_policy_properties_312(env312):
    """The properties the planning-depth study relies on, and the value checked by simulation."""
    s = ml.optimal_policy_summary(env312)
    assert s["first_click_depth"] == 3  # increasing variance: look at the leaves first
    assert s["first_click_q"][3] > s["first_click_q"][2] > s["first_click_q"][1] > s["stop_q"]
    assert s["no_planning_value"] == 0.0
    assert s["value"] > 35 > s["no_planning_value"] + 30
    # the DP's value is the expected score of the optimal policy: simulate it (argmax of the exact Q-values)
    meta = env312.meta
    phi = meta.params(cost=1.0)
    solver = meta.solver("exact")
    rng = np.random.default_rng(0)
    inst = meta.sample_instances(3000, rng)
    b = meta.initial_beliefs(len(inst))
    clicks = np.zeros(len(inst))
    active = np.ones(len(inst), bool)
    while active.any():
        rows = np.flatnonzero(active)
        a = solver.q_values(b[rows], phi).argmax(axis=1)
        stop = a == 0
        active[rows[stop]] = False
        go = rows[~stop]
        b[go, a[~stop]] = inst[go, a[~stop]]
        clicks[go] += 1
    best = meta.best_paths(b)
    score = (inst * meta.tree.path_matrix[best]).sum(axis=1) - clicks
    se = score.std() / np.sqrt(len(score))
    assert abs(score.mean() - s["value"]) < 4 * se
    assert clicks.mean() == pytest.approx(s["expected_clicks"], abs=4 * clicks.std() / np.sqrt(len(clicks)))


def test_myopic_is_a_lower_bound_and_exact_by_hand(env312):
    meta = env312.meta
    b = meta.initial_beliefs(1)
    q = meta.q_values(b, cost=1.0, solver="myopic")[0]
    # one click on a leaf: max(0, leaf) in expectation, minus the cost; on inner nodes likewise
    assert q[3] == pytest.approx(np.mean(np.maximum(0, [-48, -24, 24, 48])) - 1)
    assert q[1] == pytest.approx(np.mean(np.maximum(0, [-4, -2, 2, 4])) - 1)
    assert q[0] == 0.0
    rng = np.random.default_rng(2)
    beliefs = random_beliefs(env312, rng, 40)
    qm = meta.q_values(beliefs, cost=1.3, depth_cost=0.2, solver="myopic")
    qe = meta.q_values(beliefs, cost=1.3, depth_cost=0.2, solver="exact")
    avail = meta.available(beliefs)
    assert np.all(qm[avail] <= qe[avail] + 1e-9)
    assert np.allclose(qm[:, 0], qe[:, 0])  # stopping is valued the same


def test_envelope_is_a_lower_bound_exact_where_seen():
    env = tiny_env()
    meta = env.meta
    exact = meta.solver("exact")
    envl = ml.EnvelopeSolver(exact)
    beliefs = np.vstack([meta.initial_beliefs(1), random_beliefs(env, np.random.default_rng(3), 20)])
    envl.register(beliefs)
    with pytest.raises(MetaLevelError, match="no planes yet"):
        envl.q_values(beliefs, meta.params(1.0))
    seen = [meta.params(c, d) for c, d in [(0.5, 0.0), (2.0, 0.5), (4.0, -0.5)]]
    for phi in seen:
        envl.add(phi)
    late = np.array([[0.0, 1.0, 2.0, 10.0, -10.0, -1.0, -2.0, 10.0, np.nan]])
    with pytest.raises(MetaLevelError, match="register all beliefs before the first add"):
        envl.register(late)
    avail = meta.available(beliefs)
    for phi in seen:
        assert np.allclose(envl.q_values(beliefs, phi)[avail], exact.q_values(beliefs, phi)[avail], atol=1e-12)
        assert envl.gap(beliefs, phi) < 1e-12
    other = meta.params(1.37, 0.21)
    assert np.all(envl.q_values(beliefs, other)[avail] <= exact.q_values(beliefs, other)[avail] + 1e-12)
    assert envl.gap(beliefs, other) >= 0
    envl.add(other)
    assert envl.gap(beliefs, other) < 1e-12


def test_envelope_copy_is_independent_and_refine_solves_once():
    env = tiny_env()
    meta = env.meta
    envl = ml.EnvelopeSolver(meta.solver("exact"))
    beliefs = np.vstack([meta.initial_beliefs(1), random_beliefs(env, np.random.default_rng(4), 10)])
    envl.register(beliefs)
    envl.add(meta.params(0.5, 0.0))
    twin = envl.copy()
    other = meta.params(1.37, 0.21)
    before = envl.gap(beliefs, other)
    solves = twin.n_solves
    assert twin.refine(beliefs, other) == pytest.approx(before, abs=1e-12)  # the gap before its planes went in
    assert twin.n_solves == solves + 1 and twin.gap(beliefs, other) < 1e-12
    assert envl.gap(beliefs, other) == pytest.approx(before, abs=1e-12)  # the original has not changed
    assert envl.n_planes < twin.n_planes or before < 1e-12


def test_validation_messages():
    with pytest.raises(MetaLevelError, match=r"parents\[2\] must be a node id in 0..1"):
        ml.MouselabTree(np.array([-1, 0, 5]), [(-1, 1), (-1, 1)])
    with pytest.raises(MetaLevelError, match="strictly increasing"):
        ml.MouselabTree.from_branching((2,), [(1.0, -1.0)])
    with pytest.raises(MetaLevelError, match="summing to 1"):
        ml.MouselabTree.from_branching((2,), [(-1.0, 1.0)], [(0.5, 0.6)])
    env = tiny_env()
    meta = env.meta
    with pytest.raises(MetaLevelError, match=r"shape \(D, n_nodes\) = \(D, 9\)"):
        meta.available(np.zeros((2, 4)))
    b = meta.initial_beliefs(1)
    b[0, 3] = 7.0
    with pytest.raises(MetaLevelError, match="node 3 was revealed as 7.0, which is not in the depth-3 support"):
        meta.q_values(b, cost=1.0)
    with pytest.raises(MetaLevelError, match="leaf utility >= 0"):
        meta.q_values(meta.initial_beliefs(1), cost=1.0, weights=(1.0, 1.0, -1.0))
    with pytest.raises(MetaLevelError, match="unknown meta-level solver 'fast'; known: exact"):
        meta.solver("fast")
    with pytest.raises(MetaLevelError, match="branching \\(B, 1, ..., 1, K\\)"):
        ml.mouselab((2, 2, 2), ((-1, 1),) * 3).meta.solver("exact")
    with pytest.raises(MetaLevelError, match="one utility per depth \\(3\\)"):
        meta.params(1.0, 0.0, (1.0, 1.0))
    with pytest.raises(MetaLevelError, match="brute force would visit"):
        ml.BruteForceSolver(irl.envs.make("mouselab-312").meta)


def test_reward_models():
    env = irl.envs.make("mouselab-312")
    fixed = ml.FixedReward(env.true_reward, env.n_actions)
    r = fixed(torch.zeros(4, 0))
    assert r.shape == (4, 13, 3)
    assert torch.equal(r[2, :, 0], torch.tensor(env.true_reward.tolist(), dtype=torch.float64))
    depth = ml.depth_reward_model(env)
    rr = depth(torch.tensor([1.0, 2.0, 3.0]))
    assert rr[:, 0].tolist() == [0, 1, 2, 3, 3, 1, 2, 3, 3, 1, 2, 3, 3]
    assert depth.param_names() == ["utility@depth1", "utility@depth2", "utility@depth3"]
    assert irl.rewards.default_reward_model(env).n_params == 0


def test_random_effects_bms():
    # overwhelming evidence: every participant's model is certain, so the posterior counts are the tallies
    L = np.full((10, 3), -1000.0)
    L[:6, 0] = 0.0
    L[6:9, 1] = 0.0
    L[9, 2] = 0.0
    out = population.random_effects_bms(L, samples=20000)
    assert out["expected_count"] == pytest.approx([6, 3, 1], abs=1e-9)
    assert out["alpha"] == pytest.approx([7, 4, 2], abs=1e-9)
    assert out["expected_frequency"] == pytest.approx(np.array([7, 4, 2]) / 13)
    assert out["exceedance"].sum() == pytest.approx(1.0) and out["exceedance"].argmax() == 0
    # no evidence either way: nothing moves from the flat prior but the counts split evenly
    flat = population.random_effects_bms(np.zeros((8, 2)))
    assert flat["expected_count"] == pytest.approx([4, 4])
    with pytest.raises(ValueError, match="finite"):
        population.random_effects_bms(np.array([[0.0, np.nan]]))


def test_fit_participants_is_exact_at_the_optima():
    """The shared-envelope fits end where the exact solver agrees, at the exact likelihood's optimum."""
    import demos
    import human_models as hm
    import priors

    env = tiny_env()
    people = []
    for k, (c, d) in enumerate([(0.4, 0.0), (1.5, 0.6)]):
        t = demos.simulate(env, hm.MetaBoltzmann(cost=c, depth_cost=d, beta=1.5), env.true_reward, n=60, seed=k)
        people.append(demos.DeliberationTraces(**{**t._arrays(), "participant": np.full(60, f"p{k}"),
                                                  "fee": 1.0}))
    data = demos.DeliberationTraces.concat(people)
    model = hm.MetaBoltzmann(cost=priors.Gaussian(0, 10), depth_cost=priors.Gaussian(0, 10),
                             beta=priors.LogNormal(0, 1))
    train = data.subset(np.arange(len(data)) % 3 != 0)
    test = data.subset(np.arange(len(data)) % 3 == 0)
    rows, info = population.fit_participants(env, train, {"depth": model, "null": hm.RandomClicks()},
                                             grid=[(0.0, 0.0), (1.0, 0.0), (2.0, 1.0)], starts=1, held_out=test)
    assert info["unresolved"] == 0 and info["max_gap"] < 1e-6
    fits = {(r.participant, r.model): r for r in rows}
    for k in range(2):
        f = fits[(f"p{k}", "depth")]
        direct = irl.MaxEnt(human=model).fit(env, train.select(participant=f"p{k}"),
                                             init=np.asarray(f.estimate.info["x"]))
        # the exact fit started at the envelope's optimum does not improve on it: the same optimum
        assert direct.log_likelihood + direct.log_prior == pytest.approx(
            f.log_likelihood + f.estimate.log_prior, abs=1e-6)
        assert f.log_likelihood > fits[(f"p{k}", "null")].log_likelihood + 10
        # held-out trials scored at the fit, through the envelope: equal to the exact solver's score
        exact = float(model.bind(**f.params).log_likelihood(env, env.true_reward, test.select(participant=f"p{k}")))
        assert f.held_out_log_likelihood == pytest.approx(exact, abs=1e-9)
        assert f.held_out_log_likelihood > fits[(f"p{k}", "null")].held_out_log_likelihood + 5
    assert fits[("p1", "depth")].params["cost"] > fits[("p0", "depth")].params["cost"]


def test_study_fits_resume_from_a_checkpoint(tmp_path):
    """Each participant's results are saved when final; a rerun skips them; other settings are refused."""
    import json

    import demos
    import human_models as hm
    import priors

    env = tiny_env()
    people = []
    for k, (c, d) in enumerate([(0.4, 0.0), (1.5, 0.6)]):
        t = demos.simulate(env, hm.MetaBoltzmann(cost=c, depth_cost=d, beta=1.5), env.true_reward, n=30, seed=k)
        people.append(demos.DeliberationTraces(**{**t._arrays(), "participant": np.full(30, f"p{k}"), "fee": 1.0}))
    data = demos.DeliberationTraces.concat(people)
    models = {"effort": hm.MetaBoltzmann(cost=priors.Gaussian(0, 10), beta=priors.LogNormal(0, 1)),
              "null": hm.RandomClicks()}
    grid = [(0.0, 0.0), (1.0, 0.0), (2.0, 1.0)]
    rows, info = population.fit_participants(env, data, models, grid=grid, starts=1, checkpoint=tmp_path / "fits")
    files = sorted((tmp_path / "fits" / "participants").glob("*.json"))
    assert len(files) == 2 and info["resumed"] == 0
    # a killed run: one participant's file is gone; the rerun fits only that one and gives the same numbers
    gone = json.loads(files[1].read_text())["participant"]
    files[1].unlink()
    again, info2 = population.fit_participants(env, data, models, grid=grid, starts=1, checkpoint=tmp_path / "fits")
    assert info2["resumed"] == 1 and info2["n_participants"] == 2
    for a, b in zip(rows, again):
        assert (a.participant, a.model) == (b.participant, b.model)
        assert b.log_likelihood == pytest.approx(a.log_likelihood, abs=1e-6)
        assert (b.estimate is None) == (b.participant != gone or not a.params)
    with pytest.raises(ValueError, match="written with other settings \\(grid differ\\)"):
        population.fit_participants(env, data, models, grid=grid[:2], starts=1, checkpoint=tmp_path / "fits")


def test_posterior_through_the_envelope_is_checked_against_exact_solves():
    """Bayesian IRL of the costs: HMC on envelope Q-values, exact at the checked posterior draws."""
    import demos
    import human_models as hm
    import priors

    env = tiny_env()
    data = demos.simulate(env, hm.MetaBoltzmann(cost=1.2, depth_cost=0.4, beta=1.5), env.true_reward, n=150, seed=8)
    model = hm.MetaBoltzmann(cost=priors.Gaussian(0, 5), depth_cost=priors.Gaussian(0, 5),
                             beta=priors.LogNormal(0, 1))
    envl = ml.EnvelopeSolver(env.meta.solver("exact"))
    rows, _ = population.fit_participants(env, data, {"m": model}, grid=[(0.0, 0.0), (1.0, 0.5), (2.5, 0.0)], starts=1,
                                          envelope=envl)
    x = np.asarray(rows[0].estimate.info["x"])
    post, info = population.posterior_with_envelope(env, data, model, envl, init=x, samples=60, warmup=60, chains=2,
                                                    seed=0, check_draws=6, rounds=4, max_leapfrog=6)
    assert info["exact_at_checked_draws"] and info["rounds"] <= 4
    for name, true in (("cost", 1.2), ("depth_cost", 0.4)):
        lo, hi = post.credible_interval(f"meta-boltzmann.{name}", 0.99)
        assert lo < true < hi and hi - lo < 2.0
        assert lo < rows[0].params[name] < hi  # the MAP fit lies inside the posterior
