"""Codes the export decodes itself: a column of short codes whose meaning is a row of a list table.

Clinic systems write statuses as symbols or letters and keep their meaning in a list of their own: OpenEMR's
calendar has `pc_apptstatus` = `x`, and `list_options` has (list_id `apptstat`, option_id `x`, title
`x Canceled`). A coded column (a pick-list of values no longer than `CODE_MAX_LENGTH`) is decoded by the list
table whose code column holds (nearly) all its values, within one group of the list (`list_id`) when the
codes repeat across groups, and whose label column (named like a title or description) says what each code
means. The labels are the clinic's own reference data, not a person's: they go into the inventory so the
proposer can read the statuses (cancelled, no-show) from them.

Each coded column's and each candidate code column's distinct values are collected once, and one hash join
counts the containment of every pair, as `relationships` does for keys.
"""

from __future__ import annotations

from collections import defaultdict

import duckdb

from clinic_pipeline.mapping.synonyms import LABEL_COLUMN_WORDS, normalise
from clinic_pipeline.source.export import VIEW_SCHEMA
from clinic_pipeline.source.inventory_model import CodeList, TableProfile
from clinic_pipeline.sql import quote_ident

CODE_MAX_LENGTH = 3
MIN_CODES = 2
MIN_COVERAGE = 0.9  # share of a coded column's values the list must decode
LIST_ROWS_MAX = 50_000  # a list of codes is reference data, not a table of records


def _text(column: str) -> str:
    return f"trim(CAST({quote_ident(column)} AS VARCHAR))"


def _coded_columns(tables: list[TableProfile]) -> list[tuple[str, str, list[str]]]:
    """(table, column, codes): text pick-lists whose values are all short codes."""
    coded = []
    for table in tables:
        for column in table.columns:
            codes = [v.strip() for v in column.categories or [] if v.strip()]
            if column.type == "text" and len(codes) >= MIN_CODES and all(len(v) <= CODE_MAX_LENGTH for v in codes):
                coded.append((table.name, column.name, codes))
    return coded


def _label_column(table: TableProfile) -> str | None:
    """The list's column that says what a code means: named like a title or description, text."""
    for word in LABEL_COLUMN_WORDS:
        for column in table.columns:
            if column.type == "text" and word in normalise(column.name).split():
                return column.name
    return None


def _candidate_lists(tables: list[TableProfile]) -> list[tuple[TableProfile, str, str]]:
    """(list table, code column, label column) pairs worth a containment count."""
    candidates = []
    for table in tables:
        label = _label_column(table)
        if label is None or table.row_count > LIST_ROWS_MAX:
            continue
        for column in table.columns:
            if column.name != label and column.type in ("text", "id", "integer") and column.distinct_count >= MIN_CODES:
                candidates.append((table, column.name, label))
    return candidates


def decoded_codes(con: duckdb.DuckDBPyConnection, tables: list[TableProfile]) -> list[CodeList]:
    """Every coded column that a list table of the export decodes, with its codes' labels."""
    coded = _coded_columns(tables)
    lists = _candidate_lists(tables)
    if not coded or not lists:
        return []
    con.execute("CREATE OR REPLACE TEMP TABLE _coded_values (id INTEGER, v VARCHAR)")
    values = [(n, v) for n, (_, _, codes) in enumerate(coded) for v in codes]
    con.executemany("INSERT INTO _coded_values VALUES (?, ?)", values)
    selects = " UNION ALL ".join(
        f"SELECT {n} AS id, {_text(column)} AS v FROM {VIEW_SCHEMA}.{quote_ident(table.name)}"
        for n, (table, column, _) in enumerate(lists)
    )
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _list_values AS SELECT DISTINCT id, v FROM ({selects}) "
            "WHERE v IS NOT NULL AND v IN (SELECT v FROM _coded_values)"
        )
        found = con.execute(
            "SELECT c.id, l.id, count(*) FROM _coded_values c JOIN _list_values l ON l.v = c.v GROUP BY c.id, l.id"
        ).fetchall()
    finally:
        con.execute("DROP TABLE IF EXISTS _coded_values")
        con.execute("DROP TABLE IF EXISTS _list_values")
    by_column: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for column_id, list_id, hits in found:
        if column_id < len(coded) and hits >= MIN_COVERAGE * len(coded[column_id][2]):
            by_column[column_id].append((-int(hits), list_id))
    decoded = []
    for column_id, ranked in sorted(by_column.items()):
        table, column, codes = coded[column_id]
        for _, list_id in sorted(ranked):
            code_list = _decode(con, table, column, codes, *lists[list_id])
            if code_list is not None:
                decoded.append(code_list)
                break
    return decoded


def _decode(
    con: duckdb.DuckDBPyConnection,
    table: str,
    column: str,
    codes: list[str],
    source: TableProfile,
    code: str,
    label: str,
) -> CodeList | None:
    """The labels of these codes in one list: its rows of these codes, grouped by the column that keeps each code
    to one row (OpenEMR's `list_id`) when a code repeats; None when no group decodes them unambiguously."""
    if source.name == table:
        return None
    # A column whose values repeat over the list's rows can split it into lists (OpenEMR's `list_id`).
    groups = [
        c.name
        for c in source.columns
        if c.type == "text" and c.name not in (code, label) and 0 < c.distinct_count * 2 <= source.row_count
    ]
    wanted = ", ".join("?" for _ in codes)
    picked = ", ".join(_text(c) for c in [code, label, *groups])
    rows = con.execute(
        f"SELECT {picked} FROM {VIEW_SCHEMA}.{quote_ident(source.name)} WHERE {_text(code)} IN ({wanted})", codes
    ).fetchall()
    options: list[tuple[int, str | None, str | None, dict[str, str]]] = []
    ungrouped = _labels(rows)
    if ungrouped is not None:
        options.append((len(ungrouped), None, None, ungrouped))
    for n, group in enumerate(groups):
        for value in {r[2 + n] for r in rows if r[2 + n]}:
            labels = _labels([r for r in rows if r[2 + n] == value])
            if labels is not None:
                options.append((len(labels), group, value, labels))
    enough = [o for o in options if o[0] >= MIN_COVERAGE * len(codes)]
    if not enough:
        return None
    best = max(o[0] for o in enough)
    top = [o for o in enough if o[0] == best]
    if len({tuple(sorted(o[3].items())) for o in top}) > 1:
        return None  # two groups decode the codes differently: nothing says which list is meant
    _, group, value, labels = top[0]
    if all(labels[c] == c for c in labels):
        return None  # the list repeats the codes (a title column of titles): it says nothing more
    return CodeList(
        table=table,
        column=column,
        list_table=source.name,
        code_column=code,
        label_column=label,
        group_column=group,
        group_value=value,
        labels=labels,
    )


def _labels(rows: list[tuple[str | None, ...]]) -> dict[str, str] | None:
    """code → label when each code has one label among these rows."""
    labels: dict[str, str] = {}
    for row in rows:
        code, label = row[0], row[1]
        if code is None or not label:
            continue
        if labels.get(code, label) != label:
            return None
        labels[code] = label
    return labels or None
