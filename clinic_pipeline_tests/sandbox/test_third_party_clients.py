"""Request patterns of third-party Freshsales clients, replayed against the sandbox with plain httpx.

Each helper mirrors one client's request and stop logic, taken from its public source:
- Airbyte source-freshsales (airbytehq/airbyte, connectors/source-freshsales/manifest.yaml): `Token token=KEY`,
  `/crm/sales/api`, every view of `/<entity>/filters` paged with `page`/`per_page=50`, `sort=updated_at`,
  `sort_type=asc` and a stray `filter=<view name>`; stops at the first page shorter than 50.
- n8n Freshworks CRM node (n8n-io/n8n, nodes/FreshworksCrm/GenericFunctions.ts): the list is the response's
  first key, paging continues while `meta.total_pages` is set and not reached, also for `/filters`.
- Singer tap-freshsales (Lori-Systems/tap_freshsales, client.py + streams.py): `include=` in the path plus
  `per_page=100`; stops at a page shorter than 100; tasks with `include=owner,users,targetable`.
- freshsalessdk (upOwa/freshsales-sdk-py) and python-freshworks-crm (robertvy/python-freshworksCRM): the
  legacy `/api` base, `meta.total_pages` loops, side-loads read from the response root.
- RudderStack destination (rudderlabs/rudder-transformer, destinations/freshsales/utils.js): contact and
  account upserts, `emails` as a plain string, `contact.sales_accounts` read back from the upsert.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from clinic_pipeline.sandbox.launcher import SandboxHandle

ADMIN_ID = 16_000_000_001
MAX_PAGES = 20  # a client stuck in a paging loop fails the test instead of hanging it


@contextmanager
def _client(sandbox: SandboxHandle, base: str = "/crm/sales/api", token: str | None = None) -> Iterator[httpx.Client]:
    header = token if token is not None else f"Token token={sandbox.api_key}"
    with httpx.Client(base_url=f"{sandbox.root_url}{base}", headers={"Authorization": header}, timeout=10) as client:
        yield client


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _seed_contacts(api: httpx.Client, n: int) -> list[int]:
    return [
        _ok(api.post("/contacts", json={"contact": {"first_name": f"C{i:03}", "email": f"c{i:03}@x.example"}}), 201)[
            "contact"
        ]["id"]
        for i in range(n)
    ]


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat(timespec="seconds")


def _airbyte_pages(client: httpx.Client, path: str, root: str, **params: str) -> list[dict[str, Any]]:
    """Airbyte's PageIncrement paginator: page from 1, per_page 50, stop at the first short page."""
    records: list[dict[str, Any]] = []
    for page in range(1, MAX_PAGES):
        query = {"sort": "updated_at", "sort_type": "asc", **params, "per_page": "50", "page": str(page)}
        rows = _ok(client.get(path, params=query))[root]
        records += rows
        if len(rows) < 50:
            return records
    raise AssertionError(f"{path} never returned a short page")


