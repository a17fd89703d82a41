"""Plan lines for columns that point at other tables: links by Freshsales id, owners, soft-delete flags.

A foreign key (declared, or inferred by the inventory from names and value containment) becomes:
- a link when Freshsales can hold it: contact → its account (`lookup:sales_account`), a deal → its
  contact and account, activities, notes, files and custom module records → their contact
  (`lookup:contact`); the value is the parent row's source key, `references` names the parent table;
- the record's owner when the parent table holds providers/users (`owner_by_email`, the provider's
  email taken `via` the parent table's email column; where no staff table has one, `owner_by_name` by the
  provider's display name), resolved to a Freshsales user at load time;
- a link through another record when the record names only that record (a lab result's encounter → the
  encounter's patient: `through` the encounter table, `via` its patient column);
- otherwise nothing special: the generic field map keeps the raw value.
"""

from __future__ import annotations

import re

from clinic_pipeline.mapping.plan import FieldMapping, RowFilter
from clinic_pipeline.mapping.synonyms import (
    CLERK_ROLE_WORDS,
    CONCEPT_BY_KEY,
    CURRENT_LINK_WORDS,
    DELETED_AT_NAMES,
    LATER_ACT_WORDS,
    OWNER_ROLE_WORDS,
    PAST_LINK_WORDS,
    PATIENT_REFERENCE_WORDS,
    PAYER_ROLE_WORDS,
    PAYER_TABLE_WORDS,
    bare,
    expand,
    glued_prefix,
    normalise,
    snake_name,
    table_words,
    variants,
)
from clinic_pipeline.model.objects import NOT_MIGRATED, target_object
from clinic_pipeline.source.inventory import ColumnProfile, Relationship, SchemaInventory, TableProfile

CHILDREN_OF_CONTACT = ("deal", "appointment", "task", "note", "file", "sales_activity")
# (child target, parent target) → the line's target field (the loader links by `_lookup_<parent>`).
LINK_TARGETS: dict[tuple[str, str], str] = {
    ("contact", "sales_account"): "sales_accounts",
    ("deal", "sales_account"): "sales_account_id",
    ("deal", "contact"): "contact_ids",
    ("appointment", "contact"): "targetable_id",
    ("task", "contact"): "targetable_id",
    ("note", "contact"): "targetable_id",
    ("file", "contact"): "targetable_id",
    ("sales_activity", "contact"): "targetable_id",
}
TRUE_FLAGS = ["1", "y", "yes", "true", "t", "x"]
# An owner matched by display name can meet a namesake: a little less sure than by email.
BY_NAME_PENALTY = 0.05


def link_target(child: str, parent: str) -> str | None:
    if child.startswith("custom_module:") and parent in ("contact", "sales_account"):
        return f"cf_{parent}"
    return LINK_TARGETS.get((child, parent))


def _singular(word: str) -> str:
    return word[:-3] + "y" if word.endswith("ies") else word[:-1] if word.endswith("s") else word


def names_own_table(column: str, table: str) -> bool:
    """`encounter_id` in `billing_encounters`, `PatNum` in `patient`: the column names its own table."""
    words = [w for w in normalise(column).split() if w not in ("id", "number", "num", "key", "no", "nbr")]
    table_words = {_singular(w) for w in normalise(table).split()}
    return bool(words) and {_singular(w) for w in words} <= table_words


def named_reference(rel: Relationship) -> bool:
    """Declared, or a name that agrees with values that could not fit by chance: a reference by its name."""
    return rel.kind == "declared" or (rel.name_agrees and not rel.coincidental)


def accepted(rel: Relationship, targets: dict[str, str]) -> bool:
    """Declared keys, names that agree, and values that could not fit by chance; a staff-role name alone
    (`providerID` inside a 1..N users key) only where the parent really holds staff."""
    if named_reference(rel):
        return True
    if rel.coincidental:
        patient = bool(set(normalise(rel.column).split()) & PATIENT_REFERENCE_WORDS)
        return targets.get(rel.ref_table) in ("user", "sales_account") or (
            patient and targets.get(rel.ref_table) == "contact"
        )
    return (rel.distinct_count or 0) >= 3  # values alone: the key is no dense 1..N run (see source.relationships)


