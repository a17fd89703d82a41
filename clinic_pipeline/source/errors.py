"""The one error an operator sees when the source cannot be read."""

from __future__ import annotations


class SourceError(RuntimeError):
    """The export is missing, unreadable or of an unsupported kind.

    Messages name paths, files, tables, columns and row numbers only: never a cell value (PHI).
    """
