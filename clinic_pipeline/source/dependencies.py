"""Columns a reference determines: the same value on every row that names one parent.

A bill, a lab result or a visit often repeats its patient's name, sex or birth date beside the patient's key
(OpenHospital's `LAB_PAT_NAME`, Frappe's `Patient Name`, GNU Health's `Patient`). Such a column is a copy
of the parent's data, not the child's: it is measured as a functional dependency of the reference (one
value per referenced key, over the parents that have at least two rows, so that it cannot hold by chance
of single rows), one query per relationship.
"""

from __future__ import annotations

import re

import duckdb

from clinic_pipeline.source.export import VIEW_SCHEMA
from clinic_pipeline.source.inventory_model import Relationship, TableProfile
from clinic_pipeline.sql import quote_ident

# Parents with several rows must be this many for a dependency to say anything.
MIN_REPEATED_PARENTS = 3
# Words every table's columns share: no sign that a column copies the parent's.
GENERIC_WORDS = frozenset({"id", "a", "date", "time", "type", "code", "no", "num", "number", "created", "by", "last"})


def _words(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {w for w in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if w}


def _text(column: str) -> str:
    return f"nullif(trim(CAST({quote_ident(column)} AS VARCHAR)), '')"


def with_determined_columns(
    con: duckdb.DuckDBPyConnection, tables: list[TableProfile], relationships: list[Relationship]
) -> list[Relationship]:
    """The relationships, each with the referencing table's columns its values determine."""
    by_name = {t.name: t for t in tables}
    measured = []
    for rel in relationships:
        table, parent = by_name.get(rel.table), by_name.get(rel.ref_table)
        if table is None or parent is None or rel.table == rel.ref_table or not rel.name_agrees:
            measured.append(rel)
            continue
        # Candidates: text and date columns that vary and share a word with one of the parent's columns
        # (`Patient Name` beside the patient's `Patient Name`, `LAB_SEX` beside `PAT_SEX`).
        parent_words = {w for c in parent.columns for w in _words(c.name)} - GENERIC_WORDS
        others = [
            c.name
            for c in table.columns
            if c.name != rel.column
            and c.type in ("text", "date")
            and c.distinct_count > 1
            and (_words(c.name) - GENERIC_WORDS) & parent_words
        ]
        if not others:
            measured.append(rel)
            continue
        link = _text(rel.column)
        # Per parent value: its rows, and each column's distinct values (NULL counts as one value).
        per_column = ", ".join(f"count(DISTINCT coalesce({_text(c)}, '\\x00')) AS c{n}" for n, c in enumerate(others))
        repeated = ", ".join(f"max(c{n})" for n in range(len(others)))
        query = (
            f"SELECT count(*), {repeated} FROM ("
            f"SELECT count(*) AS n, {per_column} FROM {VIEW_SCHEMA}.{quote_ident(rel.table)} "
            f"WHERE {link} IS NOT NULL GROUP BY {link}) WHERE n > 1"
        )
        row = con.execute(query).fetchone() or ()
        parents = int(row[0] or 0) if row else 0
        if parents < MIN_REPEATED_PARENTS:
            measured.append(rel)
            continue
        determined = [c for n, c in enumerate(others) if row[1 + n] == 1]
        measured.append(rel.model_copy(update={"determined": determined}))
    return measured
