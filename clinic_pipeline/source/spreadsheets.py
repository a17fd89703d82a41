"""Excel workbooks (.xlsx/.xlsm) as export tables: one table per non-empty sheet, every cell as text.

Small practices export report screens to Excel. A sheet's first non-empty row is its header; every
later row that holds a value is a data row (blank rows are skipped, so `_source_row` counts data rows,
as it does for a CSV). Cells become the text a person sees, so the inventory
infers formats as it does for CSV: dates `YYYY-MM-DD` (with ` HH:MM:SS` when the cell's number
format shows a time), whole numbers without `.0`, other numbers with up to 15 significant digits
(Excel's own precision: 0.1 + 0.2 reads `0.3`, not a float's drift), booleans `TRUE`/`FALSE`.
Formulas are read as their last computed values.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pyarrow as pa

from clinic_pipeline.source.errors import SourceError

SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm")
_BATCH_ROWS = 50_000


def _cell_text(value: Any, number_format: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        shows_time = "h" in number_format.lower() or value.time() != time(0)
        return value.strftime("%Y-%m-%d %H:%M:%S" if shows_time else "%Y-%m-%d")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.15g}"
    return str(value)


def _header(cells: list[str | None]) -> list[str]:
    """Blank header cells get `column_<n>`; repeated names `<name>_2`... so every column has one name."""
    names: list[str] = []
    for i, cell in enumerate(cells, start=1):
        base = (cell or "").strip() or f"column_{i}"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}_{n}"
        names.append(name)
    return names


def _sheet_rows(sheet: Any) -> Iterator[list[str | None]]:
    for row in sheet.iter_rows():
        texts = [_cell_text(c.value, getattr(c, "number_format", "") or "") for c in row]
        if any(t is not None and t.strip() for t in texts):
            yield texts


def _sheet_table(rows: Iterator[list[str | None]]) -> pa.Table | None:
    header = next(rows, None)
    if header is None:
        return None
    names = _header(header)
    batches: list[pa.RecordBatch] = []
    columns: list[list[str | None]] = [[] for _ in names]
    schema = pa.schema([(n, pa.string()) for n in names])

    def flush() -> None:
        batches.append(pa.record_batch([pa.array(c, pa.string()) for c in columns], schema=schema))
        for column in columns:
            column.clear()

    for row in rows:
        if len(row) > len(names):
            # Values right of the header's last cell: give those columns names instead of dropping them.
            extra = _header([*header, *[None] * (len(row) - len(header))])[len(names) :]
            names += extra
            schema = pa.schema([(n, pa.string()) for n in names])
            batches = [_widen(b, schema) for b in batches]
            columns += [[None] * len(columns[0]) for _ in extra]
        for column, value in zip(columns, [*row, *[None] * (len(names) - len(row))], strict=True):
            column.append(value)
        if len(columns[0]) >= _BATCH_ROWS:
            flush()
    flush()
    return pa.Table.from_batches(batches, schema=schema)


def _widen(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    arrays = [*batch.columns, *[pa.nulls(batch.num_rows, pa.string()) for _ in range(len(schema) - batch.num_columns)]]
    return pa.record_batch(arrays, schema=schema)


def read_workbook(path: Path) -> list[tuple[str, pa.Table]]:
    """(sheet name, its rows as text) for every sheet with a header; errors name the file, never a value."""
    # Imported here: openpyxl is only needed when an export holds workbooks.
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, XML and its own errors alike
        raise SourceError(f"{path}: not a readable Excel workbook ({type(exc).__name__})") from None
    try:
        sheets = []
        for sheet in workbook.worksheets:
            table = _sheet_table(_sheet_rows(sheet))
            if table is not None:
                sheets.append((sheet.title, table))
        return sheets
    finally:
        workbook.close()
