"""The spine end to end: the fixture clinic through every asset into a real sandbox, read back over HTTP."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import httpx
import pytest

from clinic_pipeline import steps
from clinic_pipeline.assets.resources import pipeline_resources, resources_settings
from clinic_pipeline.samples import FIXTURE_DIR, copy_fixture
from clinic_pipeline_tests.e2e.flow import PRE_CONFIRMATION, Resources, confirm_and_sign_off, full_load, materialize


def _snapshot(sandbox: Any) -> dict[str, Any]:
    response = httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", timeout=30)
    response.raise_for_status()
    return response.json()


def _fixture_patients() -> dict[str, dict[str, str]]:
    with (FIXTURE_DIR / "patients.csv").open(encoding="utf-8-sig", newline="") as fh:
        return {row["patient_id"].strip(): row for row in csv.DictReader(fh)}


@pytest.fixture
def resources(tmp_path: Path, sandbox: Any) -> Resources:
    source = copy_fixture(tmp_path / "source" / "clinic")
    return pipeline_resources(
        clinic_source=str(source),
        clinic_data_dir=str(tmp_path / "data"),
        freshsales_base_url=sandbox.base_url,
        freshsales_api_key=sandbox.api_key,
    )


def test_nothing_loads_before_the_plan_is_confirmed(resources: Resources, sandbox: Any) -> None:
    assert materialize(resources, PRE_CONFIRMATION).success
    blocked = materialize(resources, ["confirmed_mapping", "staged_contacts"])
    assert not blocked.success
    failure = blocked.get_step_failure_events()[0]
    assert "not confirmed" in str(failure.event_specific_data.error.message)
    assert _snapshot(sandbox)["contacts"] == []


def test_every_fixture_patient_lands_once_linked_to_its_account(resources: Resources, sandbox: Any) -> None:
    sample = confirm_and_sign_off(resources, sandbox).asset_materializations_for_node("sample_diff")[0].metadata
    assert sample["differs"].value == sample["missing"].value == sample["records_missing"].value == 0
    first = full_load(resources)
    assert first.success, [e.step_key for e in first.get_step_failure_events()]

    snapshot = _snapshot(sandbox)
    patients = _fixture_patients()
    accounts = {a["id"]: a for a in snapshot["sales_accounts"]}
    contacts_by_key: dict[str, list[dict[str, Any]]] = {}
    for contact in snapshot["contacts"]:
        # Source keys are namespaced by table: patients and referrers can share a number.
        contacts_by_key.setdefault(contact["external_id"].removeprefix("patients:"), []).append(contact)
    assert set(contacts_by_key) == set(patients)
    for key, found in contacts_by_key.items():
        assert len(found) == 1, f"patient {key} loaded {len(found)} times"
        linked = [accounts[a["id"]]["name"] for a in found[0]["sales_accounts"]]
        assert linked == [patients[key]["clinic_location"].strip()]
    assert len(accounts) == len({p["clinic_location"].strip().lower() for p in patients.values()})

    report = first.asset_materializations_for_node("validation_report")[0].metadata
    assert report["ok"].value is True

    second = materialize(resources)  # everything again, sample included: nothing changes
    assert second.success
    assert _snapshot(sandbox) == snapshot
    loaded = second.asset_materializations_for_node("loaded_contacts")[0].metadata
    assert loaded["unchanged"].value == len(patients)
    assert loaded["created"].value == loaded["updated"].value == 0


def test_the_full_load_waits_for_a_signed_off_sample(resources: Resources, sandbox: Any) -> None:
    assert materialize(resources, PRE_CONFIRMATION).success
    steps.run_confirm(resources_settings(resources), "test reviewer")
    blocked = full_load(resources)
    assert not blocked.success
    messages = " ".join(str(e.event_specific_data.error.message) for e in blocked.get_step_failure_events())
    assert "no signed-off sample diff" in messages
    assert _snapshot(sandbox)["contacts"] == []
