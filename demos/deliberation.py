"""Deliberation traces: what a person inspected while deciding, in order, and what they then chose.

Process-tracing experiments record a person's *cognitive actions*: which
pieces of information they looked at, in which order, and when they stopped
looking. In the Mouselab-MDP paradigm each trial is a tree whose node rewards
are hidden; clicking a node reveals its reward (at a price); then the person
moves from the root to a leaf. :class:`DeliberationTraces` holds, per trial:

* the problem instance: every node's reward (``NaN`` where it was never known),
* the ordered clicks (the computations) — the revealed values are the
  instance's rewards at the clicked nodes,
* the final choice: the path from the root to a leaf,
* the participant, the block and the trial number.

It scores itself under a *cognition-level* human model (e.g.
:class:`human_models.MetaBoltzmann`): every trial is a sequence of meta-level
decisions — click a node, or stop and act (action 0) — made in the belief
state of what had been revealed so far, and the log-likelihood is the sum of
the log-probabilities the model gives those decisions
(``human.meta_log_probs(mdp, reward, beliefs)``).

Files: a versioned ``.npz`` (:meth:`DeliberationTraces.save`, read back with
:func:`demos.load`), and two plain formats anyone can write (one trial per
record; see :func:`load_traces`):

* ``.jsonl``: an optional header line ``{"format": "pluggable-irl/deliberation-traces",
  "version": 1, "parents": [...], "fee": 1.0}``, then one object per trial
  ``{"participant": "p1", "block": "test", "trial": 3, "rewards": [0, -2, null, ...],
  "clicks": [3, 7], "path": [0, 1, 2, 3]}`` (``null`` for a reward never known);
* ``.csv``: header ``participant,block,trial,rewards,clicks,path`` with the
  lists written as space-separated numbers (``NA`` for an unknown reward, an
  empty cell for no clicks), optionally preceded by a comment line
  ``# parents=-1 0 1 2 2 ...; fee=1``.

:func:`load_mouselab` reads the jsPsych export of the Mouselab-MDP plugin.

References:
    Callaway, Lieder, Das, Gul, Krueger & Griffiths (2018), "A resource-rational
    analysis of human planning", CogSci. Jain et al. (2023), "A computational
    process-tracing method for measuring people's planning strategies and how they
    change over time", Behavior Research Methods.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from demos.io import register_format, register_text_reader
from demos.trajectories import DemoValidationError

__all__ = ["TraceSet", "DeliberationTraces", "load_mouselab", "load_traces", "FORMAT", "MOUSELAB_312_PARENTS"]

#: Format string of the ``.npz`` / ``.jsonl`` files of :class:`DeliberationTraces`.
FORMAT = "pluggable-irl/deliberation-traces"
#: The 13-node tree of the "312" Mouselab experiment: root 0, branches 1→2→{3,4}, 5→6→{7,8}, 9→10→{11,12}.
MOUSELAB_312_PARENTS = (-1, 0, 1, 2, 2, 0, 5, 6, 6, 0, 9, 10, 10)


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def check_parents(parents: Any) -> np.ndarray:
    """Validate a tree given as parent ids and return it as ``int64``.

    Node 0 is the root (``parents[0] == -1``); every other node's parent has a
    smaller id, so a single pass from the root visits parents before children.

    Args:
        parents: ``(N,)`` integer node ids (integral floats are accepted).

    Returns:
        ``(N,)`` ``int64`` parent ids.

    Raises:
        DemoValidationError: naming the first entry that breaks a rule.

    Example:
        >>> from demos.deliberation import check_parents
        >>> check_parents([-1, 0, 1, 0]).tolist()
        [-1, 0, 1, 0]
    """
    p = np.asarray(parents)
    if p.ndim != 1 or p.size < 2 or not (np.issubdtype(p.dtype, np.integer)
                                        or (np.issubdtype(p.dtype, np.floating) and np.all(p == np.round(p)))):
        raise DemoValidationError(f"parents must be a 1-D list of integer node ids (-1 for the root), at least 2 "
                                  f"nodes: got {parents!r}")
    p = p.astype(np.int64)
    if p[0] != -1:
        raise DemoValidationError(f"parents[0] must be -1 (node 0 is the root): got {p[0]}")
    for k in range(1, p.size):
        if not 0 <= p[k] < k:
            raise DemoValidationError(f"parents[{k}] must be a node id in 0..{k - 1} (a parent has a smaller id): "
                                      f"got {p[k]}")
    return p


def _tree_info(parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth of every node and the leaf mask."""
    depth = np.zeros(parents.size, np.int64)
    for k in range(1, parents.size):
        depth[k] = depth[parents[k]] + 1
    leaf = np.ones(parents.size, bool)
    leaf[parents[1:]] = False
    return depth, leaf


