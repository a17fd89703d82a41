"""The assessment: how hard this clinic's migration is, graded from the inventory and the plan before anything is
staged, on one page (HTML from `templates/assessment.html.j2`, and a JSON twin for scripts).

It says how each source table maps (1:1, needs a mapping, not migrated), the share of field lines a person must
review, the custom fields and modules the admin creates (the checklist's own lists), the records per Freshsales
object and the documents' bytes against the plan's file storage, the API calls and hours at each Freshsales tier
(the dry run's arithmetic: `load.estimate.count_estimate`), and a grade, standard or complex, with its reasons.
Everything on it is a count or the name of a table, column, field or object: never a record value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import duckdb
from pydantic import BaseModel, computed_field

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.load.estimate import BULK_CREATE_IDENTIFIER, PLAN_LIMITS, count_estimate
from clinic_pipeline.mapping.checklist import CustomFieldSpec, required_custom_fields
from clinic_pipeline.mapping.plan import MappingPlan, ObjectMapping, RowFilter
from clinic_pipeline.model.objects import (
    BY_TARGET,
    CUSTOM_MODULE_PREFIX,
    FIELD_ALIASES,
    FILES,
    NOT_MIGRATED,
    STAGED_OBJECTS,
    USERS,
    FreshsalesObject,
)
from clinic_pipeline.model.transforms import compile_transform, layered_from
from clinic_pipeline.reports.charts import bar_chart
from clinic_pipeline.reports.render import byte_size, render_page
from clinic_pipeline.source.inventory_model import SchemaInventory
from clinic_pipeline.sql import quote_ident
from clinic_pipeline.staging.stage import row_filter_sql, skipped_sql

GIB = 1024**3
# Freshsales' file storage per active user of the account, by plan (the help centre's "How to add files": Growth
# 2 GB, Pro 5 GB, Enterprise 100 GB per user; the account's quota is that times its active users).
FILE_STORAGE_PER_USER = {"growth": 2 * GIB, "pro": 5 * GIB, "enterprise": 100 * GIB}
# The grade assumes the smallest paid plan, the one a clinic starts on; the page shows every tier beside it.
BASE_TIER = "growth"

# Thresholds of the grade (more than these: complex).
# Custom fields on contacts, accounts and deals are created by hand in the admin UI (the API cannot), and a
# mistyped name or type stops the load: past about thirty it is a working session of its own, not a checklist.
COMPLEX_CUSTOM_FIELDS = 30
# More than a quarter of the field lines needing a person's judgement makes confirming the plan a working
# session with the clinic rather than a check.
COMPLEX_REVIEW_SHARE = 0.25
# The cutover runbook keeps the clinic working 24-48 hours while the full run loads: a load longer than that at
# the base tier needs a larger plan or a longer cutover.
COMPLEX_BASE_TIER_HOURS = 48.0

MappingKind = Literal["one_to_one", "needs_mapping", "not_migrated"]
KIND_LABELS: dict[str, str] = {"one_to_one": "1:1", "needs_mapping": "needs a mapping", "not_migrated": "not migrated"}


class AssessmentError(OperatorError):
    """The inventory and the plan disagree: the assessment would describe another export."""


class SourceCounts(BaseModel):
    """What the plan takes from the export, counted in the source (before staging's quarantine)."""

    records: dict[str, int]  # staged object name → records the plan's mappings make
    without_identifier: dict[str, int]  # of those, records lacking the field bulk upsert creates by
    staff: int  # rows the plan resolves to Freshsales users
    documents: int
    document_bytes: int | None  # None: a mapping of documents names no size column


class CustomField(BaseModel):
    """A custom field to create, as the checklist lists it, with its dropdown's values counted, not listed: they
    are the clinic's data, and stay in the checklist the admin works from."""

    entity: str
    name: str
    label: str
    type: str
    choices: int

    @classmethod
    def of(cls, spec: CustomFieldSpec) -> CustomField:
        return cls(entity=spec.entity, name=spec.name, label=spec.label, type=spec.type, choices=len(spec.choices))


class TableMapping(BaseModel):
    source_table: str
    target: str
    kind: MappingKind
    reasons: list[str]  # why it needs a mapping, or the plan's reason for leaving it out
    source_rows: int
    field_lines: int
    lines_needing_review: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def review_share(self) -> float | None:
        return self.lines_needing_review / self.field_lines if self.field_lines else None


class ObjectLoad(BaseModel):
    object: str
    records: int
    single_creates: int
    api_calls: int


class TierEstimate(BaseModel):
    tier: str
    hourly: int
    per_minute: int | None
    api_calls: int
    hours: float
    binding_limit: str
    storage_quota_bytes: int


class Criterion(BaseModel):
    name: str
    complex: bool
    detail: str


class Assessment(BaseModel):
    source_system: str
    plan_status: str
    tables: list[TableMapping]
    custom_fields: list[CustomField]  # the admin's checklist (contacts, accounts, deals)
    custom_modules: dict[str, list[CustomField]]  # module → the fields the tool creates with it
    objects: list[ObjectLoad]
    documents: int
    document_bytes: int | None
    users: int  # the active users the storage quota is reckoned for
    tiers: list[TierEstimate]
    criteria: list[Criterion]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def field_lines(self) -> int:
        return sum(t.field_lines for t in self.tables)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def lines_needing_review(self) -> int:
        return sum(t.lines_needing_review for t in self.tables)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def review_share(self) -> float:
        return self.lines_needing_review / self.field_lines if self.field_lines else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def grade(self) -> Literal["standard", "complex"]:
        return "complex" if any(c.complex for c in self.criteria) else "standard"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reasons(self) -> list[str]:
        return [c.detail for c in self.criteria if c.complex]


# ---- counting in the source -------------------------------------------------------------------


def _taken_sql(mapping: ObjectMapping) -> str:
    """The rows staging takes from the mapping's table: its `where`, less the rows it skips."""
    conditions = [row_filter_sql(mapping.where)] if mapping.where else []
    skipped = skipped_sql(mapping)
    if skipped:
        conditions.append(f"NOT ({skipped})")
    return " AND ".join(conditions) or "TRUE"


def _table_sql(mapping: ObjectMapping) -> str:
    return f"source.{quote_ident(mapping.source_table)}"


def _lacking_sql(obj: FreshsalesObject, mapping: ObjectMapping) -> str:
    """The rows lacking the field bulk upsert creates the object's records by (all of them when no line fills it)."""
    identifier = BULK_CREATE_IDENTIFIER.get(obj.entity)
    line = next((f for f in mapping.mapped_fields() if FIELD_ALIASES.get(f.target or "", f.target) == identifier), None)
    if identifier is None or line is None:
        return "TRUE"
    if line.references:
        return "FALSE"  # read from the referenced row: taken as present
    return row_filter_sql(RowFilter(source=line.source, op="empty"))


def count_source(plan: MappingPlan, con: duckdb.DuckDBPyConnection, time_zone: str) -> SourceCounts:
    """Records per Freshsales object as staging would select them (`where`, skip rules, one record per distinct
    value of a derived parent), the documents and their bytes as staging reads the size line. `con` holds the
    export as `source.<table>` (`source.reader.open_source`)."""
    records = {o.name: 0 for o in STAGED_OBJECTS}
    without_identifier = {o.name: 0 for o in STAGED_OBJECTS}
    staff = documents = 0
    document_bytes: int | None = 0
    for mapping in plan.objects:
        obj = BY_TARGET.get(mapping.target)
        taken = _taken_sql(mapping)
        if obj is not None:
            query = f"SELECT count(*) FILTER ({taken}), count(*) FILTER (({taken}) AND {_lacking_sql(obj, mapping)})"
            (rows, lacking) = con.execute(f"{query} FROM {_table_sql(mapping)}").fetchone() or (0, 0)
            if obj is USERS:
                staff += rows
            else:
                records[obj.name] += rows
                without_identifier[obj.name] += lacking
            if obj is FILES:
                documents += rows
                document_bytes = _add(document_bytes, _document_bytes(mapping, con, time_zone, taken))
        for line in mapping.mapped_fields():
            name, _, target = (line.transform or "").partition(":")
            parent = BY_TARGET.get(target) if name == "lookup" and not line.references else None
            if parent is not None and parent.target != mapping.target and parent.name in records:
                # A parent named by a column's values (a clinic's location on each patient): one per distinct value,
                # created by that value as its name.
                value = f"lower(nullif(trim({quote_ident(line.source)}), ''))"
                query = f"SELECT count(DISTINCT {value}) FROM {_table_sql(mapping)}"
                (distinct,) = con.execute(query).fetchone() or (0,)
                records[parent.name] += distinct
    return SourceCounts(
        records=records,
        without_identifier=without_identifier,
        staff=staff,
        documents=documents,
        document_bytes=document_bytes,
    )


def _add(total: int | None, more: int | None) -> int | None:
    return None if total is None or more is None else total + more


def _document_bytes(mapping: ObjectMapping, con: duckdb.DuckDBPyConnection, time_zone: str, taken: str) -> int | None:
    """The documents' bytes through the plan's own size line, compiled as staging compiles it."""
    line = next((f for f in mapping.mapped_fields() if f.target == "size_bytes"), None)
    if line is None:
        return None
    compiled = compile_transform(line.source, line.transform, time_zone, line.args)
    relation = layered_from(_table_sql(mapping), compiled.levels)
    query = f"SELECT coalesce(sum(try_cast({compiled.value_sql} AS BIGINT)), 0) FROM {relation} WHERE {taken}"
    (total,) = con.execute(query).fetchone() or (0,)
    return int(total)


# ---- the assessment ---------------------------------------------------------------------------


def _table_mapping(mapping: ObjectMapping, rows: int) -> TableMapping:
    review = sum(f.needs_review for f in mapping.fields)
    if mapping.target == NOT_MIGRATED:
        kind: MappingKind = "not_migrated"
        reasons = [mapping.reason] if mapping.reason else []
    else:
        reasons = []
        if review:
            reasons.append(f"{review} of {len(mapping.fields)} field lines need review")
        custom = sum(bool(f.target and f.target.startswith("cf_")) for f in mapping.mapped_fields())
        if custom:
            reasons.append(f"{custom} custom field{'' if custom == 1 else 's'}")
        if mapping.target.startswith(CUSTOM_MODULE_PREFIX):
            reasons.append(f"custom module {mapping.target.removeprefix(CUSTOM_MODULE_PREFIX)}")
        kind = "needs_mapping" if reasons else "one_to_one"
    return TableMapping(
        source_table=mapping.source_table,
        target=mapping.target,
        kind=kind,
        reasons=reasons,
        source_rows=rows,
        field_lines=len(mapping.fields),
        lines_needing_review=review,
    )


def _left_behind(inventory: SchemaInventory, plan: MappingPlan) -> list[str]:
    """Tables the plan leaves out whose rows point at records it migrates (a bill's payments): clinic data a
    person must decide about, unlike the software's own settings or report definitions."""
    migrated = {o.source_table for o in plan.objects if o.target != NOT_MIGRATED}
    left_out = {o.source_table for o in plan.objects} - migrated
    rows = {t.name: t.row_count for t in inventory.tables}
    linked = {
        r.table
        for r in inventory.relationships
        if r.table in left_out and r.ref_table in migrated and not r.coincidental
    }
    return sorted(t for t in linked if rows.get(t, 0))


def build_assessment(
    inventory: SchemaInventory,
    plan: MappingPlan,
    counts: SourceCounts,
    modules: Mapping[str, list[CustomFieldSpec]],
    *,
    users: int | None = None,
) -> Assessment:
    """The assessment of `plan` over `inventory`. `modules`: the custom modules the plan needs, with the fields
    the tool creates on them. `users`: the account's active users the storage quota is reckoned for (None: the
    staff the plan resolves to users, at least one: the admin)."""
    if plan.source_fingerprint != inventory.fingerprint:
        raise AssessmentError(
            "the mapping plan was proposed from another inventory: run `clinic-pipeline propose-mapping` again"
        )
    rows = {t.name: t.row_count for t in inventory.tables}
    tables = [_table_mapping(m, rows.get(m.source_table, 0)) for m in plan.objects]
    account_users = users if users is not None else max(counts.staff, 1)
    estimates = {
        tier: count_estimate(counts.records, counts.without_identifier, plan_limits=limits)
        for tier, limits in PLAN_LIMITS.items()
    }
    base = estimates[BASE_TIER]
    tiers = [
        TierEstimate(
            tier=tier,
            hourly=e.limits.hourly,
            per_minute=e.limits.per_minute,
            api_calls=e.api_calls,
            hours=e.hours,
            binding_limit=e.binding_limit,
            storage_quota_bytes=FILE_STORAGE_PER_USER[tier] * account_users,
        )
        for tier, e in estimates.items()
    ]
    objects = [
        ObjectLoad(object=o.object, records=o.create, single_creates=o.single_creates, api_calls=o.api_calls)
        for o in base.objects
    ]
    assessment = Assessment(
        source_system=inventory.source_system,
        plan_status=plan.status,
        tables=tables,
        custom_fields=[CustomField.of(s) for s in required_custom_fields(plan)],
        custom_modules={name: [CustomField.of(s) for s in specs] for name, specs in sorted(modules.items())},
        objects=objects,
        documents=counts.documents,
        document_bytes=counts.document_bytes,
        users=account_users,
        tiers=tiers,
        criteria=[],
    )
    criteria = _criteria(assessment, _left_behind(inventory, plan))
    return assessment.model_copy(update={"criteria": criteria})


def _criteria(a: Assessment, left_behind: list[str]) -> list[Criterion]:
    """Each criterion of the grade, at the base tier, complex or not, with what was measured."""
    base = next(t for t in a.tiers if t.tier == BASE_TIER)
    modules, stored, quota = a.custom_modules, a.document_bytes, base.storage_quota_bytes
    return [
        Criterion(
            name="custom modules",
            complex=bool(modules),
            detail=f"custom modules to create: {', '.join(modules)}" if modules else "no custom module",
        ),
        Criterion(
            name="custom fields",
            complex=len(a.custom_fields) > COMPLEX_CUSTOM_FIELDS,
            detail=f"{len(a.custom_fields)} custom fields for the admin to create (threshold {COMPLEX_CUSTOM_FIELDS})",
        ),
        Criterion(
            name="mapping clarity",
            complex=a.review_share > COMPLEX_REVIEW_SHARE,
            detail=f"{a.lines_needing_review} of {a.field_lines} field lines need review "
            f"({a.review_share:.0%}; threshold {COMPLEX_REVIEW_SHARE:.0%})",
        ),
        Criterion(
            name="document storage",
            complex=stored is not None and stored > quota,
            detail=f"{a.documents} documents, size not stated by the export"
            if stored is None
            else f"{a.documents} documents, {byte_size(stored)} against {byte_size(quota)} of file storage "
            f"at {BASE_TIER} for {a.users} users",
        ),
        Criterion(
            name="load time",
            complex=base.hours > COMPLEX_BASE_TIER_HOURS,
            detail=f"{base.api_calls} API calls: {base.hours:.1f} h at {BASE_TIER} "
            f"(threshold {COMPLEX_BASE_TIER_HOURS:.0f} h, the cutover window)",
        ),
        Criterion(
            name="tables left behind",
            complex=bool(left_behind),
            detail=f"not migrated, yet linked to migrated records: {', '.join(left_behind)}"
            if left_behind
            else "no table left behind holds records linked to migrated ones",
        ),
    ]


# ---- output -----------------------------------------------------------------------------------


def render_html(assessment: Assessment) -> str:
    tables = [t for t in assessment.tables if t.field_lines]
    charts = {
        "clarity": bar_chart(
            "Field lines needing review",
            [f"{t.source_table} → {t.target.removeprefix(CUSTOM_MODULE_PREFIX)}" for t in tables],
            {"needing review": [t.review_share for t in tables]},
            percent=True,
        )
        if tables
        else "",
        "records": bar_chart(
            "Records and API calls per Freshsales object",
            [o.object for o in assessment.objects],
            {
                "records": [o.records for o in assessment.objects],
                "API calls": [o.api_calls for o in assessment.objects],
            },
        ),
    }
    return render_page("assessment.html.j2", a=assessment, charts=charts, kinds=KIND_LABELS)


def write_assessment(assessment: Assessment, html_path: Path, json_path: Path) -> None:
    html_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(assessment.model_dump_json(indent=2), encoding="utf-8")
    html_path.write_text(render_html(assessment), encoding="utf-8")


def summary_lines(assessment: Assessment) -> list[str]:
    """A few lines for the terminal: the grade, its reasons, the table mappings by kind, hours per tier."""
    kinds = {k: sum(t.kind == k for t in assessment.tables) for k in KIND_LABELS}
    lines = [f"grade: {assessment.grade}"]
    lines += [f"  because: {r}" for r in assessment.reasons]
    lines.append(", ".join(f"{n} {KIND_LABELS[k]}" for k, n in kinds.items()) + " (source table mappings)")
    lines.append("API budget: " + "; ".join(f"{t.tier} {t.api_calls} calls, {t.hours:.1f} h" for t in assessment.tiers))
    return lines
