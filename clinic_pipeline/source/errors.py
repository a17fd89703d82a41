"""The one error an operator sees when the source cannot be read."""

from __future__ import annotations

from clinic_pipeline.errors import OperatorError


class SourceError(OperatorError):
    """The export is missing, unreadable or of an unsupported kind.

    Messages name paths, files, tables, columns and row numbers only: never a cell value (PHI).
    """