def table_relationships(
    inventory: SchemaInventory, table: str, keys: dict[str, str], targets: dict[str, str] | None = None
) -> dict[str, Relationship]:
    """Column → the relationship it starts into another table's source key: declared ones first, then those
    whose names agree, then values alone; the best-covered, then the tightest key (fewest values) first."""
    found: dict[str, Relationship] = {}
    ranked = sorted(
        (
            r
            for r in inventory.relationships
            if r.table == table
            and r.ref_table != table
            and keys.get(r.ref_table) == r.ref_column
            and accepted(r, targets or {})
        ),
        key=lambda r: (
            r.kind != "declared",
            not r.name_agrees,
            r.coincidental,
            -(r.coverage or 0.0),
            r.ref_distinct_count or 0,
        ),
    )
    for rel in ranked:
        found.setdefault(rel.column, rel)
    return found


def evidence(rel: Relationship) -> str:
    """What the line's reason says of a relationship: the measured containment, or that it was declared."""
    if rel.kind == "declared":
        return f"declared reference to {rel.ref_table}.{rel.ref_column}"
    measured = f"{round((rel.coverage or 0) * 100)} % of {rel.distinct_count} values found in {rel.ref_table}."
    measured += f"{rel.ref_column} ({rel.ref_distinct_count} keys)"
    if rel.selects:
        return f"{measured}, all of them rows with {rel.selects}"
    if rel.avoids_gaps:
        return f"{measured}, {rel.avoids_gaps}"
    if rel.coincidental:
        return f"{measured}, its role by name"
    return measured + ("" if rel.name_agrees else ", by values alone")


def owner_rank(column: str, target: str = "") -> int:
    """Lower is a better owner: the attending provider before an unnamed staff column before the one who ended
    or checked the record (`discontinuing_clinician_id`) before the clerk; past the unnamed column, no owner.
    A communication's plain `user` is the one who made the call or sent the message, not a clerk."""
    words = {w for w in normalise(column).split()}
    if words & LATER_ACT_WORDS:
        return len(OWNER_ROLE_WORDS) + 1
    for rank, word in enumerate(OWNER_ROLE_WORDS):
        if any(w.startswith(word) for w in words):
            return rank
    clerk = words & CLERK_ROLE_WORDS
    acting = target == "sales_activity" and clerk == {"user"}
    return len(OWNER_ROLE_WORDS) + (5 if clerk and not acting else 0)


def currency_rank(column: str) -> int:
    """1 for a link naming the present (the assigned, primary, current clinic), -1 for one naming the past
    (where the patient registered first), else 0."""
    words = set(normalise(column).split())
    return 1 if words & CURRENT_LINK_WORDS else -1 if words & PAST_LINK_WORDS else 0


def _email_column(table: TableProfile) -> str | None:
    emails = [c for c in table.columns if c.type == "email"]
    if emails:
        return max(emails, key=lambda c: 1 - c.null_rate).name
    named = [c for c in table.columns if "email" in c.name.lower() or "mail" in c.name.lower()]
    return named[0].name if named else None


def _staff_name_column(table: TableProfile) -> str | None:
    """The column naming each staff member whole: a full or display name (the vocabulary's `full_name`), else a
    description (Open Hospital's `US_DESC`: the name, often with a role); filled, not a category. A first and a
    last name apart are not read: an owner line takes one column `via` its table."""
    people = [c for c in table.columns if c.type == "text" and c.null_rate < 0.5 and c.categories is None]
    full_name = set(CONCEPT_BY_KEY["full_name"].phrases)
    named = [c for c in people if full_name & set(variants(c.name))]
    described = [c for c in people if "description" in expand(normalise(c.name)).split()]
    found = named or described
    return found[0].name if found else None


