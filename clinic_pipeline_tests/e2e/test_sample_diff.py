"""The sample diff notices what Freshsales holds differently, keeps values out of its summary, and gates."""

from __future__ import annotations

import csv
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from clinic_pipeline import runs, steps
from clinic_pipeline.assets.resources import pipeline_resources, resources_settings
from clinic_pipeline.demo import create_custom_fields_as_admin
from clinic_pipeline.errors import OperatorError
from clinic_pipeline.mapping.sign_off import SignOffRequiredError
from clinic_pipeline.reports.source_compare import expected_empty
from clinic_pipeline.samples import FIXTURE_DIR, copy_fixture
from clinic_pipeline.settings import ConfigurationError
from clinic_pipeline.staging.sample import choose_sample
from clinic_pipeline_tests.e2e.flow import Resources, confirm_and_sign_off, generated_clinic, materialize


@pytest.fixture
def resources(tmp_path: Path, sandbox: Any) -> Resources:
    return pipeline_resources(
        clinic_source=str(copy_fixture(tmp_path / "source")),
        clinic_data_dir=str(tmp_path / "data"),
        freshsales_base_url=sandbox.base_url,
        freshsales_api_key=sandbox.api_key,
    )


def test_a_changed_record_shows_in_the_diff_with_expected_and_actual(resources: Resources, sandbox: Any) -> None:
    confirm_and_sign_off(resources, sandbox)
    settings = resources_settings(resources)
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
    with pytest.raises(OperatorError, match="100 to 500"):
        choose_sample(tmp_path, tmp_path / "out", size=50)


def test_a_corrected_plan_needs_a_new_sample_and_sign_off(resources: Resources, sandbox: Any) -> None:
    confirm_and_sign_off(resources, sandbox)
    settings = resources_settings(resources)
    plan_text = settings.paths.plan_path.read_text(encoding="utf-8")
    settings.paths.plan_path.write_text(plan_text.replace("confidence: 0.99", "confidence: 0.98", 1), encoding="utf-8")
    steps.run_confirm(settings, "test reviewer")
    with pytest.raises(SignOffRequiredError, match="another version of the plan"):
        steps.run_load(settings, "accounts", run_id="test")
    with pytest.raises(ConfigurationError, match="another version of the plan"):
        steps.run_sign_off(settings, "test reviewer")


def test_what_the_sandbox_silently_alters_is_named_field_by_field(resources: Resources, sandbox: Any) -> None:
    rules = [
        {"kind": "contact", "field": "last_name", "action": "truncate", "length": 3},
        {"kind": "contact", "field": "cf_date_of_birth", "action": "drop"},
        {"kind": "contact", "field": "cf_source_updated_at", "action": "shift_hours", "hours": 1},
    ]
    httpx.post(f"{sandbox.root_url}/_sandbox/alterations", json={"rules": rules}, timeout=10).raise_for_status()
    settings = resources_settings(resources)
    try:
        confirm_and_sign_off(resources, sandbox)
    finally:
        httpx.post(f"{sandbox.root_url}/_sandbox/alterations", json={"rules": []}, timeout=10).raise_for_status()
    diff = steps.run_sample(settings, size=100, seed=7, run_id="test-sample").diff
    by_field = {t.field: t for t in diff.fields if t.object == "contacts"}
    with (FIXTURE_DIR / "patients.csv").open(encoding="utf-8-sig", newline="") as fh:
        patients = list(csv.DictReader(fh))
    longer = sum(len(row["last_name"].strip()) > 3 for row in patients)
    dated = sum(not expected_empty("date", row["dob"], "%Y-%m-%d", "UTC") for row in patients)
    assert by_field["last_name"].differs == longer > 0  # names of 3 letters or fewer survive truncation
    assert by_field["cf_date_of_birth"].missing == dated > 0
    assert by_field["cf_source_updated_at"].differs == by_field["cf_source_updated_at"].compared > 0
    untouched = [t for t in diff.fields if t.field not in ("last_name", "cf_date_of_birth", "cf_source_updated_at")]
    assert untouched and all(t.differs == t.missing == 0 for t in untouched)


