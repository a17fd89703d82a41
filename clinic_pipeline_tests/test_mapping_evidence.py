"""Links, owners and keys decided from evidence in exports shaped as real systems write them: a Tryton/Odoo
export's continuation rows, an insurer named `provider`, staff whose email sits in another table, and a table
whose name is a generic word."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import yaml

from clinic_pipeline.mapping.plan import MappingPlan, ObjectMapping
from clinic_pipeline.mapping.proposer import propose_plan
from clinic_pipeline.source.inventory import build_inventory
from clinic_pipeline.source.reader import open_source

THRESHOLD = 0.75


def _write(folder: Path, name: str, header: list[str], rows: list[list[object]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / name).open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _plan(folder: Path) -> MappingPlan:
    con = duckdb.connect()
    try:
        return propose_plan(build_inventory(open_source(str(folder), con), con), THRESHOLD)
    finally:
        con.close()


def _mapping(plan: MappingPlan, table: str) -> ObjectMapping:
    return next(o for o in plan.objects if o.source_table == table)


def _line(plan: MappingPlan, table: str, column: str) -> tuple[str | None, str | None, str | None]:
    line = next(f for f in _mapping(plan, table).fields if f.source == column)
    return line.target, line.transform, line.references


def _tryton_export(folder: Path) -> int:
    """Patients exported as Tryton does: a second address continues its patient on a row of its own, every
    plain column empty. Appointments name their patient by PUID. Returns the number of continuation rows."""
    patients, continuation = [], 0
    for n in range(1, 41):
        patients.append(
            [n, f"Given{n}", f"Family{n}", f"PUID{n:04d}", f"p{n}@example.org", f"{n} Main St", "Las Cruces"]
        )
        if n % 5 == 0:  # 8 patients with a second address: more empty keys than a key's few gaps allow
            patients.append(["", "", "", "", "", f"{n} Second St", "El Paso"])
            continuation += 1
    header = ["ID", "Name", "Family names", "PUID", "E-Mail", "Addresses/Street", "Addresses/City"]
    _write(folder, "gnuhealth.patient.csv", header, patients)
    visits = [
        [
            100 + n,
            f"PUID{(n % 40) + 1:04d}",
            f"2024-03-{(n % 28) + 1:02d} 09:00:00",
            f"2024-03-{(n % 28) + 1:02d} 09:30:00",
            "Follow-up",
        ]
        for n in range(60)
    ]
    _write(
        folder,
        "gnuhealth.appointment.csv",
        ["ID", "Patient/PUID", "Appointment Date", "Appointment End", "Reason"],
        visits,
    )
    return continuation


def test_continuation_rows_keep_the_key_and_are_skipped_with_their_reason(tmp_path: Path) -> None:
    export = tmp_path / "export"
    continuation = _tryton_export(export)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLINIC_", "FRESHSALES_", "DAGSTER_"))} | {
        "CLINIC_DATA_DIR": str(tmp_path / "data"),
        "CLINIC_SOURCE": str(export),
    }
    cli = [sys.executable, "-m", "clinic_pipeline"]
    for args in (["inventory"], ["propose-mapping"], ["confirm-mapping", "--by", "Dr. Reviewer"]):
        result = subprocess.run([*cli, *args], env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
        assert result.returncode == 0, (args, result.stderr[-2000:])
    plan = MappingPlan.model_validate(
        yaml.safe_load((tmp_path / "data" / "plan" / "mapping_plan.yaml").read_text(encoding="utf-8"))
    )
    patients = _mapping(plan, "gnuhealth_patient")
    assert patients.target == "contact"
    # The key the appointments reference, not only a unique column: their links hold.
    assert patients.source_key == "PUID"
    assert [(r.when.source, r.when.op) for r in patients.skip_rules] == [("PUID", "empty")]
    assert "continues the record above" in patients.skip_rules[0].reason
    assert _line(plan, "gnuhealth_appointment", "Patient/PUID")[:2] == ("targetable_id", "lookup:contact")

    dry = subprocess.run([*cli, "migrate", "--dry-run"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-2000:]
    recon = tmp_path / "data" / "quarantine" / "contacts_reconciliation.parquet"
    [(rows, staged, quarantined, skipped)] = duckdb.sql(
        f"SELECT source_rows, staged, quarantined, skipped FROM read_parquet('{recon}') "
        "WHERE source_table = 'gnuhealth_patient'"
    ).fetchall()
    assert (rows, staged, quarantined, skipped) == (40 + continuation, 40, 0, continuation)


def _policies_export(folder: Path, *, provider_email: bool) -> None:
    """An OpenEMR-shaped export: patients by `pid`, users and payers keyed 1..N, policies naming their insurer
    `provider`; providers (no email of their own where `provider_email` is false) extend the users."""
    _write(
        folder,
        "patient_data.csv",
        ["pid", "fname", "lname", "email", "providerID"],
        [[1000 + n, f"Given{n}", f"Family{n}", f"p{n}@example.org", (n % 4) + 1] for n in range(50)],
    )
    _write(
        folder,
        "users.csv",
        ["id", "username", "fname", "lname", "email"],
        [[n, f"user{n}", f"Staff{n}", f"Doc{n}", f"staff{n}@clinic.example"] for n in range(1, 7)],
    )
    provider_columns = ["id", "npi", "specialty"] + (["email"] if provider_email else [])
    _write(
        folder,
        "providers.csv",
        provider_columns,
        [
            [n, f"14487209{n:02d}", "Family Medicine"] + ([f"dr{n}@clinic.example"] if provider_email else [])
            for n in (1, 2, 3, 4)
        ],
    )
    _write(
        folder,
        "insurance_companies.csv",
        ["id", "name", "cms_id"],
        [[n, f"Payer {n} Health Plan", f"CMS{n:03d}"] for n in range(1, 9)],
    )
    _write(
        folder,
        "insurance_data.csv",
        ["id", "pid", "provider", "policy_number", "subscriber_relationship"],
        [[n + 1, 1000 + (n % 50), (n % 8) + 1, f"POL-{n:05d}", "self"] for n in range(60)],
    )
    _write(
        folder,
        "appointments.csv",
        ["appt_id", "pid", "provider_id", "appt_date", "duration_minutes", "reason"],
        [
            [5000 + n, 1000 + (n % 50), (n % 4) + 1, f"2024-05-{(n % 28) + 1:02d} 10:00:00", 30, "Follow-up"]
            for n in range(80)
        ],
    )


def test_a_policys_provider_is_its_insurer_and_links_to_the_payer(tmp_path: Path) -> None:
    _policies_export(tmp_path, provider_email=True)
    plan = _plan(tmp_path)
    assert _mapping(plan, "insurance_companies").target == "sales_account"
    assert _line(plan, "insurance_data", "provider") == (
        "cf_sales_account",
        "lookup:sales_account",
        "insurance_companies",
    )
    assert _line(plan, "insurance_data", "pid")[:2] == ("cf_contact", "lookup:contact")


def test_staff_without_an_email_of_their_own_own_records_through_the_users_they_extend(tmp_path: Path) -> None:
    _policies_export(tmp_path, provider_email=False)
    plan = _plan(tmp_path)
    line = next(f for f in _mapping(plan, "appointments").fields if f.source == "provider_id")
    assert (line.target, line.transform, line.references, line.via) == ("owner_id", "owner_by_email", "users", "email")


def test_a_generic_word_in_a_table_name_is_no_evidence_of_a_reference(tmp_path: Path) -> None:
    """`value_coded_name_id` holds small numbers that happen to lie in `person_name`'s key: the shared word
    `name` does not make it a link, so the observation keeps its real patient link."""
    people = [[n, f"Given{n}", f"Family{n}", f"person{n}@example.org"] for n in range(1, 61)]
    _write(tmp_path, "person.csv", ["person_id", "given_name", "family_name", "email"], people)
    _write(
        tmp_path, "person_name.csv", ["person_id", "prefix", "middle_name"], [[n, "", f"M{n}"] for n in range(1, 61)]
    )
    observations = [
        [900 + n, (n % 60) + 1, (n % 12) + 1, f"{70 + n % 30}", f"2024-01-{(n % 28) + 1:02d}"] for n in range(120)
    ]
    _write(
        tmp_path,
        "obs.csv",
        ["obs_id", "person_id", "value_coded_name_id", "value_numeric", "obs_datetime"],
        observations,
    )
    plan = _plan(tmp_path)
    links = {
        f.source: f.target
        for m in plan.objects
        if m.source_table == "obs"
        for f in m.fields
        if f.transform and f.transform.startswith("lookup:")
    }
    assert "value_coded_name_id" not in links
    assert links.get("person_id") is not None


def test_status_codes_are_read_by_their_labels_in_the_exports_own_list(tmp_path: Path) -> None:
    """OpenEMR writes a visit's status as a symbol and keeps its meaning in `list_options`, where the same
    codes mean other things in other lists: the calendar's list decodes them, cancelled visits are skipped."""
    _policies_export(tmp_path, provider_email=True)
    statuses = {
        "x": "x Canceled",
        "@": "@ Arrived",
        ">": "> Checked out",
        "*": "* Reminder done",
        "<": "< In exam room",
    }
    other = {"x": "x Unknown", "@": "@ Home", ">": "> Left", "*": "* Other"}  # the same codes in another list
    options = [["apptstat", code, title] for code, title in statuses.items()]
    options += [["pattype", code, title] for code, title in other.items()]
    options += [["titles", f"T{n}", f"Title {n}"] for n in range(20)]
    _write(tmp_path, "list_options.csv", ["list_id", "option_id", "title"], options)
    codes = list(statuses)
    visits = [
        [7000 + n, 1000 + (n % 50), (n % 4) + 1, f"2024-06-{(n % 28) + 1:02d} 11:00:00", 20, "Check-up", codes[n % 5]]
        for n in range(100)
    ]
    header = ["pc_eid", "pc_pid", "pc_aid", "pc_eventDate", "pc_duration", "pc_title", "pc_apptstatus"]
    _write(tmp_path, "calendar_events.csv", header, visits)
    plan = _plan(tmp_path)
    visits_mapping = next(o for o in plan.objects if o.source_table == "calendar_events" and o.target == "appointment")
    outcome = next(f for f in visits_mapping.fields if f.source == "pc_apptstatus")
    assert outcome.target == "outcome_id"
    # Every value decided: the cancelled `x` chooses no outcome (its rows are skipped by the rule below).
    assert outcome.value_map == {"@": "Completed", ">": "Completed", "*": "Completed", "<": None, "x": None}
    assert "list_options.title where list_id = apptstat" in outcome.reason
    [cancelled] = [r for r in visits_mapping.skip_rules if r.when.source == "pc_apptstatus"]
    assert (cancelled.when.op, cancelled.when.value) == ("in", ["x"])


