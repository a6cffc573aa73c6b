"""Choices between behaviours: comparisons, corrections and e-stops.

All three are *reward-rational implicit choices* (Jeon, Milli & Dragan 2020): the
human picks one option from a set, each option is grounded in a trajectory
segment, and the human chooses Boltzmann-rationally by the segments' returns,
``P(c) ∝ exp(beta * R(segment_c))``, with the choice rule of the human model
(:meth:`human_models.BaseHumanModel.choice_log_probs`). One data type,
:class:`Choices`, stores every option as a segment; :class:`Comparisons`,
:class:`Corrections` and :class:`EStops` build it from what was observed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from demos.trajectories import DemoValidationError, Trajectories

__all__ = ["Choices", "Comparisons", "Corrections", "EStops"]

_FORMAT = "pluggable-irl/choices"


def _reward_tensor(reward: Any, n_states: int, n_actions: int) -> Any:
    """``reward`` as a float64 tensor ``(..., S, A)``, keeping its autograd graph."""
    import torch

    r = reward if isinstance(reward, torch.Tensor) else torch.from_numpy(np.array(reward, dtype=np.float64))
    if r.ndim == 1 and r.shape[0] == n_states:
        r = r[:, None].expand(n_states, n_actions)
    if r.ndim < 2 or tuple(r.shape[-2:]) != (n_states, n_actions):
        raise DemoValidationError(f"reward must have shape (S,) = ({n_states},) or (..., S, A) = "
                                  f"(..., {n_states}, {n_actions}): got {tuple(r.shape)}")
    return r


def _segment_steps(segments: Trajectories, discount: float) -> tuple[Any, ...]:
    """``(s, a, segment, discount ** t)`` of every step of every segment, as tensors."""
    import torch

    t, s = segments.step_index
    seg = np.repeat(np.arange(len(segments)), segments.lengths)
    return (torch.from_numpy(s), torch.from_numpy(segments.actions.copy()), torch.from_numpy(seg),
            torch.from_numpy(discount ** t.astype(np.float64)))


def _segment_returns(segments: Trajectories, reward: Any, discount: float) -> Any:
    """Discounted return of every segment, ``(..., M)``, differentiable in ``reward (..., S, A)``."""
    import torch

    s, a, seg, w = _segment_steps(segments, discount)
    vals = reward[..., s, a] * w
    out = torch.zeros(*reward.shape[:-2], len(segments), dtype=reward.dtype)
    return out.index_add(-1, seg, vals)


@dataclass(frozen=True, eq=False)
class Choices:
    """Choices among trajectory segments, the human's pick recorded for each.

    Choice ``i`` has ``n_options[i]`` options, which are consecutive segments in
    ``segments`` (starting at ``sum(n_options[:i])``); ``chosen[i]`` indexes them.

    Attributes:
        segments: every option's segment, as :class:`Trajectories`.
        n_options: ``(N,)`` options per choice (``>= 2``).
        chosen: ``(N,)`` the chosen option of each choice.
        discount: discount for segment returns; ``None`` uses the MDP's.
        kind: ``"choices"``, ``"comparisons"``, ``"corrections"`` or ``"estops"``.

    Example:
        >>> import demos
        >>> seg = demos.Trajectories.from_lists([[0, 1], [0, 2]], [[0], [1]])
        >>> c = demos.Choices(seg, n_options=[2], chosen=[1])
        >>> len(c), c.option_index().tolist()
        (1, [[0, 1]])

    References:
        Jeon, Milli & Dragan (2020), "Reward-rational (implicit) choice: A unifying
        formalism for reward learning", NeurIPS.
    """

    segments: Trajectories
    n_options: Any
    chosen: Any
    discount: float | None = None
    kind: str = "choices"

    def __post_init__(self) -> None:
        if not isinstance(self.segments, Trajectories):
            raise DemoValidationError(f"segments must be demos.Trajectories: got {type(self.segments).__name__}")
        n_opt = np.asarray(self.n_options)
        chosen = np.asarray(self.chosen)
        if n_opt.ndim != 1 or n_opt.size == 0:
            raise DemoValidationError(f"n_options must be a non-empty 1-D array: got shape {n_opt.shape}")
        if chosen.shape != n_opt.shape:
            raise DemoValidationError(f"chosen must have one entry per choice ({n_opt.size}): got {chosen.shape}")
        for name, arr in (("n_options", n_opt), ("chosen", chosen)):
            if not np.issubdtype(arr.dtype, np.integer):
                raise DemoValidationError(f"{name} must hold integers: got dtype {arr.dtype}")
        if np.any(n_opt < 2):
            i = int(np.flatnonzero(n_opt < 2)[0])
            raise DemoValidationError(f"choice {i} has {n_opt[i]} options: a choice needs at least 2")
        if int(n_opt.sum()) != len(self.segments):
            raise DemoValidationError(f"the choices have {int(n_opt.sum())} options in all but there are "
                                      f"{len(self.segments)} segments")
        bad = (chosen < 0) | (chosen >= n_opt)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DemoValidationError(f"chosen[{i}] = {chosen[i]} is not one of its {n_opt[i]} options")
        if self.discount is not None and not 0.0 <= float(self.discount) <= 1.0:
            raise DemoValidationError(f"discount must lie in [0, 1]: got {self.discount}")
        object.__setattr__(self, "n_options", n_opt.astype(np.int64))
        object.__setattr__(self, "chosen", chosen.astype(np.int64))

    def __len__(self) -> int:
        return int(self.n_options.size)

    def option_index(self) -> np.ndarray:
        """``(N, C_max)`` segment index of each option, ``-1`` for padding."""
        start = np.concatenate([[0], np.cumsum(self.n_options)[:-1]])
        c = np.arange(int(self.n_options.max()))
        return np.where(c[None, :] < self.n_options[:, None], start[:, None] + c[None, :], -1)

    def validate(self, n_states: int, n_actions: int, *, horizon: int | None = None) -> "Choices":
        """Check state and action ids against an MDP (segments may be of any length)."""
        self.segments.validate(n_states, n_actions)
        return self

    def log_likelihood_under(self, human: Any, mdp: Any, reward: Any) -> Any:
        """``sum_i log P(chosen_i | options_i)`` under ``human``'s choice rule; differentiable in ``reward``."""
        import torch

        (s, a, seg, w), option, mask, chosen = self.sufficient_statistics(mdp)
        r = _reward_tensor(reward, mdp.n_states, mdp.n_actions)
        vals = r[..., s, a] * w
        returns = torch.zeros(*r.shape[:-2], len(self.segments), dtype=r.dtype).index_add(-1, seg, vals)
        logp = human.choice_log_probs(returns[..., option], mask)
        return logp[..., torch.arange(len(self)), chosen].sum(-1)

    def sufficient_statistics(self, mdp: Any) -> tuple[tuple[Any, ...], Any, Any, Any]:
        """Index tensors of the segments' steps and of the options, computed once per MDP.

        Returns:
            ``((s, a, seg, discount_weights), option, mask, chosen)`` where
            ``option (N, C_max)`` indexes segments (padding points at 0 and is
            masked out by ``mask``).
        """
        from demos.statistics import memo

        def compute() -> tuple[tuple[Any, ...], Any, Any, Any]:
            import torch

            self.validate(mdp.n_states, mdp.n_actions)
            gamma = mdp.discount if self.discount is None else float(self.discount)
            steps = _segment_steps(self.segments, gamma)
            idx = self.option_index()
            return (steps, torch.from_numpy(np.maximum(idx, 0)), torch.from_numpy(idx >= 0),
                    torch.from_numpy(self.chosen.copy()))

        return memo(self, mdp, "options", compute)

    # ------------------------------------------------------------------ files
    def _save_npz(self, path: Any) -> None:
        from demos.io import save_arrays

        seg = self.segments
        save_arrays(path, _FORMAT, {"states": seg.states, "actions": seg.actions, "lengths": seg.lengths,
                                    "terminated": seg.terminated, "truncated": seg.truncated,
                                    "n_options": self.n_options, "chosen": self.chosen},
                    meta={"kind": self.kind, "discount": self.discount})

    def save(self, path: str) -> None:
        """Write a versioned ``.npz`` atomically (no pickle)."""
        from demos.io import save

        save(self, path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)}, options={int(self.n_options.sum())}, kind={self.kind!r})"


