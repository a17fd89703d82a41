"""Stage one Freshsales object from the confirmed plan: DuckDB SQL in, Parquet out.

The plan alone drives this module: no source column name appears here. Every source row a mapping
takes (its `where` filter) ends up in exactly one of: `staged/<object>.parquet`, skipped with a reason
(`skip_when`, a merged duplicate) or `quarantine/<object>.parquet` with a reason; the reconciliation
(`quarantine/<object>_reconciliation.parquet`) proves it per source table and staging fails if it does
not hold. Values the target cannot use are dropped from the record and listed in
`quarantine/<object>_field_issues.parquet` (file, row, field, reason: no values, so operators can read
it without seeing PHI).

Parquet layout: see `staging.objects`. Contacts additionally go through `staging.uniqueness` (duplicate
patients, shared family emails) before they are written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.mapping.plan import FieldMapping, MappingPlan, ObjectMapping, RowFilter
from clinic_pipeline.model.functions import register_functions
from clinic_pipeline.model.objects import BY_TARGET, CHOICE_PREFIX, FIELD_ALIASES, SOURCE_KEY_FIELD, FreshsalesObject
from clinic_pipeline.model.transforms import (
    OWNER_COLUMNS,
    Level,
    compile_transform,
    layered_from,
    merge_levels,
    present_sql,
)
from clinic_pipeline.private_files import write_private_parquet
from clinic_pipeline.source.export import SourceExport
from clinic_pipeline.sql import quote_ident, quote_literal
from clinic_pipeline.staging.uniqueness import ALIASES_DIR, disambiguate_account_names, resolve_people

Window = tuple[datetime, datetime]  # [start, end), timezone-aware
# Link targets a staged row names as `_lookup_<target>`, and the plan's line targets that express them.
LINK_FIELDS = frozenset({"sales_accounts", "sales_account_id", "contact_ids", "targetable_id", "owner_id"})


class ReconciliationError(OperatorError):
    """Source rows ≠ staged + quarantined + skipped: a row went missing, which must never pass silently."""


@dataclass(frozen=True)
class Reconciliation:
    source_table: str
    source_rows: int  # rows of the table this object's mapping takes (after its `where`)
    staged: int
    quarantined: int
    skipped: int

    @property
    def holds(self) -> bool:
        return self.source_rows == self.staged + self.quarantined + self.skipped


@dataclass(frozen=True)
class StageResult:
    object: str
    parquet_path: Path
    source_rows: int  # rows of the source tables mapped straight onto this object
    derived_rows: int  # records derived from lookup values in other tables (e.g. one account per location)
    staged_rows: int
    quarantined_rows: int
    skipped_rows: int
    field_issues: int
    quarantine_path: Path
    field_issues_path: Path
    reconciliation: list[Reconciliation] = field(default_factory=list)
    skip_reasons: dict[str, int] = field(default_factory=dict)


def _payload_name(target: str) -> str:
    return FIELD_ALIASES.get(target, target)


def row_filter_sql(rule: RowFilter) -> str:
    """The SQL condition a plan's row filter stands for (also what the sample diff reads rows by)."""
    column = quote_ident(rule.source)
    present = present_sql(column)
    if rule.op in ("empty", "not_empty"):
        return f"NOT {present}" if rule.op == "empty" else present
    if rule.op in ("below", "at_least"):
        if not isinstance(rule.value, int | float):
            raise OperatorError(f"plan: filter {rule.op} on {rule.source!r} needs a number")
        number = f"try_cast(trim({column}) AS DOUBLE)"
        # `below` takes the rows without a number too, so `below` and `at_least` split a table in two.
        if rule.op == "below":
            return f"coalesce({number} < {float(rule.value)}, TRUE)"
        return f"coalesce({number} >= {float(rule.value)}, FALSE)"
    if rule.op == "matches":
        if not isinstance(rule.value, str):
            raise OperatorError(f"plan: filter matches on {rule.source!r} needs a regular expression")
        return f"coalesce(regexp_full_match(lower(trim({column})), {quote_literal(rule.value)}), FALSE)"
    if not isinstance(rule.value, list):
        raise OperatorError(f"plan: filter {rule.op} on {rule.source!r} needs a list of values")
    values = "(" + ", ".join(quote_literal(str(v).lower()) for v in rule.value) + ")"
    negate = "NOT " if rule.op == "not_in" else ""
    return f"coalesce({negate}(lower(trim({column})) IN {values}), {'TRUE' if negate else 'FALSE'})"


