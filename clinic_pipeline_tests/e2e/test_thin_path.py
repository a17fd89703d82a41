"""The spine end to end: the fixture clinic through every asset into a real sandbox, read back over HTTP."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from clinic_pipeline import steps
from clinic_pipeline.assets.resources import ClinicPipelineResource
from clinic_pipeline.definitions import ALL_ASSETS, ALL_CHECKS
from clinic_pipeline.demo import create_custom_fields_as_admin
from clinic_pipeline.samples import FIXTURE_DIR, copy_fixture

PRE_CONFIRMATION = ["schema_inventory", "mapping_plan"]


def _materialize(resource: ClinicPipelineResource, selection: list[str] | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS], selection=selection, resources={"pipeline": resource}, raise_on_error=False
    )


def _snapshot(sandbox: Any) -> dict[str, Any]:
    response = httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", timeout=30)
    response.raise_for_status()
    return response.json()


def _fixture_patients() -> dict[str, dict[str, str]]:
    with (FIXTURE_DIR / "patients.csv").open(encoding="utf-8-sig", newline="") as fh:
        return {row["patient_id"].strip(): row for row in csv.DictReader(fh)}


@pytest.fixture
def resource(tmp_path: Path, sandbox: Any) -> ClinicPipelineResource:
    source = copy_fixture(tmp_path / "source" / "clinic")
    return ClinicPipelineResource(
        clinic_source=str(source),
        clinic_data_dir=str(tmp_path / "data"),
        freshsales_base_url=sandbox.base_url,
        freshsales_api_key=sandbox.api_key,
    )


def test_nothing_loads_before_the_plan_is_confirmed(resource: ClinicPipelineResource, sandbox: Any) -> None:
    assert _materialize(resource, PRE_CONFIRMATION).success
    blocked = _materialize(resource, ["confirmed_mapping", "staged_contacts"])
    assert not blocked.success
    failure = blocked.get_step_failure_events()[0]
    assert "not confirmed" in str(failure.event_specific_data.error.message)
    assert _snapshot(sandbox)["contacts"] == []


def test_every_fixture_patient_lands_once_linked_to_its_account(resource: ClinicPipelineResource, sandbox: Any) -> None:
    settings = resource.settings()
    assert _materialize(resource, PRE_CONFIRMATION).success
    steps.run_confirm(settings, "test reviewer")
    create_custom_fields_as_admin(settings, sandbox.root_url, sandbox.api_key, echo=lambda _: None)

    first = _materialize(resource)
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

    second = _materialize(resource)
    assert second.success
    assert _snapshot(sandbox) == snapshot
    loaded = second.asset_materializations_for_node("loaded_contacts")[0].metadata
    assert loaded["unchanged"].value == len(patients)
    assert loaded["created"].value == loaded["updated"].value == 0
