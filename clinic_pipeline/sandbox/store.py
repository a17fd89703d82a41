"""SQLite persistence: every record is a JSON document keyed by (kind, id), cached in memory.

The process is the only writer, so the in-memory copy is authoritative and SQLite (WAL) makes it
survive restarts; one connection guarded by a lock keeps writes ordered.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Record = dict[str, Any]
# Ids start above 2^32 so a client that stores them in 32 bits breaks here, not in production.
FIRST_ID = 17_000_000_001

UniqueKeys = Callable[[Record], Iterable[str]]
# An index on one field of a kind is named "<kind>.<field>", so a kind may hold several unique indexes
# whose keys never meet (an upsert's email identifier must not find a contact by its mobile number).
INDEX_SEPARATOR = "."


class Store:
    def __init__(self, db: Path, unique_keys: dict[str, UniqueKeys]) -> None:
        """`unique_keys`: index name ("<kind>" or "<kind>.<field>") → the keys a record of that kind holds."""
        self.db = db
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, id INTEGER NOT NULL, body TEXT NOT NULL,"
            " PRIMARY KEY (kind, id))"
        )
        self._conn.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._unique_keys = unique_keys
        self._indexes: dict[str, list[str]] = {}
        for index in unique_keys:
            self._indexes.setdefault(index.split(INDEX_SEPARATOR)[0], []).append(index)
        self._load()

    def _load(self) -> None:
        self._records: dict[str, dict[int, Record]] = {}
        self._unique: dict[str, dict[str, int]] = {index: {} for index in self._unique_keys}
        for kind, rid, body in self._conn.execute("SELECT kind, id, body FROM records ORDER BY id"):
            self._cache(kind, rid, json.loads(body))
        self._kv = {k: json.loads(v) for k, v in self._conn.execute("SELECT key, value FROM kv")}

    def _cache(self, kind: str, rid: int, record: Record) -> None:
        self._records.setdefault(kind, {})[rid] = record
        for index in self._indexes.get(kind, ()):
            for key in self._unique_keys[index](record):
                self._unique[index][key] = rid

    def _uncache(self, kind: str, rid: int) -> None:
        old = self._records.get(kind, {}).pop(rid, None)
        if old is None:
            return
        for index in self._indexes.get(kind, ()):
            for key in self._unique_keys[index](old):
                if self._unique[index].get(key) == rid:
                    del self._unique[index][key]

    def next_id(self) -> int:
        with self._lock:
            rid = int(self.get_setting("next_id", FIRST_ID))
            self.set_setting("next_id", rid + 1)
            return rid

    def get(self, kind: str, rid: int) -> Record | None:
        return self._records.get(kind, {}).get(rid)

    def all(self, kind: str) -> list[Record]:
        return list(self._records.get(kind, {}).values())

    def kinds(self) -> list[str]:
        return sorted(kind for kind, records in self._records.items() if records)

    def owner_of(self, index: str, key: str) -> int | None:
        """Id of the record holding a unique key (email, mobile digits, lower-cased account name)."""
        return self._unique.get(index, {}).get(key)

    def put(self, kind: str, record: Record) -> Record:
        with self._lock:
            rid = int(record["id"])
            self._uncache(kind, rid)
            self._cache(kind, rid, record)
            self._conn.execute(
                "INSERT OR REPLACE INTO records (kind, id, body) VALUES (?, ?, ?)", (kind, rid, json.dumps(record))
            )
            return record

    def remove(self, kind: str, rid: int) -> None:
        with self._lock:
            self._uncache(kind, rid)
            self._conn.execute("DELETE FROM records WHERE kind = ? AND id = ?", (kind, rid))

    def get_setting(self, key: str, default: Any = None) -> Any:
        return self._kv.get(key, default)

    def set_setting(self, key: str, value: Any) -> None:
        with self._lock:
            self._kv[key] = value
            self._conn.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def clear(self) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM records")
            self._conn.execute("DELETE FROM kv")
            self._load()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