def _skip_sql(mapping: ObjectMapping) -> str:
    """The row's skip reason: `skip_when` first, then each of `skip_rules` in order."""
    cases = [(mapping.skip_when, mapping.skip_reason)] if mapping.skip_when else []
    cases += [(rule.when, rule.reason) for rule in mapping.skip_rules]
    if not cases:
        return "NULL::VARCHAR AS _skip_reason"
    whens = " ".join(f"WHEN {row_filter_sql(when)} THEN {quote_literal(reason)}" for when, reason in cases)
    return f"CASE {whens} END AS _skip_reason"


def skipped_sql(mapping: ObjectMapping) -> str | None:
    """The condition under which staging skips a row of `mapping`, or None when it skips none."""
    rules = ([mapping.skip_when] if mapping.skip_when else []) + [rule.when for rule in mapping.skip_rules]
    return " OR ".join(f"({row_filter_sql(rule)})" for rule in rules) or None


def _key_sql(table: str, column: str) -> str:
    return f"{quote_literal(table + ':')} || nullif(trim({quote_ident(column)}), '')"


def _derived_key_sql(table: str, column: str, value_sql: str) -> str:
    return f"{quote_literal(f'{table}.{column}:')} || lower({value_sql})"


def _referenced_key(plan: MappingPlan, table: str) -> str:
    for mapping in plan.objects:
        if mapping.source_table == table and mapping.source_key:
            return mapping.source_key
    raise OperatorError(f"plan: lines reference table {table!r}, which has no mapping with a source_key")


@dataclass
class _Select:
    columns: list[str]
    joins: list[str]
    issues: list[str]
    descriptions: list[tuple[str, str]]  # (label, value sql) for several lines filling one description
    controls: Mapping[str, bool]  # table → whether its text may hold control characters
    documents_root: Path | None = None
    levels: list[tuple[Level, ...]] = field(default_factory=list)  # the transforms' steps, per line
    # A module record's name where its name line is empty on a row: its source key (a name is required).
    name_fallback: str | None = None


def _field_columns(
    line: FieldMapping, i: int, mapping: ObjectMapping, plan: MappingPlan, sel: _Select, tz: str
) -> None:
    name, _, parent = (line.transform or "").partition(":")
    source, table = line.source, mapping.source_table
    joined = line.through or (line.references if line.via else None)
    if joined and line.via:
        # The value sits in another table (the provider's email, the payer's name, the patient of the
        # encounter a lab result names): one join per line.
        ref_key = _referenced_key(plan, joined)
        alias = f"_ref{i}"
        sel.joins.append(
            f"LEFT JOIN (SELECT nullif(trim({quote_ident(ref_key)}), '') AS {alias}_key, "
            f"arg_min({quote_ident(line.via)}, _source_row) AS {alias}_val "
            f"FROM source.{quote_ident(joined)} GROUP BY ALL) ON {alias}_key = trim({quote_ident(source)})"
        )
        source, table = f"{alias}_val", joined
    compiled = compile_transform(
        source,
        line.transform,
        tz,
        line.args,
        control_characters=sel.controls.get(table, True),
        country=plan.clinic.country,
    )
    sel.levels.append(compiled.levels)
    for j, (condition, reason) in enumerate(compiled.issues):
        sel.columns.append(f"{condition} AS _rejected_{i}_{j}")
        sel.issues.append(
            f"SELECT _source_table, _source_row, _source_key, {quote_literal(line.source)} AS field, "
            f"{quote_literal(reason)} AS reason FROM stage_rows WHERE _rejected_{i}_{j}"
        )
    if name == "lookup":
        value = compiled.value_sql
        if line.strip_prefix:
            strip = quote_literal(line.strip_prefix)
            value = (
                f"CASE WHEN starts_with({value}, {strip}) THEN {value}[{len(line.strip_prefix) + 1}:] ELSE {value} END"
            )
        key = (
            f"{quote_literal(line.references + ':' + (line.key_prefix or ''))} || {value}"
            if line.references
            else _derived_key_sql(mapping.source_table, line.source, compiled.value_sql)
        )
        sel.columns.append(f"{key} AS {quote_ident('_lookup_' + parent)}")
        return
    if name in OWNER_COLUMNS:
        # The owner's email or display name, resolved to a Freshsales user at load.
        sel.columns.append(f"{compiled.value_sql} AS {OWNER_COLUMNS[name]}")
        return
    if name == "choice":
        chosen = _chosen_sql(line, compiled.value_sql)
        sel.columns.append(f"{chosen} AS {quote_ident(CHOICE_PREFIX + (line.target or ''))}")
        return
    target = _payload_name(line.target or "")
    if target == "description":
        sel.descriptions.append((line.source, compiled.value_sql))
    elif target == "file_path" and sel.documents_root is not None:
        # Relative to the export: the loader streams the file from where the export was unpacked.
        prefix = quote_literal(str(sel.documents_root) + os.sep)
        sel.columns.append(f"{prefix} || ltrim({compiled.value_sql}, '/') AS file_path")
    elif target == "name" and sel.name_fallback:
        sel.columns.append(f"coalesce({compiled.value_sql}, {sel.name_fallback}) AS name")
    else:
        sel.columns.append(f"{compiled.value_sql} AS {quote_ident(target)}")


