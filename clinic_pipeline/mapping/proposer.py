"""Propose the mapping plan from the schema inventory: object per table, target per column, with reasons.

Object level: each table's target is scored from its name (fuzzy, against `synonyms.TABLE_CONCEPTS`)
and its columns (a table with first/last name, birth date and email is about people). Empty tables,
the software's own tables (logs, settings...) and tables that match nothing are `not_migrated` with a
reason a person can read and override.

Field level: each column is scored against the field concepts of `synonyms.CONCEPTS`: confidence =
0.65 * name similarity (rapidfuzz over the column's normalised/expanded spellings) + 0.35 * value-type
agreement (the inventory's inferred type), minus penalties for shaky evidence (ambiguous day/month
order, values not all matching the format, assumed time zone). A concept whose type clearly
contradicts the values is vetoed. Columns are assigned greedily, best first, so each standard field
receives one column; the rest become custom fields `cf_<snake_name>` typed from their values. Lines
below the review threshold get `needs_review: true`.

Conventions the plan follows:
- The source key (among the candidate keys: one other tables reference, then the best-named) →
  `external_id` on contacts; on any other target staging carries it in `cf_source_key`, and the key
  line targets null, unless the key is text that also fills a field (a location keyed by its name).
- Sensitive identifiers (SSN, insurance member/policy ids, licence numbers) → target null, with a reason.
- Created/updated timestamps → `cf_source_created_at` / `cf_source_updated_at` (Freshsales sets its own
  `created_at`/`updated_at` and ignores client values, so the originals are kept in custom fields).
- Pick-list columns keep `type: text` with the `picklist` transform unless the plan lists their choices
  (a dropdown without its choices would reject every value); statuses naming a Freshsales reference row
  (an appointment's outcome) use `choice:<selector>` with a value map.

Clinic location → account rule: a location/clinic/facility column on the contact table becomes the
line `{target: sales_accounts, type: lookup, transform: "lookup:sales_account"}` and the object gets
`also: [sales_account]`. Staging derives one sales_account per distinct trimmed value, case-insensitive:
account `name` = the trimmed value (first spelling in row order), `cf_source_key` =
`<table>.<column>:<lower(trimmed value)>`, and the contact links to that account.

The transforms a line may name, with the types each yields, are `model.transforms.TRANSFORMS`
(`vocabulary()` prints them); the plan check refuses any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz

from clinic_pipeline.mapping.activities import (
    end_column,
    names_an_end,
    report_column,
    split_calendar,
    split_unstructured,
    time_lines,
    with_title,
)
from clinic_pipeline.mapping.clinic import propose_clinic
from clinic_pipeline.mapping.communications import (
    activity_time_lines,
    channel_column,
    split_communications,
    type_line,
)
from clinic_pipeline.mapping.communications import outcome_line as call_outcome_line
from clinic_pipeline.mapping.grain import per_encounter
from clinic_pipeline.mapping.links import (
    accepted,
    evidence,
    link_lines,
    named_reference,
    names_own_table,
    parent_of_same_target,
    reference_lines,
    soft_delete_filters,
    table_relationships,
    through_lines,
)
from clinic_pipeline.mapping.names import split_full_name
from clinic_pipeline.mapping.outcomes import cancelled_rule, outcome_line
from clinic_pipeline.mapping.plan import FieldMapping, MappingPlan, ObjectMapping, RowFilter, SkipRule, choice_line
from clinic_pipeline.mapping.secrets import secret_evidence
from clinic_pipeline.mapping.statuses import status_line
from clinic_pipeline.mapping.synonyms import (
    ACTIVE_VALUES,
    BILLED_ACT_WORDS,
    COMMUNICATION_TABLE_WORDS,
    CONCEPT_BY_KEY,
    CONCEPTS,
    GENERIC_TABLE_WORDS,
    IDENTIFIER_WORDS,
    INACTIVE_VALUES,
    MEASUREMENT_WORDS,
    MERGED_FLAG_NAMES,
    PATIENT_REFERENCE_WORDS,
    PERSON_ONLY_SIGNALS,
    REBUILD_TABLE_WORDS,
    REFERRER_TABLE_WORDS,
    REFERRER_TAG,
    SUPERSEDED_WORDS,
    SYSTEM_TABLE_WORDS,
    TABLE_CONCEPTS,
    TEST_FLAG_NAMES,
    Concept,
    TableConcept,
    bare,
    expand,
    glued_prefix,
    normalise,
    snake_name,
    table_words,
    variants,
)
from clinic_pipeline.mapping.workflow_vocabulary import WORKFLOW_ROLES
from clinic_pipeline.model.objects import ACCOUNTS, CONTACTS, NOT_MIGRATED, FieldType
from clinic_pipeline.model.transforms import OWNER_COLUMNS
from clinic_pipeline.source.inventory import TEST_RECORD_NAME, ColumnProfile, SchemaInventory, TableProfile

NAME_WEIGHT = 0.65
TYPE_WEIGHT = 0.35
MIN_NAME_SCORE = 0.8  # below this a fuzzy name match is noise ("state" ~ "date")
# One-word names of a kind of clinic event (`procedure`, `payment`, `visit`): a log of them is the records. A
# log of people, places or files (`userlog`, `document_log`) is the software's audit trail of them.
RECORD_KIND_WORDS = (
    frozenset(
        p
        for c in TABLE_CONCEPTS
        if c.target not in {"contact", "sales_account", "user", "file", "note"}
        for p in c.phrases
        if " " not in p and p not in GENERIC_TABLE_WORDS
    )
    - SYSTEM_TABLE_WORDS
)
MIN_CONCEPT_SCORE = 0.55
MIN_FUZZY_LENGTH = 5
MIN_TABLE_SCORE = 0.5
MAX_CONFIDENCE = 0.99
KEY_CONCEPT = next(c for c in CONCEPTS if c.key == "source_key")
FIELD_CONCEPTS = tuple(c for c in CONCEPTS if c.key != "source_key")
LOOKUP_ACCOUNT = "lookup:sales_account"
SHA256_HEX_LENGTH = 64
# A word that starts this share of the table names, in an export of at least this many tables, is a vendor prefix.
VENDOR_PREFIX_SHARE = 0.5  # most tables: more than half
VENDOR_PREFIX_MIN_TABLES = 4
SKIPPED_NAMED = 15  # skipped tables named in the printed assumption; the plan lists every one


@dataclass(frozen=True)
class _Target:
    field: str  # a standard field, or cf_* (custom); "{col}" stands for the column's snake name
    type: FieldType
    transform: str  # a vocabulary name; parse_* get the column's format appended
    penalty: float = 0.0  # an assumption in this choice (a home phone into the mobile field)


def _t(field: str, ftype: FieldType, transform: str = "trim", penalty: float = 0.0) -> _Target:
    return _Target(field, ftype, transform, penalty)


_COMMON: dict[str, list[_Target]] = {
    "middle_name": [_t("cf_middle_name", "text")],
    "address_2": [_t("cf_address_line_2", "text")],
    "date_of_birth": [_t("cf_date_of_birth", "date", "parse_date")],
    "gender": [_t("cf_gender", "text", "picklist")],
    "created_at": [_t("cf_source_created_at", "datetime", "parse_datetime")],
    "updated_at": [_t("cf_source_updated_at", "datetime", "parse_datetime")],
    "notes": [_t("cf_notes", "text")],
    "website": [_t("cf_website", "url")],
    "job_title": [_t("cf_job_title", "text")],
    "full_name": [_t("cf_full_name", "text")],
    "time_zone": [_t("cf_time_zone", "text")],
    "county": [_t("cf_county", "text")],
}
_ADDRESS: dict[str, list[_Target]] = {
    "address": [_t("address", "text")],
    "city": [_t("city", "text")],
    "state": [_t("state", "text")],
    "zipcode": [_t("zipcode", "text")],
    "country": [_t("country", "text")],
}
# Concept → targets in order of preference, per Freshsales object with a field map in this version.
TARGETS: dict[str, dict[str, list[_Target]]] = {
    CONTACTS.target: {
        **_COMMON,
        **_ADDRESS,
        "first_name": [_t("first_name", "text")],
        "last_name": [_t("last_name", "text")],
        "email": [_t("emails", "email", "lower_email"), _t("cf_{col}", "email", "lower_email")],
        "mobile": [_t("mobile_number", "phone", "phone"), _t("cf_{col}", "phone", "phone")],
        "phone": [_t("mobile_number", "phone", "phone", penalty=0.08), _t("cf_{col}", "phone", "phone")],
        "work_phone": [_t("work_number", "phone", "phone"), _t("cf_{col}", "phone", "phone")],
        "job_title": [_t("job_title", "text")],
        "time_zone": [_t("time_zone", "text")],
        "location": [_t("sales_accounts", "lookup", LOOKUP_ACCOUNT), _t("cf_{col}", "text", "picklist")],
    },
    "deal": {
        **_COMMON,
        "invoice_number": [_t("name", "text")],
        "amount_billed": [_t("amount", "number", "cents")],
        "amount_paid": [_t("cf_amount_paid", "number", "cents")],
        # A bill closes when it is paid, and is expected to close when its payment is due.
        "payment_date": [_t("closed_date", "date", "parse_date"), _t("cf_payment_date", "date", "parse_date")],
        "due_date": [_t("expected_close", "date", "parse_date"), _t("cf_{col}", "date", "parse_date")],
        "service_date": [_t("cf_service_date", "date", "parse_date")],
        "denial_status": [_t("cf_{col}", "dropdown", "picklist")],
    },
    "appointment": {
        "activity_type": [_t("title", "text")],
        "notes": [_t("description", "text")],
        "status": [_t("description", "text")],
        "location": [_t("location", "text")],
        "all_day": [_t("is_allday", "checkbox", "boolean")],
    },
    "sales_activity": {
        "created_at": _COMMON["created_at"],
        "updated_at": _COMMON["updated_at"],
        "record_name": [_t("title", "text")],
        "notes": [_t("notes", "text")],
        "location": [_t("location", "text")],
        "direction": [_t("cf_{col}", "dropdown", "picklist")],
    },
    "task": {
        "due_date": [_t("due_date", "datetime", "local_datetime")],
        "activity_type": [_t("title", "text")],
        "notes": [_t("description", "text")],
        "status": [_t("description", "text")],
    },
    # A note is its text: the rest of its row goes to the description as labelled lines.
    "note": {"notes": [_t("description", "text")]},
    "file": {
        "full_name": [_t("file_name", "text", penalty=0.05)],
        "file_path": [_t("file_path", "text")],
        "file_name": [_t("file_name", "text")],
        "mime_type": [_t("mime_type", "text")],
        "file_size": [_t("size_bytes", "number", "integer")],
        "checksum": [_t("sha256", "text")],
    },
    ACCOUNTS.target: {
        **_COMMON,
        **_ADDRESS,
        "full_name": [_t("name", "text")],
        "location": [_t("name", "text", penalty=0.05)],
        "phone": [_t("phone", "phone", "phone")],
        "work_phone": [_t("phone", "phone", "phone")],
        "mobile": [_t("phone", "phone", "phone", penalty=0.05)],
        "website": [_t("website", "url")],
    },
}
# Staff are matched to Freshsales users by email, never created: nothing else of theirs migrates.
TARGETS["user"] = {"email": [_t("email", "email", "lower_email")], "full_name": [_t("display_name", "text")]}
MODULE_TARGETS: dict[str, list[_Target]] = {
    "created_at": _COMMON["created_at"],
    "updated_at": _COMMON["updated_at"],
    "record_name": [_t("name", "text")],
}
# A table with one of these columns is a record of its own, not child rows folded into a parent.
IDENTITY_CONCEPTS: dict[str, set[str]] = {
    "contact": {"first_name", "last_name", "email", "full_name"},
    "sales_account": {"full_name", "location"},
    "deal": {"invoice_number"},
}
# Activities and notes have no custom fields: what has no field of its own goes into the description.
NO_CUSTOM_FIELDS = frozenset({"appointment", "task", "note"})
# Last words of a column named like a reference to another table's row.
REFERENCE_SUFFIXES = frozenset({"id", "num", "nbr"})
# Values that only mean something inside the source system: left out of an activity's description.
CODED_TYPES = frozenset({"id", "integer", "decimal", "boolean", "time"})
# When a row was created or changed in the source: custom fields keep it on records, activities drop it.
BOOKKEEPING_CONCEPTS = frozenset({"created_at", "updated_at"})
# Never migrated, whatever the target: who typed a row, and its revision or lock counter.
ROW_BOOKKEEPING = frozenset({"recorded_by", "row_version", "device_stamp"})
_VALUE_WORDS = {
    "email": "values look like email addresses",
    "phone": "values look like phone numbers",
    "date": "values are dates",
    "datetime": "values are date-times",
    "time": "values are times of day",
    "zip": "values look like ZIP codes",
    "id": "values look like identifiers",
    "code": "values are clinical codes (ICD-10, CPT, LOINC)",
    "integer": "values are whole numbers",
    "decimal": "values are decimal numbers",
    "money": "values look like money amounts",
    "boolean": "values are yes/no flags",
    "text": "values are text",
}


def _value_words(column: ColumnProfile) -> str:
    if column.null_rate >= 1.0:
        return "no values in this export"
    words = _VALUE_WORDS[column.type]
    if column.format:
        words += f" ({column.format})"
    if column.categories is not None:
        words += f", {len(column.categories)} distinct (pick-list)"
    return words


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def name_similarity(name: str, phrases: tuple[str, ...]) -> tuple[float, str]:
    """Best similarity in [0, 1] of any spelling of `name` to any phrase, and that phrase."""
    best, best_phrase = 0.0, ""
    for form in variants(name):
        words = set(form.split())
        for phrase in phrases:
            if form == phrase:
                return 1.0, phrase
            if len(form) < MIN_FUZZY_LENGTH or _name_against_number(form, phrase):
                # `pid` ~ `paid`, `st` ~ `sr`: a short name matches exactly or not at all; and a name is never a
                # number (`subscriber name` is no `subscriber number`), however alike the spellings.
                score = 0.0
            else:
                joined = fuzz.ratio(form.replace(" ", ""), phrase.replace(" ", ""))
                score = max(fuzz.token_sort_ratio(form, phrase), joined) / 100
            if {_singular(w) for w in phrase.split()} <= {_singular(w) for w in words}:
                # Every word of the phrase is in the name ("home phone number" ⊇ "home phone").
                score = max(score, 0.8 + 0.15 * len(phrase) / max(len(form), 1))
            if score > best:
                best, best_phrase = score, phrase
    return (best, best_phrase) if best >= MIN_NAME_SCORE else (0.0, best_phrase)


def _name_against_number(form: str, phrase: str) -> bool:
    """One ends in `name`, the other in an identifier word (joined spellings too: `subscribername`): the
    same thing's label and its number."""

    def named(text: str) -> bool:
        return text.rsplit(" ", 1)[-1].endswith("name")

    def numbered(text: str) -> bool:
        last = text.rsplit(" ", 1)[-1]
        return last in IDENTIFIER_WORDS or last.endswith("number")

    return (named(form) and numbered(phrase)) or (named(phrase) and numbered(form))


