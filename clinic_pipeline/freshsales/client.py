"""The Freshsales HTTP client: one keep-alive connection pool, paced, retried, typed, safe to log.

One `FreshsalesClient` is shared by the loader's thread pool: the rate limiter and the stats are
thread-safe, and httpx's pool is. Every attempt logs method, path template, status, duration and
attempt number, never bodies (they hold PHI), query strings (a lookup value is PHI) or the key.
Retry policy: see retry.py; pacing: see ratelimit.py.
"""

from __future__ import annotations

import logging
import mimetypes
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Protocol, Self
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr
from tenacity import RetryCallState

from clinic_pipeline.freshsales import entities as fs_entities
from clinic_pipeline.freshsales.errors import (
    FreshsalesError,
    JobTimeoutError,
    NetworkError,
    NotFoundError,
    OutcomeUnknownError,
    UnreadableAnswerError,
    ViewNotFoundError,
    error_from_response,
)
from clinic_pipeline.freshsales.models import (
    FieldDefinition,
    JobStatus,
    ListMeta,
    ModuleCustomization,
    Owner,
    ViewFilter,
    coerce_record_id,
)
from clinic_pipeline.freshsales.ratelimit import RateLimiter
from clinic_pipeline.freshsales.retry import RetryPolicy, describe, outcome_unknown
from clinic_pipeline.freshsales.stats import ClientStats
from clinic_pipeline.settings import Settings

logger = logging.getLogger("clinic_pipeline.freshsales")

MAX_PER_PAGE = 100
MAX_BULK_ITEMS = 100  # bulk_upsert and bulk_destroy; the documented figure is uncertain, 100 is the safe side
MAX_KEYS_PER_SEARCH = 100
JOB_POLL_FIRST = 0.5
JOB_POLL_FACTOR = 1.6
JOB_POLL_MAX = 5.0


