"""The rest of the object graph through Dagster into the sandbox, on the generated clinic: communications as
sales activities of their type (letters as notes), patient statuses with their lifecycle stage, bills in their
pipeline's stage with their dates, referrers tagged with their territory, full names split, and the rows that
are no records (test charts, merged charts) skipped; the sample diff compares every new field."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from clinic_pipeline.assets.resources import resources_settings
from clinic_pipeline.demo import write_territory_rule
from clinic_pipeline_tests.e2e.flow import confirm_and_sign_off, full_load, generated_clinic


def _get(sandbox: Any, path: str) -> Any:
    headers = {"Authorization": f"Token token={sandbox.api_key}"}
    return httpx.get(f"{sandbox.base_url}/api{path}", headers=headers, timeout=30).json()


def _names(sandbox: Any, selector: str) -> dict[int, str]:
    return {int(r["id"]): r["name"] for r in _get(sandbox, f"/selector/{selector}")[selector]}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow  # a scenario of minutes: CI runs it in `make test-slow`
def test_communications_statuses_stages_referrers_and_rows_that_are_no_records(tmp_path: Path, sandbox: Any) -> None:
    # Enough patients for a test chart and a chart the clinic already merged.
    resources, source = generated_clinic(tmp_path, sandbox, patients=80)
    settings = resources_settings(resources)
    confirm_and_sign_off(resources, sandbox, before_confirming=lambda: write_territory_rule(settings, lambda _: None))
    diff = json.loads(settings.paths.sample_diff_json.read_text())["diff"]
    compared = {(f["object"], f["field"]) for f in diff["fields"] if f["matched"] and not f["differs"]}
    assert full_load(resources).success
    snapshot = httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", timeout=30).json()

    # Communications: calls, emails and SMS as activities of their type; letters and portal messages as notes.
    types, outcomes = _names(sandbox, "sales_activity_types"), _names(sandbox, "sales_activity_outcomes")
    activities = snapshot["sales_activities"]
    assert {types[a["sales_activity_type_id"]] for a in activities} == {"Call", "Email", "SMS"}
    assert {outcomes[a["sales_activity_outcome_id"]] for a in activities if a.get("sales_activity_outcome_id")} >= {
        "Left voicemail",
        "No response",
    }
    assert all(a["targetable_type"] == "Contact" and a["start_date"] <= a["end_date"] for a in activities)
    logged = _rows(source / "communications.csv")
    letters = [r for r in logged if r["channel"] in ("Letter", "Portal message")]
    assert letters and sum(any(r["subject"] in n["description"] for r in letters) for n in snapshot["notes"]) > 0

    # Patients: a status and its lifecycle stage; test and merged charts are not migrated.
    statuses, stages = _names(sandbox, "contact_statuses"), _names(sandbox, "lifecycle_stages")
    patients = [c for c in snapshot["contacts"] if str(c.get("external_id", "")).startswith("patients:")]
    pairs = {(statuses[c["contact_status_id"]], stages[c["lifecycle_stage_id"]]) for c in patients}
    assert pairs <= {("New", "Lead"), ("Active patient", "Customer"), ("Inactive patient", "Customer")}
    assert ("Active patient", "Customer") in pairs
    source_patients = _rows(source / "patients.csv")
    skipped = {
        f"patients:{r['patient_id']}" for r in source_patients if r["merged_into"] or r["last_name"] == "ZZZTEST"
    }
    assert skipped and not skipped & {c["external_id"] for c in patients}

    # Bills: in their pipeline's stage (paid: won), closed on their payment date.
    deal_stages = {int(s["id"]): s for s in _get(sandbox, "/selector/deal_stages")["deal_stages"]}
    deals = snapshot["deals"]
    paid = [d for d in deals if deal_stages[d["deal_stage_id"]]["name"] == "Paid"]
    assert paid and all(deal_stages[d["deal_stage_id"]]["forecast_type"] == "won" and d["closed_date"] for d in paid)
    assert all(d["deal_pipeline_id"] == deal_stages[d["deal_stage_id"]]["deal_pipeline_id"] for d in deals)

    # Referrers: tagged, their names split, a territory on them and on their practice account.
    referrers = [c for c in snapshot["contacts"] if str(c.get("external_id", "")).startswith("referring_physicians:")]
    assert referrers and all(c["tags"] == ["Referrer"] and c["first_name"] and c["last_name"] for c in referrers)
    assert all(c["territory_id"] for c in referrers)
    practice_ids = {a["id"] for c in referrers for a in c["sales_accounts"]}
    assert all(a["territory_id"] for a in snapshot["sales_accounts"] if a["id"] in practice_ids)

    # The sample diff compared the new fields.
    assert {
        ("activities", "sales_activity_type_id"),
        ("activities", "start_date"),
        ("contacts", "contact_status_id"),
        ("deals", "deal_stage_id"),
    } <= compared
