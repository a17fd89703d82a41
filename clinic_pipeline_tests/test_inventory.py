"""The schema inventory: types, null and sentinel rates, keys, relationships, fingerprint, and no PHI."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import duckdb
import pytest

from clinic_pipeline.samples import FIXTURE_DIR, copy_fixture
from clinic_pipeline.source.inventory import SchemaInventory, build_inventory, read_inventory, write_inventory
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
    with pytest.raises(FileNotFoundError, match="clinic-pipeline inventory"):
        read_inventory(tmp_path / "none.json")