def _controls_by_table(export: SourceExport) -> dict[str, bool]:
    """Table → whether its text may hold control characters: the transforms look for them only there."""
    return {name: table.control_characters for name, table in export.tables.items()}


def _description_sql(parts: list[tuple[str, str]]) -> str:
    if len(parts) == 1:
        return parts[0][1]
    # Several source columns, one description: each on its own line, labelled by its column.
    labelled = ", ".join(f"{quote_literal(label + ': ')} || {value}" for label, value in parts)
    return f"nullif(concat_ws(chr(10), {labelled}), '')"


def _where_sql(mapping: ObjectMapping, time_zone: str, window: Window | None) -> str:
    """The mapping's own row filter, and for a delta window the rows created/changed inside it.

    A table without a `changed_at` column is taken whole in every window: the loader's payload hashes
    then send only what really changed (diffed by content). A grouped mapping takes every row of a group
    one of whose rows changed: a deal summed over its changed lines only would overwrite the whole."""
    conditions = [row_filter_sql(mapping.where)] if mapping.where else []
    if window is not None and mapping.changed_at and mapping.changed_at_format:
        parsed = f"try_strptime(trim({quote_ident(mapping.changed_at)}), {quote_literal(mapping.changed_at_format)})"
        moment = f"timezone({quote_literal(time_zone)}, {parsed})"
        start, end = (quote_literal(t.astimezone(UTC).isoformat()) for t in window)
        changed = f"{moment} >= {start}::TIMESTAMPTZ AND {moment} < {end}::TIMESTAMPTZ"
        if mapping.grouped and mapping.source_key:
            key = f"trim({quote_ident(mapping.source_key)})"
            table = f"source.{quote_ident(mapping.source_table)}"
            changed = f"{key} IN (SELECT {key} FROM {table} WHERE {changed})"
        conditions.append(changed)
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _direct_select(
    mapping: ObjectMapping,
    obj: FreshsalesObject,
    plan: MappingPlan,
    time_zone: str,
    export: SourceExport,
    window: Window | None,
) -> tuple[str, list[str]]:
    """SELECT of one source table mapped straight onto `obj`, and the field-issue SELECTs over it."""
    if not mapping.source_key:
        raise OperatorError(f"plan: table {mapping.source_table!r} has no source_key; the loader needs one")
    table = mapping.source_table
    key = _key_sql(table, mapping.source_key)
    sel = _Select(
        columns=[
            "FALSE AS _derived",
            f"{key} AS _source_key",
            f"{quote_literal(table)} AS _source_table",
            "_source_row",
            _skip_sql(mapping),
        ],
        joins=[],
        issues=[],
        descriptions=[],
        controls=_controls_by_table(export),
        documents_root=documents_root(export),
        name_fallback=key if obj.module else None,
    )
    for i, line in enumerate(mapping.mapped_fields()):
        if line.target in ("external_id", SOURCE_KEY_FIELD):
            continue  # the namespaced source key travels there (staging.objects)
        _field_columns(line, i, mapping, plan, sel, time_zone)
    if sel.descriptions:
        sel.columns.append(f"{_description_sql(sel.descriptions)} AS description")
    if obj.key_field == SOURCE_KEY_FIELD:
        sel.columns.append(f"{key} AS {SOURCE_KEY_FIELD}")
    targets = {line.target for line in mapping.mapped_fields()}
    if "name" in obj.staged_required and "name" not in targets:
        # The plan check takes a required name as staging's to fill (a deal, an account, a module record
        # the plan names by no column): the source key names it, rather than every row being quarantined.
        sel.columns.append(f"{key} AS name")
    if mapping.tags and "tags" not in targets:
        tags = ", ".join(quote_literal(t) for t in mapping.tags)
        sel.columns.append(f"[{tags}]::VARCHAR[] AS tags")
    if obj.target == "deal" and plan.clinic.currency and "currency_id" not in targets:
        # The amounts are in the clinic's currency, which need not be the account's default.
        sel.columns.append(f"{quote_literal(plan.clinic.currency)} AS {CHOICE_PREFIX}currency_id")
    if obj.target == "appointment" and "time_zone" not in targets:
        # The times travel in UTC; the zone keeps the visit shown at the clinic's wall-clock time.
        sel.columns.append(f"{quote_literal(time_zone)} AS time_zone")
    rows = f"(SELECT * FROM source.{quote_ident(table)} {' '.join(sel.joins)}{_where_sql(mapping, time_zone, window)})"
    select = f"SELECT {', '.join(sel.columns)} FROM {layered_from(rows, merge_levels(sel.levels))}"
    if mapping.grouped:
        select = _grouped_select(select, mapping)
    return select, sel.issues