def _check_trial(where: str, rewards: np.ndarray, clicks: Sequence[int], path: Sequence[int],
                 parents: np.ndarray, leaf: np.ndarray) -> None:
    """The rules of one trial; ``where`` names it in messages (e.g. ``"trial 3"``)."""
    n = parents.size
    seen: dict[int, int] = {}
    for k, c in enumerate(clicks):
        if not 0 <= c < n:
            raise DemoValidationError(f"{where}: click {k} is node {c}, not a node of the {n}-node tree "
                                      f"(valid ids 1..{n - 1})")
        if c == 0:
            raise DemoValidationError(f"{where}: click {k} is on the root (node 0), whose reward is known; "
                                      f"clicks reveal nodes 1..{n - 1}")
        if c in seen:
            raise DemoValidationError(f"{where}: node {c} is clicked twice (clicks {seen[c]} and {k}); a revealed "
                                      f"node cannot be revealed again")
        seen[c] = k
        if not np.isfinite(rewards[c]):
            raise DemoValidationError(f"{where}: node {c} is clicked but its reward is not recorded (NaN)")
    if len(path):
        if path[0] != 0:
            raise DemoValidationError(f"{where}: the path must start at the root (node 0): got {list(path)}")
        for a, b in zip(path[:-1], path[1:]):
            if not 0 <= b < n or parents[b] != a:
                raise DemoValidationError(f"{where}: path {list(path)} is not a root-to-leaf path of the tree: "
                                          f"node {b} is not a child of node {a}")
        if not leaf[path[-1]]:
            raise DemoValidationError(f"{where}: path {list(path)} ends at node {path[-1]}, which is not a leaf")


