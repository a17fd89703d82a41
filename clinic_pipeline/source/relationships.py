"""Relationships inferred from values: columns whose distinct values lie in another table's candidate key.

A relationship is an inclusion dependency measured on values: the share of a column's distinct values
found in another table's candidate key, with both sides' distinct counts. Names add evidence but are not
the gate, except inside a dense 1..N key, where any small integer fits by chance: there only columns
that name the table, its key or a role (a provider → the users, a payer → the insurance companies) are
measured, and a role-only match is marked `coincidental`; so is, inside a staff table's key, a column
whose values all fall on one kind of staff (`selects`: a subset chance would hit with odds under 1 in 1,000),
and any column of many values that all miss the key's gaps (`avoids_gaps`: the numbers of deleted rows,
which values drawn by chance from the same range would hit).
Each candidate column's and each key's distinct values are collected once (a column is a candidate for
many keys), and one hash join counts the containment of every pair together.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import duckdb

from clinic_pipeline.mapping.secrets import secret_evidence
from clinic_pipeline.mapping.synonyms import (
    ABBREVIATIONS,
    EXTERNAL_PEOPLE_WORDS,
    NOT_IDENTIFIER_ID_WORDS,
    OWNER_ROLE_WORDS,
    PATIENT_REFERENCE_WORDS,
    PAYER_ROLE_WORDS,
    PAYER_TABLE_WORDS,
    PEOPLE_TABLE_WORDS,
    STAFF_TABLE_WORDS,
    bare,
    expand,
    glued_prefix,
    normalise,
)
from clinic_pipeline.source.export import VIEW_SCHEMA
from clinic_pipeline.source.inventory_model import ColumnProfile, Relationship, TableProfile
from clinic_pipeline.sql import quote_ident


def _singular(word: str) -> str:
    for suffix, repl in (("ies", "y"), ("ses", "s"), ("s", "")):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            return word[: -len(suffix)] + repl
    return word


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [_singular(t) for t in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if t]


def _tokens(name: str) -> set[str]:
    return set(_words(name))


_GENERIC_KEY_NAMES = frozenset({"id", "key", "uuid", "guid", "code", "name", "number", "no", "num", "nbr", "rowid"})
_OWNER_WORDS = frozenset(_singular(w) for w in OWNER_ROLE_WORDS)
_STAFF_WORDS = frozenset(_singular(w) for w in STAFF_TABLE_WORDS)
_EXTERNAL_WORDS = frozenset(_singular(w) for w in EXTERNAL_PEOPLE_WORDS)
_PAYER_WORDS = frozenset(_singular(w) for w in PAYER_ROLE_WORDS)
_PAYER_TABLE_WORDS = frozenset(_singular(w) for w in PAYER_TABLE_WORDS)
_PATIENT_WORDS = frozenset(_singular(w) for w in PATIENT_REFERENCE_WORDS)
_PEOPLE_WORDS = frozenset(_singular(w) for w in PEOPLE_TABLE_WORDS)


def _unled(column: str, table: str) -> set[str]:
    """The column's words after those repeating its own table's name (OpenClinic's `OC_ENCOUNTER_PATIENTUID`
    in `oc_encounters` → patientuid): a lead every column of the table carries says nothing of a reference."""
    words, own = _words(column), _tokens(table)
    lead = 0
    while lead < len(words) - 1 and words[lead] in own:
        lead += 1
    # `facility_id` in Django's `facility_patientregistration` is all lead but its `id`: it names the facility.
    return set(words[lead:]) if set(words[lead:]) - _GENERIC_KEY_NAMES else set(words)


def _identifier(name: str) -> bool:
    """`PatNum`, `pid`, `personid`, `OBJECTID`: a name whose last word says it identifies."""
    last = (expand(normalise(name)).split() or [""])[-1]
    return last in _GENERIC_KEY_NAMES or (last.endswith("id") and len(last) > 2 and last not in NOT_IDENTIFIER_ID_WORDS)


def _name_affinity(column: str, ref_table: str, ref_column: str, table: str) -> bool:
    """`patient_id` → patients, `PATIENT` → patients, `pc_pid` → pid, `PatNum` → PatNum; but every table's `id`
    is not every other's. `table`: the column's own table, whose name's words leading the column are read past."""
    col = _unled(column, table)
    # Abbreviations read as their words too, matched whole: FreeMED's `pnotespat` (bare `pat`) names the patients.
    spelled = {_singular(w) for t in col for w in ABBREVIATIONS.get(t, "").split()}
    # `value_coded_name_id` says nothing of `person_name`: a generic word of the table's name is no affinity.
    table_words = _tokens(ref_table) - {"data", "list", "table", "export", "tbl"} - _GENERIC_KEY_NAMES
    key_rest = _unled(ref_column, ref_table)
    if key_rest != _tokens(ref_column) and len(key_rest) == 1 and _identifier(next(iter(key_rest))):
        key_rest = set()  # `OC_INSURANCE_OBJECTID`: the table's own id, as generic as `id`; its table names it
    key_words = key_rest - _GENERIC_KEY_NAMES
    # The same name names the same thing only when it is an identifier's (`PatNum`, `pid`): two tables' sort
    # orders (`ItemOrder`) or notes share a name and nothing else.
    identifier = _identifier(ref_column)
    same_name = column.lower() == ref_column.lower() and column.lower() not in _GENERIC_KEY_NAMES and identifier
    # A glued table name (Django's `facility_patientregistration`, `facility_patientconsultation`) starts or
    # ends with the word the column names; a glued column name (`ptprimaryfacility`) ends with the table's.
    # A table's word glued to an identifier's (`ENCOUNTERUID` → encounters) names it too.
    glued = any(
        ((t.startswith(w) or t.endswith(w)) and len(w) >= GLUED_WORD)
        or (w.endswith(t) and len(t) >= GLUED_WORD)
        or (w.startswith(t) and len(t) >= GLUED_WORD and w[len(t) :] in _GENERIC_KEY_NAMES | {"uid"})
        for w in col
        for t in table_words
    )
    named_key = bool(key_words) and key_words <= col and (identifier or bool(key_words & table_words))
    return same_name or bool((col | spelled) & table_words) or glued or named_key


