"""A path with a trailing slash is served as the path without it, on every route (freshsales_api.md)."""

from __future__ import annotations

import re

import httpx
import pytest

from clinic_pipeline.sandbox.app import api_table
from clinic_pipeline.sandbox.launcher import SandboxHandle

# Values that reach each handler: no record has id 1, so reads answer the handler's own 404 and writes
# with an empty body are refused by validation, which keeps the two requests of a pair comparable.
PARAMS = {"id": "1", "view_id": "1", "form_id": "1", "name": "territories", "entity": "contacts", "cm": "cm_none"}
UNROUTED = {"errors": {"code": 404, "message": ["Resource not found"]}}


def _fill(template: str) -> str:
    return re.sub(r"{(\w+)(?::\w+)?}", lambda m: PARAMS[m.group(1)], template)


def _answer(client: httpx.Client, method: str, path: str) -> tuple[int, object]:
    response = client.request(method, path, json={} if method in ("POST", "PUT") else None)
    return response.status_code, response.json()


@pytest.mark.parametrize("prefix", ["/crm/sales/api", "/api"])
def test_every_api_route_answers_the_same_with_a_trailing_slash(sandbox: SandboxHandle, prefix: str) -> None:
    headers = {"Authorization": f"Token token={sandbox.api_key}"}
    with httpx.Client(base_url=f"{sandbox.root_url}{prefix}", headers=headers, timeout=10) as client:
        for method, template in sorted({(m, t) for m, t, _ in api_table()}):
            path = _fill(template)
            plain = _answer(client, method, path)
            assert plain[1] != UNROUTED, f"{method} {path} is not routed"
            assert _answer(client, method, path + "/") == plain, f"{method} {path}/"


def test_records_are_written_and_read_through_slashed_paths(
    api: httpx.Client, control: httpx.Client, sandbox: SandboxHandle
) -> None:
    created = api.post("/contacts/", json={"contact": {"first_name": "Ann", "email": "ann@x.example"}})
    assert created.status_code == 201
    contact = created.json()["contact"]
    assert api.get(f"/contacts/{contact['id']}/").json()["contact"] == contact
    activities = api.get("/sales_activities/", params={"per_page": 100, "page": 1})
    assert activities.status_code == 200 and activities.json() == api.get("/sales_activities").json()
    # The slashed and the plain path are one endpoint to the request counts.
    counts = control.get("/requests/").json()["requests"]
    assert counts["GET /sales_activities"] == 2 and counts["POST /contacts"] == 1
    assert control.get("/snapshot/").json() == control.get("/snapshot").json()
    # One trailing slash, as documented; an empty segment is still an unknown path.
    assert api.get("/contacts//").json() == UNROUTED
