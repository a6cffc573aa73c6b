"""``irl compare``: rank human models by held-out log-likelihood (MAP fits) or PSIS-LOO (posteriors).

Loaded by :mod:`irl.cli`, which registers the commands on its app (import ``irl.cli``, not this module).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from irl.cli import (ALLOW_UNCONVERGED_OPTION, CHAINS_OPTION, CLIError, DISCOUNT_OPTION, ENV_HELP, EXIT_UNCONVERGED,
                     HORIZON_OPTION, N_STARTS_OPTION, QUIET_OPTION, SAMPLES_OPTION, SEED_OPTION, SOLVERS,
                     WARMUP_OPTION, _bind, _console, _draws_bar, _handles_errors, _json_params, _json_value, _known,
                     _make_env, _make_human, _make_prior, _make_reward_model, _one_line, _sampling_options,
                     format_human_params)


#: ``irl compare --solver``: how the candidates are fitted and scored.
COMPARE_SOLVERS = {"maxent": "MAP fit, scored by held-out log-likelihood (or BIC)",
                   "bayes": "posterior draws on all of DATA, ranked by PSIS-LOO (WAIC beside it)"}

def _hold_out(data: Any, path: Path, test: Optional[Path], test_fraction: float) -> tuple[Any, Any]:
    """``(train, held_out)``: the --test file, or the last --test-fraction of DATA's episodes, or none."""
    import demos

    if test is not None:
        return data, demos.load(test)
    if test_fraction <= 0:
        return data, None
    if not isinstance(data, demos.Trajectories):
        raise CLIError(f"{path}: holding out a fraction works for trajectories only; give --test FILE or "
                       f"--test-fraction 0 (rank by BIC)", code=2)
    n_test = int(round(len(data) * test_fraction))
    if n_test < 1 or n_test >= len(data):
        raise CLIError(f"{path}: {len(data)} episodes are too few to hold out {test_fraction:.0%}", code=2)
    return data.subset(slice(0, len(data) - n_test)), data.subset(slice(len(data) - n_test, None))

def _compare_map(candidates: dict[str, Any], mdp: Any, train: Any, held: Any, rmodel: Any, prior: Any,
                 json_out: bool, n_starts: Optional[int] = None) -> None:
    """``irl compare --solver maxent``: MAP fits ranked by held-out log-likelihood, or BIC."""
    import irl
    from rich.table import Table

    rows = irl.compare(candidates, mdp, train, held, reward_model=rmodel, prior=prior, n_starts=n_starts,
                       check=False)
    for message in (m for r in rows for m in r.problems()):
        typer.echo(f"Warning: {message}", err=True)
    if json_out:
        for rank, r in enumerate(rows, 1):
            typer.echo(json.dumps({"rank": rank, "human": r.name, "train_log_likelihood": r.train_log_likelihood,
                                   "held_out_log_likelihood": None if held is None else r.held_out_log_likelihood,
                                   "bic": r.bic, "n_params": r.n_params, "converged": r.converged,
                                   "n_starts": len(r.estimate.starts), "n_starts_at_best": r.estimate.n_starts_at_best,
                                   "flat_directions": len(r.estimate.flat_directions), "nests": r.nests,
                                   "human_params": _json_params(r.estimate.human_params)}))
        return
    t = Table(title=f"Human models ranked by {'held-out log-likelihood' if held is not None else 'BIC'} "
                    f"({mdp.name})")
    for col in ("rank", "human model", "held-out log-lik", "train log-lik", "BIC", "params", "starts at best",
                "fitted human params"):
        t.add_column(col, justify="left" if col in ("human model", "fitted human params") else "right")
    for rank, r in enumerate(rows, 1):
        fitted = format_human_params(r.estimate.human_params)
        t.add_row(str(rank), r.name, "-" if held is None else f"{r.held_out_log_likelihood:.3f}",
                  f"{r.train_log_likelihood:.3f}", f"{r.bic:.3f}", str(r.n_params),
                  f"{r.estimate.n_starts_at_best}/{max(len(r.estimate.starts), 1)}", fitted)
    _console().print(t)

def _posterior_row(rank: int, r: Any) -> dict[str, Any]:
    """One row of ``irl compare --solver bayes --json``."""
    row = {"rank": rank, "human": r.name, "elpd_loo": r.loo.elpd, "elpd_loo_se": r.loo.se, "p_loo": r.loo.p_eff,
           "elpd_diff": r.elpd_diff, "elpd_diff_se": r.elpd_diff_se, "max_pareto_k": r.max_pareto_k,
           "elpd_waic": r.waic.elpd, "elpd_waic_se": r.waic.se, "p_waic": r.waic.p_eff,
           "n_params": r.n_params, "n_observations": int(r.loo.pointwise.size), "converged": r.converged}
    return {k: _json_value(v) for k, v in row.items()} | {"human_params": _json_params(r.human_params)}

