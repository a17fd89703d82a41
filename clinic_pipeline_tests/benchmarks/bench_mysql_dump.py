"""Rows per second the mysqldump reader sustains on a large extended-INSERT dump, and its peak memory.

Run `python clinic_pipeline_tests/benchmarks/bench_mysql_dump.py [ROWS]`, or
`pytest -m slow clinic_pipeline_tests/benchmarks/bench_mysql_dump.py`.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pytest

from clinic_pipeline.source.reader import open_source

MIN_ROWS_PER_SECOND = 50_000
# mysqldump's default net_buffer_length makes extended INSERTs of about 1 MB; this width gives ~1.3 MB.
ROWS_PER_STATEMENT = 10_000


def write_dump(path: Path, rows: int) -> None:
    """A patient-visit table of `rows` rows with escapes, NULLs, non-ASCII text and zero dates."""
    with path.open("w", encoding="utf-8") as fh:
        fh.write(
            "-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n"
            "/*!40101 SET NAMES utf8mb4 */;\nDROP TABLE IF EXISTS `visits`;\n"
            "CREATE TABLE `visits` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `pid` int(11) NOT NULL,\n"
            "  `provider` varchar(40) DEFAULT NULL,\n  `reason` text,\n  `fee` decimal(10,2) DEFAULT NULL,\n"
            "  `seen` date NOT NULL DEFAULT '0000-00-00',\n  `start` time DEFAULT NULL,\n"
            "  `status` varchar(2) DEFAULT '-',\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n"
            "LOCK TABLES `visits` WRITE;\n"
        )
        for first in range(1, rows + 1, ROWS_PER_STATEMENT):
            last = min(rows, first + ROWS_PER_STATEMENT - 1)
            values = ",".join(
                f"({i},{i % 50_000},'Dr. Renée D\\'Souza','Follow-up; \"BP\" check\\n{i}',{i % 900}.50,"
                f"'{'0000-00-00' if i % 97 == 0 else f'2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}'}',"
                f"{'NULL' if i % 13 == 0 else repr(f'{i % 10 + 8:02d}:30:00')},'@')"
                for i in range(first, last + 1)
            )
            fh.write(f"INSERT INTO `visits` VALUES {values};\n")
        fh.write("UNLOCK TABLES;\n")


def measure(rows: int) -> tuple[float, float, float]:
    """(rows per second, dump MB per second, peak RSS MB) for loading a generated dump of `rows` rows."""
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "large.sql"
        write_dump(dump, rows)
        size_mb = dump.stat().st_size / 1e6
        con = duckdb.connect()
        started = time.perf_counter()
        export = open_source(str(dump), con)
        elapsed = time.perf_counter() - started
        assert export.tables["visits"].row_count == rows
        (mismatched,) = con.execute("SELECT count(*) FROM source.visits WHERE id::BIGINT <> _source_row").fetchone()
        assert mismatched == 0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return rows / elapsed, size_mb / elapsed, peak_mb


@pytest.mark.slow
def test_mysql_dump_reader_is_fast_enough() -> None:
    rows_per_second, _, _ = measure(1_000_000)
    assert rows_per_second >= MIN_ROWS_PER_SECOND


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    rate, throughput, peak = measure(count)
    print(f"{count:,} rows: {rate:,.0f} rows/s, {throughput:.1f} MB/s of dump, peak RSS {peak:,.0f} MB")
