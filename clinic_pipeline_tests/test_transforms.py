"""The plan's transform vocabulary, compiled to DuckDB SQL and run on real values."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest

from clinic_pipeline.staging.transforms import UnknownTransformError, compile_transform


def _apply(transform: str, values: list[str | None], time_zone: str = "America/Chicago") -> list[tuple]:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (v VARCHAR, i INTEGER)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(v, i) for i, v in enumerate(values)])
    compiled = compile_transform("v", transform, time_zone)
    return con.execute(f"SELECT {compiled.value_sql}, {compiled.rejected_sql} FROM t ORDER BY i").fetchall()


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


def test_dates_parse_with_the_plan_format_and_flag_mismatches() -> None:
    rows = _apply("parse_date:%m/%d/%Y", ["03/04/1980", "0000-00-00", "1980-03-04", "01/01/1900", ""])
    assert rows == [("1980-03-04", False), (None, False), (None, True), (None, False), (None, False)]


def test_datetimes_are_local_wall_clock_converted_to_utc() -> None:
    rows = _apply("parse_datetime:%Y-%m-%d %H:%M:%S", ["2024-07-01 09:30:00", "2024-01-15 09:30:00"])
    # Chicago is UTC-5 in July (CDT) and UTC-6 in January (CST).
    assert [r[0] for r in rows] == ["2024-07-01T14:30:00Z", "2024-01-15T15:30:00Z"]


def test_money_is_exact_to_the_cent() -> None:
    rows = _apply("cents", ["$1,234.50", "123.45", "0.1", "abc"])
    assert [r[0] for r in rows] == [Decimal("1234.50"), Decimal("123.45"), Decimal("0.10"), None]
    assert rows[3][1] is True


def test_unknown_transform_is_a_clear_error() -> None:
    with pytest.raises(UnknownTransformError, match="unknown transform 'rot13'"):
        compile_transform("v", "rot13", "UTC")
    with pytest.raises(UnknownTransformError, match="needs a format"):
        compile_transform("v", "parse_date", "UTC")
