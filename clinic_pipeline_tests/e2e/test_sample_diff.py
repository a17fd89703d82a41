"""The sample diff notices what Freshsales holds differently, keeps values out of its summary, and gates."""

from __future__ import annotations

import csv
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from clinic_pipeline import steps
from clinic_pipeline.assets.resources import ClinicPipelineResource
from clinic_pipeline.mapping.sign_off import SignOffRequiredError
from clinic_pipeline.samples import copy_fixture
from clinic_pipeline.settings import ConfigurationError
from clinic_pipeline.staging.sample import choose_sample
from clinic_pipeline_tests.e2e.flow import confirm_and_sign_off


@pytest.fixture
def resource(tmp_path: Path, sandbox: Any) -> ClinicPipelineResource:
    return ClinicPipelineResource(
        clinic_source=str(copy_fixture(tmp_path / "source")),
        clinic_data_dir=str(tmp_path / "data"),
        freshsales_base_url=sandbox.base_url,
        freshsales_api_key=sandbox.api_key,
    )


def test_a_changed_record_shows_in_the_diff_with_expected_and_actual(
    resource: ClinicPipelineResource, sandbox: Any
) -> None:
    confirm_and_sign_off(resource, sandbox)
    settings = resource.settings()
    contact = next(c for c in httpx.get(f"{sandbox.root_url}/_sandbox/snapshot").json()["contacts"])
    http = httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Token token={sandbox.api_key}"})
    http.put(f"/api/contacts/{contact['id']}", json={"contact": {"last_name": "Tampered"}}).raise_for_status()

    outcome = steps.run_sample(settings, size=100, seed=7, run_id="test-sample")
    diff = outcome.diff
    assert (diff.differs, diff.missing, diff.records_missing) == (1, 0, 0)
    with diff.csv_path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["object"], r["source_key"], r["field"], r["freshsales_value"], r["verdict"]) for r in rows] == [
        ("contacts", contact["external_id"], "last_name", "Tampered", "differs")
    ]
    assert rows[0]["source_value"].strip() == contact["last_name"] and rows[0]["source_column"] == "last_name"
    for path in (diff.csv_path, diff.html_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    summary = outcome.model_dump_json(exclude={"diff": {"html_path", "csv_path"}})
    assert contact["last_name"] not in summary and "Tampered" not in summary
    # The diff changed for the same plan: the earlier sign-off still names the plan, not this diff.
    assert steps.run_sign_off(settings, "second reviewer").diff_hash == diff.diff_hash


def test_sample_size_is_bounded(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="100 to 500"):
        choose_sample(tmp_path, tmp_path / "out", size=50)


def test_a_corrected_plan_needs_a_new_sample_and_sign_off(resource: ClinicPipelineResource, sandbox: Any) -> None:
    confirm_and_sign_off(resource, sandbox)
    settings = resource.settings()
    plan_text = settings.plan_path.read_text(encoding="utf-8")
    settings.plan_path.write_text(plan_text.replace("confidence: 0.99", "confidence: 0.98", 1), encoding="utf-8")
    steps.run_confirm(settings, "test reviewer")
    with pytest.raises(SignOffRequiredError, match="another version of the plan"):
        steps.run_load(settings, "accounts", run_id="test")
    with pytest.raises(ConfigurationError, match="another version of the plan"):
        steps.run_sign_off(settings, "test reviewer")
