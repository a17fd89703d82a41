"""Quality checks on a 1 M-row staged contacts file, and Great Expectations' import cost on its own.

The import is measured in a fresh interpreter (the cost a Dagster run process pays once); the checks
are timed in this process after GX is imported, so the two figures add up to a cold run. Peak RSS of
the process before and after the checks is reported too: only the key, email and presence flags leave the Parquet file.

Run `pytest -m slow clinic_pipeline_tests/benchmarks/bench_quality.py -s`.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from clinic_pipeline.model.objects import CONTACTS
from clinic_pipeline.staging.quality import run_quality_checks

ROWS = 1_000_000


def _staged(tmp_path: Path) -> tuple[Path, Path]:
    contacts, accounts = tmp_path / "contacts.parquet", tmp_path / "accounts.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT 'locations.id:' || i AS _source_key FROM range(50) t(i)) TO '{accounts}'")
    con.execute(
        f"""COPY (
            SELECT 'patients:' || i AS _source_key, 'patients' AS _source_table, i AS _source_row,
                   'locations.id:' || (i % 50) AS _lookup_sales_account,
                   CASE WHEN i % 10 = 0 THEN NULL ELSE 'First' || i END AS first_name,
                   'Last' || (i % 5000) AS last_name,
                   CASE WHEN i % 97 = 0 THEN 'broken' ELSE 'p' || i || '@example.com' END AS email,
                   '+1 555 ' || lpad((i % 10000)::VARCHAR, 4, '0') AS mobile_number,
                   DATE '1930-01-01' + (i % 30000)::INT AS cf_date_of_birth,
                   ((i % 100000) / 100.0)::DECIMAL(18,2) AS cf_amount_billed,
                   TIMESTAMPTZ '2020-01-01 00:00:00+00' + to_seconds(i * 60) AS cf_last_visit_at
            FROM range({ROWS}) t(i)
        ) TO '{contacts}'"""
    )
    con.close()
    return contacts, accounts


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.slow
def test_quality_checks_on_a_million_contacts(tmp_path: Path) -> None:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import great_expectations"], check=True)
    cold_import = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    interpreter = time.perf_counter() - started

    contacts, accounts = _staged(tmp_path)
    import great_expectations  # noqa: F401  (paid once above in a fresh process; excluded from the timing)

    peak_before_mb = _peak_rss_mb()
    started = time.perf_counter()
    results = run_quality_checks(CONTACTS, contacts, parent_keys={"sales_account": accounts})
    checks = time.perf_counter() - started
    peak_mb = _peak_rss_mb()

    by_name = {r.name: r for r in results}
    print(
        f"\nGX import (fresh interpreter, minus {interpreter:.2f} s startup): {cold_import - interpreter:.2f} s"
        f"\nquality checks on {ROWS:,} contacts ({len(results)} results): {checks:.2f} s"
        f"\npeak RSS: {peak_before_mb:.0f} MB before the checks (data generation, imports), {peak_mb:.0f} MB after"
    )
    assert all(r.passed for r in results if r.blocking)
    assert by_name["email_valid:email"].observed["unexpected_count"] == len(range(0, ROWS, 97))
    assert by_name["population_rates"].observed["first_name"] == 0.9
