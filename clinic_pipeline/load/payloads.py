"""Staged Parquet rows → Freshsales request bodies, with parents' ids resolved from the id map."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from clinic_pipeline.load.state import IdMapRow
from clinic_pipeline.staging.objects import StagedObject

LOOKUP_PREFIX = "_lookup_"


@dataclass(frozen=True)
class Prepared:
    source_key: str
    source_row: int | None
    payload: dict[str, Any] | None  # None when held back
    payload_hash: str
    held_back_reason: str | None = None


def _json_value(value: Any) -> Any:
    # Money stays an exact decimal string: a float would let cents drift.
    return str(value) if isinstance(value, Decimal) else value


def payload_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _link(obj: StagedObject, parent: str, parent_id: int) -> dict[str, Any]:
    if obj.entity == "contacts" and parent == "sales_account":
        return {"sales_accounts": [{"id": parent_id, "is_primary": True}]}
    return {f"{parent}_id": parent_id}


def prepare(obj: StagedObject, row: dict[str, Any], parents: dict[str, dict[str, IdMapRow]]) -> Prepared:
    """One staged row → the body to send; a row whose parent has no Freshsales id is held back."""
    source_key = str(row["_source_key"])
    body: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for column, value in row.items():
        if value is None:
            continue
        if column.startswith(LOOKUP_PREFIX):
            parent = column.removeprefix(LOOKUP_PREFIX)
            mapped = parents.get(parent, {}).get(str(value))
            if mapped is None:
                return Prepared(source_key, row.get("_source_row"), None, "", f"parent {parent} not loaded")
            body.update(_link(obj, parent, mapped.freshsales_id))
        elif column.startswith("_"):
            continue
        elif column.startswith("cf_"):
            custom[column] = _json_value(value)
        else:
            body[column] = _json_value(value)
    if obj.key_field.startswith("cf_"):
        custom[obj.key_field] = source_key
    else:
        body[obj.key_field] = source_key
    if custom:
        body["custom_field"] = custom
    return Prepared(source_key, row.get("_source_row"), body, payload_hash(body))
