"""Each Freshsales object the plan can target: fields, key, required fields, links, load order (freshsales_api.md).

A staged object is one `staged_<name>` Parquet file and one `loaded_<name>` asset. Rows carry
`_source_key` (namespaced `<source table>:<key>`, or `<table>.<column>:<value>` for parents derived
from a column), `_source_table`, `_source_row`, one `_lookup_<target>` column per parent (the parent's
source key, resolved to a Freshsales id at load time), optionally `_owner_email` or `_owner_name` (resolved
to a user at load time) and `_choice_<field>` (a reference row's name, resolved through its selector),
then payload columns named by their Freshsales field; `cf_*` columns travel in the record's `custom_field`.

How a record carries its source key into Freshsales (`key_field`, design.md's idempotency convention):
contacts in the standard `external_id`; accounts, deals and custom module records in the custom text
field `cf_source_key`, so an unknown outcome is reconciled by looking those keys up before anything is
re-sent. Appointments, tasks and notes have no custom fields, so their key travels as a marker line at
the end of their description (`[source <sha256(key)[:16]>]`, a hash: no PHI), sales activities at the end
of their notes; files record their checksum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from clinic_pipeline.errors import OperatorError

FieldType = Literal["text", "number", "date", "datetime", "dropdown", "checkbox", "email", "phone", "url", "lookup"]
# Who creates an object's custom fields: only an admin in the UI, the tool through the API, or nobody.
CustomFields = Literal["admin", "tool", "none"]

SOURCE_KEY_FIELD = "cf_source_key"
DESCRIPTION_MARKER = "description"
# Text fields a marker line can travel in (`key_field`): where a record has no searchable field for its key.
MARKER_FIELDS = frozenset({DESCRIPTION_MARKER, "notes"})
CHOICE_PREFIX = "_choice_"
NOT_MIGRATED = "not_migrated"
CUSTOM_MODULE_PREFIX = "custom_module:"
# The custom modules this version creates, stages and loads (clinical_list: problem, allergy, medication lists).
CUSTOM_MODULES = ("insurance_plan", "treatment_plan", "lab_result", "clinical_list")
# Fields whose value is one of an account's reference rows, resolved by name at load (freshsales_api.md).
CHOICE_SELECTORS = {
    "outcome_id": "sales_activity_outcomes",
    "contact_status_id": "contact_statuses",
    "lifecycle_stage_id": "lifecycle_stages",
    "deal_stage_id": "deal_stages",
    "deal_pipeline_id": "deal_pipelines",
    "territory_id": "territories",
    "currency_id": "currencies",
    "sales_activity_type_id": "sales_activity_types",
    "sales_activity_outcome_id": "sales_activity_outcomes",
}
# Custom contact fields the duplicate and shared-value rules of staging fill: the checklist asks the admin for them.
POLICY_FIELDS: tuple[tuple[str, FieldType, str], ...] = (
    ("cf_possible_duplicate_of", "text", "Possible duplicate of (source key)"),
    ("cf_merged_source_keys", "text", "Merged source keys"),
    ("cf_shared_email", "text", "Shared family email"),
    ("cf_email_shared_with", "text", "Email shared with (source key)"),
    ("cf_shared_mobile", "text", "Shared family mobile number"),
    ("cf_mobile_shared_with", "text", "Mobile number shared with (source key)"),
)
# Those of them that hold source keys (not addresses or numbers), and that stay empty when no patient is
# registered twice or shares an address: no email syntax to check, no population to expect.
POLICY_KEY_FIELDS = frozenset(
    {"cf_possible_duplicate_of", "cf_merged_source_keys", "cf_email_shared_with", "cf_mobile_shared_with"}
)
# Freshsales contacts take the primary address as `email`; plans name the list field `emails`.
FIELD_ALIASES = {"emails": "email"}


@dataclass(frozen=True)
class TargetField:
    name: str
    type: FieldType
    label: str
    required: bool = False


@dataclass(frozen=True)
class FreshsalesObject:
    name: str  # file stem and asset suffix: staged_<name>, loaded_<name>
    target: str  # the plan's target for it
    entity: str  # Freshsales path segment under /api
    key_field: str  # where the source key travels (see the module docstring)
    fields: dict[str, TargetField] = field(default_factory=dict)
    identity: tuple[str, ...] = ()  # Freshsales accepts a record with any one of these (contacts)
    parents: tuple[str, ...] = ()  # staged objects this one links to by Freshsales id
    bulk: bool = False  # Freshsales has bulk_upsert for it (≤ 100 records a call)
    targetable: bool = False  # linked to its contact by targetable_type/targetable_id
    custom_fields: CustomFields = "none"

    def field(self, name: str) -> TargetField | None:
        return self.fields.get(name)

    @property
    def required(self) -> tuple[str, ...]:
        """Every one of these must be present (plan field names)."""
        return tuple(n for n, f in self.fields.items() if f.required)

    @property
    def staged_required(self) -> tuple[str, ...]:
        return tuple(FIELD_ALIASES.get(n, n) for n in self.required)

    @property
    def staged_identity(self) -> tuple[str, ...]:
        return tuple(FIELD_ALIASES.get(n, n) for n in self.identity)

    @property
    def marker_field(self) -> str | None:
        """The text field whose last line carries the source key's marker, for objects keyed that way."""
        return self.key_field if self.key_field in MARKER_FIELDS else None

    @property
    def module(self) -> str | None:
        """The custom module name (`treatment_plan`) for `custom_module:<name>` targets."""
        return self.target.partition(":")[2] or None


