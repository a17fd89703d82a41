"""Validation report: what Freshsales holds, read back over the API, against what we staged and loaded.

Per object: source rows (staged + quarantined + skipped, from the staging files), the id map, the
Freshsales count from the cheapest call the API offers, source keys found once / missing /
duplicated, field population and owner rates, and parent links, the last three on a bounded,
deterministic sample read back. A staged record not loaded (held back, rejected, never sent) fails the
report like a record lost in Freshsales; quarantined and skipped source rows do not (never staged).
The API calls are O(objects + sampled records), never O(records).

How each object is read back:
- keyed objects (contacts `external_id`, accounts/deals/custom module records `cf_source_key`):
  `filtered_search` `is_in` on the sampled keys, 50 a call; the search answers are the records read back;
- appointments and tasks (their key is a description marker): `GET /<entity>/:id` from the id map;
- notes and files (no read by id, no list): the parent contact's side-loaded notes / document
  associations, one call per distinct parent of the sample.

Counts, rates, field names and reasons only: the report is meant for operators and carries no PHI.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field, computed_field

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.freshsales.client import FreshsalesClient
from clinic_pipeline.freshsales.entities import LIST_FILTERS, PLAIN_LISTS
from clinic_pipeline.freshsales.errors import NotFoundError, ViewNotFoundError
from clinic_pipeline.load.payloads import MODULE_ACCOUNT_FIELD
from clinic_pipeline.load.state import StateStore
from clinic_pipeline.model.objects import BY_NAME, DESCRIPTION_MARKER, STAGED_OBJECTS, FreshsalesObject
from clinic_pipeline.model.outcomes import IN_FRESHSALES
from clinic_pipeline.model.transforms import OWNER_COLUMNS
from clinic_pipeline.reports.charts import bar_chart
from clinic_pipeline.reports.render import render_page
from clinic_pipeline.sql import quote_ident, quote_literal

SAMPLE_SIZE = 200  # keyed objects: 4 searches read back 200 records
BY_ID_SAMPLE_SIZE = 100  # objects read one request per record (or per parent)
KEYS_PER_SEARCH = 50  # leaves room in a 100-record page for duplicates to show up
POPULATION_TOLERANCE = 0.01  # one percentage point
DEFAULT_VIEWS = {"contacts": ("All Contacts",), "sales_accounts": ("All Accounts",)}
DEAL_VIEWS = ("Open Deals", "Won Deals", "Lost Deals")  # no "All Deals" view exists
SIDE_LOADED = frozenset({"notes", "documents"})  # read through the parent contact
# A file's staged columns (local path, name, checksum) feed the upload; Freshsales keeps no such fields.
PRESENCE_ONLY = frozenset({"documents"})
MARKER = re.compile(r"\[source ([0-9a-f]{16})\]")


class FieldPopulation(BaseModel):
    field: str
    staged_rate: float  # over every staged record
    sample_staged_rate: float | None = None  # over the sampled records found in Freshsales
    freshsales_rate: float | None = None  # the same records, read back
    values_lost: int = 0  # sampled records with a staged value and none in Freshsales

    @property
    def drop(self) -> float:
        if self.sample_staged_rate is None or self.freshsales_rate is None:
            return 0.0
        return self.sample_staged_rate - self.freshsales_rate


class ObjectValidation(BaseModel):
    object: str
    source_rows: int = 0  # staged + quarantined + skipped
    staged: int
    quarantined: int
    skipped: int = 0
    in_id_map: int
    not_loaded: int = 0  # staged but not in the id map: held back, rejected or failed (a discrepancy)
    freshsales_total: int | None  # None where the API has no way to count (notes, files)
    count_method: str = ""
    keys_checked: int = 0
    keys_found_once: int
    keys_missing: int
    keys_duplicated: int
    missing_loaded: int = 0  # checked records the id map says were loaded, absent from Freshsales
    sampled: int = 0  # records read back and compared
    owner_rate_staged: float | None = None
    owner_rate_freshsales: float | None = None
    links_checked: int = 0
    links_broken: int = 0
    requests: int = 0
    population: list[FieldPopulation] = Field(default_factory=list)
    quarantine_reasons: dict[str, int] = Field(default_factory=dict)
    # Held-back reasons, rejections by outcome and HTTP status, records on no rejected list: never API text.
    not_loaded_reasons: dict[str, int] = Field(default_factory=dict)
    source_tables: dict[str, int] = Field(default_factory=dict)
    load_outcomes: dict[str, int] = Field(default_factory=dict)  # op/outcome from the audit log
    stale_in_id_map: int = 0  # id-map rows whose key is no longer staged


class ValidationReport(BaseModel):
    objects: list[ObjectValidation]
    audit: dict[str, int]
    discrepancies: list[str]  # each one makes the report fail
    warnings: list[str] = Field(default_factory=list)  # listed, explained, not failing
    requests_used: int | None = None
    tolerance: float = POPULATION_TOLERANCE
    generated_at: str = ""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.discrepancies


# ---- staged side (DuckDB over the Parquet files) ----------------------------------------------


def _paths_sql(paths: Sequence[Path]) -> str:
    return "[" + ", ".join(map(quote_literal, paths)) + "]"


def open_staged(con: duckdb.DuckDBPyConnection, paths: Sequence[Path]) -> list[str]:
    """View `staged`: one row per source key, the latest file's version (paths oldest first)."""
    ranks = pa.table({"filename": [str(p) for p in paths], "file_rank": list(range(len(paths)))})
    con.register("staged_files", ranks)
    con.execute(
        f"""CREATE TEMP VIEW staged AS
        SELECT * EXCLUDE (filename, file_rank) FROM (
            SELECT s.*, f.file_rank FROM read_parquet({_paths_sql(paths)}, union_by_name = true, filename = true) s
            JOIN staged_files f USING (filename)
        ) QUALIFY row_number() OVER (PARTITION BY _source_key ORDER BY file_rank DESC) = 1"""
    )
    return [r[0] for r in con.execute("DESCRIBE staged").fetchall()]


