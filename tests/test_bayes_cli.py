"""`irl fit --solver bayes` and `irl plan` on a saved posterior, through typer's test runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import demos
import human_models as hm
import irl
from irl.cli import SOLVERS, _ChunkedBayes, app, checkpoint_path
from irl.plan import load_policy

ENV = "gridworld-5x5"
runner = CliRunner()
FIT = ["--env", ENV, "--human", "boltzmann:beta=2", "--solver", "bayes", "--prior", "laplace:scale=1",
       "--chains", "2", "--warmup", "15", "--seed", "3", "--quiet", "--allow-unconverged"]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bayes") / "demos.npz"
    env = irl.envs.make(ENV)
    demos.save(demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=40, seed=0), path)
    return path


def test_bayes_is_a_registered_sampling_solver() -> None:
    assert SOLVERS["bayes"].sampler and not SOLVERS["maxent"].sampler
    res = invoke("solvers")
    assert res.exit_code == 0 and "bayes" in res.output


def test_fit_saves_a_posterior_and_plan_uses_its_mean(data_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "posterior.npz"
    strict = [a for a in FIT if a != "--allow-unconverged"]
    res = invoke("fit", data_file, *strict, "--samples", 12, "--checkpoint-every", 5, "--out", out)
    # 12 draws cannot pass the convergence rule: the posterior is saved, and the exit code says so
    assert res.exit_code == 3, res.output
    assert "has not converged: exit code 3" in res.output and "--allow-unconverged" in res.output
    assert "goal" in res.output and "rhat" in res.output and f"Saved to {out}" in res.output
    post = irl.Posterior.load(str(out))
    assert post.theta.shape == (2, 12, 4)
    assert post.info["chunks"] == 3 and post.info["env"] == ENV and post.info["prior_spec"] == "laplace:scale=1"
    assert not checkpoint_path(out).exists()  # the checkpoint is removed once the run is complete
    # the goal weight is the largest posterior-mean weight, as in the true reward (goal, plain, mud, water)
    assert int(np.argmax(post.theta_mean)) == 0
    pol = tmp_path / "policy.npz"
    res = invoke("plan", out, "--env", ENV, "--out", pol)
    assert res.exit_code == 0, res.output
    pi, meta = load_policy(pol)
    env = irl.envs.make(ENV)
    np.testing.assert_allclose(pi, irl.plan(env, post.reward), atol=1e-12)
    assert irl.metrics.expected_value_difference(env, pi, irl.envs.true_reward(env)) < 0.05 * abs(
        irl.metrics.optimal_return(env, irl.envs.true_reward(env)))


def test_interrupted_run_resumes_from_its_checkpoint(data_file: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "posterior.npz"
    real = _ChunkedBayes._sample
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(_ChunkedBayes, "_sample", interrupted)
    res = invoke("fit", data_file, *FIT, "--samples", 8, "--checkpoint-every", 4, "--out", out)
    assert res.exit_code == 130 and not out.exists()
    partial = irl.Posterior.load(str(checkpoint_path(out)))
    assert partial.theta.shape == (2, 4, 4)
    monkeypatch.setattr(_ChunkedBayes, "_sample", real)
    res = invoke("fit", data_file, *FIT, "--samples", 8, "--checkpoint-every", 4, "--out", out, "--resume")
    assert res.exit_code == 0, res.output
    assert "resumed after 4 draws per chain" in res.output
    post = irl.Posterior.load(str(out))
    assert post.theta.shape == (2, 8, 4)
    np.testing.assert_array_equal(post.theta[:, :4], partial.theta)  # nothing completed was lost
    assert not np.array_equal(post.theta[:, 4:], partial.theta)  # and the chains moved on
    assert post.info["resumed_from_draws"] == 4 and not checkpoint_path(out).exists()


def test_resume_without_checkpoint_and_sampling_options_on_maxent_fail_cleanly(data_file: Path,
                                                                               tmp_path: Path) -> None:
    out = tmp_path / "posterior.npz"
    res = invoke("fit", data_file, *FIT, "--samples", 4, "--out", out, "--resume")
    assert res.exit_code == 1 and "no checkpoint" in res.output and "Traceback" not in res.output
    res = invoke("fit", data_file, "--env", ENV, "--samples", 10, "--out", tmp_path / "r.npz")
    assert res.exit_code == 2 and "--samples only apply to sampling solvers (bayes)" in res.output


def test_progress_counts_warmup_iterations_then_draws(data_file: Path, tmp_path: Path) -> None:
    """The progress callback moves during warmup too (its own count), then counts draws across chunks."""
    env = irl.envs.make(ENV)
    seen: list[tuple[int, int, str]] = []
    solver = irl.BayesianIRL(hm.Boltzmann(2.0), sampler="hmc")
    run = _ChunkedBayes(solver, samples=6, chains=2, warmup=4, seed=0, out=tmp_path / "p.npz", resume=False,
                        checkpoint_every=3, callback=lambda i, n, phase: seen.append((i, n, phase)), rewarmup=2)
    run.fit([irl.Evidence(env, demos.load(data_file), hm.Boltzmann(2.0))])
    first_chunk = seen[:7]
    assert first_chunk == [(1, 4, "warmup"), (2, 4, "warmup"), (3, 4, "warmup"), (4, 4, "warmup"),
                           (1, 6, "sampling"), (2, 6, "sampling"), (3, 6, "sampling")], seen
    assert seen[7:] == [(1, 2, "warmup"), (2, 2, "warmup"), (4, 6, "sampling"), (5, 6, "sampling"),
                        (6, 6, "sampling")], seen
