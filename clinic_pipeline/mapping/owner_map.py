"""Providers → Freshsales users, by email: the owner map an admin reviews before records move.

Design.md: staff resolve to users by email; staff with no email or no (active) user are flagged, and a
configured fallback owner is used only when the operator allows it. The loader resolves each record's
owner email the same way; this map is the reviewable, countable version of that rule.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Literal

import duckdb
from pydantic import BaseModel

from clinic_pipeline.freshsales.models import Owner
from clinic_pipeline.mapping.plan import MappingPlan
from clinic_pipeline.staging.transforms import quote_ident

OwnerStatus = Literal["resolved", "inactive_user", "no_user", "no_email", "fallback"]


class OwnerEntry(BaseModel):
    source_table: str
    source_key: str
    status: OwnerStatus
    user_id: int | None = None


class OwnerMap(BaseModel):
    entries: list[OwnerEntry]
    fallback_owner_id: int | None = None

    def counts(self) -> dict[str, int]:
        return dict(Counter(e.status for e in self.entries))


def _staff_emails(plan: MappingPlan, con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str | None]]:
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
) -> OwnerMap:
    by_email = {u.email.strip().lower(): u for u in users if u.email}
    fallback = by_email.get(fallback_email.strip().lower()) if fallback_email else None
    if fallback_email and (fallback is None or not fallback.is_active):
        raise ValueError("CLINIC_FALLBACK_OWNER_EMAIL is not an active Freshsales user")
    entries = []
    for table, key, email in _staff_emails(plan, con):
        user = by_email.get(email) if email else None
        if user is not None and user.is_active:
            entries.append(OwnerEntry(source_table=table, source_key=key, status="resolved", user_id=int(user.id)))
            continue
        status: OwnerStatus = "no_email" if email is None else "inactive_user" if user is not None else "no_user"
        if fallback is not None:
            entries.append(OwnerEntry(source_table=table, source_key=key, status="fallback", user_id=int(fallback.id)))
        else:
            entries.append(OwnerEntry(source_table=table, source_key=key, status=status))
    return OwnerMap(entries=entries, fallback_owner_id=int(fallback.id) if fallback else None)


def write_owner_map(owner_map: OwnerMap, path: Path) -> Path:
    """Source keys and user ids only; private like every other file under data/."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(owner_map.model_dump(mode="json"), fh, indent=2)
    os.replace(path.with_suffix(".tmp"), path)
    return path
