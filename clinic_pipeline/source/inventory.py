"""Schema inventory: every table and column of the export profiled in DuckDB, without its values.

The inventory is an operator artifact and the proposer's only input, so it carries shapes, counts and
rates, never a raw cell value about a person (PHI). Exceptions: the distinct values of clearly
categorical columns (few values that repeat, not a name/contact/address/date/id column), which
pick-list mapping needs and which are not about one person; min/max of ordered columns (year only for
birth and death dates, none for personal or id columns); and up to three masked examples per column
(`examples`: see `masking`). These live in the inventory files only, never in Dagster metadata.

Types are decided from value shapes; the column name only breaks ties between shapes that look alike
(a 5-digit id vs a ZIP code, a 10-digit id vs a phone number). Each table is scanned once into the
distinct values of all its columns with their row counts; null, sentinel and distinct counts and
lengths are exact over those, the shape tests run once per distinct value (on a frequency-weighted
sample of them for columns with many: see `_shape_counts`), and examples are picked by value hash
(deterministic, so the fingerprint of the same data stays the same). One more scan gives the min/max of
its ordered columns once their types are known. Inferred relationships: each candidate column's and
key's distinct values are collected once, and one join counts the containment of every pair.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.source.code_lists import decoded_codes
from clinic_pipeline.source.dependencies import with_determined_columns
from clinic_pipeline.source.export import ROW_COLUMN, VIEW_SCHEMA, SourceExport
from clinic_pipeline.source.inventory_model import (
    CodeList,
    ColumnProfile,
    Relationship,
    SchemaInventory,
    TableProfile,
    ValueShape,
    ValueType,
)
from clinic_pipeline.source.locale_evidence import (
    CURRENCY_SIGNS,
    SAMPLE_NUMBERS,
    candidate_countries,
    phone_validity,
)
from clinic_pipeline.source.masking import mask_example, mask_examples
from clinic_pipeline.source.relationships import inferred_relationships
from clinic_pipeline.sql import quote_ident, quote_literal

# The inventory's public names, wherever they live: callers import them from here.
__all__ = [
    "CodeList",
    "ColumnProfile",
    "Relationship",
    "SchemaInventory",
    "TableProfile",
    "ValueType",
    "build_inventory",
    "mask_example",
    "mask_examples",
    "read_inventory",
    "write_inventory",
]

# Null-like spellings every export uses; matched after trim + lower.
TEXT_SENTINELS = ("n/a", "na", "null", "none", "nil", "-", "--", "#n/a", "?")
ZERO_DATES = ("0000-00-00", "0000-00-00 00:00:00", "00/00/0000", "0000-00-00t00:00:00")
DATE_SENTINELS = ("0001-01-01", "1900-01-01", "01/01/1900", "01/01/0001", "1900-01-01 00:00:00")
# A test or demo chart's name (TEST, Test Patient, ZZZ, Zztest, Dummy, Demo 2), matched on the lower-cased
# trimmed value: the name clinics give the records they try the software with, never a person's.
TEST_RECORD_NAME = r"(zz+[a-z]*|(test|demo|dummy|fake)( ?(patient|person|user|[0-9]+))?|patient ?test[0-9]*)"
PLACEHOLDER_EMAILS = ("none@none.com", "noemail@noemail.com", "no@email.com", "noemail@example.com", "declined")
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%m-%d-%Y", "%d.%m.%Y", "%Y/%m/%d", "%m/%d/%y", "%Y%m%d")
DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S.%fZ",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S.%f%z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %I:%M:%S %p",
    "%d/%m/%Y %H:%M",
)
TIME_FORMATS = ("%H:%M:%S", "%H:%M", "%I:%M %p", "%I:%M:%S %p")
_CODE = r"[A-TV-Z]\d[0-9A-Z](\.[0-9A-Z]{1,4})?|\d{4}[0-9A-Z]|[A-V]\d{4}|\d{1,5}-\d"
PATTERNS = {
    "integer": r"[-+]?\d+",
    "decimal": r"[-+]?(\d+\.?\d*|\.\d+)",
    "money": r"[-+]?\(?[$£€¥₹]?\s*[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d{1,2})?\)?",
    "currency_mark": r".*([$£€¥₹]|\d,\d{3}).*",
    "two_decimals": r"[-+]?\d+\.\d{2}",
    "boolean": r"(?i)(true|false|yes|no|y|n|t|f)",
    "zero_one": r"[01]",
    "email": r"[^@\s]+@[^@\s]+\.[^@\s]+",
    "has_at": r".*@.*",
    "phone": r"\+?[\d\s().\-/]{7,}((x|ext\.?)\s*\d{1,6})?",
    "phone_separator": r".*[\s().\-+].*",
    # Three groups of digits joined by one separator twice, impossible dates too (2023-02-30, 13/45/2020).
    "date_shape": r"\d{1,4}(-\d{1,2}-|/\d{1,2}/|\.\d{1,2}\.)\d{1,4}([ T].*)?",
    "zip": r"\d{5}(-\d{4})?",
    "zip4": r"\d{4}",
    "uuid": r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}",
    # Chart numbers: P-1001, MRN0042, 000123 (a name with digits, as Synthea writes them, is no code).
    "code": r"[A-Za-z]{0,3}[-_#]?\d+[A-Za-z]?|[A-Za-z]{1,6}[-_#]\d+",
    # Clinical codes, alone or as a `;`/`,` list: ICD-10 (E11.9, ICD10:J45.909), CPT/CDT/HCPCS (99213,
    # D1110, G0008), LOINC (2345-7).
    "clinical_code": r"(?i)(icd-?10:\s*)?(" + _CODE + r")(\s*[;,]\s*(icd-?10:\s*)?(" + _CODE + r"))*",
    "leading_zero": r"0\d+",
    "scientific": r"\d(\.\d+)?[eE]\+?\d+",
    "extension": r"(?i).*\d\s*(x|ext\.?)\s*\d{1,6}",
    "ssn_shape": r"\d{3}-\d{2}-\d{4}",
    # Password hashes as crypt(3), bcrypt, argon2, Django and Werkzeug write them.
    "password_hash": r"(\$(2[abxy]?|argon2(id|i|d)?|[1356]|apr1)\$|(pbkdf2[_:]sha\d+|scrypt|sha1|md5)[$:]).{8,}",
    "hex_digest": r"[0-9a-fA-F]{32,}",
    # Keys, tokens and base64 blobs: one long run of letters and digits, no spaces (checked for mixing below).
    "token": r"[A-Za-z0-9+/_=.-]{24,}",
}
_ID_TOKENS = frozenset({"id", "key", "no", "nbr", "num", "number", "mrn", "pid", "pubpid", "uuid", "guid", "chart"})
_ZIP_NAME = re.compile(r"zip|postal|postcode|post_code", re.IGNORECASE)
# The values alone cannot tell a CPT code from a ZIP code: the column must be named like a code.
_CODE_NAME = re.compile(r"icd|cpt|hcpcs|loinc|snomed|diagnos|procedure|(^|_|\b)dx|code", re.IGNORECASE)
_PHONE_NAME = re.compile(r"phone|mobile|cell|tel|fax", re.IGNORECASE)
# Columns about one person or place: never list their values, however few there are (word prefixes).
_PERSONAL_PREFIXES = (
    "name",
    "fname",
    "lname",
    "mname",
    "first",
    "last",
    "middle",
    "given",
    "family",
    "surname",
    "maiden",
    "email",
    "mail",
    "phone",
    "mobile",
    "cell",
    "fax",
    "tel",
    "addr",
    "street",
    "city",
    "county",
    "zip",
    "postal",
    "ssn",
    "social",
    "birth",
    "dob",
    "note",
    "comment",
    "memo",
    "descr",
    "remark",
    "member",
    "policy",
    "subscriber",
    "guarantor",
    "contact",
    "emergency",
    "passport",
    "license",
    "driver",
)
_CREATED_NAME = re.compile(r"creat|entered|added|insert|date_?in$|registered|regdate", re.IGNORECASE)
_UPDATED_NAME = re.compile(r"updat|modif|changed|last_?mod|last_?edit|timestamp|mtime", re.IGNORECASE)
MAX_CATEGORIES = 20


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if w]


def _id_name(name: str) -> bool:
    words = _words(name)
    return "#" in name or (bool(words) and words[-1] in _ID_TOKENS)


def _personal_name(name: str) -> bool:
    return any(w.startswith(_PERSONAL_PREFIXES) for w in _words(name))


TYPE_THRESHOLD = 0.9


def _in_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(quote_literal(v) for v in values) + ")"


NULL_LIKE = TEXT_SENTINELS + ZERO_DATES
VALUES_TABLE = "_inventory_values"
EXAMPLES = 3
# Shape tests (regexes, strptime per format) cost per distinct value: a column with more distinct values
# than this is typed from a sample of them (see `_shape_counts`). Exports of a few thousand rows are
# typed from every value, as before.
SAMPLE_HEAD = 10_000
SAMPLE_TAIL = 10_000


def _exact_aggregates() -> dict[str, str]:
    """Counts over every distinct value of a column (raw `r`, trimmed `t`, null-like `n`, rows with it `cnt`)."""
    return {
        "missing": "sum(cnt) FILTER (WHERE t IS NULL OR t = '')",
        "text_sentinel": f"sum(cnt) FILTER (WHERE lower(t) IN {_in_list(TEXT_SENTINELS)})",
        "zero_date": f"sum(cnt) FILTER (WHERE lower(t) IN {_in_list(ZERO_DATES)})",
        "present": "sum(cnt) FILTER (WHERE NOT n)",
        "distinct": "count(DISTINCT t) FILTER (WHERE NOT n)",
        "max_length": "coalesce(max(length(r)), 0)",
    }


def _shape_aggregates() -> dict[str, str]:
    """Rows (weight `w` per row of a sampled value) whose non-null value has a shape."""

    def share(cond: str) -> str:
        return f"sum(cnt * w) FILTER (WHERE {cond})"

    def match(pattern: str) -> str:
        return share(f"regexp_full_match(t, {quote_literal(PATTERNS[pattern])})")

    aggs = {
        "date_sentinel": share(f"lower(t) IN {_in_list(DATE_SENTINELS)}"),
        "placeholder_email": share(
            f"(lower(t) IN {_in_list(PLACEHOLDER_EMAILS)} OR starts_with(lower(t), 'noemail@'))"
        ),
        "placeholder_phone": share("regexp_full_match(t, '[0\\s().\\-+]*0[0\\s().\\-+]*')"),
        "whitespace": share("r <> t"),
        "non_ascii": share("regexp_matches(t, '[^\\x00-\\x7F]')"),
        "mojibake": share("regexp_matches(t, 'Ã.|Â.|â€')"),
        "all_upper": share("t = upper(t) AND t <> lower(t)"),
        "multi_word": share("contains(t, ' ')"),
        "test_name": share(f"regexp_full_match(lower(t), {quote_literal(TEST_RECORD_NAME)})"),
        "letters_and_digits": share("regexp_matches(t, '[0-9]') AND regexp_matches(t, '[A-Za-z]')"),
        "hex_lengths": (
            f"count(DISTINCT length(t)) FILTER (WHERE regexp_full_match(t, {quote_literal(PATTERNS['hex_digest'])}))"
        ),
        "phone_digits": share(
            "length(regexp_replace(regexp_replace(lower(t), '(x|ext\\.?)\\s*\\d+$', ''), '[^0-9]', '', 'g'))"
            " BETWEEN 7 AND 15"
        ),
    }
    for pattern in PATTERNS:
        aggs[pattern] = match(pattern)
    for kind, formats in (("date", DATE_FORMATS), ("datetime", DATETIME_FORMATS), ("time", TIME_FORMATS)):
        for k, fmt in enumerate(formats):
            aggs[f"{kind}{k}"] = share(f"try_strptime(t, {quote_literal(fmt)}) IS NOT NULL")
    return aggs


@contextmanager
def _distinct_values(con: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> Iterator[None]:
    """One scan of the table into (column, raw value, rows with it), the table every profile query reads.

    Unpivoted, so each aggregate is written once for all columns; grouped, so the costly tests run once per
    distinct value and count with its number of rows. A temporary table, dropped when the table is done.
    """
    selected = ", ".join(quote_ident(c) for c in columns)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {VALUES_TABLE} AS "
        f"SELECT col, r, cnt, trim(r) AS t, (r IS NULL OR trim(r) = '' OR lower(trim(r)) IN {_in_list(NULL_LIKE)}) "
        f"AS n FROM (SELECT col, r, count(*) AS cnt FROM (SELECT {selected} FROM {VIEW_SCHEMA}.{quote_ident(table)}) "
        f"UNPIVOT INCLUDE NULLS (r FOR col IN ({selected})) GROUP BY col, r)"
    )
    try:
        yield
    finally:
        con.execute(f"DROP TABLE IF EXISTS {VALUES_TABLE}")


def _exact_counts(con: duckdb.DuckDBPyConnection, columns: list[str]) -> list[tuple[dict[str, int], list[str]]]:
    """Null, sentinel, distinct counts and lengths over all values; examples among all distinct values.

    Examples are the distinct values with the lowest hashes: spread out and the same on every run (raw:
    masked by the caller before they are kept anywhere).
    """
    aggs = _exact_aggregates()
    query = (
        f"SELECT col, {', '.join(aggs.values())}, min_by(t, hash(t), {EXAMPLES}) FILTER (WHERE NOT n) "
        f"FROM {VALUES_TABLE} GROUP BY col"
    )
    by_column = {row[0]: row[1:] for row in con.execute(query).fetchall()}
    empty = (0,) * len(aggs) + (None,)  # a table without rows unpivots to nothing
    profiled = []
    for column in columns:
        *counts, examples = by_column.get(column, empty)
        profiled.append(({key: int(value or 0) for key, value in zip(aggs, counts, strict=True)}, list(examples or [])))
    return profiled


def _stride(distinct: int) -> int:
    """Every how-many-th other value (by hash) the sample takes: 1, all of them, when there are few."""
    return 1 if distinct <= SAMPLE_HEAD + SAMPLE_TAIL else -(-distinct // SAMPLE_TAIL)


def _shape_counts(con: duckdb.DuckDBPyConnection, columns: list[str], exact: list[dict[str, int]]) -> None:
    """Adds the shape counts (what a type is inferred from) to each column's exact counts.

    A column with at most SAMPLE_HEAD + SAMPLE_TAIL distinct values is tested on every one of them: exact
    counts. A larger one is tested on a sample: every value on at least 1/SAMPLE_HEAD of the rows (there
    are at most SAMPLE_HEAD such, and they are the bulk of a repetitive column) with weight 1, and about
    SAMPLE_TAIL of the other values picked by hash, each weighted by (rows of the other values) / (rows
    of the picked ones). The counts are then estimates of rows, so `type_match_rate` and the counts in
    hints are the sample's frequency-weighted shares scaled to the column's non-null rows.
    """
    params = ", ".join(
        f"({quote_literal(column)}, {c['present']}, {_stride(c['distinct'])})"
        for column, c in zip(columns, exact, strict=True)
    )
    aggs = _shape_aggregates()
    query = (
        f"WITH p(col, present, stride) AS (VALUES {params}), "
        f"s AS (SELECT v.col, r, t, cnt, cnt * {SAMPLE_HEAD} >= present AS head, present, stride "
        f"FROM {VALUES_TABLE} v JOIN p ON v.col = p.col WHERE NOT n), "
        f"tail AS (SELECT col, sum(cnt) FILTER (WHERE NOT head) AS rows FROM s GROUP BY col), "
        f"picked AS (SELECT * FROM s WHERE head OR hash(t) % stride = 0), "
        f"weighted AS (SELECT picked.*, CASE WHEN head THEN 1.0 ELSE tail.rows::DOUBLE / "
        f"sum(CASE WHEN head THEN 0 ELSE cnt END) OVER (PARTITION BY picked.col) END AS w "
        f"FROM picked JOIN tail ON picked.col = tail.col) "
        f"SELECT col, {', '.join(aggs.values())} FROM weighted GROUP BY col"
    )
    by_column = {row[0]: row[1:] for row in con.execute(query).fetchall()}
    for column, counts in zip(columns, exact, strict=True):
        values = by_column.get(column, (0,) * len(aggs))
        counts.update({key: round(value or 0) for key, value in zip(aggs, values, strict=True)})


def _best_format(c: dict[str, int], kind: str, formats: tuple[str, ...], preferred: str | None) -> tuple[str, int]:
    scored = [(c[f"{kind}{k}"], fmt == preferred, -k, fmt) for k, fmt in enumerate(formats)]
    hits, _, _, fmt = max(scored)
    return fmt, hits


def _infer_type(name: str, c: dict[str, int], preferred_date: str | None) -> tuple[ValueType, str | None, int]:
    """(type, format, values matching it)."""
    present = c["present"]
    if present == 0:
        return "text", None, 0

    def enough(hits: int, threshold: float = TYPE_THRESHOLD) -> bool:
        return hits >= threshold * present

    unique = c["distinct"] == present
    id_name = _id_name(name)
    if enough(c["boolean"], 0.98):
        return "boolean", None, c["boolean"]
    if enough(c["zero_one"], 1.0) and c["distinct"] == 2 and not id_name:
        return "boolean", None, c["zero_one"]
    if enough(c["uuid"], 0.95):
        return "id", None, c["uuid"]
    dt_fmt, dt_hits = _best_format(c, "datetime", DATETIME_FORMATS, None)
    d_fmt, d_hits = _best_format(c, "date", DATE_FORMATS, preferred_date)
    if d_fmt == "%Y%m%d" and not re.search(r"date|dob|birth|dt$", name, re.IGNORECASE):
        d_hits = 0  # eight digits are a number unless the name says date
    if enough(dt_hits) and dt_hits >= d_hits:
        return "datetime", dt_fmt, dt_hits
    if enough(d_hits):
        return "date", d_fmt, d_hits
    t_fmt, t_hits = _best_format(c, "time", TIME_FORMATS, None)
    if enough(t_hits):
        return "time", t_fmt, t_hits
    if enough(c["has_at"], 0.8):
        return "email", None, c["email"]
    if _CODE_NAME.search(name) and not _ZIP_NAME.search(name) and enough(c["clinical_code"], 0.95):
        return "code", None, c["clinical_code"]
    zip_hits = c["zip"] + (c["zip4"] if _ZIP_NAME.search(name) else 0)
    if enough(zip_hits) and (_ZIP_NAME.search(name) or (not unique and not id_name)):
        return "zip", None, zip_hits
    phone_shaped = enough(c["phone"], 0.8) and enough(c["phone_digits"], 0.8) and c["ssn_shape"] < 0.5 * present
    # Dates are digits and separators too: a birth date column with impossible dates (2023-02-30) among
    # its values falls short of `date` above, and is still no column of phone numbers.
    if (
        phone_shaped
        and c["date_shape"] < 0.5 * present
        # `phone_number`, `mobile_no`: a number that names a phone is one, E.164 (`+919876543210`) included.
        and (not id_name or _PHONE_NAME.search(name))
        and (_PHONE_NAME.search(name) or c["phone_separator"] >= 0.3 * present)
    ):
        return "phone", None, c["phone"]
    if enough(c["integer"], 0.95):
        if id_name and c["distinct"] >= 0.9 * present:
            return "id", None, c["integer"]
        return "integer", None, c["integer"]
    if enough(c["money"], 0.95) and (c["currency_mark"] > 0 or enough(c["two_decimals"])):
        return "money", None, c["money"]
    if enough(c["decimal"], 0.95):
        return "decimal", None, c["decimal"]
    if enough(c["code"], 0.95) and unique and c["multi_word"] == 0:
        return "id", None, c["code"]
    return "text", None, present


def _hints(vtype: ValueType, fmt: str | None, c: dict[str, int], matched: int) -> list[str]:
    present = c["present"]
    hints = []
    if present == 0:
        return ["no values"]
    if c["whitespace"]:
        hints.append(f"{c['whitespace']} values with leading/trailing whitespace")
    if c["non_ascii"]:
        hints.append(f"{c['non_ascii']} values with non-ASCII characters")
    if c["mojibake"]:
        hints.append(f"{c['mojibake']} values look like mis-decoded UTF-8 (mojibake)")
    if c["ssn_shape"]:
        hints.append(f"{c['ssn_shape']} values shaped like a US SSN (###-##-####): sensitive?")
    if c["scientific"]:
        hints.append(f"{c['scientific']} values in scientific notation (spreadsheet damage?)")
    if vtype in ("integer", "id", "zip", "text") and c["leading_zero"]:
        hints.append(f"{c['leading_zero']} values with leading zeros (keep as text)")
    if vtype == "zip" and c["zip4"]:
        hints.append(f"{c['zip4']} four-digit values (ZIP lost its leading zero?)")
    if vtype == "phone" and c["extension"]:
        hints.append(f"{c['extension']} phone numbers with an extension")
    if vtype == "email" and c["has_at"] > c["email"]:
        hints.append(f"{c['has_at'] - c['email']} malformed email addresses")
    if vtype == "date" and fmt in ("%m/%d/%Y", "%d/%m/%Y"):
        other = "date2" if fmt == "%m/%d/%Y" else "date1"
        if c[other] == matched:
            hints.append("day/month order ambiguous: no day above 12")
    if fmt and matched < present:
        hints.append(f"{present - matched} values do not match {fmt}")
    if vtype == "text":
        if c["all_upper"] == present:
            hints.append("all upper case")
        if c["multi_word"]:
            hints.append(f"{c['multi_word']} multi-word values")
    return hints


def _sentinels(vtype: ValueType, c: dict[str, int]) -> dict[str, int]:
    kinds = {"text": c["text_sentinel"], "zero_date": c["zero_date"]}
    if vtype in ("date", "datetime"):
        kinds["sentinel_date"] = c["date_sentinel"]
    if vtype == "email":
        kinds["placeholder_email"] = c["placeholder_email"]
    if vtype == "phone":
        kinds["placeholder_phone"] = c["placeholder_phone"]
    return {k: v for k, v in kinds.items() if v}


def _is_categorical(name: str, vtype: ValueType, c: dict[str, int]) -> bool:
    if vtype not in ("text", "boolean", "integer") or _personal_name(name) or _id_name(name):
        return False
    # Values must repeat (on average at least twice): a column of unique values is about individuals.
    return 0 < c["distinct"] <= MAX_CATEGORIES and c["distinct"] * 2 <= c["present"] and c["max_length"] <= 60


def _categories(con: duckdb.DuckDBPyConnection, column: str) -> list[str]:
    rows = con.execute(f"SELECT DISTINCT t FROM {VALUES_TABLE} WHERE col = ? AND NOT n ORDER BY t", [column]).fetchall()
    return [r[0] for r in rows]


def _shape(vtype: ValueType, c: dict[str, int]) -> ValueShape | None:
    """What a text or id column holds beyond its type, when nearly all of its values say so."""
    present = c["present"]
    if present == 0 or vtype not in ("text", "id"):
        return None
    if c["password_hash"] >= 0.5 * present:
        return "password_hash"
    if c["hex_digest"] >= 0.9 * present and c["hex_lengths"] == 1:
        return "hex_digest"
    if vtype == "text" and c["token"] >= 0.9 * present and c["letters_and_digits"] >= 0.9 * present:
        return "token"
    return None


def _profile_column(name: str, c: dict[str, int], rows: int, preferred_date: str | None) -> ColumnProfile:
    vtype, fmt, matched = _infer_type(name, c, preferred_date)
    sentinels = _sentinels(vtype, c)
    sentinel_count = sum(sentinels.values())
    # Type-specific placeholders (a sentinel date, none@none.com) are still present values in the raw counts.
    null_count = c["missing"] + sentinel_count
    return ColumnProfile(
        name=name,
        type=vtype,
        format=fmt,
        type_match_rate=round(matched / c["present"], 4) if c["present"] else 0.0,
        null_count=null_count,
        null_rate=round(null_count / rows, 4) if rows else 0.0,
        sentinel_count=sentinel_count,
        sentinels=sentinels,
        distinct_count=c["distinct"],
        max_length=c["max_length"],
        unique=rows > 0 and c["missing"] + c["text_sentinel"] + c["zero_date"] == 0 and c["distinct"] == rows,
        hints=_hints(vtype, fmt, c, matched),
        shape=_shape(vtype, c),
        test_rows=c["test_name"] if vtype == "text" else 0,
    )


_KEYLESS_TYPES = ("date", "datetime", "time", "boolean", "decimal", "money")
_ORDERED_TYPES = ("integer", "decimal", "money", "date", "datetime")
# Dates of a person's life (not of a visit): only the year is shown, as HIPAA's Safe Harbor allows.
_LIFE_DATE_NAME = re.compile(r"birth|dob|death|deceased", re.IGNORECASE)


# Report exports carry the odd blank line or footer, and a clinic's own id the odd duplicate (a patient
# registered twice under one chart id): a column empty or repeated on no more rows than this is still
# the table's key. Staging quarantines the rows without one ("missing source key") and the later rows
# of a repeated one ("duplicate source key"), so none goes unaccounted and the links stay.
KEY_GAPS_MAX = 2
KEY_GAPS_MAX_RATE = 0.02


def _few(count: int, rows: int) -> bool:
    return count <= max(KEY_GAPS_MAX, rows * KEY_GAPS_MAX_RATE)


def _is_key(table: str, column: ColumnProfile, rows: int, continuation: int = 0) -> bool:
    """`continuation`: rows continuing the record above, on which the record's id and own columns are empty."""
    if column.type in _KEYLESS_TYPES:
        return False
    nulls = column.null_count - continuation
    filled = rows - column.null_count
    repeated = filled - column.distinct_count
    # Only the table's own id keeps its key role with repeats: another table's number repeated is a
    # shared reference, a name or an email repeated is just shared.
    return column.unique or (
        filled > 0 and _few(nulls, rows) and (repeated == 0 or (_own_id(table, column.name) and _few(repeated, rows)))
    )


