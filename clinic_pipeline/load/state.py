"""The migration state store: `id_map`, `audit_log` and `load_intent` in DuckDB (design.md's State contract).

`load_intent` is the write-ahead log of the loader: a row is committed before a record is sent and
removed in the same transaction that commits the API's answer. A row left behind means the answer
never reached the state (the process died, or the outcome was unknown): only those keys need looking
up in Freshsales on the next run. A before-image of a record the send may overwrite (a bulk upsert by
email or name adopting a pre-existing record) travels with the intent so a crash cannot lose it.

The file is created with mode 0600 because before-images in the audit log hold PHI. DuckDB lets one
process at a time open the file (a read-only open elsewhere conflicts too), and Dagster runs steps in
separate processes: `open_state` first takes the store for its process through `state_lock` (an
flock on `<db>.lock`), so a second process waits for the first to close, then gives up with a
one-line `StateBusyError` after `wait_seconds`. Within one process, nested opens and threads share
the hold, each with its own connection. Connections are short-lived: one per step or command.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from clinic_pipeline.load.state_lock import DEFAULT_WAIT_SECONDS, busy_from_duckdb, holding_state, opening_guard

# Re-exported: callers that open the store catch its error from the same module.
from clinic_pipeline.load.state_lock import StateBusyError as StateBusyError
from clinic_pipeline.model.outcomes import UNSETTLED
from clinic_pipeline.private_files import write_private_text

_SCHEMA = """
CREATE TABLE IF NOT EXISTS id_map (
    object         VARCHAR NOT NULL,
    source_key     VARCHAR NOT NULL,
    freshsales_id  BIGINT  NOT NULL,
    payload_hash   VARCHAR NOT NULL,
    run_id         VARCHAR NOT NULL,
    loaded_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (object, source_key)
);
CREATE SEQUENCE IF NOT EXISTS audit_seq START 1;
CREATE TABLE IF NOT EXISTS audit_log (
    seq            BIGINT DEFAULT nextval('audit_seq') PRIMARY KEY,
    ts             TIMESTAMPTZ NOT NULL,
    run_id         VARCHAR NOT NULL,
    partition      VARCHAR,
    object         VARCHAR NOT NULL,
    op             VARCHAR NOT NULL,
    source_key     VARCHAR,
    freshsales_id  BIGINT,
    http_status    INTEGER,
    outcome        VARCHAR NOT NULL,
    before_image   JSON
);
-- The record this one hangs on (a file's contact), whose deletion removes it: added after the first
-- stores were made, so those gain it here.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS parent_id BIGINT;
CREATE TABLE IF NOT EXISTS load_intent (
    object         VARCHAR NOT NULL,
    source_key     VARCHAR NOT NULL,
    run_id         VARCHAR NOT NULL,
    payload_hash   VARCHAR NOT NULL,
    parent_id      BIGINT,
    before_image   JSON,
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (object, source_key)
);
"""


@dataclass(frozen=True)
class AuditEntry:
    op: str  # create | update | skip | hold | reconcile | delete | restore
    # created | updated | adopted (before_image: it existed before the migration) | unchanged | rejected
    # | held_back | unknown | failed | found_existing / not_found (reconcile) | deleted | cascaded | restored
    outcome: str
    source_key: str | None
    freshsales_id: int | None = None
    http_status: int | None = None
    before_image: dict[str, Any] | None = None
    # The parent record (a contact) whose deletion removes this one: how a rollback knows what went
    # with a parent for records the API cannot delete (documents).
    parent_id: int | None = None


@dataclass(frozen=True)
class IdMapRow:
    source_key: str
    freshsales_id: int
    payload_hash: str


@dataclass(frozen=True)
class Intent:
    source_key: str
    payload_hash: str
    parent_id: int | None = None  # the contact a record without a searchable key hangs on
    before_image: dict[str, Any] | None = None
    run_id: str | None = None  # the run that sent it, as read back: a rollback of that run undoes it


# A writer publishes its counts at most this often: `status` reads them while the store is held.
PROGRESS_EVERY_SECONDS = 2.0


class StateStore:
    """One open connection to the state database; use `open_state` to get one."""

    def __init__(self, con: duckdb.DuckDBPyConnection, progress_path: Path | None = None) -> None:
        self._con = con
        self._progress_path = progress_path
        self._progress_at = 0.0
        self._progress_run: str | None = None  # a run whose latest counts the pace held back

    def _publish_progress(self, run_id: str, *, final: bool = False) -> None:
        """The id map's counts per object, for `status` while this process holds the store (DuckDB lets no
        other process read it then): counts and the writer's pid only, never keys or values. `final`: as
        the store closes, so the last batch's counts are not held back by the pace."""
        if self._progress_path is None:
            return
        if not final and time.monotonic() - self._progress_at < PROGRESS_EVERY_SECONDS:
            self._progress_run = run_id
            return
        self._progress_at = time.monotonic()
        self._progress_run = None
        progress = {
            "pid": os.getpid(),
            "run_id": run_id,
            "as_of": datetime.now(UTC).isoformat(timespec="seconds"),
            "id_map": self.id_map_counts(),
        }
        write_private_text(self._progress_path, json.dumps(progress))

    def publish_pending_progress(self) -> None:
        """Publishes counts the pace held back (the last batches of a load), before the store closes."""
        if self._progress_run is not None:
            self._publish_progress(self._progress_run, final=True)

    def id_map(self, obj: str) -> dict[str, IdMapRow]:
        rows = self._con.execute(
            "SELECT source_key, freshsales_id, payload_hash FROM id_map WHERE object = ?", [obj]
        ).fetchall()
        return {r[0]: IdMapRow(r[0], int(r[1]), r[2]) for r in rows}

    def id_map_counts(self) -> dict[str, int]:
        rows = self._con.execute("SELECT object, count(*) FROM id_map GROUP BY ALL ORDER BY ALL").fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def record_batch(
        self,
        *,
        obj: str,
        run_id: str,
        partition: str | None,
        mapped: Sequence[IdMapRow],
        audit: Sequence[AuditEntry],
    ) -> None:
        """Commit one batch's outcome atomically, after the API confirmed it; settled keys lose their intent."""
        now = datetime.now(UTC)
        settled = sorted({a.source_key for a in audit if a.source_key and a.outcome not in UNSETTLED})
        self._con.execute("BEGIN TRANSACTION")
        try:
            if settled:
                self._con.execute(
                    "DELETE FROM load_intent WHERE object = ? AND list_contains(?::VARCHAR[], source_key)",
                    [obj, settled],
                )
            if mapped:
                self._con.executemany(
                    "INSERT OR REPLACE INTO id_map VALUES (?, ?, ?, ?, ?, ?)",
                    [(obj, m.source_key, m.freshsales_id, m.payload_hash, run_id, now) for m in mapped],
                )
            if audit:
                self._con.executemany(
                    "INSERT INTO audit_log (ts, run_id, partition, object, op, source_key, freshsales_id,"
                    " http_status, outcome, before_image, parent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            now,
                            run_id,
                            partition,
                            obj,
                            a.op,
                            a.source_key,
                            a.freshsales_id,
                            a.http_status,
                            a.outcome,
                            json.dumps(a.before_image) if a.before_image is not None else None,
                            a.parent_id,
                        )
                        for a in audit
                    ],
                )
            self._con.execute("COMMIT")
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._publish_progress(run_id)

    def begin_intents(self, *, obj: str, run_id: str, intents: Sequence[Intent]) -> None:
        """Commit, before sending, that these records are about to be sent (one transaction)."""
        if not intents:
            return
        now = datetime.now(UTC)
        self._con.execute("BEGIN TRANSACTION")
        try:
            self._con.executemany(
                "INSERT OR REPLACE INTO load_intent VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        obj,
                        i.source_key,
                        run_id,
                        i.payload_hash,
                        i.parent_id,
                        json.dumps(i.before_image) if i.before_image is not None else None,
                        now,
                    )
                    for i in intents
                ],
            )
            self._con.execute("COMMIT")
        except BaseException:
            self._con.execute("ROLLBACK")
            raise

    def pending_intents(self, obj: str) -> dict[str, Intent]:
        """Records sent by a run that never learnt (or could not tell) what became of them."""
        rows = self._con.execute(
            "SELECT source_key, payload_hash, parent_id, before_image, run_id FROM load_intent WHERE object = ?", [obj]
        ).fetchall()
        return {
            r[0]: Intent(r[0], r[1], None if r[2] is None else int(r[2]), json.loads(r[3]) if r[3] else None, r[4])
            for r in rows
        }

    def audit_entries(self, obj: str | None = None) -> list[dict[str, Any]]:
        """Audit rows in commit order (before-images parsed): PHI, for rollback and tests, not for logs."""
        where, params = ("WHERE object = ?", [obj]) if obj else ("", [])
        cursor = self._con.execute(
            "SELECT seq, ts, run_id, partition, object, op, source_key, freshsales_id, http_status, outcome,"
            f" before_image, parent_id FROM audit_log {where} ORDER BY seq",
            params,
        )
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        for row in rows:
            row["before_image"] = json.loads(row["before_image"]) if row["before_image"] else None
        return rows

    def partitions(self) -> list[str]:
        """The delta windows a load has written to, oldest first."""
        rows = self._con.execute(
            "SELECT DISTINCT partition FROM audit_log WHERE partition IS NOT NULL ORDER BY 1"
        ).fetchall()
        return [str(r[0]) for r in rows]

    def audit_counts(self, run_id: str | None = None) -> dict[tuple[str, str, str], int]:
        """(object, op, outcome) → count, for operator reports: counts only, never values."""
        where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
        rows = self._con.execute(
            f"SELECT object, op, outcome, count(*) FROM audit_log {where} GROUP BY ALL ORDER BY ALL", params
        ).fetchall()
        return {(r[0], r[1], r[2]): int(r[3]) for r in rows}


