"""Staging from a hand-written confirmed plan: every source row is staged or quarantined, nothing silent."""

from __future__ import annotations

import stat
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from clinic_pipeline.mapping.plan import FieldMapping, MappingPlan, ObjectMapping, confirm_plan
from clinic_pipeline.model.objects import ACCOUNTS, CONTACTS
from clinic_pipeline.source.reader import open_source
from clinic_pipeline.staging import stage
from clinic_pipeline.staging.stage import stage_object

EXPORT = """Chart No,Given,Family,Birth,E-mail,Cell,Site
A1,José,García,03/04/1980,Jose@Example.com ,555.123.4567,Downtown Clinic
A2,Zoë,O'Brien,13/45/1999,none@none.com,(555) 222-3333 x12,downtown clinic
A3,  ,  ,01/02/1970,,,Northside
A1,Dup,Licate,01/01/1990,dup@example.com,,Northside
,No,Key,01/01/1990,nokey@example.com,,Northside
A4,Ann,Lee,,ann@example.com,5551112222,
"""


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Patient List.csv").write_text(EXPORT, encoding="utf-8")
    return folder


def _plan() -> MappingPlan:
    fields = [
        FieldMapping(source="Chart No", target="external_id"),
        FieldMapping(source="Given", target="first_name", transform="trim"),
        FieldMapping(source="Family", target="last_name", transform="trim"),
        FieldMapping(
            source="Birth", target="cf_date_of_birth", type="date", transform="parse_date:%m/%d/%Y", custom=True
        ),
        FieldMapping(source="E-mail", target="emails", type="email", transform="lower_email"),
        FieldMapping(source="Cell", target="mobile_number", type="phone", transform="phone"),
        FieldMapping(source="Site", target="sales_accounts", type="lookup", transform="lookup:sales_account"),
    ]
    mapping = ObjectMapping(
        source_table="patient_list", target="contact", also=["sales_account"], source_key="Chart No", fields=fields
    )
    return confirm_plan(MappingPlan(source_fingerprint="x", objects=[mapping]), "tester")