def test_two_numbering_series_are_no_reference_and_a_named_reference_wins_the_link(tmp_path: Path) -> None:
    """Frappe names documents by series (`ACC-SINV-2024-00012`, `HLC-APP-2024-00012`): alike in their numbers
    only. An invoice names its patient in `Patient`, by chance a customer id in `Patient Name`, and its billing
    customer in `Customer`."""
    patients = [[f"HLC-PAT-2024-{n:05d}", f"Given{n}", f"Family{n}", f"p{n}@example.org"] for n in range(1, 81)]
    _write(tmp_path, "Patient.csv", ["ID", "First Name", "Last Name", "Email"], patients)
    customers = [[f"Given{n} Family{n}", f"c{n}@example.org", "MF"[n % 2], f"+44 7700 9{n:05d}"] for n in range(1, 101)]
    _write(tmp_path, "Customer.csv", ["ID", "Email Id", "Gender", "Mobile No"], customers)
    visits = [
        [
            f"HLC-APP-2024-{n:05d}",
            f"HLC-PAT-2024-{(n % 80) + 1:05d}",
            f"2024-04-{(n % 28) + 1:02d} 10:00:00",
            30,
            "Visit",
        ]
        for n in range(1, 121)
    ]
    _write(tmp_path, "Patient Appointment.csv", ["ID", "Patient", "Appointment Date", "Duration", "Title"], visits)
    invoices = [
        [
            f"ACC-SINV-2024-{n:05d}",
            f"HLC-PAT-2024-{(n % 80) + 1:05d}",
            f"Given{(n % 80) + 1} Family{(n % 80) + 1}",
            f"Given{(n % 100) + 1} Family{(n % 100) + 1}",
            f"2024-04-{(n % 28) + 1:02d}",
            f"{50 + n}.00",
        ]
        for n in range(1, 111)
    ]
    header = ["ID", "Patient", "Patient Name", "Customer", "Posting Date", "Grand Total"]
    _write(tmp_path, "Sales Invoice.csv", header, invoices)
    plan = _plan(tmp_path)
    inventory_links = {
        (f.source, f.references)
        for m in plan.objects
        if m.source_table == "sales_invoice"
        for f in m.fields
        if f.references
    }
    assert ("ID", "patient_appointment") not in inventory_links
    # The billing Customer table is larger, but the export references the patients more: they keep the link.
    assert _line(plan, "sales_invoice", "Patient") == ("contact_ids", "lookup:contact", "patient")


