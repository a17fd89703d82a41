"""Custom modules and their fields, ensured through the API; custom fields on standard entities, verified.

Freshsales lets the tool create custom modules and module fields (contacts, accounts and deals need an
admin, see mapping/checklist.py), so `ensure_custom_modules` creates what is missing and keeps what is
there. A module field is named by Freshsales from its label (`cf_<snake of label>`), which is why a
spec's name must follow from its label: otherwise the field would be created under another name and the
loader would fill a field that does not exist.

Every module gets two fields the loader relies on: `cf_source_key` (text, the idempotency key) and
`cf_contact` (a lookup to contacts holding the contact's Freshsales id: the record → patient link).
Errors and results carry module names, field names and types only, never record values.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.freshsales.client import FreshsalesClient
from clinic_pipeline.freshsales.errors import OutcomeUnknownError
from clinic_pipeline.freshsales.models import FieldDefinition, ModuleCustomization
from clinic_pipeline.mapping.checklist import CustomFieldSpec
from clinic_pipeline.model.objects import ADMIN_FIELD_ENTITIES, SOURCE_KEY_FIELD

logger = logging.getLogger(__name__)

FieldType = Literal[
    "text", "textarea", "number", "date", "datetime", "dropdown", "multi_select_dropdown", "checkbox", "lookup"
]
# The plan's types (and Freshsales' own) → the Freshsales field types that can hold them. A text value fits
# a textarea as well; everything else must match exactly or values would be refused or silently coerced.
COMPATIBLE_TYPES: dict[str, frozenset[str]] = {
    "text": frozenset({"text", "textarea"}),
    "textarea": frozenset({"textarea", "text"}),
    "email": frozenset({"text", "textarea"}),
    "phone": frozenset({"text", "textarea"}),
    "url": frozenset({"text", "textarea"}),
    "number": frozenset({"number"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date_time_split"}),
    "date_time_split": frozenset({"date_time_split"}),
    "dropdown": frozenset({"dropdown"}),
    "multi_select_dropdown": frozenset({"multi_select_dropdown"}),
    "checkbox": frozenset({"checkbox"}),
    "lookup": frozenset({"lookup"}),
    "auto_complete": frozenset({"auto_complete"}),
}
_CREATE_TYPE = {"datetime": "date_time_split"}
_FROM_FRESHSALES_TYPE = {v: k for k, v in _CREATE_TYPE.items()}
_FIELD_NAME = re.compile(r"cf_[a-z0-9_]+")


class SchemaError(OperatorError):
    """Freshsales holds a field the migration needs with another type (names and types only)."""


def snake(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


def module_entity(module: str) -> str:
    """`insurance_plan` → `cm_insurance_plan`, the name Freshsales gives the module."""
    return module if module.startswith("cm_") else f"cm_{snake(module)}"


class ModuleFieldSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    label: str
    type: FieldType
    choices: list[str] = Field(default_factory=list)
    lookup_to: str | None = "contact"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not _FIELD_NAME.fullmatch(self.name):
            raise ValueError(f"module field name {self.name!r} must look like cf_<lowercase_snake>")
        if self.name != "cf_" + snake(self.label):
            raise ValueError(f"{self.name}: Freshsales names a module field from its label; use a label giving it")
        if self.type in ("dropdown", "multi_select_dropdown") and not self.choices:
            raise ValueError(f"{self.name}: a {self.type} field needs choices")
        if self.type == "lookup" and not self.lookup_to:
            raise ValueError(f"{self.name}: a lookup field needs lookup_to")
        return self

    @property
    def freshsales_type(self) -> str:
        return _CREATE_TYPE.get(self.type, self.type)

    @property
    def shape(self) -> str:
        """The type as errors report it: `lookup→contact` for lookups."""
        return f"lookup→{self.lookup_to}" if self.type == "lookup" else self.freshsales_type


SOURCE_KEY_SPEC = ModuleFieldSpec(name=SOURCE_KEY_FIELD, label="Source key", type="text")
CONTACT_LINK_FIELD = ModuleFieldSpec(name="cf_contact", label="Contact", type="lookup", lookup_to="contact")
# Created only for modules whose plan links a payer or organization (`lookup:sales_account`).
ACCOUNT_LINK_FIELD = ModuleFieldSpec(
    name="cf_sales_account", label="Sales account", type="lookup", lookup_to="sales_account"
)
BUILT_IN_FIELDS = (SOURCE_KEY_SPEC, CONTACT_LINK_FIELD)


class ModuleOutcome(BaseModel):
    module: str  # cm_<name>
    module_created: bool
    fields_created: list[str]
    fields_present: list[str]


class ModulesResult(BaseModel):
    modules: list[ModuleOutcome]

    @property
    def modules_created(self) -> list[str]:
        return [m.module for m in self.modules if m.module_created]

    @property
    def fields_created(self) -> list[str]:
        return [f"{m.module}.{f}" for m in self.modules for f in m.fields_created]

    @property
    def fields_present(self) -> list[str]:
        return [f"{m.module}.{f}" for m in self.modules for f in m.fields_present]


def module_specs(fields: Mapping[str, Sequence[CustomFieldSpec]]) -> dict[str, list[ModuleFieldSpec]]:
    """The plan's module fields (`mapping.checklist.module_custom_fields`) as specs to ensure. The loader's
    own fields are left to `ensure_custom_modules`, which always adds them with the shape it needs (the
    plan lists the contact link as a plain field); the account link, where a plan has one, takes its
    lookup shape."""
    built_in = {f.name for f in BUILT_IN_FIELDS}
    return {
        module: [
            ACCOUNT_LINK_FIELD
            if f.name == ACCOUNT_LINK_FIELD.name
            else ModuleFieldSpec.model_validate(
                {
                    "name": f.name,
                    "label": f.label,
                    "type": _FROM_FRESHSALES_TYPE.get(f.type, f.type),
                    "choices": f.choices,
                }
            )
            for f in specs
            if f.name not in built_in
        ]
        for module, specs in fields.items()
    }


def _actual_shape(definition: FieldDefinition) -> str:
    if definition.type == "lookup":
        related = (definition.model_extra or {}).get("related_entity")
        return f"lookup→{related}"
    return definition.type or "unknown"


def _matches(spec: ModuleFieldSpec, definition: FieldDefinition) -> bool:
    if spec.type == "lookup":
        return _actual_shape(definition) == spec.shape
    return (definition.type or "") in COMPATIBLE_TYPES[spec.type]


def _field_specs(module: str, given: Sequence[ModuleFieldSpec]) -> list[ModuleFieldSpec]:
    """The caller's fields plus the built-in ones; a caller's spec of a built-in name must agree with it."""
    by_name = {s.name: s for s in BUILT_IN_FIELDS}
    for spec in given:
        known = by_name.get(spec.name)
        if known is not None and known.shape != spec.shape:
            raise SchemaError(f"{module}.{spec.name}: the loader needs it as {known.shape}, not {spec.shape}")
        by_name.setdefault(spec.name, spec)
    return list(by_name.values())


_T = TypeVar("_T")


def _create_or_find(create: Callable[[], _T], find: Callable[[], _T | None]) -> _T:
    """Create once; when the answer was lost, the re-read decides whether it landed before trying again."""
    try:
        return create()
    except OutcomeUnknownError:
        found = find()
        return found if found is not None else create()


def _module_in(listing: Sequence[ModuleCustomization], entity: str) -> ModuleCustomization | None:
    return next(
        (
            m
            for m in listing
            if entity in (m.name, m.entity_name) or (m.singular_name and module_entity(m.singular_name) == entity)
        ),
        None,
    )


def _find_module(client: FreshsalesClient, entity: str) -> ModuleCustomization | None:
    return _module_in(client.module_customizations(), entity)


def _ensure_module(
    client: FreshsalesClient, listing: Sequence[ModuleCustomization], module: str
) -> tuple[ModuleCustomization, bool]:
    entity = module_entity(module)
    existing = _module_in(listing, entity)
    if existing is not None:
        return existing, False
    singular = entity.removeprefix("cm_").replace("_", " ").title()
    created = _create_or_find(
        lambda: client.create_module(singular, singular + "s", description="Created by clinic_pipeline"),
        lambda: _find_module(client, entity),
    )
    logger.info("custom module %s created (id %d)", entity, created.id)
    return created, True


def _create_field(client: FreshsalesClient, entity: str, form_id: int, spec: ModuleFieldSpec) -> FieldDefinition:
    return client.create_module_field(
        entity,
        form_id,
        spec.label,
        spec.freshsales_type,
        choices=spec.choices or None,
        related_entity=spec.lookup_to if spec.type == "lookup" else None,
    )


def _reread_field(client: FreshsalesClient, entity: str, name: str) -> FieldDefinition | None:
    return next((d for d in client.field_definitions(entity) if d.name == name), None)


def _ensure_fields(
    client: FreshsalesClient, entity: str, form_id: int, specs: Sequence[ModuleFieldSpec]
) -> tuple[list[str], list[str], list[str]]:
    """(created, present, conflicts) for one module's fields."""
    present = {d.name: d for d in client.field_definitions(entity)}
    created: list[str] = []
    kept: list[str] = []
    conflicts: list[str] = []
    for spec in specs:
        definition = present.get(spec.name)
        if definition is not None:
            if _matches(spec, definition):
                kept.append(spec.name)
            else:
                conflicts.append(f"{entity}.{spec.name}: expected {spec.shape}, found {_actual_shape(definition)}")
            continue

        made = _create_or_find(
            partial(_create_field, client, entity, form_id, spec), partial(_reread_field, client, entity, spec.name)
        )
        if made.name != spec.name:
            conflicts.append(f"{entity}.{spec.name}: Freshsales named it {made.name}")
        created.append(spec.name)
    return created, kept, conflicts


