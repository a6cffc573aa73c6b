"""The ``irl`` command: simulate, fit, plan and evaluate from the shell.

The commands use the same nouns as the Python API (environments, human models,
priors, solvers, rewards, policies) and look every name up in a registry, so an
unknown name fails with the list of the known ones::

    irl simulate --env gridworld-8x8 --human boltzmann:beta=5 --n 200 --out demos.npz
    irl fit demos.npz --env gridworld-8x8 --human boltzmann:beta=5 --solver maxent --out reward.npz
    irl plan reward.npz --env gridworld-8x8 --out policy.npz
    irl evaluate policy.npz --env gridworld-8x8 --data demos.npz
    irl fit demos.npz --env gridworld-8x8 --solver bayes --samples 500 --chains 4 --out posterior.npz
    irl plan posterior.npz --env gridworld-8x8 --out policy.npz
    irl compare demos.npz --env gridworld-8x8 --human boltzmann:beta=5 --human myopic:horizon=3,beta=5 --solver bayes
    irl envs; irl human-models; irl solvers
    irl plot reward.npz --env gridworld-8x8 --out reward.png

User errors (unknown names, bad files, shapes that do not fit the environment)
print one line ``Error: ...`` on standard error and exit with a non-zero code
(2 for an unknown name or a bad option value, 1 otherwise). Set the environment
variable ``IRL_DEBUG=1`` to see the full traceback instead.

Solvers plug in through :func:`register_solver`; each one is built from the
options of ``irl fit`` and must return a result with a ``save(path)`` method.
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import typer

__all__ = ["app", "main", "register_solver", "SOLVERS", "SolverEntry", "CLIError"]


# ----------------------------------------------------------------------------- errors
class CLIError(Exception):
    """A user error: printed as one line ``Error: ...`` and exits with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _one_line(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return " ".join(text.split())


def _fail(message: str, code: int) -> None:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def _user_errors() -> tuple[type[BaseException], ...]:
    from irl.envs import UnknownEnvError
    from irl.planning import ConvergenceError

    # ValueError covers the library's own errors: DemoFileError, DemoValidationError,
    # MDPValidationError, HumanModelError and the priors' messages.
    return (ValueError, UnknownEnvError, ConvergenceError, OSError, ImportError)


# typer's own control flow (exit codes, aborts, usage errors) passes through untouched. Recent typer
# vendors click (typer._click), so click itself is not a dependency: name the classes through typer.
_TYPER_CONTROL: tuple[type[BaseException], ...] = tuple(
    getattr(typer, name) for name in ("Exit", "Abort", "TyperException") if hasattr(typer, name))


def _handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one-line messages (``IRL_DEBUG=1`` re-raises them)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _TYPER_CONTROL:
            raise
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            raise typer.Exit(130) from None
        except CLIError as e:
            if os.environ.get("IRL_DEBUG"):
                raise
            _fail(_one_line(e), e.code)
        except _user_errors() as e:
            if os.environ.get("IRL_DEBUG"):
                raise
            _fail(_one_line(e), 1)

    return wrapper


def _hide_flag_types() -> None:
    """Help pages list flags (``--json``, ``--quiet``, ``--help``) without typer's ``<bool>`` type column."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_irl_hides_flags", False):
        return

    def display_type_rich(self: Any, ctx: Any) -> Any:
        return None if getattr(self, "is_flag", False) and self.metavar is None else shown(self, ctx)

    display_type_rich._irl_hides_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_hide_flag_types()


# ---------------------------------------------------------------------- registries
@dataclass(frozen=True)
class SolverEntry:
    """A solver for ``irl fit``.

    Attributes:
        build: ``build(*, human, prior, reward_model, max_iter, callback) -> solver``;
            the solver has ``fit(env, data)`` returning a result with ``save(path)``.
            ``callback(iteration, objective, grad_norm)`` drives the progress display.
        summary: one line for ``irl solvers`` and the help text.
    """

    build: Callable[..., Any]
    summary: str
    sampler: bool = False


#: Solvers known to ``irl fit --solver``, by name.
SOLVERS: dict[str, SolverEntry] = {}


def register_solver(name: str, build: Callable[..., Any], summary: str = "", *, sampler: bool = False) -> None:
    """Make a solver available as ``irl fit --solver NAME``.

    Args:
        name: the name on the command line.
        build: called as ``build(human=..., prior=..., reward_model=..., max_iter=...,
            callback=...)``; returns an object with ``fit(env, data)``.
        summary: one-line description.
        sampler: the solver draws posterior samples; ``build`` then also receives
            ``samples``, ``chains``, ``warmup``, ``seed``, ``out``, ``resume`` and
            ``checkpoint_every``, and ``callback(done, total, phase)`` drives the bar.

    Example:
        >>> from irl.cli import SOLVERS, register_solver
        >>> register_solver("my-maxent", SOLVERS["maxent"].build, "MaxEnt under another name")
        >>> "my-maxent" in SOLVERS
        True
        >>> del SOLVERS["my-maxent"]
    """
    SOLVERS[name] = SolverEntry(build=build, summary=summary, sampler=sampler)


def _build_maxent(*, human: Any, prior: Any, reward_model: Any, max_iter: int,
                  callback: Callable[[int, float, float], None] | None, n_starts: int | None = None) -> Any:
    from irl.solvers import MaxEnt

    # check=False: the command prints the estimate's problems itself
    return MaxEnt(human=human, prior=prior, reward_model=reward_model, max_iter=max_iter, callback=callback,
                  n_starts=n_starts, check=False)


register_solver("maxent", _build_maxent,
                "maximum (causal) entropy IRL: MAP point estimate by L-BFGS (any differentiable human model)")


def checkpoint_path(out: Path) -> Path:
    """Where ``irl fit --solver bayes --out OUT`` keeps the draws completed so far.

    Example:
        >>> from pathlib import Path
        >>> checkpoint_path(Path("runs/posterior.npz")).as_posix()
        'runs/posterior.partial.npz'
    """
    out = Path(out)
    return out.with_name(out.stem + ".partial.npz")


class _BayesRun:
    """``irl fit --solver bayes``: :meth:`irl.BayesianIRL.fit` with its checkpoint next to ``--out``.

    Checkpoints, resuming and the check that a checkpoint belongs to this run
    live in the library (``BayesianIRL.fit(checkpoint=...)``); this class only
    chooses the file, starts afresh unless ``--resume`` is given, and sends
    deliberation traces under an exact meta-level model to the envelope sampler.
    """

    def __init__(self, solver: Any, *, samples: int, chains: int, warmup: int, seed: int, out: Path,
                 resume: bool, checkpoint_every: int, callback: Callable[[int, int, str], None] | None) -> None:
        self.solver, self.samples, self.chains, self.warmup, self.seed = solver, samples, chains, warmup, seed
        self.out, self.resume, self.every, self.callback = Path(out), resume, checkpoint_every, callback

    def fit(self, evidence: Any) -> Any:
        if _samples_through_envelope(evidence):
            return self._fit_envelope(evidence[0])
        path = checkpoint_path(self.out)
        if self.resume and not path.exists():
            raise CLIError(f"--resume: no checkpoint {path} to resume from (it is written while `irl fit "
                           f"--solver bayes --out {self.out}` runs)")
        if not self.resume and path.exists():
            path.unlink()  # a fresh run never continues an old one
        cb = None
        if self.callback is not None:
            def cb(i: int, total: int, phase: str) -> None:  # warmup on its own count, then draws
                self.callback(*((i, self.warmup, phase) if phase == "warmup" else (i - self.warmup, self.samples, phase)))
        try:
            post = self.solver.fit(evidence, samples=self.samples, chains=self.chains, warmup=self.warmup,
                                   seed=self.seed, check=False, callback=cb, checkpoint=str(path),
                                   checkpoint_every=self.every)
        except ValueError as e:
            if "belongs to another run" in str(e) or "draws per chain, more than" in str(e):
                raise CLIError(f"--resume: {_one_line(e)}", code=2) from None
            raise
        post.info.update(warmup=self.warmup, checkpoint_every=self.every)
        return post

    def _fit_envelope(self, ev: Any) -> Any:
        """Deliberation traces under an exact meta-level model: MAP start, then HMC through an envelope.

        Every likelihood evaluation of the exact model solves the meta-level MDP
        (about 0.4 s on mouselab-312), so plain HMC would take hours; see
        :func:`irl.metalevel.population.posterior_with_envelope`. It samples in rounds
        that are checked against exact solves, so there are no chunks to checkpoint.
        """
        from irl.envs import mouselab as ml
        from irl.metalevel import population
        from irl.solvers.maxent import MaxEnt

        if self.resume:
            raise CLIError("--resume: posteriors of deliberation models are sampled in rounds through an envelope "
                           "of exact meta-level solves and are not checkpointed; run again without --resume", code=2)
        typer.echo(f"{ev.human.name} on {ev.mdp.name}: MAP start, then HMC through an envelope of exact "
                   f"meta-level solves, in rounds checked at posterior draws", err=True)
        start = MaxEnt(human=ev.human, prior=self.solver.prior).fit(ev.mdp, ev.observation)
        fitted = {k.split(".", 1)[1]: v for k, v in start.human_params.items()}
        envelope = ml.EnvelopeSolver(ev.mdp.meta.solver("exact"))
        envelope.register(ev.observation.decisions()[0])
        envelope.add(ev.mdp.meta.params(float(fitted.get("cost", ev.human.cost)),
                                        float(fitted.get("depth_cost", ev.human.depth_cost))))
        post, info = population.posterior_with_envelope(
            ev.mdp, ev.observation, ev.human, envelope, samples=self.samples, warmup=self.warmup,
            chains=self.chains, seed=self.seed, init=np.asarray(start.info["x"]), callback=self.callback,
            **self.solver.sampler_options)  # a round's iterations, warmup included
        post.info.update(envelope_rounds=info["rounds"], exact_at_checked_draws=info["exact_at_checked_draws"],
                         map_start=start.human_params, human=repr(ev.human), chains=self.chains, seed=self.seed,
                         warmup=self.warmup, samples=self.samples)
        if not info["exact_at_checked_draws"]:
            typer.echo(f"Warning: the envelope was not exact at every checked draw after {info['rounds']} rounds "
                       f"(largest gap {max(info['gaps'][-1]):.3g}); the posterior is approximate", err=True)
        return post


def _samples_through_envelope(evidence: list) -> bool:
    """Whether ``irl fit --solver bayes`` samples through an envelope of exact meta-level solves.

    That is the case for one file of deliberation traces in a Mouselab
    environment explained by an exact ``MetaBoltzmann`` on points (no reward
    parameters); everything else is sampled by the chunked HMC.
    """
    from demos import DeliberationTraces
    from human_models.cognitive import MetaBoltzmann
    from irl.envs.mouselab import MouselabMDP

    if len(evidence) != 1:
        return False
    ev = evidence[0]
    return (isinstance(ev.mdp, MouselabMDP) and isinstance(ev.observation, DeliberationTraces)
            and isinstance(ev.human, MetaBoltzmann) and ev.human.solver == "exact" and ev.human.values == "points")


def _build_bayes(*, human: Any, prior: Any, reward_model: Any, max_iter: int,
                 callback: Callable[[int, int, str], None] | None, samples: int, chains: int, warmup: int,
                 seed: int, out: Path, resume: bool, checkpoint_every: int) -> Any:
    import irl

    solver = irl.BayesianIRL(human, prior="default" if prior is None else prior, reward_model=reward_model,
                             sampler="hmc")
    return _BayesRun(solver, samples=samples, chains=chains, warmup=warmup, seed=seed, out=out, resume=resume,
                     checkpoint_every=checkpoint_every, callback=callback)


register_solver("bayes", _build_bayes,
                "Bayesian IRL: posterior draws of the reward and the human's parameters by batched HMC "
                "(checkpointed, resumable)", sampler=True)

_REWARD_MODELS = {
    "auto": "linear in the environment's features if it has any, else tabular",
    "linear": "r(s, a) = features(s[, a]) . theta (one weight per feature)",
    "tabular": "one parameter per state: r(s)",
    "tabular-sa": "one parameter per state-action pair: r(s, a)",
}


def _known(kind: str, name: str, known: list[str]) -> CLIError:
    return CLIError(f"unknown {kind} {name!r}; known: {', '.join(known)}", code=2)


def _make_env(name: str, *, horizon: Optional[int] = None, discount: Optional[float] = None) -> Any:
    """The environment named ``name`` (registered or from a plugin) or read from an MDP file at that path.

    ``horizon`` and ``discount`` (the ``--horizon`` / ``--discount`` options) replace the environment's own.
    """
    import irl

    if name in irl.envs.names():
        mdp = irl.envs.make(name)
    elif name.endswith(".npz") or Path(name).exists():
        mdp = irl.TabularMDP.load(name)
    else:
        raise CLIError(f"unknown environment {name!r}; known: {', '.join(irl.envs.names())}; or the path of an "
                       f"MDP file (.npz written by TabularMDP.save)", code=2)
    changes: dict[str, Any] = {}
    if horizon is not None:
        changes["horizon"] = horizon
    if discount is not None:
        if not (0.0 <= discount <= 1.0):
            raise CLIError(f"--discount must lie in [0, 1]: got {discount}", code=2)
        changes["discount"] = discount
    return mdp.replace(**changes) if changes else mdp


def _solver_names() -> list[str]:
    """Solver names for ``irl fit --solver``, plugins (entry points ``pluggable_irl.solvers``) included."""
    from irl.plugins import load_plugins

    def add(name: str, obj: Any, dist: str) -> None:
        if isinstance(obj, SolverEntry):
            SOLVERS[name] = obj
        elif callable(obj):
            doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
            register_solver(name, obj, f"{doc[0] if doc else ''} [plugin: {dist}]".strip())
        else:
            raise TypeError(f"expected a SolverEntry or a build function, got {type(obj).__name__}")

    load_plugins("solvers", lambda: SOLVERS, add)
    return sorted(SOLVERS)


def _check_writable(out: Path, option: str = "--out") -> None:
    """Fail before a long run when ``out`` cannot be written (a directory, a missing or read-only folder)."""
    out = Path(out)
    if out.is_dir():
        raise CLIError(f"{option} {out}: is a directory; give a file name, e.g. {out / 'result.npz'}", code=2)
    parent = out.parent if str(out.parent) else Path(".")
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise CLIError(f"{option} {out}: cannot write there (folder {probe} is not writable)", code=2)
    if out.exists() and not os.access(out, os.W_OK):
        raise CLIError(f"{option} {out}: the file exists and is read-only", code=2)


def _check_columns(columns: Optional[str]) -> None:
    """Fail on a malformed ``--columns`` before any file is read, naming the option."""
    from demos.tables import parse_columns

    try:
        parse_columns(columns)
    except ValueError as e:
        raise CLIError(f"--columns {columns!r}: {_one_line(e)}", code=2) from None


#: The library's hint for data that contradict the MDP, rewritten for the command line.
_ALLOW_HINT = r"pass allow=\('(\w+)',\) to irl\.Evidence"


def _bind(mdp: Any, loaded: list, paths: list[Path], model: Any, allow: Optional[list[str]] = None, *,
          command: str = "fit") -> list:
    """One ``irl.Evidence`` per file; data that contradict the MDP fail naming the file and ``irl fit --allow``."""
    import re

    import demos
    import irl
    from demos.consistency import ALLOW

    for name in allow or ():
        if name not in ALLOW:
            raise _known("--allow name", name, list(ALLOW))
    hint = (r"pass --allow \1" if command == "fit" else rf"irl {command} cannot accept them (irl fit --allow \1 can)") \
        + "; first check that --env is the environment the data were recorded in"
    bound = []
    for path, obs in zip(paths, loaded):
        try:
            bound.append(irl.Evidence(mdp, obs, model, allow=allow or ()))
        except demos.DemoValidationError as e:
            raise CLIError(f"{path}: {re.sub(_ALLOW_HINT, hint, _one_line(e))}") from None
    return bound


def _make_human(spec: str) -> Any:
    import human_models as hm

    try:
        return hm.make(spec)
    except hm.HumanModelError as e:
        shown = repr(spec) if len(spec) <= 200 else f"{spec[:60]!r}... ({len(spec)} characters)"
        raise CLIError(f"--human {shown}: {_one_line(e)}", code=2) from None


def _make_prior(spec: str | None) -> Any:
    if spec is None:
        return None
    import priors

    try:
        return priors.make(spec)
    except ValueError as e:
        raise CLIError(f"--prior {spec!r}: {_one_line(e)}", code=2) from None


def _make_reward_model(name: str, env: Any) -> Any:
    from irl.rewards import LinearReward, TabularReward, default_reward_model

    if name.split(":")[0] in _NEURAL_REWARD_MODELS:
        return _make_network(name, env)
    if name not in _REWARD_MODELS:
        raise _known("reward model", name, list(_REWARD_MODELS) + [f"{k}:..." for k in _NEURAL_REWARD_MODELS])
    if name == "auto":
        return default_reward_model(env)
    if name == "linear":
        if env.features is None:
            raise CLIError(f"environment {env.name!r} has no reward features, so --reward-model linear is "
                           f"impossible; use --reward-model tabular or tabular-sa", code=2)
        return LinearReward.from_mdp(env)
    return TabularReward(env.n_states, env.n_actions, state_only=(name == "tabular"))


_NEURAL_REWARD_MODELS = {
    "mlp": "a network over each state's features, e.g. mlp:hidden=64,64 (options hidden, out, activation)",
    "cnn": "a convolutional network over a grid's feature maps, e.g. cnn:channels=32,32,kernel=3",
}


def _make_network(spec: str, env: Any, *, per_action: bool = False, seed: int = 0) -> Any:
    """``mlp:...`` / ``cnn:...`` -> an :class:`irl.rewards.NeuralReward` sized for ``env``."""
    from irl.mdp import MDPValidationError
    from irl.rewards import NeuralReward

    try:
        return NeuralReward.from_spec(spec, env, per_action=per_action, seed=seed)
    except (ValueError, MDPValidationError) as e:
        raise CLIError(f"--reward-model {spec!r}: {_one_line(e)}", code=2) from None


def _network_path(out: Path) -> Path:
    """Where ``irl fit --reward-model mlp:...`` keeps the trained network: ``NAME.net.pt`` beside ``out``."""
    return out.with_name(f"{out.stem}.net.pt")


def _true_reward(env: Any, command: str) -> np.ndarray:
    import irl

    if env.true_reward is None:
        raise CLIError(f"environment {env.name!r} defines no true reward, which `irl {command}` needs")
    return irl.envs.true_reward(env)


def _check_reward_shape(reward: np.ndarray, env: Any, path: Path) -> None:
    want = (env.n_states, env.n_actions)
    if reward.shape != want:
        raise CLIError(f"{path}: the reward has shape {reward.shape} but environment {env.name!r} has "
                       f"(S, A) = {want}; use the --env the reward was fitted in")


def _warn_env_mismatch(meta_env: Any, env: Any, path: Path) -> None:
    if isinstance(meta_env, str) and meta_env and meta_env != env.name:
        typer.echo(f"Warning: {path} was made in environment {meta_env!r}, not {env.name!r}", err=True)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


# --------------------------------------------------------------------------- the app
app = typer.Typer(
    name="irl",
    help=(
        "Inverse reinforcement learning with a swappable model of the human.\n\n"
        "Simulate demonstrations, infer the reward behind them, plan with the inferred reward "
        "and judge the plan under the true reward.\n\n"
        "Example (the whole chain on a built-in gridworld):\n\n"
        "  irl simulate --env gridworld-8x8 --human boltzmann:beta=5 --n 200 --out demos.npz\n\n"
        "  irl fit demos.npz --env gridworld-8x8 --human boltzmann:beta=5 --out reward.npz\n\n"
        "  irl plan reward.npz --env gridworld-8x8 --out policy.npz\n\n"
        "  irl evaluate policy.npz --env gridworld-8x8 --data demos.npz\n\n"
        "Set IRL_DEBUG=1 to see full tracebacks instead of one-line errors."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        import irl

        typer.echo(f"pluggable-irl {irl.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit. Example: irl --version"),
) -> None:
    """Inverse reinforcement learning with a swappable model of the human."""


ENV_HELP = ("Environment name or MDP file, e.g. gridworld-8x8 (list them with `irl envs`) or my_mdp.npz "
            "(written by TabularMDP.save).")
HORIZON_OPTION = typer.Option(None, "--horizon", min=1,
                              help="Replace the environment's horizon (number of actions per episode), "
                                   "e.g. --horizon 50.")
DISCOUNT_OPTION = typer.Option(None, "--discount", min=0.0, max=1.0,
                               help="Replace the environment's discount factor, e.g. --discount 0.95.")
JSON_OPTION = typer.Option(False, "--json", help="Print the results as JSON instead of tables, e.g. --json.")
HUMAN_HELP = "Human model spec NAME[:key=value,...], e.g. boltzmann:beta=5 (list them with `irl human-models`)."

# ------------------------------------------------ options shared by `irl fit` and `irl compare`
N_STARTS_OPTION = typer.Option(None, "--n-starts", min=1,
                               help="Optimiser starts per fit for point estimates (maxent): the default start plus "
                                    "random restarts; nested models' optima are added on top (default: 1 for "
                                    "concave problems, 3 otherwise), e.g. --n-starts 5.")
QUIET_OPTION = typer.Option(False, "--quiet", "-q", help="No live progress display, e.g. --quiet in scripts and logs.")
COLUMNS_OPTION = typer.Option(None, "--columns",
                              help="Column names of per-step .csv/.jsonl data files, ours=theirs separated by "
                                   "commas (ours: episode, step, state, action, reward, next_state, terminated, "
                                   "truncated, end), e.g. --columns episode=ep,state=obs,action=act.")
SAMPLES_OPTION = typer.Option(None, "--samples", min=1,
                              help="Posterior draws per chain (sampling solvers such as bayes; default 1000), "
                                   "e.g. --samples 500.")
CHAINS_OPTION = typer.Option(None, "--chains", min=1,
                             help="Number of chains (sampling solvers; default 4), e.g. --chains 4.")
WARMUP_OPTION = typer.Option(None, "--warmup", min=0,
                             help="Adaptation iterations per chain, discarded (sampling solvers; default: --samples), "
                                  "e.g. --warmup 500.")
SEED_OPTION = typer.Option(None, "--seed", min=0, help="Random seed of the sampler (default 0), e.g. --seed 1.")
ALLOW_UNCONVERGED_OPTION = typer.Option(False, "--allow-unconverged",
                                        help="Exit with code 0 even when the chains of a sampling solver have "
                                             "not converged (default: exit code 3), e.g. --allow-unconverged.")


def _sampling_options(solver: str, samples: Optional[int], chains: Optional[int], warmup: Optional[int],
                      seed: Optional[int], more: Optional[dict[str, Any]] = None) -> dict[str, int]:
    """``samples``, ``chains``, ``warmup`` and ``seed`` with their defaults filled in.

    Given to a solver that does not sample, these options (and the further
    sampling-only options in ``more``, by flag, ``None`` when not given) are a
    user error (exit code 2).
    """
    given = {"--samples": samples, "--chains": chains, "--warmup": warmup, "--seed": seed, **(more or {})}
    flags = [k for k, v in given.items() if v is not None]
    if flags and not SOLVERS[solver].sampler:
        raise CLIError(f"{', '.join(flags)} only apply to sampling solvers "
                       f"({', '.join(sorted(k for k, e in SOLVERS.items() if e.sampler))}), not --solver {solver}",
                       code=2)
    n = 1000 if samples is None else samples
    return {"samples": n, "chains": 4 if chains is None else chains, "warmup": n if warmup is None else warmup,
            "seed": 0 if seed is None else seed}


def _draws_bar(text: str, quiet: bool) -> Any:
    """A live progress bar of sampler iterations on standard error; ``text`` is its rich description template."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn(text), MofNCompleteColumn(), BarColumn(), TimeElapsedColumn(),
                    console=_console(stderr=True), transient=False, disable=quiet)


