"""Repair: heal in place the records a validation report found missing from Freshsales or differing there.

The validation report reads back a sample and counts; it names objects, never records. Repair therefore
verifies every id-mapped staged record of each object the report flags (a record in the id map missing
from Freshsales, a count that disagrees with the id map, a parent link broken, values lost), and of the
children of any record it re-creates (their links must follow the parent's new id), then acts per record:
- missing (deleted by hand, emptied from the Recycle Bin, or still in it: the API has no restore), it is
  created again from its staged payload and the id map follows its new id;
- present with fields that differ from the staged payload (an admin's workflow overwrote them), it is
  updated (PUT) with the staged values, its before-image kept in the audit log;
- a file whose contact no longer lists it is uploaded again from the export;
- a record that matches is not touched: no write, no audit row.
Every write is audited under the repair's own run id, so `rollback --run <id>` deletes what it created and
puts back what it changed. Objects go in load order, so a child is compared with its parent's new id.

How each object is read, and what it costs in requests (n: the object's id-mapped records verified):
- keyed objects (contacts, accounts, deals, custom modules): `filtered_search` `is_in` on 100 source keys
  a request, n/100, the answers being the records compared;
- appointments and tasks: their list endpoints by filter (past + upcoming, open + completed), 100 a page,
  every record of that kind in the account / 100; a subset (children of re-created parents) is read by id;
- notes and files (no list, no read by id): one request per distinct parent contact, as validation does;
plus per missing record one read by id where the API has one (is it in the Recycle Bin?) and one create,
per differing record one read (its before-image) and one PUT. Notes and files are checked for presence.

Counts, object names and reasons only in the result and logs; source keys never leave the state store.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from clinic_pipeline.freshsales.client import MAX_KEYS_PER_SEARCH, FreshsalesClient
from clinic_pipeline.freshsales.entities import LIST_FILTERS, PLAIN_LISTS
from clinic_pipeline.freshsales.errors import FreshsalesError, NotFoundError, OutcomeUnknownError, PermissionDeniedError
from clinic_pipeline.load.choices import AccountChoices, ChoiceIndex
from clinic_pipeline.load.files import TARGETABLE_TYPE, sha256_of
from clinic_pipeline.load.loader import find_sent
from clinic_pipeline.load.owners import OwnerMap
from clinic_pipeline.load.payloads import LOOKUP_PREFIX, Prepared, names_owners, prepare
from clinic_pipeline.load.state import AuditEntry, IdMapRow, Intent, StateStore
from clinic_pipeline.model.objects import (
    BY_NAME,
    CHOICE_PREFIX,
    FILES,
    NOTES,
    STAGED_OBJECTS,
    FreshsalesObject,
)
from clinic_pipeline.model.outcomes import LoadOutcome
from clinic_pipeline.reports.validation import ObjectValidation, ValidationReport, marker_of, object_files, open_staged

log = logging.getLogger(__name__)

# Link fields Freshsales answers under another name, or only when side-loaded: compared where answered.
LINK_FIELDS = frozenset({"sales_accounts", "contact_ids", "appointment_attendees_attributes"})
REASON_BIN = "in the Freshsales Recycle Bin, and re-creating it was refused: restore it there, then repair again"
REASON_REFUSED = "re-creating it was refused by Freshsales"
REASON_UPDATE_REFUSED = "the update was refused by Freshsales"
REASON_NO_ANSWER = "no answer from Freshsales; run repair again"
REASON_HELD_BACK = "its parent is not in Freshsales"
REASON_OTHER_ID = "found in Freshsales under another id than the id map's"
REASON_DUPLICATED = "held by more than one Freshsales record: an admin merges or deletes the extra ones"
REASON_FILE = "the file is missing from the export or its checksum changed"
REASON_LINK = "a document link (over the size limit): re-attach it by hand"
REASON_NOT_LOADED = "staged but never loaded: see the validation report's reasons, re-run the load"


class ObjectRepair(BaseModel):
    """Counts for one object; never values or keys."""

    checked: int = 0  # id-mapped records compared with Freshsales
    recreated: int = 0
    updated: int = 0
    reuploaded: int = 0
    failing: dict[str, int] = Field(default_factory=dict)  # reason → records still not healed
    requests: int = 0

    @property
    def writes(self) -> int:
        return self.recreated + self.updated + self.reuploaded


class RepairResult(BaseModel):
    run_id: str
    flagged: list[str]  # objects the report found discrepancies in
    objects: dict[str, ObjectRepair] = Field(default_factory=dict)
    requests: int = 0  # repair's own requests, the validation after it not included

    @property
    def writes(self) -> int:
        return sum(o.writes for o in self.objects.values())

    @property
    def failing(self) -> int:
        return sum(sum(o.failing.values()) for o in self.objects.values())


def flagged_objects(report: ValidationReport) -> list[str]:
    """Objects whose discrepancies a repair can act on: records the id map holds that Freshsales lacks or
    holds differently. Duplicates and records never loaded are listed as still failing, not repaired."""
    return [o.object for o in report.objects if _needs_repair(o, report.tolerance)]


def _needs_repair(o: ObjectValidation, tolerance: float) -> bool:
    owner_drop = (
        o.owner_rate_staged is not None
        and o.owner_rate_freshsales is not None
        and o.owner_rate_staged - o.owner_rate_freshsales > tolerance
    )
    return bool(
        o.missing_loaded
        or o.links_broken
        or (o.freshsales_total is not None and o.freshsales_total < o.in_id_map)
        or any(f.values_lost for f in o.population)
        or owner_drop
    )


# ---- comparing a staged payload with what Freshsales holds ------------------------------------


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        return None


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) < 11 or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def same_value(wanted: Any, actual: Any) -> bool:
    """Equal as Freshsales represents it: money as decimal strings, instants with any offset, lists as sets."""
    if wanted is None or wanted == "" or wanted == []:
        return actual is None or actual == "" or actual == []
    if isinstance(wanted, list):
        return isinstance(actual, list) and {str(v) for v in wanted} == {str(v) for v in actual}
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return str(wanted).lower() == str(actual).lower()
    if isinstance(wanted, str) and isinstance(actual, str) and wanted.strip() == actual.strip():
        return True
    instants = _instant(wanted), _instant(actual)
    if instants[0] is not None and instants[1] is not None:
        return instants[0] == instants[1]
    numbers = _number(wanted), _number(actual)
    if numbers[0] is not None and numbers[1] is not None:
        return numbers[0] == numbers[1]
    return str(wanted).strip() == str(actual).strip()


def _ids(items: Iterable[Any], kind: str | None = None) -> set[tuple[str | None, int]]:
    out: set[tuple[str | None, int]] = set()
    for item in items:
        if isinstance(item, dict):
            value, item_kind = item.get("attendee_id", item.get("id")), item.get("attendee_type", kind)
        else:
            value, item_kind = item, kind
        if value is not None and str(value).isdigit():
            out.add((item_kind, int(value)))
    return out


def _link_differs(field: str, wanted: Any, record: dict[str, Any]) -> bool:
    if field == "sales_accounts":
        if "sales_accounts" not in record:
            return False  # not side-loaded in this answer: nothing to compare
        return not _ids(wanted) <= _ids(record["sales_accounts"] or [])
    if field == "contact_ids":
        return "contact_ids" in record and _ids(wanted) != _ids(record["contact_ids"] or [])
    attendees = record.get("appointment_attendees", record.get("appointment_attendees_attributes"))
    return attendees is not None and not _ids(wanted) <= _ids(attendees)


def differing_fields(payload: Mapping[str, Any], record: Mapping[str, Any]) -> list[str]:
    """The payload's fields whose value Freshsales does not hold (field names only: no values)."""
    record = dict(record)
    differ: list[str] = []
    for field, wanted in payload.items():
        if field == "custom_field":
            held = record.get("custom_field") or {}
            differ += [f for f, v in wanted.items() if not same_value(v, held.get(f))]
        elif field in LINK_FIELDS:
            if _link_differs(field, wanted, record):
                differ.append(field)
        elif field == "email":
            emails = [e.get("value") if isinstance(e, dict) else e for e in record.get("emails") or []]
            held_emails = {str(e).casefold() for e in [record.get("email"), *emails] if e}
            if str(wanted).casefold() not in held_emails:
                differ.append(field)
        elif not same_value(wanted, record.get(field)):
            differ.append(field)
    return differ


