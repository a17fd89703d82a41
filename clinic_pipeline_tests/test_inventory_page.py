"""The readable inventory page: every profiled fact is on it, no record value that the inventory lacks."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest

from clinic_pipeline.samples import FIXTURE_DIR
from clinic_pipeline.source.inventory import ColumnProfile, SchemaInventory, TableProfile, build_inventory
from clinic_pipeline.source.inventory_page import render_inventory_page, write_inventory_page
from clinic_pipeline.source.reader import open_source

FIXTURES = Path(__file__).parent / "fixtures"


def _inventory(spec: str) -> SchemaInventory:
    con = duckdb.connect()
    return build_inventory(open_source(spec, con), con)


@pytest.fixture(scope="module")
def fixture_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("page") / "inventory" / "schema_inventory.md"
    assert write_inventory_page(_inventory(str(FIXTURE_DIR)), path, path.with_suffix(".html")) == path
    assert not path.with_name(path.name + ".tmp").exists()
    return path.read_text(encoding="utf-8")


def test_overview_and_table_list(fixture_page: str) -> None:
    assert fixture_page.startswith("# Schema inventory\n")
    assert "- Source system: Acme Practice Manager" in fixture_page
    assert "- Time zone: America/Chicago (from the manifest)" in fixture_page
    assert "- Tables: 1, rows: 25" in fixture_page
    assert "| [patients](#table-patients) | patients.csv | 25 | 14 | `patient_id`, " in fixture_page
    assert "## Table: patients" in fixture_page
    assert "## Warnings\n\nNone." in fixture_page


def test_column_rows_show_type_format_rates_and_distinct_counts(fixture_page: str) -> None:
    lines = {line.split(" | ")[0]: line for line in fixture_page.splitlines() if line.startswith("| `")}
    assert lines["| `dob`"] == (
        "| `dob` | date | `%Y-%m-%d` | 100.0 % | 4.0 % | 4.0 % | 1 (zero\\_date 1) | 24 | no | 10 | — |"
    )
    email = lines["| `email`"]
    assert " email | — | " in email and "| 16.0 % | 4.0 % | 1 (placeholder\\_email 1) | 22 | no |" in email
    phone = lines["| `phone`"]
    assert "2 (placeholder\\_phone 1, text 1)" in phone and "1 phone numbers with an extension" in phone
    assert lines["| `patient_id`"].startswith("| `patient_id` | id | — | 100.0 % | 0.0 % | — | — | 25 | yes |")
    assert "| `created_at` | datetime | `%Y-%m-%d %H:%M:%S` |" in lines["| `created_at`"]
    assert "- Created / updated columns: `created_at` / `updated_at`" in fixture_page


def test_categories_are_the_only_values_listed(fixture_page: str) -> None:
    assert "- `gender`: F, M, U" in fixture_page
    assert "- `clinic_location`: Downtown Clinic, Lakeview Health Center, Northside Family Practice" in fixture_page
    with (FIXTURE_DIR / "patients.csv").open(encoding="utf-8", newline="") as fh:
        patients = list(csv.DictReader(fh))
    sentinels = ("n/a", "0000-00-00", "none@none.com", "000-000-0000")
    for row in patients:
        for column in ("patient_id", "first_name", "last_name", "dob", "email", "phone", "address", "zip"):
            value = row[column].strip()
            if value and value.lower() not in sentinels:
                assert value not in fixture_page, f"{column} value leaked into the page"


def test_relationships_with_containment_and_warnings() -> None:
    page = render_inventory_page(_inventory(str(FIXTURES / "interchange_export")))
    assert "| `encounters.PATIENT` | `patients.Id` | inferred | 100.0 % |" in page
    assert "| `encounters.ORGANIZATION` | `organizations.Id` | inferred | 100.0 % |" in page
    assert "(assumed: no time zone in the manifest, confirm it)" in page
    assert "- no time zone in the export's manifest: assumed UTC" in page


def test_declared_keys_from_a_dump_and_awkward_names_are_escaped() -> None:
    page = render_inventory_page(_inventory(str(FIXTURES / "dumps" / "openemr_small.sql")))
    assert "| `patient_data.facility_id` | `facility.id` | declared | not measured (declared) |" in page
    assert "| [openemr\\_postcalendar\\_events](#table-openemr_postcalendar_events) |" in page
    assert "Renée" not in page and "O'Brien" not in page

    spreadsheet = render_inventory_page(_inventory(str(FIXTURES / "spreadsheet_export")))
    assert "| `Pt #` |" in spreadsheet and "| `D.O.B.` | date | `%m/%d/%Y` |" in spreadsheet
    for line in spreadsheet.splitlines():
        if line.startswith("| `"):
            # Every column row keeps its 11 cells: no name or hint opened an extra one.
            assert line.replace("\\|", "").count("|") == 12, line


def test_names_and_categories_cannot_break_the_markdown() -> None:
    column = ColumnProfile(
        name="Amt | `Billed`",
        type="text",
        type_match_rate=1.0,
        null_count=0,
        null_rate=0.0,
        sentinel_count=0,
        distinct_count=2,
        max_length=5,
        unique=False,
        categories=["*VIP*", "<b>x</b>"],
    )
    table = TableProfile(name="Billing_2024", origin="Billing.csv", row_count=4, columns=[column], candidate_keys=[])
    inv = SchemaInventory(source_system="S", time_zone="UTC", time_zone_assumed=False, tables=[table])
    page = render_inventory_page(inv)
    assert "| `` Amt \\| `Billed` `` | text |" in page
    assert "- `` Amt \\| `Billed` ``: \\*VIP\\*, \\<b\\>x\\</b\\>" in page
    assert "## Table: Billing\\_2024" in page and "(#table-billing_2024)" in page
