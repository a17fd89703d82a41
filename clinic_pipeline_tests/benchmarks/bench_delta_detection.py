"""Delta detection stays flat as the source grows: the same hourly delta in a 10x larger SQLite source.

The sensor asks, per table, how many rows changed in a window (`count_changes_sqlite`). With an index
on the plan's `changed_at` column (as clinic databases keep on their audit timestamps) that is a range
scan proportional to the delta. Reported as the ratio large/small of the median time, measured in one
run; the goal is a ratio near 1 (well under the 10x growth of the table).

Run `pytest -m slow clinic_pipeline_tests/benchmarks/bench_delta_detection.py -s`.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clinic_pipeline.delta.windows import count_changes_sqlite
from clinic_pipeline.mapping.plan import MappingPlan, ObjectMapping

SMALL = 200_000
DELTA_ROWS = 500
WINDOW = (datetime(2026, 11, 24, 14, tzinfo=UTC), datetime(2026, 11, 24, 15, tzinfo=UTC))
PLAN = MappingPlan(
    source_fingerprint="bench",
    objects=[
        ObjectMapping(
            source_table="appointments",
            target="appointment",
            source_key="id",
            changed_at="updated_at",
            changed_at_format="%Y-%m-%d %H:%M:%S",
        )
    ],
)


def _source(path: Path, rows: int) -> Path:
    """`rows` old appointments spread over three years, plus the same DELTA_ROWS inside the window."""
    old_start = datetime(2023, 1, 1)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE appointments (id INTEGER PRIMARY KEY, patient_id TEXT, updated_at TEXT)")
    step = (3 * 365 * 86_400) // rows
    db.executemany(
        "INSERT INTO appointments VALUES (?, ?, ?)",
        (
            (i, str(i % 9_000), (old_start + timedelta(seconds=i * step)).strftime("%Y-%m-%d %H:%M:%S"))
            for i in range(rows)
        ),
    )
    # 08:00-09:00 in Chicago is the 14:00-15:00 UTC window.
    db.executemany(
        "INSERT INTO appointments VALUES (?, ?, ?)",
        ((rows + i, "1", f"2026-11-24 08:{i % 60:02d}:00") for i in range(DELTA_ROWS)),
    )
    db.execute("CREATE INDEX appointments_updated_at ON appointments (updated_at)")
    db.commit()
    db.close()
    return path


def _median_seconds(path: Path, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        counts = count_changes_sqlite(path, PLAN, WINDOW, "America/Chicago")
        times.append(time.perf_counter() - started)
        assert counts == {"appointments": DELTA_ROWS}
    return statistics.median(times)


@pytest.mark.slow
def test_detection_time_is_flat_in_source_size(tmp_path: Path) -> None:
    small = _median_seconds(_source(tmp_path / "small.db", SMALL))
    large = _median_seconds(_source(tmp_path / "large.db", SMALL * 10))
    ratio = large / small
    print(
        f"delta detection: {SMALL} rows {small * 1000:.2f} ms, {SMALL * 10} rows {large * 1000:.2f} ms, "
        f"ratio {ratio:.2f}"
    )
    assert ratio < 3, "detection should not grow with the source (an index range scan)"
