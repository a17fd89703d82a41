"""Typed errors for Freshsales answers, built from the error envelope and safe to log.

An error carries the HTTP status, the API's messages, the method and the request path *without* its
query string (a `/lookup?q=` value or a filter could be a patient's name or email). It never carries
the request or response body beyond the API's own messages, and never the API key.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from clinic_pipeline.errors import OperatorError

# An HTML error page (a proxy's 502, a maintenance page) is not worth quoting: it is long and says nothing.
_MAX_TEXT_MESSAGE = 200


class FreshsalesError(OperatorError):
    """Base of every error the client raises. `status` is None when no HTTP answer arrived."""

    def __init__(
        self,
        messages: list[str] | str | None = None,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        if messages is None:
            messages = []
        self.messages: list[str] = [messages] if isinstance(messages, str) else list(messages)
        self.status = status
        self.method = method
        self.path = path
        super().__init__(self._summary())

    def _summary(self) -> str:
        where = f"{self.method} {self.path}" if self.method and self.path else (self.path or "")
        status = f"HTTP {self.status}" if self.status is not None else type(self).__name__
        text = "; ".join(self.messages)
        return " ".join(part for part in (where, status) if part) + (f": {text}" if text else "")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, method={self.method!r}, "
            f"path={self.path!r}, messages={self.messages!r})"
        )


class AuthenticationError(FreshsalesError):
    """401: the API key is wrong or its user is inactive."""


class PermissionDeniedError(FreshsalesError):
    """403: the key's user may not do this (e.g. a non-admin key on an admin selector)."""


class NotFoundError(FreshsalesError):
    """404: unknown id, view, module or path."""


class ValidationError(FreshsalesError):
    """400/422: the API refused the payload; `messages` says why (may quote field values: do not log)."""


class RateLimitedError(FreshsalesError):
    """429 after every retry was spent."""


class ServerError(FreshsalesError):
    """5xx after every retry was spent."""


class NetworkError(FreshsalesError):
    """No usable answer (connect failure, timeout, reset) after every retry of a request safe to repeat."""


class UnreadableAnswerError(FreshsalesError):
    """A 2xx answer whose body is not JSON: cut off part-way (a proxy that lost its upstream mid-body
    frames what it got as complete), or a proxy's own page. The request was received and answered, but
    what it returned is lost; reads are retried, and a create becomes an OutcomeUnknownError."""


class OutcomeUnknownError(FreshsalesError):
    """A non-idempotent request (a create) may or may not have been applied: the answer was lost.

    Re-sending could duplicate the record: find it by its source key first (`find_by_keys`). The
    error carries no payload, only where it happened and the cause's kind.
    """


class JobTimeoutError(FreshsalesError):
    """A bulk job did not finish within the polling deadline (it may still finish server-side)."""


class ViewNotFoundError(NotFoundError):
    """None of the requested views exists in this account; `messages` lists the views that do."""


_BY_STATUS: dict[int, type[FreshsalesError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: ValidationError,
    429: RateLimitedError,
}


def error_class(status: int) -> type[FreshsalesError]:
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, FreshsalesError)


def _as_messages(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    if isinstance(value, dict):
        # Some endpoints key messages by field: {"email": ["is invalid"]}.
        return [f"{k} {m}" for k, v in value.items() for m in _as_messages(v)]
    return [str(value)]


def parse_error_messages(response: httpx.Response) -> list[str]:
    """Messages from any of the envelopes seen: `{"errors": {"code", "message": [...]}}`,
    `{"errors": {"message": "..."}}`, `{"errors": [...]}`, `{"message": ...}`, or a non-JSON body."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = response.text.strip()
        if not text or text.lstrip().startswith("<") or len(text) > _MAX_TEXT_MESSAGE:
            return [response.reason_phrase] if response.reason_phrase else []
        return [text]
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, dict):
            found = _as_messages(errors.get("message", errors.get("messages")))
            return found or _as_messages({k: v for k, v in errors.items() if k != "code"})
        if errors is not None:
            return _as_messages(errors)
        for key in ("message", "error", "description"):
            if key in body:
                return _as_messages(body[key])
    return [response.reason_phrase] if response.reason_phrase else []


class EndpointNotFoundError(NotFoundError):
    """404 on an endpoint every Freshsales account has (no record id in the path): the base URL is wrong."""

    def _summary(self) -> str:
        return (
            f"{super()._summary()}: every Freshsales account serves this path, so FRESHSALES_BASE_URL is wrong "
            "(it is the part before /api, e.g. https://<account>.myfreshworks.com/crm/sales)"
        )


def _names_a_record(path: str) -> bool:
    """A path with an id (a record, a view) or a custom module may 404 for good reason; the others cannot."""
    return any(part.isdigit() for part in path.split("/")) or "custom_module" in path


def error_from_response(response: httpx.Response, *, method: str, path: str) -> FreshsalesError:
    cls = error_class(response.status_code)
    if cls is NotFoundError and not _names_a_record(path):
        cls = EndpointNotFoundError
    return cls(parse_error_messages(response), status=response.status_code, method=method, path=path)
