"""``irl constraints``: which states, actions or features the demonstrator never uses (constraint inference)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

KIND_HELP = ("Candidate constraints: states, actions, features, or several separated by commas "
             "(they compete), e.g. --kind states,actions,features.")


def _check_options(kind: str, stop: str, threshold: Optional[float], tolerance: float, posterior: bool,
                   prior: Optional[float], samples: Optional[int], seed: Optional[int]) -> tuple[str, ...]:
    """The ``--kind`` names; before any work, refuse unknown names, numbers out of range and options that
    ``--stop`` or the absence of ``--posterior`` would ignore (exit code 2, naming the option)."""
    import irl
    from irl.cli import CLIError, _check_number, _refuse_unused

    kinds = tuple(k.strip() for k in kind.split(",") if k.strip())
    bad = [k for k in kinds if k not in irl.constraints.KINDS]
    if bad or not kinds:
        raise CLIError(f"unknown --kind {bad[0] if bad else kind!r}; known: "
                       f"{', '.join(irl.constraints.KINDS)}", code=2)
    if stop not in ("kl", "lr", "none"):
        raise CLIError(f"unknown --stop {stop!r}; known: kl, lr, none", code=2)
    _refuse_unused({"--threshold": threshold}, stop != "none", "--stop kl or lr", "--stop none")
    if stop == "kl":
        _check_number("--threshold (nats per demonstration for --stop kl)", threshold, 0.0)
    else:
        _check_number("--threshold (the test level alpha for --stop lr)", threshold, 0.0, 1.0, low_open=True,
                      high_open=True)
    _check_number("--tolerance", tolerance, 0.0, 1.0, high_open=True)
    _refuse_unused({"--prior": prior, "--samples": samples, "--seed": seed}, posterior, "--posterior",
                   "a run without --posterior")
    _check_number("--prior", prior, 0.0, 1.0, low_open=True, high_open=True)
    return kinds


def _nominal_reward(mdp: Any, reward: Optional[Path]) -> np.ndarray:
    """The ``--reward`` file's reward (checked against the environment), else the environment's own."""
    from irl.cli import CLIError, _load_reward, _reward_of, _warn_env_mismatch

    if reward is None:
        if mdp.true_reward is None:
            raise CLIError(f"environment {mdp.name!r} defines no reward: give the nominal one with --reward", code=2)
        return np.asarray(mdp.true_reward)
    try:
        est = _load_reward(reward)
        nominal = _reward_of(est, mdp, reward)
    except (ValueError, CLIError) as e:  # the messages start with the file; name the option too
        raise CLIError(f"--reward {str(e) if str(e).startswith(str(reward)) else f'{reward}: {e}'}", code=2) from None
    _warn_env_mismatch(est.info.get("env"), mdp, reward)
    return nominal


def register(app: Any) -> None:
    """Add ``irl constraints`` to the app."""
    from irl.cli import ENV_HELP, HUMAN_HELP, _handles_errors, seed_option

    @app.command("constraints")
    @_handles_errors
    def constraints_command(
        data: Path = typer.Argument(..., help="Demonstrations (.npz from `irl simulate` or demos.save), "
                                              "e.g. demos.npz."),
        env: str = typer.Option(..., "--env", help=ENV_HELP),
        reward: Optional[Path] = typer.Option(None, "--reward",
                                              help="The nominal reward (a file saved by `irl fit`); default: the "
                                                   "environment's own reward, e.g. --reward reward.npz."),
        human: str = typer.Option("boltzmann", "--human", help=HUMAN_HELP),
        kind: str = typer.Option("states", "--kind", help=KIND_HELP),
        max_constraints: int = typer.Option(10, "--max", min=0, help="At most this many constraints, e.g. --max 5."),
        stop: str = typer.Option("kl", "--stop",
                                 help="Stopping rule: kl (KL criterion), lr (likelihood-ratio test) or none, "
                                      "e.g. --stop lr."),
        threshold: Optional[float] = typer.Option(None, "--threshold",
                                                  help="nats per demonstration for --stop kl (default 0.1), the "
                                                       "level alpha for --stop lr (default 0.05), e.g. "
                                                       "--threshold 0.05."),
        tolerance: float = typer.Option(0.0, "--tolerance",
                                        help="A move enters a forbidden state when it does so with probability "
                                             "above this, in [0, 1) (slippery worlds), e.g. --tolerance 0.05."),
        posterior: bool = typer.Option(False, "--posterior",
                                       help="Also compute the posterior probability that each candidate holds, e.g. --posterior."),
        prior: Optional[float] = typer.Option(None, "--prior",
                                              help="Prior inclusion probability in (0, 1) for --posterior (default "
                                                   "0.1), e.g. --prior 0.05."),
        samples: Optional[int] = typer.Option(None, "--samples", min=1,
                                              help="MH iterations per chain for --posterior (default 2000), "
                                                   "e.g. --samples 2000."),
        seed: Optional[int] = seed_option(None, "Random seed of --posterior (default 0), e.g. --seed 0."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object, e.g. --json."),
    ) -> None:
        """Infer the constraints the demonstrator obeys (maximum likelihood constraint inference).

        Greedily adds the state, action or feature constraint that makes the demonstrations
        most likely under the human model acting on the nominal reward, until the stopping rule
        says the gain is too small (Scobee & Sastry 2020).

        Example: irl constraints demos.npz --env scobee-9x9 --human boltzmann:beta=2 --kind states,actions,features
        """
        import demos
        import irl
        from irl.cli import _bind, _console, _make_env, _make_human

        kinds = _check_options(kind, stop, threshold, tolerance, posterior, prior, samples, seed)
        mdp = _make_env(env)
        model = _make_human(human)
        nominal = _nominal_reward(mdp, reward)
        obs = demos.load(data)
        _bind(mdp, [obs], [data], model, command="constraints")
        prior = 0.1 if prior is None else prior
        samples = 2000 if samples is None else samples
        seed = 0 if seed is None else seed
        fit = irl.constraints.infer(mdp, obs, nominal, kind=kinds, max_constraints=max_constraints, human=model,
                                    stop=None if stop == "none" else stop, threshold=threshold, tolerance=tolerance)
        report: dict[str, Any] = {"env": mdp.name, "data": str(data), **fit.to_dict()}
        post = None
        if posterior:
            post = irl.constraints.posterior(mdp, obs, nominal, kind=kinds, human=model, prior=prior,
                                             samples=samples, warmup=max(1, samples // 4), seed=seed,
                                             tolerance=tolerance)
            report["posterior"] = post.to_dict()
        if as_json:
            typer.echo(json.dumps(report))
            return
        from rich.table import Table

        con = _console()
        title = f"Constraints inferred from {len(obs)} demonstrations in {mdp.name}"
        t = Table(title=title, min_width=len(title))
        for col in ("#", "constraint", "log-likelihood gain", "KL after (nats)"):
            t.add_column(col, justify="left" if col == "constraint" else "right")
        t.add_row("", "(none: the nominal MDP)", "", f"{fit.kl[0]:.4g}")
        for i, (c, g) in enumerate(zip(fit.constraints, fit.gains)):
            t.add_row(str(i + 1), c.label, f"{g:.4g}", f"{fit.kl[i + 1]:.4g}")
        con.print(t)
        con.print(f"Stopped: {fit.stopped}. {int(fit.violated.sum())} of {len(fit.candidates)} candidates are "
                  f"broken by a demonstration.", soft_wrap=True)
        if post is not None:
            top = [f"{row['label']} {row['p']:.3f}" for row in report["posterior"]["inclusion"][:10]]
            con.print(f"Posterior ({post.method}) probability that each holds: " + ", ".join(top), soft_wrap=True)
