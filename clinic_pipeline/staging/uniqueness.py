"""Records Freshsales would refuse or double: duplicate patients, shared family emails and mobiles, same-named accounts.

Runs on the `stage_rows` table of contacts, in SQL, before the verdict. The rules (documented in the
README, visible in the staged columns, never left to an API rejection):

- Duplicate patient: two rows of one source table with the same first name, last name and birth date,
  or the same email and birth date (a family shares an email, not a birthday). The first row in source
  order survives. The plan's `duplicates` policy decides the rest:
  `keep_flagged` (default: nothing is lost) loads both, the later one with `cf_possible_duplicate_of`
  = the survivor's source key; `merge` skips the later one with the reason "merged duplicate patient",
  records its key in the survivor's `cf_merged_source_keys`, and writes `staged/_aliases/contacts.parquet`
  so appointments, bills... of the merged row link to the survivor.
- Shared email (Freshsales: one contact per email): the oldest person keeps it (birth date, then source
  order: usually the guarantor); the others get it in `cf_shared_email` and the keeper's source key in
  `cf_email_shared_with`, and no `email`.
- Shared mobile number (some Freshsales accounts: one contact per mobile number): numbers with the same
  digits are one number; as for emails, the oldest person keeps it and the others get it in
  `cf_shared_mobile`, the keeper's source key in `cf_mobile_shared_with`, and no `mobile_number`.
- Same-named accounts (Freshsales: account names are unique): two clinic locations, payers or practices
  called alike get their city appended, `Riverside Family Clinic (Peoria)`; if that is still not unique,
  their source key instead. Names that were unique are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from clinic_pipeline.mapping.plan import MappingPlan
from clinic_pipeline.model.objects import POLICY_FIELDS
from clinic_pipeline.private_files import write_private_parquet
from clinic_pipeline.sql import quote_literal

ALIASES_DIR = "_aliases"
DOB = "cf_date_of_birth"
MERGED_REASON = "merged duplicate patient"
# Values one contact may hold: (column, field a shared value moves to, field naming its keeper, what makes
# two values the same: emails are already lower-cased, mobile numbers compare by their digits).
SHARED_VALUES: tuple[tuple[str, str, str, str], ...] = (
    ("email", "cf_shared_email", "cf_email_shared_with", "{v}"),
    (
        "mobile_number",
        "cf_shared_mobile",
        "cf_mobile_shared_with",
        "nullif(regexp_replace({v}, '[^0-9]', '', 'g'), '')",
    ),
)


def duplicate_policy(plan: MappingPlan) -> str:
    return next((m.duplicates for m in plan.objects if m.target == "contact" and m.duplicates), "keep_flagged")


def _ensure_columns(con: duckdb.DuckDBPyConnection) -> set[str]:
    columns = {r[0] for r in con.execute("DESCRIBE stage_rows").fetchall()}
    for name in ("first_name", "last_name", "email", "mobile_number", DOB, *(f[0] for f in POLICY_FIELDS)):
        if name not in columns:
            con.execute(f'ALTER TABLE stage_rows ADD COLUMN "{name}" VARCHAR')
    return columns


def resolve_people(
    con: duckdb.DuckDBPyConnection, plan: MappingPlan, staged_dir: Path, earlier: Sequence[Path] = ()
) -> None:
    """Apply the rules above to `stage_rows`; `earlier`: contacts files of runs already loaded (the full
    run, for a delta window), whose holders keep their email and mobile number."""
    _ensure_columns(con)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE people_dups AS
        WITH base AS (
            SELECT _source_key, _source_table, _source_row, lower(trim(first_name)) AS f,
                   lower(trim(last_name)) AS l, {DOB}::VARCHAR AS d, email AS e
            FROM stage_rows WHERE NOT _derived AND _skip_reason IS NULL AND _source_key IS NOT NULL
        ), firsts AS (
            SELECT _source_key, _source_table, _source_row,
                CASE WHEN f IS NOT NULL AND l IS NOT NULL AND d IS NOT NULL
                     THEN min(_source_row) OVER (PARTITION BY _source_table, f, l, d) END AS by_name,
                CASE WHEN e IS NOT NULL AND d IS NOT NULL
                     THEN min(_source_row) OVER (PARTITION BY _source_table, e, d) END AS by_email
            FROM base
        )
        SELECT d._source_key AS alias_key, s._source_key AS survivor_key
        FROM firsts d JOIN base s
          ON s._source_table = d._source_table AND s._source_row = least(d.by_name, d.by_email)
        WHERE least(d.by_name, d.by_email) < d._source_row"""
    )
    if duplicate_policy(plan) == "merge":
        con.execute(
            f"""UPDATE stage_rows SET _skip_reason = '{MERGED_REASON}'
            FROM people_dups WHERE stage_rows._source_key = people_dups.alias_key"""
        )
        con.execute(
            """UPDATE stage_rows SET cf_merged_source_keys = m.keys
            FROM (SELECT survivor_key, string_agg(alias_key, ',' ORDER BY alias_key) AS keys
                  FROM people_dups GROUP BY ALL) m
            WHERE stage_rows._source_key = m.survivor_key"""
        )
    else:
        con.execute(
            """UPDATE stage_rows SET cf_possible_duplicate_of = people_dups.survivor_key
            FROM people_dups WHERE stage_rows._source_key = people_dups.alias_key"""
        )
    aliases = staged_dir / ALIASES_DIR / "contacts.parquet"
    if duplicate_policy(plan) == "merge":
        write_private_parquet(con, "SELECT alias_key, survivor_key FROM people_dups", aliases)
    else:
        aliases.unlink(missing_ok=True)
    for column, moved_to, shared_with, match in SHARED_VALUES:
        _leave_to_one(con, column, moved_to, shared_with, match, earlier)


