"""The `clinic-pipeline` command as an operator runs it: exit codes, one-line errors, no PHI on screen."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from clinic_pipeline.demo import create_custom_fields_as_admin
from clinic_pipeline.samples import FIXTURE_DIR, copy_fixture
from clinic_pipeline.settings import Settings

API_KEY_MARKER = "demo-sandbox-key"
FIXTURES = Path(__file__).parent / "fixtures"


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clinic_pipeline", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLINIC_", "FRESHSALES_", "DAGSTER_"))}
    return env | {"CLINIC_DATA_DIR": str(tmp_path / "data")}


def _assert_no_patient_values(patients_csv: Path, out: str) -> None:
    with patients_csv.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for field in ("last_name", "email", "phone", "date_of_birth"):
            value = (row.get(field) or "").strip()
            if len(value) > 3:
                assert value not in out, f"{field} value reached the terminal"


def test_demo_migrates_the_sample_clinic_and_prints_no_record_values(tmp_path: Path) -> None:
    result = _run(["demo"], _clean_env(tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout + result.stderr
    for loud in (
        "AUTOMATICALLY CONFIRMED",
        "AUTOMATICALLY SIGNED OFF",
        "ACTING AS THE FRESHSALES ADMIN",
        "FALLBACK OWNER",
    ):
        assert loud in out
    for name in ("contacts", "deals", "appointments", "tasks", "lab_result", "notes", "files"):
        line = re.search(rf"demo: {name}: (\d+) staged, (\d+) loaded", out)
        assert line is not None and line.group(1) == line.group(2) != "0", name
    _assert_no_patient_values(tmp_path / "data" / "source" / "clinic" / "patients.csv", out)
    assert API_KEY_MARKER not in out
    report = tmp_path / "data" / "reports" / "validation_report.html"
    assert "PASS" in report.read_text()


def test_operator_errors_are_one_line_with_a_non_zero_exit(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    missing = _run(["inventory"], env, tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == ["error: CLINIC_SOURCE is not set: point it at the clinic export"]

    absent = _run(["inventory"], env | {"CLINIC_SOURCE": str(tmp_path / "nowhere")}, tmp_path)
    assert absent.returncode == 1
    assert "Traceback" not in absent.stderr and str(tmp_path / "nowhere") in absent.stderr

    unconfirmed = _run(["migrate", "--dry-run"], env | {"CLINIC_SOURCE": str(FIXTURE_DIR)}, tmp_path)
    assert unconfirmed.returncode == 1
    assert "Traceback" not in unconfirmed.stderr


def test_step_by_step_commands_migrate_into_a_running_sandbox(tmp_path: Path, sandbox: Any) -> None:
    env = _clean_env(tmp_path) | {
        "CLINIC_SOURCE": str(tmp_path / "export"),
        "FRESHSALES_BASE_URL": sandbox.base_url,
        "FRESHSALES_API_KEY": sandbox.api_key,
    }
    copy_fixture(tmp_path / "export")
    for args in (
        ["inventory"],
        ["propose-mapping"],
        ["review-mapping"],
        ["confirm-mapping", "--by", "Dr. Reviewer"],
        ["checklist"],
        ["migrate", "--dry-run"],
    ):
        result = _run(args, env, tmp_path)
        assert result.returncode == 0, (args, result.stderr[-2000:])

    page = tmp_path / "data" / "inventory" / "schema_inventory.md"
    assert "patients" in page.read_text(encoding="utf-8")

    refused = _run(["migrate", "--sample", "100"], env, tmp_path)
    assert refused.returncode == 1
    assert "custom fields the plan needs" in refused.stderr
    assert sandbox.api_key not in refused.stdout + refused.stderr

    settings = Settings(clinic_data_dir=tmp_path / "data", clinic_source=str(tmp_path / "export"))
    create_custom_fields_as_admin(settings, sandbox.root_url, sandbox.api_key, echo=lambda _: None)
    before = httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", timeout=30).json()
    unsigned = _run(["migrate", "--full"], env, tmp_path)
    assert unsigned.returncode == 1 and "no signed-off sample diff" in unsigned.stderr
    sample = _run(["migrate", "--sample", "100"], env, tmp_path)
    assert sample.returncode == 0, sample.stderr[-2000:]
    assert "0 differ, 0 missing" in sample.stdout
    assert _run(["sign-off", "--by", "Dr. Reviewer"], env, tmp_path).returncode == 0
    full = _run(["migrate", "--full"], env, tmp_path)
    assert full.returncode == 0, full.stderr[-2000:]
    assert "validated contacts: 25 staged, 25 loaded, 25 in Freshsales; 25/25 checked keys found once" in full.stdout
    again = _run(["migrate", "--full"], env, tmp_path)
    assert "loaded contacts: unchanged 25" in again.stdout
    assert _run(["report"], env, tmp_path).returncode == 0
    status = _run(["status"], env, tmp_path)
    assert status.returncode == 0
    assert "plan: confirmed by Dr. Reviewer" in status.stdout
    assert "contacts: staged 25, quarantined 0, in id map 25" in status.stdout

    assert _run(["rollback"], env, tmp_path).returncode != 0  # --run RUN_ID or --all, never a guess
    undone = _run(["rollback", "--all"], env, tmp_path)
    assert undone.returncode == 0, undone.stderr[-2000:]
    assert "contacts: 25 deleted" in undone.stdout
    assert httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", timeout=30).json() == before


def test_sample_data_generates_a_clinic_deterministically(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    for name in ("a", "b"):
        result = _run(["sample-data", "--out", str(tmp_path / name), "--patients", "40", "--seed", "3"], env, tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"CLINIC_SOURCE={tmp_path / name}" in result.stdout
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) > 15
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    bad = _run(["sample-data", "--out", str(tmp_path / "c"), "--format", "xls"], env, tmp_path)
    assert bad.returncode != 0 and "csv or sqlite" in bad.stderr


def test_records_held_back_show_in_the_sample_and_fail_the_full_validation(tmp_path: Path, sandbox: Any) -> None:
    shutil.copytree(FIXTURES / "sample_shape", tmp_path / "export")
    # The clinic's providers have no Freshsales user (one has no email at all) and no fallback owner
    # is set: their visits cannot get the owner Freshsales requires and are held back.
    env = _clean_env(tmp_path) | {
        "CLINIC_SOURCE": str(tmp_path / "export"),
        "FRESHSALES_BASE_URL": sandbox.base_url,
        "FRESHSALES_API_KEY": sandbox.api_key,
    }
    for args in (["inventory"], ["propose-mapping"], ["confirm-mapping", "--by", "Dr. Reviewer"]):
        result = _run(args, env, tmp_path)
        assert result.returncode == 0, (args, result.stderr[-2000:])
    settings = Settings(clinic_data_dir=tmp_path / "data", clinic_source=str(tmp_path / "export"))
    create_custom_fields_as_admin(settings, sandbox.root_url, sandbox.api_key, echo=lambda _: None)

    assert _run(["migrate", "--sample", "100"], env, tmp_path).returncode == 0
    assert _run(["sign-off", "--by", "Dr. Reviewer"], env, tmp_path).returncode == 0
    full = _run(["migrate", "--full"], env, tmp_path)
    assert full.returncode == 2  # a failed validation, as for any other discrepancy
    # Two of the four visits link to a patient the export lacks or skipped (soft-deleted): quarantined.
    assert "loaded appointments: held_back 2" in full.stdout
    assert "validated appointments: 2 staged, 0 loaded, 0 in Freshsales" in full.stdout
    assert "not loaded appointments: 2 of 2 staged (held back: owner not resolved 2)" in full.stdout
    # The audit counts every hold, the sample run's too.
    assert re.search(
        r"discrepancy: appointments: 2 of 2 staged records not loaded into Freshsales "
        r"\(held back: owner not resolved 2; audit: hold/held_back \d+\)",
        full.stderr,
    )
    report = json.loads((tmp_path / "data" / "reports" / "validation_report.json").read_text())
    appointments = next(o for o in report["objects"] if o["object"] == "appointments")
    assert report["ok"] is False
    assert (appointments["not_loaded"], appointments["not_loaded_reasons"]) == (2, {"held back: owner not resolved": 2})
    _assert_no_patient_values(tmp_path / "export" / "patients.csv", full.stdout + full.stderr)


def test_the_sample_summary_counts_records_missing_from_freshsales(tmp_path: Path, sandbox: Any) -> None:
    env = _clean_env(tmp_path) | {
        "CLINIC_SOURCE": str(tmp_path / "export"),
        "FRESHSALES_BASE_URL": sandbox.base_url,
        "FRESHSALES_API_KEY": sandbox.api_key,
    }
    # The generated clinic's staff have no Freshsales users and no fallback owner is set: the
    # sampled visits are held back, so the sample's field totals alone would look clean.
    for args in (
        ["sample-data", "--out", str(tmp_path / "export"), "--patients", "30", "--seed", "5"],
        ["inventory"],
        ["propose-mapping"],
        ["confirm-mapping", "--by", "Dr. Reviewer"],
    ):
        result = _run(args, env, tmp_path)
        assert result.returncode == 0, (args, result.stderr[-2000:])
    settings = Settings(clinic_data_dir=tmp_path / "data", clinic_source=str(tmp_path / "export"))
    create_custom_fields_as_admin(settings, sandbox.root_url, sandbox.api_key, echo=lambda _: None)

    sample = _run(["migrate", "--sample", "100"], env, tmp_path)
    assert sample.returncode == 0, sample.stderr[-2000:]
    written = json.loads((tmp_path / "data" / "reports" / "sample_diff.json").read_text())
    diff = written["diff"]
    held_back = sum(counts.get("held_back", 0) for counts in written["loaded"].values())
    assert diff["records_missing"] > 0 and held_back > 0
    assert (
        f"sample: {diff['records']} records, {diff['records'] - diff['records_missing']} loaded and read back, "
        f"{diff['records_missing']} missing from Freshsales (load: {held_back} held back, 0 rejected); "
    ) in sample.stdout
    _assert_no_patient_values(tmp_path / "export" / "patients.csv", sample.stdout + sample.stderr)
