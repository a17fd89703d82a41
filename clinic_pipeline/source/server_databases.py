"""Read a live PostgreSQL or MySQL/MariaDB database: `postgresql://user:pass@host:port/db[?schema=a,b]`,
`mysql://user:pass@host:port/db` (`postgres://` and `mariadb://` are the same), optional
`manifest=/path/to/manifest.json` for the clinic's time zone and date format.

DuckDB's postgres/mysql scanner extensions are downloaded at run time, which fails offline (here and in
CI), so the tables are read with the Python drivers (psycopg 3, PyMySQL) instead: streamed from a
server-side cursor in batches, every value converted to text by the server (the same text a dump
holds: `0000-00-00` and leading zeros stay visible), batched into Arrow and inserted into DuckDB.
Binary columns become lowercase hex, as the SQLite adapter writes BLOBs. Tables then look like every
other source: `source."<table>"` as VARCHAR plus `_source_row`, declared foreign keys in
`SourceExport.foreign_keys`.

`_source_row` follows the primary key (or physical order for a table without one): stable between
runs of a live database whose rows get updated, where physical order is not. All tables are read in one
read-only transaction with a consistent snapshot, so counts agree across tables of a database that is
still in use. Session time zones are UTC: MySQL `TIMESTAMP` values read as mysqldump writes them, and
PostgreSQL `timestamptz` values carry their `+00` offset.

Never writes: the session is read-only before anything is read. Credentials never appear in errors,
logs or `SourceExport.spec` (errors name host, port, database and table only).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import duckdb
import psycopg
import pyarrow as pa
import pymysql
import pymysql.converters
import pymysql.cursors
from psycopg import sql

from clinic_pipeline.source.errors import SourceError
from clinic_pipeline.source.export import DATA_SCHEMA, DeclaredForeignKey, ExportBuilder, SourceExport
from clinic_pipeline.source.manifest import MANIFEST_NAME, ExportManifest, assumed_manifest, read_manifest
from clinic_pipeline.sql import quote_ident

__all__ = [
    "MYSQL_SCHEMES",
    "POSTGRES_SCHEMES",
    "ServerUrl",
    "connect_mysql",
    "connect_postgres",
    "open_mysql",
    "open_postgres",
    "parse_server_url",
]

POSTGRES_SCHEMES = ("postgresql", "postgres")
MYSQL_SCHEMES = ("mysql", "mariadb")
_DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mariadb": 3306}
_CONNECT_TIMEOUT_S = 10
_BATCH_ROWS = 50_000
_POSTGRES_BINARY = frozenset({"bytea"})
_MYSQL_BINARY = frozenset(
    {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit", "geometry", "point", "linestring"}
    | {"polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection"}
)


@dataclass(frozen=True)
class ServerUrl:
    """A parsed database URL; `redacted` is the only form that may be shown or stored."""

    scheme: str
    host: str
    port: int
    database: str
    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    schemas: tuple[str, ...] = ()
    manifest: Path | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}/{self.database}"

    @property
    def redacted(self) -> str:
        user = f"{self.user}:***@" if self.user and self.password else (f"{self.user}@" if self.user else "")
        query = f"?schema={','.join(self.schemas)}" if self.schemas else ""
        return f"{self.scheme}://{user}{self.where}{query}"


def parse_server_url(spec: str) -> ServerUrl:
    """Parse without ever echoing the URL: it may carry a password."""
    try:
        parts = urlsplit(spec.strip())
        port = parts.port
    except ValueError:
        raise SourceError("database URL is malformed (expected scheme://user:password@host:port/database)") from None
    scheme = parts.scheme.lower()
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not database or "/" in database:
        raise SourceError(f"{scheme}:// URL needs a host and a database: {scheme}://user:password@host:port/database")
    params = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(params) - {"schema", "manifest"})
    if unknown or ("schema" in params and scheme not in POSTGRES_SCHEMES):
        names = ", ".join(unknown or ["schema"])
        raise SourceError(f"{scheme}:// URL has unsupported parameter(s): {names}")
    schemas = tuple(s.strip() for v in params.get("schema", []) for s in v.split(",") if s.strip())
    manifest = Path(params["manifest"][-1]).expanduser() if params.get("manifest") else None
    return ServerUrl(
        scheme=scheme,
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[scheme],
        database=database,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        schemas=schemas,
        manifest=manifest,
    )


def _manifest(url: ServerUrl) -> ExportManifest:
    if url.manifest is None:
        return assumed_manifest()
    folder = url.manifest.parent if url.manifest.name == MANIFEST_NAME else url.manifest
    if not (folder / MANIFEST_NAME).is_file():
        raise SourceError(f"{folder / MANIFEST_NAME}: manifest not found")
    return read_manifest(folder)


@dataclass
class _Table:
    schema: str
    raw: str
    label: str
    columns: list[str]
    binary: list[bool]
    order_by: list[str]


def _ingest(
    builder: ExportBuilder, table: _Table, batches: Iterator[Sequence[tuple[object, ...]]], origin: str
) -> None:
    """Batches of all-text rows → `_source_data."<name>"` (in read order, so rowid + 1 is `_source_row`)."""
    name = builder.claim_name(table.label.replace(".", "_"))
    data = f"{DATA_SCHEMA}.{quote_ident(name)}"
    con = builder.con
    con.execute(f"CREATE TABLE {data} ({', '.join(f'{quote_ident(c)} VARCHAR' for c in table.columns)})")
    for batch in batches:
        # zip(*) transposes in C: the driver already made one Python tuple per row, this adds no row loop.
        arrow = pa.table({f"c{i}": pa.array(values, pa.string()) for i, values in enumerate(zip(*batch, strict=True))})
        con.register("_server_batch", arrow)
        con.execute(f"INSERT INTO {data} SELECT * FROM _server_batch")
        con.unregister("_server_batch")
    builder.register(name, origin, table.label)


def _readable(builder: ExportBuilder, tables: list[_Table], url: ServerUrl) -> list[_Table]:
    readable = [t for t in tables if t.columns]
    # PostgreSQL allows a table without columns; it holds nothing to migrate.
    builder.warnings.extend(f"{url.where}:{t.label}: no columns, skipped" for t in tables if not t.columns)
    if not readable:
        where = f" in schema(s) {', '.join(url.schemas)}" if url.schemas else ""
        raise SourceError(f"{url.where}: no tables found{where}")
    return readable


# ---------------------------------------------------------------- PostgreSQL


@contextmanager
def connect_postgres(url: ServerUrl) -> Iterator[psycopg.Connection]:
    """A read-only session (every transaction READ ONLY, one REPEATABLE READ snapshot for the whole read)."""
    try:
        conn = psycopg.connect(
            host=url.host,
            port=url.port,
            dbname=url.database,
            user=url.user,
            password=url.password,
            connect_timeout=_CONNECT_TIMEOUT_S,
            application_name="clinic_pipeline",
            autocommit=True,
        )
    except psycopg.Error as exc:
        raise SourceError(f"{url.where}: cannot connect to PostgreSQL ({pg_reason(exc)})") from None
    try:
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        conn.execute("SET default_transaction_read_only = on")
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET DateStyle = 'ISO, YMD'")
        # Without a primary key the table is read in physical order: a synchronized scan would start mid-table.
        conn.execute("SET synchronize_seqscans = off")
        conn.autocommit = False
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        yield conn
    except psycopg.Error as exc:
        raise SourceError(f"{url.where}: cannot read from PostgreSQL ({pg_reason(exc)})") from None
    finally:
        conn.close()


_PG_STATES = {
    "28P01": "authentication failed",
    "28000": "authentication failed",
    "3D000": "database does not exist",
    "42501": "insufficient privilege",
    "57P03": "server not accepting connections",
}


def pg_reason(exc: psycopg.Error) -> str:
    """Server errors by SQLSTATE only (their text may quote a value); client errors by libpq's first line,
    which names host and port but never the password."""
    state = getattr(exc, "sqlstate", None)
    if state:
        return _PG_STATES.get(state, f"{type(exc).__name__}, SQLSTATE {state}")
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_PG_TABLES = """
SELECT c.oid, n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(%s)
ORDER BY n.nspname, c.relname
"""
_PG_COLUMNS = """
SELECT a.attrelid, a.attname, t.typname
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""
_PG_PRIMARY_KEYS = """
SELECT i.indrelid, a.attname
FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, pos)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indisprimary AND i.indrelid = ANY(%s)
ORDER BY i.indrelid, k.pos
"""
# pg_constraint rather than information_schema: PostgreSQL constraint names are unique per table only,
# so information_schema's joins by constraint name can pair the columns of two different keys.
_PG_FOREIGN_KEYS = """
SELECT con.oid, con.conrelid, a.attname, con.confrelid, ra.attname
FROM pg_constraint con
CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(src, ref, pos)
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.src
JOIN pg_attribute ra ON ra.attrelid = con.confrelid AND ra.attnum = k.ref
WHERE con.contype = 'f' AND con.conrelid = ANY(%s) AND con.confrelid = ANY(%s)
ORDER BY con.conrelid, con.conname, k.pos
"""