@contextmanager
def open_state(
    path: Path,
    *,
    read_only: bool = False,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[StateStore]:
    """The state store, once no other process has it open: see the module's docstring.

    Waits up to `wait_seconds` for another process to close it (reported once, to `on_wait` or the
    log), then raises `StateBusyError`. A brief command such as `status` should pass a short wait.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with holding_state(path, wait_seconds=wait_seconds, on_wait=on_wait):
        with opening_guard():
            con = _connect(path, read_only=read_only)
        store = StateStore(con, None if read_only else progress_path(path))
        try:
            yield store
        finally:
            store.publish_pending_progress()
            con.close()


def progress_path(path: Path) -> Path:
    """Where the writer of the store at `path` publishes its counts (see `StateStore._publish_progress`)."""
    return path.with_name("progress.json")


def read_progress(path: Path) -> dict[str, Any] | None:
    """The counts the store's writer last published, or None."""
    try:
        progress: dict[str, Any] = json.loads(progress_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return progress


def _connect(path: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    # A restrictive umask while DuckDB creates the file: it is never world-readable, not even briefly.
    old_umask = os.umask(0o177)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        # A process that does not take our lock (an older build, a DuckDB shell) holds the file.
        if "Could not set lock" not in str(exc):
            raise
        raise busy_from_duckdb(path, str(exc)) from None
    finally:
        os.umask(old_umask)
    try:
        if not read_only:
            con.execute(_SCHEMA)
        os.chmod(path, 0o600)
    except BaseException:
        con.close()
        raise
    return con
