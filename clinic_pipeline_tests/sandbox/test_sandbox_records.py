"""Create / view / update / recycle bin / forget, side-loads, and every constraint a migration trips over."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

MEMBER_ID = 16_000_000_002
INACTIVE_ID = 16_000_000_006


def _create(api: httpx.Client, root: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(path, json={root: body})
    assert response.status_code == 201, response.text
    return response.json()[root]


def _error(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    assert response.json()["errors"]["code"] == status
    return " ".join(response.json()["errors"]["message"])


@pytest.fixture
def account(api: httpx.Client) -> dict[str, Any]:
    return _create(api, "sales_account", "/sales_accounts", {"name": "Northside Clinic", "annual_revenue": 5600})


def test_contact_round_trip_with_side_loads(api: httpx.Client, account: dict[str, Any]) -> None:
    contact = _create(
        api,
        "contact",
        "/contacts",
        {
            "first_name": "Ana",
            "last_name": "Silva",
            "emails": ["ana@example.com", "ana.work@example.com"],
            "zipcode": "02134",
            "owner_id": MEMBER_ID,
            "external_id": "P-1",
            "sales_accounts": [{"id": account["id"], "is_primary": True}],
            "created_at": "1999-01-01T00:00:00Z",
        },
    )
    assert contact["id"] > 2**32
    assert contact["email"] == "ana@example.com"
    assert [e["value"] for e in contact["emails"]] == ["ana@example.com", "ana.work@example.com"]
    assert contact["created_at"] != "1999-01-01T00:00:00Z"
    assert contact["created_at"].endswith("+00:00")
    viewed = api.get(f"/contacts/{contact['id']}", params={"include": "sales_accounts,owner"}).json()
    assert viewed["contact"]["zipcode"] == "02134"
    assert [a["name"] for a in viewed["sales_accounts"]] == ["Northside Clinic"]
    assert [u["id"] for u in viewed["users"]] == [MEMBER_ID]


def test_update_merges_and_keeps_server_timestamps(api: httpx.Client, account: dict[str, Any]) -> None:
    updated = api.put(
        f"/sales_accounts/{account['id']}", json={"sales_account": {"city": "Boston", "created_at": "2001-01-01"}}
    )
    assert updated.status_code == 200
    body = updated.json()["sales_account"]
    assert body["city"] == "Boston"
    assert body["name"] == "Northside Clinic"
    assert body["created_at"] == account["created_at"]
    assert body["annual_revenue"] == "5600.0"


def test_delete_goes_to_the_recycle_bin_then_forget_removes_it(api: httpx.Client) -> None:
    contact = _create(api, "contact", "/contacts", {"first_name": "Del", "email": "del@example.com"})
    views = {f["name"]: f["id"] for f in api.get("/contacts/filters").json()["filters"]}
    assert api.delete(f"/contacts/{contact['id']}").status_code == 200
    assert api.get(f"/contacts/{contact['id']}").json()["contact"]["is_deleted"] is True
    all_ids = [c["id"] for c in api.get(f"/contacts/view/{views['All Contacts']}").json()["contacts"]]
    bin_ids = [c["id"] for c in api.get(f"/contacts/view/{views['Recycle Bin']}").json()["contacts"]]
    assert contact["id"] not in all_ids
    assert bin_ids == [contact["id"]]
    # The recycle bin still holds the email.
    _error(api.post("/contacts", json={"contact": {"email": "DEL@example.com"}}))
    assert api.delete(f"/contacts/{contact['id']}/forget").status_code == 200
    assert api.get(f"/contacts/{contact['id']}").status_code == 404
    assert api.post("/contacts", json={"contact": {"email": "del@example.com"}}).status_code == 201


def test_contact_email_is_unique_across_email_and_emails(api: httpx.Client) -> None:
    _create(api, "contact", "/contacts", {"email": "family@example.com"})
    assert "already exists" in _error(api.post("/contacts", json={"contact": {"emails": ["Family@Example.com"]}}))
    second = _create(api, "contact", "/contacts", {"emails": ["kid@example.com"]})
    clash = api.put(f"/contacts/{second['id']}", json={"contact": {"email": "family@example.com"}})
    assert "already exists" in _error(clash)
    assert "invalid" in _error(api.post("/contacts", json={"contact": {"email": "not-an-email"}}))


def test_contact_mobile_number_is_unique_by_its_digits(api: httpx.Client) -> None:
    holder = _create(api, "contact", "/contacts", {"mobile_number": "+1 555-123-4567"})
    clash = api.post("/contacts", json={"contact": {"mobile_number": "+15551234567"}})
    assert clash.json() == {"errors": {"code": 400, "message": ["Mobile number already exists"]}}
    assert "555" not in clash.text  # the number is PHI: never echoed
    second = _create(api, "contact", "/contacts", {"mobile_number": "+1 555-999-0000"})
    moved = api.put(f"/contacts/{second['id']}", json={"contact": {"mobile_number": "1 (555) 123.4567"}})
    assert _error(moved) == "Mobile number already exists"
    # Re-saving one's own number (in another format) is no clash; numbers without digits never clash.
    resaved = api.put(f"/contacts/{holder['id']}", json={"contact": {"mobile_number": "+1 (555) 123-4567"}})
    assert resaved.status_code == 200, resaved.text
    _create(api, "contact", "/contacts", {"mobile_number": "N/A"})
    _create(api, "contact", "/contacts", {"mobile_number": "N/A"})
    # The recycle bin still holds the number; forgetting the contact frees it.
    assert api.delete(f"/contacts/{holder['id']}").status_code == 200
    _error(api.post("/contacts", json={"contact": {"mobile_number": "15551234567"}}))
    assert api.delete(f"/contacts/{holder['id']}/forget").status_code == 200
    assert api.post("/contacts", json={"contact": {"mobile_number": "15551234567"}}).status_code == 201


def test_account_name_is_unique_case_insensitively(api: httpx.Client, account: dict[str, Any]) -> None:
    duplicate = api.post("/sales_accounts", json={"sales_account": {"name": "  northside CLINIC "}})
    assert _error(duplicate) == "Name has already been taken"
    assert "blank" in _error(api.post("/sales_accounts", json={"sales_account": {"city": "x"}}))


def test_deal_needs_name_and_amount_and_returns_money_as_a_string(api: httpx.Client, account: dict[str, Any]) -> None:
    assert "Amount can't be blank" in _error(api.post("/deals", json={"deal": {"name": "Visit"}}))
    assert "Name can't be blank" in _error(api.post("/deals", json={"deal": {"amount": 10}}))
    deal = _create(api, "deal", "/deals", {"name": "Visit", "amount": "120.50", "sales_account_id": account["id"]})
    assert deal["amount"] == "120.5"
    assert _create(api, "deal", "/deals", {"name": "Whole", "amount": 5600})["amount"] == "5600.0"
    assert "amount must be a number" in _error(api.post("/deals", json={"deal": {"name": "x", "amount": "ten"}}))


def test_deal_stage_decides_the_deal_views(api: httpx.Client) -> None:
    stages = {s["forecast_type"]: s["id"] for s in api.get("/selector/deal_stages").json()["deal_stages"]}
    won = _create(api, "deal", "/deals", {"name": "Paid", "amount": 1, "deal_stage_id": stages["won"]})
    open_deal = _create(api, "deal", "/deals", {"name": "Billed", "amount": 1})
    filters = {f["name"]: f["id"] for f in api.get("/deals/filters").json()["filters"]}
    assert "All Deals" not in filters
    won_ids = [d["id"] for d in api.get(f"/deals/view/{filters['Won Deals']}").json()["deals"]]
    open_ids = [d["id"] for d in api.get(f"/deals/view/{filters['Open Deals']}").json()["deals"]]
    assert won_ids == [won["id"]]
    assert open_ids == [open_deal["id"]]


@pytest.mark.parametrize(
    ("path", "root", "body", "needle"),
    [
        ("/contacts", "contact", {"owner_id": 12345678901}, "owner_id"),
        ("/contacts", "contact", {"owner_id": INACTIVE_ID}, "not active"),
        ("/contacts", "contact", {"sales_accounts": [{"id": 12345678901}]}, "sales_accounts"),
        ("/contacts", "contact", {"territory_id": 1}, "territory_id"),
        ("/contacts", "contact", {"zipcode": 2134}, "zipcode must be a string"),
        ("/deals", "deal", {"name": "x", "amount": 1, "deal_stage_id": 5}, "deal_stage_id"),
        ("/deals", "deal", {"name": "x", "amount": 1, "sales_account_id": 12345678901}, "sales_account_id"),
        ("/contacts", "contact", {"cf_source_key": "P-1"}, "inside custom_field"),
        ("/contacts", "contact", {"custom_field": {"cf_nope": "x"}}, "Unknown custom field cf_nope"),
    ],
)
def test_bad_values_and_missing_lookups_are_400(
    api: httpx.Client, path: str, root: str, body: dict[str, Any], needle: str
) -> None:
    assert needle in _error(api.post(path, json={root: body}))


def test_custom_fields_are_typed_and_dropdowns_checked(api: httpx.Client, control: httpx.Client) -> None:
    for spec in (
        {"label": "Source key", "name": "cf_source_key", "type": "text"},
        {"label": "Plan", "name": "cf_plan", "type": "dropdown", "choices": ["Gold", "Silver"]},
        {"label": "Born", "name": "cf_born", "type": "date"},
    ):
        assert control.post("/settings/contacts/fields", json=spec).status_code == 201
    assert (
        control.post("/settings/contacts/fields", json={"label": "x", "name": "cf_plan", "type": "text"}).status_code
        == 409
    )
    fields = {f["name"]: f for f in api.get("/settings/contacts/fields").json()["fields"]}
    assert {"first_name", "emails", "owner_id"} <= set(fields)
    assert [c["value"] for c in fields["cf_plan"]["choices"]] == ["Gold", "Silver"]
    assert fields["cf_plan"]["type"] == "dropdown"
    ok = _create(api, "contact", "/contacts", {"custom_field": {"cf_plan": "Gold", "cf_born": "1980-02-29"}})
    assert ok["custom_field"] == {"cf_source_key": None, "cf_plan": "Gold", "cf_born": "1980-02-29"}
    assert "not one of the choices" in _error(
        api.post("/contacts", json={"contact": {"custom_field": {"cf_plan": "Bronze"}}})
    )
    assert "date" in _error(api.post("/contacts", json={"contact": {"custom_field": {"cf_born": "29/02/1980"}}}))


def test_activities_accept_past_dates_and_check_their_targets(api: httpx.Client) -> None:
    contact = _create(api, "contact", "/contacts", {"first_name": "Old", "email": "old@example.com"})
    target = {"targetable_type": "Contact", "targetable_id": contact["id"]}
    task = _create(api, "task", "/tasks", {"title": "Follow up", "due_date": "2015-03-01T10:00:00+02:00", **target})
    assert task["status"] == 0
    appointment = _create(
        api,
        "appointment",
        "/appointments",
        {
            "title": "Visit",
            "from_date": "2015-03-01T10:00:00Z",
            "end_date": "2015-03-01T10:30:00Z",
            "appointment_attendees_attributes": [{"attendee_type": "Contact", "attendee_id": contact["id"]}],
            **target,
        },
    )
    assert appointment["appointment_attendees"] == [{"attendee_type": "Contact", "attendee_id": contact["id"]}]
    types = api.get("/selector/sales_activity_types").json()["sales_activity_types"]
    activity = {
        "title": "Call",
        "sales_activity_type_id": types[0]["id"],
        "start_date": "2016-01-01T09:00:00Z",
        "end_date": "2016-01-01T09:10:00Z",
        **target,
    }
    assert _create(api, "sales_activity", "/sales_activities", activity)["title"] == "Call"
    reversed_times = {**activity, "end_date": "2015-01-01T00:00:00Z"}
    assert "must not be before" in _error(api.post("/sales_activities", json={"sales_activity": reversed_times}))
    missing = {**target, "targetable_id": 12345678901}
    assert "targetable_id" in _error(
        api.post("/tasks", json={"task": {"title": "x", "due_date": "2015-01-01", **missing}})
    )
    assert "Due date can't be blank" in _error(api.post("/tasks", json={"task": {"title": "x", **target}}))
    assert api.put(f"/tasks/{task['id']}", json={"task": {"status": 1}}).json()["task"]["status"] == 1
    assert api.delete(f"/appointments/{appointment['id']}").status_code == 200


def test_notes_create_update_delete_and_side_load(api: httpx.Client) -> None:
    contact = _create(api, "contact", "/contacts", {"email": "noted@example.com"})
    note = _create(
        api,
        "note",
        "/notes",
        {"description": "2019-04-01: allergy", "targetable_type": "Contact", "targetable_id": contact["id"]},
    )
    changed = api.put(f"/notes/{note['id']}", json={"note": {"description": "2019-04-01: allergy (penicillin)"}})
    assert changed.json()["note"]["description"].endswith("(penicillin)")
    notes = api.get(f"/contacts/{contact['id']}", params={"include": "notes"}).json()["notes"]
    assert [n["id"] for n in notes] == [note["id"]]
    assert api.delete(f"/notes/{note['id']}").status_code == 200
    assert api.put(f"/notes/{note['id']}", json={"note": {"description": "x"}}).status_code == 404
    assert api.get("/notes").status_code == 404
