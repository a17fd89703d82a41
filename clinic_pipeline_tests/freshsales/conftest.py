"""A FreshsalesClient on the sandbox, with backoffs shrunk so retries cost milliseconds, not seconds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from clinic_pipeline.freshsales import FreshsalesClient, RateLimiter, RetryPolicy
from clinic_pipeline.sandbox.launcher import SandboxHandle

MakeClient = Callable[..., FreshsalesClient]


def fast_limiter(**overrides: Any) -> RateLimiter:
    options: dict[str, Any] = {"requests_per_hour": 100_000, "requests_per_minute": 10_000}
    options |= {"backoff_base": 0.02, "backoff_max": 0.1} | overrides
    return RateLimiter(**options)


@pytest.fixture
def make_client(sandbox: SandboxHandle) -> Iterator[MakeClient]:
    made: list[FreshsalesClient] = []

    def make(api_key: str | None = None, **overrides: Any) -> FreshsalesClient:
        options: dict[str, Any] = {
            "rate_limiter": fast_limiter(),
            "retry_policy": RetryPolicy(max_attempts=8, backoff_base=0.01, backoff_max=0.05),
            "timeout": 10.0,
        } | overrides
        client = FreshsalesClient(sandbox.base_url, SecretStr(api_key or sandbox.api_key), **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: MakeClient) -> FreshsalesClient:
    return make_client()


@pytest.fixture
def control(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sandbox.root_url}/_sandbox", timeout=10) as control_client:
        yield control_client
