"""The grain of a deal: one Freshsales deal per encounter, out of the billing lines an export holds for it.

Practice software bills line by line (a CPT line, an ICD-10 line at $0, a voided line); the seed promises
"each patient encounter with a billing record becomes a Deal". When a deal table has an encounter-like
column (named encounter, visit, claim, invoice, appointment) whose values repeat over its lines, the
mapping is `grouped` on it: that column is the source key and names the deal, amounts are summed,
clinical codes listed, the line's own id dropped, and voided lines (an `active`/`activity` flag at 0)
skipped with that reason.
"""

from __future__ import annotations

from clinic_pipeline.mapping.plan import FieldMapping, ObjectMapping, RowFilter, SkipRule
from clinic_pipeline.mapping.synonyms import ENCOUNTER_WORDS, INACTIVE_VALUES, expand, normalise
from clinic_pipeline.model.transforms import TRANSFORMS
from clinic_pipeline.source.inventory import ColumnProfile, TableProfile

# Lines per encounter, on average, before a column counts as the grain (a claim table with a few
# re-billed visits is still one record per claim).
LINES_PER_ENCOUNTER = 1.5
ID_WORDS = frozenset({"id", "num", "number", "no", "nbr", "key"})
# What a line holds in its encounter column when it belongs to none.
NO_ENCOUNTER = ["0", "-1"]
# Lines of a grouped object whose values add up (amounts, counts): every transform that yields a number.
SUMMED_TRANSFORMS = frozenset(name for name, t in TRANSFORMS.items() if t.yields == {"number"})


def _encounter_column(table: TableProfile) -> ColumnProfile | None:
    """`encounter`, `AptNum`, `visit_id`: named for the encounter (alone, or with an id word), holding ids
    that repeat over the lines: on average at least LINES_PER_ENCOUNTER lines each."""
    best = None
    for column in table.columns:
        # The encounter is what the column names, with at most an id word: not `claim_status`, `apptProvider_no`.
        core = [w for w in expand(normalise(column.name)).split() if w not in ID_WORDS]
        filled = table.row_count - column.null_count
        if not core or any(w not in ENCOUNTER_WORDS for w in core) or filled <= 0:
            continue
        if column.type not in ("id", "integer", "text"):
            continue
        if filled >= LINES_PER_ENCOUNTER * column.distinct_count and (
            best is None or column.null_rate < best.null_rate
        ):
            best = column
    return best


def _active_flag(table: TableProfile) -> ColumnProfile | None:
    """`activity`/`active`/`is_active` with yes/no values some of which are off: voided lines."""
    for column in table.columns:
        if normalise(column.name) not in ("active", "activity", "is active") or column.categories is None:
            continue
        values = {v.strip().lower() for v in column.categories}
        if values & set(INACTIVE_VALUES) and len(values) <= 2:
            return column
    return None


def per_encounter(mapping: ObjectMapping, table: TableProfile) -> ObjectMapping:
    """The deal mapping grouped on its encounter column, or unchanged when the table has none that repeats."""
    encounter = _encounter_column(table)
    if mapping.target != "deal" or encounter is None or encounter.name == mapping.source_key:
        return mapping
    named = any(f.target == "name" and f.source != encounter.name for f in mapping.fields)
    columns = {c.name: c for c in table.columns}
    fields = []
    for line in mapping.fields:
        if line.source == encounter.name:
            line = FieldMapping(
                source=encounter.name,
                target=None if named else "name",
                type="text",
                transform="trim",
                confidence=0.85,
                reason=f"one deal per {encounter.name} ({encounter.distinct_count} of {table.row_count} lines): the "
                "source key" + ("" if named else ", and the deal's name"),
            )
        elif line.source == mapping.source_key:
            line = line.model_copy(
                update={"target": None, "reason": f"the billing line's own id: one deal per {encounter.name}"}
            )
        elif (line.transform or "").partition(":")[0] in SUMMED_TRANSFORMS and line.target:
            line = line.model_copy(update={"aggregate": "sum", "reason": line.reason + "; summed over the lines"})
        elif line.target and columns.get(line.source) and columns[line.source].type == "code":
            line = line.model_copy(update={"aggregate": "list", "reason": line.reason + "; every line's code listed"})
        fields.append(line)
    update: dict[str, object] = {
        "source_key": encounter.name,
        "grouped": True,
        "fields": fields,
        "reason": f"{mapping.reason}; billing lines: one deal per {encounter.name}, amounts summed, codes listed",
    }
    rules = list(mapping.skip_rules)
    rules.append(
        SkipRule(
            when=RowFilter(source=encounter.name, op="in", value=NO_ENCOUNTER),
            reason="a line billed outside any encounter (no deal to fold it into)",
        )
    )
    voided = _active_flag(table)
    if voided is not None:
        rules.append(
            SkipRule(
                when=RowFilter(source=voided.name, op="in", value=list(INACTIVE_VALUES)),
                reason="voided line in the source",
            )
        )
        fields[:] = [
            f.model_copy(update={"target": None, "reason": "voided flag: voided lines are skipped (skip_rules)"})
            if f.source == voided.name
            else f
            for f in fields
        ]
    update["skip_rules"] = rules
    return mapping.model_copy(update=update)
