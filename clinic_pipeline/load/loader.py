"""Send one staged object to Freshsales: idempotent, resumable, every operation audited.

Per batch of staged rows:
1. prepare bodies (parents' ids from the id map; a row whose parent is missing is held back);
2. skip rows whose payload hash matches the id map (unchanged since they were loaded);
3. rows the id map does not know are first looked up in Freshsales by their source key (one
   filtered search per batch): a record created by a run that died before committing its state is
   found and adopted instead of being created twice;
4. create the rest, update known ones by id (bounded concurrency);
5. commit the id map and the audit rows for the batch, only after the API confirmed them.
A create whose outcome is unknown (timeout, connection reset) is reconciled the same way before
anything is re-sent; if it still cannot be told, the row stays unmapped and the next run finds it.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from clinic_pipeline.freshsales.client import FreshsalesClient
from clinic_pipeline.freshsales.errors import FreshsalesError, OutcomeUnknownError
from clinic_pipeline.load.payloads import Prepared, prepare
from clinic_pipeline.load.state import AuditEntry, IdMapRow, StateStore
from clinic_pipeline.staging.objects import BY_NAME, StagedObject

log = logging.getLogger(__name__)
BATCH_SIZE = 100  # one filtered search (is_in, a page) reconciles a whole batch
# The API refused the record itself: retrying cannot help, the record goes to the rejected file.
REJECTION_STATUSES = frozenset({400, 404, 409, 422})


class LoadFailedError(RuntimeError):
    """Some records hit errors that outlasted the retries; what succeeded is committed, a re-run resumes."""


@dataclass
class LoadResult:
    object: str
    staged: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    rejected_path: Path | None = None

    @property
    def loaded(self) -> int:
        return sum(self.outcomes[k] for k in ("created", "updated", "unchanged", "adopted"))


@dataclass(frozen=True)
class _Sent:
    prepared: Prepared
    op: str
    outcome: str
    freshsales_id: int | None = None
    http_status: int | None = None
    reason: str | None = None
    before_image: dict[str, Any] | None = None


def _batches(path: Path) -> Iterator[list[dict[str, Any]]]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_SIZE):
        yield batch.to_pylist()


class Loader:
    def __init__(
        self,
        client: FreshsalesClient,
        state: StateStore,
        *,
        run_id: str,
        partition: str | None = None,
        max_concurrency: int = 4,
    ) -> None:
        self._client = client
        self._state = state
        self._run_id = run_id
        self._partition = partition
        self._pool_size = max_concurrency

    def load(self, obj: StagedObject, staged_path: Path, rejected_dir: Path) -> LoadResult:
        result = LoadResult(obj.name)
        # Keyed by target: staged rows name their parents as `_lookup_<target>`.
        parent_maps = {BY_NAME[p].target: self._state.id_map(p) for p in obj.parents}
        known = self._state.id_map(obj.name)
        rejected: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=self._pool_size) as pool:
            for rows in _batches(staged_path):
                result.staged += len(rows)
                sent = self._load_batch(obj, [prepare(obj, r, parent_maps) for r in rows], known, pool)
                self._commit(obj, sent, known)
                for s in sent:
                    result.outcomes[s.outcome] += 1
                    if s.outcome in ("rejected", "held_back", "unknown", "failed"):
                        rejected.append(
                            {
                                "source_key": s.prepared.source_key,
                                "source_row": s.prepared.source_row,
                                "http_status": s.http_status,
                                "outcome": s.outcome,
                                "reason": s.reason,
                            }
                        )
        result.rejected_path = _write_rejected(rejected_dir / f"{obj.name}.jsonl", rejected)
        unfinished = result.outcomes["failed"] + result.outcomes["unknown"]
        if unfinished:
            raise LoadFailedError(
                f"{unfinished} {obj.name} records failed after retries or have an unknown outcome (see the audit "
                "log); what succeeded is committed: re-materialize to resume"
            )
        return result

    def _load_batch(
        self, obj: StagedObject, batch: list[Prepared], known: dict[str, IdMapRow], pool: ThreadPoolExecutor
    ) -> list[_Sent]:
        sent: list[_Sent] = []
        todo: list[Prepared] = []
        for p in batch:
            if p.payload is None:
                sent.append(_Sent(p, "hold", "held_back", reason=p.held_back_reason))
            elif p.source_key in known and known[p.source_key].payload_hash == p.payload_hash:
                sent.append(_Sent(p, "skip", "unchanged", known[p.source_key].freshsales_id))
            else:
                todo.append(p)
        unknown = [p.source_key for p in todo if p.source_key not in known]
        found = self._find(obj, unknown) if unknown else {}
        sent.extend(pool.map(lambda p: self._send(obj, p, known.get(p.source_key), found.get(p.source_key)), todo))
        return sent

    def _find(self, obj: StagedObject, keys: list[str]) -> dict[str, dict[str, Any]]:
        return self._client.find_by_keys(obj.entity, obj.key_field, keys)

    def _send(self, obj: StagedObject, p: Prepared, mapped: IdMapRow | None, existing: dict[str, Any] | None) -> _Sent:
        assert p.payload is not None
        try:
            if mapped is not None:
                self._client.update(obj.entity, mapped.freshsales_id, p.payload)
                return _Sent(p, "update", "updated", mapped.freshsales_id, 200)
            if existing is not None:
                # Found by its source key but not in our id map: a record an earlier run created
                # before it could commit, or one that was there before the migration. Keep what it
                # was so a rollback can restore it, then bring it up to date.
                existing_id = int(existing["id"])
                before = self._client.get(obj.entity, existing_id)
                self._client.update(obj.entity, existing_id, p.payload)
                return _Sent(p, "update", "adopted", existing_id, 200, before_image=before)
            return self._create(obj, p)
        except FreshsalesError as exc:
            op = "create" if mapped is None else "update"
            if exc.status in REJECTION_STATUSES:
                return _Sent(p, op, "rejected", None, exc.status, "; ".join(exc.messages))
            return _Sent(p, op, "failed", None, exc.status, type(exc).__name__)

    def _create(self, obj: StagedObject, p: Prepared) -> _Sent:
        assert p.payload is not None
        try:
            record = self._client.create(obj.entity, p.payload)
            return _Sent(p, "create", "created", int(record["id"]), 201)
        except OutcomeUnknownError:
            found = self._find(obj, [p.source_key]).get(p.source_key)
            if found is not None:
                return _Sent(p, "create", "created", int(found["id"]), None)
            try:
                record = self._client.create(obj.entity, p.payload)
            except OutcomeUnknownError:
                return _Sent(p, "create", "unknown", reason="outcome unknown twice; the next run reconciles it")
            return _Sent(p, "create", "created", int(record["id"]), 201)

    def _commit(self, obj: StagedObject, sent: list[_Sent], known: dict[str, IdMapRow]) -> None:
        mapped = [
            IdMapRow(s.prepared.source_key, s.freshsales_id, s.prepared.payload_hash)
            for s in sent
            if s.freshsales_id is not None and s.outcome in ("created", "updated", "adopted")
        ]
        audit = [
            AuditEntry(
                op=s.op,
                outcome=s.outcome,
                source_key=s.prepared.source_key,
                freshsales_id=s.freshsales_id,
                http_status=s.http_status,
                before_image=s.before_image,
            )
            for s in sent
        ]
        self._state.record_batch(
            obj=obj.name, run_id=self._run_id, partition=self._partition, mapped=mapped, audit=audit
        )
        known.update({m.source_key: m for m in mapped})


def _write_rejected(path: Path, rows: list[dict[str, Any]]) -> Path:
    """The API's reasons may quote field values: the file is private (0600), never a log line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
