"""Deterministic, vectorized sample clinic exports (16 tables, documents, realistic mess).

`generate_clinic(out, patients=…)` writes an "Acme Practice Manager" export: a CSV folder or a SQLite
database, plus `manifest.json` and `documents/`. The same seed gives byte-identical files; `patients`
drives every table's size (about 20 records per patient in total). See `MessRates` for the dirt.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.samples.generator import configuration, tables, visits
from clinic_pipeline.samples.generator.communications import communications
from clinic_pipeline.samples.generator.documents import DOCUMENTS_DIR, documents
from clinic_pipeline.samples.generator.frame import Frame
from clinic_pipeline.samples.generator.locales import TIME_ZONES, Country, localise
from clinic_pipeline.samples.generator.rates import MessRates
from clinic_pipeline.samples.generator.writers import (
    DATABASE_NAME,
    GENERATOR_MARK,
    MANIFEST_NAME,
    manifest,
    write_csv,
    write_manifest,
    write_sqlite,
)

__all__ = ["TABLE_NAMES", "GeneratedClinic", "GenerationProgress", "MessRates", "generate_clinic"]

log = logging.getLogger(__name__)

TABLE_NAMES = (
    "locations", "providers", "referring_physicians", "insurance_carriers", "patients", "insurance_policies",
    "appointments", "billing_encounters", "payments", "treatment_plans", "lab_results", "documents",
    "communications", "workflow_rules", "report_definitions", "custom_field_definitions",
)  # fmt: skip


@dataclass(frozen=True)
class GenerationProgress:
    """How far `generate_clinic` has got, for a progress display: counts only. The tables are built first, then
    written; `rows_total` is None until every table is built (their sizes are known then)."""

    tables_built: int
    tables_written: int
    tables_total: int
    rows_written: int
    rows_total: int | None


@dataclass(frozen=True)
class GeneratedClinic:
    """What was written: `path` is the export folder (data, `manifest.json`, `documents/`); counts by table."""

    path: Path
    fmt: Literal["csv", "sqlite"]
    row_counts: dict[str, int]
    total_records: int
    seconds: float

    @property
    def source_spec(self) -> str:
        """What `CLINIC_SOURCE` / `open_source` take for this export."""
        return f"sqlite:///{self.path / DATABASE_NAME}" if self.fmt == "sqlite" else str(self.path)


def build_tables(
    frame: Frame, root: Path, large_documents: int, on_built: Callable[[int], None] | None = None
) -> dict[str, pa.Table]:
    """Every table in parent-before-child order; document files are written under `root` on the way.
    `on_built(n)` hears of each table built (n so far), in the same order of work as without it."""
    count = 0

    def built_one(table: pa.Table) -> pa.Table:
        nonlocal count
        count += 1
        if on_built is not None:
            on_built(count)
        return table

    patients, people = tables.patients(frame)
    built_one(patients)
    appointments, visit_facts = visits.appointments(frame, people)
    built_one(appointments)
    encounters, bills = visits.billing_encounters(frame, visit_facts)
    built_one(encounters)
    built = {
        "locations": built_one(tables.locations(frame)),
        "providers": built_one(tables.providers(frame)),
        "referring_physicians": built_one(tables.referring_physicians(frame)),
        "insurance_carriers": built_one(tables.insurance_carriers(frame)),
        "patients": patients,
        "insurance_policies": built_one(tables.insurance_policies(frame, people)),
        "appointments": appointments,
        "billing_encounters": encounters,
        "payments": built_one(visits.payments(frame, bills)),
        "treatment_plans": built_one(visits.treatment_plans(frame, people)),
        "lab_results": built_one(visits.lab_results(frame, people)),
        "documents": built_one(documents(frame, root, large_documents)),
        "communications": built_one(communications(frame, people)),
        "workflow_rules": built_one(configuration.workflow_rules()),
        "report_definitions": built_one(configuration.report_definitions()),
        "custom_field_definitions": built_one(configuration.custom_field_definitions()),
    }
    return localise({name: built[name] for name in TABLE_NAMES}, frame.country)


def _counting(built: dict[str, pa.Table], tell: Callable[[GenerationProgress], None]) -> Callable[[str, int], None]:
    """The writers' per-table (or per-batch) hook, turned into running totals for `tell`."""
    rows_total = sum(data.num_rows for data in built.values())
    written: dict[str, int] = {}
    tell(GenerationProgress(len(built), 0, len(built), 0, rows_total))

    def on_rows(table: str, rows: int) -> None:
        written[table] = written.get(table, 0) + rows
        done = sum(1 for name, n in written.items() if n >= built[name].num_rows)
        tell(GenerationProgress(len(built), done, len(built), sum(written.values()), rows_total))

    return on_rows


