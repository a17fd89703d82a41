"""A patient's status onto the contact's status (and so its lifecycle stage), a bill's onto the deal's stage.

The plan carries the decision per status value (`value_map`), so a person sees every value and what it
becomes: prospective and new patients → `New` (a Lead), active ones → `Active patient`, inactive, archived
and deceased ones → `Inactive patient` (both Customers); a bill that is paid → `Paid` (won), written off →
`Written off` (lost), and so on. A contact status belongs to its lifecycle stage and a deal stage to its
pipeline, so choosing one sets the other at load (`load.choices`). Values the vocabulary does not know map
to none and the line asks for review; confirm-mapping wants every value decided, and the schema check,
before any record moves, every named choice to exist in the account.

The column is the one whose values say the most statuses, among the target's status-like pick-lists (a few
words per value): a claim's `claim_status` beats its `denial_status`, whatever the vendor calls either.
"""

from __future__ import annotations

from collections.abc import Callable

from clinic_pipeline.mapping.plan import FieldMapping, choice_line
from clinic_pipeline.mapping.synonyms import CLAIM_STATUS_VALUES, PATIENT_STATUS_VALUES, normalise, says
from clinic_pipeline.model.objects import CHOICE_SELECTORS
from clinic_pipeline.source.inventory import CodeList, ColumnProfile, SchemaInventory, TableProfile
from clinic_pipeline.source.inventory_model import value_meanings

STATUS_WORDS_MAX = 4
# Fewer distinct statuses than this is a flag (active yes/no), not a status the CRM's stages describe.
MIN_STATUSES = 2


def _patient_status(meaning: str) -> str | None:
    return next((status for (_, status), phrases in PATIENT_STATUS_VALUES.items() if says(meaning, phrases)), None)


def _claim_stage(meaning: str) -> str | None:
    return next((stage for stage, phrases in CLAIM_STATUS_VALUES.items() if says(meaning, phrases)), None)


_STAGE_OF_STATUS = {status: stage for stage, status in PATIENT_STATUS_VALUES}
# target → (field, value → choice, how a choice reads in the reason)
_VOCABULARY: dict[str, tuple[str, Callable[[str], str | None], Callable[[str], str]]] = {
    "contact": ("contact_status_id", _patient_status, lambda c: f"{c} ({_STAGE_OF_STATUS[c]})"),
    "deal": ("deal_stage_id", _claim_stage, lambda c: c),
}


def status_line(table: TableProfile, target: str, used: set[str], inventory: SchemaInventory) -> FieldMapping | None:
    """The target's status line (contact status, deal stage) from the column whose values say the most."""
    if target not in _VOCABULARY:
        return None
    field, choose, shown = _VOCABULARY[target]
    best: tuple[int, FieldMapping] | None = None
    for column in table.columns:
        if column.name in used:
            continue
        codes = inventory.code_list(table.name, column.name)
        meaning = value_meanings(column, codes)
        if not meaning or any(len(normalise(m).split()) > STATUS_WORDS_MAX for m in meaning.values()):
            continue
        value_map = {v: choose(m) for v, m in meaning.items()}
        said = {c for c in value_map.values() if c}
        if len(said) < MIN_STATUSES or 2 * sum(1 for c in value_map.values() if c) < len(value_map):
            continue
        if best is None or len(said) > best[0]:
            best = (len(said), _line(column, field, value_map, shown, codes))
    return best[1] if best else None


def _line(
    column: ColumnProfile,
    field: str,
    value_map: dict[str, str | None],
    shown: Callable[[str], str],
    codes: CodeList | None,
) -> FieldMapping:
    said = "; ".join(f"{v} → {shown(c)}" for v, c in value_map.items() if c)
    unknown = [v for v, c in value_map.items() if not c]
    decoded = f", codes read as {codes.list_table}.{codes.label_column}" if codes else ""
    return choice_line(
        column.name,
        field,
        value_map,
        confidence=0.8 if not unknown else 0.7,
        reason=f"status values → the account's {CHOICE_SELECTORS[field]}{decoded}: {said}"
        + (f"; not recognised (none until a person names one): {', '.join(unknown)}" if unknown else ""),
    )