def _from_npz(arrays: dict, meta: dict) -> Choices:
    need = {"states", "actions", "lengths", "n_options", "chosen"}
    if not need <= set(arrays):
        raise DemoValidationError(f"choices file lacks arrays {sorted(need - set(arrays))}")
    seg = Trajectories(states=arrays["states"], actions=arrays["actions"], lengths=arrays["lengths"],
                       terminated=arrays.get("terminated"), truncated=arrays.get("truncated"))
    kind = str(meta.get("kind", "choices"))
    cls = {"comparisons": Comparisons, "corrections": Corrections, "estops": EStops}.get(kind, Choices)
    return cls(seg, arrays["n_options"], arrays["chosen"], discount=meta.get("discount"), kind=kind)


def _concat(parts: Sequence[Trajectories]) -> Trajectories:
    return Trajectories.from_lists([tr.states for p in parts for tr in p], [tr.actions for p in parts for tr in p])


def _interleave(a: Trajectories, b: Trajectories) -> Trajectories:
    states, actions = [], []
    for x, y in zip(a, b):
        states += [x.states, y.states]
        actions += [x.actions, y.actions]
    return Trajectories.from_lists(states, actions)


class Comparisons(Choices):
    """Pairwise preferences between segments (Bradley–Terry on returns), or rankings.

    Build with :meth:`from_pairs` or :meth:`from_rankings` (a ranking of K
    segments is K-1 successive choices of the best remaining one: Plackett–Luce).

    Example:
        >>> import demos
        >>> a = demos.Trajectories.from_lists([[0, 1]], [[0]])
        >>> b = demos.Trajectories.from_lists([[0, 2]], [[1]])
        >>> demos.Comparisons.from_pairs(a, b, prefer_second=[True]).chosen.tolist()
        [1]

    References:
        Christiano et al. (2017), "Deep reinforcement learning from human
        preferences"; Bradley & Terry (1952); Plackett (1975).
    """

    def __init__(self, segments: Trajectories, n_options: Any, chosen: Any, discount: float | None = None,
                 kind: str = "comparisons") -> None:
        super().__init__(segments, n_options, chosen, discount, "comparisons")

    @classmethod
    def from_pairs(cls, first: Trajectories, second: Trajectories, prefer_second: Any, *,
                   discount: float | None = None) -> "Comparisons":
        """Pairs ``(first[i], second[i])`` with ``prefer_second[i]`` the human's answer."""
        if len(first) != len(second):
            raise DemoValidationError(f"got {len(first)} first segments but {len(second)} second segments")
        pref = np.asarray(prefer_second, dtype=bool)
        if pref.shape != (len(first),):
            raise DemoValidationError(f"prefer_second must have {len(first)} entries: got shape {pref.shape}")
        return cls(_interleave(first, second), np.full(len(first), 2), pref.astype(np.int64), discount)

    @classmethod
    def from_rankings(cls, rankings: Sequence[Trajectories], *, discount: float | None = None) -> "Comparisons":
        """Each element lists segments best first; it becomes K-1 choices of the best remaining one."""
        parts, n_opt = [], []
        for k, ranked in enumerate(rankings):
            if len(ranked) < 2:
                raise DemoValidationError(f"ranking {k} has {len(ranked)} segments: a ranking needs at least 2")
            for j in range(len(ranked) - 1):
                parts.append(ranked.subset(slice(j, None)))
                n_opt.append(len(ranked) - j)
        return cls(_concat(parts), np.array(n_opt), np.zeros(len(n_opt), np.int64), discount)

    @classmethod
    def simulate(cls, mdp: Any, human: Any, reward: Any, n: int, *, rng: Any = None,
                 candidates: Trajectories | None = None) -> "Comparisons":
        """Ask ``human`` to compare ``n`` random pairs of candidate segments.

        Args:
            mdp: the MDP.
            human: the human model (its choice rule labels the pairs).
            reward: the reward the human judges by.
            n: number of comparisons.
            rng: seed or generator.
            candidates: segments to pair up; default ``2n`` trajectories sampled
                from ``human`` itself.
        """
        rng = np.random.default_rng(rng)
        cand = candidates if candidates is not None else human.sample(mdp, reward, 2 * n, rng=rng)
        if len(cand) < 2:
            raise DemoValidationError("need at least 2 candidate segments to compare")
        pick = np.stack([rng.choice(len(cand), size=2, replace=False) for _ in range(n)])
        first, second = cand.subset(pick[:, 0]), cand.subset(pick[:, 1])
        dummy = cls.from_pairs(first, second, np.zeros(n, bool))
        return cls.from_pairs(first, second, _sample_choices(dummy, human, mdp, reward, rng) == 1)