# ------------------------------------------------------------------------------ demo
@app.command()
@_handles_errors
def demo(
    env: str = typer.Option("gridworld-8x8", "--env", help=ENV_HELP),
    beta: float = typer.Option(5.0, "--beta", help="Rationality of the simulated Boltzmann human, e.g. --beta 5."),
    n: int = typer.Option(200, "--n", min=1, help="Number of demonstrations, e.g. --n 200."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed (same seed, same numbers), e.g. --seed 0."),
) -> None:
    """Run the built-in job: simulate a Boltzmann human, fit MaxEnt IRL, plan, evaluate.

    Prints the true and inferred reward weights and the returns under the true reward.

    Example: irl demo --env gridworld-5x5 --n 100
    """
    from irl.demo import print_report, run_demo

    _make_env(env)  # unknown names fail here, with the list
    print_report(run_demo(env, beta=beta, n=n, seed=seed))


# -------------------------------------------------------------------------- simulate
#: Evidence kinds ``irl simulate --evidence`` can create (``irl fit`` reads them all).
EVIDENCE_KINDS = ["trajectories", "state-only", "transitions", "comparisons", "corrections", "estops",
                  "world-state"]


def _simulate_evidence(kind: str, mdp: Any, model: Any, truth: Any, n: int, seed: int, robot: Optional[Path],
                       stay_action: int, kwargs: dict, *, columns: Optional[str] = None) -> Any:
    """Evidence other than demonstrations and world states, from ``model`` on ``truth``."""
    import demos
    import human_models as hm

    if kind == "state-only":
        return demos.StateOnly.simulate(mdp, model, truth, n, rng=seed, **kwargs)
    if kind == "transitions":
        return demos.Transitions.simulate(mdp, model, truth, n, rng=seed, **kwargs)
    if kind == "comparisons":
        return demos.Comparisons.simulate(mdp, model, truth, n, rng=seed)
    if robot is not None:
        _check_columns(columns)
        robot_data = demos.load(robot, columns=columns)
        if not isinstance(robot_data, demos.Trajectories):
            raise CLIError(f"--robot {robot}: expected trajectories, found {type(robot_data).__name__}")
        robot_data.validate(mdp.n_states, mdp.n_actions, horizon=mdp.horizon)
    else:  # a robot that has not learned anything yet: near-random behaviour
        robot_data = demos.simulate(mdp, hm.Boltzmann(1e-3), truth, n, seed=seed + 1, **kwargs)
    if kind == "corrections":
        return demos.Corrections.simulate(mdp, model, truth, robot_data, rng=seed)
    if stay_action >= mdp.n_actions:
        raise CLIError(f"--stay-action {stay_action} is out of range: the MDP has {mdp.n_actions} actions", code=2)
    return demos.EStops.simulate(mdp, model, truth, robot_data, stay_action=stay_action, rng=seed)


@app.command()
@_handles_errors
def simulate(
    env: str = typer.Option(..., "--env", help=ENV_HELP),
    human: str = typer.Option("boltzmann", "--human", help=HUMAN_HELP),
    n: int = typer.Option(100, "--n", min=1, help="Number of episodes, e.g. --n 200."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed (same seed, same data), e.g. --seed 0."),
    out: Path = typer.Option(..., "--out", "-o",
                             help="Output file; the extension picks the format: .npz, .jsonl or .csv, "
                                  "e.g. --out demos.npz."),
    horizon: Optional[int] = typer.Option(None, "--horizon", min=1,
                                          help="Replace the environment's horizon (episode length), needed for "
                                               "infinite-horizon environments (e.g. aima-4x3), e.g. --horizon 50; "
                                               "for --evidence world-state the number of unobserved steps T."),
    discount: Optional[float] = DISCOUNT_OPTION,
    json_out: bool = JSON_OPTION,
    evidence: str = typer.Option("trajectories", "--evidence",
                                 help="What to simulate: " + ", ".join(EVIDENCE_KINDS) + "; e.g. "
                                      "--evidence comparisons."),
    robot: Optional[Path] = typer.Option(None, "--robot",
                                         help="Robot trajectories (.npz/.jsonl/.csv) that the human corrects or "
                                              "stops (corrections, estops); default: near-random behaviour, "
                                              "e.g. --robot robot.npz."),
    stay_action: int = typer.Option(0, "--stay-action", min=0,
                                    help="The action that keeps the robot in place once stopped (estops), "
                                         "e.g. --stay-action 0."),
    columns: Optional[str] = COLUMNS_OPTION,
) -> None:
    """Simulate evidence of a human model acting on the environment's true reward.

    Demonstrations by default; --evidence picks state-only trajectories, logged
    transitions, comparisons, corrections, e-stops or world states.

    Example: irl simulate --env gridworld-8x8 --human boltzmann:beta=5 --n 200 --seed 0 --out demos.npz
    Example: irl simulate --env gridworld-8x8 --evidence comparisons --n 300 --out prefs.npz
    Example: irl simulate --env aima-4x3 --horizon 50 --n 100 --out aima.npz
    """
    import demos

    if evidence not in EVIDENCE_KINDS:
        raise _known("evidence kind", evidence, EVIDENCE_KINDS)
    known_ext = [".csv", ".jsonl", ".npz"]
    if out.suffix not in known_ext:
        raise CLIError(f"--out {out}: unknown extension {out.suffix!r} for {evidence}; known: "
                       f"{', '.join(known_ext)}", code=2)
    _check_writable(out)
    world_state = evidence == "world-state"
    mdp = _make_env(env, horizon=None if world_state else horizon, discount=discount)
    model = _make_human(human)
    truth = _true_reward(mdp, "simulate")
    report: dict[str, Any] = {"env": mdp.name, "human": repr(model), "evidence": evidence, "out": str(out)}
    if world_state:
        if horizon is None:
            raise CLIError("--evidence world-state needs the number of unobserved steps: --horizon T", code=2)
        data = demos.WorldState.simulate(mdp, model, truth, n, horizon=horizon, seed=seed)
        demos.save(data, out)
        _report(json_out, report | {"n": len(data), "unobserved_steps": horizon},
                f"Wrote {len(data)} world states after {horizon} unobserved steps of {model!r} in {mdp.name} to {out}")
        return
    if mdp.horizon is None:
        raise CLIError(f"environment {env!r} has an infinite horizon: give the episode length with "
                       f"--horizon, e.g. --horizon 50", code=2)
    if not getattr(model, "finite_lookahead", False):
        mdp.check_well_posed()
    if evidence != "trajectories":
        data = _simulate_evidence(evidence, mdp, model, truth, n, seed, robot, stay_action, {}, columns=columns)
        demos.save(data, out)
        _report(json_out, report | {"data": repr(data)}, f"Wrote {data!r} of {model!r} in {mdp.name} to {out}")
        return
    data = demos.simulate(mdp, model, truth, n=n, seed=seed)
    if not isinstance(data, demos.Trajectories):  # a model whose evidence is not demonstrations (deliberation traces)
        data.save(out)
        _report(json_out, report | {"data": repr(data)}, f"Wrote {data!r} of {model!r} in {mdp.name} to {out}")
        return
    demos.save(data, out)
    steps = int(data.lengths.sum())
    line = (f"Wrote {len(data)} episodes ({steps} steps, mean length {steps / len(data):.1f}) of {model!r} "
            f"in {mdp.name} to {out}")
    returns = _episode_returns(mdp, data, truth)
    report.update(episodes=len(data), steps=steps, mean_return=None if returns is None else float(returns.mean()))
    if returns is not None:
        line += f"; mean return {returns.mean():.4f}"
    _report(json_out, report, line)


def _report(json_out: bool, record: dict[str, Any], line: str) -> None:
    """One result: a JSON object on standard output (``--json``) or a line of text."""
    if json_out:
        typer.echo(json.dumps({k: _json_value(v) for k, v in record.items()}))
    else:
        _console().print(line, soft_wrap=True, markup=False)


# ------------------------------------------------------------------------------- fit
@app.command()
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
    _check_writable(out)
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


#: Exit code of ``irl fit`` / ``irl compare`` when a posterior was saved but its chains have not converged.
EXIT_UNCONVERGED = 3


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


def format_human_params(params: dict[str, Any]) -> str:
    """One line for fitted human parameters: ``name=value`` per continuous one,
    ``name: value:probability, ...`` (probabilities >= 0.01) per discrete one.

    Example:
        >>> format_human_params({"beta": 2.0412, "horizon": {3: 0.97, 4: 0.03, 5: 0.001}})
        'beta=2.04; horizon: 3:0.97, 4:0.03'
    """
    return "; ".join(f"{k}={float(v):.3g}" if not isinstance(v, dict) else
                     f"{k}: " + ", ".join(f"{a}:{b:.2f}" for a, b in v.items() if b >= 0.01)
                     for k, v in params.items())


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


# ------------------------------------------------------------------------------ plan
def _load_reward(path: Path) -> Any:
    """A :class:`irl.RewardEstimate` or an :class:`irl.Posterior` (by the file's format)."""
    import irl
    from demos import load_arrays

    fmt, _, _ = load_arrays(path)
    if fmt == "pluggable-irl/posterior":
        return irl.Posterior.load(str(path))
    return irl.RewardEstimate.load(str(path))


@app.command()
@_handles_errors
def plan(
    reward: Path = typer.Argument(..., help="A reward or a posterior saved by `irl fit` (a posterior plans on "
                                            "its posterior-mean reward), e.g. reward.npz or posterior.npz."),
    env: str = typer.Option(..., "--env", help=ENV_HELP),
    objective: str = typer.Option("optimal", "--objective",
                                  help="optimal (exact value iteration) or soft (Boltzmann policy at --beta), "
                                       "e.g. --objective soft; over a posterior's draws also mean, map or cvar "
                                       "(BROIL: lam * E[return] + (1 - lam) * CVaR_alpha), e.g. --objective cvar."),
    beta: Optional[float] = typer.Option(None, "--beta", help="Rationality for --objective soft, e.g. --beta 10."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to save the policy, e.g. --out policy.npz."),
    horizon: Optional[int] = HORIZON_OPTION,
    discount: Optional[float] = DISCOUNT_OPTION,
    json_out: bool = JSON_OPTION,
    alpha: Optional[float] = typer.Option(None, "--alpha", help="CVaR level in [0, 1) (default 0.95): the worst "
                                                                "1 - alpha of the posterior, e.g. --alpha 0.95."),
    lam: Optional[float] = typer.Option(None, "--lam", help="Weight of the expected return in [0, 1] for "
                                                            "--objective cvar (default 0), e.g. --lam 0.5."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="Demonstrations: the CVaR is of the regret "
                                                                     "against them, e.g. --baseline demos.npz."),
    defer: Optional[float] = typer.Option(None, "--defer", help="Defer where the posterior probability that the "
                                                                "chosen action is optimal is below this, e.g. --defer "
                                                                "0.8."),
    fallback: str = typer.Option("ask", "--fallback", help="What a deferring policy does: ask (mark the state) or "
                                                           "demonstrations (act as in --baseline), e.g. --fallback "
                                                           "demonstrations."),
) -> None:
    """Plan with an inferred reward (the "superhuman" step) and save the policy.

    The policy file is a versioned .npz holding action probabilities (H, S, A)
    for finite-horizon environments or (S, A) otherwise.

    Example: irl plan reward.npz --env gridworld-8x8 --objective optimal --out policy.npz
    """
    import irl
    from irl.plan import save_policy

    if beta is not None and objective != "soft":
        raise CLIError("--beta only applies to --objective soft", code=2)
    if beta is not None and not (np.isfinite(beta) and beta > 0):
        raise CLIError(f"--beta must be a finite number > 0: got {beta}", code=2)
    _check_writable(out)
    mdp = _make_env(env, horizon=horizon, discount=discount)
    from irl.commands import robust as _robust  # planning over posterior draws (BROIL, deferring)

    if _robust.wants_posterior(objective, alpha, lam, baseline, defer, fallback):
        return _robust.plan_posterior_command(reward, mdp, objective=objective, alpha=alpha, lam=lam,
                                              baseline=baseline, defer=defer, fallback=fallback, out=out,
                                              json_out=json_out)
    est = _load_reward(reward)
    _check_reward_shape(np.asarray(est.reward), mdp, reward)
    _warn_env_mismatch(est.info.get("env"), mdp, reward)
    try:
        policy = irl.plan(mdp, est.reward, objective=objective, beta=beta)
    except ValueError as e:
        if "objective" in str(e):
            raise CLIError(_one_line(e), code=2) from None
        raise
    value = irl.metrics.policy_return(mdp, policy, est.reward)
    save_policy(out, policy, meta={"env": mdp.name, "objective": objective, "beta": beta,
                                   "reward_file": str(reward)})
    _report(json_out, {"env": mdp.name, "objective": objective, "beta": beta, "policy_shape": list(policy.shape),
                       "expected_return_inferred_reward": float(value), "out": str(out)},
            f"Planned ({objective}) in {mdp.name}: policy of shape {policy.shape}, expected return "
            f"{value:.4f} under the inferred reward. Saved to {out}")


# -------------------------------------------------------------------------- evaluate
def _episode_returns(env: Any, data: Any, truth: np.ndarray | None) -> np.ndarray | None:
    """Per-episode discounted returns of demonstrations.

    Recorded rewards are used when present, else the environment's true reward at
    the visited ``(s, a)``. An episode that ends in a terminal state (with steps left)
    also receives the terminal state's reward once, as in planning (trajectories end
    there with no action, so it is never recorded); it is the mean over actions,
    exact for state rewards.
    """
    from irl.mdp import state_action_reward

    lengths = np.asarray(data.lengths)
    if not hasattr(data, "step_index") or lengths.size == 0:
        return None
    if data.rewards is None and truth is None:
        return None
    t, s_t = (np.asarray(x) for x in data.step_index)
    ep = np.repeat(np.arange(lengths.size), lengths)
    r_sa = None if truth is None else state_action_reward(truth, env.n_states, env.n_actions)
    if data.rewards is not None:
        step_r = np.asarray(data.rewards, dtype=np.float64)
    else:
        step_r = r_sa[s_t, np.asarray(data.actions)]
    disc = env.discount ** t.astype(np.float64)
    returns = np.bincount(ep, weights=disc * step_r, minlength=lengths.size)
    if r_sa is not None and env.terminal is not None:
        final = np.asarray(data.final_states)
        steps_left = np.ones(lengths.size, bool) if env.horizon is None else lengths < env.horizon
        ends = np.asarray(env.terminal)[final] & steps_left
        returns = returns + ends * env.discount ** lengths * r_sa[final].mean(axis=1)
    return returns


@app.command()
@_handles_errors
def evaluate(
    policy: Path = typer.Argument(..., help="A policy saved by `irl plan`, e.g. policy.npz."),
    env: str = typer.Option(..., "--env", help=ENV_HELP),
    data: Optional[Path] = typer.Option(None, "--data",
                                        help="Demonstrations to compare with (the human's average return), "
                                             "e.g. --data demos.npz."),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as one JSON object, e.g. --json."),
    horizon: Optional[int] = HORIZON_OPTION,
    discount: Optional[float] = DISCOUNT_OPTION,
    columns: Optional[str] = COLUMNS_OPTION,
) -> None:
    """Judge a policy under the environment's true reward, next to the optimum and the human.

    Prints the policy's expected return, the optimal return, the expected value
    difference (optimal minus policy) and, with --data, the demonstrators'
    average return.

    Example: irl evaluate policy.npz --env gridworld-8x8 --data demos.npz
    """
    import demos
    import irl
    from irl.plan import check_policy, load_policy

    mdp = _make_env(env, horizon=horizon, discount=discount)
    truth = _true_reward(mdp, "evaluate")
    pi, meta = load_policy(policy)
    pi = check_policy(mdp, pi, name=str(policy))
    _warn_env_mismatch(meta.get("env"), mdp, policy)
    v_opt = irl.metrics.optimal_return(mdp, truth)
    v_pol = irl.metrics.policy_return(mdp, pi, truth)
    evd = irl.metrics.expected_value_difference(mdp, pi, truth)
    frac = evd / abs(v_opt) if v_opt else float("nan")
    v_rand = irl.metrics.policy_return(mdp, np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions), truth)
    report: dict[str, Any] = {"env": mdp.name, "policy_file": str(policy), "optimal_return": v_opt,
                              "policy_return": v_pol, "expected_value_difference": evd,
                              "evd_fraction_of_optimal": frac, "random_return": v_rand}
    from irl.commands.robust import deferral_summary  # a deferring policy: share of deferred visits, regret split

    report.update(deferral_summary(mdp, pi, meta, truth))
    if data is not None:
        _check_columns(columns)
        obs = demos.load(data, columns=columns)
        if hasattr(obs, "validate"):
            obs.validate(mdp.n_states, mdp.n_actions, horizon=mdp.horizon)
        returns = _episode_returns(mdp, obs, truth)
        if returns is None:
            raise CLIError(f"{data}: cannot compute returns from {type(obs).__name__} evidence")
        report.update(human_return=float(returns.mean()),
                      human_return_se=float(returns.std(ddof=1) / np.sqrt(returns.size)) if returns.size > 1
                      else float("nan"),
                      human_episodes=int(returns.size),
                      human_reward_source="recorded" if obs.rewards is not None else "true reward")
    if as_json:
        typer.echo(json.dumps(report))
        return
    from rich.table import Table

    con = _console()
    title = f"Expected return under the true reward of {mdp.name}"
    t = Table(title=title, min_width=len(title))
    t.add_column("policy")
    t.add_column("return" + (" (mean ± s.e.)" if "human_return" in report else ""), justify="right")
    t.add_row("optimal (knows the true reward)", f"{v_opt:.4f}")
    t.add_row(f"this policy ({policy.name})", f"{v_pol:.4f}")
    if "human_return" in report:
        t.add_row(f"human ({report['human_episodes']} episodes in {data.name}, {report['human_reward_source']}"
                  f" rewards)", f"{report['human_return']:.4f} ± {report['human_return_se']:.4f}")
    t.add_row("uniformly random", f"{v_rand:.4f}")
    con.print(t)
    con.print(f"expected value difference: {evd:.4g} ({100 * frac:.3f}% of optimal)", soft_wrap=True)
    if "deferred_visits" in report:
        con.print(f"defers in {100 * report['deferred_visits']:.1f}% of the (discounted) visits; regret of the "
                  f"policy's own decisions {report['regret_autonomous']:.4g}, of the deferred ones "
                  f"{report['regret_deferred']:.4g}", soft_wrap=True)


# --------------------------------------------------------------------------- compare
#: ``irl compare --solver``: how the candidates are fitted and scored.
COMPARE_SOLVERS = {"maxent": "MAP fit, scored by held-out log-likelihood (or BIC)",
                   "bayes": "posterior draws on all of DATA, ranked by PSIS-LOO (WAIC beside it)"}


def _json_value(v: Any) -> Any:
    """A number for ``--json`` output: non-finite ones (an undefined score) become ``null``."""
    return v if not isinstance(v, float) or np.isfinite(v) else None


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if not isinstance(v, dict) else {str(a): b for a, b in v.items()}) for k, v in params.items()}


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