def _leave_to_one(
    con: duckdb.DuckDBPyConnection, column: str, moved_to: str, shared_with: str, match: str, earlier: Sequence[Path]
) -> None:
    """One contact keeps `column`'s value; the others get it in `moved_to` and the keeper's key in
    `shared_with`. Contacts an earlier run staged (a delta window's full run) keep what they hold: they
    are in Freshsales with it, so a family member added at cutover must not take it from them."""
    value = match.format(v=column)
    candidates = (
        f"SELECT _source_key, 1 AS tier, {DOB} AS dob, _source_table, _source_row, {value} AS v "
        "FROM stage_rows WHERE _skip_reason IS NULL AND _source_key IS NOT NULL"
    )
    if earlier:
        files = "[" + ", ".join(quote_literal(str(f)) for f in earlier) + "]"
        candidates += (
            f" UNION ALL SELECT _source_key, 0, NULL, NULL, NULL, {value} "
            f"FROM read_parquet({files}, union_by_name=true) "
            "WHERE _source_key NOT IN (SELECT _source_key FROM stage_rows WHERE _source_key IS NOT NULL)"
        )
    con.execute(
        f"""UPDATE stage_rows SET {moved_to} = stage_rows.{column}, {shared_with} = k.keeper, {column} = NULL
        FROM (
            SELECT _source_key, tier, first_value(_source_key) OVER (
                       PARTITION BY v ORDER BY tier, dob NULLS LAST, _source_table, _source_row) AS keeper
            FROM ({candidates}) WHERE v IS NOT NULL
        ) k
        WHERE k.tier = 1 AND stage_rows._source_key = k._source_key AND k.keeper <> k._source_key"""
    )


def disambiguate_account_names(con: duckdb.DuckDBPyConnection) -> None:
    columns = {r[0] for r in con.execute("DESCRIBE stage_rows").fetchall()}
    if "name" not in columns:
        return
    clashes = """lower(name) IN (SELECT lower(name) FROM stage_rows
        WHERE _skip_reason IS NULL AND name IS NOT NULL GROUP BY 1 HAVING count(*) > 1)"""
    if "city" in columns:
        con.execute(f"UPDATE stage_rows SET name = name || ' (' || city || ')' WHERE city IS NOT NULL AND {clashes}")
    con.execute(f"UPDATE stage_rows SET name = name || ' (' || _source_key || ')' WHERE {clashes}")
