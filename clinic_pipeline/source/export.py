"""What every source reader produces: the `SourceExport` model, and the `ExportBuilder` that registers
its tables in DuckDB (the copy in `_source_data`, the `source."<table>"` view with `_source_row`).

Kept apart from `reader` so that the reader of each kind of source (`reader`, `mysql_dump`,
`server_databases`) builds on it without importing another.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from pathlib import Path

import duckdb
from pydantic import BaseModel, Field

from clinic_pipeline.source.errors import SourceError
from clinic_pipeline.source.manifest import ExportManifest
from clinic_pipeline.sql import quote_ident

__all__ = [
    "DATA_SCHEMA",
    "ROW_COLUMN",
    "VIEW_SCHEMA",
    "DeclaredForeignKey",
    "ExportBuilder",
    "SourceExport",
    "SourceTable",
    "duckdb_reason",
    "table_name",
]

VIEW_SCHEMA = "source"
DATA_SCHEMA = "_source_data"
ROW_COLUMN = "_source_row"


class SourceTable(BaseModel):
    name: str
    origin: str = Field(description="file path or database table, for error messages")
    location: str = Field(description="where it sits inside the export (relative file or table name): copy-stable")
    columns: list[str]
    row_count: int
    control_characters: bool = Field(
        default=True,
        description="False only when the reader saw every byte of the table's text and no control character "
        "(C0 but tab and line breaks) among them: staging then need not look for any",
    )


class DeclaredForeignKey(BaseModel):
    table: str
    columns: list[str]
    ref_table: str
    ref_columns: list[str]


class SourceExport(BaseModel):
    spec: str
    manifest: ExportManifest
    tables: dict[str, SourceTable]
    foreign_keys: list[DeclaredForeignKey] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list, description="counts and names only, never values")


def table_name(raw: str) -> str:
    """`Patient List` → `patient_list`, `PatientList` → `patient_list`, `pc_eventDate` → `pc_event_date`."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", raw)
    ascii_only = unicodedata.normalize("NFKD", spaced).encode("ascii", "ignore").decode()
    snake = re.sub(r"[^0-9A-Za-z]+", "_", ascii_only).strip("_").lower()
    if not snake:
        return "table"
    return f"t_{snake}" if snake[0].isdigit() else snake


class ExportBuilder:
    """Collects the tables of one export into `_source_data` and the `source` views."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, manifest: ExportManifest, wanted: Collection[str] | None = None
    ) -> None:
        self.con = con
        self.manifest = manifest
        self.wanted = None if wanted is None else frozenset(wanted)
        self.tables: dict[str, SourceTable] = {}
        # Names claimed by tables left unread: a later table must not take them, or names would depend
        # on which tables the caller asked for.
        self.passed_over: set[str] = set()
        self.warnings: list[str] = []
        self.foreign_keys: list[DeclaredForeignKey] = []
        con.execute(f"DROP SCHEMA IF EXISTS {VIEW_SCHEMA} CASCADE")
        con.execute(f"DROP SCHEMA IF EXISTS {DATA_SCHEMA} CASCADE")
        con.execute(f"CREATE SCHEMA {DATA_SCHEMA}")
        con.execute(f"CREATE SCHEMA {VIEW_SCHEMA}")

    def claim_name(self, raw: str) -> str:
        base = table_name(raw)
        name, n = base, 1
        while name in self.tables or name in self.passed_over:
            n += 1
            name = f"{base}_{n}"
        if not self.wants(name):
            self.passed_over.add(name)
        return name

    def wants(self, name: str) -> bool:
        return self.wanted is None or name in self.wanted

    def add(self, name: str, select_sql: str, origin: str, location: str) -> None:
        if not self.wants(name):
            return
        try:
            self.create(name, select_sql)
        except duckdb.Error as exc:
            raise SourceError(f"{origin}: cannot read ({duckdb_reason(exc)})") from None
        self.register(name, origin, location)

    def create(self, name: str, select_sql: str) -> None:
        """The data table of `name` from `select_sql`; DuckDB's error is the caller's to explain, then
        `register` makes it a table of the export."""
        # Insertion order is preserved, so rowid + 1 is the data row number in the original.
        self.con.execute(f"CREATE TABLE {DATA_SCHEMA}.{quote_ident(name)} AS {select_sql}")

    def register(self, name: str, origin: str, location: str, *, control_characters: bool = True) -> None:
        data = f"{DATA_SCHEMA}.{quote_ident(name)}"
        columns = [row[0] for row in self.con.execute(f"DESCRIBE {data}").fetchall()]
        if ROW_COLUMN in columns:
            raise SourceError(f"{origin}: has a column named {ROW_COLUMN}, which the reader reserves")
        self.con.execute(
            f"CREATE VIEW {VIEW_SCHEMA}.{quote_ident(name)} AS "
            f"SELECT *, (rowid + 1)::BIGINT AS {ROW_COLUMN} FROM {data}"
        )
        (rows,) = self.con.execute(f"SELECT count(*) FROM {data}").fetchall()[0]
        self.tables[name] = SourceTable(
            name=name,
            origin=origin,
            location=location,
            columns=columns,
            row_count=int(rows),
            control_characters=control_characters,
        )
        expected = self.manifest.expected_rows(name, Path(location).name)
        if expected is not None and expected != rows:
            self.warnings.append(f"{location}: manifest says {expected} rows, read {rows}")

    def export(self, spec: str) -> SourceExport:
        if not self.tables and not self.passed_over:
            raise SourceError(f"{spec}: no tables found (expected CSV, Parquet or JSON files, or database tables)")
        return SourceExport(
            spec=spec,
            manifest=self.manifest,
            tables=self.tables,
            foreign_keys=self.foreign_keys,
            warnings=self.warnings,
        )


def duckdb_reason(exc: duckdb.Error) -> str:
    """DuckDB's CSV errors quote the offending line: keep only the error kind and line number."""
    line = re.search(r"\bLine:\s*(\d+)", str(exc))
    return type(exc).__name__ + (f" near line {line.group(1)}" if line else "")
