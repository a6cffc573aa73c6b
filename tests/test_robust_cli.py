"""`irl plan --objective mean|map|cvar`, `--defer` and `irl evaluate` of a deferring policy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import irl
from irl.cli import app
from irl.plan import load_policy

runner = CliRunner()
ENV = "lava-corridor"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def ok(*args):
    res = invoke(*args)
    assert res.exit_code == 0, f"irl {' '.join(map(str, args))} failed ({res.exit_code}):\n{res.output}"
    return res


def clean_error(res, *fragments: str, code: int | None = None) -> None:
    assert res.exit_code != 0 and isinstance(res.exception, SystemExit), res.output
    msg = res.stderr.strip()
    assert msg.startswith("Error: ") and "\n" not in msg and "Traceback" not in res.output, repr(msg)
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    if code is not None:
        assert res.exit_code == code


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A posterior over the lava corridor's (white, red) weights as `irl fit --solver bayes` saves it, and the demo."""
    d = tmp_path_factory.mktemp("robust")
    rng = np.random.default_rng(0)
    theta = rng.normal([-0.2, -0.95], [0.1, 0.2], size=(2, 150, 2))
    post = irl.Posterior(theta=theta, param_names=["white", "red"], log_density=-np.sum(theta ** 2, -1),
                         info={"env": ENV, "reward_model": "auto"})
    post.save(str(d / "posterior.npz"))
    irl.envs.broil.lava_corridor_demonstrations().save(str(d / "demos.npz"))
    return d, theta.reshape(-1, 2)


def test_plan_cvar_matches_the_library_and_evaluate_reports_deferral(files, tmp_path) -> None:
    d, theta = files
    env = irl.envs.make(ENV)
    samples = theta @ env.features.T
    out = tmp_path / "policy.npz"
    res = ok("plan", d / "posterior.npz", "--env", ENV, "--objective", "cvar", "--alpha", "0.95", "--lam", "0.5",
             "--out", out)
    assert "CVaR_0.95" in res.output and "linear program" in res.output
    pi, meta = load_policy(out)
    want = irl.plan(env, samples, objective="cvar", alpha=0.95, lam=0.5)
    np.testing.assert_allclose(pi, want.policy, atol=1e-8)
    assert meta["cvar"] == pytest.approx(want.cvar) and meta["lam"] == 0.5
    # regret against the demonstrations, deferring to them where the posterior disagrees
    out2 = tmp_path / "defer.npz"
    res = ok("plan", d / "posterior.npz", "--env", ENV, "--objective", "mean", "--baseline", d / "demos.npz",
             "--defer", "0.9", "--fallback", "demonstrations", "--out", out2)
    assert "defers" in res.output
    pi2, meta2 = load_policy(out2)
    lib = irl.plan(env, samples, objective="mean", defer=0.9, fallback=irl.envs.broil.lava_corridor_demonstrations())
    np.testing.assert_allclose(pi2, lib.policy, atol=1e-12)
    assert sorted(meta2["defer"]) == np.flatnonzero(lib.defer).tolist()
    rep = json.loads(ok("evaluate", out2, "--env", ENV, "--json").stdout)
    want_rep = irl.robust.deferral_report(env, lib.policy, lib.defer, env.true_reward)
    assert rep["deferred_visits"] == pytest.approx(want_rep["deferred_visits"])
    assert rep["regret_autonomous"] == pytest.approx(want_rep["regret_autonomous"])
    assert "defers in" in ok("evaluate", out2, "--env", ENV).stdout
    # a policy without a deferral mask reports no deferral
    assert "deferred_visits" not in json.loads(ok("evaluate", out, "--env", ENV, "--json").stdout)


@pytest.mark.parametrize("extra,fragments", [
    (["--objective", "cvar", "--alpha", "1.0"], ["--alpha", "[0, 1)", "1.0"]),
    (["--objective", "cvar", "--lam", "2"], ["--lam", "[0, 1]", "2.0"]),
    (["--objective", "cvar", "--lam", "nan"], ["--lam must be finite: got nan"]),
    (["--objective", "mean", "--lam", "0.5"], ["--lam only applies to --objective cvar"]),
    (["--objective", "mean", "--defer", "1.5"], ["--defer", "[0, 1]"]),
    (["--objective", "mean", "--defer", "0.5", "--fallback", "human"], ["--fallback must be ask or demonstrations"]),
    (["--objective", "mean", "--defer", "0.5", "--fallback", "demonstrations"], ["--baseline demos.npz"]),
    (["--objective", "soft", "--alpha", "0.9"], ["plan over a posterior", "--objective"]),
])
def test_bad_options_fail_cleanly(files, tmp_path, extra, fragments) -> None:
    d, _ = files
    clean_error(invoke("plan", d / "posterior.npz", "--env", ENV, *extra, "--out", tmp_path / "p.npz"), *fragments,
                code=2)


