"""Rollback, then the same migration again, as an operator runs them (the CLI against the sandbox): the
rerun recreates exactly what the rollback removed, documents included (the API cannot delete them; their
contact's deletion removes them), and validates clean; a rollback killed part-way and run again ends in
the same state. After every step the id map holds exactly the records Freshsales holds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from clinic_pipeline import steps
from clinic_pipeline.demo import DEMO_FALLBACK_OWNER, create_custom_fields_as_admin
from clinic_pipeline.load.state import open_state
from clinic_pipeline.model.objects import FILES, STAGED_OBJECTS
from clinic_pipeline.model.outcomes import LoadOutcome
from clinic_pipeline.sandbox.launcher import SandboxHandle
from clinic_pipeline.settings import Settings
from clinic_pipeline_tests.e2e.kill_harness import source_key

# Snapshot kind of each staged object: its entity's last path segment (`custom_module/cm_lab_result`).
KINDS = {o.name: o.entity.rpartition("/")[2] for o in STAGED_OBJECTS}
# The rollback forgets each contact, then deletes the accounts; documents are done last.
CONTACT_FORGET = "DELETE /contacts/{id}/forget"
ACCOUNTS_BULK_DESTROY = "POST /sales_accounts/bulk_destroy"
Snapshot = dict[str, list[dict[str, Any]]]


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "clinic_pipeline", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-2000:])
    return result.stdout


def _snapshot(sandbox: SandboxHandle) -> Snapshot:
    snapshot: Snapshot = httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", timeout=30).json()
    # The sandbox keeps a forgotten contact's documents, unreachable through the API (the contact's list
    # answers 404); Freshsales deletes them with it. Only those on a contact that exists are in Freshsales.
    contacts = {c["id"] for c in snapshot["contacts"] if not c.get("is_deleted")}
    snapshot["documents"] = [
        d for d in snapshot["documents"] if d["targetable_type"] == "Contact" and d["targetable_id"] in contacts
    ]
    return snapshot


def _records(snapshot: Snapshot) -> dict[str, Counter[str]]:
    """Per migrated kind, each record's identity with its count: the same records, no more and no less."""
    return {
        kind: Counter(source_key(kind, r) for r in snapshot[kind] if not r.get("is_deleted"))
        for kind in KINDS.values()
        if kind in snapshot
    }


def _id_map_follows(settings: Settings, snapshot: Snapshot) -> dict[str, int]:
    """The id map holds exactly the records Freshsales holds (the sandbox started empty: all are ours)."""
    with open_state(settings.paths.state_db_path) as state:
        for name, kind in KINDS.items():
            mapped = sorted(r.freshsales_id for r in state.id_map(name).values())
            held = sorted(r["id"] for r in snapshot.get(kind, []) if not r.get("is_deleted"))
            assert mapped == held, name
        return state.id_map_counts()


def _cascaded_files(settings: Settings, rollback_id: str | None = None) -> int:
    """Documents audited as removed with their contact, by one rollback run or by all of them."""
    with open_state(settings.paths.state_db_path) as state:
        return state.audit_counts(rollback_id).get((FILES.name, "delete", LoadOutcome.CASCADED), 0)


def _completed_rollback_id(out: str) -> str:
    found = re.search(r"^rollback (\S+) complete$", out, re.MULTILINE)
    assert found is not None, out
    return found.group(1)


def _rerun_is_exact(settings: Settings, sandbox: SandboxHandle, first: Snapshot, mapped: dict[str, int]) -> None:
    """Validation passes, and Freshsales and the id map hold what the first full run left."""
    assert json.loads(settings.paths.validation_json.read_text())["ok"] is True
    again = _snapshot(sandbox)
    assert _records(again) == _records(first)
    assert _id_map_follows(settings, again) == mapped