def _type_agreement(column: ColumnProfile, concept: Concept) -> float | None:
    """1 agree, lower when the values are silent, None when they contradict the concept. A column without
    values still says its type in its last word (`last_menstruation_start_date` is no last name)."""
    if column.null_rate >= 1.0:
        dated = normalise(column.name).split()[-1:] in (["date"], ["datetime"], ["time"], ["timestamp"], ["dt"])
        return None if dated and not concept.value_types & {"date", "datetime", "time"} else 0.5
    if column.type in concept.value_types:
        return 1.0
    if column.type == "text":
        return 0.3  # a date column in mixed formats, a phone column full of notes...
    # A sensitive identifier is held back whatever its values look like (an SSN looks like a phone).
    return 0.7 if concept.sensitive else None


def _sha256_values(column: ColumnProfile) -> bool:
    """The file loader checks `sha256`: a digest of another length (SHA3-512, MD5) would fail every file."""
    return column.shape == "hex_digest" and column.max_length == SHA256_HEX_LENGTH


@dataclass(frozen=True)
class _Match:
    column: ColumnProfile
    concept: Concept
    score: float
    name_score: float
    phrase: str


def _matches(table: TableProfile, exclude: set[str]) -> list[_Match]:
    found = []
    prefix = glued_prefix(tuple(c.name for c in table.columns))
    own_words = set(expand(" ".join(table_words(table.name))).split())
    for column in table.columns:
        if column.name in exclude:
            continue
        name = bare(column.name, prefix)
        words = expand(normalise(name)).split()
        # A column led by its table's word (`ProcFee`, `ProcStatus` in a procedure log) is read without it too.
        unled = " ".join(words[1:]) if len(words) > 1 and words[0] in own_words else None
        for concept in FIELD_CONCEPTS:
            name_score, phrase = name_similarity(name, concept.phrases)
            if unled is not None:
                name_score, phrase = max((name_score, phrase), name_similarity(unled, concept.phrases))
            agreement = _type_agreement(column, concept)
            if agreement is None or (concept.key == "checksum" and not _sha256_values(column)):
                continue
            if "money" in concept.value_types and words[-1:] and words[-1] in IDENTIFIER_WORDS:
                continue  # `RepeatChargeNum` numbers a charge; it is no amount
            if name_score == 0.0:
                # Values alone can name a column only when their shape is unmistakable.
                if concept.key == "email" and column.type == "email":
                    found.append(_Match(column, concept, 0.6, 0.0, ""))
                continue
            score = NAME_WEIGHT * name_score + TYPE_WEIGHT * agreement
            if score >= MIN_CONCEPT_SCORE:
                found.append(_Match(column, concept, score, name_score, phrase))
    return found


