"""Broken CSV files as clinics send them: each read, or refused in one line naming the file, the real line
and what to do, and never a cell value (PHI)."""

from __future__ import annotations

import sqlite3
import zipfile
from pathlib import Path

import duckdb
import pytest

from clinic_pipeline.source.csv_files import MAX_ROW_BYTES
from clinic_pipeline.source.errors import SourceError
from clinic_pipeline.source.reader import open_source

HEADER = "patient_id,first_name,last_name,dob,email\n"
# Every cell is distinctive, so a message quoting any of them is caught.
ROWS = [f"P-100{i},Given{i},Family{i},1980-01-0{i},person{i}@mail.example\n" for i in range(1, 9)]
CELLS = {cell.strip() for row in ROWS for cell in row.split(",")} | {"Secret", "Zoë", "Renée", "Ñandú"}


def _export(tmp_path: Path, body: str | bytes, name: str = "patients.csv") -> Path:
    folder = tmp_path / "export"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(body.encode() if isinstance(body, str) else body)
    return path


def _refusal(spec: Path | str) -> str:
    with pytest.raises(SourceError) as raised:
        open_source(str(spec), duckdb.connect())
    message = str(raised.value)
    assert "\n" not in message
    assert not [cell for cell in CELLS if cell in message], message
    return message


def _with(row: int, replacement: str) -> str:
    """The file with data row `row` (1-based, so on line row + 1) replaced."""
    rows = list(ROWS)
    rows[row - 1] = replacement
    return HEADER + "".join(rows)


def test_a_row_with_extra_fields_names_its_line_and_the_counts(tmp_path: Path) -> None:
    path = _export(tmp_path, _with(6, "P-1006,Given6,Family6,1980-01-06,person6@mail.example,Secret,Secret\n"))
    assert _refusal(path.parent) == f"{path}: line 7 has 7 fields, the header has 5: fix the row or quote its commas"


def test_a_row_with_missing_fields_names_its_line(tmp_path: Path) -> None:
    path = _export(tmp_path, _with(4, "P-1004,Secret\n"))
    assert _refusal(path.parent) == (
        f"{path}: line 5 has 2 fields, the header has 5: fix the row (a line break inside a field must be quoted)"
    )


def test_a_last_row_with_extra_fields_is_refused_not_taken_for_the_header(tmp_path: Path) -> None:
    # DuckDB's sniffer, left to guess lines to skip, made this last row the header and read no rows at all.
    path = _export(tmp_path, HEADER + "".join(ROWS) + "P-1009,Secret,Secret,1980-01-09,x@mail.example,Secret\n")
    assert _refusal(path) == f"{path}: line 10 has 6 fields, the header has 5: fix the row or quote its commas"


def test_a_line_of_spaces_is_named(tmp_path: Path) -> None:
    path = _export(tmp_path, _with(3, "   \n"))
    assert _refusal(path) == f"{path}: line 4 holds nothing but spaces: delete it"


def test_an_unbalanced_quote_names_the_line_it_opens_on(tmp_path: Path) -> None:
    # The open quote swallows the next rows up to the quote of a later, well-formed field.
    body = _with(3, 'P-1003,"Secret,Family3,1980-01-03,person3@mail.example\n')
    body = body.replace("P-1007,Given7", 'P-1007,"Given7, Secret"')
    path = _export(tmp_path, body)
    assert _refusal(path) == (
        f'{path}: line 4: a quoted field never ends (unbalanced "): close it, and write a quote inside a field as ""'
    )


def test_a_quote_left_open_to_the_end_of_the_file_names_its_line(tmp_path: Path) -> None:
    path = _export(tmp_path, _with(8, 'P-1008,Given8,"Secret,1980-01-08,person8@mail.example\n'))
    assert _refusal(path) == (
        f'{path}: line 9: a quoted field never ends (unbalanced "): close it, and write a quote inside a field as ""'
    )


def test_text_after_a_closing_quote_names_the_line(tmp_path: Path) -> None:
    path = _export(tmp_path, _with(2, 'P-1002,"Secret" Given2,Family2,1980-01-02,person2@mail.example\n'))
    assert _refusal(path) == (
        f"{path}: line 3: text follows a field's closing quote: "
        'quote the whole field and write a quote inside it as ""'
    )


