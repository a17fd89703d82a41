"""The one base class of every error an operator can cause or fix.

The CLI prints such an error as one line (`error: …`) and exits 1; a Dagster asset turns it into a
`dg.Failure` with the same line. Anything else is a bug and keeps its traceback. Messages name files,
rows, fields and settings, never record values or secrets.
"""


class OperatorError(RuntimeError):
    """Something the person running the migration can act on; the message says what to do."""
