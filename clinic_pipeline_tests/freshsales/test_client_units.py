"""Pure logic with no server: limiter pacing on a fake clock, header and error parsing, models, names."""

from __future__ import annotations

import random
from decimal import Decimal

import httpx
import pytest

from clinic_pipeline.freshsales import JobStatus, RateLimiter, coerce_id, money_field, parse_money
from clinic_pipeline.freshsales.entities import list_key, path_of, root_of, search_kind
from clinic_pipeline.freshsales.errors import (
    AuthenticationError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    ValidationError,
    error_from_response,
    parse_error_messages,
)
from clinic_pipeline.freshsales.models import FieldDefinition
from clinic_pipeline.freshsales.ratelimit import parse_headers
from clinic_pipeline.freshsales.retry import outcome_unknown, retryable

EPOCH = 1_750_000_000.0


class FakeTime:
    """Monotonic and wall clocks that only move when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH + self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _limiter(t: FakeTime, per_hour: int = 1000, per_minute: int = 400, **kw: float) -> RateLimiter:
    return RateLimiter(
        per_hour, per_minute, clock=t.clock, wall_clock=t.wall, sleep=t.sleep, rng=random.Random(1), **kw
    )


def _sent_in_window(times: list[float], width: float) -> int:
    return max(sum(1 for x in times if start <= x < start + width) for start in times)


def test_sliding_windows_cap_every_minute_and_hour() -> None:
    t = FakeTime()
    limiter = _limiter(t, per_hour=50, per_minute=10)
    times = []
    for _ in range(120):
        limiter.acquire()
        times.append(t.now)
    assert _sent_in_window(times, 60) == 10
    assert _sent_in_window(times, 3600) == 50
    # Bursts are allowed up to the minute budget, then the hour budget decides: 120 requests need 2 hours+.
    assert times[9] == 0 and times[10] == 60
    assert 7200 <= times[-1] < 7300
    assert limiter.slept_seconds == pytest.approx(sum(t.slept))


def test_low_remaining_spreads_requests_until_the_reset() -> None:
    t = FakeTime()
    limiter = _limiter(t)
    limiter.acquire()
    limiter.observe(200, {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "500", "X-RateLimit-Reset": "600"})
    limiter.acquire()
    assert t.now == 0  # plenty left: no pacing
    limiter.observe(200, {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "20", "X-RateLimit-Reset": "600"})
    limiter.acquire()
    start = t.now
    limiter.acquire()
    assert t.now - start == pytest.approx(600 / 20)


def test_reset_as_epoch_seconds_or_milliseconds_reads_the_same_as_a_delta() -> None:
    for reset in ("90", str(int(EPOCH + 90)), str(int((EPOCH + 90) * 1000))):
        t = FakeTime()
        limiter = _limiter(t)
        limiter.acquire()
        limiter.observe(200, {"x-ratelimit-limit": "1000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
        limiter.acquire()
        assert t.now == pytest.approx(90), reset


def test_429_pauses_for_retry_after_then_reset_then_exponential_backoff() -> None:
    t = FakeTime()
    limiter = _limiter(t, backoff_base=1.0, backoff_max=8.0)
    limiter.observe(429, httpx.Headers({"Retry-After": "12", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "99"}))
    limiter.acquire()
    assert t.now == pytest.approx(12)

    limiter.observe(
        429, httpx.Headers({"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"})
    )
    before = t.now
    limiter.acquire()
    assert t.now - before == pytest.approx(30)

    limiter.observe(200, httpx.Headers({}))  # a success ends a run of 429s
    pauses = []
    for _ in range(6):  # no headers at all, or a 429 the budget does not explain
        limiter.observe(429, httpx.Headers({}))
        before = t.now
        limiter.acquire()
        pauses.append(t.now - before)
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= p <= c for p, c in zip(pauses, ceilings, strict=True))
    limiter.observe(200, httpx.Headers({}))
    before = t.now
    limiter.acquire()
    assert t.now == before


def test_header_waits_are_capped_and_garbage_is_ignored() -> None:
    t = FakeTime()
    limiter = _limiter(t, max_wait=100)
    limiter.observe(429, {"retry-after": "86400"})
    limiter.acquire()
    assert t.now == pytest.approx(100)
    limiter.observe(200, {"x-ratelimit-limit": "abc", "x-ratelimit-remaining": "", "x-ratelimit-reset": "soon"})
    before = t.now
    limiter.acquire()
    assert t.now == before


def test_retry_after_http_date() -> None:
    parsed = parse_headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now_epoch=1445412470.0)
    assert parsed.retry_after == pytest.approx(10)


def test_interrupted_wait_returns_its_slot() -> None:
    t = FakeTime()
    limiter = _limiter(t, per_minute=1)
    limiter.acquire()

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    limiter._sleep = interrupted
    with pytest.raises(KeyboardInterrupt):
        limiter.acquire()
    limiter._sleep = t.sleep
    limiter.acquire()
    assert t.now == pytest.approx(60)  # not 120: the abandoned slot was released


@pytest.mark.parametrize(
    ("status", "body", "kind", "messages"),
    [
        (
            400,
            {"errors": {"code": 400, "message": ["Name has already been taken"]}},
            ValidationError,
            ["Name has already been taken"],
        ),
        (422, {"errors": {"message": "Email is invalid"}}, ValidationError, ["Email is invalid"]),
        (401, {"message": "Invalid API key"}, AuthenticationError, ["Invalid API key"]),
        (404, {"errors": ["Record not found"]}, NotFoundError, ["Record not found"]),
        (400, {"errors": {"email": ["is not unique"]}}, ValidationError, ["email is not unique"]),
        (429, None, RateLimitedError, ["Too Many Requests"]),
        (502, "<html><body>Bad gateway</body></html>", ServerError, ["Bad Gateway"]),
        (500, "oops", ServerError, ["oops"]),
    ],
)
def test_error_envelopes(status: int, body: object, kind: type, messages: list[str]) -> None:
    if isinstance(body, str):
        response = httpx.Response(status, text=body)
    elif body is None:
        response = httpx.Response(status)
    else:
        response = httpx.Response(status, json=body)
    # A record's path: a 404 there is the record's (on an endpoint every account has, it names the base URL).
    error = error_from_response(response, method="PUT", path="/contacts/42")
    assert type(error) is kind
    assert error.messages == messages
    assert parse_error_messages(response) == messages
    assert str(error).startswith(f"PUT /contacts/42 HTTP {status}")


def test_retry_classification() -> None:
    request = httpx.Request("POST", "http://x/api/contacts")
    assert retryable(httpx.ConnectError("refused", request=request))
    assert not outcome_unknown(httpx.ConnectError("refused", request=request))
    for lost in (httpx.ReadTimeout("t", request=request), httpx.RemoteProtocolError("gone", request=request)):
        assert retryable(lost) and outcome_unknown(lost)
    assert not outcome_unknown(ServerError(status=503)) and outcome_unknown(ServerError(status=504))
    assert not retryable(ValidationError(status=400)) and not retryable(NotFoundError(status=404))


def test_ids_and_money() -> None:
    assert coerce_id("17008318589") == 17008318589
    with pytest.raises(ValueError):
        coerce_id(True)
    assert parse_money("5600.0") == Decimal("5600.0")
    assert parse_money("0.10") + parse_money("0.20") == Decimal("0.30")
    assert parse_money(None) is None and parse_money("") is None
    with pytest.raises(TypeError):
        parse_money(0.1)
    with pytest.raises(ValueError):
        parse_money("NaN")
    record = {"amount": "12.34", "custom_field": {"cf_amount_paid": "10.01"}}
    assert money_field(record, "amount") == Decimal("12.34")
    assert money_field(record, "cf_amount_paid") == Decimal("10.01")


def test_job_status_shapes_and_combination() -> None:
    assert JobStatus.from_body({"job_status": {"status": "completed", "results": []}}).done
    assert JobStatus.from_body({"status": "In Progress", "progress": 40}).done is False
    assert JobStatus.from_body({"job": {"progress": 100}}).done
    failed = JobStatus.from_body({"status": "FAILED"})
    assert failed.done and failed.failed
    assert JobStatus.from_body({"id": "17", "status": "queued", "whatever": {"x": 1}}).id == 17
    first = JobStatus(status="completed", total=2, succeeded=2, failed=0, results=[{"index": 0}, {"index": 1}])
    second = JobStatus(status="completed", total=1, succeeded=0, failed=1, results=[{"index": 0}])
    both = JobStatus.combine([(0, first), (100, second)])
    assert both.done and [r["index"] for r in both.results] == [0, 1, 100]
    assert (both.total, both.succeeded, both.failed_count) == (3, 2, 1)


def test_field_definition_tolerates_extra_keys() -> None:
    field = FieldDefinition.model_validate(
        {
            "id": "5",
            "name": "cf_plan",
            "label": "Plan",
            "type": "dropdown",
            "choices": [{"id": 1, "value": "A"}],
            "x": 1,
        }
    )
    assert field.id == 5 and field.choices[0].value == "A" and field.is_custom


def test_entity_names() -> None:
    assert (path_of("contacts"), root_of("contacts"), search_kind("contacts")) == ("contacts", "contact", "contact")
    assert root_of("sales_activities") == "sales_activity"
    for name in ("cm_lab_result", "custom_module/cm_lab_result"):
        assert path_of(name) == "custom_module/cm_lab_result"
        assert root_of(name) == list_key(name) == search_kind(name) == "cm_lab_result"
    with pytest.raises(ValueError):
        path_of("patients")
