"""Injected faults and tiny budgets: the end state is right, nothing is duplicated, 429s never storm."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from clinic_pipeline.freshsales import FreshsalesClient, OutcomeUnknownError, RetryPolicy, UnreadableAnswerError
from clinic_pipeline.sandbox.launcher import SandboxHandle
from clinic_pipeline_tests.freshsales.conftest import MakeClient, fast_limiter


def _faults(control: httpx.Client, **rates: float) -> None:
    assert control.post("/faults", json={"seed": 7, **rates}).status_code == 200


def _create_reconciled(client: FreshsalesClient, record: dict[str, Any]) -> tuple[int, int]:
    """What the loader does: create; on an unknown outcome, look the key up before sending again.
    Returns (id, unknown outcomes met)."""
    unknown = 0
    while True:
        try:
            return client.create("contacts", record)["id"], unknown
        except OutcomeUnknownError:
            unknown += 1
            found = client.find_by_keys("contacts", "external_id", [record["external_id"]])
            if record["external_id"] in found:
                return found[record["external_id"]]["id"], unknown


def test_429_and_5xx_are_retried_and_creates_do_not_duplicate(client: FreshsalesClient, control: httpx.Client) -> None:
    _faults(control, rate_429=0.15, rate_5xx=0.15)
    ids = [client.create("contacts", {"first_name": "A", "external_id": f"k{i}"})["id"] for i in range(30)]
    for i, rid in enumerate(ids[:10]):
        client.update("contacts", rid, {"job_title": f"t{i}"})
    _faults(control)
    contacts = control.get("/snapshot").json()["contacts"]
    assert sorted(c["external_id"] for c in contacts) == sorted(f"k{i}" for i in range(30))
    assert {c["job_title"] for c in contacts if c["job_title"]} == {f"t{i}" for i in range(10)}
    stats = client.stats
    assert stats["rate_limited_429"] > 0 and stats["server_errors_5xx"] > 0
    assert stats["retries"] == stats["rate_limited_429"] + stats["server_errors_5xx"]
    assert stats["outcome_unknown"] == 0


def test_resets_make_creates_report_unknown_outcomes_that_reconcile_without_duplicates(
    make_client: MakeClient, control: httpx.Client
) -> None:
    client = make_client()
    _faults(control, rate_reset=0.25)
    results = [_create_reconciled(client, {"first_name": "R", "external_id": f"r{i}"}) for i in range(40)]
    # Idempotent calls ride through the same resets by retrying.
    view = client.find_view("contacts", "All Contacts")
    listed = list(client.iter_view("contacts", view.id, per_page=10))
    _faults(control)
    contacts = control.get("/snapshot").json()["contacts"]
    assert sorted(c["external_id"] for c in contacts) == sorted(f"r{i}" for i in range(40))  # no duplicates
    assert sorted(c["id"] for c in contacts) == sorted(rid for rid, _ in results)
    assert len(listed) == 40
    assert sum(unknown for _, unknown in results) == client.stats["outcome_unknown"] > 0


def test_slow_answers_past_the_timeout_are_unknown_for_creates_and_retried_for_reads(
    make_client: MakeClient, control: httpx.Client
) -> None:
    client = make_client(timeout=0.25)
    seed = client.create("contacts", {"first_name": "S", "external_id": "s0"})
    _faults(control, rate_slow=0.3, slow_seconds=0.5)
    results = [_create_reconciled(client, {"first_name": "S", "external_id": f"s{i}"}) for i in range(1, 9)]
    for _ in range(6):
        assert client.get("contacts", seed["id"])["external_id"] == "s0"
    _faults(control)
    time.sleep(0.6)  # let the last slow request land before reading the state
    contacts = control.get("/snapshot").json()["contacts"]
    assert sorted(c["external_id"] for c in contacts) == sorted(f"s{i}" for i in range(9))
    assert len(results) == 8
    assert client.stats["transport_errors"] > 0


def test_retry_unknown_outcome_is_an_opt_in_that_can_duplicate(make_client: MakeClient, control: httpx.Client) -> None:
    client = make_client()
    contact = client.create("contacts", {"first_name": "N", "external_id": "n"})
    note = {"description": "seen 2019-04-02", "targetable_type": "Contact", "targetable_id": contact["id"]}
    _faults(control, rate_reset=0.5)
    with pytest.raises(OutcomeUnknownError):
        for _ in range(10):
            client.create("notes", note)
    _faults(control)
    before = len(control.get("/snapshot").json()["notes"])
    _faults(control, rate_reset=0.5)
    for _ in range(10):
        client.create("notes", note, retry_unknown_outcome=True)
    _faults(control)
    # Notes have no unique key: every retried create that had landed is a duplicate. Hence the default.
    assert len(control.get("/snapshot").json()["notes"]) - before > 10


def test_cut_off_answers_to_reads_are_retried(client: FreshsalesClient, control: httpx.Client) -> None:
    # Non-ASCII names let a cut fall inside a UTF-8 character, which fails decoding before JSON parsing.
    ids = [
        client.create("contacts", {"first_name": "Zoë", "email": f"t{i}@x.example", "external_id": f"t{i}"})["id"]
        for i in range(12)
    ]
    _faults(control, rate_truncate=0.4)
    view = client.find_view("contacts", "All Contacts")
    listed = list(client.iter_view("contacts", view.id, per_page=5))
    read = [client.get("contacts", rid)["external_id"] for rid in ids]
    found = client.find_by_keys("contacts", "external_id", [f"t{i}" for i in range(12)])
    updated, created = client.upsert("contacts", {"emails": "t0@x.example"}, {"job_title": "Dr"})
    _faults(control)
    assert sorted(r["id"] for r in listed) == sorted(ids)
    assert read == [f"t{i}" for i in range(12)]
    assert {k: r["id"] for k, r in found.items()} == {f"t{i}": rid for i, rid in enumerate(ids)}
    assert (updated["id"], updated["job_title"], created) == (ids[0], "Dr", False)
    stats = client.stats
    assert stats["unreadable_answers"] > 0 and stats["retries"] == stats["unreadable_answers"]
    assert stats["outcome_unknown"] == 0


def test_cut_off_answers_to_creates_are_unknown_outcomes_that_reconcile_without_duplicates(
    client: FreshsalesClient, control: httpx.Client
) -> None:
    _faults(control, rate_truncate=0.3)
    results = [_create_reconciled(client, {"first_name": "Zoë", "external_id": f"u{i}"}) for i in range(30)]
    _faults(control)
    contacts = control.get("/snapshot").json()["contacts"]
    assert sorted(c["external_id"] for c in contacts) == sorted(f"u{i}" for i in range(30))  # no duplicates
    assert sorted(c["id"] for c in contacts) == sorted(rid for rid, _ in results)
    assert sum(unknown for _, unknown in results) == client.stats["outcome_unknown"] > 0


def test_when_every_answer_is_cut_off_errors_are_typed_and_deletes_complete(
    sandbox: SandboxHandle, make_client: MakeClient, control: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(retry_policy=RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.02))
    kept = client.create("contacts", {"first_name": "K", "external_id": "k"})
    _faults(control, rate_truncate=1)
    with pytest.raises(OutcomeUnknownError) as unknown:
        client.create("contacts", {"first_name": "Y", "external_id": "y"})
    with pytest.raises(UnreadableAnswerError) as unreadable:
        client.get("contacts", kept["id"])
    client.delete("contacts", kept["id"])  # a 2xx status is a delete's whole answer: its cut body loses nothing
    _faults(control)
    contacts = {c["external_id"]: c for c in control.get("/snapshot").json()["contacts"]}
    assert set(contacts) == {"k", "y"} and contacts["k"]["is_deleted"]  # the unknown create had landed
    assert unreadable.value.status == 200 and client.request_counts["GET /contacts/{id}"] == 3
    assert client.request_counts["POST /contacts"] == 2  # the lost create was not re-sent
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for error in (unknown.value, unreadable.value):
        assert error.__cause__ is None
        assert sandbox.api_key not in f"{error} {error!r}" and sandbox.api_key not in logged


class _StopWaiting(Exception):
    """Raised by the test's sleep when the client decides to wait long: it chose to pause, not to storm."""


