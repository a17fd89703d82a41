"""Schema inventory: every table and column of the export profiled in DuckDB, without its values.

The inventory is an operator artifact and the proposer's only input, so it carries shapes, counts and
rates, never a raw cell value about a person (PHI). Exceptions: the distinct values of clearly
categorical columns (few values that repeat, not a name/contact/address/date/id column), which
pick-list mapping needs and which are not about one person; min/max of ordered columns (year only for
birth and death dates, none for personal or id columns); and up to three masked examples per column
(`examples`: see "masked examples" below). These live in the inventory files only, never in Dagster metadata.

Types are decided from value shapes; the column name only breaks ties between shapes that look alike
(a 5-digit id vs a ZIP code, a 10-digit id vs a phone number). Each table is profiled in one
aggregate query over all its columns (examples are picked there too, by value hash: deterministic, so
the fingerprint of the same data stays the same), plus one query for the min/max of its ordered
columns once their types are known; inferred relationships in one more query for the whole export.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Literal

import duckdb
from pydantic import BaseModel, Field

from clinic_pipeline.source.reader import ROW_COLUMN, VIEW_SCHEMA, SourceExport, quote_ident

ValueType = Literal[
    "integer", "decimal", "money", "date", "datetime", "time", "boolean", "email", "phone", "zip", "text", "id"
]

# Null-like spellings every export uses; matched after trim + lower.
TEXT_SENTINELS = ("n/a", "na", "null", "none", "nil", "-", "--", "#n/a", "?")
ZERO_DATES = ("0000-00-00", "0000-00-00 00:00:00", "00/00/0000", "0000-00-00t00:00:00")
DATE_SENTINELS = ("0001-01-01", "1900-01-01", "01/01/1900", "01/01/0001", "1900-01-01 00:00:00")
PLACEHOLDER_EMAILS = ("none@none.com", "noemail@noemail.com", "no@email.com", "noemail@example.com", "declined")
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%m-%d-%Y", "%d.%m.%Y", "%Y/%m/%d", "%m/%d/%y", "%Y%m%d")
DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %I:%M:%S %p",
    "%d/%m/%Y %H:%M",
)
TIME_FORMATS = ("%H:%M:%S", "%H:%M", "%I:%M %p", "%I:%M:%S %p")
PATTERNS = {
    "integer": r"[-+]?\d+",
    "decimal": r"[-+]?(\d+\.?\d*|\.\d+)",
    "money": r"[-+]?\(?\$?\s*[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d{1,2})?\)?",
    "currency_mark": r".*(\$|\d,\d{3}).*",
    "two_decimals": r"[-+]?\d+\.\d{2}",
    "boolean": r"(?i)(true|false|yes|no|y|n|t|f)",
    "zero_one": r"[01]",
    "email": r"[^@\s]+@[^@\s]+\.[^@\s]+",
    "has_at": r".*@.*",
    "phone": r"\+?[\d\s().\-/]{7,}((x|ext\.?)\s*\d{1,6})?",
    "phone_separator": r".*[\s().\-+].*",
    "zip": r"\d{5}(-\d{4})?",
    "zip4": r"\d{4}",
    "uuid": r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}",
    # Chart numbers: P-1001, MRN0042, 000123 (a name with digits, as Synthea writes them, is no code).
    "code": r"[A-Za-z]{0,3}[-_#]?\d+[A-Za-z]?|[A-Za-z]{1,6}[-_#]\d+",
    "leading_zero": r"0\d+",
    "scientific": r"\d(\.\d+)?[eE]\+?\d+",
    "extension": r"(?i).*\d\s*(x|ext\.?)\s*\d{1,6}",
    "ssn_shape": r"\d{3}-\d{2}-\d{4}",
}
_ID_TOKENS = frozenset({"id", "key", "no", "nbr", "num", "number", "mrn", "pid", "pubpid", "uuid", "guid", "chart"})
_ZIP_NAME = re.compile(r"zip|postal|postcode|post_code", re.IGNORECASE)
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


class ColumnProfile(BaseModel):
    name: str
    type: ValueType
    format: str | None = Field(default=None, description="strptime format for date, datetime and time columns")
    type_match_rate: float = Field(description="share of non-null values that have the inferred type's shape")
    null_count: int = Field(description="empty, whitespace-only and sentinel values")
    null_rate: float
    sentinel_count: int
    sentinels: dict[str, int] = Field(default_factory=dict, description="kind → count: text, zero_date, ...")
    distinct_count: int
    max_length: int
    unique: bool
    hints: list[str] = Field(default_factory=list)
    categories: list[str] | None = Field(default=None, description="only for clearly categorical columns")
    min_value: str | None = Field(
        default=None, description="ordered types (numbers, money, dates, datetimes); year only for birth/death dates"
    )
    max_value: str | None = None
    examples: list[str] = Field(default_factory=list, description="up to 3 values, masked unless not personal")


class TableProfile(BaseModel):
    name: str
    origin: str = Field(description="file or table inside the export")
    row_count: int
    columns: list[ColumnProfile]
    candidate_keys: list[str] = Field(description="unique, non-null columns, most key-like first")
    created_column: str | None = None
    updated_column: str | None = None

    def column(self, name: str) -> ColumnProfile:
        return next(c for c in self.columns if c.name == name)


class Relationship(BaseModel):
    table: str
    column: str
    ref_table: str
    ref_column: str
    kind: Literal["declared", "inferred"]
    coverage: float | None = Field(default=None, description="share of the column's distinct values found")


class SchemaInventory(BaseModel):
    version: int = 1
    source_system: str
    time_zone: str
    time_zone_assumed: bool
    date_format: str | None = None
    tables: list[TableProfile]
    relationships: list[Relationship] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    def table(self, name: str) -> TableProfile:
        return next(t for t in self.tables if t.name == name)

    @property
    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of the whole inventory: what a plan's `source_fingerprint` holds.

        It covers the ranges and masked examples too: they are deterministic for the same data (examples
        are chosen by value hash), so the same export always gives the same fingerprint.
        """
        return _sha256(self.model_dump(mode="json"))

    @property
    def schema_fingerprint(self) -> str:
        """sha256 of tables, columns and types only: unchanged by new rows of the same shape (delta runs)."""
        shape = [[t.name, [[c.name, c.type, c.format] for c in t.columns]] for t in self.tables]
        return _sha256(shape)


