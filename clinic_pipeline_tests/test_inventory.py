"""The schema inventory: types, null and sentinel rates, keys, relationships, fingerprint, and no PHI."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from pathlib import Path

import duckdb
import pytest

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.mapping.proposer import propose_plan
from clinic_pipeline.samples import FIXTURE_DIR, copy_fixture
from clinic_pipeline.source.inventory import (
    SchemaInventory,
    ValueType,
    build_inventory,
    mask_example,
    read_inventory,
    write_inventory,
)
from clinic_pipeline.source.reader import open_source

FIXTURES = Path(__file__).parent / "fixtures"


def _inventory(spec: str) -> SchemaInventory:
    con = duckdb.connect()
    return build_inventory(open_source(spec, con), con)


@pytest.fixture(scope="module")
def fixture_inventory() -> SchemaInventory:
    return _inventory(str(FIXTURE_DIR))


def test_column_types_and_formats(fixture_inventory: SchemaInventory) -> None:
    patients = fixture_inventory.table("patients")
    kinds = {c.name: (c.type, c.format) for c in patients.columns}
    assert kinds == {
        "patient_id": ("id", None),
        "first_name": ("text", None),
        "last_name": ("text", None),
        "dob": ("date", "%Y-%m-%d"),
        "email": ("email", None),
        "phone": ("phone", None),
        "address": ("text", None),
        "city": ("text", None),
        "state": ("text", None),
        "zip": ("zip", None),
        "clinic_location": ("text", None),
        "gender": ("text", None),
        "created_at": ("datetime", "%Y-%m-%d %H:%M:%S"),
        "updated_at": ("datetime", "%Y-%m-%d %H:%M:%S"),
    }
    assert patients.created_column == "created_at" and patients.updated_column == "updated_at"
    assert fixture_inventory.time_zone == "America/Chicago" and not fixture_inventory.time_zone_assumed


def test_null_and_sentinel_rates(fixture_inventory: SchemaInventory) -> None:
    patients = fixture_inventory.table("patients")
    email = patients.column("email")
    assert (email.null_count, email.sentinels) == (4, {"placeholder_email": 1})  # 3 missing + none@none.com
    assert email.null_rate == pytest.approx(4 / 25)
    dob = patients.column("dob")
    assert dob.sentinels == {"zero_date": 1} and dob.null_count == 1
    phone = patients.column("phone")
    assert phone.sentinels == {"text": 1, "placeholder_phone": 1}  # N/A and 000-000-0000
    assert "1 phone numbers with an extension" in phone.hints
    assert any("whitespace" in h for h in patients.column("last_name").hints)
    assert patients.column("clinic_location").distinct_count == 3


def test_candidate_keys_and_categorical_values(fixture_inventory: SchemaInventory) -> None:
    patients = fixture_inventory.table("patients")
    assert patients.candidate_keys[0] == "patient_id"
    assert "email" not in patients.candidate_keys  # missing values
    assert patients.column("clinic_location").categories == [
        "Downtown Clinic",
        "Lakeview Health Center",
        "Northside Family Practice",
    ]
    assert patients.column("gender").categories == ["F", "M", "U"]
    for personal in ("first_name", "last_name", "email", "phone", "city", "zip", "dob", "patient_id"):
        assert patients.column(personal).categories is None


def test_spreadsheet_dates_money_and_sensitive_shapes() -> None:
    inv = _inventory(str(FIXTURES / "spreadsheet_export"))
    table = inv.table("patient_list")
    assert (table.column("D.O.B.").type, table.column("D.O.B.").format) == ("date", "%m/%d/%Y")
    assert table.column("Date Added").format == "%m/%d/%Y %I:%M %p"
    assert table.column("Balance").type == "money"
    assert any("SSN" in h for h in table.column("SSN").hints)
    assert inv.time_zone_assumed and any("time zone" in w for w in inv.warnings)


def test_relationships_inferred_from_values() -> None:
    inv = _inventory(str(FIXTURES / "interchange_export"))
    found = {(r.table, r.column, r.ref_table, r.ref_column, r.kind) for r in inv.relationships}
    assert found == {
        ("encounters", "PATIENT", "patients", "Id", "inferred"),
        ("encounters", "ORGANIZATION", "organizations", "Id", "inferred"),
    }
    assert inv.table("patients").candidate_keys[0] == "Id"


def test_declared_relationships_from_sqlite(tmp_path: Path) -> None:
    db_path = tmp_path / "vendor.db"
    with sqlite3.connect(db_path) as db:
        db.executescript((FIXTURES / "vendor_database.sql").read_text())
    inv = _inventory(f"sqlite:///{db_path}")
    found = {(r.table, r.column, r.ref_table, r.ref_column, r.kind) for r in inv.relationships}
    assert found == {
        ("openemr_postcalendar_events", "pc_pid", "patient_data", "pid", "declared"),
        ("openemr_postcalendar_events", "pc_facility", "facility", "id", "declared"),
        ("patient_data", "facility", "facility", "name", "inferred"),
    }


def test_fingerprint_is_stable_and_follows_the_data(tmp_path: Path) -> None:
    first = _inventory(str(copy_fixture(tmp_path / "a")))
    again = _inventory(str(copy_fixture(tmp_path / "b")))
    assert first.fingerprint == again.fingerprint
    assert first.schema_fingerprint == again.schema_fingerprint

    changed = copy_fixture(tmp_path / "c")
    patients = changed / "patients.csv"
    with patients.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    rows.append(["P-1026", "New", "Patient", "2000-01-01", "new.patient@example.com", "312-555-0126",
                 "1 Main St", "Chicago", "IL", "60601", "Downtown Clinic", "F",
                 "2024-05-30 10:00:00", "2024-05-30 10:00:00"])  # fmt: skip
    with patients.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    grown = _inventory(str(changed))
    assert grown.fingerprint != first.fingerprint
    assert grown.schema_fingerprint == first.schema_fingerprint  # same shape: a delta, not a new schema


def test_inventory_json_round_trips_and_holds_no_phi(fixture_inventory: SchemaInventory, tmp_path: Path) -> None:
    path = tmp_path / "inventory" / "schema_inventory.json"
    write_inventory(fixture_inventory, path)
    assert read_inventory(path).fingerprint == fixture_inventory.fingerprint
    text = path.read_text(encoding="utf-8")
    with (FIXTURE_DIR / "patients.csv").open(encoding="utf-8", newline="") as fh:
        patients = list(csv.DictReader(fh))
    for row in patients:
        for column in ("patient_id", "first_name", "last_name", "dob", "email", "phone", "address", "zip"):
            value = row[column].strip()
            if value and value.lower() not in ("n/a", "0000-00-00", "none@none.com", "000-000-0000"):
                assert value not in text, f"{column} value leaked into the inventory"


def test_missing_inventory_file_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(OperatorError, match="clinic-pipeline inventory"):
        read_inventory(tmp_path / "none.json")


def test_min_and_max_of_ordered_columns(fixture_inventory: SchemaInventory) -> None:
    patients = fixture_inventory.table("patients")
    created = patients.column("created_at")
    assert (created.min_value, created.max_value) == ("2019-02-11 09:15:00", "2023-11-30 17:30:00")
    dob = patients.column("dob")
    assert (dob.min_value, dob.max_value) == ("1948", "2010")  # a birth date shows its year only
    for unordered in ("patient_id", "first_name", "email", "phone", "zip", "gender"):
        assert patients.column(unordered).min_value is None and patients.column(unordered).max_value is None

    spreadsheet = _inventory(str(FIXTURES / "spreadsheet_export")).table("patient_list")
    balance = spreadsheet.column("Balance")
    assert (balance.type, balance.min_value, balance.max_value) == ("money", "0.00", "2400.00")
    assert (spreadsheet.column("D.O.B.").min_value, spreadsheet.column("D.O.B.").max_value) == ("1949", "2001")
    assert spreadsheet.column("Date Added").min_value == "2021-03-15 09:30:00"  # parsed with %I:%M %p, not text order


def test_numbers_and_sentinel_dates_in_ranges(tmp_path: Path) -> None:
    folder = tmp_path / "visits"
    folder.mkdir()
    (folder / "visits.csv").write_text(
        "visit_id,member_number,minutes,fee,visit_date,last_seen\n"
        'V-1,100200300,30,"$1,250.00",03/04/2024,1900-01-01\n'
        "V-2,100200300,5,($20.50),12/31/2023,2024-02-01\n"
        "V-3,900800700,120,$0.99,01/15/2024,2023-06-30\n"
        "V-4,900800700,45,$15.00,0000-00-00,2024-01-09\n",
        encoding="utf-8",
    )
    table = _inventory(str(folder)).table("visits")
    minutes, fee = table.column("minutes"), table.column("fee")
    assert (minutes.type, minutes.min_value, minutes.max_value) == ("integer", "5", "120")  # numeric, not text order
    assert (fee.type, fee.min_value, fee.max_value) == ("money", "-20.50", "1250.00")  # (x) is negative
    visit = table.column("visit_date")
    assert (visit.min_value, visit.max_value) == ("2023-12-31", "2024-03-04")
    assert table.column("last_seen").min_value == "2023-06-30"  # 1900-01-01 is a sentinel, not a value
    member = table.column("member_number")
    assert member.type == "integer" and member.min_value is None  # a personal number's extremes identify someone
    assert all(set(e) <= set("*") for e in member.examples)


def test_examples_are_masked_and_hold_no_raw_personal_value(fixture_inventory: SchemaInventory) -> None:
    patients = fixture_inventory.table("patients")
    with (FIXTURE_DIR / "patients.csv").open(encoding="utf-8", newline="") as fh:
        raw = list(csv.DictReader(fh))
    for column in ("patient_id", "first_name", "last_name", "dob", "email", "phone", "address", "city", "zip"):
        examples = patients.column(column).examples
        assert 1 <= len(examples) <= 3 and "*" in "".join(examples), column
        values = {row[column].strip() for row in raw if len(row[column].strip()) > 2}
        assert not any(v in e for v in values for e in examples), f"{column} example holds a raw value"
    assert all(re.fullmatch(r"[a-z]\**(\.\**)?@e\*+\.(com|org|net)", e) for e in patients.column("email").examples)
    assert all(re.fullmatch(r"\d{4}-\*\*-\*\*", e) for e in patients.column("dob").examples)
    assert all(re.fullmatch(r"\d{3}\*\*", e) for e in patients.column("zip").examples)
    assert all(re.search(r"\d{2}$", e) and re.match(r"\D*\d", e) for e in patients.column("phone").examples)
    # Pick-list values are not about one person: shown as they are.
    gender = patients.column("gender")
    assert gender.examples and set(gender.examples) <= set(gender.categories or [])
    assert patients.column("created_at").examples[0].endswith("-** **:**:**")


@pytest.mark.parametrize(
    ("value", "column", "value_type", "value_format", "expected"),
    [
        ("John Doe", "patient_name", "text", None, "J*** D**"),
        ("john@gmail.com", "email", "email", None, "j***@g****.com"),
        ("(555) 123-4567", "phone", "phone", None, "(5**) ***-**67"),
        ("1984-03-02", "dob", "date", "%Y-%m-%d", "1984-**-**"),
        ("03/02/1984 10:15 AM", "registered", "datetime", "%m/%d/%Y %I:%M %p", "**/**/1984 **:** **"),
        ("02139", "zip", "zip", None, "021**"),
        ("MRN0042", "chart_no", "id", None, "MRN****"),
        ("123-45-6789", "ssn", "text", None, "***-**-****"),
        ("E11.9", "icd10_code", "text", None, "E11.9"),
        ("ICD10:E11.9", "diagnosis", "text", None, "ICD10:E11.9"),
        ("99213", "cpt", "integer", None, "99213"),
        ("$1,250.00", "amount_billed", "money", None, "$1,250.00"),
        ("Patient reports pain in the left knee", "visit_notes", "text", None, "[free text, 37 characters]"),
    ],
)
def test_mask_example_shapes(
    value: str, column: str, value_type: ValueType, value_format: str | None, expected: str
) -> None:
    personal = column in ("patient_name", "email", "phone", "dob", "zip", "chart_no", "ssn")
    assert mask_example(value, column=column, value_type=value_type, value_format=value_format, personal=personal) == (
        expected
    )


def test_examples_and_ranges_are_in_the_json_file_without_raw_values(
    fixture_inventory: SchemaInventory, tmp_path: Path
) -> None:
    path = tmp_path / "schema_inventory.json"
    write_inventory(fixture_inventory, path)
    columns = {c["name"]: c for c in json.loads(path.read_text(encoding="utf-8"))["tables"][0]["columns"]}
    assert columns["dob"]["min_value"] == "1948" and len(columns["email"]["examples"]) == 3
    text = path.read_text(encoding="utf-8")
    with (FIXTURE_DIR / "patients.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            for column in ("first_name", "last_name", "email", "phone"):
                value = row[column].strip()
                if len(value) > 2 and value.lower() not in ("n/a", "none@none.com", "000-000-0000"):
                    assert value not in text, f"{column} value leaked into the inventory"


def _large_export(folder: Path, rows: int) -> None:
    """Columns with more distinct values than the shape tests look at: 5 % of the visit times malformed."""
    folder.mkdir()
    con = duckdb.connect()
    con.execute(f"COPY (SELECT 'P-' || i AS patient_id FROM range({rows}) t(i)) TO '{folder / 'patients.csv'}'")
    con.execute(
        f"""COPY (
            SELECT 'V-' || i AS visit_id, 'P-' || (i % {rows // 2}) AS patient_id,
                   CASE WHEN i % 20 = 7 THEN 'unknown ' || i
                        ELSE strftime(TIMESTAMP '2020-01-01' + to_seconds(i * 611), '%m/%d/%Y %H:%M') END AS visit_at,
                   CASE WHEN i % 10 = 0 THEN '' ELSE 'x' || i || '@example.com' END AS email,
                   ['Downtown', 'Uptown', 'Lakeview'][i % 3 + 1] AS location
            FROM range({rows}) t(i)
        ) TO '{folder / "visits.csv"}'"""
    )
    con.close()


def test_large_columns_are_typed_from_a_sample_and_counted_exactly(tmp_path: Path) -> None:
    rows = 60_000
    _large_export(tmp_path / "export", rows)
    inv = _inventory(str(tmp_path / "export"))
    visits = inv.table("visits")

    visit_at = visits.column("visit_at")
    assert (visit_at.type, visit_at.format) == ("datetime", "%m/%d/%Y %H:%M")
    assert visit_at.type_match_rate == pytest.approx(0.95, abs=0.01)  # estimated from the sample
    assert visit_at.distinct_count == rows and visit_at.null_count == 0  # exact over every value
    mismatched = next(h for h in visit_at.hints if h.endswith("do not match %m/%d/%Y %H:%M"))
    assert int(mismatched.split()[0]) == pytest.approx(rows // 20, rel=0.1)
    assert visit_at.min_value == "2020-01-01 00:00:00"

    email = visits.column("email")
    assert (email.type, email.null_count, email.null_rate) == ("email", rows // 10, 0.1)
    assert email.distinct_count == rows - rows // 10 and not email.unique
    assert visits.column("location").categories == ["Downtown", "Lakeview", "Uptown"]
    assert visits.candidate_keys[0] == "visit_id" and visits.column("visit_id").unique

    found = {(r.table, r.column, r.ref_table, r.ref_column, r.coverage) for r in inv.relationships}
    assert ("visits", "patient_id", "patients", "patient_id", 1.0) in found


def test_the_connections_memory_limit_is_left_as_it_was() -> None:
    con = duckdb.connect()
    default = con.execute("SELECT current_setting('memory_limit')").fetchone()
    build_inventory(open_source(str(FIXTURE_DIR), con), con)
    assert con.execute("SELECT current_setting('memory_limit')").fetchone() == default

    con.execute("SET memory_limit = '3GB'")
    chosen = con.execute("SELECT current_setting('memory_limit')").fetchone()
    build_inventory(open_source(str(FIXTURE_DIR), con), con)
    assert con.execute("SELECT current_setting('memory_limit')").fetchone() == chosen


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])


def test_a_prefix_only_one_side_shares_does_not_hide_a_reference(tmp_path: Path) -> None:
    """FHIR views: practitioner ids `pr-kim` beside numeric `1874`; visits that name only `pr-*` ones still
    point at them (the shared `pr-` of the visits' values is not set aside against a key without it)."""
    ids = ["pr-kim", "pr-reyes", "pr-hale", "pr-okafor", "1874", "2055"]
    _write_csv(tmp_path / "practitioner_flat.csv", ["id", "family"], [[i, f"Name{n}"] for n, i in enumerate(ids)])
    visits = [[n, ids[n % 4]] for n in range(40)]
    _write_csv(tmp_path / "visit_flat.csv", ["visit_id", "practitioner_id"], visits)
    rel = next(r for r in _inventory(str(tmp_path)).relationships if r.column == "practitioner_id")
    assert (rel.ref_table, rel.ref_column, rel.coverage) == ("practitioner_flat", "id", 1.0)
    assert rel.value_prefix is None and rel.key_prefix is None


def test_an_unnamed_column_whose_values_single_out_the_providers_points_at_the_users(tmp_path: Path) -> None:
    """Inside a dense 1..20 users key any small integer fits; `pc_aid`'s values all fall on the five users
    whose role is `doctor` (odds 1 in 15,504), so it is a reference to them, and its line is the owner. A run
    of counts (1..5) and numbers spread over both roles are not references."""
    doctors = {2, 3, 5, 9, 11}
    users = [[i, "doctor" if i in doctors else "frontdesk", f"user{i}@clinic.example", "1"] for i in range(1, 21)]
    _write_csv(tmp_path / "users.csv", ["id", "role", "email", "active"], users)
    patients = [[1000 + n, f"Last{n}", f"First{n}"] for n in range(30)]
    _write_csv(tmp_path / "patients.csv", ["patient_id", "lname", "fname"], patients)
    rooms = [4, 6, 7, 13, 2]
    events = [
        [n, 1000 + n % 30, sorted(doctors)[n % 5], n % 5 + 1, rooms[n % 5], f"2024-03-{n % 28 + 1:02d} 09:00:00"]
        for n in range(60)
    ]
    header = ["event_id", "patient_id", "pc_aid", "pc_recurrcount", "pc_room", "appointment_date"]
    _write_csv(tmp_path / "appointments.csv", header, events)
    inv = _inventory(str(tmp_path))
    to_users = {r.column: r for r in inv.relationships if r.ref_table == "users"}
    assert set(to_users) == {"pc_aid"}
    assert to_users["pc_aid"].selects == "role = doctor (5 of 20 rows)"
    plan = propose_plan(inv, 0.75)
    visits = next(o for o in plan.objects if o.source_table == "appointments")
    owner = next(f for f in visits.fields if f.source == "pc_aid")
    assert (owner.target, owner.transform, owner.references) == ("owner_id", "owner_by_email", "users")
    assert "all of them rows with role = doctor" in owner.reason


def test_an_unnamed_column_whose_values_keep_off_a_keys_gaps_points_at_it(tmp_path: Path) -> None:
    """Claim headers 1..300 with every fourth deleted: a column of 150 distinct values none of which is a
    deleted number (odds about 0.75^150 by chance) points at them, though its name (`hdr`) says nothing, and
    the claim's lines fold into the claim. Numbers drawn over the same range (`qty`) land on the gaps too;
    22 numbers that miss them (`batch`) could by chance (odds 0.75^22 ≈ 0.002): neither is a reference."""
    headers = [[n, 100 + n % 40, f"{n % 90 + 10}.00"] for n in range(1, 301) if n % 4]
    _write_csv(tmp_path / "claim_headers.csv", ["id", "patient_id", "total"], headers)
    _write_csv(tmp_path / "patients.csv", ["patient_id", "lname"], [[100 + n, f"Last{n}"] for n in range(40)])
    kept = [h[0] for h in headers]
    lines = [[n, kept[(n * 7) % 150], (n * 37) % 150 + 1, kept[n % 22 * 7], f"D{n % 30:04d}"] for n in range(400)]
    _write_csv(tmp_path / "claim_lines.csv", ["line_id", "hdr", "qty", "batch", "service_code"], lines)
    inv = _inventory(str(tmp_path))
    to_headers = {r.column: r for r in inv.relationships if r.table == "claim_lines" and r.ref_table == "claim_headers"}
    assert set(to_headers) == {"hdr"}
    rel = to_headers["hdr"]
    assert (rel.ref_column, rel.coverage, rel.name_agrees, rel.coincidental) == ("id", 1.0, False, False)
    assert rel.avoids_gaps is not None and rel.avoids_gaps.startswith("none of the key's ")
    plan = propose_plan(inv, 0.75)
    by_table = {o.source_table: o for o in plan.objects}
    assert by_table["claim_headers"].target == "deal"
    assert (
        by_table["claim_lines"].target == "not_migrated"
        and "child rows of claim_headers" in by_table["claim_lines"].reason
    )


def test_e164_numbers_in_a_column_named_phone_number_are_phones_and_say_the_country(tmp_path: Path) -> None:
    """Django's phonenumber_field stores `+919876543210`: digits after a plus, under `phone_number`, whose
    last word (`number`) alone would make it an identifier. They are phones, valid in India, so the
    proposed clinic is Indian (numbers without a country code are read as its)."""
    rows = [[n, f"Patient {n}", f"+9198{n:08d}", f"+9144{24300000 + n}"] for n in range(40)]
    _write_csv(tmp_path / "patients.csv", ["id", "name", "phone_number", "emergency_phone_number"], rows)
    inv = _inventory(str(tmp_path))
    for column in ("phone_number", "emergency_phone_number"):
        profile = inv.table("patients").column(column)
        assert profile.type == "phone" and profile.phone_countries.get("IN") == 1.0
    assert propose_plan(inv, 0.75).clinic.country == "IN"


def test_the_clinics_time_zone_comes_from_the_offsets_its_date_times_are_written_with(tmp_path: Path) -> None:
    """`\\copy` writes timestamptz in the session's zone: `+05:30` on an Indian clinic's rows is Asia/Kolkata,
    India's only zone with that offset. Eastern US offsets fit a dozen zones: the zone stays assumed, and the
    assumption names the offsets and a few zones that fit, for a person to choose."""
    india = tmp_path / "india"
    india.mkdir()
    rows = [[n, f"Patient {n}", f"+9198{47000000 + n}", f"2024-03-{1 + n % 28:02d} 10:12:00+05:30"] for n in range(30)]
    _write_csv(india / "patients.csv", ["id", "name", "phone_number", "created_date"], rows)
    inv = _inventory(str(india))
    assert inv.table("patients").column("created_date").utc_offsets == {"+05:30": 30}
    plan = propose_plan(inv, 0.75)
    assert (plan.clinic.country, plan.clinic.time_zone) == ("IN", "Asia/Kolkata")
    assert "+05:30 on 30 values" in plan.assumptions[1]

    eastern = tmp_path / "eastern"
    eastern.mkdir()
    rows = [
        [
            n,
            f"Patient {n}",
            f"(828) 253-{1000 + n}",
            f"2024-{1 + n % 12:02d}-10 09:00:00{'-05' if n % 12 < 3 else '-04'}",
        ]
        for n in range(30)
    ]
    _write_csv(eastern / "patients.csv", ["id", "name", "phone", "created_at"], rows)
    plan = propose_plan(_inventory(str(eastern)), 0.75)
    assert plan.clinic.time_zone == "UTC"
    assert plan.clinic.country == "US" and "assumed" in plan.assumptions[1]
    assert "-05:00 on 9 values" in plan.assumptions[1] and "America/Detroit" in plan.assumptions[1]
