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


def _check_writable(out: Path, option: str = "--out", suffixes: tuple[str, ...] | None = None) -> None:
    """Fail before a long run when ``out`` cannot be written (a directory, a missing or read-only folder), or,
    with ``suffixes``, when its extension is not one the file type is written as (``x.txt`` for an ``.npz``)."""
    out = Path(out)
    if suffixes is not None and not out.is_dir() and out.suffix.lower() not in suffixes:
        raise CLIError(f"{option} {out}: this file is written as {' or '.join(suffixes)}; got extension "
                       f"{out.suffix or '(none)'!r}; e.g. {option} {out.with_suffix(suffixes[0])}", code=2)
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


def _check_number(option: str, value: Optional[float], low: float = -np.inf, high: float = np.inf, *,
                  low_open: bool = False, high_open: bool = False) -> None:
    """Fail (exit code 2) on a ``value`` of ``option`` that is NaN, infinite or outside its range.

    The message names the option, the range expected and the value found.
    ``None`` (the option was not given) passes.

    Example:
        >>> _check_number("--weight", -1.0, 0.0)
        Traceback (most recent call last):
        irl.cli.CLIError: --weight must be a finite number >= 0: got -1.0
    """
    if value is None:
        return
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if np.isfinite(value) and above and below:
        return
    if np.isinf(high):
        wanted = f"{'>' if low_open else '>='} {low:g}" if np.isfinite(low) else ""
    else:
        wanted = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    raise CLIError(f"{option} must be a finite number {wanted}".rstrip() + f": got {value}", code=2)


def _refuse_unused(given: dict[str, Any], applies: bool, to: str, got: str) -> None:
    """Refuse options that the chosen mode would ignore (exit code 2) instead of accepting and dropping them.

    Args:
        given: option flag -> value, ``None`` when the option was not given.
        applies: whether the chosen mode uses these options.
        to: what the options apply to, e.g. ``"sampling solvers (bayes)"``.
        got: the mode chosen instead, e.g. ``"--solver maxent"``.

    Example:
        >>> _refuse_unused({"--seed": 3, "--n-rewards": None}, False, "--measure attainable-utility",
        ...                "--measure relative-reachability")
        Traceback (most recent call last):
        irl.cli.CLIError: --seed only applies to --measure attainable-utility, not --measure relative-reachability
    """
    flags = [k for k, v in given.items() if v is not None]
    if flags and not applies:
        raise CLIError(f"{', '.join(flags)} only appl{'ies' if len(flags) == 1 else 'y'} to {to}, not {got}", code=2)


def _check_columns(columns: Optional[str]) -> None:
    """Fail on a malformed ``--columns`` before any file is read, naming the option."""
    from demos.tables import parse_columns

    try:
        parse_columns(columns)
    except ValueError as e:
        raise CLIError(f"--columns {columns!r}: {_one_line(e)}", code=2) from None


#: The library's hint for data that contradict the MDP, rewritten for the command line.
_ALLOW_HINT = r"pass allow=\('(\w+)',\) to irl\.Evidence"


#: Commands that bind data but have no ``--horizon`` option to suggest.
_WITHOUT_HORIZON = frozenset({"constraints", "fit-norms"})