def _grouped_select(rows: str, mapping: ObjectMapping) -> str:
    """One record per source key out of several rows (billing lines of one encounter).

    The first row that is not skipped carries the record: a line's value is the sum (`aggregate: sum`) or
    the distinct values joined by '; ' (`list`) over the group's rows that are not skipped, else the first
    row's own value; the group's other rows are skipped, folded into it. Field issues stay per row."""
    folds = {}
    for line in mapping.mapped_fields():
        name = _payload_name(line.target or "")
        if line.aggregate == "sum":
            folds[name] = f"sum({quote_ident(name)})"
        elif line.aggregate == "list":
            folds[name] = f"nullif(string_agg(DISTINCT {quote_ident(name)}, '; ' ORDER BY {quote_ident(name)}), '')"
    folded = quote_literal(f"folded into one record per {mapping.source_key}")
    return (
        f"WITH r AS ({rows}), g AS (SELECT _source_key AS _group_key, min(_source_row) AS _first_row"
        + "".join(f", {sql} AS {quote_ident('_fold_' + name)}" for name, sql in folds.items())
        + " FROM r WHERE _skip_reason IS NULL AND _source_key IS NOT NULL GROUP BY ALL), "
        "f AS (SELECT r.*, g.* FROM r LEFT JOIN g ON r._source_key = g._group_key) "
        "SELECT * EXCLUDE (_group_key, _first_row"
        + "".join(f", {quote_ident('_fold_' + name)}" for name in folds)
        + f") REPLACE (CASE WHEN _skip_reason IS NULL AND _first_row IS NOT NULL AND _source_row <> _first_row "
        f"THEN {folded} ELSE _skip_reason END AS _skip_reason"
        + "".join(f", {quote_ident('_fold_' + name)} AS {quote_ident(name)}" for name in folds)
        + ") FROM f"
    )


