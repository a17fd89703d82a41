"""Patient documents → files attached to their Freshsales contact: streamed, checksummed, idempotent.

Each staged file is checked on disk before anything is sent: a missing file or one whose SHA-256 (or
size) differs from the export's manifest is rejected (it changed since the export). A file over the
per-file limit becomes a document link to where the clinic hosts it when a base URL is configured, or
a listed refusal otherwise: nothing is skipped silently. Files are hashed in 1 MB chunks and the client
streams the upload from disk, so memory stays flat whatever the file size.

Idempotency: the id map (object `files`) holds source key → document id with the SHA-256 as payload
hash, so a re-run skips what is uploaded. Uploads have no source-key field to search by, so an upload
whose answer was lost (in this run, or in an earlier run that never finished: a `run started` audit row
without its `run finished`) is reconciled by listing the contact's document associations and matching
file name + size before uploading again.

File names may be PHI: they go to Freshsales and to the private (0600) rejected file, never to logs,
exceptions or the result's counts.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.freshsales.client import FreshsalesClient
from clinic_pipeline.freshsales.errors import FreshsalesError, NotFoundError, OutcomeUnknownError, ValidationError
from clinic_pipeline.load.state import AuditEntry, IdMapRow, StateStore
from clinic_pipeline.model.objects import CONTACTS, FILES
from clinic_pipeline.private_files import write_private_jsonl

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
FRESHSALES_MAX_FILE_BYTES = 150 * 1024 * 1024  # the help centre's per-file limit; plans may allow less
TARGETABLE_TYPE = "Contact"
RUN_OP = "run"

REASON_NO_PARENT = "contact not loaded"
REASON_MISSING = "file missing"
REASON_CHECKSUM = "checksum mismatch"
REASON_SIZE = "size mismatch"
REASON_OVER_LIMIT = "over the size limit"
REASON_OUTSIDE_ROOT = "outside the documents folder"
REASON_LOST = "no answer, and not found on the contact"
REASON_REFUSED = "refused by Freshsales"
# Answers that concern this one file; anything else (auth, budget, outage) stops the run instead.
REFUSALS = (ValidationError, NotFoundError)

_PLAN_SQL = """
SELECT s._source_key AS source_key, s._source_row AS source_row, s.file_path, s.file_name,
       s.size_bytes, lower(s.sha256) AS sha256, c.freshsales_id AS contact_id,
       f.payload_hash AS loaded_hash, f.freshsales_id AS loaded_id,
       -- uploaded before with the content the manifest states: nothing to do, not even hashing
       f.payload_hash IS NOT NULL AND lower(s.sha256) IS NOT DISTINCT FROM f.payload_hash AS unchanged
