"""What `confirm-mapping` checks before it stamps a plan: a confirmed plan is one staging can carry out.

- every source table of the inventory has a decision (a target, or `not_migrated` with its reason);
- every migrated table names its source key, and every target is a Freshsales object of the catalog;
- every line's target is a standard field of its object or a declared custom field (`cf_*`, `custom`);
- the line's type fits the field, and its transform yields that type (a date from `parse_date`...);
- every field Freshsales requires is fed (a contact needs a first name, last name or email);
- every value a choice line's column holds (the inventory's categories) has a decision in its value map: a
  Freshsales choice's name, or none; whether the account has those names is the schema check's (before load);
- no secret of the source (password hash, salt, token, PIN...: `mapping.secrets`) is migrated, unless a
  person marked that line `allow_secret: true`.

Problems name the table and column, never values: the plan holds no record data.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.mapping.plan import FieldMapping, MappingPlan, ObjectMapping, confirm_plan
from clinic_pipeline.model.objects import NOT_MIGRATED, USERS, FieldType, UnknownTargetError, target_object
from clinic_pipeline.model.transforms import OWNER_COLUMNS, UnknownTransformError, transform_of

# Fed by staging itself when no line does: a module record's name falls back to its source key.
_FED_BY_STAGING = frozenset({"name"})
_TEXTUAL: frozenset[FieldType] = frozenset({"text", "dropdown", "email", "phone", "url"})


class PlanInvalidError(OperatorError, ValueError):
    """The plan cannot be confirmed as it stands; the message lists every problem."""


def _fits(line: FieldMapping, field_type: FieldType) -> bool:
    return line.type == field_type or (field_type == "text" and line.type in _TEXTUAL)


def _line_problems(mapping: ObjectMapping, line: FieldMapping) -> list[str]:
    where = f"{mapping.source_table}.{line.source} → {line.target}"
    problems = []
    target = target_object(mapping.target)
    field = target.field(line.target or "")
    if field is None and not (line.custom and (line.target or "").startswith("cf_")):
        problems.append(f"{where}: {mapping.target} has no such field (custom fields are cf_<name> with custom: true)")
    elif field is not None and not _fits(line, field.type):
        problems.append(f"{where}: the line's type {line.type} does not fit the field's type {field.type}")
    try:
        transform, _arg = transform_of(line.transform)
    except UnknownTransformError as exc:
        problems.append(f"{where}: {exc}")
    else:
        if line.type not in transform.yields:
            problems.append(f"{where}: transform {transform.name} does not yield a {line.type} value")
    return problems


def _required_problems(mapping: ObjectMapping, fed: set[str]) -> list[str]:
    target = target_object(mapping.target)
    if target.identity:
        if fed.isdisjoint(target.identity):
            identity = ", ".join(target.identity)
            return [f"{mapping.source_table} → {mapping.target}: nothing feeds {identity} (one is required)"]
        return []
    missing = [n for n, f in target.fields.items() if f.required and n not in fed and n not in _FED_BY_STAGING]
    if not missing:
        return []
    return [f"{mapping.source_table} → {mapping.target}: no line feeds the required {', '.join(missing)}"]


def plan_problems(
    plan: MappingPlan,
    tables: Collection[str] | None = None,
    secrets: Mapping[tuple[str, str], str] | None = None,
    values: Mapping[tuple[str, str], Collection[str]] | None = None,
) -> list[str]:
    """Every reason the plan cannot be confirmed; `tables` (the inventory's) must each have a decision, no
    column of `secrets` ((table, column) → evidence) may be migrated unless its line allows it, and each of
    `values` ((table, column) → the values it holds) a choice line reads needs a decision in its value map."""
    problems = []
    decided = {m.source_table for m in plan.objects}
    undecided = sorted(set(tables or ()) - decided)
    problems += [f"{t}: no decision (give it a target, or not_migrated with a reason)" for t in undecided]
    for mapping in plan.objects:
        if mapping.target == NOT_MIGRATED:
            if not mapping.reason.strip():
                problems.append(f"{mapping.source_table}: not_migrated needs a reason")
            continue
        try:
            target_object(mapping.target)
        except UnknownTargetError as unknown:
            problems.append(f"{mapping.source_table}: {unknown}")
            continue
        if mapping.target == USERS.target:
            continue  # staff are matched to existing users by email or name (owner map), never created
        if not mapping.source_key:
            problems.append(f"{mapping.source_table} → {mapping.target}: no source_key (the loader needs one)")
        lines = mapping.mapped_fields()
        for line in lines:
            problems += _line_problems(mapping, line)
        problems += _required_problems(mapping, {line.target for line in lines if line.target})
        problems += _link_problems(mapping)
        problems += _secret_problems(mapping, secrets or {})
        problems += _choice_problems(mapping, values or {})
    return problems


def _choice_problems(mapping: ObjectMapping, values: Mapping[tuple[str, str], Collection[str]]) -> list[str]:
    problems = []
    for line in mapping.mapped_fields():
        if not (line.transform or "").startswith("choice:"):
            continue
        decided = {v.strip().lower() for v in line.value_map}
        undecided = sorted(
            {v.strip() for v in values.get((mapping.source_table, line.source), ()) if v.strip().lower() not in decided}
        )
        if undecided:
            problems.append(
                f"{mapping.source_table}.{line.source} → {line.target}: the value_map decides nothing for "
                f"{', '.join(repr(v) for v in undecided)}: name a Freshsales choice for each, or null for none"
            )
    return problems


def _secret_problems(mapping: ObjectMapping, secrets: Mapping[tuple[str, str], str]) -> list[str]:
    return [
        f"{mapping.source_table}.{line.source} → {line.target}: a secret of the source "
        f"({secrets[(mapping.source_table, line.source)]}) is never migrated; set its target to null, or mark the "
        "line allow_secret: true to migrate it anyway"
        for line in mapping.mapped_fields()
        if (mapping.source_table, line.source) in secrets and not line.allow_secret
    ]


def _link_problems(mapping: ObjectMapping) -> list[str]:
    """A record carries one link per parent object and one owner: a second line would overwrite the first."""
    by_parent: dict[str, list[str]] = {}
    for line in mapping.mapped_fields():
        name, _, parent = (line.transform or "").partition(":")
        if name == "lookup" or name in OWNER_COLUMNS:
            by_parent.setdefault(parent or "owner", []).append(line.source)
    return [
        f"{mapping.source_table} → {mapping.target}: {', '.join(sources)} all link to its {parent}; keep one "
        "(map the others to a custom field)"
        for parent, sources in by_parent.items()
        if len(sources) > 1
    ]


def confirm_checked(
    plan: MappingPlan,
    by: str,
    tables: Collection[str] | None = None,
    secrets: Mapping[tuple[str, str], str] | None = None,
    values: Mapping[tuple[str, str], Collection[str]] | None = None,
) -> MappingPlan:
    """Confirm the plan for `by` if it has no problems; else PlanInvalidError listing them all."""
    problems = plan_problems(plan, tables, secrets, values)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise PlanInvalidError(
            f"the mapping plan cannot be confirmed ({len(problems)} problem(s)); edit it and confirm again:\n{listed}"
        )
    return confirm_plan(plan, by)


def columns_read(mapping: ObjectMapping) -> dict[str, set[str]]:
    """Source table → the columns this mapping reads (key, lines and their further columns, filters, the
    delta timestamp, and the column of a referenced table a line takes its value from)."""
    read: dict[str, set[str]] = {mapping.source_table: set()}
    own = read[mapping.source_table]
    own.update(c for c in (mapping.source_key, mapping.changed_at) if c)
    filters = [mapping.where, mapping.skip_when, *(rule.when for rule in mapping.skip_rules)]
    own.update(f.source for f in filters if f is not None)
    for line in mapping.mapped_fields():
        own.update([line.source, *line.args])
        if line.references and line.via:
            read.setdefault(line.through or line.references, set()).add(line.via)
    return read


def missing_columns(plan: MappingPlan, tables: Collection[str], columns: Mapping[str, Collection[str]]) -> list[str]:
    """`table.column` for each column the plan reads from `tables` that the export (table → its columns) lacks:
    an export changed since the plan was confirmed, caught before staging instead of as a SQL error."""
    missing = set()
    for mapping in plan.objects:
        if mapping.target == NOT_MIGRATED:
            continue
        for table, wanted in columns_read(mapping).items():
            if table not in tables:
                continue
            present = columns.get(table)
            if present is None:
                missing.add(f"{table} (the whole table)")
            else:
                missing.update(f"{table}.{column}" for column in wanted - set(present))
    return sorted(missing)
