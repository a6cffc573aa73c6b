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
* ``.csv`` (and per-step ``.jsonl``): one row per step, read by :mod:`demos.tables`;
  written as ``episode,step,state,action,reward,end`` with one row per state: the
  last row of an episode has an empty ``action`` and ``end`` in {``terminated``,
  ``truncated``, ``""``}. ``reward`` may be empty throughout.
* Other evidence types in ``.csv`` / ``.jsonl``: a header (``# {json}`` in a CSV,
  a first JSON object in JSON Lines) with the format tag, then one flat row per
  step or observation; readers are registered in :data:`table_readers` and writers
  with :func:`register_writer` by the module that defines the layout.

Every data module registers its own readers and writers here; this module never
imports them back.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from demos.errors import DemoFileError, DemoValidationError

__all__ = ["save", "load", "DemoFileError", "atomic_write", "save_arrays", "load_arrays", "FORMAT_VERSION",
           "registry", "register_format", "register_text_reader", "register_writer", "table_readers", "check_header",
           "finite_array"]

FORMAT_VERSION = 1

#: Loaders of ``.npz`` evidence by the file's format string: ``format -> loader(arrays, meta)``. Every data
#: module registers its own formats (this module never imports them back); ``""`` is a file without a format tag.
registry: dict[str, Callable[[dict, dict], Any]] = {}
_TEXT_READERS: list[tuple[str, Callable[[Path], bool] | None, Callable[[Path], Any]]] = []
_WRITERS: list[tuple[type, dict[str, Callable[[Any, Path], None]]]] = []
#: ``.csv`` / ``.jsonl`` tables by the format tag in a file's header: ``fmt -> reader(path, columns)``; a file
#: without a header is read with the :data:`UNTAGGED_TABLE` entry (per-step trajectories).
table_readers: dict[str, Callable[..., Any]] = {}
#: Format tag of a table without a header.
UNTAGGED_TABLE = "pluggable-irl/trajectories"
#: temporary files of :func:`atomic_write` older than this many seconds were left by a killed writer
STALE_TMP_SECONDS = 3600.0


def register_format(fmt: str, loader: Callable[[dict, dict], Any]) -> None:
    """Make :func:`load` read ``.npz`` files of format ``fmt`` with ``loader(arrays, meta)``."""
    registry[fmt] = loader


def register_text_reader(suffix: str, reader: Callable[[Path], Any], *,
                         sniff: Callable[[Path], bool] | None = None) -> None:
    """Make :func:`load` read ``suffix`` files (e.g. ``".csv"``) with ``reader(path)``.

    Readers with a ``sniff(path) -> bool`` are tried first, in registration
    order; the reader without one reads files whose rows are whole episodes
    (per-episode JSON Lines). Any other ``.csv`` / ``.jsonl`` file is a table,
    read by :data:`table_readers` after the format tag of its header.
    """
    _TEXT_READERS.append((suffix, sniff, reader))


def register_writer(cls: type, suffix: str, writer: Callable[[Any, Path], None]) -> None:
    """Make :func:`save` write instances of ``cls`` to ``suffix`` files with ``writer(data, path)``."""
    for c, w in _WRITERS:
        if c is cls:
            w[suffix] = writer
            return
    _WRITERS.append((cls, {suffix: writer}))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], *, binary: bool = True) -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(path)
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


def _remove_stale_tmp(path: Path) -> None:
    """Remove ``.<name>.*.tmp`` files next to ``path`` left by writers killed more than an hour ago."""
    now = time.time()
    for old in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        try:
            if now - old.stat().st_mtime > STALE_TMP_SECONDS:
                old.unlink()
        except OSError:  # another process removed or renamed it: nothing to clean
            pass


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def check_header(path: Any, header: dict, fmt: str | None) -> None:
    """Check a text file's header object: its ``format`` (when ``fmt`` is given) and ``version``.

    Raises:
        DemoFileError: another format, a version that is not an integer, or one newer than this library reads.
    """
    if fmt is not None and header.get("format") != fmt:
        raise DemoFileError(f"{path}: expected format {fmt!r}, found {header.get('format')!r}")
    v = header.get("version", FORMAT_VERSION)
    if isinstance(v, bool) or not isinstance(v, int):
        raise DemoFileError(f"{path}: the header's version must be an integer: got {v!r}")
    _check_version(path, v)