def _with_format(transform: str, column: ColumnProfile, fallback_format: str | None) -> tuple[str, FieldType | None]:
    """Complete parse_* with the column's format; (transform, type override when it cannot be parsed)."""
    if not transform.startswith(("parse_", "local_datetime")):
        return transform, None
    fmt = column.format or fallback_format
    if transform == "local_datetime":
        # A day (a task due on a date) is read as its midnight in the clinic's zone.
        return (f"local_datetime:{fmt}", None) if fmt else ("trim", "text")
    if column.type == "date" and transform == "parse_datetime":
        return f"parse_date:{fmt}", "date"
    if fmt is None:
        return "trim", "text"
    return f"{transform}:{fmt}", None


def _penalties(column: ColumnProfile, transform: str, inventory: SchemaInventory) -> tuple[float, list[str]]:
    penalty, notes = 0.0, []
    if column.type_match_rate < 1.0 and column.null_rate < 1.0:
        penalty += (1.0 - column.type_match_rate) * 0.3
        notes.append(f"{round((1 - column.type_match_rate) * 100)} % of values do not fit")
    if any(h.startswith("day/month order ambiguous") for h in column.hints):
        penalty += 0.15
        notes.append("day/month order ambiguous: confirm the format")
    if transform.startswith("parse_datetime") and inventory.time_zone_assumed:
        penalty += 0.2
        notes.append(f"time zone assumed {inventory.time_zone}: confirm")
    if column.type == "text" and transform.startswith("parse_"):
        penalty += 0.2
        notes.append("values share no single date format")
    return penalty, notes


def _field_line(
    column: ColumnProfile,
    target: _Target,
    confidence: float,
    reason: str,
    inventory: SchemaInventory,
    threshold: float,
) -> FieldMapping:
    transform, type_override = _with_format(target.transform, column, inventory.date_format)
    penalty, notes = _penalties(column, transform, inventory)
    confidence = round(max(0.0, min(MAX_CONFIDENCE, confidence - penalty - target.penalty)), 2)
    name = target.field.replace("{col}", snake_name(column.name))
    if notes:
        reason = f"{reason}; {'; '.join(notes)}"
    ftype = type_override or target.type
    choices = list(column.categories or []) if ftype == "dropdown" else []
    if ftype == "dropdown" and not choices:
        ftype = "text"
    return FieldMapping(
        source=column.name,
        target=name,
        type=ftype,
        choices=choices,
        transform=transform,
        custom=name.startswith("cf_"),
        confidence=confidence,
        reason=reason,
        needs_review=confidence < threshold,
    )


def _fallback(column: ColumnProfile, inventory: SchemaInventory, threshold: float, target: str) -> FieldMapping:
    """No concept fits: a custom field typed from the values, for a person to keep, rename or drop."""
    cf = f"cf_{snake_name(column.name)}"
    if target in NO_CUSTOM_FIELDS and column.null_rate < 1.0:
        if column.type in CODED_TYPES and not _measurement(column):
            return FieldMapping(
                source=column.name,
                target=None,
                confidence=0.6,
                reason=f"{target}s have no custom fields, and a bare {column.type} of the source (a code, a flag, "
                "a number) says nothing in a description: not migrated",
                needs_review=threshold > 0.6,
            )
        return FieldMapping(
            source=column.name,
            target="description",
            confidence=0.6,
            reason=f"{target}s have no custom fields: kept as a labelled line of the description",
            needs_review=threshold > 0.6,
        )
    if _points_outside(column):
        return FieldMapping(
            source=column.name,
            target=None,
            confidence=0.65,
            reason="named like a reference, but its numbers match no key of this export: they point into a table "
            "the export lacks and mean nothing in Freshsales; not migrated",
            needs_review=threshold > 0.65,
        )
    if column.type == "id" and column.unique:
        return FieldMapping(
            source=column.name,
            target=None,
            confidence=0.75,
            reason="another identifier of the source's own (unique per row): the source key already travels "
            "with the record; not migrated",
            needs_review=threshold > 0.75,
        )
    if target in ("file", "user") or column.null_rate >= 1.0:
        return FieldMapping(
            source=column.name,
            target=None,
            confidence=0.8,
            reason="not migrated: the column has no values in this export"
            if column.null_rate >= 1.0
            else f"{target}s carry no custom fields: not migrated",
            needs_review=threshold > 0.8,
        )
    exact = column.type_match_rate >= 1.0
    by_type: dict[str, _Target] = {
        "email": _t(cf, "email", "lower_email"),
        "phone": _t(cf, "phone", "phone"),
        "date": _t(cf, "date", "parse_date"),
        "datetime": _t(cf, "datetime", "parse_datetime"),
        "money": _t(cf, "number", "cents"),
        "integer": _t(cf, "number", "number") if exact else _t(cf, "text"),
        "decimal": _t(cf, "number", "number") if exact else _t(cf, "text"),
    }
    target = by_type.get(column.type) or (_t(cf, "dropdown", "picklist") if column.categories else _t(cf, "text"))
    if column.type == "boolean":
        target = _t(cf, "checkbox", "boolean")
    confidence = 0.6 if column.categories or column.type not in ("text", "id") else 0.5
    reason = f"no standard field matches '{normalise(column.name)}'; custom field, {_value_words(column)}"
    return _field_line(column, target, confidence, reason, inventory, threshold)