def _n8n_all_items(client: httpx.Client, endpoint: str, qs: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """n8n's freshworksCrmApiRequestAllItems: first key of the body, `meta.total_pages` decides the next page."""
    items: list[dict[str, Any]] = []
    query = dict(qs or {})
    page = 1
    while page < MAX_PAGES:
        body = _ok(client.get(endpoint, params={**query, "page": str(page)}))
        items += body[next(iter(body))]
        page += 1
        # `response.meta.total_pages` in JS: a body without `meta` is a TypeError, so index it strictly.
        total_pages = body["meta"].get("total_pages")
        if not total_pages or page > total_pages:
            return items
    raise AssertionError(f"{endpoint} kept reporting more pages")


def _total_pages_loop(client: httpx.Client, path: str, root: str, **params: str) -> list[dict[str, Any]]:
    """freshsalessdk's _get_all_generator: per_page 100, stop once `page > meta.total_pages`."""
    records: list[dict[str, Any]] = []
    for page in range(1, MAX_PAGES):
        body = _ok(client.get(path, params={**params, "page": str(page), "per_page": "100"}))
        records += body[root]
        if page + 1 > body["meta"]["total_pages"]:
            return records
    raise AssertionError(f"{path} kept reporting more pages")


def test_airbyte_source_pages_every_view_and_the_filtered_lists(sandbox: SandboxHandle) -> None:
    with _client(sandbox) as api:
        ids = _seed_contacts(api, 51)
        contact = ids[0]
        future, past = timedelta(days=2), timedelta(days=-30)
        task = {"title": "Call back", "due_date": _iso(future), "targetable_type": "Contact", "targetable_id": contact}
        _ok(api.post("/tasks", json={"task": task}), 201)
        for title, delta in (("Old visit", past), ("Next visit", future)):
            spec = {"title": title, "from_date": _iso(delta), "end_date": _iso(delta + timedelta(hours=1))}
            _ok(api.post("/appointments", json={"appointment": spec}), 201)

        for entity, root, check_view in (
            ("contacts", "contacts", "All Contacts"),
            ("sales_accounts", "sales_accounts", None),
        ):
            views = _airbyte_pages(api, f"/{entity}/filters", "filters")
            assert views and all(isinstance(v["id"], int) for v in views)
            for view in views:
                rows = _airbyte_pages(api, f"/{entity}/view/{view['id']}", root, filter=view["name"])
                assert all(isinstance(r["id"], int) for r in rows)
                if view["name"] == check_view:
                    assert [r["id"] for r in rows] == ids
        deal_views = {v["name"] for v in _airbyte_pages(api, "/deals/filters", "filters")}
        assert {"Open Deals", "Won Deals", "Lost Deals"} <= deal_views

        assert [t["title"] for t in _airbyte_pages(api, "/tasks", "tasks", filter="open")] == ["Call back"]
        assert _airbyte_pages(api, "/tasks", "tasks", filter="completed") == []
        assert [a["title"] for a in _airbyte_pages(api, "/appointments", "appointments", filter="past")] == [
            "Old visit"
        ]
        upcoming = _airbyte_pages(api, "/appointments", "appointments", filter="upcoming")
        assert [a["title"] for a in upcoming] == ["Next visit"]


def test_n8n_node_lists_views_selectors_and_records(sandbox: SandboxHandle) -> None:
    with _client(sandbox) as api:
        ids = _seed_contacts(api, 3)
        for entity, keyword in (("contacts", "All"), ("sales_accounts", "All"), ("deals", "My Deals")):
            views = _n8n_all_items(api, f"/{entity}/filters")
            assert any(keyword in v["name"] for v in views), entity
        all_contacts = next(v["id"] for v in _n8n_all_items(api, "/contacts/filters") if "All" in v["name"])
        listed = _n8n_all_items(api, f"/contacts/view/{all_contacts}", {"include": "owner"})
        assert sorted(c["id"] for c in listed) == sorted(ids)

        for name in ("business_types", "contact_statuses", "deal_pipelines", "deal_stages", "lifecycle_stages"):
            body = _ok(api.get(f"/selector/{name}"))
            assert next(iter(body)) == name
            assert all({"id", "name"} <= set(row) for row in body[name])
        currencies = _ok(api.get("/selector/currencies"))["currencies"]
        assert all({"id", "currency_code"} <= set(c) for c in currencies)
        owners = _ok(api.get("/selector/owners"))
        assert next(iter(owners)) == "users"
        assert all({"id", "display_name"} <= set(u) for u in owners["users"])

        # n8n sends attendee and targetable ids as strings.
        attendees = [
            {"attendee_type": "Contact", "attendee_id": str(ids[0])},
            {"attendee_type": "FdMultitenant::User", "attendee_id": str(ADMIN_ID)},
        ]
        spec = {
            "title": "Visit",
            "from_date": _iso(timedelta(days=1)),
            "end_date": _iso(timedelta(days=1, hours=1)),
            "appointment_attendees_attributes": attendees,
        }
        _ok(api.post("/appointments", json={"appointment": spec}), 201)
        upcoming = _n8n_all_items(api, "/appointments", {"filter": "upcoming"})
        assert [a["title"] for a in upcoming] == ["Visit"]
        task = {
            "title": "T",
            "due_date": _iso(timedelta(days=1)),
            "targetable_type": "Contact",
            "targetable_id": str(ids[1]),
        }
        _ok(api.post("/tasks", json={"task": task}), 201)
        assert [t["title"] for t in _n8n_all_items(api, "/tasks", {"filter": "open", "include": "owner"})] == ["T"]


def test_singer_tap_reads_views_with_includes_tasks_and_custom_modules(sandbox: SandboxHandle) -> None:
    with _client(sandbox) as api:
        contact = _seed_contacts(api, 1)[0]
        account = _ok(api.post("/sales_accounts", json={"sales_account": {"name": "Clinic"}}), 201)["sales_account"]
        _ok(api.put(f"/contacts/{contact}", json={"contact": {"sales_accounts": [{"id": account["id"]}]}}))
        _ok(api.post("/deals", json={"deal": {"name": "Visit", "amount": 120, "sales_account_id": account["id"]}}), 201)
        task = {
            "title": "Paperwork",
            "due_date": _iso(timedelta(days=1)),
            "targetable_type": "Contact",
            "targetable_id": contact,
        }
        _ok(api.post("/tasks", json={"task": task}), 201)

        common = {"per_page": "100", "sort": "updated_at", "sort_type": "asc", "page": "1"}
        filters = _ok(api.get("/contacts/filters", params=common))
        assert next(iter(filters)) == "filters"
        view = next(f["id"] for f in filters["filters"] if f["name"] == "All Contacts")
        # The tap puts `include` into the path and lets requests append the paging parameters to it.
        paging = urlencode(common)
        body = _ok(api.get(f"/contacts/view/{view}?include=owner,sales_account&{paging}"))
        assert next(iter(body)) == "contacts"
        assert [u["id"] for u in body["users"]] == [ADMIN_ID]
        assert [a["id"] for a in body["sales_accounts"]] == [account["id"]]

        deal_view = next(f["id"] for f in _ok(api.get("/deals/filters"))["filters"] if f["name"] == "Open Deals")
        deals = _ok(api.get(f"/deals/view/{deal_view}?include=owner&{paging}"))["deals"]
        assert float(deals[0]["amount"]) == 120.0
        assert isinstance(deals[0]["custom_field"], dict)

        tasks = _ok(api.get(f"/tasks?filter=open&include=owner,users,targetable&{paging}"))["tasks"]
        assert [t["title"] for t in tasks] == ["Paperwork"]
        assert {"outcome_id", "task_type_id", "updated_at"} <= set(tasks[0])

        spec = {"module_customization": {"singular_name": "Referral", "plural_name": "Referrals"}}
        _ok(api.post("/settings/module_customizations", json=spec), 201)
        _ok(api.post("/custom_module/cm_referral", json={"cm_referral": {"name": "R1"}}), 201)
        rule = {"attribute": "updated_at", "operator": "is_after", "value": "2017-01-01T00:00:00Z"}
        found = _ok(api.post("/filtered_search/cm_referral", params=common, json={"filter_rule": [rule]}))
        assert next(iter(found)) == "cm_referral"
        assert [r["name"] for r in found["cm_referral"]] == ["R1"]


def test_python_sdks_on_the_legacy_base_page_by_total_pages(sandbox: SandboxHandle) -> None:
    with _client(sandbox, base="/api") as api:
        ids = _seed_contacts(api, 2)
        account = _ok(api.post("/sales_accounts", json={"sales_account": {"name": "Lab"}}), 201)["sales_account"]
        deal = {"name": "Panel", "amount": "80.5", "sales_account_id": account["id"]}
        _ok(api.post("/deals", json={"deal": deal}), 201)
        views = {v["name"]: v["id"] for v in _ok(api.get("/contacts/filters"))["filters"]}

        include = {
            "include": "sales_accounts,appointments,owner,contact_status",
            "sort": "updated_at",
            "sort_type": "desc",
        }
        listed = _total_pages_loop(api, f"/contacts/view/{views['All Contacts']}", "contacts", **include)
        assert sorted(c["id"] for c in listed) == sorted(ids)
        # An empty view ends the loop after one request.
        assert _total_pages_loop(api, f"/contacts/view/{views['Recycle Bin']}", "contacts") == []
        empty = _ok(api.get(f"/contacts/view/{views['Recycle Bin']}"))
        assert empty["meta"] == {"total_pages": 0, "total": 0}

        deal_view = next(v["id"] for v in _ok(api.get("/deals/filters"))["filters"] if v["name"] == "Open Deals")
        body = _ok(
            api.get(f"/deals/view/{deal_view}", params={"include": "sales_account,appointments,owner,deal_stage"})
        )
        row = body["deals"][0]
        assert [a["id"] for a in body["sales_accounts"]] == [row["sales_account_id"]]
        assert [s["id"] for s in body["deal_stages"]] == [row["deal_stage_id"]]
        assert [u["id"] for u in body["users"]] == [row["owner_id"]]

        one = _ok(api.get(f"/contacts/{ids[0]}", params={"include": "sales_accounts,owner"}))
        assert one["contact"]["id"] == ids[0]
        assert [u["id"] for u in one["users"]] == [ADMIN_ID]
        fields = _ok(api.get("/settings/contacts/fields", params={"include": "field_group"}))["fields"]
        assert {"first_name", "emails"} <= {f["name"] for f in fields}
        for entity in ("sales_accounts", "deals", "sales_activities"):
            assert all(
                {"id", "name", "label", "type"} <= set(f) for f in _ok(api.get(f"/settings/{entity}/fields"))["fields"]
            )


def test_rudderstack_upserts_contacts_accounts_and_activities(sandbox: SandboxHandle) -> None:
    with _client(sandbox) as api:
        email = "pat@x.example"
        identify = {"unique_identifier": {"emails": email}, "contact": {"emails": email, "first_name": "Pat"}}
        created = _ok(api.post("/contacts/upsert", params={"include": "sales_accounts"}, json=identify), 201)
        assert created["contact"]["sales_accounts"] == []
        contact = created["contact"]["id"]

        group = {"unique_identifier": {"name": "North Clinic"}, "sales_account": {"name": "North Clinic"}}
        account = _ok(api.post("/sales_accounts/upsert", json=group), 201)["sales_account"]["id"]
        assert _ok(api.post("/sales_accounts/upsert", json=group))["sales_account"]["id"] == account
        link = {
            "unique_identifier": {"emails": email},
            "contact": {"sales_accounts": [{"id": account, "is_primary": True}]},
        }
        linked = _ok(api.post("/contacts/upsert", json=link))["contact"]
        assert linked["id"] == contact
        assert linked["sales_accounts"] == [{"id": account, "is_primary": True}]

        stages = _ok(api.get("/selector/lifecycle_stages"))["lifecycle_stages"]
        stage = {"unique_identifier": {"emails": email}, "contact": {"lifecycle_stage_id": stages[-1]["id"]}}
        assert _ok(api.post("/contacts/upsert", json=stage))["contact"]["lifecycle_stage_id"] == stages[-1]["id"]

        types = _ok(api.get("/selector/sales_activity_types"))["sales_activity_types"]
        activity = {
            "title": "Signed up",
            "sales_activity_type_id": next(t["id"] for t in types if t["name"] == "Email"),
            "start_date": _iso(timedelta(hours=-1)),
            "end_date": _iso(timedelta(0)),
            "owner_id": ADMIN_ID,
            "targetable_type": "Contact",
            "targetable_id": contact,
        }
        logged = _ok(api.post("/sales_activities", json={"sales_activity": activity}), 201)["sales_activity"]
        assert logged["targetable_id"] == contact


def test_auth_header_forms_lookup_and_search(sandbox: SandboxHandle) -> None:
    for token in (f"Token token={sandbox.api_key}", f'Token token="{sandbox.api_key}"'):
        for base in ("/crm/sales/api", "/api"):
            with _client(sandbox, base=base, token=token) as api:
                assert api.get("/selector/territories").status_code == 200, (token, base)
    with _client(sandbox, token='Token token="not-the-key"') as wrong:
        assert wrong.get("/selector/territories").status_code == 401

    with _client(sandbox) as api:
        body = {"contact": {"first_name": "Lee", "email": "lee@x.example", "mobile_number": "5551234567"}}
        contact = _ok(api.post("/contacts", json=body), 201)["contact"]["id"]
        by_email = _ok(api.get("/lookup", params={"q": "lee@x.example", "f": "email", "entities": "contact"}))
        assert [c["id"] for c in by_email["contacts"]["contacts"]] == [str(contact)]
        by_phone = _ok(
            api.get(
                "/lookup",
                params={"q": "5551234567", "f": "mobile_number", "entities": "contact", "include": "sales_accounts"},
            )
        )
        assert [c["id"] for c in by_phone["contacts"]["contacts"]] == [str(contact)]
        found = _ok(api.get("/search", params={"q": "Lee", "include": "contact"}))
        assert [(r["id"], r["type"]) for r in found] == [(str(contact), "contact")]