def test_a_sort_order_that_catches_staff_columns_by_chance_is_not_the_staff_key(tmp_path: Path) -> None:
    """Open Dental's `provider` has its key `ProvNum` and a dense `ItemOrder` (0..N) that every small staff
    number also lies in, as it lies in the logins' `UserNum`: the key the references name (`ProvNum`) keeps
    the owner links."""
    _write(
        tmp_path,
        "userod.csv",
        ["UserNum", "UserName", "ProvNum"],
        [[n, f"user{n}", (n % 10) + 1] for n in range(1, 13)],
    )
    _write(
        tmp_path,
        "provider.csv",
        ["ProvNum", "ItemOrder", "Abbr", "LName", "FName", "Email"],
        [[n + 1, n, f"DR{n}", f"Doc{n}", f"Given{n}", f"doc{n}@clinic.example"] for n in range(10)],
    )
    _write(
        tmp_path,
        "patient.csv",
        ["PatNum", "LName", "FName", "Email", "PriProv"],
        [[100 + n, f"Family{n}", f"Given{n}", f"p{n}@example.org", (n % 6) + 1] for n in range(60)],
    )
    _write(
        tmp_path,
        "clinic.csv",
        ["ClinicNum", "Description", "ItemOrder", "DefaultProv"],
        [[n, f"Clinic {n}", n - 1, n + 2] for n in range(1, 4)],
    )
    _write(
        tmp_path,
        "appointment.csv",
        ["AptNum", "PatNum", "ProvNum", "AptDateTime", "Pattern", "ProcDescript"],
        [
            [500 + n, 100 + (n % 60), (n % 6) + 1, f"2024-02-{(n % 28) + 1:02d} 08:00:00", "XXXX", "Exam"]
            for n in range(90)
        ],
    )
    plan = _plan(tmp_path)
    assert _mapping(plan, "provider").source_key == "ProvNum"
    line = next(f for f in _mapping(plan, "patient").fields if f.source == "PriProv")
    assert (line.target, line.references) == ("owner_id", "provider")