def link_lines(
    table: TableProfile, target: str, inventory: SchemaInventory, targets: dict[str, str], keys: dict[str, str]
) -> dict[str, FieldMapping]:
    """Column → its link/owner line, for this table proposed as `target`; `targets`: table → proposed target."""
    lines: dict[str, FieldMapping] = {}
    ranks: dict[str, tuple[int, tuple[int, int], float, int, int]] = {}
    tables = {t.name: t for t in inventory.tables}
    referrers = _referencing_tables(inventory)
    prefix = glued_prefix(tuple(c.name for c in table.columns))
    for column, rel in table_relationships(inventory, table.name, keys, targets).items():
        parent_target = targets.get(rel.ref_table)
        parent = tables.get(rel.ref_table)
        why = evidence(rel)
        confidence = 0.95 if rel.kind == "declared" else round(0.6 + 0.35 * (rel.coverage or 0.0), 2)
        if not rel.name_agrees or rel.coincidental:
            confidence = round(confidence - 0.1, 2)
        by_name = named_reference(rel)
        spread = rel.distinct_count or 0  # last: the column naming more parents says more
        # Then the parent the rest of the export references most (the patients, not the billing customers
        # or the referring physicians), then the larger one.
        size = (referrers.get(rel.ref_table, 0), parent.row_count if parent is not None else 0)
        ranks[column] = (int(by_name), size, confidence, currency_rank(column), spread)
        if parent_target == "user" and parent is not None:
            rank = owner_rank(bare(column, prefix), target)
            if rank > len(OWNER_ROLE_WORDS) or not _has_owner(target):
                continue  # who typed the row (`user`, `created_by`), or a file: no owner (see reference_lines)
            ranks[column] = (
                int(by_name),
                (-rank, 0),
                confidence,
                currency_rank(column),
                spread,
            )
            owner = _owner_line(column, rel, why, confidence, _staff_owner(rel, inventory, targets, keys))
            if owner is not None:
                lines[column] = owner
            continue
        field = link_target(target, parent_target or "")
        if field is None:
            continue
        lines[column] = FieldMapping(
            source=column,
            target=field,
            type="lookup",
            transform=f"lookup:{parent_target}",
            references=rel.ref_table,
            strip_prefix=rel.value_prefix,
            key_prefix=rel.key_prefix,
            confidence=confidence,
            reason=f"{why}: linked to that {parent_target} by its Freshsales id",
        )
    return _one_per_field(lines, ranks)


def _owner_line(
    column: str, rel: Relationship, why: str, confidence: float, staff: tuple[Relationship, str, str] | None
) -> FieldMapping | None:
    """The owner line of a staff reference, from the staff table and column `_staff_owner` found."""
    if staff is None:
        return None
    found, via, transform = staff
    by_name = transform == "owner_by_name"
    if found is not rel:
        why += f", and {found.ref_table}.{found.ref_column} (which has the {'name' if by_name else 'email'})"
    matched = f"matched by {via}"
    if by_name:
        confidence = round(confidence - BY_NAME_PENALTY, 2)
        matched = f"matched by display name ({via}) because the source has no email"
    return FieldMapping(
        source=column,
        target="owner_id",
        type="lookup",
        transform=transform,
        references=found.ref_table,
        via=via,
        confidence=confidence,
        reason=f"{why}: the owner is that provider's Freshsales user, {matched}",
    )


def _staff_owner(
    rel: Relationship, inventory: SchemaInventory, targets: dict[str, str], keys: dict[str, str]
) -> tuple[Relationship, str, str] | None:
    """(staff table's relationship, column, owner transform) a staff reference finds its owner by: an email in
    its own parent, else in another staff table holding the same values as its key (NOSH's providers extend its
    users, which have the email); only where none has one, a display name, the same way."""
    tables = {t.name: t for t in inventory.tables}
    candidates = [c for c in _staff_tables(rel, inventory, targets, keys) if c.ref_table in tables]
    for finder, transform in ((_email_column, "owner_by_email"), (_staff_name_column, "owner_by_name")):
        for candidate in candidates:
            via = finder(tables[candidate.ref_table])
            if via is not None:
                return candidate, via, transform
    return None


def _staff_tables(
    rel: Relationship, inventory: SchemaInventory, targets: dict[str, str], keys: dict[str, str]
) -> list[Relationship]:
    """The staff reference's own parent, then the other staff tables holding its values as their key."""
    others = [
        r
        for r in inventory.relationships
        if r.table == rel.table
        and r.column == rel.column
        and r is not rel
        and targets.get(r.ref_table) == "user"
        and keys.get(r.ref_table) == r.ref_column
        and (r.coverage or 1.0) >= (rel.coverage or 1.0)
    ]
    return [rel, *others]


def _has_owner(target: str) -> bool:
    """Files carry no owner in Freshsales; users are matched, not owned."""
    return target != "user" and target_object(target).field("owner_id") is not None


