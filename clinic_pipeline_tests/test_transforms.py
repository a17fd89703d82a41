"""The plan's transform vocabulary, compiled to DuckDB SQL and run on real values."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest

from clinic_pipeline.model.functions import register_functions
from clinic_pipeline.model.transforms import (
    CONTROLS_REMOVED,
    TRANSFORMS,
    UnknownTransformError,
    compile_transform,
    layered_from,
    merge_levels,
    present_sql,
    vocabulary,
)


def _table(columns: dict[str, list[str | None]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    register_functions(con)  # as staging does: the transforms' Python functions (nameparser)
    names = list(columns)
    con.execute(f"CREATE TABLE t (i INTEGER, {', '.join(f'{n} VARCHAR' for n in names)})")
    rows = [(i, *values) for i, values in enumerate(zip(*columns.values(), strict=True))]
    con.executemany(f"INSERT INTO t VALUES ({', '.join('?' * (len(names) + 1))})", rows)
    return con


def _apply(transform: str, values: list[str | None], time_zone: str = "America/Chicago") -> list[tuple]:
    con = _table({"v": values})
    compiled = compile_transform("v", transform, time_zone)
    relation = layered_from("t", compiled.levels)
    return con.execute(f"SELECT {compiled.value_sql}, {compiled.rejected_sql} FROM {relation} ORDER BY i").fetchall()


def test_trim_turns_blank_and_sentinels_into_null() -> None:
    assert _apply("trim", ["  Zoë ", "", "   ", None, "N/A"]) == [
        ("Zoë", False),
        (None, False),
        (None, False),
        (None, False),
        (None, False),
    ]


def test_email_lowercases_and_rejects_placeholders_and_malformed() -> None:
    rows = _apply("lower_email", [" Jose@Example.COM ", "none@none.com", "john@gmail", "a@@b.com", "", None])
    assert rows == [
        ("jose@example.com", False),
        (None, True),
        (None, True),
        (None, True),
        (None, False),
        (None, False),
    ]


def test_phone_normalizes_to_e164_and_keeps_what_it_cannot_parse() -> None:
    rows = _apply("phone", ["555.123.4567", "(555) 123-4567 x204", "+44 20 7946 0958", "123-4567", "000-000-0000"])
    assert [r[0] for r in rows] == ["+15551234567", "+15551234567", "+442079460958", "123-4567", None]
    # Listed as field issues: the dropped extension and the number kept as written.
    assert [r[1] for r in rows] == [False, True, False, True, False]


def test_dates_parse_with_the_plan_format_and_flag_mismatches() -> None:
    rows = _apply("parse_date:%m/%d/%Y", ["03/04/1980", "0000-00-00", "1980-03-04", "01/01/1900", "", "N/A"])
    # 0000-00-00 is no date at all and 01/01/1900 matches the format but is a placeholder: both dropped
    # and listed like a mismatch, so no birth date disappears without a word. Empty and N/A are just empty.
    assert rows == [
        ("1980-03-04", False),
        (None, True),
        (None, True),
        (None, True),
        (None, False),
        (None, False),
    ]


def test_zero_date_times_are_listed_like_any_impossible_date() -> None:
    rows = _apply("parse_datetime:%Y-%m-%d %H:%M:%S", ["0000-00-00 00:00:00", "0000-00-00", "", "2024-07-01 09:30:00"])
    assert rows == [(None, True), (None, True), (None, False), ("2024-07-01T14:30:00Z", False)]


def test_control_characters_are_removed_and_listed_but_tabs_and_line_breaks_kept() -> None:
    values = ["Jo\x00sé", "line\n\tnext\r\n", " \x1b\x7f", "\x01N/A", "plain", None]
    con = _table({"v": values})
    compiled = compile_transform("v", "trim", "UTC")
    assert compiled.issues == [(compiled.cleaned_sql, CONTROLS_REMOVED)]
    relation = layered_from("t", compiled.levels)
    rows = con.execute(f"SELECT {compiled.value_sql}, {compiled.cleaned_sql} FROM {relation} ORDER BY i").fetchall()
    # DEL (0x7f) is not a C0 control: kept. A placeholder is still one once cleaned.
    assert rows == [
        ("José", True),
        ("line\n\tnext\r\n", False),
        ("\x7f", True),
        (None, True),
        ("plain", False),
        (None, False),
    ]


def test_control_characters_can_make_a_value_both_cleaned_and_rejected() -> None:
    con = _table({"v": ["jo\x00@example.com", "jo\x00@@example.com"], "d": ["2024-03-05", "2024\x0b-03-05"]})
    email = compile_transform("v", "lower_email", "UTC")
    dated = compile_transform("d", "parse_date:%Y-%m-%d", "UTC")
    checks = [email.value_sql, email.rejected_sql, email.cleaned_sql, dated.value_sql, dated.cleaned_sql]
    relation = layered_from("t", merge_levels([email.levels, dated.levels]))
    rows = con.execute(f"SELECT {', '.join(checks)} FROM {relation} ORDER BY i").fetchall()
    assert rows == [("jo@example.com", False, True, "2024-03-05", False), (None, True, True, "2024-03-05", True)]


def test_a_table_known_to_hold_no_control_characters_is_only_trimmed() -> None:
    compiled = compile_transform("v", "lower_email", "UTC", control_characters=False)
    assert compiled.cleaned_sql == "FALSE" and [reason for _, reason in compiled.issues] == [compiled.reason]
    assert "regexp_matches" not in " ".join(sql for level in compiled.levels for sql in level.values())


def test_datetimes_are_local_wall_clock_converted_to_utc() -> None:
    rows = _apply("parse_datetime:%Y-%m-%d %H:%M:%S", ["2024-07-01 09:30:00", "2024-01-15 09:30:00"])
    # Chicago is UTC-5 in July (CDT) and UTC-6 in January (CST).
    assert [r[0] for r in rows] == ["2024-07-01T14:30:00Z", "2024-01-15T15:30:00Z"]


def test_money_is_exact_to_the_cent() -> None:
    rows = _apply("cents", ["$1,234.50", "123.45", "0.1", "abc"])
    assert [r[0] for r in rows] == [Decimal("1234.50"), Decimal("123.45"), Decimal("0.10"), None]
    assert rows[3][1] is True


def test_money_reads_accounting_negatives() -> None:
    rows = _apply("cents", ["($45.00)", "45.00-", "( 1,200.5 )", "(abc)"])
    assert rows == [(Decimal("-45.00"), False), (Decimal("-45.00"), False), (Decimal("-1200.50"), False), (None, True)]


def test_unknown_transform_is_a_clear_error() -> None:
    with pytest.raises(UnknownTransformError, match="unknown transform 'rot13'"):
        compile_transform("v", "rot13", "UTC")
    with pytest.raises(UnknownTransformError, match="needs a format"):
        compile_transform("v", "parse_date", "UTC")


def test_phone_numbers_without_a_country_code_are_read_in_the_clinics_country() -> None:
    con = _table({"v": ["020 7946 0958", "07700 900123", "+1 217 555 0134", "0044 20 7946 0958", "7946 0958"]})
    compiled = compile_transform("v", "phone", "Europe/London", country="GB")
    relation = layered_from("t", compiled.levels)
    rows = con.execute(f"SELECT {compiled.value_sql}, {compiled.rejected_sql} FROM {relation} ORDER BY i").fetchall()
    assert rows == [
        ("+442079460958", False),
        ("+447700900123", False),
        ("+12175550134", False),  # its own country code wins
        ("+442079460958", False),
        ("7946 0958", True),  # no area code: kept as written, listed
    ]


def test_phone_extensions_and_all_zero_numbers() -> None:
    rows = _apply("phone", ["555-123-4567 ext. 12", "555 123 4567 X9", "0", "", "  +1 (555) 123-4567  ", "Box 12"])
    assert [r[0] for r in rows] == ["+15551234567", "+15551234567", None, None, "+15551234567", "Box 12"]


def test_money_ignores_currency_sign_separators_and_whitespace() -> None:
    rows = _apply("cents", [" $ 12,345.6\t", "-$3", "1.005", "n/a", None, "12 dollars"])
    assert rows == [
        (Decimal("12345.60"), False),
        (Decimal("-3.00"), False),
        (Decimal("1.01"), False),
        (None, False),
        (None, False),
        (None, True),
    ]


def test_numbers_and_flags_reject_what_they_cannot_read() -> None:
    assert _apply("integer", ["42", " 7 ", "4 apples", "NULL"]) == [
        (42, False),
        (7, False),
        (None, True),
        (None, False),
    ]
    assert _apply("boolean", ["Y", " no ", "maybe", "-"]) == [
        (True, False),
        (False, False),
        (None, True),
        (None, False),
    ]


def test_long_text_is_never_taken_for_a_placeholder() -> None:
    long_text = "None of the above applied; " * 3
    assert _apply("picklist", [long_text, " NONE ", "Null"]) == [
        (long_text.strip(), False),
        (None, False),
        (None, False),
    ]


def test_visit_start_and_end_share_their_parsed_steps() -> None:
    con = _table(
        {"day": ["2024-03-10", "2024-07-01", "2024-07-01", "bad"], "clock": ["01:30", "09:00", "09:00", "10:00"]}
        | {"mins": ["60", "15", "soon", "30"]}
    )
    start = compile_transform("day", "local_datetime:%Y-%m-%d %H:%M", "America/Chicago", ["clock"])
    end = compile_transform("mins", "end_after_minutes:%Y-%m-%d %H:%M", "America/Chicago", ["day", "clock"])
    levels = merge_levels([start.levels, end.levels])
    parsed = [name for level in levels for name in level if name.startswith("_parsed_")]
    assert len(parsed) == 1  # one try_strptime for both lines
    relation = layered_from("t", levels)
    rows = con.execute(
        f"SELECT {start.value_sql}, {end.value_sql}, {end.rejected_sql} FROM {relation} ORDER BY i"
    ).fetchall()
    # 2024-03-10 is the spring-forward day: 01:30 CST is 07:30 UTC and an hour later is 08:30 UTC.
    assert rows == [
        ("2024-03-10T07:30:00Z", "2024-03-10T08:30:00Z", False),
        ("2024-07-01T14:00:00Z", "2024-07-01T14:15:00Z", False),
        ("2024-07-01T14:00:00Z", None, True),
        (None, None, True),
    ]


def test_name_parts_read_last_first_order_titles_and_suffixes() -> None:
    names = ["Luis Ferreira, MD", "FERREIRA, LUIS", "Dr. Ana María de la Cruz", "Madonna", " N/A ", None]
    first = [r[0] for r in _apply("name_part:first", names)]
    last = [r[0] for r in _apply("name_part:last", names)]
    assert first == ["Luis", "LUIS", "Ana", "Madonna", None, None]
    assert last == ["Ferreira", "FERREIRA", "de la Cruz", None, None, None]
    with pytest.raises(UnknownTransformError, match="name_part takes one of title, first, middle, last, suffix"):
        compile_transform("v", "name_part:nickname", "UTC")


def test_present_sql_matches_the_compiled_presence() -> None:
    values = ["x", " ", None, "N/A", "0000-00-00 00:00:00", "n/a/b", "\x00", "N\x00/A", "\x01y"]
    con = _table({"v": values})
    compiled = compile_transform("v", "trim", "UTC")
    relation = layered_from("t", compiled.levels)
    rows = con.execute(f"SELECT {present_sql('v')}, {compiled.value_sql} IS NOT NULL FROM {relation} ORDER BY i")
    assert [a for a, b in rows.fetchall() if a == b] == [True, False, False, False, False, True, False, False, True]


def test_every_registered_transform_compiles_and_is_documented() -> None:
    arguments = {
        "format": "%Y-%m-%d %H:%M",
        "object": "sales_account",
        "selector": "sales_activity_outcomes",
        "part": "last",
    }
    con = _table({"v": ["2024-03-05 10:30"], "d": ["2024-03-05"], "t": ["10:30"]})
    listing = vocabulary()
    for name, transform in TRANSFORMS.items():
        spelled = f"{name}:{arguments[transform.argument]}" if transform.argument else name
        args = ("d", "t") if name in ("end_after_minutes", "end_after_seconds") else ()
        compiled = compile_transform("v", spelled, "America/Chicago", args)
        con.execute(f"SELECT {compiled.value_sql} FROM {layered_from('t', compiled.levels)}").fetchall()
        assert name in listing and transform.doc in listing
        if transform.argument:
            with pytest.raises(UnknownTransformError, match=f"needs a {transform.argument}"):
                compile_transform("v", name, "UTC")
