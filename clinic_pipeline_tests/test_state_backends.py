"""The state store's contract on both of its databases: a DuckDB file and a real PostgreSQL server,
chosen by CLINIC_STATE_URL; PostgreSQL's concurrent writers; the URL's password never shown."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from clinic_pipeline.load.state import (
    AuditEntry,
    IdMapRow,
    Intent,
    StateBusyError,
    StateStore,
    open_state,
    state_exists,
)
from clinic_pipeline.load.state_backends import StateUnavailableError
from clinic_pipeline.load.state_location import StateLocation, describe
from clinic_pipeline.settings import ConfigurationError, load_settings
from clinic_pipeline_tests.servers import PASSWORD, USER, PostgresCluster


def _location(url: str, tmp_path: Path) -> StateLocation:
    """Through the setting, as every caller gets it."""
    return load_settings(clinic_state_url=url, clinic_data_dir=str(tmp_path / "data")).state_location


@pytest.fixture(params=["duckdb", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> StateLocation:
    if request.param == "duckdb":
        return _location(f"duckdb:///{tmp_path / 'state' / 'migration.duckdb'}", tmp_path)
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return _location(cluster.url(cluster.create_database()), tmp_path)


def _batch(state: StateStore, run_id: str, keys: list[str], *, first_id: int, partition: str | None = None) -> None:
    state.record_batch(
        obj="contacts",
        run_id=run_id,
        partition=partition,
        mapped=[IdMapRow(k, first_id + i, f"h-{run_id}-{k}") for i, k in enumerate(keys)],
        audit=[AuditEntry("create", "created", k, first_id + i, 201) for i, k in enumerate(keys)],
    )


def test_the_store_contract_is_the_same_on_both_databases(location: StateLocation) -> None:
    assert not state_exists(location)
    with open_state(location) as state:
        _batch(state, "r1", ["p1", "p2", "p3"], first_id=17008318589)
        state.begin_intents(
            obj="contacts",
            run_id="r2",
            intents=[Intent("p1", "h-new", before_image={"first_name": "Renée", "tags": ["a"]}), Intent("p9", "h9")],
        )
    assert state_exists(location)
    with open_state(location) as state:  # what the first connection committed, a second one reads
        pending = state.pending_intents("contacts")
        assert {k: (i.payload_hash, i.run_id, i.before_image) for k, i in pending.items()} == {
            "p1": ("h-new", "r2", {"first_name": "Renée", "tags": ["a"]}),
            "p9": ("h9", "r2", None),
        }
        # The update settles p1's intent and replaces its id-map row; p9's answer never came.
        state.record_batch(
            obj="contacts",
            run_id="r2",
            partition="2026-11-25-10:00",
            mapped=[IdMapRow("p1", 17008318589, "h-new")],
            audit=[
                AuditEntry("update", "updated", "p1", 17008318589, 200, before_image={"first_name": "Renée"}),
                AuditEntry("create", "unknown", "p9"),
                AuditEntry("create", "created", "d1", 77, 201, parent_id=17008318589),
            ],
        )
        assert set(state.pending_intents("contacts")) == {"p9"}
        assert {k: (r.freshsales_id, r.payload_hash) for k, r in state.id_map("contacts").items()} == {
            "p1": (17008318589, "h-new"),
            "p2": (17008318590, "h-r1-p2"),
            "p3": (17008318591, "h-r1-p3"),
        }
        assert state.id_map_counts() == {"contacts": 3}
        assert state.id_map_table("contacts").sort_by("source_key").to_pylist() == [
            {"source_key": "p1", "payload_hash": "h-new"},
            {"source_key": "p2", "payload_hash": "h-r1-p2"},
            {"source_key": "p3", "payload_hash": "h-r1-p3"},
        ]
        assert state.id_map_table("accounts").num_rows == 0
        assert state.audit_counts() == {
            ("contacts", "create", "created"): 4,
            ("contacts", "create", "unknown"): 1,
            ("contacts", "update", "updated"): 1,
        }
        assert state.audit_counts("r2") == {
            ("contacts", "create", "created"): 1,
            ("contacts", "create", "unknown"): 1,
            ("contacts", "update", "updated"): 1,
        }
        assert state.partitions() == ["2026-11-25-10:00"]
        entries = state.audit_entries("contacts")
        assert [e["seq"] for e in entries] == sorted(e["seq"] for e in entries) and len(entries) == 6
        assert [(e["op"], e["source_key"], e["before_image"], e["parent_id"]) for e in entries[3:]] == [
            ("update", "p1", {"first_name": "Renée"}, None),
            ("create", "p9", None, None),
            ("create", "d1", None, 17008318589),
        ]
    with open_state(location, read_only=True) as reader:
        assert reader.id_map_counts() == {"contacts": 3}


def test_the_duckdb_file_named_by_url_stays_private(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "state.duckdb"
    location = _location(f"duckdb:///{path}", tmp_path)
    assert location == path
    with open_state(location) as state:
        _batch(state, "r1", ["p1"], first_id=1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_postgres_read_only_opens_refuse_writes(postgres_cluster: PostgresCluster, tmp_path: Path) -> None:
    location = _location(postgres_cluster.url(postgres_cluster.create_database()), tmp_path)
    with open_state(location) as state:
        _batch(state, "r1", ["p1"], first_id=1)
    with open_state(location, read_only=True) as reader, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        _batch(reader, "r2", ["p2"], first_id=2)
    with open_state(location) as state:
        assert state.id_map_counts() == {"contacts": 1}


WRITERS = 4
BATCHES = 25
PER_BATCH = 8


def test_postgres_workers_write_at_once_and_lose_no_row(postgres_cluster: PostgresCluster, tmp_path: Path) -> None:
    database = postgres_cluster.create_database()
    location = _location(postgres_cluster.url(database), tmp_path)
    everyone_open = threading.Barrier(WRITERS, timeout=30)
    open_at_once: list[int] = []

    def worker(n: int) -> None:
        # Each opens its own connection (no process lock on PostgreSQL) and keeps it while the others open theirs.
        with open_state(location) as state:
            everyone_open.wait()
            if n == 0:
                with postgres_cluster.connect(database) as admin:
                    row = admin.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'clinic_pipeline state'"
                    ).fetchone()
                open_at_once.append(int(row[0]) if row else 0)
            for b in range(BATCHES):
                keys = [f"w{n}-{b}-{i}" for i in range(PER_BATCH)]
                state.begin_intents(obj="contacts", run_id=f"run-{n}", intents=[Intent(k, "h") for k in keys])
                _batch(state, f"run-{n}", keys, first_id=(n * BATCHES + b) * PER_BATCH)
                # Every worker also rewrites the same shared keys: the upsert keeps one row per key.
                _batch(state, f"run-{n}", ["shared-1", "shared-2"], first_id=10**9 + n)

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        for future in [pool.submit(worker, n) for n in range(WRITERS)]:
            future.result()

    assert open_at_once == [WRITERS]
    with open_state(location, read_only=True) as state:
        assert state.id_map_counts() == {"contacts": WRITERS * BATCHES * PER_BATCH + 2}
        assert state.pending_intents("contacts") == {}
        entries = state.audit_entries()
        assert len(entries) == WRITERS * BATCHES * (PER_BATCH + 2)
        assert len({e["seq"] for e in entries}) == len(entries)
        for n in range(WRITERS):
            # A worker's batches commit in its own order: their audit seqs rise with it.
            own = [e["source_key"] for e in entries if e["run_id"] == f"run-{n}" and e["source_key"] != "shared-1"]
            expected = [k for b in range(BATCHES) for k in [*(f"w{n}-{b}-{i}" for i in range(PER_BATCH)), "shared-2"]]
            assert own == expected


def test_postgres_workers_load_different_objects_at_once_never_the_same_one(
    postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    location = _location(postgres_cluster.url(postgres_cluster.create_database()), tmp_path)
    with open_state(location) as first, open_state(location) as second:
        with first.loading("contacts"):
            with second.loading("deals", wait_seconds=0):
                pass  # another object: no wait
            started = time.monotonic()
            busy = r"^contacts is being loaded by another worker"
            with pytest.raises(StateBusyError, match=busy), second.loading("contacts", wait_seconds=1.0):
                pass
            assert time.monotonic() - started >= 1.0
        # Let go when its load ends: the other worker takes it at once.
        with second.loading("contacts", wait_seconds=0):
            pass


def test_the_url_password_never_shows(postgres_cluster: PostgresCluster, tmp_path: Path) -> None:
    good = postgres_cluster.url(postgres_cluster.create_database())
    wrong = good.replace(PASSWORD, "not-" + PASSWORD)
    location = _location(wrong, tmp_path)
    shown = describe(location)
    assert shown == f"postgresql://{USER}:***@127.0.0.1:{postgres_cluster.port}/{location.database}"  # type: ignore[union-attr]
    assert PASSWORD not in repr(location) and PASSWORD not in repr(load_settings(clinic_state_url=wrong))
    with pytest.raises(StateUnavailableError) as refused, open_state(location):
        pass
    assert str(refused.value).startswith(f"{shown}: cannot open the migration state (")
    assert PASSWORD not in str(refused.value) and refused.value.__cause__ is None
    with pytest.raises(ConfigurationError) as invalid:
        load_settings(clinic_state_url=f"mysql://{USER}:{PASSWORD}@127.0.0.1/db")
    assert "CLINIC_STATE_URL" in str(invalid.value) and PASSWORD not in str(invalid.value)

    # The CLI: a one-line refusal with the masked URL, the password nowhere in its output.
    env = {"CLINIC_DATA_DIR": str(tmp_path / "data"), "CLINIC_STATE_URL": wrong, "PATH": "/usr/bin:/bin"}
    status = subprocess.run(
        [sys.executable, "-m", "clinic_pipeline", "status"], env=env, capture_output=True, text=True, timeout=120
    )
    assert status.returncode == 1
    assert f"{shown}: cannot open the migration state" in status.stderr
    assert PASSWORD not in status.stdout + status.stderr


def test_a_runs_reference_reads_and_the_intents_times_are_kept_alike_on_both_databases(location: StateLocation) -> None:
    """What a restart reads instead of the API (load/reference_cache.py), and what bounds its reconciliation."""
    base = "https://clinic.example/crm/sales"
    fetched = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    with open_state(location) as state:
        state.keep_reference(base, "/selector/owners", {"users": [{"id": 1, "email": "a@b.example"}]}, fetched)
        state.keep_reference(base, "/settings/contacts/fields", {"fields": []}, fetched)
        state.keep_reference(base, "/selector/owners", {"users": []}, fetched + timedelta(seconds=5))  # read again
        state.keep_reference("https://other.example/crm/sales", "/settings/contacts/fields", {"fields": [1]}, fetched)
    with open_state(location) as state:
        assert state.reference(base, "/selector/owners") == ({"users": []}, fetched + timedelta(seconds=5))
        state.forget_references(base, "/settings/")
        assert state.reference(base, "/settings/contacts/fields") is None
        assert state.reference("https://other.example/crm/sales", "/settings/contacts/fields") is not None
        state.forget_references(base)
        assert state.reference(base, "/selector/owners") is None

        _batch(state, "r1", ["patients:1", "patients:2"], first_id=10)
        between = datetime.now(UTC)
        time.sleep(0.01)
        _batch(state, "r1", ["patients:3"], first_id=30)
        state.begin_intents(obj="contacts", run_id="r2", intents=[Intent("patients:4", "h")])
        intent = state.pending_intents("contacts")["patients:4"]
        assert intent.created_at is not None and intent.created_at > between
        assert sorted(state.mapped_before("contacts", between, 10)) == [10, 11]
        assert sorted(state.mapped_before("contacts", intent.created_at, 10)) == [10, 11, 30]
        assert state.mapped_before("contacts", intent.created_at, 1) == [30]  # the latest first