# ---- the staged side ----------------------------------------------------------------------------


def _staged_rows(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per source key, the latest file's version (full run, then delta partitions)."""
    con = duckdb.connect()
    try:
        open_staged(con, paths)
        return con.sql("SELECT * FROM staged ORDER BY _source_key").to_arrow_table().to_pylist()
    finally:
        con.close()


@dataclass
class _Work:
    """One object's verification: the staged rows, prepared, that the id map holds."""

    obj: FreshsalesObject
    prepared: dict[str, Prepared]  # source key → body with the current parents' ids
    rows: dict[str, dict[str, Any]]  # source key → staged row (files: path and checksum)
    mapped: dict[str, IdMapRow]


class _Repair:
    def __init__(
        self,
        client: FreshsalesClient,
        state: StateStore,
        *,
        run_id: str,
        fallback_owner_email: str | None,
        max_file_bytes: int,
    ) -> None:
        self._client = client
        self._state = state
        self._run_id = run_id
        self._fallback = fallback_owner_email
        self._max_file_bytes = max_file_bytes
        self._owners: OwnerMap | None = None
        self._choices = AccountChoices(client)
        self.recreated: dict[str, set[str]] = defaultdict(set)  # object → source keys given a new id

    # ---- preparing bodies as the loader does -----------------------------------------------

    def _owner_map(self, columns: Iterable[str]) -> OwnerMap | None:
        if not names_owners(columns):
            return None
        if self._owners is None:
            try:
                self._owners = OwnerMap.from_client(self._client, self._fallback)
            except PermissionDeniedError:
                log.warning("the API key cannot list users: record owners cannot be resolved")
                self._owners = OwnerMap.from_owners([], None)
        return self._owners

    def _choice_indexes(self, columns: Iterable[str]) -> dict[str, ChoiceIndex]:
        fields = [c.removeprefix(CHOICE_PREFIX) for c in columns if c.startswith(CHOICE_PREFIX)]
        return {f: self._choices.index(f) for f in fields}

    def work(self, obj: FreshsalesObject, paths: Sequence[Path], only_parents: Mapping[str, set[str]]) -> _Work:
        """The id-mapped staged records to verify: all of them, or (`only_parents`: parent target → keys)
        those hanging on the given parents."""
        rows = _staged_rows(paths)
        mapped = self._state.id_map(obj.name)
        if only_parents:
            rows = [r for r in rows if any(r.get(f"{LOOKUP_PREFIX}{t}") in keys for t, keys in only_parents.items())]
        rows = [r for r in rows if str(r["_source_key"]) in mapped]
        columns = set(rows[0]) if rows else set()
        if obj.name == FILES.name:
            prepared: dict[str, Prepared] = {}
        else:
            parent_maps = {BY_NAME[p].target: self._state.id_map(p) for p in obj.parents}
            owners, choices = self._owner_map(columns), self._choice_indexes(columns)
            prepared = {str(r["_source_key"]): prepare(obj, r, parent_maps, owners, choices) for r in rows}
        return _Work(obj, prepared, {str(r["_source_key"]): r for r in rows}, mapped)

    # ---- reading Freshsales --------------------------------------------------------------------

    def _keyed(self, obj: FreshsalesObject, keys: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
        field = obj.key_field
        for start in range(0, len(keys), MAX_KEYS_PER_SEARCH):
            chunk = list(keys[start : start + MAX_KEYS_PER_SEARCH])
            by_fold = {k.casefold(): k for k in chunk}
            rule = [{"attribute": field, "operator": "is_in", "value": chunk}]
            for record in self._client.filtered_search(obj.entity, rule):
                value = record.get(field, (record.get("custom_field") or {}).get(field))
                key = by_fold.get(str(value).casefold()) if value is not None else None
                if key is not None:
                    found[key].append(record)
        return found

    def _by_id(self, obj: FreshsalesObject, work: _Work, everything: bool) -> dict[str, list[dict[str, Any]]]:
        """Appointments, tasks and sales activities: the record at the id map's id, carrying the key's marker."""
        listed: dict[int, dict[str, Any]] = {}
        if everything and obj.entity in PLAIN_LISTS:
            listed.update({int(r["id"]): r for r in self._client.list_all(obj.entity)})
        elif everything:
            for name in LIST_FILTERS[obj.entity]:
                body = self._client.list_tasks(name) if obj.entity == "tasks" else self._client.list_appointments(name)
                listed.update({int(r["id"]): r for r in body})
        found: dict[str, list[dict[str, Any]]] = {}
        for key in work.rows:
            record_id = work.mapped[key].freshsales_id
            record = listed.get(record_id)
            if record is None:
                try:
                    record = self._client.get(obj.entity, record_id)
                except NotFoundError:
                    record = None
            ours = record is not None and not record.get("is_deleted")
            marked = record is not None and marker_of(key) in str(record.get(obj.marker_field or ""))
            found[key] = [record] if ours and marked else []
        return found

    def _by_parent(self, obj: FreshsalesObject, work: _Work) -> dict[str, list[dict[str, Any]]]:
        """Notes and files: found in their parent contact's list (one request per distinct contact)."""
        contacts = self._state.id_map("contacts")
        lists: dict[int, list[dict[str, Any]]] = {}
        found: dict[str, list[dict[str, Any]]] = {}
        for key, row in work.rows.items():
            parent = contacts.get(str(row.get(f"{LOOKUP_PREFIX}contact")))
            if parent is None:
                found[key] = []
                continue
            if parent.freshsales_id not in lists:
                lists[parent.freshsales_id] = self._children(obj, parent.freshsales_id)
            listed = lists[parent.freshsales_id]
            if obj.name == NOTES.name:
                found[key] = [n for n in listed if marker_of(key) in str(n.get("description"))]
            else:
                found[key] = [d for d in listed if str(d.get("id")) == str(work.mapped[key].freshsales_id)]
        return found

    def _children(self, obj: FreshsalesObject, contact_id: int) -> list[dict[str, Any]]:
        try:
            if obj.name == NOTES.name:
                return list(self._client.get("contacts", contact_id, include="notes").get("notes") or [])
            return self._client.document_associations("contacts", contact_id)
        except NotFoundError:
            return []

    def read(self, work: _Work, everything: bool) -> dict[str, list[dict[str, Any]]]:
        obj = work.obj
        if obj.entity in ("notes", "documents"):
            return self._by_parent(obj, work)
        if obj.marker_field:
            return self._by_id(obj, work, everything)
        return self._keyed(obj, list(work.rows))

    # ---- acting ----------------------------------------------------------------------------------

    def object(self, work: _Work, everything: bool) -> ObjectRepair:
        before = self._client.stats["requests"]
        counts = ObjectRepair()
        failing: Counter[str] = Counter()
        found = self.read(work, everything)
        counts.checked = len(found)
        for key, records in found.items():
            mapped = work.mapped[key]
            if len(records) > 1:
                failing[REASON_DUPLICATED] += 1
            elif work.obj.name == FILES.name:
                if not records:
                    self._reupload(work, key, counts, failing)
            elif work.prepared[key].payload is None:
                failing[REASON_HELD_BACK] += 1
            elif not records:
                self._recreate(work.obj, work.prepared[key], mapped, counts, failing)
            elif str(records[0].get("id")) != str(mapped.freshsales_id):
                failing[REASON_OTHER_ID] += 1
            elif work.obj.name != NOTES.name and differing_fields(work.prepared[key].payload or {}, records[0]):
                self._update(work.obj, work.prepared[key], mapped, counts, failing)
        counts.failing = dict(failing.most_common())
        counts.requests = self._client.stats["requests"] - before
        return counts

    def _commit(self, obj: FreshsalesObject, mapped: list[IdMapRow], audit: list[AuditEntry]) -> None:
        self._state.record_batch(obj=obj.name, run_id=self._run_id, partition=None, mapped=mapped, audit=audit)

    def _in_bin(self, obj: FreshsalesObject, record_id: int) -> bool:
        if obj.entity == "notes":
            return False  # no read by id; Freshsales removes notes for good
        try:
            return bool(self._client.get(obj.entity, record_id).get("is_deleted"))
        except NotFoundError:
            return False

    def _recreate(
        self, obj: FreshsalesObject, p: Prepared, stale: IdMapRow, counts: ObjectRepair, failing: Counter[str]
    ) -> None:
        assert p.payload is not None
        in_bin = self._in_bin(obj, stale.freshsales_id)
        intent = Intent(p.source_key, p.payload_hash, p.parent_id)
        self._state.begin_intents(obj=obj.name, run_id=self._run_id, intents=[intent])
        try:
            try:
                record: dict[str, Any] | None = self._client.create(obj.entity, p.payload)
            except OutcomeUnknownError:
                record = find_sent(self._client, obj, [intent]).get(p.source_key)
        except FreshsalesError as exc:
            # The intent is settled by the audit row: nothing was created.
            self._commit(obj, [], [AuditEntry("create", LoadOutcome.REJECTED, p.source_key, None, exc.status)])
            failing[REASON_BIN if in_bin else REASON_REFUSED] += 1
            return
        if record is None:
            self._commit(obj, [], [AuditEntry("create", LoadOutcome.UNKNOWN, p.source_key)])
            failing[REASON_NO_ANSWER] += 1
            return
        new_id = int(record["id"])
        self._commit(
            obj,
            [IdMapRow(p.source_key, new_id, p.payload_hash)],
            [AuditEntry("create", LoadOutcome.CREATED, p.source_key, new_id, 201, parent_id=p.parent_id)],
        )
        self.recreated[obj.name].add(p.source_key)
        counts.recreated += 1

    def _update(
        self, obj: FreshsalesObject, p: Prepared, mapped: IdMapRow, counts: ObjectRepair, failing: Counter[str]
    ) -> None:
        assert p.payload is not None
        try:
            # Read by id, not the search answer: the image a rollback puts back must hold every field.
            image = self._client.get(obj.entity, mapped.freshsales_id)
            self._client.update(obj.entity, mapped.freshsales_id, p.payload)
        except FreshsalesError as exc:
            self._commit(obj, [], [AuditEntry("update", LoadOutcome.REJECTED, p.source_key, None, exc.status)])
            failing[REASON_UPDATE_REFUSED] += 1
            return
        self._commit(
            obj,
            [IdMapRow(p.source_key, mapped.freshsales_id, p.payload_hash)],
            [AuditEntry("update", LoadOutcome.UPDATED, p.source_key, mapped.freshsales_id, 200, image)],
        )
        counts.updated += 1

    def _reupload(self, work: _Work, key: str, counts: ObjectRepair, failing: Counter[str]) -> None:
        row = work.rows[key]
        contact = self._state.id_map("contacts").get(str(row.get(f"{LOOKUP_PREFIX}contact")))
        path = Path(str(row.get("file_path") or ""))
        if contact is None:
            failing[REASON_HELD_BACK] += 1
            return
        if not path.is_file() or (row.get("sha256") and sha256_of(path) != str(row["sha256"]).lower()):
            failing[REASON_FILE] += 1
            return
        if path.stat().st_size > self._max_file_bytes:
            failing[REASON_LINK] += 1
            return
        name = str(row.get("file_name") or path.name)
        try:
            try:
                document: dict[str, Any] | None = self._client.upload_document(
                    path, name, TARGETABLE_TYPE, contact.freshsales_id
                )
            except OutcomeUnknownError:
                document = self._uploaded(contact.freshsales_id, name, path.stat().st_size)
        except FreshsalesError as exc:
            self._commit(
                FILES,
                [],
                [AuditEntry("upload", LoadOutcome.REJECTED, key, None, exc.status, parent_id=contact.freshsales_id)],
            )
            failing[REASON_REFUSED] += 1
            return
        if document is None:
            failing[REASON_NO_ANSWER] += 1
            return
        doc_id = int(document["id"])
        # The contact travels with the row: the API cannot delete a document, a rollback deletes its contact.
        self._commit(
            FILES,
            [IdMapRow(key, doc_id, sha256_of(path))],
            [AuditEntry("upload", LoadOutcome.CREATED, key, doc_id, 201, parent_id=contact.freshsales_id)],
        )
        counts.reuploaded += 1

    def _uploaded(self, contact_id: int, name: str, size: int) -> dict[str, Any] | None:
        """An upload whose answer was lost: the contact's document of that name and size no id map row holds."""
        claimed = {r.freshsales_id for r in self._state.id_map(FILES.name).values()}
        for document in self._client.document_associations("contacts", contact_id):
            same = (document.get("name") or document.get("content_file_name")) == name
            if same and document.get("content_file_size") == size and int(document["id"]) not in claimed:
                return document
        return None


def repair(
    client: FreshsalesClient,
    state: StateStore,
    report: ValidationReport,
    *,
    run_id: str,
    staged_dir: Path,
    quarantine_dir: Path,
    fallback_owner_email: str | None = None,
    max_file_bytes: int,
) -> RepairResult:
    """Verify and heal the objects `report` flags (and the children of what it re-creates): see the module
    docstring. Records never loaded, and duplicates, are counted as still failing, with their reason."""
    before = client.stats["requests"]
    flagged = flagged_objects(report)
    result = RepairResult(run_id=run_id, flagged=flagged)
    worker = _Repair(
        client, state, run_id=run_id, fallback_owner_email=fallback_owner_email, max_file_bytes=max_file_bytes
    )
    not_loaded = {o.object: o.not_loaded for o in report.objects if o.not_loaded}
    for obj in STAGED_OBJECTS:
        paths = object_files(obj, staged_dir, quarantine_dir, None).staged
        if not paths or not any(pq.ParquetFile(p).metadata.num_rows for p in paths):
            continue
        # Children of re-created parents link to the old ids: those rows are verified even if not flagged.
        moved = {BY_NAME[p].target: worker.recreated[p] for p in obj.parents if worker.recreated.get(p)}
        everything = obj.name in flagged
        if not everything and not moved:
            counts = ObjectRepair()
        else:
            counts = worker.object(worker.work(obj, paths, {} if everything else moved), everything)
        if obj.name in not_loaded:
            counts.failing[REASON_NOT_LOADED] = not_loaded[obj.name]
        if counts != ObjectRepair():
            result.objects[obj.name] = counts
            log.info(
                "repair %s: %d checked, %d re-created, %d updated, %d re-uploaded, %d still failing, %d requests",
                obj.name,
                counts.checked,
                counts.recreated,
                counts.updated,
                counts.reuploaded,
                sum(counts.failing.values()),
                counts.requests,
            )
    result.requests = client.stats["requests"] - before
    return result
