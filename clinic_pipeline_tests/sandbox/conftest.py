"""An httpx client on the sandbox's API root, written from the API document (no project client)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from clinic_pipeline.sandbox.launcher import SandboxHandle


@pytest.fixture
def api(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Token token={sandbox.api_key}"}
    with httpx.Client(base_url=f"{sandbox.base_url}/api", headers=headers, timeout=10) as client:
        yield client


@pytest.fixture
def control(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sandbox.root_url}/_sandbox", timeout=10) as client:
        yield client