def _staged_rates(con: duckdb.DuckDBPyConnection, fields: Sequence[str]) -> tuple[int, dict[str, float]]:
    if not fields:
        return int(con.execute("SELECT count(*) FROM staged").fetchall()[0][0]), {}
    counts = ", ".join(f"count({quote_ident(f)})" for f in fields)
    row = con.execute(f"SELECT count(*), {counts} FROM staged").fetchall()[0]
    total = int(row[0])
    return total, {f: (int(n) / total if total else 0.0) for f, n in zip(fields, row[1:], strict=True)}


def quarantine_counts(con: duckdb.DuckDBPyConnection, files: Sequence[Path]) -> tuple[int, dict[str, int]]:
    """Quarantined source keys that were not staged since (a fixed row staged by a later delta)."""
    if not files:
        return 0, {}
    rows = con.execute(
        f"""SELECT coalesce(reason, 'unspecified'),
            count(DISTINCT _source_key) + count(*) FILTER (WHERE _source_key IS NULL)
        FROM read_parquet({_paths_sql(files)}, union_by_name = true)
        WHERE _source_key IS NULL OR _source_key NOT IN (SELECT _source_key FROM staged)
        GROUP BY ALL ORDER BY 2 DESC, 1"""
    ).fetchall()
    reasons = {str(r[0]): int(r[1]) for r in rows}
    return sum(reasons.values()), reasons


def _reconciliation(con: duckdb.DuckDBPyConnection, files: Sequence[Path]) -> tuple[int, dict[str, int]]:
    """(rows skipped, source rows per source table) from the staging reconciliation files."""
    if not files:
        return 0, {}
    rows = con.execute(
        f"""SELECT source_table, sum(source_rows), sum(skipped)
        FROM read_parquet({_paths_sql(files)}, union_by_name = true) GROUP BY ALL ORDER BY 1"""
    ).fetchall()
    return sum(int(r[2]) for r in rows), {str(r[0]): int(r[1]) for r in rows}


