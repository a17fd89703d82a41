"""Files that hold record data (staged rows, quarantine, rejected records, diffs, owner map, rebuild
reference): mode 0600 from their first byte, and whole or absent.

Each file is written inside a fresh folder beside its destination (mode 0700, so not even a writer
that takes no file mode, such as DuckDB's COPY, leaves it readable by others for a moment), made 0600
and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from clinic_pipeline.sql import quote_literal

FILE_MODE = 0o600


@contextmanager
def private_target(path: Path) -> Iterator[Path]:
    """A path to write `path`'s content to; on a clean exit it becomes `path`, mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as folder:
        target = Path(folder) / path.name
        yield target
        os.chmod(target, FILE_MODE)
        os.replace(target, path)


def write_private_parquet(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> None:
    """COPY the result of `query` to `path` as zstd Parquet."""
    with private_target(path) as target:
        con.execute(f"COPY ({query}) TO {quote_literal(target)} (FORMAT parquet, COMPRESSION zstd)")


def write_private_table(table: pa.Table, path: Path) -> None:
    with private_target(path) as target:
        pq.write_table(table, target)


def write_private_text(path: Path, text: str) -> None:
    with private_target(path) as target:
        target.write_text(text, encoding="utf-8")


def write_private_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line; values stay as they are (ensure_ascii off), the file is private."""
    with private_target(path) as target, target.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
