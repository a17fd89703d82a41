"""Document uploads into the sandbox: attached to the right contact, idempotent, checksummed, size-limited."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from clinic_pipeline.freshsales import FreshsalesClient, RateLimiter, RetryPolicy
from clinic_pipeline.load.files import FilesResult, load_files
from clinic_pipeline.load.state import AuditEntry, IdMapRow, StateStore, open_state
from clinic_pipeline.sandbox.launcher import SandboxHandle

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
TXT = "Überweisung: Befund folgt.\n".encode()


@pytest.fixture
def client(sandbox: SandboxHandle) -> Iterator[FreshsalesClient]:
    with FreshsalesClient(
        sandbox.base_url,
        SecretStr(sandbox.api_key),
        rate_limiter=RateLimiter(100_000, 10_000, backoff_base=0.02, backoff_max=0.1),
        retry_policy=RetryPolicy(max_attempts=8, backoff_base=0.01, backoff_max=0.05),
        timeout=30.0,
    ) as made:
        yield made


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    with open_state(tmp_path / "state" / "migration.duckdb") as store:
        yield store


def _contacts(client: FreshsalesClient, state: StateStore, *keys: str) -> dict[str, int]:
    ids = {k: int(client.create("contacts", {"first_name": "P", "last_name": k, "external_id": k})["id"]) for k in keys}
    state.record_batch(
        obj="contacts", run_id="seed", partition=None, mapped=[IdMapRow(k, i, "h") for k, i in ids.items()], audit=[]
    )
    return ids


def _write(docs: Path, relative: str, content: bytes) -> Path:
    path = docs / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _stage(out: Path, rows: list[dict[str, Any]]) -> Path:
    """Staged files.parquet in the contract's layout; sha256 and size from disk unless a row overrides them."""
    records = []
    for i, row in enumerate(rows):
        path = Path(row["file_path"])
        content = path.read_bytes() if path.is_file() and path.stat().st_size < 1_000_000 else None
        records.append(
            {
                "_source_key": row.get("key", f"documents:{i + 1}"),
                "_source_table": "documents",
                "_source_row": i + 1,
                "_lookup_contact": row["contact"],
                "file_path": str(path),
                "file_name": row.get("name", path.name),
                "mime_type": row.get("mime", "application/octet-stream"),
                "size_bytes": row.get("size", path.stat().st_size if path.is_file() else 0),
                "sha256": row.get("sha256", hashlib.sha256(content).hexdigest() if content is not None else None),
            }
        )
    schema = pa.schema(
        [
            ("_source_key", pa.string()),
            ("_source_table", pa.string()),
            ("_source_row", pa.int64()),
            ("_lookup_contact", pa.string()),
            ("file_path", pa.string()),
            ("file_name", pa.string()),
            ("mime_type", pa.string()),
            ("size_bytes", pa.int64()),
            ("sha256", pa.string()),
        ]
    )
    staged = out / "files.parquet"
    pq.write_table(pa.Table.from_pylist(records, schema), staged)
    return staged


def _load(client: FreshsalesClient, state: StateStore, staged: Path, tmp_path: Path, **kw: Any) -> FilesResult:
    options: dict[str, Any] = {"run_id": "run-1", "max_file_bytes": 10_000_000, "link_base_url": None} | kw
    return load_files(client, state, staged, rejected_dir=tmp_path / "rejected", **options)


def _associations(client: FreshsalesClient, contact_id: int) -> list[dict[str, Any]]:
    return client.document_associations("contacts", contact_id)


def _requests(sandbox: SandboxHandle) -> dict[str, int]:
    return httpx.get(f"{sandbox.root_url}/_sandbox/requests", timeout=10).json()["requests"]


def _rejected_rows(result: FilesResult) -> list[dict[str, Any]]:
    assert result.rejected_path is not None
    assert stat.S_IMODE(result.rejected_path.stat().st_mode) == 0o600
    return [json.loads(line) for line in result.rejected_path.read_text(encoding="utf-8").splitlines()]


