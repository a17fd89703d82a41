"""Reading records back: views, paging, sorting, side-loads, lookup, filtered search and quick search."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from clinic_pipeline.sandbox.entities import forecast_type, parse_datetime
from clinic_pipeline.sandbox.errors import ApiError
from clinic_pipeline.sandbox.store import Record, Store

MAX_PER_PAGE = 100
SEARCH_LIMIT = 10
PLURAL = {
    "contact": "contacts",
    "sales_account": "sales_accounts",
    "deal": "deals",
    "task": "tasks",
    "appointment": "appointments",
    "sales_activity": "sales_activities",
    "note": "notes",
}


def _int_param(params: Any, name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ApiError(400, f"{name} must be a positive integer") from None
    if value < 1:
        raise ApiError(400, f"{name} must be a positive integer")
    return value


def page_of(records: list[Record], params: Any) -> tuple[list[Record], dict[str, int]]:
    """One page (per_page clamped to 100) and the meta that goes with it."""
    page = _int_param(params, "page", 1)
    per_page = min(_int_param(params, "per_page", 25), MAX_PER_PAGE)
    total = len(records)
    chunk = records[(page - 1) * per_page : page * per_page]
    # An empty list has no pages: captured empty answers read `{"total_pages": 0, "total": 0}`.
    return chunk, {"total_pages": math.ceil(total / per_page), "total": total}


def sort_records(records: list[Record], params: Any) -> list[Record]:
    field = params.get("sort") or "updated_at"
    order = params.get("sort_type") or "desc"
    if order not in ("asc", "desc"):
        raise ApiError(400, "sort_type must be asc or desc")

    def key(record: Record) -> tuple[bool, str, int]:
        value = record.get(field, record.get("custom_field", {}).get(field))
        return (value is None, str(value) if value is not None else "", record["id"])

    return sorted(records, key=key, reverse=order == "desc")


def in_view(kind: str, view_name: str, record: Record, user_id: int) -> bool:
    deleted = bool(record.get("is_deleted"))
    if view_name == "Recycle Bin":
        return deleted
    if deleted:
        return False
    if view_name.startswith("My "):
        return record.get("owner_id") == user_id
    if view_name.startswith("New "):
        created = parse_datetime("created_at", record["created_at"])
        return created >= datetime.now(UTC) - timedelta(days=7)
    if kind == "deal" and view_name in ("Open Deals", "Won Deals", "Lost Deals"):
        return forecast_type(record) == view_name.split()[0].lower()
    return True


def task_filter(record: Record, name: str) -> bool:
    today = datetime.now(UTC).date()
    due = parse_datetime("due_date", record["due_date"])
    if name == "completed":
        return record["status"] == 1
    if record["status"] == 1:
        return False
    return {
        "open": True,
        "overdue": due < datetime.now(UTC),
        "due today": due.astimezone(UTC).date() == today,
        "due tomorrow": due.astimezone(UTC).date() == today + timedelta(days=1),
    }[name]


def appointment_filter(record: Record, name: str) -> bool:
    end = parse_datetime("end_date", record["end_date"])
    return end < datetime.now(UTC) if name == "past" else end >= datetime.now(UTC)


def field_value(record: Record, attribute: str, known: set[str]) -> Any:
    """A record's value for a filter attribute: a standard field, `cf_x` or `custom_field.cf_x`."""
    name = attribute.removeprefix("custom_field.")
    if name in ("contact_email.email", "email") and "emails" in record:
        return [e["value"] for e in record["emails"]]
    if name not in known:
        raise ApiError(400, f"Unknown filter attribute {attribute}")
    if name.startswith("cf_"):
        return (record.get("custom_field") or {}).get(name)
    return record.get(name)


def matches(value: Any, operator: str, wanted: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    values = [v for v in values if v is not None]
    if operator == "is_in":
        targets = wanted if isinstance(wanted, list) else [wanted]
        keys = {str(t).lower() for t in targets}
        return any(str(v).lower() in keys for v in values)
    if operator == "is":
        return any(str(v).lower() == str(wanted).lower() for v in values)
    if operator == "contains":
        return any(str(wanted).lower() in str(v).lower() for v in values)
    if operator in ("is_after", "is_before"):
        limit = parse_datetime("value", wanted)
        parsed = [parse_datetime("value", v) for v in values if isinstance(v, str)]
        return any(p > limit if operator == "is_after" else p < limit for p in parsed)
    raise ApiError(400, f"Unknown operator {operator}")


def filtered(records: list[Record], rules: Any, known: set[str]) -> list[Record]:
    if not isinstance(rules, list) or not rules:
        raise ApiError(400, "filter_rule must be a non-empty list")
    for rule in rules:
        if not isinstance(rule, dict) or not {"attribute", "operator", "value"} <= set(rule):
            raise ApiError(400, "each filter_rule needs attribute, operator and value")
    return [
        r
        for r in records
        if not r.get("is_deleted")
        and all(matches(field_value(r, x["attribute"], known), x["operator"], x["value"]) for x in rules)
    ]


def string_ids(record: Record) -> Record:
    """Search answers carry ids as strings (as Freshsales' do)."""
    return {**record, "id": str(record["id"])}


def quick_search(store: Store, q: str, kinds: list[str]) -> list[dict[str, Any]]:
    needle = q.lower()
    found: list[dict[str, Any]] = []
    for kind in kinds:
        for record in store.all(kind):
            if record.get("is_deleted"):
                continue
            name = record.get("display_name") or record.get("name") or ""
            haystack = [name, *(e["value"] for e in record.get("emails") or []), record.get("mobile_number") or ""]
            if any(needle in str(h).lower() for h in haystack):
                found.append({"id": str(record["id"]), "type": kind, "name": name, "email": record.get("email")})
                if len(found) == SEARCH_LIMIT:
                    return found
    return found
