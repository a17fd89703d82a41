"""Validation and normalisation rules for every record kind: what a migration trips over in Freshsales.

Rules (all rejections are 400 naming the field): unknown `cf_*` keys, values of the wrong type
(a zipcode sent as a number loses its leading zero, so text fields must be strings), lookups to
missing or deleted records, inactive owners, dropdown values outside the choices, duplicate contact
emails (across `email` and `emails`, case-insensitive, recycle bin included), duplicate contact mobile
numbers (compared by their digits, recycle bin included), duplicate account names
(case-insensitive, recycle bin included), deals without name or amount. Unknown non-`cf_` top-level
keys are ignored (as Rails' permitted parameters are); `created_at`/`updated_at` from the client are
ignored; business dates in the past are fine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from clinic_pipeline.sandbox.errors import ApiError
from clinic_pipeline.sandbox.seed import REFERENCE_FIELDS, SELECTORS
from clinic_pipeline.sandbox.store import Record, Store

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NOT_DIGITS = re.compile(r"[^0-9]")
# The docs name only email as unique; some accounts also refuse a second contact with one mobile
# number, and the sandbox takes that stricter reading.
CONTACT_MOBILE_INDEX = "contact.mobile_number"
TARGETABLE_KINDS = {"Contact": "contact", "SalesAccount": "sales_account", "Deal": "deal"}
CUSTOM_FIELD_TYPES = frozenset(
    {
        "text",
        "textarea",
        "number",
        "date",
        "date_time_split",
        "dropdown",
        "multi_select_dropdown",
        "checkbox",
        "auto_complete",
        "lookup",
    }
)

_T = "text"
_COMMON_ADDRESS = {"address": "textarea", "city": _T, "state": _T, "zipcode": _T, "country": _T}
_SOCIAL = {"facebook": _T, "twitter": _T, "linkedin": _T}
# Field name → rule. Lookups: "owner", "ref" (a selector via REFERENCE_FIELDS), "record:<kind>".
STANDARD_FIELDS: dict[str, dict[str, str]] = {
    "contact": {
        "first_name": _T,
        "last_name": _T,
        "job_title": _T,
        "email": "email",
        "emails": "emails",
        "work_number": _T,
        "mobile_number": _T,
        **_COMMON_ADDRESS,
        "time_zone": _T,
        "owner_id": "owner",
        "territory_id": "ref",
        "lifecycle_stage_id": "ref",
        "contact_status_id": "ref",
        "lead_source_id": "ref",
        "external_id": _T,
        "tags": "tags",
        "sales_accounts": "sales_accounts",
        "medium": _T,
        "keyword": _T,
        **_SOCIAL,
        "do_not_disturb": "bool",
    },
    "sales_account": {
        "name": _T,
        **_COMMON_ADDRESS,
        "phone": _T,
        "website": _T,
        "industry_type_id": "ref",
        "business_type_id": "ref",
        "number_of_employees": "int",
        "annual_revenue": "money",
        "owner_id": "owner",
        "territory_id": "ref",
        "parent_sales_account_id": "record:sales_account",
        "tags": "tags",
        **_SOCIAL,
    },
    "deal": {
        "name": _T,
        "amount": "money",
        "sales_account_id": "record:sales_account",
        "contact_ids": "ids:contact",
        "deal_pipeline_id": "ref",
        "deal_stage_id": "ref",
        "expected_close": "date",
        "closed_date": "date",
        "owner_id": "owner",
        "currency_id": "ref",
        "deal_reason_id": "ref",
        "deal_type_id": "ref",
        "deal_payment_status_id": "ref",
        "lead_source_id": "ref",
        "probability": "int",
        "territory_id": "ref",
        "tags": "tags",
    },
    "task": {
        "title": _T,
        "description": "textarea",
        "due_date": "datetime",
        "owner_id": "owner",
        "targetable_type": "targetable_type",
        "targetable_id": "targetable_id",
        "task_type_id": "ref",
        "outcome_id": "ref",
        "status": "status",
    },
    "appointment": {
        "title": _T,
        "description": "textarea",
        "from_date": "datetime",
        "end_date": "datetime",
        "time_zone": _T,
        "location": _T,
        "is_allday": "bool",
        "targetable_type": "targetable_type",
        "targetable_id": "targetable_id",
        "outcome_id": "ref",
        "appointment_type_id": "ref",
        "appointment_attendees": "attendees",
    },
    "sales_activity": {
        "title": _T,
        "sales_activity_type_id": "ref",
        "sales_activity_outcome_id": "ref",
        "start_date": "datetime",
        "end_date": "datetime",
        "owner_id": "owner",
        "targetable_type": "targetable_type",
        "targetable_id": "targetable_id",
        "notes": "textarea",
        "location": _T,
    },
    "note": {"description": "textarea", "targetable_type": "targetable_type", "targetable_id": "targetable_id"},
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "sales_account": ("name",),
    "deal": ("name", "amount"),
    "task": ("title", "due_date", "targetable_type", "targetable_id"),
    "appointment": ("title", "from_date", "end_date"),
    "sales_activity": ("title", "sales_activity_type_id", "start_date", "end_date", "targetable_type", "targetable_id"),
    "note": ("description", "targetable_type", "targetable_id"),
}
# Kinds whose records carry custom fields, and the settings path naming their definitions.
CUSTOM_FIELD_ENTITY = {
    "contact": "contacts",
    "sales_account": "sales_accounts",
    "deal": "deals",
    "sales_activity": "sales_activities",
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def money(value: Decimal) -> str:
    """Freshsales' decimal string: at least one fractional digit ("5600.0"), otherwise exact."""
    text = format(value.normalize(), "f")
    return text if "." in text else text + ".0"


