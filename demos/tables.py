"""Tables with one row per step: CSV, JSON Lines and pandas DataFrames.

What a gymnasium loop, a spreadsheet or a pandas pipeline writes is a table with
one row per step. This module reads such tables into :class:`Trajectories` and
writes them back, and gives every other evidence type (comparisons, corrections,
e-stops, state-only episodes, logged transitions, world states) a CSV and JSON
Lines form built the same way: a header with the format tag and the type's few
scalar settings, then one flat row per step or observation.

A trajectory table has the columns ``episode, step, state, action`` and optionally
``reward``, ``next_state``, ``terminated``, ``truncated`` and ``end``. An episode's
final state is either its own row with an empty ``action`` (the layout this library
writes, ``end`` naming how it ended), or the ``next_state`` of its last row (the
layout of a gymnasium loop, ``terminated``/``truncated`` flagging the last step).
Column names are configurable (``columns={"episode": "ep", "state": "obs"}``).

Values are read the way a pandas round trip leaves them: ``1.0`` is the integer 1
(``1.5`` is an error), an empty cell, ``null`` or ``NaN`` in a numeric pandas column
is a missing value, and non-finite rewards are refused.

Example:
    >>> import demos, io
    >>> text = "ep,t,obs,act,r,next_obs,done\\n0,0,0,1,0.0,1,False\\n0,1,1,1,1.0,2,True\\n"
    >>> from demos.tables import read_csv_text
    >>> d = read_csv_text(text, columns={"episode": "ep", "step": "t", "state": "obs", "action": "act",
    ...                                  "reward": "r", "next_state": "next_obs", "terminated": "done"})
    >>> d.states.tolist(), d.actions.tolist(), d.terminated.tolist()
    ([0, 1, 2], [1, 1], [True])
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from demos.trajectories import DemoValidationError, Trajectories

__all__ = ["STEP_COLUMNS", "parse_columns", "steps_to_trajectories", "trajectories_to_columns",
           "read_csv_text", "read_table", "write_table", "from_dataframe", "to_dataframe"]

#: The per-step column names this library understands (keys of a ``columns`` mapping).
STEP_COLUMNS = ("episode", "step", "state", "action", "reward", "next_state", "terminated", "truncated", "end")
_REQUIRED = ("episode", "step", "state")

Where = Callable[[int], str]


class TableError(DemoValidationError):
    """A table breaks a rule; the message names the row (line) and the column."""


# ------------------------------------------------------------------ column names
def parse_columns(columns: Mapping[str, str] | str | None) -> dict[str, str]:
    """Our column name -> the table's, from a mapping or a ``"episode=ep,state=obs"`` string.

    Raises:
        TableError: an unknown name on the left (the known ones are listed) or a malformed pair.

    Example:
        >>> parse_columns("episode=ep, state=obs")
        {'episode': 'ep', 'state': 'obs'}
    """
    if columns is None:
        return {}
    if isinstance(columns, str):
        pairs = {}
        for part in filter(None, (p.strip() for p in columns.split(","))):
            ours, sep, theirs = part.partition("=")
            if not sep or not ours.strip() or not theirs.strip():
                raise TableError(f"columns must be name=column pairs separated by commas: got {part!r}")
            if ours.strip() in pairs:
                raise TableError(f"columns names {ours.strip()!r} twice: got {columns!r}")
            pairs[ours.strip()] = theirs.strip()
        columns = pairs
    unknown = sorted(set(columns) - set(STEP_COLUMNS))
    if unknown:
        raise TableError(f"unknown column name(s) {unknown}; known: {list(STEP_COLUMNS)}")
    return {str(k): str(v) for k, v in columns.items()}


# ---------------------------------------------------------------- cell parsing
def _is_missing(x: Any) -> bool:
    if x is None or (isinstance(x, str) and not x.strip()):
        return True
    if isinstance(x, float) and x != x:  # NaN as pandas writes a missing number
        return True
    return type(x).__name__ in ("NAType", "NaTType")


def _numbers(values: Any, name: str, where: Where, *, integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(values as float64, missing mask)`` of one column; refuses text, booleans, non-finite and (ids) fractions."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        v = values.astype(np.float64)
        missing = np.isnan(v) if values.dtype.kind == "f" else np.zeros(v.shape, bool)
    else:
        seq = values.tolist() if isinstance(values, np.ndarray) else list(values)
        kinds = set(map(type, seq))
        v = None
        if kinds <= {int, float, type(None)}:  # JSON numbers; only null is a gap (a NaN there is a bad value)
            missing = np.fromiter((x is None for x in seq), bool, len(seq))
            v = np.array([np.nan if x is None else x for x in seq], dtype=np.float64)
        elif kinds == {str}:  # CSV cells: one conversion in C, the slow path only to find a bad cell
            text = np.array(seq, dtype=str)
            missing = text == ""
            try:
                v = np.full(len(seq), np.nan)
                v[~missing] = text[~missing].astype(np.float64)
            except ValueError:
                v = None
        if v is None:
            missing = np.fromiter((_is_missing(x) for x in seq), bool, len(seq))
            v = np.empty(len(seq))
            for i, (x, m) in enumerate(zip(seq, missing)):
                if m:
                    v[i] = np.nan
                    continue
                if isinstance(x, (bool, np.bool_)):
                    raise TableError(f"{where(i)}: {name} must be a number: got {x!r}")
                try:
                    v[i] = float(x.strip() if isinstance(x, str) else x)
                except (TypeError, ValueError):
                    what = "an integer id" if integer else "a number"
                    raise TableError(f"{where(i)}: {name} must be {what}: got {x!r}") from None
    bad = ~missing & ~np.isfinite(v)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise TableError(f"{where(i)}: {name} must be finite: got {float(v[i])}")
    if integer:
        frac = ~missing & (v != np.round(v))
        if frac.any():
            i = int(np.flatnonzero(frac)[0])
            raise TableError(f"{where(i)}: {name} must be an integer id: got {float(v[i])!r}")
        neg = ~missing & (v < 0)
        if neg.any():
            i = int(np.flatnonzero(neg)[0])
            raise TableError(f"{where(i)}: {name} must be >= 0: got {int(v[i])}")
    return v, missing


_TRUE = {"true", "1", "1.0", "yes"}
_FALSE = {"false", "0", "0.0", "no", ""}


def _flags(values: Any, name: str, where: Where) -> np.ndarray:
    """A boolean column: booleans, 0/1 or the words true/false (empty = false); anything else is an error."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "b":
        return values.astype(bool)
    out = np.zeros(len(values), bool)
    seq = values.tolist() if isinstance(values, np.ndarray) else values
    for i, x in enumerate(seq):
        if _is_missing(x) or x is False:
            continue
        if x is True:
            out[i] = True
        elif isinstance(x, (int, float)) and x in (0, 1):
            out[i] = bool(x)
        elif isinstance(x, str) and x.strip().lower() in _TRUE | _FALSE:
            out[i] = x.strip().lower() in _TRUE
        else:
            raise TableError(f"{where(i)}: {name} must be true or false (or 1/0): got {x!r}")
    return out


