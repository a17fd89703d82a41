"""A key with a few duplicates is still the key: the duplicates are quarantined and every link stays."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import yaml


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "clinic_pipeline", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def test_a_patient_id_registered_twice_keeps_the_key_and_the_links(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLINIC_", "FRESHSALES_", "DAGSTER_"))} | {
        "CLINIC_DATA_DIR": str(tmp_path / "data"),
        "CLINIC_SOURCE": str(tmp_path / "export"),
    }
    generated = _run(
        ["sample-data", "--out", str(tmp_path / "export"), "--patients", "60", "--seed", "5"], env, tmp_path
    )
    assert generated.returncode == 0, generated.stderr
    # A second person registered under an existing patient id (the front desk reused a chart).
    patients = tmp_path / "export" / "patients.csv"
    with patients.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    twin = rows[5] | {"patient_id": rows[3]["patient_id"], "first_name": "Zed", "email": "zed.twin@example.com"}
    with patients.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([*rows, twin])

    for args in (["inventory"], ["propose-mapping"]):
        assert _run(args, env, tmp_path).returncode == 0, args
    plan = yaml.safe_load((tmp_path / "data" / "plan" / "mapping_plan.yaml").read_text(encoding="utf-8"))
    people = next(o for o in plan["objects"] if o["source_table"] == "patients")
    assert (people["target"], people["source_key"], people["grouped"]) == ("contact", "patient_id", False)
    assert "1 repeated value" in next(f["reason"] for f in people["fields"] if f["source"] == "patient_id")
    visits = next(o for o in plan["objects"] if o["source_table"] == "appointments" and o["target"] == "appointment")
    assert any(f["transform"] == "lookup:contact" for f in visits["fields"] if f["source"] == "patient_id")

    assert _run(["confirm-mapping", "--by", "Dr. Reviewer"], env, tmp_path).returncode == 0
    dry = _run(["migrate", "--dry-run"], env, tmp_path)
    assert dry.returncode == 0, dry.stderr[-2000:]
    data = tmp_path / "data"
    quarantined = duckdb.sql(
        f"SELECT _source_row, reason FROM read_parquet('{data / 'quarantine' / 'contacts.parquet'}') "
        "WHERE _source_table = 'patients'"
    ).fetchall()
    assert quarantined == [(len(rows) + 1, "duplicate source key")]  # the later row, by its line in the file
    [(visits_staged, visits_linked)] = duckdb.sql(
        f"SELECT count(*), count(_lookup_contact) FROM read_parquet('{data / 'staged' / 'appointments.parquet'}')"
    ).fetchall()
    assert visits_staged == visits_linked > 0