def test_a_multi_line_row_with_the_wrong_count_blames_its_quote(tmp_path: Path) -> None:
    path = _export(tmp_path, _with(2, 'P-1002,"Given2\nSecret",Family2,1980-01-02\n'))
    assert _refusal(path) == (
        f'{path}: line 3: a quoted field runs on to line 4 (unbalanced "?), '
        "leaving the row with 4 fields where the header has 5"
    )


def test_quoted_fields_spaces_after_quotes_and_line_breaks_inside_them_are_read(tmp_path: Path) -> None:
    path = _export(tmp_path, _with(2, 'P-1002, "Given, 2" ,"Family\n2",1980-01-02,"say ""hi"""\n'))
    con = duckdb.connect()
    open_source(str(path), con)
    row = con.execute("SELECT first_name, last_name, email FROM source.patients WHERE _source_row = 2").fetchall()
    assert row == [("Given, 2", "Family\n2", 'say "hi"')]
    assert con.execute("SELECT max(_source_row) FROM source.patients").fetchall() == [(8,)]


def test_mixed_line_breaks_name_the_first_line_unlike_the_header(tmp_path: Path) -> None:
    path = _export(tmp_path, HEADER + "".join(ROWS[:4]) + "".join(ROWS[4:]).replace("\n", "\r\n"))
    assert _refusal(path) == (
        f"{path}: line 6 ends in CR LF where the header ends in LF (mixed line breaks): "
        "save the file with one kind throughout"
    )


def test_semicolon_and_tab_delimiters_are_detected_and_named(tmp_path: Path) -> None:
    semicolons = _export(tmp_path, HEADER.replace(",", ";") + "".join(ROWS).replace(",", ";"))
    con = duckdb.connect()
    assert open_source(str(semicolons), con).tables["patients"].row_count == 8
    tabs = _export(tmp_path, (_with(5, "P-1005,Secret\n")).replace(",", "\t"), name="visits.tsv")
    assert _refusal(tabs) == (
        f"{tabs}: line 6 has 2 fields, the header has 5: fix the row (a line break inside a field must be quoted)"
    )
    broken = _export(tmp_path, _with(5, "P-1005;Secret;Secret;x;y;z\n").replace(",", ";"), name="more.csv")
    assert _refusal(broken) == f"{broken}: line 6 has 6 fields, the header has 5: fix the row or quote its semicolons"


def test_a_cell_beyond_duckdbs_line_size_is_read_whole(tmp_path: Path) -> None:
    scan = "x" * 5_000_000  # an embedded scan: past DuckDB's default 2 MB line size
    path = _export(tmp_path, _with(5, f"P-1005,Given5,Family5,1980-01-05,{scan}\n"))
    con = duckdb.connect()
    open_source(str(path), con)
    rows = con.execute("SELECT _source_row, length(email) FROM source.patients ORDER BY 1").fetchall()
    assert rows == [(r, 5_000_000 if r == 5 else len(f"person{r}@mail.example")) for r in range(1, 9)]


def test_a_row_beyond_the_cap_names_its_real_line_and_the_limit(tmp_path: Path) -> None:
    path = _export(tmp_path, _with(5, f"P-1005,Given5,Family5,1980-01-05,{'x' * (MAX_ROW_BYTES + 10)}\n"))
    assert _refusal(path) == (
        f"{path}: line 6 starts a row of more than 64 MiB, the most a row may hold: "
        "take that value out of the file (a document belongs in documents/)"
    )


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_files_are_read(tmp_path: Path, codec: str) -> None:
    # Python's utf-16 and utf-32 write a byte order mark; utf-16-be writes none (found by its NUL bytes).
    path = _export(tmp_path, (HEADER + "P-1,Zoë,Renée,1980-01-01,z@mail.example\n").encode(codec))
    con = duckdb.connect()
    export = open_source(str(path), con)
    assert export.tables["patients"].columns[:2] == ["patient_id", "first_name"]
    assert con.execute("SELECT first_name, last_name FROM source.patients").fetchall() == [("Zoë", "Renée")]


