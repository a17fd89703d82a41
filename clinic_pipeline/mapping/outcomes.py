"""A visit's status: its Freshsales outcome (completed, no-show), and cancelled visits skipped with a reason.

The plan carries the decision per status value (`value_map`), so a person sees every value and what it
becomes: completed and attended visits → `Completed`, no-shows and missed ones → `No show` (the account's
default outcomes, resolved by name at load), other values (scheduled, checked in) → no outcome. Cancelled
visits did not happen: they are skipped with that reason by default, a plan choice a person can undo by
removing the rule.
"""

from __future__ import annotations

from clinic_pipeline.mapping.plan import FieldMapping, RowFilter, SkipRule, choice_line
from clinic_pipeline.mapping.synonyms import CANCELLED_VALUES, OUTCOME_VALUES, says
from clinic_pipeline.source.inventory import CodeList, ColumnProfile
from clinic_pipeline.source.inventory_model import value_meanings

CANCELLED_REASON = "cancelled visit: it did not happen (a plan choice: remove the rule to keep them)"


def _choice(value: str) -> str | None:
    return next((name for name, phrases in OUTCOME_VALUES.items() if says(value, phrases)), None)


def outcome_line(status: ColumnProfile, codes: CodeList | None = None) -> FieldMapping | None:
    """The status column's line onto the activity's outcome, when its values (or, for codes, their labels in
    the export's own list) say completed or no-show."""
    meaning = value_meanings(status, codes)
    # Cancelled values decide nothing here (their rows are skipped by the plan's rule), but the map names them:
    # confirm-mapping wants every value decided.
    value_map = {v: None if says(m, CANCELLED_VALUES) else _choice(m) for v, m in meaning.items()}
    if not any(value_map.values()):
        return None
    said = "; ".join(f"{v} → {c}" for v, c in value_map.items() if c)
    decoded = f", codes read as {codes.list_table}.{codes.label_column}{_which(codes)}" if codes else ""
    return choice_line(
        status.name,
        "outcome_id",
        value_map,
        confidence=0.8,
        reason=f"status values → Freshsales outcomes{decoded}: {said}; other values: no outcome",
    )


def cancelled_rule(status: ColumnProfile, codes: CodeList | None = None) -> SkipRule | None:
    cancelled = [v for v, m in value_meanings(status, codes).items() if says(m, CANCELLED_VALUES)]
    if not cancelled:
        return None
    return SkipRule(when=RowFilter(source=status.name, op="in", value=cancelled), reason=CANCELLED_REASON)


def _which(codes: CodeList) -> str:
    return f" where {codes.group_column} = {codes.group_value}" if codes.group_column else ""
