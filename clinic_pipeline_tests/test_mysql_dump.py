"""mysqldump files as a source: statement splitting, exact text values, declared keys, errors without values.

`test_openemr_database_sql_loads_every_table_and_row` runs only when OPENEMR_DATABASE_SQL names a copy of
OpenEMR's `sql/database.sql`, which is not committed.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from clinic_pipeline.source.errors import SourceError
from clinic_pipeline.source.export import SourceExport
from clinic_pipeline.source.inventory import build_inventory
from clinic_pipeline.source.mysql_dump import iter_statements
from clinic_pipeline.source.reader import open_source

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
        ("INSERT INTO `p` VALUES (1,'Jane',NOW();\n", 3, "cannot parse the VALUES of INSERT into `p` (row 1)"),
        ("INSERT INTO `p` VALUES\n(1,'Jane',Secretname);\n", 4, "cannot parse the VALUES of INSERT into `p` (row 1)"),
        ("INSERT INTO `p` VALUES (1,'Jane',\nUNHEX('Secretname')));\n", 4, "cannot parse the VALUES"),
        ("INSERT INTO `p` VALUES (1,'Jane',);\n", 3, "cannot parse the VALUES"),
        ("INSERT INTO `p` VALUES (1,'Jane','Secretname') garbage;\n", 3, "cannot parse the VALUES"),
        ("CREATE TABLE `r` (`id` int AS (`id` + 1);\n", 3, "cannot parse CREATE TABLE"),
        ("CREATE TABLE `r` (`id`, PRIMARY KEY (`id`));\n", 3, "cannot parse CREATE TABLE"),
        ("CREATE TABLE `r` (`a` int AS (1) VIRTUAL);\n", 3, "CREATE TABLE `r` declares no columns"),
        ("ALTER TABLE `p` ADD CONSTRAINT `f` FOREIGN KEY `id` REFERENCES `q`;\n", 3, "cannot parse ALTER TABLE"),
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
    assert "\n" not in message and not any(value in message for value in PHI)


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


def test_a_few_hundred_thousand_rows_load_whole(tmp_path: Path) -> None:
    # Their speed is measured in benchmarks/bench_mysql_dump.py, as a ratio: a loaded machine fails no test.
    rows = 300_000
    dump = tmp_path / "large.sql"
    _write_large_dump(dump, rows)
    con, export = _open(dump)
    assert export.tables["visits"].row_count == rows
    checks = _rows(
        con,
        "SELECT count(*) FILTER (WHERE id::BIGINT <> _source_row), count(*) FILTER (WHERE seen IS NULL), "
        "max(note) FILTER (WHERE _source_row = 12345) FROM source.visits",
    )
    assert checks == [(0, rows // 10, "O'Neil visit 12345; ok")]


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


# --- Real dumps, the way mysqldump, mariadb-dump and phpMyAdmin write them -----------------------------

REAL_TOOLS = DUMPS / "real_tools.sql"


def _load(tmp_path: Path, sql: str) -> tuple[duckdb.DuckDBPyConnection, SourceExport]:
    dump = tmp_path / "dump.sql"
    dump.write_text(sql, encoding="utf-8")
    con = duckdb.connect()
    return con, open_source(str(dump), con)


def test_real_tool_dump_loads_with_functions_generated_columns_and_keys() -> None:
    con, export = _open(REAL_TOOLS)
    assert {name: t.row_count for name, t in export.tables.items()} == {"facility": 3, "patient": 4, "visit": 2}
    # Generated columns are left out (MySQL computes them), and a warning names them.
    assert export.tables["facility"].columns == [
        *("id", "name", "date_created", "last_updated", "logo", "active", "location", "code"),
    ]
    point = "000000000101000000000000000000f03f000000000000f03f"
    assert _rows(con, "SELECT * EXCLUDE (_source_row) FROM source.facility ORDER BY _source_row") == [
        ("3", "Riverside Clinic", "NOW()", "CURRENT_TIMESTAMP", "89504e47", "1", point, "RC\t1"),
        ("5", "Hill Country Practice", "NOW()", "2024-01-02 03:04:05", "4142", "0", None, "HC"),
        ("7", "Annex", "CURRENT_TIMESTAMP()", "NOW()", None, "1", None, None),
    ]
    assert _rows(con, "SELECT * EXCLUDE (_source_row) FROM source.patient ORDER BY _source_row") == [
        ("101", "Renée", "O'Brien", "1971-04-12", "-12.50", "3", None, 'Allergic to penicillin.\nSee scan "A"'),
        ("102", "Zoë", "D'Arcy", "0000-00-00", "0.00", "5", "414200", "path C:\\scans\\2.pdf\tdone"),
        ("103", "José", "Peña", None, None, None, None, None),
        ("104", "Łukasz", "Nowak-Żak", None, None, None, None, None),
    ]
    assert _rows(con, "SELECT id, seen, fee FROM source.visit ORDER BY _source_row") == [
        ("1", "CURRENT_TIMESTAMP(6)", "-0.5"),
        ("2", "2024-03-10 09:00:00", "1e2"),
    ]
    keys = [(k.table, k.columns, k.ref_table, k.ref_columns) for k in export.foreign_keys]
    assert keys == [("patient", ["facility_id"], "facility", ["id"]), ("visit", ["pid"], "patient", ["pid"])]
    name = REAL_TOOLS.name
    assert export.warnings == [
        f"{name}: facility: generated column(s) name_upper, name_length not loaded: "
        "MySQL computes them from the other columns",
        f"{name}: 1 value kept as SQL text: CURRENT_TIMESTAMP() in facility.date_created",
        f"{name}: 2 values kept as SQL text: NOW() in facility.date_created",
        f"{name}: 1 value kept as SQL text: CURRENT_TIMESTAMP in facility.last_updated",
        f"{name}: 1 value kept as SQL text: NOW() in facility.last_updated",
        f"{name}: 1 value kept as SQL text: CURRENT_TIMESTAMP(…) in visit.seen",
        f"{name}: patient: 2 row(s) leave out column(s) with a declared default, left NULL "
        "(MySQL would fill them in): balance",
    ]


def test_values_kept_as_sql_text_are_named_in_the_inventory() -> None:
    con, export = _open(REAL_TOOLS)
    inv = build_inventory(export, con)
    assert f"{REAL_TOOLS.name}: 2 values kept as SQL text: NOW() in facility.date_created" in inv.warnings
    assert inv.table("facility").column("date_created").null_count == 0  # kept, not dropped to NULL


TYPES = "`n` int(11), `t` varchar(50), `b` blob, `f` bit(1)"


@pytest.mark.parametrize(
    ("values", "expected", "notes"),
    [
        # Numbers as written; negative ones stay in the fast path.
        ("(-15, '-3600.50', NULL, NULL)", ("-15", "-3600.50", None, None), []),
        ("(+7, '1e3', NULL, NULL)", ("+7", "1e3", None, None), []),
        # Escapes: backslash and doubled quotes, \n \t \\ \0, and LIKE's \% \_ keep their backslash.
        (r"(1, 'O\'Brien it''s', NULL, NULL)", ("1", "O'Brien it's", None, None), []),
        (r"(1, 'a\nb\tc\\d\0e\Zf\%g', NULL, NULL)", ("1", "a\nb\tc\\d\0e\x1af\\%g", None, None), []),
        (r'(1, "dq \"x\" y""z", NULL, NULL)', ("1", 'dq "x" y"z', None, None), []),
        # Charset introducers and national strings.
        ("(1, _utf8mb4'Renée', _binary'AB', NULL)", ("1", "Renée", "4142", None), []),
        ("(1, N'Zoë', _binary 0x00FF, NULL)", ("1", "Zoë", "00ff", None), []),
        ("(1, _utf8mb4 0x4A6F73C3A9, NULL, NULL)", ("1", "José", None, None), []),
        # Bit literals: a number in a numeric column.
        ("(b'101', NULL, NULL, b'1')", ("5", None, None, "1"), []),
        ("(B'0', NULL, NULL, b'0')", ("0", None, None, "0"), []),
        # Hex literals become what the column holds: a number, UTF-8 text or (for binary) hex.
        ("(0x41, 0x41, 0x41, NULL)", ("65", "A", "41", None), []),
        ("(x'0102', X'C3A9', x'ABCD', NULL)", ("258", "é", "abcd", None), []),
        (
            "(1, 0xFF00, NULL, NULL)",
            ("1", "ff00", None, None),
            ["1 binary value in text column t.t not UTF-8: kept as hex"],
        ),
        # Deterministic functions of literals are evaluated.
        ("(1, CONCAT('Dr. ', _utf8mb4'Renée', ' ', 2), NULL, NULL)", ("1", "Dr. Renée 2", None, None), []),
        ("(1, CONCAT('a', 0x42, UNHEX('43')), CONCAT(0x01, 'A'), NULL)", ("1", "aBC", "0141", None), []),
        ("(1, CONCAT('a', NULL), UNHEX('zz'), NULL)", ("1", None, None, None), []),
        ("(UNHEX('0101'), unhex('4A6F'), UNHEX(4142), NULL)", ("257", "Jo", "4142", None), []),
        ("(TRUE, 'x' COLLATE utf8mb4_bin, NULL, FALSE)", ("1", "x", None, "0"), []),
        # Time-dependent and other values are kept as their SQL text, and named.
        ("(1, NOW(), NULL, NULL)", ("1", "NOW()", None, None), ["1 value kept as SQL text: NOW() in t.t"]),
        (
            "(1, CONCAT('Dr. ', now()), NULL, NULL)",
            ("1", "CONCAT('Dr. ', now())", None, None),
            ["1 value kept as SQL text: NOW() in t.t"],
        ),
        (
            "(1, CURRENT_TIMESTAMP, NULL, NULL)",
            ("1", "CURRENT_TIMESTAMP", None, None),
            ["1 value kept as SQL text: CURRENT_TIMESTAMP in t.t"],
        ),
        (
            "(1, NOW() - INTERVAL 1 DAY, NULL, NULL)",
            ("1", "NOW() - INTERVAL 1 DAY", None, None),
            ["1 value kept as SQL text: expression in t.t"],
        ),
        (
            "(1, DATE_FORMAT(NOW(), '%Y,%m)'), NULL, DEFAULT)",
            ("1", "DATE_FORMAT(NOW(), '%Y,%m)')", None, "DEFAULT"),
            ["1 value kept as SQL text: DEFAULT in t.f", "1 value kept as SQL text: DATE_FORMAT(…) in t.t"],
        ),
        (
            "(@pid, (SELECT 1), NULL, NULL)",
            ("@pid", "(SELECT 1)", None, None),
            ["1 value kept as SQL text: @variable in t.n", "1 value kept as SQL text: expression in t.t"],
        ),
        # Comments between and inside tuples.
        ("( /* c */ 1, -- x\n 'a' # y\n, NULL, NULL)", ("1", "a", None, None), []),
    ],
)
def test_values_read_as_mysql_stores_them(
    tmp_path: Path, values: str, expected: tuple[str | None, ...], notes: list[str]
) -> None:
    con, export = _load(tmp_path, f"CREATE TABLE t ({TYPES});\nINSERT INTO t VALUES {values};\n")
    assert _rows(con, "SELECT n, t, b, f FROM source.t") == [expected]
    assert export.warnings == [f"dump.sql: {note}" for note in notes]


def test_insert_forms_ignore_replace_column_lists_and_upserts(tmp_path: Path) -> None:
    con, _ = _load(
        tmp_path,
        "CREATE TABLE IF NOT EXISTS `db`.`t` (`Id` int(11), `name` varchar(9), `flag` bit(1));\n"
        "INSERT IGNORE INTO `db`.`t` VALUES (1,'a',b'1'),\n  -- between tuples\n  (2,'b',b'0'),(3,'c',NULL);\n"
        "REPLACE INTO t (flag, id) VALUES (b'1', 4);\n"
        "INSERT LOW_PRIORITY INTO t(`NAME`) VALUE ('e');\n"
        "INSERT INTO t () VALUES ();\n"
        "INSERT INTO t (id, name) VALUES (7,'g') ON DUPLICATE KEY UPDATE name = VALUES(name);\n",
    )
    assert _rows(con, "SELECT Id, name, flag, _source_row FROM source.t ORDER BY _source_row") == [
        ("1", "a", "1", 1),
        ("2", "b", "0", 2),
        ("3", "c", None, 3),
        ("4", None, "1", 4),
        (None, "e", None, 5),
        (None, None, None, 6),
        ("7", "g", None, 7),
    ]


def test_create_table_forms_sqlglot_could_not_read(tmp_path: Path) -> None:
    # Spatial types, column formats, partitions and table options that made a full SQL parser fail
    # or read the statement as an opaque command (which lost the table).
    con, export = _load(
        tmp_path,
        "CREATE TABLE a (g point NOT NULL /*!80003 SRID 4326 */, c char(2) COLUMN_FORMAT FIXED STORAGE DISK,\n"
        "  t longtext COMPRESSED, CONSTRAINT ck CHECK (c <> '') /*!80016 NOT ENFORCED */)\n"
        "  ENGINE=MyISAM PACK_KEYS=0 CHECKSUM=1 TABLESPACE ts1\n"
        "  PARTITION BY RANGE (1) (PARTITION p0 VALUES LESS THAN (10));\n"
        "CREATE TEMPORARY TABLE b (x int, y int AS (x + 1), z int GENERATED ALWAYS AS (x * 2) STORED NOT NULL);\n"
        "CREATE TABLE c LIKE a;\n"
        "INSERT INTO a VALUES (0x0101, 'ok', 'long');\n"
        "INSERT INTO b (x) VALUES (1);\n"
        "INSERT INTO b VALUES (2, DEFAULT, DEFAULT);\n",
    )
    assert {name: t.columns for name, t in export.tables.items()} == {"a": ["g", "c", "t"], "b": ["x"]}
    assert _rows(con, "SELECT * FROM source.a") == [("0101", "ok", "long", 1)]
    assert _rows(con, "SELECT x FROM source.b ORDER BY _source_row") == [("1",), ("2",)]
    assert export.warnings == [
        "dump.sql: b: generated column(s) y, z not loaded: MySQL computes them from the other columns",
        "dump.sql: skipped 1 CREATE TABLE without columns statement(s): they hold no rows",
    ]


def test_mariadb_dump_without_hex_blob_and_in_ansi_mode(tmp_path: Path) -> None:
    # mariadb-dump writes BLOB and BIT values as raw bytes inside plain strings unless given --hex-blob,
    # and the values of generated columns too; --compatible=ansi double-quotes identifiers.
    dump = tmp_path / "mariadb.sql"
    dump.write_bytes(
        b'CREATE TABLE "f" (\n  "id" int(11) NOT NULL,\n'
        b'  "up" varchar(9) GENERATED ALWAYS AS (ucase("name")) VIRTUAL,\n'
        b'  "name" varchar(9) DEFAULT NULL,\n  "logo" mediumblob DEFAULT NULL,\n'
        b"  \"on\" bit(1) NOT NULL DEFAULT b'1',\n"
        b'  "flags" bit(10) DEFAULT NULL,\n  "hash" varbinary(4) DEFAULT NULL\n);\n'
        b"INSERT INTO \"f\" VALUES (1,'ZO\xc3\x8b','Zo\xc3\xab','\x89PNG\\r\\n\\Z\\n\\0','\x01','\x02\xaa','ab12'),"
        b"(2,NULL,NULL,'','\\0','\\0\\0',0x00FF),(3,'A','a',NULL,b'1',682,NULL);\n"
    )
    con, export = _open(dump)
    assert export.tables["f"].columns == ["id", "name", "logo", "on", "flags", "hash"]
    assert _rows(con, "SELECT * EXCLUDE (_source_row) FROM source.f ORDER BY _source_row") == [
        ("1", "Zoë", "89504e470d0a1a0a00", "1", "682", "61623132"),
        ("2", None, "", "0", "0", "00ff"),
        ("3", "a", None, "1", "682", None),
    ]


def test_left_out_columns_with_a_declared_default_are_named(tmp_path: Path) -> None:
    # An install script's INSERTs may leave out columns; MySQL fills in AUTO_INCREMENT ids and defaults.
    _, export = _load(
        tmp_path,
        "CREATE TABLE c (id SERIAL, code varchar(9) NOT NULL, active tinyint(1) NOT NULL DEFAULT 1,\n"
        "  note text DEFAULT NULL, seq int(11) NOT NULL AUTO_INCREMENT, PRIMARY KEY (seq));\n"
        "INSERT INTO c (code) VALUES ('a'),('b');\nINSERT INTO c (code, active, seq) VALUES ('c', 0, 9);\n",
    )
    assert export.warnings == [
        "dump.sql: c: 3 row(s) leave out column(s) with a declared default, left NULL "
        "(MySQL would fill them in): id, active, seq"
    ]


def _mysql_quote(value: str) -> str:
    """A string literal as mysqldump writes it (mysql_real_escape_string)."""
    escapes = {"\0": "\\0", "\n": "\\n", "\r": "\\r", "\\": "\\\\", "'": "\\'", '"': '\\"', "\x1a": "\\Z"}
    return "'" + "".join(escapes.get(ch, ch) for ch in value) + "'"


def test_escaped_strings_round_trip_in_fast_and_value_by_value_reading(tmp_path: Path) -> None:
    # Property-style, with a fixed seed (hypothesis is not a dependency): any text mysqldump escapes
    # reads back exactly, whether its tuple takes the whole-tuple path or (with a bit literal) the slow one.
    rng = random.Random(13)
    alphabet = "aZ09 ,;()'\"\\\n\r\t\0\x1a%_-#/*éŁ€😀"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30))) for _ in range(300)]
    tuples = [f"({i},{_mysql_quote(s)},{'b' if i % 2 else ''}'1')" for i, s in enumerate(texts)]
    con, _ = _load(
        tmp_path, f"CREATE TABLE r (i int, s text, f varchar(3));\nINSERT INTO r VALUES {','.join(tuples)};\n"
    )
    rows = _rows(con, "SELECT s, f FROM source.r ORDER BY _source_row")
    assert [s for s, _ in rows] == texts
    assert [f for _, f in rows] == ["1" if i % 2 == 0 else "\x01" for i in range(len(texts))]


def test_value_by_value_reading_keeps_every_row(tmp_path: Path) -> None:
    # mysqldump --hex-blob: every row holds a hex BLOB and a BIT, so every tuple is read value by value
    # (its speed: benchmarks/bench_mysql_dump.py).
    rows = 100_000
    dump = tmp_path / "hex.sql"
    with dump.open("w", encoding="utf-8") as fh:
        fh.write("CREATE TABLE `d` (`id` int(11), `flag` bit(1), `photo` blob, `name` varchar(20));\n")
        for first in range(1, rows + 1, 5_000):
            values = ",".join(
                f"({i},b'{i % 2}',0x89504E47{i:08X},'P-{i}')" for i in range(first, min(rows, first + 4_999) + 1)
            )
            fh.write(f"INSERT INTO `d` VALUES {values};\n")
    con, export = _open(dump)
    assert export.tables["d"].row_count == rows
    assert _rows(con, "SELECT flag, photo FROM source.d WHERE _source_row = 255") == [("1", "89504e47000000ff")]


# --- The real OpenEMR schema, when a copy is at hand ---------------------------------------------------

OPENEMR_DATABASE_SQL = os.environ.get("OPENEMR_DATABASE_SQL")


@pytest.mark.skipif(not OPENEMR_DATABASE_SQL, reason="set OPENEMR_DATABASE_SQL to OpenEMR's sql/database.sql")
def test_openemr_database_sql_loads_every_table_and_row() -> None:
    # OpenEMR's install script is not committed here (nothing fetched is): point the variable at a copy.
    path = Path(str(OPENEMR_DATABASE_SQL))
    con, export = _open(path)
    by_raw = {t.location: t for t in export.tables.values()}
    # Counted independently: sqlglot parses each statement in full (too slow for large dumps, not here).
    created, expected = set(), {}
    for stmt in iter_statements(path):
        if stmt.text.startswith("/*!") or not stmt.text.upper().startswith(("CREATE", "INSERT", "REPLACE")):
            continue
        parsed = sqlglot.parse_one(stmt.text, read="mysql")
        if isinstance(parsed, exp.Create) and parsed.kind == "TABLE":
            created.add(parsed.this.this.name)
        elif isinstance(parsed, exp.Insert):
            target = parsed.this.this if isinstance(parsed.this, exp.Schema) else parsed.this
            expected[target.name] = expected.get(target.name, 0) + len(parsed.expression.expressions)
    assert set(by_raw) == created
    assert {raw: t.row_count for raw, t in by_raw.items() if t.row_count} == expected
    assert any("kept as SQL text: NOW() in facility.date_created" in w for w in export.warnings)
    assert _rows(con, "SELECT date_created FROM source.facility") == [("NOW()",)]
