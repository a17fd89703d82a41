"""Reading real export shapes into DuckDB: every table a VARCHAR view with `_source_row`, errors that name paths."""

from __future__ import annotations

import re
import shutil
import sqlite3
import zipfile
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from clinic_pipeline.mapping.plan import confirm_plan
from clinic_pipeline.mapping.proposer import propose_plan
from clinic_pipeline.model.objects import STAGED_OBJECTS
from clinic_pipeline.samples import FIXTURE_DIR, copy_fixture
from clinic_pipeline.source.errors import SourceError
from clinic_pipeline.source.export import table_name
from clinic_pipeline.source.inventory import build_inventory
from clinic_pipeline.source.reader import open_source
from clinic_pipeline.staging.stage import stage_object, tables_read

FIXTURES = Path(__file__).parent / "fixtures"


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_folder_export_registers_varchar_views_with_source_rows(tmp_path: Path) -> None:
    con = duckdb.connect()
    export = open_source(str(copy_fixture(tmp_path / "clinic")), con)
    assert export.manifest.time_zone == "America/Chicago" and not export.manifest.time_zone_assumed
    table = export.tables["patients"]
    assert table.row_count == 25 and table.location == "patients.csv"
    assert table.columns[:3] == ["patient_id", "first_name", "last_name"]
    types = {name: kind for name, kind, *_ in _rows(con, 'DESCRIBE source."patients"')}
    assert types.pop("_source_row") == "BIGINT"
    assert set(types.values()) == {"VARCHAR"}
    # Leading zeros, sentinels and whitespace survive as written.
    row = _rows(con, "SELECT dob, email, first_name FROM source.patients WHERE _source_row = 4")[0]
    assert row == ("1948-01-15", "none@none.com", "Margaret ")
    assert _rows(con, "SELECT dob FROM source.patients WHERE patient_id = 'P-1009'") == [("0000-00-00",)]
    assert export.warnings == []


