"""Quality checks on one staged Parquet file: Great Expectations suites plus DuckDB for what GX does poorly.

Blocking checks (a failure must stop the load): `_source_key` present and unique, the fields Freshsales
requires for the target, and every `_lookup_<target>` naming a record staged for that parent. Warnings:
email syntax, money amounts (non-negative, whole cents), dates in a sane range, population per column.

PHI stays out of results: DuckDB turns required fields into presence flags before anything reaches GX, GX
runs with `partial_unexpected_count: 0`, and only whitelisted counts are copied from its results.
Only the columns a check needs leave the Parquet file, so million-row files fit in memory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel, Field

from clinic_pipeline.model.objects import CHOICE_PREFIX, POLICY_FIELDS, POLICY_KEY_FIELDS, FreshsalesObject
from clinic_pipeline.sql import quote_ident

SOURCE_KEY = "_source_key"
LOOKUP_PREFIX = "_lookup_"
# The sandbox's (and Freshsales') accepted address shape; anything else is rejected at load time.
EMAIL_REGEX = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
EARLIEST_DATE = date(1900, 1, 1)
FUTURE_YEARS = 2
_EPOCH = date(1970, 1, 1)
# Copied from GX results: counts and ratios only, never the unexpected values themselves.
_GX_COUNTS = ("element_count", "unexpected_count", "unexpected_percent", "missing_count")
POLICY_FIELD_NAMES = frozenset(name for name, _type, _label in POLICY_FIELDS)
_AMOUNT_NAME = re.compile(r"^(amount|cf_amount_.*)$")


class QualityResult(BaseModel):
    name: str
    blocking: bool
    passed: bool
    observed: dict[str, float | int] = Field(default_factory=dict)  # counts and ratios only (PHI)
    description: str


@dataclass(frozen=True)
class _GxCheck:
    """One expectation on a prepared column, and how its outcome becomes a QualityResult."""

    name: str
    blocking: bool
    description: str
    expectation: str  # class name in great_expectations.expectations
    kwargs: dict[str, Any]


def _schema(con: duckdb.DuckDBPyConnection, path: Path) -> dict[str, str]:
    rows = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _payload_columns(schema: Mapping[str, str]) -> list[str]:
    return [c for c in schema if not c.startswith("_")]


def _required(obj: FreshsalesObject) -> tuple[tuple[str, ...], bool]:
    """The object's required fields and whether all of them (True) or any one (False) must be present."""
    if obj.identity:
        return obj.staged_identity, False
    return obj.staged_required, True


def _present_sql(column: str, schema: Mapping[str, str]) -> str:
    if column not in schema and CHOICE_PREFIX + column in schema:
        column = CHOICE_PREFIX + column  # a required choice travels by name, resolved at load
    if column not in schema:
        return "FALSE"
    quoted = quote_ident(column)
    if schema[column] == "VARCHAR":
        return f"coalesce(trim({quoted}) <> '', FALSE)"
    return f"{quoted} IS NOT NULL"


def _is_date_type(duck_type: str) -> bool:
    return duck_type == "DATE" or duck_type.startswith("TIMESTAMP")


def population_rates(staged_path: Path) -> dict[str, float]:
    """Non-null share of every payload column (0.0 for all when the file has no rows), one DuckDB query."""
    con = duckdb.connect()
    try:
        return _population_rates(con, Path(staged_path), _schema(con, Path(staged_path)))[1]
    finally:
        con.close()


def _population_rates(
    con: duckdb.DuckDBPyConnection, path: Path, schema: Mapping[str, str]
) -> tuple[int, dict[str, float]]:
    """The row count and the non-null share per payload column."""
    columns = _payload_columns(schema)
    counts = ", ".join(f"count({quote_ident(c)})" for c in columns)
    row = con.execute(f"SELECT count(*){', ' + counts if counts else ''} FROM read_parquet(?)", [str(path)]).fetchone()
    assert row is not None
    total = int(row[0])
    return total, {c: (int(n) / total if total else 0.0) for c, n in zip(columns, row[1:], strict=True)}