def _pg_tables(conn: psycopg.Connection, url: ServerUrl) -> dict[int, _Table]:
    schemas = list(url.schemas)
    if not schemas:
        schemas = [conn.execute("SELECT current_schema()").fetchone()[0]]  # type: ignore[index]
    listed = conn.execute(_PG_TABLES, [schemas]).fetchall()
    tables = {
        oid: _Table(schema, raw, raw if len(schemas) == 1 else f"{schema}.{raw}", [], [], [])
        for oid, schema, raw in listed
    }
    oids = list(tables)
    for oid, column, type_name in conn.execute(_PG_COLUMNS, [oids]).fetchall():
        tables[oid].columns.append(column)
        tables[oid].binary.append(type_name in _POSTGRES_BINARY)
    for oid, column in conn.execute(_PG_PRIMARY_KEYS, [oids]).fetchall():
        tables[oid].order_by.append(column)
    return tables


def _pg_select(table: _Table) -> sql.Composed:
    columns = [
        sql.SQL("encode({}, 'hex')").format(sql.Identifier(c))
        if binary
        else sql.SQL("{}::text").format(sql.Identifier(c))
        for c, binary in zip(table.columns, table.binary, strict=True)
    ]
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(columns), sql.Identifier(table.schema, table.raw))
    if table.order_by:
        query += sql.SQL(" ORDER BY {}").format(sql.SQL(", ").join(sql.Identifier(c) for c in table.order_by))
    return query


