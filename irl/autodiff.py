"""Differentiable Bellman operators for torch, with closed-form backward passes.

:func:`q_values` returns (soft or hard) Q-values as a torch tensor. Its backward
pass is not autograd through hundreds of unrolled sweeps but the adjoint of the
Bellman recursion, :func:`irl.planning.bellman_q_vjp`: one forward occupancy
pass. For Boltzmann demonstrations this is the exact gradient of the causal
log-likelihood, the maximum-entropy IRL gradient (for deterministic dynamics
"empirical minus expected feature counts"), and every human model built on
:func:`q_values` inherits it, so solvers have a single autograd code path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from irl import planning
from irl.mdp import MDPValidationError, TabularMDP

__all__ = ["q_values", "as_reward_tensor"]


def as_reward_tensor(reward: Any, mdp: TabularMDP, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A reward as a torch tensor ``(..., S, A)`` (state rewards broadcast), keeping its graph.

    Args:
        reward: ``(S,)``, ``(S, A)`` or ``(B, S, A)``, numpy or torch.
        mdp: the MDP whose sizes are checked.

    Raises:
        MDPValidationError: the shape does not fit the MDP, or entries are not finite.
    """
    # np.array copies: a read-only array (e.g. mdp.true_reward) would make torch warn
    r = reward if isinstance(reward, torch.Tensor) else torch.from_numpy(np.array(reward, dtype=np.float64))
    if not r.is_floating_point():
        r = r.to(dtype)
    S, A = mdp.n_states, mdp.n_actions
    if r.ndim == 1 and r.shape[0] == S:
        r = r[:, None].expand(S, A)
    if r.ndim < 2 or tuple(r.shape[-2:]) != (S, A):
        raise MDPValidationError(f"reward must have shape (S,) = ({S},) or (..., S, A) = (..., {S}, {A}): "
                                 f"got {tuple(r.shape)}")
    if not torch.isfinite(r.detach()).all():
        raise MDPValidationError("reward must be finite: got NaN or inf entries")
    return r


class _BellmanQ(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, reward: torch.Tensor, mdp: TabularMDP, soft: bool) -> torch.Tensor:  # type: ignore[override]
        lead = reward.shape[:-2]
        r = reward.detach().to(torch.float64).reshape(-1, mdp.n_states, mdp.n_actions).cpu().numpy()
        q, pi = planning.bellman_q(mdp, r, soft=soft)
        ctx.mdp, ctx.pi, ctx.lead, ctx.dtype = mdp, pi, lead, reward.dtype
        out = torch.from_numpy(np.ascontiguousarray(q))
        return out.reshape(*lead, *out.shape[1:]).to(reward.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, q_bar: torch.Tensor) -> tuple:  # type: ignore[override]
        qb = q_bar.detach().to(torch.float64).reshape(-1, *q_bar.shape[len(ctx.lead):]).cpu().numpy()
        rb = planning.bellman_q_vjp(ctx.mdp, ctx.pi, qb)
        out = torch.from_numpy(np.ascontiguousarray(rb))
        return out.reshape(*ctx.lead, *out.shape[1:]).to(ctx.dtype), None, None


def q_values(mdp: TabularMDP, reward: Any, *, soft: bool = True) -> torch.Tensor:
    """Differentiable Q-values: ``Q_t(s,a) = r(s,a) + gamma E[V_{t+1}(s')]``.

    ``V = logsumexp_a Q`` (soft, temperature 1) or ``max_a Q`` (hard, whose
    gradient splits evenly among tied maximisers).

    Args:
        mdp: the MDP.
        reward: ``(S,)``, ``(S, A)`` or ``(..., S, A)`` tensor (gradients flow to it).
        soft: soft or hard Bellman backup.

    Returns:
        ``(..., H, S, A)`` for a finite horizon ``H``, ``(..., S, A)`` otherwise.

    Example:
        >>> import torch, irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> r = torch.zeros(env.n_states, requires_grad=True)
        >>> q = irl.autodiff.q_values(env, r)
        >>> torch.log_softmax(q, -1)[0, 0, 0].backward(); r.grad.shape
        torch.Size([25])

    References:
        Ziebart, Bagnell & Dey (2010); the adjoint is the occupancy recursion of
        Ziebart et al. (2008), "Maximum Entropy Inverse Reinforcement Learning".
    """
    r = as_reward_tensor(reward, mdp)
    return _BellmanQ.apply(r, mdp, bool(soft))
