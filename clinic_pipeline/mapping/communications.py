"""Communication logs (calls, emails, SMS, letters, portal messages, reminder sends) → Freshsales sales activities
of their type, with their original time, contact and owner; kinds the account has no type for → notes.

- The channel column is the pick-list whose values say communication kinds, whatever its name (`channel`,
  `comm_type`, `method`). Its line is `choice:sales_activity_types` with a value map per value: phone and
  call → Call, email → Email, text and SMS → SMS, chat → Chat (an account's default types).
- Letters, faxes and portal messages have no default type: the table's rows of those kinds are a second
  mapping, onto notes on the contact, their date, kind and text in the note (notes have no date of their
  own). A person who adds a Letter type in Freshsales moves the value into the activities' map and `where`.
- Start = the date [+ time of day] in the clinic's zone; end = start + the duration (a call's seconds or
  minutes), else the start itself: Freshsales requires both.
- A call's outcome column (left voicemail, no answer, wrong number) → `sales_activity_outcome_id`.
"""

from __future__ import annotations

from clinic_pipeline.mapping.activities import as_notes, narrowed, time_lines
from clinic_pipeline.mapping.plan import FieldMapping, ObjectMapping, RowFilter, choice_line
from clinic_pipeline.mapping.synonyms import CALL_OUTCOME_VALUES, COMMUNICATION_KINDS, normalise, says
from clinic_pipeline.source.inventory import ColumnProfile, SchemaInventory, TableProfile
from clinic_pipeline.source.inventory_model import value_meanings

TYPE_FIELD = "sales_activity_type_id"
OUTCOME_FIELD = "sales_activity_outcome_id"
# Most of a channel column's values must say a kind: a column of a few stray words is something else.
MIN_KIND_SHARE = 0.5
WORDS_MAX = 4


def kind_of(value: str) -> str | None:
    return next((kind for kind, (_, phrases) in COMMUNICATION_KINDS.items() if says(value, phrases)), None)


def channel_column(table: TableProfile, used: set[str], inventory: SchemaInventory) -> ColumnProfile | None:
    """The pick-list whose values say the most communication kinds."""
    best: tuple[int, ColumnProfile] | None = None
    for column in table.columns:
        meanings = value_meanings(column, inventory.code_list(table.name, column.name))
        if column.name in used or not meanings or any(len(normalise(m).split()) > WORDS_MAX for m in meanings.values()):
            continue
        kinds = [kind_of(m) for m in meanings.values()]
        said = sum(k is not None for k in kinds)
        if said >= MIN_KIND_SHARE * len(kinds) and (best is None or said > best[0]):
            best = (said, column)
    return best[1] if best else None


def type_line(channel: ColumnProfile, inventory: SchemaInventory, table: str) -> FieldMapping:
    meanings = value_meanings(channel, inventory.code_list(table, channel.name))
    value_map = {v: COMMUNICATION_KINDS[k][0] if (k := kind_of(m)) else None for v, m in meanings.items()}
    said = "; ".join(f"{v} → {t}" for v, t in value_map.items() if t)
    notes = [v for v, t in value_map.items() if not t]
    return choice_line(
        channel.name,
        TYPE_FIELD,
        value_map,
        confidence=0.8,
        reason=f"channel values → the account's sales activity types: {said}"
        + (f"; no default type for {', '.join(notes)}: those rows become notes" if notes else ""),
    )


def activity_time_lines(
    date: ColumnProfile, time: ColumnProfile | None, duration: ColumnProfile | None, fmt: str | None
) -> list[FieldMapping]:
    """start_date and end_date (the start again when there is no duration: Freshsales requires an end)."""
    lines = time_lines(date, time, duration, fmt)
    if not lines:
        return []
    start = lines[0].model_copy(update={"target": "start_date"})
    end = lines[1] if len(lines) > 1 else lines[0].model_copy(update={"reason": "end = start (no duration logged)"})
    return [start, end.model_copy(update={"target": "end_date"})]


def outcome_line(table: TableProfile, used: set[str], inventory: SchemaInventory) -> FieldMapping | None:
    """A call's outcome column: its values say left voicemail, no answer or wrong number."""
    for column in table.columns:
        meanings = value_meanings(column, inventory.code_list(table.name, column.name))
        if column.name in used or not meanings:
            continue
        value_map = {
            v: next((o for o, phrases in CALL_OUTCOME_VALUES.items() if says(m, phrases)), None)
            for v, m in meanings.items()
        }
        said = {o for o in value_map.values() if o}
        if len(said) >= 2:
            shown = "; ".join(f"{v} → {o}" for v, o in value_map.items() if o)
            return choice_line(
                column.name,
                OUTCOME_FIELD,
                value_map,
                confidence=0.75,
                reason=f"call outcomes → the account's sales activity outcomes: {shown}; other values: none",
            )
    return None


def split_communications(mapping: ObjectMapping, channel: FieldMapping | None) -> list[ObjectMapping]:
    """Kinds with a type stay sales activities; the others (letters, portal messages) become notes with their
    date, kind and text, on the contact."""
    if channel is None:
        return [mapping]
    typed = [v for v, t in channel.value_map.items() if t]
    untyped = [v for v, t in channel.value_map.items() if not t]
    if not untyped:
        return [mapping]
    activities = narrowed(
        mapping,
        RowFilter(source=channel.source, op="in", value=typed),
        f"rows of a kind with a sales activity type ({channel.source})",
    )
    # Notes have no date or type of their own: both travel in the note's text, as the source wrote them.
    text = {"type": "text", "transform": "trim", "value_map": {}, "args": []}
    note = as_notes(
        mapping,
        RowFilter(source=channel.source, op="not_in", value=typed),
        f"rows of {mapping.source_table} whose kind ({', '.join(untyped)}) has no sales activity type in a "
        "default account: notes on the contact, with their date, kind and text",
        [
            line.model_copy(update={"target": "description", **text})
            for line in mapping.fields
            if line.target in ("title", "notes", TYPE_FIELD, "start_date")
        ],
    )
    return [activities, note]
