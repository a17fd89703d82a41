"""Where the migration state lives: a DuckDB file (the default) or a PostgreSQL database.

`CLINIC_STATE_URL` chooses: unset, the DuckDB file under the data folder; `duckdb:///rel/state.duckdb`
(or `duckdb:////abs/state.duckdb`, SQLAlchemy's reading); `postgresql://user:password@host:port/db`
when several workers share one state. The URL's password is a secret: a location is shown only through
`describe`, which masks it, and `ServerUrl` keeps it out of its repr.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeAlias

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.source.errors import SourceError
from clinic_pipeline.source.server_databases import POSTGRES_SCHEMES, ServerUrl, parse_server_url

StateLocation: TypeAlias = Path | ServerUrl

_DUCKDB_SCHEME = "duckdb"
USAGE = "expected postgresql://user:password@host:port/database or duckdb:///path/to/state.duckdb"


class StateUrlError(OperatorError):
    """CLINIC_STATE_URL cannot be used; the message never repeats the URL (it may hold a password)."""


def parse_state_url(url: str) -> StateLocation:
    scheme, separator, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in (_DUCKDB_SCHEME, *POSTGRES_SCHEMES):
        raise StateUrlError(f"unsupported scheme: {USAGE}")
    if scheme == _DUCKDB_SCHEME:
        path = rest.removeprefix("/")
        if not path:
            raise StateUrlError(f"no file named: {USAGE}")
        return Path(path).expanduser()
    try:
        location = parse_server_url(url)
    except SourceError as exc:
        raise StateUrlError(str(exc)) from None
    if location.schemas or location.manifest:
        # Source-only parameters: the state's tables live in the user's default schema.
        raise StateUrlError(f"no query parameters are supported: {USAGE}")
    return location


def describe(location: StateLocation) -> str:
    """The location as it may be shown (logs, errors, metadata, CLI output): the password masked."""
    return str(location) if isinstance(location, Path) else location.redacted
