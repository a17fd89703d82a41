"""Exports shaped unlike our generator (an interchange CSV export, an OpenEMR-like SQLite database):
their proposed plans pass the confirmation checks and every object they hold stages."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from clinic_pipeline.mapping.plan_check import confirm_checked
from clinic_pipeline.mapping.proposer import propose_plan
from clinic_pipeline.model.objects import STAGED_OBJECTS
from clinic_pipeline.model.transforms import compile_transform, layered_from
from clinic_pipeline.reports.source_compare import local_instant
from clinic_pipeline.source.inventory import build_inventory
from clinic_pipeline.source.reader import open_source
from clinic_pipeline.staging.stage import StageResult, stage_object

FIXTURES = Path(__file__).parent / "fixtures"


def _stage_all(spec: str, out: Path) -> dict[str, StageResult]:
    con = duckdb.connect()
    export = open_source(spec, con)
    inventory = build_inventory(export, con)
    plan = confirm_checked(propose_plan(inventory, 0.75), "tester", [t.name for t in inventory.tables])
    return {
        obj.name: stage_object(obj, plan, export, con, staged_dir=out / "staged", quarantine_dir=out / "quarantine")
        for obj in STAGED_OBJECTS
    }


def _vendor_database(tmp_path: Path) -> str:
    db = tmp_path / "vendor.db"
    with sqlite3.connect(db) as con:
        con.executescript((FIXTURES / "vendor_database.sql").read_text())
    return f"sqlite:///{db}"


@pytest.mark.parametrize("shape", ["interchange_export", "vendor_database"])
def test_foreign_exports_stage_every_object_they_hold(shape: str, tmp_path: Path) -> None:
    spec = str(FIXTURES / shape) if shape == "interchange_export" else _vendor_database(tmp_path)
    results = _stage_all(spec, tmp_path)
    held = {name: r for name, r in results.items() if r.source_rows or r.derived_rows}
    assert {"accounts", "contacts", "appointments"} <= set(held)
    for result in held.values():
        assert all(rec.holds for rec in result.reconciliation)
        assert result.quarantined_rows == 0, result.object
    visits = pq.read_table(results["appointments"].parquet_path).to_pylist()
    assert visits and all(v["title"] and v["from_date"] and v["end_date"] for v in visits)


def test_iso_times_marked_z_are_read_as_utc_not_as_clinic_time(tmp_path: Path) -> None:
    # encounters.csv: START 2023-01-10T08:30:00Z, STOP 08:55Z; the clinic's zone must not shift them.
    export = tmp_path / "export"
    shutil.copytree(FIXTURES / "interchange_export", export)
    (export / "manifest.json").write_text('{"time_zone": "America/Chicago"}')
    results = _stage_all(str(export), tmp_path)
    visits = {v["_source_key"]: v for v in pq.read_table(results["appointments"].parquet_path).to_pylist()}
    first = visits["encounters:00000000-0000-0000-0000-0000079837e1"]
    assert (first["from_date"], first["end_date"], first["title"]) == (
        "2023-01-10T08:30:00Z",
        "2023-01-10T08:55:00Z",
        "Encounter for check up",
    )


def test_calendar_durations_in_seconds_are_read_as_seconds(tmp_path: Path) -> None:
    # OpenEMR's pc_duration counts seconds (900 = a quarter of an hour), not minutes.
    results = _stage_all(_vendor_database(tmp_path), tmp_path)
    visits = {v["_source_key"]: v for v in pq.read_table(results["appointments"].parquet_path).to_pylist()}
    first = visits["openemr_postcalendar_events:1"]
    assert (first["from_date"], first["end_date"], first["title"]) == (
        "2024-03-10T09:00:00Z",
        "2024-03-10T09:15:00Z",
        "Office Visit",
    )
    assert results["tasks"].source_rows == 0  # every visit lasts at least 15 minutes (900 s)


def test_the_sample_diff_reads_z_times_as_utc_too() -> None:
    # The diff compares against the source by its own reading, which must agree on what Z means.
    iso_utc = local_instant("2023-01-10T08:30:00Z", ("%Y-%m-%dT%H:%M:%SZ",), "America/Chicago")
    wall_clock = local_instant("2023-01-10 08:30:00", ("%Y-%m-%d %H:%M:%S",), "America/Chicago")
    assert iso_utc == datetime(2023, 1, 10, 8, 30, tzinfo=UTC)
    assert wall_clock == datetime(2023, 1, 10, 14, 30, tzinfo=UTC)


def test_a_report_export_with_blank_lines_and_footers_links_patients_locations_and_owners(tmp_path: Path) -> None:
    # report_export: a practice-management report export (CRLF, BOM, blank lines, "Total Patients: 19"
    # and "Report Totals" footers, providers and locations named rather than numbered).
    con = duckdb.connect()
    export = open_source(str(FIXTURES / "report_export"), con)
    inventory = build_inventory(export, con)
    plan = confirm_checked(propose_plan(inventory, 0.75), "tester", [t.name for t in inventory.tables])
    mappings = {(m.source_table, m.target): m for m in plan.objects}
    links = {
        (table, line.source): (line.transform, line.references)
        for (table, _target), m in mappings.items()
        for line in m.mapped_fields()
        if line.references
    }
    # Blank lines and a footer do not cost the tables their keys.
    assert mappings[("patient_demographics", "contact")].source_key == "Patient Account #"
    assert mappings[("charges", "deal")].source_key == "Charge ID"
    # Locations are keyed by the name the patients and charges use: one account each, no copies.
    assert mappings[("service_locations", "sales_account")].source_key == "Service Location"
    assert links[("patient_demographics", "Default Service Location")] == ("lookup:sales_account", "service_locations")
    # A bill links to its patient, not to its referring physician; its owner is the rendering provider by name.
    assert links[("charges", "Patient Account #")] == ("lookup:contact", "patient_demographics")
    assert ("charges", "Referring Provider") not in links
    assert links[("charges", "Rendering Provider")] == ("owner_by_email", "providers")
    assert ("referring_providers", "contact") in mappings  # external physicians are contacts, not users

    results = {
        obj.name: stage_object(obj, plan, export, con, staged_dir=tmp_path / "staged", quarantine_dir=tmp_path / "q")
        for obj in STAGED_OBJECTS
    }
    for result in results.values():
        assert all(rec.holds for rec in result.reconciliation), result.object
    accounts = [a["_source_key"] for a in pq.read_table(results["accounts"].parquet_path).to_pylist()]
    assert not any(key.startswith("patient_demographics.") for key in accounts)
    assert sum(key.startswith("service_locations:") for key in accounts) == 3
    quarantined = pq.read_table(results["contacts"].quarantine_path).to_pylist()
    blank_lines = [q["_source_row"] for q in quarantined if q["reason"] == "missing source key"]
    assert blank_lines == [10, 20]
    bills = pq.read_table(results["deals"].quarantine_path).to_pylist()
    assert {(b["_source_row"], b["reason"].split(" (")[0]) for b in bills} == {
        (17, "parent contacts not staged"),  # the orphan charge
        (18, "missing source key"),  # the Report Totals line
    }


def test_the_sample_diff_reads_times_a_dst_change_repeats_or_skips_as_staging_does() -> None:
    # 01:30 happens twice on 2026-11-01 in Denver and never on 2026-03-08: one reading on both sides,
    # or the sample diff would report a difference the load did not make.
    fmt = "%Y-%m-%d %H:%M:%S"
    times = ["2026-11-01 01:30:00", "2026-03-08 02:30:00", "2026-07-01 09:30:00"]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (v VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [[t] for t in times])
    compiled = compile_transform("v", f"parse_datetime:{fmt}", "America/Denver")
    staged = [
        r[0] for r in con.execute(f"SELECT {compiled.value_sql} FROM {layered_from('t', compiled.levels)}").fetchall()
    ]
    compared = [local_instant(t, (fmt,), "America/Denver") for t in times]
    assert staged == ["2026-11-01T08:30:00Z", "2026-03-08T09:30:00Z", "2026-07-01T15:30:00Z"]
    assert [c.strftime("%Y-%m-%dT%H:%M:%SZ") for c in compared if c is not None] == staged


def _csv(path: Path, header: str, rows: list[str]) -> None:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


def test_billing_lines_become_one_deal_per_encounter_and_visits_end_at_their_end_time(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    (export / "manifest.json").write_text('{"time_zone": "America/Chicago"}')
    _csv(
        export / "patient_data.csv",
        "id,pid,fname,lname,email",
        [f"{n},{1000 + n},First{n},Last{n},p{n}@example.org" for n in range(1, 13)],
    )
    _csv(
        export / "users.csv",
        "id,username,fname,lname,email",
        [f"{n},doc{n},Doc{n},Staff{n},doc{n}@clinic.example" for n in range(1, 5)],
    )
    _csv(
        export / "calendar.csv",
        "eid,pid,provider_id,event_date,start_time,end_time,title",
        [f"{n},{1000 + (n - 1) % 8 + 1},{1 + n % 4},2024-03-{n:02d},09:00,09:40,Visit {n}" for n in range(1, 13)]
        + ["13,,2,2024-03-13,12:00,13:00,Lunch"],  # a calendar block: no patient
    )
    lines = []
    for enc in range(1, 11):
        lines.append(f"{3 * enc},{500 + enc},{1000 + enc},CPT4,99213,100.50,1,{1 + enc % 4}")
        lines.append(f"{3 * enc + 1},{500 + enc},{1000 + enc},ICD10,E11.9,0.00,1,{1 + enc % 4}")  # $0 diagnosis
        lines.append(f"{3 * enc + 2},{500 + enc},{1000 + enc},CPT4,90471,25.00,{0 if enc == 3 else 1},{1 + enc % 4}")
    _csv(export / "billing.csv", "id,encounter,pid,code_type,code,fee,activity,provider_id", lines)

    results = _stage_all(str(export), tmp_path / "out")

    deals = {d["_source_key"]: d for d in pq.read_table(results["deals"].parquet_path).to_pylist()}
    assert len(deals) == 10  # 30 lines, one deal per encounter
    first = deals["billing:501"]
    assert float(first["amount"]) == 125.50 and first["name"] == "501"
    assert float(deals["billing:503"]["amount"]) == 100.50  # its voided line is not summed
    assert first["_lookup_contact"] == "patient_data:1001"
    (recon,) = results["deals"].reconciliation
    assert recon.holds and (recon.source_rows, recon.staged, recon.skipped) == (30, 10, 20)
    assert results["deals"].skip_reasons == {"folded into one record per encounter": 19, "voided line in the source": 1}

    visits = {v["_source_key"]: v for v in pq.read_table(results["appointments"].parquet_path).to_pylist()}
    assert visits["calendar:1"]["from_date"] == "2024-03-01T15:00:00Z"  # 09:00 CST
    assert visits["calendar:1"]["end_date"] == "2024-03-01T15:40:00Z"
    assert "calendar:13" not in visits
    assert results["appointments"].skip_reasons == {"no patient: a calendar block (lunch, meeting), not a visit": 1}


def test_references_without_their_keys_type_prefix_still_link(tmp_path: Path) -> None:
    # CouchDB ids carry their type (`patient_2_<uuid>`), references hold only the uuid; FHIR references
    # carry the type (`Patient/<id>`) the key lacks. Both link, by their values.
    export = tmp_path / "export"
    export.mkdir()
    ids = [f"{n:08x}-1c2d-4e5f-8a9b-{n:012x}" for n in range(1, 21)]
    _csv(
        export / "patient.csv",
        "_id,givenName,familyName,email",
        [f"patient_2_{u},Given{n},Family{n},p{n}@example.org" for n, u in enumerate(ids)],
    )
    _csv(
        export / "note.csv",
        "_id,patient,content",
        [f"note_2_{n},{u},Note about visit {n}" for n, u in enumerate(ids[:15])] + ["note_2_99,,Unfiled"],
    )
    results = _stage_all(str(export), tmp_path / "out")
    notes = pq.read_table(results["notes"].parquet_path).to_pylist()
    assert {n["_lookup_contact"] for n in notes} - {None} == {f"patient:patient_2_{u}" for u in ids[:15]}


def test_a_resource_flattened_to_several_rows_is_one_record(tmp_path: Path) -> None:
    # FHIR flat views repeat a patient's id once per name or address: one contact each, from its first row.
    export = tmp_path / "export"
    export.mkdir()
    rows = []
    for n in range(1, 16):
        rows.append(f"{n},Family{n},Given{n},home,{n} Main St")
        if n % 3 == 0:
            rows.append(f"{n},Family{n},Given{n},work,{n} Office Rd")
    _csv(export / "patient_flat.csv", "id,family,given,address_use,street", rows)
    _csv(
        export / "encounter_flat.csv",
        "id,patient_id,period_start,period_end,type_display",
        [f"{100 + n},{n},2024-05-{n:02d} 09:00:00+00,2024-05-{n:02d} 09:30:00+00,Visit" for n in range(1, 16)],
    )
    results = _stage_all(str(export), tmp_path / "out")
    contacts = pq.read_table(results["contacts"].parquet_path).to_pylist()
    assert len(contacts) == 15 and {c["address"] for c in contacts if c["_source_key"] == "patient_flat:3"} == {
        "3 Main St"
    }
    (recon,) = results["contacts"].reconciliation
    assert recon.holds and recon.skipped == 5
    visits = pq.read_table(results["appointments"].parquet_path).to_pylist()
    assert {v["_lookup_contact"] for v in visits} == {f"patient_flat:{n}" for n in range(1, 16)}


def test_a_visits_status_becomes_its_outcome_and_cancelled_visits_are_skipped(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    (export / "manifest.json").write_text('{"time_zone": "America/Chicago"}')
    names = ["Ann", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal"]
    _csv(export / "patients.csv", "patient_id,first_name,last_name", [f"{n},{names[n - 1]},Smith" for n in range(1, 9)])
    statuses = ["Completed", "No Show", "Cancelled", "Scheduled"]
    _csv(
        export / "appointments.csv",
        "appointment_id,patient_id,start,stop,reason,status",
        [f"{n},{1 + n % 8},2024-06-{n:02d} 09:00,2024-06-{n:02d} 09:30,Visit,{statuses[n % 4]}" for n in range(1, 21)],
    )
    con = duckdb.connect()
    plan = propose_plan(build_inventory(open_source(str(export), con), con), 0.75)
    (visits,) = [o for o in plan.objects if o.target == "appointment"]
    (status,) = [f for f in visits.fields if f.source == "status"]
    assert (status.target, status.transform) == ("outcome_id", "choice:sales_activity_outcomes")
    # Every value decided; cancelled visits choose no outcome (the skip rule below takes their rows).
    assert status.value_map == {"Cancelled": None, "Completed": "Completed", "No Show": "No show", "Scheduled": None}

    results = _stage_all(str(export), tmp_path / "out")
    staged = pq.read_table(results["appointments"].parquet_path).to_pylist()
    assert sorted({v["_choice_outcome_id"] or "none" for v in staged}) == ["Completed", "No show", "none"]
    assert results["appointments"].skip_reasons == {
        "cancelled visit: it did not happen (a plan choice: remove the rule to keep them)": 5
    }


def test_a_delta_window_restages_a_whole_encounter_when_one_of_its_lines_changed(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    (export / "manifest.json").write_text('{"time_zone": "UTC"}')
    _csv(export / "patients.csv", "patient_id,first_name,last_name", [f"{n},Ann{n},Lee" for n in range(1, 11)])
    lines = []
    for enc in range(1, 11):
        for item, fee in enumerate(("100.00", "20.00")):
            # One line of encounter 3 is edited at cutover; every other line is older.
            stamp = "2024-06-01 12:30:00" if (enc, item) == (3, 1) else "2024-05-01 09:00:00"
            lines.append(f"{2 * enc + item},{700 + enc},{enc},{fee},{stamp}")
    _csv(export / "billing.csv", "id,encounter,patient_id,fee,updated_at", lines)
    con = duckdb.connect()
    source = open_source(str(export), con)
    plan = confirm_checked(propose_plan(build_inventory(source, con), 0.75), "tester", list(source.tables))
    out = tmp_path / "out"
    for obj in STAGED_OBJECTS[:2]:  # accounts, contacts: the full run's parents
        stage_object(obj, plan, source, con, staged_dir=out / "full", quarantine_dir=out / "q")
    window = (datetime(2024, 6, 1, 12, tzinfo=UTC), datetime(2024, 6, 1, 13, tzinfo=UTC))
    deals = stage_object(
        next(o for o in STAGED_OBJECTS if o.name == "deals"),
        plan,
        source,
        con,
        staged_dir=out / "delta",
        quarantine_dir=out / "dq",
        window=window,
        parent_dirs=(out / "full",),
    )
    (deal,) = pq.read_table(deals.parquet_path).to_pylist()
    assert deal["_source_key"] == "billing:703" and float(deal["amount"]) == 120.0


def test_rows_with_a_deletion_date_are_skipped_as_soft_deleted(tmp_path: Path) -> None:
    """Tamanu's `deleted_at`, OpenMRS's `date_voided`: a row with a deletion date is skipped with the
    soft-delete reason, beside a deleted flag (each skips); the date itself is not migrated."""
    first, last = ["Ann", "Bo", "Cy", "Di", "Ed"], ["Lee", "Ruiz", "Okafor", "Novak", "Park", "Singh", "Berg", "Khan"]
    rows = [
        f"{n},{first[n % 5]},{last[n % 8]},{'2024-05-01 10:00:00+00' if n % 7 == 0 else ''},{1 if n % 9 == 0 else 0}"
        for n in range(1, 41)
    ]
    _csv(tmp_path / "patients.csv", "patient_id,first_name,last_name,deleted_at,voided", rows)
    con = duckdb.connect()
    plan = propose_plan(build_inventory(open_source(str(tmp_path), con), con), 0.75)
    (patients,) = [o for o in plan.objects if o.source_table == "patients"]
    assert patients.skip_when is not None
    filters = {(f.source, f.op) for f in [patients.skip_when, *(r.when for r in patients.skip_rules)]}
    assert filters == {("deleted_at", "not_empty"), ("voided", "in")}
    assert next(f for f in patients.fields if f.source == "deleted_at").target is None

    results = _stage_all(str(tmp_path), tmp_path / "out")
    staged = pq.read_table(results["contacts"].parquet_path).to_pylist()
    dated, flagged = {n for n in range(1, 41) if n % 7 == 0}, {n for n in range(1, 41) if n % 9 == 0}
    assert sorted(int(r["_source_key"].split(":")[1]) for r in staged) == sorted(set(range(1, 41)) - dated - flagged)
    assert sum(results["contacts"].skip_reasons.values()) == len(dated | flagged)


def test_a_record_that_names_only_its_encounter_links_to_the_encounters_patient(tmp_path: Path) -> None:
    """Tamanu's lab tests and care's prescriptions name their encounter, not the patient: the plan links them
    through the encounter's own patient column (`through`/`via`), staging joins it, and every staged result
    carries its patient's link key; a result whose encounter is missing has no link, it is not guessed."""
    names = ["Ann", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal"]
    _csv(
        tmp_path / "patients.csv", "patient_id,first_name,last_name", [f"{n},{names[n - 1]},Smith" for n in range(1, 9)]
    )
    encounters = [f"E{n},{1 + n % 8},2024-06-{n:02d} 09:00,2024-06-{n:02d} 09:30,Review" for n in range(1, 21)]
    _csv(tmp_path / "encounters.csv", "encounter_id,patient_id,start,stop,reason", encounters)
    results = [f"{n},E{1 + n % 20},Glucose,{4 + n % 5}.{n % 10} mmol/L" for n in range(1, 41)]
    results.append("41,E99,Glucose,5.0 mmol/L")
    _csv(tmp_path / "lab_results.csv", "lab_result_id,encounter_id,test_name,result", results)
    con = duckdb.connect()
    plan = propose_plan(build_inventory(open_source(str(tmp_path), con), con), 0.75)
    (labs,) = [o for o in plan.objects if o.source_table == "lab_results"]
    (link,) = [f for f in labs.fields if f.source == "encounter_id"]
    assert (link.target, link.transform, link.references, link.through, link.via) == (
        "cf_contact",
        "lookup:contact",
        "patients",
        "encounters",
        "patient_id",
    )
    assert link.needs_review and "that record's patient_id" in link.reason

    staged = _stage_all(str(tmp_path), tmp_path / "out")
    rows = pq.read_table(staged["lab_result"].parquet_path).to_pylist()
    by_key = {r["_source_key"]: r["_lookup_contact"] for r in rows}
    for n in range(1, 41):
        encounter = 1 + n % 20
        assert by_key[f"lab_results:{n}"] == f"patients:{1 + encounter % 8}"
    assert by_key.get("lab_results:41") is None