@app.command()
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


# ------------------------------------------------------------------------- listings
def _print_listing(title: str, columns: tuple[str, ...], rows: Any, json_out: bool = False) -> None:
    """A table of names (first column, never wrapped) and their descriptions; JSON lines with ``--json``."""
    from rich.markup import escape
    from rich.table import Table

    if json_out:
        for row in rows:
            typer.echo(json.dumps(dict(zip(columns, row))))
        return
    t = Table(title=title)
    for i, col in enumerate(columns):
        t.add_column(col, no_wrap=i == 0)
    for row in rows:
        t.add_row(*(escape(str(x)) for x in row))
    _console().print(t)


# ----------------------------------------------------------------------------- train
@app.command()
@_handles_errors
def train(
    manifest: Path = typer.Argument(..., help="A manifest of maps and their evidence (.json or .csv), "
                                              "e.g. maps/manifest.json."),
    reward_model: str = typer.Option("mlp:hidden=64,64", "--reward-model",
                                     help="The network: mlp:hidden=64,64 or cnn:channels=32,32,kernel=3, "
                                          "e.g. --reward-model cnn:channels=16,16."),
    per_action: bool = typer.Option(False, "--per-action", help="One reward per action instead of per state, "
                                                                "e.g. --per-action."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Evidence items per step and process, "
                                                                  "e.g. --batch-size 4."),
    lr: float = typer.Option(1e-3, "--lr", min=0.0, help="Adam learning rate, e.g. --lr 0.01."),
    weight_decay: float = typer.Option(0.0, "--weight-decay", min=0.0, help="Adam weight decay, e.g. "
                                                                            "--weight-decay 1e-4."),
    max_epochs: int = typer.Option(10, "--max-epochs", min=1, help="Epochs, e.g. --max-epochs 50."),
    devices: int = typer.Option(1, "--devices", min=1, help="CPU processes per node, e.g. --devices 2."),
    strategy: str = typer.Option("auto", "--strategy", help="Lightning strategy, e.g. --strategy ddp."),
    num_nodes: int = typer.Option(1, "--num-nodes", min=1, help="Nodes (launched by torchrun or SLURM), "
                                                                "e.g. --num-nodes 2."),
    checkpoint_dir: Optional[Path] = typer.Option(None, "--checkpoint-dir",
                                                  help="Checkpoints (last and best); default NAME.ckpt beside "
                                                       "--out, e.g. --checkpoint-dir runs/ckpt."),
    ckpt_path: Optional[str] = typer.Option(None, "--ckpt-path",
                                            help="Resume: 'last' (the last checkpoint in --checkpoint-dir) or a "
                                                 "checkpoint file, e.g. --ckpt-path last."),
    patience: Optional[int] = typer.Option(None, "--patience", min=0,
                                           help="Early stopping after this many epochs without a better held-out "
                                                "log-likelihood (needs 'val' maps), e.g. --patience 5."),
    log_dir: Optional[Path] = typer.Option(None, "--log-dir", help="Write metrics with Lightning's CSV logger "
                                                                   "here, e.g. --log-dir runs/logs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial weights, e.g. --seed 1."),
    quiet: bool = QUIET_OPTION,
    out: Path = typer.Option(..., "--out", "-o", help="Where to save the trained network, e.g. --out net.pt."),
) -> None:
    """Train one reward network on many maps with PyTorch Lightning.

    Each step is the negative log-likelihood of a minibatch of maps (exact planner,
    gradients through its adjoint); maps in the manifest's 'val' split are held out
    (log-likelihood and expected value difference). Needs the lightning extra.

    Example: irl train maps/manifest.json --reward-model cnn:channels=16,16 --devices 2 --strategy ddp --max-epochs 20 --out net.pt
    """
    try:
        import irl.lightning as irl_pl
    except ImportError as e:
        raise CLIError(_one_line(e)) from None
    from irl.datasets import ManifestError

    try:
        data = irl_pl.MapDataModule.from_manifest(manifest, batch_size=batch_size)
    except (ManifestError, OSError) as e:
        raise CLIError(f"{manifest}: {_one_line(e)}" if str(manifest) not in str(e) else _one_line(e)) from None
    net = _make_network(reward_model, data.example_mdp(), per_action=per_action, seed=seed)
    module = irl_pl.RewardNetModule(net, lr=lr, weight_decay=weight_decay)
    ckpt_dir = checkpoint_dir or out.with_name(f"{out.stem}.ckpt")
    if ckpt_path == "last" and not (ckpt_dir / "last.ckpt").exists():
        raise CLIError(f"--ckpt-path last: no checkpoint in {ckpt_dir} to resume from", code=2)
    logger: Any = False
    if log_dir is not None:
        from pytorch_lightning.loggers import CSVLogger

        logger = CSVLogger(str(log_dir), name="irl-train")
    monitor = "val_nll" if data.val is not None else "train_nll"
    trainer = irl_pl.trainer(max_epochs=max_epochs, devices=devices, strategy=strategy, num_nodes=num_nodes,
                             checkpoint_dir=ckpt_dir, early_stopping_patience=patience, monitor=monitor,
                             logger=logger, enable_progress_bar=not quiet, default_root_dir=str(ckpt_dir),
                             **({} if data.val is not None else {"limit_val_batches": 0}))
    t0 = time.perf_counter()
    trainer.fit(module, data, ckpt_path=ckpt_path)
    if trainer.global_rank != 0:
        return
    net.save(out)
    metrics = ", ".join(f"{k} {float(v):.4f}" for k, v in sorted(trainer.callback_metrics.items()))
    _console().print(f"Trained {trainer.current_epoch} epochs ({trainer.global_step} steps, {trainer.world_size} "
                     f"process(es)) in {time.perf_counter() - t0:.1f} s; {metrics}", soft_wrap=True)
    _console().print(f"Network saved to {out} (irl.rewards.NeuralReward.load); checkpoints in {ckpt_dir}",
                     soft_wrap=True)


