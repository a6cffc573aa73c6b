"""The two small problems of BROIL (Brown, Niekum & Petrik 2020): machine replacement and the lava corridor.

* ``machine-replacement``: a machine ages through 4 states; each step the operator
  either does nothing (``noop``: the machine ages by one state; from the last,
  worn-out state it breaks down and is replaced, back to state 0) or repairs it
  (``repair``: back to state 0). The costs are uncertain: the cost of ``noop`` in
  state ``s`` is Gamma-distributed with shape 1/2 and scale 20, 40, 80, 190
  (heavy tails, growing with age; means 10, 20, 40, 95), the cost of ``repair`` is
  ``100 + N(0, 1)``. Discount 0.95, uniform start. :func:`machine_replacement_samples`
  draws reward samples from this distribution (it plays the posterior); the
  environment's own reward is the mean.
* ``lava-corridor``: a 3 x 5 grid whose middle row is lava except its first cell;
  features (white, red), true weights proportional to (-0.1, -0.9), four
  deterministic moves, the bottom-right cell terminal, uniform start over the
  14 other cells (the paper starts in all 15; an episode here never starts in a
  terminal state, which only removes a constant from every policy's return), discount 0.99. :func:`lava_corridor_demonstrations` is the single
  demonstration of the paper, from the top row round the lava by the left column:
  it shows that lava is worse than a white cell, but not by how much.

References:
    Brown, Niekum & Petrik (2020), "Bayesian Robust Optimization for Imitation
    Learning", NeurIPS, Sec. 6 (machine replacement after Delage & Mannor 2010,
    "Percentile optimization for Markov decision processes with parameter
    uncertainty", Operations Research; the ambiguous-demonstration lava corridor).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from irl.envs.bias_envs import MOVES, ascii_gridworld
from irl.mdp import TabularMDP

__all__ = ["machine_replacement", "machine_replacement_samples", "lava_corridor", "lava_corridor_demonstrations",
           "NOOP_SCALES", "LAVA_LAYOUT", "ENVIRONMENTS"]

#: Scale of the Gamma(1/2, scale) cost of doing nothing in each machine state.
NOOP_SCALES = (20.0, 40.0, 80.0, 190.0)
#: Mean cost of a repair (its noise is N(0, 1)).
REPAIR_COST = 100.0

#: The lava corridor: ``.`` white, ``L`` lava (red), ``g`` the terminal white cell.
LAVA_LAYOUT = (".....",
               ".LLLL",
               "....g")


def machine_replacement(*, discount: float = 0.95) -> TabularMDP:
    """The 4-state, 2-action machine replacement MDP (reward: the mean of the cost distribution).

    Example:
        >>> import irl
        >>> env = irl.envs.make("machine-replacement")
        >>> env.n_states, env.n_actions, env.action_names
        (4, 2, ('noop', 'repair'))
    """
    S = len(NOOP_SCALES)
    T = np.zeros((S, 2, S))
    T[np.arange(S), 0, (np.arange(S) + 1) % S] = 1.0  # noop: age by one; the worn-out machine breaks, restart
    T[:, 1, 0] = 1.0  # repair: as new
    mean = np.stack([-0.5 * np.asarray(NOOP_SCALES), np.full(S, -REPAIR_COST)], axis=1)
    return TabularMDP.from_arrays(T, initial=np.full(S, 1.0 / S), discount=discount, true_reward=mean,
                                  name="machine-replacement", action_names=("noop", "repair"),
                                  state_names=tuple(f"age {s}" for s in range(S)))


def machine_replacement_samples(n: int = 2000, *, seed: int | None = 0) -> np.ndarray:
    """Reward samples ``(n, 4, 2)`` of the machine replacement problem (the "posterior" of the paper).

    ``r(s, noop) = -Gamma(1/2, NOOP_SCALES[s])``, ``r(s, repair) = -100 - N(0, 1)``.

    Args:
        n: number of samples.
        seed: seed of the generator.

    Example:
        >>> from irl.envs.broil import machine_replacement_samples
        >>> machine_replacement_samples(5, seed=0).shape
        (5, 4, 2)
    """
    if int(n) < 1:
        raise ValueError(f"n must be >= 1: got {n}")
    rng = np.random.default_rng(seed)
    noop = -rng.gamma(0.5, np.asarray(NOOP_SCALES), size=(int(n), len(NOOP_SCALES)))
    repair = -REPAIR_COST - rng.standard_normal((int(n), len(NOOP_SCALES)))
    return np.stack([noop, repair], axis=2)


def lava_corridor(*, discount: float = 0.99, weights: tuple[float, float] = (-0.1, -0.9)) -> TabularMDP:
    """The 3 x 5 lava corridor with features (white, red) and unit-norm true weights.

    Example:
        >>> import irl
        >>> env = irl.envs.make("lava-corridor")
        >>> env.grid_shape, env.feature_names, int(env.terminal.sum())
        ((3, 5), ('white', 'red'), 1)
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w / np.linalg.norm(w)
    layout = [row.replace(".", "S", 1) if i == 0 else row for i, row in enumerate(LAVA_LAYOUT)]
    env = ascii_gridworld(layout, weights={"white": w[0], "red": w[1]}, discount=discount, name="lava-corridor",
                          legend={"S": ("white", False), ".": ("white", False), "L": ("red", False),
                                  "g": ("white", True)})
    live = (~env.terminal).astype(np.float64)
    return env.replace(initial=live / live.sum())


def lava_corridor_demonstrations() -> Any:
    """The paper's single demonstration: from the top row's second cell left, down the left column, right to the goal.

    Example:
        >>> from irl.envs.broil import lava_corridor_demonstrations
        >>> lava_corridor_demonstrations().lengths.tolist()
        [7]
    """
    from demos import Trajectories

    act = {name: i for i, name in enumerate(MOVES)}
    actions = [act[m] for m in ("left", "down", "down", "right", "right", "right", "right")]
    return Trajectories.from_lists([[1, 0, 5, 10, 11, 12, 13, 14]], [actions], terminated=[True])


#: ``name -> (factory, summary)`` for the environment registry.
ENVIRONMENTS = {
    "machine-replacement": (machine_replacement,
                            "BROIL machine replacement: 4 ages x (noop, repair), heavy-tailed uncertain costs, "
                            "discount 0.95 (samples: irl.envs.broil.machine_replacement_samples)"),
    "lava-corridor": (lava_corridor,
                      "BROIL 3x5 lava corridor, features (white, red), weights ~ (-0.1, -0.9), discount 0.99 "
                      "(demonstration: irl.envs.broil.lava_corridor_demonstrations)"),
}
