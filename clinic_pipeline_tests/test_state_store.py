"""The state store: private file, per-batch commits, audit counts, one process at a time."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.queues
import os
import select
import signal
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.load.state import AuditEntry, IdMapRow, Intent, StateBusyError, StateStore, open_state


def test_state_file_is_private_and_batches_commit_atomically(tmp_path: Path) -> None:
    path = tmp_path / "state" / "migration.duckdb"
    with open_state(path) as state:
        state.record_batch(
            obj="contacts",
            run_id="r1",
            partition=None,
            mapped=[IdMapRow("p1", 17008318589, "h1"), IdMapRow("p2", 17008318590, "h2")],
            audit=[AuditEntry("create", "created", "p1", 17008318589, 201), AuditEntry("create", "created", "p2")],
        )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with open_state(path) as state:
        # A re-load of the same key replaces its row: one id per (object, source key).
        state.record_batch(
            obj="contacts",
            run_id="r2",
            partition="2026-11-25-10:00",
            mapped=[IdMapRow("p1", 17008318589, "h1b")],
            audit=[AuditEntry("update", "updated", "p1", 17008318589, 200, before_image={"id": 1})],
        )
        ids = state.id_map("contacts")
        assert {k: (v.freshsales_id, v.payload_hash) for k, v in ids.items()} == {
            "p1": (17008318589, "h1b"),
            "p2": (17008318590, "h2"),
        }
        assert state.audit_counts() == {("contacts", "create", "created"): 2, ("contacts", "update", "updated"): 1}
        assert state.audit_counts("r2") == {("contacts", "update", "updated"): 1}


def test_a_batch_is_written_as_one_statement_with_the_rows_as_sent_one_by_one(tmp_path: Path) -> None:
    """DuckDB takes a batch's rows as one Arrow table: the audit log keeps their order, a key named twice
    keeps its last row (as upserting them one by one did), before-images and empty values round-trip."""
    keys = [f"k{i}" for i in range(3000)]
    with open_state(tmp_path / "migration.duckdb") as state:
        state.begin_intents(
            obj="notes",
            run_id="r1",
            intents=[Intent(k, "h0", None) for k in keys] + [Intent("k7", "h7", 55, before_image={"id": 9})],
        )
        pending = state.pending_intents("notes")
        assert len(pending) == len(keys)
        assert (pending["k7"].payload_hash, pending["k7"].parent_id, pending["k7"].before_image) == (
            "h7",
            55,
            {"id": 9},
        )
        assert (pending["k8"].parent_id, pending["k8"].before_image) == (None, None)
        state.record_batch(
            obj="notes",
            run_id="r1",
            partition=None,
            mapped=[IdMapRow(k, i, "h") for i, k in enumerate(keys)] + [IdMapRow("k3", 77, "h3")],
            audit=[AuditEntry("create", "created", k, i, 201) for i, k in enumerate(keys)]
            + [AuditEntry("update", "adopted", "k1", 1, None, before_image={"name": "x"}, parent_id=4)],
        )
        assert state.pending_intents("notes") == {}
        ids = state.id_map("notes")
        assert len(ids) == len(keys)
        assert (ids["k3"].freshsales_id, ids["k3"].payload_hash) == (77, "h3")
        entries = state.audit_entries("notes")
        assert [e["source_key"] for e in entries] == [*keys, "k1"]
        assert [e["seq"] for e in entries] == sorted(e["seq"] for e in entries)
        assert (entries[-1]["before_image"], entries[-1]["parent_id"], entries[-1]["http_status"]) == (
            {"name": "x"},
            4,
            None,
        )
        assert (entries[0]["before_image"], entries[0]["parent_id"], entries[0]["http_status"]) == (None, None, 201)


# A process that opens the store (or, with `duckdb`, the bare file), says so, and holds it until told.
_HOLDER = """
import sys
from pathlib import Path

import duckdb

from clinic_pipeline.load.state import AuditEntry, IdMapRow, open_state

path, key, wait = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
if key == "duckdb":
    con = duckdb.connect(str(path))
    print("holding", flush=True)
    sys.stdin.readline()
    sys.exit(0)
with open_state(path, wait_seconds=wait, on_wait=lambda line: print("waiting", line, flush=True)) as state:
    state.record_batch(
        obj="contacts",
        run_id=key,
        partition=None,
        mapped=[IdMapRow(key, 1, "h")],
        audit=[AuditEntry("create", "created", key)],
    )
    print("holding", flush=True)
    sys.stdin.readline()
"""


class _StoreProcess:
    def __init__(self, path: Path, key: str, wait_seconds: float = 30) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(path), key, str(wait_seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self.pid = self.process.pid

    def __enter__(self) -> _StoreProcess:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def expect(self, word: str, timeout: float = 10) -> str:
        """The next line the process prints, which must start with `word`."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert ready, f"no {word!r} within {timeout} s"
        line = self.process.stdout.readline().decode()
        assert line.startswith(word), (line, self._stderr())
        return line.strip()

    def release(self) -> None:
        """Let it close the store and exit cleanly."""
        assert self.process.stdin is not None
        self.process.stdin.write(b"\n")
        self.process.stdin.close()
        assert self.process.wait(timeout=10) == 0, self._stderr()

    def _stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read().decode()[-2000:]


def _write(state: StateStore, key: str) -> None:
    state.record_batch(
        obj="contacts",
        run_id=key,
        partition=None,
        mapped=[IdMapRow(key, 1, "h")],
        audit=[AuditEntry("create", "created", key)],
    )


def _keys(path: Path) -> set[str]:
    with open_state(path, read_only=True, wait_seconds=5) as state:
        return set(state.id_map("contacts"))


