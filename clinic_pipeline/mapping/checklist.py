"""What the Freshsales admin must create before any record moves, and the check that it exists.

Custom fields on contacts, accounts and deals cannot be created through the public API: the admin
creates them in the UI from this checklist, and `load.modules.verify_custom_fields` reads the definitions
back before any record moves.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pydantic import BaseModel

from clinic_pipeline.mapping.plan import MappingPlan
from clinic_pipeline.model.objects import ADMIN_FIELD_ENTITIES, BY_TARGET, POLICY_FIELDS, STAGED_OBJECTS

# Plan field types → the Freshsales field type the admin picks.
FRESHSALES_FIELD_TYPE = {
    "text": "text",
    "email": "text",
    "phone": "text",
    "url": "text",
    "number": "number",
    "date": "date",
    "datetime": "text",
    "dropdown": "dropdown",
    "checkbox": "checkbox",
}


class CustomFieldSpec(BaseModel):
    entity: str  # Freshsales path segment: contacts, sales_accounts, deals, custom_module/cm_<name>
    name: str  # cf_<snake>
    label: str
    type: str
    choices: list[str] = []


def plan_custom_fields(plan: MappingPlan) -> list[CustomFieldSpec]:
    """Every custom field the confirmed plan fills, on any entity (custom modules included)."""
    specs: dict[tuple[str, str], CustomFieldSpec] = {}
    for obj in STAGED_OBJECTS:
        derived = any(f.transform == f"lookup:{obj.target}" for o in plan.objects for f in o.fields)
        if obj.key_field.startswith("cf_") and (plan.objects_for(obj.target) or derived):
            specs[(obj.entity, obj.key_field)] = CustomFieldSpec(
                entity=obj.entity, name=obj.key_field, label="Source key", type="text"
            )
    for mapping in plan.objects:
        obj = BY_TARGET.get(mapping.target)
        if obj is None:
            continue
        for field in mapping.mapped_fields():
            # A link to the contact (`cf_contact` on module records) is the tool's own field, not the plan's;
            # the link to an account (`cf_sales_account`) is created with the module where a plan needs it.
            account_link = obj.module is not None and field.target == "cf_sales_account"
            if field.target and field.target.startswith("cf_") and (field.type != "lookup" or account_link):
                specs[(obj.entity, field.target)] = CustomFieldSpec(
                    entity=obj.entity,
                    name=field.target,
                    label=field.target.removeprefix("cf_").replace("_", " ").capitalize(),
                    type=FRESHSALES_FIELD_TYPE.get(field.type, "text"),
                    choices=field.choices,
                )
    if plan.objects_for("contact"):
        for name, ftype, label in POLICY_FIELDS:
            specs[("contacts", name)] = CustomFieldSpec(entity="contacts", name=name, label=label, type=ftype)
    return sorted(specs.values(), key=lambda s: (s.entity, s.name))


def required_custom_fields(plan: MappingPlan) -> list[CustomFieldSpec]:
    """The fields the admin must create: contacts, accounts and deals (the checklist)."""
    return [s for s in plan_custom_fields(plan) if s.entity in ADMIN_FIELD_ENTITIES]


def module_custom_fields(plan: MappingPlan) -> dict[str, list[CustomFieldSpec]]:
    """Custom module name → the fields the tool creates through the API."""
    modules: dict[str, list[CustomFieldSpec]] = {}
    for spec in plan_custom_fields(plan):
        if spec.entity.startswith("custom_module/cm_"):
            modules.setdefault(spec.entity.removeprefix("custom_module/cm_"), []).append(spec)
    return modules


def write_checklist(specs: list[CustomFieldSpec], md_path: Path, csv_path: Path) -> None:
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CustomFieldSpec.model_fields))
        writer.writeheader()
        writer.writerows({**s.model_dump(), "choices": ";".join(s.choices)} for s in specs)
    lines = [
        "# Custom fields to create in Freshsales before the migration",
        "",
        "Admin settings → the module's fields → add each field below with exactly this name and type.",
        "",
        "| module | field name | label | type | choices |",
        "|---|---|---|---|---|",
        *(f"| {s.entity} | `{s.name}` | {s.label} | {s.type} | {', '.join(s.choices)} |" for s in specs),
    ]
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