def _source_key(
    table: TableProfile, inventory: SchemaInventory, targets: dict[str, str]
) -> tuple[ColumnProfile | None, float]:
    """The candidate key the rest of the export references (by the most tables), that is named like one and
    references none: `pid` beats `id` when the bills, visits and documents point at `pid`."""
    referencing_tables: dict[str, set[str]] = {}
    naming_tables: dict[str, set[str]] = {}
    for r in inventory.relationships:
        if r.ref_table == table.name and r.table != table.name and accepted(r, targets):
            referencing_tables.setdefault(r.ref_column, set()).add(r.table)
            if named_reference(r):
                naming_tables.setdefault(r.ref_column, set()).add(r.table)
    # References whose names agree first: a dense 1..N sort order (Open Dental's `ItemOrder`) catches every
    # staff-role column by chance, as often as the real key does.
    referenced = {c: (len(naming_tables.get(c, ())), len(by)) for c, by in referencing_tables.items()}
    candidate_keys = {t.name: set(t.keys) for t in inventory.tables}
    incoming = _incoming(inventory, targets)
    referencing = {
        r.column
        for r in inventory.relationships
        if r.table == table.name
        and r.ref_table != table.name
        and r.ref_column in candidate_keys.get(r.ref_table, set())
        and not r.coincidental  # a dense 1..N id lies in any other 1..N key by chance
        and not names_own_table(r.column, table.name)
        # Two keys holding the same values point at each other: the one more tables reference is the parent.
        and incoming.get((table.name, r.column), 0) <= incoming.get((r.ref_table, r.ref_column), 0)
    }

    def score(column: ColumnProfile) -> float:
        name_score, _ = name_similarity(column.name, KEY_CONCEPT.phrases)
        shape = 0.3 if column.type == "id" else 0.15 if column.type == "integer" else 0.0
        own = 0.4 if names_own_table(column.name, table.name) else 0.0
        if own and normalise(column.name).endswith(" id"):
            own += 0.2  # `<table>_id`: the surrogate key naming every schema uses
        return name_score + shape + own + (0.25 if column.name in referenced else 0.0)

    keys = [table.column(k) for k in table.keys]
    # A column pointing at another table is its own table's key only in 1:1 side tables.
    keys = [k for k in keys if k.name not in referencing] or keys
    # Other tables' links resolve only through the key they point at: a referenced key beats a
    # better-named one nothing references (a location's name, not its NPI, when patients name their clinic).
    most = max((referenced.get(k.name, (0, 0)) for k in keys), default=(0, 0))
    keys = [k for k in keys if any(most) and referenced.get(k.name, (0, 0)) == most] or keys
    # A member id or SSN is unique too, but it is not migrated by default: it cannot carry the key.
    keys = [k for k in keys if not _sensitive(k.name)] or keys
    if not keys:
        return None, 0.0
    best = max(keys, key=score)
    return best, min(MAX_CONFIDENCE, 0.6 + 0.3 * max(0.0, min(score(best), 1.0)))


def _incoming(inventory: SchemaInventory, targets: dict[str, str]) -> dict[tuple[str, str], int]:
    """(table, column) → how many other tables reference it."""
    tables: dict[tuple[str, str], set[str]] = {}
    for r in inventory.relationships:
        if r.table != r.ref_table and accepted(r, targets):
            tables.setdefault((r.ref_table, r.ref_column), set()).add(r.table)
    return {key: len(by) for key, by in tables.items()}


def _secret_lines(table: TableProfile, key: ColumnProfile | None, threshold: float) -> dict[str, FieldMapping]:
    lines = {}
    for column in table.columns:
        why = secret_evidence(column)
        if why and (key is None or column.name != key.name):
            lines[column.name] = FieldMapping(
                source=column.name,
                target=None,
                confidence=0.95,
                reason=f"a secret of the source system, {why}: never migrated (confirm-mapping refuses it "
                "unless the line says allow_secret: true)",
                needs_review=threshold > 0.95,
            )
    return lines


def _sensitive(column: str) -> bool:
    return any(name_similarity(column, c.phrases)[0] >= MIN_NAME_SCORE for c in FIELD_CONCEPTS if c.sensitive)


NOTE_CONCEPT = next(c for c in TABLE_CONCEPTS if c.target == "note")
CONTACTS_CONCEPT = next(c for c in TABLE_CONCEPTS if c.target == CONTACTS.target)
# Tables whose columns naming the patient point at one table: two make it the patients' table by the graph.
MIN_PATIENT_REFERRERS = 2
MIN_PATIENT_COVERAGE = 0.9
# A column of free text a note can carry (a consultation's findings), not a code or a name.
NOTE_TEXT_LENGTH = 30
# Rows a column must fill with one value before that value is no record's data but the table's (a flag
# every row has, a unit the software writes on each): fewer rows prove nothing.
MIN_CONSTANT_ROWS = 5


def _patients_by_references(
    inventory: SchemaInventory,
    first: dict[str, tuple[TableProfile, ObjectMapping | None, TableConcept | None, float, str]],
) -> dict[str, str]:
    """Tables no name or columns matched that other tables point at by columns naming the patient
    (`patient_id` in the consultations, notes and policies → `facility_patientregistration`): the patients'
    table, from the graph; table → the evidence. Declared or named references covering their values only."""
    pointing: dict[str, set[str]] = {}
    for rel in inventory.relationships:
        patient = set(normalise(rel.column).split()) & PATIENT_REFERENCE_WORDS
        if (
            named_reference(rel)
            and patient
            and rel.table != rel.ref_table
            and (rel.coverage or 1.0) >= MIN_PATIENT_COVERAGE
        ):
            pointing.setdefault(rel.ref_table, set()).add(f"{rel.table}.{rel.column}")
    found = {}
    for name, columns in pointing.items():
        _table, verdict, concept, _score, _why = first.get(name, (None, None, None, 0.0, ""))
        if concept is None and verdict is None and len(columns) >= MIN_PATIENT_REFERRERS:
            found[name] = f"the patients' table by the graph: {', '.join(sorted(columns))} point at it"
    return found


def _table_concept(
    table: TableProfile, field_hits: set[str], prefix: str = ""
) -> tuple[TableConcept | None, float, str]:
    best: tuple[TableConcept | None, float, str] = (None, 0.0, "")
    name = " ".join(w for w in table_words(table.name) if w != prefix) or table.name
    # `call results` are calls: a generic word of the name (results, events, lists) yields to another word that
    # names a kind of record outright.
    named = {c.target: name_similarity(name, c.phrases) for c in TABLE_CONCEPTS}
    specific = {
        t for t, (score, phrase) in named.items() if score >= MIN_NAME_SCORE and phrase not in GENERIC_TABLE_WORDS
    }
    billed = "amount_billed" in field_hits
    for concept in TABLE_CONCEPTS:
        name_score, phrase = named[concept.target]
        if phrase in GENERIC_TABLE_WORDS and specific - {concept.target}:
            name_score = 0.0
        if phrase in BILLED_ACT_WORDS and billed != (concept.target == "deal"):
            name_score = 0.0  # procedures with a charge are billing lines; without one, clinical history
        signals = concept.signals & field_hits
        if concept.target != CONTACTS.target and field_hits & PERSON_ONLY_SIGNALS:
            signals = frozenset()  # a birth date or a gender: people, never a clinic with an address and phone
        signal = min(1.0, len(signals) / 3) if concept.signals else 0.0
        # Column signals add evidence; their absence does not outweigh a name that says it outright.
        score = max(NAME_WEIGHT * name_score + TYPE_WEIGHT * signal, 0.9 * name_score)
        if signal >= 1.0:
            score = max(score, 0.7)  # names, birth date, email: people, whatever the file is called
        if score > best[1]:
            parts = [f"table name ~ '{phrase}' {name_score:.2f}"] if name_score else []
            if signals:
                parts.append("columns look like " + ", ".join(sorted(s.replace("_", " ") for s in signals)))
            best = (concept, score, "; ".join(parts))
    return best


def _not_migrated(table: TableProfile, reason: str, confidence: float) -> ObjectMapping:
    return ObjectMapping(
        source_table=table.name, target=NOT_MIGRATED, confidence=round(confidence, 2), reason=reason, fields=[]
    )