def _compare_bayes(candidates: dict[str, Any], mdp: Any, data: Any, rmodel: Any, prior: Any, json_out: bool,
                   quiet: bool, sampling: dict[str, int], allow_unconverged: bool = False) -> None:
    """``irl compare --solver bayes``: posteriors on all of DATA ranked by PSIS-LOO, with a progress bar.

    Exits with :data:`EXIT_UNCONVERGED` after the ranking when a candidate's chains
    have not converged, unless ``allow_unconverged``.
    """
    import irl
    from rich.markup import escape
    from rich.table import Table

    bar = _draws_bar("[bold]bayes[/bold] {task.fields[label]} {task.fields[phase]}", quiet)
    tasks: dict[str, Any] = {}  # one line per candidate, from its first iteration on

    def callback(name: str, i: int, n: int, phase: str) -> None:
        if name not in tasks:
            tasks[name] = bar.add_task(name, total=n, label=escape(name), phase=phase)
        bar.update(tasks[name], completed=i, total=n, phase=phase)

    with bar:
        try:
            rows = irl.compare_posteriors(candidates, mdp, data, reward_model=rmodel, prior=prior, check=False,
                                          callback=callback, **sampling)
        except TypeError as e:  # e.g. a human model without gradients
            raise CLIError(_one_line(e), code=2) from None
    if json_out:
        for rank, r in enumerate(rows, 1):
            typer.echo(json.dumps(_posterior_row(rank, r)))
    else:
        t = Table(title=f"Human models ranked by PSIS-LOO ({mdp.name}, {len(data)} observations, "
                        f"{sampling['chains']} chains x {sampling['samples']} draws each)",
                  caption="elpd: expected log predictive density of new observations (higher is better), ± its "
                          "standard error; Δelpd: difference to the best; max k: largest Pareto k (above 0.7 "
                          "elpd_loo is unreliable); human params: posterior means")
        for col in ("rank", "human model", "elpd_loo", "Δelpd", "p_loo", "max k", "elpd_waic", "converged",
                    "human params"):
            text = col.startswith("human")
            t.add_column(col, justify="left" if text else "right", overflow="fold" if text else "ellipsis")
        for rank, r in enumerate(rows, 1):
            t.add_row(str(rank), r.name, f"{r.loo.elpd:.1f} ± {r.loo.se:.1f}",
                      f"{r.elpd_diff:.1f} ± {r.elpd_diff_se:.1f}", f"{r.loo.p_eff:.1f}", f"{r.max_pareto_k:.2f}",
                      f"{r.waic.elpd:.1f}", "yes" if r.converged else "NO", format_human_params(r.human_params))
        _console().print(t)
    for message in (m for r in rows for m in r.problems()):
        typer.echo(f"Warning: {message}", err=True)
    unconverged = [r.name for r in rows if not r.converged]
    if unconverged and not allow_unconverged:
        typer.echo(f"Error: the posterior of {', '.join(repr(n) for n in unconverged)} has not converged: exit code "
                   f"{EXIT_UNCONVERGED}; draw more (--samples, --warmup), or pass --allow-unconverged to accept "
                   f"the ranking", err=True)
        raise typer.Exit(EXIT_UNCONVERGED)