def _chosen_sql(line: FieldMapping, value_sql: str) -> str:
    """The Freshsales choice's name a value maps to (the loader resolves it to its id); values the map leaves
    out choose none."""
    cases = " ".join(
        f"WHEN {quote_literal(value.strip().lower())} THEN {quote_literal(choice)}"
        for value, choice in line.value_map.items()
        if choice
    )
    return f"CASE lower({value_sql}) {cases} END" if cases else "NULL::VARCHAR"


def _derived_select(mapping: ObjectMapping, source: str, time_zone: str, export: SourceExport) -> str:
    """Parents named by a lookup column (e.g. a clinic location on each patient): one record per value. A
    territory the mapping's rule gives its rows (by state, specialty) is the derived account's too: its first
    row's, as the rows of one practice share it."""
    controls = _controls_by_table(export).get(mapping.source_table, True)
    compiled = compile_transform(source, "trim", time_zone, control_characters=controls)
    key = _derived_key_sql(mapping.source_table, source, compiled.value_sql)
    territory = next((f for f in mapping.mapped_fields() if f.target == "territory_id" and f.value_map), None)
    inherited = ""
    if territory is not None:
        chosen = _chosen_sql(territory, f"trim({quote_ident(territory.source)})")
        inherited = f"arg_min({chosen}, _source_row) AS {quote_ident(CHOICE_PREFIX + 'territory_id')}, "
    return (
        f"SELECT TRUE AS _derived, {key} AS _source_key, {quote_literal(mapping.source_table)} AS _source_table, "
        f"min(_source_row) AS _source_row, NULL::VARCHAR AS _skip_reason, {inherited}"
        f"arg_min({compiled.value_sql}, _source_row) AS name, {key} AS {SOURCE_KEY_FIELD} "
        f"FROM {layered_from(f'source.{quote_ident(mapping.source_table)}', compiled.levels)} "
        f"WHERE {compiled.value_sql} IS NOT NULL GROUP BY ALL"
    )


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]


def _required_sql(target: str, columns: list[str]) -> tuple[str, str]:
    """(condition that holds for an acceptable record, SQL for the quarantine reason when it does not: the
    required fields this row lacks, not every required field)."""
    obj = BY_TARGET[target]
    if obj.identity:
        wanted = obj.staged_identity
        present = [f"{quote_ident(c)} IS NOT NULL" for c in wanted if c in columns]
        return (" OR ".join(present) or "FALSE"), quote_literal("none of " + ", ".join(wanted))
    # A module record's `name` falls back to its source key: staging always fills it.
    wanted = tuple(c for c in obj.staged_required if not (obj.module and c == "name"))
    if not wanted:
        return "TRUE", "NULL"
    # A required choice (an activity's type) is staged by name in `_choice_<field>`, resolved at load.
    staged = {c: c if c in columns else CHOICE_PREFIX + c for c in wanted}
    checks = [f"{quote_ident(staged[c])} IS NOT NULL" if staged[c] in columns else "FALSE" for c in wanted]
    missing = ", ".join(
        f"CASE WHEN {quote_ident(staged[c])} IS NULL THEN {quote_literal(c)} END"
        if staged[c] in columns
        else quote_literal(c)
        for c in wanted
    )
    return " AND ".join(checks), f"'missing required ' || concat_ws(', ', {missing})"


def _parent_checks(columns: list[str], dirs: Sequence[Path]) -> list[tuple[str, str]]:
    """(condition for an orphan, reason) per link: the parent must be staged (not missing, skipped or quarantined)."""
    checks = []
    for column in columns:
        if not column.startswith("_lookup_"):
            continue
        parent = BY_TARGET[column.removeprefix("_lookup_")]
        paths = [d / f"{parent.name}.parquet" for d in dirs if (d / f"{parent.name}.parquet").exists()]
        if not paths:
            raise OperatorError(
                f"{dirs[0] / parent.name}.parquet: stage {parent.name} before the objects that link to it"
            )
        files = "[" + ", ".join(quote_literal(str(p)) for p in paths) + "]"
        keys = f"(SELECT _source_key FROM read_parquet({files}))"
        checks.append(
            (
                f"({quote_ident(column)} IS NOT NULL AND {quote_ident(column)} NOT IN {keys})",
                f"parent {parent.name} not staged (missing from the export, skipped or quarantined)",
            )
        )
    return checks


