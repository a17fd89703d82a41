"""Providers → Freshsales users, by email: the owner map an admin reviews before records move.

Design.md: staff resolve to users by email; staff with no email or no (active) user are flagged, and a
configured fallback owner is used only when the operator allows it. Where the source keeps no email for its
staff (the plan's `owner_by_name` lines), they resolve by display name instead, to the one active user of
that first and last name; a name two active users share is listed as ambiguous, never guessed. The loader
resolves each record's owner the same way; this map is the reviewable, countable version of that rule.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal, get_args

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from clinic_pipeline.freshsales.models import Owner
from clinic_pipeline.mapping.plan import MappingPlan
from clinic_pipeline.model.people import by_unique_name, name_key
from clinic_pipeline.private_files import write_private_table, write_private_text
from clinic_pipeline.sql import quote_ident

OwnerStatus = Literal["resolved", "resolved_by_name", "inactive_user", "no_user", "no_email", "ambiguous_name"]
OWNER_STATUSES: tuple[OwnerStatus, ...] = get_args(OwnerStatus)
RESOLVED: frozenset[OwnerStatus] = frozenset({"resolved", "resolved_by_name"})
_REASONS: dict[OwnerStatus, str] = {
    "no_email": "no email in the source",
    "inactive_user": "the Freshsales user is inactive",
    "ambiguous_name": "ambiguous name: two or more active Freshsales users have it",
}


class OwnerEntry(BaseModel):
    source_table: str
    source_key: str
    email: str | None = None  # the staff member's work email (not patient data; the files are private anyway)
    status: OwnerStatus
    name: str | None = None  # the display name a staff member without an email is matched by
    user_id: int | None = None  # the fallback owner's id when the status is not `resolved` and one is set


class StaffOwnerMap(BaseModel):
    entries: list[OwnerEntry]
    fallback_owner_id: int | None = None

    def counts(self) -> dict[str, int]:
        return dict(Counter(e.status for e in self.entries))


def staff_emails(plan: MappingPlan, con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str | None]]:
    """(table, source key, lower-cased email or None) for every row of the plan's provider/user tables."""
    rows: list[tuple[str, str, str | None]] = []
    for mapping in plan.objects:
        if mapping.target != "user" or not mapping.source_key:
            continue
        email = next((f.source for f in mapping.fields if f.type == "email" or f.transform == "lower_email"), None)
        email_sql = f"nullif(lower(trim({quote_ident(email)})), '')" if email else "NULL"
        found = con.execute(
            f"SELECT trim({quote_ident(mapping.source_key)}), {email_sql} "
            f"FROM source.{quote_ident(mapping.source_table)} ORDER BY _source_row"
        ).fetchall()
        rows.extend((mapping.source_table, str(k), e) for k, e in found if k)
    return rows


def staff_names(plan: MappingPlan, con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], str]:
    """(table, source key) → the display name the plan's `owner_by_name` lines match that staff member by,
    from the first row of each key (as staging joins it)."""
    columns = {f.references: f.via for o in plan.objects for f in o.fields if f.transform == "owner_by_name"}
    names: dict[tuple[str, str], str] = {}
    for mapping in plan.objects:
        column = columns.get(mapping.source_table)
        if mapping.target != "user" or not mapping.source_key or not column:
            continue
        found = con.execute(
            f"SELECT trim({quote_ident(mapping.source_key)}), trim({quote_ident(column)}) "
            f"FROM source.{quote_ident(mapping.source_table)} ORDER BY _source_row"
        ).fetchall()
        for key, name in found:
            if key and name:
                names.setdefault((mapping.source_table, str(key)), name)
    return names