def _check_version(path: Any, v: int) -> None:
    """A file's format version must be one this library reads: 1 to ``FORMAT_VERSION``."""
    if v < 1:
        raise DemoFileError(f"{path}: format version must be a positive integer (1 to {FORMAT_VERSION}): got {v}")
    if v > FORMAT_VERSION:
        raise DemoFileError(f"{path}: format version {v} is newer than this library reads ({FORMAT_VERSION}); "
                            f"upgrade pluggable-irl")


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
    version = _scalar_int(path, arrays.pop("version")) if "version" in arrays else None
    meta = _meta(path, arrays.pop("meta")) if "meta" in arrays else {}
    if fmt is not None and got != fmt:
        raise DemoFileError(f"{path}: expected a {fmt!r} file, found format {got!r}")
    if version is not None:
        _check_version(path, version)
    return got or "", arrays, meta


def finite_array(path: Any, name: str, v: Any, ndims: tuple[int, ...]) -> np.ndarray | None:
    """An array read from ``path`` as finite float64 with one of ``ndims`` dimensions (``None`` stays ``None``).

    Raises:
        DemoFileError: naming the file and the array, the rule and what was found.

    Example:
        >>> finite_array("r.npz", "theta", np.array([1, 2]), (1,))
        array([1., 2.])
    """
    if v is None:
        return None
    v = np.asarray(v)
    rule = f"{path}: {name!r} must be a {' or '.join(f'{d}-D' for d in ndims)} array of finite numbers"
    if v.dtype.kind not in "iuf" or v.ndim not in ndims:
        raise DemoFileError(f"{rule}: got {v.dtype} array of shape {v.shape}")
    bad = ~np.isfinite(v)
    if bad.any():
        raise DemoFileError(f"{rule}: got {v[bad].flat[0]} at index {tuple(int(i) for i in np.argwhere(bad)[0])}")
    return v.astype(np.float64)


def _scalar_int(path: Path, v: np.ndarray) -> int:
    if v.shape != () or v.dtype.kind not in "iu":
        raise DemoFileError(f"{path}: 'version' must be a single integer: got {v.dtype} array of shape {v.shape}"
                            + (f" ({v.item()!r})" if v.size == 1 else ""))
    return int(v)


def _meta(path: Path, v: np.ndarray) -> dict:
    try:
        meta = json.loads(str(v)) if v.shape == () and v.dtype.kind == "U" else None
    except (json.JSONDecodeError, RecursionError):
        meta = None
    if not isinstance(meta, dict):
        raise DemoFileError(f"{path}: 'meta' must be a JSON object stored as one string")
    return meta



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
    writers = next((w for cls, w in _WRITERS if isinstance(data, cls)), None)
    if writers is None:
        raise DemoFileError(f"cannot save {type(data).__name__} to {path.suffix!r}")
    if path.suffix not in writers:
        raise DemoFileError(f"{path}: unknown extension {path.suffix!r}; known: {sorted(writers)}")
    writers[path.suffix](data, path)


