"""`irl fit --solver bayes` and `irl plan` on a saved posterior, through typer's test runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import demos
import human_models as hm
import irl
import irl.solvers.bayesian as bayesian
from irl.cli import SOLVERS, app, checkpoint_path
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
    assert post.info["checkpoint_every"] == 5 and post.info["env"] == ENV and post.info["prior_spec"] == "laplace:scale=1"
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
    whole = tmp_path / "whole.npz"
    assert invoke("fit", data_file, *FIT, "--samples", 8, "--checkpoint-every", 4, "--out", whole).exit_code == 0
    out = tmp_path / "posterior.npz"
    real = bayesian._save_checkpoint
    calls = []

    def killed_at_the_second_write(*args, **kwargs):  # the run dies after 4 draws are safely on disk
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(bayesian, "_save_checkpoint", killed_at_the_second_write)
    res = invoke("fit", data_file, *FIT, "--samples", 8, "--checkpoint-every", 4, "--out", out)
    assert res.exit_code == 130 and not out.exists()
    assert bayesian.load_checkpoint_draws(checkpoint_path(out)).shape == (2, 4, 4)
    monkeypatch.setattr(bayesian, "_save_checkpoint", real)
    res = invoke("fit", data_file, *FIT, "--samples", 8, "--checkpoint-every", 4, "--out", out, "--resume")
    assert res.exit_code == 0, res.output
    assert "resumed after 4 draws per chain" in res.output
    post = irl.Posterior.load(str(out))
    assert post.theta.shape == (2, 8, 4) and post.info["resumed_from_draws"] == 4
    np.testing.assert_array_equal(post.unconstrained, irl.Posterior.load(str(whole)).unconstrained)  # bit-identical
    assert not checkpoint_path(out).exists()


@pytest.mark.parametrize("option, value, named", [
    ("--seed", "4", "seed: checkpoint 3, this run 4"),
    ("--human", "boltzmann:beta=3", "human: checkpoint ['Boltzmann(beta=2.0)'], this run ['Boltzmann(beta=3.0)']"),
    ("--prior", "gaussian:scale=1", "prior: checkpoint 'Laplace(loc=0.0, scale=1.0)', this run "
                                    "'Gaussian(loc=0.0, scale=1.0)'"),
    ("--warmup", "16", "warmup: checkpoint 15, this run 16"),
    ("--chains", "3", "chains: checkpoint 2, this run 3"),
    ("data", None, "data: checkpoint"),
])
def test_resume_refuses_a_checkpoint_of_another_run(data_file: Path, tmp_path: Path, option: str, value: str,
                                                    named: str) -> None:
    out = tmp_path / "posterior.npz"
    partial = checkpoint_path(out)
    args = list(FIT)
    data = data_file
    if option == "data":
        data = tmp_path / "other.npz"
        env = irl.envs.make(ENV)
        demos.save(demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=40, seed=1), data)
    else:
        args[args.index(option) + 1] = value
    _rerun_keeping_checkpoint(data_file, out, partial)
    res = invoke("fit", data, *args, "--samples", 4, "--checkpoint-every", 2, "--out", out, "--resume")
    assert res.exit_code == 2 and named in " ".join(res.output.split()), res.output
    assert "belongs to another run" in res.output and "Traceback" not in res.output


def _rerun_keeping_checkpoint(data_file: Path, out: Path, partial: Path) -> None:
    """The checkpoint the FIT command leaves (as if killed before writing --out), written through the library."""
    import priors

    env = irl.envs.make(ENV)
    solver = irl.BayesianIRL(hm.Boltzmann(2.0), prior=priors.Laplace(0.0, 1.0), sampler="hmc")
    solver.fit([irl.Evidence(env, demos.load(data_file), hm.Boltzmann(2.0))], samples=4, chains=2, warmup=15, seed=3,
               check=False, checkpoint=str(partial), checkpoint_every=2)
    assert partial.exists()


def test_resume_without_checkpoint_and_sampling_options_on_maxent_fail_cleanly(data_file: Path,
                                                                               tmp_path: Path) -> None:
    out = tmp_path / "posterior.npz"
    res = invoke("fit", data_file, *FIT, "--samples", 4, "--out", out, "--resume")
    assert res.exit_code == 1 and "no checkpoint" in res.output and "Traceback" not in res.output
    res = invoke("fit", data_file, "--env", ENV, "--samples", 10, "--out", tmp_path / "r.npz")
    assert res.exit_code == 2 and "--samples only applies to sampling solvers (bayes)" in res.output


def test_progress_counts_warmup_iterations_then_draws(data_file: Path, tmp_path: Path) -> None:
    """The progress callback moves during warmup (its own count), then counts draws."""
    from irl.cli import _BayesRun

    env = irl.envs.make(ENV)
    seen: list[tuple[int, int, str]] = []
    solver = irl.BayesianIRL(hm.Boltzmann(2.0), sampler="hmc")
    run = _BayesRun(solver, samples=3, chains=2, warmup=4, seed=0, out=tmp_path / "p.npz", resume=False,
                    checkpoint_every=2, callback=lambda i, n, phase: seen.append((i, n, phase)))
    run.fit([irl.Evidence(env, demos.load(data_file), hm.Boltzmann(2.0))])
    assert seen == [(1, 4, "warmup"), (2, 4, "warmup"), (3, 4, "warmup"), (4, 4, "warmup"),
                    (1, 3, "sampling"), (2, 3, "sampling"), (3, 3, "sampling")], seen
