"""Payload models: good bodies pass (the sandbox takes them too), bad ones are named by index and field, no values."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from clinic_pipeline.sandbox.launcher import SandboxHandle
from clinic_pipeline.staging.payload_models import DealPayload, PayloadIssue, payload_model, validate_batch

SECRET = "Zanzibar-Q7"  # a value that must never appear in any issue


def _good() -> dict[str, dict[str, Any]]:
    return {
        "sales_account": {"name": "Northside Clinic", "zipcode": "02134", "annual_revenue": "5600.00"},
        "contact": {
            "first_name": "Ana",
            "email": "ana@example.com",
            "mobile_number": "+1 617 555 0100",
            "zipcode": "02134",
            "external_id": "patients:1",
            "do_not_disturb": False,
        },
        "deal": {"name": "Encounter 1", "amount": "120.50", "expected_close": "2024-03-01"},
        "task": {
            "title": "Follow-up call",
            "due_date": "2024-03-02T10:00:00+00:00",
            "targetable_type": "Contact",
            "status": 0,
        },
        "appointment": {
            "title": "Visit",
            "from_date": "2024-03-01T09:00:00+01:00",
            "end_date": "2024-03-01T09:30:00+01:00",
            "targetable_type": "Contact",
        },
        "note": {"description": "Lab result text\n\n[source 0123456789abcdef]", "targetable_type": "Contact"},
        "custom_module:lab_result": {"name": "HbA1c", "custom_field": {"cf_source_key": "labs:1"}},
    }


def _issues(target: str, records: list[dict[str, Any]]) -> set[tuple[int, str, str]]:
    return {(i.index, i.field, i.error_type) for i in validate_batch(target, records)}


def test_good_records_of_every_target_pass() -> None:
    for target, body in _good().items():
        linked = body | ({"targetable_id": 17_008_318_589} if "targetable_type" in body else {})
        assert validate_batch(target, [linked, linked]) == [], target


def test_custom_fields_take_every_allowed_value_type() -> None:
    custom = {"cf_a": "text", "cf_b": 3, "cf_c": 2.5, "cf_d": True, "cf_e": None, "cf_f": ["x", "y"]}
    body = _good()["contact"] | {"custom_field": custom}
    assert validate_batch("contact", [body]) == []


@pytest.mark.parametrize(
    ("target", "bad", "field", "error_type"),
    [
        ("contact", {"zipcode": 2134}, "zipcode", "string_type"),
        ("contact", {"email": "ana.example.com"}, "email", "string_pattern_mismatch"),
        ("contact", {"do_not_disturb": "yes"}, "do_not_disturb", "bool_type"),
        ("contact", {"emails": ["ana@example.com", "ana.example.com"]}, "emails.1.value", "string_pattern_mismatch"),
        ("contact", {"emails": [{"value": "a@example.com", "primary": True}]}, "emails.0.primary", "extra_forbidden"),
        ("contact", {"sales_accounts": [{"id": "12"}]}, "sales_accounts.0.id", "int_type"),
        ("contact", {"owner_id": "16000000002x"}, "owner_id", "int_type"),
        ("contact", {"emial": "typo@example.com"}, "emial", "extra_forbidden"),
        ("contact", {"cf_date_of_birth": "1980-01-01"}, "cf_date_of_birth", "extra_forbidden"),
        ("contact", {"custom_field": {"cf_x": {"nested": 1}}}, "custom_field.cf_x", "custom_field_type"),
        ("contact", {"custom_field": {"Policy": "A"}}, "custom_field.Policy.[key]", "string_pattern_mismatch"),
        ("contact", {"first_name": "x" * 256}, "first_name", "string_too_long"),
        ("sales_account", {"name": ""}, "name", "string_too_short"),
        ("deal", {"amount": "12,50"}, "amount", "decimal_parsing"),
        ("deal", {"amount": True}, "amount", "decimal_type"),
        ("deal", {"expected_close": "01/03/2024"}, "expected_close", "date_format"),
        ("deal", {"expected_close": "2024-03-01T00:00:00"}, "expected_close", "date_format"),
        ("deal", {"contact_ids": ["x"]}, "contact_ids.0", "int_type"),
        ("task", {"due_date": "2024-03-02T10:00:00"}, "due_date", "timezone_aware"),
        ("task", {"status": 2}, "status", "less_than_equal"),
        ("task", {"targetable_type": "Patient"}, "targetable_type", "literal_error"),
        ("appointment", {"end_date": "2024-03-01T08:00:00+01:00"}, "end_date", "end_before_start"),
        ("appointment", {"targetable_id": None}, "targetable_id", "targetable_pair"),
        ("note", {"description": ""}, "description", "string_too_short"),
        ("custom_module:lab_result", {"name": None}, "name", "string_type"),
    ],
)
def test_each_bad_record_is_named_by_index_and_field(
    target: str, bad: dict[str, Any], field: str, error_type: str
) -> None:
    good = _good()[target] | ({"targetable_id": 17_008_318_589} if "targetable_type" in _good()[target] else {})
    issues = _issues(target, [good, good | bad, good])
    assert issues == {(1, field, error_type)}


def test_missing_required_fields_are_named() -> None:
    assert _issues("deal", [{"name": "Encounter"}]) == {(0, "amount", "missing")}
    note = _issues("note", [{"description": "text"}])
    assert note == {(0, "targetable_type", "missing"), (0, "targetable_id", "missing")}
    assert _issues("sales_account", [{}]) == {(0, "name", "missing")}


def test_a_record_that_is_not_an_object_is_named() -> None:
    assert _issues("task", [_good()["task"] | {"targetable_id": 1}, "not a record"]) == {(1, "", "model_type")}  # type: ignore[list-item]


def test_issues_carry_no_input_values() -> None:
    records = [
        {"first_name": 12345678, "email": f"{SECRET}@", "zipcode": 98765, "custom_field": {"cf_x": {SECRET: SECRET}}},
        {"first_name": SECRET * 30, "mobile_number": ["555-0100"], "unknown_field": SECRET},
    ]
    issues = validate_batch("contact", records)
    assert {i.index for i in issues} == {0, 1}
    text = " ".join(i.model_dump_json() for i in issues)
    for value in (SECRET, "12345678", "98765", "555-0100"):
        assert value not in text


def test_unknown_target_is_refused() -> None:
    with pytest.raises(ValueError, match="no payload model"):
        validate_batch("file", [])
    assert validate_batch("custom_module:treatment_plan", []) == []
    assert payload_model("custom_module:insurance_plan") is payload_model("custom_module:lab_result")


def test_money_serialises_as_exact_decimal_string() -> None:
    deal = DealPayload.model_validate({"name": "Encounter", "amount": Decimal("1234567890123456.10")})
    assert deal.model_dump(exclude_none=True) == {"name": "Encounter", "amount": "1234567890123456.10"}
    assert deal.model_dump_json(exclude_none=True) == '{"name":"Encounter","amount":"1234567890123456.10"}'


def test_batch_of_many_records_is_one_validation() -> None:
    records = [_good()["contact"] | {"external_id": f"patients:{i}"} for i in range(5000)]
    records[4321] = records[4321] | {"zipcode": 1}
    assert validate_batch("contact", records) == [
        PayloadIssue(index=4321, field="zipcode", error_type="string_type", message="Input should be a valid string")
    ]


# --- agreement with the sandbox: what the models accept it accepts, what they refuse it refuses ---


@pytest.fixture
def api(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Token token={sandbox.api_key}"}
    with httpx.Client(base_url=f"{sandbox.base_url}/api", headers=headers, timeout=10) as client:
        yield client


def _post(api: httpx.Client, path: str, root: str, body: dict[str, Any]) -> httpx.Response:
    return api.post(path, json={root: body})


def _lab_result_module(api: httpx.Client) -> None:
    spec = {"module_customization": {"singular_name": "Lab result", "plural_name": "Lab results"}}
    module = api.post("/settings/module_customizations", json=spec).json()["module_customization"]
    form = module["forms"][0]["id"]
    field = api.post(f"/settings/cm_lab_result/forms/{form}/fields", json={"label": "Source key", "field_type": "text"})
    assert field.status_code in (200, 201), field.text


def test_bodies_the_models_accept_the_sandbox_accepts(api: httpx.Client) -> None:
    good = _good()
    account = good["sales_account"]
    assert validate_batch("sales_account", [account]) == []
    account_id = _post(api, "/sales_accounts", "sales_account", account).json()["sales_account"]["id"]

    contact = good["contact"] | {"sales_accounts": [{"id": account_id, "is_primary": True}]}
    assert validate_batch("contact", [contact]) == []
    created = _post(api, "/contacts", "contact", contact)
    assert created.status_code == 201, created.text
    contact_id = created.json()["contact"]["id"]

    children = {
        ("deal", "/deals", "deal"): good["deal"] | {"sales_account_id": account_id, "contact_ids": [contact_id]},
        ("task", "/tasks", "task"): good["task"] | {"targetable_id": contact_id},
        ("appointment", "/appointments", "appointment"): good["appointment"]
        | {
            "targetable_id": contact_id,
            "appointment_attendees_attributes": [{"attendee_type": "Contact", "attendee_id": contact_id}],
        },
        ("note", "/notes", "note"): good["note"] | {"targetable_id": contact_id},
    }
    _lab_result_module(api)
    children[("custom_module:lab_result", "/custom_module/cm_lab_result", "cm_lab_result")] = good[
        "custom_module:lab_result"
    ]
    for (target, path, root), body in children.items():
        assert validate_batch(target, [body]) == [], target
        response = _post(api, path, root, body)
        assert response.status_code == 201, (target, response.text)


ENDPOINTS = {
    "sales_account": ("/sales_accounts", "sales_account"),
    "contact": ("/contacts", "contact"),
    "deal": ("/deals", "deal"),
    "task": ("/tasks", "task"),
    "note": ("/notes", "note"),
}


@pytest.mark.parametrize(
    ("target", "body", "field"),
    [
        ("sales_account", {"name": "A", "zipcode": 2134}, "zipcode"),
        ("sales_account", {"name": "A", "annual_revenue": "lots"}, "annual_revenue"),
        ("contact", {"first_name": "A", "email": "a.example.com"}, "email"),
        ("contact", {"first_name": "A", "do_not_disturb": "no"}, "do_not_disturb"),
        ("contact", {"first_name": "A", "cf_policy": "X"}, "cf_policy"),
        ("deal", {"name": "D"}, "amount"),
        ("deal", {"name": "D", "amount": "1.00", "expected_close": "03/01/2024"}, "expected_close"),
        ("task", {"title": "T", "due_date": "2024-03-02T10:00:00+00:00"}, "targetable_type"),
        ("note", {"description": "", "targetable_type": "Contact", "targetable_id": 1}, "description"),
    ],
)
def test_bodies_the_models_refuse_the_sandbox_refuses(
    api: httpx.Client, target: str, body: dict[str, Any], field: str
) -> None:
    assert field in {i.field for i in validate_batch(target, [body])}
    path, root = ENDPOINTS[target]
    response = _post(api, path, root, body)
    assert response.status_code == 400, response.text