def parse_money(field: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ApiError(400, f"{field} must be a number")
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation:
        raise ApiError(400, f"{field} must be a number") from None
    if not parsed.is_finite():
        raise ApiError(400, f"{field} must be a number")
    return parsed


def parse_datetime(field: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise ApiError(400, f"{field} must be an ISO-8601 date or timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{field} must be an ISO-8601 date or timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_date(field: str, value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise ApiError(400, f"{field} must be a date (YYYY-MM-DD)")


def _int(field: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ApiError(400, f"{field} must be an integer")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if not isinstance(value, int):
        raise ApiError(400, f"{field} must be an integer")
    return value


@dataclass
class Context:
    store: Store
    user_id: int

    def user(self, uid: Any, field: str) -> Record:
        user = self.store.get("user", _int(field, uid))
        if user is None:
            raise ApiError(400, f"{field}: user {uid} does not exist")
        if not user["is_active"]:
            raise ApiError(400, f"{field}: user {uid} is not active")
        return user

    def record(self, kind: str, rid: Any, field: str) -> Record:
        found = self.store.get(kind, _int(field, rid))
        if found is None or found.get("is_deleted"):
            raise ApiError(400, f"{field}: {kind} {rid} does not exist")
        return found

    def custom_fields(self, entity: str) -> dict[str, Record]:
        return {f["name"]: f for f in self.store.all("field") if f["entity"] == entity}


def reference(field: str, value: Any) -> Record:
    selector = REFERENCE_FIELDS[field]
    rid = _int(field, value)
    for row in SELECTORS[selector]:
        if row["id"] == rid:
            return row
    raise ApiError(400, f"{field}: {rid} is not one of the {selector}")


def _emails(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        text = item.get("value") if isinstance(item, dict) else item
        if isinstance(item, dict) and item.get("_destroy"):
            continue
        if not isinstance(text, str) or not EMAIL_RE.match(text.strip()):
            raise ApiError(400, f"Email {text!r} is invalid")
        out.append(text.strip())
    return out


def _value(ctx: Context, kind: str, field: str, rule: str, value: Any) -> Any:
    if value is None:
        return None
    if rule in ("text", "textarea"):
        if not isinstance(value, str):
            raise ApiError(400, f"{field} must be a string")
        if rule == "text" and len(value) > 255:
            raise ApiError(400, f"{field} is too long (maximum is 255 characters)")
        return value
    if rule == "owner":
        return ctx.user(value, field)["id"]
    if rule == "ref":
        return reference(field, value)["id"]
    if rule.startswith("record:"):
        return ctx.record(rule.removeprefix("record:"), value, field)["id"]
    if rule.startswith("ids:"):
        if not isinstance(value, list):
            raise ApiError(400, f"{field} must be a list of ids")
        return [ctx.record(rule.removeprefix("ids:"), v, field)["id"] for v in value]
    if rule == "int":
        return _int(field, value)
    if rule == "money":
        return money(parse_money(field, value))
    if rule == "date":
        return _parse_date(field, value)
    if rule == "datetime":
        parse_datetime(field, value)
        return value
    if rule == "bool":
        if not isinstance(value, bool):
            raise ApiError(400, f"{field} must be true or false")
        return value
    if rule == "tags":
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise ApiError(400, f"{field} must be a list of strings")
        return value
    if rule == "status":
        if value not in (0, 1) or isinstance(value, bool):
            raise ApiError(400, f"{field} must be 0 (open) or 1 (completed)")
        return value
    if rule == "targetable_type":
        if value not in TARGETABLE_KINDS:
            raise ApiError(400, f"{field} must be one of {', '.join(TARGETABLE_KINDS)}")
        return value
    if rule == "targetable_id":
        return _int(field, value)
    if rule == "sales_accounts":
        if not isinstance(value, list) or not all(isinstance(v, dict) and "id" in v for v in value):
            raise ApiError(400, f"{field} must be a list of {{id, is_primary}}")
        return [
            {"id": ctx.record("sales_account", v["id"], field)["id"], "is_primary": bool(v.get("is_primary"))}
            for v in value
        ]
    if rule == "attendees":
        if not isinstance(value, list):
            raise ApiError(400, f"{field} must be a list")
        out = []
        for v in value:
            if not isinstance(v, dict):
                raise ApiError(400, f"{field} items must be objects with attendee_type and attendee_id")
            kind_of = {"FdMultitenant::User": "user", "Contact": "contact"}.get(v.get("attendee_type", ""))
            if kind_of is None:
                raise ApiError(400, "attendee_type must be FdMultitenant::User or Contact")
            if kind_of == "user":
                attendee = ctx.user(v.get("attendee_id"), "attendee_id")["id"]
            else:
                attendee = ctx.record("contact", v.get("attendee_id"), "attendee_id")["id"]
            out.append({"attendee_type": v["attendee_type"], "attendee_id": attendee})
        return out
    raise AssertionError(f"no rule {rule} for {kind}.{field}")


def custom_value(ctx: Context, definition: Record, value: Any) -> Any:
    """One `cf_*` value checked against its definition (also used for custom module fields)."""
    name, ftype = definition["name"], definition["type"]
    if value is None or value == "":
        return None
    choices = [c["value"] for c in definition.get("choices") or []]
    if ftype == "number":
        return float(parse_money(name, value)) if "." in str(value) else int(parse_money(name, value))
    if ftype == "date":
        return _parse_date(name, value)
    if ftype == "checkbox":
        return _value(ctx, "custom", name, "bool", value)
    if ftype == "dropdown":
        if value not in choices:
            raise ApiError(400, f"{name}: {value!r} is not one of the choices {choices}")
        return value
    if ftype == "multi_select_dropdown":
        items = value.split(";") if isinstance(value, str) else value
        if not isinstance(items, list) or any(v not in choices for v in items):
            raise ApiError(400, f"{name}: {value!r} is not a subset of the choices {choices}")
        return ";".join(items)
    if ftype == "lookup":
        return ctx.record(definition["related_kind"], value, name)["id"]
    if ftype == "date_time_split":
        parse_datetime(name, value)
        return value
    return _value(ctx, "custom", name, "textarea" if ftype == "textarea" else "text", value)


def custom_block(ctx: Context, defs: dict[str, Record], given: Any, old: dict[str, Any] | None) -> dict[str, Any]:
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ApiError(400, "custom_field must be an object")
    unknown = sorted(k for k in given if k not in defs)
    if unknown:
        raise ApiError(400, *(f"Unknown custom field {k}" for k in unknown))
    block = {name: (old or {}).get(name) for name in defs}
    for name, value in given.items():
        block[name] = custom_value(ctx, defs[name], value)
    missing = [name for name, d in defs.items() if d.get("required") and block[name] is None]
    if missing:
        raise ApiError(400, *(f"{name} can't be blank" for name in missing))
    return block


def validate(ctx: Context, kind: str, data: Any, old: Record | None) -> Record:
    """The record to store for `data` (create when `old` is None, else a partial update of `old`)."""
    if not isinstance(data, dict):
        raise ApiError(400, f"Request body must hold a {kind} object")
    misplaced = sorted(k for k in data if k.startswith("cf_"))
    if misplaced:
        raise ApiError(400, *(f"{k} must be sent inside custom_field" for k in misplaced))
    rules = STANDARD_FIELDS[kind]
    record: Record = dict(old) if old else {name: None for name in rules}
    data = dict(data)
    if kind == "contact":
        _merge_contact_emails(data, old)
        if "sales_account_id" in data:
            single = data.pop("sales_account_id")
            data.setdefault("sales_accounts", [] if single is None else [{"id": single, "is_primary": True}])
    if kind == "deal" and "contacts_added_list" in data:
        data["contact_ids"] = data.pop("contacts_added_list")
    if kind == "appointment" and "appointment_attendees_attributes" in data:
        data["appointment_attendees"] = data.pop("appointment_attendees_attributes")
    if "_emails" in data:
        record["_emails"] = data.pop("_emails")
    for field, value in data.items():
        if field in rules:
            record[field] = _value(ctx, kind, field, rules[field], value)
    missing = [f for f in REQUIRED.get(kind, ()) if record.get(f) in (None, "")]
    if missing:
        raise ApiError(400, *(f"{f.replace('_', ' ').capitalize()} can't be blank" for f in missing))
    if kind in CUSTOM_FIELD_ENTITY:
        defs = ctx.custom_fields(CUSTOM_FIELD_ENTITY[kind])
        record["custom_field"] = custom_block(ctx, defs, data.get("custom_field"), (old or {}).get("custom_field"))
    _cross_checks(ctx, kind, record, old)
    return record


def _merge_contact_emails(data: dict[str, Any], old: Record | None) -> None:
    """`email` and `emails` describe one list: the primary address first, then the others."""
    if "email" not in data and "emails" not in data:
        return
    email, emails = data.pop("email", None), data.pop("emails", None)
    if emails is not None:
        items = emails if isinstance(emails, list) else [emails]
        # A dict flagged is_primary goes first, as the UI would show it.
        items = sorted(items, key=lambda i: not (isinstance(i, dict) and i.get("is_primary")))
        others = _emails(items) if items else []
    else:
        others = [e["value"] for e in (old or {}).get("emails") or []][1:]
    primary = _emails(email)[0] if email is not None else None
    addresses: list[str] = []
    for address in [primary, *others]:
        if address and address.lower() not in {a.lower() for a in addresses}:
            addresses.append(address)
    data["_emails"] = addresses


def contact_email_keys(record: Record) -> list[str]:
    return [e["value"].lower() for e in record.get("emails") or []]


def contact_mobile_keys(record: Record) -> list[str]:
    """The mobile number's digits: "+1 555-123-4567" and "+15551234567" are one number."""
    digits = NOT_DIGITS.sub("", record.get("mobile_number") or "")
    return [digits] if digits else []


def account_name_keys(record: Record) -> list[str]:
    return [record["name"].strip().lower()] if record.get("name") else []


def _cross_checks(ctx: Context, kind: str, record: Record, old: Record | None) -> None:
    rid = record.get("id")
    if kind == "contact":
        _finish_contact(record, old)
        for key in contact_email_keys(record):
            holder = ctx.store.owner_of("contact", key)
            if holder is not None and holder != rid:
                raise ApiError(400, "Email already exists")
        for key in contact_mobile_keys(record):
            holder = ctx.store.owner_of(CONTACT_MOBILE_INDEX, key)
            if holder is not None and holder != rid:
                raise ApiError(400, "Mobile number already exists")
        status, stage = record.get("contact_status_id"), record.get("lifecycle_stage_id")
        if (
            status is not None
            and stage is not None
            and reference("contact_status_id", status)["lifecycle_stage_id"] != stage
        ):
            raise ApiError(400, "contact_status_id does not belong to lifecycle_stage_id")
    elif kind == "sales_account":
        for key in account_name_keys(record):
            holder = ctx.store.owner_of("sales_account", key)
            if holder is not None and holder != rid:
                raise ApiError(400, "Name has already been taken")
        if rid is not None and record.get("parent_sales_account_id") == rid:
            raise ApiError(400, "parent_sales_account_id cannot be the account itself")
    elif kind == "deal":
        _finish_deal(record)
    elif kind in ("task", "appointment", "sales_activity", "note"):
        _check_target(ctx, record)
        start, end = {"appointment": ("from_date", "end_date"), "sales_activity": ("start_date", "end_date")}.get(
            kind, (None, None)
        )
        if (
            start
            and record.get(start)
            and record.get(end)
            and parse_datetime(end, record[end]) < parse_datetime(start, record[start])
        ):
            raise ApiError(400, f"{end} must not be before {start}")
    if "owner_id" in STANDARD_FIELDS[kind] and record.get("owner_id") is None and kind != "note":
        record["owner_id"] = ctx.user_id
    if kind == "task" and record.get("status") is None:
        record["status"] = 0


def _finish_contact(record: Record, old: Record | None) -> None:
    addresses = record.pop("_emails", None)
    if addresses is None:
        addresses = [e["value"] for e in record.get("emails") or []]
    record["emails"] = [{"value": a, "is_primary": i == 0, "label": None} for i, a in enumerate(addresses)]
    record["email"] = addresses[0] if addresses else None
    record["sales_accounts"] = record.get("sales_accounts") or []
    if record["sales_accounts"] and not any(a["is_primary"] for a in record["sales_accounts"]):
        record["sales_accounts"][0]["is_primary"] = True
    names = [record.get("first_name"), record.get("last_name")]
    record["display_name"] = " ".join(n for n in names if n) or record["email"]


def _finish_deal(record: Record) -> None:
    pipeline = record.get("deal_pipeline_id")
    stage = record.get("deal_stage_id")
    if stage is not None:
        stage_row = reference("deal_stage_id", stage)
        if pipeline is not None and stage_row["deal_pipeline_id"] != pipeline:
            raise ApiError(400, "deal_stage_id does not belong to deal_pipeline_id")
        record["deal_pipeline_id"] = stage_row["deal_pipeline_id"]
    else:
        default = next(p for p in SELECTORS["deal_pipelines"] if p["is_default"])
        record["deal_pipeline_id"] = pipeline or default["id"]
        record["deal_stage_id"] = next(
            s["id"] for s in SELECTORS["deal_stages"] if s["deal_pipeline_id"] == record["deal_pipeline_id"]
        )
    record["contact_ids"] = record.get("contact_ids") or []
    if record.get("currency_id") is None:
        record["currency_id"] = next(c["id"] for c in SELECTORS["currencies"] if c["is_default"])


def _check_target(ctx: Context, record: Record) -> None:
    ttype, tid = record.get("targetable_type"), record.get("targetable_id")
    if (ttype is None) != (tid is None):
        raise ApiError(400, "targetable_type and targetable_id go together")
    if ttype is not None:
        ctx.record(TARGETABLE_KINDS[ttype], tid, "targetable_id")


def forecast_type(record: Record) -> str:
    return str(reference("deal_stage_id", record["deal_stage_id"])["forecast_type"])
