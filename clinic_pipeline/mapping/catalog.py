"""The Freshsales target catalog: each object the plan can target and its standard fields (freshsales_api.md).

Idempotency key convention (design.md): contacts carry the source key in the standard `external_id`;
every other object in the custom text field `cf_source_key`, so an unknown outcome is reconciled by
looking those keys up before anything is re-sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clinic_pipeline.mapping.plan import FieldType

SOURCE_KEY_FIELD = "cf_source_key"
# Fields whose value is one of an account's reference rows, resolved by name at load (freshsales_api.md).
CHOICE_SELECTORS = {
    "outcome_id": "sales_activity_outcomes",
    "contact_status_id": "contact_statuses",
    "lifecycle_stage_id": "lifecycle_stages",
    "deal_stage_id": "deal_stages",
    "territory_id": "territories",
}
NOT_MIGRATED = "not_migrated"
CUSTOM_MODULE_PREFIX = "custom_module:"
# The custom modules this version creates, stages and loads (clinical_list: problem, allergy, medication lists).
CUSTOM_MODULES = ("insurance_plan", "treatment_plan", "lab_result", "clinical_list")


@dataclass(frozen=True)
class TargetField:
    name: str
    type: FieldType
    label: str
    required: bool = False


@dataclass(frozen=True)
class TargetObject:
    name: str  # the plan's target name
    entity: str  # the Freshsales path segment
    key_field: str  # where the source key travels
    fields: dict[str, TargetField] = field(default_factory=dict)

    def field(self, name: str) -> TargetField | None:
        return self.fields.get(name)


def _fields(*specs: tuple[str, FieldType, str] | tuple[str, FieldType, str, bool]) -> dict[str, TargetField]:
    return {s[0]: TargetField(*s) for s in specs}


_ADDRESS: tuple[tuple[str, FieldType, str], ...] = (
    ("address", "text", "Address"),
    ("city", "text", "City"),
    ("state", "text", "State"),
    ("zipcode", "text", "Zipcode"),
    ("country", "text", "Country"),
)

CONTACT = TargetObject(
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
)
SALES_ACCOUNT = TargetObject(
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
)
DEAL = TargetObject(
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
)
APPOINTMENT = TargetObject(
    "appointment",
    "appointments",
    SOURCE_KEY_FIELD,
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
)
TASK = TargetObject(
    "task",
    "tasks",
    SOURCE_KEY_FIELD,
    _fields(
        ("title", "text", "Title", True),
        ("description", "text", "Description"),
        ("due_date", "datetime", "Due date", True),
        ("owner_id", "lookup", "Owner"),
        ("targetable_id", "lookup", "Related to"),
        ("task_type_id", "lookup", "Type"),
        ("status", "number", "Status"),
    ),
)
NOTE = TargetObject(
    "note",
    "notes",
    SOURCE_KEY_FIELD,
    _fields(("description", "text", "Description", True), ("targetable_id", "lookup", "Related to")),
)
FILE = TargetObject(
    "file",
    "documents",
    SOURCE_KEY_FIELD,
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
)
# Users are resolved by email, never created: the key is the email itself.
USER = TargetObject(
    "user",
    "selector/owners",
    "email",
    _fields(("email", "email", "Email", True), ("display_name", "text", "Name")),
)

CATALOG: dict[str, TargetObject] = {
    o.name: o for o in (SALES_ACCOUNT, CONTACT, DEAL, APPOINTMENT, TASK, NOTE, FILE, USER)
}


def custom_module(name: str) -> TargetObject:
    """A custom module the tool creates through the API: a `name` plus custom fields."""
    return TargetObject(
        f"{CUSTOM_MODULE_PREFIX}{name}",
        f"custom_module/cm_{name}",
        SOURCE_KEY_FIELD,
        _fields(
            ("name", "text", "Name", True),
            ("cf_contact", "lookup", "Contact"),  # the lookup load/modules.py gives every module
            ("cf_sales_account", "lookup", "Account"),  # a payer or organization, where the plan links one
            ("owner_id", "lookup", "Owner"),
        ),
    )


def target_object(target: str) -> TargetObject:
    if target.startswith(CUSTOM_MODULE_PREFIX):
        name = target.removeprefix(CUSTOM_MODULE_PREFIX)
        if name not in CUSTOM_MODULES:
            # Staging and loading know these modules only: another would be proposed, confirmed and never moved.
            raise ValueError(f"unknown custom module {name!r} (this version moves {', '.join(CUSTOM_MODULES)})")
        return custom_module(name)
    try:
        return CATALOG[target]
    except KeyError:
        raise ValueError(f"unknown Freshsales target {target!r}") from None


def key_field(target: str) -> str:
    """Where a record of `target` carries its source key (design.md's idempotency convention)."""
    return target_object(target).key_field
