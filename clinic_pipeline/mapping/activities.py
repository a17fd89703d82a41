"""Plan lines for calendar tables and lab results: composite start/end times and one table → two targets.

Calendar rows usually hold a date, a time of day and a duration, in the clinic's local time. The plan
gets `from_date` = date + time (`local_datetime`), `end_date` = that + duration (`end_after_minutes`),
and two mappings of the table: rows lasting at least `TASK_BELOW_MINUTES` are Appointments, shorter
ones (check-ins, follow-up calls) or rows without a duration are Tasks due at the same moment.
Lab result tables with a free-text report column: rows with no structured value become Notes on the
contact whose description is the original text; the others stay `lab_result` module records.
"""

from __future__ import annotations

from clinic_pipeline.mapping.plan import FieldMapping, ObjectMapping, RowFilter
from clinic_pipeline.source.inventory import ColumnProfile, TableProfile

TASK_BELOW_MINUTES = 15
# An appointment's or task's own fields; everything else about the visit goes into its description.
ACTIVITY_FIELDS = frozenset({"title", "from_date", "end_date", "due_date", "description", "location", "owner_id"})
LONG_TEXT = 200


def _fmt(column: ColumnProfile, fallback: str | None) -> str | None:
    return column.format or (fallback if column.type in ("date", "datetime") else None)


def time_lines(
    date: ColumnProfile, time: ColumnProfile | None, duration: ColumnProfile | None, date_format: str | None
) -> list[FieldMapping]:
    """from_date (and end_date when a duration exists) from a date [+ time of day] in the clinic's zone."""
    formats = [_fmt(date, date_format)] + ([_fmt(time, None)] if time else [])
    if any(f is None for f in formats):
        return []
    fmt = " ".join(f for f in formats if f)
    args = [time.name] if time else []
    parts = f"{date.name} + {time.name}" if time else date.name
    lines = [
        FieldMapping(
            source=date.name,
            target="from_date",
            type="datetime",
            transform=f"local_datetime:{fmt}",
            args=args,
            confidence=0.9,
            reason=f"start = {parts} ({fmt}), local time in the clinic's zone → UTC",
        )
    ]
    if duration is not None:
        lines.append(
            FieldMapping(
                source=duration.name,
                target="end_date",
                type="datetime",
                transform=f"end_after_minutes:{fmt}",
                args=[date.name, *args],
                confidence=0.85,
                reason=f"end = start + {duration.name} minutes",
            )
        )
    return lines


def split_calendar(mapping: ObjectMapping, duration: ColumnProfile | None) -> list[ObjectMapping]:
    """Appointments for visits with a duration; Tasks for short check-ins (and rows with no duration)."""
    if duration is None:
        return [mapping]
    visits = mapping.model_copy(
        update={
            "where": RowFilter(source=duration.name, op="at_least", value=TASK_BELOW_MINUTES),
            "reason": f"{mapping.reason}; rows lasting ≥ {TASK_BELOW_MINUTES} min ({duration.name}) are appointments",
        }
    )
    task_fields = []
    for line in mapping.fields:
        if line.target == "end_date":
            continue
        if line.target == "from_date":
            line = line.model_copy(update={"target": "due_date", "reason": line.reason + "; a task is due then"})
        task_fields.append(line)
    checkins = mapping.model_copy(
        update={
            "target": "task",
            "where": RowFilter(source=duration.name, op="below", value=TASK_BELOW_MINUTES),
            "reason": f"rows of {mapping.source_table} shorter than {TASK_BELOW_MINUTES} min or without a "
            "duration: check-ins and follow-ups become tasks",
            "fields": task_fields,
        }
    )
    return [visits, checkins]


def report_column(table: TableProfile, exclude: set[str]) -> ColumnProfile | None:
    texts = [c for c in table.columns if c.type == "text" and c.max_length >= LONG_TEXT and c.name not in exclude]
    return max(texts, key=lambda c: c.max_length) if texts else None


def split_unstructured(
    mapping: ObjectMapping, value: ColumnProfile | None, report: ColumnProfile | None
) -> list[ObjectMapping]:
    """Structured results stay module records; rows with only a free-text report become notes."""
    if value is None or report is None:
        return [mapping]
    structured = mapping.model_copy(
        update={
            "where": RowFilter(source=value.name, op="not_empty"),
            "reason": f"{mapping.reason}; rows with a value in {value.name} are structured results",
        }
    )
    links = [f for f in mapping.fields if f.transform == "lookup:contact"]
    note = ObjectMapping(
        source_table=mapping.source_table,
        target="note",
        source_key=mapping.source_key,
        where=RowFilter(source=value.name, op="empty"),
        skip_when=mapping.skip_when,
        confidence=mapping.confidence,
        reason=f"rows without a value in {value.name}: unstructured reports become notes on the contact, "
        f"original text of {report.name} kept",
        fields=[
            FieldMapping(
                source=report.name,
                target="description",
                confidence=0.85,
                reason="the report's original text, unchanged",
            ),
            *[f.model_copy(update={"target": "targetable_id"}) for f in links],
        ],
    )
    return [structured, note]
