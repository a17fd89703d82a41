"""The inventory on a generated clinic, three ways: CSV folder, SQLite database, Latin-1 `;` CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest

from clinic_pipeline.samples.generator import TABLE_NAMES, generate_clinic
from clinic_pipeline.source.inventory import SchemaInventory, build_inventory
from clinic_pipeline.source.reader import open_source

EXPECTED_TYPES = {
    ("patients", "email"): "email",
    ("patients", "phone"): "phone",
    ("patients", "date_of_birth"): "date",
    ("patients", "created_at"): "datetime",
    ("appointments", "appointment_date"): "date",
    ("appointments", "start_time"): "time",
    ("appointments", "duration_minutes"): "integer",
    ("billing_encounters", "amount_billed"): "money",
    ("billing_encounters", "invoice_number"): "id",
    ("patients", "newsletter_opt_in"): "boolean",
    ("billing_encounters", "cpt_code"): "code",  # five digits, like a ZIP: the name decides
    ("billing_encounters", "icd10_code"): "code",  # some with an `ICD10:` prefix
    ("treatment_plans", "procedure_codes"): "code",  # `;`-separated lists
    ("lab_results", "loinc_code"): "code",
    ("patients", "zip"): "zip",
}
CHILD_KEYS = ("appointments", "billing_encounters", "insurance_policies", "lab_results", "treatment_plans", "documents")


def _inventory(spec: str) -> SchemaInventory:
    con = duckdb.connect()
    return build_inventory(open_source(spec, con), con)


def _latin1_semicolons(source: Path, target: Path) -> Path:
    """The same export as a European Excel would save it: Windows-1252, `;` between fields."""
    target.mkdir()
    for path in source.glob("*.csv"):
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        with (target / path.name).open("w", encoding="cp1252", errors="replace", newline="") as fh:
            csv.writer(fh, delimiter=";").writerows(rows)
    return target


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SchemaInventory]:
    root = tmp_path_factory.mktemp("generated")
    folder = generate_clinic(root / "csv", patients=300, seed=11)
    database = generate_clinic(root / "sqlite", patients=300, seed=11, fmt="sqlite")
    return {
        "csv": _inventory(folder.source_spec),
        "sqlite": _inventory(database.source_spec),
        "latin1": _inventory(str(_latin1_semicolons(root / "csv", root / "latin1"))),
    }


@pytest.mark.parametrize("variant", ["csv", "sqlite", "latin1"])
def test_every_table_with_its_rows_and_types(exports: dict[str, SchemaInventory], variant: str) -> None:
    inventory = exports[variant]
    tables = {t.name: t for t in inventory.tables}
    assert set(tables) == set(TABLE_NAMES)
    assert (
        tables["patients"].row_count
        == exports["csv"].tables[[t.name for t in exports["csv"].tables].index("patients")].row_count
    )
    for (table, column), expected in EXPECTED_TYPES.items():
        assert tables[table].column(column).type == expected, (variant, table, column)
    assert "patient_id" in tables["patients"].candidate_keys
    # The Latin-1 copy has no manifest: its zone is assumed, and said so.
    assert inventory.time_zone == "America/Chicago" if variant != "latin1" else inventory.time_zone_assumed


@pytest.mark.parametrize("variant", ["csv", "sqlite", "latin1"])
def test_children_point_at_their_patients(exports: dict[str, SchemaInventory], variant: str) -> None:
    found = {(r.table, r.column): r for r in exports[variant].relationships if r.ref_table == "patients"}
    for table in CHILD_KEYS:
        relationship = found[(table, "patient_id")]
        assert relationship.ref_column == "patient_id"
        # The SQLite export declares its foreign keys; from CSV they are inferred, orphans and all.
        if variant == "sqlite":
            assert relationship.kind == "declared"
        else:
            assert (
                relationship.kind == "inferred" and relationship.coverage is not None and relationship.coverage >= 0.9
            )
