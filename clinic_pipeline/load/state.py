"""The migration state store: `id_map` and `audit_log` in DuckDB (design.md's State contract).

The file is created with mode 0600 because before-images in the audit log hold PHI. Connections are
short-lived: Dagster runs steps in separate processes and DuckDB allows one writer process at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

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
"""


@dataclass(frozen=True)
class AuditEntry:
    op: str  # create | update | skip | reject | hold | reconcile | delete | restore
    outcome: str  # ok | rejected | held_back | unchanged | found_existing | error:<kind>
    source_key: str | None
    freshsales_id: int | None = None
    http_status: int | None = None
    before_image: dict[str, Any] | None = None


@dataclass(frozen=True)
class IdMapRow:
    source_key: str
    freshsales_id: int
    payload_hash: str


class StateStore:
    """One open connection to the state database; use `open_state` to get one."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

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
        """Commit one batch's outcome atomically, after the API confirmed it."""
        now = datetime.now(UTC)
        self._con.execute("BEGIN TRANSACTION")
        try:
            if mapped:
                self._con.executemany(
                    "INSERT OR REPLACE INTO id_map VALUES (?, ?, ?, ?, ?, ?)",
                    [(obj, m.source_key, m.freshsales_id, m.payload_hash, run_id, now) for m in mapped],
                )
            if audit:
                self._con.executemany(
                    "INSERT INTO audit_log (ts, run_id, partition, object, op, source_key, freshsales_id,"
                    " http_status, outcome, before_image) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                        )
                        for a in audit
                    ],
                )
            self._con.execute("COMMIT")
        except BaseException:
            self._con.execute("ROLLBACK")
            raise

    def audit_counts(self, run_id: str | None = None) -> dict[tuple[str, str, str], int]:
        """(object, op, outcome) → count, for operator reports: counts only, never values."""
        where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
        rows = self._con.execute(
            f"SELECT object, op, outcome, count(*) FROM audit_log {where} GROUP BY ALL ORDER BY ALL", params
        ).fetchall()
        return {(r[0], r[1], r[2]): int(r[3]) for r in rows}


@contextmanager
def open_state(path: Path, *, read_only: bool = False) -> Iterator[StateStore]:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A restrictive umask while DuckDB creates the file: it is never world-readable, not even briefly.
    old_umask = os.umask(0o177)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    finally:
        os.umask(old_umask)
    try:
        if not read_only:
            con.execute(_SCHEMA)
        os.chmod(path, 0o600)
        yield StateStore(con)
    finally:
        con.close()
