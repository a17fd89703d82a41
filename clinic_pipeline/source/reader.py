"""Open a clinic export in DuckDB: every table becomes the VIEW `source."<table>"`, all VARCHAR.

Each table is copied once into the private schema `_source_data` (so zip members, transcoded files
and database tables need no file to outlive this call) and exposed as `source."<table>"` with its
original column names plus `_source_row` (BIGINT, the 1-based data row of the original file or table)
so every later error can name file, row and field. Values stay text: zero dates, leading zeros and
sentinels remain visible for the typed layer (`try_cast`/`try_strptime`) instead of being coerced.

Supported now: a folder or `.zip` of CSV / Parquet / JSON files (one table each; `documents/` and
`manifest.json` are not tables) and Excel workbooks (a table per sheet, `spreadsheets`), a single such
file, `sqlite:///file.db` (read with Python's sqlite3: DuckDB's sqlite extension cannot be downloaded
offline), `duckdb:///file.duckdb` and a mysqldump
`.sql` file (`mysql_dump`), and live PostgreSQL / MySQL databases by URL (`server_databases`).
"""

from __future__ import annotations

import codecs
import os
import sqlite3
import tempfile
import zipfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from clinic_pipeline.source.csv_files import add_csv
from clinic_pipeline.source.errors import SourceError
from clinic_pipeline.source.export import (
    DATA_SCHEMA,
    VIEW_SCHEMA,
    DeclaredForeignKey,
    ExportBuilder,
    SourceExport,
)
from clinic_pipeline.source.manifest import MANIFEST_NAME, ExportManifest, parse_manifest, read_manifest
from clinic_pipeline.source.mysql_dump import open_mysql_dump
from clinic_pipeline.source.spreadsheets import SPREADSHEET_SUFFIXES, read_workbook
from clinic_pipeline.sql import quote_ident, quote_literal

# Besides `open_source`, names that modules outside this package still import from here; their home is
# `source.export`, `source.errors` and `clinic_pipeline.sql`.
__all__ = ["open_source"]

