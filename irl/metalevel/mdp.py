"""The meta-level MDP interface: beliefs, computations with costs, the stop action and its value.

A *meta-level MDP* (Hay, Russell, Tolpin & Shimony 2012) describes deliberation
as a decision problem. Its states are **beliefs** about an object-level problem;
its actions are **computations** (each refines the belief at a cost) and one
**stop** action, which ends deliberation and acts on the current belief. Every
problem in :mod:`irl.metalevel` implements :class:`MetaMDP`, so that the
cognition-level human models (:class:`human_models.MetaBoltzmann`), deliberation
evidence (:mod:`demos.deliberation`), fits, model comparison and
:func:`human_models.amplify` work for any of them.

Conventions shared by every problem:

* action ``0`` (:data:`STOP`) stops; actions ``1 .. n_actions - 1`` are computations;
* a belief is one row of numbers (``(D, belief_size)`` for ``D`` beliefs);
* the parameters of a person's deliberation are ``phi = (cost, depth_cost, w_1, ..., w_K)``:
  a computation costs ``cost + depth_cost * depth(computation)`` and ``w`` is the
  utility of the object-level outcome (``K = n_weights`` numbers). A problem whose
  computations have no depth gives every computation depth 0;
* every Q-value is linear in ``phi`` for a fixed continuation policy,
  ``Q = plane @ phi``; solvers return those **planes** (:class:`MetaSolver`), so
  the gradient of a Q-value with respect to ``phi`` is exact.

References:
    Hay, Russell, Tolpin & Shimony (2012), "Selecting computations: Theory and
    applications", UAI. Russell & Wefald (1991), "Do the right thing". Callaway,
    Lieder, Das, Gul, Krueger & Griffiths (2018), "A resource-rational analysis of
    human planning", CogSci.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from irl.mdp import TabularMDP

__all__ = ["STOP", "MetaLevelError", "MetaMDP", "MetaSolver", "MetaEnv", "meta_params"]

#: The terminal action ("stop deliberating and act"): action 0 in every meta-level problem.
STOP = 0

_TIE = 1e-10  # a computation must beat stopping (or an earlier computation) by this much to be chosen


class MetaLevelError(ValueError):
    """A meta-level problem was given something it cannot use; the message says what and why."""


def meta_params(cost: float = 1.0, depth_cost: float = 0.0, weights: Any = None, *, height: int = 3) -> np.ndarray:
    """The parameter vector ``phi = (cost, depth_cost, w_1, ..., w_H)`` of a meta-level problem.

    Args:
        cost: static cost of one computation.
        depth_cost: extra cost per level of depth of the computation.
        weights: utility of the outcome, one number per weight (default 1 everywhere).
        height: ``H``, the number of weights (used when ``weights`` is ``None``).

    Example:
        >>> from irl.metalevel import meta_params
        >>> meta_params(2.0, 0.5).tolist()
        [2.0, 0.5, 1.0, 1.0, 1.0]
    """
    w = np.ones(height) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    phi = np.concatenate([[float(cost), float(depth_cost)], w])
    if not np.all(np.isfinite(phi)):
        raise MetaLevelError(f"meta-level parameters (cost, depth_cost, weights) must be finite: got {phi.tolist()}")
    return phi


class MetaMDP(abc.ABC):
    """Interface of a meta-level decision problem (beliefs, computations, stop, solvers, simulation).

    Subclasses set ``fee`` (the task's own price of a computation) and
    implement the abstract methods. The human models never look inside a
    belief: they ask the problem which actions are possible, what stopping is
    worth and what a solver says the computations are worth.
    """

    fee: float = 0.0

    # ---------------------------------------------------------------- sizes
    @property
    @abc.abstractmethod
    def n_actions(self) -> int:
        """Number of meta-level actions: stop plus the computations."""

    @property
    @abc.abstractmethod
    def n_weights(self) -> int:
        """Number of utility weights ``w`` in ``phi``."""

    @property
    def n_params(self) -> int:
        """Length of ``phi = (cost, depth_cost, w_1..w_K)``."""
        return 2 + self.n_weights

    def params(self, cost: float = 1.0, depth_cost: float = 0.0, weights: Any = None) -> np.ndarray:
        """``phi`` for this problem (see :func:`meta_params`)."""
        phi = meta_params(cost, depth_cost, weights, height=self.n_weights)
        if phi.size != self.n_params:
            raise MetaLevelError(f"weights must give one utility per {self.weight_unit} ({self.n_weights}): "
                                 f"got {phi.size - 2}")
        return phi

    def check_phi(self, phi: Any) -> np.ndarray:
        """``phi`` as a float array of the right length, or a :class:`MetaLevelError`."""
        phi = np.asarray(phi, dtype=np.float64).ravel()
        if phi.size != self.n_params or not np.all(np.isfinite(phi)):
            raise MetaLevelError(f"phi must be {self.n_params} finite numbers (cost, depth_cost, w_1.."
                                 f"w_{self.n_weights}): got {phi.tolist()}")
        return phi

    @abc.abstractmethod
    def signature(self) -> str:
        """A short hash of everything the solvers depend on (a solver is valid for problems with its signature)."""

    # ---------------------------------------------------------------- beliefs and actions
    @abc.abstractmethod
    def initial_beliefs(self, n: int = 1) -> np.ndarray:
        """``(n, belief_size)`` beliefs before any computation."""

    @abc.abstractmethod
    def check_beliefs(self, beliefs: Any) -> np.ndarray:
        """Validate beliefs ``(D, belief_size)`` (one belief may be 1-D); returns a float array."""

    @abc.abstractmethod
    def available(self, beliefs: Any) -> np.ndarray:
        """``(D, n_actions)`` mask of possible actions (stop is always possible)."""

    @abc.abstractmethod
    def terminal_value(self, beliefs: Any, weights: Any = None) -> np.ndarray:
        """``(D,)`` value of stopping now under utility weights ``w``."""

    @abc.abstractmethod
    def stop_planes(self, beliefs: Any, weights: Any = None) -> np.ndarray:
        """``(D, n_params)`` plane of the stop action (``plane @ phi`` is its value)."""

    @abc.abstractmethod
    def action_depth(self) -> np.ndarray:
        """``(n_actions,)`` depth of every computation (multiplies ``depth_cost``; 0 for stop)."""

    def click_cost(self, phi: Any) -> np.ndarray:
        """``(n_actions,)`` cost of every computation under ``phi`` (0 for the stop action)."""
        phi = np.asarray(phi, dtype=np.float64)
        c = phi[0] + phi[1] * self.action_depth().astype(np.float64)
        c[STOP] = 0.0
        return c

    # ---------------------------------------------------------------- solvers
    @abc.abstractmethod
    def solver(self, kind: Any = "exact") -> "MetaSolver":
        """A solver of this problem by name (``"exact"``, ``"myopic"``, ...) or the solver object given."""

    def q_values(self, beliefs: Any, cost: float = 1.0, depth_cost: float = 0.0, weights: Any = None, *,
                 solver: Any = "exact") -> np.ndarray:
        """``(D, n_actions)`` meta-level Q-values (``-inf`` for impossible actions)."""
        return self.solver(solver).q_values(beliefs, self.params(cost, depth_cost, weights))

    # ---------------------------------------------------------------- object-level utilities
    @abc.abstractmethod
    def weight_states(self) -> list[np.ndarray]:
        """For each weight ``w_k``, the object-level states whose reward is that utility (``values="reward"``)."""

    def weights_from_reward(self, reward: Any) -> Any:
        """Utility weights ``(..., n_weights)`` read from a reward ``(..., S, A)`` (torch, differentiable).

        Raises:
            MetaLevelError: the reward depends on the action, or differs between
                the states of one weight.
        """
        import torch

        r = reward.mean(-1)
        rd = r.detach()
        if (reward.detach() - rd[..., None]).abs().max() > 1e-9 * (1 + float(rd.abs().max())):
            raise MetaLevelError("values='reward' reads the utility of an outcome at each state: the reward must "
                                 "not depend on the action")
        out = []
        for k, states in enumerate(self.weight_states(), 1):
            rk = r[..., torch.from_numpy(np.asarray(states, np.int64))]
            wk = rk.mean(-1)
            rkd, wkd = rk.detach(), wk.detach()
            if (rkd - wkd[..., None]).abs().max() > 1e-9 * (1 + float(wkd.abs().max())):
                raise MetaLevelError(f"values='reward' needs the same utility {self.weight_rule}: "
                                     f"{self.weight_label(k)} have {rkd.tolist()}; {self.weight_hint}")
            out.append(wk)
        return torch.stack(out, -1)

    #: What one utility weight belongs to, for messages ("depth" for Mouselab trees).
    weight_unit: str = "weight"
    #: The rule a reward must follow to give the weights, for messages.
    weight_rule: str = "at every state of a weight"
    #: How to build a reward that follows the rule, for messages.
    weight_hint: str = "use a reward model with one parameter per weight"

    def weight_label(self, k: int) -> str:
        """What weight ``k`` (1-based) is, for messages."""
        return f"the states of weight {k}"

    # ---------------------------------------------------------------- simulation and choices
    @abc.abstractmethod
    def sample_instances(self, n: int, rng: Any = None) -> np.ndarray:
        """``(n, ...)`` hidden truths of ``n`` problem instances (what computations reveal about)."""

    @abc.abstractmethod
    def check_instances(self, instances: Any, n: int) -> np.ndarray:
        """Validate ``n`` given instances; returns them as a float array."""

    @abc.abstractmethod
    def compute(self, beliefs: np.ndarray, actions: np.ndarray, instances: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Perform computations: ``(new beliefs (D, ...), outcomes (D,))`` for ``actions >= 1`` on ``instances``."""

    @abc.abstractmethod
    def choose(self, beliefs: Any, weights: Any = None, rng: Any = None) -> np.ndarray:
        """``(D,)`` the object-level choice the stop action makes (ties at random when ``rng`` is given)."""

    @abc.abstractmethod
    def choice_values(self, instances: np.ndarray, choices: np.ndarray, weights: Any = None) -> np.ndarray:
        """``(D,)`` the value of each choice on its (fully known) instance under weights ``w``."""

    @abc.abstractmethod
    def best_choices(self, instances: np.ndarray, weights: Any = None) -> np.ndarray:
        """``(D,)`` the choice with full information (the best one on each instance)."""

    #: Computations a person with full information would have needed (for reports; ``nan`` if unbounded).
    full_information_computations: float = float("nan")

    @abc.abstractmethod
    def make_traces(self, instances: np.ndarray, computations: list[list[int]], outcomes: list[list[float]],
                    choices: np.ndarray, *, participant: Any, block: Any) -> Any:
        """Package simulated deliberation as this problem's evidence type (e.g. :class:`demos.DeliberationTraces`)."""

    @abc.abstractmethod
    def traces_instances(self, traces: Any) -> np.ndarray:
        """``(N, ...)`` the instances of recorded traces (``NaN`` where unknown)."""

    @abc.abstractmethod
    def traces_choices(self, traces: Any) -> np.ndarray:
        """``(N,)`` the recorded choices as indices of :meth:`choice_values` (``-1`` where not recorded)."""


class MetaSolver(abc.ABC):
    """Interface of meta-level solvers: Q-values and their planes at beliefs, for parameters ``phi``.

    Subclasses implement :meth:`q_planes`; ``Q = planes @ phi`` and the
    gradient of ``Q`` with respect to ``phi`` is the plane itself.
    """

    exact: bool = False

    def __init__(self, meta: MetaMDP) -> None:
        self.meta = meta

    @abc.abstractmethod
    def q_planes(self, beliefs: Any, phi: Any) -> np.ndarray:
        """``(D, n_actions, P)`` planes of every action at every belief (zeros for impossible actions)."""

    def q_values(self, beliefs: Any, phi: Any) -> np.ndarray:
        """``(D, n_actions)`` Q-values, ``-inf`` where an action is impossible."""
        b = self.meta.check_beliefs(beliefs)
        phi = self._phi(phi)
        q = self.q_planes(b, phi) @ phi
        return np.where(self.meta.available(b), q, -np.inf)

    def _phi(self, phi: Any) -> np.ndarray:
        return self.meta.check_phi(phi)

    def _click_planes(self, depth: np.ndarray) -> np.ndarray:
        """The immediate part of a computation's plane: ``(-1, -depth, 0, ...)``."""
        out = np.zeros((depth.size, self.meta.n_params))
        out[:, 0] = -1.0
        out[:, 1] = -depth
        return out


@dataclass(frozen=True, eq=False)
class MetaEnv(TabularMDP):
    """An environment whose deliberation is modelled: the object-level MDP and its meta-level problem.

    Attributes:
        meta: the :class:`MetaMDP` (beliefs, computations, solvers).
    """

    meta: Any = None

    def replace(self, **changes: Any) -> "MetaEnv":
        """A copy with some fields changed (the meta-level problem is kept)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "_cache"}
        fields.update(changes)
        return type(self)(**fields)
