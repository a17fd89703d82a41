"""Custom modules and their fields ensured through the sandbox's API; standard-entity custom fields verified."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from pydantic import ValidationError as PydanticValidationError

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.freshsales import FreshsalesClient, RateLimiter, RetryPolicy
from clinic_pipeline.load.modules import (
    ACCOUNT_LINK_FIELD,
    CONTACT_LINK_FIELD,
    ModuleFieldSpec,
    SchemaError,
    ensure_custom_modules,
    module_specs,
    verify_custom_fields,
)
from clinic_pipeline.load.payloads import prepare
from clinic_pipeline.load.state import IdMapRow
from clinic_pipeline.mapping.checklist import CustomFieldSpec, module_custom_fields
from clinic_pipeline.mapping.plan import FieldMapping, MappingPlan, ObjectMapping
from clinic_pipeline.mapping.plan_check import plan_problems
from clinic_pipeline.model.objects import BY_NAME, MODULE_OBJECTS
from clinic_pipeline.sandbox.launcher import SandboxHandle

MODULE_FIELDS: dict[str, list[ModuleFieldSpec]] = {
    "insurance_plan": [
        ModuleFieldSpec(name="cf_policy_number", label="Policy number", type="text"),
        ModuleFieldSpec(name="cf_group_id", label="Group id", type="text"),
        ModuleFieldSpec(name="cf_priority", label="Priority", type="number"),
    ],
    "treatment_plan": [
        ModuleFieldSpec(name="cf_diagnosis_icd10", label="Diagnosis ICD10", type="text"),
        ModuleFieldSpec(name="cf_start_date", label="Start date", type="date"),
        ModuleFieldSpec(name="cf_status", label="Status", type="dropdown", choices=["active", "completed"]),
    ],
    "lab_result": [
        ModuleFieldSpec(name="cf_test_name", label="Test name", type="text"),
        ModuleFieldSpec(name="cf_collected_at", label="Collected at", type="datetime"),
        ModuleFieldSpec(name="cf_abnormal", label="Abnormal", type="checkbox"),
    ],
    "clinical_list": [
        ModuleFieldSpec(name="cf_list_type", label="List type", type="text"),
        ModuleFieldSpec(name="cf_begin_date", label="Begin date", type="date"),
        ModuleFieldSpec(name="cf_diagnosis", label="Diagnosis", type="text"),
    ],
}


@pytest.fixture
def client(sandbox: SandboxHandle) -> Iterator[FreshsalesClient]:
    with FreshsalesClient(
        sandbox.base_url,
        SecretStr(sandbox.api_key),
        rate_limiter=RateLimiter(100_000, 10_000, backoff_base=0.02, backoff_max=0.1),
        retry_policy=RetryPolicy(max_attempts=10, backoff_base=0.01, backoff_max=0.05),
        timeout=10.0,
    ) as made:
        yield made


def _schema_posts(sandbox: SandboxHandle) -> int:
    counts = httpx.get(f"{sandbox.root_url}/_sandbox/requests", timeout=10).json()["requests"]
    return sum(n for endpoint, n in counts.items() if endpoint.startswith("POST /settings/"))


def _admin_field(sandbox: SandboxHandle, entity: str, name: str, ftype: str, **extra: object) -> None:
    body = {"name": name, "label": name.removeprefix("cf_"), "type": ftype, **extra}
    httpx.post(f"{sandbox.root_url}/_sandbox/settings/{entity}/fields", json=body, timeout=10).raise_for_status()


def test_modules_and_fields_are_created_once_and_a_record_links_to_its_contact(
    client: FreshsalesClient, sandbox: SandboxHandle
) -> None:
    assert set(MODULE_FIELDS) == {o.module for o in MODULE_OBJECTS}

    first = ensure_custom_modules(client, MODULE_FIELDS)

    assert sorted(first.modules_created) == [
        "cm_clinical_list",
        "cm_insurance_plan",
        "cm_lab_result",
        "cm_treatment_plan",
    ]
    assert first.fields_present == []
    for module, specs in MODULE_FIELDS.items():
        definitions = {d.name: d for d in client.field_definitions(f"cm_{module}")}
        wanted = {s.name: s.freshsales_type for s in specs} | {"cf_source_key": "text", "cf_contact": "lookup"}
        assert {n: definitions[n].type for n in wanted} == wanted
        assert (definitions["cf_contact"].model_extra or {})["related_entity"] == "contact"
    status = next(d for d in client.field_definitions("cm_treatment_plan") if d.name == "cf_status")
    assert [c.value for c in status.choices] == ["active", "completed"]
    assert len(first.fields_created) == 4 * (3 + 2)

    # What the loader sends: the contact's id in cf_contact, the source key in cf_source_key.
    contact = client.create("contacts", {"first_name": "A", "last_name": "B", "external_id": "patients:1"})
    record = client.create(
        "cm_lab_result",
        {"name": "HbA1c", "custom_field": {"cf_source_key": "labs:1", "cf_contact": contact["id"]}},
    )
    assert record["custom_field"]["cf_contact"] == contact["id"]

    posts = _schema_posts(sandbox)
    second = ensure_custom_modules(client, MODULE_FIELDS)

    assert (second.modules_created, second.fields_created) == ([], [])
    assert len(second.fields_present) == len(first.fields_created)
    assert _schema_posts(sandbox) == posts
    assert len([m for m in client.module_customizations() if m.is_custom]) == 4


def test_only_the_missing_fields_of_an_existing_module_are_created(client: FreshsalesClient) -> None:
    module = client.create_module("Insurance Plan", "Insurance Plans")
    client.create_module_field("cm_insurance_plan", module.forms[0].id, "Policy number", "textarea")

    result = ensure_custom_modules(client, {"insurance_plan": MODULE_FIELDS["insurance_plan"]})

    [outcome] = result.modules
    assert outcome.module == "cm_insurance_plan" and not outcome.module_created
    assert outcome.fields_present == ["cf_policy_number"]  # a textarea holds text
    assert sorted(outcome.fields_created) == ["cf_contact", "cf_group_id", "cf_priority", "cf_source_key"]


def test_a_present_field_of_another_type_is_an_error_naming_module_field_and_types(
    client: FreshsalesClient,
) -> None:
    module = client.create_module("Lab Result", "Lab Results")
    client.create_module_field("cm_lab_result", module.forms[0].id, "Abnormal", "text")
    client.create_module_field("cm_lab_result", module.forms[0].id, "Contact", "lookup", related_entity="deal")

    with pytest.raises(SchemaError) as raised:
        ensure_custom_modules(client, {"lab_result": MODULE_FIELDS["lab_result"]})

    message = str(raised.value)
    assert "cm_lab_result.cf_abnormal: expected checkbox, found text" in message
    assert "cm_lab_result.cf_contact: expected lookup→contact, found lookup→deal" in message
    # The missing fields were still created, so the admin only has the conflicts left to fix.
    names = {d.name for d in client.field_definitions("cm_lab_result")}
    assert {"cf_test_name", "cf_collected_at", "cf_source_key"} <= names


def test_a_lost_answer_while_creating_is_reconciled_by_reading_back(
    client: FreshsalesClient, sandbox: SandboxHandle
) -> None:
    faults = {"rate_reset": 0.3, "seed": 3}
    httpx.post(f"{sandbox.root_url}/_sandbox/faults", json=faults, timeout=10).raise_for_status()
    try:
        result = ensure_custom_modules(client, MODULE_FIELDS)
    finally:
        httpx.post(f"{sandbox.root_url}/_sandbox/faults", json={"rate_reset": 0}, timeout=10).raise_for_status()

    assert client.stats["outcome_unknown"] >= 1  # seed 3 loses at least one create's answer
    assert len(result.modules_created) == len(MODULE_OBJECTS)
    for module, specs in MODULE_FIELDS.items():
        names = [d.name for d in client.field_definitions(f"cm_{module}")]
        assert sorted(names) == sorted(["name", "cf_source_key", "cf_contact", *(s.name for s in specs)])


def test_field_specs_are_checked_before_anything_is_sent() -> None:
    with pytest.raises(PydanticValidationError, match="names a module field from its label"):
        ModuleFieldSpec(name="cf_policy", label="Policy number", type="text")
    with pytest.raises(PydanticValidationError, match="needs choices"):
        ModuleFieldSpec(name="cf_status", label="Status", type="dropdown")
    assert CONTACT_LINK_FIELD.shape == "lookup→contact"


def test_a_spec_contradicting_the_loaders_own_fields_is_refused(client: FreshsalesClient) -> None:
    wrong = ModuleFieldSpec(name="cf_contact", label="Contact", type="text")
    with pytest.raises(OperatorError, match="cf_contact: the loader needs it as lookup→contact, not text"):
        ensure_custom_modules(client, {"lab_result": [wrong]})
    assert [m for m in client.module_customizations() if m.is_custom] == []


def test_verify_custom_fields_lists_missing_and_wrong_typed_fields(
    client: FreshsalesClient, sandbox: SandboxHandle
) -> None:
    _admin_field(sandbox, "contacts", "cf_date_of_birth", "date")
    _admin_field(sandbox, "contacts", "cf_policy_number", "number")
    _admin_field(sandbox, "contacts", "cf_last_visit", "date_time_split")
    _admin_field(sandbox, "deals", "cf_invoice_number", "text")
    _admin_field(sandbox, "deals", "cf_denial_status", "dropdown", choices=["denied", "paid"])

    problems = verify_custom_fields(
        client,
        {
            "contacts": [
                ("cf_date_of_birth", "date"),
                ("cf_policy_number", "text"),
                ("cf_last_visit", "datetime"),
                ("cf_group_id", "text"),
            ],
            "deals": [("cf_invoice_number", "text"), ("cf_denial_status", "dropdown")],
            "sales_accounts": [],
        },
    )

    assert problems == [
        "contacts.cf_policy_number: type number, expected text",
        "contacts.cf_group_id: missing (expected text)",
    ]
    assert verify_custom_fields(client, {"deals": [("cf_invoice_number", "text")]}) == []
    with pytest.raises(ValueError, match="verified on"):
        verify_custom_fields(client, {"cm_lab_result": [("cf_x", "text")]})


def test_the_plans_module_fields_become_specs_with_the_loaders_fields_left_to_ensure(
    client: FreshsalesClient,
) -> None:
    entity = "custom_module/cm_lab_result"
    plan_fields = {
        "lab_result": [
            CustomFieldSpec(entity=entity, name="cf_source_key", label="Source key", type="text"),
            CustomFieldSpec(entity=entity, name="cf_contact", label="Contact", type="text"),
            CustomFieldSpec(entity=entity, name="cf_test_name", label="Test name", type="text"),
            CustomFieldSpec(entity=entity, name="cf_flag", label="Flag", type="dropdown", choices=["H", "L"]),
        ]
    }

    specs = module_specs(plan_fields)

    assert [(s.name, s.type, s.choices) for s in specs["lab_result"]] == [
        ("cf_test_name", "text", []),
        ("cf_flag", "dropdown", ["H", "L"]),
    ]
    result = ensure_custom_modules(client, specs)
    assert sorted(result.fields_created) == [
        "cm_lab_result.cf_contact",
        "cm_lab_result.cf_flag",
        "cm_lab_result.cf_source_key",
        "cm_lab_result.cf_test_name",
    ]


def test_a_policy_links_to_its_payer_account_through_the_modules_account_lookup(client: FreshsalesClient) -> None:
    plan = MappingPlan(
        source_fingerprint="abc",
        objects=[
            ObjectMapping(
                source_table="insurance_data",
                target="custom_module:insurance_plan",
                source_key="id",
                fields=[
                    FieldMapping(source="pid", target="cf_contact", type="lookup", transform="lookup:contact"),
                    FieldMapping(
                        source="provider",
                        target="cf_sales_account",
                        type="lookup",
                        transform="lookup:sales_account",
                        references="insurance_companies",
                    ),
                ],
            )
        ],
    )
    assert plan_problems(plan) == []
    specs = module_specs(module_custom_fields(plan))
    assert specs["insurance_plan"] == [ACCOUNT_LINK_FIELD]
    ensure_custom_modules(client, specs)
    definition = next(d for d in client.field_definitions("cm_insurance_plan") if d.name == "cf_sales_account")
    assert (definition.model_extra or {})["related_entity"] == "sales_account"

    # What the loader sends for a staged policy whose payer and patient were loaded.
    payer = client.create("sales_accounts", {"name": "Acme Health", "custom_field": {}})
    obj = BY_NAME["insurance_plan"]
    parents = {
        "sales_account": {"insurance_companies:7": IdMapRow("insurance_companies:7", payer["id"], "")},
        "contact": {},
    }
    row = {"_source_key": "insurance_data:1", "_source_row": 1, "_lookup_sales_account": "insurance_companies:7"}
    prepared = prepare(obj, row, parents)
    assert prepared.payload is not None
    record = client.create("cm_insurance_plan", {"name": "Policy 1", **prepared.payload})
    assert record["custom_field"]["cf_sales_account"] == payer["id"]
