"""A gymnasium wrapper that pays an agent the inferred reward instead of the environment's."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

__all__ = ["InferredRewardWrapper"]

_MODES = ("point", "mean", "sample")

try:
    import gymnasium
except ImportError:  # pragma: no cover - the extra is installed in the test environment
    raise ImportError("InferredRewardWrapper needs gymnasium: pip install 'pluggable-irl[gymnasium]' "
                      "(or the stable-baselines3 extra)") from None


def _as_array(r: Any) -> np.ndarray:
    if hasattr(r, "detach"):
        r = r.detach().cpu().numpy()
    r = np.asarray(r, dtype=np.float64)
    if r.ndim not in (1, 2, 3):
        raise ValueError(f"a reward must be r(s) (S,), r(s, a) (S, A) or r(s, a, s') (S, A, S): got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("the inferred reward must be finite: got NaN or inf entries")
    return r


class InferredRewardWrapper(gymnasium.Wrapper):
    """A gymnasium ``Wrapper`` whose ``step`` returns the inferred reward.

    The reward for a step from state ``s`` with action ``a`` to ``s'`` is ``r[s]``,
    ``r[s, a]`` or ``r[s, a, s']`` depending on the reward's shape (the library's
    convention: a state reward is earned in the state where one acts). The
    environment's own reward is kept in ``info["original_reward"]``; observations,
    termination and truncation pass through unchanged.

    Args:
        env: a gymnasium environment with ``Discrete`` observations (or give ``state``).
        reward: an array ``(S,)``, ``(S, A)`` or ``(S, A, S)``; a
            :class:`irl.RewardEstimate`; or an :class:`irl.Posterior`.
        mode: ``"point"`` (an array or estimate), ``"mean"`` (a posterior's mean reward;
            the default for posteriors) or ``"sample"`` (a new posterior draw at every
            ``reset``, so that the agent sees the reward's uncertainty; its index is
            ``info["posterior_draw"]``).
        reward_model: maps ``theta`` to a reward (for ``"sample"`` when the posterior
            was loaded from a file; default: the fit's).
        seed: seed of the draws in ``"sample"`` mode.
        state: ``observation -> state id`` for non-``Discrete`` observations.

    Raises:
        ValueError: an unknown mode, a shape that does not match the spaces, or
            ``"sample"`` without a posterior.

    Example:
        >>> import gymnasium as gym, numpy as np
        >>> from irl.adapters import InferredRewardWrapper
        >>> env = InferredRewardWrapper(gym.make("FrozenLake-v1", is_slippery=False), np.arange(16.0))
        >>> obs, info = env.reset(seed=0)
        >>> obs, r, terminated, truncated, info = env.step(2)  # right, from state 0
        >>> obs, r, info["original_reward"]
        (1, 0.0, 0.0)
    """

    def __init__(self, env: Any, reward: Any, *, mode: str | None = None, reward_model: Any = None,
                 seed: int | None = None, state: Callable[[Any], int] | None = None) -> None:
        super().__init__(env)
        is_post = hasattr(reward, "theta") and hasattr(reward, "n_chains")
        mode = mode or ("mean" if is_post else "point")
        if mode not in _MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {list(_MODES)}")
        if mode == "sample" and not is_post:
            raise ValueError("mode='sample' draws from a posterior: got a point reward (use mode='point')")
        if mode == "point" and is_post:
            raise ValueError("a posterior gives mode='mean' or mode='sample', not 'point'")
        self.mode = mode
        self._state = state
        self._rng = np.random.default_rng(seed)
        self._posterior = reward if is_post else None
        self._reward_model = reward_model
        if mode == "sample":
            joint = getattr(reward, "joint", None)
            if self._reward_model is None and joint is not None:
                self._reward_model = joint.reward_model
            if self._reward_model is None:
                raise ValueError("mode='sample' of a loaded posterior needs reward_model= (the fitted objects "
                                 "are not stored in the file)")
            self._theta = reward.theta.reshape(-1, reward.theta.shape[-1])
            self.reward = self._draw()[1]
        else:
            self.reward = _as_array(reward.reward if hasattr(reward, "reward") else reward)
        self._check(self.reward)
        self._s: int | None = None
        self._draw_index: int | None = None

    def _draw(self) -> tuple[int, np.ndarray]:
        import torch

        k = int(self._rng.integers(self._theta.shape[0]))
        with torch.no_grad():
            r = self._reward_model(torch.as_tensor(self._theta[k]))
        return k, _as_array(r)

    def _check(self, r: np.ndarray) -> None:
        spaces = gymnasium.spaces
        obs, act = self.env.observation_space, self.env.action_space
        if self._state is None and not isinstance(obs, spaces.Discrete):
            raise ValueError(f"the observation space must be Discrete (state ids): got {obs}; give "
                             f"state=lambda obs: ... to map observations to state ids")
        if isinstance(obs, spaces.Discrete) and r.shape[0] != obs.n:
            raise ValueError(f"the reward has {r.shape[0]} states but the environment's observation space has "
                             f"{obs.n}")
        if r.ndim >= 2 and isinstance(act, spaces.Discrete) and r.shape[1] != act.n:
            raise ValueError(f"the reward has {r.shape[1]} actions but the environment's action space has "
                             f"{act.n}")
        if r.ndim == 3 and r.shape[2] != r.shape[0]:
            raise ValueError(f"r(s, a, s') must have shape (S, A, S): got {r.shape}")

    def _id(self, obs: Any) -> int:
        s = int(obs) if self._state is None else int(self._state(obs))
        if not 0 <= s < self.reward.shape[0]:
            raise ValueError(f"state id {s} is out of range for a reward over {self.reward.shape[0]} states")
        return s

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        if self.mode == "sample":
            self._draw_index, self.reward = self._draw()
            info = dict(info, posterior_draw=self._draw_index)
        self._s = self._id(obs)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if self._s is None:
            raise RuntimeError("call reset() before step()")
        obs, original, terminated, truncated, info = self.env.step(action)
        s, a, s2 = self._s, int(action), self._id(obs)
        r = self.reward
        value = r[s] if r.ndim == 1 else r[s, a] if r.ndim == 2 else r[s, a, s2]
        self._s = s2
        info = dict(info, original_reward=original)
        if self._draw_index is not None:
            info["posterior_draw"] = self._draw_index
        return obs, float(value), terminated, truncated, info
