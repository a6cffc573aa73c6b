"""Time-inconsistent humans: hyperbolic discounting, naive or sophisticated.

A hyperbolic discounter weighs a reward ``d`` steps away by ``1 / (1 + k d)``.
Unlike exponential discounting this changes the *ranking* of two future rewards
as they come closer, so the plan made now is not the plan followed later.
Following Evans, Stuhlmüller & Goodman (2016), expected utilities are indexed
by a subjective *delay* ``d`` (how far in the future, from the deciding self's
point of view, the step lies) besides the objective time ``t``::

    EU_t(s, a, d) = r(s, a) / (1 + k d)
                    + gamma * E_{s'} [ sum_a' C_{t+1}(a' | s'; d') EU_{t+1}(s', a', d + 1) ]
    C_t(a | s; d)  = softmax_a( beta * EU_t(s, a, d) )

where the future self's choice ``C`` is simulated at delay ``d' = d + 1`` by a
*naive* agent (it believes its future selves share today's preferences) and at
``d' = 0`` by a *sophisticated* one (it knows they will re-evaluate with no
delay, and plans around that). The human actually acts by ``C_t(a | s; 0)``.

The recursion runs backwards over time with every delay at once: each step is
one sparse matrix product for all states, actions, delays and reward
hypotheses, in torch, so gradients w.r.t. the reward, ``k`` and ``beta`` come
from autograd.

References:
    Evans, Stuhlmüller & Goodman (2016), "Learning the preferences of ignorant,
    inconsistent agents", AAAI. Evans, Stuhlmüller, Salvatier & Filan,
    "Modeling Agents with Probabilistic Programs", agentmodels.org, chapter
    "Time inconsistency". Ainslie (2001), "Breakdown of Will".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from human_models.base import BaseHumanModel, HumanModelError, Nesting, positive_param
from human_models.biased import _bound_number, _discrete_only, _is_prior, nonnegative_param
from irl.autodiff import as_reward_tensor
from irl.mdp import TabularMDP

__all__ = ["HyperbolicDiscounter", "hyperbolic_expected_utilities", "expected_next"]

KINDS = ("naive", "sophisticated")


class _ExpectNext(torch.autograd.Function):
    """``E[v(s') | s, a]`` over the MDP's continuation (terminal rows are zero), with its adjoint."""

    @staticmethod
    def forward(ctx: Any, v: torch.Tensor, mdp: TabularMDP) -> torch.Tensor:  # type: ignore[override]
        S, A = mdp.n_states, mdp.n_actions
        lead = v.shape[:-1]
        x = v.detach().to(torch.float64).reshape(-1, S).cpu().numpy()
        y = np.asarray(mdp.continuation @ np.ascontiguousarray(x.T))  # (S*A, N)
        ctx.mdp, ctx.lead, ctx.dtype = mdp, lead, v.dtype
        return torch.from_numpy(np.ascontiguousarray(y.T)).reshape(*lead, S, A).to(v.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple:  # type: ignore[override]
        mdp = ctx.mdp
        S, A = mdp.n_states, mdp.n_actions
        gg = g.detach().to(torch.float64).reshape(-1, S * A).cpu().numpy()
        x = np.asarray(mdp.continuation_T @ np.ascontiguousarray(gg.T))  # (S, N)
        return torch.from_numpy(np.ascontiguousarray(x.T)).reshape(*ctx.lead, S).to(ctx.dtype), None


def expected_next(mdp: TabularMDP, v: torch.Tensor) -> torch.Tensor:
    """``E[v(s') | s, a]`` for values ``v (..., S)``: ``(..., S, A)``, zero after terminal states.

    One sparse product (no dense ``(S, A, S)`` array); differentiable in ``v``.
    """
    return _ExpectNext.apply(v, mdp)


def _batch_shape(x: Any) -> tuple[int, ...]:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else ()


def hyperbolic_expected_utilities(mdp: TabularMDP, reward: Any, *, k: Any, beta: Any, kind: str = "naive",
                                  steps: int | None = None) -> torch.Tensor:
    """Delay-0 expected utilities ``EU_t(s, a, 0)`` of a hyperbolic discounter, for every time step.

    Args:
        mdp: the MDP (its discount multiplies the hyperbolic one: total weight
            ``gamma^d / (1 + k d)`` at delay ``d``).
        reward: ``(..., S, A)`` or ``(S,)``.
        k: discount strength ``>= 0`` (number or tensor ``(B,)`` batched like the reward).
        beta: rationality ``> 0`` of the simulated future selves (number or ``(B,)``).
        kind: ``"naive"`` or ``"sophisticated"``.
        steps: number of time steps ``T`` (default ``mdp.horizon``).

    Returns:
        ``(..., T, S, A)``: ``EU_t(s, a, 0)`` for ``t = 0 .. T-1``; the human acts
        by ``softmax(beta * EU_t(s, ., 0))``.

    Raises:
        HumanModelError: unknown ``kind`` or no number of steps.

    Example:
        >>> import irl
        >>> from human_models.hyperbolic import hyperbolic_expected_utilities
        >>> env = irl.envs.make("gridworld-5x5")
        >>> eu = hyperbolic_expected_utilities(env, env.true_reward, k=1.0, beta=5.0)
        >>> tuple(eu.shape) == (env.horizon, env.n_states, env.n_actions)
        True
    """
    if kind not in KINDS:
        raise HumanModelError(f"kind must be one of {KINDS}: got {kind!r}")
    T = mdp.horizon if steps is None else int(steps)
    if T is None or T < 1:
        raise HumanModelError(f"hyperbolic planning needs a number of steps >= 1: got {T!r}")
    r = as_reward_tensor(reward, mdp)
    dt = r.dtype
    kt = torch.as_tensor(k, dtype=dt)
    bt = torch.as_tensor(beta, dtype=dt)
    d = torch.arange(T, dtype=dt)
    # discount weights (..., T, 1, 1) and rationality (..., 1, 1, 1), batched like k and beta
    disc = (1.0 / (1.0 + kt[..., None] * d))[..., None, None]
    b = bt.reshape(*bt.shape, 1, 1, 1)
    rr = r.unsqueeze(-3)  # (..., 1, S, A)
    gamma = mdp.discount
    naive = kind == "naive"
    out = []
    w_next = None  # W_{t+1}(s, d) for d = 0 .. t+1: (..., t+2, S)
    for t in range(T - 1, -1, -1):
        eu = disc[..., : t + 1, :, :] * rr  # delays 0 .. t: (..., t+1, S, A)
        if w_next is not None:
            eu = eu + gamma * expected_next(mdp, w_next[..., 1:, :])
        out.append(eu[..., 0, :, :])
        chooser = eu if naive else eu[..., :1, :, :]
        w_next = (torch.softmax(b * chooser, dim=-1) * eu).sum(-1)
    return torch.stack(out[::-1], dim=-3)


def _default_steps(mdp: TabularMDP, max_delay: int | None) -> int:
    if max_delay is not None:
        return int(max_delay)
    if mdp.discount < 1.0:
        # beyond L steps the weight gamma^L of every reward is below 1e-6
        return int(min(2000, max(1, math.ceil(math.log(1e-6) / math.log(max(mdp.discount, 1e-12))))))
    return 100


class HyperbolicDiscounter(BaseHumanModel):
    """A time-inconsistent human who discounts a reward ``d`` steps away by ``1 / (1 + k d)``.

    See the module docstring for the delay-indexed recursion. The *naive*
    human plans as if its future selves will keep today's preferences (so a
    reward that is small but immediate when reached can still lure it off its
    plan); the *sophisticated* human predicts that its future selves will give
    in to such temptations and plans around them (e.g. a detour that avoids
    passing the temptation). ``k = 0`` is a time-consistent softmax agent that
    values plans by their expected reward under its own softmax choices (as in
    agentmodels.org; this differs from :class:`~human_models.Boltzmann`, whose
    values are soft maxima). The MDP's discount ``gamma`` multiplies the
    hyperbolic weight.

    Finite horizon ``H``: a time-indexed policy ``(H, S, A)`` (the plan depends on
    the time left). Infinite horizon: the stationary limit, computed as the
    first step of a ``max_delay``-step problem (default: enough steps that
    ``gamma^L < 1e-6``; 100 when ``gamma = 1``).

    Args:
        k: discount strength ``>= 0``, or a prior on ``[0, inf)`` (continuous priors
            are optimised/sampled with gradients; a ``priors.Categorical`` is summed out).
        kind: ``"naive"`` or ``"sophisticated"``, or a ``priors.Categorical`` over them.
        beta: rationality ``> 0``, or a prior on positive numbers.
        max_delay: planning steps for infinite-horizon MDPs.

    Raises:
        HumanModelError: negative ``k``, unknown ``kind``, bad ``beta`` or ``max_delay``.

    Example:
        >>> import irl, human_models as hm
        >>> env = irl.envs.make("restaurant-choice")
        >>> human = hm.HyperbolicDiscounter(k=1.0, kind="naive", beta=500.0)
        >>> data = human.sample(env, irl.envs.true_reward(env), 1, rng=0)
        >>> env.state_names[int(data.final_states[0])]
        'Donut N (after)'

    References:
        Evans, Stuhlmüller & Goodman (2016), "Learning the preferences of ignorant,
        inconsistent agents", AAAI. Laibson (1997), "Golden eggs and hyperbolic
        discounting", QJE.
    """

    name = "hyperbolic"
    has_closed_form_gradient = False

    def __init__(self, k: Any = 1.0, kind: Any = "naive", beta: Any = 1.0, *, max_delay: int | None = None) -> None:
        self.k = nonnegative_param("k", k)
        self.kind = self._check_kind("kind", kind)
        self.beta = positive_param("beta", beta)
        if max_delay is not None and (isinstance(max_delay, bool) or int(max_delay) != max_delay or max_delay < 1):
            raise HumanModelError(f"max_delay must be a positive integer or None: got {max_delay!r}")
        self.max_delay = None if max_delay is None else int(max_delay)

    @staticmethod
    def _check_kind(name: str, value: Any) -> Any:
        if _is_prior(value):
            return _discrete_only(name, value, f"one of {KINDS}", lambda v: v in KINDS)
        if value not in KINDS:
            raise HumanModelError(f"{name} must be one of {KINDS}: got {value!r}")
        return value

    @property
    def params(self) -> dict[str, Any]:
        return {"k": self.k, "kind": self.kind, "beta": self.beta}

    def nested_models(self, mdp: TabularMDP) -> tuple[Nesting, ...]:
        """The time-consistent softmax agent, ``k = 0`` (naive and sophisticated agree there).

        It is not :class:`~human_models.Boltzmann` (values are expected rewards under
        softmax choices, not soft maxima), so the nested model is this class at ``k = 0``.
        """
        zero = HyperbolicDiscounter(k=0.0, kind=self.kind, beta=self.beta, max_delay=self.max_delay)
        return (Nesting(zero, {"k": 0.0}),)

    def expected_utilities(self, mdp: TabularMDP, reward: Any) -> torch.Tensor:
        """``EU_t(s, a, 0)``: ``(..., H, S, A)`` (finite horizon) or ``(..., S, A)`` (stationary)."""
        r = as_reward_tensor(reward, mdp)
        k = _bound_number(self, "k", nonnegative_param)
        beta = _bound_number(self, "beta", positive_param)
        kind = _bound_number(self, "kind", self._check_kind)
        if mdp.horizon is not None:
            return hyperbolic_expected_utilities(mdp, r, k=k, beta=beta, kind=kind)
        eu = hyperbolic_expected_utilities(mdp, r, k=k, beta=beta, kind=kind,
                                           steps=_default_steps(mdp, self.max_delay))
        return eu[..., 0, :, :]

    def action_log_probs(self, mdp: TabularMDP, reward: Any) -> torch.Tensor:
        eu = self.expected_utilities(mdp, reward)
        beta = torch.as_tensor(_bound_number(self, "beta", positive_param), dtype=eu.dtype)
        beta = beta.reshape(*beta.shape, *([1] * (eu.ndim - beta.ndim))) if beta.ndim else beta
        return torch.log_softmax(beta * eu, dim=-1)

    def __repr__(self) -> str:
        extra = "" if self.max_delay is None else f", max_delay={self.max_delay}"
        return f"HyperbolicDiscounter(k={self.k!r}, kind={self.kind!r}, beta={self.beta!r}{extra})"
