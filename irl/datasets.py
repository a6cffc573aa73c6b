"""Datasets of many MDPs: evidence items listed in a manifest, loaded lazily, batched as maps.

A *manifest* lists maps (each an MDP) with the evidence observed in them and the
human model that explains it. It is a JSON file::

    {"format": "pluggable-irl/manifest", "version": 1,
     "human": "boltzmann:beta=1",
     "items": [
       {"env": "objectworld", "env_kwargs": {"size": 16, "seed": 0}, "evidence": ["map0.npz"], "split": "train"},
       {"mdp": "maps/room.npz", "evidence": ["room.jsonl"], "human": "myopic:horizon=3", "split": "val"}]}

or a CSV file with the columns ``env`` (or ``mdp``), ``env_kwargs`` (JSON text),
``evidence`` (file names separated by ``;``), ``human`` and ``split`` (one map per
row). A map is a registered environment (``env`` with keyword arguments, e.g. an
objectworld seed) or an MDP file (``mdp``); relative paths are relative to the
manifest. ``human`` defaults to the manifest's top-level ``human`` (JSON) or
``boltzmann``; ``split`` defaults to ``"train"``.

:class:`EvidenceDataset` is a ``torch.utils.data.Dataset`` of :class:`irl.Evidence`
items (one per evidence file) that reads files only when an item is asked for;
:func:`collate_maps` batches maps of different sizes into a :class:`MapBatch`
(a :class:`~irl.rewards.NeuralReward` evaluates each group of equally sized maps in
one network pass).
"""

from __future__ import annotations

import csv
import functools
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from irl.evidence import Evidence
from irl.mdp import TabularMDP

__all__ = ["ManifestError", "ManifestItem", "read_manifest", "write_manifest", "load_mdp", "EvidenceDataset",
           "MapBatch", "collate_maps", "simulate_manifest", "MANIFEST_FORMAT"]

MANIFEST_FORMAT = "pluggable-irl/manifest"
_MANIFEST_VERSION = 1


class ManifestError(ValueError):
    """A manifest is malformed; the message names the file, the item and the rule."""


@dataclass(frozen=True)
class ManifestItem:
    """One map of a manifest: where its MDP comes from, its evidence files, human model and split."""

    evidence: tuple[Path, ...]
    human: str = "boltzmann"
    split: str = "train"
    env: str | None = None
    env_kwargs: tuple[tuple[str, Any], ...] = ()
    mdp: Path | None = None

    def __post_init__(self) -> None:
        if (self.env is None) == (self.mdp is None):
            raise ManifestError(f"a manifest item needs exactly one of 'env' or 'mdp': got env={self.env!r}, "
                                f"mdp={self.mdp!r}")
        if not self.evidence:
            raise ManifestError(f"a manifest item needs at least one evidence file: {self.env or self.mdp} has none")


def load_mdp(path: str | Path) -> TabularMDP:
    """Read an MDP file: the one place datasets depend on the MDP file format.

    Delegates to ``TabularMDP.load``. Maps given as ``env`` entries need no file.

    Raises:
        ManifestError: this installation has no MDP file reader.
    """
    loader = getattr(TabularMDP, "load", None)
    if loader is None:
        raise ManifestError(f"{path}: this version of pluggable-irl cannot read MDP files (no TabularMDP.load); "
                            f"list the map as a registered environment instead: "
                            f'{{"env": "objectworld", "env_kwargs": {{"seed": 0}}, ...}}')
    return loader(path)


def _item(raw: dict[str, Any], base: Path, default_human: str, where: str) -> ManifestItem:
    known = {"env", "env_kwargs", "mdp", "evidence", "human", "split"}
    extra = sorted(set(raw) - known)
    if extra:
        raise ManifestError(f"{where}: unknown keys {extra}; known: {sorted(known)}")
    ev = raw.get("evidence")
    if isinstance(ev, str):
        ev = [e for e in ev.split(";") if e.strip()]
    if not isinstance(ev, list) or not all(isinstance(e, str) for e in ev):
        raise ManifestError(f"{where}: 'evidence' must be a list of file names (or ';'-separated text): got {ev!r}")
    kwargs = raw.get("env_kwargs") or {}
    if isinstance(kwargs, str):
        try:
            kwargs = json.loads(kwargs)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{where}: 'env_kwargs' must be a JSON object: {e}") from None
    if not isinstance(kwargs, dict):
        raise ManifestError(f"{where}: 'env_kwargs' must be a JSON object: got {kwargs!r}")
    mdp = raw.get("mdp") or None
    try:
        return ManifestItem(evidence=tuple(base / e.strip() for e in ev), human=raw.get("human") or default_human,
                            split=raw.get("split") or "train", env=raw.get("env") or None,
                            env_kwargs=tuple(sorted(kwargs.items())), mdp=None if mdp is None else base / mdp)
    except ManifestError as e:
        raise ManifestError(f"{where}: {e}") from None


