"""Bellman operators: (soft) value iteration, occupancy measures, policy evaluation, rollouts.

Pure functions over a :class:`~irl.mdp.TabularMDP`. Every function accepts a reward
of shape ``(S,)``, ``(S, A)`` or a batch ``(B, S, A)`` of reward hypotheses, and
returns arrays with the batch dimension first when one was given:

* finite horizon ``H``: time-indexed arrays ``(B, H, S, A)`` (Q-values, policies,
  occupancies) and ``(B, H + 1, S)`` values;
* infinite horizon: stationary arrays ``(B, S, A)`` and ``(B, S)``.

Internally the batch is the *last* axis, so that every backup is one sparse
matrix times a dense ``(S, B)`` block and one log-sum-exp over actions; there is
no Python loop over states, actions or hypotheses (only over time steps).

Backends: the sweeps run either as numpy/scipy calls per time step (the
``numpy`` backend, always available, the reference) or as one compiled numba
kernel per pass with the whole time loop inside (the ``numba`` backend, with
``pip install 'pluggable-irl[fast]'``; the same numbers to rounding). The
default, ``auto``, uses numba when it is installed; :func:`backend` says which
one runs and :func:`set_backend` or the environment variable
``IRL_PLANNER_BACKEND`` (``auto``, ``numba`` or ``numpy``) chooses.

Precision: float64 by default; every planning function takes ``dtype=np.float32``
for half the memory and about half the time (results then agree with float64 to
about ``1e-6`` relative). Infinite-horizon problems are solved by value iteration
while it converges quickly and then by Newton's method on the Bellman equation
(soft policy iteration; policy iteration for the hard backup) with Krylov
(BiCGSTAB) linear solves, which needs a handful of iterations where value
iteration needs ``log(tol) / log(gamma)`` sweeps (thousands for ``gamma >= 0.99``).

Conventions. The agent in state ``s_t`` takes ``a_t`` and receives ``r(s_t, a_t)``
for ``t = 0 .. H-1``. In a terminal state it receives ``r(s, a)`` once and the
episode ends. Soft value iteration works at temperature 1; a Boltzmann human with
rationality ``beta`` is soft value iteration on ``beta * r``.

References:
    Ziebart, Bagnell & Dey (2010), "Modeling interaction via the principle of
    maximum causal entropy". Bellman (1957), "Dynamic Programming". Puterman &
    Brumelle (1979), "On the convergence of policy iteration in stationary dynamic
    programming" (policy iteration is Newton's method). van der Vorst (1992),
    "Bi-CGSTAB: a fast and smoothly converging variant of Bi-CG".


Example:
    >>> import irl
    >>> env = irl.envs.make("gridworld-5x5")
    >>> res = irl.planning.soft_value_iteration(env, env.true_reward, beta=5.0)
    >>> occ = irl.planning.occupancy_measure(env, res.policy)
    >>> res.policy.shape == (env.horizon, env.n_states, env.n_actions), round(float(occ.sum()), 6) == env.horizon
    (True, True)

The package is split by role: :mod:`~irl.planning.core` (backends, dtypes, buffers, the
sparse layout, one Bellman step), :mod:`~irl.planning.linear` (policy linear solves),
:mod:`~irl.planning.values` (Q-values, the planners, their vector-Jacobian products) and
:mod:`~irl.planning.occupancy` (occupancies, evaluation, rollouts). Module-level tuning
constants live where they are read (e.g. ``irl.planning.values._VI_SWEEPS``).
"""

from __future__ import annotations

from irl.planning.core import ConvergenceError, backend, release_buffers, set_backend
from irl.planning.values import (PlanningResult, bellman_q, bellman_q_vjp, soft_log_policy, soft_log_policy_vjp,
                                 soft_value_iteration, value_iteration)
from irl.planning.occupancy import (expected_return, greedy_policy, occupancy_measure, policy_evaluation, rollout,
                                    state_occupancy)

# internals that irl.autodiff reads (tuning constants and switches are set on their own modules, e.g.
# irl.planning.values._VI_SWEEPS; the tests and benchmarks do so)
from irl.planning.core import BACKEND_ENV, _batch_last, _internal_view, _ops, _resolve_dtype, _to_public
from irl.planning.values import _q_values, _vjp_internal

__all__ = [
    "PlanningResult",
    "ConvergenceError",
    "bellman_q",
    "bellman_q_vjp",
    "soft_log_policy",
    "soft_log_policy_vjp",
    "soft_value_iteration",
    "value_iteration",
    "occupancy_measure",
    "state_occupancy",
    "policy_evaluation",
    "expected_return",
    "greedy_policy",
    "rollout",
    "release_buffers",
    "backend",
    "set_backend",
]