def test_a_second_process_waits_for_the_first_to_close_then_writes(tmp_path: Path) -> None:
    path = tmp_path / "state" / "migration.duckdb"
    with _StoreProcess(path, "first") as first:
        first.expect("holding")
        with _StoreProcess(path, "second") as second:
            waiting = second.expect("waiting")
            assert str(path) in waiting and f"process {first.pid} " in waiting
            first.release()
            second.expect("holding")
            second.release()
    assert _keys(path) == {"first", "second"}
    lock = Path(f"{path}.lock")
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    # Only who held it: pid, program name, since when.
    assert [line.partition("=")[0] for line in lock.read_text().splitlines()] == ["pid", "command", "since"]


def test_a_store_still_busy_after_the_wait_is_one_operator_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state" / "migration.duckdb"
    waits: list[str] = []
    with _StoreProcess(path, "first") as first:
        first.expect("holding")
        for read_only in (False, True):
            started = time.monotonic()
            with (
                pytest.raises(StateBusyError) as busy,
                open_state(path, read_only=read_only, wait_seconds=0.3, on_wait=waits.append),
            ):
                pytest.fail("opened a store another process holds")
            assert 0.3 <= time.monotonic() - started < 3
            message = str(busy.value)
            assert isinstance(busy.value, OperatorError)
            assert "\n" not in message and str(path) in message and f"process {first.pid} " in message
            assert message.endswith("wait for that run to finish, or stop it")
            assert "Conflicting lock" not in message
        with caplog.at_level(logging.WARNING), pytest.raises(StateBusyError), open_state(path, wait_seconds=0.3):
            pytest.fail("opened a store another process holds")
        first.release()
    # Each wait is reported once: to the caller's callback, or else to the log.
    waits += [record.getMessage() for record in caplog.records]
    assert len(waits) == 3 and all(f"process {first.pid} " in line and "\n" not in line for line in waits)
    assert _keys(path) == {"first"}


def test_a_process_holding_the_bare_duckdb_file_gives_the_same_one_line(tmp_path: Path) -> None:
    path = tmp_path / "state" / "migration.duckdb"
    with open_state(path):
        pass
    with _StoreProcess(path, "duckdb") as bare:
        bare.expect("holding")
        with pytest.raises(StateBusyError) as busy, open_state(path, wait_seconds=5):
            pytest.fail("opened a store another process holds")
        message = str(busy.value)
        assert "\n" not in message and str(path) in message and f"process {bare.pid};" in message
        assert "Conflicting lock" not in message and busy.value.__cause__ is None and busy.value.__suppress_context__
        bare.release()
    # The failed open gave our lock back: another process gets the store at once.
    with _StoreProcess(path, "after", wait_seconds=0) as after:
        after.expect("holding")
        after.release()


def test_a_holder_killed_with_sigkill_does_not_block_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "state" / "migration.duckdb"
    with _StoreProcess(path, "killed") as killed:
        killed.expect("holding")
        killed.process.send_signal(signal.SIGKILL)
        killed.process.wait(timeout=10)
    assert f"pid={killed.pid}" in Path(f"{path}.lock").read_text()  # the stale lock file is still there
    started = time.monotonic()
    with open_state(path, wait_seconds=0) as state:
        _write(state, "next")
    assert time.monotonic() - started < 2
    assert _keys(path) == {"killed", "next"}


def test_nested_opens_and_threads_in_one_process_share_its_hold(tmp_path: Path) -> None:
    path = tmp_path / "state" / "migration.duckdb"
    with open_state(path, wait_seconds=0) as outer:
        _write(outer, "outer")
        with open_state(path, wait_seconds=0) as inner:
            assert set(inner.id_map("contacts")) == {"outer"}
            _write(inner, "inner")
        assert set(outer.id_map("contacts")) == {"outer", "inner"}

        def nested_in_a_thread(key: str) -> None:
            with open_state(path, wait_seconds=0) as state:
                _write(state, key)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(nested_in_a_thread, [f"thread-{i}" for i in range(16)]))

    # Threads opening while another process holds the store queue behind it, then all get through.
    def in_a_thread(key: str) -> None:
        with open_state(path, wait_seconds=30, on_wait=lambda _line: None) as state:
            _write(state, key)

    with _StoreProcess(path, "other") as other, ThreadPoolExecutor(4) as pool:
        other.expect("holding")
        futures = [pool.submit(in_a_thread, f"queued-{i}") for i in range(4)]
        time.sleep(0.3)
        assert not any(f.done() for f in futures)
        other.release()
        for future in futures:
            future.result(timeout=10)
    expected = {"outer", "inner", "other"} | {f"thread-{i}" for i in range(16)} | {f"queued-{i}" for i in range(4)}
    assert _keys(path) == expected
    # Every open was closed: the process let go of the store.
    with _StoreProcess(path, "last", wait_seconds=0) as last:
        last.expect("holding")
        last.release()


def _open_in_forked_child(path: Path, answers: multiprocessing.queues.Queue[str]) -> None:
    try:
        with open_state(path, wait_seconds=0.3, on_wait=lambda _line: None):
            answers.put("opened")
    except StateBusyError as busy:
        answers.put(str(busy))


def test_a_forked_child_does_not_inherit_its_parents_hold(tmp_path: Path) -> None:
    # With the parent's count and descriptor, the child would skip the lock and open DuckDB beside it.
    path = tmp_path / "state" / "migration.duckdb"
    fork = multiprocessing.get_context("fork")
    answers: multiprocessing.queues.Queue[str] = fork.Queue()
    with open_state(path):
        child = fork.Process(target=_open_in_forked_child, args=(path, answers))
        child.start()
        answer = answers.get(timeout=10)
        child.join(timeout=10)
    assert f"process {os.getpid()} " in answer
