"""``irl plan`` and ``irl evaluate``: plan with an inferred reward or posterior, judge a policy by the
true reward.

Loaded by :mod:`irl.cli`, which registers the commands on its app (import ``irl.cli``, not this module).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from irl.cli import (CLIError, COLUMNS_OPTION, DISCOUNT_OPTION, ENV_HELP, HORIZON_OPTION, JSON_OPTION, _bind,
                     _check_columns, _check_writable, _console, _handles_errors, _load_reward, _make_env,
                     _make_human, _one_line, _report, _reward_of, _true_reward, _warn_env_mismatch)


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
    _check_writable(out, suffixes=(".npz",))
    mdp = _make_env(env, horizon=horizon, discount=discount)
    from irl.commands import robust as _robust  # planning over posterior draws (BROIL, deferring)

    if _robust.wants_posterior(objective, alpha, lam, baseline, defer, fallback):
        return _robust.plan_posterior_command(reward, mdp, objective=objective, alpha=alpha, lam=lam,
                                              baseline=baseline, defer=defer, fallback=fallback, out=out,
                                              json_out=json_out)
    est = _load_reward(reward)
    _reward_of(est, mdp, reward)
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
        _bind(mdp, [obs], [data], _make_human("boltzmann"), command="evaluate", option="--data")
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


def register(app: Any) -> None:
    """Add this module's commands to ``app``."""
    app.command()(plan)
    app.command()(evaluate)