def test_revisions_are_bookkeeping_and_every_soft_delete_flag_skips_its_rows(tmp_path: Path) -> None:
    """A flattened document store (HospitalRun's CouchDB): `_rev` is the store's revision, `_deleted` and
    `data.archived` both mark rows the clinic removed."""
    rows = [
        [
            f"patient_2_{n:04d}",
            f"{n}-{'abcdef'[n % 6]}{n * 7919 % 10000:04d}",
            f"Given{n}",
            f"Family{n}",
            f"p{n}@example.org",
            "true" if n % 10 == 0 else "false",
            "true" if n % 15 == 0 else "false",
        ]
        for n in range(1, 61)
    ]
    header = ["_id", "_rev", "data.firstName", "data.lastName", "data.email", "_deleted", "data.archived"]
    _write(tmp_path, "patient.csv", header, rows)
    plan = _plan(tmp_path)
    patients = _mapping(plan, "patient")
    assert _line(plan, "patient", "_rev")[0] is None
    assert patients.skip_when is not None and patients.skip_when.source == "_deleted"
    assert [(r.when.source, r.reason) for r in patients.skip_rules] == [
        ("data.archived", "soft-deleted in the source (data.archived)")
    ]
    assert _line(plan, "patient", "data.archived")[0] is None


def test_a_visits_copy_of_its_patients_name_and_sex_is_left_to_the_patient(tmp_path: Path) -> None:
    """The same on every visit of one patient, and the patient's record holds it: not migrated, with that
    evidence. What differs from visit to visit (its reason) stays."""
    patients = [[n, f"Given{n}", f"Family{n}", "MF"[n % 2], f"p{n}@example.org"] for n in range(1, 31)]
    _write(tmp_path, "patients.csv", ["patient_id", "first_name", "last_name", "sex", "email"], patients)
    visits = [
        [
            900 + n,
            (n % 30) + 1,
            f"Given{(n % 30) + 1} Family{(n % 30) + 1}",
            "MF"[((n % 30) + 1) % 2],
            f"2024-05-{(n % 28) + 1:02d} 10:00:00",
            30,
            ["Check-up", "Follow-up", "Vaccination"][n % 3],
        ]
        for n in range(90)
    ]
    header = ["visit_id", "patient_id", "patient_name", "patient_sex", "visit_date", "duration_minutes", "reason"]
    _write(tmp_path, "visits.csv", header, visits)
    plan = _plan(tmp_path)
    visit = next(o for o in plan.objects if o.source_table == "visits" and o.target == "appointment")
    lines = {f.source: f for f in visit.fields}
    assert (lines["patient_id"].target, lines["patient_id"].transform) == ("targetable_id", "lookup:contact")
    for copied in ("patient_name", "patient_sex"):
        assert lines[copied].target is None and "a copy of that record's own data" in lines[copied].reason
    assert lines["reason"].target is not None