def test_a_utf16_file_cut_short_names_the_encoding_and_the_line(tmp_path: Path) -> None:
    path = _export(tmp_path, (HEADER + "".join(ROWS)).encode("utf-16") + b"\x00")
    assert _refusal(path) == (
        f"{path}: line 10 is not valid UTF-16LE (as its byte order mark says): save the file as UTF-8"
    )


def test_a_windows_1252_file_is_read(tmp_path: Path) -> None:
    path = _export(tmp_path, (HEADER + "P-1,Zoë,Renée,1980-01-01,z@mail.example\n").encode("cp1252"))
    con = duckdb.connect()
    open_source(str(path), con)
    assert con.execute("SELECT first_name, last_name FROM source.patients").fetchall() == [("Zoë", "Renée")]


def test_a_file_neither_utf8_nor_windows_1252_names_the_line_of_its_first_bad_byte(tmp_path: Path) -> None:
    # 0x81 is ü in the old DOS code page and undefined in Windows-1252: Latin-1 would make it a control code.
    rows = "".join(ROWS[:3]).encode() + b"P-1004,G\x81nter,Family4,1980-01-04,x@mail.example\n"
    path = _export(tmp_path, HEADER.encode() + rows + "".join(ROWS[4:]).encode())
    assert _refusal(path) == (
        f"{path}: line 5 is neither UTF-8 nor Windows-1252 text: save the file as UTF-8, "
        'or name its encoding in manifest.json ("encoding")'
    )


def test_utf8_with_a_windows_1252_line_is_refused_not_half_garbled(tmp_path: Path) -> None:
    utf8 = (HEADER + "P-1,Zoë,Family1,1980-01-01,z@mail.example\n").encode()
    path = _export(tmp_path, utf8 + "P-2,Renée,Family2,1980-01-02,r@mail.example\n".encode("cp1252"))
    assert _refusal(path) == (
        f"{path}: line 3 is not UTF-8 though the lines before it are (two encodings in one file): "
        "save the whole file as UTF-8"
    )


def test_a_file_not_in_the_manifests_encoding_names_both(tmp_path: Path) -> None:
    path = _export(tmp_path, (HEADER + "P-1,Ñandú,Family1,1980-01-01,n@mail.example\n").encode("cp1252"))
    (path.parent / "manifest.json").write_text('{"encoding": "ascii"}')
    assert _refusal(path.parent) == (
        f"{path}: line 2 is not valid ASCII (the encoding manifest.json names): "
        'correct "encoding" in manifest.json, or save the file as UTF-8'
    )


def test_a_zip_member_is_named_inside_its_archive(tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("clinic/patients.csv", _with(6, "P-1006,Secret\n"))
    assert _refusal(archive) == (
        f"{archive}!clinic/patients.csv: line 7 has 2 fields, the header has 5: "
        "fix the row (a line break inside a field must be quoted)"
    )


def test_the_reader_tells_staging_which_tables_may_hold_control_characters(tmp_path: Path) -> None:
    clean = _export(tmp_path, HEADER + "".join(ROWS))
    _export(tmp_path, HEADER + "P-1,Gi\x00ven,Family1,1980-01-01,x@mail.example\n", name="nul.csv")
    _export(tmp_path, (HEADER + "P-1,Given\x1b,Family1,1980-01-01,x@mail.example\n").encode("utf-16"), "esc.csv")
    # Tabs and line breaks are text, not control characters to remove.
    _export(tmp_path, HEADER + 'P-1,"Given\r\n\t1",Family1,1980-01-01,x@mail.example\n', name="tabs.csv")
    tables = open_source(str(clean.parent), duckdb.connect()).tables
    assert {name: t.control_characters for name, t in tables.items()} == {
        "patients": False,
        "nul": True,
        "esc": True,
        "tabs": False,
    }
    # A database's text is not read byte by byte: staging looks at every value.
    db = tmp_path / "clinic.db"
    with sqlite3.connect(db) as sqlite:
        sqlite.execute("CREATE TABLE patients (patient_id TEXT)")
    assert open_source(f"sqlite:///{db}", duckdb.connect()).tables["patients"].control_characters
