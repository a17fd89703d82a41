"""Every error kind arrives typed, and neither the key nor PHI in query strings leaks into errors or logs."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import SecretStr

from clinic_pipeline.freshsales import (
    AuthenticationError,
    FreshsalesClient,
    FreshsalesError,
    NetworkError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    ValidationError,
)
from clinic_pipeline.sandbox.launcher import SandboxHandle, free_port
from clinic_pipeline_tests.freshsales.conftest import MakeClient

PHI_EMAIL = "jane.doe.secret@example.com"


def _every_error(sandbox: SandboxHandle, make_client: MakeClient, control: httpx.Client) -> list[FreshsalesError]:
    errors: list[FreshsalesError] = []
    client = make_client(retry_policy=RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02))

    def expect(kind: type[FreshsalesError], action: object) -> None:
        with pytest.raises(kind) as caught:
            action()  # type: ignore[operator]
        errors.append(caught.value)

    bad_key = make_client(api_key=sandbox.api_key + "-wrong")
    expect(AuthenticationError, bad_key.owners)
    member = make_client(api_key=sandbox.api_key + "-member")
    expect(PermissionDeniedError, member.owners)
    expect(NotFoundError, lambda: client.get("contacts", 99_999_999_999))
    expect(ValidationError, lambda: client.create("deals", {"name": "no amount"}))
    client.create("contacts", {"first_name": "J", "last_name": "D", "email": PHI_EMAIL})
    expect(ValidationError, lambda: client.create("contacts", {"first_name": "K", "email": PHI_EMAIL}))
    # PHI in a query string: the lookup itself succeeds; a failing one (unknown field) must not echo q.
    expect(ValidationError, lambda: client.lookup(PHI_EMAIL, "no_such_field", ["contacts"]))
    control.post("/faults", json={"rate_429": 1})
    expect(RateLimitedError, client.owners)
    control.post("/faults", json={"rate_429": 0, "rate_5xx": 1})
    expect(ServerError, client.owners)
    # A 503 is a refusal, not a lost answer: even a create is retried, then reported as a ServerError.
    expect(ServerError, lambda: client.create("contacts", {"first_name": "X"}))
    control.post("/faults", json={"rate_5xx": 0, "rate_reset": 1})
    expect(NetworkError, client.owners)
    expect(OutcomeUnknownError, lambda: client.create("contacts", {"first_name": "Y"}))
    control.post("/faults", json={"rate_reset": 0})
    nowhere = FreshsalesClient(
        f"http://127.0.0.1:{free_port()}/crm/sales",
        SecretStr(sandbox.api_key),
        retry_policy=RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02),
    )
    with nowhere:
        expect(NetworkError, nowhere.owners)
    return errors


def test_each_status_maps_to_its_type_and_no_key_or_phi_leaks(
    sandbox: SandboxHandle, make_client: MakeClient, control: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors = _every_error(sandbox, make_client, control)
    statuses = [e.status for e in errors]
    assert statuses == [401, 403, 404, 400, 400, 400, 429, 503, 503, None, None, None]
    assert any("Email" in m or "email" in m for m in errors[4].messages)
    assert errors[2].method == "GET" and errors[2].path == "/contacts/99999999999"
    assert errors[5].path == "/lookup"
    for error in errors:
        for text in (str(error), repr(error)):
            assert sandbox.api_key not in text
            assert "Token token" not in text
        assert error.__cause__ is None or sandbox.api_key not in repr(error.__cause__)
    assert PHI_EMAIL not in str(errors[5]) + repr(errors[5])
    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert logged  # httpx, httpcore and our own lines were captured at DEBUG
    assert sandbox.api_key not in logged
    assert PHI_EMAIL not in logged
    assert "GET /contacts/{id} -> 404" in logged


def test_client_repr_hides_the_key(client: FreshsalesClient, sandbox: SandboxHandle) -> None:
    assert sandbox.api_key not in repr(client)
    assert sandbox.api_key not in str(client.stats)


def test_not_retried_client_errors_cost_one_request(client: FreshsalesClient, control: httpx.Client) -> None:
    with pytest.raises(NotFoundError):
        client.get("deals", 12345)
    with pytest.raises(ValidationError):
        client.create("sales_accounts", {"city": "no name"})
    assert control.get("/requests").json()["total"] == 2
    assert client.stats["retries"] == 0


def test_a_wrong_base_url_path_names_the_setting_and_a_missing_record_does_not(
    client: FreshsalesClient, sandbox: SandboxHandle
) -> None:
    wrong = FreshsalesClient(f"{sandbox.root_url}/crm/sale", SecretStr(sandbox.api_key))
    with wrong, pytest.raises(NotFoundError) as raised:
        wrong.owners()
    assert "FRESHSALES_BASE_URL is wrong" in str(raised.value) and "\n" not in str(raised.value)
    assert sandbox.api_key not in str(raised.value)
    with pytest.raises(NotFoundError) as gone:
        client.get("contacts", 987654)
    assert "FRESHSALES_BASE_URL" not in str(gone.value)
