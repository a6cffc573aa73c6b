"""Trajectories from and to other libraries: imitation and Minari.

Both libraries' own types are used (imitation's ``Trajectory`` /
``TrajectoryWithRew``, Minari's ``MinariDataset`` and ``EpisodeBuffer``); they are
imported only when one of these functions is called, never by the core.

* imitation marks an episode ``terminal`` when it ended in a terminal state; an
  episode that is not terminal was cut off or is a fragment. :func:`from_imitation`
  maps ``terminal`` to ``terminated`` and leaves ``truncated`` false (imitation does
  not say why a non-terminal episode stopped); :func:`to_imitation` maps back.
* Minari stores ``terminations`` and ``truncations`` per step; they are kept apart:
  an episode is terminated (truncated) when its last step is.

Only discrete observations and actions become state and action ids; anything
else is refused with a message naming the space.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from demos.trajectories import DemoValidationError, Trajectories

__all__ = ["from_imitation", "to_imitation", "from_minari", "to_minari"]


def _need(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"this needs {module.split('.')[0]}: pip install 'pluggable-irl[{extra}]'") from None


def _ids(x: Any, what: str) -> np.ndarray:
    """A sequence of discrete observations or actions as flat int ids ((L,) or (L, 1))."""
    a = np.asarray(x)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise DemoValidationError(f"{what} must be discrete ids, one per step (shape (L,) or (L, 1)): got shape "
                                  f"{a.shape}; continuous or image observations need a discretisation first")
    if a.size and not (np.issubdtype(a.dtype, np.integer) or
                       (np.issubdtype(a.dtype, np.floating) and np.all(a == np.round(a)))):
        raise DemoValidationError(f"{what} must be integer ids: got dtype {a.dtype}")
    return a.astype(np.int64)


def from_imitation(trajectories: Iterable[Any]) -> Trajectories:
    """Trajectories from imitation's ``Trajectory`` / ``TrajectoryWithRew`` objects (discrete observations).

    Args:
        trajectories: a sequence of ``imitation.data.types.Trajectory`` (rewards are
            kept when every one is a ``TrajectoryWithRew``).

    Returns:
        :class:`Trajectories`; ``terminated`` is imitation's ``terminal`` flag.

    Raises:
        DemoValidationError: an element that is not an imitation trajectory, or
            observations that are not discrete ids (naming the trajectory).

    Example:
        >>> import numpy as np, demos
        >>> from imitation.data.types import TrajectoryWithRew
        >>> t = TrajectoryWithRew(obs=np.array([0, 1, 2]), acts=np.array([1, 1]), infos=None,
        ...                       terminal=True, rews=np.array([0.0, 1.0]))
        >>> d = demos.from_imitation([t])
        >>> d.states.tolist(), d.rewards.tolist(), d.terminated.tolist()
        ([0, 1, 2], [0.0, 1.0], [True])
    """
    types = _need("imitation.data.types", "imitation")
    trajs = list(trajectories)
    if not trajs:
        raise DemoValidationError("a dataset needs at least one trajectory: got 0")
    for i, t in enumerate(trajs):
        if not isinstance(t, types.Trajectory):
            raise DemoValidationError(f"element {i} must be an imitation Trajectory: got {type(t).__name__}")
    S = [_ids(t.obs, f"trajectory {i}: obs") for i, t in enumerate(trajs)]
    A = [_ids(t.acts, f"trajectory {i}: acts") for i, t in enumerate(trajs)]
    with_r = all(isinstance(t, types.TrajectoryWithRew) for t in trajs)
    return Trajectories.from_lists(S, A, rewards=[np.asarray(t.rews, np.float64) for t in trajs] if with_r else None,
                                   terminated=[bool(t.terminal) for t in trajs])


def to_imitation(data: Trajectories) -> list:
    """imitation ``TrajectoryWithRew`` objects (``Trajectory`` without rewards); ``terminal`` = ``terminated``.

    Example:
        >>> import demos
        >>> d = demos.Trajectories.from_lists([[0, 1]], [[2]], terminated=[True])
        >>> t = d.to_imitation()[0]
        >>> type(t).__name__, t.obs.tolist(), t.acts.tolist(), t.terminal
        ('Trajectory', [0, 1], [2], True)
    """
    types = _need("imitation.data.types", "imitation")
    if np.any(data.lengths == 0):
        i = int(np.flatnonzero(data.lengths == 0)[0])
        raise DemoValidationError(f"imitation needs at least one action per trajectory: trajectory {i} has none "
                                  f"(drop it with data.subset(data.lengths > 0))")
    out = []
    for tr in data:
        kw = dict(obs=tr.states.copy(), acts=tr.actions.copy(), infos=None, terminal=bool(tr.terminated))
        out.append(types.Trajectory(**kw) if tr.rewards is None else
                   types.TrajectoryWithRew(**kw, rews=tr.rewards.astype(np.float32)))
    return out


def _discrete_n(space: Any, what: str) -> int:
    spaces = _need("gymnasium.spaces", "minari")
    if not isinstance(space, spaces.Discrete):
        raise DemoValidationError(f"the dataset's {what} space must be Discrete to give tabular ids: got {space}; "
                                  f"discretise it first")
    return int(space.n)


def from_minari(dataset: Any, *, episodes: Sequence[int] | None = None) -> Trajectories:
    """Trajectories from a ``minari.MinariDataset`` with discrete observations and actions.

    Observation ids are shifted by the space's ``start`` so that they run from 0.
    Terminations and truncations are kept apart: an episode is terminated
    (truncated) when its last step is.

    Args:
        dataset: a dataset from ``minari.load_dataset(...)``.
        episodes: indices of the episodes to read (default all).

    Raises:
        DemoValidationError: a space that is not ``Discrete`` (naming it), or a
            termination or truncation before an episode's last step.
    """
    _need("minari", "minari")
    _discrete_n(dataset.observation_space, "observation")
    _discrete_n(dataset.action_space, "action")
    o_start, a_start = int(dataset.observation_space.start), int(dataset.action_space.start)
    S, A, R, term, trunc = [], [], [], [], []
    for ep in dataset.iterate_episodes(episodes):
        for name in ("terminations", "truncations"):
            flags = np.asarray(getattr(ep, name), bool)
            if flags[:-1].any():
                raise DemoValidationError(f"episode {ep.id}: {name} is true at step {int(np.flatnonzero(flags)[0])}, "
                                          f"before its last step")
        S.append(_ids(ep.observations, f"episode {ep.id}: observations") - o_start)
        A.append(_ids(ep.actions, f"episode {ep.id}: actions") - a_start)
        R.append(np.asarray(ep.rewards, np.float64))
        term.append(bool(len(ep.terminations) and ep.terminations[-1]))
        trunc.append(bool(len(ep.truncations) and ep.truncations[-1]))
    return Trajectories.from_lists(S, A, rewards=R, terminated=term, truncated=trunc)


def to_minari(data: Trajectories, dataset_id: str, *, n_states: int, n_actions: int, env: Any = None,
              fill_reward: float | None = None, **metadata: Any) -> Any:
    """Create a local Minari dataset from trajectories (``Discrete`` spaces of the given sizes).

    The dataset is written where Minari keeps local datasets (``MINARI_DATASETS_PATH``
    or ``~/.minari/datasets``); nothing is uploaded.

    Args:
        data: the trajectories.
        dataset_id: Minari's id, ``"namespace/name-v0"`` style.
        n_states: size of the observation space.
        n_actions: size of the action space.
        env: optional environment id or ``gymnasium.Env`` to record with the dataset.
        fill_reward: Minari stores a reward for every step; trajectories without
            rewards need an explicit value (e.g. ``0.0``) so that nobody reads made-up
            rewards as observed ones.
        **metadata: passed to ``minari.create_dataset_from_buffers`` (``author``,
            ``description``, ``algorithm_name``, ...).

    Returns:
        the new ``minari.MinariDataset``.

    Raises:
        DemoValidationError: ids out of range, or no rewards and no ``fill_reward``.
    """
    minari = _need("minari", "minari")
    spaces = _need("gymnasium.spaces", "minari")
    from minari.data_collector.episode_buffer import EpisodeBuffer

    data.validate(n_states, n_actions)
    if data.rewards is None and fill_reward is None:
        raise DemoValidationError("Minari datasets store a reward for every step, and these trajectories have none: "
                                  "pass fill_reward=0.0 (or another value) to store it")
    buffers = []
    for i, tr in enumerate(data):
        L = len(tr.actions)
        r = tr.rewards if tr.rewards is not None else np.full(L, float(fill_reward))
        flags_t, flags_u = np.zeros(L, bool), np.zeros(L, bool)
        if L:
            flags_t[-1], flags_u[-1] = tr.terminated, tr.truncated
        buffers.append(EpisodeBuffer(id=i, observations=tr.states.tolist(), actions=tr.actions.tolist(),
                                     rewards=r.tolist(), terminations=flags_t.tolist(), truncations=flags_u.tolist()))
    return minari.create_dataset_from_buffers(dataset_id, buffers, env=env,
                                              observation_space=spaces.Discrete(n_states),
                                              action_space=spaces.Discrete(n_actions), **metadata)
