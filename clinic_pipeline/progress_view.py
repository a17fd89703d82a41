"""What the command line draws on a terminal (rich): the sample clinic's generation, staging, a full load's
progress, and a run's summary table. This module owns all of it; nothing is drawn when the output is not a
terminal: logs, CI and scripts keep the commands' plain lines, which are printed either way.

Every view reads counts only, never keys or values. Generation is told its counts by `generate_clinic`.
Staging is read from what it leaves: the staged Parquet files written since the view started, with their
row counts from the files' metadata. A load is read from the counts the state store's writer publishes
(`load.state.read_progress`: counts, requests sent and the last `X-RateLimit-Remaining`, and a pid), so it
shows the same whichever process loads, this command's own run or a Dagster run beside it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from clinic_pipeline.load.state import read_progress
from clinic_pipeline.model.objects import STAGED_OBJECTS
from clinic_pipeline.samples.generator import GenerationProgress
from clinic_pipeline.settings import Settings

POLL_SECONDS = 0.5
STAGING = "staging"
REQUESTS = "requests"

# The summary's columns, in this order; a run shows those it has counts for (a dry run: the first three).
SUMMARY_COLUMNS = ("staged", "quarantined", "skipped", "loaded", "created", "updated", "unchanged", "requests")


class _RateColumn(ProgressColumn):
    """Records (or the task's `unit`) a second, once rich has seen the count move; a task counting objects
    with a `rows` field shows the rows so far and their rate instead."""

    def render(self, task: Task) -> Text:
        rows = task.fields.get("rows")
        if rows is not None:
            elapsed = task.finished_time if task.finished else task.elapsed
            rate = f", {rows / elapsed:.0f} rows/s" if rows and elapsed else ""
            return Text(f"{rows} rows{rate}", style="progress.data.speed")
        unit = task.fields.get("unit", "records")
        rate = f"{task.speed:.1f} {unit}/s" if task.speed else ""
        if REQUESTS in task.fields:  # the requests row: the account's budget as the API last stated it
            budget = task.fields[REQUESTS]
            rate = ", ".join(filter(None, (rate, f"budget left {'unknown' if budget is None else budget}")))
        return Text(rate, style="progress.data.speed")


class _CountColumn(MofNCompleteColumn):
    """`done/total`, or the count alone for a task without a total (the requests sent)."""

    def render(self, task: Task) -> Text:
        if task.total is None and REQUESTS in task.fields:
            return Text(f"{int(task.completed)}", style="progress.download")
        return super().render(task)


def _columns(*extra: ProgressColumn) -> tuple[ProgressColumn, ...]:
    return (
        TextColumn("{task.description:<16}"),
        BarColumn(),
        _CountColumn(),
        *extra,
        _RateColumn(),
        TimeRemainingColumn(),
    )


@contextmanager
def _polling(refresh: Callable[[], None], name: str) -> Iterator[None]:
    """Calls `refresh` every POLL_SECONDS while the block runs, and once more after it."""
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(POLL_SECONDS):
            refresh()

    poller = threading.Thread(target=poll, name=name, daemon=True)
    poller.start()
    try:
        yield
    finally:
        stop.set()
        poller.join()
        refresh()


@contextmanager
def showing_generation_progress(
    console: Console | None = None,
) -> Iterator[Callable[[GenerationProgress], None] | None]:
    """Yields the `progress` callback for `generate_clinic` that draws its tables built, then its rows written
    (with the tables done), each with its rate and time left; None when the output is no terminal."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    with Progress(*_columns(TextColumn("{task.fields[tables]}")), console=console) as progress:
        building = progress.add_task("building tables", total=None, tables="", unit="tables")
        writing: TaskID | None = None

        def tell(p: GenerationProgress) -> None:
            nonlocal writing
            progress.update(building, total=p.tables_total, completed=p.tables_built)
            if p.rows_total is None:
                return
            if writing is None:
                writing = progress.add_task("writing rows", total=p.rows_total, tables="", unit="rows")
            tables = f"{p.tables_written}/{p.tables_total} tables"
            progress.update(writing, total=p.rows_total, completed=p.rows_written, tables=tables)

        yield tell


class _StagedSince:
    """The staged files written since it was made: a file counts once it is not the one that was there."""

    def __init__(self, settings: Settings) -> None:
        self._dir = settings.paths.staged_dir
        self._before = {name: self._identity(name) for name in self._names()}

    @staticmethod
    def _names() -> list[str]:
        return [obj.name for obj in STAGED_OBJECTS]

    def _identity(self, name: str) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._dir / f"{name}.parquet")
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def rows(self) -> dict[str, int]:
        """Rows per object staged since then (from the Parquet metadata; a file being written waits a poll)."""
        staged = {}
        for name in self._names():
            now = self._identity(name)
            if now is None or now == self._before[name]:
                continue
            try:
                staged[name] = pq.ParquetFile(self._dir / f"{name}.parquet").metadata.num_rows
            except (OSError, ValueError):
                continue
        return staged