def test_a_point_estimate_is_refused_for_posterior_objectives(tmp_path) -> None:
    import demos
    import human_models as hm

    env = irl.envs.make("gridworld-5x5")
    data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=20, seed=0)
    irl.MaxEnt(human=hm.Boltzmann(2.0)).fit(env, data).save(str(tmp_path / "reward.npz"))
    clean_error(invoke("plan", tmp_path / "reward.npz", "--env", "gridworld-5x5", "--objective", "cvar", "--out",
                       tmp_path / "p.npz"), "posterior draws", "--solver bayes", code=2)


def test_mismatched_posterior_is_explained(files, tmp_path) -> None:
    d, _ = files
    res = invoke("plan", d / "posterior.npz", "--env", "machine-replacement", "--objective", "cvar", "--out",
                 tmp_path / "p.npz")
    assert res.exit_code == 1 and "Traceback" not in res.output
    warning, error = res.stderr.strip().split("\n")
    assert warning.startswith("Warning:") and "made in environment 'lava-corridor'" in warning
    assert error.startswith("Error: cannot tell which reward model maps this posterior's 2 parameters")


def test_baseline_from_another_environment_is_refused(files, tmp_path) -> None:
    import demos
    import human_models as hm

    d, _ = files
    other = irl.envs.make("gridworld-5x5")
    demos.simulate(other, hm.Boltzmann(2.0), other.true_reward, n=3, seed=0).save(str(tmp_path / "g5.npz"))
    res = invoke("plan", d / "posterior.npz", "--env", ENV, "--objective", "cvar", "--baseline", tmp_path / "g5.npz",
                 "--out", tmp_path / "p.npz")
    clean_error(res, f"--baseline {tmp_path / 'g5.npz'}: ", "out of range",
                "do not fit environment 'lava-corridor' (15 states, 4 actions)", "--env", code=2)
    assert not (tmp_path / "p.npz").exists()


def test_evaluate_data_from_another_environment_is_refused(files, tmp_path) -> None:
    d, _ = files
    policy = tmp_path / "policy.npz"
    ok("plan", d / "posterior.npz", "--env", ENV, "--objective", "mean", "--out", policy)
    assert invoke("evaluate", policy, "--env", ENV, "--data", d / "demos.npz").exit_code == 0
    # the lava corridor's demonstrations judged in the machine-replacement MDP (4 states, 2 actions)
    from irl.plan import save_policy

    small = tmp_path / "small.npz"
    env = irl.envs.make("machine-replacement")
    save_policy(small, np.full((env.n_states, env.n_actions), 1.0 / env.n_actions), meta={"env": env.name})
    clean_error(invoke("evaluate", small, "--env", "machine-replacement", "--data", d / "demos.npz"),
                f"--data {d / 'demos.npz'}: ", "do not fit environment 'machine-replacement'", code=2)


@pytest.mark.parametrize("extra, uses", [
    (["--objective", "cvar"], "--objective cvar"),
    (["--objective", "mean", "--defer", "0.5"], "--defer 0.5"),
])
def test_a_single_draw_is_refused_for_risk_and_deferral(tmp_path, extra, uses) -> None:
    post = tmp_path / "one.npz"
    irl.Posterior(theta=np.array([[[-0.2, -0.9]]]), param_names=["white", "red"],
                  info={"env": ENV, "reward_model": "auto"}).save(str(post))
    clean_error(invoke("plan", post, "--env", ENV, *extra, "--out", tmp_path / "p.npz"),
                f"{post}: {uses} needs at least 2 posterior draws", "found 1", code=2)
    ok("plan", post, "--env", ENV, "--objective", "mean", "--out", tmp_path / "p.npz")  # a mean over one draw is fine


def test_a_posterior_without_its_mean_reward_is_named(files, tmp_path) -> None:
    d, _ = files
    res = invoke("plan", d / "posterior.npz", "--env", ENV, "--out", tmp_path / "p.npz")  # optimal on the mean
    clean_error(res, f"{d / 'posterior.npz'}: this posterior has no reward_mean", code=1)


def test_plan_cvar_reports_column_generation_on_a_larger_world(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(irl.robust, "POLICIES_ABOVE", 50)  # gridworld-5x5 has 125 occupancies
    env = irl.envs.make("gridworld-5x5")
    theta = np.random.default_rng(1).normal([1.0, 0.0, -0.3, -1.0], 0.5, size=(1, 60, env.features.shape[1]))
    irl.Posterior(theta=theta, param_names=list(env.feature_names),
                  info={"env": env.name, "reward_model": "linear"}).save(str(tmp_path / "post.npz"))
    res = ok("plan", tmp_path / "post.npz", "--env", env.name, "--objective", "cvar", "--out", tmp_path / "pi.npz")
    assert "column generation:" in res.output and "certified gap" in res.output, res.output
    want = irl.robust.broil(env, irl.Posterior(theta=theta, param_names=list(env.feature_names)), method="highs")
    _, meta = load_policy(tmp_path / "pi.npz")
    assert meta["cvar"] == pytest.approx(want.cvar, abs=1e-6)
