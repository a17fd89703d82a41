"""The sample migration's slice: a representative, referentially closed subset of the staged records.

Contacts are chosen first, round-robin over their accounts (every clinic location gets some), the
awkward cases before the plain ones (no email, a shared family email, a possible duplicate, a
non-ASCII name, the largest amounts), then in a seeded order. Each chosen contact brings its parent
accounts and up to `CHILDREN_PER_OBJECT` of its children in every object, and contacts are taken while
the total stays within `size`. The subset files have the staged schema and are loaded like the full run.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
from pydantic import BaseModel

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.model.objects import ACCOUNTS, CONTACTS, STAGED_OBJECTS
from clinic_pipeline.private_files import write_private_parquet
from clinic_pipeline.sql import quote_literal

MIN_SIZE, MAX_SIZE = 100, 500
CHILDREN_PER_OBJECT = 2
OTHER_ACCOUNTS = 10  # payers and practices nobody in the slice links to, so they are sampled too
# Records of a patient's object that link to no patient: a few come along, so a lost link shows in the diff.
UNLINKED_PER_OBJECT = 5


class SampleSelection(BaseModel):
    size: int
    seed: int
    records: dict[str, int]  # object → sampled records

    @property
    def total(self) -> int:
        return sum(self.records.values())


def _columns(con: duckdb.DuckDBPyConnection, path: Path) -> set[str]:
    return {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({quote_literal(str(path))})").fetchall()}


def _awkward_sql(columns: set[str]) -> str:
    """How many awkward cases a contact shows (higher first): generic staged columns, no source names."""
    terms = []
    if "email" in columns:
        terms.append("(email IS NULL)::INT")
    for flag in ("cf_shared_email", "cf_shared_mobile", "cf_possible_duplicate_of", "cf_merged_source_keys"):
        if flag in columns:
            terms.append(f"({flag} IS NOT NULL)::INT")
    for name in ("first_name", "last_name"):
        if name in columns:
            terms.append(f"coalesce(regexp_matches({name}, '[^\\x00-\\x7F]'), FALSE)::INT")
    return " + ".join(terms) or "0"


def choose_sample(staged_dir: Path, out_dir: Path, *, size: int = 200, seed: int = 7) -> SampleSelection:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise OperatorError(f"a sample holds {MIN_SIZE} to {MAX_SIZE} records (asked for {size})")
    paths = {o.name: staged_dir / f"{o.name}.parquet" for o in STAGED_OBJECTS}
    missing = [name for name, path in paths.items() if not path.exists()]
    if missing:
        raise OperatorError(f"{staged_dir}: stage every object before sampling (missing: {', '.join(missing)})")
    con = duckdb.connect()
    src = {name: f"read_parquet({quote_literal(str(path))})" for name, path in paths.items()}
    children = [
        o for o in STAGED_OBJECTS if "contacts" in o.parents and "_lookup_contact" in _columns(con, paths[o.name])
    ]
    order = f"hash(_source_key || {quote_literal(str(seed))})"
    capped = (
        " UNION ALL ".join(
            f"SELECT {quote_literal(o.name)} AS object, _source_key, _lookup_contact, "
            f"row_number() OVER (PARTITION BY _lookup_contact ORDER BY {order}) AS n FROM {src[o.name]}"
            for o in children
        )
        or "SELECT NULL::VARCHAR AS object, NULL::VARCHAR AS _source_key, NULL::VARCHAR AS _lookup_contact, 0 AS n"
    )
    con.execute(f"CREATE TEMP TABLE kids AS SELECT * FROM ({capped}) WHERE n <= {CHILDREN_PER_OBJECT}")
    contact_columns = _columns(con, paths[CONTACTS.name])
    account = "_lookup_sales_account" if "_lookup_sales_account" in contact_columns else "NULL"
    amount = (
        "(SELECT max(amount) FROM {deals} d WHERE d._lookup_contact = c._source_key)".format(deals=src["deals"])
        if "amount" in _columns(con, paths["deals"]) and "_lookup_contact" in _columns(con, paths["deals"])
        else "0"
    )
    con.execute(
        f"""CREATE TEMP TABLE ranked AS
        WITH scored AS (
            SELECT c._source_key, {account} AS account, {_awkward_sql(contact_columns)} AS awkward,
                   coalesce({amount}, 0) AS top_amount,
                   1 + (SELECT count(*) FROM kids k WHERE k._lookup_contact = c._source_key) AS weight
            FROM {src[CONTACTS.name]} c
        ), spread AS (
            SELECT *, row_number() OVER (
                PARTITION BY account ORDER BY awkward DESC, top_amount DESC, {order}) AS turn
            FROM scored
        )
        SELECT _source_key, sum(weight) OVER (
            ORDER BY turn, awkward DESC, top_amount DESC, {order} ROWS UNBOUNDED PRECEDING) AS running
        FROM spread"""
    )
    con.execute(
        f"CREATE TEMP TABLE chosen AS SELECT _source_key FROM ranked "
        f"WHERE running <= {size} OR running = (SELECT min(running) FROM ranked)"
    )
    selected: dict[str, str] = {
        CONTACTS.name: "SELECT _source_key FROM chosen",
    }
    for obj in children:
        selected[obj.name] = (
            f"SELECT _source_key FROM kids WHERE object = {quote_literal(obj.name)} "
            "AND _lookup_contact IN (SELECT _source_key FROM chosen)"
        )
    for obj in (o for o in STAGED_OBJECTS if "contacts" in o.parents):
        unlinked = "WHERE _lookup_contact IS NULL" if obj in children else ""
        loose = f"(SELECT _source_key FROM {src[obj.name]} {unlinked} ORDER BY {order} LIMIT {UNLINKED_PER_OBJECT})"
        selected[obj.name] = f"{selected[obj.name]} UNION {loose}" if obj.name in selected else loose
    linked = [f"SELECT {account} AS k FROM {src[CONTACTS.name]} WHERE _source_key IN (SELECT _source_key FROM chosen)"]
    # The accounts the chosen deals and module records link to (a payer) come along: the slice stays closed.
    for obj in children:
        if "accounts" in obj.parents and "_lookup_sales_account" in _columns(con, paths[obj.name]):
            linked.append(
                f"SELECT _lookup_sales_account FROM {src[obj.name]} WHERE _source_key IN ({selected[obj.name]})"
            )
    selected[ACCOUNTS.name] = (
        f"SELECT k FROM ({' UNION '.join(linked)}) WHERE k IS NOT NULL UNION "
        f"(SELECT _source_key FROM {src[ACCOUNTS.name]} ORDER BY {order} LIMIT {OTHER_ACCOUNTS})"
    )
    records = {}
    for obj in STAGED_OBJECTS:
        keys = selected.get(obj.name, "SELECT NULL::VARCHAR WHERE FALSE")
        query = f"SELECT * FROM {src[obj.name]} WHERE _source_key IN ({keys}) ORDER BY _source_key"
        write_private_parquet(con, query, out_dir / f"{obj.name}.parquet")
        (records[obj.name],) = con.execute(f"SELECT count(*) FROM ({query})").fetchone()
    return SampleSelection(size=size, seed=seed, records={k: int(v) for k, v in records.items()})