def ensure_custom_modules(client: FreshsalesClient, modules: Mapping[str, Sequence[ModuleFieldSpec]]) -> ModulesResult:
    """Create every missing module (`insurance_plan` → `cm_insurance_plan`) and every missing field.

    Present fields of the right type are kept; any of another type raises SchemaError listing
    module/field/expected/found for all of them, after the missing ones were created. Idempotent.
    """
    outcomes: list[ModuleOutcome] = []
    conflicts: list[str] = []
    specs_of = {module: _field_specs(module, given) for module, given in modules.items()}
    listing = client.module_customizations() if specs_of else []
    for module, specs in specs_of.items():
        customization, module_created = _ensure_module(client, listing, module)
        if not customization.forms:
            raise SchemaError(f"{module_entity(module)}: Freshsales lists the module without a form to add fields to")
        entity = customization.name or customization.entity_name or module_entity(module)
        created, kept, wrong = _ensure_fields(client, entity, customization.forms[0].id, specs)
        conflicts += wrong
        outcomes.append(
            ModuleOutcome(module=entity, module_created=module_created, fields_created=created, fields_present=kept)
        )
        logger.info("custom module %s: %d fields created, %d present", entity, len(created), len(kept))
    if conflicts:
        raise SchemaError("custom module fields in conflict with the plan: " + "; ".join(conflicts))
    return ModulesResult(modules=outcomes)


def verify_custom_fields(client: FreshsalesClient, required: Mapping[str, Sequence[tuple[str, str]]]) -> list[str]:
    """Entity (`contacts`, `sales_accounts`, `deals`) → (field name, type) the migration fills; returns one
    line per field that is missing or of an incompatible type (empty: all there). Types are the plan's
    (`datetime`, `email`…) or Freshsales' own (`date_time_split`, `textarea`…)."""
    problems: list[str] = []
    for entity, fields in required.items():
        if entity not in ADMIN_FIELD_ENTITIES:
            raise ValueError(f"{entity}: custom fields are verified on {', '.join(sorted(ADMIN_FIELD_ENTITIES))}")
        if not fields:
            continue
        present = {d.name: d.type or "unknown" for d in client.field_definitions(entity)}
        for name, wanted in fields:
            actual = present.get(name)
            accepted = COMPATIBLE_TYPES.get(wanted, frozenset({wanted}))
            if actual is None:
                problems.append(f"{entity}.{name}: missing (expected {wanted})")
            elif actual not in accepted:
                problems.append(f"{entity}.{name}: type {actual}, expected {wanted}")
    return problems
