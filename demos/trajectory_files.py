"""Files of :class:`~demos.trajectories.Trajectories`: ``.npz``, ``.jsonl`` and ``.csv`` (formats in :mod:`demos.io`).

Registers its readers and writers with :mod:`demos.io`, which never imports this module back.
"""

from __future__ import annotations

import csv
import json
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
    def write(f: Any) -> None:
        f.write(json.dumps({"format": _TRAJ_FORMAT, "version": FORMAT_VERSION}) + "\n")
        for tr in d:
            row: dict[str, Any] = {"states": tr.states.tolist(), "actions": tr.actions.tolist()}
            if tr.rewards is not None:
                row["rewards"] = tr.rewards.tolist()
            row["terminated"], row["truncated"] = tr.terminated, tr.truncated
            f.write(json.dumps(row) + "\n")

    atomic_write(path, write, binary=False)


def _save_csv(d: Trajectories, path: Path) -> None:
    def write(f: Any) -> None:
        w = csv.writer(f)
        w.writerow(["episode", "step", "state", "action", "reward", "end"])
        for i, tr in enumerate(d):
            L = len(tr.actions)
            for t in range(L + 1):
                a = int(tr.actions[t]) if t < L else ""
                r = repr(float(tr.rewards[t])) if (tr.rewards is not None and t < L) else ""
                end = ("terminated" if tr.terminated else "truncated" if tr.truncated else "") if t == L else ""
                w.writerow([i, t, int(tr.states[t]), a, r, end])

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
            S.append(row["states"]); A.append(row["actions"])
            if has_r:
                R.append(row["rewards"])
            term.append(bool(row.get("terminated", False))); trunc.append(bool(row.get("truncated", False)))
    if not S:
        raise DemoFileError(f"{path}: contains no trajectories (the dataset is empty)")
    return Trajectories.from_lists(S, A, rewards=R if has_r else None, terminated=term, truncated=trunc)


def _load_csv(path: Path) -> Trajectories:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {"episode", "step", "state", "action"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise DemoFileError(f"{path}: header must contain {sorted(need)}: got {reader.fieldnames}")
        episodes: dict[str, dict[str, list]] = {}
        order: list[str] = []
        for lineno, row in enumerate(reader, 2):
            ep = row["episode"]
            if ep not in episodes:
                episodes[ep] = {"s": [], "a": [], "r": [], "end": [""]}
                order.append(ep)
            e = episodes[ep]
            try:
                step = int(row["step"])
                s = int(row["state"])
            except (TypeError, ValueError):
                raise DemoFileError(f"{path}, line {lineno}: step and state must be integers: got "
                                    f"{row['step']!r}, {row['state']!r}") from None
            if step != len(e["s"]):
                raise DemoFileError(f"{path}, line {lineno}: episode {ep} expects step {len(e['s'])}, got {step}")
            if e["end"][0] == "closed":
                raise DemoFileError(f"{path}, line {lineno}: episode {ep} continues after a row with no action")
            e["s"].append(s)
            act = (row.get("action") or "").strip()
            if act == "":
                e["end"][0] = "closed"
                e["flag"] = (row.get("end") or "").strip()
            else:
                try:
                    e["a"].append(int(act))
                except ValueError:
                    raise DemoFileError(f"{path}, line {lineno}: action must be an integer: got {act!r}") from None
                rew = (row.get("reward") or "").strip()
                if rew:
                    try:
                        e["r"].append(float(rew))
                    except ValueError:
                        raise DemoFileError(f"{path}, line {lineno}: reward must be a number: got {rew!r}") from None
    if not order:
        raise DemoFileError(f"{path}: contains no trajectories (the dataset is empty)")
    for ep in order:
        if episodes[ep]["end"][0] != "closed":
            raise DemoFileError(f"{path}: episode {ep} has no final row (a state with an empty action)")
        flag = episodes[ep].get("flag", "")
        if flag not in ("", "terminated", "truncated"):
            raise DemoFileError(f"{path}: episode {ep} has end {flag!r}; expected terminated, truncated or empty")
    # rewards sit on action rows: episodes without actions say nothing about whether the file has rewards
    with_r = [ep for ep in order if episodes[ep]["r"]]
    partial = [ep for ep in order if len(episodes[ep]["r"]) not in (0, len(episodes[ep]["a"]))]
    missing = [ep for ep in order if episodes[ep]["a"] and not episodes[ep]["r"]] if with_r else []
    if partial or missing:
        ep = (partial or missing)[0]
        raise DemoFileError(f"{path}: rewards must be given on every action row or on none: episode {ep} has "
                            f"{len(episodes[ep]['r'])} rewards for {len(episodes[ep]['a'])} actions")
    use_r = bool(with_r)
    return Trajectories.from_lists([episodes[e]["s"] for e in order], [episodes[e]["a"] for e in order],
                                   rewards=[episodes[e]["r"] for e in order] if use_r else None,
                                   terminated=[episodes[e].get("flag") == "terminated" for e in order],
                                   truncated=[episodes[e].get("flag") == "truncated" for e in order])


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
register_text_reader(".csv", _load_csv)
register_writer(Trajectories, ".npz", _save_npz)
register_writer(Trajectories, ".jsonl", _save_jsonl)
register_writer(Trajectories, ".csv", _save_csv)
