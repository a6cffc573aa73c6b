"""The errors of the data layer (the bottom of :mod:`demos`: every other module may import it)."""

from __future__ import annotations

__all__ = ["DemoValidationError", "DemoFileError"]


class DemoValidationError(ValueError):
    """Demonstration data breaks a rule; the message says which entry and why."""


class DemoFileError(ValueError):
    """A file could not be read as evidence; the message names the file and the problem."""
