"""What the command line draws on a terminal: generation (from a real generated clinic), staging (from staged
files written during the view), the full load (from the counts a real state store's writer publishes) and
the summary table; nothing drawn when the output is no terminal."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr
from rich.console import Console

from clinic_pipeline.freshsales import FreshsalesClient
from clinic_pipeline.load.loader import Loader
from clinic_pipeline.load.state import AuditEntry, IdMapRow, StateStore, open_state, read_progress
from clinic_pipeline.model.objects import ACCOUNTS
from clinic_pipeline.progress_view import (
    POLL_SECONDS,
    STAGING,
    SUMMARY_COLUMNS,
    print_summary,
    showing_generation_progress,
    showing_load_progress,
    showing_staging_progress,
)
from clinic_pipeline.samples.generator import GenerationProgress, generate_clinic
from clinic_pipeline.sandbox.launcher import SandboxHandle
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


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=150, color_system=None), out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["csv", "sqlite"])
def test_generation_draws_rows_tables_and_rate_and_writes_the_same_bytes(
    tmp_path: Path, fmt: Literal["csv", "sqlite"]
) -> None:
    heard: list[GenerationProgress] = []
    console, out = _terminal()
    with showing_generation_progress(console) as draw:
        assert draw is not None

        def progress(p: GenerationProgress) -> None:
            heard.append(p)
            draw(p)

        shown = generate_clinic(tmp_path / "shown", patients=20, seed=5, fmt=fmt, progress=progress)
    quiet = generate_clinic(tmp_path / "quiet", patients=20, seed=5, fmt=fmt)

    assert _files(tmp_path / "shown") == _files(tmp_path / "quiet")  # the callback changes no byte
    # Building, table by table (their sizes are not known yet), then writing.
    assert [p.tables_built for p in heard if p.rows_total is None] == list(range(17))
    assert heard[-1] == GenerationProgress(16, 16, 16, shown.total_records, shown.total_records)
    written = [p.rows_written for p in heard if p.rows_total is not None]
    assert written == sorted(written) and len(written) >= 17
    final = out.getvalue().rsplit("building tables", 1)[-1]  # the last frame
    assert re.search(r"building tables\s.*16/16\s+\d+\.\d tables/s", "building tables" + final)
    total = shown.total_records
    assert re.search(rf"writing rows\s.*{total}/{total} 16/16 tables \d+\.\d rows/s", final)
    assert quiet.total_records == shown.total_records


def test_generation_draws_nothing_and_asks_for_no_callback_off_a_terminal(tmp_path: Path) -> None:
    out = io.StringIO()
    with showing_generation_progress(Console(file=out, force_terminal=False)) as draw:
        assert draw is None
        generate_clinic(tmp_path / "clinic", patients=20, seed=5, progress=draw)
    assert out.getvalue() == ""


def _stage(settings: Settings, name: str, rows: int) -> None:
    pq.write_table(
        pa.table({"_source_key": [f"{name}:{n}" for n in range(rows)]}), settings.paths.staged_dir / f"{name}.parquet"
    )


def test_staging_counts_the_files_this_run_writes_and_their_rows(tmp_path: Path) -> None:
    # Files of an earlier run are there before it starts: they are not this run's progress until rewritten.
    settings = _settings(tmp_path, {"accounts": 4, "contacts": 7})
    console, out = _terminal()
    with showing_staging_progress(settings, console):
        _stage(settings, "contacts", 30)
        _stage(settings, "deals", 5)
        time.sleep(POLL_SECONDS * 2)  # a frame drawn mid-run, from the poller
        _stage(settings, "notes", 2)
    frames = out.getvalue()
    final = frames.rsplit(STAGING, 1)[-1]
    assert re.search(r"staging\s.*3/12\s+37 rows, \d+ rows/s", STAGING + final)
    assert "contacts:" not in frames  # counts only


def test_staging_draws_nothing_off_a_terminal(tmp_path: Path) -> None:
    settings = _settings(tmp_path, {})
    out = io.StringIO()
    with showing_staging_progress(settings, Console(file=out, force_terminal=False)):
        _stage(settings, "accounts", 3)
    assert out.getvalue() == ""


def test_the_full_runs_view_has_the_staging_row_above_the_loads(tmp_path: Path) -> None:
    settings = _settings(tmp_path, {})
    console, out = _terminal()
    with showing_load_progress(settings, console):
        _stage(settings, "accounts", 4)
        _stage(settings, "contacts", 6)
        _load(settings, "accounts", 4, 4)
    final = out.getvalue().rsplit(STAGING, 1)[-1]
    assert re.search(r"^\s.*2/12\s+10 rows", final)
    assert re.search(r"accounts\s.*4/4", final) and re.search(r"contacts\s.*0/6", final)


def test_the_summary_table_has_a_row_per_object_and_the_totals(tmp_path: Path) -> None:
    counts = {
        "accounts": {"staged": 4, "quarantined": 1, "skipped": 0, "loaded": 4, "created": 3, "updated": 0,
                     "unchanged": 1, "requests": 2},
        "contacts": {"staged": 30, "quarantined": 0, "skipped": 2, "loaded": 30, "created": 30, "updated": 0,
                     "unchanged": 0, "requests": 3},
    }  # fmt: skip
    console, out = _terminal()
    print_summary(counts, title="run r1", console=console)
    lines = [line.replace("│", " ").replace("┃", " ").split() for line in out.getvalue().splitlines()]
    assert ["object", *SUMMARY_COLUMNS] in lines
    assert ["accounts", "4", "1", "0", "4", "3", "0", "1", "2"] in lines
    assert ["contacts", "30", "0", "2", "30", "30", "0", "0", "3"] in lines
    assert ["total", "34", "1", "2", "34", "33", "0", "1", "5"] in lines

    # A dry run has staging's counts only: its table has only their columns.
    console, out = _terminal()
    print_summary({n: {k: row[k] for k in ("staged", "quarantined", "skipped")} for n, row in counts.items()},
                  title="dry run", console=console)  # fmt: skip
    lines = [line.replace("│", " ").replace("┃", " ").split() for line in out.getvalue().splitlines()]
    assert ["object", "staged", "quarantined", "skipped"] in lines and ["total", "34", "1", "2"] in lines

    plain = io.StringIO()
    print_summary(counts, title="run r1", console=Console(file=plain, force_terminal=False))
    assert plain.getvalue() == ""


def test_the_full_runs_summary_counts_come_from_the_run_metadata() -> None:
    from clinic_pipeline.cli import _summary
    from clinic_pipeline.runs import RunOutcome

    run = RunOutcome(
        "r1",
        {
            "staged_contacts": {"staged_rows": 30, "quarantined_rows": 2, "skipped_rows": 1},
            "loaded_contacts": {
                "created": 20,
                "updated": 3,
                "adopted": 1,
                "unchanged": 6,
                "rejected": 2,
                "requests": 9,
            },
        },
    )
    rows = _summary(run, loaded=True)
    assert rows["contacts"] == {
        "staged": 30, "quarantined": 2, "skipped": 1, "loaded": 30, "created": 20, "updated": 3, "unchanged": 6,
        "requests": 9,
    }  # fmt: skip
    assert rows["accounts"] == dict.fromkeys(SUMMARY_COLUMNS, 0)
    assert _summary(run, loaded=False)["contacts"] == {"staged": 30, "quarantined": 2, "skipped": 1}


def test_sample_data_on_a_terminal_draws_the_bars_and_keeps_its_plain_line(tmp_path: Path) -> None:
    # A real pseudo-terminal: the command decides for itself that it is on one.
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLINIC_", "FRESHSALES_", "DAGSTER_"))}
    env |= {"CLINIC_DATA_DIR": str(tmp_path / "data"), "TERM": "xterm", "COLUMNS": "140"}
    args = ["sample-data", "--out", str(tmp_path / "clinic"), "--patients", "20", "--seed", "5"]
    with subprocess.Popen(
        [sys.executable, "-m", "clinic_pipeline", *args], stdout=terminal, stderr=terminal, env=env, cwd=tmp_path
    ) as process:
        os.close(terminal)
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the command closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        assert process.wait(timeout=120) == 0
    os.close(controller)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn.decode("utf-8", errors="replace"))
    plain = re.search(r"(\d+) records in 16 tables written", text)  # the line scripts read, unchanged
    assert plain is not None
    records = int(plain.group(1))
    assert re.search(r"building tables\s.*16/16", text)
    assert re.search(rf"writing rows\s.*{records}/{records} 16/16 tables \d+\.\d rows/s", text)


def test_the_load_view_shows_the_requests_a_real_load_sends_and_the_budget_left(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    settings = _settings(tmp_path, {})
    rows = [{"_source_key": f"clinics:{n}", "_source_table": "clinics", "_source_row": n, "name": f"Clinic {n}"}
            for n in range(1, 6)]  # fmt: skip
    staged = settings.paths.staged_dir / "accounts.parquet"
    pq.write_table(pa.Table.from_pylist(rows), staged)
    field = {"label": "Source key", "name": "cf_source_key", "type": "text"}
    httpx.post(f"{sandbox.root_url}/_sandbox/settings/sales_accounts/fields", json=field, timeout=30).raise_for_status()
    console, out = _terminal()
    with (
        showing_load_progress(settings, console),
        FreshsalesClient(sandbox.base_url, SecretStr(sandbox.api_key), timeout=10.0) as client,
        open_state(settings.paths.state_db_path) as state,
    ):
        result = Loader(client, state, run_id="r1").load(ACCOUNTS, staged, tmp_path / "rejected")
        budget = client.budget_remaining
    assert result.requests > 0 and budget is not None  # the sandbox states its budget on every answer
    published = read_progress(settings.paths.state_db_path) or {}
    assert published["requests"] == {"accounts": result.requests} and published["budget_remaining"] == budget
    final = out.getvalue().rsplit(STAGING, 1)[-1]
    assert re.search(r"accounts\s.*5/5", final)
    assert re.search(rf"requests\s.*\s{result.requests}\s.*budget left {budget}\b", final)


def test_published_requests_add_up_over_the_objects_of_one_run_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "migration.duckdb"
    for obj, used, budget in (("accounts", 3, 997), ("contacts", 5, None)):
        with open_state(path) as state:
            state.note_requests(obj, used, budget)
            _one_batch(state, obj, "r1")
    published = read_progress(path) or {}
    # Each object's load opens the store anew; an answer without the header keeps the last budget stated.
    assert published["requests"] == {"accounts": 3, "contacts": 5} and published["budget_remaining"] == 997
    with open_state(path) as state:
        state.note_requests("accounts", 1, 990)
        _one_batch(state, "accounts", "r2")
    again = read_progress(path) or {}
    assert again["requests"] == {"accounts": 1} and again["budget_remaining"] == 990  # another run starts afresh


def _one_batch(state: StateStore, obj: str, run_id: str) -> None:
    mapped = [IdMapRow(f"{obj}:{run_id}", 1, "h")]
    audit = [AuditEntry("create", "created", mapped[0].source_key, 1)]
    state.record_batch(obj=obj, run_id=run_id, partition=None, mapped=mapped, audit=audit)