def _sha256(data: object) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(_lit(v) for v in values) + ")"


def _aggregates() -> dict[str, str]:
    """Per-column aggregates over distinct values (raw `r`, trimmed `t`, null-like `n`, rows with it `cnt`)."""

    def share(cond: str) -> str:
        return f"sum(cnt) FILTER (WHERE NOT n AND {cond})"

    def match(pattern: str) -> str:
        return share(f"regexp_full_match(t, {_lit(PATTERNS[pattern])})")

    aggs = {
        "missing": "sum(cnt) FILTER (WHERE t IS NULL OR t = '')",
        "text_sentinel": f"sum(cnt) FILTER (WHERE lower(t) IN {_in_list(TEXT_SENTINELS)})",
        "zero_date": f"sum(cnt) FILTER (WHERE lower(t) IN {_in_list(ZERO_DATES)})",
        "date_sentinel": share(f"lower(t) IN {_in_list(DATE_SENTINELS)}"),
        "placeholder_email": share(
            f"(lower(t) IN {_in_list(PLACEHOLDER_EMAILS)} OR starts_with(lower(t), 'noemail@'))"
        ),
        "placeholder_phone": share("regexp_full_match(t, '[0\\s().\\-+]*0[0\\s().\\-+]*')"),
        "present": "sum(cnt) FILTER (WHERE NOT n)",
        "distinct": "count(DISTINCT t) FILTER (WHERE NOT n)",
        "max_length": "coalesce(max(length(r)), 0)",
        "whitespace": share("r <> t"),
        "non_ascii": share("regexp_matches(t, '[^\\x00-\\x7F]')"),
        "mojibake": share("regexp_matches(t, 'Ã.|Â.|â€')"),
        "all_upper": share("t = upper(t) AND t <> lower(t)"),
        "multi_word": share("contains(t, ' ')"),
        "phone_digits": share(
            "length(regexp_replace(regexp_replace(lower(t), '(x|ext\\.?)\\s*\\d+$', ''), '[^0-9]', '', 'g'))"
            " BETWEEN 7 AND 15"
        ),
    }
    for pattern in PATTERNS:
        aggs[pattern] = match(pattern)
    for kind, formats in (("date", DATE_FORMATS), ("datetime", DATETIME_FORMATS), ("time", TIME_FORMATS)):
        for k, fmt in enumerate(formats):
            aggs[f"{kind}{k}"] = share(f"try_strptime(t, {_lit(fmt)}) IS NOT NULL")
    return aggs


