"""Which failures are retried, and how (tenacity: exponential backoff with full jitter).

Policy
------
- Retried, for every request: 429 (the rate limiter also pauses every thread, see ratelimit.py),
  5xx, and transport failures that happen *before* the request could reach the server
  (connect errors and timeouts, pool timeouts).
- Retried only for requests safe to repeat (GET, PUT, DELETE, upsert by identifier, bulk upsert):
  failures after the request may have been received (read/write timeouts, resets, a connection
  closed without an answer: `ReadError`, `WriteError`, `RemoteProtocolError`, `ReadTimeout`...).
  Also 500/502/504 for those: a gateway may have passed the request on before failing. Also a 2xx
  whose body the caller needs but cannot parse (`UnreadableAnswerError`: cut off on the way): the
  request was applied, and what it answered is lost.
- For a non-idempotent request (a create), such a failure means the outcome is unknown: re-sending
  could create a duplicate, so the client raises `OutcomeUnknownError` (no payload in it) and the
  caller reconciles by source key before re-sending, unless it passed `retry_unknown_outcome=True`.
  429 and 503 are taken as "not applied" (the API refuses before doing anything), so those are
  retried even for creates.
- Never retried: 400/401/403/404/422 and other 4xx: the same request would fail the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from clinic_pipeline.freshsales.errors import FreshsalesError, RateLimitedError, ServerError, UnreadableAnswerError

# Statuses where the API refused the request before acting on it.
NOT_APPLIED_STATUSES = frozenset({429, 503})

# The request never left (or never reached a server): always safe to send again.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def never_sent(exc: BaseException) -> bool:
    return isinstance(exc, _NEVER_SENT)


def outcome_unknown(exc: BaseException) -> bool:
    """The request may have been applied, but no answer says so."""
    if isinstance(exc, httpx.TransportError):
        return not never_sent(exc)
    if isinstance(exc, UnreadableAnswerError):
        return True
    return isinstance(exc, ServerError) and exc.status not in NOT_APPLIED_STATUSES


def retryable(exc: BaseException) -> bool:
    """Worth another attempt, for a request safe to repeat (see `outcome_unknown` for the others)."""
    if isinstance(exc, RateLimitedError | ServerError | UnreadableAnswerError):
        return True
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0

    def retrying(
        self, *, on_retry: Callable[[RetryCallState], None], sleep: Callable[[float], None] = time.sleep
    ) -> Retrying:
        """A fresh tenacity controller for one logical request (it holds per-request state)."""
        return Retrying(
            sleep=sleep,
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_random_exponential(multiplier=self.backoff_base, max=self.backoff_max),
            retry=retry_if_exception(retryable),
            before_sleep=on_retry,
            reraise=True,
        )


def describe(exc: BaseException) -> str:
    """The kind of failure, for a log line: a class name and status, never a message or body."""
    if isinstance(exc, FreshsalesError) and exc.status is not None:
        return f"{type(exc).__name__}({exc.status})"
    return type(exc).__name__