def _fields(*specs: tuple[str, FieldType, str] | tuple[str, FieldType, str, bool]) -> dict[str, TargetField]:
    return {s[0]: TargetField(*s) for s in specs}


_ADDRESS: tuple[tuple[str, FieldType, str], ...] = (
    ("address", "text", "Address"),
    ("city", "text", "City"),
    ("state", "text", "State"),
    ("zipcode", "text", "Zipcode"),
    ("country", "text", "Country"),
)

ACCOUNTS = FreshsalesObject(
    "accounts",
    "sales_account",
    "sales_accounts",
    SOURCE_KEY_FIELD,
    _fields(
        ("name", "text", "Name", True),
        *_ADDRESS,
        ("phone", "phone", "Phone"),
        ("website", "url", "Website"),
        ("industry_type_id", "lookup", "Industry type"),
        ("business_type_id", "lookup", "Business type"),
        ("number_of_employees", "number", "Number of employees"),
        ("annual_revenue", "number", "Annual revenue"),
        ("owner_id", "lookup", "Owner"),
        ("territory_id", "lookup", "Territory"),
        ("parent_sales_account_id", "lookup", "Parent account"),
        ("tags", "text", "Tags"),
    ),
    bulk=True,
    custom_fields="admin",
)
CONTACTS = FreshsalesObject(
    "contacts",
    "contact",
    "contacts",
    "external_id",
    _fields(
        ("first_name", "text", "First name"),
        ("last_name", "text", "Last name"),
        # Freshsales takes the primary address as `email` or the list `emails`; staging sends `email`.
        ("emails", "email", "Emails"),
        ("mobile_number", "phone", "Mobile"),
        ("work_number", "phone", "Work"),
        ("job_title", "text", "Job title"),
        *_ADDRESS,
        ("time_zone", "text", "Time zone"),
        ("owner_id", "lookup", "Owner"),
        ("territory_id", "lookup", "Territory"),
        ("lifecycle_stage_id", "lookup", "Lifecycle stage"),
        ("contact_status_id", "lookup", "Status"),
        ("lead_source_id", "lookup", "Source"),
        ("external_id", "text", "External ID"),
        ("tags", "text", "Tags"),
        ("sales_accounts", "lookup", "Accounts"),
    ),
    identity=("first_name", "last_name", "emails"),
    parents=("accounts",),
    bulk=True,
    custom_fields="admin",
)
DEALS = FreshsalesObject(
    "deals",
    "deal",
    "deals",
    SOURCE_KEY_FIELD,
    _fields(
        ("name", "text", "Name", True),
        ("amount", "number", "Amount", True),
        ("sales_account_id", "lookup", "Account"),
        ("contact_ids", "lookup", "Contacts"),
        ("deal_pipeline_id", "lookup", "Pipeline"),
        ("deal_stage_id", "lookup", "Stage"),
        ("expected_close", "date", "Expected close"),
        ("closed_date", "date", "Closed date"),
        ("owner_id", "lookup", "Owner"),
        ("currency_id", "lookup", "Currency"),
        ("deal_payment_status_id", "lookup", "Payment status"),
        ("probability", "number", "Probability"),
        ("tags", "text", "Tags"),
    ),
    parents=("accounts", "contacts"),
    bulk=True,
    custom_fields="admin",
)
APPOINTMENTS = FreshsalesObject(
    "appointments",
    "appointment",
    "appointments",
    DESCRIPTION_MARKER,
    _fields(
        ("title", "text", "Title", True),
        ("description", "text", "Description"),
        ("from_date", "datetime", "From", True),
        ("end_date", "datetime", "To", True),
        ("time_zone", "text", "Time zone"),
        ("location", "text", "Location"),
        ("is_allday", "checkbox", "All day"),
        ("targetable_id", "lookup", "Related to"),
        ("outcome_id", "lookup", "Outcome"),
        ("owner_id", "lookup", "Provider (attends as a user)"),
    ),
    parents=("contacts",),
    targetable=True,
)
TASKS = FreshsalesObject(
    "tasks",
    "task",
    "tasks",
    DESCRIPTION_MARKER,
    _fields(
        ("title", "text", "Title", True),
        ("description", "text", "Description"),
        ("due_date", "datetime", "Due date", True),
        ("owner_id", "lookup", "Owner"),
        ("targetable_id", "lookup", "Related to"),
        ("task_type_id", "lookup", "Type"),
        ("status", "number", "Status"),
    ),
    parents=("contacts",),
    targetable=True,
)
NOTES = FreshsalesObject(
    "notes",
    "note",
    "notes",
    DESCRIPTION_MARKER,
    _fields(("description", "text", "Description", True), ("targetable_id", "lookup", "Related to")),
    parents=("contacts",),
    targetable=True,
)
FILES = FreshsalesObject(
    "files",
    "file",
    "documents",
    "sha256",
    _fields(
        ("file_name", "text", "File name", True),
        # What the upload streams and checks, not stored as fields: the file on disk, its type and digest.
        ("file_path", "text", "File path in the export", True),
        ("mime_type", "text", "MIME type"),
        ("size_bytes", "number", "Size in bytes"),
        ("sha256", "text", "SHA-256"),
        ("is_shared", "checkbox", "Shared"),
        ("targetable_id", "lookup", "Related to"),
    ),
    parents=("contacts",),
    targetable=True,
)

