"""``irl candidates`` and ``irl query``: which comparison to ask the human next (see :mod:`irl.active`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

CRITERION_HELP = ("Query criterion: information_gain, volume_removal, max_regret, thompson or random, "
                  "e.g. --criterion information_gain.")


#: Criteria of ``irl query`` that use ``--seed``.
RANDOMISED = ("thompson", "random")
#: Criteria of ``irl query`` that weigh several posterior draws against each other (meaningless over one).
SPREAD = ("information_gain", "volume_removal", "max_regret")


def _env_for(name: Optional[str], *files: tuple[Path, Any]) -> Any:
    """The ``--env`` environment, else the one recorded in the files (the first that names one)."""
    from irl.cli import CLIError, _make_env

    if name is None:
        for path, recorded in files:
            if isinstance(recorded, str) and recorded:
                return _make_env(recorded)
        raise CLIError(f"{', '.join(str(p) for p, _ in files)} record(s) no environment: pass --env", code=2)
    return _make_env(name)


def register(app: typer.Typer) -> None:
    """Add ``irl candidates`` and ``irl query`` to ``app``."""
    from irl.cli import (ENV_HELP, HUMAN_HELP, CLIError, _check_writable, _console, _handles_errors, _make_env,
                         _make_human, _make_reward_model, _refuse_unused, _warn_env_mismatch, seed_option)

    @app.command()
    @_handles_errors
    def candidates(
        env: str = typer.Option(..., "--env", help=ENV_HELP),
        out: Path = typer.Option(..., "--out", "-o", help="Where to save the candidate queries, e.g. --out pairs.npz."),
        posterior: Optional[Path] = typer.Option(None, "--posterior",
                                                 help="A posterior saved by `irl fit --solver bayes`: half the pool "
                                                      "are soft-optimal rollouts for its draws, e.g. "
                                                      "--posterior posterior.npz."),
        n_trajectories: int = typer.Option(100, "--trajectories", min=2,
                                           help="Size of the trajectory pool, e.g. --trajectories 100."),
        n_queries: int = typer.Option(500, "--queries", min=1, help="Number of random queries, e.g. --queries 500."),
        k: int = typer.Option(2, "--k", min=2, help="Options per query (2: pairwise comparisons), e.g. --k 3."),
        answer: str = typer.Option("choice", "--answer",
                                   help="What the human answers: choice (the best option) or ranking (all options "
                                        "ordered), e.g. --answer ranking."),
        horizon: Optional[int] = typer.Option(None, "--horizon", min=1,
                                              help="Rollout length (infinite-horizon environments), "
                                                   "e.g. --horizon 20."),
        seed: int = seed_option(0, "Random seed, e.g. --seed 1."),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON, e.g. --json."),
    ) -> None:
        """Sample trajectories and random queries among them, and save them for `irl query`.

        Example: irl candidates --env gridworld-8x8 --trajectories 100 --queries 500 --out pairs.npz
        """
        import irl
        from irl.active import as_samples, make_candidates

        _check_writable(out, suffixes=(".npz",))
        if k > n_trajectories:
            raise CLIError(f"--k {k}: a query of {k} options needs a pool of at least {k} trajectories: got "
                           f"--trajectories {n_trajectories}", code=2)
        mdp = _make_env(env)
        belief = None
        if posterior is not None:
            post = irl.Posterior.load(str(posterior))
            _warn_env_mismatch(post.info.get("env"), mdp, posterior)
            belief = as_samples(post, mdp, reward_model=_make_reward_model(
                str(post.info.get("reward_model", "auto")), mdp), max_samples=2000)
        if mdp.horizon is None and horizon is None:
            raise CLIError(f"environment {mdp.name!r} has an infinite horizon: pass --horizon for the rollouts", code=2)
        from irl.active import ANSWERS

        if answer not in ANSWERS:
            raise CLIError(f"unknown answer kind {answer!r}; known: {', '.join(ANSWERS)}", code=2)
        cands = make_candidates(mdp, belief, n_trajectories=n_trajectories, n_queries=n_queries, k=k, answer=answer,
                                horizon=horizon, seed=seed)
        cands.save(out, meta={"env": mdp.name})
        if json_out:
            typer.echo(json.dumps({"out": str(out), "env": mdp.name, "segments": len(cands.segments),
                                   "queries": cands.n_queries, "k": cands.k, "answer": cands.answer}))
            return
        _console().print(f"{cands.n_queries} candidate queries ({cands.answer} of {cands.k} options) among "
                         f"{len(cands.segments)} "
                         f"trajectories in {mdp.name}. Saved to {out}", soft_wrap=True)

    @app.command()
    @_handles_errors
    def query(
        posterior: Path = typer.Argument(..., help="A posterior saved by `irl fit --solver bayes`, "
                                                   "e.g. posterior.npz."),
        candidates_file: Path = typer.Option(..., "--candidates",
                                             help="Candidate queries saved by `irl candidates`, e.g. "
                                                  "--candidates pairs.npz."),
        criterion: str = typer.Option("information_gain", "--criterion", help=CRITERION_HELP),
        env: Optional[str] = typer.Option(None, "--env", help=ENV_HELP + " Default: the posterior's."),
        human: Optional[str] = typer.Option(None, "--human",
                                            help=HUMAN_HELP + " The model of the answerer; default: the posterior's."),
        max_samples: int = typer.Option(2000, "--max-samples", min=1,
                                        help="Use at most this many posterior draws (evenly thinned), e.g. "
                                             "--max-samples 1000."),
        seed: Optional[int] = seed_option(None, "Random seed of the thompson and random criteria (default 0), "
                                                "e.g. --seed 1."),
        top: int = typer.Option(5, "--top", min=1, help="How many of the best queries to list, e.g. --top 10."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON, e.g. --json."),
    ) -> None:
        """Choose the comparison to ask next: print its index in the candidates file and its score.

        Example: irl query posterior.npz --candidates pairs.npz --criterion information_gain
        """
        import numpy as np

        import irl
        from irl.active import CRITERIA, Candidates, as_samples, next_query

        if criterion not in CRITERIA:
            raise CLIError(f"unknown query criterion {criterion!r}; known: {', '.join(CRITERIA)}", code=2)
        _refuse_unused({"--seed": seed}, criterion in RANDOMISED, "--criterion thompson or random",
                       f"--criterion {criterion}")
        post = irl.Posterior.load(str(posterior))
        cands = Candidates.load(candidates_file)
        mdp = _env_for(env, (posterior, post.info.get("env")), (candidates_file, cands.meta.get("env")))
        _warn_env_mismatch(post.info.get("env"), mdp, posterior)
        _warn_env_mismatch(cands.meta.get("env"), mdp, candidates_file)
        model = _make_human(human or str(post.info.get("human_spec") or "boltzmann"))
        rmodel = _make_reward_model(str(post.info.get("reward_model") or "auto"), mdp)
        if post.theta.shape[-1] != rmodel.n_params:
            raise CLIError(f"{posterior}: the posterior has {post.theta.shape[-1]} reward parameters but the "
                           f"{type(rmodel).__name__} of environment {mdp.name!r} has {rmodel.n_params}; use the "
                           f"--env the posterior was fitted in")
        try:
            cands.segments.validate(mdp.n_states, mdp.n_actions)
        except ValueError as e:
            raise CLIError(f"{candidates_file}: the candidate trajectories do not fit environment {mdp.name!r} "
                           f"({mdp.n_states} states, {mdp.n_actions} actions): {e}") from None
        belief = as_samples(post, mdp, reward_model=rmodel, max_samples=max_samples)
        if criterion in SPREAD and len(belief) < 2:
            total = post.n_chains * post.n_draws
            raise CLIError(f"{posterior}: --criterion {criterion} compares the posterior's draws and needs at least "
                           f"2: found {len(belief)} (the file holds {total}; --max-samples {max_samples})", code=2)
        q = next_query(belief, cands, mdp, criterion=criterion, human=model, seed=0 if seed is None else seed)
        order = np.argsort(-q.scores, kind="stable")[:top]
        if json_out:
            typer.echo(json.dumps({"index": q.index, "options": q.options.tolist(), "score": q.score,
                                   "criterion": criterion, "env": mdp.name, "samples": len(belief),
                                   "top": [{"index": int(i), "score": float(q.scores[i])} for i in order]}))
            return
        con = _console()
        con.print(f"Ask query {q.index} (segments {', '.join(map(str, q.options.tolist()))}): {criterion} = "
                  f"{q.score:.6g}  [{len(belief)} posterior draws, {cands.n_queries} candidates, {mdp.name}]",
                  soft_wrap=True)
        for rank, i in enumerate(order, 1):
            con.print(f"  {rank:>2}. query {int(i):>5}  {criterion} {q.scores[i]:.6g}")