def test_source_row_is_the_data_row_in_the_original_file(tmp_path: Path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    lines = ["n,label"] + [f"{i},row {i}" for i in range(1, 120_001)]
    (folder / "Numbers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    con = duckdb.connect()
    open_source(str(folder), con)
    mismatches = _rows(con, "SELECT count(*) FROM source.numbers WHERE n::BIGINT <> _source_row")
    assert mismatches == [(0,)]


def test_zip_export_reads_members_and_names_the_archive(tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in FIXTURE_DIR.iterdir():
            zf.write(path, f"clinic_export/{path.name}")
        zf.writestr("clinic_export/documents/p1/scan.csv", "not,a,table\n")
    con = duckdb.connect()
    export = open_source(str(archive), con)
    assert set(export.tables) == {"patients"}
    assert export.tables["patients"].origin == f"{archive}!clinic_export/patients.csv"
    assert export.manifest.time_zone == "America/Chicago"
    assert _rows(con, "SELECT count(*) FROM source.patients") == [(25,)]


def test_folder_walk_skips_attachments_and_hidden_folders(tmp_path: Path) -> None:
    # Documents hold data-like files and even a manifest of their own; neither is part of the export's tables.
    export_dir = tmp_path / "unpacked" / "clinic_export"
    shutil.copytree(FIXTURE_DIR, export_dir)
    for folder in ("documents/p1", "Documents/scans", ".git", "__MACOSX"):
        (export_dir / folder).mkdir(parents=True)
        (export_dir / folder / "scan.csv").write_text("not,a,table\n")
    (export_dir / "documents" / "manifest.json").write_text('{"time_zone": "Europe/Paris"}')
    (export_dir / ".hidden.csv").write_text("not,a,table\n")
    (export_dir / "billing").mkdir()
    (export_dir / "billing" / "payments.csv").write_text("payment_id,amount\n1,12.50\n")
    export = open_source(str(tmp_path / "unpacked"), duckdb.connect())
    assert set(export.tables) == {"patients", "payments"}
    assert export.tables["payments"].location == "clinic_export/billing/payments.csv"
    assert export.manifest.time_zone == "America/Chicago"


def test_semicolon_windows_1252_spreadsheet_export() -> None:
    con = duckdb.connect()
    export = open_source(str(FIXTURES / "spreadsheet_export"), con)
    table = export.tables["patient_list"]
    assert table.origin.endswith("Patient List.csv")
    assert table.columns[:4] == ["Pt #", "First Name", "Last Name", "D.O.B."]
    names = _rows(con, 'SELECT "First Name", "Last Name" FROM source.patient_list WHERE _source_row <= 2')
    assert names == [("José", "Peña"), ("Zoë", "O\u2019Brien")]
    assert export.manifest.time_zone_assumed and export.manifest.time_zone == "UTC"


@pytest.mark.parametrize("body_encoding", ["utf-8", "cp1252"])
def test_bom_and_crlf_with_either_body_encoding(tmp_path: Path, body_encoding: str) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    body = "id;name\r\n1;Zoë\r\n2;Renée\r\n".encode(body_encoding)
    (folder / "people.csv").write_bytes(b"\xef\xbb\xbf" + body)
    con = duckdb.connect()
    open_source(str(folder), con)
    assert _rows(con, "SELECT id, name, _source_row FROM source.people ORDER BY 3") == [
        ("1", "Zoë", 1),
        ("2", "Renée", 2),
    ]


def test_manifest_encoding_is_used_and_row_count_mismatch_is_warned(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "people.csv").write_bytes("id,name\n1,Ñandú\n".encode("latin-1"))
    (folder / "manifest.json").write_text('{"encoding": "latin-1", "row_counts": {"people.csv": 2}}')
    con = duckdb.connect()
    export = open_source(str(folder), con)
    assert _rows(con, "SELECT name FROM source.people") == [("Ñandú",)]
    assert export.warnings == ["people.csv: manifest says 2 rows, read 1"]


def test_sqlite_database_with_declared_foreign_keys(tmp_path: Path) -> None:
    db_path = tmp_path / "vendor.db"
    with sqlite3.connect(db_path) as db:
        db.executescript((FIXTURES / "vendor_database.sql").read_text())
    con = duckdb.connect()
    export = open_source(f"sqlite:///{db_path}", con)
    assert set(export.tables) >= {"patient_data", "facility", "openemr_postcalendar_events", "log"}
    rows = _rows(con, "SELECT pid, DOB, _source_row FROM source.patient_data ORDER BY _source_row LIMIT 2")
    assert rows == [("101", "1971-04-12", 1), ("102", "1980-10-30", 2)]
    declared = {(fk.table, tuple(fk.columns), fk.ref_table, tuple(fk.ref_columns)) for fk in export.foreign_keys}
    assert declared == {
        ("openemr_postcalendar_events", ("pc_pid",), "patient_data", ("pid",)),
        ("openemr_postcalendar_events", ("pc_facility",), "facility", ("id",)),
    }


def test_duckdb_parquet_and_json_sources(tmp_path: Path) -> None:
    db_path = tmp_path / "clinic.duckdb"
    with duckdb.connect(str(db_path)) as src:
        src.execute("CREATE TABLE Locations AS SELECT * FROM (VALUES (1, 'North'), (2, 'South')) t(id, name)")
    con = duckdb.connect()
    export = open_source(f"duckdb:///{db_path}", con)
    assert export.tables["locations"].row_count == 2
    assert _rows(con, "SELECT id, name, _source_row FROM source.locations ORDER BY 3")[0] == ("1", "North", 1)

    folder = tmp_path / "mixed"
    folder.mkdir()
    con.execute(f"COPY (SELECT 7 AS visit_id, 12.5 AS fee) TO '{folder / 'visits.parquet'}' (FORMAT parquet)")
    (folder / "Staff.json").write_text('[{"email": "a@example.com", "active": true}]')
    export = open_source(str(folder), con)
    assert set(export.tables) == {"visits", "staff"}
    assert _rows(con, "SELECT visit_id, fee FROM source.visits") == [("7", "12.5")]
    assert _rows(con, "SELECT active FROM source.staff") == [("true",)]


def test_missing_source_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "export"
    with pytest.raises(SourceError, match=re.escape(str(missing))):
        open_source(str(missing), duckdb.connect())
    with pytest.raises(SourceError, match=r"nope\.db"):
        open_source(f"sqlite:///{tmp_path / 'nope.db'}", duckdb.connect())


@pytest.mark.parametrize("spec", ["mssql://sa:s3cret@db.example.com/emr", "sqlserver://sa:s3cret@localhost/openemr"])
def test_database_urls_not_supported_yet_and_never_echo_credentials(spec: str) -> None:
    with pytest.raises(SourceError, match="not supported yet") as info:
        open_source(spec, duckdb.connect())
    assert "s3cret" not in str(info.value)


def test_unreadable_csv_error_carries_no_cell_values(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    shutil.copy(FIXTURE_DIR / "patients.csv", folder / "patients.csv")
    with (folder / "patients.csv").open("a", encoding="utf-8") as fh:
        fh.write('P-9999,"Secret,Patient,1999-01-01\n')  # unterminated quote
    with pytest.raises(SourceError) as info:
        open_source(str(folder), duckdb.connect())
    # The header and 25 rows come first: the quote opens on line 27.
    assert str(info.value) == (
        f'{folder / "patients.csv"}: line 27: a quoted field never ends (unbalanced "): '
        'close it, and write a quote inside a field as ""'
    )


def test_table_names_are_snake_case() -> None:
    assert table_name("Patient List") == "patient_list"
    assert table_name("PatientList") == "patient_list"
    assert table_name("pc_eventDate") == "pc_event_date"
    assert table_name("2024 Billing (Q1)") == "t_2024_billing_q1"
    assert table_name("Zoë's Notes") == "zoe_s_notes"


def test_only_the_requested_tables_are_opened_under_their_usual_names(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    # `B.csv` sorts first and claims `b`; `b.csv` is `b_2` whether or not `B.csv` is read.
    (folder / "B.csv").write_text("id\nupper\n", encoding="utf-8")
    (folder / "b.csv").write_text("id\nlower-1\nlower-2\n", encoding="utf-8")
    (folder / "c.csv").write_text("id\n1\n", encoding="utf-8")
    con = duckdb.connect()
    export = open_source(str(folder), con, tables=["b_2"])
    assert set(export.tables) == {"b_2"} and export.tables["b_2"].row_count == 2
    assert _rows(con, "SELECT id, _source_row FROM source.b_2 ORDER BY 2") == [("lower-1", 1), ("lower-2", 2)]
    registered = _rows(con, "SELECT view_name FROM duckdb_views() WHERE schema_name = 'source'")
    assert registered == [("b_2",)]
    assert set(open_source(str(folder), duckdb.connect()).tables) == {"b", "b_2", "c"}


def test_requested_tables_keep_the_foreign_keys_between_them(tmp_path: Path) -> None:
    db_path = tmp_path / "vendor.db"
    with sqlite3.connect(db_path) as db:
        db.executescript((FIXTURES / "vendor_database.sql").read_text())
    con = duckdb.connect()
    export = open_source(f"sqlite:///{db_path}", con, tables={"openemr_postcalendar_events", "patient_data"})
    assert set(export.tables) == {"openemr_postcalendar_events", "patient_data"}
    declared = {(fk.table, fk.ref_table) for fk in export.foreign_keys}
    assert declared == {("openemr_postcalendar_events", "patient_data")}
    assert _rows(con, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = '_source_data'") == [(2,)]


def test_requesting_a_table_the_export_lacks_names_it(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no table named appointments"):
        open_source(str(copy_fixture(tmp_path / "clinic")), duckdb.connect(), tables=["patients", "appointments"])
    with pytest.raises(SourceError, match="no table named appointments"):
        open_source(str(copy_fixture(tmp_path / "only")), duckdb.connect(), tables=["appointments"])


def test_staging_from_only_the_tables_it_reads_writes_the_same_files(tmp_path: Path) -> None:
    sample = FIXTURES / "sample_shape"
    con = duckdb.connect()
    whole = open_source(str(sample), con)
    plan = confirm_plan(propose_plan(build_inventory(whole, con), 0.75), "tester")
    narrow_tables: set[str] = set()
    for obj in STAGED_OBJECTS:
        stage_object(obj, plan, whole, con, staged_dir=tmp_path / "whole", quarantine_dir=tmp_path / "whole_q")
        # A fresh connection per object, as a pipeline step has, holding just what this object reads.
        tables = tables_read(obj, plan)
        step_con = duckdb.connect()
        narrow = open_source(str(sample), step_con, tables=tables)
        narrow_tables |= set(narrow.tables)
        stage_object(obj, plan, narrow, step_con, staged_dir=tmp_path / "narrow", quarantine_dir=tmp_path / "narrow_q")
    assert narrow_tables < set(whole.tables)  # some tables were never read
    written = sorted(p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("*.parquet"))
    assert len(written) >= len(STAGED_OBJECTS)
    for rel in written:
        assert pq.read_table(tmp_path / "narrow" / rel).equals(pq.read_table(tmp_path / "whole" / rel)), rel
    for rel in sorted(p.relative_to(tmp_path / "whole_q") for p in (tmp_path / "whole_q").rglob("*.parquet")):
        assert pq.read_table(tmp_path / "narrow_q" / rel).equals(pq.read_table(tmp_path / "whole_q" / rel)), rel
