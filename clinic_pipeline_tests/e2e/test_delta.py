"""Cutover delta: after a full migration, source changes in hourly windows follow through partitions.

The sensor (evaluated with Dagster's sensor test utilities) must request exactly the windows that hold
changes; materializing them updates the sandbox; re-materializing changes nothing; a partition that
failed under sandbox faults succeeds when re-run.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from clinic_pipeline import steps
from clinic_pipeline.assets.resources import pipeline_resources, resources_settings
from clinic_pipeline.definitions import build_definitions
from clinic_pipeline.samples import copy_fixture
from clinic_pipeline_tests.e2e.flow import Resources, confirm_and_sign_off, full_load, generated_clinic

CUTOVER = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
# Chicago is UTC-6 in November: 08:30 local is 14:30 UTC, 09:10 local is 15:10 UTC.
CHANGED_AT, ADDED_AT = "2026-11-24 08:30:00", "2026-11-24 09:10:00"
CHANGED_WINDOW, ADDED_WINDOW = "2026-11-24-14:00", "2026-11-24-15:00"


def _snapshot(sandbox: Any) -> dict[str, Any]:
    response = httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", timeout=30)
    response.raise_for_status()
    return response.json()


def _contacts_by_key(sandbox: Any) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for contact in _snapshot(sandbox)["contacts"]:
        found.setdefault(contact["external_id"], []).append(contact)
    return found


def _edit_source(path: Path) -> None:
    """P-1001 changes last name in one window; a new patient arrives in the next."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0])
    rows[0].update(last_name="García-López", updated_at=CHANGED_AT)
    new = dict(rows[1])
    new.update(
        patient_id="P-2001",
        first_name="Nina",
        last_name="Okafor",
        email="nina.okafor@example.com",
        created_at=ADDED_AT,
        updated_at=ADDED_AT,
    )
    rows.append(new)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def migrated(tmp_path: Path, sandbox: Any) -> tuple[Resources, dg.Definitions, Path]:
    source = copy_fixture(tmp_path / "source" / "clinic")
    resources = pipeline_resources(
        clinic_source=str(source),
        clinic_data_dir=str(tmp_path / "data"),
        freshsales_base_url=sandbox.base_url,
        freshsales_api_key=sandbox.api_key,
    )
    defs = build_definitions(resources, cutover_start=CUTOVER)
    confirm_and_sign_off(resources, sandbox)
    result = full_load(resources)
    assert result.success, [e.step_key for e in result.get_step_failure_events()]
    return resources, defs, source / "patients.csv"


def _materialize(defs: dg.Definitions, selection: list[str], partition: str | None = None) -> dg.ExecuteInProcessResult:
    graph_assets = list(defs.assets or [])
    return dg.materialize(
        [*graph_assets, *(defs.asset_checks or [])],
        selection=selection,
        partition_key=partition,
        resources=dict(defs.resources or {}),
        raise_on_error=False,
    )


def _delta_selection(defs: dg.Definitions) -> list[str]:
    return [k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys() if "delta_" in str(k)]


def _evaluate_sensor(defs: dg.Definitions, cursor: str | None) -> dg.SensorResult:
    sensor = defs.resolve_sensor_def("delta_window_sensor")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            cursor=cursor, instance=instance, definitions=defs, resources=dict(defs.resources or {})
        )
        result = sensor.evaluate_tick(context)
    return result


def test_sensor_requests_exactly_the_changed_windows_and_partitions_apply_them(
    migrated: tuple[Resources, dg.Definitions, Path], sandbox: Any
) -> None:
    resources, defs, patients_csv = migrated
    before = _contacts_by_key(sandbox)
    assert _evaluate_sensor(defs, None).run_requests == []  # nothing changed since the cutover

    _edit_source(patients_csv)
    tick = _evaluate_sensor(defs, None)
    assert [(r.partition_key, r.run_key) for r in tick.run_requests] == [
        (CHANGED_WINDOW, f"delta:{CHANGED_WINDOW}"),
        (ADDED_WINDOW, f"delta:{ADDED_WINDOW}"),
    ]
    again = _evaluate_sensor(defs, tick.cursor)  # the cursor moved past both windows
    assert again.run_requests == [] and again.skip_message

    for window in (CHANGED_WINDOW, ADDED_WINDOW):
        run = _materialize(defs, _delta_selection(defs), partition=window)
        assert run.success, [e.step_key for e in run.get_step_failure_events()]
        # The chain ends in the window's own read-back: its contact found once, no discrepancy.
        verdict = run.asset_materializations_for_node("delta_validation_report")[0].metadata
        assert verdict["ok"].value is True and verdict["contacts_found_once"].value == 1
        assert Path(str(verdict["json"].value)).parent.name == window
    # `status` says which windows have been loaded.
    assert steps.run_status(resources_settings(resources)).delta_windows == [CHANGED_WINDOW, ADDED_WINDOW]
    after = _contacts_by_key(sandbox)
    assert set(after) == set(before) | {"patients:P-2001"}
    assert all(len(found) == 1 for found in after.values())
    assert after["patients:P-1001"][0]["id"] == before["patients:P-1001"][0]["id"]  # updated, not re-created
    assert after["patients:P-1001"][0]["last_name"] == "García-López"
    # The newcomer copied P-1002's phone: P-1002, loaded by the full run, keeps the mobile number.
    newcomer, holder = after["patients:P-2001"][0], after["patients:P-1002"][0]
    assert holder["mobile_number"] and not newcomer.get("mobile_number")
    assert newcomer["custom_field"]["cf_shared_mobile"] == holder["mobile_number"]
    assert newcomer["custom_field"]["cf_mobile_shared_with"] == "patients:P-1002"

    state = _snapshot(sandbox)
    rerun = _materialize(defs, _delta_selection(defs), partition=CHANGED_WINDOW)
    assert rerun.success
    assert _snapshot(sandbox) == state
    loaded = rerun.asset_materializations_for_node("delta_loaded_contacts")[0].metadata
    assert loaded["unchanged"].value == 1 and loaded["created"].value == loaded["updated"].value == 0


