"""Sampling traces: which option a person thought about, what each thought said, and what they chose.

The evidence of Bernoulli metareasoning (:mod:`irl.metalevel.bernoulli`):
per trial, ``k`` options with unknown success probabilities; each computation
samples one option and yields a success (1) or a failure (0); then the person
chooses an option. :class:`SamplingTraces` holds per trial the ordered samples
and their outcomes, the choice and, when known, the true success
probabilities. It scores itself under a cognition-level human model like
:class:`demos.DeliberationTraces`: every sample and the stop are meta-level
decisions, made in the belief given by the counts seen so far.

Files: a versioned ``.npz`` (:meth:`SamplingTraces.save`, read back with
:func:`demos.load`).

References:
    Hay, Russell, Tolpin & Shimony (2012), "Selecting computations: Theory and
    applications", UAI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from demos.deliberation import TraceSet
from demos.io import register_format, save_arrays
from demos.trajectories import DemoValidationError

__all__ = ["SamplingTraces", "FORMAT"]

#: Format string of the ``.npz`` files of :class:`SamplingTraces`.
FORMAT = "pluggable-irl/sampling-traces"


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class SamplingTraces(TraceSet):
    """Recorded sampling deliberation: per trial, the sampled options, their outcomes and the choice.

    Attributes:
        n_options: ``k``, the number of options.
        samples: flat sampled options as meta-level actions ``1..k`` (option ``i`` is action ``i + 1``),
            trial after trial, ``(sum n_samples,)``.
        outcomes: ``(sum n_samples,)`` 1 for a success, 0 for a failure.
        n_samples: ``(N,)`` samples of each trial.
        choice: ``(N,)`` chosen option ``0..k-1`` (``-1`` where not recorded).
        probabilities: ``(N, k)`` true success probabilities (``NaN`` where unknown).
        participant: ``(N,)`` participant ids (strings).
        block: ``(N,)`` block labels.
        trial: ``(N,)`` trial numbers.
        fee: price of a sample (for scores).

    Raises:
        DemoValidationError: naming the rule and what was found.

    Example:
        >>> import demos
        >>> t = demos.SamplingTraces.from_trials(2, samples=[[1, 1, 2], []], outcomes=[[1, 0, 1], []],
        ...                                      choices=[0, 1])
        >>> len(t), t.n_observations, t.decisions()[1].tolist()
        (2, 5, [1, 1, 2, 0, 0])
    """

    n_options: int
    samples: Any
    outcomes: Any
    n_samples: Any
    choice: Any
    probabilities: Any = None
    participant: Any = None
    block: Any = None
    trial: Any = None
    fee: float = 0.0

    def __post_init__(self) -> None:
        k = self.n_options
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
            raise DemoValidationError(f"n_options must be an integer >= 2: got {k!r}")
        k = int(k)
        ns = np.asarray(self.n_samples)
        if ns.ndim != 1 or ns.size < 1 or not np.issubdtype(ns.dtype, np.integer) or np.any(ns < 0):
            raise DemoValidationError(f"n_samples must be N >= 1 integers >= 0 (one per trial): got {self.n_samples!r}")
        N = ns.size
        sm = np.asarray(self.samples)
        sm = sm.astype(np.int64) if sm.size == 0 else sm
        if sm.ndim != 1 or not np.issubdtype(sm.dtype, np.integer) or sm.size != int(ns.sum()):
            raise DemoValidationError(f"samples must be {int(ns.sum())} integer options (the sum of n_samples): got "
                                      f"shape {sm.shape}, dtype {sm.dtype}")
        if sm.size and (sm.min() < 1 or sm.max() > k):
            bad = int(sm[(sm < 1) | (sm > k)][0])
            raise DemoValidationError(f"samples are meta-level actions 1..{k} (option i is action i + 1): got {bad}")
        oc = np.asarray(self.outcomes, dtype=np.float64)
        if oc.shape != sm.shape or not np.all((oc == 0) | (oc == 1)):
            raise DemoValidationError(f"outcomes must be {sm.size} values in {{0, 1}} (one per sample): got "
                                      f"{np.unique(oc).tolist() if oc.size else oc.shape}")
        ch = np.asarray(self.choice)
        if ch.shape != (N,) or not np.issubdtype(ch.dtype, np.integer) or np.any((ch < -1) | (ch >= k)):
            raise DemoValidationError(f"choice must be {N} options in 0..{k - 1} (-1 if not recorded): got "
                                      f"{self.choice!r}")
        pr = np.full((N, k), np.nan) if self.probabilities is None else np.array(self.probabilities, np.float64)
        if pr.shape != (N, k) or np.any(pr[np.isfinite(pr)] < 0) or np.any(pr[np.isfinite(pr)] > 1) \
                or np.isinf(pr).any():
            raise DemoValidationError(f"probabilities must be (N, k) = ({N}, {k}) numbers in [0, 1] (NaN if "
                                      f"unknown): got shape {pr.shape}")
        fee = float(self.fee)
        if not math.isfinite(fee) or fee < 0:
            raise DemoValidationError(f"fee (price of a sample) must be a finite number >= 0: got {self.fee!r}")
        labels, tr = self._labels(N)
        object.__setattr__(self, "n_options", k)
        for name, val in (("samples", sm.astype(np.int64)), ("outcomes", oc), ("n_samples", ns.astype(np.int64)),
                          ("choice", ch.astype(np.int64)), ("probabilities", pr),
                          ("participant", labels["participant"]), ("block", labels["block"]),
                          ("trial", tr.astype(np.int64))):
            object.__setattr__(self, name, _ro(val))
        object.__setattr__(self, "fee", fee)
        object.__setattr__(self, "_memo", {})

    @classmethod
    def from_trials(cls, n_options: int, samples: Sequence[Sequence[int]], outcomes: Sequence[Sequence[float]],
                    choices: Any, *, probabilities: Any = None, participant: Any = None, block: Any = None,
                    trial: Any = None, fee: float = 0.0) -> "SamplingTraces":
        """Build from per-trial lists of samples (actions ``1..k``) and outcomes."""
        if len(samples) != len(outcomes):
            raise DemoValidationError(f"samples and outcomes must have one list per trial: got {len(samples)} and "
                                      f"{len(outcomes)}")
        for i, (s, o) in enumerate(zip(samples, outcomes)):
            if len(s) != len(o):
                raise DemoValidationError(f"trial {i}: {len(s)} samples but {len(o)} outcomes")
        flat_s = np.array([int(x) for s in samples for x in s], np.int64)
        flat_o = np.array([float(x) for o in outcomes for x in o], np.float64)
        return cls(n_options=int(n_options), samples=flat_s, outcomes=flat_o,
                   n_samples=np.array([len(s) for s in samples], np.int64), choice=np.asarray(choices, np.int64),
                   probabilities=probabilities, participant=participant, block=block, trial=trial, fee=fee)

    def __len__(self) -> int:
        return int(self.n_samples.size)

    @property
    def n_computations(self) -> np.ndarray:
        """``(N,)`` samples of each trial."""
        return self.n_samples

    @property
    def sample_offsets(self) -> np.ndarray:
        """``(N + 1,)``: trial ``i``'s samples are ``samples[sample_offsets[i]:sample_offsets[i + 1]]``."""
        return np.concatenate([[0], np.cumsum(self.n_samples)])

    def subset(self, index: Any) -> "SamplingTraces":
        """The trials selected by ``index`` (indices, a slice or a boolean mask), in that order."""
        idx = np.atleast_1d(np.arange(len(self))[index])
        if idx.size == 0:
            raise DemoValidationError("the selection contains no trials")
        off = self.sample_offsets
        take = np.concatenate([np.arange(off[i], off[i + 1]) for i in idx]).astype(np.int64)
        return SamplingTraces(n_options=self.n_options, samples=self.samples[take], outcomes=self.outcomes[take],
                              n_samples=self.n_samples[idx], choice=self.choice[idx],
                              probabilities=self.probabilities[idx], participant=self.participant[idx],
                              block=self.block[idx], trial=self.trial[idx], fee=self.fee)

    def decisions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every meta-level decision: ``(beliefs (D, 2k), actions (D,), trial_of (D,))``.

        A trial with samples ``a_1 .. a_m`` gives ``m + 1`` decisions: sample
        ``a_1`` with no counts, ..., then stop (action 0). Beliefs are the counts
        ``(successes_1..k, failures_1..k)`` seen before each decision.
        """
        memo = self._memo
        if "decisions" not in memo:
            k, N = self.n_options, len(self)
            off = self.sample_offsets
            M = self.samples.size
            onehot = np.zeros((M, 2 * k))
            if M:
                col = (self.samples - 1) + k * (1 - self.outcomes.astype(np.int64))
                onehot[np.arange(M), col] = 1.0
            csum = np.vstack([np.zeros((1, 2 * k)), np.cumsum(onehot, axis=0)])  # (M + 1, 2k)
            trial_of = np.repeat(np.arange(N), self.n_samples + 1)
            t = np.arange(trial_of.size) - (off[:-1] + np.arange(N))[trial_of]  # step within the trial
            g = off[trial_of] + t
            beliefs = csum[g] - csum[off[trial_of]]
            last = t == self.n_samples[trial_of]
            actions = np.where(last, 0, self.samples[np.minimum(g, max(M - 1, 0))] if M else 0).astype(np.int64)
            for a in (beliefs, actions, trial_of):
                a.setflags(write=False)
            memo["decisions"] = (beliefs, actions, trial_of)
        return memo["decisions"]

    def validate(self, n_states: int, n_actions: int, *, horizon: int | None = None) -> "SamplingTraces":
        """Check the traces against an environment (``k + 1`` states, ``k`` object-level actions).

        Raises:
            DemoValidationError: another number of options.
        """
        if int(n_actions) != self.n_options or int(n_states) != self.n_options + 1:
            raise DemoValidationError(f"the traces were recorded with {self.n_options} options but the environment "
                                      f"has {n_actions} options ({n_states} states)")
        return self

    def _check_problem(self, mdp: Any) -> None:
        horizon = getattr(getattr(mdp, "meta", None), "horizon", None)
        if horizon is not None and len(self) and int(self.n_samples.max()) > int(horizon):
            i = int(np.argmax(self.n_samples))
            raise DemoValidationError(f"trial {i} has {int(self.n_samples[i])} samples, more than the environment's "
                                      f"horizon ({horizon})")

    def summary(self) -> dict[str, Any]:
        """``n_trials``, ``n_participants``, ``mean_samples``, ``no_sample_share`` and ``best_choice_share``
        (choices of the option with the highest true probability, among trials where it is known)."""
        known = np.all(np.isfinite(self.probabilities), axis=1) & (self.choice >= 0)
        best = self.probabilities[known].argmax(axis=1) if known.any() else np.zeros(0, np.int64)
        return {"n_trials": len(self), "n_participants": len(self.participants()),
                "mean_samples": float(self.n_samples.mean()), "no_sample_share": float(np.mean(self.n_samples == 0)),
                "best_choice_share": float(np.mean(self.choice[known] == best)) if known.any() else float("nan")}

    def _save_npz(self, path: Any) -> None:
        save_arrays(path, FORMAT, {"samples": self.samples, "outcomes": self.outcomes, "n_samples": self.n_samples,
                                   "choice": self.choice, "probabilities": self.probabilities,
                                   "participant": self.participant, "block": self.block, "trial": self.trial},
                    meta={"n_options": self.n_options, "fee": self.fee})

    def save(self, path: str | Path) -> None:
        """Write a versioned ``.npz`` atomically (no pickle).

        Example:
            >>> import demos, os, tempfile
            >>> t = demos.SamplingTraces.from_trials(2, [[1]], [[1]], [0])
            >>> p = os.path.join(tempfile.mkdtemp(), "s.npz"); t.save(p)
            >>> demos.load(p).samples.tolist()
            [1]
        """
        path = Path(path)
        if path.suffix != ".npz":
            raise DemoValidationError(f"{path}: sampling traces are saved as .npz: got {path.suffix!r}")
        self._save_npz(path)

    def __repr__(self) -> str:
        return (f"SamplingTraces(trials={len(self)}, participants={len(self.participants())}, "
                f"options={self.n_options}, samples={self.samples.size})")


def _load_npz(arrays: dict, meta: dict) -> SamplingTraces:
    need = {"samples", "outcomes", "n_samples", "choice"}
    if not need <= set(arrays):
        raise DemoValidationError(f"sampling-traces file lacks arrays {sorted(need - set(arrays))}")
    return SamplingTraces(n_options=int(meta.get("n_options", 0)), samples=arrays["samples"],
                          outcomes=arrays["outcomes"], n_samples=arrays["n_samples"], choice=arrays["choice"],
                          probabilities=arrays.get("probabilities"), participant=arrays.get("participant"),
                          block=arrays.get("block"), trial=arrays.get("trial"), fee=float(meta.get("fee", 0.0)))


register_format(FORMAT, _load_npz)