def _apply_aliases(con: duckdb.DuckDBPyConnection, columns: list[str], dirs: Sequence[Path]) -> None:
    """A link to a merged duplicate patient points at the surviving record instead."""
    for column in columns:
        if not column.startswith("_lookup_"):
            continue
        name = BY_TARGET[column.removeprefix("_lookup_")].name
        for aliases in (d / ALIASES_DIR / f"{name}.parquet" for d in dirs):
            if aliases.exists():
                col = quote_ident(column)
                con.execute(
                    f"UPDATE stage_rows SET {col} = a.survivor_key FROM read_parquet({quote_literal(str(aliases))}) a "
                    f"WHERE stage_rows.{col} = a.alias_key"
                )


def documents_root(export: SourceExport) -> Path | None:
    """Where the export's relative document paths start: the folder, or the database file's folder."""
    spec = export.spec
    for scheme in ("sqlite:///", "duckdb:///"):
        if spec.startswith(scheme):
            return Path(spec.removeprefix(scheme)).resolve().parent
    path = Path(spec)
    return path.resolve() if path.is_dir() else None


def tables_read(obj: FreshsalesObject, plan: MappingPlan) -> set[str]:
    """The source tables `stage_object(obj, plan, ...)` reads: the export may be opened with only these."""
    tables: set[str] = set()
    for mapping in plan.objects:
        lines = mapping.mapped_fields()
        if mapping.target == obj.target:
            tables.add(mapping.source_table)
            tables.update(line.through or line.references for line in lines if line.references and line.via)
        if any(line.transform == f"lookup:{obj.target}" and not line.references for line in lines):
            tables.add(mapping.source_table)
    return tables


def stage_object(
    obj: FreshsalesObject,
    plan: MappingPlan,
    export: SourceExport,
    con: duckdb.DuckDBPyConnection,
    *,
    staged_dir: Path,
    quarantine_dir: Path,
    window: Window | None = None,
    parent_dirs: Sequence[Path] = (),
) -> StageResult:
    """Stage `obj`; with a delta `window` only rows created/changed in it. Parents are looked up in
    `staged_dir` and then `parent_dirs` (a delta partition's parents may come from the full run)."""
    register_functions(con)
    with _unordered_inserts(con):
        return _stage(obj, plan, export, con, staged_dir, quarantine_dir, window, parent_dirs)


