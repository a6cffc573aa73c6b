"""``irl side-effects``: plan with a reward and a side-effect penalty (relative reachability, attainable utility)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

MEASURES = ("relative-reachability", "attainable-utility", "feature-deviation")


def register(app: Any) -> None:
    """Add ``irl side-effects`` to ``app``."""
    from irl.cli import ENV_HELP, _handles_errors

    @app.command("side-effects")
    @_handles_errors
    def side_effects_command(
        reward: Path = typer.Argument(..., help="A reward or a posterior saved by `irl fit`, e.g. reward.npz."),
        env: str = typer.Option(..., "--env", help=ENV_HELP),
        measure: str = typer.Option("relative-reachability", "--measure",
                                    help=f"Deviation measure: {', '.join(MEASURES)}; "
                                         f"e.g. --measure attainable-utility."),
        baseline: str = typer.Option("stepwise", "--baseline",
                                     help="starting, inaction or stepwise, e.g. --baseline inaction."),
        weight: float = typer.Option(1.0, "--weight", help="Penalty weight, e.g. --weight 5."),
        discount: float = typer.Option(0.99, "--discount",
                                       help="Discount of the reachability or auxiliary values, e.g. --discount 0.95."),
        n_rewards: int = typer.Option(20, "--n-rewards",
                                      help="Random auxiliary rewards (attainable-utility), e.g. --n-rewards 30."),
        seed: int = typer.Option(0, "--seed", help="Seed of the auxiliary rewards, e.g. --seed 1."),
        rollout: int = typer.Option(0, "--rollout", min=0,
                                    help="Stepwise baseline: no-op steps of the inaction rollouts that compare "
                                         "delayed effects (0: none), e.g. --rollout 10."),
        noop: Optional[int] = typer.Option(None, "--noop",
                                           help="Index of the no-op action (default: by name), e.g. --noop 4."),
        start: Optional[int] = typer.Option(None, "--start",
                                            help="Start state of the starting and inaction baselines, e.g. --start 0."),
        objective: str = typer.Option("optimal", "--objective",
                                      help="optimal or soft (Boltzmann at --beta), e.g. --objective soft."),
        beta: Optional[float] = typer.Option(None, "--beta", help="Rationality for --objective soft, e.g. --beta 10."),
        out: Path = typer.Option(..., "--out", "-o", help="Where to save the policy, e.g. --out policy.npz."),
    ) -> None:
        """Plan with a reward minus a side-effect penalty and save the policy.

        Example: irl side-effects reward.npz --env rlsp-room --baseline inaction --weight 2 --out policy.npz
        """
        import irl
        from irl import side_effects
        from irl.cli import (CLIError, _check_reward_shape, _check_writable, _console, _load_reward, _make_env,
                             _warn_env_mismatch)
        from irl.plan import save_policy

        _check_writable(out, suffixes=(".npz",))

        if measure not in MEASURES:
            raise CLIError(f"unknown --measure {measure!r}; known: {', '.join(MEASURES)}", code=2)
        if beta is not None and objective != "soft":
            raise CLIError("--beta only applies to --objective soft", code=2)
        if rollout and (baseline != "stepwise" or measure == "feature-deviation"):
            raise CLIError(f"--rollout {rollout} applies to --baseline stepwise with relative-reachability or "
                           f"attainable-utility: got --baseline {baseline} --measure {measure}", code=2)
        mdp = _make_env(env)
        est = _load_reward(reward)
        _check_reward_shape(np.asarray(est.reward), mdp, reward)
        _warn_env_mismatch(est.info.get("env"), mdp, reward)
        common = dict(baseline=baseline, weight=weight, start=start, noop=noop)
        if measure == "relative-reachability":
            pen = side_effects.relative_reachability(mdp, discount=discount, rollout=rollout, **common)
        elif measure == "attainable-utility":
            pen = side_effects.attainable_utility(mdp, n_rewards=n_rewards, seed=seed, discount=discount,
                                                  rollout=rollout, **common)
        else:
            pen = side_effects.feature_deviation(mdp, **common)
        try:
            policy = irl.plan(mdp, est.reward, objective=objective, beta=beta, penalty=pen)
        except ValueError as e:
            if "objective" in str(e):
                raise CLIError(str(e), code=2) from None
            raise
        value = irl.metrics.policy_return(mdp, policy, est.reward)
        save_policy(out, policy, meta={"env": mdp.name, "objective": objective, "beta": beta,
                                       "reward_file": str(reward), "penalty": measure, "baseline": baseline,
                                       "weight": weight, "rollout": rollout})
        _console().print(f"Planned ({objective}, {pen.measure} penalty, {baseline} baseline, weight {weight:g}) in "
                         f"{mdp.name}: policy of shape {policy.shape}, expected return {value:.4f} under the "
                         f"inferred reward. Saved to {out}", soft_wrap=True)