EXAMPLES = 3


def _profile_counts(
    con: duckdb.DuckDBPyConnection, table: str, columns: list[str]
) -> list[tuple[dict[str, int], list[str]]]:
    """One scan of the table, unpivoted to (column, value) so each aggregate is written once for all columns.

    Values are grouped first: the costly shape tests (regexes, strptime per format) then run once per
    distinct value rather than once per row, and each counts with its number of rows. The same pass
    picks each column's example values (raw: masked by the caller before they are kept anywhere).
    """
    if not columns:
        return []
    null_like = _in_list(TEXT_SENTINELS + ZERO_DATES)
    aggs = _aggregates()
    selected = ", ".join(quote_ident(c) for c in columns)
    query = (
        f"WITH u AS (SELECT * FROM (SELECT {selected} FROM {VIEW_SCHEMA}.{quote_ident(table)}) "
        f"UNPIVOT INCLUDE NULLS (r FOR col IN ({selected}))), "
        f"g AS (SELECT col, r, count(*) AS cnt FROM u GROUP BY col, r), "
        f"s AS (SELECT col, r, cnt, trim(r) AS t, (r IS NULL OR trim(r) = '' OR lower(trim(r)) IN {null_like}) AS n "
        f"FROM g) "
        # Distinct values ranked by hash: a spread-out sample that is the same on every run.
        f"SELECT col, {', '.join(aggs.values())}, min_by(t, hash(t), {EXAMPLES}) FILTER (WHERE NOT n) "
        f"FROM s GROUP BY col"
    )
    by_column = {row[0]: row[1:] for row in con.execute(query).fetchall()}
    empty = (0,) * len(aggs) + (None,)  # a table without rows unpivots to nothing
    profiled = []
    for column in columns:
        *counts, examples = by_column.get(column, empty)
        values = {key: int(value or 0) for key, value in zip(aggs, counts, strict=True)}
        profiled.append((values, list(examples or [])))
    return profiled


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
    zip_hits = c["zip"] + (c["zip4"] if _ZIP_NAME.search(name) else 0)
    if enough(zip_hits) and (_ZIP_NAME.search(name) or (not unique and not id_name)):
        return "zip", None, zip_hits
    phone_shaped = enough(c["phone"], 0.8) and enough(c["phone_digits"], 0.8) and c["ssn_shape"] < 0.5 * present
    if phone_shaped and not id_name and (_PHONE_NAME.search(name) or c["phone_separator"] >= 0.3 * present):
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


def _categories(con: duckdb.DuckDBPyConnection, table: str, column: str) -> list[str]:
    q = quote_ident(column)
    null_like = _in_list(TEXT_SENTINELS + ZERO_DATES)
    rows = con.execute(
        f"SELECT DISTINCT trim({q}) AS v FROM {VIEW_SCHEMA}.{quote_ident(table)} "
        f"WHERE {q} IS NOT NULL AND trim({q}) <> '' AND lower(trim({q})) NOT IN {null_like} ORDER BY v"
    ).fetchall()
    return [r[0] for r in rows]


