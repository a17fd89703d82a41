"""Upsert, asynchronous bulk upsert with job polling, bulk destroy and bulk owner assignment."""

from __future__ import annotations

import time
from typing import Any

import httpx


def _poll(api: httpx.Client, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status = api.get(url).json()["job_status"]
        if status["status"] == "completed":
            return status
        assert status["status"] == "in_progress"
        time.sleep(0.05)
    raise AssertionError("job did not complete")


def test_upsert_creates_with_201_then_updates_with_200(api: httpx.Client) -> None:
    body = {"unique_identifier": {"emails": "u@example.com"}, "contact": {"first_name": "U"}}
    created = api.post("/contacts/upsert", json=body)
    assert created.status_code == 201
    assert created.json()["contact"]["email"] == "u@example.com"
    again = api.post("/contacts/upsert", json={**body, "contact": {"last_name": "Pdated"}})
    assert again.status_code == 200
    assert again.json()["contact"]["id"] == created.json()["contact"]["id"]
    assert again.json()["contact"]["first_name"] == "U"
    account = api.post("/sales_accounts/upsert", json={"unique_identifier": {"name": "Clinic A"}, "sales_account": {}})
    assert account.status_code == 201
    renamed_case = {"unique_identifier": {"name": "CLINIC a"}, "sales_account": {"city": "Austin"}}
    assert api.post("/sales_accounts/upsert", json=renamed_case).status_code == 200
    deal_id = api.post("/deals", json={"deal": {"name": "d", "amount": 1}}).json()["deal"]["id"]
    by_id = api.post("/deals/upsert", json={"unique_identifier": {"id": deal_id}, "deal": {"amount": "2.25"}})
    assert by_id.status_code == 200
    assert by_id.json()["deal"]["amount"] == "2.25"


def test_upsert_refuses_identifiers_the_api_does_not_document(api: httpx.Client) -> None:
    for identifier in ({"external_id": "P-1"}, {"cf_source_key": "P-1"}, {"emails": "a@b.co", "id": 1}):
        response = api.post("/contacts/upsert", json={"unique_identifier": identifier, "contact": {}})
        assert response.status_code == 400, identifier
    assert api.post("/deals/upsert", json={"unique_identifier": {"name": "x"}, "deal": {}}).status_code == 400
    missing = api.post("/deals/upsert", json={"unique_identifier": {"id": 12345678901}, "deal": {}})
    assert missing.status_code == 404


def test_bulk_upsert_is_a_job_with_per_item_results(api: httpx.Client) -> None:
    existing = api.post("/contacts", json={"contact": {"email": "known@example.com"}}).json()["contact"]["id"]
    items = [
        {"unique_identifier": {"emails": "new@example.com"}, "data": {"first_name": "New"}},
        {"unique_identifier": {"emails": "known@example.com"}, "data": {"first_name": "Known"}},
        {"emails": "bad@example.com", "data": {"custom_field": {"cf_nope": 1}}},
    ]
    response = api.post("/contacts/bulk_upsert", json={"contacts": items})
    assert response.status_code == 202
    body = response.json()
    assert body["message"]
    assert "/job_statuses/" in body["job_status_url"]
    status = _poll(api, body["job_status_url"])
    assert (status["total"], status["processed"], status["succeeded"], status["failed"]) == (3, 3, 2, 1)
    assert status["progress"] == 100
    results = status["results"]
    assert [r["status"] for r in results] == [201, 200, 400]
    assert results[1]["id"] == existing
    assert "cf_nope" in results[2]["errors"]["message"][0]
    assert api.get(f"/contacts/{results[0]['id']}").json()["contact"]["first_name"] == "New"


def test_upsert_and_bulk_upsert_refuse_a_mobile_number_another_contact_holds(api: httpx.Client) -> None:
    api.post("/contacts", json={"contact": {"email": "parent@example.com", "mobile_number": "+1 555-123-4567"}})
    kid = {"unique_identifier": {"emails": "kid@example.com"}, "contact": {"mobile_number": "+15551234567"}}
    refused = api.post("/contacts/upsert", json=kid)
    assert refused.json() == {"errors": {"code": 400, "message": ["Mobile number already exists"]}}
    parent_again = {"unique_identifier": {"emails": "parent@example.com"}, "contact": {"mobile_number": "15551234567"}}
    assert api.post("/contacts/upsert", json=parent_again).status_code == 200
    items = [
        {"unique_identifier": {"emails": "kid@example.com"}, "data": {"mobile_number": "1-555-123-4567"}},
        {"unique_identifier": {"emails": "kid2@example.com"}, "data": {"mobile_number": "+1 555 000 1111"}},
    ]
    status = _poll(api, api.post("/contacts/bulk_upsert", json={"contacts": items}).json()["job_status_url"])
    assert [r["status"] for r in status["results"]] == [400, 201]
    assert status["results"][0]["errors"]["message"] == ["Mobile number already exists"]


def test_bulk_upsert_caps_at_100_items_and_checks_item_shape(api: httpx.Client) -> None:
    items = [{"unique_identifier": {"name": f"A{i}"}, "data": {}} for i in range(101)]
    too_many = api.post("/sales_accounts/bulk_upsert", json={"sales_accounts": items})
    assert too_many.status_code == 400
    assert "100" in too_many.json()["errors"]["message"][0]
    assert api.post("/sales_accounts/bulk_upsert", json={"sales_accounts": items[:100]}).status_code == 202
    bad_identifier = [{"unique_identifier": {"external_id": "x"}, "data": {}}]
    assert api.post("/contacts/bulk_upsert", json={"contacts": bad_identifier}).status_code == 400
    assert api.post("/contacts/bulk_upsert", json={"contacts": []}).status_code == 400
    assert api.get("/job_statuses/12345678901").status_code == 404


def test_bulk_destroy_and_bulk_assign_owner(api: httpx.Client) -> None:
    ids = [
        api.post("/contacts", json={"contact": {"email": f"b{i}@example.com"}}).json()["contact"]["id"]
        for i in range(3)
    ]
    assigned = api.post("/contacts/bulk_assign_owner", json={"owner_id": 16_000_000_003, "selected_ids": ids[:2]})
    assert assigned.status_code == 200
    assert api.get(f"/contacts/{ids[0]}").json()["contact"]["owner_id"] == 16_000_000_003
    inactive = api.post("/contacts/bulk_assign_owner", json={"owner_id": 16_000_000_006, "selected_ids": ids})
    assert inactive.status_code == 400
    assert api.post("/contacts/bulk_destroy", json={"selected_ids": ids[:2]}).status_code == 200
    assert api.get(f"/contacts/{ids[1]}").json()["contact"]["is_deleted"] is True
    assert api.post("/contacts/bulk_destroy", json={"selected_ids": [ids[2], 12345678901]}).status_code == 400
    assert api.get(f"/contacts/{ids[2]}").json()["contact"]["is_deleted"] is False