def _lookup_results(
    con: duckdb.DuckDBPyConnection, path: Path, schema: Mapping[str, str], parent_keys: Mapping[str, Path]
) -> list[QualityResult]:
    results = []
    for column in (c for c in schema if c.startswith(LOOKUP_PREFIX)):
        target = column.removeprefix(LOOKUP_PREFIX)
        name = f"lookup:{target}"
        row = con.execute(f"SELECT count({quote_ident(column)}) FROM read_parquet(?)", [str(path)]).fetchone()
        linked = int(row[0]) if row else 0
        parent = parent_keys.get(target)
        if parent is None or not Path(parent).exists():
            results.append(
                QualityResult(
                    name=name,
                    blocking=True,
                    passed=linked == 0,
                    observed={"linked_rows": linked, "unresolved": linked},
                    description=f"every {target} link names a staged {target}: the parent's staged file was not "
                    "given, so links cannot be confirmed",
                )
            )
            continue
        link = f"c.{quote_ident(column)}"
        sql = (
            f"SELECT count(*) FROM read_parquet(?) c ANTI JOIN read_parquet(?) p ON {link} = p.{SOURCE_KEY} "
            f"WHERE {link} IS NOT NULL"
        )
        row = con.execute(sql, [str(path), str(parent)]).fetchone()
        unresolved = int(row[0]) if row else 0
        results.append(
            QualityResult(
                name=name,
                blocking=True,
                passed=unresolved == 0,
                observed={"linked_rows": linked, "unresolved": unresolved},
                description=f"every non-null {column} is the source key of a staged {target}",
            )
        )
    return results


def _amount_results(con: duckdb.DuckDBPyConnection, path: Path, columns: list[str]) -> list[QualityResult]:
    if not columns:
        return []
    parts = ", ".join(
        f"count(*) FILTER (WHERE {q} < 0), count(*) FILTER (WHERE {q} <> round({q}, 2))"
        for q in map(quote_ident, columns)
    )
    row = con.execute(f"SELECT {parts} FROM read_parquet(?)", [str(path)]).fetchone()
    assert row is not None
    results = []
    for i, column in enumerate(columns):
        negative, fractional = int(row[2 * i]), int(row[2 * i + 1])
        results.append(
            QualityResult(
                name=f"amount:{column}",
                blocking=False,
                passed=negative == 0 and fractional == 0,
                observed={"negative": negative, "more_than_two_decimals": fractional},
                description=f"{column} is non-negative with at most two decimals",
            )
        )
    return results


def _key_checks(schema: Mapping[str, str]) -> tuple[list[str], list[_GxCheck]]:
    # A file without the key column fails both key checks rather than erroring out.
    select = [SOURCE_KEY if SOURCE_KEY in schema else f"NULL::VARCHAR AS {SOURCE_KEY}"]
    key = {"column": SOURCE_KEY}
    return select, [
        _GxCheck("source_key_not_null", True, "every row has a _source_key", "ExpectColumnValuesToNotBeNull", key),
        _GxCheck("source_key_unique", True, "_source_key is unique", "ExpectColumnValuesToBeUnique", key),
    ]


def _required_checks(obj: FreshsalesObject, schema: Mapping[str, str]) -> tuple[list[str], list[_GxCheck]]:
    """Presence flags (TRUE or NULL, never the values) and a not-null expectation on each."""
    fields, all_of = _required(obj)
    if not fields:
        return [], []
    if not all_of:
        any_present = " OR ".join(_present_sql(f, schema) for f in fields)
        check = _GxCheck(
            "required_any:" + "|".join(fields),
            True,
            f"at least one of {', '.join(fields)} is present",
            "ExpectColumnValuesToNotBeNull",
            {"column": "_present_any"},
        )
        return [f"CASE WHEN {any_present} THEN TRUE END AS _present_any"], [check]
    select: list[str] = []
    checks: list[_GxCheck] = []
    for i, field in enumerate(fields):
        flag = f"_present_{i}"
        select.append(f"CASE WHEN {_present_sql(field, schema)} THEN TRUE END AS {flag}")
        checks.append(
            _GxCheck(
                f"required:{field}",
                True,
                f"{field} is present (Freshsales requires it for a {obj.target})",
                "ExpectColumnValuesToNotBeNull",
                {"column": flag},
            )
        )
    return select, checks


def _email_checks(schema: Mapping[str, str]) -> tuple[list[str], list[_GxCheck]]:
    select: list[str] = []
    checks: list[_GxCheck] = []
    for i, column in enumerate(c for c in _payload_columns(schema) if _is_email_column(c, schema)):
        alias = f"_email_{i}"
        select.append(f"nullif(trim({quote_ident(column)}), '') AS {alias}")
        checks.append(
            _GxCheck(
                f"email_valid:{column}",
                False,
                f"{column} looks like an email address",
                "ExpectColumnValuesToMatchRegex",
                {"column": alias, "regex": EMAIL_REGEX},
            )
        )
    return select, checks


