"""Exports shaped unlike our generator go the whole way: inventory → plan → confirmed → sample diff →
signed off → loaded → validated, through Dagster, into the sandbox over HTTP."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from clinic_pipeline.assets.resources import pipeline_resources, resources_settings
from clinic_pipeline.demo import DEMO_FALLBACK_OWNER
from clinic_pipeline.reports.validation import ValidationReport
from clinic_pipeline.steps import SampleOutcome
from clinic_pipeline_tests.e2e.flow import confirm_and_sign_off, full_load

FIXTURES = Path(__file__).parent.parent / "fixtures"


def _source(shape: str, tmp_path: Path) -> str:
    if shape == "interchange_export":
        return str(FIXTURES / shape)
    db = tmp_path / "vendor.db"
    with sqlite3.connect(db) as con:
        con.executescript((FIXTURES / "vendor_database.sql").read_text())
    return f"sqlite:///{db}"


@pytest.mark.parametrize(("shape", "visits"), [("interchange_export", 20), ("vendor_database", 4)])
def test_a_foreign_export_migrates_end_to_end(shape: str, visits: int, tmp_path: Path, sandbox: Any) -> None:
    resources = pipeline_resources(
        clinic_source=_source(shape, tmp_path),
        clinic_data_dir=str(tmp_path / "data"),
        freshsales_base_url=sandbox.base_url,
        freshsales_api_key=sandbox.api_key,
        # These exports name no staff emails: every visit's owner is the fallback.
        clinic_fallback_owner_email=DEMO_FALLBACK_OWNER,
    )
    confirm_and_sign_off(resources, sandbox)
    reports = resources_settings(resources).paths.reports_dir
    diff = SampleOutcome.model_validate_json((reports / "sample_diff.json").read_text()).diff
    assert diff.records > 0 and diff.matched == diff.fields_compared, (diff.differs, diff.missing)
    result = full_load(resources)
    assert result.success, [e.step_key for e in result.get_step_failure_events()]

    snapshot = httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", timeout=30).json()
    appointments = snapshot["appointments"]
    assert len(appointments) == visits
    assert all(a["title"] and a["from_date"] < a["end_date"] for a in appointments)
    contact_ids = {c["id"] for c in snapshot["contacts"]}
    assert all(a["targetable_id"] in contact_ids for a in appointments)
    report = ValidationReport.model_validate_json(
        (tmp_path / "data" / "reports" / "validation_report.json").read_text()
    )
    assert report.ok, report.discrepancies
