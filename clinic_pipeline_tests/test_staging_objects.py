"""Every Freshsales object staged from a sample-clinic-shaped export through its proposed, confirmed plan.

The export (fixtures/sample_shape) is small and hand-written so each row stands for one case: the
DST gap, cents, a shared family email, a patient registered twice, a soft-deleted patient, two clinics
with one name, a check-in shorter than 15 minutes, a free-text lab report, a document on disk.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow.parquet as pq
import pytest

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.mapping.plan import FieldMapping, MappingPlan, ObjectMapping, confirm_plan
from clinic_pipeline.mapping.proposer import propose_plan
from clinic_pipeline.model.objects import BY_NAME, STAGED_OBJECTS
from clinic_pipeline.source.export import SourceExport
from clinic_pipeline.source.inventory import build_inventory
from clinic_pipeline.source.reader import open_source
from clinic_pipeline.staging.stage import StageResult, stage_object

SAMPLE = Path(__file__).parent / "fixtures" / "sample_shape"


def _stage_all(export: SourceExport, con: duckdb.DuckDBPyConnection, plan: MappingPlan, out: Path) -> dict[str, Any]:
    results: dict[str, StageResult] = {}
    for obj in STAGED_OBJECTS:
        results[obj.name] = stage_object(
            obj, plan, export, con, staged_dir=out / "staged", quarantine_dir=out / "quarantine"
        )
    return results


def _rows(result: StageResult) -> dict[str, dict[str, Any]]:
    return {r["_source_key"]: r for r in pq.read_table(result.parquet_path).to_pylist()}


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> tuple[MappingPlan, dict[str, StageResult]]:
    con = duckdb.connect()
    export = open_source(str(SAMPLE), con)
    plan = confirm_plan(propose_plan(build_inventory(export, con), 0.75), "tester")
    return plan, _stage_all(export, con, plan, tmp_path_factory.mktemp("staged"))


def test_every_object_reconciles(staged: tuple[MappingPlan, dict[str, StageResult]]) -> None:
    _plan, results = staged
    # Every object but the clinical lists and the communications, which this export does not hold.
    assert {name for name, r in results.items() if r.staged_rows} == {o.name for o in STAGED_OBJECTS} - {
        "clinical_list",
        "activities",
    }
    for result in results.values():
        for rec in result.reconciliation:
            assert rec.holds, rec
    assert results["contacts"].skip_reasons == {"soft-deleted in the source": 1}


def test_money_is_cent_exact_and_times_are_utc(staged: tuple[MappingPlan, dict[str, StageResult]]) -> None:
    _plan, results = staged
    deals = _rows(results["deals"])
    assert deals["billing_encounters:1"]["amount"] == Decimal("123.45")
    assert deals["billing_encounters:2"]["amount"] == Decimal("1234.50")  # "$1,234.50"
    assert deals["billing_encounters:3"]["cf_amount_paid"] == Decimal("0.10")
    visits = _rows(results["appointments"])
    # 02:30 on 2024-03-10 does not exist in Chicago (DST gap): read as standard time, and the
    # 30 minutes are added in UTC, so the visit still lasts 30 minutes.
    assert (visits["appointments:1"]["from_date"], visits["appointments:1"]["end_date"]) == (
        "2024-03-10T08:30:00Z",
        "2024-03-10T09:00:00Z",
    )
    assert visits["appointments:3"]["from_date"] == "2024-07-02T19:15:00Z"  # CDT, UTC-5
    assert {v["time_zone"] for v in visits.values()} == {"America/Chicago"}


def test_short_and_undated_visits_become_tasks(staged: tuple[MappingPlan, dict[str, StageResult]]) -> None:
    _plan, results = staged
    assert set(_rows(results["tasks"])) == {"appointments:2", "appointments:6"}  # 10 min, no duration
    assert "appointments:2" not in _rows(results["appointments"])
    task = _rows(results["tasks"])["appointments:2"]
    assert task["due_date"] == "2024-07-01T14:00:00Z" and task["title"] == "Check-in"
    assert task["_owner_email"] == "ann.smith@clinic.example"


def test_unstructured_lab_report_becomes_a_note_with_its_text(
    staged: tuple[MappingPlan, dict[str, StageResult]],
) -> None:
    _plan, results = staged
    notes = _rows(results["notes"])
    assert set(notes) == {"lab_results:3"}
    assert notes["lab_results:3"]["description"].startswith("Impression: no acute cardiopulmonary process.")
    assert notes["lab_results:3"]["_lookup_contact"] == "patients:3"
    assert set(_rows(results["lab_result"])) == {"lab_results:1", "lab_results:2"}


def test_family_email_and_duplicate_patient_rules(staged: tuple[MappingPlan, dict[str, StageResult]]) -> None:
    _plan, results = staged
    contacts = _rows(results["contacts"])
    # José (older) keeps the family email; Maria keeps it in a custom field, linked to him.
    assert contacts["patients:1"]["email"] == "jose@example.com"
    assert contacts["patients:2"]["email"] is None
    assert (contacts["patients:2"]["cf_shared_email"], contacts["patients:2"]["cf_email_shared_with"]) == (
        "jose@example.com",
        "patients:1",
    )
    # Bob/Robert: same email and birth date → the later row is flagged, both are kept (default policy).
    assert contacts["patients:4"]["cf_possible_duplicate_of"] == "patients:3"
    assert contacts["patients:4"]["email"] is None
    assert "patients:5" not in contacts  # soft-deleted
    emails = [c["email"] for c in contacts.values() if c["email"]]
    assert len(emails) == len(set(emails))


def test_family_sharing_one_phone_leaves_it_to_the_oldest(tmp_path: Path) -> None:
    export_dir = tmp_path / "export"
    shutil.copytree(SAMPLE, export_dir)
    with (export_dir / "patients.csv").open("a", encoding="utf-8") as patients:
        # José (555.123.4567) and Maria ((555) 123-4567) are already there; their child writes it a third way.
        patients.write(
            "7,C007,Sofía,García,2012-05-06,F,,+1 555 123 4567,1 A St,Springfield,IL,62701,1,1,,Spanish,N,0,"
            "2023-05-01 09:00:00,2023-05-01 09:00:00,Friend,,,,false\n"
        )
    con = duckdb.connect()
    export = open_source(str(export_dir), con)
    plan = confirm_plan(propose_plan(build_inventory(export, con), 0.75), "tester")
    result = _stage_all(export, con, plan, tmp_path)["contacts"]
    contacts = _rows(result)
    family = ["patients:1", "patients:2", "patients:7"]
    assert [contacts[k]["mobile_number"] for k in family] == ["+15551234567", None, None]
    for member in family[1:]:
        assert (contacts[member]["cf_shared_mobile"], contacts[member]["cf_mobile_shared_with"]) == (
            "+15551234567",
            "patients:1",
        )
    assert contacts["patients:1"]["cf_shared_mobile"] is None
    # Liam's number is his own: nothing moves.
    assert (contacts["patients:6"]["mobile_number"], contacts["patients:6"]["cf_shared_mobile"]) == (
        "+15551112222",
        None,
    )
    # No row is lost: every patient but the soft-deleted one is staged, and the counts reconcile.
    assert {k for k in contacts if k.startswith("patients:")} == {f"patients:{i}" for i in (1, 2, 3, 4, 6, 7)}
    assert all(rec.holds for rec in result.reconciliation)
    mobiles = [c["mobile_number"] for c in contacts.values() if c["mobile_number"]]
    assert len(mobiles) == len(set(mobiles))


def test_merge_policy_skips_the_duplicate_and_relinks_its_children(tmp_path: Path) -> None:
    con = duckdb.connect()
    export = open_source(str(SAMPLE), con)
    proposed = propose_plan(build_inventory(export, con), 0.75)
    objects = [o.model_copy(update={"duplicates": "merge"}) if o.target == "contact" else o for o in proposed.objects]
    plan = confirm_plan(proposed.model_copy(update={"objects": objects}), "tester")
    results = _stage_all(export, con, plan, tmp_path)
    contacts = _rows(results["contacts"])
    assert "patients:4" not in contacts
    assert contacts["patients:3"]["cf_merged_source_keys"] == "patients:4"
    assert results["contacts"].skip_reasons == {"merged duplicate patient": 1, "soft-deleted in the source": 1}


def test_same_named_clinics_get_their_city(staged: tuple[MappingPlan, dict[str, StageResult]]) -> None:
    _plan, results = staged
    names = [a["name"] for a in _rows(results["accounts"]).values()]
    assert "Riverside Family Clinic (Springfield)" in names and "Riverside Family Clinic (Peoria)" in names
    assert len({n.lower() for n in names}) == len(names)


def test_documents_point_at_files_on_disk(staged: tuple[MappingPlan, dict[str, StageResult]]) -> None:
    _plan, results = staged
    (doc,) = _rows(results["files"]).values()
    assert Path(doc["file_path"]).is_file() and doc["size_bytes"] == Path(doc["file_path"]).stat().st_size


def _orphan_plan() -> MappingPlan:
    patients = ObjectMapping(
        source_table="patients",
        target="contact",
        source_key="patient_id",
        fields=[
            FieldMapping(source="first_name", target="first_name"),
            FieldMapping(source="last_name", target="last_name"),
        ],
    )
    visits = ObjectMapping(
        source_table="appointments",
        target="appointment",
        source_key="appointment_id",
        fields=[
            FieldMapping(source="appointment_type", target="title"),
            FieldMapping(
                source="appointment_date",
                target="from_date",
                transform="local_datetime:%Y-%m-%d %H:%M",
                args=["start_time"],
            ),
            FieldMapping(
                source="duration_minutes",
                target="end_date",
                transform="end_after_minutes:%Y-%m-%d %H:%M",
                args=["appointment_date", "start_time"],
            ),
            FieldMapping(
                source="patient_id", target="targetable_id", transform="lookup:contact", references="patients"
            ),
        ],
    )
    return confirm_plan(MappingPlan(source_fingerprint="x", objects=[patients, visits]), "tester")


def test_children_of_missing_parents_are_quarantined(tmp_path: Path) -> None:
    con = duckdb.connect()
    export = open_source(str(SAMPLE), con)
    plan = _orphan_plan()
    out = {"staged_dir": tmp_path / "staged", "quarantine_dir": tmp_path / "quarantine"}
    stage_object(BY_NAME["accounts"], plan, export, con, **out)
    stage_object(BY_NAME["contacts"], plan, export, con, **out)
    visits = stage_object(BY_NAME["appointments"], plan, export, con, **out)
    reasons = {r["_source_key"]: r["reason"] for r in pq.read_table(visits.quarantine_path).to_pylist()}
    assert reasons["appointments:4"].startswith("parent contacts not staged")  # patient 99 is not in the export
    # No duration at all: the visit ends as it starts (a plan sends such rows to tasks; a person chose otherwise).
    assert "appointments:6" not in reasons
    staged = {r["_source_key"]: r for r in pq.read_table(visits.parquet_path).to_pylist()}
    assert staged["appointments:6"]["end_date"] == staged["appointments:6"]["from_date"]
    assert visits.staged_rows + visits.quarantined_rows == visits.source_rows


def test_staging_children_before_parents_is_refused(tmp_path: Path) -> None:
    con = duckdb.connect()
    export = open_source(str(SAMPLE), con)
    with pytest.raises(OperatorError, match="stage contacts before"):
        stage_object(BY_NAME["appointments"], _orphan_plan(), export, con, staged_dir=tmp_path, quarantine_dir=tmp_path)


def test_a_delta_window_stages_only_rows_changed_in_it(
    staged: tuple[MappingPlan, dict[str, StageResult]], tmp_path: Path
) -> None:
    plan, results = staged
    con = duckdb.connect()
    export = open_source(str(SAMPLE), con)
    chicago = ZoneInfo("America/Chicago")
    window = (datetime(2024, 7, 1, tzinfo=chicago), datetime(2024, 7, 3, tzinfo=chicago))
    full_dir = results["contacts"].parquet_path.parent
    delta = {
        name: stage_object(
            BY_NAME[name],
            plan,
            export,
            con,
            staged_dir=tmp_path / "staged",
            quarantine_dir=tmp_path / "quarantine",
            window=window,
            parent_dirs=[full_dir],
        )
        for name in ("accounts", "contacts", "appointments", "tasks")
    }
    # updated_at 2024-07-02 15:00 and 2024-07-01 09:10 local; the patients they belong to come from the full run.
    assert set(_rows(delta["appointments"])) == {"appointments:3"}
    assert set(_rows(delta["tasks"])) == {"appointments:2"}
    assert delta["contacts"].source_rows == 0 and delta["appointments"].quarantined_rows == 0