def _date_checks(schema: Mapping[str, str], today: date) -> tuple[list[str], list[_GxCheck]]:
    latest = date(today.year + FUTURE_YEARS, today.month, 28 if (today.month, today.day) == (2, 29) else today.day)
    select: list[str] = []
    checks: list[_GxCheck] = []
    for i, column in enumerate(c for c in _payload_columns(schema) if _is_date_type(schema[c])):
        alias = f"_date_{i}"
        # Whole days since 1970 compare as integers: GX's datetime path is several times slower.
        select.append(f"CAST({quote_ident(column)} AS DATE) - DATE '1970-01-01' AS {alias}")
        checks.append(
            _GxCheck(
                f"date_range:{column}",
                False,
                f"{column} lies between {EARLIEST_DATE.isoformat()} and today + {FUTURE_YEARS} years",
                "ExpectColumnValuesToBeBetween",
                {"column": alias, "min_value": (EARLIEST_DATE - _EPOCH).days, "max_value": (latest - _EPOCH).days},
            )
        )
    return select, checks


def _plan(obj: FreshsalesObject, schema: Mapping[str, str], today: date) -> tuple[list[str], list[_GxCheck]]:
    """The SELECT list that prepares the frame GX sees, and the expectations to run on it."""
    select: list[str] = []
    checks: list[_GxCheck] = []
    for part_select, part_checks in (
        _key_checks(schema),
        _required_checks(obj, schema),
        _email_checks(schema),
        _date_checks(schema, today),
    ):
        select += part_select
        checks += part_checks
    return select, checks


def _is_email_column(column: str, schema: Mapping[str, str]) -> bool:
    named = column == "email" or (column.startswith("cf_") and "email" in column)
    return schema[column] == "VARCHAR" and named and column not in POLICY_KEY_FIELDS


def _amount_columns(schema: Mapping[str, str]) -> list[str]:
    return [c for c in _payload_columns(schema) if _AMOUNT_NAME.match(c) and schema[c].startswith("DECIMAL")]


def _run_gx(frame: Any, checks: list[_GxCheck]) -> list[QualityResult]:
    # GX takes seconds to import: only pay for it when checks actually run.
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch = (
        context.data_sources.add_pandas("staged")
        .add_dataframe_asset("rows")
        .add_batch_definition_whole_dataframe("all_rows")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="staged_quality"))
    for check in checks:
        suite.add_expectation(getattr(gxe, check.expectation)(**check.kwargs))
    validation = context.validation_definitions.add(gx.ValidationDefinition(name="staged", data=batch, suite=suite))
    run = validation.run(
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": 0},
    )
    results = []
    for check, outcome in zip(checks, run.results, strict=True):
        observed = {k: outcome.result[k] for k in _GX_COUNTS if isinstance(outcome.result.get(k), int | float)}
        if outcome.exception_info and outcome.exception_info.get("raised_exception"):
            observed["check_errors"] = 1
        results.append(
            QualityResult(
                name=check.name,
                blocking=check.blocking,
                passed=bool(outcome.success),
                observed=observed,
                description=check.description,
            )
        )
    return results


def run_quality_checks(
    obj: FreshsalesObject, staged_path: Path, *, parent_keys: Mapping[str, Path] | None = None
) -> list[QualityResult]:
    """Every check on one staged file; `parent_keys` maps a parent target to its staged Parquet path.

    A `_lookup_<target>` column whose parent file is not given fails (blocking) unless it is empty:
    links that cannot be confirmed must not reach Freshsales.
    """
    path = Path(staged_path)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        schema = _schema(con, path)
        select, checks = _plan(obj, schema, datetime.now(UTC).date())
        frame = con.execute(f"SELECT {', '.join(select)} FROM read_parquet(?)", [str(path)]).df()
        results = _run_gx(frame, checks)
        del frame
        results += _lookup_results(con, path, schema, parent_keys or {})
        results += _amount_results(con, path, _amount_columns(schema))
        total, rates = _population_rates(con, path, schema)
    finally:
        con.close()
    results.append(
        QualityResult(
            name="population_rates",
            blocking=False,
            # The duplicate and shared-value fields fill only when the rules fire: empty is not a gap.
            passed=total == 0 or all(rate > 0 for column, rate in rates.items() if column not in POLICY_FIELD_NAMES),
            observed=rates,
            description="non-null share per payload column; fails when a mapped column is never populated",
        )
    )
    return results