def _assign(
    table: TableProfile,
    target: str,
    key: ColumnProfile | None,
    key_confidence: float,
    inventory: SchemaInventory,
    threshold: float,
    preset: dict[str, FieldMapping],
) -> list[FieldMapping]:
    targets = MODULE_TARGETS if target.startswith("custom_module:") else TARGETS.get(target, _COMMON)
    # A text key is usually the record's name too (a location keyed by its name), and so is a key named for
    # what names the record (an invoice number, its deal): it feeds that field as well. Other ids, numbers
    # and codes only travel as the key.
    travels_alone = key is not None and key.type != "text" and not _names_record(table, key, target)
    exclude = ({key.name} if key is not None and travels_alone else set()) | set(preset)
    lines: dict[str, FieldMapping] = dict(preset)
    # Several lines may fill an activity's description; every other field takes one column.
    taken: set[str] = {f.target for f in preset.values() if f.target and f.target != "description"}
    matches = _matches(table, exclude)
    # A home phone stands in for the mobile only when no column holds the mobile number itself.
    has_mobile = any(m.concept.key == "mobile" and m.name_score for m in matches)
    for match in sorted(matches, key=lambda m: (-m.score, m.column.name, m.concept.key)):
        column, concept = match.column, match.concept
        if column.name in lines:
            continue
        if concept.sensitive:
            why = "a sensitive identifier a CRM should not hold; set a target to copy it anyway"
            lines[column.name] = _unmigrated(match, why, threshold)
            continue
        if concept.key in ROW_BOOKKEEPING or (target in NO_CUSTOM_FIELDS and concept.key in BOOKKEEPING_CONCEPTS):
            why = "the source's own bookkeeping (who typed a row, when, its revision), not clinic data"
            lines[column.name] = _unmigrated(match, why, threshold)
            continue
        for choice in targets.get(concept.key, []):
            name = choice.field.replace("{col}", snake_name(column.name))
            if name in taken or (has_mobile and concept.key == "phone" and name == "mobile_number"):
                continue
            if not name.startswith("cf_") and _with_format(choice.transform, column, inventory.date_format)[1]:
                continue  # no date in its values: a standard date field would refuse it, a custom text one not
            if name != "description":
                taken.add(name)
            evidence = f"name ~ '{match.phrase}' {match.name_score:.2f}" if match.name_score else "by values only"
            lines[column.name] = _field_line(
                column, choice, match.score, f"{evidence}, {_value_words(column)}", inventory, threshold
            )
            break
    ordered = []
    for column in table.columns:
        if key is not None and column.name == key.name and column.name not in lines:
            ordered.append(_key_line(key, key_confidence, target, table, threshold))
        elif column.name in lines:
            ordered.append(lines[column.name])
        else:
            line = _fallback(column, inventory, threshold, target)
            if line.target and line.target != "description" and line.target in taken:
                line = line.model_copy(update={"target": f"{line.target}_{len(taken)}"})
            taken.add(line.target or "")
            ordered.append(line)
    return ordered


def _names_record(table: TableProfile, key: ColumnProfile, target: str) -> bool:
    """Whether `key` is named like the field that identifies a `target` record (a deal's invoice number).

    Not on contacts: their key always travels in `external_id`."""
    if target == CONTACTS.target:
        return False
    identity = IDENTITY_CONCEPTS.get(target, set())
    return any(m.column.name == key.name and m.name_score and m.concept.key in identity for m in _matches(table, set()))


def _measurement(column: ColumnProfile) -> bool:
    """Numbers that say something in a note (`systolic: 142`, a weight), by a measurement's name: other bare
    numbers of the source are codes, flags, ids and counters."""
    return column.type in ("integer", "decimal") and bool(set(normalise(column.name).split()) & MEASUREMENT_WORDS)


def _points_outside(column: ColumnProfile) -> bool:
    """`FeeSchedNum`, `employer_id`: a whole-number reference (repeating values) whose table is not exported."""
    words = normalise(column.name).split()
    return (
        len(words) >= 2 and words[-1] in REFERENCE_SUFFIXES and column.type in ("integer", "id") and not column.unique
    )


def _unmigrated(match: _Match, why: str, threshold: float) -> FieldMapping:
    """A column the proposer recognises and leaves behind, with the name evidence and the reason."""
    return FieldMapping(
        source=match.column.name,
        target=None,
        confidence=round(min(MAX_CONFIDENCE, match.score), 2),
        reason=f"not migrated: name ~ '{match.phrase}' {match.name_score:.2f}, {why}",
        needs_review=match.score < threshold,
    )


def _key_line(
    key: ColumnProfile, key_confidence: float, target: str, table: TableProfile, threshold: float
) -> FieldMapping:
    confidence = round(key_confidence, 2)
    repeated = table.row_count - key.null_count - key.distinct_count
    evidence = "unique" if repeated == 0 else f"unique but for {repeated} repeated value{'s' * (repeated > 1)}"
    if key.null_count:
        evidence += f"; empty on {key.null_count} of {table.row_count} rows"
    else:
        evidence += f" and non-null in all {table.row_count} rows"
    if repeated or key.null_count:
        evidence += " (staging quarantines those rows with their reason)"
    if target == CONTACTS.target:
        return FieldMapping(
            source=key.name,
            target=CONTACTS.key_field,
            type="text",
            transform="trim",
            confidence=confidence,
            reason=f"source key ({evidence}) → external_id, the idempotency key",
            needs_review=confidence < threshold,
        )
    return FieldMapping(
        source=key.name,
        target=None,
        confidence=confidence,
        reason=f"source key ({evidence}): staging carries it in cf_source_key",
        needs_review=confidence < threshold,
    )


def _table_target(
    table: TableProfile, threshold: float, prefix: str = ""
) -> tuple[ObjectMapping | None, TableConcept | None, float, str]:
    """First pass: a not-migrated verdict, or the table's concept with its score and evidence. `prefix`: the
    vendor's word every table name starts with (`oh_`, `gnuhealth_`), which says nothing of the table."""
    words = set(table_words(table.name)) - {prefix}
    if table.row_count == 0:
        return _not_migrated(table, "not migrated: the table is empty in this export", 0.9), None, 0.0, ""
    # A call log, a message log or a procedure log is the clinic's records, not the software's own log.
    records_logged = words & (COMMUNICATION_TABLE_WORDS | RECORD_KIND_WORDS)
    system_words = SYSTEM_TABLE_WORDS - ({"log", "logs"} if records_logged else set())
    if words & system_words:
        system = ", ".join(sorted(words & system_words))
        reason = f"not migrated: looks like the software's own table ({system}), not clinic data"
        return _not_migrated(table, reason, 0.8), None, 0.0, ""
    rebuild = [w for w in REBUILD_TABLE_WORDS if w in words]  # in the vocabulary's order of priority
    if not rebuild and _holds_rules(table):
        rebuild = ["rules"]
    if rebuild:
        return _not_migrated(table, f"not migrated: {REBUILD_TABLE_WORDS[rebuild[0]]}", 0.85), None, 0.0, ""
    concept, score, why = _table_concept(table, _field_hits(table), prefix)
    if concept is None or score < MIN_TABLE_SCORE:
        return None, None, score, why  # unmatched: `_unmatched` decides, once the patients' table is known
    return None, concept, score, why


def _patients_records(table: TableProfile, parent: str, inventory: SchemaInventory) -> bool:
    """Many rows per patient (the column pointing at the patients is not unique) carrying free text of their
    own: no secret (an API key is long text too) and no copy of the parent's data (one value per patient)."""
    rels = [r for r in inventory.relationships if r.table == table.name and r.ref_table == parent]
    columns = {r.column for r in rels}
    copies = {c for r in rels for c in r.determined}
    text = any(
        c.type == "text"
        and c.max_length >= NOTE_TEXT_LENGTH
        and c.name not in columns | copies
        and secret_evidence(c) is None
        for c in table.columns
    )
    return bool(columns) and text and not any(table.column(c).unique for c in columns)