class _Users:
    """The account's users as the loader matches them: by email, else by a name one active user bears."""

    def __init__(self, users: list[Owner]) -> None:
        self.by_email = {u.email.strip().lower(): u for u in users if u.email}
        self.by_name, self.shared = by_unique_name((u.display_name, u) for u in users if u.is_active)
        self.inactive_names = {name_key(u.display_name) for u in users if not u.is_active} - {None}

    def match(self, email: str | None, name: str | None) -> tuple[OwnerStatus, Owner | None]:
        """(status, the active user) of a staff member's email, or without one their display name."""
        if email is not None:
            user = self.by_email.get(email)
            if user is None:
                return "no_user", None
            return ("resolved", user) if user.is_active else ("inactive_user", None)
        key = name_key(name)
        if key is None:
            return "no_email", None
        if key in self.shared:
            return "ambiguous_name", None
        if key in self.by_name:
            return "resolved_by_name", self.by_name[key]
        return ("inactive_user" if key in self.inactive_names else "no_user"), None


def build_owner_map(
    plan: MappingPlan, con: duckdb.DuckDBPyConnection, users: list[Owner], fallback_email: str | None
) -> StaffOwnerMap:
    known = _Users(users)
    fallback = known.by_email.get(fallback_email.strip().lower()) if fallback_email else None
    if fallback_email and (fallback is None or not fallback.is_active):
        raise ValueError("CLINIC_FALLBACK_OWNER_EMAIL is not an active Freshsales user")
    names = staff_names(plan, con)
    entries = []
    for table, key, email in staff_emails(plan, con):
        name = None if email else names.get((table, key))
        status, user = known.match(email, name)
        owner = user if user is not None else fallback
        entries.append(
            OwnerEntry(
                source_table=table,
                source_key=key,
                email=email,
                name=name,
                status=status,
                user_id=int(owner.id) if owner is not None else None,
            )
        )
    return StaffOwnerMap(entries=entries, fallback_owner_id=int(fallback.id) if fallback else None)


def read_owner_map(path: Path) -> StaffOwnerMap | None:
    if not path.exists():
        return None
    entries = [OwnerEntry.model_validate(r) for r in pq.read_table(path).to_pylist()]
    fallback = {e.user_id for e in entries if e.status not in RESOLVED} - {None}
    return StaffOwnerMap(entries=entries, fallback_owner_id=next(iter(fallback), None))


def unresolved(owner_map: StaffOwnerMap) -> list[OwnerEntry]:
    return [e for e in owner_map.entries if e.user_id is None]


def write_owner_map(owner_map: StaffOwnerMap, parquet_path: Path, md_path: Path) -> None:
    """The map as Parquet (source key, the staff member's work email or display name, status, user id) and a
    readable Markdown page listing every unresolved staff member with the reason (keys only). The email and
    name are kept so that `migrate --dry-run` resolves owners as the loader will (bodies hash alike); staff
    data, not patients', private like everything under data/."""
    parquet_path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(
        [e.model_dump() for e in owner_map.entries],
        schema=pa.schema(
            [
                ("source_table", pa.string()),
                ("source_key", pa.string()),
                ("email", pa.string()),
                ("name", pa.string()),
                ("status", pa.string()),
                ("user_id", pa.int64()),
            ]
        ),
    )
    write_private_table(table, parquet_path)
    counts = owner_map.counts()
    lines = [
        "# Owner map: providers and staff → Freshsales users",
        "",
        *(f"- {status}: {counts[status]}" for status in sorted(counts)),
        "",
        "## Unresolved" + (" (assigned to the fallback owner)" if owner_map.fallback_owner_id else ""),
        "",
        "| source table | source key | reason |",
        "|---|---|---|",
        *(
            f"| {e.source_table} | {e.source_key} | {_reason(e)} |"
            for e in owner_map.entries
            if e.status not in RESOLVED
        ),
    ]
    write_private_text(md_path, "\n".join(lines) + "\n")


def _reason(entry: OwnerEntry) -> str:
    """Why a staff member has no user of their own, as the listing says it."""
    if entry.status == "no_user":
        return f"no Freshsales user with that {'email' if entry.email else 'name'}"
    if entry.status == "no_email" and entry.name:
        return "no email in the source, and no first and last name in its display name"
    return _REASONS.get(entry.status, entry.status)
