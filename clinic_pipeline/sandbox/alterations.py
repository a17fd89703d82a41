"""Test mode: the sandbox silently alters what it stores, so tests can prove the verification notices.

`POST /_sandbox/alterations` `{"rules": [{"kind": "contact", "field": "last_name", "action": "truncate",
"length": 3}, ...]}` (an empty list clears them). Actions, applied on every create/update of that kind:
- `truncate`: keep the first `length` characters of a text field;
- `shift_hours`: move an ISO timestamp by `hours`;
- `round`: round a money field to whole units (cents lost);
- `drop`: forget a custom field (`cf_*`) or a standard field;
- `relink`: point `targetable_id` at another record of the same targetable type.
The API answers as if nothing happened: the record it returns is the altered one, as a buggy or
over-eager CRM integration would leave it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from clinic_pipeline.sandbox.errors import ApiError
from clinic_pipeline.sandbox.store import Record, Store

SETTING = "alterations"
ACTIONS = frozenset({"truncate", "shift_hours", "round", "drop", "relink"})
TARGETABLE = {"Contact": "contact", "SalesAccount": "sales_account", "Deal": "deal"}


def parse(body: Any) -> list[dict[str, Any]]:
    rules = body.get("rules") if isinstance(body, dict) else None
    if not isinstance(rules, list):
        raise ApiError(400, "rules must be a list")
    for rule in rules:
        if (
            not isinstance(rule, dict)
            or rule.get("action") not in ACTIONS
            or not rule.get("kind")
            or not rule.get("field")
        ):
            raise ApiError(400, f"each rule needs kind, field and an action of: {', '.join(sorted(ACTIONS))}")
    return rules


def _alter(store: Store, record: Record, rule: dict[str, Any]) -> None:
    field, action = str(rule["field"]), rule["action"]
    holder = record.get("custom_field") if field.startswith("cf_") else record
    if not isinstance(holder, dict) or holder.get(field) is None:
        return
    value = holder[field]
    if action == "truncate":
        holder[field] = str(value)[: int(rule.get("length", 3))]
    elif action == "shift_hours":
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        holder[field] = (moment + timedelta(hours=float(rule.get("hours", 1)))).isoformat()
    elif action == "round":
        holder[field] = str(Decimal(str(value)).quantize(Decimal("1"), rounding=ROUND_HALF_UP))
    elif action == "drop":
        del holder[field]
    elif action == "relink":
        kind = TARGETABLE.get(str(record.get("targetable_type")), "contact")
        others = sorted(r["id"] for r in store.all(kind) if r["id"] != value)
        if others:
            holder[field] = others[0]


def apply(store: Store, kind: str, record: Record) -> Record:
    for rule in store.get_setting(SETTING, []):
        if rule["kind"] == kind:
            _alter(store, record, rule)
    return record