# A clinic's communications (calls, emails, SMS): sales activities of their type, with their original time.
ACTIVITIES = FreshsalesObject(
    "activities",
    "sales_activity",
    "sales_activities",
    "notes",
    _fields(
        ("title", "text", "Title", True),
        ("sales_activity_type_id", "lookup", "Type", True),
        ("start_date", "datetime", "Start", True),
        ("end_date", "datetime", "End", True),
        ("notes", "text", "Notes"),
        ("location", "text", "Location"),
        ("owner_id", "lookup", "Owner"),
        ("targetable_id", "lookup", "Related to"),
        ("sales_activity_outcome_id", "lookup", "Outcome"),
    ),
    parents=("contacts",),
    targetable=True,
    custom_fields="admin",
)


def _custom_module(name: str) -> FreshsalesObject:
    """A custom module the tool creates through the API: a `name` plus custom fields."""
    return FreshsalesObject(
        name,
        f"{CUSTOM_MODULE_PREFIX}{name}",
        f"custom_module/cm_{name}",
        SOURCE_KEY_FIELD,
        _fields(
            ("name", "text", "Name", True),
            ("cf_contact", "lookup", "Contact"),  # the lookup load/modules.py gives every module
            ("cf_sales_account", "lookup", "Account"),  # a payer or organization, where the plan links one
            ("owner_id", "lookup", "Owner"),
        ),
        parents=("accounts", "contacts"),
        custom_fields="tool",
    )


MODULE_OBJECTS: tuple[FreshsalesObject, ...] = tuple(_custom_module(name) for name in CUSTOM_MODULES)
# Staff are resolved to existing users by email, never created or staged: the key is the email itself.
USERS = FreshsalesObject(
    "users",
    "user",
    "selector/owners",
    "email",
    _fields(("email", "email", "Email", True), ("display_name", "text", "Name")),
)

# The load order in stages: each stage loads after every object of the stage before it (the asset lineage
# shows it), and a record's parents are always in an earlier stage, since it links to their Freshsales ids.
LOAD_STAGES: tuple[tuple[FreshsalesObject, ...], ...] = (
    (ACCOUNTS,),
    (CONTACTS,),
    (DEALS, APPOINTMENTS, TASKS, NOTES, FILES, ACTIVITIES),
    MODULE_OBJECTS,
)
STAGED_OBJECTS: tuple[FreshsalesObject, ...] = tuple(o for stage in LOAD_STAGES for o in stage)
BY_NAME = {o.name: o for o in STAGED_OBJECTS}
# Entities whose custom fields only an admin can create (the checklist); the tool creates the modules' own.
ADMIN_FIELD_ENTITIES = frozenset(o.entity for o in STAGED_OBJECTS if o.custom_fields == "admin")
BY_TARGET = {o.target: o for o in (*STAGED_OBJECTS, USERS)}


class UnknownTargetError(OperatorError, ValueError):
    """The plan names a target this version does not move."""


def target_object(target: str) -> FreshsalesObject:
    """The object a plan's target names; a clear error for one this version does not move."""
    if target.startswith(CUSTOM_MODULE_PREFIX) and target not in BY_TARGET:
        # Staging and loading know these modules only: another would be proposed, confirmed and never moved.
        name = target.removeprefix(CUSTOM_MODULE_PREFIX)
        raise UnknownTargetError(f"unknown custom module {name!r} (this version moves {', '.join(CUSTOM_MODULES)})")
    try:
        return BY_TARGET[target]
    except KeyError:
        raise UnknownTargetError(f"unknown Freshsales target {target!r}") from None