def _unmatched(
    table: TableProfile, inventory: SchemaInventory, targets: dict[str, str], keys: dict[str, str]
) -> tuple[TableConcept | None, str]:
    """A table no name matches whose rows belong to patients (a named or declared reference into the contacts'
    key covering its values) is the patients' data: notes on each patient, flagged, never silently left
    behind. Any other unmatched table is not migrated, saying so; so is one whose name ends like the software's
    own tables (`securitylog`: an audit trail names patients too)."""
    words = table_words(table.name)
    if not any(w.endswith(s) for w in words for s in SYSTEM_TABLE_WORDS if len(s) >= 3):
        for column, rel in table_relationships(inventory, table.name, keys, targets).items():
            if (
                targets.get(rel.ref_table) == CONTACTS.target
                and named_reference(rel)
                and column != keys.get(table.name)
            ):
                return NOTE_CONCEPT, (
                    f"no Freshsales object matches its name or columns, but its rows belong to patients "
                    f"({column}: {evidence(rel)}): kept as notes on each patient, for a person to confirm or "
                    "move to a custom module"
                )
    return None, (
        "not migrated: neither the table name nor its columns match a Freshsales object "
        "(patients, locations, appointments, billing, providers, ...); set a target to migrate it"
    )


def _holds_rules(table: TableProfile) -> bool:
    """A trigger column and an action column: automation rules, whatever the table is called."""
    names = {normalise(c.name) for c in table.columns}
    return all(any(n in WORKFLOW_ROLES[role] for n in names) for role in ("trigger", "actions"))


def _field_hits(table: TableProfile) -> set[str]:
    return {m.concept.key for m in _matches(table, set()) if m.name_score >= 0.8}


def _best_column(table: TableProfile, concept: str, types: tuple[str, ...], exclude: set[str]) -> ColumnProfile | None:
    best: tuple[float, ColumnProfile] | None = None
    for column in table.columns:
        if column.name in exclude or column.type not in types:
            continue
        score, _ = name_similarity(column.name, CONCEPT_BY_KEY[concept].phrases)
        if score and (best is None or score > best[0]):
            best = (score, column)
    return best[1] if best else None


STATUS_WORDS_MAX = 4


def _outcome(table: TableProfile, used: set[str], inventory: SchemaInventory) -> FieldMapping | None:
    """The visit's status onto its outcome: the column named like a status, else the pick-list whose values
    say completed, no-show or cancelled whatever its name (GNU Health's `State`: done, no_show...). Codes
    (OpenEMR's `x`, `?`) are read by their labels in the export's own list."""

    def line(column: ColumnProfile) -> FieldMapping | None:
        return outcome_line(column, inventory.code_list(table.name, column.name))

    named = _best_column(table, "status", ("text",), used)
    outcome = line(named) if named is not None else None
    if outcome is not None:
        return outcome

    def status_like(column: ColumnProfile) -> bool:
        # Statuses are a word or a few; a reason's sentences ("patient left without being seen") are no status.
        codes = inventory.code_list(table.name, column.name)
        meanings = [codes.labels.get(v, v) if codes else v for v in column.categories or []]
        return bool(meanings) and all(len(normalise(m).split()) <= STATUS_WORDS_MAX for m in meanings)

    statuses = [c for c in table.columns if c.name not in used and c is not named and status_like(c)]
    return next((found for found in map(line, statuses) if found is not None), None)


def _propose_object(
    table: TableProfile,
    concept: TableConcept,
    score: float,
    why: str,
    inventory: SchemaInventory,
    threshold: float,
    targets: dict[str, str],
    keys: dict[str, str],
) -> list[ObjectMapping]:
    target = concept.target
    parent = parent_of_same_target(table, target, inventory, targets, keys)
    folded_into = parent.ref_table if parent is not None else None
    folds = folded_into is not None and not _field_hits(table) & IDENTITY_CONCEPTS.get(target, set())
    if folds and target == CONTACTS.target and _patients_records(table, folded_into or "", inventory):
        # `patient notes`: named after the patient, but many rows of text per patient are the patient's
        # records; a one-row side table or a table of links only is the patient's extension, folded below.
        notes, why = _unmatched(table, inventory, targets, keys)
        if notes is not None:
            return _propose_object(table, notes, threshold - 0.01, why, inventory, threshold, targets, keys)
    # Rows that name no parent (a booking that never became an encounter: future visits, no-shows) have no
    # record to carry them: they migrate as records of their own, the others are skipped as carried.
    carried = None
    if folds and parent is not None and table.column(parent.column).null_count:
        carried = SkipRule(
            when=RowFilter(source=parent.column, op="not_empty"),
            reason=f"carried by its {folded_into} record: the same {target}, migrated once",
        )
    elif folds:
        return [
            _not_migrated(
                table,
                f"not migrated as separate records: child rows of {folded_into} (also a {target}), whose "
                "records carry their totals; set a target to migrate them anyway",
                0.7,
            )
        ]
    key, key_confidence = _source_key(table, inventory, targets)
    references = reference_lines(table, target, inventory, targets, keys)
    links = link_lines(table, target, inventory, targets, keys)
    links.update(through_lines(table, target, inventory, targets, keys, links))
    # References kept as text: a status code found in a list table's codes is one, until read as an outcome.
    kept_as_text = set(references) - set(links)
    preset = {**_code_systems(table), **_parent_copies(table, target, inventory, links), **references, **links}
    preset.update(_secret_lines(table, key, threshold))
    soft_deletes = soft_delete_filters(table)
    for n, (flag, _) in enumerate(soft_deletes):
        preset[flag.name] = FieldMapping(
            source=flag.name,
            target=None,
            confidence=0.85,
            reason="soft-delete flag: flagged rows are skipped with that reason ("
            + ("skip_when" if n == 0 else "skip_rules")
            + ")",
        )
    if target == CONTACTS.target:
        for column in table.columns:
            if normalise(column.name) in MERGED_FLAG_NAMES and column.name not in preset:
                preset[column.name] = FieldMapping(
                    source=column.name,
                    target=None,
                    confidence=0.85,
                    reason="the source's merge marker: marked charts are skipped with that reason (skip_rules)",
                )
    used = set(preset) | ({key.name} if key else set())
    duration = None
    if target == "appointment":
        ends = {c.name for c in table.columns if names_an_end(c)}
        date = _best_column(table, "appointment_date", ("date", "datetime"), used | ends)
        time = _best_column(table, "start_time", ("time",), used) if date and date.type == "date" else None
        duration = _best_column(table, "duration", ("integer", "decimal"), used)
        end = None
        if date:
            end = end_column(table, time, used | {date.name}) if time else end_column(table, date, used)
        if duration is not None and end is not None and end.null_rate < duration.null_rate:
            duration = None  # an explicit end filled where the duration is mostly empty (FHIR's minutesDuration)
        elif duration is not None:
            end = None
        lines = time_lines(date, time, duration, inventory.date_format, end) if date else []
        if lines:
            preset.update({line.source: line for line in lines})
            if time is not None:
                preset[time.name] = FieldMapping(
                    source=time.name, target=None, confidence=0.9, reason="part of from_date (time of day)"
                )
        else:
            duration = None
        outcome = _outcome(table, used - kept_as_text, inventory)
        if outcome is not None:
            preset[outcome.source] = outcome
    status = status_line(table, target, used - kept_as_text, inventory)
    if status is not None:
        preset[status.source] = status
    channel_line, same_source_end = None, None
    if target == "sales_activity":
        channel_line, same_source_end = _communication_lines(table, used - kept_as_text, inventory, preset)
    fields = _assign(table, target, key, key_confidence, inventory, threshold, preset)
    if target == "appointment":
        fields = with_title(fields, table)
    tags: list[str] = []
    if target == CONTACTS.target:
        fields = split_full_name(fields)
        if set(table_words(table.name)) & REFERRER_TABLE_WORDS:
            tags = [REFERRER_TAG]
            fields = _with_territory_rule(fields, table, used)
    if target == "sales_activity":
        fields = _with_activity_end_and_title(fields, same_source_end, channel_line, table)
    if target.startswith("custom_module:"):
        fields = with_title(fields, table, title="name", kept_in="cf_")
    # After the title is chosen: a constant title (every visit a check-up) still names the record.
    fields = [_left_out(line, table) or line for line in fields]
    changed = _changed_column(table)
    reasons = [why]
    # Further soft-delete flags skip their rows with the same reason as the first (skip_when).
    flagged = [SkipRule(when=f, reason=f"soft-deleted in the source ({c.name})") for c, f in soft_deletes[1:]]
    candidates = (
        *flagged,
        carried,
        _continuation(table, key),
        _without_patient(table, target, fields),
        _cancelled(table, target, fields, inventory),
        *_test_records(table, target, fields),
    )
    rules = [rule for rule in candidates if rule]
    reasons += [f"skipped: {rule.reason} ({rule.when.source} {rule.when.op})" for rule in rules]
    if key is None:
        reasons.append("no unique non-null column: choose a source key before confirming")
        score = min(score, threshold - 0.01)
    elif key.name == table.group_key:
        reasons.append(f"key {key.name}, repeated over several rows per record: one record each, from its first row")
    else:
        reasons.append(f"key {key.name}")
    if target not in TARGETS and not target.startswith("custom_module:") and target != "user":
        reasons.append(f"{target}: generic field map in this version (custom fields), review every line")
        score = min(score, threshold - 0.01)
    also = ["sales_account"] if target == CONTACTS.target and any(_derives_account(f) for f in fields) else []
    if also:
        location = next(f.source for f in fields if _derives_account(f))
        reasons.append(f"one sales_account per distinct {location}, linked to each contact")
    mapping = ObjectMapping(
        source_table=table.name,
        target=target,
        also=also,
        source_key=key.name if key else None,
        # A resource flattened to several rows (one per name, address or code): one record, its first row.
        grouped=key is not None and key.name == table.group_key,
        confidence=round(max(0.0, min(MAX_CONFIDENCE, score)), 2),
        reason="; ".join(r for r in reasons if r),
        skip_when=soft_deletes[0][1] if soft_deletes else None,
        skip_rules=rules,
        changed_at=changed.name if changed else None,
        changed_at_format=changed.format if changed else None,
        duplicates="keep_flagged" if target == CONTACTS.target else None,
        tags=tags,
        fields=fields,
    )
    if target == "appointment":
        return split_calendar(mapping, duration)
    if target == "deal":
        return [per_encounter(mapping, table)]
    if target == "sales_activity":
        return split_communications(mapping, channel_line)
    if target == "custom_module:lab_result":
        value = _best_column(table, "result_value", ("text", "decimal", "integer"), used)
        return split_unstructured(mapping, value, report_column(table, used | ({value.name} if value else set())))
    return [mapping]


