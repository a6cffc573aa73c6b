"""``irl simulate``: simulated evidence of a human model in an environment (every evidence kind).

Loaded by :mod:`irl.cli`, which registers the commands on its app (import ``irl.cli``, not this module).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from irl.cli import (CLIError, COLUMNS_OPTION, DISCOUNT_OPTION, ENV_HELP, HUMAN_HELP, JSON_OPTION, _check_columns,
                     _check_writable, _handles_errors, _known, _make_env, _make_human, _report, _true_reward,
                     seed_option)
from irl.commands.plan import _episode_returns


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

@_handles_errors
def simulate(
    env: str = typer.Option(..., "--env", help=ENV_HELP),
    human: str = typer.Option("boltzmann", "--human", help=HUMAN_HELP),
    n: int = typer.Option(100, "--n", min=1, help="Number of episodes, e.g. --n 200."),
    seed: int = seed_option(0, "Random seed (same seed, same data), e.g. --seed 0."),
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


def register(app: Any) -> None:
    """Add this module's commands to ``app``."""
    app.command()(simulate)
