"""Workflow rebuild reference: the clinic's automation rules and saved reports, and how to rebuild each in Freshsales.

Neither migrates as records (design.md). The plan's not-migrated workflow/report tables (by the
proposer's reason, or by columns that look like trigger/conditions/actions or base table/columns/chart)
are read from the export; every rule becomes an entry with its trigger, conditions and actions as the
clinic wrote them (JSON parsed when it parses) and the Freshsales workflow to build: module, entry
point, actions, and what is not native (SMS). Every report gets the Freshsales object its data now
lives in, through the plan, and a report type. Columns are found by vocabulary, never by one vendor's
names (`workflow_vocabulary` holds the words).

Outputs (JSON for machines, Markdown checklist and HTML for the admin) may quote staff-written rule text
such as message templates, so they are written 0600; the returned summary holds counts, table names and
paths only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import duckdb
from pydantic import BaseModel, Field

from clinic_pipeline.mapping import workflow_vocabulary as fw
from clinic_pipeline.mapping.plan import MappingPlan, ObjectMapping
from clinic_pipeline.mapping.synonyms import ABBREVIATIONS, normalise
from clinic_pipeline.private_files import write_private_text
from clinic_pipeline.reports.charts import bar_chart
from clinic_pipeline.reports.render import render_page
from clinic_pipeline.source.export import ROW_COLUMN, VIEW_SCHEMA, SourceExport, table_name
from clinic_pipeline.sql import quote_ident

SCHEMA_VERSION = 1
JSON_NAME = "workflow_rebuild_reference.json"
MARKDOWN_NAME = "workflow_rebuild_reference.md"
HTML_NAME = "workflow_rebuild_reference.html"
NOT_MIGRATED = "not_migrated"
WORKFLOW_REASON = "not migrated: workflow/automation rules"
REPORT_REASON = "not migrated: report/dashboard definitions"
TRUE_WORDS = frozenset({"y", "yes", "true", "t", "1", "active", "enabled", "on", "live"})
FALSE_WORDS = frozenset({"n", "no", "false", "f", "0", "inactive", "disabled", "off", "paused", "draft"})
# The fields Freshsales itself names on appointments, tasks and deals: nicer anchors than the raw field.
FIELD_LABELS = {
    "from_date": "appointment start",
    "end_date": "appointment end",
    "due_date": "task due date",
    "expected_close": "expected close date",
}
AUDIT_WORDS = frozenset({"created", "updated", "modified", "changed"})
_OFFSET = re.compile(
    r"([-+])?\s*(\d+(?:\.\d+)?)\s*(minutes?|mins?|hours?|hrs?|h|days?|d|weeks?|wks?|w)\b"
    r"(?:\s+(before|prior|ahead|in advance|after|since|later|overdue|unpaid|past|ago|late))?"
)
_CLOCK = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b")
TriggerKind = Literal["record_created", "record_updated", "time_based", "manual_review"]
_CRON = re.compile(r"^\s*(\d{1,2})\s+(\d{1,2})\s+\*\s+\*\s+(\*|[0-6](?:-[0-6])?)\s*$")


# ---------------------------------------------------------------- the reference document


class RebuildAction(BaseModel):
    source: Any = Field(description="the action as the source wrote it")
    kind: fw.ActionKind
    freshsales_action: str
    native: bool
    detail: str | None = Field(default=None, description="template, task title or message as written")
    notes: list[str] = Field(default_factory=list)


class FreshsalesWorkflow(BaseModel):
    module: str | None = Field(description="the Workflows module to run on; null when it needs a person")
    plan_target: str | None
    trigger_kind: TriggerKind
    trigger_type: str
    actions: list[RebuildAction]
    manual_review: bool
    notes: list[str] = Field(default_factory=list)
    summary: str


class WorkflowEntry(BaseModel):
    kind: Literal["workflow"] = "workflow"
    source_table: str
    source_row: int
    id: str | None
    name: str | None
    trigger: str | None
    conditions: Any
    actions: Any
    schedule: str | None
    channel: str | None
    message: str | None = None
    active: bool | None
    freshsales: FreshsalesWorkflow


class ReportEntry(BaseModel):
    kind: Literal["report"] = "report"
    source_table: str
    source_row: int
    id: str | None
    name: str | None
    description: str | None
    base_table: str | None
    freshsales_object: str | None = Field(description="where the base table's data lives now, via the plan")
    plan_targets: list[str]
    columns: list[str]
    fields: dict[str, str | None] = Field(description="each listed column → its Freshsales field in the plan")
    filters: str | None
    chart_type: str | None
    report_type: fw.ReportType
    suggestion: str
    notes: list[str] = Field(default_factory=list)


Entry = Annotated[WorkflowEntry | ReportEntry, Field(discriminator="kind")]


class SourceTableRoles(BaseModel):
    table: str
    kind: Literal["workflow", "report"]
    found_by: Literal["plan reason", "columns"]
    plan_targets: list[str] = Field(description="what the plan migrates this table to as records (usually none)")
    roles: dict[str, str] = Field(description="role → source column")


class RebuildDocument(BaseModel):
    schema_version: int = SCHEMA_VERSION
    source_system: str
    plan_hash: str = Field(description="MappingPlan.objects_hash() of the plan this was generated from")
    plan_status: str
    tables: list[SourceTableRoles]
    entries: list[Entry]


class RebuildReference(BaseModel):
    """What the run produced: counts, table names and paths, never rule text."""

    workflow_tables: list[str]
    report_tables: list[str]
    missing_tables: list[str] = Field(description="plan tables of this kind the export does not have")
    workflow_rules: int
    active_rules: int
    inactive_rules: int
    manual_review: int
    not_native_actions: int
    reports: int
    plan_hash: str
    json_path: Path
    markdown_path: Path
    html_path: Path


# ---------------------------------------------------------------- words


def _words(text: str) -> list[str]:
    """Normalised words in order, with abbreviation expansions, singulars and joined pairs (`no show` → `noshow`)."""
    plain = normalise(text).split()
    found: list[str] = []
    for i, word in enumerate(plain):
        found.append(word)
        found.extend(ABBREVIATIONS.get(word, "").split())
        if len(word) > 3 and word.endswith("s"):
            found.append(word[:-1])
        if i + 1 < len(plain):
            found.append(word + plain[i + 1])
    return found


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _parsed(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(key path, scalar or list of scalars) pairs of parsed JSON."""
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _flatten(v, f"{prefix} {k}".strip())]
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return [pair for v in value for pair in _flatten(v, prefix)]
    return [(prefix, value)]