# ---------------------------------------------------------------- masked examples
# Shapes stay visible (which is what a person checking the mapping needs), the person does not: first
# letters and lengths of names, the e-mail's top-level domain, a phone's first and last two digits,
# a date's year, a ZIP's first three digits. Codes (ICD-10, CPT, ...), pick-list values, flags,
# amounts and times are not about one person and are shown as they are; free text by its length only.

_CODE_NAME = re.compile(r"icd|cpt|hcpcs|loinc|snomed|ndc|diag|dx|procedure|proc_?code|code", re.IGNORECASE)
_CODE_VALUE = re.compile(r"[A-Za-z0-9]{1,10}([.:\-][A-Za-z0-9]{1,8}){0,3}")
_FREE_TEXT_NAME = re.compile(
    r"note|comment|memo|descr|remark|report|text|message|reason|instruction|history|narrative|body", re.IGNORECASE
)
_FREE_TEXT_LENGTH = 40
_FREE_TEXT_WORDS = 4
_DATE_DIRECTIVE = re.compile(r"%([a-zA-Z%])")
_DIRECTIVE_WIDTH = {"f": 6, "z": 5, "b": 3, "a": 3, "B": 3, "A": 3, "p": 2, "%": 1}


def _mask_word(word: str) -> str:
    """`Renée` → `R****`, `O'Brien` → `O*'****`, `123` → `***`: a first letter and the length, never a digit."""
    head = word[0] if word[0].isalpha() else ("*" if word[0].isalnum() else word[0])
    return head + "".join("*" if ch.isalnum() else ch for ch in word[1:])


def _mask_words(value: str) -> str:
    return " ".join(_mask_word(w) for w in value.split())


def _mask_email(value: str) -> str:
    local, _, domain = value.rpartition("@")
    labels = domain.split(".")
    masked = [_mask_word(label) if label else label for label in labels[:-1]] + labels[-1:]
    return f"{_mask_word(local) if local else ''}@{'.'.join(masked)}"


def _mask_phone(value: str) -> str:
    """`(555) 123-4567` → `(5**) ***-**67`: enough to see the format, not enough to dial."""
    digits = [i for i, ch in enumerate(value) if ch.isdigit()]
    keep = {digits[0], *digits[-2:]} if len(digits) >= 7 else set()
    return "".join(ch if not ch.isdigit() or i in keep else "*" for i, ch in enumerate(value))


def _mask_date(value: str, fmt: str | None) -> str:
    """`1984-03-02` → `1984-**-**`: the value's layout with every part but the year starred."""
    try:
        parsed = datetime.strptime(value, fmt) if fmt else None
    except ValueError:
        parsed = None
    if parsed is None:
        return re.sub(r"\d", "*", value)

    def part(match: re.Match[str]) -> str:
        code = match.group(1)
        if code == "Y":
            return f"{parsed.year:04d}"
        if code == "y":
            return f"{parsed.year % 100:02d}"
        return "*" * _DIRECTIVE_WIDTH.get(code, 2)

    return _DATE_DIRECTIVE.sub(part, fmt or "")


def _mask_zip(value: str) -> str:
    digits = 0
    out = []
    for ch in value:
        digits += ch.isdigit()
        out.append(ch if not ch.isdigit() or digits <= 3 else "*")
    return "".join(out)


def _mask_id(value: str) -> str:
    """`P-1001` → `P-****`, `MRN0042` → `MRN****`: a short letter prefix is the vendor's, the number the person's."""
    prefix = re.match(r"[A-Za-z]{1,4}(?=[^A-Za-z]|$)", value)
    keep = prefix.end() if prefix else 0
    return value[:keep] + "".join("*" if ch.isalnum() else ch for ch in value[keep:])