def test_files_attach_to_their_contact_and_a_rerun_uploads_nothing(
    client: FreshsalesClient, state: StateStore, sandbox: SandboxHandle, tmp_path: Path
) -> None:
    ids = _contacts(client, state, "patients:1", "patients:2")
    docs = tmp_path / "export" / "documents"
    rows = [
        {"file_path": _write(docs, "1/referral.pdf", PDF), "contact": "patients:1", "mime": "application/pdf"},
        {"file_path": _write(docs, "1/xray.png", PNG), "contact": "patients:1", "mime": "image/png"},
        {"file_path": _write(docs, "2/befund.txt", TXT), "contact": "patients:2", "name": "Befund Müller.txt"},
    ]
    staged = _stage(tmp_path, rows)

    first = _load(client, state, staged, tmp_path)

    assert (first.staged, first.uploaded, first.rejected, first.held_back) == (3, 3, 0, 0)
    assert first.bytes_uploaded == len(PDF) + len(PNG) + len(TXT)
    one = _associations(client, ids["patients:1"])
    two = _associations(client, ids["patients:2"])
    assert sorted((a["name"], a["content_file_size"], a["sha256"]) for a in one) == sorted(
        [
            ("referral.pdf", len(PDF), hashlib.sha256(PDF).hexdigest()),
            ("xray.png", len(PNG), hashlib.sha256(PNG).hexdigest()),
        ]
    )
    assert [(a["name"], a["sha256"]) for a in two] == [("Befund Müller.txt", hashlib.sha256(TXT).hexdigest())]
    mapped = state.id_map("files")
    assert {k: r.payload_hash for k, r in mapped.items()} == {
        "documents:1": hashlib.sha256(PDF).hexdigest(),
        "documents:2": hashlib.sha256(PNG).hexdigest(),
        "documents:3": hashlib.sha256(TXT).hexdigest(),
    }
    assert {r.freshsales_id for r in mapped.values()} == {a["id"] for a in one + two}
    assert state.audit_counts("run-1")[("files", "upload", "created")] == 3
    assert _rejected_rows(first) == []

    uploads_before = _requests(sandbox).get("POST /documents", 0)
    again = _load(client, state, staged, tmp_path, run_id="run-2")

    assert (again.uploaded, again.skipped) == (0, 3)
    assert _requests(sandbox).get("POST /documents", 0) == uploads_before
    assert len(_associations(client, ids["patients:1"])) == 2
    assert state.audit_counts("run-2")[("files", "skip", "unchanged")] == 3


def test_a_file_without_a_manifest_checksum_is_hashed_recorded_and_skipped_next_time(
    client: FreshsalesClient, state: StateStore, tmp_path: Path
) -> None:
    _contacts(client, state, "patients:1")
    path = _write(tmp_path / "docs", "scan.txt", TXT)
    staged = _stage(tmp_path, [{"file_path": path, "contact": "patients:1", "sha256": None}])

    assert _load(client, state, staged, tmp_path).uploaded == 1
    assert state.id_map("files")["documents:1"].payload_hash == hashlib.sha256(TXT).hexdigest()
    assert _load(client, state, staged, tmp_path).skipped == 1


def test_over_the_limit_becomes_a_document_link_when_the_clinic_hosts_its_files(
    client: FreshsalesClient, state: StateStore, sandbox: SandboxHandle, tmp_path: Path
) -> None:
    ids = _contacts(client, state, "patients:1")
    docs = tmp_path / "export" / "documents"
    big = _write(docs, "1/MRI scan.pdf", PDF * 100)
    staged = _stage(tmp_path, [{"file_path": big, "contact": "patients:1"}])

    result = _load(
        client,
        state,
        staged,
        tmp_path,
        max_file_bytes=1000,
        link_base_url="https://files.clinic.example/export/",
        documents_root=docs,
    )

    assert (result.linked, result.uploaded, result.rejected) == (1, 0, 0)
    assert _requests(sandbox).get("POST /documents", 0) == 0
    [link] = _associations(client, ids["patients:1"])
    assert link["document_type"] == "document_link"
    assert link["url"] == "https://files.clinic.example/export/1/MRI%20scan.pdf"
    assert link["name"] == "MRI scan.pdf"
    assert state.id_map("files")["documents:1"].freshsales_id == link["id"]
    assert _load(client, state, staged, tmp_path, max_file_bytes=1000, link_base_url="https://x.example").skipped == 1


