"""The staged objects: asset/file name ↔ the plan's Freshsales target, in load order."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StagedObject:
    name: str  # file stem and asset suffix: staged_<name>, loaded_<name>
    target: str  # the plan's target for it
    entity: str  # Freshsales path segment
    key_field: str  # the field that carries the source key into Freshsales
    parents: tuple[str, ...] = ()  # staged objects this one links to by Freshsales id


ACCOUNTS = StagedObject("accounts", "sales_account", "sales_accounts", "cf_source_key")
CONTACTS = StagedObject("contacts", "contact", "contacts", "external_id", parents=("accounts",))

# Accounts before contacts: a contact links to its account by the account's Freshsales id.
STAGED_OBJECTS: tuple[StagedObject, ...] = (ACCOUNTS, CONTACTS)
BY_NAME = {o.name: o for o in STAGED_OBJECTS}
BY_TARGET = {o.target: o for o in STAGED_OBJECTS}