def _keys(values: Any, name: str, where: Where) -> tuple[np.ndarray, int]:
    """Episode keys as codes ``0..n-1`` in order of first appearance."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":  # a numeric pandas column
        if values.dtype.kind == "f" and np.isnan(values).any():
            raise TableError(f"{where(int(np.flatnonzero(np.isnan(values))[0]))}: {name} is missing")
        text = values
        seq = None
    else:
        seq = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if seq is None:
        pass
    elif set(map(type, seq)) == {str}:  # CSV cells
        text = np.char.strip(np.array(seq, dtype=str))
        gaps = np.flatnonzero(text == "")
        if gaps.size:
            raise TableError(f"{where(int(gaps[0]))}: {name} is missing")
    else:
        for i, x in enumerate(seq):
            if _is_missing(x):
                raise TableError(f"{where(i)}: {name} is missing")
        text = np.asarray([x if isinstance(x, str) else str(int(x)) if isinstance(x, float) and x == int(x)
                           else str(x) for x in seq])
    uniq, first, inverse = np.unique(text, return_index=True, return_inverse=True)
    rank = np.empty(len(uniq), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(uniq))
    return rank[inverse.ravel()], len(uniq)


# ----------------------------------------------------------- steps -> episodes
def steps_to_trajectories(cols: Mapping[str, Any], where: Where, *, names: Mapping[str, str] | None = None,
                          actions: bool = True) -> Trajectories:
    """Build :class:`Trajectories` from per-step columns (see the module docstring for the layouts).

    Args:
        cols: the table's columns by the table's own names (sequences of equal length).
        where: ``row index -> "file, line N"`` for messages.
        names: our column name -> the table's (defaults: the same names).
        actions: ``False`` for state-only tables (no ``action`` column; every row is a state).

    Raises:
        TableError: a missing column, a bad cell, a step gap or repeat, an action missing
            before an episode's end, an episode without its final state, a ``next_state``
            that contradicts the next row, a flag before the last step, partial rewards.
    """
    nm = {k: k for k in STEP_COLUMNS} | dict(names or {})
    need = [nm[k] for k in (_REQUIRED + (("action",) if actions else ()))]
    missing_cols = [c for c in need if c not in cols]
    if missing_cols:
        raise TableError(f"header must contain {sorted(need)}: missing {missing_cols}; found {sorted(cols)} "
                         f"(map other names with columns=..., e.g. columns={{'state': 'obs'}})")
    n = len(cols[nm["state"]])
    if n == 0:
        raise TableError("contains no trajectories (the dataset is empty)")
    ep, n_ep = _keys(cols[nm["episode"]], nm["episode"], where)
    step, miss = _numbers(cols[nm["step"]], nm["step"], where, integer=True)
    if miss.any():
        raise TableError(f"{where(int(np.flatnonzero(miss)[0]))}: {nm['step']} is missing")
    state, miss = _numbers(cols[nm["state"]], nm["state"], where, integer=True)
    if miss.any():
        raise TableError(f"{where(int(np.flatnonzero(miss)[0]))}: {nm['state']} is missing")
    order = np.lexsort((step, ep))
    ep, step, state = ep[order], step[order].astype(np.int64), state[order].astype(np.int64)
    at = lambda k: where(int(order[k]))  # noqa: E731  (row k of the sorted table -> its place in the file)
    first = np.r_[True, ep[1:] != ep[:-1]]
    last = np.r_[ep[1:] != ep[:-1], True]
    gap = ~first & (step != np.r_[step[:1], step[:-1]] + 1)
    if gap.any():
        k = int(np.flatnonzero(gap)[0])
        what = "repeats step" if step[k] == step[k - 1] else f"expects step {step[k - 1] + 1}, got"
        raise TableError(f"{at(k)}: episode {_ep_name(cols, nm, order, first, k)} {what} {step[k]}")
    if actions:
        act, amiss = _numbers(_take(cols[nm["action"]], order), nm["action"], at, integer=True)
    else:
        act, amiss = np.zeros(n), last.copy()
    early = amiss & ~last
    if early.any():
        k = int(np.flatnonzero(early)[0]) + 1
        raise TableError(f"{at(k)}: episode {_ep_name(cols, nm, order, first, k)} continues after a row with no "
                         f"action (only an episode's last row, its final state, may have no action)")
    open_end = last & ~amiss  # episodes whose last row is a step, not a final state
    nxt = None
    if nm["next_state"] in cols:
        nxt, nmiss = _numbers(_take(cols[nm["next_state"]], order), nm["next_state"], at, integer=True)
        check = ~last & ~amiss & ~nmiss
        wrong = check & (nxt != np.r_[state[1:], 0])
        if wrong.any():
            k = int(np.flatnonzero(wrong)[0])
            raise TableError(f"{at(k)}: episode {_ep_name(cols, nm, order, first, k)}: {nm['next_state']} "
                             f"{int(nxt[k])} differs from the next row's {nm['state']} {state[k + 1]}")
        lacking = open_end & nmiss
    else:
        lacking = open_end
    if lacking.any():
        k = int(np.flatnonzero(lacking)[0])
        raise TableError(f"episode {_ep_name(cols, nm, order, first, k)} has no final row (a state with an "
                         f"empty action) and no {nm['next_state']} on its last step ({at(k)}): give one or "
                         f"the other")
    # flat arrays: every row's state, plus the next_state of each open-ended episode's last step
    ins = np.flatnonzero(open_end) + 1
    states = np.insert(state, ins, nxt[open_end].astype(np.int64) if nxt is not None else np.zeros(0, np.int64))
    lengths = np.bincount(ep, weights=~amiss, minlength=n_ep).astype(np.int64)
    rewards = None
    if nm["reward"] in cols:
        rew, rmiss = _numbers(_take(cols[nm["reward"]], order), nm["reward"], at, integer=False)
        on_final = amiss & ~rmiss
        if actions and on_final.any():
            k = int(np.flatnonzero(on_final)[0])
            raise TableError(f"{at(k)}: a reward on a final row (one without an action) belongs to no step")
        given = np.bincount(ep, weights=~rmiss & ~amiss, minlength=n_ep).astype(np.int64)
        if given.any():
            bad = given != lengths
            if bad.any():
                e = int(np.flatnonzero(bad)[0])
                k = int(np.flatnonzero(ep == e)[0])
                raise TableError(f"rewards must be given on every action row or on none: episode "
                                 f"{_ep_name(cols, nm, order, first, k)} has {given[e]} rewards for "
                                 f"{lengths[e]} actions")
            rewards = rew[~amiss]
    term, trunc = _episode_flags(cols, nm, order, at, ep, last, n_ep, first, amiss)
    return Trajectories(states=states, actions=act[~amiss].astype(np.int64), lengths=lengths, rewards=rewards,
                        terminated=term, truncated=trunc)


def _take(values: Any, order: np.ndarray) -> Any:
    if isinstance(values, np.ndarray):
        return values[order]
    return [values[i] for i in order.tolist()]


def _ep_name(cols: Mapping[str, Any], nm: Mapping[str, str], order: np.ndarray, first: np.ndarray, k: int) -> str:
    x = cols[nm["episode"]][int(order[k])]
    return str(int(x)) if isinstance(x, float) and x == int(x) else str(x)


def _episode_flags(cols: Mapping[str, Any], nm: Mapping[str, str], order: np.ndarray, at: Where, ep: np.ndarray,
                   last: np.ndarray, n_ep: int, first: np.ndarray, amiss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-episode terminated/truncated from per-step flags (last step or final row only) or an ``end`` column."""
    out = []
    # the flag sits on an episode's last row, or on its last step when a final-state row follows it
    tail = last.copy()
    k = np.flatnonzero(last & amiss & ~first)
    tail[k - 1] = True
    for flag in ("terminated", "truncated"):
        f = np.zeros(n_ep, bool)
        if nm[flag] in cols:
            v = _flags(_take(cols[nm[flag]], order), nm[flag], at)
            early = v & ~tail
            if early.any():
                k = int(np.flatnonzero(early)[0])
                raise TableError(f"{at(k)}: episode {_ep_name(cols, nm, order, first, k)} is {flag} before its "
                                 f"last step (further rows follow)")
            f[ep[v]] = True
        out.append(f)
    if nm["end"] in cols:
        ends = _take(cols[nm["end"]], order)
        for k in np.flatnonzero(last).tolist():
            e = "" if _is_missing(ends[k]) else str(ends[k]).strip()
            if e not in ("", "terminated", "truncated"):
                raise TableError(f"episode {_ep_name(cols, nm, order, first, k)} has end {e!r}; expected "
                                 f"terminated, truncated or empty ({at(k)})")
            if e:
                out[0 if e == "terminated" else 1][ep[k]] = True
    both = out[0] & out[1]
    if both.any():
        k = int(np.flatnonzero(ep == int(np.flatnonzero(both)[0]))[0])
        raise TableError(f"episode {_ep_name(cols, nm, order, first, k)} is marked both terminated and truncated")
    return out[0], out[1]