def read_manifest(path: str | Path) -> list[ManifestItem]:
    """Parse a JSON or CSV manifest (see the module docstring).

    Raises:
        FileNotFoundError: no file at ``path``.
        ManifestError: a file that is not a manifest (not UTF-8 text, not JSON, not a JSON object of
            format ``pluggable-irl/manifest``), unknown keys, an empty item list, or files it lists
            (evidence, MDP files) that do not exist; the message names the manifest.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest file" if not path.is_dir() else
                                f"{path}: is a directory, not a manifest file (.json or .csv)")
    base = path.parent
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not a manifest: expected UTF-8 text (JSON or CSV), found binary data") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        wheres = [f"{path}: row {i + 2}" for i in range(len(rows))]
        items = [_item({k: v for k, v in r.items() if v not in (None, "")}, base, "boltzmann", where)
                 for r, where in zip(rows, wheres)]
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{path}: not valid JSON: {e}") from None
        _check_header(path, doc)
        raw = doc.get("items")
        if not isinstance(raw, list):
            raise ManifestError(f"{path}: 'items' must be a list of maps: found {type(raw).__name__}")
        wheres = [f"{path}: item {i}" for i in range(len(raw))]
        items = [_item(r, base, doc.get("human", "boltzmann"), where) if isinstance(r, dict) else _not_a_map(r, where)
                 for r, where in zip(raw, wheres)]
    if not items:
        raise ManifestError(f"{path}: the manifest lists no maps")
    _check_files_exist(items, wheres)
    return items


def _check_header(path: Path, doc: Any) -> None:
    """A JSON manifest is an object with ``format`` :data:`MANIFEST_FORMAT` and an integer ``version`` we read."""
    if not isinstance(doc, dict):
        raise ManifestError(f"{path}: not a manifest: 'format' must be {MANIFEST_FORMAT!r} in a JSON object; found a "
                            f"JSON {type(doc).__name__}")
    if doc.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"{path}: not a manifest: 'format' must be {MANIFEST_FORMAT!r}; found "
                            f"{doc.get('format')!r}")
    version = doc.get("version", _MANIFEST_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ManifestError(f"{path}: 'version' must be an integer: found {version!r}")
    if version > _MANIFEST_VERSION:
        raise ManifestError(f"{path}: version {version} is newer than this reader ({_MANIFEST_VERSION})")


def _not_a_map(raw: Any, where: str) -> ManifestItem:
    raise ManifestError(f"{where}: each item must be a JSON object (env or mdp, evidence, ...): found {raw!r}")


def _check_files_exist(items: Sequence[ManifestItem], wheres: Sequence[str]) -> None:
    """Fail on the first item that lists an evidence or MDP file that does not exist (paths are relative to the
    manifest's folder)."""
    for item, where in zip(items, wheres):
        missing = [str(p) for p in (*item.evidence, *([item.mdp] if item.mdp is not None else [])) if not p.is_file()]
        if missing:
            raise ManifestError(f"{where}: listed file(s) not found: {', '.join(missing)} (paths are relative to "
                                f"the manifest's folder)")


def write_manifest(path: str | Path, items: Sequence[dict[str, Any]], *, human: str = "boltzmann") -> None:
    """Write a JSON manifest atomically (``items`` as in the module docstring, paths relative to ``path``)."""
    from demos.io import atomic_write

    doc = {"format": MANIFEST_FORMAT, "version": _MANIFEST_VERSION, "human": human, "items": list(items)}
    text = json.dumps(doc, indent=1)
    atomic_write(path, lambda f: f.write(text), binary=False)


class EvidenceDataset(torch.utils.data.Dataset):
    """A torch ``Dataset`` of :class:`irl.Evidence` items from a manifest, read lazily.

    One item per evidence file; the MDP of a map is built (or read) once and shared
    by its items, and so is each human model spec.

    Args:
        items: manifest items (from :func:`read_manifest`), or a manifest path.
        split: keep only items of this split (``None``: all).

    Example:
        >>> import tempfile, irl
        >>> folder = tempfile.mkdtemp()
        >>> path = irl.datasets.simulate_manifest(folder, "objectworld", seeds=[0, 1], n=4, horizon=8,
        ...                                        env_kwargs={"size": 6}, seed=0)
        >>> ds = irl.datasets.EvidenceDataset(path)
        >>> len(ds), ds[0].mdp.n_states
        (2, 36)
    """

    def __init__(self, items: Sequence[ManifestItem] | str | Path, split: str | None = None) -> None:
        if isinstance(items, (str, Path)):
            items = read_manifest(items)
        chosen = [it for it in items if split is None or it.split == split]
        if not chosen:
            raise ManifestError(f"no maps in split {split!r}; splits present: {sorted({it.split for it in items})}")
        self.items = chosen
        self.index = [(i, j) for i, it in enumerate(chosen) for j in range(len(it.evidence))]
        self._mdp = functools.lru_cache(maxsize=64)(self._build_mdp)
        self._human = functools.lru_cache(maxsize=None)(self._build_human)

    def _build_mdp(self, i: int) -> TabularMDP:
        it = self.items[i]
        if it.mdp is not None:
            return load_mdp(it.mdp)
        from irl import envs

        return envs.make(it.env, **dict(it.env_kwargs))

    @staticmethod
    def _build_human(spec: str) -> Any:
        import human_models

        return human_models.make(spec)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> Evidence:
        import demos

        i, j = self.index[k]
        return Evidence(self._mdp(i), demos.load(self.items[i].evidence[j]), self._human(self.items[i].human))

    def __getstate__(self) -> dict[str, Any]:  # worker processes rebuild the caches
        return {"items": self.items, "index": self.index}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.items, self.index = state["items"], state["index"]
        self._mdp = functools.lru_cache(maxsize=64)(self._build_mdp)
        self._human = functools.lru_cache(maxsize=None)(self._build_human)


class MapBatch:
    """A minibatch of evidence items in maps of possibly different sizes.

    A plain container (not a dataclass or sequence), so that device-transfer
    utilities treat it as one opaque item: the maps stay on the CPU planner.
    """

    __slots__ = ("evidence",)

    def __init__(self, evidence: Sequence[Evidence]) -> None:
        self.evidence = tuple(evidence)

    @property
    def mdps(self) -> list[TabularMDP]:
        """The distinct MDPs of the batch, in order of first appearance."""
        return list({id(ev.mdp): ev.mdp for ev in self.evidence}.values())

    def __len__(self) -> int:
        return len(self.evidence)


def collate_maps(items: Sequence[Evidence]) -> MapBatch:
    """``DataLoader`` collate: keep evidence in maps of different sizes together as a :class:`MapBatch`.

    Maps are not padded: a :class:`~irl.rewards.NeuralReward` stacks the maps of
    each size into one network pass, and the planner solves each map exactly.
    """
    items = tuple(items)
    if not items or not all(isinstance(ev, Evidence) for ev in items):
        raise TypeError("collate_maps takes a non-empty list of irl.Evidence items")
    return MapBatch(items)


def simulate_manifest(folder: str | Path, env: str, *, seeds: Sequence[int], n: int, horizon: int,
                      human: str = "boltzmann", env_kwargs: dict[str, Any] | None = None, splits: Sequence[str] = (),
                      seed: int = 0) -> Path:
    """Simulate demonstrations on maps ``env(seed=s)`` and write them with a manifest.

    Each map ``seeds[i]`` gets ``n`` demonstrations of ``horizon`` steps from the human
    model ``human`` acting on the map's true reward, saved as ``map-<s>.npz``.

    Args:
        folder: output folder (created).
        env: registered environment name with a ``seed`` argument (e.g. ``"objectworld"``).
        seeds: one map per seed.
        n: demonstrations per map.
        horizon: steps per demonstration.
        human: human model spec (simulation and manifest).
        env_kwargs: further environment arguments (e.g. ``{"size": 16}``).
        splits: split name per map (default all ``"train"``).
        seed: seed of the simulation (map ``i`` uses ``seed + i``).

    Returns:
        The manifest's path, ``folder/manifest.json``.
    """
    import demos
    import human_models
    from irl import envs

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    splits = list(splits) or ["train"] * len(seeds)
    if len(splits) != len(seeds):
        raise ValueError(f"splits must have one entry per seed ({len(seeds)}): got {len(splits)}")
    model = human_models.make(human)
    items = []
    for i, (s, split) in enumerate(zip(seeds, splits)):
        kwargs = dict(env_kwargs or {}, seed=int(s))
        mdp = envs.make(env, **kwargs)
        data = demos.simulate(mdp, model, envs.true_reward(mdp), n=n, seed=seed + i, horizon=horizon)
        name = f"map-{s}.npz"
        data.save(folder / name)
        items.append({"env": env, "env_kwargs": kwargs, "evidence": [name], "split": split})
    path = folder / "manifest.json"
    write_manifest(path, items, human=human)
    return path