def test_a_plan_that_loses_information_is_caught(resources: Resources, sandbox: Any) -> None:
    settings = resources_settings(resources)
    assert materialize(resources, ["schema_inventory", "mapping_plan"]).success
    # A reviewer "fixes" the birth date format to day-first: every date is read wrong or dropped.
    plan_text = settings.paths.plan_path.read_text(encoding="utf-8")
    assert "parse_date:%Y-%m-%d" in plan_text
    settings.paths.plan_path.write_text(
        plan_text.replace("parse_date:%Y-%m-%d", "parse_date:%Y-%d-%m"), encoding="utf-8"
    )
    steps.run_confirm(settings, "hasty reviewer")
    create_custom_fields_as_admin(settings, sandbox.root_url, sandbox.api_key, echo=lambda _: None)
    result = materialize(resources, runs.SAMPLE)
    assert result.success
    diff = steps.run_sample(settings, size=100, seed=7, run_id="test-sample").diff
    dob = next(t for t in diff.fields if t.field == "cf_date_of_birth")
    with (FIXTURE_DIR / "patients.csv").open(encoding="utf-8-sig", newline="") as fh:
        dates = [
            r["dob"].strip() for r in csv.DictReader(fh) if not expected_empty("date", r["dob"], "%Y-%m-%d", "UTC")
        ]
    misread = sum(d[5:7] != d[8:10] for d in dates)  # only a day equal to its month survives the swap
    assert dob.differs + dob.missing == misread > 0


def test_rounded_amounts_and_relinked_activities_are_named(tmp_path: Path, sandbox: Any) -> None:
    resources, _source = generated_clinic(tmp_path, sandbox)
    rules = [
        {"kind": "deal", "field": "amount", "action": "round"},
        {"kind": "task", "field": "targetable_id", "action": "relink"},
    ]
    httpx.post(f"{sandbox.root_url}/_sandbox/alterations", json={"rules": rules}, timeout=10).raise_for_status()
    try:
        diff = confirm_and_sign_off(resources, sandbox).asset_materializations_for_node("sample_diff")[0].metadata
    finally:
        httpx.post(f"{sandbox.root_url}/_sandbox/alterations", json={"rules": []}, timeout=10).raise_for_status()
    assert diff["differs"].value > 0
    with (tmp_path / "data" / "reports" / "sample_diff.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    named = {(r["object"], r["field"]) for r in rows}
    assert named == {("deals", "amount"), ("tasks", "targetable_id")}
    # Only amounts with cents are changed by rounding; every relinked task points at another patient.
    assert all(r["source_value"].split(".")[-1] != "00" for r in rows if r["field"] == "amount")


def test_visits_the_plan_leaves_unlinked_are_a_difference(tmp_path: Path, sandbox: Any) -> None:
    resources, _source = generated_clinic(tmp_path, sandbox)
    settings = resources_settings(resources)
    assert materialize(resources, runs.PLAN).success
    # A reviewer drops the visits' patient link (as a plan keyed on the wrong column would leave them).
    plan = yaml.safe_load(settings.paths.plan_path.read_text(encoding="utf-8"))
    visits = next(o for o in plan["objects"] if o["target"] == "appointment")
    for line in visits["fields"]:
        if line["transform"] == "lookup:contact":
            line |= {"target": None, "type": "text", "transform": None, "reason": "not a link"}
    settings.paths.plan_path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    steps.run_confirm(settings, "hasty reviewer")
    create_custom_fields_as_admin(settings, sandbox.root_url, sandbox.api_key, echo=lambda _: None)
    assert materialize(resources, runs.SAMPLE).success

    outcome = steps.read_sample_outcome(settings)
    links = next(t for t in outcome.diff.fields if (t.object, t.field) == ("appointments", "targetable_id"))
    assert links.missing == links.compared > 0 and links.matched == 0
    assert not outcome.diff.ok
