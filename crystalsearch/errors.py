"""Errors that the CLI renders as one line (no traceback)."""

from __future__ import annotations


class CrystalSearchError(Exception):
    """Base class for errors shown to users as a single line."""


class InputError(CrystalSearchError):
    """A user-supplied file or identifier could not be used.

    ``str(err)`` is ``"<source>: <reason>"`` so that one line names the file and the problem.
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class CheckpointError(CrystalSearchError):
    """A model checkpoint is missing, corrupted or incompatible."""


class IndexFileError(CrystalSearchError):
    """A search index is missing, corrupted or built with another encoder."""
