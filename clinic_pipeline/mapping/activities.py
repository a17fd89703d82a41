"""Plan lines for calendar tables and lab results: composite start/end times and one table → two targets.

Calendar rows usually hold a date, a time of day and a duration, in the clinic's local time. The plan
gets `from_date` = date + time (`local_datetime`), `end_date` = that + duration (`end_after_minutes`,
or `end_after_seconds` when the values are too long to be minutes: OpenEMR counts seconds), and two
mappings of the table: rows lasting at least `TASK_BELOW_MINUTES` are Appointments, shorter
ones (check-ins, follow-up calls) or rows without a duration are Tasks due at the same moment.
Lab result tables with a free-text report column: rows with no structured value become Notes on the
contact whose description is the original text; the others stay `lab_result` module records.
"""

from __future__ import annotations

from clinic_pipeline.mapping.plan import FieldMapping, ObjectMapping, RowFilter
from clinic_pipeline.mapping.synonyms import column_words, normalise
from clinic_pipeline.source.inventory import ColumnProfile, TableProfile

TASK_BELOW_MINUTES = 15
# An appointment's or task's own fields; everything else about the visit goes into its description.
ACTIVITY_FIELDS = frozenset({"title", "from_date", "end_date", "due_date", "description", "location", "owner_id"})
LONG_TEXT = 200
# Words of a column that can title a visit, best first; Freshsales requires the title.
TITLE_WORDS = ("title", "subject", "display", "type", "reason", "description", "summary", "class", "category", "name")
TITLE_MAX_LENGTH = 255
END_WORDS = ("end", "stop", "finish", "until")
MINUTES_IN_A_DAY = 24 * 60  # a duration above this is not a visit's length in minutes: it counts seconds


def counts_seconds(duration: ColumnProfile) -> bool:
    """A duration column in seconds: named so, or with values no visit lasts in minutes."""
    if {"sec", "secs", "seconds"} & set(normalise(duration.name).split()):
        return True
    try:
        return float(duration.max_value or 0) > MINUTES_IN_A_DAY
    except ValueError:
        return False


def _fmt(column: ColumnProfile, fallback: str | None) -> str | None:
    return column.format or (fallback if column.type in ("date", "datetime") else None)


def names_an_end(column: ColumnProfile) -> bool:
    """STOP, EndTime, end_dt, OpenClinic's glued ENDDATE: the end of something, never its start."""
    return any(word.startswith(END_WORDS) for word in column_words(column.name))


def end_column(table: TableProfile, start: ColumnProfile, exclude: set[str]) -> ColumnProfile | None:
    """An explicit end beside a start (STOP beside START, end_time beside start_time): same type and format."""
    for column in table.columns:
        same_shape = (column.type, column.format) == (start.type, start.format)
        if column.name in exclude or column.name == start.name or not same_shape:
            continue
        if names_an_end(column):
            return column
    return None


def time_lines(
    date: ColumnProfile,
    time: ColumnProfile | None,
    duration: ColumnProfile | None,
    date_format: str | None,
    end: ColumnProfile | None = None,
) -> list[FieldMapping]:
    """from_date, and end_date from a duration or an explicit end, from a date [+ time of day] in the clinic's zone."""
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
        unit = "seconds" if counts_seconds(duration) else "minutes"
        why = f"end = start + {duration.name} {unit}"
        if unit == "seconds":
            why += f" (values up to {duration.max_value}: too long for minutes)"
        lines.append(_end_line(duration.name, f"end_after_{unit}:{fmt}", why, [date.name, *args]))
    elif end is not None and time is not None:
        # START date + start time, and an end time of the same day (OSCAR's end_time).
        end_fmt = f"{_fmt(end, None)} {formats[0]}"
        why = f"end = {date.name} + {end.name} ({end_fmt})"
        lines.append(_end_line(end.name, f"local_datetime:{end_fmt}", why, [date.name]))
    elif end is not None:
        lines.append(_end_line(end.name, f"local_datetime:{fmt}", f"end = {end.name} ({fmt})"))
    return lines


def _end_line(source: str, transform: str, reason: str, args: list[str] | None = None) -> FieldMapping:
    return FieldMapping(
        source=source,
        target="end_date",
        type="datetime",
        transform=transform,
        args=args or [],
        confidence=0.85,
        reason=reason,
    )


