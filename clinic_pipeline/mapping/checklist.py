"""What the Freshsales admin must create before any record moves, and the check that it exists.

Custom fields on contacts, accounts and deals cannot be created through the public API: the admin
creates them in the UI from this checklist, and `missing_custom_fields` reads the definitions back.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pydantic import BaseModel

from clinic_pipeline.mapping.plan import MappingPlan
from clinic_pipeline.staging.objects import BY_TARGET, STAGED_OBJECTS

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
    entity: str  # Freshsales path segment: contacts, sales_accounts, deals
    name: str  # cf_<snake>
    label: str
    type: str


def required_custom_fields(plan: MappingPlan) -> list[CustomFieldSpec]:
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
            if field.target and field.target.startswith("cf_"):
                specs[(obj.entity, field.target)] = CustomFieldSpec(
                    entity=obj.entity,
                    name=field.target,
                    label=field.target.removeprefix("cf_").replace("_", " ").capitalize(),
                    type=FRESHSALES_FIELD_TYPE.get(field.type, "text"),
                )
    return sorted(specs.values(), key=lambda s: (s.entity, s.name))


def write_checklist(specs: list[CustomFieldSpec], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "custom_field_checklist.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CustomFieldSpec.model_fields))
        writer.writeheader()
        writer.writerows(s.model_dump() for s in specs)
    md_path = out_dir / "custom_field_checklist.md"
    lines = [
        "# Custom fields to create in Freshsales before the migration",
        "",
        "Admin settings → the module's fields → add each field below with exactly this name and type.",
        "",
        "| module | field name | label | type |",
        "|---|---|---|---|",
        *(f"| {s.entity} | `{s.name}` | {s.label} | {s.type} |" for s in specs),
    ]
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return md_path, csv_path


def missing_custom_fields(required: list[CustomFieldSpec], present: dict[str, set[str]]) -> list[CustomFieldSpec]:
    """`present`: entity → the custom field names its definitions hold."""
    return [s for s in required if s.name not in present.get(s.entity, set())]
