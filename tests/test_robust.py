"""Robust planning over a reward posterior (BROIL) and deferring: exact answers on small MDPs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import irl
from irl import planning
from irl.robust import broil, cvar, deferral_report, flow_constraints, prob_optimal, reward_samples


# ------------------------------------------------------------------ helpers
def random_mdp(S: int, A: int, *, seed: int, horizon: int | None = None, discount: float = 0.9,
               terminal: bool = False) -> irl.TabularMDP:
    rng = np.random.default_rng(seed)
    T = rng.dirichlet(np.ones(S), size=(S, A))
    T[rng.random((S, A, S)) < 0.3] = 0.0
    T[:, :, 0] += 1e-3
    T /= T.sum(axis=2, keepdims=True)
    term = None
    if terminal:
        term = np.zeros(S, bool)
        term[-1] = True
    return irl.TabularMDP.from_arrays(T, initial=rng.dirichlet(np.ones(S)), discount=discount, horizon=horizon,
                                      terminal=term)


def cvar_by_sigma(x: np.ndarray, p: np.ndarray, alpha: float) -> np.ndarray:
    """Rockafellar-Uryasev: max over sigma of sigma - E[(sigma - X)_+] / (1 - alpha) (batched over x's rows).

    The maximum of this concave piecewise-linear function of sigma is attained at a sample value,
    so the candidates are the samples themselves (an independent check of :func:`irl.robust.cvar`).
    """
    x = np.atleast_2d(x)
    sig = x[:, :, None]  # candidates: each sample value
    val = sig[..., 0] - (np.maximum(sig - x[:, None, :], 0.0) @ p) / (1.0 - alpha)
    return val.max(axis=1)


def dense_occupancy(env: irl.TabularMDP, policies: np.ndarray) -> np.ndarray:
    """Occupancies ``(B, [H,] S, A)`` of a batch of policies by dense linear algebra (tiny MDPs only)."""
    S, A = env.n_states, env.n_actions
    P = env.dense_transitions() * (~env.terminal)[:, None, None]  # terminal states absorb the flow
    d0 = env.initial
    if env.horizon is None:
        P_pi = np.einsum("bsa,sat->bst", policies, P)
        d = np.linalg.solve(np.eye(S)[None] - env.discount * np.swapaxes(P_pi, 1, 2), np.broadcast_to(d0, (len(
            policies), S))[..., None])[..., 0]
        return policies * d[..., None]
    out = np.empty_like(policies)
    d = np.broadcast_to(d0, (len(policies), S))
    for t in range(env.horizon):
        out[:, t] = policies[:, t] * d[..., None]
        d = env.discount * np.einsum("bsa,sat->bt", out[:, t], P)
    return out


def brute_force_values(env: irl.TabularMDP, rewards: np.ndarray, p: np.ndarray, policies: np.ndarray,
                       alpha: float, lam: float, base: np.ndarray | None = None) -> np.ndarray:
    """BROIL objective of each policy from occupancies by dense linear algebra (batched over policies)."""
    occ = dense_occupancy(env, policies)  # (B, [H,] S, A)
    B = occ.shape[0]
    flat = occ.reshape(B, -1, env.n_states * env.n_actions).sum(axis=1)  # (B, S*A)
    ret = flat @ rewards.reshape(len(rewards), -1).T  # (B, N)
    diff = ret if base is None else ret - base
    return lam * (ret @ p) + (1 - lam) * cvar_by_sigma(diff, p, alpha)


def policy_grid(shape: tuple[int, ...], A: int, steps: int) -> np.ndarray:
    """Every policy whose probabilities are multiples of 1/steps (A = 2), shape (B, *shape, A)."""
    n = int(np.prod(shape))
    probs = np.linspace(0.0, 1.0, steps + 1)
    assert A == 2
    grid = np.array(list(itertools.product(probs, repeat=n)))  # (B, n)
    return np.stack([grid, 1.0 - grid], axis=-1).reshape(len(grid), *shape, A)


# ------------------------------------------------------------------ CVaR
def test_cvar_of_a_discrete_distribution() -> None:
    x = np.array([3.0, -1.0, 2.0, 10.0])
    assert cvar(x, 0.0) == pytest.approx(x.mean())
    assert cvar(x, 0.75) == pytest.approx(-1.0)
    assert cvar(x, 0.5) == pytest.approx(0.5)
    # a sample on the boundary counts with the part of its weight inside the tail
    assert cvar(x, 0.6) == pytest.approx((0.25 * -1.0 + 0.15 * 2.0) / 0.4)
    rng = np.random.default_rng(0)
    for _ in range(20):
        v, w = rng.normal(size=9), rng.dirichlet(np.ones(9))
        a = rng.uniform(0, 0.99)
        assert cvar(v, a, w) == pytest.approx(cvar_by_sigma(v, w, a)[0], abs=1e-12)


# ------------------------------------------------------------- the program
@pytest.mark.parametrize("horizon", [None, 4])
def test_lam_one_is_the_mean_optimal_policy(horizon: int | None) -> None:
    env = random_mdp(6, 3, seed=1, horizon=horizon, terminal=True)
    rng = np.random.default_rng(2)
    samples = rng.normal(size=(25, 6, 3))
    w = rng.dirichlet(np.ones(25))
    res = broil(env, samples, lam=1.0, weights=w)
    mean = np.tensordot(w, samples, axes=1)
    v_opt = planning.expected_return(env, mean, planning.value_iteration(env, mean).policy)
    assert res.expected_return == pytest.approx(v_opt, abs=1e-7)
    assert res.lp["objective"] == pytest.approx(v_opt, abs=1e-7)
    # the policy's value, evaluated by the planner, is the LP's value
    assert planning.expected_return(env, mean, res.policy) == pytest.approx(v_opt, abs=1e-7)


def test_cvar_optimum_of_a_bandit_is_stochastic_and_exact() -> None:
    # one decision, two actions, two equally likely rewards that disagree: the worst case is maximised at 50/50
    T = np.zeros((2, 2, 2))
    T[0, :, 1] = 1.0
    T[1, :, 1] = 1.0
    env = irl.TabularMDP.from_arrays(T, initial=[1.0, 0.0], discount=0.9, terminal=[False, True])
    samples = np.zeros((2, 2, 2))
    samples[0, 0, 0] = samples[1, 0, 1] = 1.0
    res = broil(env, samples, alpha=0.5, lam=0.0)
    np.testing.assert_allclose(res.policy[0], [0.5, 0.5], atol=1e-8)
    assert res.cvar == pytest.approx(0.5, abs=1e-8)
    for p in (0.0, 1.0):  # each deterministic policy has a worst case of 0
        assert cvar(samples[:, 0] @ [p, 1 - p], 0.5) == pytest.approx(0.0)


@pytest.mark.parametrize("alpha,lam", [(0.9, 0.0), (0.7, 0.4), (0.5, 0.8), (0.95, 0.0)])
def test_lp_beats_every_deterministic_and_grid_policy(alpha: float, lam: float) -> None:
    env = random_mdp(3, 2, seed=3, discount=0.8)
    rng = np.random.default_rng(4)
    samples = rng.normal(size=(9, 3, 2))
    w = rng.dirichlet(np.ones(9))
    res = broil(env, samples, alpha=alpha, lam=lam, weights=w)
    grid = policy_grid((3,), 2, 20)  # 21^3 stochastic policies, the 8 deterministic ones among them
    values = brute_force_values(env, samples, w, grid, alpha, lam)
    best = values.max()
    assert res.lp["objective"] >= best - 1e-9
    # the LP's own policy, judged by the planner and the sigma form of CVaR, has the LP's value
    own = brute_force_values(env, samples, w, res.policy[None], alpha, lam)[0]
    assert own == pytest.approx(res.lp["objective"], abs=1e-6)
    assert own == pytest.approx(lam * res.expected_return + (1 - lam) * res.cvar, abs=1e-9)
    # a grid of step 1/20 comes within its resolution of the optimum: the LP is not an outlier
    assert res.lp["objective"] - best < 0.05 * (np.abs(values).max() + 1.0)
    # with lam = 1 or alpha = 0 (the mean) the optimum is deterministic: the grid holds it exactly
    exact = broil(env, samples, alpha=0.0, lam=lam, weights=w).lp["objective"]
    assert exact == pytest.approx(brute_force_values(env, samples, w, grid, 0.0, lam).max(), abs=1e-6)


def test_finite_horizon_program_against_brute_force() -> None:
    env = random_mdp(2, 2, seed=5, horizon=2, discount=0.95)
    rng = np.random.default_rng(6)
    samples = rng.normal(size=(7, 2, 2))
    w = rng.dirichlet(np.ones(7))
    for alpha, lam in ((0.8, 0.0), (0.6, 0.5), (0.0, 1.0)):
        res = broil(env, samples, alpha=alpha, lam=lam, weights=w)
        assert res.policy.shape == (2, 2, 2)
        grid = policy_grid((2, 2), 2, 10)  # time-indexed: 11^4 policies
        values = brute_force_values(env, samples, w, grid, alpha, lam)
        assert res.lp["objective"] >= values.max() - 1e-9
        own = brute_force_values(env, samples, w, res.policy[None], alpha, lam)[0]
        assert own == pytest.approx(res.lp["objective"], abs=1e-6)
    # lam = 1: time-indexed value iteration's optimum
    mean = np.tensordot(w, samples, axes=1)
    v = planning.expected_return(env, mean, planning.value_iteration(env, mean).policy)
    assert broil(env, samples, lam=1.0, weights=w).expected_return == pytest.approx(v, abs=1e-8)


@pytest.mark.parametrize("horizon,discount,terminal", [(None, 0.9, False), (None, 0.95, True), (5, 1.0, True),
                                                       (3, 0.9, False)])
def test_lp_occupancy_is_the_planners_occupancy_of_its_policy(horizon, discount, terminal) -> None:
    env = random_mdp(8, 3, seed=7, horizon=horizon, discount=discount, terminal=terminal)
    samples = np.random.default_rng(8).normal(size=(30, 8, 3))
    res = broil(env, samples, alpha=0.9, lam=0.3)
    np.testing.assert_allclose(planning.occupancy_measure(env, res.policy), res.occupancy, atol=1e-8)
    for method in ("highs-ds", "highs-ipm"):  # every HiGHS method reaches the same optimum
        other = broil(env, samples, alpha=0.9, lam=0.3, method=method)
        assert other.lp["method"] == method
        assert other.lp["objective"] == pytest.approx(res.lp["objective"], abs=1e-7)
    M, b = flow_constraints(env)
    np.testing.assert_allclose(M @ res.occupancy.ravel(), b, atol=1e-9)
    # and the planner's occupancy of any policy satisfies the flow constraints
    pi = np.random.default_rng(9).dirichlet(np.ones(3), size=res.policy.shape[:-1])
    np.testing.assert_allclose(M @ planning.occupancy_measure(env, pi).ravel(), b, atol=1e-10)


def test_posterior_input_uses_the_factored_form_and_agrees_with_arrays() -> None:
    env = irl.envs.make("lava-corridor")
    rng = np.random.default_rng(10)
    theta = rng.normal([-0.1, -0.9], 0.4, size=(2, 60, 2))
    post = irl.Posterior(theta=theta, param_names=["w[0]", "w[1]"], log_density=-np.sum(theta ** 2, axis=-1))
    rs = reward_samples(env, post)
    assert rs.basis is not None and rs.coef.shape == (120, 2)
    dense = np.einsum("saf,nf->nsa", env.feature_matrix(), theta.reshape(-1, 2))
    a = irl.plan(env, post, objective="cvar", alpha=0.9, lam=0.2)
    b = irl.plan(env, dense, objective="cvar", alpha=0.9, lam=0.2)
    assert a.lp["objective"] == pytest.approx(b.lp["objective"], abs=1e-7)
    assert a.lp["nonzeros"] < b.lp["nonzeros"]
    # map: the draw with the highest log density
    m = irl.plan(env, post, objective="map")
    best = theta.reshape(-1, 2)[np.argmax(post.log_density.reshape(-1))]
    np.testing.assert_allclose(m.policy, planning.value_iteration(env, env.features @ best).policy)


# -------------------------------------------------------------- baselines
def test_demonstration_occupancy_is_the_planners_for_a_deterministic_demonstrator() -> None:
    env = irl.envs.make("lava-corridor")
    demo = irl.envs.broil.lava_corridor_demonstrations()
    # the demonstrator's policy on its path, from its start
    pi = np.full((env.n_states, env.n_actions), 0.25)
    for s, a in zip(demo.states[:-1], demo.actions):
        pi[s] = np.eye(env.n_actions)[a]
    start = np.eye(env.n_states)[1]
    np.testing.assert_allclose(irl.robust.demonstration_occupancy(env, demo),
                               planning.occupancy_measure(env, pi, initial=start), atol=1e-12)


def test_robust_regret_against_demonstrations_is_never_negative() -> None:
    env = irl.envs.make("gridworld-5x5")
    import demos
    import human_models as hm

    data = demos.simulate(env, hm.Boltzmann(1.0), env.true_reward, n=30, seed=0)
    samples = env.true_reward[None] + np.random.default_rng(1).normal(0, 0.5, size=(40, env.n_states))
    res = irl.plan(env, samples, objective="cvar", alpha=0.9, lam=0.0, baseline=data)
    base = irl.robust.demonstration_occupancy(env, data)
    assert res.baseline_returns is not None
    np.testing.assert_allclose(res.baseline_returns, reward_samples(env, samples).returns(base))
    # the demonstrator's occupancy itself is feasible with regret 0, so the optimum is >= 0
    assert res.cvar >= -1e-8
    mean = irl.plan(env, samples, objective="mean", baseline=data)
    assert res.cvar >= mean.cvar - 1e-8


# --------------------------------------------------------------- the papers
def test_machine_replacement_frontier() -> None:
    env = irl.envs.make("machine-replacement")
    samples = irl.envs.broil.machine_replacement_samples(2000, seed=0)
    lams = [0.0, 0.3, 0.5, 0.75, 0.95, 0.99, 1.0]
    plans = [irl.plan(env, samples, objective="cvar", alpha=0.99, lam=lam) for lam in lams]
    ev = np.array([p.expected_return for p in plans])
    cv = np.array([p.cvar for p in plans])
    # an efficient frontier: more weight on the mean buys expected return with robustness
    assert np.all(np.diff(ev) >= -1e-6) and np.all(np.diff(cv) <= 1e-6)
    # the mean-optimal policy never repairs (mean noop costs 10, 20, 40, 95 < 100); the robust one repairs
    # the worn-out machine for sure and the middle-aged ones often: the Gamma tails are heavy
    np.testing.assert_allclose(plans[-1].policy[:, 1], 0.0, atol=1e-9)
    assert plans[0].policy[3, 1] == pytest.approx(1.0) and plans[0].policy[0, 1] < 1e-9
    assert 0.3 < plans[0].policy[1, 1] < 1.0 and 0.5 < plans[0].policy[2, 1] < 1.0
    assert cv[0] > cv[-1] + 1000.0  # the worst 1% is far less bad
    assert ev[-1] > ev[0] + 100.0


# --------------------------------------------------------------- deferring
def test_prob_optimal_counts_the_samples_where_the_action_is_optimal() -> None:
    env = random_mdp(5, 3, seed=11, discount=0.9)
    samples = np.random.default_rng(12).normal(size=(40, 5, 3))
    w = np.random.default_rng(13).dirichlet(np.ones(40))
    pi = np.random.default_rng(14).dirichlet(np.ones(3), size=5)
    got = prob_optimal(env, samples, pi, weights=w)
    want = np.zeros(5)
    for i in range(40):
        q = planning.value_iteration(env, samples[i]).q
        want += w[i] * pi[np.arange(5), q.argmax(axis=1)]  # continuous rewards: no ties
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_deferring_marks_the_uncertain_states_and_the_report_splits_the_regret() -> None:
    env = irl.envs.make("gridworld-5x5")
    truth = env.true_reward
    rng = np.random.default_rng(0)
    samples = truth[None] + rng.normal(0, 0.6, size=(200, env.n_states))
    res = irl.plan(env, samples, objective="mean", defer=0.9)
    assert res.defer.shape == (env.horizon, env.n_states) and res.p_optimal.shape == res.defer.shape
    np.testing.assert_array_equal(res.defer, res.p_optimal < 0.9)
    assert 0.0 < res.deferral_rate < 1.0
    rep = deferral_report(env, res.policy, res.defer, truth)
    evd = irl.metrics.expected_value_difference(env, res.policy, truth)
    assert rep["regret"] == pytest.approx(evd, abs=1e-9)  # performance-difference identity
    assert rep["regret_autonomous"] + rep["regret_deferred"] == pytest.approx(rep["regret"], abs=1e-12)
    assert rep["deferred_visits"] == pytest.approx(res.deferral_rate, abs=1e-12)
    # a stricter threshold defers more and leaves less regret to the policy's own decisions
    never = irl.plan(env, samples, objective="mean", defer=0.0)
    always = irl.plan(env, samples, objective="mean", defer=1.0 + 1e-12 if False else 1.0)
    assert never.deferral_rate == 0.0 and always.deferral_rate >= res.deferral_rate
    r_never = deferral_report(env, never.policy, never.defer, truth)["regret_autonomous"]
    assert rep["regret_autonomous"] <= r_never + 1e-12


def test_deferring_falls_back_to_the_demonstrator() -> None:
    import demos
    import human_models as hm

    env = irl.envs.make("gridworld-5x5")
    data = demos.simulate(env, hm.Boltzmann(3.0), env.true_reward, n=50, seed=1)
    samples = env.true_reward[None] + np.random.default_rng(2).normal(0, 0.6, size=(100, env.n_states))
    asked = irl.plan(env, samples, objective="mean", defer=0.9)
    fell = irl.plan(env, samples, objective="mean", defer=0.9, fallback=data)
    fb, seen = irl.robust.demonstration_policy(env, data)
    use = asked.defer & seen[None, :]
    assert use.any()
    np.testing.assert_allclose(fell.policy[use], np.broadcast_to(fb, asked.policy.shape)[use])
    np.testing.assert_allclose(fell.policy[~use], asked.policy[~use])
    np.testing.assert_allclose(fell.occupancy, planning.occupancy_measure(env, fell.policy))


# --------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs,match", [
    (dict(objective="cvar", alpha=1.0), r"alpha .* \[0, 1\): got 1.0"),
    (dict(objective="cvar", alpha=-0.1), r"alpha .* \[0, 1\)"),
    (dict(objective="cvar", alpha=float("nan")), "alpha must be finite"),
    (dict(objective="cvar", lam=1.5), r"lam .* \[0, 1\]: got 1.5"),
    (dict(objective="cvar", lam="0.5"), "lam must be a number"),
    (dict(objective="mean", lam=0.5), "lam only applies to objective='cvar'"),
    (dict(objective="mean", defer=1.5), r"defer .* \[0, 1\]"),
    (dict(objective="map"), "objective='map' needs an irl.Posterior with log_density"),
    (dict(objective="cvar", weights=np.ones(3)), r"weights must have shape \(N,\) = \(10,\)"),
    (dict(objective="cvar", weights=-np.ones(10)), "weights must be finite and >= 0: got min -1"),
    (dict(objective="cvar", weights=np.full(10, np.nan)), "weights must be finite and >= 0: found 10 NaN or inf"),
    (dict(objective="cvar", baseline="demonstrations"), "baseline='demonstrations' needs a posterior fitted"),
    (dict(objective="cvar", baseline=np.ones((3, 3))), "baseline occupancy must have shape"),
    (dict(objective="mean", defer=0.5, fallback="human"), "fallback must be 'ask', 'demonstrations' or a policy"),
    (dict(objective="best"), "unknown planning objective 'best'; known: optimal, soft, mean, map, cvar"),
])
def test_bad_arguments_are_named(kwargs: dict, match: str) -> None:
    env = irl.envs.make("machine-replacement")
    samples = irl.envs.broil.machine_replacement_samples(10, seed=0)
    with pytest.raises(ValueError, match=match):
        irl.plan(env, samples, **kwargs)


@pytest.mark.parametrize("samples,match", [
    (np.zeros((0, 4, 2)), r"non-empty array \(N, S\) or \(N, S, A\)"),
    (np.zeros((5, 3, 2)), r"\(N, S\) = \(N, 4\) or \(N, S, A\) = \(N, 4, 2\) .* got \(5, 3, 2\)"),
    (np.zeros((5, 4, 3)), r"got \(5, 4, 3\)"),
    (np.full((2, 4), np.nan), "reward samples must be finite"),
])
def test_bad_samples_are_named(samples: np.ndarray, match: str) -> None:
    env = irl.envs.make("machine-replacement")
    with pytest.raises(ValueError, match=match):
        irl.plan(env, samples, objective="cvar")


def test_options_of_other_objectives_are_refused() -> None:
    env = irl.envs.make("gridworld-5x5")
    with pytest.raises(ValueError, match="alpha, lam, baseline, weights and method apply to the posterior objectives"):
        irl.plan(env, env.true_reward, alpha=0.9)
    with pytest.raises(ValueError, match="alpha, lam, baseline, weights and method apply"):
        irl.plan(env, env.true_reward, method="highs")
    samples = np.random.default_rng(0).normal(size=(5, env.n_states))
    with pytest.raises(ValueError, match="method only applies to objective='cvar': got objective='mean'"):
        irl.plan(env, samples, objective="mean", method="policies")
    # irl.plan passes method on to broil
    a = irl.plan(env, samples, objective="cvar", method="policies")
    b = irl.plan(env, samples, objective="cvar", method="highs")
    assert a.lp["method"] == "policies" and b.lp["method"] == "highs"
    assert a.lp["objective"] == pytest.approx(b.lp["objective"], rel=1e-6)  # within the certified gap (1e-7 rel.)
    assert b.lp["objective"] - a.lp["objective"] <= a.lp["gap"] + 1e-9
    # the existing objectives still return plain policy arrays
    assert isinstance(irl.plan(env, env.true_reward), np.ndarray)
    assert isinstance(irl.plan(env, env.true_reward, objective="soft", beta=2.0), np.ndarray)


def test_programs_without_a_finite_answer_are_explained() -> None:
    T = np.zeros((1, 1, 1))
    T[0, 0, 0] = 1.0
    loop = irl.TabularMDP.from_arrays(T, initial=[1.0], discount=1.0)
    with pytest.raises(ValueError, match="no occupancy measure of 'mdp' is finite"):
        broil(loop, np.ones((3, 1, 1)), alpha=0.5, lam=0.5)
    # action 0 loops, action 1 ends the episode: a positive loop pays without bound
    T = np.zeros((2, 2, 2))
    T[0, 0, 0] = T[0, 1, 1] = T[1, :, 1] = 1.0
    env = irl.TabularMDP.from_arrays(T, initial=[1.0, 0.0], discount=1.0, terminal=[False, True])
    with pytest.raises(ValueError, match="unbounded"):
        broil(env, np.ones((3, 2, 2)), alpha=0.5, lam=0.5)


def test_result_is_a_policy_and_read_only() -> None:
    env = irl.envs.make("machine-replacement")
    res = irl.plan(env, irl.envs.broil.machine_replacement_samples(50, seed=0), objective="cvar", alpha=0.9)
    assert np.asarray(res).shape == res.shape == (4, 2)
    assert irl.metrics.policy_return(env, res, env.true_reward) == pytest.approx(
        planning.expected_return(env, env.true_reward, res.policy))
    with pytest.raises(ValueError):
        res.policy[0, 0] = 1.0
    assert "objective='cvar'" in repr(res)


def lava_posterior(samples_per_chain: int = 2000, chains: int = 4, n: int = 2000) -> np.ndarray:
    """Bayesian IRL on the lava corridor's single demonstration (BoltzmannQ, beta 10, as in BROIL), ``n`` unit-norm
    weight samples (the paper's convention: a reward direction, its scale is not identified)."""
    import human_models as hm
    import priors

    env = irl.envs.make("lava-corridor")
    demo = irl.envs.broil.lava_corridor_demonstrations()
    post = irl.BayesianIRL(hm.BoltzmannQ(beta=10.0), prior=priors.Gaussian(0.0, 1.0), sampler="policywalk").fit(
        env, demo, samples=samples_per_chain, warmup=500, chains=chains, seed=0, check=False)
    theta = post.theta.reshape(-1, 2)[post._thinned(n, 0)]
    return theta / np.linalg.norm(theta, axis=1, keepdims=True)


def test_lava_corridor_regret_policy_avoids_the_lava_the_mean_policy_crosses() -> None:
    env = irl.envs.make("lava-corridor")
    demo = irl.envs.broil.lava_corridor_demonstrations()
    w = lava_posterior()
    assert w.shape == (2000, 2) and np.all(w[:, 1] < w[:, 0])  # every sample: lava worse than a white cell
    samples = w @ env.features.T
    lava = env.features[:, 1] == 1
    truth = env.true_reward
    mean = irl.plan(env, samples, objective="mean", baseline=demo)  # reports the CVaR of its regret
    regret = irl.plan(env, samples, objective="cvar", alpha=0.95, lam=0.0, baseline=demo)
    robust = irl.plan(env, samples, objective="cvar", alpha=0.95, lam=0.0)
    go = lambda p: np.asarray(env.action_names)[p.policy.argmax(-1)].reshape(3, 5)  # noqa: E731
    # top row: the mean policy walks right and down into the lava from the two cells right of the middle;
    # the robust-regret policy walks left round the lava as the demonstrator did, from every top cell
    assert list(go(mean)[0]) == ["down", "left", "right", "right", "down"]
    assert list(go(regret)[0]) == ["down", "left", "left", "left", "left"]
    lava_visits = {k: float(p.occupancy.sum(-1)[lava].sum()) for k, p in
                   (("mean", mean), ("regret", regret), ("robust", robust))}
    # (uniform start over the 14 non-terminal cells: 4 episodes in 14 start in the lava and step out of it once)
    assert lava_visits["regret"] == pytest.approx(4 / 14, abs=1e-9)
    assert lava_visits["mean"] > lava_visits["regret"] + 0.15
    # under the true reward the regret policy is optimal, the mean policy is not
    assert irl.metrics.expected_value_difference(env, regret, truth) < 1e-9
    assert irl.metrics.expected_value_difference(env, mean, truth) > 0.04
    # robust return without a baseline hedges against costly white cells (the tail of the posterior), taking the
    # short way through the lava even more often: what the demonstrations add is the baseline, as in the paper
    assert lava_visits["robust"] >= lava_visits["mean"]
    assert mean.cvar < regret.cvar - 0.05  # the worst 5% of regrets: -0.06 against -0.15


# ------------------------------------------------------- column generation
@pytest.mark.parametrize("horizon,discount,terminal,lam,alpha,with_baseline", [
    (None, 0.9, False, 0.0, 0.9, False), (None, 0.95, True, 0.3, 0.8, True), (4, 1.0, True, 0.5, 0.95, False),
    (3, 0.9, False, 0.0, 0.5, True), (None, 0.9, False, 1.0, 0.9, False)])
def test_column_generation_reaches_the_linear_programs_optimum(horizon, discount, terminal, lam, alpha,
                                                               with_baseline) -> None:
    env = random_mdp(9, 3, seed=11, horizon=horizon, discount=discount, terminal=terminal)
    rng = np.random.default_rng(12)
    samples = rng.normal(size=(40, 9, 3))
    w = rng.dirichlet(np.ones(40))
    base = None
    if with_baseline:
        pi = rng.dirichlet(np.ones(3), size=((horizon,) if horizon else ()) + (9,))
        base = planning.occupancy_measure(env, pi)
    lp = broil(env, samples, alpha=alpha, lam=lam, weights=w, baseline=base, method="highs")
    cg = broil(env, samples, alpha=alpha, lam=lam, weights=w, baseline=base, method="policies")
    assert cg.lp["method"] == "policies" and cg.lp["gap"] <= 1e-7 * max(1.0, abs(cg.lp["objective"]))
    assert cg.lp["objective"] == pytest.approx(lp.lp["objective"], abs=1e-7)
    # the mixture is an occupancy measure, the planner's for the policy it induces, and attains the objective
    M, b = flow_constraints(env)
    np.testing.assert_allclose(M @ cg.occupancy.ravel(), b, atol=1e-9)
    np.testing.assert_allclose(planning.occupancy_measure(env, cg.policy), cg.occupancy, atol=1e-8)
    assert lam * cg.expected_return + (1 - lam) * cg.cvar == pytest.approx(lp.lp["objective"], abs=1e-7)
    if lam < 1.0 and alpha > 0.0:  # by hand: the CVaR of the returns (minus the baseline's) under the weights
        diff = cg.returns - (0.0 if base is None else cg.baseline_returns)
        assert cvar_by_sigma(diff, w, alpha)[0] == pytest.approx(cg.cvar, abs=1e-9)


def test_column_generation_mixes_policies_where_the_optimum_is_stochastic() -> None:
    # a one-state bandit: two arms that each lose under one of two equally likely rewards; the robust optimum
    # (alpha 0.5: the worse reward) plays both arms half the time, which no deterministic policy does
    env = irl.TabularMDP.from_arrays(np.ones((1, 2, 1)), initial=np.ones(1), discount=0.5)
    samples = np.array([[[1.0, -1.0]], [[-1.0, 1.0]]])
    res = broil(env, samples, alpha=0.5, lam=0.0, method="policies")
    np.testing.assert_allclose(res.policy, [[0.5, 0.5]], atol=1e-9)
    assert res.lp["policies"] == 2 and res.cvar == pytest.approx(0.0, abs=1e-9)


def test_column_generation_factored_samples_and_auto_choice(monkeypatch) -> None:
    env = irl.envs.gridworld(12, discount=0.95, horizon=None)
    rng = np.random.default_rng(13)
    theta = np.asarray([1.0, 0.0, -0.3, -1.0]) + rng.normal(0, 0.5, size=(1, 80, 4))
    post = irl.Posterior(theta=theta, param_names=list(env.feature_names))
    lp = broil(env, post, alpha=0.95, lam=0.5, method="highs")
    auto = broil(env, post, alpha=0.95, lam=0.5)  # 144 states x 5 actions = 720 occupancies: HiGHS
    assert auto.lp["method"] == "highs"
    monkeypatch.setattr(irl.robust, "POLICIES_ABOVE", 100)
    auto = broil(env, post, alpha=0.95, lam=0.5)
    assert auto.lp["method"] == "policies"
    assert auto.lp["objective"] == pytest.approx(lp.lp["objective"], abs=1e-7)
    # without a discount or a horizon, auto keeps to the whole program, which explains an unbounded problem
    undiscounted = random_mdp(6, 2, seed=14, discount=1.0, terminal=True)
    samples = rng.normal(size=(5, 6, 2))
    assert broil(undiscounted, samples, alpha=0.9).lp["method"] == "highs"


def test_column_generation_errors_are_explained(monkeypatch) -> None:
    env = random_mdp(6, 2, seed=15, discount=1.0, terminal=True)
    with pytest.raises(ValueError, match="method='policies' needs a discount below 1 or a finite horizon"):
        broil(env, np.zeros((3, 6, 2)), method="policies")
    with pytest.raises(ValueError, match="method must be one of auto, policies, highs"):
        broil(env, np.zeros((3, 6, 2)), method="simplex")
    env = random_mdp(9, 3, seed=11, discount=0.9)
    monkeypatch.setattr(irl.robust, "POLICIES_MAX_ROUNDS", 1)
    samples = np.random.default_rng(12).normal(size=(40, 9, 3))
    with pytest.raises(planning.ConvergenceError, match=r"did not reach its tolerance in 1 rounds: the optimum lies in"):
        broil(env, samples, alpha=0.9, lam=0.0, method="policies")


def test_column_generation_agrees_with_the_whole_program_on_random_problems() -> None:
    # random sizes, horizons, discounts (1 with a horizon), terminal states, weights, baselines, levels and lams
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        S, A, N = int(rng.integers(2, 10)), int(rng.integers(1, 4)), int(rng.integers(1, 40))
        H = (None, int(rng.integers(1, 6)))[seed % 2]
        env = random_mdp(S, A, seed=seed, horizon=H, discount=1.0 if H and seed % 4 == 1 else 0.9,
                         terminal=seed % 3 == 0)
        samples = rng.normal(size=(N, S, A)) * rng.uniform(0.1, 100)
        w = rng.dirichlet(np.ones(N)) if seed % 2 else None
        base = planning.occupancy_measure(env, rng.dirichlet(np.ones(A), size=((H,) if H else ()) + (S,))) \
            if seed % 3 == 1 else None
        alpha, lam = float(rng.choice([0.0, 0.5, 0.9, 0.99])), float(rng.choice([0.0, 0.3, 1.0]))
        kw = dict(alpha=alpha, lam=lam, weights=w, baseline=base)
        lp, cg = broil(env, samples, method="highs", **kw), broil(env, samples, method="policies", **kw)
        tol = 1e-6 * max(1.0, abs(lp.lp["objective"]))
        assert cg.lp["objective"] == pytest.approx(lp.lp["objective"], abs=tol), (seed, kw)
        assert lam * cg.expected_return + (1 - lam) * cg.cvar == pytest.approx(cg.lp["objective"], abs=tol)