def test_contacts_and_derived_accounts_account_for_every_row(export_dir: Path, tmp_path: Path) -> None:
    con = duckdb.connect()
    export = open_source(str(export_dir), con)
    out, quarantine = tmp_path / "staged", tmp_path / "quarantine"
    accounts = stage_object(ACCOUNTS, _plan(), export, con, staged_dir=out, quarantine_dir=quarantine)
    contacts = stage_object(CONTACTS, _plan(), export, con, staged_dir=out, quarantine_dir=quarantine)

    assert contacts.source_rows == 6
    assert contacts.staged_rows + contacts.quarantined_rows == contacts.source_rows
    staged = {r["_source_key"]: r for r in pq.read_table(contacts.parquet_path).to_pylist()}
    a1, a2, a4 = (f"patient_list:{k}" for k in ("A1", "A2", "A4"))
    assert set(staged) == {a1, a2, a4}
    assert staged[a1]["first_name"] == "José" and staged[a1]["email"] == "jose@example.com"
    assert staged[a1]["cf_date_of_birth"] == "1980-03-04" and staged[a1]["mobile_number"] == "+15551234567"
    assert staged[a1]["_lookup_sales_account"] == staged[a2]["_lookup_sales_account"]
    assert staged[a2]["email"] is None and staged[a2]["cf_date_of_birth"] is None
    assert staged[a4]["_lookup_sales_account"] is None
    assert [(r.source_rows, r.staged, r.quarantined, r.skipped) for r in contacts.reconciliation] == [(6, 3, 3, 0)]

    reasons = {(r["_source_row"], r["reason"]) for r in pq.read_table(contacts.quarantine_path).to_pylist()}
    assert reasons == {
        (3, "none of first_name, last_name, email"),
        (4, "duplicate source key"),
        (5, "missing source key"),
    }
    issues = pq.read_table(contacts.field_issues_path).to_pylist()
    # Row 2: a date past the calendar, a placeholder email, and a phone whose extension was dropped.
    assert {(i["_source_row"], i["field"]) for i in issues} == {(2, "Birth"), (2, "E-mail"), (2, "Cell")}
    assert all(set(i) == {"_source_table", "_source_row", "_source_key", "field", "reason"} for i in issues)

    names = sorted(r["name"] for r in pq.read_table(accounts.parquet_path).to_pylist())
    assert names == ["Downtown Clinic", "Northside"]
    for path in (contacts.parquet_path, contacts.quarantine_path, contacts.field_issues_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


DIRTY_EXPORT = (
    "Chart No,Given,Family,Birth,E-mail,Notes\n"
    'B1,Jo\x00sé,Gar\x1bcía,03/04/1980,b1@example.com,"first line\n\tsecond"\n'
    "B2,Ann,Lee,0000-00-00,b2@example.com,\n"
    "B3,Bo,Ray,0000-00-00 00:00:00,b3\x07@example.com,\x00\n"
    "B4,Cy,Day,,b4@example.com,\n"
)


def test_control_characters_and_zero_dates_are_field_issues_of_staged_rows(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Patient List.csv").write_text(DIRTY_EXPORT, encoding="utf-8")
    con = duckdb.connect()
    export = open_source(str(folder), con)
    assert export.tables["patient_list"].control_characters
    fields = [
        FieldMapping(source="Chart No", target="external_id"),
        FieldMapping(source="Given", target="first_name", transform="trim"),
        FieldMapping(source="Family", target="last_name", transform="trim"),
        FieldMapping(
            source="Birth", target="cf_date_of_birth", type="date", transform="parse_date:%m/%d/%Y", custom=True
        ),
        FieldMapping(source="E-mail", target="emails", type="email", transform="lower_email"),
        FieldMapping(source="Notes", target="cf_notes", type="text", transform="trim", custom=True),
    ]
    mapping = ObjectMapping(source_table="patient_list", target="contact", source_key="Chart No", fields=fields)
    plan = confirm_plan(MappingPlan(source_fingerprint="x", objects=[mapping]), "tester")
    result = stage_object(
        CONTACTS, plan, export, con, staged_dir=tmp_path / "staged", quarantine_dir=tmp_path / "quarantine"
    )

    # Every row is staged, its text without the control characters; tabs and line breaks are text.
    assert (result.staged_rows, result.quarantined_rows) == (4, 0)
    staged = {r["_source_key"]: r for r in pq.read_table(result.parquet_path).to_pylist()}
    b1, b2, b3, b4 = (staged[f"patient_list:B{n}"] for n in range(1, 5))
    assert (b1["first_name"], b1["last_name"], b1["cf_notes"]) == ("José", "García", "first line\n\tsecond")
    assert b1["cf_date_of_birth"] == "1980-03-04"
    assert b2["cf_date_of_birth"] is None and b3["cf_date_of_birth"] is None and b4["cf_date_of_birth"] is None
    assert (b3["email"], b3["cf_notes"]) == ("b3@example.com", None)

    issues = pq.read_table(result.field_issues_path).to_pylist()
    assert all(set(i) == {"_source_table", "_source_row", "_source_key", "field", "reason"} for i in issues)
    date_reason = (
        "does not match the plan's date format %m/%d/%Y, "
        "or is an impossible or placeholder date (0000-00-00, year 1900 or before)"
    )
    # A blank birth date (B4) is simply empty; zero dates are listed like any impossible date.
    assert [(i["_source_row"], i["field"], i["reason"]) for i in issues] == [
        (1, "Family", "control characters removed"),
        (1, "Given", "control characters removed"),
        (2, "Birth", date_reason),
        (3, "Birth", date_reason),
        (3, "E-mail", "control characters removed"),
        (3, "Notes", "control characters removed"),
    ]
    assert result.field_issues == len(issues)


def test_a_row_lost_on_the_way_to_the_staged_file_fails_the_reconciliation(
    export_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A defect that loses a record between the source and the staged file (here: the write drops one)
    # must stop staging with the table named, never pass as a smaller file.
    out, quarantine = tmp_path / "staged", tmp_path / "quarantine"
    con = duckdb.connect()
    export = open_source(str(export_dir), con)
    stage_object(ACCOUNTS, _plan(), export, con, staged_dir=out, quarantine_dir=quarantine)
    write = stage.write_private_parquet

    def losing_one_row(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> None:
        write(con, f"SELECT * FROM ({query}) OFFSET 1" if path == out / "contacts.parquet" else query, path)

    monkeypatch.setattr(stage, "write_private_parquet", losing_one_row)
    with pytest.raises(stage.ReconciliationError, match=r"contacts: .* for patient_list") as raised:
        stage_object(CONTACTS, _plan(), export, con, staged_dir=out, quarantine_dir=quarantine)
    assert "José" not in str(raised.value)
    recon = pq.read_table(quarantine / "contacts_reconciliation.parquet").to_pylist()
    assert recon == [{"source_table": "patient_list", "source_rows": 6, "staged": 2, "quarantined": 3, "skipped": 0}]