def test_over_the_limit_without_a_link_base_is_a_listed_refusal(
    client: FreshsalesClient, state: StateStore, tmp_path: Path
) -> None:
    ids = _contacts(client, state, "patients:1")
    big = _write(tmp_path / "docs", "scan.pdf", PDF * 100)
    small = _write(tmp_path / "docs", "note.txt", TXT)
    staged = _stage(
        tmp_path, [{"file_path": big, "contact": "patients:1"}, {"file_path": small, "contact": "patients:1"}]
    )

    result = _load(client, state, staged, tmp_path, max_file_bytes=1000)

    assert (result.uploaded, result.rejected) == (1, 1)
    assert result.reasons == {"over the size limit": 1}
    assert [a["name"] for a in _associations(client, ids["patients:1"])] == ["note.txt"]
    assert _rejected_rows(result) == [
        {
            "source_key": "documents:1",
            "source_row": 1,
            "file_name": "scan.pdf",
            "http_status": None,
            "outcome": "rejected",
            "reason": "over the size limit",
            "detail": None,
        }
    ]
    assert state.audit_counts()[("files", "reject", "rejected")] == 1
    assert "documents:1" not in state.id_map("files")


def test_changed_and_missing_files_are_rejected_and_orphans_held_back(
    client: FreshsalesClient,
    state: StateStore,
    sandbox: SandboxHandle,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _contacts(client, state, "patients:1")
    docs = tmp_path / "docs"
    changed = _write(docs, "changed.pdf", PDF)
    orphan = _write(docs, "orphan.pdf", PDF)
    staged = _stage(
        tmp_path,
        [
            {"file_path": changed, "contact": "patients:1", "sha256": hashlib.sha256(b"as exported").hexdigest()},
            {"file_path": docs / "gone.pdf", "contact": "patients:1", "sha256": "ab" * 32},
            {"file_path": orphan, "contact": "patients:404"},
        ],
    )

    with caplog.at_level("DEBUG"):
        result = _load(client, state, staged, tmp_path)

    assert (result.uploaded, result.rejected, result.held_back) == (0, 2, 1)
    assert result.reasons == {"checksum mismatch": 1, "file missing": 1, "contact not loaded": 1}
    assert _requests(sandbox).get("POST /documents", 0) == 0
    assert [(r["source_key"], r["outcome"], r["reason"]) for r in _rejected_rows(result)] == [
        ("documents:1", "rejected", "checksum mismatch"),
        ("documents:2", "rejected", "file missing"),
        ("documents:3", "held_back", "contact not loaded"),
    ]
    counts = state.audit_counts()
    assert counts[("files", "reject", "rejected")] == 2
    assert counts[("files", "hold", "held_back")] == 1
    assert not any(name in caplog.text for name in ("changed.pdf", "gone.pdf", "orphan.pdf"))


def test_an_upload_an_interrupted_run_made_is_found_on_the_contact_not_sent_again(
    client: FreshsalesClient, state: StateStore, sandbox: SandboxHandle, tmp_path: Path
) -> None:
    ids = _contacts(client, state, "patients:1")
    path = _write(tmp_path / "docs", "referral.pdf", PDF)
    twin = _write(tmp_path / "docs" / "b", "referral.pdf", PDF)
    staged = _stage(
        tmp_path, [{"file_path": path, "contact": "patients:1"}, {"file_path": twin, "contact": "patients:1"}]
    )
    # The earlier run: started, uploaded the first file, died before committing it.
    state.record_batch(
        obj="files", run_id="run-0", partition=None, mapped=[], audit=[AuditEntry("run", "started", None)]
    )
    landed = client.upload_document(path, "referral.pdf", "Contact", ids["patients:1"])
    uploads_before = _requests(sandbox).get("POST /documents", 0)

    result = _load(client, state, staged, tmp_path)

    assert (result.reconciled, result.uploaded) == (1, 1)
    assert _requests(sandbox)["POST /documents"] == uploads_before + 1
    assert state.id_map("files")["documents:1"].freshsales_id == landed["id"]
    assert len(_associations(client, ids["patients:1"])) == 2
    assert state.audit_counts()[("files", "run", "finished")] == 1


def test_a_lost_upload_answer_is_reconciled_without_a_duplicate(
    client: FreshsalesClient, state: StateStore, sandbox: SandboxHandle, tmp_path: Path
) -> None:
    ids = _contacts(client, state, "patients:1")
    paths = [_write(tmp_path / "docs", f"page{i}.txt", TXT + bytes([i])) for i in range(6)]
    staged = _stage(tmp_path, [{"file_path": p, "contact": "patients:1"} for p in paths])
    faults = {"rate_reset": 0.4, "seed": 7}
    httpx.post(f"{sandbox.root_url}/_sandbox/faults", json=faults, timeout=10).raise_for_status()
    try:
        result = _load(client, state, staged, tmp_path)
    finally:
        httpx.post(f"{sandbox.root_url}/_sandbox/faults", json={"rate_reset": 0}, timeout=10).raise_for_status()

    assert result.reconciled >= 1  # seed 7 loses at least one upload answer
    assert result.uploaded + result.reconciled == 6
    names = sorted(a["name"] for a in _associations(client, ids["patients:1"]))
    assert names == [f"page{i}.txt" for i in range(6)]
    assert len(set(r.freshsales_id for r in state.id_map("files").values())) == 6


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_60_mb_file_streams_without_growing_memory(
    client: FreshsalesClient, state: StateStore, tmp_path: Path
) -> None:
    ids = _contacts(client, state, "patients:1")
    size = 60 * 1024 * 1024
    sparse = tmp_path / "docs" / "scan.tif"
    sparse.parent.mkdir(parents=True)
    with sparse.open("wb") as fh:
        fh.truncate(size)
    staged = _stage(tmp_path, [{"file_path": sparse, "contact": "patients:1", "sha256": None}])
    baseline = _rss_bytes()
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, _rss_bytes())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = _load(client, state, staged, tmp_path, max_file_bytes=150 * 1024 * 1024)
    finally:
        done.set()
        sampler.join()

    growth = peak - baseline
    print(f"RSS growth uploading a 60 MB file: {growth / 1024 / 1024:.1f} MB")
    assert result.uploaded == 1
    [document] = _associations(client, ids["patients:1"])
    assert document["content_file_size"] == size
    assert document["sha256"] == state.id_map("files")["documents:1"].payload_hash
    assert growth < 30 * 1024 * 1024


def test_a_refusal_by_freshsales_is_listed_and_the_run_goes_on(
    client: FreshsalesClient, state: StateStore, tmp_path: Path
) -> None:
    ids = _contacts(client, state, "patients:1", "patients:2")
    client.forget("contacts", ids["patients:1"])  # gone from Freshsales, still in the id map
    docs = tmp_path / "docs"
    staged = _stage(
        tmp_path,
        [
            {"file_path": _write(docs, "a.pdf", PDF), "contact": "patients:1"},
            {"file_path": _write(docs, "b.pdf", PDF), "contact": "patients:2"},
        ],
    )

    result = _load(client, state, staged, tmp_path)

    assert (result.uploaded, result.rejected) == (1, 1)
    assert result.reasons == {"refused by Freshsales": 1}
    [row] = _rejected_rows(result)
    assert (row["source_key"], row["http_status"], row["reason"]) == ("documents:1", 400, "refused by Freshsales")
    assert row["detail"]
    assert list(state.id_map("files")) == ["documents:2"]