def reference_lines(
    table: TableProfile, target: str, inventory: SchemaInventory, targets: dict[str, str], keys: dict[str, str]
) -> dict[str, FieldMapping]:
    """Column → a text line for every reference that is no link of this record: its values are another
    record's key, so they are never a number, money or pick-list (kept as text, or in an activity's
    description, for a person to drop)."""
    lines = {}
    tables = {t.name: t for t in inventory.tables}
    prefix = glued_prefix(tuple(c.name for c in table.columns))
    for column, rel in table_relationships(inventory, table.name, keys, targets).items():
        kept_in = "description" if target in ("appointment", "task", "note") else f"cf_{snake_name(column)}"
        rank = owner_rank(bare(column, prefix), target)
        if targets.get(rel.ref_table) == "user" and rank > len(OWNER_ROLE_WORDS):
            later = rank == len(OWNER_ROLE_WORDS) + 1
            role = "who ended or checked the record, not its owner" if later else "who typed the row"
            lines[column] = FieldMapping(
                source=column,
                target=None,
                confidence=0.75,
                reason=f"{evidence(rel)}: {role}, the source's bookkeeping; not migrated",
                needs_review=True,
            )
            continue
        if target in ("file", "user"):
            kept_in = None
        place = _name_column(tables[rel.ref_table]) if rel.ref_table in tables else None
        payer = bool(
            set(table_words(rel.ref_table)) & PAYER_TABLE_WORDS or set(normalise(column).split()) & PAYER_ROLE_WORDS
        )
        if target == "appointment" and targets.get(rel.ref_table) == "sales_account" and place and not payer:
            # A visit's clinic or room: the appointment's location field, by the place's name (who pays for
            # the visit is no place).
            why = f"{evidence(rel)}: the visit's place, its {place} in the location field"
            lines[column] = _label_line(column, "location", rel, place, 0.8, why)
            continue
        # A bare number of the source's (`visit_type_id = 7`) tells a reader of the description nothing: a
        # code list's row (not migrated itself) says its label instead; a migrated record's number, nothing.
        opaque = kept_in == "description" and table.column(column).type in ("integer", "id")
        code_list = targets.get(rel.ref_table, NOT_MIGRATED) == NOT_MIGRATED
        if opaque and code_list and place and rank <= len(OWNER_ROLE_WORDS):  # a clerk's number stays behind
            why = f"{evidence(rel)}: a code list's row, its {place} in the description"
            lines[column] = _label_line(column, "description", rel, place, 0.75, why, needs_review=True)
            continue
        if opaque:
            kept_in = None
        lines[column] = FieldMapping(
            source=column,
            target=kept_in,
            type="text",
            transform="trim",
            custom=bool(kept_in and kept_in.startswith("cf_")),
            confidence=0.7,
            reason=f"{evidence(rel)}: a reference Freshsales cannot hold as a link here; "
            + (
                "kept as text"
                if kept_in
                else "its bare number says nothing in a description; not migrated"
                if opaque
                else f"not migrated ({target}s carry no custom fields)"
            ),
            needs_review=True,
        )
    return lines


def _label_line(
    column: str, target: str, rel: Relationship, via: str, confidence: float, reason: str, needs_review: bool = False
) -> FieldMapping:
    """The referenced row's `via` (a place's or a code's name) in a text field, instead of its key."""
    return FieldMapping(
        source=column,
        target=target,
        type="text",
        transform="from_reference",
        references=rel.ref_table,
        via=via,
        confidence=confidence,
        reason=reason,
        needs_review=needs_review,
    )


def _name_column(table: TableProfile) -> str | None:
    """The column that names a place (name, description, title): filled, short text."""
    for word in ("name", "description", "title"):
        for column in table.columns:
            if column.type == "text" and word in normalise(column.name).split() and column.null_rate < 0.5:
                return column.name
    return None


def _referencing_tables(inventory: SchemaInventory) -> dict[str, int]:
    """Table → how many other tables reference it by a named (or declared) column."""
    referencing: dict[str, set[str]] = {}
    for rel in inventory.relationships:
        if rel.table != rel.ref_table and named_reference(rel):
            referencing.setdefault(rel.ref_table, set()).add(rel.table)
    return {table: len(by) for table, by in referencing.items()}