def _pg_batches(conn: psycopg.Connection, table: _Table) -> Iterator[list[tuple[object, ...]]]:
    with conn.cursor(name="clinic_source_read") as cursor:
        cursor.itersize = _BATCH_ROWS
        cursor.execute(_pg_select(table))
        while batch := cursor.fetchmany(_BATCH_ROWS):
            yield batch


def open_postgres(spec: str, con: duckdb.DuckDBPyConnection) -> SourceExport:
    url = parse_server_url(spec)
    builder = ExportBuilder(con, _manifest(url))
    with connect_postgres(url) as conn, conn.transaction():
        tables = _pg_tables(conn, url)
        for table in _readable(builder, list(tables.values()), url):
            _ingest(builder, table, _pg_batches(conn, table), f"{url.where}:{table.label}")
        oids = list(tables)
        names = _names(builder, tables)
        grouped: dict[int, list[tuple[int, str, int, str]]] = {}
        for con_oid, src, column, ref, ref_column in conn.execute(_PG_FOREIGN_KEYS, [oids, oids]).fetchall():
            grouped.setdefault(con_oid, []).append((src, column, ref, ref_column))
    builder.foreign_keys.extend(
        DeclaredForeignKey(
            table=names[rows[0][0]],
            columns=[r[1] for r in rows],
            ref_table=names[rows[0][2]],
            ref_columns=[r[3] for r in rows],
        )
        for rows in grouped.values()
        if rows[0][0] in names and rows[0][2] in names
    )
    return builder.export(url.redacted)


def _names(builder: ExportBuilder, tables: dict[int, _Table]) -> dict[int, str]:
    """Source table → the DuckDB name it was registered under (tables register by their `location`)."""
    by_location = {t.location: name for name, t in builder.tables.items()}
    return {key: by_location[t.label] for key, t in tables.items() if t.label in by_location}


# ---------------------------------------------------------------- MySQL / MariaDB