@contextmanager
def _unordered_inserts(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Every output here is sorted explicitly, so DuckDB need not keep insertion order while staging
    (parallel Parquet writes, less buffering). The caller's setting comes back afterwards: the reader
    relies on insertion order for `_source_row`."""
    (previous,) = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
    con.execute("SET preserve_insertion_order = false")
    try:
        yield
    finally:
        con.execute(f"SET preserve_insertion_order = {'true' if previous else 'false'}")


def _stage(
    obj: FreshsalesObject,
    plan: MappingPlan,
    export: SourceExport,
    con: duckdb.DuckDBPyConnection,
    staged_dir: Path,
    quarantine_dir: Path,
    window: Window | None,
    parent_dirs: Sequence[Path],
) -> StageResult:
    time_zone = plan.time_zone(export.manifest.time_zone)
    parent_search = (staged_dir, *parent_dirs)
    selects: list[str] = []
    issue_selects: list[str] = []
    taken: dict[str, int] = {}
    for mapping in plan.objects:
        if mapping.target == obj.target:
            select, issues = _direct_select(mapping, obj, plan, time_zone, export, window)
            selects.append(select)
            issue_selects.extend(issues)
            where = _where_sql(mapping, time_zone, window)
            (rows,) = con.execute(f"SELECT count(*) FROM source.{quote_ident(mapping.source_table)}{where}").fetchone()
            taken[mapping.source_table] = taken.get(mapping.source_table, 0) + int(rows)
        for line in mapping.mapped_fields():
            if line.transform == f"lookup:{obj.target}" and not line.references and mapping.target != obj.target:
                selects.append(_derived_select(mapping, line.source, time_zone, export))
    if not selects:
        # Not every export has every object (no labs, no documents): an empty file, so dependents load nothing.
        selects.append(
            "SELECT FALSE AS _derived, NULL::VARCHAR AS _source_key, NULL::VARCHAR AS _source_table, "
            "NULL::BIGINT AS _source_row, NULL::VARCHAR AS _skip_reason WHERE FALSE"
        )

    con.execute(f"CREATE OR REPLACE TEMP TABLE stage_rows AS {' UNION ALL BY NAME '.join(selects)}")
    columns = _columns(con, "stage_rows")
    _apply_aliases(con, columns, parent_search)
    if obj.target == "contact":
        earlier = [d / f"{obj.name}.parquet" for d in parent_dirs if (d / f"{obj.name}.parquet").exists()]
        resolve_people(con, plan, staged_dir, earlier)
        columns = _columns(con, "stage_rows")
    if obj.target == "sales_account":
        disambiguate_account_names(con)
    _verdict(con, obj.target, columns, parent_search)
    payload = [
        quote_ident(c) for c in columns if not c.startswith("_rejected_") and c not in ("_derived", "_skip_reason")
    ]
    parquet_path = staged_dir / f"{obj.name}.parquet"
    write_private_parquet(
        con,
        f"SELECT {', '.join(payload)} FROM stage_rows "
        "WHERE _skip_reason IS NULL AND rowid NOT IN (SELECT _row_id FROM stage_verdict) ORDER BY _source_key",
        parquet_path,
    )
    quarantine_path = quarantine_dir / f"{obj.name}.parquet"
    write_private_parquet(
        con,
        "SELECT _source_table, _source_row, _source_key, _quarantine_reason AS reason FROM stage_verdict "
        "ORDER BY _source_table, _source_row",
        quarantine_path,
    )
    issues_path = quarantine_dir / f"{obj.name}_field_issues.parquet"
    issues_query = (
        " UNION ALL ".join(issue_selects)
        if issue_selects
        else "SELECT NULL::VARCHAR AS _source_table, NULL::BIGINT AS _source_row, NULL::VARCHAR AS _source_key, "
        "NULL::VARCHAR AS field, NULL::VARCHAR AS reason WHERE FALSE"
    )
    # File and row first; field and reason only break ties (a row with several issues), so the order is stable.
    write_private_parquet(con, f"{issues_query} ORDER BY 1, 2, 4, 5", issues_path)
    return _result(con, obj, taken, parquet_path, quarantine_path, issues_path, quarantine_dir)


def _verdict(con: duckdb.DuckDBPyConnection, target: str, columns: list[str], parent_search: Sequence[Path]) -> None:
    """`stage_verdict`: the quarantined rows of `stage_rows` only (by rowid), with their reason.

    Quarantine is the exception, so a narrow table of those rows is far cheaper than a copy of every
    staged record with a verdict column; the staged file is `stage_rows` minus these rows."""
    required, required_reason = _required_sql(target, columns)
    orphan_cases = " ".join(
        f"WHEN {cond} THEN {quote_literal(reason)}" for cond, reason in _parent_checks(columns, parent_search)
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE stage_verdict AS
        WITH later_duplicates AS (
            -- Ranking every row by key is a full sort; only keys seen twice (a hash aggregate finds them) need it.
            SELECT _row_id FROM (
                SELECT rowid AS _row_id,
                    row_number() OVER (PARTITION BY _source_key ORDER BY _source_table, _source_row) AS n
                FROM stage_rows
                WHERE _source_key IN (SELECT _source_key FROM stage_rows GROUP BY 1 HAVING count(*) > 1)
            ) WHERE n > 1
        )
        SELECT * FROM (
            SELECT rowid AS _row_id, _derived, _source_table, _source_row, _source_key, CASE
                WHEN _skip_reason IS NOT NULL THEN NULL
                WHEN _source_key IS NULL THEN 'missing source key'
                WHEN rowid IN (SELECT _row_id FROM later_duplicates) THEN 'duplicate source key'
                WHEN NOT ({required}) THEN {required_reason}
                {orphan_cases}
            END AS _quarantine_reason
            FROM stage_rows
        ) WHERE _quarantine_reason IS NOT NULL"""
    )


