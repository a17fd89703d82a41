"""Providers → Freshsales users, by email: the owner map an admin reviews before records move.

Design.md: staff resolve to users by email; staff with no email or no (active) user are flagged, and a
configured fallback owner is used only when the operator allows it. The loader resolves each record's
owner email the same way; this map is the reviewable, countable version of that rule.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from clinic_pipeline.freshsales.models import Owner
from clinic_pipeline.mapping.plan import MappingPlan
from clinic_pipeline.private_files import write_private_table, write_private_text
from clinic_pipeline.sql import quote_ident

OwnerStatus = Literal["resolved", "inactive_user", "no_user", "no_email"]


class OwnerEntry(BaseModel):
    source_table: str
    source_key: str
    email: str | None  # the staff member's work email (not patient data; the files are private anyway)
    status: OwnerStatus
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


def build_owner_map(
    plan: MappingPlan, con: duckdb.DuckDBPyConnection, users: list[Owner], fallback_email: str | None
) -> StaffOwnerMap:
    by_email = {u.email.strip().lower(): u for u in users if u.email}
    fallback = by_email.get(fallback_email.strip().lower()) if fallback_email else None
    if fallback_email and (fallback is None or not fallback.is_active):
        raise ValueError("CLINIC_FALLBACK_OWNER_EMAIL is not an active Freshsales user")
    entries = []
    for table, key, email in staff_emails(plan, con):
        user = by_email.get(email) if email else None
        if user is not None and user.is_active:
            entries.append(
                OwnerEntry(source_table=table, source_key=key, email=email, status="resolved", user_id=int(user.id))
            )
            continue
        status: OwnerStatus = "no_email" if email is None else "inactive_user" if user is not None else "no_user"
        entries.append(
            OwnerEntry(
                source_table=table,
                source_key=key,
                email=email,
                status=status,
                user_id=int(fallback.id) if fallback is not None else None,
            )
        )
    return StaffOwnerMap(entries=entries, fallback_owner_id=int(fallback.id) if fallback else None)


def read_owner_map(path: Path) -> StaffOwnerMap | None:
    if not path.exists():
        return None
    entries = [OwnerEntry.model_validate(r) for r in pq.read_table(path).to_pylist()]
    fallback = {e.user_id for e in entries if e.status != "resolved"} - {None}
    return StaffOwnerMap(entries=entries, fallback_owner_id=next(iter(fallback), None))


def unresolved(owner_map: StaffOwnerMap) -> list[OwnerEntry]:
    return [e for e in owner_map.entries if e.user_id is None]


def write_owner_map(owner_map: StaffOwnerMap, parquet_path: Path, md_path: Path) -> None:
    """The map as Parquet (source key → user id, status) and a readable Markdown page listing every
    unresolved staff member with the reason. Keys and ids only; private like everything under data/."""
    parquet_path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(
        [e.model_dump() for e in owner_map.entries],
        schema=pa.schema(
            [
                ("source_table", pa.string()),
                ("source_key", pa.string()),
                ("status", pa.string()),
                ("user_id", pa.int64()),
            ]
        ),
    )
    write_private_table(table, parquet_path)
    reasons = {
        "no_email": "no email in the source",
        "no_user": "no Freshsales user with that email",
        "inactive_user": "the Freshsales user is inactive",
    }
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
            f"| {e.source_table} | {e.source_key} | {reasons.get(e.status, e.status)} |"
            for e in owner_map.entries
            if e.status not in ("resolved",)
        ),
    ]
    write_private_text(md_path, "\n".join(lines) + "\n")
