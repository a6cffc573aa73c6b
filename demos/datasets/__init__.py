"""Datasets that ship with the package: ``demos.datasets.load(name)`` and ``demos.datasets.names()``.

Each dataset is package data (read through :mod:`importlib.resources`, so it
loads from an installed wheel without any path outside the package), with its
credit and licence in a ``README.md`` and ``LICENSE`` beside it.

* ``"mouselab-planning-depth"``: Mouselab-MDP click traces of the planning-depth
  study (Max Planck Institute for Intelligent Systems, MIT licence): 4,917
  trials of 125 participants on the 13-node "312" tree, in a training block
  (2,469 trials) and a test block (2,448). These are the main experiment's
  trials; the study's extension run (9 participants, 360 trials, 5,277 in both
  runs) is not included.

Example:
    >>> import demos
    >>> demos.datasets.names()
    ['mouselab-planning-depth']
    >>> t = demos.datasets.load("mouselab-planning-depth", blocks=["test"])
    >>> len(t), len(t.participants())
    (2448, 123)
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Sequence

__all__ = ["names", "load", "describe", "path"]

_DATASETS = {
    "mouselab-planning-depth": {
        "folder": "mouselab-planning-depth",
        "file": "mouselab-mdp.csv.gz",
        "summary": "Mouselab-MDP click traces, planning-depth study (MPI-IS, MIT licence): 4,917 trials, "
                   "125 participants, blocks 'training' and 'test'; demos.DeliberationTraces",
    },
}


def names() -> list[str]:
    """Names of the packaged datasets, sorted."""
    return sorted(_DATASETS)


def describe() -> list[tuple[str, str]]:
    """``(name, summary)`` of every packaged dataset."""
    return [(n, _DATASETS[n]["summary"]) for n in names()]


def _entry(name: str) -> dict[str, str]:
    if name not in _DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(names())}")
    return _DATASETS[name]


def path(name: str, file: str | None = None) -> Any:
    """The packaged file of a dataset (or its ``README.md`` / ``LICENSE``) as an importlib resource."""
    entry = _entry(name)
    return resources.files(__name__).joinpath(entry["folder"], file or entry["file"])


def load(name: str, *, blocks: Sequence[str] | None = None) -> Any:
    """Load a packaged dataset.

    Args:
        name: one of :func:`names`.
        blocks: keep only these blocks (e.g. ``["test"]``); default all trials.

    Returns:
        The evidence (for ``"mouselab-planning-depth"``: :class:`demos.DeliberationTraces`).

    Raises:
        KeyError: an unknown name (the message lists the known ones).
        demos.DemoFileError: no trials in the requested blocks (the message lists the blocks there are).
    """
    from demos.deliberation import load_mouselab

    resource = path(name)
    with resources.as_file(resource) as real:
        return load_mouselab(real, blocks=blocks)