def test_an_explicit_end_beats_a_mostly_empty_duration_and_code_system_uris_are_not_migrated(tmp_path: Path) -> None:
    """FHIR views: `end_time` is always there, `minutes_duration` rarely; `type_sys` names the code system of
    `type_code` with the same two URIs on every row."""
    systems = ["http://terminology.hl7.org/CodeSystem/v2-0276", "https://clinic.example/fhir/CodeSystem/visit"]
    _write(
        tmp_path,
        "patient_flat.csv",
        ["id", "family", "given", "email"],
        [[n, f"F{n}", f"G{n}", f"p{n}@x.org"] for n in range(1, 41)],
    )
    visits = [
        [
            500 + n,
            (n % 40) + 1,
            f"2024-11-{(n % 28) + 1:02d} 16:00:00",
            f"2024-11-{(n % 28) + 1:02d} 16:30:00",
            30 if n % 10 == 0 else "",
            "Follow-up visit",
            systems[n % 2],
            ["ROUTINE", "FOLLOWUP"][n % 2],
        ]
        for n in range(80)
    ]
    header = ["id", "patient_id", "start_time", "end_time", "minutes_duration", "description", "type_sys", "type_code"]
    _write(tmp_path, "appointment_flat.csv", header, visits)
    plan = _plan(tmp_path)
    assert _line(plan, "appointment_flat", "end_time")[0] == "end_date"
    assert _line(plan, "appointment_flat", "minutes_duration")[0] != "end_date"
    assert _line(plan, "appointment_flat", "type_sys")[0] is None