@_handles_errors
def compare(
    data: Path = typer.Argument(..., help="Demonstrations (.npz, .jsonl or .csv) or any evidence .npz, e.g. demos.npz."),
    env: str = typer.Option(..., "--env", help=ENV_HELP),
    human: list[str] = typer.Option(..., "--human",
                                    help="A candidate human model; repeat the option, e.g. --human boltzmann:beta=5 "
                                         "--human myopic:horizon=3,beta=5 --human "
                                         "'myopic:horizon=prior:categorical(1..6),beta=5'."),
    solver: str = typer.Option("maxent", "--solver",
                               help="How the candidates are fitted and scored: " +
                                    "; ".join(f"{k}: {v}" for k, v in COMPARE_SOLVERS.items()) +
                                    ", e.g. --solver bayes."),
    test: Optional[Path] = typer.Option(None, "--test",
                                        help="Held-out evidence of the same kind, e.g. --test held_out.npz; "
                                             "default: the last --test-fraction of the episodes in DATA "
                                             "(maxent only: bayes estimates leave-one-out from all of DATA)."),
    test_fraction: float = typer.Option(0.3, "--test-fraction", min=0.0, max=0.9,
                                        help="Share of the episodes held out when no --test file is given "
                                             "(trajectories only; 0 ranks by BIC; ignored by --solver bayes, "
                                             "which uses all of DATA), e.g. --test-fraction 0.3."),
    prior: Optional[str] = typer.Option(None, "--prior",
                                        help="Prior on the reward parameters, shared by all candidates, e.g. "
                                             "gaussian:scale=1 (default: none, i.e. maximum likelihood, for maxent; "
                                             "gaussian:scale=1 for bayes)."),
    reward_model: str = typer.Option("auto", "--reward-model",
                                     help="Reward model shared by all candidates: auto, linear, tabular or "
                                          "tabular-sa, e.g. --reward-model linear."),
    json_out: bool = typer.Option(False, "--json", help="Print the table as JSON lines, e.g. --json."),
    n_starts: Optional[int] = N_STARTS_OPTION,
    horizon: Optional[int] = HORIZON_OPTION,
    discount: Optional[float] = DISCOUNT_OPTION,
    quiet: bool = QUIET_OPTION,
    samples: Optional[int] = SAMPLES_OPTION,
    chains: Optional[int] = CHAINS_OPTION,
    warmup: Optional[int] = WARMUP_OPTION,
    seed: Optional[int] = SEED_OPTION,
    allow_unconverged: bool = ALLOW_UNCONVERGED_OPTION,
) -> None:
    """Rank human models by how well they explain the data.

    Each candidate is fitted by MAP (its parameters given as priors are fitted
    too, discrete ones summed out) on the training part and scored by the
    log-likelihood of the held-out part, with BIC on the training part beside it.
    A candidate that contains another one (noisy contains its wrapped model) is
    started at that model's optimum, so it never fits the training part worse;
    --n-starts sets the optimiser starts per candidate.

    Example: irl compare demos.npz --env temptation-corridor --human boltzmann:beta=2 --human myopic:horizon=3,beta=2

    With --solver bayes each candidate's posterior is sampled on all of DATA
    (progress bar of iterations) and the candidates are ranked by their PSIS-LOO
    estimate of the expected log predictive density of new data (elpd_loo, with
    the paired difference to the best and WAIC beside it); no data are held out.

    Example: irl compare demos.npz --env lava-detour --human 'noisy:epsilon=prior:uniform(0;1),model=boltzmann(beta=5)' --human 'boltzmann:beta=prior:lognormal(1.6;0.5)' --solver bayes --samples 500 --chains 4
    """
    import demos

    if solver not in COMPARE_SOLVERS:
        raise _known("solver", solver, list(COMPARE_SOLVERS))
    sampling = _sampling_options(solver, samples, chains, warmup, seed)
    if SOLVERS[solver].sampler and n_starts is not None:
        raise CLIError(f"--n-starts {n_starts}: --solver {solver} samples posteriors and has no optimiser starts; "
                       f"drop --n-starts, or use --solver maxent", code=2)
    if SOLVERS[solver].sampler and test is not None:
        raise CLIError(f"--test {test}: --solver {solver} uses all of DATA (PSIS-LOO estimates the fit to new data "
                       f"without holding any out); drop --test, or use --solver maxent to score on held-out data",
                       code=2)
    mdp = _make_env(env, horizon=horizon, discount=discount)
    prior_obj = _make_prior(prior)
    rmodel = _make_reward_model(reward_model, mdp)
    labels = list(dict.fromkeys(human))
    if len(labels) < 2:
        raise CLIError("compare needs at least two different --human candidates", code=2)
    candidates = {spec: _make_human(spec) for spec in labels}
    observations = demos.load(data)
    _bind(mdp, [observations], [data], next(iter(candidates.values())), command="compare")
    if SOLVERS[solver].sampler:
        _compare_bayes(candidates, mdp, observations, rmodel, prior_obj, json_out, quiet, sampling,
                       allow_unconverged)
        return
    train, held = _hold_out(observations, data, test, test_fraction)
    if test is not None:
        _bind(mdp, [held], [test], next(iter(candidates.values())), command="compare")
    _compare_map(candidates, mdp, train, held, rmodel, prior_obj, json_out, n_starts)


def register(app: Any) -> None:
    """Add this module's commands to ``app``."""
    app.command()(compare)
