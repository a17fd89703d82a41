"""mysqldump files as a source: statement splitting, exact text values, declared keys, errors without values."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest

from clinic_pipeline.source.inventory import build_inventory
from clinic_pipeline.source.mysql_dump import iter_statements
from clinic_pipeline.source.reader import SourceError, open_source

DUMPS = Path(__file__).parent / "fixtures" / "dumps"
OPENEMR = DUMPS / "openemr_small.sql"


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def _open(path: Path) -> tuple[duckdb.DuckDBPyConnection, object]:
    con = duckdb.connect()
    return con, open_source(str(path), con)


def test_tables_columns_and_row_counts() -> None:
    con, export = _open(OPENEMR)
    counts = {name: t.row_count for name, t in export.tables.items()}
    assert counts == {"facility": 2, "patient_data": 4, "openemr_postcalendar_events": 4, "log": 0}
    table = export.tables["patient_data"]
    assert table.columns[:6] == ["id", "pid", "pubpid", "fname", "lname", "DOB"]
    assert table.origin == f"{OPENEMR}:patient_data" and table.location == "patient_data"
    types = {name: kind for name, kind, *_ in _rows(con, 'DESCRIBE source."openemr_postcalendar_events"')}
    assert types.pop("_source_row") == "BIGINT"
    assert set(types.values()) == {"VARCHAR"}
    assert "pc_eventDate" in types  # original spelling, not snake_cased
    assert export.warnings == []


def test_source_row_follows_insert_order_across_statements() -> None:
    con, _ = _open(OPENEMR)
    rows = _rows(con, "SELECT pc_eid, _source_row FROM source.openemr_postcalendar_events ORDER BY _source_row")
    assert rows == [("1", 1), ("2", 2), ("3", 3), ("4", 4)]


def test_exact_text_values_with_escapes_nulls_binary_and_non_ascii() -> None:
    con, _ = _open(OPENEMR)
    rows = _rows(
        con, "SELECT fname, lname, DOB, email, facility_id, photo, notes FROM source.patient_data ORDER BY _source_row"
    )
    assert rows == [
        ("Renée", "O'Brien", "1971-04-12", "renee@example.com", "3", None, 'Allergic to penicillin.\nSee scan "A"'),
        ("Zoë", "D'Arcy", "0000-00-00", None, "3", "005c4142", "path C:\\scans\\2.pdf"),
        ("José", "Peña", None, "", "5", "89504e47", ""),
        ("Łukasz", "Nowak-Żak", "1966-02-14", "none@none.com", None, None, "tab\there; semicolon"),
    ]
    events = _rows(con, "SELECT pc_pid, pc_title, pc_eventDate, pc_duration FROM source.openemr_postcalendar_events")
    assert events[2:] == [("104", "Follow Up", "2024-03-11", "-15"), (None, "Lunch -- staff", "0000-00-00", "3600.50")]
    # A `;` inside a quoted value does not end the statement.
    assert _rows(con, "SELECT name, postal_code FROM source.facility ORDER BY _source_row")[1] == (
        "Hill Country Practice; Annex",
        "78620",
    )


def test_declared_foreign_keys_reach_the_inventory() -> None:
    con, export = _open(OPENEMR)
    inv = build_inventory(export, con)
    declared = {(r.table, r.column, r.ref_table, r.ref_column) for r in inv.relationships if r.kind == "declared"}
    assert declared == {
        ("patient_data", "facility_id", "facility", "id"),
        ("openemr_postcalendar_events", "pc_pid", "patient_data", "pid"),
        ("openemr_postcalendar_events", "pc_facility", "facility", "id"),
    }
    assert inv.table("patient_data").column("DOB").sentinels == {"zero_date": 1}


def test_dump_is_read_only(tmp_path: Path) -> None:
    before = OPENEMR.read_bytes()
    _open(OPENEMR)
    assert OPENEMR.read_bytes() == before


def test_statement_lines_skip_comments_settings_and_routines() -> None:
    statements = list(iter_statements(OPENEMR))
    starts = [s.text.split(None, 3)[:3] for s in statements if not s.text.startswith("/*!")]
    assert ["CREATE", "TABLE", "`facility`"] in starts
    assert not any(s.text.upper().startswith(("CREATE DEFINER", "BEGIN", "END", "DELIMITER")) for s in statements)
    insert = next(s for s in statements if s.text.startswith("INSERT INTO `patient_data`"))
    lines = OPENEMR.read_text(encoding="utf-8").splitlines()
    assert lines[insert.line - 1].startswith("INSERT INTO `patient_data`")


def test_phpmyadmin_style_dump_with_column_lists_and_alter_table_keys(tmp_path: Path) -> None:
    dump = tmp_path / "export.sql"
    dump.write_text(
        "-- phpMyAdmin SQL Dump\n"
        'SET SQL_MODE = "NO_AUTO_VALUE_ON_ZERO";\n'
        "START TRANSACTION;\n"
        "CREATE TABLE `Providers` (`ProvNum` int(11) NOT NULL, `Abbr` varchar(20) NOT NULL);\n"
        "CREATE TABLE `Appointment` (`AptNum` int(11) NOT NULL, `ProvNum` int(11), `Note` text,\n"
        "  `IsNew` bit(1) DEFAULT b'0');\n"
        "INSERT INTO `Providers` (`Abbr`, `ProvNum`) VALUES\n"
        "('DOC1', 1),\n"
        "('HYG2', 2);\n"
        "INSERT INTO `Appointment` (`AptNum`, `ProvNum`, `IsNew`) VALUES (10, 1, b'1'), (11, 2, b'0');\n"
        "ALTER TABLE `Appointment`\n"
        "  ADD CONSTRAINT `fk_prov` FOREIGN KEY (`ProvNum`) REFERENCES `Providers` (`ProvNum`);\n"
        "CREATE VIEW `v` AS SELECT 1;\n"
        "COMMIT;\n",
        encoding="utf-8",
    )
    con, export = _open(dump)
    assert _rows(con, "SELECT ProvNum, Abbr, _source_row FROM source.providers") == [("1", "DOC1", 1), ("2", "HYG2", 2)]
    assert _rows(con, "SELECT AptNum, ProvNum, Note, IsNew FROM source.appointment") == [
        ("10", "1", None, "1"),
        ("11", "2", None, "0"),
    ]
    keys = [(k.table, k.columns, k.ref_table, k.ref_columns) for k in export.foreign_keys]
    assert keys == [("appointment", ["ProvNum"], "providers", ["ProvNum"])]
    assert export.warnings == [f"{dump.name}: skipped 1 CREATE VIEW statement(s): they hold no rows"]


def test_table_recreated_after_drop_keeps_only_the_new_rows(tmp_path: Path) -> None:
    dump = tmp_path / "twice.sql"
    dump.write_text(
        "CREATE TABLE t (a int(11));\nINSERT INTO t VALUES (1),(2);\n"
        "DROP TABLE IF EXISTS t;\nCREATE TABLE t (a int(11), b varchar(5));\nINSERT INTO t VALUES (3,'x');\n",
        encoding="utf-8",
    )
    con, export = _open(dump)
    assert export.tables["t"].columns == ["a", "b"]
    assert _rows(con, "SELECT a, b, _source_row FROM source.t") == [("3", "x", 1)]


PHI = ("Jane", "Secretname", "555-0199")


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("INSERT INTO `p` VALUES (1,'Jane','Secretname'),(2,'555-0199',);\n", 3, "cannot parse the VALUES"),
        ("INSERT INTO `p` VALUES (1,'Jane','Secretname'),(2,'555-0199');\n", 3, "row 2 has 2 values for 3 columns"),
        ("INSERT INTO `p` VALUES\n(1,'Jane','Secretname'),\n(2,'555-0199',oops);\n", 5, "cannot parse the VALUES"),
        ("INSERT INTO `q` VALUES (1,'Jane','Secretname');\n", 3, "INSERT into `q` before its CREATE TABLE"),
        ("INSERT INTO `p` VALUES (1,'Jane','Secretname);\n", 3, "statement never ends"),
        ("CREATE TABLE `r` (`id` int(11) NOT NULL, PRIMARY KEY (`id`);\n", 3, "cannot parse CREATE TABLE"),
    ],
)
def test_malformed_statement_names_file_and_line_and_no_values(
    tmp_path: Path, body: str, line: int, reason: str
) -> None:
    dump = tmp_path / "broken.sql"
    dump.write_text(
        "-- MySQL dump\nCREATE TABLE `p` (`id` int(11), `fname` varchar(20), `lname` varchar(20));\n" + body,
        encoding="utf-8",
    )
    with pytest.raises(SourceError) as info:
        open_source(str(dump), duckdb.connect())
    message = str(info.value)
    assert message.startswith(f"{dump}: line {line}: ") and reason in message
    assert not any(value in message for value in PHI)


def test_invalid_utf8_text_is_an_error_but_raw_binary_is_hex(tmp_path: Path) -> None:
    dump = tmp_path / "bytes.sql"
    head = b"CREATE TABLE `d` (`id` int(11), `blob` longblob, `name` varchar(9));\n"
    dump.write_bytes(head + b"INSERT INTO `d` VALUES (1,_binary '\xff\xfe\\0','ok');\n")
    con, _ = _open(dump)
    assert _rows(con, "SELECT blob, name FROM source.d") == [("fffe00", "ok")]
    dump.write_bytes(head + b"INSERT INTO `d` VALUES (1,NULL,'Jos\xe9');\n")
    with pytest.raises(SourceError, match=r"line 2: `d` row 1: text that is not UTF-8"):
        open_source(str(dump), duckdb.connect())


def _write_large_dump(path: Path, rows: int, per_statement: int = 2_000) -> None:
    """An extended-INSERT dump shaped like mysqldump's (about 1 MB per statement at this width)."""
    with path.open("w", encoding="utf-8") as fh:
        fh.write(
            "CREATE TABLE `visits` (\n  `id` int(11) NOT NULL,\n  `patient` varchar(20) DEFAULT NULL,\n"
            "  `note` text,\n  `fee` decimal(10,2) DEFAULT NULL,\n  `seen` date DEFAULT NULL,\n"
            "  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n"
        )
        for first in range(1, rows + 1, per_statement):
            values = ",".join(
                f"({i},'P-{i % 997:04d}','O\\'Neil visit {i}; ok',{i % 500}.25,"
                f"{'NULL' if i % 10 == 0 else repr(f'2024-01-{i % 28 + 1:02d}')})"
                for i in range(first, min(rows, first + per_statement - 1) + 1)
            )
            fh.write(f"INSERT INTO `visits` VALUES {values};\n")