# ----------------------------------------------------------- episodes -> steps
def trajectories_to_columns(d: Trajectories, *, actions: bool = True) -> dict[str, np.ndarray]:
    """Per-step columns of a dataset in the final-row layout (``episode, step, state, action, reward, end``).

    Each episode has one row per action and a final row with its last state, no
    action and ``end`` in {``"terminated"``, ``"truncated"``, ``""``}. Missing
    actions and rewards are ``None`` in object columns (written as empty cells).
    """
    n, L = len(d), d.lengths
    ep = np.repeat(np.arange(n), L + 1)
    so = d.state_offsets
    step = np.arange(d.states.size) - np.repeat(so[:-1], L + 1)
    final = np.zeros(d.states.size, bool)
    final[so[1:] - 1] = True
    cols: dict[str, np.ndarray] = {"episode": ep, "step": step, "state": d.states.copy()}
    if actions:
        act = np.full(d.states.size, None, dtype=object)
        act[~final] = d.actions.tolist()
        cols["action"] = act
        if d.rewards is not None:
            rew = np.full(d.states.size, None, dtype=object)
            rew[~final] = d.rewards.tolist()
            cols["reward"] = rew
    end = np.full(d.states.size, "", dtype=object)
    end[so[1:][d.terminated] - 1] = "terminated"
    end[so[1:][d.truncated] - 1] = "truncated"
    cols["end"] = end
    return cols


