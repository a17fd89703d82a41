"""The fixture clinic loaded through Dagster and rolled back with the CLI, its migration state in a real
PostgreSQL database (CLINIC_STATE_URL): the id map there follows Freshsales, and the URL's password
shows in no command output and no asset metadata."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from clinic_pipeline.assets.resources import pipeline_resources
from clinic_pipeline.samples import copy_fixture
from clinic_pipeline.sandbox.launcher import SandboxHandle
from clinic_pipeline_tests.e2e.flow import confirm_and_sign_off, full_load
from clinic_pipeline_tests.servers import PASSWORD, PostgresCluster


def _live(sandbox: SandboxHandle, kind: str) -> dict[int, dict[str, Any]]:
    snapshot = httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", timeout=30).json()
    return {r["id"]: r for r in snapshot[kind] if not r.get("is_deleted")}


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "clinic_pipeline", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert PASSWORD not in result.stdout + result.stderr
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-2000:])
    return result.stdout


def test_load_and_rollback_keep_their_state_in_postgres(
    tmp_path: Path, sandbox: SandboxHandle, postgres_cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = postgres_cluster.create_database()
    state_url = postgres_cluster.url(database)
    monkeypatch.setenv("CLINIC_STATE_URL", state_url)  # the Dagster steps below run in this process
    source = copy_fixture(tmp_path / "source" / "clinic")
    resources = pipeline_resources(
        clinic_source=str(source),
        clinic_data_dir=str(tmp_path / "data"),
        freshsales_base_url=sandbox.base_url,
        freshsales_api_key=sandbox.api_key,
    )
    confirm_and_sign_off(resources, sandbox)
    loaded = full_load(resources)
    assert loaded.success, [e.step_key for e in loaded.get_step_failure_events()]
    for event in loaded.get_asset_materialization_events():
        assert PASSWORD not in str(event.step_materialization_data.materialization.metadata)
    # Nothing of the state went to the DuckDB default.
    assert not (tmp_path / "data" / "state" / "migration.duckdb").exists()

    contacts, accounts = _live(sandbox, "contacts"), _live(sandbox, "sales_accounts")
    assert contacts and accounts
    with postgres_cluster.connect(database) as conn:
        mapped = dict(
            conn.execute("SELECT object, array_agg(freshsales_id ORDER BY freshsales_id) FROM id_map GROUP BY 1")
        )
        audited_runs = conn.execute("SELECT count(DISTINCT run_id) FROM audit_log").fetchone()
    assert sorted(mapped["contacts"]) == sorted(contacts) and sorted(mapped["accounts"]) == sorted(accounts)
    assert audited_runs is not None and audited_runs[0] >= 2  # the sample's run and the full run

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLINIC_", "FRESHSALES_", "DAGSTER_"))} | {
        "CLINIC_DATA_DIR": str(tmp_path / "data"),
        "CLINIC_SOURCE": str(source),
        "CLINIC_STATE_URL": state_url,
        "FRESHSALES_BASE_URL": sandbox.base_url,
        "FRESHSALES_API_KEY": sandbox.api_key,
    }
    status = _cli(["status"], env, tmp_path)
    assert f"in id map {len(contacts)}" in status
    rollback = _cli(["rollback", "--all"], env, tmp_path)
    assert f"contacts: {len(contacts)} deleted" in rollback and f"accounts: {len(accounts)} deleted" in rollback
    assert _live(sandbox, "contacts") == {} and _live(sandbox, "sales_accounts") == {}
    with postgres_cluster.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM id_map").fetchone() == (0,)
        deleted = conn.execute("SELECT count(*) FROM audit_log WHERE op = 'delete' AND outcome = 'deleted'").fetchone()
    assert deleted is not None and deleted[0] >= len(contacts) + len(accounts)
    # Run again, the rollback finds everything done.
    again = _cli(["rollback", "--all"], env, tmp_path)
    assert f"contacts: 0 deleted, 0 restored, {len(contacts)} already done" in again
