"""Plan lines for columns that point at other tables: links by Freshsales id, owners, soft-delete flags.

A foreign key (declared, or inferred by the inventory from names and value containment) becomes:
- a link when Freshsales can hold it: contact → its account (`lookup:sales_account`), a deal → its
  contact and account, activities, notes, files and custom module records → their contact
  (`lookup:contact`); the value is the parent row's source key, `references` names the parent table;
- the record's owner when the parent table holds providers/users (`owner_by_email`, the provider's
  email taken `via` the parent table's email column), resolved to a Freshsales user at load time;
- otherwise nothing special: the generic field map keeps the raw value.
"""

from __future__ import annotations

from clinic_pipeline.mapping.plan import FieldMapping, RowFilter
from clinic_pipeline.mapping.synonyms import CONCEPT_BY_KEY, normalise
from clinic_pipeline.source.inventory import ColumnProfile, Relationship, SchemaInventory, TableProfile

CHILDREN_OF_CONTACT = ("deal", "appointment", "task", "note", "file")
# (child target, parent target) → the line's target field (the loader links by `_lookup_<parent>`).
LINK_TARGETS: dict[tuple[str, str], str] = {
    ("contact", "sales_account"): "sales_accounts",
    ("deal", "sales_account"): "sales_account_id",
    ("deal", "contact"): "contact_ids",
    ("appointment", "contact"): "targetable_id",
    ("task", "contact"): "targetable_id",
    ("note", "contact"): "targetable_id",
    ("file", "contact"): "targetable_id",
}
TRUE_FLAGS = ["1", "y", "yes", "true", "t", "x"]


def link_target(child: str, parent: str) -> str | None:
    if child.startswith("custom_module:") and parent == "contact":
        return "cf_contact"
    return LINK_TARGETS.get((child, parent))


def _singular(word: str) -> str:
    return word[:-3] + "y" if word.endswith("ies") else word[:-1] if word.endswith("s") else word


def names_own_table(column: str, table: str) -> bool:
    """`encounter_id` in `billing_encounters`, `PatNum` in `patient`: the column names its own table."""
    words = [w for w in normalise(column).split() if w not in ("id", "number", "num", "key", "no", "nbr")]
    table_words = {_singular(w) for w in normalise(table).split()}
    return bool(words) and {_singular(w) for w in words} <= table_words


def _names_parent(column: str, table: str) -> bool:
    """`patient_id` → `patients`: some word of the column is the parent table's (singular) name."""
    words = {_singular(w) for w in normalise(column).split()}
    return bool(words & {_singular(w) for w in normalise(table).split()})


def _relationships(inventory: SchemaInventory, table: str, keys: dict[str, str]) -> dict[str, Relationship]:
    """Column → the relationship it starts into another table's source key: declared ones first, then
    inferred ones whose column names the parent table (or repeats its key's name), the best-covered first."""
    found: dict[str, Relationship] = {}
    ranked = sorted(
        (
            r
            for r in inventory.relationships
            if r.table == table
            and r.ref_table != table
            and keys.get(r.ref_table) == r.ref_column
            # Small integers sit inside any 1..N key: an inferred link needs its name to agree too.
            and (r.kind == "declared" or _names_parent(r.column, r.ref_table) or r.column == r.ref_column)
        ),
        key=lambda r: (r.kind != "declared", not _names_parent(r.column, r.ref_table), -(r.coverage or 0.0)),
    )
    for rel in ranked:
        found.setdefault(rel.column, rel)
    return found


def _email_column(table: TableProfile) -> str | None:
    emails = [c for c in table.columns if c.type == "email"]
    if emails:
        return max(emails, key=lambda c: 1 - c.null_rate).name
    named = [c for c in table.columns if "email" in c.name.lower() or "mail" in c.name.lower()]
    return named[0].name if named else None


def link_lines(
    table: TableProfile, target: str, inventory: SchemaInventory, targets: dict[str, str], keys: dict[str, str]
) -> dict[str, FieldMapping]:
    """Column → its link/owner line, for this table proposed as `target`; `targets`: table → proposed target."""
    lines: dict[str, FieldMapping] = {}
    ranks: dict[str, tuple[int, float]] = {}
    tables = {t.name: t for t in inventory.tables}
    for column, rel in _relationships(inventory, table.name, keys).items():
        parent_target = targets.get(rel.ref_table)
        parent = tables.get(rel.ref_table)
        evidence = f"{rel.kind} reference to {rel.ref_table}.{rel.ref_column}" + (
            f" ({round((rel.coverage or 0) * 100)} % of values found)" if rel.coverage is not None else ""
        )
        confidence = 0.95 if rel.kind == "declared" else round(0.6 + 0.35 * (rel.coverage or 0.0), 2)
        ranks[column] = (parent.row_count if parent is not None else 0, confidence)
        if parent_target == "user" and parent is not None:
            via = _email_column(parent)
            if via is None:
                continue
            lines[column] = FieldMapping(
                source=column,
                target="owner_id",
                type="lookup",
                transform="owner_by_email",
                references=rel.ref_table,
                via=via,
                confidence=confidence,
                reason=f"{evidence}: the owner is that provider's Freshsales user, matched by {via}",
            )
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
            confidence=confidence,
            reason=f"{evidence}: linked to that {parent_target} by its Freshsales id",
        )
    return _one_per_field(lines, ranks)


def _one_per_field(lines: dict[str, FieldMapping], ranks: dict[str, tuple[int, float]]) -> dict[str, FieldMapping]:
    """A record holds one link per parent and one owner. The column referencing the larger table (the
    patients rather than the referring physicians), then the best-evidenced one, keeps the link; the
    others are left to the ordinary field proposal (a custom field keeps their value)."""
    best: dict[str, str] = {}
    for column, line in lines.items():
        kept = best.get(line.target or "")
        if kept is None or ranks[column] > ranks[kept]:
            best[line.target or ""] = column
    return {column: line for column, line in lines.items() if column in best.values()}


def soft_delete_filter(table: TableProfile) -> tuple[ColumnProfile, RowFilter] | None:
    """A deleted/void flag column with yes/no values: flagged rows are skipped with a reason."""
    phrases = CONCEPT_BY_KEY["deleted_flag"].phrases
    for column in table.columns:
        words = " ".join(column.name.lower().replace("_", " ").split())
        flaggy = column.type in ("boolean", "integer") or (
            column.categories is not None and len(column.categories) <= 3
        )
        if words in phrases and flaggy:
            return column, RowFilter(source=column.name, op="in", value=TRUE_FLAGS)
    return None


def parent_of_same_target(
    table: TableProfile, target: str, inventory: SchemaInventory, targets: dict[str, str], keys: dict[str, str]
) -> str | None:
    """A table whose rows hang off another table of the same target (payments of a bill)."""
    for rel in _relationships(inventory, table.name, keys).values():
        if rel.ref_table != table.name and targets.get(rel.ref_table) == target:
            return rel.ref_table
    return None