class Corrections(Choices):
    """A human's corrected trajectory, chosen over the robot's trajectory it replaced.

    Each correction is a choice between ``{robot[i], corrected[i]}`` with the
    corrected one chosen (the simplest choice set of Jeon et al.; Bajcsy et al.
    2017 use physical corrections of this kind).

    Example:
        >>> import demos
        >>> robot = demos.Trajectories.from_lists([[0, 1]], [[0]])
        >>> fixed = demos.Trajectories.from_lists([[0, 2]], [[1]])
        >>> demos.Corrections.from_trajectories(robot, fixed).chosen.tolist()
        [1]
    """

    def __init__(self, segments: Trajectories, n_options: Any, chosen: Any, discount: float | None = None,
                 kind: str = "corrections") -> None:
        super().__init__(segments, n_options, chosen, discount, "corrections")

    @classmethod
    def from_trajectories(cls, robot: Trajectories, corrected: Trajectories, *,
                          discount: float | None = None) -> "Corrections":
        """Pair each robot trajectory with the human's correction of it."""
        if len(robot) != len(corrected):
            raise DemoValidationError(f"got {len(robot)} robot trajectories but {len(corrected)} corrections")
        return cls(_interleave(robot, corrected), np.full(len(robot), 2), np.ones(len(robot), np.int64), discount)

    @classmethod
    def simulate(cls, mdp: Any, human: Any, reward: Any, robot: Trajectories, *, rng: Any = None) -> "Corrections":
        """The human replaces each robot trajectory by one of its own from the same start state."""
        rng = np.random.default_rng(rng)
        fixes = []
        for tr in robot:
            start = np.zeros(mdp.n_states)
            start[tr.states[0]] = 1.0
            horizon = None if mdp.horizon is not None else max(len(tr.actions), 1)
            fixes.append(human.sample(mdp, reward, 1, rng=rng, initial=start, horizon=horizon))
        return cls.from_trajectories(robot, _concat(fixes))


