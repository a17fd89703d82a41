"""Quoting for SQL text built by hand (DuckDB, and standard SQL such as SQLite's).

A value that can be a bound parameter (`?`) should be one. These are for the places that take no
parameter: identifiers, and strings inside DDL, `ATTACH` or table functions such as
`read_parquet('…')` in a `CREATE TABLE … AS`. Nothing from the project is imported here, so any
module can use it.
"""

from __future__ import annotations

import os

__all__ = ["quote_ident", "quote_literal"]


def quote_ident(name: str) -> str:
    """`name` as an identifier, double-quoted so spaces, capitals, keywords and quotes keep it one name."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str | os.PathLike[str]) -> str:
    """`value` (text or a file path) as a single-quoted string literal.

    Doubling the quote is the only escape: standard SQL strings, DuckDB's included, give backslashes
    no meaning, so a Windows path stays as it is.
    """
    return "'" + os.fspath(value).replace("'", "''") + "'"