def _staging_task(progress: Progress, settings: Settings) -> Callable[[], None]:
    """Adds the row 'objects staged of the 12, rows, rows a second'; returns its refresh."""
    since = _StagedSince(settings)
    task = progress.add_task(STAGING, total=len(STAGED_OBJECTS), rows=0)

    def refresh() -> None:
        staged = since.rows()
        progress.update(task, completed=len(staged), rows=sum(staged.values()))

    return refresh


@contextmanager
def showing_staging_progress(settings: Settings, console: Console | None = None) -> Iterator[None]:
    """Draws the objects staged so far of the 12, with their rows and rows a second, while the block runs."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with (
        Progress(*_columns(), console=console) as progress,
        _polling(_staging_task(progress, settings), "staging-progress"),
    ):
        yield


def _staged_totals(settings: Settings) -> dict[str, int]:
    totals = {}
    for obj in STAGED_OBJECTS:
        path = settings.paths.staged_dir / f"{obj.name}.parquet"
        rows = pq.ParquetFile(path).metadata.num_rows if path.exists() else 0
        if rows:
            totals[obj.name] = rows
    return totals


@contextmanager
def showing_load_progress(settings: Settings, console: Console | None = None) -> Iterator[None]:
    """Draws the full run's progress while the block runs: the staging row first, then per object the records
    in the id map against those staged (the bars start with the staged files, and move once the loads
    publish their counts), then the requests the loads have sent with the budget the API says is left."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with Progress(*_columns(), console=console, transient=False) as progress:
        staging = _staging_task(progress, settings)
        tasks: dict[str, TaskID] = {}
        totals: dict[str, int] = {}

        def refresh() -> None:
            staging()
            for name, total in _staged_totals(settings).items():
                totals[name] = total
                if name not in tasks:
                    tasks[name] = progress.add_task(name, total=total)
                else:
                    progress.update(tasks[name], total=total)
            published = read_progress(settings.state_location) or {}
            for name, count in (published.get("id_map") or {}).items():
                if name in tasks:
                    progress.update(tasks[name], completed=min(int(count), totals[name]))
            used = published.get(REQUESTS)
            if used:  # a load's requests so far and the budget left, once a writer publishes them
                if REQUESTS not in tasks:
                    tasks[REQUESTS] = progress.add_task(REQUESTS, total=None, unit=REQUESTS, requests=None)
                progress.update(
                    tasks[REQUESTS],
                    completed=sum(int(n) for n in used.values()),
                    requests=published.get("budget_remaining"),
                )

        with _polling(refresh, "load-progress"):
            yield


def print_summary(counts: Mapping[str, Mapping[str, int]], *, title: str, console: Console | None = None) -> None:
    """A run's table, one row per object and a total: the `SUMMARY_COLUMNS` the run has counts for. Printed to
    stdout on a terminal only, after the plain lines (which stay for scripts)."""
    console = console or Console()
    if not console.is_terminal or not counts:
        return
    columns = [c for c in SUMMARY_COLUMNS if any(c in row for row in counts.values())]
    table = Table(title=title, show_footer=True)
    table.add_column("object", footer="total")
    for column in columns:
        total = sum(int(row.get(column, 0)) for row in counts.values())
        table.add_column(column, justify="right", footer=str(total))
    for name, row in counts.items():
        table.add_row(name, *(str(row[c]) if c in row else "" for c in columns))
    console.print(table)