# -------------------------------------------------------------- text tables
def _cell(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return repr(x)
    return str(x)


def write_table(path: str | os.PathLike, cols: Mapping[str, Any], *, header: Mapping[str, Any] | None = None) -> None:
    """Write columns as CSV or JSON Lines (by extension), atomically.

    A ``header`` (the format tag and scalar settings) becomes a first line
    ``# {json}`` in a CSV and a first JSON object in JSON Lines. ``None`` cells
    are empty in a CSV and ``null`` in JSON Lines (JSON Lines omits them).
    """
    from demos.io import atomic_write

    path = Path(path)
    names = list(cols)
    lists = [np.asarray(cols[k]).tolist() for k in names]

    def write(f: Any) -> None:
        if header is not None and path.suffix == ".csv":
            f.write("# " + json.dumps(dict(header)) + "\n")
        if path.suffix == ".csv":
            w = csv.writer(f, lineterminator="\n")
            w.writerow(names)
            w.writerows([_cell(x) for x in row] for row in zip(*lists))
        else:
            if header is not None:
                f.write(json.dumps(dict(header)) + "\n")
            f.writelines(json.dumps({k: x for k, x in zip(names, row) if x is not None}) + "\n"
                         for row in zip(*lists))

    atomic_write(path, write, binary=False)


def read_table(path: str | os.PathLike, *, fmt: str | None = None) -> tuple[dict, dict[str, list], Where]:
    """Read a CSV or JSON Lines table: ``(header, columns, where)``.

    ``header`` is the ``# {json}`` first line of a CSV or the first JSON object
    holding ``"format"`` (``{}`` when absent); ``columns`` maps each column name to
    its cells (strings from a CSV, JSON values from JSON Lines; a key missing from a
    JSON row is ``None``); ``where(i)`` names row ``i`` as ``"file, line N"``.

    Raises:
        demos.DemoFileError: unreadable text, a CSV field over the size limit, bad JSON
            (including nesting too deep), a header of another format or a newer version.
    """
    from demos.io import DemoFileError, check_header, jsonl_records

    path = Path(path)
    header: dict = {}
    lines: list[int] = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            if path.suffix == ".csv":
                text = f.read()
                body = text
                if text.startswith("#"):
                    first, _, body = text.partition("\n")
                    try:
                        header = json.loads(first[1:])
                    except (json.JSONDecodeError, RecursionError):
                        raise DemoFileError(f"{path}, line 1: a '#' header line must hold a JSON object") from None
                    if not isinstance(header, dict):
                        raise DemoFileError(f"{path}, line 1: a '#' header line must hold a JSON object")
                offset = 1 if text.startswith("#") else 0
                reader = csv.reader(io.StringIO(body))
                try:
                    names = next(reader, None)
                    if names is None:
                        raise DemoFileError(f"{path}: no header row (the file is empty)")
                    if '"' in body or "\r" in body:  # quoted cells may span lines: count lines row by row
                        rows = []
                        for row in reader:
                            rows.append(row)
                            lines.append(reader.line_num + offset)
                    else:  # one row per line
                        rows = list(reader)
                        lines = list(range(2 + offset, 2 + offset + len(rows)))
                except csv.Error as e:
                    raise DemoFileError(f"{path}, line {reader.line_num + offset}: not valid CSV ({e})") from None
                keep = [i for i, r in enumerate(rows) if r] if not all(rows) else None
                if keep is not None:  # blank lines
                    rows, lines = [rows[i] for i in keep], [lines[i] for i in keep]
                widths = np.fromiter(map(len, rows), np.int64, len(rows))
                if np.any(widths != len(names)):
                    i = int(np.flatnonzero(widths != len(names))[0])
                    raise DemoFileError(f"{path}, line {lines[i]}: {widths[i]} fields, but the header has "
                                        f"{len(names)}")
                names = [c.strip() for c in names]
                cols = {c: list(v) for c, v in zip(names, zip(*rows))} if rows else {c: [] for c in names}
            else:
                records = []
                for lineno, row in jsonl_records(path, f, fmt=fmt, data_key=None):
                    if lineno == 0:
                        header = row
                    else:
                        records.append(row)
                        lines.append(lineno)
                keys = list(dict.fromkeys(k for r in records for k in r))
                cols = {k: [r.get(k) for r in records] for k in keys}
    except UnicodeDecodeError:
        raise DemoFileError(f"{path}: not a UTF-8 text file") from None
    except OSError as e:
        raise DemoFileError(f"{path}: cannot read ({e.strerror or e})") from None
    if header:
        check_header(path, header, fmt)
    return header, cols, (lambda i: f"{path}, line {lines[i]}")


def read_csv_text(text: str, *, columns: Mapping[str, str] | str | None = None) -> Trajectories:
    """Trajectories from per-step CSV text (for examples and tests; files go through :func:`demos.load`)."""
    reader = csv.reader(io.StringIO(text))
    names = [c.strip() for c in next(reader)]
    rows = [r for r in reader if r]
    cols = {c: list(v) for c, v in zip(names, zip(*rows))}
    return steps_to_trajectories(cols, lambda i: f"line {i + 2}", names=parse_columns(columns))


# ------------------------------------------------------------------- pandas
def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("DataFrames need pandas: pip install 'pluggable-irl[pandas]'") from None
    return pandas


def from_dataframe(df: Any, *, columns: Mapping[str, str] | str | None = None, actions: bool = True
                   ) -> Trajectories:
    """Trajectories from a pandas DataFrame with one row per step (layouts as in the module docstring).

    Args:
        df: a ``pandas.DataFrame``.
        columns: our column name -> the frame's (e.g. ``{"state": "obs"}``).
        actions: ``False`` for state-only frames.

    Raises:
        DemoValidationError: naming the frame's row (its index label) and column.
        ImportError: pandas is not installed (the ``pandas`` extra).
    """
    _pandas()
    index = df.index
    cols = {str(c): df[c].to_numpy() for c in df.columns}
    return steps_to_trajectories(cols, lambda i: f"row {index[i]!r}", names=parse_columns(columns),
                                 actions=actions)


def to_dataframe(d: Trajectories) -> Any:
    """A pandas DataFrame with one row per step in the final-row layout (nullable ``Int64`` actions)."""
    pd = _pandas()
    cols = trajectories_to_columns(d)
    out = {"episode": cols["episode"], "step": cols["step"], "state": cols["state"]}
    act = np.zeros(d.states.size, np.int64)
    final = np.zeros(d.states.size, bool)
    final[d.state_offsets[1:] - 1] = True
    act[~final] = d.actions
    out["action"] = pd.arrays.IntegerArray(act, final)
    if d.rewards is not None:
        rew = np.full(d.states.size, np.nan)
        rew[~final] = d.rewards
        out["reward"] = rew
    out["end"] = cols["end"].astype(str)
    return pd.DataFrame(out)


# --------------------------------------------------- every evidence type as a table
def _header(fmt: str, **settings: Any) -> dict:
    from demos.io import FORMAT_VERSION

    return {"format": fmt, "version": FORMAT_VERSION, **settings}


def _ids(cols: Mapping[str, Any], name: str, where: Where, *, optional: bool = False) -> np.ndarray | None:
    if name not in cols:
        if optional:
            return None
        raise TableError(f"header must contain {name!r}: found {sorted(cols)}")
    v, miss = _numbers(cols[name], name, where, integer=True)
    if miss.any():
        if optional and miss.all():
            return None
        raise TableError(f"{where(int(np.flatnonzero(miss)[0]))}: {name} is missing")
    return v.astype(np.int64)


def _write_trajectories(d: Trajectories, path: Path) -> None:
    write_table(path, trajectories_to_columns(d))


def _read_trajectories(path: Path, columns: Any) -> Trajectories:
    _, cols, where = read_table(path, fmt=None)
    return steps_to_trajectories(cols, where, names=parse_columns(columns))


def _write_transitions(d: Any, path: Path) -> None:
    from demos.partial import _TRANSITIONS

    cols = {"state": d.states, "action": d.actions}
    if d.next_states is not None:
        cols["next_state"] = d.next_states
    write_table(path, cols, header=_header(_TRANSITIONS))


def _read_transitions(path: Path, columns: Any) -> Any:
    from demos.partial import _TRANSITIONS, Transitions

    _, cols, where = read_table(path, fmt=_TRANSITIONS)
    return Transitions(_ids(cols, "state", where), _ids(cols, "action", where),
                       _ids(cols, "next_state", where, optional=True))


def _write_state_only(d: Any, path: Path) -> None:
    from demos.partial import _STATE_ONLY

    write_table(path, trajectories_to_columns(d.trajectories, actions=False), header=_header(_STATE_ONLY))


def _read_state_only(path: Path, columns: Any) -> Any:
    from demos.partial import _STATE_ONLY, StateOnly

    _, cols, where = read_table(path, fmt=_STATE_ONLY)
    return StateOnly(steps_to_trajectories(cols, where, names=parse_columns(columns), actions=False))


def _write_choices(d: Any, path: Path) -> None:
    from demos.choices import _FORMAT

    seg = d.segments
    cols = trajectories_to_columns(seg)
    choice_of_seg = np.repeat(np.arange(len(d)), d.n_options)
    option_of_seg = np.arange(len(seg)) - np.repeat(np.cumsum(d.n_options) - d.n_options, d.n_options)
    per_row = np.repeat(np.arange(len(seg)), seg.lengths + 1)
    out = {"choice": choice_of_seg[per_row], "option": option_of_seg[per_row],
           "chosen": d.chosen[choice_of_seg][per_row]}
    out |= {k: v for k, v in cols.items() if k != "episode"}
    write_table(path, out, header=_header(_FORMAT, kind=d.kind, discount=d.discount))


def _read_choices(path: Path, columns: Any) -> Any:
    from demos.choices import _FORMAT, Choices, Comparisons, Corrections, EStops

    header, cols, where = read_table(path, fmt=_FORMAT)
    for name in ("choice", "option", "chosen"):
        if name not in cols:
            raise TableError(f"header must contain 'choice', 'option', 'chosen', 'step', 'state', 'action': "
                             f"found {sorted(cols)}")
    choice, _ = _keys(cols["choice"], "choice", where)
    option = _ids(cols, "option", where)
    chosen = _ids(cols, "chosen", where)
    seg_key = choice * (int(option.max()) + 1) + option
    seg = steps_to_trajectories({**cols, "episode": seg_key.tolist()}, where)
    _, first = np.unique(seg_key, return_index=True)
    first = np.sort(first)  # the first row of every segment, in the order the segments were read
    seg_choice, seg_option = choice[first], option[first]
    n_options = np.bincount(seg_choice)
    want = np.arange(len(seg_choice)) - np.repeat(np.cumsum(n_options) - n_options, n_options)
    if np.any(np.diff(seg_choice) < 0) or np.any(seg_option != want):
        k = int(first[np.flatnonzero((np.r_[0, np.diff(seg_choice)] < 0) | (seg_option != want))[0]])
        raise TableError(f"{where(k)}: the options of each choice must be numbered 0, 1, ... in order, each "
                         f"choice's rows together")
    per_choice = np.zeros(len(n_options), np.int64)
    per_choice[choice] = chosen
    bad = per_choice[choice] != chosen
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise TableError(f"{where(k)}: chosen differs between rows of the same choice")
    kind = str(header.get("kind", "choices"))
    cls = {"comparisons": Comparisons, "corrections": Corrections, "estops": EStops}.get(kind, Choices)
    discount = header.get("discount")
    if discount is not None and (isinstance(discount, bool) or not isinstance(discount, (int, float))):
        raise TableError(f"the header's discount must be a number or null: got {discount!r}")
    return cls(seg, n_options, per_choice, discount=discount, kind=kind)


def _write_world_state(d: Any, path: Path) -> None:
    from demos.world_state import FORMAT

    cols = {"state": d.states} | ({} if d.start is None else {"start": d.start})
    dist = None if d.start_distribution is None else d.start_distribution.tolist()
    write_table(path, cols, header=_header(FORMAT, horizon=d.horizon, start_distribution=dist))


def _read_world_state(path: Path, columns: Any) -> Any:
    from demos.world_state import FORMAT, WorldState

    header, cols, where = read_table(path, fmt=FORMAT)
    dist = header.get("start_distribution")
    if dist is not None and not (isinstance(dist, list) and all(isinstance(x, (int, float)) and not
                                                                 isinstance(x, bool) for x in dist)):
        raise TableError(f"the header's start_distribution must be a list of numbers or null: got {dist!r}")
    return WorldState(states=_ids(cols, "state", where), horizon=header.get("horizon"),
                      start=_ids(cols, "start", where, optional=True), start_distribution=dist)


def _register() -> None:
    from demos import io as dio
    from demos.choices import _FORMAT as CHOICES, Choices
    from demos.partial import _STATE_ONLY, _TRANSITIONS, StateOnly, Transitions
    from demos.world_state import FORMAT as WORLD, WorldState

    dio.table_readers.update({dio.UNTAGGED_TABLE: _read_trajectories, _TRANSITIONS: _read_transitions,
                              _STATE_ONLY: _read_state_only, CHOICES: _read_choices, WORLD: _read_world_state})
    dio.register_writer(Trajectories, ".csv", _write_trajectories)  # per-episode .jsonl stays with demos.trajectory_files
    for cls, write in ((Transitions, _write_transitions), (StateOnly, _write_state_only), (Choices, _write_choices),
                       (WorldState, _write_world_state)):
        for suffix in (".csv", ".jsonl"):
            dio.register_writer(cls, suffix, write)


_register()
