"""``irl fit``: infer the reward (and the human's parameters) from evidence files, by any registered
solver.

Loaded by :mod:`irl.cli`, which registers the commands on its app (import ``irl.cli``, not this module).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from irl.cli import (ALLOW_UNCONVERGED_OPTION, CHAINS_OPTION, CLIError, COLUMNS_OPTION, DISCOUNT_OPTION, ENV_HELP,
                     EXIT_UNCONVERGED, HORIZON_OPTION, HUMAN_HELP, JSON_OPTION, N_STARTS_OPTION, QUIET_OPTION,
                     SAMPLES_OPTION, SEED_OPTION, SOLVERS, WARMUP_OPTION, _bind, _check_columns, _check_writable,
                     _console, _draws_bar, _handles_errors, _json_params, _json_value, _known, _make_env, _make_human,
                     _make_prior, _make_reward_model, _network_path, _one_line, _sampling_options, _solver_names,
                     checkpoint_path, format_human_params)


@_handles_errors
def fit(
    data: list[Path] = typer.Argument(..., help="One or more evidence files (demonstrations .npz/.jsonl/.csv, "
                                                "or any evidence .npz from `irl simulate --evidence`); the kind "
                                                "is read from each file, e.g. demos.npz prefs.npz."),
    env: Optional[str] = typer.Option(None, "--env",
                                      help=ENV_HELP + " Required unless --estimate-dynamics, which can build "
                                                      "the MDP from the data alone."),
    human: str = typer.Option("boltzmann", "--human", help=HUMAN_HELP),
    solver: str = typer.Option("maxent", "--solver",
                               help="Solver name, e.g. --solver maxent (list them with `irl solvers`)."),
    prior: Optional[str] = typer.Option(None, "--prior",
                                        help="Prior on the reward parameters NAME[:key=value,...], "
                                             "e.g. gaussian:scale=1 or laplace:scale=0.5; "
                                             "without it: maximum likelihood."),
    reward_model: str = typer.Option("auto", "--reward-model",
                                     help="Reward model: auto, linear, tabular, tabular-sa, or a network "
                                          "mlp:hidden=64,64 / cnn:channels=32,32,kernel=3 (saved beside --out "
                                          "as NAME.net.pt), e.g. --reward-model tabular."),
    max_iter: int = typer.Option(500, "--max-iter", min=1, help="Iteration limit, e.g. --max-iter 200."),
    n_starts: Optional[int] = N_STARTS_OPTION,
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Where to save the fitted reward (default: reward.npz, or posterior.npz "
                                            "for a sampling solver, in the current folder), e.g. --out reward.npz."),
    horizon: Optional[int] = HORIZON_OPTION,
    discount: Optional[float] = DISCOUNT_OPTION,
    estimate_dynamics: bool = typer.Option(False, "--estimate-dynamics",
                                           help="Estimate the transitions from the logged (s, a, s') of DATA "
                                                "(Dirichlet-smoothed counts) instead of taking the environment's; "
                                                "the estimated MDP is saved beside --out as NAME.mdp.npz, "
                                                "e.g. --estimate-dynamics --n-states 16 --n-actions 4 --horizon 100."),
    n_states: Optional[int] = typer.Option(None, "--n-states", min=1,
                                           help="Number of states of the estimated MDP (--estimate-dynamics without "
                                                "--env; default: largest id seen + 1), e.g. --n-states 16."),
    n_actions: Optional[int] = typer.Option(None, "--n-actions", min=1,
                                            help="Number of actions of the estimated MDP (--estimate-dynamics without "
                                                 "--env; default: largest id seen + 1), e.g. --n-actions 4."),
    pseudocount: float = typer.Option(0.1, "--pseudocount", min=0.0,
                                      help="Dirichlet pseudocount added to every next state of a visited (s, a) "
                                           "(--estimate-dynamics), e.g. --pseudocount 0.5."),
    unvisited: str = typer.Option("self-loop", "--unvisited",
                                  help="Dynamics of a never-visited (s, a) (--estimate-dynamics): self-loop, "
                                       "uniform or error, e.g. --unvisited uniform."),
    json_out: bool = JSON_OPTION,
    allow_unconverged: bool = ALLOW_UNCONVERGED_OPTION,
    quiet: bool = QUIET_OPTION,
    samples: Optional[int] = SAMPLES_OPTION,
    chains: Optional[int] = CHAINS_OPTION,
    warmup: Optional[int] = WARMUP_OPTION,
    seed: Optional[int] = SEED_OPTION,
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", min=1,
                                                   help="Save the completed draws every this many draws per chain "
                                                        "to OUT's sibling NAME.partial.npz (sampling solvers; "
                                                        "default 100), e.g. --checkpoint-every 200."),
    resume: bool = typer.Option(False, "--resume",
                                help="Continue an interrupted sampling run from its checkpoint "
                                     "NAME.partial.npz next to --out, e.g. --resume."),
    columns: Optional[str] = COLUMNS_OPTION,
    allow: Optional[list[str]] = typer.Option(None, "--allow",
                                              help="Accept data that contradict the MDP in this way (repeat the "
                                                   "option): off_initial_start, impossible_transitions or "
                                                   "terminated_elsewhere, e.g. --allow off_initial_start."),
) -> None:
    """Infer the reward behind demonstrations and save it.

    Shows the optimiser's progress, prints the fitted parameters and saves a
    versioned .npz (read it back with irl.RewardEstimate.load).

    Example: irl fit demos.npz --env gridworld-8x8 --human boltzmann:beta=5 --prior gaussian:scale=1 --out reward.npz

    With --solver bayes it samples the posterior instead (progress bar of draws,
    checkpoints every --checkpoint-every draws, --resume after an interruption)
    and saves an irl.Posterior.

    Example: irl fit demos.npz --env gridworld-8x8 --human 'boltzmann:beta=prior:lognormal(0;1)' --solver bayes --prior laplace:scale=1 --samples 500 --chains 4 --seed 0 --out posterior.npz
    """
    import demos
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if solver not in _solver_names():
        raise _known("solver", solver, sorted(SOLVERS))
    sampling = _sampling_options(solver, samples, chains, warmup, seed,
                                 more={"--checkpoint-every": checkpoint_every, "--resume": resume or None})
    if n_starts is not None and SOLVERS[solver].sampler:
        raise CLIError(f"--n-starts {n_starts}: --solver {solver} samples a posterior and has no optimiser starts; "
                       f"drop --n-starts, or use --solver maxent", code=2)
    out = Path("posterior.npz" if SOLVERS[solver].sampler else "reward.npz") if out is None else out
    _check_writable(out, suffixes=(".npz",))
    if not estimate_dynamics:
        given = [flag for flag, v in (("--n-states", n_states), ("--n-actions", n_actions)) if v is not None]
        if given:
            raise CLIError(f"{', '.join(given)} only apply with --estimate-dynamics", code=2)
        if env is None:
            raise CLIError("--env is required (a registered name or an MDP file), unless --estimate-dynamics "
                           "builds the MDP from the data", code=2)
    mdp = None if estimate_dynamics else _make_env(env, horizon=horizon, discount=discount)
    model = _make_human(human)
    prior_obj = _make_prior(prior)
    import irl

    _check_columns(columns)
    loaded = [demos.load(path, columns=columns) for path in data]
    if estimate_dynamics:
        mdp = _estimated_env(loaded, env, n_states=n_states, n_actions=n_actions, pseudocount=pseudocount,
                             unvisited=unvisited, horizon=horizon, discount=discount)
        if not getattr(model, "finite_lookahead", False):
            mdp.check_well_posed()  # before anything is written or printed
        mdp_out = out.with_name(out.stem + ".mdp.npz")
        _check_writable(mdp_out)
        mdp.save(mdp_out)
        typer.echo(f"Estimated dynamics from {int(mdp.visit_counts.sum())} logged transitions "
                   f"({int((mdp.visit_counts > 0).sum())} of {mdp.n_states * mdp.n_actions} (s, a) pairs visited); "
                   f"saved the MDP to {mdp_out} (use it as --env)", err=True)
        env = str(mdp_out)
    rmodel = _make_reward_model(reward_model, mdp)
    # one Evidence per file, all sharing the reward and the one human model (and its parameters)
    observations = _bind(mdp, loaded, data, model, allow)

    if SOLVERS[solver].sampler:
        _fit_sampler(solver, observations, quiet, mdp, info=dict(
            env=mdp.name, human_spec=human, reward_model=reward_model, prior_spec=prior,
            data=[str(p) for p in data], evidence=[type(o).__name__ for o in loaded]),
            human=model, prior=prior_obj, reward_model=rmodel, max_iter=max_iter, **sampling, out=out, resume=resume,
            checkpoint_every=100 if checkpoint_every is None else checkpoint_every, json_out=json_out,
            allow_unconverged=allow_unconverged)
        return

    err = _console(stderr=True)
    bar = Progress(SpinnerColumn(), TextColumn(f"[bold]{solver}[/bold] iteration"), MofNCompleteColumn(),
                   BarColumn(), TextColumn("log-joint {task.fields[objective]}  |grad| {task.fields[grad]}"),
                   TimeElapsedColumn(), console=err, transient=False, disable=quiet)
    task = bar.add_task("fit", total=max_iter, objective="-", grad="-")

    def callback(iteration: int, objective: float, grad_norm: float) -> None:
        bar.update(task, completed=iteration, objective=f"{objective:.4f}", grad=f"{grad_norm:.2e}")

    built = SOLVERS[solver].build(human=model, prior=prior_obj, reward_model=rmodel, max_iter=max_iter,
                                  callback=callback, **({} if n_starts is None else {"n_starts": n_starts}))
    t0 = time.perf_counter()
    with bar:
        try:
            result = built.fit(observations)
        except TypeError as e:  # e.g. a human model the solver cannot use
            raise CLIError(_one_line(e), code=2) from None
        bar.update(task, total=bar.tasks[0].completed or 1)
    seconds = time.perf_counter() - t0
    info = getattr(result, "info", None)
    if isinstance(info, dict):
        info.update(env=mdp.name, human_spec=human, reward_model=reward_model, prior_spec=prior,
                    data=[str(p) for p in data], evidence=[type(o).__name__ for o in loaded])
    result.save(out)
    _print_fit(result, mdp, solver, seconds, out, json_out)
    if hasattr(getattr(result, "reward_model", None), "save"):  # a trained network: state_dict + architecture
        result.reward_model.save(_network_path(out))
        typer.echo(f"Network saved to {_network_path(out)} (irl.rewards.NeuralReward.load)", err=json_out)

def _estimated_env(loaded: list, env: Optional[str], *, n_states: Optional[int], n_actions: Optional[int],
                   pseudocount: float, unvisited: str, horizon: Optional[int], discount: Optional[float]) -> Any:
    """``irl fit --estimate-dynamics``: the MDP whose transitions are estimated from the logged data.

    With ``--env`` the environment gives everything but the transitions (sizes,
    features, terminal states, start distribution, horizon, discount, true reward).
    """
    import demos
    import irl

    logs = [d for d in loaded if isinstance(d, demos.Trajectories)
            or (isinstance(d, demos.Transitions) and d.next_states is not None)]
    if not logs:
        raise CLIError("--estimate-dynamics needs trajectories or logged transitions (s, a, s') among DATA: got "
                       + ", ".join(type(d).__name__ for d in loaded), code=2)
    if unvisited not in irl.mdp.UNVISITED_RULES:
        raise _known("--unvisited rule", unvisited, list(irl.mdp.UNVISITED_RULES))
    if env is None:
        opts = {k: v for k, v in (("horizon", horizon), ("discount", discount)) if v is not None}
        return irl.TabularMDP.from_transitions(logs, n_states=n_states, n_actions=n_actions, pseudocount=pseudocount,
                                               unvisited=unvisited, **opts)
    base = _make_env(env, horizon=horizon, discount=discount)
    for flag, v, have in (("--n-states", n_states, base.n_states), ("--n-actions", n_actions, base.n_actions)):
        if v is not None and v != have:
            raise CLIError(f"{flag} {v} contradicts --env {env}, which has {have}", code=2)
    keep = ("features", "feature_names", "true_reward", "state_names", "action_names", "grid_shape", "discount",
            "horizon")
    return irl.TabularMDP.from_transitions(
        logs, n_states=base.n_states, n_actions=base.n_actions, pseudocount=pseudocount, unvisited=unvisited,
        terminal=base.terminal, initial=base.initial, name=f"{base.name} (estimated dynamics)",
        **{k: getattr(base, k) for k in keep})

def _fit_sampler(solver: str, observations: list, quiet: bool, mdp: Any, info: dict, *, json_out: bool = False,
                 allow_unconverged: bool = False, **options: Any) -> None:
    """``irl fit`` with a sampling solver: progress bar of draws, summary table, checkpoints.

    Exits with :data:`EXIT_UNCONVERGED` after saving a posterior whose chains have
    not converged, unless ``allow_unconverged``.
    """
    bar = _draws_bar(f"[bold]{solver}[/bold] {{task.fields[phase]}} iterations per chain", quiet)
    task = bar.add_task("fit", total=options["samples"], phase="warmup")

    def callback(done: int, total: int, phase: str) -> None:
        bar.update(task, completed=done, total=total, phase=phase)

    built = SOLVERS[solver].build(callback=callback, **options)
    t0 = time.perf_counter()
    with bar:
        try:
            result = built.fit(observations)
        except TypeError as e:
            raise CLIError(_one_line(e), code=2) from None
    seconds = time.perf_counter() - t0
    out = options["out"]
    result.info.update(info)
    result.save(str(out))
    partial = checkpoint_path(out)
    if partial.exists():
        partial.unlink()
    con = _console()
    resumed = int(result.info.get("resumed_from_draws", 0))
    if json_out:
        typer.echo(json.dumps({"solver": solver, "env": mdp.name, "out": str(out), "chains": result.n_chains,
                               "draws": result.n_draws, "converged": bool(result.converged),
                               "problems": result.problems(), "resumed_from_draws": resumed, "seconds": seconds,
                               "summary": {k: {a: _json_value(b) for a, b in row.items()}
                                           for k, row in result.summary().items()}}))
    else:
        con.print(f"Posterior ({solver}, {mdp.name}): {result.n_chains} chains x {result.n_draws} draws",
                  soft_wrap=True, markup=False)
        con.print(result.summary().table(), soft_wrap=True, markup=False)
    if not result.converged:
        problems = "; ".join(f"{k} ({', '.join(v)})" for k, v in result.problems().items())
        typer.echo(f"Warning: the chains have not mixed, do not trust this posterior yet: {problems}; "
                   f"draw more (--samples, --warmup)", err=True)
    if not json_out:
        con.print(f"{'resumed after ' + str(resumed) + ' draws per chain; ' if resumed else ''}{seconds:.2f} s; "
                  f"converged={result.converged}", soft_wrap=True)
        con.print(f"Saved to {out}", soft_wrap=True, markup=False)
    if not result.converged and not allow_unconverged:
        typer.echo(f"Error: the posterior (saved to {out}) has not converged: exit code {EXIT_UNCONVERGED}; draw "
                   f"more, or pass --allow-unconverged to accept it", err=True)
        raise typer.Exit(EXIT_UNCONVERGED)

def _print_fit(result: Any, env: Any, solver: str, seconds: float, out: Path, json_out: bool = False,
               max_rows: int = 30) -> None:
    from rich.markup import escape
    from rich.table import Table

    con = _console()
    theta = np.atleast_1d(np.asarray(getattr(result, "theta", [])))
    names = list(getattr(result, "param_names", [])) or [f"theta[{i}]" for i in range(theta.size)]
    if json_out:
        record = {"solver": solver, "env": env.name, "out": str(out),
                  "parameters": {str(k): float(v) for k, v in zip(names, theta)},
                  "human_params": _json_params(getattr(result, "human_params", {})), "seconds": seconds}
        for key in ("log_likelihood", "log_prior"):
            if hasattr(result, key):
                record[key] = _json_value(float(getattr(result, key)))
        if hasattr(result, "converged"):
            record["converged"] = bool(result.converged)
        if hasattr(result, "history"):
            record["iterations"] = len(result.history)
        if getattr(result, "starts", None):
            record["n_starts"] = len(result.starts)
            record["n_starts_at_best"] = int(getattr(result, "n_starts_at_best", 1))
        record["problems"] = list(getattr(result, "problems", []))
        typer.echo(json.dumps(record))
        for problem in record["problems"]:
            typer.echo(f"Warning: {problem}", err=True)
        return
    if theta.size:
        title = f"Fitted reward parameters ({solver}, {env.name})"
        t = Table(title=title, min_width=len(title))
        t.add_column("parameter")
        t.add_column("value", justify="right")
        for name, v in list(zip(names, theta))[:max_rows]:
            t.add_row(escape(str(name)), f"{float(v):+.4f}")
        if theta.size > max_rows:
            t.add_row(f"... {theta.size - max_rows} more", "(in the file)")
        con.print(t)
    fitted = format_human_params(getattr(result, "human_params", {}))
    if fitted:
        con.print(f"Fitted human parameters: {fitted}", soft_wrap=True, markup=False)
    parts = []
    for key in ("log_likelihood", "log_prior"):
        if hasattr(result, key):
            parts.append(f"{key.replace('_', '-')} {float(getattr(result, key)):.4f}")
    if hasattr(result, "converged"):
        parts.append(f"converged={bool(result.converged)}")
    if hasattr(result, "history"):
        parts.append(f"{len(result.history)} iterations")
    starts = getattr(result, "starts", [])
    if len(starts) > 1:
        parts.append(f"{getattr(result, 'n_starts_at_best', 1)} of {len(starts)} starts reached the best value")
    parts.append(f"{seconds:.2f} s")
    con.print("; ".join(parts), soft_wrap=True)
    for problem in getattr(result, "problems", []):
        typer.echo(f"Warning: {problem}", err=True)
    con.print(f"Saved to {out}", soft_wrap=True, markup=False)


def register(app: Any) -> None:
    """Add this module's commands to ``app``."""
    app.command()(fit)