def jsonl_records(path: Path, lines: Any, *, fmt: str | None, data_key: str | None) -> Any:
    """Parse JSON-lines text into ``(line number, record)`` pairs, checking the format header.

    Blank lines are skipped. A header line is an object with ``"format"`` but
    without ``data_key``; its format must equal ``fmt`` (any format when ``fmt`` is
    ``None``), its version must not be newer than this library's, and it is yielded
    with line number 0 so that callers can read other header fields.

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
        except RecursionError:
            raise DemoFileError(f"{path}, line {lineno}: JSON nested too deeply to read") from None
        if not isinstance(row, dict):
            raise DemoFileError(f"{path}, line {lineno}: expected a JSON object, found {type(row).__name__}")
        if "format" in row and (data_key is None or data_key not in row):
            check_header(path, row, fmt)
            yield 0, row
        else:
            yield lineno, row


def _load_npz(path: Path) -> Any:
    fmt, arrays, meta = load_arrays(path)
    loader = registry.get(fmt)
    if loader is None:
        raise DemoFileError(f"{path}: unknown evidence format {fmt!r}; known: {sorted(f for f in registry if f)}")
    return loader(arrays, meta)


def _load_text(path: Path, columns: Any) -> Any:
    """A text file: a sniffing reader that accepts it, per-episode JSON Lines, or a table by its header's format."""
    readers = [(sniff, reader) for suffix, sniff, reader in _TEXT_READERS if suffix == path.suffix]
    for sniff, reader in readers:
        if sniff is not None and sniff(path):
            return reader(path)
    fmt, per_episode = _text_format(path)
    if per_episode and columns is None:
        default = next((reader for sniff, reader in readers if sniff is None), None)
        if default is not None:
            return default(path)
    reader = table_readers.get(fmt or UNTAGGED_TABLE)
    if reader is None:
        raise DemoFileError(f"{path}: unknown evidence format {fmt!r}; known: {sorted(table_readers)}")
    return reader(path, columns)


def load(path: str | os.PathLike, *, columns: Any = None) -> Any:
    """Load evidence saved by :func:`save` (format chosen by extension; never unpickles).

    ``.csv`` and ``.jsonl`` files with one row per step (see :mod:`demos.tables`)
    are read as trajectories; ``columns`` maps our column names to the file's
    (``{"episode": "ep", "state": "obs"}`` or ``"episode=ep,state=obs"``).

    Raises:
        DemoFileError: what is wrong and where (file, line, episode).
    """
    if columns is not None:  # a bad mapping is the caller's error (ValueError), not the file's
        from demos.tables import parse_columns

        columns = parse_columns(columns) or None
    path = Path(path)
    if not path.exists():
        raise DemoFileError(f"{path}: no such file")
    known = sorted({".npz"} | {suffix for suffix, _, _ in _TEXT_READERS}
                   | ({".csv", ".jsonl"} if table_readers else set()))
    if path.suffix not in known:
        raise DemoFileError(f"{path}: unknown extension {path.suffix!r}; known: {known}")
    try:
        return _load_npz(path) if path.suffix == ".npz" else _load_text(path, columns)
    except DemoFileError:
        raise
    except DemoValidationError as e:
        raise DemoFileError(str(e) if str(e).startswith(str(path)) else f"{path}: {e}") from None
    except UnicodeDecodeError:
        raise DemoFileError(f"{path}: not a UTF-8 text file") from None
    except OSError as e:
        raise DemoFileError(f"{path}: cannot read ({e.strerror or e})") from None
    except (KeyError, TypeError, ValueError, IndexError, RecursionError, csv.Error) as e:
        # a damaged file a specific check did not foresee: still a DemoFileError naming the file
        raise DemoFileError(f"{path}: not a valid evidence file ({type(e).__name__}: {e})") from None


def _text_format(path: Path) -> tuple[str | None, bool]:
    """``(format tag of the header or None, whether the rows are whole episodes)`` from a text file's first lines."""
    with open(path, encoding="utf-8") as f:
        head = [line for _, line in zip(range(50), f)]
    lines = [line.strip() for line in head if line.strip()]
    if not lines:
        return None, False
    if path.suffix == ".csv":
        if not lines[0].startswith("#"):
            return None, False
        try:
            header = json.loads(lines[0][1:])
        except (json.JSONDecodeError, RecursionError):
            return None, False
        return (header.get("format") if isinstance(header, dict) else None), False
    fmt, per_episode = None, False
    for line in lines[:2]:
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            break
        if not isinstance(row, dict):
            break
        if "format" in row and "states" not in row:
            fmt = row["format"] if isinstance(row["format"], str) else None
            continue
        per_episode = "states" in row
        break
    return fmt, per_episode or (fmt == UNTAGGED_TABLE and len(lines) == 1)
