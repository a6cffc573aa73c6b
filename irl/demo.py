"""The built-in end-to-end job behind ``make demo`` and ``irl demo``.

Simulates a Boltzmann-rational human on a gridworld, fits maximum-entropy IRL,
plans with the inferred reward, and reports how the plan does under the true
reward next to the human's own behaviour.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["run_demo"]


def run_demo(env_name: str = "gridworld-8x8", *, beta: float = 5.0, n: int = 200, seed: int = 0) -> dict[str, Any]:
    """Simulate, fit, plan and evaluate; return the numbers of the report.

    Args:
        env_name: a registered environment with a true reward.
        beta: the simulated human's rationality.
        n: number of demonstrations.
        seed: random seed.

    Returns:
        A dict with the true and inferred parameters, returns and timings.

    Example:
        >>> from irl.demo import run_demo
        >>> report = run_demo("gridworld-5x5", n=50)
        >>> report["evd_fraction"] < 0.02
        True
    """
    import demos
    import human_models as hm
    import irl

    env = irl.envs.make(env_name)
    truth = irl.envs.true_reward(env)
    human = hm.Boltzmann(beta=beta)
    t0 = time.perf_counter()
    data = demos.simulate(env, human, truth, n=n, seed=seed)
    t1 = time.perf_counter()
    est = irl.MaxEnt(human=hm.Boltzmann(beta=beta)).fit(env, data)
    t2 = time.perf_counter()
    policy = irl.plan(env, est.reward)
    v_opt = irl.metrics.optimal_return(env, truth)
    v_plan = irl.metrics.policy_return(env, policy, truth)
    v_human = irl.metrics.policy_return(env, human.action_probs(env, truth), truth)
    evd = irl.metrics.expected_value_difference(env, policy, truth)
    return {
        "env": env.name, "states": env.n_states, "actions": env.n_actions, "demonstrations": len(data),
        "steps": int(data.lengths.sum()), "beta": beta, "param_names": est.param_names,
        "true_theta": _true_theta(env, truth), "theta": est.theta.tolist(), "converged": est.converged,
        "iterations": len(est.history), "log_likelihood": est.log_likelihood,
        "optimal_return": v_opt, "plan_return": v_plan, "human_return": v_human, "evd": evd,
        "evd_fraction": evd / abs(v_opt) if v_opt else evd,
        "shaping_invariant_correlation": irl.metrics.shaping_invariant_correlation(env, est.reward, truth),
        "epic_distance": irl.metrics.epic_distance(env, est.reward, truth),
        "simulate_s": t1 - t0, "fit_s": t2 - t1,
    }


def _true_theta(env: Any, truth: np.ndarray) -> list[float] | None:
    if env.features is None or env.features.ndim != 2:
        return None
    sol, *_ = np.linalg.lstsq(env.features, truth if truth.ndim == 1 else truth.mean(-1), rcond=None)
    return sol.tolist()


def print_report(report: dict[str, Any]) -> None:
    """Print the demo report as rich tables."""
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.print(f"[bold]pluggable-irl demo[/bold]: {report['env']} ({report['states']} states, "
              f"{report['actions']} actions), {report['demonstrations']} demonstrations "
              f"({report['steps']} steps) from a Boltzmann human, beta = {report['beta']}")
    t = Table(title="Reward weights (maximum causal entropy IRL)")
    t.add_column("feature")
    t.add_column("true", justify="right")
    t.add_column("inferred", justify="right")
    true = report["true_theta"] or [float("nan")] * len(report["theta"])
    for name, a, b in zip(report["param_names"], true, report["theta"]):
        t.add_row(name, f"{a:+.3f}", f"{b:+.3f}")
    con.print(t)
    r = Table(title="Return under the true reward")
    r.add_column("policy")
    r.add_column("expected return", justify="right")
    r.add_row("optimal (knows the true reward)", f"{report['optimal_return']:.4f}")
    r.add_row("planner on the inferred reward", f"{report['plan_return']:.4f}")
    r.add_row("the simulated human", f"{report['human_return']:.4f}")
    con.print(r)
    con.print(f"expected value difference {report['evd']:.2e} ({100 * report['evd_fraction']:.3f}% of optimal); "
              f"EPIC distance to the true reward {report['epic_distance']:.3f} (shaping-invariant correlation "
              f"{report['shaping_invariant_correlation']:.3f}); fit converged={report['converged']} in "
              f"{report['iterations']} L-BFGS iterations, {report['fit_s']:.2f} s")