def _names_own_table(column: str, table: str, tables: list[TableProfile]) -> bool:
    """`provider_id` in providers; but `user_id` in a `user_authentications` join table names the users, a
    table named by exactly those words."""
    words = _tokens(column) - _GENERIC_KEY_NAMES
    return bool(words) and words <= _tokens(table) and not _exactly_named(words, table, tables)


def _names_another_table(column: str, table: str, tables: list[TableProfile]) -> bool:
    """`patient_id` unique in a small bills table is still the patients' key, not the bills': no target."""
    words = _tokens(column) - _GENERIC_KEY_NAMES
    if not words or (words <= _tokens(table) and not _exactly_named(words, table, tables)):
        return False
    return any(t.name != table and words <= _tokens(t.name) for t in tables)


def _exactly_named(words: set[str], table: str, tables: list[TableProfile]) -> bool:
    """Another table is named by these words alone, where this one's name has more (`users` beside
    `user_authentications`)."""
    return words != _tokens(table) and any(t.name != table and _tokens(t.name) == words for t in tables)


def _role_affinity(column: str, table: str, ref_table: str, unique: bool) -> bool:
    """`providerID`, `ProvTreat`, `attending_doctor` → a staff table (users, provider, staff...) by its role;
    `payer_id`, `CarrierNum` → the payers' table (insurance companies, carriers). Inside a table of insurance
    policies a provider is the insurer (OpenEMR's `insurance_data.provider`): it points at the payers."""
    ref, words = _tokens(ref_table), _tokens(column)
    insurer = bool(words & _OWNER_WORDS) and bool(_tokens(table) & _PAYER_TABLE_WORDS)
    staff = bool(words & _OWNER_WORDS) and bool(ref & _STAFF_WORDS) and not ref & _EXTERNAL_WORDS and not insurer
    # `fk_patient` → `dem_identity`; a unique one is its own table's key (NOSH's `demographics.pid`).
    patient = bool(words & _PATIENT_WORDS) and bool(ref & _PEOPLE_WORDS) and not unique
    return staff or patient or ((insurer or bool(words & _PAYER_WORDS)) and bool(ref & _PAYER_TABLE_WORDS))


GLUED_WORD = 5  # shorter words (`pat`, `user`) start too many others
_FK_TYPES = ("id", "integer", "text", "email")
MIN_COVERAGE = 0.9  # share of a column's distinct values found in the key, for an inferred relationship
MIN_COVERAGE_NAMED = 0.8  # the same where the column names the table or its key
# A key whose values fill this share of the integer range they span is a 1..N surrogate: any column of small
# integers falls inside it by chance, so containment alone says little.
DENSE_KEY = 0.5
# Where an id's type prefix ends: `patient_2_<uuid>` (CouchDB), `Patient/<id>` (FHIR), `urn:uuid:<id>`.
PREFIX_SEPARATORS = "_/:-|#."


