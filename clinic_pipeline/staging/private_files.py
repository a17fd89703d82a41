"""Parquet files that hold record data (staged rows, quarantine, aliases, the sample slice): mode 0600."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from clinic_pipeline.staging.transforms import quote_literal


def write_private_parquet(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> None:
    """COPY `query` to `path`, readable by the owner only; written aside and renamed, so a reader never
    sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    con.execute(f"COPY ({query}) TO {quote_literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd)")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
