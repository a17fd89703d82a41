"""Excel exports from report screens: a table per sheet, cells as the text a person sees, then staged."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import openpyxl
import pyarrow.parquet as pq
import pytest

from clinic_pipeline.mapping.plan_check import confirm_checked
from clinic_pipeline.mapping.proposer import propose_plan
from clinic_pipeline.model.objects import STAGED_OBJECTS
from clinic_pipeline.source.errors import SourceError
from clinic_pipeline.source.inventory import build_inventory
from clinic_pipeline.source.reader import open_source
from clinic_pipeline.staging.stage import stage_object

PATIENTS = [
    ["Pt #", "First Name", "Last Name", "D.O.B.", "E-mail Address", "Zip", "Balance", "Active?", None, "Notes"],
    ["P1", "José", "Peña", datetime(1980, 3, 4), "jose@example.com", "02139", 1234.5, True, "x", "first"],
    [None] * 10,  # a blank row between records: not a record
    ["P2", "Zoë", "O'Brien", datetime(1975, 12, 1), "zoe@example.com", "60601", 0.1 + 0.2, False, None, None],
    ["P3", "Ann", "Lee", datetime(1990, 6, 30), None, "60602", 12.0, True, None, "third"],
]
VISITS = [
    ["Appt ID", "Pt #", "Start", "End", "Reason"],
    ["A1", "P1", datetime(2024, 1, 10, 8, 30), datetime(2024, 1, 10, 9, 0), "Annual physical"],
    ["A2", "P2", datetime(2024, 1, 11, 13, 15), datetime(2024, 1, 11, 13, 45), "Follow-up"],
]


def _workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
        for column in sheet.iter_cols(min_row=2):
            for cell in column:
                if isinstance(cell.value, datetime):
                    cell.number_format = "mm/dd/yyyy hh:mm" if cell.value.hour or cell.value.minute else "mm/dd/yyyy"
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def test_each_sheet_is_a_table_of_text_cells(tmp_path: Path) -> None:
    _workbook(tmp_path / "export" / "Practice Export.xlsx", {"Patients": PATIENTS, "Appointments": VISITS, "Empty": []})
    con = duckdb.connect()
    export = open_source(str(tmp_path / "export"), con)
    assert set(export.tables) == {"practice_export_patients", "practice_export_appointments"}
    table = export.tables["practice_export_patients"]
    assert table.origin.endswith("Practice Export.xlsx!Patients") and table.row_count == 3
    assert table.columns[:5] == ["Pt #", "First Name", "Last Name", "D.O.B.", "E-mail Address"]
    assert table.columns[-2:] == ["column_9", "Notes"]  # a blank header cell still names its column
    rows = con.execute(
        'SELECT "Pt #", "D.O.B.", Zip, Balance, "Active?", _source_row FROM source.practice_export_patients ORDER BY 6'
    ).fetchall()
    assert rows == [
        ("P1", "1980-03-04", "02139", "1234.5", "TRUE", 1),
        ("P2", "1975-12-01", "60601", "0.3", "FALSE", 2),
        ("P3", "1990-06-30", "60602", "12", "TRUE", 3),
    ]
    (start,) = con.execute('SELECT "Start" FROM source.practice_export_appointments WHERE _source_row = 1').fetchone()
    assert start == "2024-01-10 08:30:00"


def test_a_workbook_export_is_proposed_confirmed_and_staged(tmp_path: Path) -> None:
    export_dir = tmp_path / "export"
    _workbook(export_dir / "Patient List.xlsx", {"Sheet1": PATIENTS})
    _workbook(export_dir / "Appointments.xlsx", {"Sheet1": VISITS})
    (export_dir / "manifest.json").write_text('{"time_zone": "America/Chicago"}')
    con = duckdb.connect()
    export = open_source(str(export_dir), con)
    assert set(export.tables) == {"patient_list", "appointments"}  # single sheets take the file's name
    inventory = build_inventory(export, con)
    plan = confirm_checked(propose_plan(inventory, 0.75), "tester", [t.name for t in inventory.tables])
    out = tmp_path / "out"
    results = {
        obj.name: stage_object(obj, plan, export, con, staged_dir=out / "staged", quarantine_dir=out / "quarantine")
        for obj in STAGED_OBJECTS
    }
    contacts = {r["_source_key"]: r for r in pq.read_table(results["contacts"].parquet_path).to_pylist()}
    assert set(contacts) == {"patient_list:P1", "patient_list:P2", "patient_list:P3"}
    assert contacts["patient_list:P1"]["cf_date_of_birth"] == "1980-03-04"
    visits = {r["_source_key"]: r for r in pq.read_table(results["appointments"].parquet_path).to_pylist()}
    assert visits["appointments:A1"]["from_date"] == "2024-01-10T14:30:00Z"  # 08:30 CST
    assert visits["appointments:A1"]["_lookup_contact"] == "patient_list:P1"
    assert visits["appointments:A1"]["title"] == "Annual physical"


def test_old_excel_files_are_refused_by_name_not_skipped(tmp_path: Path) -> None:
    export_dir = tmp_path / "export"
    _workbook(export_dir / "Patient List.xlsx", {"Sheet1": PATIENTS})
    (export_dir / "Billing.xls").write_bytes(b"\xd0\xcf\x11\xe0 not read")
    with pytest.raises(SourceError, match=r"Billing\.xls: old-style Excel \(\.xls\) is not read"):
        open_source(str(export_dir), duckdb.connect())


def test_a_damaged_workbook_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "Patients.xlsx").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SourceError, match=r"Patients\.xlsx: not a readable Excel workbook"):
        open_source(str(tmp_path / "Patients.xlsx"), duckdb.connect())
