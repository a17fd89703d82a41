"""Dry-run estimate: what a load would do and how long the API budget makes it take, without a call.

It works from the staged Parquet and the id map alone. Per object, in load order:
- held back: a `_lookup_<target>` names a parent that is neither mapped nor staged (and not itself held
  back): the loader would never send the row;
- would create: the row's source key is not in the id map;
- would update / unchanged: the key is mapped, and the payload hash of the body the loader would send
  (`payloads.prepare`, the loader's own function) differs from / equals the mapped one.
A parent staged but not yet mapped gets its id at load time; a placeholder id stands in for it, so
the child's body (and hash) differs from any earlier one, as it would.

API calls, the loader's arithmetic: bulk objects ⌈(bulk creates + updates) / 100⌉ bulk requests plus one
job-status poll each, one pre-existence search per 100 new bulk records, one count when there are new
records, and a single create for each new record bulk upsert cannot create (a contact without email,
a new deal); other objects one request per record. The duration is whichever budget binds: calls / hourly limit, or
calls / per-minute limit. Before anything is staged (the assessment), `count_estimate` puts record counts
through the same arithmetic, every record a create.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow.parquet as pq
from pydantic import BaseModel, Field, computed_field

from clinic_pipeline.freshsales.client import MAX_BULK_ITEMS
from clinic_pipeline.load.owners import OwnerMap
from clinic_pipeline.load.payloads import LOOKUP_PREFIX, prepare
from clinic_pipeline.load.state import IdMapRow, StateStore
from clinic_pipeline.model.objects import BY_NAME, STAGED_OBJECTS, FreshsalesObject

POLLS_PER_BULK_CALL = 1
PLACEHOLDER_ID = 0  # a parent that gets its Freshsales id during the load


# The field bulk upsert creates a record by, per entity: a new record without it is created one by one. Deals
# have none the API accepts for a create, so every new deal is a single create.
BULK_CREATE_IDENTIFIER = {"sales_accounts": "name", "contacts": "email"}


class RateLimits(BaseModel):
    hourly: int = Field(gt=0)
    per_minute: int | None = Field(default=None, gt=0)


# Freshsales' published budgets per plan (freshsales_api.md; classic plans also state 400 a minute).
PLAN_LIMITS: dict[str, RateLimits] = {
    "growth": RateLimits(hourly=1000, per_minute=400),
    "pro": RateLimits(hourly=2000, per_minute=400),
    "enterprise": RateLimits(hourly=5000, per_minute=400),
}


class ObjectEstimate(BaseModel):
    object: str
    staged: int
    create: int
    update: int
    unchanged: int
    held_back: int
    bulk: bool
    single_creates: int = 0  # creates the loader sends one by one (no bulk identifier: no email, a new deal)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def api_calls(self) -> int:
        """The loader's arithmetic: bulk requests of 100 (each + one job poll), the pre-existence search per
        100 new bulk records and one count per object with new records; everything else one call each."""
        if not self.bulk:
            return self.create + self.update
        bulked_creates = self.create - self.single_creates
        bulk_requests = math.ceil((bulked_creates + self.update) / MAX_BULK_ITEMS)
        searches = math.ceil(bulked_creates / MAX_BULK_ITEMS)
        count = 1 if self.create else 0
        return bulk_requests * (1 + POLLS_PER_BULK_CALL) + searches + count + self.single_creates


class DryRunEstimate(BaseModel):
    limits: RateLimits
    objects: list[ObjectEstimate]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def api_calls(self) -> int:
        return sum(o.api_calls for o in self.objects)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def hours_by_hourly_limit(self) -> float:
        return self.api_calls / self.limits.hourly

    @computed_field  # type: ignore[prop-decorator]
    @property
    def minutes_by_minute_limit(self) -> float | None:
        return None if self.limits.per_minute is None else self.api_calls / self.limits.per_minute

    @computed_field  # type: ignore[prop-decorator]
    @property
    def binding_limit(self) -> Literal["hourly", "per_minute"]:
        by_minute = self.minutes_by_minute_limit
        return "per_minute" if by_minute is not None and by_minute / 60 > self.hours_by_hourly_limit else "hourly"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def hours(self) -> float:
        by_minute = self.minutes_by_minute_limit
        return self.hours_by_hourly_limit if self.binding_limit == "hourly" or by_minute is None else by_minute / 60

    def table(self) -> str:
        """A plain-text table for the CLI: counts only."""
        header = ("object", "staged", "create", "update", "unchanged", "held back", "API calls")
        body = [(o.object, o.staged, o.create, o.update, o.unchanged, o.held_back, o.api_calls) for o in self.objects]
        total = ("total", *(sum(int(r[i]) for r in body) for i in range(1, len(header))))
        cells = [tuple(str(c) for c in r) for r in (header, *body, total)]
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

        def line(row: tuple[str, ...]) -> str:
            # The object name left-aligned, the numbers right-aligned.
            return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

        rule = "  ".join("-" * w for w in widths)
        per_minute = f", {self.limits.per_minute}/min" if self.limits.per_minute is not None else ""
        footer = (
            f"{self.api_calls} API calls at {self.limits.hourly}/h{per_minute}: "
            f"about {self.hours:.2f} h ({self.binding_limit.replace('_', '-')} limit binds)"
        )
        return "\n".join([line(cells[0]), rule, *map(line, cells[1:-1]), rule, line(cells[-1]), footer])


class _ParentIds(Mapping[str, IdMapRow]):
    """A parent's id map, answering a placeholder for keys that get their id during the load (rows whose
    parent is unresolvable are counted as held back before any body is prepared)."""

    def __init__(self, mapped: dict[str, IdMapRow]) -> None:
        self._mapped = mapped

    def __getitem__(self, key: str) -> IdMapRow:
        return self._mapped.get(key) or IdMapRow(key, PLACEHOLDER_ID, "")

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapped)

    def __len__(self) -> int:
        return len(self._mapped)


def _identifier_sql(obj: FreshsalesObject, path: Path) -> str:
    """Whether a new record has the identifier bulk upsert creates by (accounts: name, contacts: email;
    deals have none the API accepts for a create)."""
    column = BULK_CREATE_IDENTIFIER.get(obj.entity)
    if column is None or column not in pq.read_schema(path).names:
        return "false"
    return f's."{column}" IS NOT NULL'


class _Estimator:
    def __init__(self, state: StateStore, owners: OwnerMap | None) -> None:
        self._owners = owners
        self._state = state
        self._mem = duckdb.connect()
        self._resolvable: set[str] = set()  # objects with a `ok_<name>` key table

    def close(self) -> None:
        self._mem.close()

    def _ensure_map(self, name: str) -> None:
        self._mem.register(f"map_{name}", self._state.id_map_table(name))

    def _resolvable_table(self, parent: str) -> str:
        """Keys of `parent` a child can link to: mapped, or staged in this load and not held back."""
        if parent not in self._resolvable:
            self._ensure_map(parent)
            self._mem.sql(f"CREATE TEMP TABLE ok_{parent} AS SELECT source_key AS key FROM map_{parent}")
            self._resolvable.add(parent)
        return f"ok_{parent}"

    def object(self, obj: FreshsalesObject, path: Path) -> ObjectEstimate:
        self._ensure_map(obj.name)
        lookups = [n for n in pq.read_schema(path).names if n.startswith(LOOKUP_PREFIX)]
        parent_targets = {BY_NAME[p].target: p for p in obj.parents}
        unresolved: list[str] = []
        for column in lookups:
            target = column.removeprefix(LOOKUP_PREFIX)
            value = f'CAST(s."{column}" AS VARCHAR)'
            if target in parent_targets:
                table = self._resolvable_table(parent_targets[target])
                unresolved.append(f"({value} IS NOT NULL AND {value} NOT IN (SELECT key FROM {table}))")
            else:
                unresolved.append(f"{value} IS NOT NULL")  # the loader has no id map to resolve it through
        held = " OR ".join(unresolved) or "false"
        self._mem.sql(
            f"""
            CREATE OR REPLACE TEMP TABLE rows_{obj.name} AS
            SELECT s.file_row_number AS row_index, CAST(s._source_key AS VARCHAR) AS key,
                   coalesce({held}, false) AS held, m.payload_hash, {_identifier_sql(obj, path)} AS has_identifier
            FROM read_parquet(?, file_row_number = true) s
            LEFT JOIN map_{obj.name} m ON m.source_key = CAST(s._source_key AS VARCHAR)
            """,
            params=[str(path)],
        )
        ((staged, held_back, create, single),) = self._mem.sql(
            f"""SELECT count(*), count(*) FILTER (held),
                       count(*) FILTER (NOT held AND payload_hash IS NULL),
                       count(*) FILTER (NOT held AND payload_hash IS NULL AND NOT has_identifier)
                FROM rows_{obj.name}"""
        ).fetchall()
        update = self._changed(obj, path)
        self._mem.sql(
            f"CREATE TEMP TABLE ok_{obj.name} AS SELECT source_key AS key FROM map_{obj.name}"
            f" UNION SELECT key FROM rows_{obj.name} WHERE NOT held"
        )
        self._resolvable.add(obj.name)
        mapped = staged - held_back - create
        return ObjectEstimate(
            object=obj.name,
            staged=staged,
            create=create,
            update=update,
            unchanged=mapped - update,
            held_back=held_back,
            bulk=obj.bulk,
            single_creates=single if obj.bulk else 0,
        )

    def _changed(self, obj: FreshsalesObject, path: Path) -> int:
        """Mapped rows whose prepared body hashes differently. Rows are read with pyarrow, as the loader
        reads them, so values convert to the same Python types and hash alike."""
        selected = self._mem.sql(
            f"SELECT row_index, payload_hash FROM rows_{obj.name} WHERE NOT held AND payload_hash IS NOT NULL"
            " ORDER BY row_index"
        ).to_arrow_table()
        if selected.num_rows == 0:
            return 0
        parents: dict[str, Mapping[str, IdMapRow]] = {
            BY_NAME[p].target: _ParentIds(self._state.id_map(p)) for p in obj.parents
        }
        table = pq.read_table(path).take(selected.column("row_index"))
        rows = (row for batch in table.to_batches(max_chunksize=10_000) for row in batch.to_pylist())
        # prepare() is per row by nature (it is the loader's body builder); only mapped rows get here.
        return sum(
            prepare(obj, row, parents, self._owners).payload_hash != mapped_hash
            for row, mapped_hash in zip(rows, selected.column("payload_hash").to_pylist(), strict=True)
        )


def estimate(
    state: StateStore, staged: Mapping[str, Path], *, plan_limits: RateLimits, owners: OwnerMap | None = None
) -> DryRunEstimate:
    """The dry run: counts and API calls per staged object (`staged`: object name → Parquet file)."""
    unknown = sorted(set(staged) - set(BY_NAME))
    if unknown:
        raise ValueError(f"not staged objects: {', '.join(unknown)}")
    estimator = _Estimator(state, owners)
    try:
        objects = [estimator.object(o, staged[o.name]) for o in STAGED_OBJECTS if o.name in staged]
    finally:
        estimator.close()
    return DryRunEstimate(limits=plan_limits, objects=objects)


def count_estimate(
    records: Mapping[str, int], without_identifier: Mapping[str, int], *, plan_limits: RateLimits
) -> DryRunEstimate:
    """A first load of `records` (staged object name → new records) through the dry run's arithmetic, for counts
    known before staging. `without_identifier`: of those records, the ones lacking the field bulk upsert creates
    by (`BULK_CREATE_IDENTIFIER`); on a bulk object without such a field every record is a single create."""
    objects = []
    for obj in STAGED_OBJECTS:
        count = records.get(obj.name, 0)
        single = min(without_identifier.get(obj.name, 0), count) if obj.entity in BULK_CREATE_IDENTIFIER else count
        objects.append(
            ObjectEstimate(
                object=obj.name,
                staged=count,
                create=count,
                update=0,
                unchanged=0,
                held_back=0,
                bulk=obj.bulk,
                single_creates=single if obj.bulk else 0,
            )
        )
    return DryRunEstimate(limits=plan_limits, objects=objects)
