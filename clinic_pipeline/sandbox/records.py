"""Record lifecycle shared by every entity: create, update, recycle bin, forget, upsert, side-loads."""

from __future__ import annotations

from typing import Any

from clinic_pipeline.sandbox import alterations
from clinic_pipeline.sandbox.entities import Context, now_iso, validate
from clinic_pipeline.sandbox.errors import ApiError, not_found
from clinic_pipeline.sandbox.modules import validate_module_record
from clinic_pipeline.sandbox.seed import SELECTORS
from clinic_pipeline.sandbox.store import Record

# Which identifiers `upsert` accepts per entity; anything else (external_id, cf_*) is refused.
UPSERT_IDENTIFIERS = {"contact": ("emails", "id"), "sales_account": ("name", "id"), "deal": ("id",)}


def _validate(ctx: Context, kind: str, data: Any, old: Record | None) -> Record:
    if kind.startswith("cm_"):
        return validate_module_record(ctx, kind, data, old)
    return validate(ctx, kind, data, old)


def create(ctx: Context, kind: str, data: Any) -> Record:
    record = _validate(ctx, kind, data, None)
    stamp = now_iso()
    record.update(id=ctx.store.next_id(), created_at=stamp, updated_at=stamp, is_deleted=False)
    if "creater_id" not in record:
        record["creater_id"] = ctx.user_id
    return ctx.store.put(kind, alterations.apply(ctx.store, kind, record))


def fetch(ctx: Context, kind: str, rid: int) -> Record:
    record = ctx.store.get(kind, rid)
    if record is None:
        raise not_found(kind.replace("_", " ").capitalize())
    return record


def update(ctx: Context, kind: str, rid: int, data: Any) -> Record:
    old = fetch(ctx, kind, rid)
    record = _validate(ctx, kind, data, old)
    record["updated_at"] = now_iso()
    return ctx.store.put(kind, alterations.apply(ctx.store, kind, record))


def soft_delete(ctx: Context, kind: str, rid: int) -> None:
    record = fetch(ctx, kind, rid)
    if record.get("is_deleted"):
        raise not_found(kind.replace("_", " ").capitalize())
    ctx.store.put(kind, {**record, "is_deleted": True, "updated_at": now_iso()})


def forget(ctx: Context, kind: str, rid: int) -> None:
    fetch(ctx, kind, rid)
    ctx.store.remove(kind, rid)


def resolve_identifier(ctx: Context, kind: str, identifier: Any) -> tuple[Record | None, str, Any]:
    """(existing record or None, identifier name, value) for an upsert's `unique_identifier`."""
    allowed = UPSERT_IDENTIFIERS[kind]
    if not isinstance(identifier, dict) or len(identifier) != 1:
        raise ApiError(400, f"unique_identifier must hold exactly one of: {', '.join(allowed)}")
    ((name, value),) = identifier.items()
    if name not in allowed:
        raise ApiError(400, f"{name} cannot be used as unique_identifier here: use one of {', '.join(allowed)}")
    if name == "id":
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
            raise ApiError(400, "unique_identifier id must be an integer")
        return fetch(ctx, kind, int(value)), name, value
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"unique_identifier {name} must be a non-empty string")
    holder = ctx.store.owner_of(kind, value.strip().lower())
    existing = ctx.store.get(kind, holder) if holder is not None else None
    if existing is not None and existing.get("is_deleted"):
        raise ApiError(400, f"{name} {value} belongs to {kind} {existing['id']}, which is in the Recycle Bin")
    return existing, name, value


def upsert(ctx: Context, kind: str, identifier: Any, data: Any) -> tuple[Record, bool]:
    """(record, created?)."""
    existing, name, value = resolve_identifier(ctx, kind, identifier)
    if not isinstance(data, dict):
        raise ApiError(400, f"Request body must hold a {kind} object")
    if existing is not None:
        return update(ctx, kind, existing["id"], data), False
    data = dict(data)
    if name == "emails" and "email" not in data and "emails" not in data:
        data["email"] = value
    if name == "name":
        data.setdefault("name", value)
    return create(ctx, kind, data), True


def side_loads(ctx: Context, kind: str, record: Record, include: str | None) -> dict[str, list[Record]]:
    """`?include=` answers: related records at the root of the response, as Freshsales side-loads them.

    Modelled: sales_accounts/sales_account, owner, creater, contacts, notes, tasks, appointments,
    deal_stage, deal_pipeline, territory.
    """
    out: dict[str, list[Record]] = {}
    for name in filter(None, (include or "").split(",")):
        name = name.strip()
        if name in ("sales_accounts", "sales_account"):
            ids = [a["id"] for a in record.get("sales_accounts") or []]
            if record.get("sales_account_id"):
                ids.append(record["sales_account_id"])
            out["sales_accounts"] = [r for i in ids if (r := ctx.store.get("sales_account", i))]
        elif name in ("owner", "creater"):
            user = ctx.store.get("user", record.get(f"{name}_id") or 0)
            out.setdefault("users", []).extend([user] if user else [])
        elif name == "contacts":
            out["contacts"] = [r for i in record.get("contact_ids") or [] if (r := ctx.store.get("contact", i))]
        elif name in ("notes", "tasks", "appointments"):
            target = {"contact": "Contact", "sales_account": "SalesAccount", "deal": "Deal"}.get(kind)
            out[name] = [
                r
                for r in ctx.store.all(name[:-1])
                if r.get("targetable_type") == target and r.get("targetable_id") == record["id"]
            ]
        elif name in ("deal_stage", "deal_pipeline", "territory"):
            selector = {"deal_stage": "deal_stages", "deal_pipeline": "deal_pipelines", "territory": "territories"}
            value = record.get(f"{name}_id")
            out[selector[name]] = [r for r in SELECTORS[selector[name]] if r["id"] == value]
    # Other includes Freshsales knows (source, campaign, ...) are not modelled here and answer nothing.
    return out
