"""Staged Parquet rows → Freshsales request bodies, with parents' ids resolved from the id map.

Links per object (parents are keyed by target, as the staged `_lookup_<target>` columns name them):
contacts → `sales_accounts: [{id, is_primary}]`; deals → `sales_account_id`, `contact_ids`; appointments,
tasks and notes → `targetable_type: "Contact"`, `targetable_id` (appointments also list the contact as an
attendee); custom module records → their `cf_contact` and `cf_sales_account` lookup fields. A row whose
parent has no Freshsales id is held back, never sent orphaned.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from clinic_pipeline.load.owners import OwnerMap
from clinic_pipeline.load.state import IdMapRow
from clinic_pipeline.model.objects import CHOICE_PREFIX, FreshsalesObject
from clinic_pipeline.model.transforms import OWNER_COLUMNS

LOOKUP_PREFIX = "_lookup_"
# The staged columns naming a record's owner, as the owner transforms write them: an email, a display name.
EMAIL_COLUMN, NAME_COLUMN = OWNER_COLUMNS["owner_by_email"], OWNER_COLUMNS["owner_by_name"]
MODULE_CONTACT_FIELD = "cf_contact"  # load/modules.py gives every custom module this lookup to contacts
MODULE_ACCOUNT_FIELD = "cf_sales_account"  # ...and this lookup to accounts where the plan links a payer
# Where a body links to another record (as `_link` writes it), and the entity that record is in.
LINK_ENTITIES = {
    "sales_accounts": "sales_accounts",
    "sales_account_id": "sales_accounts",
    "contact_ids": "contacts",
    "targetable_id": "contacts",
    "appointment_attendees": "contacts",  # as read back: `{attendee_type, attendee_id}`, users among them
    MODULE_CONTACT_FIELD: "contacts",
    MODULE_ACCOUNT_FIELD: "sales_accounts",
}
OWNER_NOT_RESOLVED = "owner not resolved"
# Without an owner these are meaningless to the clinic (whose appointment, whose task?): held back.
OWNER_REQUIRED = frozenset({"appointments", "tasks"})
# Freshsales notes have no owner field.
NO_OWNER = frozenset({"notes"})
# Freshsales refuses these without a targetable record.
TARGET_REQUIRED = frozenset({"notes", "tasks", "sales_activities"})
USER_ATTENDEE = "FdMultitenant::User"


@dataclass(frozen=True)
class Prepared:
    source_key: str
    source_row: int | None
    payload: dict[str, Any] | None  # None when held back
    payload_hash: str
    held_back_reason: str | None = None
    owner_unresolved: bool = False
    parent_id: int | None = None  # the contact a targetable or module record hangs on
    identifier: dict[str, str] | None = None  # what bulk_upsert may match a new record by (email, name)


def names_owners(columns: Iterable[str]) -> bool:
    """Whether a staged file names its records' owners (then the account's users are needed to load it)."""
    return not set(OWNER_COLUMNS.values()).isdisjoint(columns)


def marker(source_key: str) -> str:
    """The idempotency marker for records without custom fields: a hash, so no PHI travels in it."""
    return f"[source {hashlib.sha256(source_key.encode()).hexdigest()[:16]}]"


def _json_value(value: Any) -> Any:
    # Money stays an exact decimal string: a float would let cents drift.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def payload_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _link(obj: FreshsalesObject, parent: str, parent_id: int, body: dict[str, Any], custom: dict[str, Any]) -> None:
    if obj.entity == "contacts" and parent == "sales_account":
        body["sales_accounts"] = [{"id": parent_id, "is_primary": True}]
    elif obj.entity == "deals" and parent == "contact":
        body["contact_ids"] = [parent_id]
    elif obj.targetable and parent == "contact":
        body["targetable_type"] = "Contact"
        body["targetable_id"] = parent_id
        if obj.entity == "appointments":
            body.setdefault("appointment_attendees_attributes", []).append(
                {"attendee_type": "Contact", "attendee_id": parent_id}
            )
    elif obj.module is not None and parent in ("contact", "sales_account"):
        custom[MODULE_CONTACT_FIELD if parent == "contact" else MODULE_ACCOUNT_FIELD] = parent_id
    else:
        body[f"{parent}_id"] = parent_id


def linked_ids(body: Mapping[str, Any]) -> dict[str, list[int]]:
    """Per link field of a request body (custom module lookups included), the ids it links to."""
    fields = {**body, **(body.get("custom_field") or {})}
    links: dict[str, list[int]] = {}
    for name in LINK_ENTITIES.keys() & fields.keys():
        values = fields[name] if isinstance(fields[name], list) else [fields[name]]
        ids = [
            v
            if not isinstance(v, dict)
            else v.get("attendee_id")
            if v.get("attendee_type") == "Contact"
            else v.get("id")
            for v in values
        ]
        links[name] = [int(i) for i in ids if isinstance(i, int) or (isinstance(i, str) and i.isdigit())]
    return links


def _identifier(obj: FreshsalesObject, body: dict[str, Any]) -> dict[str, str] | None:
    """The identifier Freshsales' bulk upsert accepts for a new record: contacts by email, accounts by name."""
    if obj.entity == "contacts":
        email = body.get("email")
        if email is None and isinstance(body.get("emails"), list) and body["emails"]:
            first = body["emails"][0]
            email = first.get("value") if isinstance(first, dict) else first
        return {"emails": email} if isinstance(email, str) and email.strip() else None
    if obj.entity == "sales_accounts":
        name = body.get("name")
        return {"name": name} if isinstance(name, str) and name.strip() else None
    return None