def not_loaded_reasons(con: duckdb.DuckDBPyConnection, files: Sequence[Path]) -> dict[str, int]:
    """Why staged records are not in the id map, from the loader's latest rejected lists. The API's
    rejection messages may quote values, so rejections are told by outcome and HTTP status only;
    held-back reasons are the loader's own words (a parent or owner that did not resolve). A record
    on no list (its object not loaded yet, or the list lost) still counts: nothing goes unaccounted."""
    listed = (
        f"""SELECT source_key::VARCHAR AS _source_key,
            CASE WHEN outcome = 'held_back' THEN 'held back: ' || coalesce(reason::VARCHAR, 'no reason')
                ELSE outcome::VARCHAR || ' (HTTP ' || coalesce(http_status::VARCHAR, 'none') || ')' END AS why
        FROM read_json({_paths_sql(files)}, format = 'newline_delimited', union_by_name = true)"""
        if files
        else "SELECT NULL::VARCHAR AS _source_key, NULL::VARCHAR AS why WHERE FALSE"
    )
    rows = con.execute(
        f"""SELECT coalesce(l.why, 'no load outcome recorded'), count(DISTINCT s._source_key)
        FROM staged s LEFT JOIN ({listed}) l USING (_source_key)
        WHERE s._source_key NOT IN (SELECT _source_key FROM id_map)
        GROUP BY ALL ORDER BY 2 DESC, 1"""
    ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def _sample(con: duckdb.DuckDBPyConnection, size: int, *, loaded_only: bool) -> list[dict[str, Any]]:
    """A deterministic sample (by key hash), with the record's Freshsales id where the id map has one."""
    join = "JOIN" if loaded_only else "LEFT JOIN"
    return (
        con.sql(
            f"""SELECT s.*, m.freshsales_id AS _freshsales_id FROM staged s {join} id_map m USING (_source_key)
        ORDER BY md5(s._source_key) LIMIT {int(size)}"""
        )
        .to_arrow_table()
        .to_pylist()
    )


# ---- Freshsales side --------------------------------------------------------------------------


def _has_owner(record: dict[str, Any]) -> bool:
    """An owner, or for appointments (which have none in Freshsales) a user among the attendees."""
    attendees = record.get("appointment_attendees") or []
    return _present(record.get("owner_id")) or any(
        isinstance(a, dict) and a.get("attendee_type") == "FdMultitenant::User" for a in attendees
    )


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def _fs_value(record: dict[str, Any], field: str) -> Any:
    if field.startswith("cf_"):
        return (record.get("custom_field") or {}).get(field)
    if field in ("email", "emails"):
        return record.get("email") or record.get("emails")
    return record.get(field)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _linked_ids(record: dict[str, Any], parent_target: str) -> set[int]:
    """Every id the record links to where a link to `parent_target` can live."""
    found: list[Any] = []
    if parent_target == "sales_account":
        found += [a.get("id") for a in record.get("sales_accounts") or [] if isinstance(a, dict)]
        found.append(record.get("sales_account_id"))
        # A custom module record links to its payer by a lookup custom field holding the account's id.
        found.append((record.get("custom_field") or {}).get(MODULE_ACCOUNT_FIELD))
    else:
        found += list(record.get("contact_ids") or [])
        if record.get("targetable_type") == "Contact":
            found.append(record.get("targetable_id"))
        found += [
            a.get("attendee_id")
            for a in record.get("appointment_attendees") or []
            if isinstance(a, dict) and a.get("attendee_type") == "Contact"
        ]
        # Custom module records link by a lookup custom field holding the contact's id.
        found += list((record.get("custom_field") or {}).values())
    return {i for i in map(_as_int, found) if i is not None}


def marker_of(source_key: str) -> str:
    """The hash the loader writes into an activity's or note's description (objects.py)."""
    return hashlib.sha256(source_key.encode()).hexdigest()[:16]


def _markers(record: dict[str, Any], field: str = DESCRIPTION_MARKER) -> set[str]:
    return set(MARKER.findall(str(record.get(field) or "")))


def _activity_total(client: FreshsalesClient, entity: str, filter_name: str) -> int:
    # The client's list_tasks/list_appointments page to the end (O(records)); a one-record page's
    # meta.total is all a count needs, and the client has no public call for it yet.
    body = client._get(f"/{entity}", f"/{entity}", {"filter": filter_name, "page": 1, "per_page": 1})
    meta = body.get("meta") if isinstance(body, dict) else None
    return int((meta or {}).get("total") or 0)


def _count(client: FreshsalesClient, obj: FreshsalesObject) -> tuple[int | None, str]:
    """Records of this kind in Freshsales, and how they were counted."""
    if obj.entity in LIST_FILTERS:
        filters = LIST_FILTERS[obj.entity]
        total = sum(_activity_total(client, obj.entity, f) for f in filters)
        return total, f"GET /{obj.entity}?filter={'+'.join(filters)} meta.total"
    if obj.entity in SIDE_LOADED:
        return None, "no list endpoint in the API: id map and audit log, presence checked on the sample"
    if obj.entity in PLAIN_LISTS:
        return client.list_total(obj.entity), f"GET /{obj.entity} meta.total"
    if obj.entity == "deals":
        views = {v.name: v for v in client.filters("deals")}
        missing = [n for n in DEAL_VIEWS if n not in views]
        if missing:
            return None, f"deal views missing: {', '.join(missing)}"
        return sum(client.count("deals", views[n].id) for n in DEAL_VIEWS), "views " + " + ".join(DEAL_VIEWS)
    try:
        view = client.find_view(obj.entity, *DEFAULT_VIEWS.get(obj.entity, ()))
    except ViewNotFoundError:
        return None, "no view listing every record"
    return client.count(obj.entity, view.id), f"view {view.name!r} meta.total"


# Per sampled key: the Freshsales records that carry it (empty: missing).
Found = dict[str, list[dict[str, Any]]]


def _by_key_search(client: FreshsalesClient, obj: FreshsalesObject, keys: Sequence[str]) -> Found:
    found: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    for start in range(0, len(keys), KEYS_PER_SEARCH):
        chunk = list(keys[start : start + KEYS_PER_SEARCH])
        # The API may compare case-insensitively: map answers back onto the staged spelling.
        by_fold = {k.casefold(): k for k in chunk}
        rule = [{"attribute": obj.key_field, "operator": "is_in", "value": chunk}]
        for record in client.filtered_search(obj.entity, rule):
            value = _fs_value(record, obj.key_field)
            key = by_fold.get(str(value).casefold()) if value is not None else None
            if key is not None:
                found[key].append(record)
    return found


def _by_id(client: FreshsalesClient, obj: FreshsalesObject, rows: Sequence[dict[str, Any]]) -> Found:
    found: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        key = row["_source_key"]
        try:
            record = client.get(obj.entity, int(row["_freshsales_id"]))
        except NotFoundError:
            record = None
        # The id must still hold our record: not deleted, and carrying this key's marker.
        ours = (
            record is not None
            and not record.get("is_deleted")
            and marker_of(key) in _markers(record, obj.marker_field or DESCRIPTION_MARKER)
        )
        found[key] = [record] if ours and record is not None else []
    return found


def _by_parent(
    client: FreshsalesClient, obj: FreshsalesObject, rows: Sequence[dict[str, Any]], parent_ids: dict[str, int]
) -> Found:
    """Notes and files: read the parent contact's side-loaded list once per distinct parent."""
    lookup = f"_lookup_{BY_NAME[obj.parents[0]].target}"
    by_parent: dict[int, list[dict[str, Any]]] = defaultdict(list)
    found: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        parent = parent_ids.get(str(row.get(lookup)))
        if parent is None:
            found[row["_source_key"]] = []
        else:
            by_parent[parent].append(row)
    parent_entity = BY_NAME[obj.parents[0]].entity
    for parent, children in by_parent.items():
        try:
            if obj.entity == "notes":
                listed = client.get(parent_entity, parent, include="notes").get("notes") or []
            else:
                listed = client.document_associations(parent_entity, parent)
        except NotFoundError:
            listed = []
        for row in children:
            if obj.entity == "notes":
                wanted = marker_of(row["_source_key"])
                hits = [n for n in listed if wanted in _markers(n)]
            else:
                hits = [d for d in listed if _as_int(d.get("id")) == int(row["_freshsales_id"])]
            found[row["_source_key"]] = hits
    return found


# ---- one object -------------------------------------------------------------------------------


def _staged_files(staged_path: Path | Sequence[Path]) -> list[Path]:
    paths = [staged_path] if isinstance(staged_path, Path) else list(staged_path)
    return [p for p in paths if p.exists()]


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _names_owner_sql(columns: Sequence[str]) -> str | None:
    """SQL true for a staged row `s` naming its owner (an email or a display name); None when no column can."""
    named = [f"s.{quote_ident(c)} IS NOT NULL" for c in OWNER_COLUMNS.values() if c in columns]
    return f"({' OR '.join(named)})" if named else None


def validate_object(
    client: FreshsalesClient,
    state: StateStore,
    obj: FreshsalesObject,
    *,
    staged_path: Path | Sequence[Path],
    quarantined: int | None = None,
    quarantine_files: Sequence[Path] = (),
    reconciliation_files: Sequence[Path] = (),
    rejected_files: Sequence[Path] = (),
    link_parent: FreshsalesObject | None = None,
    sample_size: int = SAMPLE_SIZE,
    by_id_sample_size: int = BY_ID_SAMPLE_SIZE,
) -> ObjectValidation:
    """Validate one object. `staged_path`: the full run's file, or it and the delta partitions' files
    (oldest first). `quarantined` is used when no quarantine files are given. `rejected_files`: the
    loader's rejected/held-back lists, for the reasons of staged records not loaded. `link_parent`:
    check links to that parent only (default: every parent of the object)."""
    before = client.stats["requests"]
    paths = _staged_files(staged_path)
    if not paths:
        raise OperatorError(f"{obj.name}: no staged file to validate; materialize staged_{obj.name} first")
    id_map = state.id_map(obj.name)
    parents = [link_parent] if link_parent is not None else [BY_NAME[p] for p in obj.parents]
    parent_maps = {p.target: {k: r.freshsales_id for k, r in state.id_map(p.name).items()} for p in parents}
    con = duckdb.connect()
    try:
        columns = open_staged(con, paths)
        con.register(
            "id_map",
            pa.table(
                {
                    "_source_key": pa.array(list(id_map), pa.string()),
                    "freshsales_id": pa.array([r.freshsales_id for r in id_map.values()], pa.int64()),
                }
            ),
        )
        fields = [c for c in columns if not c.startswith("_")]
        staged, staged_rates = _staged_rates(con, fields)
        names_owner = _names_owner_sql(columns)
        loaded_staged, owner_staged = con.execute(
            "SELECT count(m._source_key), count(*) FILTER (WHERE m._source_key IS NOT NULL "
            + f"AND {names_owner or 'FALSE'}) FROM staged s LEFT JOIN id_map m USING (_source_key)"
        ).fetchall()[0]
        if quarantine_files:
            quarantined, reasons = quarantine_counts(con, quarantine_files)
        else:
            reasons = {}
        skipped, tables = _reconciliation(con, reconciliation_files)
        unloaded = not_loaded_reasons(con, [p for p in rejected_files if p.exists() and p.stat().st_size])
        by_key = not obj.marker_field and obj.entity not in SIDE_LOADED
        sample = _sample(con, sample_size if by_key else by_id_sample_size, loaded_only=not by_key)
    finally:
        con.close()

    total, method = _count(client, obj)
    if by_key:
        read = _by_key_search(client, obj, [r["_source_key"] for r in sample])
    elif obj.entity in SIDE_LOADED:
        read = _by_parent(client, obj, sample, parent_maps.get(BY_NAME[obj.parents[0]].target, {}))
    else:
        read = _by_id(client, obj, sample)

    hits = Counter({k: len(v) for k, v in read.items()})
    result = ObjectValidation(
        object=obj.name,
        staged=staged,
        quarantined=quarantined or 0,
        skipped=skipped,
        source_rows=staged + (quarantined or 0) + skipped,
        in_id_map=len(id_map),
        not_loaded=staged - int(loaded_staged),
        stale_in_id_map=len(id_map) - int(loaded_staged),
        freshsales_total=total,
        count_method=method,
        keys_checked=len(sample),
        keys_found_once=sum(1 for r in sample if hits[r["_source_key"]] == 1),
        keys_missing=sum(1 for r in sample if hits[r["_source_key"]] == 0),
        keys_duplicated=sum(1 for r in sample if hits[r["_source_key"]] > 1),
        missing_loaded=sum(1 for r in sample if hits[r["_source_key"]] == 0 and r["_freshsales_id"] is not None),
        owner_rate_staged=_rate(int(owner_staged), int(loaded_staged)) if names_owner else None,
        quarantine_reasons=reasons,
        not_loaded_reasons=unloaded,
        source_tables=tables,
    )
    compared = [(r, read[r["_source_key"]][0]) for r in sample if hits[r["_source_key"]] >= 1]
    compared = [(r, _with_links(client, obj, rec, parents)) for r, rec in compared]
    result.sampled = len(compared)
    result.population = _population([] if obj.entity in PRESENCE_ONLY else fields, staged_rates, compared)
    if obj.entity not in SIDE_LOADED:
        result.owner_rate_freshsales = _rate(sum(_has_owner(rec) for _, rec in compared), len(compared))
    result.links_checked, result.links_broken = _links(obj, compared, parents, parent_maps)
    result.requests = client.stats["requests"] - before
    return result


def _with_links(
    client: FreshsalesClient, obj: FreshsalesObject, record: dict[str, Any], parents: Sequence[FreshsalesObject]
) -> dict[str, Any]:
    """Search answers may leave a contact's accounts out: read those few by id with the side-load."""
    if (
        obj.entity == "contacts"
        and any(p.target == "sales_account" for p in parents)
        and "sales_accounts" not in record
    ):
        return client.get(obj.entity, int(record["id"]), include="sales_accounts")
    return record


def _population(
    fields: Sequence[str], staged_rates: dict[str, float], compared: Sequence[tuple[dict[str, Any], dict[str, Any]]]
) -> list[FieldPopulation]:
    out = []
    for field in fields:
        staged_hits = [_present(row.get(field)) for row, _ in compared]
        fs_hits = [_present(_fs_value(rec, field)) for _, rec in compared]
        out.append(
            FieldPopulation(
                field=field,
                staged_rate=staged_rates[field],
                sample_staged_rate=_rate(sum(staged_hits), len(compared)),
                freshsales_rate=_rate(sum(fs_hits), len(compared)),
                values_lost=sum(s and not f for s, f in zip(staged_hits, fs_hits, strict=True)),
            )
        )
    return out


def _links(
    obj: FreshsalesObject,
    compared: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    parents: Sequence[FreshsalesObject],
    parent_maps: dict[str, dict[str, int]],
) -> tuple[int, int]:
    """(children checked, children with a missing or wrong parent link) on the sample."""
    if obj.entity in SIDE_LOADED:
        # Found under the expected parent's own list: the link is what found them.
        return len(compared), 0
    checked = broken = 0
    for row, record in compared:
        wanted = [(p.target, row.get(f"_lookup_{p.target}")) for p in parents]
        wanted = [(target, key) for target, key in wanted if key is not None]
        if not wanted:
            continue
        checked += 1
        for target, key in wanted:
            parent_id = parent_maps[target].get(str(key))
            if parent_id is None or parent_id not in _linked_ids(record, target):
                broken += 1
                break
    return checked, broken


# ---- the whole migration ----------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectFiles:
    """One object's files from the full run and every delta partition, oldest first."""

    staged: list[Path]
    quarantine: list[Path]
    reconciliation: list[Path]
    rejected: list[Path]


def object_files(
    obj: FreshsalesObject, staged_dir: Path, quarantine_dir: Path, rejected_dir: Path | None
) -> ObjectFiles:
    def with_deltas(folder: Path | None, name: str) -> list[Path]:
        if folder is None:
            return []
        return [p for p in [folder / name, *sorted((folder / "delta").glob(f"*/{name}"))] if p.exists()]

    return ObjectFiles(
        staged=with_deltas(staged_dir, f"{obj.name}.parquet"),
        quarantine=with_deltas(quarantine_dir, f"{obj.name}.parquet"),
        reconciliation=with_deltas(quarantine_dir, f"{obj.name}_reconciliation.parquet"),
        rejected=with_deltas(rejected_dir, f"{obj.name}.jsonl"),
    )


def validate_migration(
    client: FreshsalesClient,
    state: StateStore,
    *,
    staged_dir: Path,
    quarantine_dir: Path,
    rejected_dir: Path | None = None,
    objects: Iterable[FreshsalesObject] = STAGED_OBJECTS,
    sample_size: int = SAMPLE_SIZE,
    by_id_sample_size: int = BY_ID_SAMPLE_SIZE,
    tolerance: float = POPULATION_TOLERANCE,
) -> ValidationReport:
    """Every object with staged records (full run and delta partitions), then the report.
    `rejected_dir`: where the loader writes `<object>.jsonl` (held back and rejected records)."""
    before = client.stats["requests"]
    results = []
    for obj in objects:
        files = object_files(obj, staged_dir, quarantine_dir, rejected_dir)
        if not any(pq.ParquetFile(p).metadata.num_rows for p in files.staged):
            continue
        results.append(
            validate_object(
                client,
                state,
                obj,
                staged_path=files.staged,
                quarantine_files=files.quarantine,
                reconciliation_files=files.reconciliation,
                rejected_files=files.rejected,
                sample_size=sample_size,
                by_id_sample_size=by_id_sample_size,
            )
        )
    return build_report(
        results, state.audit_counts(), requests_used=client.stats["requests"] - before, tolerance=tolerance
    )


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f}%"


