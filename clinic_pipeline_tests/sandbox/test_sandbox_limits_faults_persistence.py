"""Rate limiting, fault injection, request counts, test-mode gating, loopback-only and persistence."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from clinic_pipeline.sandbox.launcher import SandboxHandle, running_sandbox
from clinic_pipeline.sandbox.server import serve


def test_tiny_budget_set_at_runtime_gives_429_with_headers(api: httpx.Client, control: httpx.Client) -> None:
    assert control.post("/rate_limit", json={"requests_per_hour": 100, "requests_per_minute": 3}).status_code == 200
    answers = [api.get("/selector/territories") for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert all(r.headers["X-RateLimit-Limit"] == "3" for r in answers)
    refused = answers[-1]
    assert refused.json() == {"errors": {"code": 429, "message": ["API rate limit exceeded"]}}
    assert 0 < int(refused.headers["X-RateLimit-Reset"]) <= 60
    assert "Retry-After" not in refused.headers
    control.post("/rate_limit", json={"requests_per_minute": 1, "retry_after": True})
    api.get("/selector/territories")
    with_retry = api.get("/selector/territories")
    assert with_retry.status_code == 429
    assert with_retry.headers["Retry-After"] == with_retry.headers["X-RateLimit-Reset"]


def test_unlimited_plan_still_sends_the_headers(api: httpx.Client) -> None:
    response = api.get("/selector/territories")
    assert response.headers["X-RateLimit-Limit"] == response.headers["X-RateLimit-Remaining"] == "1000000"


def test_plan_and_flags_set_the_budget_for_all_keys_together(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "db.sqlite", "k", plan="growth", requests_per_hour=3, retry_after=True) as handle:
        url = f"{handle.base_url}/api/selector/territories"
        admin = {"Authorization": "Token token=k"}
        member = {"Authorization": "Token token=k-member"}
        first = httpx.get(url, headers=admin)
        assert first.headers["X-RateLimit-Limit"] == "3"
        assert httpx.get(url, headers=member).status_code == 200
        assert httpx.get(url, headers=admin).status_code == 200
        refused = httpx.get(url, headers=member)
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 3600
        assert httpx.get(f"{handle.root_url}/_sandbox/rate_limit").json()["requests_per_minute"] == 400


def test_fault_kinds_429_5xx_slow_and_reset(api: httpx.Client, control: httpx.Client) -> None:
    control.post("/faults", json={"rate_429": 1})
    throttled = api.get("/selector/territories")
    assert throttled.status_code == 429
    assert throttled.json()["errors"]["code"] == 429
    control.post("/faults", json={"rate_5xx": 1})
    failed = api.post("/contacts", json={"contact": {"email": "never@example.com"}})
    assert failed.status_code == 503
    control.post("/faults", json={"rate_slow": 1, "slow_seconds": 0.3})
    started = time.monotonic()
    assert api.get("/selector/territories").status_code == 200
    assert time.monotonic() - started >= 0.3
    control.post("/faults", json={"rate_reset": 1})
    with pytest.raises(httpx.TransportError):
        api.post("/contacts", json={"contact": {"email": "lost-answer@example.com"}})
    control.post("/faults", json={"rate_429": 0, "rate_5xx": 0, "rate_reset": 0, "rate_slow": 0})
    # The reset came after the write: the record exists even though its answer was lost.
    contacts = control.get("/snapshot").json()["contacts"]
    assert [c["email"] for c in contacts] == ["lost-answer@example.com"]
    assert api.get("/selector/territories").status_code == 200
    assert control.post("/faults", json={"rate_429": 0.8, "rate_5xx": 0.8}).status_code == 400
    assert control.post("/faults", json={"bogus": 1}).status_code == 400


def test_truncate_fault_cuts_a_processed_answer_under_an_honest_content_length(
    api: httpx.Client, control: httpx.Client
) -> None:
    control.post("/faults", json={"rate_truncate": 1, "seed": 3})
    created = api.post("/contacts", json={"contact": {"first_name": "Zoë", "email": "cut@example.com"}})
    listed = api.get("/contacts/view/16002000001", params={"per_page": 100})
    refused = api.post("/contacts", json={"contact": {"email": "cut@example.com"}})
    control.post("/faults", json={})
    whole = api.get("/contacts/view/16002000001", params={"per_page": 100})
    for cut, status in ((created, 201), (listed, 200)):
        # Framed as complete (httpx read it without a protocol error): only the JSON parser can tell.
        assert cut.status_code == status and cut.headers["content-type"] == "application/json"
        assert 0 < int(cut.headers["content-length"]) == len(cut.content)
        with pytest.raises(ValueError):
            cut.json()
    assert whole.content.startswith(listed.content) and len(listed.content) < len(whole.content)
    # The write was applied although its answer was cut; error answers are left whole.
    assert [c["email"] for c in control.get("/snapshot").json()["contacts"]] == ["cut@example.com"]
    assert refused.status_code == 400 and refused.json()["errors"]["code"] == 400
    assert control.post("/faults", json={"rate_truncate": 0.6, "rate_reset": 0.6}).status_code == 400


def test_faults_repeat_with_the_same_seed(api: httpx.Client, control: httpx.Client) -> None:
    def run() -> list[int]:
        control.post("/faults", json={"rate_429": 0.3, "rate_5xx": 0.3, "seed": 42})
        return [api.get("/selector/territories").status_code for _ in range(20)]

    first, second = run(), run()
    assert first == second
    assert {200, 429, 503} <= set(first)


def test_request_counts_are_per_method_and_path_template(api: httpx.Client, control: httpx.Client) -> None:
    ids = [
        api.post("/contacts", json={"contact": {"email": f"c{i}@example.com"}}).json()["contact"]["id"]
        for i in range(2)
    ]
    for cid in ids:
        api.get(f"/contacts/{cid}")
    counts = control.get("/requests").json()
    assert counts["requests"] == {"POST /contacts": 2, "GET /contacts/{id}": 2}
    assert counts["total"] == 4


def test_controls_are_404_without_test_mode_and_data_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    headers = {"Authorization": "Token token=k"}
    with running_sandbox(db, "k", test_mode=False) as first:
        assert httpx.post(f"{first.root_url}/_sandbox/reset").status_code == 404
        with httpx.Client(base_url=f"{first.base_url}/api", headers=headers) as api:
            account = api.post("/sales_accounts", json={"sales_account": {"name": "Kept"}}).json()["sales_account"]
            module = api.post(
                "/settings/module_customizations",
                json={"module_customization": {"singular_name": "Lab Result", "plural_name": "Lab Results"}},
            ).json()["module_customization"]
            api.post(
                f"/settings/cm_lab_result/forms/{module['forms'][0]['id']}/fields",
                json={"label": "Test", "field_type": "text"},
            )
            lab = api.post(
                "/custom_module/cm_lab_result",
                json={"cm_lab_result": {"name": "HbA1c", "custom_field": {"cf_test": "A1c"}}},
            )
            assert lab.status_code == 201
    with (
        running_sandbox(db, "k", test_mode=True) as second,
        httpx.Client(base_url=f"{second.base_url}/api", headers=headers) as api,
    ):
        assert api.get(f"/sales_accounts/{account['id']}").json()["sales_account"]["name"] == "Kept"
        assert api.post("/sales_accounts", json={"sales_account": {"name": "kept"}}).status_code == 400
        later = api.post("/sales_accounts", json={"sales_account": {"name": "New"}}).json()["sales_account"]
        assert later["id"] > lab.json()["cm_lab_result"]["id"]
        snapshot = httpx.get(f"{second.root_url}/_sandbox/snapshot").json()
        assert [r["custom_field"] for r in snapshot["cm_lab_result"]] == [{"cf_test": "A1c"}]


def test_snapshot_is_canonical_and_reset_empties_it(
    sandbox: SandboxHandle, api: httpx.Client, control: httpx.Client
) -> None:
    api.post("/contacts", json={"contact": {"email": "s@example.com"}})
    first, second = control.get("/snapshot"), control.get("/snapshot")
    assert first.content == second.content
    contact = first.json()["contacts"][0]
    assert list(contact) == sorted(contact)
    assert "updated_at" not in contact
    control.post("/reset")
    assert control.get("/snapshot").json()["contacts"] == []


def test_only_loopback_addresses_are_served(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "192.0.2.10"):
        with pytest.raises(ValueError, match="loopback"):
            serve(host, 8999, tmp_path / "db.sqlite", "k")
