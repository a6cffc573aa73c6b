"""Files for evidence: versioned ``.npz`` (no pickle), JSON Lines and CSV.

Every write is atomic (a temporary file in the same folder, then a rename). Every
read refuses object arrays and never imports a name read from a file: a file from
a stranger cannot run code.

Formats:

* ``.npz``: arrays ``states``, ``actions``, ``lengths``, ``terminated``,
  ``truncated`` (and ``rewards``), plus ``format`` = ``"pluggable-irl/trajectories"``
  and ``version`` = 1.
* ``.jsonl``: an optional header line ``{"format": ..., "version": 1}`` then one
  object per episode ``{"states": [...], "actions": [...], "rewards": [...],
  "terminated": false, "truncated": false}`` (``rewards`` and flags optional).
* ``.csv``: header ``episode,step,state,action,reward,end``; one row per state;
  the last row of an episode has an empty ``action`` and ``end`` in
  {``terminated``, ``truncated``, ``""``}. ``reward`` may be empty throughout.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from demos.trajectories import DemoValidationError, Trajectories

__all__ = ["save", "load", "DemoFileError", "atomic_write", "save_arrays", "load_arrays", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_TRAJ_FORMAT = "pluggable-irl/trajectories"


class DemoFileError(ValueError):
    """A file could not be read as evidence; the message names the file and the problem."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], *, binary: bool = True) -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": "", "encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_arrays(path: str | os.PathLike, fmt: str, arrays: dict[str, Any], *,
                meta: dict[str, Any] | None = None) -> None:
    """Write named arrays to a versioned ``.npz`` atomically (``meta`` is stored as JSON text)."""
    payload = {k: np.asarray(v) for k, v in arrays.items() if v is not None}
    for k, v in payload.items():
        if v.dtype == object:
            raise DemoFileError(f"refusing to save object array {k!r}: only numeric and string arrays are allowed")
    payload["format"] = np.array(fmt)
    payload["version"] = np.array(FORMAT_VERSION)
    payload["meta"] = np.array(json.dumps(meta or {}))
    atomic_write(path, lambda f: np.savez_compressed(f, **payload))