class _Sleeper:
    def __init__(self, longest: float = 1.0) -> None:
        self.longest = longest
        self.long_waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        if seconds > self.longest:
            self.long_waits.append(seconds)
            raise _StopWaiting
        time.sleep(seconds)


def _hammer(client: FreshsalesClient, calls: int, workers: int) -> tuple[int, int]:
    def one(_: int) -> bool:
        try:
            client.selector("territories")
            return True
        except _StopWaiting:
            return False

    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = sum(pool.map(one, range(calls)))
    return done, calls - done


def test_pacing_from_a_known_tiny_budget_sends_no_429(make_client: MakeClient, control: httpx.Client) -> None:
    control.post("/rate_limit", json={"requests_per_hour": 1000, "requests_per_minute": 12})
    sleeper = _Sleeper()
    client = make_client(rate_limiter=fast_limiter(requests_per_hour=1000, requests_per_minute=12, sleep=sleeper))
    done, stopped = _hammer(client, calls=30, workers=4)
    assert control.get("/requests").json()["total"] == done == 12
    assert client.stats["rate_limited_429"] == 0
    # Queued threads wait in turn; the first in line waits for the oldest request to leave the minute.
    assert stopped == 18 and 0 < min(sleeper.long_waits) <= 60


def test_pacing_learns_an_unknown_budget_from_headers_without_a_429_storm(
    make_client: MakeClient, control: httpx.Client
) -> None:
    control.post("/rate_limit", json={"requests_per_hour": 1000, "requests_per_minute": 15})
    sleeper = _Sleeper()
    # The client believes it has 400 a minute; only the headers tell it otherwise.
    client = make_client(
        rate_limiter=fast_limiter(requests_per_hour=1000, requests_per_minute=400, sleep=sleeper),
        retry_policy=RetryPolicy(max_attempts=6, backoff_base=0.01, backoff_max=0.02),
    )
    done, stopped = _hammer(client, calls=60, workers=4)
    sent = control.get("/requests").json()["total"]
    refused = client.stats["rate_limited_429"]
    assert done <= 2 * 15  # the server's windows are clock-aligned: a minute boundary may fall inside the test
    assert refused <= 2 * 4  # at most the requests in flight when a window's budget ran out
    assert sent == done + refused
    assert stopped == 60 - done and sleeper.long_waits


def test_a_429_caused_by_another_integration_pauses_for_retry_after(
    sandbox: SandboxHandle, make_client: MakeClient, control: httpx.Client
) -> None:
    control.post("/rate_limit", json={"requests_per_hour": 1000, "requests_per_minute": 3, "retry_after": True})
    headers = {"Authorization": f"Token token={sandbox.api_key}"}
    url = f"{sandbox.base_url}/api/selector/territories"
    other = [httpx.get(url, headers=headers) for _ in range(4)]  # another integration spends the budget
    assert [r.status_code for r in other] == [200, 200, 200, 429]
    retry_after = float(other[-1].headers["Retry-After"])
    sleeper = _Sleeper()
    client = make_client(rate_limiter=fast_limiter(sleep=sleeper))
    done, stopped = _hammer(client, calls=3, workers=1)
    assert (done, stopped) == (0, 3)
    assert client.stats["rate_limited_429"] == 1  # one refusal, then it waits instead of asking again
    assert abs(sleeper.long_waits[0] - retry_after) <= 2