def _left_out(line: FieldMapping, table: TableProfile) -> FieldMapping | None:
    """A custom-field or description line of a column that carries nothing of its record: one value on every
    row (it tells no record from another), or the superseded copy of a column beside it (`ward_old` next to
    `ward`). Not migrated, saying why; a standard field, a link or a key keeps its line."""
    if not (line.target or "").startswith("cf_") and line.target != "description":
        return None
    column = table.column(line.source)
    words = normalise(column.name).split()
    kept = " ".join(w for w in words if w not in SUPERSEDED_WORDS)
    sibling = next((c.name for c in table.columns if c is not column and normalise(c.name) == kept), None)
    if sibling is not None and len(kept) < len(" ".join(words)):
        why = f"not migrated: a superseded copy of {sibling} beside it; set a target to keep it too"
    elif column.distinct_count == 1 and column.null_count == 0 and table.row_count >= MIN_CONSTANT_ROWS:
        why = (
            f"not migrated: one value on all {table.row_count} rows tells no record from another (a flag or "
            "setting of the software); set a target to keep it"
        )
    else:
        return None
    return FieldMapping(source=line.source, target=None, confidence=0.8, reason=why)


def _code_systems(table: TableProfile) -> dict[str, FieldMapping]:
    """A pick-list of URIs (FHIR's `type_sys`: http://terminology.hl7.org/CodeSystem/v2-0276) names the code
    system of a code beside it, the same few over every row: nothing a CRM user reads. A website differs
    from row to row and is no pick-list."""
    lines = {}
    for column in table.columns:
        uris = column.categories or []
        if uris and all(re.match(r"(?i)^(https?|urn):\S+$", v.strip()) for v in uris):
            lines[column.name] = FieldMapping(
                source=column.name,
                target=None,
                confidence=0.8,
                reason=f"{len(uris)} URIs repeated over the rows: the code system of a code beside it; not migrated",
            )
    return lines


def _parent_copies(
    table: TableProfile, target: str, inventory: SchemaInventory, links: dict[str, FieldMapping]
) -> dict[str, FieldMapping]:
    """A visit's or a bill's copy of its patient's or provider's data (`Patient Name`, `LAB_SEX`): the same
    on every row of one parent, and the parent's record holds it. Not migrated, with that evidence."""
    if target in ("contact", "user"):
        return {}  # a person's own record: what it shares with another is still its own
    lines = {}
    for column, link in links.items():
        linked = link.transform == "lookup:contact" or link.transform in OWNER_COLUMNS
        if not linked or link.references is None:
            continue
        rel = next(
            (
                r
                for r in inventory.relationships
                if (r.table, r.column, r.ref_table) == (table.name, column, link.references)
            ),
            None,
        )
        for copied in rel.determined if rel else []:
            lines[copied] = FieldMapping(
                source=copied,
                target=None,
                confidence=0.75,
                needs_review=True,
                reason=f"the same on every row of one {link.references} row ({column}): a copy of that record's "
                "own data, which its Freshsales record holds; not migrated",
            )
    return lines


def _continuation(table: TableProfile, key: ColumnProfile | None) -> SkipRule | None:
    """A one-to-many export's further lines (a second address under the record) have no key: skipped as
    such, not quarantined as records missing one."""
    if not table.continuation_rows or key is None or key.null_count == 0:
        return None
    return SkipRule(
        when=RowFilter(source=key.name, op="empty"),
        reason="continues the record above (a further line of a one-to-many field in the export), no record of its own",
    )


def _without_patient(table: TableProfile, target: str, fields: list[FieldMapping]) -> SkipRule | None:
    """Calendar rows with no patient (lunch, meetings, provider blocks) are no visits: skipped with a reason."""
    if target not in ("appointment", "task"):
        return None
    link = next((f for f in fields if f.target == "targetable_id" and f.transform == "lookup:contact"), None)
    if link is None or table.column(link.source).null_count == 0:
        return None
    return SkipRule(
        when=RowFilter(source=link.source, op="empty"),
        reason="no patient: a calendar block (lunch, meeting), not a visit",
    )


def _with_territory_rule(fields: list[FieldMapping], table: TableProfile, used: set[str]) -> list[FieldMapping]:
    """A referrer's territory by the geography of their practice (its state): a rule the clinic fills in, one
    territory of its Freshsales account per value; until then every value chooses none. The practice's
    account takes its referrers' territory."""
    state = _best_column(table, "state", ("text",), used)
    if state is None or any(f.target == "territory_id" for f in fields):
        return fields
    rule = choice_line(
        state.name,
        "territory_id",
        dict.fromkeys(state.categories or []),
        confidence=0.5,
        reason=f"territory by {state.name}: name the account's territory for each value (or leave none); the "
        "referrer's practice account gets it too",
    )
    return [*fields, rule]


def _communication_lines(
    table: TableProfile, used: set[str], inventory: SchemaInventory, preset: dict[str, FieldMapping]
) -> tuple[FieldMapping | None, FieldMapping | None]:
    """A communication log's type, start and end, time of day and call outcome into `preset`; returns (the
    channel's type line, an end line reading the same column as the start, which the preset cannot hold)."""
    channel = channel_column(table, used, inventory)
    channel_line = type_line(channel, inventory, table.name) if channel is not None else None
    if channel_line is not None:
        preset[channel_line.source] = channel_line
    taken = used | set(preset)
    date = _best_column(table, "appointment_date", ("date", "datetime"), taken)
    time = _best_column(table, "start_time", ("time",), taken) if date and date.type == "date" else None
    duration = _best_column(table, "duration", ("integer", "decimal"), taken)
    lines = activity_time_lines(date, time, duration, inventory.date_format) if date else []
    same_source_end = None
    for line in lines:
        if line.source in preset:
            same_source_end = line
        else:
            preset[line.source] = line
    if time is not None and lines:
        preset[time.name] = FieldMapping(
            source=time.name, target=None, confidence=0.9, reason="part of start_date (time of day)"
        )
    outcome = call_outcome_line(table, used | set(preset), inventory)
    if outcome is not None:
        preset[outcome.source] = outcome
    return channel_line, same_source_end


