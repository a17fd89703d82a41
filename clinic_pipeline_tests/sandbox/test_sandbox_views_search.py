"""Views and paging, task/appointment lists, lookup, filtered search and quick search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx


def _contacts(api: httpx.Client, n: int, **extra: Any) -> list[int]:
    ids = []
    for i in range(n):
        body = {"first_name": f"P{i:03}", "email": f"p{i:03}@example.com", "external_id": f"EXT-{i:03}", **extra}
        response = api.post("/contacts", json={"contact": body})
        assert response.status_code == 201, response.text
        ids.append(response.json()["contact"]["id"])
    return ids


def _view_id(api: httpx.Client, entity: str, name: str) -> int:
    return next(f["id"] for f in api.get(f"/{entity}/filters").json()["filters"] if f["name"] == name)


def test_default_views_are_listed_per_entity(api: httpx.Client) -> None:
    for entity, model, names in (
        ("contacts", "Contact", {"All Contacts", "My Contacts", "Recycle Bin"}),
        ("sales_accounts", "SalesAccount", {"All Accounts", "Recycle Bin"}),
        ("deals", "Deal", {"Open Deals", "Won Deals", "Lost Deals", "My Deals", "Recycle Bin"}),
    ):
        filters = api.get(f"/{entity}/filters").json()["filters"]
        assert names <= {f["name"] for f in filters}
        assert all(f["model_class_name"] == model for f in filters)
        assert [f["is_default"] for f in filters].count(True) == 1


def test_paging_meta_default_size_cap_and_past_the_end(api: httpx.Client) -> None:
    ids = _contacts(api, 30)
    view = _view_id(api, "contacts", "All Contacts")
    first = api.get(f"/contacts/view/{view}").json()
    assert len(first["contacts"]) == 25
    assert first["meta"] == {"total_pages": 2, "total": 30}
    pages = [
        api.get(f"/contacts/view/{view}", params={"page": p, "per_page": 7, "sort": "created_at", "sort_type": "asc"})
        for p in range(1, 7)
    ]
    assert [c["id"] for page in pages for c in page.json()["contacts"]] == ids
    assert pages[-1].json()["contacts"] == []
    assert pages[0].json()["meta"] == {"total_pages": 5, "total": 30}
    big = api.get(f"/contacts/view/{view}", params={"per_page": 500}).json()
    assert len(big["contacts"]) == 30
    assert api.get(f"/contacts/view/{view}", params={"page": 0}).status_code == 400
    assert api.get("/contacts/view/1").status_code == 404


def test_my_view_follows_the_key_owner(api: httpx.Client) -> None:
    mine = _contacts(api, 2)
    other = api.post("/contacts", json={"contact": {"email": "o@example.com", "owner_id": 16_000_000_003}})
    listed = api.get(f"/contacts/view/{_view_id(api, 'contacts', 'My Contacts')}").json()["contacts"]
    assert sorted(c["id"] for c in listed) == sorted(mine)
    assert other.json()["contact"]["id"] not in [c["id"] for c in listed]


def test_tasks_and_appointments_need_a_filter_and_report_total_only(api: httpx.Client) -> None:
    contact = _contacts(api, 1)[0]
    target = {"targetable_type": "Contact", "targetable_id": contact}
    now = datetime.now(UTC)
    for title, due, status in (
        ("late", now - timedelta(days=3), 0),
        ("soon", now + timedelta(days=1), 0),
        ("done", now, 1),
    ):
        body = {"title": title, "due_date": due.isoformat(), "status": status, **target}
        assert api.post("/tasks", json={"task": body}).status_code == 201
    assert api.get("/tasks").status_code == 400
    titles = {
        f: [t["title"] for t in api.get("/tasks", params={"filter": f}).json()["tasks"]]
        for f in ("open", "completed", "overdue", "due tomorrow")
    }
    assert sorted(titles["open"]) == ["late", "soon"]
    assert titles["completed"] == ["done"]
    assert titles["overdue"] == ["late"]
    assert titles["due tomorrow"] == ["soon"]
    assert api.get("/tasks", params={"filter": "open"}).json()["meta"] == {"total": 2}
    for start in (now - timedelta(days=30), now + timedelta(days=30)):
        body = {"title": "visit", "from_date": start.isoformat(), "end_date": (start + timedelta(hours=1)).isoformat()}
        assert api.post("/appointments", json={"appointment": body}).status_code == 201
    assert api.get("/appointments").status_code == 400
    past = api.get("/appointments", params={"filter": "past"}).json()
    assert past["meta"] == {"total": 1}
    assert api.get("/appointments", params={"filter": "upcoming"}).json()["meta"] == {"total": 1}


def test_sales_activities_list_is_paged(api: httpx.Client) -> None:
    contact = _contacts(api, 1)[0]
    type_id = api.get("/selector/sales_activity_types").json()["sales_activity_types"][0]["id"]
    for i in range(3):
        body = {
            "title": f"call {i}",
            "sales_activity_type_id": type_id,
            "start_date": "2020-01-01T10:00:00Z",
            "end_date": "2020-01-01T10:05:00Z",
            "targetable_type": "Contact",
            "targetable_id": contact,
        }
        created = api.post("/sales_activities", json={"sales_activity": body})
        assert created.status_code == 201
    listed = api.get("/sales_activities", params={"per_page": 2, "page": 2}).json()
    assert listed["meta"] == {"total_pages": 2, "total": 3}
    assert len(listed["sales_activities"]) == 1
    one = created.json()["sales_activity"]["id"]
    assert api.get(f"/sales_activities/{one}").json()["sales_activity"]["title"] == "call 2"


def test_lookup_answers_nested_with_string_ids(api: httpx.Client, control: httpx.Client) -> None:
    control.post("/settings/contacts/fields", json={"label": "Source key", "name": "cf_source_key", "type": "text"})
    made = api.post("/contacts", json={"contact": {"email": "l@example.com", "custom_field": {"cf_source_key": "S-9"}}})
    cid = made.json()["contact"]["id"]
    found = api.get("/lookup", params={"q": "S-9", "f": "cf_source_key", "entities": "contact"}).json()
    assert [c["id"] for c in found["contacts"]["contacts"]] == [str(cid)]
    by_email = api.get(
        "/lookup", params={"q": "L@example.com", "f": "email", "entities": "contact,sales_account"}
    ).json()
    assert len(by_email["contacts"]["contacts"]) == 1
    assert by_email["sales_accounts"] == {"sales_accounts": []}
    api.post("/sales_accounts", json={"sales_account": {"name": "Lookup Clinic"}})
    by_name = api.get("/lookup", params={"q": "lookup clinic", "f": "name", "entities": "sales_account"}).json()
    assert [a["name"] for a in by_name["sales_accounts"]["sales_accounts"]] == ["Lookup Clinic"]
    assert api.get("/lookup", params={"q": "x", "f": "cf_nothing", "entities": "contact"}).status_code == 400
    assert api.get("/lookup", params={"q": "x"}).status_code == 400


def test_filtered_search_is_in_contains_and_is_after(api: httpx.Client, control: httpx.Client) -> None:
    control.post("/settings/contacts/fields", json={"label": "Source key", "name": "cf_source_key", "type": "text"})
    ids = _contacts(api, 5)
    for i, cid in enumerate(ids):
        api.put(f"/contacts/{cid}", json={"contact": {"custom_field": {"cf_source_key": f"K{i}"}}})
    is_in = api.post(
        "/filtered_search/contact",
        json={"filter_rule": [{"attribute": "cf_source_key", "operator": "is_in", "value": ["K1", "K3", "K9"]}]},
    ).json()
    assert sorted(c["id"] for c in is_in["contacts"]) == sorted(str(ids[i]) for i in (1, 3))
    assert is_in["meta"] == {"total": 2}
    by_external = api.post(
        "/filtered_search/contact",
        json={"filter_rule": [{"attribute": "external_id", "operator": "is_in", "value": ["EXT-004"]}]},
    )
    assert [c["id"] for c in by_external.json()["contacts"]] == [str(ids[4])]
    contains = api.post(
        "/filtered_search/contact",
        json={"filter_rule": [{"attribute": "custom_field.cf_source_key", "operator": "contains", "value": "k"}]},
    )
    assert contains.json()["meta"]["total"] == 5
    after = api.post(
        "/filtered_search/contact",
        json={"filter_rule": [{"attribute": "created_at", "operator": "is_after", "value": "2000-01-01T00:00:00Z"}]},
    )
    assert after.json()["meta"]["total"] == 5
    unknown = api.post(
        "/filtered_search/contact",
        json={"filter_rule": [{"attribute": "cf_missing", "operator": "is_in", "value": ["x"]}]},
    )
    assert unknown.status_code == 400
    bad_operator = api.post(
        "/filtered_search/contact",
        json={"filter_rule": [{"attribute": "external_id", "operator": "like", "value": "x"}]},
    )
    assert bad_operator.status_code == 400


def test_quick_search_is_flat_with_at_most_ten_string_ids(api: httpx.Client) -> None:
    _contacts(api, 12)
    results = api.get("/search", params={"q": "example.com", "include": "contact"}).json()
    assert isinstance(results, list)
    assert len(results) == 10
    assert all(isinstance(r["id"], str) and r["type"] == "contact" for r in results)
    assert api.get("/search").status_code == 400