def _is_free_text(column: str, value: str) -> bool:
    return (
        bool(_FREE_TEXT_NAME.search(column))
        or len(value) > _FREE_TEXT_LENGTH
        or (len(value.split()) > _FREE_TEXT_WORDS)
    )


def mask_example(value: str, *, column: str, value_type: ValueType, value_format: str | None, personal: bool) -> str:
    """One example value as the inventory may show it (see the section comment)."""
    if value_type == "email" or (personal and "@" in value):
        return _mask_email(value)
    if value_type == "phone":
        return _mask_phone(value)
    if value_type in ("date", "datetime"):
        return _mask_date(value, value_format)
    if value_type == "zip":
        return _mask_zip(value)
    if value_type == "id" or (personal and value_type in ("integer", "decimal", "money")):
        return _mask_id(value)
    if value_type in ("integer", "decimal", "money", "boolean", "time"):
        return value
    if not personal and _CODE_NAME.search(column) and _CODE_VALUE.fullmatch(value):
        return value
    if _is_free_text(column, value):
        return f"[free text, {len(value)} characters]"
    return _mask_words(value)


def mask_examples(
    values: list[str],
    *,
    column: str,
    value_type: ValueType,
    value_format: str | None,
    categorical: bool,
    personal: bool,
) -> list[str]:
    """Masked examples, without repeats (two names may mask alike). Pick-list values are shown as they are."""
    masked = (
        value if categorical else mask_example(value, column=column, value_type=value_type, value_format=value_format,
                                               personal=personal)
        for value in values
    )  # fmt: skip
    return list(dict.fromkeys(masked))


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
    )


_KEYLESS_TYPES = ("date", "datetime", "time", "boolean", "decimal", "money")
_ORDERED_TYPES = ("integer", "decimal", "money", "date", "datetime")
# Dates of a person's life (not of a visit): only the year is shown, as HIPAA's Safe Harbor allows.
_LIFE_DATE_NAME = re.compile(r"birth|dob|death|deceased", re.IGNORECASE)


def _key_rank(column: ColumnProfile) -> tuple[bool, bool, int]:
    return (column.type != "id", not _id_name(column.name), column.max_length)


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
        return f"try_cast(regexp_replace({t}, '[$,\\s()+-]', '', 'g') AS DECIMAL(38, 2)) * {sign}"
    if column.type in ("date", "datetime") and column.format:
        sentinels = _in_list(DATE_SENTINELS)
        parsed = f"try_strptime({t}, {_lit(column.format)})"
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


def _profile_table(
    con: duckdb.DuckDBPyConnection, name: str, origin: str, row_count: int, columns: list[str], date_fmt: str | None
) -> TableProfile:
    data_columns = [c for c in columns if c != ROW_COLUMN]
    profiles = []
    for column, (counts, examples) in zip(data_columns, _profile_counts(con, name, data_columns), strict=True):
        profile = _profile_column(column, counts, row_count, date_fmt)
        if _is_categorical(column, profile.type, counts):
            profile.categories = _categories(con, name, column)
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
    keys = sorted((p for p in profiles if p.unique and p.type not in _KEYLESS_TYPES), key=_key_rank)
    stamps = [p for p in profiles if p.type in ("datetime", "date")]
    created = next((p.name for p in stamps if _CREATED_NAME.search(p.name)), None)
    updated = next((p.name for p in stamps if _UPDATED_NAME.search(p.name) and p.name != created), None)
    return TableProfile(
        name=name,
        origin=origin,
        row_count=row_count,
        columns=profiles,
        candidate_keys=[k.name for k in keys],
        created_column=created,
        updated_column=updated,
    )


def _singular(word: str) -> str:
    for suffix, repl in (("ies", "y"), ("ses", "s"), ("s", "")):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            return word[: -len(suffix)] + repl
    return word


