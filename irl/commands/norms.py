"""``irl fit-norms``: one fit of a shared norm and each agent's own reward (:mod:`irl.norms`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer


def _names(option: str, text: str, env: Any) -> list[str]:
    from irl.cli import CLIError

    names = [n.strip() for n in text.split(",") if n.strip()]
    known = list(env.feature_names or [])
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise CLIError(f"{option} {text!r}: {unknown or 'no'} feature names; environment {env.name!r} has the "
                       f"features {', '.join(known) or '(none)'}", code=2)
    return names


def register(app: Any) -> None:
    """Add ``irl fit-norms`` to ``app``."""
    from irl.cli import CHAINS_OPTION, QUIET_OPTION, SAMPLES_OPTION, SEED_OPTION, WARMUP_OPTION, _handles_errors

    @app.command("fit-norms")
    @_handles_errors
    def fit_norms(
        data: list[Path] = typer.Argument(..., help="One evidence file per agent (demonstrations .npz/.jsonl/.csv "
                                                    "or any evidence .npz), e.g. alice.npz bob.npz."),
        env: str = typer.Option(..., "--env", help="Environment name, e.g. --env park (list them with `irl envs`)."),
        shared: Optional[str] = typer.Option(None, "--shared",
                                             help="Features of the shared reward (the norm), comma-separated, "
                                                  "e.g. --shared lawn,flowers; omit for pure partial pooling."),
        own: str = typer.Option(..., "--own", help="Features of each agent's own reward, comma-separated, "
                                                   "e.g. --own goal_A,goal_B,goal_C."),
        agent: Optional[list[str]] = typer.Option(None, "--agent",
                                                  help="Label of each file's agent, in order (repeat it); default "
                                                       "the file names without extension, e.g. --agent A --agent B."),
        pooling: bool = typer.Option(False, "--pooling",
                                     help="Draw the agents' own weights from an inferred group distribution "
                                          "(partial pooling), e.g. --pooling."),
        human: str = typer.Option("boltzmann", "--human", help="Human model NAME[:key=value,...], "
                                                               "e.g. --human boltzmann:beta=3."),
        solver: str = typer.Option("maxent", "--solver", help="maxent (MAP) or bayes (posterior by HMC), e.g. --solver bayes."),
        samples: Optional[int] = SAMPLES_OPTION,
        chains: Optional[int] = CHAINS_OPTION,
        warmup: Optional[int] = WARMUP_OPTION,
        seed: Optional[int] = SEED_OPTION,
        out: Path = typer.Option(..., "--out", "-o", help="Where to save the estimate, e.g. --out norms.npz."),
        quiet: bool = QUIET_OPTION,
    ) -> None:
        """Infer a norm shared by several agents together with each agent's own reward.

        Every file is one agent's evidence; all are fitted at once with the reward
        r_i = shared + own_i (irl.norms.SharedReward, blocks with Gaussian(0, 1) priors, or
        a group distribution with --pooling). The saved reward is the population reward (the
        norm, plus the group mean's own reward with --pooling); every block's parameters are
        printed and saved by name.

        Example: irl fit-norms a.npz b.npz --env park --shared lawn,flowers --own goal_A,goal_B --human boltzmann:beta=3 --out norms.npz
        """
        import demos
        import irl
        from irl.cli import CLIError, _bind, _check_writable, _console, _make_env, _make_human, _sampling_options
        from irl.commands.fit import _print_fit
        from irl.norms import SharedReward, select_features

        _check_writable(out, suffixes=(".npz",))

        if solver not in ("maxent", "bayes"):
            raise CLIError(f"unknown solver {solver!r} for fit-norms; known: bayes, maxent", code=2)
        sampling = _sampling_options(solver, samples, chains, warmup, seed)
        mdp = _make_env(env)
        labels = list(agent) if agent else [p.stem for p in data]
        if len(labels) != len(data):
            raise CLIError(f"--agent was given {len(labels)} times for {len(data)} files: give one label per file",
                           code=2)
        if len(set(labels)) != len(labels):
            raise CLIError(f"agent labels must be distinct: got {labels} (name the files apart or use --agent)",
                           code=2)
        model = SharedReward(None if shared is None else select_features(mdp, _names("--shared", shared, mdp)),
                             select_features(mdp, _names("--own", own, mdp)), labels, pooling=pooling)
        h = _make_human(human)
        evidence = _bind(mdp, [demos.load(p) for p in data], list(data), h, command="fit-norms", agents=labels)
        t0 = time.perf_counter()
        if solver == "maxent":
            result = irl.MaxEnt(reward_model=model, prior=model.prior()).fit(evidence)
        else:
            result = irl.BayesianIRL(reward_model=model, prior=model.prior()).fit(evidence, progress=not quiet,
                                                                                   **sampling)
        seconds = time.perf_counter() - t0
        result.info.update(env=mdp.name, human_spec=human, agents=labels, shared=shared, own=own, pooling=pooling,
                           data=[str(p) for p in data])
        result.save(str(out))
        if solver == "maxent":
            _print_fit(result, mdp, "fit-norms", seconds, out, max_rows=model.n_params)
        else:
            con = _console()
            con.print(result.summary().table(), soft_wrap=True, markup=False)
            con.print(f"{seconds:.2f} s; converged={result.converged}\nSaved to {out}", soft_wrap=True)