def test_a_few_hundred_thousand_rows_load_quickly(tmp_path: Path) -> None:
    rows = 300_000
    dump = tmp_path / "large.sql"
    _write_large_dump(dump, rows)
    started = time.perf_counter()
    con, export = _open(dump)
    elapsed = time.perf_counter() - started
    assert export.tables["visits"].row_count == rows
    checks = _rows(
        con,
        "SELECT count(*) FILTER (WHERE id::BIGINT <> _source_row), count(*) FILTER (WHERE seen IS NULL), "
        "max(note) FILTER (WHERE _source_row = 12345) FROM source.visits",
    )
    assert checks == [(0, rows // 10, "O'Neil visit 12345; ok")]
    assert elapsed < 8, f"{rows} rows took {elapsed:.1f} s"


def test_splitter_handles_multiline_strings_comments_and_shared_lines(tmp_path: Path) -> None:
    dump = tmp_path / "odd.sql"
    dump.write_text(
        "\ufeff# hash comment\n"
        "CREATE TABLE `n` (\n"
        "  -- the patient's note; free text\n"
        "  `id` int(11), /* it's a comment; too */ `body` text\n"
        ");\n"
        "INSERT INTO `n` VALUES (1,'first line;\nsecond line'),\n"
        '(2,\'back\\\\slash \\\\\'); INSERT INTO `n` VALUES (3,"double \\" quoted");\n'
        "INSERT INTO `n` VALUES (4,'a''b'); -- trailing comment\n",
        encoding="utf-8",
    )
    statements = [(s.text.split(None, 3)[:3], s.line) for s in iter_statements(dump)]
    assert [line for _, line in statements] == [2, 6, 8, 9]  # the first INSERT spans lines 6-8
    con, _ = _open(dump)
    assert _rows(con, "SELECT id, body FROM source.n ORDER BY _source_row") == [
        ("1", "first line;\nsecond line"),
        ("2", "back\\slash \\"),
        ("3", 'double " quoted'),
        ("4", "a'b"),
    ]
