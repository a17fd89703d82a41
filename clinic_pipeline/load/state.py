"""The migration state store: `id_map`, `audit_log` and `load_intent` (design.md's State contract), in a
DuckDB file (the default) or a PostgreSQL database (`CLINIC_STATE_URL`, see `state_location`).

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

On PostgreSQL there is no such lock: every worker opens its own connection at once, and each write
transaction takes the database's writer lock instead (`state_backends`). The schema and every query
below are the same for both; `state_backends` holds what differs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pyarrow as pa

from clinic_pipeline.load.state_backends import (
    Params,
    StateConnection,
    StateUnavailableError,
    connect_duckdb,
    connect_postgres,
)
from clinic_pipeline.load.state_location import StateLocation
from clinic_pipeline.load.state_lock import DEFAULT_WAIT_SECONDS, holding_state, opening_guard

# Re-exported: callers that open the store catch its error from the same module.
from clinic_pipeline.load.state_lock import StateBusyError as StateBusyError
from clinic_pipeline.model.outcomes import UNSETTLED
from clinic_pipeline.private_files import write_private_text

# The one schema, in SQL both DuckDB and PostgreSQL run as it is.
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
-- The account's reference reads (selectors, field definitions, custom modules) of the run in progress, by
-- Freshsales base URL and API path: a restart of a killed run answers them from here (load/reference_cache.py).
CREATE TABLE IF NOT EXISTS reference_cache (
    base_url       VARCHAR NOT NULL,
    path           VARCHAR NOT NULL,
    body           JSON NOT NULL,
    fetched_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (base_url, path)
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
    created_at: datetime | None = None  # when it was committed, as read back: nothing of it was sent before


_Keyed = TypeVar("_Keyed", IdMapRow, Intent)

_ID_MAP_KEYS = pa.schema([("source_key", pa.string()), ("payload_hash", pa.string())])

# A writer publishes its counts at most this often: `status` reads them while the store is held.
PROGRESS_EVERY_SECONDS = 2.0


class StateStore:
    """One open connection to the state database; use `open_state` to get one."""

    def __init__(self, con: StateConnection, progress_path: Path | None = None) -> None:
        self._con = con
        self._progress_path = progress_path
        self._progress_at = 0.0
        self._progress_run: str | None = None  # a run whose latest counts the pace held back
        self._requests: dict[str, int] = {}  # per object, the requests its load has sent so far
        self._budget_remaining: int | None = None
        self._earlier: dict[str, Any] | None = None  # the run's requests an earlier writer published

    def note_requests(self, obj: str, used: int, budget_remaining: int | None) -> None:
        """The requests `obj`'s load has sent so far and the API's last `X-RateLimit-Remaining` (None: not
        sent), published with the next counts: a progress view shows requests used and budget left."""
        self._requests[obj] = used
        if budget_remaining is not None:
            self._budget_remaining = budget_remaining

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
        if self._earlier is None:
            # Each object's load opens the store anew: the requests of the run's earlier objects carry over.
            earlier = _read_json(self._progress_path) or {}
            self._earlier = earlier if earlier.get("run_id") == run_id else {}
        budget = self._earlier.get("budget_remaining") if self._budget_remaining is None else self._budget_remaining
        progress = {
            "pid": os.getpid(),
            "run_id": run_id,
            "as_of": datetime.now(UTC).isoformat(timespec="seconds"),
            "id_map": self.id_map_counts(),
            "requests": dict(self._earlier.get("requests") or {}) | self._requests,
            "budget_remaining": budget,
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
        rows = self._con.execute("SELECT object, count(*) FROM id_map GROUP BY object ORDER BY object").fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def id_map_table(self, obj: str) -> pa.Table:
        """(source_key, payload_hash) of every mapped record of `obj`, as Arrow for a bulk join."""
        return self._con.arrow("SELECT source_key, payload_hash FROM id_map WHERE object = ?", [obj], _ID_MAP_KEYS)

    def loading(self, obj: str, wait_seconds: float = DEFAULT_WAIT_SECONDS) -> AbstractContextManager[None]:
        """Hold `obj` for one load: another worker's load of it waits up to `wait_seconds`, then gives up."""
        return self._con.loading(obj, wait_seconds)

    def query(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        """Rows of a read query in the store's SQL (see `state_backends`: `?` or `$name` placeholders, what both
        databases accept): for analyses over the audit log of the modules that own them (rollback's plans)."""
        return [tuple(r) for r in self._con.execute(sql, params).fetchall()]

    def execute(self, sql: str, params: Params = None) -> None:
        """One write statement in the store's SQL, in a write transaction of its own."""
        with self._con.writing():
            self._con.execute(sql, params)

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
        with self._con.writing():
            if settled:
                self._con.execute(
                    "DELETE FROM load_intent WHERE object = ? AND source_key = ANY(?::VARCHAR[])", [obj, settled]
                )
            if mapped:
                self._con.executemany(
                    "INSERT INTO id_map VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (object, source_key) DO UPDATE SET"
                    " freshsales_id = excluded.freshsales_id, payload_hash = excluded.payload_hash,"
                    " run_id = excluded.run_id, loaded_at = excluded.loaded_at",
                    [(obj, m.source_key, m.freshsales_id, m.payload_hash, run_id, now) for m in _last_per_key(mapped)],
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
        self._publish_progress(run_id)

    def begin_intents(self, *, obj: str, run_id: str, intents: Sequence[Intent]) -> None:
        """Commit, before sending, that these records are about to be sent (one transaction)."""
        if not intents:
            return
        now = datetime.now(UTC)
        with self._con.writing():
            self._con.executemany(
                "INSERT INTO load_intent VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (object, source_key) DO UPDATE SET"
                " run_id = excluded.run_id, payload_hash = excluded.payload_hash, parent_id = excluded.parent_id,"
                " before_image = excluded.before_image, created_at = excluded.created_at",
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
                    for i in _last_per_key(intents)
                ],
            )

    def pending_intents(self, obj: str) -> dict[str, Intent]:
        """Records sent by a run that never learnt (or could not tell) what became of them."""
        rows = self._con.execute(
            "SELECT source_key, payload_hash, parent_id, before_image, run_id, created_at FROM load_intent"
            " WHERE object = ?",
            [obj],
        ).fetchall()
        return {
            r[0]: Intent(
                r[0], r[1], None if r[2] is None else int(r[2]), json.loads(r[3]) if r[3] else None, r[4], _aware(r[5])
            )
            for r in rows
        }

    def mapped_before(self, obj: str, before: datetime, limit: int) -> list[int]:
        """The Freshsales ids of `obj`'s latest `limit` records committed to the id map before `before`: records
        Freshsales created before anything sent after `before` (reconciliation stops reading a newest-first
        list at them)."""
        rows = self._con.execute(
            "SELECT freshsales_id FROM id_map WHERE object = ? AND loaded_at < ? ORDER BY loaded_at DESC LIMIT ?",
            [obj, before, limit],
        ).fetchall()
        return [int(r[0]) for r in rows]

    def reference(self, base_url: str, path: str) -> tuple[Any, datetime] | None:
        """A kept reference read and when it was fetched, or None."""
        row = self._con.execute(
            "SELECT body, fetched_at FROM reference_cache WHERE base_url = ? AND path = ?", [base_url, path]
        ).fetchone()
        return None if row is None else (json.loads(row[0]), _aware(row[1]))

    def keep_reference(self, base_url: str, path: str, body: Any, fetched_at: datetime) -> None:
        with self._con.writing():
            self._con.execute(
                "INSERT INTO reference_cache VALUES (?, ?, ?, ?) ON CONFLICT (base_url, path) DO UPDATE SET"
                " body = excluded.body, fetched_at = excluded.fetched_at",
                [base_url, path, json.dumps(body), fetched_at],
            )

    def forget_references(self, base_url: str, prefix: str = "") -> None:
        """Drops the kept reference reads of `base_url` whose path starts with `prefix` (all by default)."""
        with self._con.writing():
            self._con.execute(
                "DELETE FROM reference_cache WHERE base_url = ? AND starts_with(path, ?)", [base_url, prefix]
            )

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
            f"SELECT object, op, outcome, count(*) FROM audit_log {where}"
            " GROUP BY object, op, outcome ORDER BY object, op, outcome",
            params,
        ).fetchall()
        return {(r[0], r[1], r[2]): int(r[3]) for r in rows}