CSV_SUFFIXES = (".csv", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
JSON_KEEP_DATES_AS_TEXT = "keep-dates-as-text"
DATA_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES + JSON_SUFFIXES + SPREADSHEET_SUFFIXES
# Old binary Excel: refused by name rather than skipped, so no table goes missing without a word.
LEGACY_SPREADSHEET_SUFFIXES = (".xls",)
# Folders that hold attachments or OS litter, never tables.
SKIPPED_DIRS = frozenset({"documents", "__macosx"})
UNSUPPORTED_SCHEMES = ("mssql", "sqlserver")
SERVER_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb")
SQLITE_MAGIC = b"SQLite format 3\x00"
_BATCH_ROWS = 50_000


# ---------------------------------------------------------------- files


def _python_codec(declared: str | None) -> str | None:
    if not declared:
        return None
    try:
        name = codecs.lookup(declared.strip()).name
    except LookupError:
        raise SourceError(f"manifest: unknown encoding {declared!r}") from None
    return "utf-8" if name in ("utf-8", "utf-8-sig") else name


def _file_select(path: Path) -> str:
    """A Parquet or JSON file's rows, every column as text."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return f"SELECT CAST(COLUMNS(*) AS VARCHAR) FROM read_parquet({quote_literal(path)})"
    # A date format no value matches: date-times stay the text the export wrote, not DuckDB timestamps
    # rendered back in the session's zone ("2018-07-08T21:15:00.000Z", not "2018-07-08 21:15:00+00").
    keep = quote_literal(JSON_KEEP_DATES_AS_TEXT)
    return (
        f"SELECT CAST(COLUMNS(*) AS VARCHAR) FROM read_json_auto({quote_literal(path)}, "
        f"dateformat={keep}, timestampformat={keep})"
    )


def _export_files(root: Path) -> Iterator[Path]:
    """Files of the export, without descending into attachment or hidden folders: a documents folder
    can hold hundreds of thousands of files, and walking them cost more than reading every table."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d.lower() not in SKIPPED_DIRS and not d.startswith(".")]
        yield from (Path(folder, name) for name in files if not name.startswith("."))


def _data_files(root: Path) -> list[Path]:
    # Sorted: table names (and their `_2` suffixes) must not depend on the file system's listing order.
    return sorted(
        path
        for path in _export_files(root)
        if path.suffix.lower() in DATA_SUFFIXES + LEGACY_SPREADSHEET_SUFFIXES and path.name.lower() != MANIFEST_NAME
    )


def _manifest_in(root: Path, display: str | None = None) -> ExportManifest:
    found = sorted((p for p in _export_files(root) if p.name == MANIFEST_NAME), key=lambda p: (len(p.parts), p))
    if not found or display is None:
        return read_manifest(found[0].parent) if found else read_manifest(root)
    # An archive's manifest is named as its member: the folder it was unpacked to is gone when the error shows.
    return parse_manifest(found[0].read_bytes(), f"{display}!{found[0].relative_to(root).as_posix()}")


def _open_folder(
    spec: str,
    root: Path,
    con: duckdb.DuckDBPyConnection,
    display: str | None = None,
    tables: Collection[str] | None = None,
) -> SourceExport:
    manifest = _manifest_in(root, display)
    codec = _python_codec(manifest.encoding)
    builder = ExportBuilder(con, manifest, tables)
    with tempfile.TemporaryDirectory(prefix="clinic-src-") as tmp:
        for path in _data_files(root):
            rel = path.relative_to(root).as_posix()
            _add_file(builder, path, rel, f"{display}!{rel}" if display else str(path), codec, Path(tmp))
    return builder.export(spec)


def _add_file(builder: ExportBuilder, path: Path, rel: str, origin: str, codec: str | None, workdir: Path) -> None:
    """One data file as one table, or a workbook as one table per sheet (named after the file when it has
    a single sheet, `<file> <sheet>` otherwise)."""
    suffix = path.suffix.lower()
    if suffix in LEGACY_SPREADSHEET_SUFFIXES:
        raise SourceError(f"{origin}: old-style Excel (.xls) is not read; save it as .xlsx or CSV")
    if suffix in CSV_SUFFIXES:
        add_csv(builder, builder.claim_name(path.stem), path, origin, rel, codec, workdir)
        return
    if suffix not in SPREADSHEET_SUFFIXES:
        builder.add(builder.claim_name(path.stem), _file_select(path), origin, rel)
        return
    sheets = read_workbook(path)
    for sheet, table in sheets:
        raw = path.stem if len(sheets) == 1 else f"{path.stem} {sheet}"
        builder.con.register("_sheet", table)
        try:
            builder.add(builder.claim_name(raw), "SELECT * FROM _sheet", f"{origin}!{sheet}", f"{rel}!{sheet}")
        finally:
            builder.con.unregister("_sheet")


def _open_zip(
    spec: str, path: Path, con: duckdb.DuckDBPyConnection, tables: Collection[str] | None = None
) -> SourceExport:
    with tempfile.TemporaryDirectory(prefix="clinic-zip-") as tmp:
        root = Path(tmp).resolve()
        try:
            with zipfile.ZipFile(path) as archive:
                for member in archive.infolist():
                    target = (root / member.filename).resolve()
                    # A member may not escape the extraction folder ("zip slip").
                    if not target.is_relative_to(root):
                        raise SourceError(f"{path}: member {member.filename!r} points outside the archive")
                    parts = Path(member.filename).parts
                    readable = DATA_SUFFIXES + LEGACY_SPREADSHEET_SUFFIXES
                    wanted = member.filename.lower().endswith(readable) or member.filename.endswith(MANIFEST_NAME)
                    if member.is_dir() or not wanted or any(p.lower() in SKIPPED_DIRS for p in parts):
                        continue
                    archive.extract(member, root)
        except zipfile.BadZipFile:
            raise SourceError(f"{path}: not a readable zip archive") from None
        return _open_folder(spec, root, con, display=str(path), tables=tables)


def _open_single_file(
    spec: str, path: Path, con: duckdb.DuckDBPyConnection, tables: Collection[str] | None = None
) -> SourceExport:
    manifest = read_manifest(path.parent)
    builder = ExportBuilder(con, manifest, tables)
    with tempfile.TemporaryDirectory(prefix="clinic-src-") as tmp:
        _add_file(builder, path, path.name, str(path), _python_codec(manifest.encoding), Path(tmp))
    return builder.export(spec)


# ---------------------------------------------------------------- databases


def _cell_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _sqlite_rows(db: sqlite3.Connection, table: str) -> sqlite3.Cursor:
    quoted = quote_ident(table)
    try:
        return db.execute(f"SELECT * FROM {quoted} ORDER BY rowid")
    except sqlite3.OperationalError:  # WITHOUT ROWID tables keep their primary-key order
        return db.execute(f"SELECT * FROM {quoted}")


def _open_sqlite(
    spec: str, path: Path, con: duckdb.DuckDBPyConnection, tables: Collection[str] | None = None
) -> SourceExport:
    builder = ExportBuilder(con, read_manifest(path.parent), tables)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        raise SourceError(f"{path}: cannot open as SQLite") from None
    try:
        names: dict[str, str] = {}
        raw_tables = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        for raw in raw_tables:
            name = builder.claim_name(raw)
            names[raw] = name
            if not builder.wants(name):
                continue
            cursor = _sqlite_rows(db, raw)
            columns = [d[0] for d in cursor.description]
            data = f"{DATA_SCHEMA}.{quote_ident(name)}"
            con.execute(f"CREATE TABLE {data} ({', '.join(f'{quote_ident(c)} VARCHAR' for c in columns)})")
            while batch := cursor.fetchmany(_BATCH_ROWS):
                arrow = pa.table(
                    {f"c{i}": pa.array([_cell_text(r[i]) for r in batch], pa.string()) for i in range(len(columns))}
                )
                con.register("_sqlite_batch", arrow)
                con.execute(f"INSERT INTO {data} SELECT * FROM _sqlite_batch")
                con.unregister("_sqlite_batch")
            builder.register(name, f"{path}:{raw}", raw)
        for raw in raw_tables:
            builder.foreign_keys.extend(_sqlite_foreign_keys(db, raw, names))
    except sqlite3.DatabaseError:
        raise SourceError(f"{path}: not a readable SQLite database") from None
    finally:
        db.close()
    return builder.export(spec)


def _sqlite_foreign_keys(db: sqlite3.Connection, raw: str, names: dict[str, str]) -> list[DeclaredForeignKey]:
    grouped: dict[int, list[tuple[Any, ...]]] = {}
    for row in db.execute(f"PRAGMA foreign_key_list({quote_ident(raw)})"):
        grouped.setdefault(row[0], []).append(row)
    keys = []
    for rows in grouped.values():
        ref = rows[0][2]
        if ref not in names:
            continue
        ref_columns = [r[4] for r in rows]
        if any(c is None for c in ref_columns):  # REFERENCES t without columns means t's primary key
            pk = sorted((r[5], r[1]) for r in db.execute(f"PRAGMA table_info({quote_ident(ref)})") if r[5])
            ref_columns = [c for _, c in pk]
        keys.append(
            DeclaredForeignKey(
                table=names[raw], columns=[r[3] for r in rows], ref_table=names[ref], ref_columns=ref_columns
            )
        )
    return keys


def _open_duckdb(
    spec: str, path: Path, con: duckdb.DuckDBPyConnection, tables: Collection[str] | None = None
) -> SourceExport:
    builder = ExportBuilder(con, read_manifest(path.parent), tables)
    alias = "_clinic_source_db"
    try:
        con.execute(f"ATTACH {quote_literal(path)} AS {alias} (READ_ONLY)")
    except duckdb.Error as exc:
        raise SourceError(f"{path}: cannot open as DuckDB ({type(exc).__name__})") from None
    try:
        listed = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY 1, 2", [alias]
        ).fetchall()
        for schema, raw in listed:
            label = raw if schema == "main" else f"{schema}.{raw}"
            source = f"{alias}.{quote_ident(schema)}.{quote_ident(raw)}"
            builder.add(
                builder.claim_name(label.replace(".", "_")),
                f"SELECT CAST(COLUMNS(*) AS VARCHAR) FROM {source} ORDER BY rowid",
                f"{path}:{label}",
                label,
            )
    finally:
        con.execute(f"DETACH {alias}")
    return builder.export(spec)


