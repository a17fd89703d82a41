"""Schema: field definitions (standard + `cf_*`), admin-created custom fields, custom modules and their fields.

Custom module names are `cm_<snake of singular_name>`; each module has one form whose id the
`/settings/<cm_name>/forms/<form_id>/fields` call must name. Module fields are named
`cf_<snake of label>`; a `lookup` field needs `related_entity` (contact, sales_account, deal or a
`cm_*` name) and holds that record's id.
"""

from __future__ import annotations

import re
from typing import Any

from clinic_pipeline.sandbox.entities import (
    CUSTOM_FIELD_ENTITY,
    CUSTOM_FIELD_TYPES,
    STANDARD_FIELDS,
    Context,
    custom_block,
)
from clinic_pipeline.sandbox.errors import ApiError, not_found
from clinic_pipeline.sandbox.seed import REFERENCE_FIELDS, SELECTORS
from clinic_pipeline.sandbox.store import Record, Store

ENTITY_KIND = {plural: kind for kind, plural in CUSTOM_FIELD_ENTITY.items()}
STANDARD_MODULES = [
    ("Contact", "Contacts", "contacts"),
    ("Account", "Accounts", "sales_accounts"),
    ("Deal", "Deals", "deals"),
]
LOOKUP_TARGETS = frozenset({"contact", "sales_account", "deal"})
_RULE_TYPES = {
    "textarea": "textarea",
    "int": "number",
    "money": "number",
    "date": "date",
    "datetime": "date_time_split",
    "bool": "checkbox",
    "tags": "multi_select_dropdown",
    "owner": "dropdown",
    "ref": "dropdown",
}


