"""Functions the transforms call in DuckDB that SQL alone cannot do well: a person's name split into its
parts (nameparser), a phone number in E.164 read in the clinic's country (phonenumbers).

Each is an Arrow function: DuckDB hands it a batch of values, it parses each distinct value once (and
remembers it for the batches after), and the results are taken back onto the rows in Arrow, so a column
of 2 million rows with a few thousand distinct values costs a few thousand parses.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import duckdb
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from duckdb.sqltypes import VARCHAR
from nameparser import HumanName

NAME_PART = "clinic_name_part"
NAME_PARTS = ("title", "first", "middle", "last", "suffix")
E164 = "clinic_e164"
# Distinct values remembered across batches: a clinic's names, bounded so a huge export cannot exhaust memory.
_CACHE_SIZE = 200_000


@lru_cache(maxsize=_CACHE_SIZE)
def _name_parts(value: str) -> tuple[str, ...]:
    """`Luis Ferreira, MD` → ('', 'Luis', '', 'Ferreira', 'MD'); `FERREIRA, LUIS` → ('', 'LUIS', '', 'FERREIRA', '')."""
    name = HumanName(value)
    return tuple(getattr(name, part) for part in NAME_PARTS)


@lru_cache(maxsize=_CACHE_SIZE)
def e164(value: str, country: str) -> str | None:
    """`020 7946 0958` in GB → +442079460958; None when it is no whole number (too short, letters, 5.55E+09).

    A number written with its country code (+44 …, 0044 …) keeps it whatever the clinic's country. Only
    numbers of a possible length count: a 7-digit local number has no area code to dial it by."""
    try:
        number = phonenumbers.parse(value, country)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _per_distinct(parse: Callable[[str, str], str | None]) -> Callable[[pa.Array, pa.Array], pa.Array]:
    """An Arrow function of (value, argument) that parses each distinct value of a batch once."""

    def apply(values: pa.Array, arguments: pa.Array) -> pa.Array:
        argument = arguments[0].as_py() if len(arguments) else ""
        distinct = pc.unique(values)
        parsed = pa.array([None if v is None else parse(v, argument) for v in distinct.to_pylist()], pa.string())
        return pc.take(parsed, pc.index_in(values, value_set=distinct))

    return apply


def _name_part(value: str, part: str) -> str | None:
    return _name_parts(value)[NAME_PARTS.index(part)] or None


_FUNCTIONS = {NAME_PART: _per_distinct(_name_part), E164: _per_distinct(e164)}


def register_functions(con: duckdb.DuckDBPyConnection) -> None:
    """Make the transforms' functions callable on `con` (once per connection)."""
    registered = {
        row[0]
        for row in con.execute(
            "SELECT function_name FROM duckdb_functions() WHERE function_name IN (?, ?)", list(_FUNCTIONS)
        ).fetchall()
    }
    for name, function in _FUNCTIONS.items():
        if name not in registered:
            # `special`: nulls reach the function, and it may answer null (a one-word name has no last name).
            con.create_function(name, function, [VARCHAR, VARCHAR], VARCHAR, type="arrow", null_handling="special")
