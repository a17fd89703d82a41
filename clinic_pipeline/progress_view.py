"""A full load's progress on the terminal: per object, the records in the id map against those staged, with
their rate and the time left (rich).

It reads only the counts the state store's writer publishes (`load.state.read_progress`: counts and a pid,
never keys or values), so it shows the same whichever process loads, this command's own run or a Dagster
run beside it. Nothing is drawn when the output is not a terminal: logs and CI keep plain lines.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
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
from rich.text import Text

from clinic_pipeline.load.state import read_progress
from clinic_pipeline.model.objects import STAGED_OBJECTS
from clinic_pipeline.settings import Settings

POLL_SECONDS = 0.5


class _RateColumn(ProgressColumn):
    """Records a second, once rich has seen the count move."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f} records/s" if task.speed else "", style="progress.data.speed")


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
    """Draws the load's progress while the block runs (the full run stages first: the bars start with its
    staged files, and move once the loads publish their counts)."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    columns = (
        TextColumn("{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeRemainingColumn(),
    )
    stop = threading.Event()
    with Progress(*columns, console=console, transient=False) as progress:
        tasks: dict[str, TaskID] = {}
        totals: dict[str, int] = {}

        def refresh() -> None:
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

        def poll() -> None:
            while not stop.wait(POLL_SECONDS):
                refresh()

        poller = threading.Thread(target=poll, name="load-progress", daemon=True)
        poller.start()
        try:
            yield
        finally:
            stop.set()
            poller.join()
            refresh()