def _result(
    con: duckdb.DuckDBPyConnection,
    obj: FreshsalesObject,
    taken: dict[str, int],
    parquet_path: Path,
    quarantine_path: Path,
    issues_path: Path,
    quarantine_dir: Path,
) -> StageResult:
    # Per (table, derived): rows, skipped (from stage_rows) and quarantined (from stage_verdict); the two
    # never overlap (a skipped row has no verdict). Staged rows are counted in the file as written, so
    # a row lost on the way (a merge, a filter, the write) breaks the reconciliation instead of passing.
    counts = con.execute(
        """SELECT r._source_table, r._derived, r.n, r.skipped, coalesce(v.n, 0) AS quarantined
        FROM (SELECT _source_table, _derived, count(*) AS n, count(*) FILTER (WHERE _skip_reason IS NOT NULL) AS skipped
              FROM stage_rows GROUP BY ALL) r
        LEFT JOIN (SELECT _source_table, _derived, count(*) AS n FROM stage_verdict GROUP BY ALL) v
          ON r._source_table IS NOT DISTINCT FROM v._source_table AND r._derived = v._derived"""
    ).fetchall()
    # One read of the file: rows per table, direct ones (`<table>:<key>`) apart from derived ones
    # (`<table>.<column>:<value>`).
    in_file_rows = con.execute(
        f"SELECT _source_table, count(*), count(*) FILTER (WHERE starts_with(_source_key, _source_table || ':')) "
        f"FROM read_parquet({quote_literal(str(parquet_path))}) GROUP BY ALL"
    ).fetchall()
    staged = sum(int(rows) for _table, rows, _direct in in_file_rows)
    in_file = {table: int(direct) for table, _rows, direct in in_file_rows}
    by_table: dict[str, tuple[int, int, int]] = {}
    quarantined = skipped = derived = 0
    for table, is_derived, rows, table_skipped, table_quarantined in counts:
        quarantined, skipped = quarantined + table_quarantined, skipped + table_skipped
        if is_derived:
            derived += int(rows)
        else:
            by_table[table] = (int(in_file.get(table, 0)), int(table_quarantined), int(table_skipped))
    reconciliation = [
        Reconciliation(table, rows, *by_table.get(table, (0, 0, 0))) for table, rows in sorted(taken.items())
    ]
    recon_path = quarantine_dir / f"{obj.name}_reconciliation.parquet"
    con.execute(
        "CREATE OR REPLACE TEMP TABLE stage_recon (source_table VARCHAR, source_rows BIGINT, staged BIGINT, "
        "quarantined BIGINT, skipped BIGINT)"
    )
    if reconciliation:
        con.executemany(
            "INSERT INTO stage_recon VALUES (?, ?, ?, ?, ?)",
            [(r.source_table, r.source_rows, r.staged, r.quarantined, r.skipped) for r in reconciliation],
        )
    write_private_parquet(con, "SELECT * FROM stage_recon ORDER BY source_table", recon_path)
    broken = [r.source_table for r in reconciliation if not r.holds]
    if broken:
        raise ReconciliationError(
            f"{obj.name}: source rows ≠ staged + quarantined + skipped for {', '.join(broken)} (see {recon_path})"
        )
    skip_reasons = dict(
        con.execute(
            "SELECT _skip_reason, count(*) FROM stage_rows WHERE _skip_reason IS NOT NULL GROUP BY ALL ORDER BY 1"
        ).fetchall()
    )
    # The file just written holds exactly the issues: its footer has the count, no second pass over the rows.
    (issues_count,) = con.execute(f"SELECT count(*) FROM read_parquet({quote_literal(str(issues_path))})").fetchone()
    return StageResult(
        object=obj.name,
        parquet_path=parquet_path,
        source_rows=sum(taken.values()),
        derived_rows=derived,
        staged_rows=int(staged),
        quarantined_rows=int(quarantined),
        skipped_rows=int(skipped),
        field_issues=int(issues_count),
        quarantine_path=quarantine_path,
        field_issues_path=issues_path,
        reconciliation=reconciliation,
        skip_reasons={str(k): int(v) for k, v in skip_reasons.items()},
    )