class EStops(Choices):
    """Emergency stops: the human halted the robot's trajectory at step ``t`` (or let it run).

    The options for a robot trajectory of ``L`` steps are "stop at ``t``" for
    ``t = 0 .. L-1`` and "do not stop"; stopping at ``t`` is grounded as the
    prefix up to ``s_t`` followed by ``stay_action`` in ``s_t`` for the remaining
    steps (Jeon et al. 2020, Sec. 4). ``stop_times[i] = -1`` records no stop.

    Example:
        >>> import demos
        >>> robot = demos.Trajectories.from_lists([[0, 1, 2]], [[1, 1]])
        >>> e = demos.EStops.from_stops(robot, stop_times=[1], stay_action=0)
        >>> e.n_options.tolist(), e.chosen.tolist()
        ([3], [1])
    """

    def __init__(self, segments: Trajectories, n_options: Any, chosen: Any, discount: float | None = None,
                 kind: str = "estops") -> None:
        super().__init__(segments, n_options, chosen, discount, "estops")

    @staticmethod
    def _options(tr: Any, stay_action: int) -> tuple[list, list]:
        L = len(tr.actions)
        states, actions = [], []
        for t in range(L):
            states.append(np.concatenate([tr.states[:t + 1], np.repeat(tr.states[t], L - t)]))
            actions.append(np.concatenate([tr.actions[:t], np.full(L - t, stay_action)]))
        states.append(tr.states)
        actions.append(tr.actions)
        return states, actions

    @classmethod
    def from_stops(cls, robot: Trajectories, stop_times: Any, *, stay_action: int,
                   discount: float | None = None) -> "EStops":
        """Build from robot trajectories and the step each was stopped at (``-1``: not stopped)."""
        stops = np.asarray(stop_times, dtype=np.int64)
        if stops.shape != (len(robot),):
            raise DemoValidationError(f"stop_times must have {len(robot)} entries: got shape {stops.shape}")
        states, actions, n_opt, chosen = [], [], [], []
        for i, (tr, t) in enumerate(zip(robot, stops)):
            L = len(tr.actions)
            if L < 1:
                raise DemoValidationError(f"robot trajectory {i} has no steps: nothing to stop")
            if not -1 <= t < L:
                raise DemoValidationError(f"stop_times[{i}] = {t} must be -1 (no stop) or in 0..{L - 1}")
            s, a = cls._options(tr, stay_action)
            states += s
            actions += a
            n_opt.append(L + 1)
            chosen.append(L if t == -1 else t)
        return cls(Trajectories.from_lists(states, actions), np.array(n_opt), np.array(chosen), discount)

    @classmethod
    def simulate(cls, mdp: Any, human: Any, reward: Any, robot: Trajectories, *, stay_action: int,
                 rng: Any = None) -> "EStops":
        """The human decides, for each robot trajectory, when (or whether) to stop it."""
        rng = np.random.default_rng(rng)
        dummy = cls.from_stops(robot, -np.ones(len(robot), np.int64), stay_action=stay_action)
        picks = _sample_choices(dummy, human, mdp, reward, rng)
        stops = np.where(picks == dummy.n_options - 1, -1, picks)
        return cls.from_stops(robot, stops, stay_action=stay_action)


def _sample_choices(choices: Choices, human: Any, mdp: Any, reward: Any, rng: np.random.Generator) -> np.ndarray:
    """Sample each choice from the human's choice rule (used by the ``simulate`` methods)."""
    import torch

    with torch.no_grad():
        r = _reward_tensor(reward, mdp.n_states, mdp.n_actions)
        gamma = mdp.discount if choices.discount is None else float(choices.discount)
        returns = _segment_returns(choices.segments, r, gamma)
        idx = choices.option_index()
        mask = torch.from_numpy(idx >= 0)
        p = human.choice_log_probs(returns[..., torch.from_numpy(np.maximum(idx, 0))], mask).exp().numpy()
    u = rng.random(len(choices))[:, None]
    return np.minimum((p.cumsum(axis=1) < u).sum(axis=1), choices.n_options - 1)
