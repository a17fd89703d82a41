"""Rollback against the sandbox over HTTP: Freshsales ends as it was before the migration, recycle bin
included; pre-existing records get their before-images back and keep their id-map rows; one run can be
undone alone; a rollback cut short by faults finishes when run again; a rollback, a new load and a
second rollback end as the first did; documents go with their deleted contact and leave the id map."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from clinic_pipeline.freshsales import FreshsalesClient, RateLimiter, RetryPolicy
from clinic_pipeline.load.files import load_files
from clinic_pipeline.load.loader import Loader
from clinic_pipeline.load.rollback import RESTORED_HASH, ObjectRollback, restorable, rollback
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
# The id map after a rollback: the pre-existing records, kept with a hash that makes the next run send them.
RESTORED_ROWS = {"accounts": {"clinics:C1": RESTORED_HASH}, "contacts": {"patients:P1": RESTORED_HASH}}


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


def _mapped_hashes(state: StateStore) -> dict[str, dict[str, str]]:
    return {o: {k: r.payload_hash for k, r in state.id_map(o).items()} for o in state.id_map_counts()}


def _keys(snapshot: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Source key → Freshsales id, per kind: what a load put where, whatever the record's values."""
    return {
        "contacts": {r["external_id"]: r["id"] for r in snapshot["contacts"]},
        "sales_accounts": {r["custom_field"]["cf_source_key"]: r["id"] for r in snapshot["sales_accounts"]},
    }


def _load_files(
    client: FreshsalesClient, state: StateStore, tmp_path: Path, run_id: str, owners: dict[str, str]
) -> None:
    """One document per (document key → contact key), staged as the files contract lays them out."""
    rows = []
    for i, (key, contact) in enumerate(sorted(owners.items())):
        path = tmp_path / "documents" / f"{key.replace(':', '-')}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(f"scan {key}\n".encode())
        content = path.read_bytes()
        rows.append(
            {
                "_source_key": key,
                "_source_table": "documents",
                "_source_row": i + 1,
                "_lookup_contact": contact,
                "file_path": str(path),
                "file_name": path.name,
                "size_bytes": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
            }
        )
    staged = tmp_path / f"files-{run_id}.parquet"
    pq.write_table(pa.Table.from_pylist(rows), staged)
    load_files(client, state, staged, run_id=run_id, link_base_url=None, rejected_dir=tmp_path / "rejected")


def _attached(client: FreshsalesClient, state: StateStore) -> dict[str, set[int]]:
    """Document ids on the mapped contacts that still exist, and the id map's document ids."""
    listed: set[int] = set()
    for row in state.id_map("contacts").values():
        listed |= {int(d["id"]) for d in client.document_associations("contacts", row.freshsales_id)}
    return {"listed": listed, "mapped": {r.freshsales_id for r in state.id_map("files").values()}}


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
    assert _mapped_hashes(state) == RESTORED_ROWS  # what existed before the migration still does

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
    assert _mapped_hashes(state) == RESTORED_ROWS
    done = {k: v for k, v in state.audit_counts("rollback-1").items() if k[2] != "failed"}
    # Each record finished exactly once across both attempts.
    assert done == {
        ("accounts", "delete", "deleted"): 1,
        ("accounts", "restore", "restored"): 1,
        ("contacts", "delete", "deleted"): 2,
        ("contacts", "restore", "restored"): 1,
    }


def test_a_rerun_after_a_rollback_updates_what_existed_before_and_a_second_rollback_restores_it_again(
    tmp_path: Path, client: FreshsalesClient, state: StateStore, before: dict[str, Any], control: httpx.Client
) -> None:
    _load(client, state, tmp_path, "run-1", CONTACT_ROWS)
    first = _keys(_snapshot(control))
    rollback(client, state, run_ids=None, rollback_run_id="rollback-1")

    _load(client, state, tmp_path, "run-2", CONTACT_ROWS)

    # Exactly the first load's records again: the pre-existing ones updated in place by their kept rows
    # (not adopted as new, not duplicated), the created ones created anew.
    again = _keys(_snapshot(control))
    assert {kind: set(keys) for kind, keys in again.items()} == {kind: set(keys) for kind, keys in first.items()}
    assert again["contacts"]["patients:P1"] == first["contacts"]["patients:P1"]
    assert again["sales_accounts"]["clinics:C1"] == first["sales_accounts"]["clinics:C1"]
    assert state.audit_counts("run-2") == {
        ("accounts", "create", "created"): 1,
        ("accounts", "update", "updated"): 1,
        ("contacts", "create", "created"): 2,
        ("contacts", "update", "updated"): 1,
    }

    result = rollback(client, state, run_ids=["run-2"], rollback_run_id="rollback-2")

    # The updates by id are undone to the images from before the migration, as the adoptions were.
    assert result.objects == {
        "contacts": ObjectRollback(deleted=2, restored=1),
        "accounts": ObjectRollback(deleted=1, restored=1),
    }
    assert _snapshot(control) == before
    assert _mapped_hashes(state) == RESTORED_ROWS


def test_documents_go_with_their_deleted_contact_and_stay_on_a_restored_one(
    tmp_path: Path, client: FreshsalesClient, state: StateStore, before: dict[str, Any], control: httpx.Client
) -> None:
    _load(client, state, tmp_path, "run-1", CONTACT_ROWS)
    # P1 existed before the migration (restored by the rollback), P2 was created by it (deleted).
    _load_files(client, state, tmp_path, "run-1", {"documents:D1": "patients:P1", "documents:D2": "patients:P2"})

    result = rollback(client, state, run_ids=None, rollback_run_id="rollback-1")

    assert result.complete
    # The API has no delete for documents: D2 went with its contact, D1 stays on its restored one.
    assert result.objects["files"] == ObjectRollback(cascaded=1, unsupported=1)
    assert state.audit_counts("rollback-1")[("files", "delete", "cascaded")] == 1
    assert set(state.id_map("files")) == {"documents:D1"}
    attached = _attached(client, state)
    assert attached["listed"] == attached["mapped"]

    # The next run uploads what went and nothing else.
    _load(client, state, tmp_path, "run-2", CONTACT_ROWS)
    _load_files(client, state, tmp_path, "run-2", {"documents:D1": "patients:P1", "documents:D2": "patients:P2"})
    assert {k[1:]: n for k, n in state.audit_counts("run-2").items() if k[0] == "files" and k[1] != "run"} == {
        ("skip", "unchanged"): 1,
        ("upload", "created"): 1,
    }
    attached = _attached(client, state)
    assert attached["listed"] == attached["mapped"] and len(attached["mapped"]) == 2

    # Undoing only the run that created a contact also forgets a later run's document on it.
    _load(client, state, tmp_path, "run-3", [*CONTACT_ROWS, LATE_CONTACT])
    _load_files(client, state, tmp_path, "run-4", {"documents:D4": "patients:P4"})
    undone = rollback(client, state, run_ids=["run-3"], rollback_run_id="rollback-3")
    assert undone.objects["files"] == ObjectRollback(cascaded=1)
    assert "documents:D4" not in state.id_map("files")


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