# A column the records fill on at least this share of their rows is one of the record's own.
RECORD_COLUMN_FILL = 0.95


def _continuation_rows(con: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> int:
    """Rows that only continue the record above. Tryton, Odoo and Frappe export a record's further
    one-to-many lines (a second address, a lab test's next analyte) on rows of their own: the record's id
    (their first column) is empty, and so is every column the records themselves always fill. They are no
    record, and their empty key is no gap in it. Rows missing an id that do carry a record's own fields are
    records without a key (quarantined), not continuations."""
    if len(columns) < 3:
        return 0

    def filled(column: str) -> str:
        return f"nullif(trim(CAST({quote_ident(column)} AS VARCHAR)), '') IS NOT NULL"

    first, rest = columns[0], columns[1:]
    record, no_id = filled(first), f"NOT {filled(first)}"
    counts = ", ".join(
        f"count(*) FILTER (WHERE {record} AND {filled(c)}), count(*) FILTER (WHERE {no_id} AND {filled(c)})"
        for c in rest
    )
    anything = " OR ".join(filled(c) for c in rest)
    order = quote_ident(ROW_COLUMN)
    query = (
        f"SELECT count(*) FILTER (WHERE {record}), count(*) FILTER (WHERE {no_id} AND ({anything})), "
        f"max({order}) FILTER (WHERE {record}) > min({order}) FILTER (WHERE {no_id} AND ({anything})), {counts} "
        f"FROM {VIEW_SCHEMA}.{quote_ident(table)}"
    )
    row = con.execute(query).fetchone() or ()
    records, without_id, between_records = int(row[0]), int(row[1]), bool(row[2])
    # Rows without an id only after the last record are a report's footer (its totals), not continuations.
    if not records or not without_id or not between_records:
        return 0
    # The record's own columns: always filled on the records, never on the rows without an id.
    own = [n for n in range(len(rest)) if row[3 + 2 * n] >= RECORD_COLUMN_FILL * records and row[4 + 2 * n] == 0]
    return without_id if own else 0


# A flattened resource repeats its id over a few rows (one per name, address, code): at most this many on average.
GROUP_ROWS_MAX = 5
_OWN_ID_WORDS = frozenset({"id", "uuid", "guid", "key"})


def _own_id(table: str, column: str) -> bool:
    """`id`, `<table>_id`, `<table>_uuid`: the name a table gives its own identifier."""
    words = _words(column)
    table_words = {w.rstrip("s") for w in _words(table)}
    return bool(words) and words[-1] in _OWN_ID_WORDS and {w.rstrip("s") for w in words[:-1]} <= table_words


def _group_key(table: str, profiles: list[ColumnProfile], rows: int) -> str | None:
    """The table's own id (`id`, `<table>_id`) when it repeats over a few filled rows each: one record per value."""
    for column in profiles:
        filled = rows - column.null_count
        if (
            _own_id(table, column.name)
            and column.null_count == 0
            and 0 < column.distinct_count < filled <= GROUP_ROWS_MAX * column.distinct_count
            # A few repeats are duplicates of a key (quarantined), not one record spread over rows.
            and not _few(filled - column.distinct_count, rows)
        ):
            return column.name
    return None


def _key_rank(column: ColumnProfile) -> tuple[bool, bool, bool, int]:
    return (not column.unique, column.type != "id", not _id_name(column.name), column.max_length)


def _ordered_expression(column: ColumnProfile) -> str | None:
    """SQL for the column's value in its inferred type, rendered back as canonical text by min/max."""
    t = f"trim({quote_ident(column.name)})"
    personal = _personal_name(column.name) or _id_name(column.name)
    if column.type in ("integer", "decimal", "money") and personal:
        return None  # a member number's or SSN's extremes are one person's identifier
    if column.type == "integer":
        return f"try_cast({t} AS HUGEINT)"
    if column.type == "decimal":
        return f"try_cast({t} AS DOUBLE)"
    if column.type == "money":
        sign = f"CASE WHEN regexp_matches({t}, '^\\(|-') THEN -1 ELSE 1 END"
        return f"try_cast(regexp_replace({t}, '[$£€¥₹,\\s()+-]', '', 'g') AS DECIMAL(38, 2)) * {sign}"
    if column.type in ("date", "datetime") and column.format:
        sentinels = _in_list(DATE_SENTINELS)
        parsed = f"try_strptime({t}, {quote_literal(column.format)})"
        if "%z" in column.format:
            parsed = f"timezone('UTC', {parsed})"  # offsets differ per value: compare and show in UTC
        return f"CASE WHEN lower({t}) NOT IN {sentinels} THEN {parsed} END"
    return None


def _render_extreme(column: ColumnProfile, value: object) -> str | None:
    if value is None:
        return None
    if column.type in ("date", "datetime"):
        if _LIFE_DATE_NAME.search(re.sub(r"[^a-z]", "", column.name.lower())):  # `D.O.B.` too
            return f"{value:%Y}"
        return f"{value:%Y-%m-%d}" if column.type == "date" else f"{value:%Y-%m-%d %H:%M:%S}"
    return str(value)


def _set_ranges(con: duckdb.DuckDBPyConnection, table: str, profiles: list[ColumnProfile]) -> None:
    """min/max of every ordered column in one more scan, now that the types (and date formats) are known."""
    ordered = [(p, expr) for p in profiles if p.type in _ORDERED_TYPES and (expr := _ordered_expression(p))]
    if not ordered:
        return
    selects = ", ".join(f"min({expr}), max({expr})" for _, expr in ordered)
    row = con.execute(f"SELECT {selects} FROM {VIEW_SCHEMA}.{quote_ident(table)}").fetchone() or ()
    for k, (profile, _) in enumerate(ordered):
        profile.min_value = _render_extreme(profile, row[2 * k])
        profile.max_value = _render_extreme(profile, row[2 * k + 1])


def _locale_evidence(con: duckdb.DuckDBPyConnection, profile: ColumnProfile, countries: tuple[str, ...]) -> None:
    """Where a phone column's numbers are valid, which currency signs a money column's amounts carry, which
    UTC offsets a date-time column's values are written with (PostgreSQL writes timestamptz in the session's
    zone: `2024-03-05 10:12:00+05:30`)."""
    if profile.type == "datetime" and profile.format and profile.format.endswith("%z"):
        offset = "regexp_extract(t, '([+-][0-9]{2}):?([0-9]{2})?$', ['h', 'm'])"
        rows = con.execute(
            f"SELECT o.h || ':' || coalesce(nullif(o.m, ''), '00'), sum(cnt) FROM "
            f"(SELECT {offset} AS o, cnt FROM {VALUES_TABLE} WHERE col = ? AND NOT n) WHERE o.h <> '' GROUP BY 1",
            [profile.name],
        ).fetchall()
        profile.utc_offsets = {str(o): int(c) for o, c in rows}
    elif profile.type == "phone":
        rows = con.execute(
            f"SELECT t FROM {VALUES_TABLE} WHERE col = ? AND NOT n ORDER BY cnt DESC, t LIMIT {SAMPLE_NUMBERS}",
            [profile.name],
        ).fetchall()
        profile.phone_countries = phone_validity((r[0] for r in rows), countries)
    elif profile.type == "money":
        signs = ", ".join(f"sum(cnt) FILTER (WHERE contains(t, {quote_literal(sign)}))" for sign in CURRENCY_SIGNS)
        counts = con.execute(f"SELECT {signs} FROM {VALUES_TABLE} WHERE col = ?", [profile.name]).fetchone() or ()
        profile.currency_signs = {sign: int(c) for sign, c in zip(CURRENCY_SIGNS, counts, strict=True) if c}


def _profile_table(
    con: duckdb.DuckDBPyConnection,
    name: str,
    origin: str,
    row_count: int,
    columns: list[str],
    date_fmt: str | None,
    countries: tuple[str, ...],
) -> TableProfile:
    data_columns = [c for c in columns if c != ROW_COLUMN]
    profiles = []
    if data_columns:
        with _distinct_values(con, name, data_columns):
            exact = _exact_counts(con, data_columns)
            _shape_counts(con, data_columns, [counts for counts, _ in exact])
            for column, (counts, examples) in zip(data_columns, exact, strict=True):
                profile = _profile_column(column, counts, row_count, date_fmt)
                if _is_categorical(column, profile.type, counts):
                    profile.categories = _categories(con, column)
                _locale_evidence(con, profile, countries)
                profile.examples = mask_examples(
                    examples,
                    column=column,
                    value_type=profile.type,
                    value_format=profile.format,
                    categorical=profile.categories is not None,
                    personal=_personal_name(column) or _id_name(column),
                )
                profiles.append(profile)
    _set_ranges(con, name, profiles)
    continuation = _continuation_rows(con, name, data_columns)
    keys = sorted((p for p in profiles if _is_key(name, p, row_count, continuation)), key=_key_rank)
    stamps = [p for p in profiles if p.type in ("datetime", "date")]
    created = next((p.name for p in stamps if _CREATED_NAME.search(p.name)), None)
    updated = next((p.name for p in stamps if _UPDATED_NAME.search(p.name) and p.name != created), None)
    return TableProfile(
        name=name,
        origin=origin,
        row_count=row_count,
        columns=profiles,
        candidate_keys=[k.name for k in keys],
        group_key=_group_key(name, profiles, row_count),
        continuation_rows=continuation,
        created_column=created,
        updated_column=updated,
    )


# Memory DuckDB may take for profiling on top of the export it already holds, in place of its default
# limit (80 % of the machine's): beyond it, its joins and aggregates spill to its temporary directory.
WORKING_MEMORY = 1 << 30


def _memory_limit(con: duckdb.DuckDBPyConnection) -> str:
    (limit,) = con.execute("SELECT current_setting('memory_limit')").fetchone() or ("",)
    return str(limit)


@contextmanager
def _bounded_memory(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """A limit the caller set holds as it is; DuckDB's default is replaced while profiling, and reset after."""
    with duckdb.connect() as fresh:
        default = _memory_limit(fresh)
    if _memory_limit(con) != default:
        yield
        return
    (held,) = con.execute("SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()").fetchone() or (0,)
    con.execute(f"SET memory_limit = '{(int(held) + WORKING_MEMORY) >> 20}MB'")
    try:
        yield
    finally:
        con.execute("RESET memory_limit")


def build_inventory(export: SourceExport, con: duckdb.DuckDBPyConnection) -> SchemaInventory:
    with _bounded_memory(con):
        return _build_inventory(export, con)


def _build_inventory(export: SourceExport, con: duckdb.DuckDBPyConnection) -> SchemaInventory:
    date_fmt = export.manifest.date_format
    countries = candidate_countries(export.manifest.time_zone)
    tables = [
        _profile_table(con, t.name, t.location, t.row_count, t.columns, date_fmt, countries)
        for t in sorted(export.tables.values(), key=lambda t: t.name)
    ]
    declared = [
        Relationship(
            table=fk.table, column=col, ref_table=fk.ref_table, ref_column=ref_col, kind="declared", coverage=None
        )
        for fk in export.foreign_keys
        for col, ref_col in zip(fk.columns, fk.ref_columns, strict=False)
    ]
    seen = {(r.table, r.column, r.ref_table, r.ref_column) for r in declared}
    inferred = [
        r for r in inferred_relationships(con, tables) if (r.table, r.column, r.ref_table, r.ref_column) not in seen
    ]
    warnings = list(export.warnings)
    if export.manifest.time_zone_assumed:
        warnings.append(f"no time zone in the export's manifest: assumed {export.manifest.time_zone}")
    return SchemaInventory(
        source_system=export.manifest.source_system,
        time_zone=export.manifest.time_zone,
        time_zone_assumed=export.manifest.time_zone_assumed,
        date_format=date_fmt,
        tables=tables,
        relationships=with_determined_columns(con, tables, declared + inferred),
        code_lists=decoded_codes(con, tables),
        warnings=warnings,
    )


def write_inventory(inv: SchemaInventory, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(inv.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_inventory(path: Path) -> SchemaInventory:
    if not path.exists():
        raise OperatorError(f"{path}: no schema inventory; run `clinic-pipeline inventory` first")
    return SchemaInventory.model_validate_json(path.read_text(encoding="utf-8"))
