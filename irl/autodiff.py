"""Differentiable Bellman operators for torch, with closed-form backward passes.

:func:`q_values` returns (soft or hard) Q-values as a torch tensor. Its backward
pass is not autograd through hundreds of unrolled sweeps but the adjoint of the
Bellman recursion, :func:`irl.planning.bellman_q_vjp`: one forward occupancy
pass. For Boltzmann demonstrations this is the exact gradient of the causal
log-likelihood, the maximum-entropy IRL gradient (for deterministic dynamics
"empirical minus expected feature counts"), and every human model built on
:func:`q_values` inherits it, so solvers have a single autograd code path.
:func:`soft_log_policy` returns the soft-optimal log-policy the same way (the
planner computes ``Q - V`` in its own sweep; the backward pass is one flow).

Tensors cross to numpy and back without copies where the layouts allow
(``torch.from_numpy`` of the planner's strided views); a ``dtype`` option runs
the planner in float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from irl import planning
from irl.mdp import MDPValidationError, TabularMDP

__all__ = ["q_values", "soft_log_policy", "as_reward_tensor"]


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


def _numpy_reward(reward: torch.Tensor, mdp: TabularMDP, dtype: Any) -> tuple[np.ndarray, np.dtype]:
    """``reward (..., S, A)`` -> internal ``(A, S, B)`` numpy array in the computation dtype."""
    dt = planning._resolve_dtype(dtype)
    r = reward.detach().reshape(-1, mdp.n_states, mdp.n_actions).cpu().numpy()
    return planning._batch_last(mdp, r, dt)[0], dt


def _public_tensor(x: np.ndarray, lead: tuple, dtype: torch.dtype) -> torch.Tensor:
    """Internal ``(..., A, S, B)`` -> tensor ``(*lead, ..., S, A)``: a strided view, no copy
    (unless ``dtype`` differs)."""
    out = torch.from_numpy(planning._to_public(x, True))
    return out.reshape(*lead, *out.shape[1:]).to(dtype)


def _numpy_grad(grad: torch.Tensor, lead: tuple, dt: np.dtype) -> np.ndarray:
    """Upstream gradient ``(*lead, ..., S, A)`` -> internal view ``(..., A, S, B)`` in dtype ``dt``."""
    g = grad.detach().reshape(-1, *grad.shape[len(lead):])
    tdt = torch.float64 if dt == np.float64 else torch.float32
    return planning._internal_view(g.to(tdt).cpu().numpy())


class _BellmanQ(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, reward: torch.Tensor, mdp: TabularMDP, soft: bool,  # type: ignore[override]
                dtype: Any) -> torch.Tensor:
        r, dt = _numpy_reward(reward, mdp, dtype)
        q, _, pi = planning._q_values(mdp, r, soft)
        ctx.mdp, ctx.pi, ctx.lead, ctx.dtype, ctx.dt = mdp, pi, reward.shape[:-2], reward.dtype, dt
        return _public_tensor(q, ctx.lead, reward.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, q_bar: torch.Tensor) -> tuple:  # type: ignore[override]
        rb = planning._vjp_internal(ctx.mdp, ctx.pi, _numpy_grad(q_bar, ctx.lead, ctx.dt))
        return _public_tensor(rb, ctx.lead, ctx.dtype), None, None, None


class _SoftLogPolicy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, reward: torch.Tensor, mdp: TabularMDP, dtype: Any) -> torch.Tensor:  # type: ignore[override]
        r, dt = _numpy_reward(reward, mdp, dtype)
        log_pi, _, pi = planning._q_values(mdp, r, True, log_policy=True)
        ctx.mdp, ctx.pi, ctx.lead, ctx.dtype, ctx.dt = mdp, pi, reward.shape[:-2], reward.dtype, dt
        return _public_tensor(log_pi, ctx.lead, reward.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g_bar: torch.Tensor) -> tuple:  # type: ignore[override]
        rb = planning._vjp_internal(ctx.mdp, ctx.pi, _numpy_grad(g_bar, ctx.lead, ctx.dt), log_policy=True)
        return _public_tensor(rb, ctx.lead, ctx.dtype), None, None


def q_values(mdp: TabularMDP, reward: Any, *, soft: bool = True, dtype: Any = None) -> torch.Tensor:
    """Differentiable Q-values: ``Q_t(s,a) = r(s,a) + gamma E[V_{t+1}(s')]``.

    ``V = logsumexp_a Q`` (soft, temperature 1) or ``max_a Q`` (hard, whose
    gradient splits evenly among tied maximisers).

    Args:
        mdp: the MDP.
        reward: ``(S,)``, ``(S, A)`` or ``(..., S, A)`` tensor (gradients flow to it).
        soft: soft or hard Bellman backup.
        dtype: precision of the computation: ``None`` or ``torch.float64`` (default),
            or ``torch.float32`` (faster, about ``1e-6`` relative error). The result
            has the reward's dtype either way.

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
    return _BellmanQ.apply(r, mdp, bool(soft), dtype)


def soft_log_policy(mdp: TabularMDP, reward: Any, *, dtype: Any = None) -> torch.Tensor:
    """Differentiable log-probabilities of the soft-optimal policy, ``log pi_t(a|s) = Q_t(s,a) - V_t(s)``.

    The same numbers as ``torch.log_softmax(q_values(mdp, reward), -1)``, computed
    inside the planner's backward sweep instead of by a second pass (and a second
    backward pass) in torch over the ``(..., H, S, A)`` tensor. Its backward pass is
    :func:`irl.planning.soft_log_policy_vjp`: one forward flow. The Boltzmann human
    model is built on it.

    Args:
        mdp: the MDP.
        reward: ``(S,)``, ``(S, A)`` or ``(..., S, A)`` tensor (gradients flow to it).
        dtype: precision of the computation: ``None`` or ``torch.float64`` (default),
            or ``torch.float32``. The result has the reward's dtype either way.

    Returns:
        ``(..., H, S, A)`` for a finite horizon ``H``, ``(..., S, A)`` otherwise.

    Example:
        >>> import torch, irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> r = torch.tensor(env.true_reward, requires_grad=True)
        >>> log_pi = irl.autodiff.soft_log_policy(env, r)
        >>> torch.allclose(log_pi, torch.log_softmax(irl.autodiff.q_values(env, r), -1))
        True
    """
    r = as_reward_tensor(reward, mdp)
    return _SoftLogPolicy.apply(r, mdp, dtype)