@dataclass(frozen=True)
class _KeyStats:
    distinct: int
    dense: bool  # whole numbers filling their range: containment in it is weak evidence


# (table, column, referenced table, its key, whether the names agree, whether only the value tests can tell)
_Pair = tuple[TableProfile, ColumnProfile, TableProfile, ColumnProfile, bool, bool]
# Odds under which the rows a column's values fall on are no chance: `pc_aid`'s 5 values all on the 6 of 20
# users marked `authorized = 1` has odds C(6,5)/C(20,5) = 0.0004.
SUBSET_ODDS = 0.001
# The same for values that all miss a dense key's gaps, stricter because every unnamed whole-number column of
# the export is tried against every dense key: 100 distinct values on a key filling 76 % of their range have
# odds of 0.76^100 ≈ 1e-12; 30 values on a key filling 95 %, 0.2 (no evidence).
GAP_ODDS = 1e-6
MIN_GAP_VALUES = 20  # fewer values cannot beat GAP_ODDS unless the key is mostly gaps


def _key_stats(con: duckdb.DuckDBPyConnection, tables: list[TableProfile]) -> dict[tuple[str, str], _KeyStats]:
    """Per candidate key: its distinct count and whether it is a dense run of whole numbers (one query)."""
    keys = [(t.name, k) for t in tables for k in t.keys if t.column(k).type in _FK_TYPES]
    if not keys:
        return {}
    selects = " UNION ALL ".join(
        f"SELECT {n} AS id, count(DISTINCT v), count(DISTINCT v) FILTER (WHERE i IS NOT NULL), min(i), max(i) "
        f"FROM (SELECT trim({quote_ident(column)}) AS v, try_cast(trim({quote_ident(column)}) AS HUGEINT) AS i "
        f"FROM {VIEW_SCHEMA}.{quote_ident(table)} WHERE nullif(trim({quote_ident(column)}), '') IS NOT NULL)"
        for n, (table, column) in enumerate(keys)
    )
    stats = {}
    for n, distinct, whole, low, high in con.execute(selects).fetchall():
        dense = bool(distinct) and whole == distinct and distinct >= DENSE_KEY * (int(high) - int(low) + 1)
        stats[keys[n]] = _KeyStats(int(distinct), dense)
    return stats


def _candidate_pairs(tables: list[TableProfile], stats: dict[tuple[str, str], _KeyStats]) -> list[_Pair]:
    """(column, key) pairs worth a containment count: by type, distinct counts, names and the key's values."""
    pairs: list[_Pair] = []
    prefixes = {t.name: glued_prefix(tuple(c.name for c in t.columns)) for t in tables}
    for ref in tables:
        for key_name in ref.keys:
            key = ref.column(key_name)
            if (ref.name, key.name) not in stats or _names_another_table(key.name, ref.name, tables):
                continue
            dense = stats[(ref.name, key.name)].dense
            for table in tables:
                for column in table.columns:
                    if (table.name, column.name) == (ref.name, key.name) or column.type not in _FK_TYPES:
                        continue
                    if column.name in table.candidate_keys and _names_own_table(column.name, table.name, tables):
                        continue  # `provider_id` in providers: that table's own identity, not a reference
                    # Orphans (appointments of deleted patients) add values the key lacks: allow what the
                    # coverage threshold below allows, no more.
                    if column.distinct_count == 0 or column.distinct_count * MIN_COVERAGE_NAMED > key.distinct_count:
                        continue
                    named = bare(column.name, prefixes[table.name])
                    affinity = _name_affinity(named, ref.name, key.name, table.name)
                    # Values decide where the key's own values are distinctive (codes, uuids, sparse numbers);
                    # inside a 1..N key only a column that names the table, its key or its staff role counts,
                    # or one whose values single out a kind of staff (see `_selected_rows`).
                    if affinity or not dense or _role_affinity(named, table.name, ref.name, column.unique):
                        pairs.append((table, column, ref, key, affinity, False))
                    elif column.type in ("id", "integer") and (
                        column.distinct_count >= MIN_GAP_VALUES
                        or (_staff_table(ref.name) and column.distinct_count >= 3)
                    ):
                        pairs.append((table, column, ref, key, False, True))
    return pairs