def _with_activity_end_and_title(
    fields: list[FieldMapping], end: FieldMapping | None, channel: FieldMapping | None, table: TableProfile
) -> list[FieldMapping]:
    """The end line read from the start's column, after the start; a title (required) from the subject, else
    the short text that says most, else the channel as written."""
    if end is not None:
        at = next(i for i, f in enumerate(fields) if f.target == "start_date")
        fields = [*fields[: at + 1], end, *fields[at + 1 :]]
    fields = with_title(fields, table, kept_in="notes")
    if channel is not None and not any(f.target == "title" for f in fields):
        fields = [
            *fields,
            FieldMapping(
                source=channel.source,
                target="title",
                confidence=0.7,
                needs_review=True,
                reason="Freshsales requires a title: the channel as the log writes it (Phone, Email...)",
            ),
        ]
    return fields


def _test_records(table: TableProfile, target: str, fields: list[FieldMapping]) -> list[SkipRule]:
    """Test and demo charts (a test flag set, or a name like TEST or ZZZ in the data) are not patients, and
    charts the source marks merged into another (a flag, or the survivor's id) are that other: skipped with a
    reason, counted in reconciliation. Only where the export shows them, so a plan never carries a rule its
    data gives no evidence for."""
    if target != CONTACTS.target:
        return []
    rules = []
    for column in table.columns:
        if normalise(column.name) in TEST_FLAG_NAMES and set(column.categories or []) & set(ACTIVE_VALUES):
            rules.append(
                SkipRule(
                    when=RowFilter(source=column.name, op="in", value=list(ACTIVE_VALUES)),
                    reason=f"a test chart ({column.name} set), not a patient",
                )
            )
    for column in table.columns:
        if normalise(column.name) not in MERGED_FLAG_NAMES or column.null_rate >= 1.0:
            continue
        flag = column.type == "boolean" or (
            bool(column.categories) and set(column.categories or []) <= {*ACTIVE_VALUES, *INACTIVE_VALUES}
        )
        rules.append(
            SkipRule(
                when=RowFilter(source=column.name, op="in", value=list(ACTIVE_VALUES))
                if flag
                else RowFilter(source=column.name, op="not_empty"),
                reason=f"merged into another chart in the source ({column.name}): the surviving chart is migrated",
            )
        )
    # One rule per column: a full name split into first and last is one column.
    names = list(dict.fromkeys(f.source for f in fields if f.target in ("first_name", "last_name", "cf_full_name")))
    rules += [
        SkipRule(
            when=RowFilter(source=name, op="matches", value=TEST_RECORD_NAME),
            reason=f"a test or demo chart ({name} like TEST, ZZZ, Dummy), not a patient",
        )
        for name in names
        if table.column(name).test_rows
    ]
    return rules


def _cancelled(
    table: TableProfile, target: str, fields: list[FieldMapping], inventory: SchemaInventory
) -> SkipRule | None:
    outcome = next((f for f in fields if f.target == "outcome_id"), None)
    if target != "appointment" or outcome is None:
        return None
    return cancelled_rule(table.column(outcome.source), inventory.code_list(table.name, outcome.source))


def _changed_column(table: TableProfile) -> ColumnProfile | None:
    """The last-updated (else created) timestamp a delta window selects rows by; None: diffed by content hash."""
    for name in (table.updated_column, table.created_column):
        if name:
            column = table.column(name)
            if column.format and column.type in ("datetime", "date"):
                return column
    return None


def _derives_account(line: FieldMapping) -> bool:
    return line.transform == LOOKUP_ACCOUNT and line.references is None


def propose_plan(inventory: SchemaInventory, review_threshold: float) -> MappingPlan:
    """The proposed plan for every table of the inventory (status `proposed`, nothing confirmed)."""
    if not 0.0 <= review_threshold <= 1.0:
        raise ValueError("review_threshold must lie in [0, 1]")
    prefix = _vendor_prefix(inventory)
    first = {t.name: (t, *_table_target(t, review_threshold, prefix)) for t in inventory.tables}
    for name, why in _patients_by_references(inventory, first).items():
        table = first[name][0]
        first[name] = (table, None, CONTACTS_CONCEPT, review_threshold - 0.01, why)
    targets = {name: concept.target for name, (_t, _m, concept, _s, _w) in first.items() if concept is not None}
    keys = {}
    for table in inventory.tables:
        key, _confidence = _source_key(table, inventory, targets)
        if key is not None:
            keys[table.name] = key.name
    # Unmatched tables: the patients' records among them become notes, known as such to the links of others
    # (a prescription reaches its patient through the consultation kept as a note).
    unmatched = {
        name: _unmatched(table, inventory, targets, keys)
        for name, (table, verdict, concept, _score, _why) in first.items()
        if verdict is None and concept is None
    }
    targets.update({name: concept.target for name, (concept, _why) in unmatched.items() if concept is not None})
    objects: list[ObjectMapping] = []
    for table, verdict, concept, score, why in first.values():
        if table.name in unmatched:
            concept, why = unmatched[table.name]
            if concept is None:
                objects.append(_not_migrated(table, why, 1 - score))
                continue
            score = review_threshold - 0.01  # a fallback a person confirms
        if verdict is not None or concept is None:
            objects.append(verdict or _not_migrated(table, "not migrated", 0.5))
            continue
        objects.extend(_propose_object(table, concept, score, why, inventory, review_threshold, targets, keys))
    clinic, clinic_said = propose_clinic(inventory)
    return MappingPlan(
        source_fingerprint=inventory.fingerprint,
        assumptions=[*clinic_said, *_assumptions(inventory, objects)],
        clinic=clinic,
        objects=objects,
    )


def _vendor_prefix(inventory: SchemaInventory) -> str:
    """The first word most table names share (`oh_patient`, `oh_bills`...): the vendor's, not the table's."""
    firsts = [normalise(t.name).split()[0] for t in inventory.tables if len(normalise(t.name).split()) > 1]
    if len(inventory.tables) < VENDOR_PREFIX_MIN_TABLES or not firsts:
        return ""
    word = max(set(firsts), key=firsts.count)
    return word if firsts.count(word) >= VENDOR_PREFIX_SHARE * len(inventory.tables) else ""


def _assumptions(inventory: SchemaInventory, objects: list[ObjectMapping]) -> list[str]:
    """Every assumption that changes data, in words a person confirms (propose-mapping prints them)."""
    said = []
    lines = [(o, f) for o in objects for f in o.mapped_fields()]
    ambiguous = sorted(
        {
            f"{o.source_table}.{f.source}"
            for o, f in lines
            if any(
                h.startswith("day/month order ambiguous") for h in _column_hints(inventory, o.source_table, f.source)
            )
        }
    )
    if ambiguous:
        said.append(f"day/month order: no day above 12 in {', '.join(ambiguous)}; the format in each line is assumed")
    seconds = sorted(
        {f"{o.source_table}.{f.source}" for o, f in lines if (f.transform or "").startswith("end_after_s")}
    )
    if seconds:
        said.append(f"durations in {', '.join(seconds)}: read as seconds (values too long for minutes)")
    skipped = [o.source_table for o in objects if o.target == NOT_MIGRATED]
    if skipped:
        named = ", ".join(skipped[:SKIPPED_NAMED]) + (
            f" and {len(skipped) - SKIPPED_NAMED} more" if len(skipped) > SKIPPED_NAMED else ""
        )
        said.append(f"{len(skipped)} tables not migrated (each line in the plan says why): {named}")
    return said


def _column_hints(inventory: SchemaInventory, table: str, column: str) -> list[str]:
    profile = next((c for c in inventory.table(table).columns if c.name == column), None)
    return profile.hints if profile else []
