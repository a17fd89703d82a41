"""The per-request pipeline every API route goes through: count, authenticate, rate-limit, inject faults,
run the handler, and answer in Freshsales' envelope with the rate-limit headers."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import struct
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from clinic_pipeline.sandbox import jobs, seed
from clinic_pipeline.sandbox.entities import (
    CONTACT_MOBILE_INDEX,
    Context,
    account_name_keys,
    contact_email_keys,
    contact_mobile_keys,
)
from clinic_pipeline.sandbox.errors import ApiError
from clinic_pipeline.sandbox.faults import FaultInjector
from clinic_pipeline.sandbox.ratelimit import PLANS, RateLimiter, Verdict
from clinic_pipeline.sandbox.store import Store

TRANSPORT_KEY = "sandbox.transport"
logger = logging.getLogger(__name__)
DEFAULT_MAX_FILE_BYTES = 150 * 1024 * 1024


@dataclass
class Limits:
    per_hour: int | None
    per_minute: int | None
    retry_after: bool

    @classmethod
    def for_plan(cls, plan: str, per_hour: int | None, per_minute: int | None, retry_after: bool) -> Limits:
        if plan not in PLANS:
            raise ValueError(f"unknown plan {plan!r}: choose one of {', '.join(PLANS)}")
        hour, minute = PLANS[plan]
        return cls(
            per_hour if per_hour is not None else hour, per_minute if per_minute is not None else minute, retry_after
        )


@dataclass
class Sandbox:
    db: Path
    api_key: str
    test_mode: bool
    limits: Limits
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    requests: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.store = Store(
            self.db,
            {
                "contact": contact_email_keys,
                CONTACT_MOBILE_INDEX: contact_mobile_keys,
                "sales_account": account_name_keys,
            },
        )
        self.files_dir = self.db.with_name(self.db.name + ".files")
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.limiter = RateLimiter(self.limits.per_hour, self.limits.per_minute, self.limits.retry_after)
        self.faults = FaultInjector()
        if not self.store.get_setting("api_keys"):
            seed.seed_users(self.store, self.api_key)
        else:
            # A restart may bring a new key: it takes the seeded admin's and member's places.
            seed.grant_keys(self.store, self.api_key)
        jobs.finish_due_jobs(self.store)

    def reset(self) -> None:
        self.store.clear()
        for stored in self.files_dir.iterdir():
            stored.unlink()
        seed.seed_users(self.store, self.api_key)
        self.requests.clear()
        self.faults = FaultInjector()
        self.limiter.configure(self.limits.per_hour, self.limits.per_minute, self.limits.retry_after)

    def user_for(self, request: Request) -> int:
        header = request.headers.get("authorization", "")
        if not header.startswith("Token token="):
            raise ApiError(401, "Authorization header missing: send Token token=<API key>")
        key = header.removeprefix("Token token=").strip()
        # Rails' token parser (Freshsales is a Rails app) reads `token="KEY"` as `token=KEY`; clients send both.
        if len(key) >= 2 and key[0] == key[-1] == '"':
            key = key[1:-1]
        user_id = self.store.get_setting("api_keys", {}).get(key)
        if user_id is None:
            raise ApiError(401, "Invalid API key")
        user = self.store.get("user", user_id)
        if user is None or not user["is_active"]:
            raise ApiError(401, "The user of this API key is not active")
        return int(user_id)

    def is_admin(self, user_id: int) -> bool:
        user = self.store.get("user", user_id)
        return user is not None and user["role"] == "admin"


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")


def error_response(status: int, messages: list[str]) -> Response:
    return json_response({"errors": {"code": status, "message": messages}}, status)


def _rate_headers(response: Response, verdict: Verdict, retry_after: bool) -> Response:
    response.headers["X-RateLimit-Limit"] = str(verdict.limit)
    response.headers["X-RateLimit-Remaining"] = str(verdict.remaining)
    response.headers["X-RateLimit-Reset"] = str(verdict.reset_seconds)
    if retry_after and response.status_code == 429:
        response.headers["Retry-After"] = str(verdict.reset_seconds)
    return response


async def _drop_connection(request: Request) -> None:
    transport = request.scope.get(TRANSPORT_KEY)
    if transport is None:
        raise RuntimeError("connection-reset faults need the sandbox's own uvicorn protocol")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0 makes close() send RST, the way a crashed proxy looks to a client.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    # Let uvicorn notice the disconnect before the (discarded) response is handed to it.
    await asyncio.sleep(0.01)


Handler = Callable[[Request, Context], Awaitable[Response]]


def api_endpoint(path: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    template = re.sub(r":\w+}", "}", path)

    async def endpoint(request: Request) -> Response:
        sandbox: Sandbox = request.app.state.sandbox
        sandbox.requests[f"{request.method} {template}"] += 1
        retry_after = sandbox.limiter.retry_after
        try:
            user_id = sandbox.user_for(request)
        except ApiError as exc:
            # Unauthenticated calls are not the account's: they report the budget without spending it.
            return _rate_headers(error_response(exc.status, exc.messages), sandbox.limiter.check(spend=False), False)
        verdict = sandbox.limiter.check()
        if not verdict.allowed:
            return _rate_headers(error_response(429, ["API rate limit exceeded"]), verdict, retry_after)
        fault = sandbox.faults.draw(f"{request.method} {template}")
        if fault == "429":
            return _rate_headers(error_response(429, ["API rate limit exceeded"]), verdict, retry_after)
        if fault == "5xx":
            return _rate_headers(error_response(503, ["Service temporarily unavailable"]), verdict, retry_after)
        if fault == "slow":
            await asyncio.sleep(sandbox.faults.config.slow_seconds)
        try:
            response = await handler(request, Context(sandbox.store, user_id))
        except ApiError as exc:
            response = error_response(exc.status, exc.messages)
        except ClientDisconnect:
            # The client went away before its body arrived (a killed load): nothing was written, nobody
            # reads an answer, and it is no sandbox bug to log.
            return Response(status_code=499)
        except Exception:
            # A sandbox bug must still answer in the envelope, and leave its trace in the server log.
            logger.exception("sandbox handler failed: %s %s", request.method, request.url.path)
            response = error_response(500, ["Internal server error"])
        if fault == "reset":
            await _drop_connection(request)
        if fault == "truncate" and 200 <= response.status_code < 300:
            response = Response(
                sandbox.faults.cut(bytes(response.body)), response.status_code, media_type=response.media_type
            )
        return _rate_headers(response, verdict, retry_after)

    return endpoint
