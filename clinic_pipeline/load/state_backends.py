"""The two databases the state store runs on, behind one small connection interface.

The store's SQL (the schema and queries in `state.py`, the rollback's plans) is written once, in what
both accept: DuckDB's `?` and `$name` placeholders (rewritten to psycopg's `%s` / `%(name)s` here),
`x = ANY(?::VARCHAR[])`, `INSERT ... ON CONFLICT ... DO UPDATE`, a sequence, JSON columns. What differs
is here, and only here:

- connection: a DuckDB file is opened by one process at a time (`open_state` takes `state_lock`'s flock
  first) and stays mode 0600 (before-images are PHI); PostgreSQL takes any number of workers, each with
  its own connection, and its access is the server's (role and `pg_hba.conf`).
- write transaction: DuckDB's BEGIN/COMMIT, the process being the only writer already; on PostgreSQL a
  transaction that first takes `pg_advisory_xact_lock`, so writers commit one at a time and the audit
  log's `seq` order is its commit order, as with one DuckDB writer (rollback compares `seq`s). The lock
  is held for one batch's commit, never across API calls, and ends with the transaction.
- loads: on DuckDB the file itself keeps a second load out; on PostgreSQL each object's load holds a session
  advisory lock of its own, so two workers never load the same object at once (different ones, freely).
- JSON comes back as text from both (psycopg's parsing is switched off), so the store parses it once.
- read-only: DuckDB's `read_only`; PostgreSQL's `default_transaction_read_only`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import duckdb
import psycopg
import pyarrow as pa
from psycopg.types.string import TextLoader

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.load.state_lock import StateBusyError, busy_from_duckdb
from clinic_pipeline.source.server_databases import ServerUrl, pg_reason

Params: TypeAlias = Sequence[Any] | Mapping[str, Any] | None

# Any constant works: advisory locks are per database, so only this database's state writers share it.
_WRITER_LOCK = 0x636C696E6963  # "clinic"
_WRITER_LOCK_CLASS = 0x636C6E63  # the two-key form's first key, for the per-object load locks
_LOCK_POLL_SECONDS = 0.5
_CONNECT_TIMEOUT_SECONDS = 10
_NAMED_PARAM = re.compile(r"\$([A-Za-z_]\w*)")
# `VALUES (?, ?, ...)` of an INSERT whose rows DuckDB is given as one Arrow table (`DuckDBConnection.executemany`).
_VALUES_ROW = re.compile(r"\bVALUES\s*\((\s*\?\s*(?:,\s*\?\s*)*)\)", re.IGNORECASE)


class StateUnavailableError(OperatorError):
    """The PostgreSQL state database cannot be reached; the message masks the password."""


class Cursor(Protocol):
    @property
    def description(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...


class StateConnection(Protocol):
    def execute(self, sql: str, params: Params = None) -> Cursor: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def writing(self) -> AbstractContextManager[None]:
        """One write transaction: committed on a clean exit, rolled back otherwise."""

    def arrow(self, sql: str, params: Sequence[Any], schema: pa.Schema) -> pa.Table: ...

    def loading(self, obj: str, wait_seconds: float) -> AbstractContextManager[None]:
        """Held while one object loads: a second load of it elsewhere waits, then gives up (`StateBusyError`)."""

    def close(self) -> None: ...


class DuckDBConnection:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def execute(self, sql: str, params: Params = None) -> Cursor:
        return self._con.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """An `INSERT ... VALUES (?, ...)` over every row as one statement: the rows as an Arrow table in place of
        `VALUES`. DuckDB's own `executemany` runs the statement once per row (about half a millisecond each, the
        loader's largest cost per record). The rows keep their order (the audit log's `seq` follows it). An upsert
        must not name one key twice (one statement cannot update a row twice): callers pass the last row per key.
        A single row (an Arrow table costs more than its statement), any other statement, or values Arrow cannot
        type, run row by row as before."""
        if not rows:
            return
        values = _VALUES_ROW.search(sql)
        if len(rows) == 1 or values is None or values.group(1).count("?") != len(rows[0]):
            self._con.executemany(sql, rows)
            return
        try:
            table = pa.table({f"c{i}": pa.array(column) for i, column in enumerate(zip(*rows, strict=True))})
        except (pa.ArrowException, TypeError, ValueError):
            self._con.executemany(sql, rows)
            return
        name = f"_rows_{id(table):x}"
        self._con.register(name, table)
        try:
            self._con.execute(f"{sql[: values.start()]}SELECT * FROM {name}{sql[values.end() :]}")
        finally:
            self._con.unregister(name)

    @contextmanager
    def writing(self) -> Iterator[None]:
        self._con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    def arrow(self, sql: str, params: Sequence[Any], schema: pa.Schema) -> pa.Table:
        # Arrow straight from DuckDB (the id map can hold every record of the migration), on a cursor of its
        # own so the store's connection is left as it was.
        with self._con.cursor() as cursor:
            return cursor.sql(sql, params=params).to_arrow_table().cast(schema)

    @contextmanager
    def loading(self, obj: str, wait_seconds: float) -> Iterator[None]:
        yield  # the file is this process's alone while it is open (`state_lock`): no other load can run

    def close(self) -> None:
        self._con.close()


def connect_duckdb(path: Path, *, read_only: bool, schema: str) -> DuckDBConnection:
    """The file, created mode 0600, its schema created unless `read_only`. The caller holds `state_lock`."""
    # A restrictive umask while DuckDB creates the file: it is never world-readable, not even briefly.
    old_umask = os.umask(0o177)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        # A process that does not take our lock (an older build, a DuckDB shell) holds the file.
        if "Could not set lock" not in str(exc):
            raise
        raise busy_from_duckdb(path, str(exc)) from None
    finally:
        os.umask(old_umask)
    try:
        if not read_only:
            con.execute(schema)
        os.chmod(path, 0o600)
    except BaseException:
        con.close()
        raise
    return DuckDBConnection(con)


class PostgresConnection:
    def __init__(self, con: psycopg.Connection[Any]) -> None:
        self._con = con

    def execute(self, sql: str, params: Params = None) -> Cursor:
        return self._con.execute(_pg_sql(sql, params), params)  # type: ignore[arg-type]

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._con.cursor() as cursor:
            cursor.executemany(_pg_sql(sql, ()), rows)  # type: ignore[arg-type]

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._con.transaction():
            self._con.execute("SELECT pg_advisory_xact_lock(%s)", [_WRITER_LOCK])
            yield

    @contextmanager
    def loading(self, obj: str, wait_seconds: float) -> Iterator[None]:
        # A session lock per object (keyed in the writer lock's class): workers load different objects at once,
        # never the same one, whatever the instance's pools say.
        key = [_WRITER_LOCK_CLASS, obj]
        deadline = time.monotonic() + wait_seconds
        while not self._con.execute("SELECT pg_try_advisory_lock(%s::int, hashtext(%s))", key).fetchone()[0]:  # type: ignore[index]
            if time.monotonic() >= deadline:
                raise StateBusyError(
                    f"{obj} is being loaded by another worker of this migration (still after {wait_seconds:g} s); "
                    "wait for its run to finish, then run this one again"
                )
            time.sleep(_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            self._con.execute("SELECT pg_advisory_unlock(%s::int, hashtext(%s))", key)

    def arrow(self, sql: str, params: Sequence[Any], schema: pa.Schema) -> pa.Table:
        rows = self.execute(sql, params).fetchall()
        return pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows], schema=schema)

    def close(self) -> None:
        self._con.close()


def connect_postgres(url: ServerUrl, *, read_only: bool, schema: str) -> PostgresConnection:
    """A connection of this worker's own, its schema created unless `read_only` (concurrent first opens are
    serialized by the writer lock: `CREATE ... IF NOT EXISTS` races otherwise)."""
    try:
        con = psycopg.connect(
            host=url.host,
            port=url.port,
            dbname=url.database,
            user=url.user,
            password=url.password,
            connect_timeout=_CONNECT_TIMEOUT_SECONDS,
            application_name="clinic_pipeline state",
            autocommit=True,  # each statement commits on its own; `writing` groups a batch
            options="-c default_transaction_read_only=on" if read_only else None,
        )
    except psycopg.Error as exc:
        raise StateUnavailableError(f"{url.redacted}: cannot open the migration state ({_reason(exc, url)})") from None
    # JSON as text, as DuckDB returns it: the store parses before-images itself.
    con.adapters.register_loader("json", TextLoader)
    connection = PostgresConnection(con)
    try:
        if not read_only:
            with connection.writing():
                con.execute(schema)
    except BaseException:
        con.close()
        raise
    return connection


def _pg_sql(sql: str, params: Params) -> str:
    """The store's DuckDB-style placeholders as psycopg's; a literal `%` doubled (psycopg reads it)."""
    if params is None:
        return sql
    sql = sql.replace("%", "%%")
    if isinstance(params, Mapping):
        return _NAMED_PARAM.sub(r"%(\1)s", sql)
    return sql.replace("?", "%s")


def _reason(exc: psycopg.Error, url: ServerUrl) -> str:
    """The source reader's reason (`pg_reason`: never a server message's values), the password masked all the
    same should a driver ever quote it."""
    text = pg_reason(exc)
    return text.replace(url.password, "***") if url.password else text
