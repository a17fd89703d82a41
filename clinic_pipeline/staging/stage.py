"""Stage one Freshsales object from the confirmed plan: DuckDB SQL in, Parquet out.

The plan alone drives this module: no source column name appears here. Every source row ends up
either in `staged/<object>.parquet` or in `quarantine/<object>.parquet` with a reason; values the
target cannot use are dropped from the record and listed in `quarantine/<object>_field_issues.parquet`
(file, row, field, reason: no values, so operators can read it without seeing PHI).

Parquet layout: `_source_key`, `_source_table`, `_source_row`, `_lookup_<object>` (a parent's source
key, resolved to a Freshsales id at load time), then the payload columns named by their Freshsales
field; `cf_*` columns travel in the record's `custom_field`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from clinic_pipeline.mapping.plan import MappingPlan, ObjectMapping
from clinic_pipeline.source.reader import SourceExport
from clinic_pipeline.staging.objects import StagedObject
from clinic_pipeline.staging.transforms import compile_transform, quote_ident, quote_literal

SOURCE_KEY_FIELD = "cf_source_key"
# A contact Freshsales accepts needs something to call it by.
REQUIRED_ANY: dict[str, tuple[str, ...]] = {
    "contact": ("first_name", "last_name", "email"),
    "sales_account": ("name",),
}
# Freshsales contacts take the primary address as `email`; plans may name the list field.
FIELD_ALIASES = {"emails": "email"}


@dataclass(frozen=True)
class StageResult:
    object: str
    parquet_path: Path
    source_rows: int  # rows of the source tables mapped straight onto this object
    derived_rows: int  # records derived from lookup values in other tables (e.g. one account per location)
    staged_rows: int
    quarantined_rows: int
    field_issues: int
    quarantine_path: Path
    field_issues_path: Path


def _payload_name(target: str) -> str:
    return FIELD_ALIASES.get(target, target)


def _direct_select(mapping: ObjectMapping, obj: StagedObject, time_zone: str) -> tuple[str, list[str]]:
    """SELECT of one source table mapped straight onto `obj`, and the field-issue SELECTs over it."""
    if not mapping.source_key:
        raise ValueError(f"plan: table {mapping.source_table!r} has no source_key; the loader needs one")
    key = f"nullif(trim({quote_ident(mapping.source_key)}), '')"
    columns = [
        "FALSE AS _derived",
        f"{key} AS _source_key",
        f"{quote_literal(mapping.source_table)} AS _source_table",
        "_source_row",
    ]
    issues: list[str] = []
    for i, field in enumerate(mapping.mapped_fields()):
        compiled = compile_transform(field.source, field.transform, time_zone)
        name, _, parent = (field.transform or "").partition(":")
        if name == "lookup":
            parent_key = f"{quote_literal(f'{mapping.source_table}.{field.source}:')} || lower({compiled.value_sql})"
            columns.append(f"{parent_key} AS {quote_ident('_lookup_' + parent)}")
            continue
        columns.append(f"{compiled.value_sql} AS {quote_ident(_payload_name(field.target or ''))}")
        if compiled.rejected_sql != "FALSE":
            columns.append(f"{compiled.rejected_sql} AS _rejected_{i}")
            issues.append(
                f"SELECT _source_table, _source_row, _source_key, {quote_literal(field.source)} AS field, "
                f"{quote_literal(compiled.reason)} AS reason FROM stage_rows WHERE _rejected_{i}"
            )
    if obj.key_field == SOURCE_KEY_FIELD:
        columns.append(f"{key} AS {SOURCE_KEY_FIELD}")
    select = f"SELECT {', '.join(columns)} FROM source.{quote_ident(mapping.source_table)}"
    return select, issues


def _derived_select(mapping: ObjectMapping, source: str, time_zone: str) -> str:
    """Parents named by a lookup column (e.g. a clinic location on each patient): one record per value."""
    compiled = compile_transform(source, "trim", time_zone)
    key = f"{quote_literal(f'{mapping.source_table}.{source}:')} || lower({compiled.value_sql})"
    return (
        f"SELECT TRUE AS _derived, {key} AS _source_key, {quote_literal(mapping.source_table)} AS _source_table, "
        f"min(_source_row) AS _source_row, arg_min({compiled.value_sql}, _source_row) AS name, "
        f"{key} AS {SOURCE_KEY_FIELD} "
        f"FROM source.{quote_ident(mapping.source_table)} WHERE {compiled.value_sql} IS NOT NULL GROUP BY ALL"
    )


def _write_private_parquet(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    con.execute(f"COPY ({query}) TO {quote_literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd)")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def stage_object(
    obj: StagedObject,
    plan: MappingPlan,
    export: SourceExport,
    con: duckdb.DuckDBPyConnection,
    *,
    staged_dir: Path,
    quarantine_dir: Path,
) -> StageResult:
    time_zone = export.manifest.time_zone
    selects: list[str] = []
    issue_selects: list[str] = []
    source_rows = 0
    for mapping in plan.objects:
        if mapping.target == obj.target:
            select, issues = _direct_select(mapping, obj, time_zone)
            selects.append(select)
            issue_selects.extend(issues)
            source_rows += export.tables[mapping.source_table].row_count
        for field in mapping.mapped_fields():
            if field.transform == f"lookup:{obj.target}" and mapping.target != obj.target:
                selects.append(_derived_select(mapping, field.source, time_zone))
    if not selects:
        raise ValueError(f"the confirmed plan maps nothing to {obj.target}")

    con.execute(f"CREATE OR REPLACE TEMP TABLE stage_rows AS {' UNION ALL BY NAME '.join(selects)}")
    required = (
        " OR ".join(
            f"{quote_ident(c)} IS NOT NULL"
            for c in REQUIRED_ANY.get(obj.target, ())
            if c in {d[0] for d in con.execute("DESCRIBE stage_rows").fetchall()}
        )
        or "TRUE"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE stage_verdict AS
        SELECT *, CASE
            WHEN _source_key IS NULL THEN 'missing source key'
            WHEN row_number() OVER (PARTITION BY _source_key ORDER BY _source_table, _source_row) > 1
                THEN 'duplicate source key'
            WHEN NOT ({required}) THEN {quote_literal("none of " + ", ".join(REQUIRED_ANY.get(obj.target, ())))}
        END AS _quarantine_reason
        FROM stage_rows"""
    )
    payload = [
        quote_ident(c)
        for (c, *_rest) in con.execute("DESCRIBE stage_rows").fetchall()
        if not c.startswith("_rejected_") and c not in ("_source_row", "_derived")
    ]
    parquet_path = staged_dir / f"{obj.name}.parquet"
    _write_private_parquet(
        con,
        f"SELECT _source_row, {', '.join(payload)} FROM stage_verdict "
        "WHERE _quarantine_reason IS NULL ORDER BY _source_key",
        parquet_path,
    )
    quarantine_path = quarantine_dir / f"{obj.name}.parquet"
    _write_private_parquet(
        con,
        "SELECT _source_table, _source_row, _source_key, _quarantine_reason AS reason FROM stage_verdict "
        "WHERE _quarantine_reason IS NOT NULL ORDER BY _source_table, _source_row",
        quarantine_path,
    )
    issues_path = quarantine_dir / f"{obj.name}_field_issues.parquet"
    issues_query = (
        " UNION ALL ".join(issue_selects)
        if issue_selects
        else "SELECT NULL::VARCHAR AS _source_table, NULL::BIGINT AS _source_row, NULL::VARCHAR AS _source_key, "
        "NULL::VARCHAR AS field, NULL::VARCHAR AS reason WHERE FALSE"
    )
    _write_private_parquet(con, f"{issues_query} ORDER BY 1, 2", issues_path)

    staged, quarantined, derived = con.execute(
        "SELECT count(*) FILTER (WHERE _quarantine_reason IS NULL), "
        "count(*) FILTER (WHERE _quarantine_reason IS NOT NULL), count(*) FILTER (WHERE _derived) FROM stage_verdict"
    ).fetchall()[0]
    (issues_count,) = con.execute(f"SELECT count(*) FROM ({issues_query})").fetchall()[0]
    return StageResult(
        object=obj.name,
        parquet_path=parquet_path,
        source_rows=source_rows,
        derived_rows=int(derived),
        staged_rows=int(staged),
        quarantined_rows=int(quarantined),
        field_issues=int(issues_count),
        quarantine_path=quarantine_path,
        field_issues_path=issues_path,
    )