def _text_of(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------- finding the tables


def _column_roles(
    columns: Sequence[str], vocabulary: dict[str, tuple[str, ...]], subject_words: frozenset[str]
) -> dict[str, str]:
    """role → column, each role and column used once, roles claiming in the vocabulary's order."""

    def score(column: str, phrases: tuple[str, ...]) -> float:
        plain = normalise(column)
        stripped = " ".join(w for w in plain.split() if w not in subject_words) or plain
        best = 0.0
        for phrase in phrases:
            if phrase in (plain, stripped):
                return 1.0
            if f" {phrase} " in f" {plain} ":
                best = max(best, 0.7)
        return best

    roles: dict[str, str] = {}
    for role, phrases in vocabulary.items():
        scored = [(score(c, phrases), -i, c) for i, c in enumerate(columns) if c not in roles.values()]
        best = max(scored, default=(0.0, 0, ""))
        if best[0] > 0:
            roles[role] = best[2]
    return roles


def _workflow_roles(columns: Sequence[str]) -> dict[str, str]:
    return _column_roles(columns, dict(fw.WORKFLOW_ROLES), fw.WORKFLOW_SUBJECT_WORDS)


def _report_roles(columns: Sequence[str]) -> dict[str, str]:
    return _column_roles(columns, dict(fw.REPORT_ROLES), fw.REPORT_SUBJECT_WORDS)


def _looks_like_workflow(roles: dict[str, str]) -> bool:
    behaviour = {"trigger", "conditions", "actions", "schedule", "channel"} & roles.keys()
    return len(behaviour) >= 3 and bool({"trigger", "actions"} & roles.keys())


def _looks_like_report(roles: dict[str, str]) -> bool:
    return {"chart_type", "base_table", "columns"} <= roles.keys()


def _reason_kind(objects: list[ObjectMapping]) -> Literal["workflow", "report"] | None:
    for obj in objects:
        if obj.target == NOT_MIGRATED and obj.reason.startswith(WORKFLOW_REASON):
            return "workflow"
        if obj.target == NOT_MIGRATED and obj.reason.startswith(REPORT_REASON):
            return "report"
    return None


def _find_tables(plan: MappingPlan, export: SourceExport) -> tuple[list[SourceTableRoles], list[str]]:
    """Rule/report tables: by the plan's reason, else by their columns.

    A table the plan migrates counts only when it has both a trigger and an actions column: a rules table
    named like an activity ("reminders") can be proposed as tasks, and its rules still need rebuilding.
    """
    by_table: dict[str, list[ObjectMapping]] = {}
    for obj in plan.objects:
        by_table.setdefault(obj.source_table, []).append(obj)
    found: list[SourceTableRoles] = []
    missing = [name for name, objs in by_table.items() if name not in export.tables and _reason_kind(objs)]
    for name, table in export.tables.items():
        objects = by_table.get(name, [])
        by_reason = _reason_kind(objects)
        migrated = [o.target for o in objects if o.target != NOT_MIGRATED]
        columns = [c for c in table.columns if c != ROW_COLUMN]
        workflow, report = _workflow_roles(columns), _report_roles(columns)
        strict = not migrated or {"trigger", "actions"} <= workflow.keys()
        if by_reason == "workflow" or (by_reason is None and strict and _looks_like_workflow(workflow)):
            kind, roles = "workflow", workflow
        elif by_reason == "report" or (by_reason is None and not migrated and _looks_like_report(report)):
            kind, roles = "report", report
        else:
            continue
        found.append(
            SourceTableRoles(
                table=name,
                kind=kind,
                found_by="plan reason" if by_reason else "columns",
                plan_targets=migrated,
                roles=roles,
            )
        )
    return found, missing


def _read_rows(con: duckdb.DuckDBPyConnection, table: SourceTableRoles) -> list[dict[str, Any]]:
    """One dict per source row: `_source_row` plus each role's value. Rule tables are small: one fetch."""
    roles = list(table.roles.items())
    select = ", ".join([ROW_COLUMN, *(f"{quote_ident(column)} AS {quote_ident(role)}" for role, column in roles)])
    rows = con.execute(
        f"SELECT {select} FROM {VIEW_SCHEMA}.{quote_ident(table.table)} ORDER BY {ROW_COLUMN}"
    ).fetchall()
    names = [ROW_COLUMN, *(role for role, _ in roles)]
    return [dict(zip(names, row, strict=True)) for row in rows]


# ---------------------------------------------------------------- the plan's side


def _module(target: str | None) -> str | None:
    if target is None:
        return None
    if target.startswith(fw.CUSTOM_MODULE_PREFIX):
        return f"Custom module {target.removeprefix(fw.CUSTOM_MODULE_PREFIX)}"
    return fw.MODULES.get(target)


def _subject(texts: Iterable[str]) -> fw.Subject | None:
    """The subject named earliest in the first text that names one (the trigger before the rule's name)."""
    for text in texts:
        for word in _words(text):
            for subject in fw.SUBJECTS:
                if word in subject.words:
                    return subject
    return None


def _plan_target(plan: MappingPlan, subject: fw.Subject) -> str:
    matches = [o for o in plan.objects if o.target != NOT_MIGRATED and set(_words(o.source_table)) & subject.words]
    if not matches or not subject.follow_plan or any(o.target == subject.default_target for o in matches):
        return subject.default_target
    return max(matches, key=lambda o: o.confidence).target


def _date_anchor(plan: MappingPlan, target: str, subject: fw.Subject) -> str:
    """The mapped date field a time-based trigger counts from: the one the subject's date words name best."""
    candidates = [
        f
        for o in plan.objects
        if o.target == target
        for f in o.mapped_fields()
        if f.type in ("date", "datetime") or f.target in FIELD_LABELS
    ]
    plain = [f for f in candidates if not set(_words(f.source)) & AUDIT_WORDS] or candidates
    if not plain:
        return f"a date field of {_module(target) or target}"

    def rank(source: str) -> int:
        words = set(_words(source))
        return next((i for i, w in enumerate(subject.date_words) if w in words), len(subject.date_words))

    best = min(plain, key=lambda f: rank(f.source))
    assert best.target is not None  # mapped_fields() only
    return FIELD_LABELS.get(best.target) or f"{best.source} ({best.target})"


def _plan_has(plan: MappingPlan, target: str) -> bool:
    return bool(plan.objects_for(target))


# ---------------------------------------------------------------- triggers


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _direction(words: Iterable[str]) -> str | None:
    found = set(words)
    if found & fw.BEFORE_WORDS:
        return "before"
    if found & fw.AFTER_WORDS:
        return "after"
    return None


def _offset(conditions: Any, texts: Sequence[str]) -> tuple[float, str, str] | None:
    """(amount, unit, before|after) from condition keys like `hours_before: 24` or text like `2 days before`."""
    context = _direction(w for t in texts for w in _words(t))
    for key, value in _flatten(conditions) if isinstance(conditions, dict | list) else []:
        words = _words(key)
        unit = next((fw.UNITS[w] for w in words if w in fw.UNITS), None)
        amount = _number(value)
        if unit is None or amount is None:
            continue
        direction = _direction(words) or ("before" if amount < 0 else "after" if "offset" in words else context)
        if direction:
            return abs(amount), unit, direction
    for text in texts:
        for match in _OFFSET.finditer(text.lower()):
            sign, amount, unit, word = match.groups()
            direction = _direction([word]) if word else ("before" if sign == "-" else "after" if sign else context)
            if direction:
                return float(amount), fw.UNITS[unit], direction
    return None


def _recurrence(schedule: str | None) -> str | None:
    if not schedule:
        return None
    cron = _CRON.match(schedule)
    if cron:
        minute, hour, weekday = cron.groups()
        return f"every {'day' if weekday == '*' else 'week'} at {int(hour):02d}:{int(minute):02d}"
    phrase = next((fw.RECURRING[w] for w in _words(schedule) if w in fw.RECURRING), None)
    if "every" in schedule.lower().split() and phrase is None:
        phrase = schedule.strip().lower()
    clock = _CLOCK.search(schedule)
    if phrase and clock:
        return f"{phrase} at {int(clock.group(1)):02d}:{clock.group(2)}"
    return phrase


def _amount(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _trigger(
    plan: MappingPlan, row: dict[str, Any], conditions: Any, target: str | None, subject: fw.Subject | None
) -> tuple[TriggerKind, str, list[str]]:
    """(kind, Freshsales trigger type, notes)."""
    trigger = _clean(row.get("trigger")) or ""
    schedule = _clean(row.get("schedule"))
    trigger_words = set(_words(trigger))
    texts = [trigger, schedule or "", conditions if isinstance(conditions, str) else ""]
    offset = _offset(conditions, texts)
    recurrence = _recurrence(schedule)
    notes: list[str] = []
    if target is not None and subject is not None and offset is not None:
        amount, unit, direction = offset
        if unit in ("minutes", "hours") and amount < 24 * (60 if unit == "minutes" else 1):
            notes.append(fw.SHORT_OFFSET_NOTE)
        anchor = _date_anchor(plan, target, subject)
        return "time_based", f"time-based: {_amount(amount)} {unit} {direction} {anchor}", notes
    if target is not None and subject is not None and trigger_words & fw.ANNIVERSARY_WORDS:
        anchor = _date_anchor(plan, target, subject)
        return "time_based", f"time-based: {recurrence or 'every day'}, on the anniversary of {anchor}", notes
    # A schedule alone stands for the trigger only when there is no trigger text we failed to understand.
    if trigger_words & fw.STATE_WORDS or (recurrence and not trigger):
        return "time_based", f"time-based: {recurrence or 'every day'}", notes
    if trigger_words & fw.UPDATED_WORDS:
        return "record_updated", "record updated", notes
    if trigger_words & fw.CREATED_WORDS:
        return "record_created", "record created", notes
    return "manual_review", "manual review", notes


# ---------------------------------------------------------------- actions


def _action_items(actions: Any, channel: str | None, message: str | None) -> list[Any]:
    if isinstance(actions, list):
        return actions
    if isinstance(actions, dict):
        return [actions]
    if isinstance(actions, str):
        return [part.strip() for part in re.split(r"[;\n|]|\bthen\b", actions) if part.strip()]
    if actions is not None:
        return [actions]
    if channel or message:
        return [{"send": channel or "message", "message": message} if message else f"send {channel}"]
    return []


KIND_KEYS = frozenset({"send", "type", "action", "kind", "do", "channel", "via", "method", "op", "operation"})


def _classify_action(item: Any, channel: str | None) -> RebuildAction:
    notes: list[str] = []
    detail: str | None = None
    if isinstance(item, dict):
        words = [w for key in item for w in _words(str(key))]
        words += [w for k, v in item.items() if str(k).lower() in KIND_KEYS and isinstance(v, str) for w in _words(v)]
    else:
        text = _text_of(item)
        words = _words(text)
        _head, sep, tail = text.partition(":")
        detail = tail.strip() if sep and tail.strip() else None
    if not words and channel:
        words = _words(channel)
    action = next((a for a in fw.ACTIONS if set(words) & a.words), fw.MANUAL_ACTION)
    if isinstance(item, dict):
        detail = next((_clean(item[k]) for k in fw.ACTION_DETAIL_KEYS if isinstance(item.get(k), str)), None)
        if detail is None:
            detail = next(
                (_clean(v) for k, v in item.items() if isinstance(v, str) and set(_words(str(k))) & action.words), None
            )
        due = next((_number(v) for k, v in item.items() if "due" in _words(str(k)) and _number(v) is not None), None)
        if due is not None:
            notes.append(f"due {_amount(due)} days after the trigger")
        assignee = next((v for k, v in item.items() if "assign" in _words(str(k)) and isinstance(v, str)), None)
        if assignee:
            notes.append(f"assign to the Freshsales user or team for '{assignee}'")
    if action.note:
        notes.insert(0, action.note)
    return RebuildAction(
        source=item,
        kind=action.kind,
        freshsales_action=action.freshsales,
        native=action.native,
        detail=detail,
        notes=notes,
    )


def _action_phrase(action: RebuildAction) -> str:
    label = action.freshsales_action.split(" (")[0]
    label = label[:1].lower() + label[1:]
    if action.kind == "manual_review":
        return f"review the action {_text_of(action.source)!r} by hand"
    phrase = f"{label} '{action.detail}'" if action.detail else label
    return phrase + (" (not native: needs a Marketplace app or integration)" if not action.native else "")


# ---------------------------------------------------------------- entries


def _active(row: dict[str, Any], column: str | None) -> bool | None:
    value = _clean(row.get("active"))
    if value is None:
        return None
    lowered = value.lower()
    flag = True if lowered in TRUE_WORDS else False if lowered in FALSE_WORDS else None
    inverted = column is not None and bool(set(_words(column)) & fw.INVERTED_ACTIVE_WORDS)
    return None if flag is None else flag != inverted


def _workflow_entry(plan: MappingPlan, table: SourceTableRoles, row: dict[str, Any]) -> WorkflowEntry:
    trigger = _clean(row.get("trigger"))
    name = _clean(row.get("name"))
    conditions = _parsed(_clean(row.get("conditions")))
    actions = _parsed(_clean(row.get("actions")))
    channel, message = _clean(row.get("channel")), _clean(row.get("message"))
    subject = _subject([trigger or "", name or "", _text_of(conditions)])
    target = _plan_target(plan, subject) if subject else None
    module = _module(target)
    kind, trigger_type, notes = _trigger(plan, row, conditions, target if module else None, subject)
    rebuilt = [_classify_action(item, channel) for item in _action_items(actions, channel, message)]
    manual = kind == "manual_review" or module is None
    if target is not None and module is not None and not _plan_has(plan, target):
        notes.append(f"the plan migrates nothing to {target}: migrate that data first or choose another module")
    if kind in fw.PLAN_NOTES:
        notes.append(fw.PLAN_NOTES[kind])
    active = _active(row, table.roles.get("active"))
    if manual:
        summary = (
            f"Manual review: the trigger {trigger or '(empty)'!r} maps to no Freshsales module and entry point; "
            "rebuild it by hand from the source text."
        )
    else:
        then = "; ".join(_action_phrase(a) for a in rebuilt) or "no actions given"
        summary = f"Workflow on {module}, {trigger_type}: {then}."
    if active is False:
        summary = "Inactive in the source (rebuild only if still wanted). " + summary
    return WorkflowEntry(
        source_table=table.table,
        source_row=int(row[ROW_COLUMN]),
        id=_clean(row.get("id")),
        name=name,
        trigger=trigger,
        conditions=conditions,
        actions=actions,
        schedule=_clean(row.get("schedule")),
        channel=channel,
        message=message,
        active=active,
        freshsales=FreshsalesWorkflow(
            module=module,
            plan_target=target,
            trigger_kind="manual_review" if manual else kind,
            trigger_type="manual review" if manual else trigger_type,
            actions=rebuilt,
            manual_review=manual,
            notes=notes,
            summary=summary,
        ),
    )


def _base_objects(plan: MappingPlan, base_table: str | None) -> list[ObjectMapping]:
    if not base_table:
        return []
    wanted = table_name(base_table)
    migrated = [o for o in plan.objects if o.target != NOT_MIGRATED]
    exact = [o for o in migrated if o.source_table == wanted]
    if exact:
        return exact

    def stem(name: str) -> set[str]:
        return {w.removesuffix("s") for w in normalise(name).split()}

    return [o for o in migrated if stem(o.source_table) == stem(wanted)]


def _report_type(chart_type: str | None, name: str | None) -> tuple[fw.ReportType, list[str]]:
    words = set(_words(chart_type or "")) | ({"dashboard"} & set(_words(name or "")))
    found = next((kind for kind, vocab in fw.REPORT_TYPES if words & vocab), None)
    if found is not None:
        return found, []
    if chart_type:
        return "tabular", [f"chart type {chart_type!r} not recognised: pick the visual by hand"]
    return "tabular", []


def _report_entry(plan: MappingPlan, table: SourceTableRoles, row: dict[str, Any]) -> ReportEntry:
    name, chart_type, base = _clean(row.get("name")), _clean(row.get("chart_type")), _clean(row.get("base_table"))
    columns = [c.strip() for c in re.split(r"[;,|]", _clean(row.get("columns")) or "") if c.strip()]
    objects = _base_objects(plan, base)
    targets = list(dict.fromkeys(t for o in objects for t in (o.target, *o.also)))
    labels = list(dict.fromkeys(m for t in targets if (m := _module(t))))
    fields: dict[str, str | None] = {}
    for column in columns:
        lines = [f for o in objects for f in o.mapped_fields() if f.source.lower() == column.lower()]
        fields[column] = lines[0].target if lines else None
    report_type, notes = _report_type(chart_type, name)
    if base and not objects:
        notes.append("the base table is not migrated by the plan: find its data in Freshsales by hand")
    unmapped = [c for c, f in fields.items() if f is None]
    if unmapped and objects:
        notes.append(f"{len(unmapped)} listed column(s) have no Freshsales field in the plan")
    where = " + ".join(labels) if labels else "the matching Freshsales module"
    return ReportEntry(
        source_table=table.table,
        source_row=int(row[ROW_COLUMN]),
        id=_clean(row.get("id")),
        name=name,
        description=_clean(row.get("description")),
        base_table=base,
        freshsales_object=" + ".join(labels) or None,
        plan_targets=targets,
        columns=columns,
        fields=fields,
        filters=_clean(row.get("filters")),
        chart_type=chart_type,
        report_type=report_type,
        suggestion=f"{fw.REPORT_ADVICE[report_type]} on {where}",
        notes=notes,
    )


# ---------------------------------------------------------------- rendering


def _md(text: object) -> str:
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", " ".join(str(text).split()))


def _fenced(value: Any) -> list[str]:
    body = json.dumps(value, indent=2, ensure_ascii=False) if not isinstance(value, str) else value
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", body)), default=0) + 1)
    return [f"{fence}json" if not isinstance(value, str) else fence, body, fence]


def _render_markdown(doc: RebuildDocument) -> str:
    workflows = [e for e in doc.entries if isinstance(e, WorkflowEntry)]
    reports = [e for e in doc.entries if isinstance(e, ReportEntry)]
    lines = [
        "# Workflow rebuild reference",
        "",
        f"Source system: {_md(doc.source_system)}. Plan hash `{doc.plan_hash[:16]}` ({doc.plan_status}).",
        "Workflows, automation rules and reports are not migrated as records: rebuild each below in Freshsales "
        "(Admin Settings → Workflows; Analytics → Reports / Dashboards) and tick it off.",
        "",
        "## Checklist",
        "",
    ]
    for e in workflows:
        state = " (inactive in the source)" if e.active is False else ""
        flag = " — manual review" if e.freshsales.manual_review else ""
        lines.append(f"- [ ] Workflow: {_md(e.name or e.id or e.source_row)}{state}{flag}")
    lines += [f"- [ ] Report: {_md(e.name or e.id or e.source_row)}" for e in reports]
    for table in doc.tables:
        if table.plan_targets:
            lines.append(
                f"- [ ] Check the plan: {_md(table.table)} holds rule definitions but is also migrated as "
                f"{_md(', '.join(table.plan_targets))} records"
            )
    for n, e in enumerate(workflows, start=1):
        fs = e.freshsales
        lines += ["", f"## {n}. {_md(e.name or '(unnamed rule)')}", ""]
        lines += [
            f"- Source: {_md(e.source_table)} row {e.source_row}, id {_md(e.id or '-')}, "
            f"active: {'yes' if e.active else 'no' if e.active is False else 'unknown'}",
            f"- Source trigger: {_md(e.trigger or '-')}; schedule: {_md(e.schedule or '-')}; "
            f"channel: {_md(e.channel or '-')}",
            f"- Freshsales module: **{_md(fs.module or 'manual review')}**",
            f"- Freshsales trigger: **{_md(fs.trigger_type)}**",
            f"- In short: {_md(fs.summary)}",
        ]
        lines += [f"- Note: {_md(note)}" for note in fs.notes]
        lines.append("- Actions:")
        for action in fs.actions:
            detail = f": {_md(action.detail)}" if action.detail else ""
            extra = "".join(f" ({_md(note)})" for note in action.notes)
            lines.append(f"  - [ ] {_md(action.freshsales_action)}{detail}{extra}")
        if e.conditions is not None:
            lines += ["- Conditions as written in the source:", "", *_fenced(e.conditions)]
        if e.message:
            lines += ["- Message as written in the source:", "", *_fenced(e.message)]
    if reports:
        lines += ["", "## Reports and dashboards", ""]
        for e in reports:
            lines += [
                f"### {_md(e.name or '(unnamed report)')}",
                "",
                f"- [ ] {_md(e.suggestion)}",
                f"- Description: {_md(e.description or '-')}",
                f"- Source: {_md(e.source_table)} row {e.source_row}; base table {_md(e.base_table or '-')} → "
                f"{_md(e.freshsales_object or 'not migrated')}",
                f"- Type: {e.report_type} (source chart type {_md(e.chart_type or '-')})",
                "- Columns: " + (", ".join(f"{_md(c)} → {_md(f or 'no field')}" for c, f in e.fields.items()) or "-"),
                f"- Filters: {_md(e.filters or '-')}",
            ]
            lines += [f"- Note: {_md(note)}" for note in e.notes]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _modules_chart(workflows: Sequence[WorkflowEntry]) -> str:
    """Rules per Freshsales module, with the actions Freshsales cannot do natively: where the admin's work is."""
    rules: dict[str, list[WorkflowEntry]] = {}
    for e in workflows:
        rules.setdefault(e.freshsales.module or "manual review", []).append(e)
    modules = sorted(rules)
    return bar_chart(
        "Workflow rules per Freshsales module",
        modules,
        {
            "rules": [len(rules[m]) for m in modules],
            "actions not built in": [
                sum(not a.native for e in rules[m] for a in e.freshsales.actions) for m in modules
            ],
        },
    )


def render_html(doc: RebuildDocument) -> str:
    workflows = [e for e in doc.entries if isinstance(e, WorkflowEntry)]
    return render_page(
        "rebuild.html.j2",
        doc=doc,
        modules_chart=_modules_chart(workflows) if workflows else "",
        as_text=_text_of,
    )


# ---------------------------------------------------------------- entry point


def build_rebuild_reference(
    plan: MappingPlan, export: SourceExport, con: duckdb.DuckDBPyConnection, out_dir: Path
) -> RebuildReference:
    """Write the rebuild reference (JSON, Markdown, HTML; 0600) for the export's workflow and report tables."""
    tables, missing = _find_tables(plan, export)
    entries: list[WorkflowEntry | ReportEntry] = []
    for table in tables:
        for row in _read_rows(con, table):
            entries.append(
                _workflow_entry(plan, table, row) if table.kind == "workflow" else _report_entry(plan, table, row)
            )
    doc = RebuildDocument(
        source_system=export.manifest.source_system or "unknown",
        plan_hash=plan.objects_hash(),
        plan_status=plan.status,
        tables=tables,
        entries=entries,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / JSON_NAME, out_dir / MARKDOWN_NAME, out_dir / HTML_NAME
    # Private: rule text may quote a message template with a name in it.
    write_private_text(paths[0], doc.model_dump_json(indent=2) + "\n")
    write_private_text(paths[1], _render_markdown(doc))
    write_private_text(paths[2], render_html(doc))
    workflows = [e for e in entries if isinstance(e, WorkflowEntry)]
    return RebuildReference(
        workflow_tables=[t.table for t in tables if t.kind == "workflow"],
        report_tables=[t.table for t in tables if t.kind == "report"],
        missing_tables=missing,
        workflow_rules=len(workflows),
        active_rules=sum(e.active is True for e in workflows),
        inactive_rules=sum(e.active is False for e in workflows),
        manual_review=sum(e.freshsales.manual_review for e in workflows),
        not_native_actions=sum(not a.native for e in workflows for a in e.freshsales.actions),
        reports=len(entries) - len(workflows),
        plan_hash=doc.plan_hash,
        json_path=paths[0],
        markdown_path=paths[1],
        html_path=paths[2],
    )
