"""Write a generated clinic as a CSV folder or a SQLite database, each with its `manifest.json`.

Both are byte-for-byte reproducible: rows go out in id order, and nothing depends on the clock.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path

import duckdb
import pyarrow as pa

from clinic_pipeline.samples.generator.frame import Frame
from clinic_pipeline.samples.generator.locales import DATE_FORMATS
from clinic_pipeline.sql import quote_ident, quote_literal

MANIFEST_NAME = "manifest.json"
DATABASE_NAME = "clinic.db"
SOURCE_SYSTEM = "Acme Practice Manager"
SOURCE_VERSION = "7.4.2"
GENERATOR_MARK = "clinic_pipeline.samples.generator"
FILE_MODE = 0o600
_SQLITE_BATCH = 50_000

# Told (table, rows just written) as the rows reach the file: for a progress display.
RowsWritten = Callable[[str, int], None]

# Primary key of each table (composite for the custom-field layout) and its declared foreign keys.
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "locations": ("location_id",),
    "providers": ("provider_id",),
    "referring_physicians": ("referrer_id",),
    "insurance_carriers": ("carrier_id",),
    "patients": ("patient_id",),
    "insurance_policies": ("policy_id",),
    "appointments": ("appointment_id",),
    "billing_encounters": ("encounter_id",),
    "payments": ("payment_id",),
    "treatment_plans": ("treatment_plan_id",),
    "lab_results": ("lab_result_id",),
    "documents": ("document_id",),
    "communications": ("comm_id",),
    "workflow_rules": ("rule_id",),
    "report_definitions": ("report_id",),
    "custom_field_definitions": ("table_name", "column_name"),
}
FOREIGN_KEYS: dict[str, dict[str, tuple[str, str]]] = {
    "providers": {"location_id": ("locations", "location_id")},
    "patients": {
        "location_id": ("locations", "location_id"),
        "primary_provider_id": ("providers", "provider_id"),
        "referring_physician_id": ("referring_physicians", "referrer_id"),
    },
    "insurance_policies": {
        "patient_id": ("patients", "patient_id"),
        "carrier_id": ("insurance_carriers", "carrier_id"),
    },
    "appointments": {
        "patient_id": ("patients", "patient_id"),
        "provider_id": ("providers", "provider_id"),
        "location_id": ("locations", "location_id"),
    },
    "billing_encounters": {
        "patient_id": ("patients", "patient_id"),
        "provider_id": ("providers", "provider_id"),
        "appointment_id": ("appointments", "appointment_id"),
    },
    "payments": {"encounter_id": ("billing_encounters", "encounter_id")},
    "treatment_plans": {"patient_id": ("patients", "patient_id"), "provider_id": ("providers", "provider_id")},
    "lab_results": {
        "patient_id": ("patients", "patient_id"),
        "ordering_provider_id": ("providers", "provider_id"),
    },
    "documents": {"patient_id": ("patients", "patient_id")},
    "communications": {"patient_id": ("patients", "patient_id"), "staff_id": ("providers", "provider_id")},
}


def _is_id(table: str, column: str) -> bool:
    keys = PRIMARY_KEYS[table]
    return (len(keys) == 1 and column == keys[0]) or column in FOREIGN_KEYS.get(table, {})


def manifest(frame: Frame, row_counts: Mapping[str, int]) -> dict[str, object]:
    return {
        "source_system": SOURCE_SYSTEM,
        "source_version": SOURCE_VERSION,
        "exported_at": frame.exported_at,
        "time_zone": frame.time_zone,
        "encoding": "utf-8",
        "date_format": DATE_FORMATS[frame.country],
        "row_counts": dict(row_counts),
        "generator": {"name": GENERATOR_MARK, "patients": frame.patients, "seed": frame.seed},
    }


def write_manifest(folder: Path, content: Mapping[str, object]) -> Path:
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_csv(folder: Path, tables: Mapping[str, pa.Table], on_rows: RowsWritten | None = None) -> dict[str, int]:
    """One `<table>.csv` per table (header, UTF-8, `,`, empty field for a missing value); row counts by file.
    `on_rows(table, rows)` hears of each table once it is written."""
    counts: dict[str, int] = {}
    con = duckdb.connect()
    try:
        con.execute("SET preserve_insertion_order = true")
        for name, data in tables.items():
            path = folder / f"{name}.csv"
            con.register("_generated", data)
            con.execute(f"COPY _generated TO {quote_literal(path)} (FORMAT csv, HEADER true, DELIMITER ',')")
            con.unregister("_generated")
            os.chmod(path, FILE_MODE)
            counts[path.name] = data.num_rows
            if on_rows is not None:
                on_rows(name, data.num_rows)
    finally:
        con.close()
    return counts


def _create_sql(name: str, columns: list[str]) -> str:
    parts = [f"{quote_ident(c)} {'INTEGER' if _is_id(name, c) else 'TEXT'}" for c in columns]
    parts.append(f"PRIMARY KEY ({', '.join(quote_ident(c) for c in PRIMARY_KEYS[name])})")
    parts.extend(
        f"FOREIGN KEY ({quote_ident(column)}) REFERENCES {quote_ident(ref_table)} ({quote_ident(ref_column)})"
        for column, (ref_table, ref_column) in FOREIGN_KEYS.get(name, {}).items()
    )
    return f"CREATE TABLE {quote_ident(name)} (\n  " + ",\n  ".join(parts) + "\n)"


def write_sqlite(path: Path, tables: Mapping[str, pa.Table], on_rows: RowsWritten | None = None) -> dict[str, int]:
    """A SQLite database with declared keys; orphan rows stay in (foreign keys are not enforced on load).
    `on_rows(table, rows)` hears of each batch of rows inserted."""
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    try:
        # No journal: a reproducible file, and a half-written database is simply generated again.
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA foreign_keys = OFF")
        counts: dict[str, int] = {}
        with db:
            for name, data in tables.items():
                db.execute(_create_sql(name, data.column_names))
                insert = f"INSERT INTO {quote_ident(name)} VALUES ({', '.join('?' * data.num_columns)})"
                for batch in data.to_batches(max_chunksize=_SQLITE_BATCH):
                    db.executemany(insert, zip(*(column.to_pylist() for column in batch.columns), strict=True))
                    if on_rows is not None:
                        on_rows(name, batch.num_rows)
                if on_rows is not None and not data.num_rows:
                    on_rows(name, 0)  # an empty table has no batch: written all the same
                if "updated_at" in data.column_names:
                    # Delta detection asks SQLite sources for rows changed in a window.
                    db.execute(f"CREATE INDEX {quote_ident(name + '_updated_at')} ON {quote_ident(name)} (updated_at)")
                counts[name] = data.num_rows
    finally:
        db.close()
    os.chmod(path, FILE_MODE)
    return counts