def describe_not_loaded(o: ObjectValidation) -> str:
    """The reasons and counts of an object's staged records not loaded, for one line of text."""
    return ", ".join(f"{k} {v}" for k, v in o.not_loaded_reasons.items()) or "no reason recorded"


def _object_findings(o: ObjectValidation, tolerance: float) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    notes: list[str] = []
    if o.freshsales_total is not None and o.freshsales_total != o.in_id_map:
        more = o.freshsales_total > o.in_id_map
        why = "created outside this migration or duplicated" if more else "deleted or never created"
        problems.append(
            f"{o.object}: Freshsales counts {o.freshsales_total} records, the id map {o.in_id_map} "
            f"({o.freshsales_total - o.in_id_map:+d}: {why})"
        )
    if o.missing_loaded:
        problems.append(
            f"{o.object}: {o.missing_loaded} of {o.keys_checked} checked records are in the id map "
            "but not in Freshsales"
        )
    if o.keys_duplicated:
        problems.append(f"{o.object}: {o.keys_duplicated} source keys held by more than one Freshsales record")
    if o.links_broken:
        problems.append(
            f"{o.object}: {o.links_broken} of {o.links_checked} sampled records lack their parent link "
            "or point elsewhere"
        )
    for f in o.population:
        if f.drop > tolerance:
            problems.append(
                f"{o.object}.{f.field}: populated in {_pct(f.sample_staged_rate)} of the sampled staged records, "
                f"{_pct(f.freshsales_rate)} in Freshsales ({f.values_lost} values lost)"
            )
        elif f.values_lost:
            notes.append(f"{o.object}.{f.field}: {f.values_lost} sampled values lost (within tolerance)")
    if (
        o.owner_rate_staged is not None
        and o.owner_rate_freshsales is not None
        and o.owner_rate_staged - o.owner_rate_freshsales > tolerance
    ):
        problems.append(
            f"{o.object}: owner on {_pct(o.owner_rate_staged)} of the loaded staged records, "
            f"{_pct(o.owner_rate_freshsales)} of the sampled Freshsales records"
        )
    if o.not_loaded:
        # A staged record held back or rejected is patient data missing from Freshsales: it fails the
        # report. Quarantined and skipped rows are not counted here: they were never staged to load.
        outcomes = ", ".join(f"{k} {v}" for k, v in o.load_outcomes.items() if k.split("/")[-1] not in IN_FRESHSALES)
        problems.append(
            f"{o.object}: {o.not_loaded} of {o.staged} staged records not loaded into Freshsales "
            f"({describe_not_loaded(o)}; audit: {outcomes or 'no outcome'})"
        )
    if o.keys_missing > o.missing_loaded:
        notes.append(
            f"{o.object}: {o.keys_missing - o.missing_loaded} checked keys absent from Freshsales and from the "
            "id map (not loaded, see the discrepancies)"
        )
    if o.stale_in_id_map:
        notes.append(f"{o.object}: {o.stale_in_id_map} id-map records are no longer staged (removed from the source?)")
    if o.freshsales_total is None:
        notes.append(f"{o.object}: not counted in Freshsales ({o.count_method})")
    if o.quarantined:
        reasons = ", ".join(f"{k} {v}" for k, v in o.quarantine_reasons.items())
        notes.append(f"{o.object}: {o.quarantined} quarantined" + (f" ({reasons})" if reasons else ""))
    return problems, notes