def snake(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


def _choices(store: Store, rule: str, name: str) -> list[dict[str, Any]]:
    if rule == "owner":
        rows = [{"id": u["id"], "value": u["display_name"]} for u in store.all("user")]
    elif rule == "ref":
        rows = [
            {"id": r["id"], "value": r.get("name") or r.get("currency_code")} for r in SELECTORS[REFERENCE_FIELDS[name]]
        ]
    else:
        return []
    return [{**row, "position": i + 1} for i, row in enumerate(rows)]


def field_definitions(store: Store, entity: str) -> list[Record]:
    """`GET /settings/<entity>/fields`: standard fields first, then custom ones."""
    module = module_by_name(store, entity) if entity.startswith("cm_") else None
    if entity not in ENTITY_KIND and module is None:
        raise not_found("Module")
    if module is not None:
        standard = [
            {
                "id": module["id"] + 1,
                "name": "name",
                "label": "Name",
                "type": "text",
                "required": True,
                "default": True,
                "choices": [],
            }
        ]
    else:
        standard = [
            {
                "id": 16_100_000_000 + i,
                "name": name,
                "label": name.replace("_", " ").capitalize(),
                "type": _RULE_TYPES.get(rule, "text"),
                "required": False,
                "default": True,
                "choices": _choices(store, rule, name),
            }
            for i, (name, rule) in enumerate(STANDARD_FIELDS[ENTITY_KIND[entity]].items())
        ]
    custom = sorted((f for f in store.all("field") if f["entity"] == entity), key=lambda f: f["id"])
    return standard + [public_field(f) for f in custom]


def public_field(definition: Record) -> Record:
    return {k: v for k, v in definition.items() if k not in ("entity", "related_kind")} | {"default": False}


def _choice_rows(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ApiError(400, "choices must be a list")
    values = [c.get("value") if isinstance(c, dict) else c for c in raw]
    if not all(isinstance(v, str) and v for v in values):
        raise ApiError(400, "each choice needs a non-empty value")
    return [{"id": i + 1, "value": v, "position": i + 1} for i, v in enumerate(values)]


def add_field(store: Store, entity: str, spec: Any, *, name_from_label: bool) -> Record:
    """Define a `cf_*` field on `entity`; 409 if the name exists."""
    if not isinstance(spec, dict):
        raise ApiError(400, "field definition must be an object")
    label = spec.get("label")
    if not isinstance(label, str) or not label.strip():
        raise ApiError(400, "label is required")
    name = "cf_" + snake(label) if name_from_label else spec.get("name") or "cf_" + snake(label)
    if not isinstance(name, str) or not re.fullmatch(r"cf_[a-z0-9_]+", name):
        raise ApiError(400, f"field name {name!r} must look like cf_<lowercase_snake>")
    ftype = spec.get("type") or spec.get("field_type")
    if ftype not in CUSTOM_FIELD_TYPES:
        raise ApiError(400, f"field type {ftype!r} must be one of {', '.join(sorted(CUSTOM_FIELD_TYPES))}")
    choices = _choice_rows(spec.get("choices"))
    if ftype in ("dropdown", "multi_select_dropdown") and not choices:
        raise ApiError(400, f"a {ftype} field needs choices")
    related = spec.get("related_entity")
    if ftype == "lookup" and related not in LOOKUP_TARGETS and module_by_name(store, str(related)) is None:
        raise ApiError(400, "a lookup field needs related_entity: contact, sales_account, deal or a cm_* module")
    if any(f["entity"] == entity and f["name"] == name for f in store.all("field")):
        raise ApiError(409, f"Field {name} already exists on {entity}")
    definition = {
        "id": store.next_id(),
        "entity": entity,
        "name": name,
        "label": label.strip(),
        "type": ftype,
        "required": bool(spec.get("required", False)),
        "choices": choices,
    }
    if ftype == "lookup":
        definition["related_entity"] = definition["related_kind"] = related
    return store.put("field", definition)


def modules(store: Store) -> list[Record]:
    return sorted(store.all("module"), key=lambda m: m["id"])


def module_by_name(store: Store, name: str) -> Record | None:
    return next((m for m in store.all("module") if m["name"] == name), None)


def require_module(store: Store, name: str) -> Record:
    module = module_by_name(store, name)
    if module is None:
        raise not_found("Custom module")
    return module


def module_listing(store: Store) -> list[Record]:
    standard = [
        {
            "id": 16_200_000_001 + i,
            "singular_name": s,
            "plural_name": p,
            "name": n,
            "entity_name": n,
            "is_custom": False,
            "forms": [],
        }
        for i, (s, p, n) in enumerate(STANDARD_MODULES)
    ]
    return standard + modules(store)


def create_module(store: Store, body: Any) -> Record:
    spec = body.get("module_customization") if isinstance(body, dict) else None
    if not isinstance(spec, dict):
        raise ApiError(400, "Request body must hold a module_customization object")
    singular, plural = spec.get("singular_name"), spec.get("plural_name")
    if not isinstance(singular, str) or not singular.strip() or not isinstance(plural, str) or not plural.strip():
        raise ApiError(400, "singular_name and plural_name are required")
    name = "cm_" + snake(singular)
    if module_by_name(store, name) is not None:
        raise ApiError(400, f"Module {singular} already exists")
    mid = store.next_id()
    module = {
        "id": mid,
        "singular_name": singular.strip(),
        "plural_name": plural.strip(),
        "name": name,
        "entity_name": name,
        "is_custom": True,
        "description": spec.get("description"),
        "forms": [{"id": mid + 1_000_000, "name": "DefaultForm"}],
        "filters": [
            {"id": mid + 2_000_000 + i, "name": view, "model_class_name": name, "is_default": i == 0, "is_public": True}
            for i, view in enumerate([f"All {plural.strip()}", f"My {plural.strip()}", "Recycle Bin"])
        ],
    }
    return store.put("module", module)


def add_module_field(store: Store, entity: str, form_id: int, body: Any) -> Record:
    module = module_by_name(store, entity)
    if module is None or all(f["id"] != form_id for f in module["forms"]):
        # Standard modules' forms are not reachable: their custom fields are made in the admin UI.
        raise not_found("Form")
    spec = body.get("field", body) if isinstance(body, dict) else body
    return add_field(store, entity, spec, name_from_label=True)


def validate_module_record(ctx: Context, kind: str, data: Any, old: Record | None) -> Record:
    if not isinstance(data, dict):
        raise ApiError(400, f"Request body must hold a {kind} object")
    misplaced = sorted(k for k in data if k.startswith("cf_"))
    if misplaced:
        raise ApiError(400, *(f"{k} must be sent inside custom_field" for k in misplaced))
    record: Record = dict(old) if old else {"name": None, "owner_id": None}
    if "name" in data:
        if not isinstance(data["name"], str):
            raise ApiError(400, "name must be a string")
        record["name"] = data["name"]
    if not record.get("name"):
        raise ApiError(400, "Name can't be blank")
    if data.get("owner_id") is not None:
        record["owner_id"] = ctx.user(data["owner_id"], "owner_id")["id"]
    record["owner_id"] = record["owner_id"] or ctx.user_id
    defs = ctx.custom_fields(kind)
    record["custom_field"] = custom_block(ctx, defs, data.get("custom_field"), (old or {}).get("custom_field"))
    return record