def with_title(
    fields: list[FieldMapping], table: TableProfile, title: str = "title", kept_in: str = "description"
) -> list[FieldMapping]:
    """Freshsales requires an activity title (a module record its name): when no line feeds it, the short
    text column whose name says most of what the row was (its title, type, reason...) moves there from
    `kept_in` (the description; a custom field's `cf_` on module records)."""
    if any(f.target == title for f in fields):
        return fields

    def rank(line: FieldMapping) -> int:
        words = normalise(line.source).split()
        return next((i for i, w in enumerate(TITLE_WORDS) if any(w in word for word in words)), len(TITLE_WORDS))

    columns = {c.name: c for c in table.columns}
    candidates = [
        f
        for f in fields
        if (f.target or "").startswith(kept_in)
        and f.source in columns
        and columns[f.source].type == "text"
        and columns[f.source].max_length <= TITLE_MAX_LENGTH
    ]
    if not candidates:
        return fields
    chosen = min(candidates, key=lambda f: (rank(f), fields.index(f)))
    title = chosen.model_copy(
        update={
            "target": title,
            "type": "text",
            "custom": False,
            "transform": "trim",
            "confidence": 0.7,
            "needs_review": True,
            "reason": f"Freshsales requires a {title}: {chosen.source} (short text) says best what the row was",
        }
    )
    return [title if f is chosen else f for f in fields]


def narrowed(mapping: ObjectMapping, where: RowFilter, why: str) -> ObjectMapping:
    """The mapping for only the rows `where` takes, saying why."""
    return mapping.model_copy(update={"where": where, "reason": f"{mapping.reason}; {why}"})


def as_notes(mapping: ObjectMapping, where: RowFilter, reason: str, fields: list[FieldMapping]) -> ObjectMapping:
    """The rows `where` takes as notes on their contact (same key and skip rules), with `fields` for their text
    and the mapping's own links to the contact."""
    links = [
        f.model_copy(update={"target": "targetable_id"}) for f in mapping.fields if f.transform == "lookup:contact"
    ]
    return ObjectMapping(
        source_table=mapping.source_table,
        target="note",
        source_key=mapping.source_key,
        where=where,
        skip_when=mapping.skip_when,
        skip_rules=mapping.skip_rules,
        confidence=mapping.confidence,
        reason=reason,
        fields=[*fields, *links],
    )


def split_calendar(mapping: ObjectMapping, duration: ColumnProfile | None) -> list[ObjectMapping]:
    """Appointments for visits with a duration; Tasks for short check-ins (and rows with no duration)."""
    if duration is None:
        return [mapping]
    threshold = TASK_BELOW_MINUTES * (60 if counts_seconds(duration) else 1)
    visits = narrowed(
        mapping,
        RowFilter(source=duration.name, op="at_least", value=threshold),
        f"rows lasting ≥ {TASK_BELOW_MINUTES} min ({duration.name}) are appointments",
    )
    task_fields = []
    for line in mapping.fields:
        if line.target == "end_date":
            continue
        if line.target == "from_date":
            line = line.model_copy(update={"target": "due_date", "reason": line.reason + "; a task is due then"})
        elif line.target == "outcome_id":
            line = line.model_copy(
                update={"target": "description", "type": "text", "transform": "trim", "value_map": {}}
            )
        elif line.target == "location":
            line = line.model_copy(update={"target": "description", "reason": line.reason + "; tasks have no location"})
        task_fields.append(line)
    checkins = mapping.model_copy(
        update={
            "target": "task",
            "where": RowFilter(source=duration.name, op="below", value=threshold),
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
    structured = narrowed(
        mapping,
        RowFilter(source=value.name, op="not_empty"),
        f"rows with a value in {value.name} are structured results",
    )
    note = as_notes(
        mapping,
        RowFilter(source=value.name, op="empty"),
        f"rows without a value in {value.name}: unstructured reports become notes on the contact, "
        f"original text of {report.name} kept",
        [
            FieldMapping(
                source=report.name,
                target="description",
                confidence=0.85,
                reason="the report's original text, unchanged",
            )
        ],
    )
    return [structured, note]