# ---------------------------------------------------------------- entry point


def _database_path(spec: str, scheme: str) -> Path:
    """`sqlite:///rel.db` is relative and `sqlite:////abs.db` absolute (SQLAlchemy's reading)."""
    rest = spec[len(scheme) :].removeprefix("://")
    rest = rest[1:] if rest.startswith("/") else rest
    path = Path(rest).expanduser()
    if not path.exists() and not path.is_absolute() and Path("/" + rest).exists():
        return Path("/" + rest)  # `sqlite:///tmp/x.db` is usually meant as /tmp/x.db
    return path


def open_source(spec: str, con: duckdb.DuckDBPyConnection, tables: Collection[str] | None = None) -> SourceExport:
    """Register every table of the export `spec` as `source."<table>"` in `con` (see module doc).

    With `tables` (reader names, as in `SourceExport.tables`) only those are registered: files and
    SQLite/DuckDB tables outside the set are not read at all; dumps and server databases are read whole
    and the rest dropped. Names are the same as without `tables`, declared foreign keys are kept where
    both ends are registered, and a name the export does not have is a SourceError."""
    export = _open(spec, con, tables)
    return export if tables is None else _restrict(export, con, frozenset(tables))


def _restrict(export: SourceExport, con: duckdb.DuckDBPyConnection, wanted: frozenset[str]) -> SourceExport:
    missing = sorted(wanted - export.tables.keys())
    if missing:
        raise SourceError(f"{export.spec}: no table named {', '.join(missing)} in the export")
    for name in export.tables.keys() - wanted:
        con.execute(f"DROP VIEW {VIEW_SCHEMA}.{quote_ident(name)}")
        con.execute(f"DROP TABLE {DATA_SCHEMA}.{quote_ident(name)}")
    keys = [k for k in export.foreign_keys if k.table in wanted and k.ref_table in wanted]
    kept = {name: table for name, table in export.tables.items() if name in wanted}
    return export.model_copy(update={"tables": kept, "foreign_keys": keys})


