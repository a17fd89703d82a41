"""The `clinic-pipeline` command as an operator runs it: exit codes, one-line errors, no PHI on screen."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
import yaml

from clinic_pipeline.demo import DEMO_FALLBACK_OWNER, create_custom_fields_as_admin
from clinic_pipeline.model.transforms import TRANSFORMS
from clinic_pipeline.reports.validation import build_report, write_report
from clinic_pipeline.samples import FIXTURE_DIR, copy_fixture
from clinic_pipeline.sandbox.launcher import free_port
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
        timeout=540,  # the demo takes a minute alone; far more beside another test worker on 2 cores
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
    # The runs are in the instance `make ui` opens: its catalog shows every asset materialized.
    with dg.DagsterInstance.from_config(str(tmp_path / "data" / "dagster")) as instance:
        for asset in ("schema_inventory", "staged_contacts", "sample_diff", "loaded_files", "validation_report"):
            assert instance.get_latest_materialization_event(dg.AssetKey(asset)) is not None, asset


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

    malformed = _run(["inventory"], env | {"FRESHSALES_BASE_URL": "ftp://clinic.example"}, tmp_path)
    assert malformed.stderr.strip().splitlines() == [
        "error: FRESHSALES_BASE_URL: Value error, FRESHSALES_BASE_URL must start with http:// or https://: "
        "check the environment / .env"
    ]


def test_a_column_renamed_after_confirmation_is_named_before_staging(tmp_path: Path) -> None:
    env = _clean_env(tmp_path) | {"CLINIC_SOURCE": str(tmp_path / "export")}
    copy_fixture(tmp_path / "export")
    for args in (["inventory"], ["propose-mapping"], ["confirm-mapping", "--by", "Dr. Reviewer"]):
        assert _run(args, env, tmp_path).returncode == 0, args
    patients = tmp_path / "export" / "patients.csv"
    header, rest = patients.read_text(encoding="utf-8").split("\n", 1)
    patients.write_text(header.replace(",email,", ",e_mail,") + "\n" + rest, encoding="utf-8")

    renamed = _run(["migrate", "--dry-run"], env, tmp_path)
    assert renamed.returncode == 1
    assert renamed.stderr.strip().splitlines() == [
        "error: the export lacks what the confirmed plan reads: patients.email. It changed since the plan was "
        "confirmed: run `clinic-pipeline inventory`, then propose (or edit) and confirm the plan again",
        f"error: nothing after the failed steps ran (run {renamed.stderr.split('(run ')[1].split(')')[0]})",
    ]


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
    # Scripts read the same as JSON.
    reported = json.loads(_run(["report", "--json"], env, tmp_path).stdout)
    contacts = next(o for o in reported["objects"] if o["object"] == "contacts")
    assert reported["ok"] is True and contacts["keys_found_once"] == contacts["keys_checked"] == 25
    state = json.loads(_run(["status", "--json"], env, tmp_path).stdout)
    assert state["plan_status"] == "confirmed" and state["loaded"]["contacts"] == 25 and state["sign_off_current"]
    status = _run(["status"], env, tmp_path)
    assert status.returncode == 0
    assert "plan: confirmed by Dr. Reviewer" in status.stdout
    assert "sample: signed off by Dr. Reviewer at " in status.stdout and "sign off again" not in status.stdout
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


def test_staff_without_users_stop_the_sample_until_a_fallback_owner_is_set(tmp_path: Path, sandbox: Any) -> None:
    shutil.copytree(FIXTURES / "sample_shape", tmp_path / "export")
    # The clinic's providers have no Freshsales user (one has no email at all) and no fallback owner
    # is set: their records would land ownerless, so the owner map stops the run before any record moves.
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

    refused = _run(["migrate", "--sample", "100"], env, tmp_path)
    assert refused.returncode == 1
    errors = refused.stderr.splitlines()
    assert all(line.startswith("error: ") for line in errors), refused.stderr[-2000:]
    assert re.search(r"error: \d+ providers/staff have no active Freshsales user", refused.stderr)
    assert str(settings.paths.owner_map_md) in refused.stderr
    assert httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", timeout=30).json()["contacts"] == []

    env |= {"CLINIC_FALLBACK_OWNER_EMAIL": DEMO_FALLBACK_OWNER}
    assert _run(["migrate", "--sample", "100"], env, tmp_path).returncode == 0
    assert _run(["sign-off", "--by", "Dr. Reviewer"], env, tmp_path).returncode == 0
    full = _run(["migrate", "--full"], env, tmp_path)
    assert full.returncode == 0, full.stderr[-2000:]
    # Two of the four visits link to a patient the export lacks or skipped (soft-deleted): quarantined.
    assert "validated appointments: 2 staged, 2 loaded, 2 in Freshsales" in full.stdout
    report = json.loads(settings.paths.validation_json.read_text())
    assert report["ok"] is True
    _assert_no_patient_values(tmp_path / "export" / "patients.csv", refused.stderr + full.stdout + full.stderr)


def test_a_failing_blocking_check_stops_the_cli_load_of_its_object_and_everything_after_it(
    tmp_path: Path, sandbox: Any
) -> None:
    env = _clean_env(tmp_path) | {
        "CLINIC_SOURCE": str(tmp_path / "export"),
        "FRESHSALES_BASE_URL": sandbox.base_url,
        "FRESHSALES_API_KEY": sandbox.api_key,
        "CLINIC_FALLBACK_OWNER_EMAIL": DEMO_FALLBACK_OWNER,
    }
    for args in (
        ["sample-data", "--out", str(tmp_path / "export"), "--patients", "30", "--seed", "5"],
        ["inventory"],
        ["propose-mapping"],
    ):
        assert _run(args, env, tmp_path).returncode == 0, args
    # A reviewer relates each visit to its clinic's account. The plan check accepts the line, staging
    # stages it, but the loader links appointments to contacts only: the blocking check must stop them.
    plan_path = tmp_path / "data" / "plan" / "mapping_plan.yaml"
    plan = yaml.safe_load(plan_path.read_text(encoding="utf-8"))
    visits = next(o for o in plan["objects"] if o["target"] == "appointment")
    line = next(f for f in visits["fields"] if f["references"] == "locations")
    line |= {"target": "targetable_id", "type": "lookup", "transform": "lookup:sales_account", "via": None}
    plan_path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    assert _run(["confirm-mapping", "--by", "Dr. Reviewer"], env, tmp_path).returncode == 0
    settings = Settings(clinic_data_dir=tmp_path / "data", clinic_source=str(tmp_path / "export"))
    create_custom_fields_as_admin(settings, sandbox.root_url, sandbox.api_key, echo=lambda _: None)

    for command in (["migrate", "--sample", "100"], ["migrate", "--full"]):
        stopped = _run(command, env, tmp_path)
        assert stopped.returncode == 1, command
        assert "error: staged_appointments: quality_blocking: failed: lookup:sales_account" in stopped.stderr
        assert "Traceback" not in stopped.stderr
        assert httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", timeout=30).json()["appointments"] == []
    # The sample never ran, so the full run's loads also refuse: nothing reached Freshsales.
    assert "no signed-off sample diff" in stopped.stderr
    assert httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", timeout=30).json()["contacts"] == []


def test_during_a_load_status_shows_its_progress_and_report_the_last_report_or_who_holds_the_state(
    tmp_path: Path,
) -> None:
    env = _clean_env(tmp_path) | {"FRESHSALES_BASE_URL": "http://127.0.0.1:9/crm/sales", "FRESHSALES_API_KEY": "k"}
    state = tmp_path / "data" / "state" / "migration.duckdb"
    # A load that has committed one batch of two contacts, and holds the store.
    holder = (
        "import sys, time; from pathlib import Path\n"
        "from clinic_pipeline.load.state import AuditEntry, IdMapRow, open_state\n"
        "with open_state(Path(sys.argv[1])) as s:\n"
        "    rows = [IdMapRow(f'patients:{n}', 100 + n, 'h') for n in (1, 2)]\n"
        "    audit = [AuditEntry('create', 'created', r.source_key, r.freshsales_id) for r in rows]\n"
        "    s.record_batch(obj='contacts', run_id='r1', partition=None, mapped=rows, audit=audit)\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    load = subprocess.Popen([sys.executable, "-c", holder, str(state)], stdout=subprocess.PIPE, text=True)
    try:
        assert load.stdout is not None and load.stdout.readline().strip() == "held"
        during = _run(["status"], env, tmp_path)
        assert during.returncode == 0, during.stderr
        assert f"a load is running (process {load.pid}); id map counts as of " in during.stdout
        assert "contacts: staged 0, quarantined 0, in id map 2" in during.stdout
        busy = _run(["report"], env, tmp_path)
        assert busy.returncode == 1
        # No report yet: a notice that it waits, then one error line naming the holder and what to do.
        notice, error = busy.stderr.strip().splitlines()
        assert f"in use by process {load.pid}" in notice and "waiting up to 5 s" in notice
        assert error.startswith("error: ") and f"in use by process {load.pid}" in error
        assert "wait for that run to finish" in error
        # With an earlier report, `report` shows it, said to be the last one, instead of a moving read-back.
        settings = Settings(clinic_data_dir=tmp_path / "data", clinic_source=str(tmp_path / "export"))
        write_report(build_report([], {}), settings.paths.validation_json, settings.paths.validation_html)
        last = _run(["report"], env, tmp_path)
        assert last.returncode == 0, last.stderr
        assert last.stdout.startswith("a load is running: the last validation report follows (written ")
        assert f"report → {settings.paths.validation_html}" in last.stdout
    finally:
        load.kill()
        load.wait()
    after = _run(["status"], env, tmp_path)
    assert after.returncode == 0 and "a load is running" not in after.stdout


# Ctrl-C in a terminal, or `kill` / a process manager, which may repeat it while the session stops.
@pytest.mark.parametrize(
    "stops",
    [[signal.SIGINT], [signal.SIGTERM], [signal.SIGTERM, signal.SIGTERM]],
    ids=["ctrl-c", "sigterm", "sigterm-twice"],
)
def test_ui_starts_without_the_venv_on_path_and_a_stop_signal_stops_every_process(
    tmp_path: Path, stops: list[signal.Signals]
) -> None:
    ui_port, sandbox_port = free_port(), free_port()
    env = _clean_env(tmp_path) | {"PATH": "/usr/bin:/bin"}  # as a fresh shell: no .venv/bin
    ui = subprocess.Popen(
        [sys.executable, "-m", "clinic_pipeline", "ui", "--port", str(ui_port), "--sandbox-port", str(sandbox_port)],
        env=env,
        cwd=Path(__file__).parent.parent,  # the repository: its workspace.yaml and dagster.yaml
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{ui_port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(1)
        else:
            raise AssertionError("the Dagster UI never answered")
        for n, stop in enumerate(stops):
            if n:
                time.sleep(0.5)  # the second arrives while the first is stopping the session
            ui.send_signal(stop)
        output, _ = ui.communicate(timeout=240)  # a webserver and a code server to stop, on a busy machine
    finally:
        if ui.poll() is None:
            ui.kill()
    assert ui.returncode is not None
    assert "No such file or directory" not in output
    for port in (ui_port, sandbox_port):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
    # Nothing of the session outlives it: no webserver or code server still holding a port or a process.
    pattern = f"dagster.*(-p|--port) {ui_port}"
    leftovers = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    assert leftovers.stdout.strip() == ""


def test_transforms_lists_the_registry(tmp_path: Path) -> None:
    listed = _run(["transforms"], _clean_env(tmp_path), tmp_path)
    assert listed.returncode == 0
    names = [line.split()[0].split(":")[0] for line in listed.stdout.splitlines()]
    assert names == list(TRANSFORMS)