def _kill_after_the_contacts(env: dict[str, str], cwd: Path, sandbox: SandboxHandle, contacts: int) -> None:
    """`rollback --all`, SIGKILLed once it has deleted the contacts, before the accounts and the documents:
    as soon as the last contact is forgotten, every answer is held back, so the accounts' first request
    hangs and the process dies there."""
    control = f"{sandbox.root_url}/_sandbox"

    def requests(endpoint: str) -> int:
        return int(httpx.get(f"{control}/requests", timeout=10).json()["requests"].get(endpoint, 0))

    def slow(seconds: float) -> None:
        httpx.post(f"{control}/faults", json={"rate_slow": 1.0, "slow_seconds": seconds}, timeout=10).raise_for_status()

    def wait_for(process: subprocess.Popen[bytes], endpoint: str, count: int) -> None:
        deadline = time.monotonic() + 120
        while requests(endpoint) < count:
            assert process.poll() is None and time.monotonic() < deadline, f"the rollback never sent {endpoint}"
            time.sleep(0.005)

    forgets, destroys = requests(CONTACT_FORGET) + contacts, requests(ACCOUNTS_BULK_DESTROY) + 1
    slow(0.01)  # room to react between the last contact and the first account
    process = subprocess.Popen(
        [sys.executable, "-m", "clinic_pipeline", "rollback", "--all"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(process, CONTACT_FORGET, forgets)
        slow(5)
        wait_for(process, ACCOUNTS_BULK_DESTROY, destroys)
    finally:
        process.kill()
        process.wait()
        httpx.post(f"{control}/faults", json={}, timeout=10).raise_for_status()


@pytest.mark.slow  # a scenario of minutes: CI runs it in `make test-slow`
def test_a_rerun_after_a_rollback_recreates_exactly_what_it_removed(tmp_path: Path, sandbox: SandboxHandle) -> None:
    source = tmp_path / "export"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLINIC_", "FRESHSALES_", "DAGSTER_"))} | {
        "CLINIC_DATA_DIR": str(tmp_path / "data"),
        "CLINIC_SOURCE": str(source),
        "FRESHSALES_BASE_URL": sandbox.base_url,
        "FRESHSALES_API_KEY": sandbox.api_key,
        "CLINIC_FALLBACK_OWNER_EMAIL": DEMO_FALLBACK_OWNER,
        # The sandbox has no budget; the client's default one would make this test wait for minutes.
        "FRESHSALES_REQUESTS_PER_HOUR": "1000000",
        "FRESHSALES_REQUESTS_PER_MINUTE": "100000",
    }
    # What the CLI reads from that environment, for the steps this test runs in its own process.
    settings = Settings(
        clinic_data_dir=tmp_path / "data",
        clinic_source=str(source),
        freshsales_base_url=sandbox.base_url,
        freshsales_api_key=sandbox.api_key,
        clinic_fallback_owner_email=DEMO_FALLBACK_OWNER,
        freshsales_requests_per_hour=1_000_000,
        freshsales_requests_per_minute=100_000,
    )
    _cli(["sample-data", "--out", str(source), "--patients", "30", "--seed", "5"], env, tmp_path)
    for args in (["inventory"], ["propose-mapping"], ["confirm-mapping", "--by", "Dr. Reviewer"]):
        _cli(args, env, tmp_path)
    create_custom_fields_as_admin(settings, sandbox.root_url, sandbox.api_key, echo=lambda _: None)
    _cli(["migrate", "--sample", "100"], env, tmp_path)
    _cli(["sign-off", "--by", "Dr. Reviewer"], env, tmp_path)
    full = _cli(["migrate", "--full"], env, tmp_path)
    run = re.search(r"^run (\S+) ", full, re.MULTILINE)
    assert run is not None, full
    first = _snapshot(sandbox)
    mapped = _id_map_follows(settings, first)
    assert first["documents"] and mapped[FILES.name] == len(first["documents"])

    # Only the full run: what the sample run loaded stays (documents on its contacts included).
    undone = _cli(["rollback", "--run", run.group(1)], env, tmp_path)
    after_run = _snapshot(sandbox)
    assert 0 < len(after_run["contacts"]) < len(first["contacts"])
    _id_map_follows(settings, after_run)
    removed = len(first["documents"]) - len(after_run["documents"])
    assert removed > 0 and _cascaded_files(settings, _completed_rollback_id(undone)) == removed
    # The rerun as its steps (the staged files stand): the loads in load order, then the validation.
    for obj in STAGED_OBJECTS:
        steps.run_load(settings, obj.name, run_id="rerun-after-one-run")
    assert steps.run_validation(settings).ok
    _rerun_is_exact(settings, sandbox, first, mapped)

    # Everything, killed part-way, then run again to its end.
    _kill_after_the_contacts(env, tmp_path, sandbox, mapped["contacts"])
    with open_state(settings.paths.state_db_path) as state:
        left = state.id_map_counts()
    # Killed after the contacts, before the accounts and the documents the contacts' deletion removed.
    assert "contacts" not in left and left["accounts"] == mapped["accounts"] and left["files"] == mapped["files"]
    _completed_rollback_id(_cli(["rollback", "--all"], env, tmp_path))
    emptied = _snapshot(sandbox)
    assert _records(emptied) == {kind: Counter() for kind in _records(first)}
    assert _id_map_follows(settings, emptied) == {}
    # Every document the rerun had put back went with its contact, audited once.
    assert _cascaded_files(settings) == removed + len(first["documents"])
    assert "discrepancy" not in _cli(["migrate", "--full"], env, tmp_path)
    _rerun_is_exact(settings, sandbox, first, mapped)