def build_report(
    objects: list[ObjectValidation],
    audit: dict[tuple[str, str, str], int],
    *,
    requests_used: int | None = None,
    tolerance: float = POPULATION_TOLERANCE,
) -> ValidationReport:
    outcomes: dict[str, dict[str, int]] = defaultdict(dict)
    for (obj, op, outcome), n in sorted(audit.items()):
        outcomes[obj][f"{op}/{outcome}"] = n
    problems: list[str] = []
    warnings: list[str] = []
    finished = []
    for o in objects:
        o = o.model_copy(update={"load_outcomes": outcomes.get(o.object, {})})
        found, noted = _object_findings(o, tolerance)
        problems += found
        warnings += noted
        finished.append(o)
    return ValidationReport(
        objects=finished,
        audit={"/".join(k): v for k, v in sorted(audit.items())},
        discrepancies=problems,
        warnings=warnings,
        requests_used=requests_used,
        tolerance=tolerance,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


# ---- output -----------------------------------------------------------------------------------


def write_report(report: ValidationReport, json_path: Path, html_path: Path) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report.model_dump(mode="json"), indent=2), encoding="utf-8")
    html_path.write_text(render_html(report), encoding="utf-8")


SUMMARY_COLUMNS: tuple[tuple[str, Callable[[ObjectValidation], Any]], ...] = (
    ("object", lambda o: o.object),
    ("source rows", lambda o: o.source_rows),
    ("staged", lambda o: o.staged),
    ("quarantined", lambda o: o.quarantined),
    ("skipped", lambda o: o.skipped),
    ("not loaded", lambda o: o.not_loaded),
    ("id map", lambda o: o.in_id_map),
    ("Freshsales", lambda o: "n/a" if o.freshsales_total is None else o.freshsales_total),
    ("keys checked", lambda o: o.keys_checked),
    ("found once", lambda o: o.keys_found_once),
    ("missing", lambda o: o.keys_missing),
    ("duplicated", lambda o: o.keys_duplicated),
    ("owner staged", lambda o: _pct(o.owner_rate_staged)),
    ("owner Freshsales", lambda o: _pct(o.owner_rate_freshsales)),
    ("links broken", lambda o: f"{o.links_broken}/{o.links_checked}"),
    ("requests", lambda o: o.requests),
)


