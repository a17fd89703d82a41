"""Counters the loader records in its run metadata. Thread-safe; no payloads, no paths with values."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class ClientStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0  # attempts sent, retries included
        self.retries = 0
        self.rate_limited = 0  # 429 answers seen
        self.server_errors = 0  # 5xx answers seen
        self.transport_errors = 0  # no answer: timeouts, resets, refused connections
        self.outcome_unknown = 0
        self.unreadable_answers = 0  # 2xx whose body was not JSON (cut off on the way)
        self.reference_cached = 0  # reference reads answered from the reference cache, without a request
        self.by_endpoint: Counter[str] = Counter()  # "POST /contacts" -> attempts

    def record_attempt(self, endpoint: str) -> None:
        with self._lock:
            self.requests += 1
            self.by_endpoint[endpoint] += 1

    def record_status(self, status: int) -> None:
        with self._lock:
            if status == 429:
                self.rate_limited += 1
            elif status >= 500:
                self.server_errors += 1

    def record(self, counter: str) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def snapshot(self, limiter_slept_seconds: float = 0.0) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "rate_limited_429": self.rate_limited,
                "server_errors_5xx": self.server_errors,
                "transport_errors": self.transport_errors,
                "outcome_unknown": self.outcome_unknown,
                "unreadable_answers": self.unreadable_answers,
                "reference_cached": self.reference_cached,
                "limiter_slept_seconds": round(limiter_slept_seconds, 3),
                "by_endpoint": dict(sorted(self.by_endpoint.items())),
            }