@contextmanager
def connect_mysql(url: ServerUrl) -> Iterator[pymysql.connections.Connection]:
    """A read-only session; values come back as the server's text (no Python type conversion)."""
    try:
        conn = pymysql.connect(
            host=url.host,
            port=url.port,
            user=url.user or "",
            password=url.password or "",
            database=url.database,
            charset="utf8mb4",
            connect_timeout=_CONNECT_TIMEOUT_S,
            # Encoders only (keys are Python types): without decoders every value stays the server's text.
            conv=dict(pymysql.converters.encoders),
            autocommit=True,
        )
    except pymysql.MySQLError as exc:
        raise SourceError(f"{url.where}: cannot connect to MySQL ({_mysql_reason(exc)})") from None
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
            cursor.execute("SET SESSION time_zone = '+00:00'")
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield conn
    except pymysql.MySQLError as exc:
        raise SourceError(f"{url.where}: cannot read from MySQL ({_mysql_reason(exc)})") from None
    finally:
        conn.close()


_MYSQL_CODES = {
    1044: "access denied to the database",
    1045: "access denied",
    1049: "unknown database",
    2003: "cannot reach the server",
    2005: "unknown host",
    2013: "lost connection to the server",
}


def _mysql_reason(exc: pymysql.MySQLError) -> str:
    """By error code only: MySQL's messages quote the user and host (`Access denied for 'u'@'h'`)."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if code in _MYSQL_CODES:
        return _MYSQL_CODES[code]
    return type(exc).__name__ + (f", error {code}" if code else "")


def _mysql_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _mysql_tables(conn: pymysql.connections.Connection, url: ServerUrl) -> dict[str, _Table]:
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME"
        )
        tables = {raw: _Table(url.database, raw, raw, [], [], []) for (raw,) in cursor.fetchall()}
        cursor.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION"
        )
        for raw, column, data_type in cursor.fetchall():
            if raw in tables:
                tables[raw].columns.append(column)
                tables[raw].binary.append(data_type.lower() in _MYSQL_BINARY)
        cursor.execute(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
            "WHERE TABLE_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY TABLE_NAME, ORDINAL_POSITION"
        )
        for raw, column in cursor.fetchall():
            if raw in tables:
                tables[raw].order_by.append(column)
    return tables


def _mysql_foreign_keys(conn: pymysql.connections.Connection) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME "
            "FROM information_schema.KEY_COLUMN_USAGE "
            "WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_SCHEMA = DATABASE() "
            "AND REFERENCED_TABLE_NAME IS NOT NULL ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION"
        )
        grouped: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        for raw, constraint, column, ref, ref_column in cursor.fetchall():
            grouped.setdefault((raw, constraint), []).append((column, ref, ref_column))
    return grouped


def _mysql_batches(conn: pymysql.connections.Connection, table: _Table) -> Iterator[tuple[tuple[object, ...], ...]]:
    columns = ", ".join(
        f"LOWER(HEX({_mysql_ident(c)}))" if binary else _mysql_ident(c)
        for c, binary in zip(table.columns, table.binary, strict=True)
    )
    query = f"SELECT {columns} FROM {_mysql_ident(table.raw)}"
    if table.order_by:
        query += " ORDER BY " + ", ".join(_mysql_ident(c) for c in table.order_by)
    # An unbuffered cursor streams: the table is never held whole in memory.
    with conn.cursor(pymysql.cursors.SSCursor) as cursor:
        cursor.execute(query)
        while batch := cursor.fetchmany(_BATCH_ROWS):
            yield batch


def open_mysql(spec: str, con: duckdb.DuckDBPyConnection) -> SourceExport:
    url = parse_server_url(spec)
    builder = ExportBuilder(con, _manifest(url))
    with connect_mysql(url) as conn:
        tables = _mysql_tables(conn, url)
        keys = _mysql_foreign_keys(conn)
        with conn.cursor() as cursor:
            cursor.execute("START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT")
        for table in _readable(builder, list(tables.values()), url):
            _ingest(builder, table, _mysql_batches(conn, table), f"{url.where}:{table.label}")
        conn.rollback()
    names = _names(builder, tables)
    builder.foreign_keys.extend(
        DeclaredForeignKey(
            table=names[raw],
            columns=[r[0] for r in rows],
            ref_table=names[rows[0][1]],
            ref_columns=[r[2] for r in rows],
        )
        for (raw, _constraint), rows in keys.items()
        if raw in names and rows[0][1] in names
    )
    return builder.export(url.redacted)
