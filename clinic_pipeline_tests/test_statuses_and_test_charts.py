"""A patient's status → contact status (and lifecycle stage), a claim's status → deal stage, decided per value in
the plan; test and demo charts skipped with their reason; a value left undecided refused at confirmation."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from clinic_pipeline.mapping.plan import MappingPlan
from clinic_pipeline.mapping.plan_check import PlanInvalidError, confirm_checked
from clinic_pipeline.mapping.proposer import propose_plan
from clinic_pipeline.model.objects import CONTACTS, DEALS
from clinic_pipeline.source.inventory import SchemaInventory, build_inventory
from clinic_pipeline.source.reader import open_source
from clinic_pipeline.staging.stage import stage_object

PATIENT_STATUSES = ["Active", "active", "Inactive", "Prospective", "Deceased", "Archived"]
CLAIM_STATUSES = ["Submitted", "Paid", "Partially paid", "Denied", "Appealed", "Written off", "Billed"]


def _csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _export(folder: Path) -> None:
    """A practice system's patients (status, an `is_test` flag, charts named like tests) and its claims (a claim
    status beside a denial status, both pick-lists)."""
    patients = []
    for n in range(1, 61):
        first, last, flag = f"Given{n}", f"Family{n}", "0"
        if n == 7:
            first, last = "Test", "ZZZTEST"
        elif n == 8:
            first, last = "Demo", "Patient"
        elif n == 9:
            flag = "1"
        patients.append([n, first, last, f"p{n}@example.org", PATIENT_STATUSES[n % len(PATIENT_STATUSES)], flag])
    _csv(folder / "patients.csv", ["patient_id", "first_name", "last_name", "email", "status", "is_test"], patients)
    claims = [
        [
            500 + n,
            1 + n % 60,
            f"CLM-{n:04d}",
            f"{100 + n}.00",
            CLAIM_STATUSES[n % len(CLAIM_STATUSES)],
            ["none", "denied", "partial"][n % 3],
        ]
        for n in range(1, 91)
    ]
    _csv(
        folder / "claims.csv",
        ["claim_id", "patient_id", "claim_number", "amount_billed", "claim_status", "denial_status"],
        claims,
    )


def _inventory(folder: Path, con: duckdb.DuckDBPyConnection) -> SchemaInventory:
    return build_inventory(open_source(str(folder), con), con)


def _values(inventory: SchemaInventory) -> dict[tuple[str, str], list[str]]:
    return {(t.name, c.name): c.categories for t in inventory.tables for c in t.columns if c.categories}


def test_statuses_become_choices_per_value_and_test_charts_are_skipped_with_their_reason(tmp_path: Path) -> None:
    _export(tmp_path / "export")
    con = duckdb.connect()
    export = open_source(str(tmp_path / "export"), con)
    inventory = build_inventory(export, con)
    plan = propose_plan(inventory, 0.75)
    patients = next(o for o in plan.objects if o.source_table == "patients")
    status = next(f for f in patients.fields if f.source == "status")
    assert (status.target, status.transform) == ("contact_status_id", "choice:contact_statuses")
    assert status.value_map == {
        "Active": "Active patient",
        "active": "Active patient",
        "Inactive": "Inactive patient",
        "Prospective": "New",
        "Deceased": "Inactive patient",
        "Archived": "Inactive patient",
    }
    assert status.needs_review and "Active patient (Customer)" in status.reason
    claims = next(o for o in plan.objects if o.source_table == "claims")
    stage = next(f for f in claims.fields if f.target == "deal_stage_id")
    # The claim status names seven stages, the denial status three: the claim status is the deal's stage.
    assert stage.source == "claim_status" and stage.value_map == {v: v for v in CLAIM_STATUSES}
    reasons = {r.reason for r in patients.skip_rules}
    assert "a test chart (is_test set), not a patient" in reasons
    assert any("a test or demo chart (last_name" in r for r in reasons)

    confirmed = confirm_checked(plan, "tester", [t.name for t in inventory.tables], values=_values(inventory))
    contacts = stage_object(
        CONTACTS, confirmed, export, con, staged_dir=tmp_path / "staged", quarantine_dir=tmp_path / "quarantine"
    )
    staged = pq.read_table(contacts.parquet_path).to_pylist()
    keys = {r["_source_key"] for r in staged}
    assert not keys & {"patients:7", "patients:8", "patients:9"}
    assert len(staged) == 57 and contacts.skipped_rows == 3
    assert contacts.skip_reasons["a test chart (is_test set), not a patient"] == 1
    by_key = {r["_source_key"]: r["_choice_contact_status_id"] for r in staged}
    assert by_key["patients:1"] == "Active patient" and by_key["patients:4"] == "Inactive patient"
    deals = stage_object(
        DEALS, confirmed, export, con, staged_dir=tmp_path / "staged", quarantine_dir=tmp_path / "quarantine"
    )
    stages = {r["_source_key"]: r["_choice_deal_stage_id"] for r in pq.read_table(deals.parquet_path).to_pylist()}
    assert stages["claims:501"] == "Paid" and stages["claims:505"] == "Written off"
    con.close()


def test_a_status_value_the_value_map_leaves_undecided_is_refused_at_confirmation(tmp_path: Path) -> None:
    _export(tmp_path / "export")
    con = duckdb.connect()
    inventory = _inventory(tmp_path / "export", con)
    con.close()
    plan = propose_plan(inventory, 0.75)
    patients = next(o for o in plan.objects if o.source_table == "patients")
    status = next(f for f in patients.fields if f.source == "status")
    del status.value_map["Deceased"]
    with pytest.raises(PlanInvalidError, match=r"patients.status → contact_status_id: the value_map decides nothing"):
        confirm_checked(plan, "tester", [t.name for t in inventory.tables], values=_values(inventory))
    status.value_map["Deceased"] = None  # deciding "no status" is a decision
    assert isinstance(
        confirm_checked(plan, "tester", [t.name for t in inventory.tables], values=_values(inventory)), MappingPlan
    )


def test_charts_the_source_marked_merged_are_skipped_with_their_reason(tmp_path: Path) -> None:
    export = tmp_path / "export"
    rows = [
        [n, f"Given{n}", f"Family{n}", str(n - 20) if n > 50 else "", "Y" if n % 17 == 0 else "N"] for n in range(1, 61)
    ]
    _csv(export / "patients.csv", ["patient_id", "first_name", "last_name", "merged_into", "is_duplicate"], rows)
    con = duckdb.connect()
    source = open_source(str(export), con)
    inventory = build_inventory(source, con)
    plan = confirm_checked(propose_plan(inventory, 0.75), "tester", [t.name for t in inventory.tables])
    patients = next(o for o in plan.objects if o.source_table == "patients")
    assert {f.source: f.target for f in patients.fields}["merged_into"] is None
    result = stage_object(
        CONTACTS, plan, source, con, staged_dir=tmp_path / "staged", quarantine_dir=tmp_path / "quarantine"
    )
    con.close()
    merged = "merged into another chart in the source (merged_into): the surviving chart is migrated"
    flagged = "merged into another chart in the source (is_duplicate): the surviving chart is migrated"
    # 10 rows name a survivor; 17 and 34 are flagged (51 is both: the first rule names it).
    assert result.skip_reasons == {merged: 10, flagged: 2}
    assert result.staged_rows == 48
