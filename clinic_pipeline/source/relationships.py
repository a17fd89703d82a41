"""Relationships inferred from values: columns whose distinct values lie in another table's candidate key.

Candidate pairs are pruned by name affinity and type first; each candidate column's and each key's
distinct values are then collected once (a column is a candidate for many keys), and one hash join
counts the containment of every pair together.
"""

from __future__ import annotations

import re

import duckdb

from clinic_pipeline.source.inventory_model import ColumnProfile, Relationship, TableProfile
from clinic_pipeline.source.reader import VIEW_SCHEMA, quote_ident


def _singular(word: str) -> str:
    for suffix, repl in (("ies", "y"), ("ses", "s"), ("s", "")):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            return word[: -len(suffix)] + repl
    return word


def _tokens(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {_singular(t) for t in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if t}


_GENERIC_KEY_NAMES = frozenset({"id", "key", "uuid", "guid", "code", "name", "number", "no", "rowid"})


def _name_affinity(column: str, ref_table: str, ref_column: str) -> bool:
    """`patient_id` → patients, `PATIENT` → patients, `pid` → pid; but every table's `id` is not every other's."""
    col = _tokens(column)
    table_words = _tokens(ref_table) - {"data", "list", "table", "export", "tbl"}
    same_name = column.lower() == ref_column.lower() and column.lower() not in _GENERIC_KEY_NAMES
    return same_name or bool(col & table_words)


_FK_TYPES = ("id", "integer", "text", "email")
MIN_COVERAGE = 0.9  # share of a column's distinct values found in the key, for an inferred relationship


# (table, column, referenced table, its key, whether the names agree)
_Pair = tuple[TableProfile, ColumnProfile, TableProfile, ColumnProfile, bool]


def _candidate_pairs(tables: list[TableProfile]) -> list[_Pair]:
    """(column, key) pairs worth a containment count: by type, distinct counts and name affinity."""
    pairs: list[_Pair] = []
    for ref in tables:
        for key_name in ref.candidate_keys:
            key = ref.column(key_name)
            if key.type not in _FK_TYPES:
                continue
            for table in tables:
                for column in table.columns:
                    if (table.name, column.name) == (ref.name, key.name) or column.type not in _FK_TYPES:
                        continue
                    # Orphans (appointments of deleted patients) add values the key lacks: allow what the
                    # coverage threshold below allows, no more.
                    if column.distinct_count == 0 or column.distinct_count * MIN_COVERAGE > key.distinct_count:
                        continue
                    affinity = _name_affinity(column.name, ref.name, key.name)
                    # Small integers are contained in any 1..N key: only trust them when the names agree.
                    if affinity or (key.type == "id" and key.max_length >= 4):
                        pairs.append((table, column, ref, key, affinity))
    return pairs


def _value_sets(con: duckdb.DuckDBPyConnection, name: str, columns: list[tuple[str, str]]) -> None:
    """`name`(id, v): the distinct trimmed non-empty values of each (table, column), numbered by position."""
    selects = " UNION ALL ".join(
        f"SELECT {n} AS id, trim({quote_ident(column)}) AS v FROM {VIEW_SCHEMA}.{quote_ident(table)} "
        f"WHERE nullif(trim({quote_ident(column)}), '') IS NOT NULL"
        for n, (table, column) in enumerate(columns)
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT DISTINCT id, v FROM ({selects})")


def _containment(
    con: duckdb.DuckDBPyConnection, pairs: list[tuple[tuple[str, str], tuple[str, str]]]
) -> list[tuple[int, int]]:
    """(distinct values, those found in the key) for each (column, key) pair.

    Each column's and each key's values are collected once (a column is a candidate for many keys), then
    one hash join counts all pairs together.
    """
    columns = list(dict.fromkeys(column for column, _ in pairs))
    keys = list(dict.fromkeys(key for _, key in pairs))
    column_ids = {column: n for n, column in enumerate(columns)}
    key_ids = {key: n for n, key in enumerate(keys)}
    pair_rows = ", ".join(f"({n}, {column_ids[c]}, {key_ids[k]})" for n, (c, k) in enumerate(pairs))
    _value_sets(con, "_inventory_column_values", columns)
    _value_sets(con, "_inventory_key_values", keys)
    try:
        rows = con.execute(
            f"WITH p(pair, col, key) AS (VALUES {pair_rows}), "
            f"totals AS (SELECT id, count(*) AS total FROM _inventory_column_values GROUP BY id), "
            f"hits AS (SELECT p.pair, count(*) AS found FROM p "
            f"JOIN _inventory_column_values c ON c.id = p.col "
            f"JOIN _inventory_key_values k ON k.id = p.key AND k.v = c.v GROUP BY p.pair) "
            f"SELECT p.pair, coalesce(totals.total, 0), coalesce(hits.found, 0) FROM p "
            f"LEFT JOIN totals ON totals.id = p.col LEFT JOIN hits ON hits.pair = p.pair"
        ).fetchall()
    finally:
        con.execute("DROP TABLE IF EXISTS _inventory_column_values")
        con.execute("DROP TABLE IF EXISTS _inventory_key_values")
    by_pair = {pair: (int(total), int(found)) for pair, total, found in rows}
    return [by_pair[n] for n in range(len(pairs))]


def inferred_relationships(con: duckdb.DuckDBPyConnection, tables: list[TableProfile]) -> list[Relationship]:
    """Columns whose distinct values lie (≥ 90 %) in another table's candidate key."""
    pairs = _candidate_pairs(tables)
    if not pairs:
        return []
    counts = _containment(con, [((t.name, c.name), (r.name, k.name)) for t, c, r, k, _ in pairs])
    found = []
    for (table, column, ref, key, affinity), (total, hits) in zip(pairs, counts, strict=True):
        coverage = hits / total if total else 0.0
        # Orphans are normal (deleted patients), so containment need not be total.
        if coverage >= MIN_COVERAGE and (affinity or total >= 3):
            found.append(
                Relationship(
                    table=table.name,
                    column=column.name,
                    ref_table=ref.name,
                    ref_column=key.name,
                    kind="inferred",
                    coverage=round(coverage, 4),
                )
            )
    return found
