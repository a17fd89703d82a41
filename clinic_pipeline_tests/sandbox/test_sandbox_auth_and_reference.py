"""Auth, the error envelope, addressing and the seeded reference data."""

from __future__ import annotations

import httpx

from clinic_pipeline.sandbox.launcher import SandboxHandle

SELECTORS = [
    "territories",
    "deal_pipelines",
    "deal_stages",
    "contact_statuses",
    "lifecycle_stages",
    "sales_activity_types",
    "sales_activity_outcomes",
    "currencies",
    "lead_sources",
    "industry_types",
    "business_types",
    "deal_reasons",
    "deal_types",
    "deal_payment_statuses",
    "task_types",
    "appointment_types",
]


def test_missing_and_wrong_keys_get_401_in_the_envelope(sandbox: SandboxHandle) -> None:
    url = f"{sandbox.base_url}/api/selector/territories"
    missing = httpx.get(url)
    wrong = httpx.get(url, headers={"Authorization": "Token token=not-the-key"})
    bearer = httpx.get(url, headers={"Authorization": f"Bearer {sandbox.api_key}"})
    for response in (missing, wrong, bearer):
        assert response.status_code == 401
        assert response.json()["errors"]["code"] == 401
        assert isinstance(response.json()["errors"]["message"], list)


def test_member_key_is_forbidden_admin_selectors_but_reads_others(sandbox: SandboxHandle) -> None:
    member = {"Authorization": f"Token token={sandbox.api_key}-member"}
    owners = httpx.get(f"{sandbox.base_url}/api/selector/owners", headers=member)
    assert owners.status_code == 403
    assert owners.json() == {"errors": {"code": 403, "message": ["You are not authorised to perform this operation."]}}
    assert httpx.get(f"{sandbox.base_url}/api/selector/territories", headers=member).status_code == 200


def test_owners_have_roles_emails_and_one_inactive_user(api: httpx.Client) -> None:
    users = api.get("/selector/owners").json()["users"]
    assert len(users) >= 5
    assert all(u["id"] > 2**32 and "@" in u["email"] and u["display_name"] for u in users)
    assert {u["role"] for u in users} == {"admin", "member"}
    assert [u["is_active"] for u in users].count(False) == 1


def test_every_selector_answers_under_its_own_root_key(api: httpx.Client) -> None:
    for name in SELECTORS:
        body = api.get(f"/selector/{name}").json()
        assert list(body) == [name]
        assert body[name] and all(row["id"] > 2**32 for row in body[name])
    stages = api.get("/selector/deal_stages").json()["deal_stages"]
    assert {s["forecast_type"] for s in stages} == {"open", "won", "lost"}
    assert api.get("/selector/no_such_thing").status_code == 404


def test_both_path_prefixes_serve_the_same_api(sandbox: SandboxHandle) -> None:
    headers = {"Authorization": f"Token token={sandbox.api_key}"}
    modern = httpx.get(f"{sandbox.root_url}/crm/sales/api/selector/currencies", headers=headers)
    legacy = httpx.get(f"{sandbox.root_url}/api/selector/currencies", headers=headers)
    assert modern.status_code == legacy.status_code == 200
    assert modern.json() == legacy.json()


def test_unknown_paths_and_ids_are_404_in_the_envelope(api: httpx.Client) -> None:
    assert api.get("/no/such/resource").json() == {"errors": {"code": 404, "message": ["Resource not found"]}}
    missing = api.get("/contacts/99999999999")
    assert missing.status_code == 404
    assert missing.json()["errors"]["code"] == 404


def test_invalid_json_and_missing_root_are_400(api: httpx.Client) -> None:
    broken = api.post("/contacts", content=b"{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400
    unwrapped = api.post("/contacts", json={"first_name": "No root"})
    assert unwrapped.status_code == 400
    assert "contact" in unwrapped.json()["errors"]["message"][0]


def test_added_users_can_own_records_and_use_their_own_key(sandbox: SandboxHandle, control: httpx.Client) -> None:
    spec = {"display_name": "Dr. New", "email": "new.doc@clinic.example", "role": "member", "api_key": "new-doc-key"}
    created = control.post("/users", json=spec)
    assert created.status_code == 201
    user = created.json()["user"]
    assert user["id"] > 2**32
    assert control.post("/users", json=spec).status_code == 409
    with httpx.Client(base_url=f"{sandbox.base_url}/api", headers={"Authorization": "Token token=new-doc-key"}) as own:
        contact = own.post("/contacts", json={"contact": {"email": "p@example.com"}})
        assert contact.json()["contact"]["owner_id"] == user["id"]
        assert own.get("/selector/owners").status_code == 403


def test_refused_keys_still_see_the_rate_limit_headers(sandbox: SandboxHandle) -> None:
    response = httpx.get(f"{sandbox.base_url}/api/selector/territories")
    assert response.status_code == 401
    assert all(h in response.headers for h in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"))