def _clear(out: Path) -> None:
    """Make `out` an empty home for the export; only a previous generated export is ever removed."""
    if not out.exists():
        out.mkdir(parents=True)
        return
    entries = list(out.iterdir())
    if not entries:
        return
    marker = out / MANIFEST_NAME
    if not marker.is_file() or GENERATOR_MARK not in marker.read_text(encoding="utf-8", errors="replace"):
        raise FileExistsError(f"{out}: not empty and not a generated sample clinic; choose an empty folder")
    ours = {f"{name}.csv" for name in TABLE_NAMES} | {DATABASE_NAME, MANIFEST_NAME, DOCUMENTS_DIR}
    for entry in entries:
        if entry.name not in ours:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def generate_clinic(
    out: Path,
    *,
    patients: int,
    seed: int = 7,
    fmt: Literal["csv", "sqlite"] = "csv",
    rates: MessRates | None = None,
    large_documents: int = 0,
    country: Country = "US",
    progress: Callable[[GenerationProgress], None] | None = None,
) -> GeneratedClinic:
    """Write a sample clinic export of `patients` patients into the folder `out` (see the module doc).

    `fmt="csv"`: one `<table>.csv` per table; `fmt="sqlite"`: `clinic.db` with declared keys. Either way
    `manifest.json` and `documents/` sit beside it. `large_documents` adds that many sparse files over 25 MB.
    `country="GB"` writes a UK clinic: UK phone numbers, day-first dates, amounts in £, UK time.
    `progress`, if given, hears how far it has got (`GenerationProgress`); it changes nothing written.
    """
    if patients < 1:
        raise OperatorError("patients must be at least 1")
    if large_documents < 0:
        raise OperatorError("large_documents must not be negative")
    if country not in TIME_ZONES:
        raise OperatorError(f"country must be one of {', '.join(TIME_ZONES)}, not {country!r}")
    if fmt not in ("csv", "sqlite"):
        raise OperatorError(f"fmt must be 'csv' or 'sqlite', not {fmt!r}")
    started = time.perf_counter()
    out = Path(out)
    _clear(out)
    frame = Frame(patients=patients, seed=seed, rates=rates or MessRates(), country=country)
    tell = progress or (lambda _: None)
    tables_total = len(TABLE_NAMES)
    tell(GenerationProgress(0, 0, tables_total, 0, None))
    built = build_tables(frame, out, large_documents, lambda n: tell(GenerationProgress(n, 0, tables_total, 0, None)))
    on_rows = _counting(built, tell)
    counts = write_csv(out, built, on_rows) if fmt == "csv" else write_sqlite(out / DATABASE_NAME, built, on_rows)
    write_manifest(out, manifest(frame, counts))
    row_counts = {name: data.num_rows for name, data in built.items()}
    seconds = time.perf_counter() - started
    total = sum(row_counts.values())
    log.info("generated a %s clinic: %d patients, %d records in %.1f s", fmt, patients, total, seconds)
    return GeneratedClinic(path=out, fmt=fmt, row_counts=row_counts, total_records=total, seconds=seconds)