def _staff_table(name: str) -> bool:
    words = _tokens(name)
    return bool(words & _STAFF_WORDS) and not words & _EXTERNAL_WORDS


def _selected_rows(con: duckdb.DuckDBPyConnection, table: str, column: str, ref: TableProfile, key: str) -> str | None:
    """`authorized = 1 (6 of 20 rows)` when every row a column's values point at shares one value of a
    categorical column of the key's table that few others share: small integers fall inside a dense 1..N key
    by chance, but not all on the six providers of twenty users. A run of consecutive values (1, 2, 3: counts,
    ages, the first rows of a seed) proves nothing, whatever rows it lands on."""
    source, ref_key = f"{VIEW_SCHEMA}.{quote_ident(table)}", quote_ident(key)
    values = (
        f"SELECT DISTINCT try_cast(trim({quote_ident(column)}) AS HUGEINT) AS v FROM {source} "
        f"WHERE trim({quote_ident(column)}) NOT IN ('', '0', '-1')"
    )
    picked, low, high = con.execute(f"SELECT count(*), min(v), max(v) FROM ({values})").fetchone() or (0, 0, 0)
    if not picked or int(high) - int(low) + 1 == picked:
        return None
    best: tuple[float, str] | None = None
    # A secret's column (OpenEMR's `password` = `NoLongerUsed`) is no evidence to quote in a plan's reason.
    for category in (c for c in ref.columns if c.categories and c.name != key and secret_evidence(c) is None):
        rows = con.execute(
            f"SELECT trim({quote_ident(category.name)}), count(*), "
            f"count(*) FILTER (WHERE try_cast(trim({ref_key}) AS HUGEINT) IN ({values})) "
            f"FROM {VIEW_SCHEMA}.{quote_ident(ref.name)} GROUP BY 1"
        ).fetchall()
        for value, share, hit in rows:
            if value in (None, "") or hit < picked or share >= ref.row_count:
                continue
            odds = math.comb(int(share), picked) / math.comb(ref.row_count, picked)
            if odds < SUBSET_ODDS and (best is None or odds < best[0]):
                best = (odds, f"{category.name} = {value} ({share} of {ref.row_count} rows)")
    return best[1] if best else None


def _avoided_gaps(con: duckdb.DuckDBPyConnection, table: str, column: str, ref: str, key: str) -> str | None:
    """`none of the key's 60 gaps in 1-250` when a column's values keep off the numbers a dense key lacks
    (deleted rows) far more than values drawn at random from the same range would: the odds that as many of
    the column's distinct values land on keys, drawn without replacement from the range they span inside the
    key's own (values past it are orphans, and would stretch the range over numbers no key ever had)."""
    source, target = f"{VIEW_SCHEMA}.{quote_ident(table)}", f"{VIEW_SCHEMA}.{quote_ident(ref)}"
    keys = f"SELECT DISTINCT try_cast(trim({quote_ident(key)}) AS HUGEINT) AS k FROM {target}"
    values = (
        f"SELECT DISTINCT try_cast(trim({quote_ident(column)}) AS HUGEINT) AS v FROM {source}, "
        f"(SELECT min(k) AS lo, max(k) AS hi FROM k) AS bounds "
        f"WHERE try_cast(trim({quote_ident(column)}) AS HUGEINT) BETWEEN bounds.lo AND bounds.hi"
    )
    row = con.execute(
        f"WITH k AS ({keys}), v AS ({values}), r AS (SELECT min(v) AS lo, max(v) AS hi, count(v) AS n FROM v) "
        "SELECT r.lo, r.hi, r.n, (SELECT count(*) FROM k WHERE k BETWEEN r.lo AND r.hi), "
        "(SELECT count(*) FROM v JOIN k ON v.v = k.k) FROM r"
    ).fetchone()
    if row is None or row[0] is None:
        return None
    low, high, picked, in_range, found = (int(x) for x in row)
    span = high - low + 1
    if in_range >= span or _hypergeometric_tail(span, in_range, picked, found) >= GAP_ODDS:
        return None
    return f"none of the key's {span - in_range} gaps in {low}-{high}"


