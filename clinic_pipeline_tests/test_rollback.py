"""Rollback against the sandbox over HTTP: Freshsales ends as it was before the migration, recycle bin
included; pre-existing records get their before-images back; one run can be undone alone; a rollback
cut short by faults finishes when run again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from clinic_pipeline.freshsales import FreshsalesClient, RateLimiter, RetryPolicy
from clinic_pipeline.load.loader import Loader
from clinic_pipeline.load.rollback import ObjectRollback, restorable, rollback
from clinic_pipeline.load.state import AuditEntry, StateStore, open_state
from clinic_pipeline.model.objects import ACCOUNTS, CONTACTS
from clinic_pipeline.sandbox.launcher import SandboxHandle

ACCOUNT_ROWS: list[dict[str, Any]] = [
    # Same key as the pre-existing account below: adopted and changed by the load.
    {"_source_key": "clinics:C1", "name": "Riverside", "city": "Peoria"},
    {"_source_key": "clinics:C2", "name": "Lakeside", "city": "Ames"},
]
CONTACT_ROWS: list[dict[str, Any]] = [
    # Same key as the pre-existing contact: adopted, its name, email and account replaced.
    {"_source_key": "patients:P1", "_lookup_sales_account": "clinics:C2", "first_name": "Ana", "email": "ana@ex.org"},
    {"_source_key": "patients:P2", "_lookup_sales_account": "clinics:C1", "first_name": "Ben", "email": "ben@ex.org"},
    {"_source_key": "patients:P3", "_lookup_sales_account": "clinics:C2", "first_name": "Cy", "email": None},
]
LATE_CONTACT = {"_source_key": "patients:P4", "_lookup_sales_account": "clinics:C2", "first_name": "Dee", "email": None}


def _write_staged(path: Path, rows: list[dict[str, Any]], table: str) -> Path:
    full = [{"_source_table": table, "_source_row": i + 1, **r} for i, r in enumerate(rows)]
    pq.write_table(pa.Table.from_pylist(full), path)
    return path


@pytest.fixture
def control(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sandbox.root_url}/_sandbox", timeout=30) as http:
        yield http


def _client(sandbox: SandboxHandle, attempts: int = 8) -> FreshsalesClient:
    return FreshsalesClient(
        sandbox.base_url,
        SecretStr(sandbox.api_key),
        rate_limiter=RateLimiter(100_000, 10_000, backoff_base=0.02, backoff_max=0.1),
        retry_policy=RetryPolicy(max_attempts=attempts, backoff_base=0.01, backoff_max=0.05),
        timeout=10.0,
    )


@pytest.fixture
def client(sandbox: SandboxHandle) -> Iterator[FreshsalesClient]:
    with _client(sandbox) as made:
        yield made


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    with open_state(tmp_path / "state" / "migration.duckdb") as opened:
        yield opened


@pytest.fixture
def before(sandbox: SandboxHandle, control: httpx.Client) -> dict[str, Any]:
    """A Freshsales account as a clinic has it before the migration; its snapshot."""
    control.post(
        "/settings/sales_accounts/fields", json={"label": "Source key", "name": "cf_source_key", "type": "text"}
    ).raise_for_status()
    headers = {"Authorization": f"Token token={sandbox.api_key}"}
    with httpx.Client(base_url=f"{sandbox.base_url}/api", headers=headers, timeout=10) as api:
        account = api.post(
            "/sales_accounts",
            json={
                "sales_account": {
                    "name": "Riverside Clinic",
                    "city": "Springfield",
                    "custom_field": {"cf_source_key": "clinics:C1"},
                }
            },
        )
        account.raise_for_status()
        api.post(
            "/contacts",
            json={
                "contact": {
                    "first_name": "Anna",
                    "last_name": "Old",
                    "email": "anna.old@ex.org",
                    "external_id": "patients:P1",
                    "sales_accounts": [{"id": account.json()["sales_account"]["id"], "is_primary": True}],
                }
            },
        ).raise_for_status()
        api.post("/sales_accounts", json={"sales_account": {"name": "Untouched Payer"}}).raise_for_status()
    return _snapshot(control)


def _snapshot(control: httpx.Client) -> dict[str, Any]:
    # The snapshot already leaves out created_at/updated_at (a restore must change updated_at); no
    # further exclusion is needed: forgotten records leave no trace, and ids are never reused.
    return control.get("/snapshot").json()


def _load(
    client: FreshsalesClient, state: StateStore, tmp_path: Path, run_id: str, contacts: list[dict[str, Any]]
) -> None:
    staged = tmp_path / f"staged-{run_id}"
    staged.mkdir()
    loader = Loader(client, state, run_id=run_id)
    loader.load(ACCOUNTS, _write_staged(staged / "accounts.parquet", ACCOUNT_ROWS, "clinics"), tmp_path / "rejected")
    loader.load(CONTACTS, _write_staged(staged / "contacts.parquet", contacts, "patients"), tmp_path / "rejected")


def _writes(control: httpx.Client) -> int:
    counts = control.get("/requests").json()["requests"]
    return sum(n for endpoint, n in counts.items() if not endpoint.startswith("GET"))


def test_rollback_of_all_runs_returns_freshsales_to_its_snapshot(
    tmp_path: Path, client: FreshsalesClient, state: StateStore, before: dict[str, Any], control: httpx.Client
) -> None:
    _load(client, state, tmp_path, "run-1", CONTACT_ROWS)
    loaded = _snapshot(control)
    assert loaded != before
    assert state.audit_counts("run-1")[("contacts", "update", "adopted")] == 1

    result = rollback(client, state, run_ids=None, rollback_run_id="rollback-1")

    assert result.complete
    assert result.objects == {
        "contacts": ObjectRollback(deleted=2, restored=1),
        "accounts": ObjectRollback(deleted=1, restored=1),
    }
    assert _snapshot(control) == before
    assert state.audit_counts("rollback-1") == {
        ("accounts", "delete", "deleted"): 1,
        ("accounts", "restore", "restored"): 1,
        ("contacts", "delete", "deleted"): 2,
        ("contacts", "restore", "restored"): 1,
    }
    assert state.id_map_counts() == {}

    # Done is done: a second rollback finds every record finished and sends nothing.
    writes = _writes(control)
    again = rollback(client, state, run_ids=None, rollback_run_id="rollback-2")
    assert again.objects == {
        "contacts": ObjectRollback(already_done=3),
        "accounts": ObjectRollback(already_done=2),
    }
    assert _writes(control) == writes
    assert state.audit_counts("rollback-2") == {}


def test_rollback_of_one_run_leaves_the_other_runs_records(
    tmp_path: Path, client: FreshsalesClient, state: StateStore, before: dict[str, Any], control: httpx.Client
) -> None:
    _load(client, state, tmp_path, "run-1", CONTACT_ROWS)
    after_first = _snapshot(control)
    mapped_first = state.id_map("contacts")
    _load(client, state, tmp_path, "run-2", [*CONTACT_ROWS, LATE_CONTACT])
    assert len(_snapshot(control)["contacts"]) == len(after_first["contacts"]) + 1

    result = rollback(client, state, run_ids=["run-2"], rollback_run_id="rollback-run-2")

    assert result.objects == {"contacts": ObjectRollback(deleted=1)}
    assert _snapshot(control) == after_first
    assert state.id_map("contacts") == mapped_first
    assert state.id_map_counts() == {"accounts": 2, "contacts": 3}

    # Then the first run too: back to before the migration.
    rollback(client, state, run_ids=["run-1"], rollback_run_id="rollback-run-1")
    assert _snapshot(control) == before


def test_rollback_cut_short_by_faults_finishes_when_run_again(
    tmp_path: Path,
    sandbox: SandboxHandle,
    client: FreshsalesClient,
    state: StateStore,
    before: dict[str, Any],
    control: httpx.Client,
) -> None:
    _load(client, state, tmp_path, "run-1", CONTACT_ROWS)
    # Lost answers (the delete happened) and refusals (it did not), with no retries to hide them.
    control.post("/faults", json={"rate_5xx": 0.2, "rate_reset": 0.2, "seed": 1}).raise_for_status()
    with _client(sandbox, attempts=1) as flaky:
        # One request at a time: the seeded faults then hit the same requests on every run.
        cut_short = rollback(flaky, state, run_ids=None, rollback_run_id="rollback-1", max_concurrency=1)
    control.post("/faults", json={}).raise_for_status()
    assert not cut_short.complete
    first_done = sum(o.deleted + o.restored for o in cut_short.objects.values())
    assert 0 < first_done < 5 and cut_short.failed == 5 - first_done  # 5 records: 3 created, 2 adopted

    finished = rollback(client, state, run_ids=None, rollback_run_id="rollback-1")

    assert finished.complete
    assert sum(o.already_done for o in finished.objects.values()) == first_done
    assert _snapshot(control) == before
    assert state.id_map_counts() == {}
    done = {k: v for k, v in state.audit_counts("rollback-1").items() if k[2] != "failed"}
    # Each record finished exactly once across both attempts.
    assert done == {
        ("accounts", "delete", "deleted"): 1,
        ("accounts", "restore", "restored"): 1,
        ("contacts", "delete", "deleted"): 2,
        ("contacts", "restore", "restored"): 1,
    }


def test_a_create_whose_answer_was_lost_is_found_by_its_key_and_removed(
    sandbox: SandboxHandle, client: FreshsalesClient, state: StateStore, before: dict[str, Any], control: httpx.Client
) -> None:
    # The create reached Freshsales, its answer did not: the audit log has no id for it.
    client.create("contacts", {"first_name": "Lost", "external_id": "patients:P9"})
    state.record_batch(
        obj="contacts",
        run_id="run-1",
        partition=None,
        mapped=[],
        audit=[AuditEntry("create", "unknown", "patients:P9")],
    )

    result = rollback(client, state, run_ids=["run-1"], rollback_run_id="rollback-1")

    assert result.objects == {"contacts": ObjectRollback(deleted=1)}
    assert _snapshot(control) == before
    requests = control.get("/requests").json()["total"]
    assert rollback(client, state, run_ids=["run-1"], rollback_run_id="rollback-2").objects == {}
    assert control.get("/requests").json()["total"] == requests  # settled: not even looked up again


def test_restore_body_puts_back_settable_fields_and_clears_what_the_load_added() -> None:
    before = {
        "id": 7,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-02T00:00:00Z",
        "is_deleted": False,
        "display_name": "Anna Old",
        "links": {"notes": "/contacts/7/notes"},
        "first_name": "Anna",
        "custom_field": {"cf_a": "x"},
    }
    current = {**before, "first_name": "Ana", "external_id": "patients:P1", "custom_field": {"cf_a": "y", "cf_b": 1}}
    assert restorable(before, current) == {
        "external_id": None,
        "first_name": "Anna",
        "custom_field": {"cf_a": "x", "cf_b": None},
    }