def _one_per_field(
    lines: dict[str, FieldMapping], ranks: dict[str, tuple[int, tuple[int, int], float, int, int]]
) -> dict[str, FieldMapping]:
    """A record holds one link per parent and one owner. A column that names its table (`Patient` rather
    than a `Patient Name` whose values happen to be the customers' ids), then the column referencing the
    table the export references most, then the larger one (the patients rather than the referring
    physicians), then the best-evidenced one, then the one naming the present (`assigned_facility_id`, not
    `registration_facility_id`) keeps the link; among
    staff columns the attending provider keeps the owner, not the clerk who typed the row. The others are
    left to `reference_lines` (kept as text)."""
    best: dict[str, str] = {}
    for column, line in lines.items():
        kept = best.get(line.target or "")
        if kept is None or ranks[column] > ranks[kept]:
            best[line.target or ""] = column
    return {column: line for column, line in lines.items() if column in best.values()}


def soft_delete_filters(table: TableProfile) -> list[tuple[ColumnProfile, RowFilter]]:
    """Deleted/void/archived flag columns with yes/no values, and the dates a row was deleted on: flagged or
    dated rows are skipped with a reason. A document store may carry two (HospitalRun's `_deleted` and
    `data.archived`): each one skips."""
    phrases = CONCEPT_BY_KEY["deleted_flag"].phrases
    flags = []
    for column in table.columns:
        # A flattened document's field is its path's last step (HospitalRun's `data.archived`).
        leaf = re.split(r"[./]", column.name)[-1]
        words = normalise(leaf)
        flaggy = column.type in ("boolean", "integer") or (
            column.categories is not None and len(column.categories) <= 3
        )
        if words in phrases and flaggy:
            flags.append((column, RowFilter(source=column.name, op="in", value=TRUE_FLAGS)))
        elif words in DELETED_AT_NAMES and column.type in ("date", "datetime"):
            flags.append((column, RowFilter(source=column.name, op="not_empty")))
    return flags


def parent_of_same_target(
    table: TableProfile, target: str, inventory: SchemaInventory, targets: dict[str, str], keys: dict[str, str]
) -> Relationship | None:
    """A table whose rows hang off another table of the same target (payments of a bill, an encounter of a
    visit, a document's patient links): the parent's record carries them, and two records would be one
    visit twice. A custom module's rows are records of their own (a lab request's tests, each a result), and so
    is a note written on another note's visit.
    Staff tables never fold: users are matched by email, so a provider table beside a logins table is no
    child of it."""
    if target in ("user", "note") or target.startswith("custom_module:"):
        return None
    for rel in table_relationships(inventory, table.name, keys, targets).values():
        if rel.ref_table != table.name and targets.get(rel.ref_table) == target:
            return rel
    return None


def through_lines(
    table: TableProfile,
    target: str,
    inventory: SchemaInventory,
    targets: dict[str, str],
    keys: dict[str, str],
    links: dict[str, FieldMapping],
) -> dict[str, FieldMapping]:
    """The patient link of a record that names no patient but another record that does (Tamanu's lab test →
    its encounter → the patient; care's prescription → the consultation → the patient): one line, through
    that record's own named or declared patient reference. Only where no column links the patient directly;
    the middle record may be named after the patient (`patient consultation`) as long as it points at another
    table of patients."""
    field = link_target(target, "contact")
    if field is None or any(line.target == field for line in links.values()):
        return {}
    # The visit a record belongs to first (an encounter, a consultation), then any other record.
    candidates = sorted(
        table_relationships(inventory, table.name, keys, targets).items(),
        key=lambda item: targets.get(item[1].ref_table) not in CHILDREN_OF_CONTACT,
    )
    for column, rel in candidates:
        middle = rel.ref_table
        if column in links or not named_reference(rel) or targets.get(middle) in (None, "user", "sales_account"):
            continue
        onward = [
            r
            for r in table_relationships(inventory, middle, keys, targets).values()
            if targets.get(r.ref_table) == "contact"
            and r.ref_table != middle
            and (named_reference(r) or (r.coincidental and accepted(r, targets)))  # `fk_patient` by its role
            and r.column != keys.get(middle)
        ]
        if not onward:
            continue
        patient = onward[0]
        return {
            column: FieldMapping(
                source=column,
                target=field,
                type="lookup",
                transform="lookup:contact",
                references=patient.ref_table,
                through=middle,
                via=patient.column,
                strip_prefix=patient.value_prefix,
                key_prefix=patient.key_prefix,
                confidence=0.7,
                reason=f"{evidence(rel)}; that record's {patient.column}: {evidence(patient)}: linked to the "
                f"patient of its {middle} row, by its Freshsales id",
                needs_review=True,
            )
        }
    return {}
