"""Client-side pacing to the account's request budget, shared by every thread of one client.

Why not a library bucket (pyrate-limiter was considered): its API changed shape across majors
(2.x RequestRate, 3.x Rate/BucketFactory, 4.x blocking try_acquire), and what this client needs most
is not the bucket but feedback from the server: the budget is shared with every other integration
on the account, so the `X-RateLimit-*` headers, not our own count, say how much is left, and a 429
must pause *all* threads at once. A sliding log plus that feedback is ~100 lines and fully testable
with an injected clock, with no real sleeping.

Three constraints decide when the next request may go, and `acquire` waits for the latest of them:

1. **Sliding windows** (per hour and per minute): at most `limit` requests in any window of that
   width. A sliding log is used rather than a token bucket because the server counts in fixed
   windows; a full token bucket plus its refill can fit nearly twice the limit into one fixed window.
2. **Header pacing**: when `X-RateLimit-Remaining` falls below `low_water` of `X-RateLimit-Limit`,
   requests are spread evenly so the remainder lasts until `X-RateLimit-Reset`; at 0, wait for the reset.
3. **A pause after a 429**: `Retry-After` when sent; else the reset time when the headers say the
   budget is spent; else (a 429 the headers do not explain) an exponential pause that doubles with
   each consecutive 429, with jitter.

`X-RateLimit-Reset` may be epoch seconds (or milliseconds) or seconds-until: values above
`EPOCH_THRESHOLD` are read as epoch times. Waits derived from headers are capped at `max_wait`
so a garbled header cannot stall a run for days.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# 2001-09-09 in epoch seconds: no plausible "seconds until reset" is that large.
EPOCH_THRESHOLD = 1_000_000_000
EPOCH_MS_THRESHOLD = 1_000_000_000_000


@dataclass(frozen=True)
class BudgetHeaders:
    limit: int | None
    remaining: int | None
    reset_in: float | None  # seconds from now
    retry_after: float | None  # seconds from now


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def _seconds_until(raw: float, now_epoch: float) -> float:
    if raw >= EPOCH_MS_THRESHOLD:
        return raw / 1000 - now_epoch
    if raw >= EPOCH_THRESHOLD:
        return raw - now_epoch
    return raw


def parse_headers(headers: Mapping[str, str], now_epoch: float) -> BudgetHeaders:
    """Read the budget headers (names in any case); anything missing or unreadable is None."""
    headers = {name.lower(): value for name, value in headers.items()}
    limit = _number(headers.get("x-ratelimit-limit"))
    remaining = _number(headers.get("x-ratelimit-remaining"))
    reset = _number(headers.get("x-ratelimit-reset"))
    reset_in = max(0.0, _seconds_until(reset, now_epoch)) if reset is not None else None
    retry_after: float | None = None
    raw_retry = headers.get("retry-after")
    if raw_retry is not None:
        seconds = _number(raw_retry)
        if seconds is None:
            try:
                seconds = parsedate_to_datetime(raw_retry).timestamp() - now_epoch
            except (TypeError, ValueError):
                seconds = None
        retry_after = max(0.0, seconds) if seconds is not None else None
    return BudgetHeaders(
        limit=int(limit) if limit is not None else None,
        remaining=int(remaining) if remaining is not None else None,
        reset_in=reset_in,
        retry_after=retry_after,
    )


class RateLimiter:
    """Thread-safe pacing. `clock` is monotonic seconds, `wall_clock` epoch seconds (for epoch resets),
    `sleep` blocks; all three are injectable so tests run without real time passing."""

    def __init__(
        self,
        requests_per_hour: int,
        requests_per_minute: int,
        *,
        low_water: float = 0.1,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        max_wait: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if requests_per_hour <= 0 or requests_per_minute <= 0:
            raise ValueError("request budgets must be positive")
        self._windows: list[tuple[float, int, deque[float]]] = [
            (3600.0, requests_per_hour, deque()),
            (60.0, requests_per_minute, deque()),
        ]
        self._low_water = low_water
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_wait = max_wait
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._spacing = 0.0  # seconds between requests demanded by the headers
        self._last_slot = float("-inf")
        self._paused_until = float("-inf")
        self._consecutive_429 = 0
        self.slept_seconds = 0.0
        self.last_remaining: int | None = None  # the last `X-RateLimit-Remaining` an answer carried

    def _window_slot(self, now: float) -> float:
        slot = now
        for width, limit, log in self._windows:
            while log and log[0] <= now - width:
                log.popleft()
            if len(log) >= limit:
                slot = max(slot, log[-limit] + width)
        return slot

    def acquire(self) -> float:
        """Block until a request may be sent; returns the seconds waited.

        The slot is reserved under the lock and slept outside it, so concurrent threads queue in
        order instead of all waking at once. A 429 seen while a thread sleeps extends its wait.
        """
        with self._lock:
            now = self._clock()
            slot = max(self._window_slot(now), self._last_slot + self._spacing, self._paused_until, now)
            self._last_slot = slot
            for _, _, log in self._windows:
                log.append(slot)
        reserved = slot
        waited = 0.0
        try:
            while True:
                delay = slot - self._clock()
                if delay <= 0:
                    break
                self._sleep(delay)
                waited += delay
                with self._lock:
                    slot = max(slot, self._paused_until)
        except BaseException:
            # An interrupted wait sends nothing: give the slot back so it does not delay the others.
            with self._lock:
                for _, _, log in self._windows:
                    if reserved in log:
                        log.remove(reserved)
            raise
        if waited:
            with self._lock:
                self.slept_seconds += waited
        return waited

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Adapt to one answer's headers (any status)."""
        budget = parse_headers(headers, self._wall_clock())
        with self._lock:
            if budget.remaining is not None:
                self.last_remaining = budget.remaining
            now = self._clock()
            if status == 429:
                self._on_429(now, budget)
                return
            self._consecutive_429 = 0
            self._adapt(now, budget)

    def _adapt(self, now: float, budget: BudgetHeaders) -> None:
        if budget.remaining is None or budget.limit is None or budget.reset_in is None:
            return
        reset_in = min(budget.reset_in, self._max_wait)
        if budget.remaining <= 0:
            self._paused_until = max(self._paused_until, now + reset_in)
            self._spacing = 0.0
        elif budget.remaining < self._low_water * budget.limit:
            self._spacing = reset_in / budget.remaining
        else:
            self._spacing = 0.0

    def _on_429(self, now: float, budget: BudgetHeaders) -> None:
        self._consecutive_429 += 1
        if budget.retry_after is not None:
            pause = budget.retry_after
        elif budget.remaining is not None and budget.remaining <= 0 and budget.reset_in is not None:
            pause = budget.reset_in
        else:
            # Unexplained by the headers (or none sent): back off exponentially, with jitter so
            # threads that were refused together do not return together.
            ceiling = min(self._backoff_max, self._backoff_base * 2 ** (self._consecutive_429 - 1))
            pause = ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        self._paused_until = max(self._paused_until, now + min(pause, self._max_wait))
