"""Files holding record data are 0600 from their first byte and appear whole or not at all."""

from __future__ import annotations

import stat
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clinic_pipeline.private_files import (
    private_target,
    write_private_jsonl,
    write_private_parquet,
    write_private_table,
    write_private_text,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _litter(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_each_writer_replaces_a_world_readable_file_with_a_private_one(tmp_path: Path) -> None:
    con = duckdb.connect()
    writers = {
        "rows.parquet": lambda p: write_private_parquet(con, "SELECT 42 AS answer", p),
        "table.parquet": lambda p: write_private_table(pa.table({"answer": [42]}), p),
        "page.md": lambda p: write_private_text(p, "# 42\n"),
        "rejected.jsonl": lambda p: write_private_jsonl(p, [{"reason": "Señal"}]),
    }
    for name, write in writers.items():
        path = tmp_path / "out" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text("old")
        path.chmod(0o644)
        write(path)
        assert _mode(path) == 0o600, name
    out = tmp_path / "out"
    assert pq.read_table(out / "rows.parquet").to_pylist() == [{"answer": 42}]
    assert pq.read_table(out / "table.parquet").to_pylist() == [{"answer": 42}]
    assert (out / "page.md").read_text() == "# 42\n"
    assert (out / "rejected.jsonl").read_text(encoding="utf-8") == '{"reason": "Señal"}\n'
    assert _litter(out) == []


def test_the_file_is_written_where_no_one_else_can_read_it(tmp_path: Path) -> None:
    # DuckDB's COPY takes no file mode: the folder it writes into is what keeps others out.
    with private_target(tmp_path / "staged.parquet") as target:
        assert target.parent != tmp_path
        assert _mode(target.parent) == 0o700
        target.write_text("partial")
    assert _mode(tmp_path / "staged.parquet") == 0o600


def test_a_failed_write_keeps_the_previous_file_and_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "contacts.parquet"
    con = duckdb.connect()
    write_private_parquet(con, "SELECT 1 AS kept", path)
    with pytest.raises(duckdb.Error):
        write_private_parquet(con, "SELECT * FROM no_such_table", path)
    assert pq.read_table(path).to_pylist() == [{"kept": 1}]
    assert _litter(tmp_path) == []