def _apply_owner(obj: FreshsalesObject, owner_id: int, body: dict[str, Any]) -> None:
    if obj.entity == "appointments":
        # Appointments have no owner field: the provider attends as a user.
        body.setdefault("appointment_attendees_attributes", []).append(
            {"attendee_type": USER_ATTENDEE, "attendee_id": owner_id}
        )
    else:
        body["owner_id"] = owner_id


def prepare(
    obj: FreshsalesObject,
    row: dict[str, Any],
    parents: dict[str, dict[str, IdMapRow]],
    owners: OwnerMap | None = None,
    choices: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
) -> Prepared:
    """One staged row → the body to send; a row whose parent has no Freshsales id is held back.

    Without an owner map `_owner_email` and `_owner_name` are ignored (owners are not part of the comparison
    then). `choices`: field → lower-cased choice name → the fields it sets (its id, and the choice it belongs
    to: a contact status's lifecycle stage), for the staged `_choice_<field>` columns (an appointment's outcome)."""
    source_key = str(row["_source_key"])
    source_row = row.get("_source_row")
    body: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    parent_id: int | None = None
    for column, value in row.items():
        if column.startswith(LOOKUP_PREFIX):
            if value is None:
                continue
            parent = column.removeprefix(LOOKUP_PREFIX)
            mapped = parents.get(parent, {}).get(str(value))
            if mapped is None:
                return Prepared(source_key, source_row, None, "", f"parent {parent} not loaded")
            _link(obj, parent, mapped.freshsales_id, body, custom)
            if parent == "contact":
                parent_id = mapped.freshsales_id
        elif column.startswith(CHOICE_PREFIX):
            chosen = (
                None
                if value is None
                else (choices or {}).get(column.removeprefix(CHOICE_PREFIX), {}).get(str(value).strip().lower())
            )
            body.update(chosen or {})
        elif value is None or column.startswith("_"):
            continue
        elif column.startswith("cf_"):
            custom[column] = _json_value(value)
        else:
            body[column] = _json_value(value)
    if obj.entity in TARGET_REQUIRED and parent_id is None:
        return Prepared(source_key, source_row, None, "", "parent contact missing")
    owner_unresolved = False
    if owners is not None and obj.entity not in NO_OWNER:
        owner_id = owners.resolve(row.get(EMAIL_COLUMN), row.get(NAME_COLUMN))
        if owner_id is not None:
            _apply_owner(obj, owner_id, body)
        elif obj.entity in OWNER_REQUIRED:
            return Prepared(source_key, source_row, None, "", OWNER_NOT_RESOLVED)
        else:
            owner_unresolved = True
    if obj.marker_field:
        text = body.get(obj.marker_field)
        body[obj.marker_field] = f"{text}\n\n{marker(source_key)}" if text else marker(source_key)
    elif obj.key_field.startswith("cf_"):
        custom[obj.key_field] = source_key
    else:
        body[obj.key_field] = source_key
    if custom:
        body["custom_field"] = custom
    return Prepared(
        source_key,
        source_row,
        body,
        payload_hash(body),
        owner_unresolved=owner_unresolved,
        parent_id=parent_id,
        identifier=_identifier(obj, body),
    )