def _population_chart(o: ObjectValidation) -> str:
    if not o.population:
        return ""
    return bar_chart(
        f"{o.object}: field population",
        [f.field for f in o.population],
        {
            "staged (all)": [f.staged_rate for f in o.population],
            "staged (sample)": [f.sample_staged_rate for f in o.population],
            "Freshsales (sample)": [f.freshsales_rate for f in o.population],
        },
        percent=True,
    )


def _population_rows(o: ObjectValidation) -> list[tuple[Any, ...]]:
    return [
        (f.field, _pct(f.staged_rate), _pct(f.sample_staged_rate), _pct(f.freshsales_rate), f.values_lost)
        for f in o.population
    ]


def _counts_chart(report: ValidationReport) -> str:
    """Where each object's source rows went, side by side with what Freshsales counts: a quarantined or
    not-loaded bar, or a Freshsales bar short of the id map, shows at a glance."""
    objects = report.objects
    return bar_chart(
        "Records: source vs Freshsales",
        [o.object for o in objects],
        {
            "source rows": [float(o.source_rows) for o in objects],
            "quarantined": [float(o.quarantined) for o in objects],
            "staged": [float(o.staged) for o in objects],
            "not loaded": [float(o.not_loaded) for o in objects],
            "id map": [float(o.in_id_map) for o in objects],
            "Freshsales": [None if o.freshsales_total is None else float(o.freshsales_total) for o in objects],
        },
    )


def render_html(report: ValidationReport) -> str:
    return render_page(
        "validation.html.j2",
        r=report,
        verdict="PASS" if report.ok else "FAIL",
        counts_chart=_counts_chart(report),
        summary_head=[c for c, _ in SUMMARY_COLUMNS],
        summary_rows=[[get(o) for _, get in SUMMARY_COLUMNS] for o in report.objects],
        population_charts=[_population_chart(o) for o in report.objects],
        population_rows=[_population_rows(o) for o in report.objects],
    )
