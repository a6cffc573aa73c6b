"""How good is a plan made with dynamics estimated from logs? FrozenLake 4x4, logged with gymnasium.

A behaviour policy that picks actions uniformly at random plays ``n`` episodes of
gymnasium's ``FrozenLake-v1`` (slippery, 100-step limit); the logged ``(s, a, s')``
and the episode ends are all the planner gets: ``TabularMDP.from_transitions``
estimates the transitions (Dirichlet pseudocount 0.1; never-visited pairs
self-loop; states where an episode terminated become terminal). The reward is
known (1 for reaching the goal), so the table isolates the cost of not knowing
the dynamics: the plan made on the estimate is judged under the *true* dynamics,
next to the plan made with the true dynamics (the optimum) and the random
behaviour that wrote the logs.

Run ``python docs/scripts/dynamics_from_logs.py`` to print the table of the
"Your own problem" guide; ``tests/test_docs.py`` checks the page against it.
"""

from __future__ import annotations

import numpy as np

SIZES = (10, 30, 100, 300, 1000, 3000)
SEEDS = 5
PSEUDOCOUNT = 0.1


def log_episodes(n: int, seed: int):
    """``n`` episodes of a uniformly random policy in gymnasium's FrozenLake-v1 (4x4, slippery)."""
    import gymnasium as gym

    import demos

    env = gym.make("FrozenLake-v1", map_name="4x4")
    rng = np.random.default_rng(seed)
    states, actions, terminated = [], [], []
    for i in range(n):
        s, _ = env.reset(seed=seed * 100_003 + i)
        ep_s, ep_a, done, term = [int(s)], [], False, False
        while not done:
            a = int(rng.integers(4))
            s, _, term, trunc, _ = env.step(a)
            ep_s.append(int(s))
            ep_a.append(a)
            done = term or trunc
        states.append(ep_s)
        actions.append(ep_a)
        terminated.append(term)
    env.close()
    return demos.Trajectories.from_lists(states, actions, terminated=np.array(terminated))


def goal_return(true_env, policy) -> float:
    """Probability of reaching the goal within the time limit (the return of the goal reward)."""
    import irl

    return float(irl.metrics.policy_return(true_env, policy, goal_reward(true_env)))


def goal_reward(env) -> np.ndarray:
    """``(S,)``: 1 in the goal state (the last cell), 0 elsewhere."""
    r = np.zeros(env.n_states)
    r[-1] = 1.0
    return r


def rows(sizes=SIZES, seeds: int = SEEDS) -> list[dict]:
    """One row per log size: mean and spread over ``seeds`` logs of the plan's success under the true dynamics."""
    import irl

    true_env = irl.envs.make("frozenlake-4x4")
    r = goal_reward(true_env)
    known = goal_return(true_env, irl.plan(true_env, r))
    random = goal_return(true_env, np.full((true_env.n_states, true_env.n_actions), 0.25))
    out = []
    for n in sizes:
        values, visited, steps = [], [], []
        for seed in range(seeds):
            logs = log_episodes(n, seed)
            est = irl.TabularMDP.from_transitions(logs, n_states=16, n_actions=4, pseudocount=PSEUDOCOUNT,
                                                  horizon=true_env.horizon, discount=true_env.discount)
            values.append(goal_return(true_env, irl.plan(est, r)))
            live = ~est.terminal
            visited.append(float((est.visit_counts[live] > 0).mean()))
            steps.append(int(logs.lengths.sum()))
        out.append({"episodes": n, "steps": float(np.mean(steps)), "visited": float(np.mean(visited)),
                    "mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values)),
                    "known": known, "random": random})
    return out


def markdown(table: list[dict]) -> str:
    lines = ["| logged episodes | logged steps | (s, a) visited | success of the plan (mean, min-max) | "
             "share of the known-dynamics plan |",
             "|---:|---:|---:|---:|---:|"]
    for row in table:
        lines.append(f"| {row['episodes']} | {row['steps']:.0f} | {100 * row['visited']:.0f}% | "
                     f"{row['mean']:.3f} ({row['min']:.3f}-{row['max']:.3f}) | {100 * row['mean'] / row['known']:.0f}% |")
    known, random = table[0]["known"], table[0]["random"]
    lines.append(f"| known dynamics | | | {known:.3f} | 100% |")
    lines.append(f"| random behaviour (the logger) | | | {random:.3f} | {100 * random / known:.0f}% |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(rows()))
