"""Hourly delta windows from the cutover start, and the source changes inside one.

A window is `[start, end)` in UTC. Source timestamps are the clinic's local wall-clock time, so the
bounds are converted to the clinic's zone before they are compared with the source.

Detection cost: for a SQLite source the count runs in SQLite itself on the plan's `changed_at`
column, a range query an index on that column answers in time proportional to the delta, not to the
table (when the column's format sorts as text, e.g. `%Y-%m-%d %H:%M:%S`). Other sources are scanned
through DuckDB: proportional to the source, which is why a schedule exists beside the sensor.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.mapping.plan import MappingPlan
from clinic_pipeline.sql import quote_ident, quote_literal

WINDOW = timedelta(hours=1)
# strptime formats whose text order is time order: SQLite can compare them as strings.
SORTABLE_FORMATS = frozenset({"%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"})
PARTITION_FORMAT = "%Y-%m-%d-%H:%M"  # Dagster's hourly partition keys


def partition_window(key: str) -> tuple[datetime, datetime]:
    try:
        start = datetime.strptime(key, PARTITION_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise OperatorError(f"window {key!r} is not an hourly partition key like 2026-11-24-14:00 (UTC)") from None
    return start, start + WINDOW


def partition_key(start: datetime) -> str:
    return start.astimezone(UTC).strftime(PARTITION_FORMAT)


def closed_windows(cutover_start: datetime, after: datetime | None, now: datetime) -> Iterator[datetime]:
    """Starts of the windows that ended by `now`, after the one starting at `after` (the sensor's cursor)."""
    start = cutover_start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if after is not None:
        start = max(start, after + WINDOW)
    while start + WINDOW <= now:
        yield start
        start += WINDOW


def _tracked(plan: MappingPlan) -> dict[str, tuple[str, str]]:
    """Source table → (changed_at column, format), for the tables the plan migrates."""
    tables: dict[str, tuple[str, str]] = {}
    for mapping in plan.objects:
        if mapping.target != "not_migrated" and mapping.changed_at and mapping.changed_at_format:
            tables.setdefault(mapping.source_table, (mapping.changed_at, mapping.changed_at_format))
    return tables


def _local(moment: datetime, zone: str, fmt: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None).strftime(fmt)


def count_changes_sqlite(
    db_path: Path, plan: MappingPlan, window: tuple[datetime, datetime], zone: str
) -> dict[str, int] | None:
    """Per table, rows whose changed_at falls in the window, asked of SQLite directly; None when the
    plan's formats do not sort as text (then the caller scans)."""
    tracked = _tracked(plan)
    if any(fmt not in SORTABLE_FORMATS for _col, fmt in tracked.values()):
        return None
    uri = f"file:{db_path.resolve()}?mode=ro"
    counts: dict[str, int] = {}
    with sqlite3.connect(uri, uri=True) as db:
        for table, (column, fmt) in tracked.items():
            start, end = (_local(t, zone, fmt) for t in window)
            col = quote_ident(column)
            query = f"SELECT count(*) FROM {quote_ident(table)} WHERE {col} >= ? AND {col} < ?"
            (n,) = db.execute(query, (start, end)).fetchone()
            counts[table] = int(n)
    return counts


def count_changes_duckdb(
    con: duckdb.DuckDBPyConnection, plan: MappingPlan, window: tuple[datetime, datetime], zone: str
) -> dict[str, int]:
    """The same count over an opened export (every table scanned once)."""
    counts: dict[str, int] = {}
    start, end = (quote_literal(t.astimezone(UTC).isoformat()) for t in window)
    for table, (column, fmt) in _tracked(plan).items():
        moment = f"timezone({quote_literal(zone)}, try_strptime(trim({quote_ident(column)}), {quote_literal(fmt)}))"
        (n,) = con.execute(
            f"SELECT count(*) FROM source.{quote_ident(table)} "
            f"WHERE {moment} >= {start}::TIMESTAMPTZ AND {moment} < {end}::TIMESTAMPTZ"
        ).fetchone()
        counts[table] = int(n)
    return counts
