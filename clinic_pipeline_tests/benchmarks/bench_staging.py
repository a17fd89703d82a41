"""Staging the 2 M-record sample clinic against DuckDB alone reading the export and writing it to Parquet.

Issue 5: staging may take at most 1.5x the baseline, with peak RSS under 2 GiB. Both phases start from
the same CSV export and end with Parquet on disk. The baseline is DuckDB alone: each CSV read as text
(`read_csv(..., all_varchar=true)`, as staging needs it) and COPYed to Parquet, streaming, none of our
code. Staging opens the tables the plan stages from with `open_source` (`tables_read`: not the
payments, workflow or report tables the plan leaves out) and runs `stage_object` for every staged
object in load order. Each phase runs in a fresh interpreter so its peak RSS is its own; the inventory
(issue 3: "well under a minute") is timed in a third one, which also proposes and confirms the plan the
staging phase uses. The machine is shared, so baseline and staging run alternately REPEATS times each
and the best time of each counts (peak RSS: the worst).

Asserted: peak RSS under 2 GiB, and that the run staged the export. The ratio is printed against its
target, not asserted: it is not reached (3.1-3.8 on a 2-core machine), and cannot be with this design.
The floor phase shows why: opening the same tables (a copy into DuckDB, which the exact `_source_row`
numbers need: DuckDB's CSV reader has no row number, and `row_number() OVER ()` serializes every
query after it) and writing each back with every value trimmed, no other transform and no checks,
already takes 1.7x the baseline. The rest is `stage_object`, whose cost is spread over the plan's
~100 column expressions (~40-100 ns per value for each trim, presence check, date parse, time zone
conversion, money cast) and the staged files' Parquet writes, see the per-object times.

Run `pytest -m slow clinic_pipeline_tests/benchmarks/bench_staging.py -s`.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from clinic_pipeline.mapping.plan import MappingPlan, confirm_plan
from clinic_pipeline.mapping.proposer import propose_plan
from clinic_pipeline.model.objects import STAGED_OBJECTS
from clinic_pipeline.samples.generator import generate_clinic
from clinic_pipeline.source.inventory import build_inventory
from clinic_pipeline.source.reader import open_source
from clinic_pipeline.staging.stage import stage_object, tables_read

PATIENTS = 110_000  # ≈ 2.04 M records over all tables
TARGET_RATIO = 1.5  # issue 5; printed, not asserted (see the module docstring)
MAX_RSS_MB = 2048
REPEATS = 2


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _inventory_phase(export_dir: Path, work: Path) -> dict[str, Any]:
    con = duckdb.connect()
    started = time.perf_counter()
    export = open_source(str(export_dir), con)
    opened = time.perf_counter()
    inventory = build_inventory(export, con)
    profiled = time.perf_counter()
    plan = confirm_plan(propose_plan(inventory, 0.75), "bench")
    (work / "plan.json").write_text(plan.model_dump_json())
    return {
        "open_s": opened - started,
        "inventory_s": profiled - opened,
        "tables": {t.name: t.row_count for t in export.tables.values()},
    }


def _baseline_phase(export_dir: Path, work: Path) -> dict[str, Any]:
    con = duckdb.connect()
    out = work / "baseline"
    out.mkdir(exist_ok=True)
    started = time.perf_counter()
    for csv in sorted(export_dir.glob("*.csv")):
        con.execute(
            f"COPY (SELECT * FROM read_csv('{csv}', all_varchar=true, header=true)) "
            f"TO '{out / csv.stem}.parquet' (FORMAT parquet, COMPRESSION zstd)"
        )
    written = time.perf_counter()
    (rows,) = con.execute(f"SELECT count(*) FROM read_parquet('{out}/*.parquet')").fetchone()
    return {"total_s": written - started, "rows": rows}


def _floor_phase(export_dir: Path, work: Path) -> dict[str, Any]:
    """The least staging can do: open the tables it reads as staging does (row numbers need the copy
    into DuckDB) and write each back with every value trimmed, no other transform and no checks."""
    plan = MappingPlan.model_validate_json((work / "plan.json").read_text())
    tables = set().union(*(tables_read(obj, plan) for obj in STAGED_OBJECTS))
    con = duckdb.connect()
    out = work / "floor"
    out.mkdir(exist_ok=True)
    started = time.perf_counter()
    export = open_source(str(export_dir), con, tables=tables)
    con.execute("SET preserve_insertion_order = false")
    for name in export.tables:
        con.execute(
            f"COPY (SELECT trim(COLUMNS(* EXCLUDE (_source_row))), _source_row FROM source.{name}) "
            f"TO '{out / name}.parquet' (FORMAT parquet, COMPRESSION zstd)"
        )
    return {"total_s": time.perf_counter() - started}


def _staging_phase(export_dir: Path, work: Path) -> dict[str, Any]:
    plan = MappingPlan.model_validate_json((work / "plan.json").read_text())
    tables = set().union(*(tables_read(obj, plan) for obj in STAGED_OBJECTS))
    con = duckdb.connect()
    started = time.perf_counter()
    export = open_source(str(export_dir), con, tables=tables)
    opened = time.perf_counter()
    objects: dict[str, dict[str, float]] = {}
    for obj in STAGED_OBJECTS:
        begun = time.perf_counter()
        result = stage_object(obj, plan, export, con, staged_dir=work / "staged", quarantine_dir=work / "quarantine")
        objects[obj.name] = {
            "seconds": time.perf_counter() - begun,
            "source_rows": result.source_rows,
            "staged": result.staged_rows,
            "quarantined": result.quarantined_rows,
            "skipped": result.skipped_rows,
        }
    staged = time.perf_counter()
    return {
        "open_s": opened - started,
        "write_s": staged - opened,
        "total_s": staged - started,
        "objects": objects,
        "rows_read": sum(t.row_count for t in export.tables.values()),
    }


PHASES = {
    "inventory": _inventory_phase,
    "baseline": _baseline_phase,
    "floor": _floor_phase,
    "staging": _staging_phase,
}


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = dict(min(runs, key=lambda r: r["total_s"]))
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return best


def _seconds(runs: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['total_s']:.2f}" for r in runs)


def _run_phase(phase: str, export_dir: Path, work: Path) -> dict[str, Any]:
    """One phase in a fresh interpreter: its peak RSS is its own, not the generator's or another phase's."""
    done = subprocess.run(
        [sys.executable, __file__, phase, str(export_dir), str(work)], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the inventory alone takes minutes on this export (see the report)
def test_staging_against_duckdb_alone(tmp_path: Path) -> None:
    export_dir, work = tmp_path / "clinic", tmp_path / "work"
    work.mkdir()
    generate_clinic(export_dir, patients=PATIENTS, seed=7, fmt="csv")

    inventory = _run_phase("inventory", export_dir, work)
    baselines, floors, stagings = [], [], []
    for _ in range(REPEATS):
        baselines.append(_run_phase("baseline", export_dir, work))
        floors.append(_run_phase("floor", export_dir, work))
        stagings.append(_run_phase("staging", export_dir, work))
    baseline, floor, staging = _best(baselines), _best(floors), _best(stagings)

    records = sum(inventory["tables"].values())
    ratio = staging["total_s"] / baseline["total_s"]
    lines = [
        f"\nexport: {records:,} records in {len(inventory['tables'])} tables",
        f"inventory: open {inventory['open_s']:.2f} s + build_inventory {inventory['inventory_s']:.2f} s, "
        f"peak RSS {inventory['peak_rss_mb']:.0f} MB",
        f"baseline (DuckDB alone): read_csv COPY to Parquet {baseline['total_s']:.2f} s, "
        f"peak RSS {baseline['peak_rss_mb']:.0f} MB",
        f"staging: open {staging['open_s']:.2f} s ({staging['rows_read']:,} records) + stage_object "
        f"{staging['write_s']:.2f} s = {staging['total_s']:.2f} s, peak RSS {staging['peak_rss_mb']:.0f} MB",
        *(
            f"  {name:<15} {o['seconds']:6.2f} s  source {o['source_rows']:>9,}  staged {o['staged']:>9,}  "
            f"quarantined {o['quarantined']:>7,}  skipped {o['skipped']:>6,}"
            for name, o in staging["objects"].items()
        ),
        f"ratio staging/baseline: {ratio:.2f} (target ≤ {TARGET_RATIO}) end to end (best of {REPEATS}; all runs: "
        f"baseline {_seconds(baselines)} s, staging {_seconds(stagings)} s); "
        f"open_source alone {staging['open_s'] / baseline['total_s']:.2f}",
        f"floor (open the same tables, write them back trimmed, nothing else): {floor['total_s']:.2f} s, "
        f"ratio {floor['total_s'] / baseline['total_s']:.2f} (runs: {_seconds(floors)} s)",
    ]
    print("\n".join(lines))

    assert baseline["rows"] == records
    # Not a vacuous run: every object staged rows, and together they took most of the export.
    assert all(o["staged"] > 0 for o in staging["objects"].values())
    assert sum(o["source_rows"] for o in staging["objects"].values()) > records // 2
    assert staging["peak_rss_mb"] < MAX_RSS_MB


if __name__ == "__main__":
    phase, export_arg, work_arg = sys.argv[1:4]
    figures = PHASES[phase](Path(export_arg), Path(work_arg))
    figures["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(figures))
