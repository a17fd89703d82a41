"""Patient documents: the `documents` table and real files under `documents/<patient_id>/<document_id>.<ext>`.

Small files are valid PDF, PNG or plain text, built in memory. Their content names only the document
id (no patient data). Only the first `DISTINCT_FILES` documents get content of their own; every later
document is a hard link to one of them (same kind, so same size and sha256), which keeps a clinic of
100,000 patients to a few MB of disk while every path in the table exists. Large documents (scans over
the 25 MB attachment limits) are sparse: a header, a seek and one byte, so they take almost no blocks.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from clinic_pipeline.samples.generator import vocab as v
from clinic_pipeline.samples.generator.columns import (
    SECONDS_PER_DAY,
    cat,
    group_positions,
    ids,
    pick,
    stamps,
    table,
    text,
    weighted,
)
from clinic_pipeline.samples.generator.frame import Frame

DOCUMENT_COLUMNS = (
    "document_id", "patient_id", "file_path", "file_name", "mime_type", "size_bytes", "sha256", "category",
    "uploaded_at",
)  # fmt: skip
DOCUMENTS_DIR = "documents"
DOCUMENTS_PER_PATIENT = 0.5
DISTINCT_FILES = 2_000
MIB = 1 << 20
# Sizes of the large documents in turn: just over 25 MB, a mid-size scan, and one over 150 MB.
LARGE_SIZES = (26 * MIB + 7, 60 * MIB + 3, 160 * MIB + 1)
FILE_MODE = 0o600

_EXTENSIONS = np.array(["pdf", "png", "txt", "dcm"])
_MIME_TYPES = np.array(["application/pdf", "image/png", "text/plain", "application/dicom"])
_KIND_WEIGHTS = np.array([0.55, 0.3, 0.15])
_LARGE_KIND = 3
_DICOM_HEADER = bytes(128) + b"DICM"


def pdf_bytes(title: str) -> bytes:
    """A one-page PDF showing `title` (ASCII), with a correct cross-reference table."""
    stream = f"BT /F1 14 Tf 72 720 Td ({title}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour RGB PNG."""
    rows = (b"\x00" + bytes(rgb) * width) * height  # filter byte 0 before each row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows, 9))
        + _png_chunk(b"IEND", b"")
    )


def text_bytes(document_id: int) -> bytes:
    return (
        f"Scanned note, document {document_id}\r\n"
        "Transcribed from a paper form at the front desk.\r\n"
        "See the chart for the signed original.\r\n"
    ).encode()


def content(kind: int, document_id: int) -> bytes:
    if kind == 0:
        return pdf_bytes(f"Clinic document {document_id}")
    if kind == 1:
        return png_bytes(8 + document_id % 8, 8, (document_id % 256, (document_id // 256) % 256, 160))
    return text_bytes(document_id)


def _sparse_sha256(size: int) -> str:
    """sha256 of the DICOM header followed by zeros up to `size`, without writing or reading them."""
    digest = hashlib.sha256(_DICOM_HEADER)
    zeros = bytes(MIB)
    remaining = size - len(_DICOM_HEADER)
    while remaining > 0:
        step = min(remaining, MIB)
        digest.update(zeros[:step])
        remaining -= step
    return digest.hexdigest()


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _write_sparse(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(_DICOM_HEADER)
        fh.seek(size - 1)
        fh.write(b"\x00")


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # file systems without hard links get a copy
        shutil.copyfile(source, target)
        os.chmod(target, FILE_MODE)


@dataclass(frozen=True)
class _Plan:
    patient: np.ndarray
    kind: np.ndarray
    template: np.ndarray  # the document whose file each document shares (itself for distinct ones)
    size: np.ndarray


def _plan(frame: Frame, large: int) -> _Plan:
    rng = frame.rng(12)
    patient, _ = group_positions(rng.poisson(DOCUMENTS_PER_PATIENT, frame.patients))
    kind = weighted(rng, _KIND_WEIGHTS, len(patient))
    template = np.arange(len(patient))
    template[DISTINCT_FILES:] %= DISTINCT_FILES
    kind = kind[template]
    large_patient = np.sort(rng.integers(0, frame.patients, large))
    return _Plan(
        patient=np.concatenate([patient, large_patient]),
        kind=np.concatenate([kind, np.full(large, _LARGE_KIND)]),
        template=np.concatenate([template, np.arange(len(patient), len(patient) + large)]),
        size=np.array([LARGE_SIZES[i % len(LARGE_SIZES)] for i in range(large)], dtype=np.int64),
    )


def documents(frame: Frame, root: Path, large_documents: int = 0) -> pa.Table:
    """Write the files under `root/documents/` and return the `documents` table describing them."""
    rng = frame.rng(13)
    plan = _plan(frame, large_documents)
    n = len(plan.patient)
    small = n - large_documents
    distinct = min(small, DISTINCT_FILES)
    paths = [
        f"{DOCUMENTS_DIR}/{p}/{d}.{e}"
        for p, d, e in zip((plan.patient + 1).tolist(), range(1, n + 1), _EXTENSIONS[plan.kind].tolist(), strict=True)
    ]
    for folder in sorted({path.rsplit("/", 1)[0] for path in paths}):
        (root / folder).mkdir(parents=True, exist_ok=True)

    sizes = np.zeros(n, dtype=np.int64)
    hashes = np.empty(n, dtype=object)
    for i in range(distinct):
        data = content(int(plan.kind[i]), i + 1)
        _write(root / paths[i], data)
        sizes[i], hashes[i] = len(data), hashlib.sha256(data).hexdigest()
    for i in range(distinct, small):
        _link(root / paths[plan.template[i]], root / paths[i])
    sizes[distinct:small] = sizes[plan.template[distinct:small]]
    hashes[distinct:small] = hashes[plan.template[distinct:small]]
    for j, size in enumerate(plan.size.tolist()):
        _write_sparse(root / paths[small + j], size)
        sizes[small + j], hashes[small + j] = size, _sparse_sha256(size)

    category = rng.integers(0, len(v.DOCUMENT_CATEGORIES), n)
    category[small:] = list(v.DOCUMENT_CATEGORIES).index("imaging")
    uploaded = rng.integers(frame.history_start_s, frame.export_s - SECONDS_PER_DAY, n)
    arrays = [
        ids(n), text(plan.patient + 1), pa.array(paths, pa.string()),
        cat(pick(v.DOCUMENT_STEMS, category), ".", pick(_EXTENSIONS, plan.kind)), pick(_MIME_TYPES, plan.kind),
        text(sizes), pa.array(hashes, pa.string()), pick(v.DOCUMENT_CATEGORIES, category), stamps(uploaded),
    ]  # fmt: skip
    return table(DOCUMENT_COLUMNS, arrays, n)
