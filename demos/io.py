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

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from demos.errors import DemoFileError, DemoValidationError

__all__ = ["save", "load", "DemoFileError", "atomic_write", "save_arrays", "load_arrays", "FORMAT_VERSION",
           "registry", "register_format", "register_text_reader", "register_writer"]

FORMAT_VERSION = 1

#: Loaders of ``.npz`` evidence by the file's format string: ``format -> loader(arrays, meta)``. Every data
#: module registers its own formats (this module never imports them back); ``""`` is a file without a format tag.
registry: dict[str, Callable[[dict, dict], Any]] = {}
_TEXT_READERS: list[tuple[str, Callable[[Path], bool] | None, Callable[[Path], Any]]] = []
_WRITERS: list[tuple[type, dict[str, Callable[[Any, Path], None]]]] = []


def register_format(fmt: str, loader: Callable[[dict, dict], Any]) -> None:
    """Make :func:`load` read ``.npz`` files of format ``fmt`` with ``loader(arrays, meta)``."""
    registry[fmt] = loader


def register_text_reader(suffix: str, reader: Callable[[Path], Any], *,
                         sniff: Callable[[Path], bool] | None = None) -> None:
    """Make :func:`load` read ``suffix`` files (e.g. ``".csv"``) with ``reader(path)``.

    Readers with a ``sniff(path) -> bool`` are tried first, in registration
    order; the reader without one is the default for the extension.
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


def _load_npz(path: Path) -> Any:
    fmt, arrays, meta = load_arrays(path)
    loader = registry.get(fmt)
    if loader is None:
        raise DemoFileError(f"{path}: unknown evidence format {fmt!r}; known: {sorted(f for f in registry if f)}")
    return loader(arrays, meta)


def _load_text(path: Path) -> Any:
    """The first registered reader of the extension whose ``sniff`` accepts the file, else the default one."""
    readers = [(sniff, reader) for suffix, sniff, reader in _TEXT_READERS if suffix == path.suffix]
    for sniff, reader in readers:
        if sniff is not None and sniff(path):
            return reader(path)
    for sniff, reader in readers:
        if sniff is None:
            return reader(path)
    raise DemoFileError(f"{path}: no reader for {path.suffix!r} files of this kind")


def load(path: str | os.PathLike) -> Any:
    """Load evidence saved by :func:`save` (format chosen by extension; never unpickles).

    Raises:
        DemoFileError: what is wrong and where (file, line, episode).
    """
    path = Path(path)
    if not path.exists():
        raise DemoFileError(f"{path}: no such file")
    known = sorted({".npz"} | {suffix for suffix, _, _ in _TEXT_READERS})
    if path.suffix not in known:
        raise DemoFileError(f"{path}: unknown extension {path.suffix!r}; known: {known}")
    try:
        return _load_npz(path) if path.suffix == ".npz" else _load_text(path)
    except DemoValidationError as e:
        raise DemoFileError(f"{path}: {e}") from None
    except UnicodeDecodeError:
        raise DemoFileError(f"{path}: not a UTF-8 text file") from None