def _open(spec: str, con: duckdb.DuckDBPyConnection, tables: Collection[str] | None) -> SourceExport:
    spec = spec.strip()
    scheme = spec.split("://", 1)[0].lower() if "://" in spec else ""
    if scheme in UNSUPPORTED_SCHEMES:
        # The URL may carry a password: name only the kind of source.
        raise SourceError(f"{scheme}:// sources are not supported yet: export to CSV, SQLite or DuckDB for now")
    if scheme in SERVER_SCHEMES:
        # Imported here: the database drivers take about 0.1 s to import, which only a server source should pay.
        from clinic_pipeline.source.server_databases import POSTGRES_SCHEMES, open_mysql, open_postgres

        return open_postgres(spec, con) if scheme in POSTGRES_SCHEMES else open_mysql(spec, con)
    if scheme in ("sqlite", "duckdb"):
        path = _database_path(spec, scheme)
        if not path.is_file():
            raise SourceError(f"{path}: source database not found")
        return _open_sqlite(spec, path, con, tables) if scheme == "sqlite" else _open_duckdb(spec, path, con, tables)
    if scheme:
        raise SourceError(
            f"{scheme}:// sources are not supported: use a folder, .zip, sqlite:///, duckdb:///, postgresql:// or mysql://"
        )

    path = Path(spec).expanduser()
    if not path.exists():
        raise SourceError(f"{path}: source not found")
    if path.is_dir():
        return _open_folder(spec, path, con, tables=tables)
    suffix = path.suffix.lower()
    if suffix == ".sql":
        return open_mysql_dump(spec, path, con)
    if suffix == ".zip":
        return _open_zip(spec, path, con, tables)
    if suffix == ".duckdb":
        return _open_duckdb(spec, path, con, tables)
    if suffix in DATA_SUFFIXES + LEGACY_SPREADSHEET_SUFFIXES:
        return _open_single_file(spec, path, con, tables)
    try:
        with path.open("rb") as fh:
            is_sqlite = fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None
    if is_sqlite:
        return _open_sqlite(spec, path, con, tables)
    raise SourceError(f"{path}: unsupported source file type {suffix or '(none)'}")
