"""The full load's terminal progress: drawn from the counts a real state store's writer publishes, against
the staged files; nothing drawn when the output is no terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from clinic_pipeline.load.state import AuditEntry, IdMapRow, open_state
from clinic_pipeline.progress_view import showing_load_progress
from clinic_pipeline.settings import Settings


def _settings(tmp_path: Path, staged: dict[str, int]) -> Settings:
    settings = Settings(clinic_data_dir=tmp_path / "data", clinic_source=str(tmp_path / "export"))
    settings.paths.staged_dir.mkdir(parents=True)
    for name, rows in staged.items():
        keys = pa.table({"_source_key": [f"{name}:{n}" for n in range(rows)]})
        pq.write_table(keys, settings.paths.staged_dir / f"{name}.parquet")
    return settings


def _load(settings: Settings, name: str, rows: int, batch: int) -> None:
    with open_state(settings.paths.state_db_path) as state:
        for start in range(0, rows, batch):
            mapped = [IdMapRow(f"{name}:{n}", 1000 + n, "h") for n in range(start, min(rows, start + batch))]
            audit = [AuditEntry("create", "created", m.source_key, m.freshsales_id) for m in mapped]
            state.record_batch(obj=name, run_id="r1", partition=None, mapped=mapped, audit=audit)


def test_the_bars_follow_the_published_counts_to_the_last_batch(tmp_path: Path) -> None:
    settings = _settings(tmp_path, {"accounts": 4, "contacts": 30})
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with showing_load_progress(settings, console):
        # Batches faster than the writer publishes: the last ones reach the file as the store closes.
        _load(settings, "accounts", 4, 4)
        _load(settings, "contacts", 30, 10)
    drawn = out.getvalue()
    final = drawn.rsplit("accounts", 1)[-1]  # the last frame
    assert "4/4" in final and "30/30" in final
    assert "contacts:" not in drawn  # counts only: no source key reaches the terminal


def test_nothing_is_drawn_when_the_output_is_no_terminal(tmp_path: Path) -> None:
    settings = _settings(tmp_path, {"contacts": 3})
    out = io.StringIO()
    with showing_load_progress(settings, Console(file=out, force_terminal=False)):
        _load(settings, "contacts", 3, 3)
    assert out.getvalue() == ""