@app.command()
@_handles_errors
def envs(json_out: bool = JSON_OPTION) -> None:
    """List the registered environments (built-in and from installed plugins).

    Any --env option also takes the path of an MDP file written by TabularMDP.save.

    Example: irl envs
    """
    import irl

    _print_listing("Environments (irl.envs.make(name))", ("name", "summary"), irl.envs.describe(), json_out)


@app.command("human-models")
@_handles_errors
def human_models_cmd(json_out: bool = JSON_OPTION) -> None:
    """List the registered human models (built-in, plugins) and their parameters.

    Example: irl human-models
    """
    import human_models as hm

    _print_listing("Human models (--human NAME:key=value)", ("name", "parameters", "summary"),
                   [(name, params, summary.replace("``", "")) for name, params, summary in hm.describe()], json_out)


@app.command()
@_handles_errors
def solvers(json_out: bool = JSON_OPTION) -> None:
    """List the solvers known to `irl fit --solver` (built-in and from installed plugins).

    Example: irl solvers
    """
    _print_listing("Solvers (irl fit --solver NAME)", ("name", "summary"),
                   [(name, SOLVERS[name].summary) for name in _solver_names()], json_out)


# ------------------------------------------------------------------------------ plot
@app.command()
@_handles_errors
def plot(
    reward: Path = typer.Argument(..., help="A reward saved by `irl fit`, e.g. reward.npz."),
    env: str = typer.Option(..., "--env", help="A gridworld environment, e.g. gridworld-8x8."),
    out: Path = typer.Option(..., "--out", "-o", help="Image file (.png, .pdf, .svg), e.g. --out reward.png."),
    inferred_only: bool = typer.Option(False, "--inferred-only",
                                       help="Draw only the inferred reward, not the environment's true reward "
                                            "beside it, e.g. --inferred-only."),
) -> None:
    """Draw the inferred state reward as a heatmap on the environment's grid.

    Needs matplotlib (the `plot` extra). A state-action reward is averaged over actions.

    Example: irl plot reward.npz --env gridworld-8x8 --out reward.png
    """
    import irl
    from demos import atomic_write
    from irl.mdp import state_action_reward

    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise CLIError("`irl plot` needs matplotlib: pip install 'pluggable-irl[plot]'") from None
    mdp = _make_env(env)
    if mdp.grid_shape is None:
        grids = [n for n in irl.envs.names() if n.startswith("gridworld")]
        raise CLIError(f"environment {env!r} has no grid layout to draw on; environments with one include "
                       f"{', '.join(grids)}", code=2)
    est = irl.RewardEstimate.load(str(reward))
    _check_reward_shape(np.asarray(est.reward), mdp, reward)
    _warn_env_mismatch(est.info.get("env"), mdp, reward)
    S, A = mdp.n_states, mdp.n_actions
    panels = [("inferred reward", state_action_reward(est.reward, S, A).mean(axis=-1))]
    if not inferred_only and mdp.true_reward is not None:
        panels.append(("true reward", state_action_reward(mdp.true_reward, S, A).mean(axis=-1)))
    fig = Figure(figsize=(4.2 * len(panels), 3.8), layout="constrained")
    rows, cols = mdp.grid_shape
    for k, (title, values) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        grid = values.reshape(rows, cols)
        im = ax.imshow(grid, cmap="viridis", origin="upper")
        if rows * cols <= 100:
            lo, hi = float(grid.min()), float(grid.max())
            for (i, j), v in np.ndenumerate(grid):
                bright = hi > lo and (v - lo) / (hi - lo) > 0.6  # light end of viridis: dark text
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if bright else "white")
        ax.set_title(f"{title} ({mdp.name})")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8)
    fmt = out.suffix.lstrip(".").lower()
    supported = sorted(fig.canvas.get_supported_filetypes())
    if fmt not in supported:
        raise CLIError(f"--out {out}: unknown image type {out.suffix!r}; known: {', '.join(supported)}", code=2)
    atomic_write(out, lambda f: fig.savefig(f, format=fmt, dpi=120))
    _console().print(f"Saved {out}", soft_wrap=True)


# ------------------------------------------------------- commands of the other areas
from irl.commands import register_all as _register_all  # noqa: E402  (needs the app and helpers above)

_register_all(app)


def main() -> None:
    """Entry point of the ``irl`` console script.

    The command's tensors are small, so torch runs on one thread unless
    ``IRL_TORCH_THREADS`` says otherwise (its default thread pool was measured
    5-8x slower for these workloads on a loaded 2-core machine).
    """
    import torch

    text = os.environ.get("IRL_TORCH_THREADS", "1")
    limit = max(1, os.cpu_count() or 1) * 4
    try:
        threads = int(text)
    except ValueError:
        threads = 0
    if not 1 <= threads <= limit:
        typer.echo(f"Error: the environment variable IRL_TORCH_THREADS must be an integer from 1 to {limit} "
                   f"(4 x the {os.cpu_count()} CPUs): got {text!r}", err=True)
        raise SystemExit(2)
    torch.set_num_threads(threads)
    app(prog_name="irl")


if __name__ == "__main__":  # pragma: no cover
    # `python -m irl.cli`: run the imported module's app, whose error classes the command modules share
    from irl.cli import main as _imported_main

    _imported_main()
