"""A contact that only has a full name ("Luis Ferreira, MD", "FERREIRA, LUIS"): its first and last name from it.

Freshsales needs a first name, last name or email; a full name alone would leave the record without a
name, or quarantined. The split is `name_part:<part>` (nameparser at staging, once per distinct name), which
knows the "last, first" order, titles (Dr.) and suffixes (MD, Jr.) so they do not end up in a name.
"""

from __future__ import annotations

from clinic_pipeline.mapping.plan import FieldMapping

FULL_NAME_TARGET = "cf_full_name"
_SPLIT = (("first", "first_name"), ("last", "last_name"))


def split_full_name(fields: list[FieldMapping]) -> list[FieldMapping]:
    """`fields` with a lone full-name line replaced by its first and last name lines (review asked)."""
    if any(f.target in ("first_name", "last_name") for f in fields):
        return fields
    full = next((f for f in fields if f.target == FULL_NAME_TARGET), None)
    if full is None:
        return fields
    parts = [
        FieldMapping(
            source=full.source,
            target=target,
            type="text",
            transform=f"name_part:{part}",
            confidence=min(full.confidence, 0.8),
            reason=f"no first or last name column: the {part} name read from the full name (titles and suffixes "
            "such as Dr. and MD left out, `Last, First` read as such)",
            needs_review=True,
        )
        for part, target in _SPLIT
    ]
    at = fields.index(full)
    return [*fields[:at], *parts, *fields[at + 1 :]]