def _hypergeometric_tail(population: int, marked: int, drawn: int, hits: int) -> float:
    """P(X ≥ hits) for X marked items among `drawn` taken without replacement from `population` (in logs:
    the counts run to thousands)."""

    def log_comb(n: int, k: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)

    total = log_comb(population, drawn)
    terms = [
        log_comb(marked, x) + log_comb(population - marked, drawn - x) - total
        for x in range(hits, min(drawn, marked) + 1)
        if drawn - x <= population - marked
    ]
    if not terms:
        return 0.0
    top = max(terms)
    return math.exp(top) * sum(math.exp(t - top) for t in terms)


def _value_sets(
    con: duckdb.DuckDBPyConnection, name: str, columns: list[tuple[str, str]], *, references: bool = False
) -> None:
    """`name`(id, v): the distinct trimmed non-empty values of each (table, column), numbered by position;
    for referencing columns without `0` and `-1`, which many systems store for "none" (Open Dental, OpenEMR)."""
    none = " AND trim({c}) NOT IN ('0', '-1')" if references else ""
    selects = " UNION ALL ".join(
        f"SELECT {n} AS id, trim({quote_ident(column)}) AS v FROM {VIEW_SCHEMA}.{quote_ident(table)} "
        f"WHERE nullif(trim({quote_ident(column)}), '') IS NOT NULL" + none.format(c=quote_ident(column))
        for n, (table, column) in enumerate(columns)
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT DISTINCT id, v FROM ({selects})")


def _containment(
    con: duckdb.DuckDBPyConnection, pairs: list[tuple[tuple[str, str], tuple[str, str]]]
) -> list[_Containment]:
    """Distinct values, those found in the key, and the prefixes set aside, for each (column, key) pair.

    Each column's and each key's values are collected once (a column is a candidate for many keys), then
    hash joins count all pairs together: once on the values as written, once with each side's shared
    prefix set aside; the better count stands, so a prefix only one side shares (`pr-kim` in a key that
    also holds `1874`) never hides a match.
    """
    columns = list(dict.fromkeys(column for column, _ in pairs))
    keys = list(dict.fromkeys(key for _, key in pairs))
    column_ids = {column: n for n, column in enumerate(columns)}
    key_ids = {key: n for n, key in enumerate(keys)}
    pair_rows = ", ".join(f"({n}, {column_ids[c]}, {key_ids[k]})" for n, (c, k) in enumerate(pairs))
    _value_sets(con, "_inventory_column_values", columns, references=True)
    _value_sets(con, "_inventory_key_values", keys)
    column_prefixes = _strip_prefixes(con, "_inventory_column_values")
    key_prefixes = _strip_prefixes(con, "_inventory_key_values")
    hits = "SELECT p.pair, count(*) AS found FROM p JOIN _inventory_column_values c ON c.id = p.col "
    hits += "JOIN _inventory_key_values k ON k.id = p.key AND k.{v} = c.{v} GROUP BY p.pair"
    try:
        rows = con.execute(
            f"WITH p(pair, col, key) AS (VALUES {pair_rows}), "
            f"totals AS (SELECT id, count(*) AS total FROM _inventory_column_values GROUP BY id), "
            f"stripped AS ({hits.format(v='v')}), raw AS ({hits.format(v='raw')}) "
            f"SELECT p.pair, coalesce(totals.total, 0), coalesce(stripped.found, 0), coalesce(raw.found, 0) "
            f"FROM p LEFT JOIN totals ON totals.id = p.col LEFT JOIN stripped ON stripped.pair = p.pair "
            f"LEFT JOIN raw ON raw.pair = p.pair"
        ).fetchall()
    finally:
        con.execute("DROP TABLE IF EXISTS _inventory_column_values")
        con.execute("DROP TABLE IF EXISTS _inventory_key_values")
    by_pair = {pair: (int(total), int(stripped), int(raw)) for pair, total, stripped, raw in rows}
    found = []
    for n, (c, k) in enumerate(pairs):
        total, stripped, raw = by_pair[n]
        if raw > stripped:
            found.append(_Containment(total, raw, "", ""))
        else:
            found.append(
                _Containment(total, stripped, column_prefixes.get(column_ids[c], ""), key_prefixes.get(key_ids[k], ""))
            )
    return found


@dataclass(frozen=True)
class _Containment:
    total: int
    found: int
    value_prefix: str  # what every value of the column starts with ("Patient/"), set aside to compare
    key_prefix: str  # what every value of the key starts with ("patient_2_")


def _strip_prefixes(con: duckdb.DuckDBPyConnection, name: str) -> dict[int, str]:
    """Sets aside the prefix every value of a set shares ("patient_2_" of CouchDB ids, "Patient/" of FHIR
    references) in `v`, so that a reference and a key match on what follows it, the value as written kept
    in `raw`; returns id → prefix."""
    con.execute(f"ALTER TABLE {name} ADD COLUMN raw VARCHAR")
    con.execute(f"UPDATE {name} SET raw = v")
    prefixes = {}
    for set_id, low, high in con.execute(f"SELECT id, min(v), max(v) FROM {name} GROUP BY id").fetchall():
        prefix = _shared_prefix(str(low), str(high))
        if prefix:
            prefixes[int(set_id)] = prefix
    for set_id, prefix in prefixes.items():
        con.execute(f"UPDATE {name} SET v = v[{len(prefix) + 1}:] WHERE id = ?", [set_id])
    return prefixes


def _shared_prefix(low: str, high: str) -> str:
    """The common start of the smallest and largest value (so of all), up to its last separator, when it
    names something (has a letter) and leaves the values a tail: `patient_2_`, `Patient/`."""
    common = ""
    for a, b in zip(low, high, strict=False):
        if a != b:
            break
        common += a
    cut = max(common.rfind(sep) for sep in PREFIX_SEPARATORS) + 1
    prefix = common[:cut]
    if not any(ch.isalpha() for ch in prefix) or len(prefix) >= min(len(low), len(high)):
        return ""
    return prefix


def inferred_relationships(con: duckdb.DuckDBPyConnection, tables: list[TableProfile]) -> list[Relationship]:
    """Inclusion dependencies: columns whose distinct values lie (≥ 90 %) in another table's candidate key.

    Each carries both sides' distinct counts, whether the names agree, and whether the key is a dense run of
    whole numbers that only a staff-role name ties it to (`coincidental`): the proposer weighs them.
    """
    stats = _key_stats(con, tables)
    pairs = _candidate_pairs(tables, stats)
    if not pairs:
        return []
    counts = _containment(con, [((t.name, c.name), (r.name, k.name)) for t, c, r, k, _a, _s in pairs])
    found = []
    for (table, column, ref, key, affinity, by_values), measured in zip(pairs, counts, strict=True):
        total, hits = measured.total, measured.found
        coverage = hits / total if total else 0.0
        differ = measured.value_prefix != measured.key_prefix
        if differ and measured.value_prefix and measured.key_prefix:
            continue  # two numbering series (`ACC-SINV-2024-00012`, `HLC-APP-2024-00012`): alike only in their numbers
        # Orphans are normal (deleted patients): names that agree carry a link through more of them.
        if coverage < (MIN_COVERAGE_NAMED if affinity else MIN_COVERAGE) or not (affinity or total >= 3):
            continue
        selects = avoids_gaps = None
        if by_values:
            if _staff_table(ref.name):
                selects = _selected_rows(con, table.name, column.name, ref, key.name)
            if selects is None and total >= MIN_GAP_VALUES:
                avoids_gaps = _avoided_gaps(con, table.name, column.name, ref.name, key.name)
            if selects is None and avoids_gaps is None:
                continue
        found.append(
            Relationship(
                table=table.name,
                column=column.name,
                ref_table=ref.name,
                ref_column=key.name,
                kind="inferred",
                coverage=round(coverage, 4),
                distinct_count=total,
                ref_distinct_count=stats[(ref.name, key.name)].distinct,
                name_agrees=affinity,
                coincidental=stats[(ref.name, key.name)].dense and not affinity and avoids_gaps is None,
                value_prefix=(measured.value_prefix or None) if differ else None,
                key_prefix=(measured.key_prefix or None) if differ else None,
                selects=selects,
                avoids_gaps=avoids_gaps,
            )
        )
    return _without_reverses(found)


def _without_reverses(found: list[Relationship]) -> list[Relationship]:
    """Two unique columns holding the same values contain each other: a side table's `patient_id` (one phone
    per patient) and the patients' `id`. The one whose name names the other's table is the reference; its
    reverse, by values alone, would make the patients' key a reference to their phones."""
    named = {(r.table, r.column, r.ref_table, r.ref_column) for r in found if r.name_agrees}
    return [r for r in found if r.name_agrees or (r.ref_table, r.ref_column, r.table, r.column) not in named]