FROM read_parquet($staged) s
LEFT JOIN contact_map c ON c.source_key = s._lookup_contact
LEFT JOIN file_map f ON f.source_key = s._source_key
ORDER BY s._source_row, s._source_key
"""


class FilesLoadFailedError(OperatorError):
    """Some uploads ended without a known outcome even after reconciliation; a re-run reconciles them."""


@dataclass
class FilesResult:
    staged: int = 0
    # Each file's final (op, outcome): (upload, created), (link, found_existing), (skip, unchanged), (reject, rejected)…
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)  # rejected and held-back reasons (no values)
    bytes_uploaded: int = 0
    rejected_path: Path | None = None

    def outcome(self, outcome: str) -> int:
        return sum(n for (_op, out), n in self.counts.items() if out == outcome)

    @property
    def uploaded(self) -> int:
        return self.counts[("upload", "created")]

    @property
    def linked(self) -> int:
        return self.counts[("link", "created")]

    @property
    def skipped(self) -> int:
        return self.outcome("unchanged")

    @property
    def reconciled(self) -> int:
        return self.outcome("found_existing")

    @property
    def rejected(self) -> int:
        return self.outcome("rejected")

    @property
    def held_back(self) -> int:
        return self.outcome("held_back")

    @property
    def unknown(self) -> int:
        return self.outcome("unknown")


@dataclass(frozen=True)
class _Staged:
    source_key: str
    source_row: int | None
    file_path: str | None
    file_name: str | None
    size_bytes: int | None
    sha256: str | None
    contact_id: int | None
    loaded_hash: str | None
    loaded_id: int | None


@dataclass(frozen=True)
class _Outcome:
    op: str
    outcome: str
    freshsales_id: int | None = None
    http_status: int | None = None
    reason: str | None = None  # for operators: no values
    sha256: str | None = None
    detail: str | None = None  # Freshsales' own words, which may quote a file name: the private file only
    size: int = 0  # bytes sent


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _map_table(rows: dict[str, IdMapRow]) -> pa.Table:
    values = list(rows.values())
    return pa.table(
        {
            "source_key": pa.array([r.source_key for r in values], pa.string()),
            "freshsales_id": pa.array([r.freshsales_id for r in values], pa.int64()),
            "payload_hash": pa.array([r.payload_hash for r in values], pa.string()),
        }
    )


def _plan(state: StateStore, staged_path: Path) -> tuple[list[_Staged], list[tuple[str, int]]]:
    """Rows that need work, and (source key, document id) of those the manifest's checksum shows unchanged
    since their upload."""
    con = duckdb.connect()
    try:
        con.register("contact_map", _map_table(state.id_map(CONTACTS.name)))
        con.register("file_map", _map_table(state.id_map(FILES.name)))
        table = con.sql(_PLAN_SQL, params={"staged": str(staged_path)}).to_arrow_table()
    finally:
        con.close()
    same = table.filter(table["unchanged"])
    unchanged = list(zip(same["source_key"].to_pylist(), same["loaded_id"].to_pylist(), strict=True))
    pending = table.filter(pc.invert(table["unchanged"]))
    columns = [f for f in _Staged.__dataclass_fields__]
    rows = [_Staged(**{c: r[c] for c in columns}) for r in pending.select(columns).to_pylist()]
    return rows, unchanged


def _unfinished_earlier_run(state: StateStore) -> bool:
    counts = state.audit_counts()
    return counts.get((FILES.name, RUN_OP, "started"), 0) > counts.get((FILES.name, RUN_OP, "finished"), 0)


def _link_url(base: str, path: Path, root: Path) -> str:
    relative = PurePosixPath(*path.relative_to(root).parts)
    return base.rstrip("/") + "/" + quote(str(relative))


def _links_root(rows: list[_Staged], documents_root: Path | None) -> Path:
    if documents_root is not None:
        return documents_root
    folders = [str(Path(r.file_path).parent) for r in rows if r.file_path]
    return Path(os.path.commonpath(folders)) if folders else Path("/")


class _FileLoader:
    def __init__(
        self,
        client: FreshsalesClient,
        *,
        max_file_bytes: int,
        link_base_url: str | None,
        links_root: Path,
        reconcile_first: bool,
        claimed: set[int],
    ) -> None:
        self._client = client
        self._max_file_bytes = max_file_bytes
        self._link_base_url = link_base_url
        self._links_root = links_root
        self._reconcile_first = reconcile_first
        self._claimed = claimed  # document ids already mapped to a source key: never matched twice
        self._associations: dict[int, list[dict[str, Any]]] = {}

    def handle(self, row: _Staged) -> list[_Outcome]:
        contact_id = row.contact_id
        if contact_id is None:
            return [_Outcome("hold", "held_back", reason=REASON_NO_PARENT)]
        path = Path(row.file_path) if row.file_path else None
        if path is None or not path.is_file():
            return [_Outcome("reject", "rejected", reason=REASON_MISSING)]
        size = path.stat().st_size
        if row.size_bytes is not None and row.sha256 is None and size != row.size_bytes:
            return [_Outcome("reject", "rejected", reason=REASON_SIZE)]
        actual = sha256_of(path)
        if row.sha256 is not None and actual != row.sha256:
            return [_Outcome("reject", "rejected", reason=REASON_CHECKSUM, sha256=actual)]
        if row.loaded_hash == actual:
            return [_Outcome("skip", "unchanged", row.loaded_id, sha256=actual)]
        if size <= self._max_file_bytes:
            return self._upload(contact_id, row.file_name or path.name, path, size, actual)
        if self._link_base_url is None:
            return [_Outcome("reject", "rejected", reason=REASON_OVER_LIMIT, sha256=actual)]
        return [self._link(contact_id, row.file_name, self._link_base_url, path, actual)]

    def _link(self, contact_id: int, name: str | None, base_url: str, path: Path, sha: str) -> _Outcome:
        try:
            url = _link_url(base_url, path, self._links_root)
        except ValueError:
            return _Outcome("reject", "rejected", reason=REASON_OUTSIDE_ROOT, sha256=sha)

        def same_link(association: dict[str, Any]) -> bool:
            return association.get("url") == url

        if self._reconcile_first:
            found = self._find(contact_id, same_link)
            if found is not None:
                return _Outcome("link", "found_existing", found, sha256=sha)
        try:
            link = self._client.create_document_link(TARGETABLE_TYPE, contact_id, url, name=name)
        except OutcomeUnknownError:
            found = self._find(contact_id, same_link, refresh=True)
            if found is None:
                return _Outcome("link", "unknown", reason=REASON_LOST, sha256=sha)
            return _Outcome("link", "found_existing", found, sha256=sha)
        except REFUSALS as exc:
            return _refused("link", exc, sha)
        return _Outcome("link", "created", int(link["id"]), 201, sha256=sha)

    def _upload(self, contact_id: int, name: str, path: Path, size: int, sha: str) -> list[_Outcome]:

        def same_file(a: dict[str, Any]) -> bool:
            return a.get("document_type", "document") == "document" and _name_of(a) == name and _size_of(a) == size

        if self._reconcile_first:
            found = self._find(contact_id, same_file)
            if found is not None:
                return [_Outcome("upload", "found_existing", found, sha256=sha)]
        outcomes: list[_Outcome] = []
        for attempt in (1, 2):
            try:
                document = self._client.upload_document(path, name, TARGETABLE_TYPE, contact_id)
            except OutcomeUnknownError:
                found = self._find(contact_id, same_file, refresh=True)
                if found is not None:
                    return [*outcomes, _Outcome("upload", "found_existing", found, sha256=sha)]
                outcomes.append(_Outcome("upload", "unknown", reason=REASON_LOST, sha256=sha))
                if attempt == 2:
                    return outcomes
                continue
            except REFUSALS as exc:
                return [*outcomes, _refused("upload", exc, sha)]
            self._claimed.add(int(document["id"]))
            return [*outcomes, _Outcome("upload", "created", int(document["id"]), 201, sha256=sha, size=size)]
        raise AssertionError("unreachable")  # pragma: no cover

    def _find(self, contact_id: int, match: Callable[[dict[str, Any]], bool], *, refresh: bool = False) -> int | None:
        if refresh or contact_id not in self._associations:
            self._associations[contact_id] = self._client.document_associations("contacts", contact_id)
        for association in self._associations[contact_id]:
            doc_id = int(association["id"])
            if doc_id not in self._claimed and match(association):
                self._claimed.add(doc_id)
                return doc_id
        return None


def _refused(op: str, exc: FreshsalesError, sha: str) -> _Outcome:
    return _Outcome(op, "rejected", None, exc.status, REASON_REFUSED, sha, "; ".join(exc.messages))


def _name_of(association: dict[str, Any]) -> str | None:
    return association.get("name") or association.get("content_file_name") or association.get("file_name")


def _size_of(association: dict[str, Any]) -> int | None:
    size = association.get("content_file_size", association.get("file_size"))
    return int(size) if size is not None else None


def _load_one(
    loader: _FileLoader,
    row: _Staged,
    commit: Callable[[list[IdMapRow], list[AuditEntry]], None],
    result: FilesResult,
    rejected: list[dict[str, Any]],
) -> None:
    outcomes = loader.handle(row)
    # One commit per file, as soon as Freshsales answered: a crash loses at most the file in flight.
    commit(
        [
            IdMapRow(row.source_key, o.freshsales_id, o.sha256)
            for o in outcomes
            if o.outcome in ("created", "found_existing") and o.freshsales_id is not None and o.sha256
        ],
        # The contact goes with every row: deleting it removes the document, which the API cannot delete.
        [
            AuditEntry(o.op, o.outcome, row.source_key, o.freshsales_id, o.http_status, parent_id=row.contact_id)
            for o in outcomes
        ],
    )
    final = outcomes[-1]
    result.counts[(final.op, final.outcome)] += 1
    if (final.op, final.outcome) == ("upload", "created"):
        result.bytes_uploaded += final.size
    if final.outcome in ("rejected", "held_back", "unknown"):
        result.reasons[final.reason or REASON_REFUSED] += 1
        rejected.append(
            {
                "source_key": row.source_key,
                "source_row": row.source_row,
                "file_name": row.file_name,
                "http_status": final.http_status,
                "outcome": final.outcome,
                "reason": final.reason,
                "detail": final.detail,
            }
        )


def load_files(
    client: FreshsalesClient,
    state: StateStore,
    staged_path: Path,
    *,
    run_id: str,
    partition: str | None = None,
    max_file_bytes: int = FRESHSALES_MAX_FILE_BYTES,
    link_base_url: str | None,
    rejected_dir: Path,
    documents_root: Path | None = None,
) -> FilesResult:
    """Attach every staged file to its contact (or link it, or list why not); see the module docstring.

    `documents_root`: where link paths are taken relative to (default: the staged files' common folder).
    Raises FilesLoadFailedError, after committing everything else, when an upload's outcome stayed unknown.
    """
    rows, unchanged = _plan(state, staged_path)
    result = FilesResult(staged=len(rows) + len(unchanged))
    reconcile_first = _unfinished_earlier_run(state)
    loader = _FileLoader(
        client,
        max_file_bytes=max_file_bytes,
        link_base_url=link_base_url,
        links_root=_links_root(rows, documents_root),
        reconcile_first=reconcile_first,
        claimed={r.freshsales_id for r in state.id_map(FILES.name).values()},
    )

    def commit(mapped: list[IdMapRow], audit: list[AuditEntry]) -> None:
        state.record_batch(obj=FILES.name, run_id=run_id, partition=partition, mapped=mapped, audit=audit)

    commit([], [AuditEntry(RUN_OP, "started", None)])
    if unchanged:
        commit([], [AuditEntry("skip", "unchanged", key, doc_id) for key, doc_id in unchanged])
        result.counts[("skip", "unchanged")] += len(unchanged)
    rejected: list[dict[str, Any]] = []
    try:
        for row in rows:
            _load_one(loader, row, commit, result, rejected)
    finally:
        # Also when the run stops (auth, budget, outage): what was refused so far is listed.
        # File names may be PHI: they are listed here only, in a private file.
        result.rejected_path = rejected_dir / f"{FILES.name}.jsonl"
        write_private_jsonl(result.rejected_path, rejected)
    unknown = result.unknown
    if not unknown:
        commit([], [AuditEntry(RUN_OP, "finished", None)])
    logger.info(
        "files: %d staged, %s, %d bytes uploaded%s",
        result.staged,
        ", ".join(f"{op}/{out} {n}" for (op, out), n in sorted(result.counts.items())),
        result.bytes_uploaded,
        " (reconciled against document associations first)" if reconcile_first else "",
    )
    if unknown:
        raise FilesLoadFailedError(f"files: {unknown} uploads without a known outcome; re-run to reconcile them")
    return result