class TraceSet:
    """What every kind of deliberation traces shares: participants, selection and scoring of its decisions.

    A subclass stores ``participant`` and ``block`` (one label per trial) and
    implements ``subset(index)``, ``decisions() -> (beliefs, actions, trial_of)``
    and ``n_computations`` (computations per trial); beliefs are in the format
    of the meta-level problem the traces were recorded on.
    """

    def participants(self) -> list[str]:
        """Participant ids in order of first appearance."""
        _, first = np.unique(self.participant, return_index=True)
        return [str(self.participant[i]) for i in sorted(first)]

    def select(self, *, participant: Any = None, block: Any = None) -> Any:
        """Trials of one participant (or a list of them) and/or one block (or a list).

        Raises:
            DemoValidationError: nothing matches (the message lists what exists).
        """
        mask = np.ones(len(self), bool)
        for name, want in (("participant", participant), ("block", block)):
            if want is None:
                continue
            wanted = [str(w) for w in (want if isinstance(want, (list, tuple, set, np.ndarray)) else [want])]
            have = getattr(self, name)
            mask &= np.isin(have, wanted)
            if not np.isin(have, wanted).any():
                known = sorted(set(have.tolist()))
                shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
                raise DemoValidationError(f"no trials with {name} in {wanted}; known: {shown}")
        if not mask.any():
            raise DemoValidationError(f"no trials with participant {participant!r} and block {block!r}")
        return self.subset(mask)

    def log_likelihood_under(self, human: Any, mdp: Any, reward: Any) -> Any:
        """``sum_d log pi(action_d | belief_d)`` under the human's meta-level policy; differentiable.

        Args:
            human: a cognition-level human model with
                ``meta_log_probs(mdp, reward, beliefs) -> (..., D, n_actions)``
                (e.g. :class:`human_models.MetaBoltzmann`).
            mdp: the environment (with a meta-level problem ``mdp.meta``).
            reward: the reward the human acts on, possibly a batch ``(B, S, A)``.

        Returns:
            A torch scalar, or ``(B,)`` for a batch.

        Raises:
            DemoValidationError: traces recorded on another problem than the environment's.
            TypeError: a human model without a meta-level policy.
        """
        import torch

        self.validate(mdp.n_states, mdp.n_actions)
        self._check_problem(mdp)
        score = getattr(human, "meta_log_probs", None)
        if score is None:
            raise TypeError(f"{type(human).__name__} has no meta-level policy (meta_log_probs); deliberation traces "
                            f"are scored by a cognition-level model such as human_models.MetaBoltzmann")
        beliefs, actions, _ = self.decisions()
        logp = score(mdp, reward, beliefs)
        picked = logp[..., torch.arange(actions.size), torch.from_numpy(actions.copy())]
        return picked.sum(-1)

    def _check_problem(self, mdp: Any) -> None:
        """Raise if the traces were recorded on another meta-level problem than ``mdp.meta``."""

    def _labels(self, N: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Validated ``participant`` and ``block`` labels and ``trial`` numbers of ``N`` trials."""
        labels = {}
        for name, default in (("participant", "0"), ("block", "")):
            v = getattr(self, name)
            a = np.full(N, default) if v is None else np.asarray(v).astype(str)
            if a.shape != (N,):
                raise DemoValidationError(f"{name} must have one entry per trial ({N}): got shape {a.shape}")
            labels[name] = a
        tr = np.arange(N) if self.trial is None else np.asarray(self.trial)
        if tr.shape != (N,) or not np.issubdtype(tr.dtype, np.integer):
            raise DemoValidationError(f"trial must be {N} integers (one per trial): got {self.trial!r}")
        return labels, tr

    @property
    def n_observations(self) -> int:
        """Number of scored meta-level decisions: every computation and every stop."""
        return int(np.sum(self.n_computations) + len(self))


@dataclass(frozen=True, eq=False)
class DeliberationTraces(TraceSet):
    """Recorded deliberation: per trial, the instance, the ordered clicks and the chosen path.

    Attributes:
        parents: ``(n,)`` the tree (parent of every node; node 0 is the root, ``-1``).
        rewards: ``(N, n)`` reward of every node on every trial (``NaN`` where
            unknown; the root's is 0). Clicked nodes must have a reward.
        clicks: flat clicked node ids, trial after trial, ``(sum n_clicks,)``.
        n_clicks: ``(N,)`` number of clicks of each trial.
        paths: ``(N, H + 1)`` node ids from the root to the chosen leaf, ``-1``
            padded (a row of ``-1`` when the choice was not recorded).
        participant: ``(N,)`` participant ids (strings).
        block: ``(N,)`` block labels (e.g. ``"training"``, ``"test"``).
        trial: ``(N,)`` trial numbers (position in the session).
        fee: price of a click in points (for scores).

    Raises:
        DemoValidationError: naming the trial and the rule (a click on the
            root, a node clicked twice, a click on a node without a reward, a
            path that is not root-to-leaf, shapes that do not agree).

    Example:
        >>> import demos
        >>> t = demos.DeliberationTraces.from_trials(
        ...     parents=[-1, 0, 0], rewards=[[0, 5, -5], [0, -5, 5]],
        ...     clicks=[[1], []], paths=[[0, 1], [0, 2]])
        >>> len(t), t.n_observations, t.scores().tolist()
        (2, 3, [4.0, 5.0])
    """

    parents: Any
    rewards: Any
    clicks: Any
    n_clicks: Any
    paths: Any
    participant: Any = None
    block: Any = None
    trial: Any = None
    fee: float = 1.0

    def __post_init__(self) -> None:
        parents = check_parents(self.parents)
        n = parents.size
        r = np.array(self.rewards, dtype=np.float64)
        if r.ndim != 2 or r.shape[1] != n or r.shape[0] < 1:
            raise DemoValidationError(f"rewards must have shape (N, n_nodes) = (N >= 1, {n}): got {r.shape}")
        if np.isinf(r).any():
            i, j = np.argwhere(np.isinf(r))[0]
            raise DemoValidationError(f"trial {i}: the reward of node {j} is infinite")
        r[:, 0] = 0.0
        N = r.shape[0]
        nc = np.asarray(self.n_clicks)
        if nc.shape != (N,) or not np.issubdtype(nc.dtype, np.integer) or np.any(nc < 0):
            raise DemoValidationError(f"n_clicks must be {N} integers >= 0 (one per trial): got {self.n_clicks!r}")
        cl = np.asarray(self.clicks)
        if cl.size == 0:
            cl = cl.astype(np.int64)
        if cl.ndim != 1 or not np.issubdtype(cl.dtype, np.integer):
            raise DemoValidationError(f"clicks must be a flat array of integer node ids: got dtype {cl.dtype}, "
                                      f"shape {cl.shape}")
        if cl.size != int(nc.sum()):
            raise DemoValidationError(f"clicks has {cl.size} entries but n_clicks sums to {int(nc.sum())}")
        p = np.asarray(self.paths)
        if p.ndim != 2 or p.shape[0] != N or not np.issubdtype(p.dtype, np.integer):
            raise DemoValidationError(f"paths must be an integer array (N, path length) = ({N}, ...), -1 padded: "
                                      f"got dtype {p.dtype}, shape {p.shape}")
        fee = float(self.fee)
        if not math.isfinite(fee) or fee < 0:
            raise DemoValidationError(f"fee (price of a click) must be a finite number >= 0: got {self.fee!r}")
        _, leaf = _tree_info(parents)
        off = np.concatenate([[0], np.cumsum(nc)])
        for i in range(N):
            path = p[i][p[i] >= 0]
            if np.any(p[i][len(path):] >= 0) or (len(path) and np.any(p[i][:len(path)] < 0)):
                raise DemoValidationError(f"trial {i}: paths row {p[i].tolist()} must be node ids followed by "
                                          f"-1 padding")
            _check_trial(f"trial {i}", r[i], cl[off[i]:off[i + 1]].tolist(), path.tolist(), parents, leaf)
        labels, tr = self._labels(N)
        for name, val in (("parents", parents), ("rewards", r), ("clicks", cl.astype(np.int64)),
                          ("n_clicks", nc.astype(np.int64)), ("paths", p.astype(np.int64)),
                          ("participant", labels["participant"]), ("block", labels["block"]),
                          ("trial", tr.astype(np.int64))):
            object.__setattr__(self, name, _ro(val))
        object.__setattr__(self, "fee", fee)
        object.__setattr__(self, "_memo", {})

    # ------------------------------------------------------------------ building
    @classmethod
    def from_trials(cls, parents: Any, rewards: Any, clicks: Sequence[Sequence[int]], paths: Sequence[Sequence[int]],
                    *, participant: Any = None, block: Any = None, trial: Any = None,
                    fee: float = 1.0) -> "DeliberationTraces":
        """Build from per-trial lists (ragged clicks and paths)."""
        clicks = [list(map(int, c)) for c in clicks]
        width = max([len(p) for p in paths] + [1])
        P = np.full((len(paths), width), -1, np.int64)
        for i, p in enumerate(paths):
            P[i, :len(p)] = p
        flat = np.array([c for cs in clicks for c in cs], np.int64)
        return cls(parents=parents, rewards=rewards, clicks=flat, n_clicks=np.array([len(c) for c in clicks], np.int64),
                   paths=P, participant=participant, block=block, trial=trial, fee=fee)

    @classmethod
    def concat(cls, parts: Sequence["DeliberationTraces"]) -> "DeliberationTraces":
        """Join datasets recorded on the same tree."""
        if not parts:
            raise DemoValidationError("concat needs at least one DeliberationTraces")
        first = parts[0]
        for k, t in enumerate(parts[1:], 1):
            if not np.array_equal(t.parents, first.parents):
                raise DemoValidationError(f"part {k} was recorded on another tree than part 0")
        width = max(t.paths.shape[1] for t in parts)
        paths = np.concatenate([np.pad(t.paths, ((0, 0), (0, width - t.paths.shape[1])), constant_values=-1)
                                for t in parts])
        return cls(parents=first.parents, rewards=np.concatenate([t.rewards for t in parts]),
                   clicks=np.concatenate([t.clicks for t in parts]),
                   n_clicks=np.concatenate([t.n_clicks for t in parts]),
                   paths=paths, participant=np.concatenate([t.participant for t in parts]),
                   block=np.concatenate([t.block for t in parts]), trial=np.concatenate([t.trial for t in parts]),
                   fee=first.fee)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return int(self.n_clicks.size)

    @property
    def n_nodes(self) -> int:
        """Number of nodes of the tree (root included)."""
        return int(self.parents.size)

    @property
    def click_offsets(self) -> np.ndarray:
        """``(N + 1,)``: trial ``i``'s clicks are ``clicks[click_offsets[i]:click_offsets[i + 1]]``."""
        return np.concatenate([[0], np.cumsum(self.n_clicks)])

    def trial_clicks(self, i: int) -> np.ndarray:
        """The clicks of trial ``i``, in order."""
        off = self.click_offsets
        return self.clicks[off[i]:off[i + 1]]

    def trial_path(self, i: int) -> np.ndarray:
        """The chosen path of trial ``i`` (empty if not recorded)."""
        return self.paths[i][self.paths[i] >= 0]

    @property
    def depth(self) -> np.ndarray:
        """``(n,)`` depth of every node."""
        return _tree_info(self.parents)[0]

    @property
    def leaves(self) -> np.ndarray:
        """``(n,)`` leaf mask."""
        return _tree_info(self.parents)[1]

    @property
    def n_computations(self) -> np.ndarray:
        """``(N,)`` computations (clicks) of each trial: ``n_clicks``."""
        return self.n_clicks

    def subset(self, index: Any) -> "DeliberationTraces":
        """The trials selected by ``index`` (indices, a slice or a boolean mask), in that order."""
        idx = np.arange(len(self))[index]
        idx = np.atleast_1d(idx)
        if idx.size == 0:
            raise DemoValidationError("the selection contains no trials")
        off = self.click_offsets
        flat = (np.concatenate([self.clicks[off[i]:off[i + 1]] for i in idx]) if idx.size else
                np.zeros(0, np.int64))
        return DeliberationTraces(parents=self.parents, rewards=self.rewards[idx], clicks=flat.astype(np.int64),
                                  n_clicks=self.n_clicks[idx], paths=self.paths[idx],
                                  participant=self.participant[idx], block=self.block[idx], trial=self.trial[idx],
                                  fee=self.fee)

    # ------------------------------------------------------------------ meta-level decisions
    def decisions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every meta-level decision: ``(beliefs (D, n), actions (D,), trial_of (D,))``.

        Trial ``i`` with clicks ``c_1 .. c_k`` gives ``k + 1`` decisions: click
        ``c_1`` with nothing revealed, ..., click ``c_k``, then stop (action 0)
        with all ``k`` values revealed. Beliefs hold the revealed rewards and
        ``NaN`` for hidden nodes (the root is 0).
        """
        memo = self._memo
        if "decisions" not in memo:
            N, n = len(self), self.n_nodes
            D = self.n_observations
            beliefs = np.full((D, n), np.nan)
            beliefs[:, 0] = 0.0
            actions = np.zeros(D, np.int64)
            trial_of = np.repeat(np.arange(N), self.n_clicks + 1)
            off = self.click_offsets
            row = 0
            for i in range(N):
                cl = self.clicks[off[i]:off[i + 1]]
                for k in range(cl.size + 1):
                    if k:
                        beliefs[row, cl[:k]] = self.rewards[i, cl[:k]]
                    actions[row] = cl[k] if k < cl.size else 0
                    row += 1
            for a in (beliefs, actions, trial_of):
                a.setflags(write=False)
            memo["decisions"] = (beliefs, actions, trial_of)
        return memo["decisions"]

    def validate(self, n_states: int, n_actions: int, *, horizon: int | None = None) -> "DeliberationTraces":
        """Check the traces against an environment's size (its states are the tree's nodes).

        Raises:
            DemoValidationError: a tree with another number of nodes.
        """
        if int(n_states) != self.n_nodes:
            raise DemoValidationError(f"the traces were recorded on a {self.n_nodes}-node tree but the environment "
                                      f"has {n_states} states (nodes)")
        return self

    def _check_problem(self, mdp: Any) -> None:
        tree = getattr(getattr(mdp, "meta", None), "tree", None)
        if tree is not None and not np.array_equal(np.asarray(tree.parents), self.parents):
            raise DemoValidationError(f"the traces were recorded on another tree than environment {mdp.name!r}'s "
                                      f"(parents {self.parents.tolist()} vs {np.asarray(tree.parents).tolist()})")

    # ------------------------------------------------------------------ statistics
    def path_rewards(self) -> np.ndarray:
        """``(N,)`` points collected on the chosen path (``NaN`` when the path or a reward on it is unknown)."""
        out = np.full(len(self), np.nan)
        for i in range(len(self)):
            p = self.trial_path(i)
            if p.size:
                out[i] = self.rewards[i, p].sum()
        return out

    def scores(self) -> np.ndarray:
        """``(N,)`` trial payoff: path points minus ``fee`` per click."""
        return self.path_rewards() - self.fee * self.n_clicks

    def summary(self) -> dict[str, Any]:
        """Descriptive statistics of the deliberation.

        Returns:
            ``n_trials``, ``n_participants``, ``mean_clicks``, ``no_click_share``
            (trials without a click), ``first_click_depth_share`` (depth -> share of
            first clicks, among trials with a click), ``first_click_leaf_share``,
            ``leaf_click_share`` (share of all clicks on leaves), ``mean_score``
            and ``repeated_clicks`` (always 0: validation forbids them).
        """
        depth, leaf = _tree_info(self.parents)
        off = self.click_offsets
        has = self.n_clicks > 0
        first = self.clicks[off[:-1][has]]
        shares = {int(k): float(np.mean(depth[first] == k)) if first.size else float("nan")
                  for k in range(1, int(depth.max()) + 1)}
        return {"n_trials": len(self), "n_participants": len(self.participants()),
                "mean_clicks": float(self.n_clicks.mean()), "no_click_share": float(np.mean(~has)),
                "first_click_depth_share": shares,
                "first_click_leaf_share": float(np.mean(leaf[first])) if first.size else float("nan"),
                "leaf_click_share": float(np.mean(leaf[self.clicks])) if self.clicks.size else float("nan"),
                "mean_score": float(np.nanmean(self.scores())), "repeated_clicks": 0}

    # ------------------------------------------------------------------ files
    def _arrays(self) -> dict[str, np.ndarray]:
        return {"parents": self.parents, "rewards": self.rewards, "clicks": self.clicks, "n_clicks": self.n_clicks,
                "paths": self.paths, "participant": self.participant, "block": self.block, "trial": self.trial}

    def _save_npz(self, path: Any) -> None:
        from demos.io import save_arrays

        save_arrays(path, FORMAT, self._arrays(), meta={"fee": self.fee})

    def save(self, path: str | Path) -> None:
        """Write ``.npz`` (versioned, no pickle), ``.jsonl`` or ``.csv`` atomically, by extension.

        Example:
            >>> import demos, os, tempfile
            >>> t = demos.DeliberationTraces.from_trials([-1, 0, 0], [[0, 5, -5]], [[1]], [[0, 1]])
            >>> p = os.path.join(tempfile.mkdtemp(), "t.jsonl"); t.save(p)
            >>> demos.load_traces(p).clicks.tolist()
            [1]
        """
        from demos.io import FORMAT_VERSION, atomic_write

        path = Path(path)
        if path.suffix == ".npz":
            self._save_npz(path)
            return
        rows = []
        for i in range(len(self)):
            rows.append({"participant": str(self.participant[i]), "block": str(self.block[i]),
                         "trial": int(self.trial[i]),
                         "rewards": [None if not np.isfinite(x) else _num(x) for x in self.rewards[i]],
                         "clicks": self.trial_clicks(i).tolist(), "path": self.trial_path(i).tolist()})
        if path.suffix == ".jsonl":
            def write(f: Any) -> None:
                f.write(json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "parents": self.parents.tolist(),
                                    "fee": self.fee}) + "\n")
                for row in rows:
                    f.write(json.dumps(row) + "\n")
        elif path.suffix == ".csv":
            def write(f: Any) -> None:
                f.write(f"# parents={' '.join(map(str, self.parents.tolist()))}; fee={_num(self.fee)}\n")
                w = csv.writer(f)
                w.writerow(["participant", "block", "trial", "rewards", "clicks", "path"])
                for row in rows:
                    w.writerow([row["participant"], row["block"], row["trial"],
                                " ".join("NA" if x is None else str(x) for x in row["rewards"]),
                                " ".join(map(str, row["clicks"])), " ".join(map(str, row["path"]))])
        else:
            raise DemoValidationError(f"{path}: unknown extension {path.suffix!r} for deliberation traces; known: "
                                      f".csv, .jsonl, .npz")
        atomic_write(path, write, binary=False)

    def __repr__(self) -> str:
        return (f"DeliberationTraces(trials={len(self)}, participants={len(self.participants())}, "
                f"nodes={self.n_nodes}, clicks={self.clicks.size})")


def _num(x: float) -> Any:
    x = float(x)
    return int(x) if x.is_integer() else x


def _load_npz(arrays: dict, meta: dict) -> DeliberationTraces:
    need = {"parents", "rewards", "clicks", "n_clicks", "paths"}
    if not need <= set(arrays):
        raise DemoValidationError(f"deliberation-traces file lacks arrays {sorted(need - set(arrays))}")
    return DeliberationTraces(parents=arrays["parents"], rewards=arrays["rewards"], clicks=arrays["clicks"],
                              n_clicks=arrays["n_clicks"], paths=arrays["paths"], participant=arrays.get("participant"),
                              block=arrays.get("block"), trial=arrays.get("trial"), fee=float(meta.get("fee", 1.0)))


# ------------------------------------------------------------------------ plain files
def _int_list(value: Any, what: str) -> list[int]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list):
        raise DemoValidationError(f"{what} must be a list of integer node ids: got {value!r}")
    out = []
    for x in value:
        try:
            f = float(x)
        except (TypeError, ValueError):
            raise DemoValidationError(f"{what} must be a list of integer node ids: got {x!r}") from None
        if isinstance(x, bool) or not f.is_integer():
            raise DemoValidationError(f"{what} must be a list of integer node ids: got {x!r}")
        out.append(int(f))
    return out


def _reward_list(value: Any, what: str) -> list[float]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list):
        raise DemoValidationError(f"{what} must be a list of numbers: got {value!r}")
    out = []
    for x in value:
        if x is None or (isinstance(x, str) and x.strip().upper() in ("NA", "NAN", "")):
            out.append(float("nan"))
            continue
        try:
            f = float(x)
        except (TypeError, ValueError):
            raise DemoValidationError(f"{what} must be a list of numbers (NA or null if unknown): got {x!r}") from None
        if isinstance(x, bool) or math.isinf(f):
            raise DemoValidationError(f"{what} must be finite numbers: got {x!r}")
        out.append(f)
    return out


def _from_records(records: Iterable[tuple[str, dict]], parents: np.ndarray, fee: float, source: str
                  ) -> DeliberationTraces:
    _, leaf = _tree_info(parents)
    rewards, clicks, paths, part, block, trial = [], [], [], [], [], []
    for where, rec in records:
        for key in ("rewards", "clicks", "path"):
            if key not in rec:
                raise DemoValidationError(f"{source}, {where}: missing field {key!r}")
        r = _reward_list(rec["rewards"], f"{source}, {where}: rewards")
        if len(r) != parents.size:
            raise DemoValidationError(f"{source}, {where}: rewards has {len(r)} entries but the tree has "
                                      f"{parents.size} nodes (pass parents=... for another tree)")
        r[0] = 0.0
        c = _int_list(rec["clicks"], f"{source}, {where}: clicks")
        p = _int_list(rec["path"], f"{source}, {where}: path")
        _check_trial(f"{source}, {where}", np.array(r), c, p, parents, leaf)
        rewards.append(r)
        clicks.append(c)
        paths.append(p)
        part.append(str(rec.get("participant", "0")))
        block.append(str(rec.get("block", "")))
        t = rec.get("trial", len(trial))
        try:
            trial.append(int(float(t)))
        except (TypeError, ValueError):
            raise DemoValidationError(f"{source}, {where}: trial must be an integer: got {t!r}") from None
    if not rewards:
        raise DemoValidationError(f"{source}: contains no trials")
    return DeliberationTraces.from_trials(parents, np.array(rewards), clicks, paths, participant=part, block=block,
                                          trial=np.array(trial, np.int64), fee=fee)


def load_traces(path: str | Path, *, parents: Any = None, fee: float | None = None) -> DeliberationTraces:
    """Read deliberation traces from ``.npz``, ``.jsonl`` or ``.csv`` (the plain formats of the module docstring).

    Args:
        path: the file.
        parents: the tree, for files that do not carry it (default: the 13-node
            312 tree, :data:`MOUSELAB_312_PARENTS`).
        fee: price of a click (default: the file's, else 1).

    Returns:
        :class:`DeliberationTraces`.

    Raises:
        demos.DemoFileError: the file is missing or unreadable, or a record breaks
            a rule; the message names the file and the line or row.
    """
    from demos.io import DemoFileError, jsonl_records, load_arrays

    path = Path(path)
    if not path.exists():
        raise DemoFileError(f"{path}: no such file")
    try:
        if path.suffix == ".npz":
            _, arrays, meta = load_arrays(path, FORMAT)
            t = _load_npz(arrays, meta)
            return t if fee is None else DeliberationTraces(**{**t._arrays(), "fee": fee})
        tree = None if parents is None else check_parents(parents)
        file_fee = None
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        if path.suffix == ".jsonl":
            records = []
            for lineno, rec in jsonl_records(path, text.splitlines(), fmt=FORMAT, data_key="clicks"):
                if lineno == 0:  # the header
                    if tree is None and "parents" in rec:
                        tree = check_parents(rec["parents"])
                    file_fee = rec.get("fee", file_fee)
                    continue
                records.append((f"line {lineno}", rec))
        elif path.suffix == ".csv":
            lines = text.splitlines()
            body = []
            for line in lines:
                if line.startswith("#"):
                    for part in line[1:].split(";"):
                        key, _, val = part.partition("=")
                        if key.strip() == "parents" and tree is None:
                            tree = check_parents(_int_list(val, f"{path}: parents"))
                        elif key.strip() == "fee":
                            try:
                                file_fee = float(val)
                            except ValueError:
                                raise DemoFileError(f"{path}: the '# fee=' comment must give a number: "
                                                    f"got {val.strip()!r}") from None
                else:
                    body.append(line)
            reader = csv.DictReader(io.StringIO("\n".join(body)))
            need = {"rewards", "clicks", "path"}
            if reader.fieldnames is None or not need <= set(reader.fieldnames):
                raise DemoFileError(f"{path}: the header must name the columns {sorted(need)} (and optionally "
                                    f"participant, block, trial): got {reader.fieldnames}")
            records = [(f"row {k}", row) for k, row in enumerate(reader, 1)]
        else:
            raise DemoFileError(f"{path}: unknown extension {path.suffix!r} for deliberation traces; known: "
                                f".csv, .jsonl, .npz")
        tree = tree if tree is not None else np.array(MOUSELAB_312_PARENTS)
        try:
            use_fee = fee if fee is not None else (float(file_fee) if file_fee is not None else 1.0)
        except (TypeError, ValueError):
            raise DemoFileError(f"{path}: fee must be a number: got {file_fee!r}") from None
        return _from_records(records, tree, use_fee, str(path))
    except csv.Error as e:
        raise DemoFileError(f"{path}: not valid CSV ({e})") from None
    except OSError as e:
        raise DemoFileError(f"{path}: cannot read ({e.strerror or e})") from None
    except DemoValidationError as e:
        raise DemoFileError(str(e) if str(e).startswith(str(path)) else f"{path}: {e}") from None
    except UnicodeDecodeError:
        raise DemoFileError(f"{path}: not a UTF-8 text file") from None


# ------------------------------------------------------------------------ jsPsych export
_MOUSELAB_COLUMNS = ("pid", "block", "trial_index", "state_rewards", "queries", "path")


def _literal(text: str, what: str) -> Any:
    try:
        return ast.literal_eval(text)  # literals only: never runs code
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
        short = text if len(text) < 60 else text[:57] + "..."
        raise DemoValidationError(f"{what} is not a Python literal: {short!r}") from None


def _structure_parents(structure: Any) -> np.ndarray:
    """Parents from a Mouselab structure JSON (``{"graph": {"0": {"up": [0, "1"], ...}, ...}}``) or a path to one."""
    if isinstance(structure, (str, Path)):
        with open(structure, encoding="utf-8") as f:
            structure = json.load(f)
    graph = structure.get("graph") if isinstance(structure, dict) else None
    if not isinstance(graph, dict):
        raise DemoValidationError("structure must have a 'graph' mapping node -> {direction: [cost, child]}")
    n = len(graph)
    parents = [-1] * n
    for node, moves in graph.items():
        for _, (_, child) in moves.items():
            parents[int(child)] = int(node)
    return check_parents(parents)


def load_mouselab(path: str | Path, *, structure: Any = None, fee: float = 1.0, blocks: Sequence[str] | None = None,
                  check_scores: bool = True) -> DeliberationTraces:
    """Read the jsPsych export of the Mouselab-MDP plugin (one row per trial) into :class:`DeliberationTraces`.

    Columns used: ``pid``, ``block``, ``trial_index``, ``state_rewards`` (Python
    list literal, ``''`` for the root), ``queries`` (dict literal;
    ``queries['click']['state']['target']`` are the clicked node ids in order),
    ``path`` (node ids visited, the root listed twice), and ``score`` when
    present (checked against path reward minus ``fee`` per click). Literals are
    read with :func:`ast.literal_eval`, which never runs code. Gzip files
    (``.gz``) are read directly.

    Args:
        path: the CSV (or ``.csv.gz``) file.
        structure: the tree, as a Mouselab structure JSON (dict or path) with a
            ``graph``; default the 13-node 312 tree.
        fee: price of a click in points.
        blocks: keep only these blocks (e.g. ``["test"]``); default all.
        check_scores: verify every row's ``score``.

    Returns:
        :class:`DeliberationTraces` (participant = ``pid``, trial = ``trial_index``).

    Raises:
        demos.DemoFileError: a missing file or column, or a malformed row; the
            message names the row (1 = the first trial after the header), its
            ``pid`` and ``trial_index``, and the rule it breaks.

    Example:
        >>> import demos
        >>> t = demos.load_mouselab("../shared/extdata/mouselab-planning-depth/methods_main/mouselab-mdp.csv.gz",
        ...                         blocks=["test"])  # doctest: +SKIP
        >>> round(t.summary()["mean_clicks"], 2)  # doctest: +SKIP
        3.9
    """
    from demos.io import DemoFileError

    path = Path(path)
    if not path.exists():
        raise DemoFileError(f"{path}: no such file")
    try:
        parents = np.array(MOUSELAB_312_PARENTS) if structure is None else _structure_parents(structure)
    except (OSError, json.JSONDecodeError, DemoValidationError, ValueError, TypeError) as e:
        raise DemoFileError(f"{path}: cannot read the tree structure ({e})") from None
    _, leaf = _tree_info(parents)
    n = parents.size
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
            fields = set(rows[0].keys()) if rows else set()
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as e:
        raise DemoFileError(f"{path}: not a readable CSV file ({e})") from None
    if not rows:
        raise DemoFileError(f"{path}: contains no trials")
    missing = [c for c in _MOUSELAB_COLUMNS if c not in fields]
    if missing:
        raise DemoFileError(f"{path}: missing columns {missing} (a Mouselab-MDP jsPsych export has "
                            f"{list(_MOUSELAB_COLUMNS)})")
    rewards, clicks, paths, part, block, trial = [], [], [], [], [], []
    for k, row in enumerate(rows, 1):
        where = f"{path}, row {k} (pid {row.get('pid')!r}, trial_index {row.get('trial_index')!r})"
        try:
            if blocks is not None and row["block"] not in blocks:
                continue
            pid = row["pid"]
            try:
                pid_num = float(pid)
            except (TypeError, ValueError):
                raise DemoValidationError(f"pid must be an integer: got {pid!r}") from None
            if not pid_num.is_integer():
                raise DemoValidationError(f"pid must be an integer: got {pid!r}")
            if not row["block"]:
                raise DemoValidationError("block is empty")
            try:
                ti = float(row["trial_index"])
            except (TypeError, ValueError):
                raise DemoValidationError(f"trial_index must be an integer: got {row['trial_index']!r}") from None
            if not ti.is_integer():
                raise DemoValidationError(f"trial_index must be an integer: got {row['trial_index']!r}")
            sr = _literal(row["state_rewards"], "state_rewards")
            if not isinstance(sr, (list, tuple)) or len(sr) != n:
                raise DemoValidationError(f"state_rewards must list {n} node rewards: got "
                                          f"{len(sr) if isinstance(sr, (list, tuple)) else type(sr).__name__}")
            r = [0.0]
            for j, x in enumerate(sr[1:], 1):
                if x is None or x == "":
                    r.append(float("nan"))
                elif isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
                    r.append(float(x))
                else:
                    raise DemoValidationError(f"state_rewards[{j}] must be a number: got {x!r}")
            q = _literal(row["queries"], "queries")
            try:
                target = q["click"]["state"]["target"]
            except (KeyError, TypeError):
                raise DemoValidationError("queries has no ['click']['state']['target'] list of clicked nodes") from None
            c = _int_list(list(target) if isinstance(target, (list, tuple)) else target, "the clicked nodes")
            pth = _literal(row["path"], "path")
            p = _int_list(list(pth) if isinstance(pth, (list, tuple)) else pth, "path")
            if len(p) >= 2 and p[0] == 0 and p[1] == 0:
                p = p[1:]  # the plugin lists the root twice
            _check_trial("this trial", np.array(r), c, p, parents, leaf)
            if check_scores and row.get("score", "") not in ("", None):
                try:
                    score = float(row["score"])
                except ValueError:
                    raise DemoValidationError(f"score must be a number: got {row['score']!r}") from None
                want = float(np.nansum(np.array(r)[p])) - fee * len(c)
                if abs(score - want) > 1e-6:
                    raise DemoValidationError(f"score {score:g} does not equal the path reward minus {fee:g} per "
                                              f"click ({want:g}); pass check_scores=False to skip this check")
        except DemoValidationError as e:
            raise DemoFileError(f"{where}: {e}") from None
        rewards.append(r)
        clicks.append(c)
        paths.append(p)
        part.append(str(int(pid_num)))
        block.append(row["block"])
        trial.append(int(ti))
    if not rewards:
        raise DemoFileError(f"{path}: no trials in blocks {list(blocks or [])}; the file has blocks "
                            f"{sorted({r['block'] for r in rows})}")
    return DeliberationTraces.from_trials(parents, np.array(rewards), clicks, paths, participant=part, block=block,
                                          trial=np.array(trial, np.int64), fee=fee)


def _is_deliberation_text(path: Path) -> bool:
    """Whether a .csv/.jsonl file holds deliberation traces (see :mod:`demos.deliberation`), by its first lines."""
    try:
        with open(path, encoding="utf-8") as f:
            head = [line for _, line in zip(range(3), f)]
    except (OSError, UnicodeDecodeError):
        return False
    text = "".join(head)
    if path.suffix == ".jsonl":
        return '"pluggable-irl/deliberation-traces"' in text or '"clicks"' in text
    rows = [line for line in head if not line.startswith("#")]
    return text.startswith("# parents=") or (bool(rows) and "clicks" in rows[0].strip().split(","))


def _load_text(path: Path) -> DeliberationTraces:
    return load_traces(path)


register_format(FORMAT, _load_npz)
register_text_reader(".csv", _load_text, sniff=_is_deliberation_text)
register_text_reader(".jsonl", _load_text, sniff=_is_deliberation_text)
