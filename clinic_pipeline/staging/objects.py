"""The staged objects: asset/file name ↔ the plan's Freshsales target, in load order.

Each object is one `staged_<name>` Parquet file and one `loaded_<name>` asset. Rows carry
`_source_key` (namespaced `<source table>:<key>`, or `<table>.<column>:<value>` for parents derived
from a column), `_source_table`, `_source_row`, one `_lookup_<target>` column per parent (the parent's
source key, resolved to a Freshsales id at load time), optionally `_owner_email` (resolved through the
owner map at load time), then payload columns named by their Freshsales field; `cf_*` columns travel
in the record's `custom_field`.

How a record carries its source key into Freshsales (`key_field`): contacts in `external_id`,
accounts, deals and custom module records in `cf_source_key`. Appointments, tasks and notes have no
custom fields, so their key travels as a marker line at the end of their description
(`[source <sha256(key)[:16]>]`, a hash: no PHI); files record their checksum instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from clinic_pipeline.mapping.catalog import CUSTOM_MODULES

SOURCE_KEY_FIELD = "cf_source_key"
DESCRIPTION_MARKER = "description"
# A staged `_choice_<field>` column holds the name of a Freshsales reference row (an appointment's outcome),
# resolved to its id at load.
CHOICE_PREFIX = "_choice_"


@dataclass(frozen=True)
class StagedObject:
    name: str  # file stem and asset suffix: staged_<name>, loaded_<name>
    target: str  # the plan's target for it
    entity: str  # Freshsales path segment under /api
    key_field: str  # where the source key travels (see the module docstring)
    parents: tuple[str, ...] = ()  # staged objects this one links to by Freshsales id
    bulk: bool = False  # Freshsales has bulk_upsert for it (≤ 100 records a call)
    targetable: bool = False  # linked to its contact by targetable_type/targetable_id

    @property
    def module(self) -> str | None:
        """The custom module name (`treatment_plan`) for `custom_module:<name>` targets."""
        return self.target.partition(":")[2] or None


ACCOUNTS = StagedObject("accounts", "sales_account", "sales_accounts", SOURCE_KEY_FIELD, bulk=True)
CONTACTS = StagedObject("contacts", "contact", "contacts", "external_id", parents=("accounts",), bulk=True)
DEALS = StagedObject("deals", "deal", "deals", SOURCE_KEY_FIELD, parents=("accounts", "contacts"), bulk=True)
APPOINTMENTS = StagedObject(
    "appointments", "appointment", "appointments", DESCRIPTION_MARKER, parents=("contacts",), targetable=True
)
TASKS = StagedObject("tasks", "task", "tasks", DESCRIPTION_MARKER, parents=("contacts",), targetable=True)
NOTES = StagedObject("notes", "note", "notes", DESCRIPTION_MARKER, parents=("contacts",), targetable=True)
FILES = StagedObject("files", "file", "documents", "sha256", parents=("contacts",), targetable=True)
# The custom modules the mapping proposes (design.md's object table); the tool creates them via the API.
CUSTOM_MODULES: tuple[StagedObject, ...] = tuple(
    StagedObject(
        name, f"custom_module:{name}", f"custom_module/cm_{name}", SOURCE_KEY_FIELD, parents=("accounts", "contacts")
    )
    for name in CUSTOM_MODULES
)

# Dependency order: a record links to its parents by their Freshsales ids, so parents load first.
STAGED_OBJECTS: tuple[StagedObject, ...] = (
    ACCOUNTS,
    CONTACTS,
    DEALS,
    APPOINTMENTS,
    TASKS,
    *CUSTOM_MODULES,
    NOTES,
    FILES,
)
BY_NAME = {o.name: o for o in STAGED_OBJECTS}
BY_TARGET = {o.target: o for o in STAGED_OBJECTS}