@contextmanager
def open_state(
    location: StateLocation,
    *,
    read_only: bool = False,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[StateStore]:
    """The state store at `location` (`Settings.state_location`): see the module's docstring.

    A DuckDB file: waits up to `wait_seconds` for another process to close it (reported once, to
    `on_wait` or the log), then raises `StateBusyError`; a brief command such as `status` should pass a
    short wait. PostgreSQL: no wait, other workers keep their connections; an unreachable server is a
    one-line `StateUnavailableError`.
    """
    if not isinstance(location, Path):
        con: StateConnection = connect_postgres(location, read_only=read_only, schema=_SCHEMA)
        try:
            yield StateStore(con)
        finally:
            con.close()
        return
    location.parent.mkdir(parents=True, exist_ok=True)
    with holding_state(location, wait_seconds=wait_seconds, on_wait=on_wait):
        with opening_guard():
            con = connect_duckdb(location, read_only=read_only, schema=_SCHEMA)
        store = StateStore(con, None if read_only else progress_path(location))
        try:
            yield store
        finally:
            store.publish_pending_progress()
            con.close()


def state_exists(location: StateLocation) -> bool:
    """Whether a load has created the store yet (a read-only open needs its tables)."""
    if isinstance(location, Path):
        return location.exists()
    with open_state(location, read_only=True) as state:
        return state.query("SELECT to_regclass('audit_log') IS NOT NULL")[0][0] is True


def progress_path(path: Path) -> Path:
    """Where the writer of the store at `path` publishes its counts (see `StateStore._publish_progress`)."""
    return path.with_name("progress.json")


def _last_per_key(rows: Sequence[_Keyed]) -> list[_Keyed]:
    """The last row per source key, in their order: what upserting them one by one leaves (an upsert statement
    over all of them at once may not name a key twice)."""
    last = {row.source_key: i for i, row in enumerate(rows)}
    return list(rows) if len(last) == len(rows) else [row for i, row in enumerate(rows) if last[row.source_key] == i]


def _aware(value: datetime) -> datetime:
    """DuckDB answers TIMESTAMPTZ in the session's zone, PostgreSQL with its offset: always aware, in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        progress: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return progress


def read_progress(location: StateLocation) -> dict[str, Any] | None:
    """The id map's counts as the store's writer last published them, or None. PostgreSQL has readers wait
    for no writer, so its counts are read as they are now."""
    if isinstance(location, Path):
        return _read_json(progress_path(location))
    try:
        with open_state(location, read_only=True) as state:
            counts = state.id_map_counts()
    except (StateUnavailableError, psycopg.Error):
        return None  # unreachable, or no load created the store yet: a progress view's next poll tries again
    return {"pid": None, "as_of": datetime.now(UTC).isoformat(timespec="seconds"), "id_map": counts}
