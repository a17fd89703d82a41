"""The schema inventory's contract: what the proposer, the inventory page and the plan's fingerprint read.

Shapes, counts and rates of every table and column of an export, never a raw cell value about a person
(see `inventory` for how it is built and what few values it may hold).
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, Field

# Value shapes that say what a text column holds beyond its type: a credential or a digest, never migrated as is.
ValueShape = Literal["password_hash", "hex_digest", "token"]
ValueType = Literal[
    "integer", "decimal", "money", "date", "datetime", "time", "boolean", "email", "phone", "zip", "text", "id", "code"
]


class ColumnProfile(BaseModel):
    name: str
    type: ValueType
    format: str | None = Field(default=None, description="strptime format for date, datetime and time columns")
    type_match_rate: float = Field(
        description="share of non-null values that have the inferred type's shape; for a column with more than "
        "20,000 distinct values, estimated from a frequency-weighted sample of them"
    )
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
    shape: ValueShape | None = Field(
        default=None,
        description="password_hash: crypt/bcrypt/argon2/pbkdf2 strings; hex_digest: hex of one length (max_length); "
        "token: long random-looking strings (keys, tokens, base64 blobs)",
    )
    test_rows: int = Field(default=0, description="rows whose value is a test or demo record's name (TEST, ZZZ…)")
    phone_countries: dict[str, float] = Field(
        default_factory=dict, description="phone columns: country → share of sampled numbers valid when read there"
    )
    utc_offsets: dict[str, int] = Field(
        default_factory=dict,
        description="date-time columns written with a UTC offset: offset (`+05:30`, `+00:00`) → values carrying it",
    )
    currency_signs: dict[str, int] = Field(
        default_factory=dict, description="money columns: currency sign → rows whose amount carries it"
    )


class TableProfile(BaseModel):
    name: str
    origin: str = Field(description="file or table inside the export")
    row_count: int
    columns: list[ColumnProfile]
    candidate_keys: list[str] = Field(
        description="columns unique among their values, empty on at most 2 rows or 2 %, most key-like first"
    )
    group_key: str | None = Field(
        default=None,
        description="the table's own id column (`id`, `<table>_id`) repeating over a few rows each: a resource "
        "flattened to several rows (one per name, address, code), one record per value",
    )
    continuation_rows: int = Field(
        default=0,
        description="rows continuing the record above (every plain column empty, a `relation/field` column "
        "filled): a Tryton or Odoo export's further one-to-many lines, skipped with that reason",
    )
    created_column: str | None = None
    updated_column: str | None = None

    @property
    def keys(self) -> list[str]:
        """What other tables' references may point at: the group key of a flattened resource, else the
        candidate keys (a flattened table's unique columns are its rows' details, not its identity)."""
        return [self.group_key] if self.group_key else self.candidate_keys

    def column(self, name: str) -> ColumnProfile:
        return next(c for c in self.columns if c.name == name)


class Relationship(BaseModel):
    table: str
    column: str
    ref_table: str
    ref_column: str
    kind: Literal["declared", "inferred"]
    coverage: float | None = Field(default=None, description="share of the column's distinct values found")
    distinct_count: int | None = Field(default=None, description="the column's distinct values (inferred only)")
    ref_distinct_count: int | None = Field(default=None, description="the key's distinct values (inferred only)")
    name_agrees: bool = Field(default=True, description="the column names the table or its key (declared: true)")
    value_prefix: str | None = Field(
        default=None, description="a prefix all the column's values carry and the key's do not (`Patient/`)"
    )
    key_prefix: str | None = Field(
        default=None, description="a prefix all the key's values carry and the column's do not (`patient_2_`)"
    )
    coincidental: bool = Field(
        default=False,
        description="the key is a dense run of whole numbers that only a staff-role name ties the column to",
    )
    selects: str | None = Field(
        default=None,
        description="inside a dense staff key, the rows the column's values all fall on (`authorized = 1`, 6 of "
        "20): a subset chance would hit with odds under SUBSET_ODDS, the evidence for a column no name ties",
    )
    avoids_gaps: str | None = Field(
        default=None,
        description="inside a dense key, the gaps (deleted rows) the column's many values all keep off: chance "
        "would hit them with odds under GAP_ODDS, the evidence for a column no name ties",
    )
    determined: list[str] = Field(
        default_factory=list,
        description="the table's other columns that hold one value per parent (a bill's copy of its patient's "
        "name or birth date), measured where parents have several rows",
    )


class CodeList(BaseModel):
    """A coded column (`pc_apptstatus` = `x`) decoded by a list table of the export (`list_options`, where
    `list_id` = `apptstat`): each code's label (`x Canceled`). Labels are the clinic's reference data."""

    table: str
    column: str
    list_table: str
    code_column: str
    label_column: str
    group_column: str | None = Field(default=None, description="the list's column that selects one list")
    group_value: str | None = None
    labels: dict[str, str]


def value_meanings(column: ColumnProfile, codes: CodeList | None) -> dict[str, str]:
    """Each of a pick-list's values → what it says: itself, or the label the export's list gives its code."""
    labels = codes.labels if codes else {}
    return {v: labels.get(v.strip(), v) for v in column.categories or []}


class SchemaInventory(BaseModel):
    version: int = 1
    source_system: str
    time_zone: str
    time_zone_assumed: bool
    date_format: str | None = None
    tables: list[TableProfile]
    relationships: list[Relationship] = Field(default_factory=list)
    code_lists: list[CodeList] = Field(default_factory=list, description="coded columns the export's lists decode")
    warnings: list[str] = Field(default_factory=list)

    def table(self, name: str) -> TableProfile:
        return next(t for t in self.tables if t.name == name)

    def code_list(self, table: str, column: str) -> CodeList | None:
        return next((c for c in self.code_lists if (c.table, c.column) == (table, column)), None)

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
