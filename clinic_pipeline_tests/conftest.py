"""Shared fixtures: one Freshsales sandbox subprocess per test session, reset before each test that asks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clinic_pipeline.sandbox.launcher import SandboxHandle, running_sandbox
from clinic_pipeline_tests.servers import PostgresCluster, running_postgres

SANDBOX_API_KEY = "test-sandbox-key"


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    db: Path = tmp_path_factory.mktemp("sandbox") / "freshsales.sqlite"
    with running_sandbox(db, SANDBOX_API_KEY, test_mode=True, plan="unlimited") as handle:
        yield handle


@pytest.fixture
def sandbox(sandbox_server: SandboxHandle) -> SandboxHandle:
    httpx.post(f"{sandbox_server.root_url}/_sandbox/reset", timeout=10).raise_for_status()
    return sandbox_server


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One real PostgreSQL server per test session (skipped without its binaries, failed in CI)."""
    with running_postgres() as cluster:
        yield cluster