class _DropQueryFromHttpxLogs(logging.Filter):
    """httpx logs every request's full URL at INFO; a query string can hold PHI (`/lookup?q=<email>`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(a.copy_with(query=None) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


def _install_httpx_log_filter() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _DropQueryFromHttpxLogs) for f in httpx_logger.filters):
        httpx_logger.addFilter(_DropQueryFromHttpxLogs())


_install_httpx_log_filter()


@dataclass
class _Call:
    """One logical request: what to send and how to treat a lost answer."""

    method: str
    template: str  # for logs and counts: "/contacts/{id}"
    path: str  # for errors: "/contacts/17008318589", never a query string
    params: Mapping[str, Any] | None = None
    json: Any = None
    data: Mapping[str, str] | None = None
    upload: Path | None = None
    upload_name: str | None = None
    idempotent: bool = True
    retry_unknown_outcome: bool = False
    # False when a 2xx status is the whole answer (a delete): a body cut off on the way then loses nothing.
    reads_body: bool = True


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _records_in(body: Any, key: str) -> list[dict[str, Any]]:
    """The record list of a list answer, under its expected key or, failing that, the only list there."""
    if isinstance(body, list):
        return [coerce_record_id(r) for r in body if isinstance(r, dict)]
    if not isinstance(body, dict):
        return []
    rows = body.get(key)
    if rows is None:
        lists = [v for k, v in body.items() if k != "meta" and isinstance(v, list)]
        rows = lists[0] if len(lists) == 1 else []
    if isinstance(rows, dict):  # lookup nests: {"contacts": {"contacts": [...]}}
        rows = rows.get(key, [])
    return [coerce_record_id(r) for r in rows if isinstance(r, dict)]


def _meta(body: Any) -> ListMeta:
    meta = body.get("meta") if isinstance(body, dict) else None
    return ListMeta.model_validate(meta) if isinstance(meta, dict) else ListMeta()


def _one(body: Any, root: str, method: str, path: str) -> dict[str, Any]:
    record = body.get(root) if isinstance(body, dict) else None
    if not isinstance(record, dict):
        raise FreshsalesError(f"answer lacks its {root!r} object", method=method, path=path)
    return coerce_record_id(record)


def _key_of(record: dict[str, Any], field: str) -> str | None:
    value = record.get(field)
    if value is None:
        value = (record.get("custom_field") or {}).get(field)
    return None if value is None else str(value)


def _targetable(value: str) -> str:
    return fs_entities.TARGETABLE_TYPES.get(value, value)


class ReferenceCache(Protocol):
    """Where the account's reference reads (selectors, field definitions, custom modules) are kept between the
    processes of one run (`load.reference_cache`): a body it gives back is answered without a request."""

    def get(self, path: str) -> Any | None: ...

    def put(self, path: str, body: Any) -> None: ...

    def drop(self, prefix: str) -> None: ...


class FreshsalesClient:
    """A Freshsales API client. `base_url` is the part before `/api`."""

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr,
        *,
        requests_per_hour: int = 1000,
        requests_per_minute: int = 400,
        timeout: float = 30.0,
        max_attempts: int = 6,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 10,
        rate_limiter: RateLimiter | None = None,
        retry_policy: RetryPolicy | None = None,
        job_timeout: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
        reference_cache: ReferenceCache | None = None,
    ) -> None:
        if not isinstance(api_key, SecretStr):
            raise TypeError("api_key must be a pydantic SecretStr")
        self.base_url = base_url.rstrip("/")
        self._api_prefix = urlsplit(self.base_url).path.rstrip("/") + "/api"
        self._limiter = rate_limiter or RateLimiter(requests_per_hour, requests_per_minute)
        self._retry = retry_policy or RetryPolicy(max_attempts=max_attempts)
        self._job_timeout = job_timeout
        self._sleep = sleep
        self._stats = ClientStats()
        self._reference_cache = reference_cache
        self._http = httpx.Client(
            base_url=self.base_url + "/api",
            headers={
                "Authorization": f"Token token={api_key.get_secret_value()}",
                "Accept": "application/json",
                "User-Agent": "clinic-pipeline",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> FreshsalesClient:
        base_url, api_key = settings.require_freshsales()
        return cls(
            base_url,
            api_key,
            requests_per_hour=settings.freshsales_requests_per_hour,
            requests_per_minute=settings.freshsales_requests_per_minute,
            timeout=settings.freshsales_timeout_seconds,
            max_connections=max(settings.freshsales_max_concurrency, 2),
        )

    def __repr__(self) -> str:
        return f"FreshsalesClient(base_url={self.base_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ---- stats -------------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, Any]:
        """Requests, retries, 429s, 5xx, transport errors, unknown outcomes, unreadable 2xx bodies, limiter
        sleep, per endpoint."""
        return self._stats.snapshot(self._limiter.slept_seconds)

    @property
    def budget_remaining(self) -> int | None:
        """The account's requests left as the last answer's `X-RateLimit-Remaining` said (None: never said)."""
        return self._limiter.last_remaining

    @property
    def request_counts(self) -> dict[str, int]:
        """Attempts per `METHOD /path/template`, retries included."""
        return dict(self._stats.by_endpoint)

    # ---- the request core --------------------------------------------------------------------

    def _attempt(self, call: _Call, attempt: int, lost: list[bool]) -> tuple[httpx.Response, Any]:
        self._limiter.acquire()
        self._stats.record_attempt(f"{call.method} {call.template}")
        started = time.monotonic()
        handle: BinaryIO | None = None
        try:
            files = None
            if call.upload is not None:
                # Reopened per attempt: a retry must send the file from its start. httpx streams it.
                handle = call.upload.open("rb")
                name = call.upload_name or call.upload.name
                content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
                files = {"file": (name, handle, content_type)}
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.json, data=call.data, files=files
            )
        except httpx.TransportError as exc:
            self._stats.record("transport_errors")
            logger.info(
                "%s %s failed: %s after %.0f ms (attempt %d)",
                call.method,
                call.template,
                describe(exc),
                (time.monotonic() - started) * 1000,
                attempt,
            )
            self._on_failure(call, exc, lost)
            raise
        finally:
            if handle is not None:
                handle.close()
        elapsed = (time.monotonic() - started) * 1000
        self._limiter.observe(response.status_code, response.headers)
        self._stats.record_status(response.status_code)
        logger.debug(
            "%s %s -> %d in %.0f ms (attempt %d)", call.method, call.template, response.status_code, elapsed, attempt
        )
        if response.is_success:
            return response, self._body(call, response, attempt, lost) if call.reads_body else None
        error = error_from_response(response, method=call.method, path=call.path)
        self._on_failure(call, error, lost)
        raise error

    def _body(self, call: _Call, response: httpx.Response, attempt: int, lost: list[bool]) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:  # JSONDecodeError, or UnicodeDecodeError when the cut splits a character
            self._stats.record("unreadable_answers")
            logger.info(
                "%s %s -> %d with a body that is not JSON (%d bytes; attempt %d)",
                call.method,
                call.template,
                response.status_code,
                len(response.content),
                attempt,
            )
            error = UnreadableAnswerError(
                f"the answer's body is not JSON ({len(response.content)} bytes): cut off on the way?",
                status=response.status_code,
                method=call.method,
                path=call.path,
            )
            self._on_failure(call, error, lost)
            raise error from None

    def _on_failure(self, call: _Call, exc: BaseException, lost: list[bool]) -> None:
        if not outcome_unknown(exc):
            return
        lost.append(True)
        if not call.idempotent and not call.retry_unknown_outcome:
            self._stats.record("outcome_unknown")
            raise OutcomeUnknownError(
                f"no answer to a non-idempotent request ({describe(exc)}): it may have been applied; "
                "reconcile by source key before re-sending",
                method=call.method,
                path=call.path,
            ) from None

    def _log_retry(self, call: _Call) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            self._stats.record("retries")
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            logger.warning(
                "%s %s: %s on attempt %d, retrying in %.1f s",
                call.method,
                call.template,
                describe(exc) if exc else "failure",
                state.attempt_number,
                wait,
            )

        return before_sleep

    def _send(self, call: _Call) -> tuple[httpx.Response, Any]:
        """The answer and, when the call reads it, its parsed body."""
        lost: list[bool] = []  # set when an attempt's outcome was unknown (the request may have been applied)
        retrying = self._retry.retrying(on_retry=self._log_retry(call), sleep=self._sleep)
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(call, attempt.retry_state.attempt_number, lost)
        except httpx.TransportError as exc:
            raise NetworkError(
                f"no answer after {self._retry.max_attempts} attempts ({describe(exc)})",
                method=call.method,
                path=call.path,
            ) from None
        except NotFoundError:
            # A DELETE whose earlier attempt was applied but unanswered finds the record gone: done.
            if call.method == "DELETE" and lost:
                return httpx.Response(200), None
            raise
        raise AssertionError("tenacity ended without an outcome")  # pragma: no cover

    def _json(self, call: _Call) -> Any:
        return self._send(call)[1]

    def _get(self, template: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._json(_Call("GET", template, path, params=params))

    def _reference(self, path: str) -> Any:
        """A reference GET (no query), answered from the reference cache when it holds the path."""
        cache = self._reference_cache
        if cache is not None:
            body = cache.get(path)
            if body is not None:
                self._stats.record("reference_cached")
                return body
        body = self._get(path, path)
        if cache is not None and body is not None:
            cache.put(path, body)
        return body

    def use_reference_cache(self, cache: ReferenceCache | None) -> None:
        """Reference reads are asked of `cache` first, and kept there (None: always the API)."""
        self._reference_cache = cache

    def _schema_changed(self) -> None:
        """A write to the account's schema: its cached definitions are no longer the account's."""
        if self._reference_cache is not None:
            self._reference_cache.drop("/settings/")

    # ---- reference data and schema -----------------------------------------------------------

    def selector(self, name: str) -> list[dict[str, Any]]:
        """`GET /selector/<name>` rows (not paged). Owners arrive under `users`."""
        body = self._reference(f"/selector/{name}")
        return _records_in(body, "users" if name == "owners" else name)

    def owners(self) -> list[Owner]:
        """Users of the account (an admin selector: a non-admin key gets PermissionDeniedError)."""
        return [Owner.model_validate(u) for u in self.selector("owners")]

    def field_definitions(self, entity: str) -> list[FieldDefinition]:
        segment = fs_entities.settings_segment(entity)
        body = self._reference(f"/settings/{segment}/fields")
        return [FieldDefinition.model_validate(f) for f in _records_in(body, "fields")]

    def module_customizations(self) -> list[ModuleCustomization]:
        body = self._reference("/settings/module_customizations")
        return [ModuleCustomization.model_validate(m) for m in _records_in(body, "module_customizations")]

    def create_module(
        self,
        singular_name: str,
        plural_name: str,
        *,
        description: str | None = None,
        retry_unknown_outcome: bool = False,
    ) -> ModuleCustomization:
        """Create a custom module (admin key). On OutcomeUnknownError, list the modules before retrying."""
        spec: dict[str, Any] = {"singular_name": singular_name, "plural_name": plural_name}
        if description is not None:
            spec["description"] = description
        path = "/settings/module_customizations"
        call = _Call(
            "POST",
            path,
            path,
            json={"module_customization": spec},
            idempotent=False,
            retry_unknown_outcome=retry_unknown_outcome,
        )
        self._schema_changed()  # before sending too: a run killed before the answer must not trust the cache
        try:
            return ModuleCustomization.model_validate(_one(self._json(call), "module_customization", "POST", path))
        finally:
            self._schema_changed()

    def create_module_field(
        self,
        module: str,
        form_id: int,
        label: str,
        field_type: str,
        *,
        required: bool = False,
        choices: Sequence[str] | None = None,
        related_entity: str | None = None,
        retry_unknown_outcome: bool = False,
    ) -> FieldDefinition:
        """Add a field to a custom module's form. On OutcomeUnknownError, re-read `field_definitions`."""
        segment = fs_entities.settings_segment(module)
        spec: dict[str, Any] = {"label": label, "field_type": field_type, "required": required}
        if choices is not None:
            spec["choices"] = [{"value": c} for c in choices]
        if related_entity is not None:
            spec["related_entity"] = related_entity
        template = f"/settings/{segment}/forms/{{form_id}}/fields"
        path = f"/settings/{segment}/forms/{form_id}/fields"
        call = _Call("POST", template, path, json=spec, idempotent=False, retry_unknown_outcome=retry_unknown_outcome)
        self._schema_changed()  # before sending too: a run killed before the answer must not trust the cache
        try:
            return FieldDefinition.model_validate(_one(self._json(call), "field", "POST", path))
        finally:
            self._schema_changed()

    # ---- views and lists ---------------------------------------------------------------------

    def filters(self, entity: str) -> list[ViewFilter]:
        path = f"/{fs_entities.path_of(entity)}/filters"
        return [ViewFilter.model_validate(f) for f in _records_in(self._get(path, path), "filters")]

    def find_view(self, entity: str, *names: str) -> ViewFilter:
        """The first of `names` this account has (exact, then ignoring case and spacing).

        Without names: the view named `All ...`, else the account's default view. Careful: deals have
        no "All Deals" and their default ("Open Deals") holds only open deals.
        """
        views = self.filters(entity)

        def norm(text: str) -> str:
            return " ".join(text.lower().split())

        for name in names:
            for match in (lambda v, n=name: v.name == n, lambda v, n=name: norm(v.name) == norm(n)):
                found = next((v for v in views if match(v)), None)
                if found is not None:
                    return found
        if not names:
            every = [v for v in views if norm(v.name).startswith("all ")]
            if len(every) == 1:
                return every[0]
            default = next((v for v in views if v.is_default), None)
            if default is not None:
                return default
        wanted = ", ".join(repr(n) for n in names) or "a default view"
        have = ", ".join(repr(v.name) for v in views) or "none"
        raise ViewNotFoundError(
            f"{entity}: no view {wanted}; the account has {have}",
            method="GET",
            path=f"/{fs_entities.path_of(entity)}/filters",
        )

    def _view_page(
        self, entity: str, view_id: int, page: int, per_page: int, sort: str, sort_type: str
    ) -> tuple[list[dict[str, Any]], ListMeta]:
        segment = fs_entities.path_of(entity)
        params = {"page": page, "per_page": per_page, "sort": sort, "sort_type": sort_type}
        body = self._get(f"/{segment}/view/{{view_id}}", f"/{segment}/view/{view_id}", params)
        return _records_in(body, fs_entities.list_key(entity)), _meta(body)

    def iter_view(
        self, entity: str, view_id: int, *, per_page: int = 100, sort: str = "updated_at", sort_type: str = "asc"
    ) -> Iterator[dict[str, Any]]:
        """Every record of a view, page by page, until an empty page or the last of `total_pages`."""
        per_page = min(per_page, MAX_PER_PAGE)
        page = 1
        while True:
            rows, meta = self._view_page(entity, view_id, page, per_page, sort, sort_type)
            yield from rows
            if not rows or (meta.total_pages is not None and page >= meta.total_pages):
                return
            page += 1

    def count(self, entity: str, view_id: int) -> int:
        """Records in a view, from `meta.total` of a one-record page."""
        rows, meta = self._view_page(entity, view_id, 1, 1, "updated_at", "asc")
        if meta.total is not None:
            return meta.total
        if meta.total_pages is not None:
            return meta.total_pages if rows else 0
        raise FreshsalesError(f"{entity} view answer has no meta.total", method="GET", path=f"/{entity}/view")

    def _filtered_list(self, entity: str, filter_name: str) -> list[dict[str, Any]]:
        """Tasks/appointments: `filter` is mandatory; meta has `total` only, so stop on it or an empty page."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {"filter": filter_name, "page": page, "per_page": MAX_PER_PAGE}
            body = self._get(f"/{entity}", f"/{entity}", params)
            rows = _records_in(body, entity)
            out.extend(rows)
            total = _meta(body).total
            if not rows or (total is not None and len(out) >= total):
                return out
            page += 1

    def list_tasks(self, filter: str) -> list[dict[str, Any]]:
        """`filter`: open, completed, overdue, due today, due tomorrow."""
        return self._filtered_list("tasks", filter)

    def list_appointments(self, filter: str) -> list[dict[str, Any]]:
        """`filter`: past or upcoming."""
        return self._filtered_list("appointments", filter)

    def newest_first(self, entity: str, filter_name: str | None = None) -> Iterator[list[dict[str, Any]]]:
        """A list endpoint's pages (`GET /sales_activities`, `/tasks?filter=`, `/appointments?filter=`) asked newest
        record first (`sort=created_at&sort_type=desc`), one request per page, as the caller reads on: a caller
        that looks for records it has just sent stops long before the end. Whether the API honoured the order is
        the caller's to check (the records' `created_at`)."""
        page, seen = 1, 0
        while True:
            params: dict[str, Any] = {"page": page, "per_page": MAX_PER_PAGE, "sort": "created_at", "sort_type": "desc"}
            if filter_name is not None:
                params["filter"] = filter_name
            body = self._get(f"/{entity}", f"/{entity}", params)
            rows = _records_in(body, entity)
            if not rows:
                return
            yield rows
            meta = _meta(body)
            seen += len(rows)
            if (meta.total_pages is not None and page >= meta.total_pages) or (
                meta.total is not None and seen >= meta.total
            ):
                return
            page += 1

    def list_all(self, entity: str) -> list[dict[str, Any]]:
        """Every record of a list endpoint without views or filters (`GET /sales_activities`), page by page."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self._get(f"/{entity}", f"/{entity}", {"page": page, "per_page": MAX_PER_PAGE})
            rows = _records_in(body, entity)
            out.extend(rows)
            meta = _meta(body)
            if not rows or (meta.total_pages is not None and page >= meta.total_pages):
                return out
            page += 1

    def list_total(self, entity: str) -> int | None:
        """How many records a list endpoint holds (`meta.total` of its first page), in one request."""
        return _meta(self._get(f"/{entity}", f"/{entity}", {"page": 1, "per_page": 1})).total

    # ---- single records ----------------------------------------------------------------------

    def get(self, entity: str, id: int, include: str | None = None) -> dict[str, Any]:
        """One record. Side-loaded `include`s (answered beside the record) are attached to it under
        their own names unless the record already has that key."""
        segment = fs_entities.path_of(entity)
        path = f"/{segment}/{id}"
        body = self._get(f"/{segment}/{{id}}", path, {"include": include} if include else None)
        root = fs_entities.root_of(entity)
        record = _one(body, root, "GET", path)
        for key, value in body.items():
            if key != root and key not in record:
                record[key] = value
        return record

    def create(self, entity: str, record: dict[str, Any], *, retry_unknown_outcome: bool = False) -> dict[str, Any]:
        """Create a record. Raises OutcomeUnknownError when the answer is lost (unless told to retry):
        look the record up by its source key before sending it again."""
        segment, root = fs_entities.path_of(entity), fs_entities.root_of(entity)
        call = _Call(
            "POST",
            f"/{segment}",
            f"/{segment}",
            json={root: record},
            idempotent=False,
            retry_unknown_outcome=retry_unknown_outcome,
        )
        return _one(self._json(call), root, "POST", f"/{segment}")

    def update(self, entity: str, id: int, record: dict[str, Any]) -> dict[str, Any]:
        segment, root = fs_entities.path_of(entity), fs_entities.root_of(entity)
        path = f"/{segment}/{id}"
        return _one(self._json(_Call("PUT", f"/{segment}/{{id}}", path, json={root: record})), root, "PUT", path)

    def delete(self, entity: str, id: int) -> None:
        """Move a record to the Recycle Bin."""
        segment = fs_entities.path_of(entity)
        self._send(_Call("DELETE", f"/{segment}/{{id}}", f"/{segment}/{id}", reads_body=False))

    def forget(self, entity: str, id: int) -> None:
        """Remove a record for good."""
        segment = fs_entities.path_of(entity)
        self._send(_Call("DELETE", f"/{segment}/{{id}}/forget", f"/{segment}/{id}/forget", reads_body=False))

    def upsert(
        self, entity: str, unique_identifier: dict[str, Any], record: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Create or update by identifier; returns (record, created). Safe to retry."""
        segment, root = fs_entities.path_of(entity), fs_entities.root_of(entity)
        path = f"/{segment}/upsert"
        response, body = self._send(
            _Call("POST", path, path, json={"unique_identifier": unique_identifier, root: record})
        )
        return _one(body, root, "POST", path), response.status_code == 201

    # ---- bulk --------------------------------------------------------------------------------

    def bulk_upsert(self, entity: str, items: Sequence[dict[str, Any]]) -> JobStatus:
        """Upsert items (`{"unique_identifier": {...}, "data": {...}}`, or the identifier beside `data`)
        in requests of at most 100, then poll each job until it is done or failed. Result indexes
        refer to positions in `items`. Raises JobTimeoutError past the client's `job_timeout`."""
        segment, key = fs_entities.path_of(entity), fs_entities.list_key(entity)
        path = f"/{segment}/bulk_upsert"
        submitted: list[tuple[int, str]] = []
        for offset in range(0, len(items), MAX_BULK_ITEMS):
            chunk = list(items[offset : offset + MAX_BULK_ITEMS])
            body = self._json(_Call("POST", path, path, json={key: chunk}, idempotent=True))
            url = body.get("job_status_url") if isinstance(body, dict) else None
            if not isinstance(url, str):
                raise FreshsalesError("bulk_upsert answer lacks job_status_url", method="POST", path=path)
            submitted.append((offset, url))
        # Jobs run while the later ones are submitted and the first is awaited: only the first waits.
        polled = [
            (offset, self._poll_job(url, first_wait=JOB_POLL_FIRST if i == 0 else 0.0))
            for i, (offset, url) in enumerate(submitted)
        ]
        return JobStatus.combine(polled)

    def _job_path(self, url: str) -> str:
        """The job's path under our API prefix. The key is only ever sent to the configured host."""
        target, ours = urlsplit(url), urlsplit(self.base_url)
        if target.netloc and (target.scheme, target.netloc) != (ours.scheme, ours.netloc):
            raise FreshsalesError("job_status_url points to another host; not following it", path="/job_statuses")
        path = target.path
        if path.startswith(self._api_prefix + "/"):
            return path[len(self._api_prefix) :]
        if path.startswith("/api/"):
            return path[len("/api") :]
        return path

    def _poll_job(self, url: str, *, first_wait: float = JOB_POLL_FIRST) -> JobStatus:
        """A job is queued, never done on submission: wait before the first poll, so that polls (which
        spend the request budget) are mostly the one that finds it done."""
        path = self._job_path(url)
        deadline = time.monotonic() + self._job_timeout
        if first_wait > 0:
            self._sleep(first_wait)
        interval = JOB_POLL_FIRST
        while True:
            job = JobStatus.from_body(self._get("/job_statuses/{id}", path))
            if job.done:
                return job
            if time.monotonic() + interval > deadline:
                raise JobTimeoutError(
                    f"job not finished after {self._job_timeout:.0f} s (status {job.status!r})", method="GET", path=path
                )
            self._sleep(interval)
            interval = min(interval * JOB_POLL_FACTOR, JOB_POLL_MAX)

    def bulk_destroy(self, entity: str, ids: Sequence[int], *, retry_unknown_outcome: bool = False) -> None:
        """Move records to the Recycle Bin, 100 ids per request. A lost answer raises OutcomeUnknownError:
        a blind retry would be refused for the ids already deleted."""
        segment = fs_entities.path_of(entity)
        path = f"/{segment}/bulk_destroy"
        for chunk in _chunks(list(ids), MAX_BULK_ITEMS):
            call = _Call(
                "POST",
                path,
                path,
                json={"selected_ids": list(chunk)},
                idempotent=False,
                retry_unknown_outcome=retry_unknown_outcome,
                reads_body=False,
            )
            self._send(call)

    # ---- search ------------------------------------------------------------------------------

    def filtered_search(self, entity: str, filter_rule: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every record matching all rules, 100 a page (usually one call); ids as ints."""
        kind = fs_entities.search_kind(entity)
        path = f"/filtered_search/{kind}"
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            call = _Call(
                "POST", path, path, params={"page": page, "per_page": MAX_PER_PAGE}, json={"filter_rule": filter_rule}
            )
            body = self._json(call)
            rows = _records_in(body, fs_entities.list_key(entity))
            out.extend(rows)
            total = _meta(body).total
            # Trust meta.total when sent: the server may cap per_page below what was asked.
            if not rows or (len(out) >= total if total is not None else len(rows) < MAX_PER_PAGE):
                return out
            page += 1

    def filtered_count(self, entity: str, filter_rule: list[dict[str, Any]]) -> int:
        """How many records match, from `meta.total` of a one-record page (one request)."""
        kind = fs_entities.search_kind(entity)
        path = f"/filtered_search/{kind}"
        call = _Call("POST", path, path, params={"page": 1, "per_page": 1}, json={"filter_rule": filter_rule})
        body = self._json(call)
        total = _meta(body).total
        if total is None:
            raise FreshsalesError("filtered_search answer has no meta.total", method="POST", path=path)
        return total

    def find_by_keys(self, entity: str, attribute: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Source key -> record for the keys present in Freshsales: the reconciliation primitive.

        `attribute` is a standard field (`external_id`) or a custom one (`cf_source_key`, also
        accepted as `custom_field.cf_source_key`). Keys go 100 per `is_in` search. When a key is on
        several records (a duplicate), the oldest (lowest id) wins and a warning counts them.
        """
        field = attribute.removeprefix("custom_field.")
        wanted = list(dict.fromkeys(str(k) for k in keys if k is not None and str(k) != ""))
        found: dict[str, dict[str, Any]] = {}
        duplicates = 0
        for chunk in _chunks(wanted, MAX_KEYS_PER_SEARCH):
            # The API may compare case-insensitively: map what comes back onto the caller's spelling.
            by_fold = {k.casefold(): k for k in chunk}
            rule = [{"attribute": attribute, "operator": "is_in", "value": list(chunk)}]
            for record in self.filtered_search(entity, rule):
                value = _key_of(record, field)
                key = None if value is None else (value if value in by_fold.values() else by_fold.get(value.casefold()))
                if key is None:
                    continue
                if key in found:
                    duplicates += 1
                    if record["id"] >= found[key]["id"]:
                        continue
                found[key] = record
        if duplicates:
            logger.warning("%s: %d records share a %s with another record", entity, duplicates, field)
        return found

    def lookup(self, q: str, field: str, entities: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """`GET /lookup`: records whose `field` (standard or `cf_*`) equals `q`, keyed by plural entity
        name. `entities`: plural or singular names (`contacts` or `contact`)."""
        kinds = [fs_entities.kind_of(e) for e in entities]
        body = self._get("/lookup", "/lookup", {"q": q, "f": field, "entities": ",".join(kinds)})
        found: dict[str, list[dict[str, Any]]] = {}
        for kind in kinds:
            plural = fs_entities.plural_of_kind(kind)
            found[plural] = _records_in(body.get(plural, {}) if isinstance(body, dict) else {}, plural)
        return found

    # ---- files -------------------------------------------------------------------------------

    def upload_document(
        self,
        path: Path | str,
        file_name: str,
        targetable_type: str,
        targetable_id: int,
        is_shared: bool = False,
        *,
        retry_unknown_outcome: bool = False,
    ) -> dict[str, Any]:
        """Attach a file, streamed from disk (multipart). `targetable_type`: Contact, SalesAccount, Deal
        (or the plural entity name). A lost answer raises OutcomeUnknownError: check
        `document_associations` before uploading again."""
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(source)
        call = _Call(
            "POST",
            "/documents",
            "/documents",
            data={
                "file_name": file_name,
                "is_shared": "true" if is_shared else "false",
                "targetable_type": _targetable(targetable_type),
                "targetable_id": str(targetable_id),
            },
            upload=source,
            upload_name=file_name,
            idempotent=False,
            retry_unknown_outcome=retry_unknown_outcome,
        )
        return _one(self._json(call), "document", "POST", "/documents")

    def document_associations(self, entity: str, id: int) -> list[dict[str, Any]]:
        segment = fs_entities.path_of(entity)
        body = self._get(f"/{segment}/{{id}}/document_associations", f"/{segment}/{id}/document_associations")
        return _records_in(body, "document_associations")

    def create_document_link(
        self,
        targetable_type: str,
        targetable_id: int,
        url: str,
        name: str | None = None,
        is_shared: bool = False,
        *,
        retry_unknown_outcome: bool = False,
    ) -> dict[str, Any]:
        """Attach a URL instead of a file (e.g. one over the size limit)."""
        spec: dict[str, Any] = {
            "url": url,
            "targetable_type": _targetable(targetable_type),
            "targetable_id": targetable_id,
            "is_shared": is_shared,
        }
        if name is not None:
            spec["name"] = name
        call = _Call(
            "POST",
            "/document_links",
            "/document_links",
            json={"document_link": spec},
            idempotent=False,
            retry_unknown_outcome=retry_unknown_outcome,
        )
        return _one(self._json(call), "document_link", "POST", "/document_links")