def test_a_partition_that_failed_under_faults_succeeds_when_re_run(
    migrated: tuple[Resources, dg.Definitions, Path], sandbox: Any
) -> None:
    _resources, defs, patients_csv = migrated
    _edit_source(patients_csv)
    httpx.post(f"{sandbox.root_url}/_sandbox/faults", json={"rate_5xx": 1.0, "seed": 3}, timeout=10).raise_for_status()
    failed = _materialize(defs, _delta_selection(defs), partition=ADDED_WINDOW)
    httpx.post(f"{sandbox.root_url}/_sandbox/faults", json={}, timeout=10).raise_for_status()
    assert not failed.success
    rerun = _materialize(defs, _delta_selection(defs), partition=ADDED_WINDOW)
    assert rerun.success, [e.step_key for e in rerun.get_step_failure_events()]
    contacts = _contacts_by_key(sandbox)
    assert len(contacts["patients:P-2001"]) == 1


def _rewrite(path: Path, change: Callable[[list[dict[str, str]]], None]) -> None:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0])
    change(rows)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.slow  # a scenario of minutes: CI runs it in `make test-slow`
def test_generated_clinic_changes_additions_and_soft_deletes_follow_their_windows(tmp_path: Path, sandbox: Any) -> None:
    resources, source = generated_clinic(tmp_path, sandbox)
    defs = build_definitions(resources, cutover_start=CUTOVER)
    confirm_and_sign_off(resources, sandbox)
    assert full_load(resources).success
    before = _snapshot(sandbox)
    live = [r for r in csv.DictReader((source / "patients.csv").open(encoding="utf-8")) if r["deleted"] == "0"]
    changed, deleted = live[0]["patient_id"], live[1]["patient_id"]

    def patients(rows: list[dict[str, str]]) -> None:
        for row in rows:
            if row["patient_id"] == changed:
                row.update(last_name="Delta-Changed", updated_at=CHANGED_AT)
            if row["patient_id"] == deleted:
                row.update(deleted="1", updated_at=CHANGED_AT)

    def appointments(rows: list[dict[str, str]]) -> None:
        new = dict(rows[0])
        new.update(
            appointment_id="990001", patient_id=changed, duration_minutes="45", deleted="0",
            created_at=ADDED_AT, updated_at=ADDED_AT,
        )  # fmt: skip
        rows.append(new)

    _rewrite(source / "patients.csv", patients)
    _rewrite(source / "appointments.csv", appointments)
    tick = _evaluate_sensor(defs, None)
    assert [r.partition_key for r in tick.run_requests] == [CHANGED_WINDOW, ADDED_WINDOW]

    first = _materialize(defs, _delta_selection(defs), partition=CHANGED_WINDOW)
    assert first.success, [e.step_key for e in first.get_step_failure_events()]
    staged = first.asset_materializations_for_node("delta_staged_contacts")[0].metadata
    assert staged["skip_reasons"].value == {"soft-deleted in the source": 1}
    assert _materialize(defs, _delta_selection(defs), partition=ADDED_WINDOW).success

    after = _snapshot(sandbox)
    contacts = {c["external_id"]: c for c in after["contacts"]}
    assert contacts[f"patients:{changed}"]["last_name"] == "Delta-Changed"
    # Deletions are reported, never applied: the soft-deleted patient stays in Freshsales.
    assert f"patients:{deleted}" in contacts and len(after["contacts"]) == len(before["contacts"])
    assert len(after["appointments"]) == len(before["appointments"]) + 1
