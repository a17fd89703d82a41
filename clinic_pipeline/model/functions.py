"""Functions the transforms call in DuckDB that SQL alone cannot do well: a person's name split into its
parts (nameparser).

Each is an Arrow function: DuckDB hands it a batch of values, it parses each distinct value once (and
remembers it for the batches after), and the results are taken back onto the rows in Arrow, so a column
of 2 million rows with a few thousand distinct names costs a few thousand parses.
"""

from __future__ import annotations

from functools import lru_cache

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from duckdb.sqltypes import VARCHAR
from nameparser import HumanName

NAME_PART = "clinic_name_part"
NAME_PARTS = ("title", "first", "middle", "last", "suffix")
# Distinct values remembered across batches: a clinic's names, bounded so a huge export cannot exhaust memory.
_CACHE_SIZE = 200_000


@lru_cache(maxsize=_CACHE_SIZE)
def _name_parts(value: str) -> tuple[str, ...]:
    """`Luis Ferreira, MD` → ('', 'Luis', '', 'Ferreira', 'MD'); `FERREIRA, LUIS` → ('', 'LUIS', '', 'FERREIRA', '')."""
    name = HumanName(value)
    return tuple(getattr(name, part) for part in NAME_PARTS)


def _name_part(values: pa.Array, parts: pa.Array) -> pa.Array:
    distinct = pc.unique(values)
    part = parts[0].as_py() if len(parts) else "first"
    index = NAME_PARTS.index(part)
    parsed = pa.array(
        [None if v is None else (_name_parts(v)[index] or None) for v in distinct.to_pylist()], pa.string()
    )
    return pc.take(parsed, pc.index_in(values, value_set=distinct))


def register_functions(con: duckdb.DuckDBPyConnection) -> None:
    """Make the transforms' functions callable on `con` (once per connection)."""
    registered = {
        row[0]
        for row in con.execute(
            "SELECT function_name FROM duckdb_functions() WHERE function_name = ?", [NAME_PART]
        ).fetchall()
    }
    if NAME_PART not in registered:
        # `special`: nulls reach the function (and a one-word name's last name comes back null).
        con.create_function(NAME_PART, _name_part, [VARCHAR, VARCHAR], VARCHAR, type="arrow", null_handling="special")