def _bind(mdp: Any, loaded: list, paths: list[Path], model: Any, allow: Optional[list[str]] = None, *,
          command: str = "fit", option: Optional[str] = None, agents: Optional[list[str]] = None) -> list:
    """One ``irl.Evidence`` per file; data that contradict the MDP fail naming the file and ``irl fit --allow``.

    Args:
        mdp: the ``--env`` environment.
        loaded: the files' evidence, in the order of ``paths``.
        paths: the files, named in the errors.
        model: the human model of every file.
        allow: ``irl fit --allow`` names (contradictions to accept).
        command: the command, for the hint on ``--allow``.
        option: the option that gave the files (``--baseline``, ``--data``): the message starts with it and
            the exit code is 2 (a bad option value); ``None`` for the command's arguments (exit code 1).
        agents: one agent label per file (``irl fit-norms``), or ``None``.
    """
    import re

    import demos
    import irl
    from demos.consistency import ALLOW

    for name in allow or ():
        if name not in ALLOW:
            raise _known("--allow name", name, list(ALLOW))
    env_hint = "first check that --env is the environment the data were recorded in"
    hint = (r"pass --allow \1" if command == "fit" else rf"irl {command} cannot accept them (irl fit --allow \1 can)") \
        + "; " + env_hint
    bound = []
    for i, (path, obs) in enumerate(zip(paths, loaded)):
        extra = {} if agents is None else {"agent": agents[i]}
        try:
            bound.append(irl.Evidence(mdp, obs, model, allow=allow or (), **extra))
        except demos.DemoValidationError as e:
            text = re.sub(_ALLOW_HINT, hint, _one_line(e))
            if "more than the MDP's horizon" in text:
                text += ("; pass a --horizon at least as long as the longest episode" if command not in
                         _WITHOUT_HORIZON else f"; {env_hint}")
            elif env_hint not in text:
                text += (f"; the data do not fit environment {mdp.name!r} ({mdp.n_states} states, {mdp.n_actions} "
                         f"actions): {env_hint}")
            raise CLIError(f"{option + ' ' if option else ''}{path}: {text}", code=2 if option else 1) from None
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


def _reward_of(est: Any, env: Any, path: Path) -> np.ndarray:
    """The ``(S, A)`` reward of a loaded reward or posterior file, checked against ``env``; errors name the file
    (e.g. a posterior saved without its mean reward)."""
    try:
        reward = np.asarray(est.reward)
    except ValueError as e:
        raise CLIError(f"{path}: {_one_line(e)}") from None
    _check_reward_shape(reward, env, path)
    return reward


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


def _check_seed(value: Optional[int]) -> Optional[int]:
    """``--seed`` callback: a negative seed is a usage error (numpy's generators would fail with a traceback)."""
    if value is not None and value < 0:
        raise typer.BadParameter(f"a random seed must be an integer >= 0: got {value}")
    return value


def seed_option(default: Optional[int], help: str) -> Any:
    """The ``--seed`` option of every command: an integer >= 0, checked by :func:`_check_seed`."""
    return typer.Option(default, "--seed", callback=_check_seed, help=help)


SEED_OPTION = seed_option(None, "Random seed of the sampler (default 0), e.g. --seed 1.")
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
    samplers = ", ".join(sorted(k for k, e in SOLVERS.items() if e.sampler))
    _refuse_unused(given, SOLVERS[solver].sampler, f"sampling solvers ({samplers})", f"--solver {solver}")
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
    seed: int = seed_option(0, "Random seed (same seed, same numbers), e.g. --seed 0."),
) -> None:
    """Run the built-in job: simulate a Boltzmann human, fit MaxEnt IRL, plan, evaluate.

    Prints the true and inferred reward weights and the returns under the true reward.

    Example: irl demo --env gridworld-5x5 --n 100
    """
    from irl.demo import print_report, run_demo

    _make_env(env)  # unknown names fail here, with the list
    print_report(run_demo(env, beta=beta, n=n, seed=seed))


# ------------------------------------------------- results and files shared by the commands
def _report(json_out: bool, record: dict[str, Any], line: str) -> None:
    """One result: a JSON object on standard output (``--json``) or a line of text."""
    if json_out:
        typer.echo(json.dumps({k: _json_value(v) for k, v in record.items()}))
    else:
        _console().print(line, soft_wrap=True, markup=False)


#: Exit code of ``irl fit`` / ``irl compare`` when a posterior was saved but its chains have not converged.
EXIT_UNCONVERGED = 3


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


def _load_reward(path: Path) -> Any:
    """A :class:`irl.RewardEstimate` or an :class:`irl.Posterior` (by the file's format)."""
    import irl
    from demos import load_arrays

    fmt, _, _ = load_arrays(path)
    if fmt == "pluggable-irl/posterior":
        return irl.Posterior.load(str(path))
    return irl.RewardEstimate.load(str(path))


def _json_value(v: Any) -> Any:
    """A number for ``--json`` output: non-finite ones (an undefined score) become ``null``."""
    return v if not isinstance(v, float) or np.isfinite(v) else None


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if not isinstance(v, dict) else {str(a): b for a, b in v.items()}) for k, v in params.items()}


# ------------------------------------------------- the commands (irl.commands: one module per area)
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
