"""Files of :class:`~demos.trajectories.Trajectories`: ``.npz`` and per-episode ``.jsonl`` (formats in :mod:`demos.io`).

Per-step tables (``.csv``, per-step ``.jsonl``) are read and written by :mod:`demos.tables`.

Registers its readers and writers with :mod:`demos.io`, which never imports this module back.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from demos.io import (FORMAT_VERSION, DemoFileError, atomic_write, jsonl_records, register_format,
                      register_text_reader, register_writer, save_arrays)
from demos.trajectories import DemoValidationError, Trajectories

__all__ = ["TRAJECTORIES_FORMAT"]

#: Format string of trajectory files.
TRAJECTORIES_FORMAT = _TRAJ_FORMAT = "pluggable-irl/trajectories"


def _save_npz(d: Trajectories, path: Path) -> None:
    save_arrays(path, _TRAJ_FORMAT, {"states": d.states, "actions": d.actions, "lengths": d.lengths,
                                     "rewards": d.rewards, "terminated": d.terminated, "truncated": d.truncated})


def _save_jsonl(d: Trajectories, path: Path) -> None:
    S, A = d.states.tolist(), d.actions.tolist()
    R = None if d.rewards is None else d.rewards.tolist()
    so, ao = d.state_offsets.tolist(), d.action_offsets.tolist()
    term, trunc = d.terminated.tolist(), d.truncated.tolist()

    def write(f: Any) -> None:
        f.write(json.dumps({"format": _TRAJ_FORMAT, "version": FORMAT_VERSION}) + "\n")
        for i in range(len(d)):
            row: dict[str, Any] = {"states": S[so[i]:so[i + 1]], "actions": A[ao[i]:ao[i + 1]]}
            if R is not None:
                row["rewards"] = R[ao[i]:ao[i + 1]]
            row["terminated"], row["truncated"] = term[i], trunc[i]
            f.write(json.dumps(row) + "\n")

    atomic_write(path, write, binary=False)


def _load_jsonl(path: Path) -> Trajectories:
    S, A, R, term, trunc = [], [], [], [], []
    has_r = None
    with open(path, encoding="utf-8") as f:
        for lineno, row in jsonl_records(path, f, fmt=_TRAJ_FORMAT, data_key="states"):
            if lineno == 0:
                continue
            for key in ("states", "actions"):
                if key not in row or not isinstance(row[key], list):
                    raise DemoFileError(f"{path}, line {lineno}: missing list field {key!r}")
                if not all(isinstance(x, int) and not isinstance(x, bool) for x in row[key]):
                    raise DemoFileError(f"{path}, line {lineno}: {key!r} must be a list of integer ids")
            if len(row["states"]) != len(row["actions"]) + 1:
                raise DemoFileError(f"{path}, line {lineno}: need one more state than actions: got "
                                    f"{len(row['states'])} states, {len(row['actions'])} actions")
            if has_r is None:
                has_r = "rewards" in row
            if has_r != ("rewards" in row):
                raise DemoFileError(f"{path}, line {lineno}: 'rewards' must be given for every episode or none")
            if has_r:
                r = row["rewards"]
                if not isinstance(r, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                      and math.isfinite(x) for x in r):
                    raise DemoFileError(f"{path}, line {lineno}: 'rewards' must be a list of finite numbers: "
                                        f"got {json.dumps(r)[:60]}")
                R.append(r)
            S.append(row["states"]); A.append(row["actions"])
            for key, out in (("terminated", term), ("truncated", trunc)):
                v = row.get(key, False)
                if not isinstance(v, bool):
                    raise DemoFileError(f"{path}, line {lineno}: {key!r} must be true or false: got {v!r}")
                out.append(v)
    if not S:
        raise DemoFileError(f"{path}: contains no trajectories (the dataset is empty)")
    return Trajectories.from_lists(S, A, rewards=R if has_r else None, terminated=term, truncated=trunc)


def _from_arrays(arrays: dict, meta: dict) -> Trajectories:
    missing = {"states", "actions", "lengths"} - set(arrays)
    if missing:
        raise DemoValidationError(f"trajectories file lacks arrays {sorted(missing)}")
    return Trajectories(states=arrays["states"], actions=arrays["actions"], lengths=arrays["lengths"],
                        rewards=arrays.get("rewards"), terminated=arrays.get("terminated"),
                        truncated=arrays.get("truncated"))


register_format(_TRAJ_FORMAT, _from_arrays)
register_format("", _from_arrays)  # an .npz without a format tag: plain trajectory arrays
register_text_reader(".jsonl", _load_jsonl)
register_writer(Trajectories, ".npz", _save_npz)
register_writer(Trajectories, ".jsonl", _save_jsonl)