def _tokens(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {_singular(t) for t in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if t}


_GENERIC_KEY_NAMES = frozenset({"id", "key", "uuid", "guid", "code", "name", "number", "no", "rowid"})


def _name_affinity(column: str, ref_table: str, ref_column: str) -> bool:
    """`patient_id` → patients, `PATIENT` → patients, `pid` → pid; but every table's `id` is not every other's."""
    col = _tokens(column)
    table_words = _tokens(ref_table) - {"data", "list", "table", "export", "tbl"}
    same_name = column.lower() == ref_column.lower() and column.lower() not in _GENERIC_KEY_NAMES
    return same_name or bool(col & table_words)


_FK_TYPES = ("id", "integer", "text", "email")
MIN_COVERAGE = 0.9  # share of a column's distinct values found in the key, for an inferred relationship


def _inferred_relationships(con: duckdb.DuckDBPyConnection, tables: list[TableProfile]) -> list[Relationship]:
    """Columns whose distinct values lie (≥ 90 %) in another table's candidate key: one query for all pairs."""
    pairs: list[tuple[TableProfile, ColumnProfile, TableProfile, ColumnProfile, bool]] = []
    for ref in tables:
        for key_name in ref.candidate_keys:
            key = ref.column(key_name)
            if key.type not in _FK_TYPES:
                continue
            for table in tables:
                for column in table.columns:
                    if (table.name, column.name) == (ref.name, key.name) or column.type not in _FK_TYPES:
                        continue
                    # Orphans (appointments of deleted patients) add values the key lacks: allow what the
                    # coverage threshold below allows, no more.
                    if column.distinct_count == 0 or column.distinct_count * MIN_COVERAGE > key.distinct_count:
                        continue
                    affinity = _name_affinity(column.name, ref.name, key.name)
                    # Small integers are contained in any 1..N key: only trust them when the names agree.
                    if affinity or (key.type == "id" and key.max_length >= 4):
                        pairs.append((table, column, ref, key, affinity))
    if not pairs:
        return []
    selects = []
    for n, (table, column, ref, key, _) in enumerate(pairs):
        src = f"{VIEW_SCHEMA}.{quote_ident(table.name)}"
        dst = f"{VIEW_SCHEMA}.{quote_ident(ref.name)}"
        c, k = quote_ident(column.name), quote_ident(key.name)
        selects.append(
            f"SELECT {n} AS pair, count(*) AS total, count(*) FILTER (WHERE v IN (SELECT trim({k}) FROM {dst})) "
            f"AS found FROM (SELECT DISTINCT trim({c}) AS v FROM {src} WHERE nullif(trim({c}), '') IS NOT NULL)"
        )
    found = []
    for pair, total, hits in con.execute(" UNION ALL ".join(selects)).fetchall():
        table, column, ref, key, affinity = pairs[pair]
        coverage = hits / total if total else 0.0
        # Orphans are normal (deleted patients), so containment need not be total.
        if coverage >= MIN_COVERAGE and (affinity or total >= 3):
            found.append(
                Relationship(
                    table=table.name,
                    column=column.name,
                    ref_table=ref.name,
                    ref_column=key.name,
                    kind="inferred",
                    coverage=round(coverage, 4),
                )
            )
    return found


def build_inventory(export: SourceExport, con: duckdb.DuckDBPyConnection) -> SchemaInventory:
    date_fmt = export.manifest.date_format
    tables = [
        _profile_table(con, t.name, t.location, t.row_count, t.columns, date_fmt)
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
        r for r in _inferred_relationships(con, tables) if (r.table, r.column, r.ref_table, r.ref_column) not in seen
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
        relationships=declared + inferred,
        warnings=warnings,
    )


def write_inventory(inv: SchemaInventory, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(inv.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_inventory(path: Path) -> SchemaInventory:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no schema inventory; run `clinic-pipeline inventory` first")
    return SchemaInventory.model_validate_json(path.read_text(encoding="utf-8"))