def load_arrays(path: str | os.PathLike, fmt: str | None = None) -> tuple[str, dict[str, np.ndarray], dict]:
    """Read a versioned ``.npz`` without pickle: ``(format, arrays, meta)``.

    Raises:
        DemoFileError: missing file, not an npz, object arrays (refused, nothing
            executed), unknown format or version.
    """
    path = Path(path)
    if not path.exists():
        raise DemoFileError(f"{path}: no such file")
    try:
        with open(path, "rb") as fh:  # our own handle: closed even when numpy fails on a damaged file
            z = np.load(fh, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise DemoFileError(f"{path}: not an .npz archive (found a single {type(z).__name__})")
            with z:
                arrays = {k: z[k] for k in z.files}
    except DemoFileError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e) and not zipfile.is_zipfile(path):
            raise DemoFileError(f"{path}: not an .npz archive (neither a zip of .npy arrays nor an .npy "
                                f"file; refused without unpickling)") from None
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise DemoFileError(
                f"{path}: contains object (pickled) arrays, which are refused because loading them could "
                f"run code; save plain numeric arrays instead") from None
        raise DemoFileError(f"{path}: not a readable .npz file ({e})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DemoFileError(f"{path}: not a readable .npz file ({e})") from None
    got = str(arrays.pop("format", "")) if "format" in arrays else None
    version = int(arrays.pop("version")) if "version" in arrays else None
    meta = json.loads(str(arrays.pop("meta"))) if "meta" in arrays else {}
    if fmt is not None and got != fmt:
        raise DemoFileError(f"{path}: expected a {fmt!r} file, found format {got!r}")
    if version is not None and version > FORMAT_VERSION:
        raise DemoFileError(f"{path}: format version {version} is newer than this library reads "
                            f"({FORMAT_VERSION}); upgrade pluggable-irl")
    return got or "", arrays, meta


# ------------------------------------------------------------------- trajectories
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


def save(data: Any, path: str | os.PathLike) -> None:
    """Save evidence to ``path``; the format follows the extension (``.npz``, ``.jsonl``, ``.csv``).

    Example:
        >>> import demos, tempfile, os
        >>> d = demos.Trajectories.from_lists([[0, 1]], [[0]])
        >>> p = os.path.join(tempfile.mkdtemp(), "d.npz"); demos.save(d, p)
        >>> demos.load(p).lengths.tolist()
        [1]
    """
    path = Path(path)
    if hasattr(data, "_save_npz") and path.suffix == ".npz":
        data._save_npz(path)
        return
    if not isinstance(data, Trajectories):
        raise DemoFileError(f"cannot save {type(data).__name__} to {path.suffix!r}")
    writers = {".npz": _save_npz, ".jsonl": _save_jsonl, ".csv": _save_csv}
    if path.suffix not in writers:
        raise DemoFileError(f"{path}: unknown extension {path.suffix!r}; known: {sorted(writers)}")
    writers[path.suffix](data, path)


def jsonl_records(path: Path, lines: Any, *, fmt: str, data_key: str) -> Any:
    """Parse JSON-lines text into ``(line number, record)`` pairs, checking the format header.

    Blank lines are skipped. A header line is an object with ``"format"`` but
    without ``data_key``; its format must equal ``fmt``, and it is yielded with
    line number 0 so that callers can read other header fields.

    Args:
        path: the file (for messages).
        lines: an iterable of text lines.
        fmt: the expected format tag.
        data_key: a key every data record has and the header lacks.

    Yields:
        ``(lineno, dict)``; ``lineno`` is 0 for the header.

    Raises:
        DemoFileError: a line is not a JSON object, or the header names another format.

    Example:
        >>> from demos.io import jsonl_records
        >>> lines = ['{"format": "f"}', '', '{"states": [0, 1], "actions": [2]}']
        >>> list(jsonl_records("x.jsonl", lines, fmt="f", data_key="states"))
        [(0, {'format': 'f'}), (3, {'states': [0, 1], 'actions': [2]})]
    """
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DemoFileError(f"{path}, line {lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DemoFileError(f"{path}, line {lineno}: expected a JSON object, found {type(row).__name__}")
        if "format" in row and data_key not in row:
            if row["format"] != fmt:
                raise DemoFileError(f"{path}: expected format {fmt!r}, found {row['format']!r}")
            yield 0, row
        else:
            yield lineno, row


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


def _load_npz(path: Path) -> Any:
    fmt, arrays, meta = load_arrays(path)
    if fmt == _TRAJ_FORMAT or (not fmt and {"states", "actions", "lengths"} <= set(arrays)):
        missing = {"states", "actions", "lengths"} - set(arrays)
        if missing:
            raise DemoFileError(f"{path}: trajectories file lacks arrays {sorted(missing)}")
        try:
            return Trajectories(states=arrays["states"], actions=arrays["actions"], lengths=arrays["lengths"],
                                rewards=arrays.get("rewards"), terminated=arrays.get("terminated"),
                                truncated=arrays.get("truncated"))
        except DemoValidationError as e:
            raise DemoFileError(f"{path}: {e}") from None
    from demos import registry

    loader = registry.get(fmt)
    if loader is None:
        raise DemoFileError(f"{path}: unknown evidence format {fmt!r}; known: {sorted(registry) + [_TRAJ_FORMAT]}")
    return loader(arrays, meta)


def load(path: str | os.PathLike) -> Any:
    """Load evidence saved by :func:`save` (format chosen by extension; never unpickles).

    Raises:
        DemoFileError: what is wrong and where (file, line, episode).
    """
    path = Path(path)
    if not path.exists():
        raise DemoFileError(f"{path}: no such file")
    readers = {".npz": _load_npz, ".jsonl": _load_jsonl, ".csv": _load_csv}
    if path.suffix not in readers:
        raise DemoFileError(f"{path}: unknown extension {path.suffix!r}; known: {sorted(readers)}")
    if path.suffix in (".csv", ".jsonl") and _is_deliberation_text(path):
        from demos.deliberation import load_traces

        return load_traces(path)
    try:
        return readers[path.suffix](path)
    except DemoValidationError as e:
        raise DemoFileError(f"{path}: {e}") from None
    except UnicodeDecodeError:
        raise DemoFileError(f"{path}: not a UTF-8 text file") from None


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
