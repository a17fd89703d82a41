"""Send one staged object to Freshsales: bulk first, idempotent, resumable, every operation audited.

Before anything is sent, the keys a previous run left with a pending write-ahead intent (it died, or
an answer was lost) are looked up in Freshsales: by their source key (`find_by_keys`) or, for
appointments, tasks and notes, by their description marker among the parent contact's side-loaded
records. A fresh run therefore never searches; only what a crash left open costs requests.

Per batch of 100 staged rows:
1. prepare bodies (parents' ids from the id map, owners from the owner map; else held back);
2. skip rows whose payload hash matches the id map (unchanged since they were loaded);
3. commit an intent for every record the id map does not know, then send: for objects with bulk
   upsert, known records by `id` and new ones with a usable identifier (contact email, account name)
   in one bulk request; the rest one by one (bounded concurrency). Before a bulk upsert by email or
   name, one `is_in` search finds records that existed before the migration: their before-image is kept
   with the intent and in the audit log, because the upsert silently updates them;
4. commit the id map and the audit rows for the batch (clearing the intents), after the API answered.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.freshsales.client import FreshsalesClient
from clinic_pipeline.freshsales.entities import LIST_FILTERS, PLAIN_LISTS
from clinic_pipeline.freshsales.errors import (
    FreshsalesError,
    JobTimeoutError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
)
from clinic_pipeline.freshsales.models import JobStatus
from clinic_pipeline.load.choices import AccountChoices, ChoiceIndex, ChoiceNotFoundError, missing_names
from clinic_pipeline.load.owners import OwnerMap
from clinic_pipeline.load.payloads import Prepared, marker, names_owners, prepare
from clinic_pipeline.load.state import AuditEntry, IdMapRow, Intent, StateStore
from clinic_pipeline.model.objects import BY_NAME, CHOICE_PREFIX, CHOICE_SELECTORS, FreshsalesObject
from clinic_pipeline.model.outcomes import IN_FRESHSALES, MAPPED, REPORTED, UNSETTLED, WRITTEN, LoadOutcome
from clinic_pipeline.private_files import write_private_jsonl

log = logging.getLogger(__name__)
BATCH_SIZE = 100  # staged rows committed together
# Objects with bulk upsert read more rows at once so that the records going by bulk (often fewer than
# all, e.g. only contacts with an email) still fill requests of 100.
BULK_BATCH_SIZE = 500
# Faults the client's retries did not outlast (each request has its attempts with backoff) leave records
# unsettled: the load passes over those again, after a pause that grows, up to this many times in the same
# run. A fault that outlives them all persists, and the run says so; a run that meets none pays nothing.
SETTLE_PASSES = 3
SETTLE_PAUSE_SECONDS = 5.0
MAX_BULK_ITEMS = 100  # one bulk_upsert request, one `is_in` search
# Records known to predate a send, at which reconciliation's newest-first listing stops (`find_sent`): the
# latest committed, a few pages' worth, so that one of them shows in each list (appointments past and upcoming).
ANCHORS = 500
# How far before such a record the listing still reads: Freshsales' servers stamp `created_at`, and two of them
# may disagree by a little; a record sent after the anchor could show a stamp slightly older than its.
CLOCK_SKEW = timedelta(seconds=1)
# The API refused the record itself: retrying cannot help, the record goes to the rejected file.
REJECTION_STATUSES = frozenset({400, 404, 409, 422})
# What a pre-existing record may be matched on by bulk upsert, per entity: (search attribute, identifier).
BULK_IDENTIFIERS = {"contacts": ("email", "emails"), "sales_accounts": ("name", "name")}
KEY_NAMESPACE_SEPARATOR = ":"  # every source key is `<table>:<key>` (staging/objects.py)
DUPLICATE_IDENTIFIER = "another staged record of this batch has the same email or name"


class LoadFailedError(OperatorError):
    """Some records hit errors that outlasted the retries; what succeeded is committed, a re-run resumes."""


@dataclass
class LoadResult:
    object: str
    staged: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    rejected_path: Path | None = None
    owner_unresolved: int = 0  # sent without an owner: no active user and no fallback
    requests: int = 0  # API requests this load made (retries and job polls included)
    retries: int = 0  # of those, re-sent after a 429, a 5xx, a lost or unreadable answer
    settle_passes: int = 0  # further passes over the records faults left unsettled

    @property
    def loaded(self) -> int:
        return sum(self.outcomes[k] for k in IN_FRESHSALES)

    @property
    def written(self) -> int:
        return sum(self.outcomes[k] for k in WRITTEN)

    @property
    def records_per_request(self) -> float:
        return round(self.written / self.requests, 3) if self.requests else 0.0

    def summary(self) -> dict[str, int | float]:
        """Counts for run metadata: no values, no keys."""
        counts: dict[str, int | float] = {"staged": self.staged, "loaded": self.loaded}
        for outcome in (*sorted(IN_FRESHSALES), LoadOutcome.REJECTED, LoadOutcome.HELD_BACK):
            counts[outcome.value] = self.outcomes[outcome]
        counts[LoadOutcome.UNKNOWN.value] = self.outcomes[LoadOutcome.UNKNOWN] + self.outcomes[LoadOutcome.FAILED]
        counts["owner_unresolved"] = self.owner_unresolved
        counts["requests"] = self.requests
        counts["retries"] = self.retries
        counts["settle_passes"] = self.settle_passes
        counts["records_per_request"] = self.records_per_request
        return counts


@dataclass(frozen=True)
class _Sent:
    prepared: Prepared
    op: str
    outcome: str
    freshsales_id: int | None = None
    http_status: int | None = None
    reason: str | None = None
    before_image: dict[str, Any] | None = None


@dataclass(frozen=True)
class _BulkItem:
    prepared: Prepared
    identifier: dict[str, Any]
    is_new: bool
    before_image: dict[str, Any] | None = None


def _batches(path: Path, size: int) -> Iterator[list[dict[str, Any]]]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=size):
        yield batch.to_pylist()


def _identifier_values(obj: FreshsalesObject, record: dict[str, Any]) -> list[str]:
    if obj.entity == "contacts":
        values = [e.get("value") if isinstance(e, dict) else e for e in record.get("emails") or []]
        return [v for v in [*values, record.get("email")] if isinstance(v, str)]
    name = record.get("name")
    return [name] if isinstance(name, str) else []


def _reason(exc: FreshsalesError) -> str:
    return "; ".join(exc.messages) or type(exc).__name__


class Loader:
    def __init__(
        self,
        client: FreshsalesClient,
        state: StateStore,
        *,
        run_id: str,
        partition: str | None = None,
        max_concurrency: int = 4,
        owners: OwnerMap | None = None,
        fallback_owner_email: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sleep = sleep
        self._client = client
        self._state = state
        self._run_id = run_id
        self._partition = partition
        self._pool_size = max_concurrency
        self._owners = owners
        self._fallback_owner_email = fallback_owner_email
        self._account_choices = AccountChoices(client)
        # The latest records this load committed (up to ANCHORS): created before anything it sends next.
        self._committed: list[int] = []

    def load(self, obj: FreshsalesObject, staged_path: Path, rejected_dir: Path) -> LoadResult:
        before = self._client.stats
        result = LoadResult(obj.name)
        # Keyed by target: staged rows name their parents as `_lookup_<target>`.
        parent_maps = {BY_NAME[p].target: self._state.id_map(p) for p in obj.parents}
        known = self._state.id_map(obj.name)
        owners = self._owner_map(staged_path)
        choices = self._choices(obj, staged_path)
        self._reconcile(obj, known)
        if obj.entity in _LISTS:
            self._committed = self._state.mapped_before(obj.name, datetime.now(UTC), ANCHORS)[::-1]
        census: dict[str, bool] = {}  # asked once, when the first new record comes up
        # Per source key, the records a person looks at (rejected, held back, unsettled); a later pass
        # replaces a record's entry. Only these are kept in memory, not every payload.
        reported: dict[str, _Sent] = {}
        retry: set[str] | None = None  # None: the first pass, over every staged record
        with ThreadPoolExecutor(max_workers=self._pool_size) as pool:
            for settle_pass in range(SETTLE_PASSES + 1):
                for rows in _batches(staged_path, BULK_BATCH_SIZE if obj.bulk else BATCH_SIZE):
                    if retry is not None:
                        rows = [r for r in rows if str(r["_source_key"]) in retry]
                        if not rows:
                            continue
                    prepared = [prepare(obj, r, parent_maps, owners, choices) for r in rows]
                    if retry is None:
                        result.staged += len(rows)
                        result.owner_unresolved += sum(p.owner_unresolved for p in prepared)
                    sent = self._load_batch(obj, prepared, known, pool, census=census)
                    used = self._client.stats["requests"] - before["requests"]
                    self._state.note_requests(obj.name, used, self._client.budget_remaining)  # published with the batch
                    self._commit(obj, sent, known)
                    for s in sent:
                        self._count(result, reported, s)
                unsettled = {k for k, s in reported.items() if s.outcome in UNSETTLED}
                if not unsettled or settle_pass == SETTLE_PASSES:
                    break
                pause = SETTLE_PAUSE_SECONDS * (settle_pass + 1)
                log.warning(
                    "%s: %d records unsettled by faults; pass %d of %d over them in %.0f s",
                    obj.name,
                    len(unsettled),
                    settle_pass + 1,
                    SETTLE_PASSES,
                    pause,
                )
                self._sleep(pause)
                # Lost answers first: a record that did arrive is mapped, not sent again. Unless they can be
                # looked up, nothing is sent again (it could be there twice): the fault persists.
                try:
                    settled = self._reconcile(obj, known)
                except FreshsalesError as exc:
                    log.warning("%s: open intents could not be looked up (%s)", obj.name, type(exc).__name__)
                    break
                for s in settled:
                    self._count(result, reported, s)
                retry = {k for k, s in reported.items() if s.outcome in UNSETTLED or s.outcome == LoadOutcome.NOT_FOUND}
        after = self._client.stats
        result.requests = after["requests"] - before["requests"]
        result.retries = after["retries"] - before["retries"]
        result.settle_passes = settle_pass
        # The API's reasons may quote field values: the file is private, never a log line.
        rejected = [_rejected_line(s) for s in reported.values() if s.outcome in REPORTED]
        rejected_path = rejected_dir / f"{obj.name}.jsonl"
        write_private_jsonl(rejected_path, rejected)
        result.rejected_path = rejected_path if rejected else None
        log.info("%s: %s", obj.name, result.summary())
        unfinished = [s for s in reported.values() if s.outcome in UNSETTLED]
        if unfinished:
            raise LoadFailedError(
                f"{len(unfinished)} {obj.name} records still failed after {settle_pass} more passes in this run "
                f"({_fault_kinds(unfinished)}): the fault persists at Freshsales; what succeeded is committed, "
                "re-materialize once it clears to resume (the audit log lists each)"
            )
        return result

    @staticmethod
    def _count(result: LoadResult, reported: dict[str, _Sent], sent: _Sent) -> None:
        """Counts the record's outcome; a later pass's outcome replaces the one it settles."""
        key = sent.prepared.source_key
        earlier = reported.pop(key, None)
        if earlier is not None:
            result.outcomes[earlier.outcome] -= 1
        result.outcomes[sent.outcome] += 1
        if sent.outcome in REPORTED or sent.outcome == LoadOutcome.NOT_FOUND:
            reported[key] = sent

    # ---- owners ------------------------------------------------------------------------------

    def _choices(self, obj: FreshsalesObject, staged_path: Path) -> dict[str, ChoiceIndex]:
        """Field → lower-cased name → the fields it sets, for the account's reference rows the staged `_choice_*`
        columns name. A name the account lacks stops the object before any request: the plan's value map and
        the account's choices disagree (refused here, never at a record's load)."""
        resolved: dict[str, ChoiceIndex] = {}
        for column in pq.read_schema(staged_path).names:
            if not column.startswith(CHOICE_PREFIX):
                continue
            field_name = column.removeprefix(CHOICE_PREFIX)
            resolved[field_name] = self._account_choices.index(field_name)
            named = pq.read_table(staged_path, columns=[column]).column(0).to_pylist()
            missing = missing_names(resolved[field_name], (str(v) for v in named if v))
            if missing:
                raise ChoiceNotFoundError(
                    f"{obj.name}: {field_name}: the Freshsales account has no {CHOICE_SELECTORS[field_name]} named "
                    f"{', '.join(repr(m) for m in missing)}: add them in Freshsales or edit the plan's value_map"
                )
        return resolved

    def _owner_map(self, staged_path: Path) -> OwnerMap | None:
        """Fetched once per loader, and only for staged files that name owners."""
        if self._owners is None and names_owners(pq.read_schema(staged_path).names):
            try:
                self._owners = OwnerMap.from_client(self._client, self._fallback_owner_email)
            except PermissionDeniedError:
                # A non-admin key cannot list users: every owner counts as unresolved, loudly.
                log.warning("the API key cannot list users: record owners cannot be resolved")
                self._owners = OwnerMap.from_owners([], None)
        return self._owners

    # ---- reconciliation of what a previous run left open -------------------------------------

    def _reconcile(self, obj: FreshsalesObject, known: dict[str, IdMapRow]) -> list[_Sent]:
        pending = self._state.pending_intents(obj.name)
        if not pending:
            return []
        found = find_sent(self._client, obj, list(pending.values()), self._anchors_before(obj, pending.values()))
        sent: list[_Sent] = []
        for key, intent in pending.items():
            entry = reconciled(intent, found.get(key))
            prepared = Prepared(key, None, None, intent.payload_hash, parent_id=intent.parent_id)
            sent.append(_Sent(prepared, entry.op, entry.outcome, entry.freshsales_id, before_image=entry.before_image))
        log.info("%s: reconciled %d open intents, %d found", obj.name, len(pending), len(found))
        self._commit(obj, sent, known)
        return sent

    def _anchors_before(self, obj: FreshsalesObject, intents: Iterable[Intent]) -> list[int]:
        """Records of `obj` mapped before the oldest of these intents was committed: Freshsales created them
        before any of the intents' records was sent (for `find_sent`'s newest-first listing)."""
        if obj.entity not in _LISTS:
            return []
        times = [i.created_at for i in intents]
        if not times or any(t is None for t in times):
            return []
        return self._state.mapped_before(obj.name, min(t for t in times if t is not None), ANCHORS)

    def _unknown_keyed_records(self, obj: FreshsalesObject, known: dict[str, IdMapRow]) -> bool:
        """Does Freshsales hold records with a source key this state does not know (an earlier migration
        whose state is lost, a pre-existing import)? One count per object and run; only then are new
        records looked up by key before being sent, to be adopted rather than duplicated."""
        if obj.marker_field:
            return False  # markers cannot be searched; intents alone cover these
        rule = [{"attribute": obj.key_field, "operator": "contains", "value": KEY_NAMESPACE_SEPARATOR}]
        keyed = self._client.filtered_count(obj.entity, rule)
        ours = len({m.freshsales_id for m in known.values()})
        if keyed != ours:
            log.info(
                "%s: Freshsales holds %d keyed records, the state maps %d: new keys are looked up",
                obj.name,
                keyed,
                ours,
            )
        return keyed != ours

    def _adoptable(self, obj: FreshsalesObject, news: list[Prepared]) -> dict[str, tuple[int, dict[str, Any]]]:
        """New records whose key Freshsales already holds: their id and before-image."""
        found = self._client.find_by_keys(obj.entity, obj.key_field, [p.source_key for p in news])
        return {key: (int(r["id"]), self._client.get(obj.entity, int(r["id"]))) for key, r in found.items()}

    # ---- one batch ---------------------------------------------------------------------------

    def _load_batch(
        self,
        obj: FreshsalesObject,
        batch: list[Prepared],
        known: dict[str, IdMapRow],
        pool: ThreadPoolExecutor,
        *,
        census: dict[str, bool],
    ) -> list[_Sent]:
        sent: list[_Sent] = []
        updates: list[Prepared] = []
        news: list[Prepared] = []
        for p in batch:
            mapped = known.get(p.source_key)
            if p.payload is None:
                sent.append(_Sent(p, "hold", LoadOutcome.HELD_BACK, reason=p.held_back_reason))
            elif mapped is not None and mapped.payload_hash == p.payload_hash:
                sent.append(_Sent(p, "skip", LoadOutcome.UNCHANGED, mapped.freshsales_id))
            elif mapped is not None:
                updates.append(p)
            else:
                news.append(p)
        if news and obj.name not in census:
            census[obj.name] = self._unknown_keyed_records(obj, known)
        adopted = self._adoptable(obj, news) if news and census[obj.name] else {}
        adopt = [p for p in news if p.source_key in adopted]
        news = [p for p in news if p.source_key not in adopted]
        bulk: list[_BulkItem] = []
        before: dict[str, dict[str, Any]] = {key: image for key, (_, image) in adopted.items()}
        singles = news
        if obj.bulk:
            by_identifier, duplicates = _unique_identifiers(
                [p for p in news if p.identifier is not None and obj.entity in BULK_IDENTIFIERS]
            )
            sent += [_Sent(p, "create", LoadOutcome.REJECTED, reason=DUPLICATE_IDENTIFIER) for p in duplicates]
            dropped = {p.source_key for p in duplicates}
            chosen = {p.source_key for p in by_identifier}
            news = [p for p in news if p.source_key not in dropped]
            singles = [p for p in news if p.source_key not in chosen]
            if by_identifier:
                before.update(self._pre_existing(obj, by_identifier))
            bulk = [
                *(_BulkItem(p, {"id": known[p.source_key].freshsales_id}, False) for p in updates),
                *(_BulkItem(p, {"id": adopted[p.source_key][0]}, True, before[p.source_key]) for p in adopt),
                *(_BulkItem(p, p.identifier or {}, True, before.get(p.source_key)) for p in by_identifier),
            ]
        self._state.begin_intents(
            obj=obj.name,
            run_id=self._run_id,
            intents=[Intent(p.source_key, p.payload_hash, p.parent_id, before.get(p.source_key)) for p in news + adopt],
        )
        if obj.bulk:
            updates, adopt = [], []  # they travel in the bulk requests
        bulk_future = pool.submit(self._bulk, obj, bulk) if bulk else None
        sent.extend(pool.map(lambda p: self._update(obj, p, known[p.source_key]), updates))
        sent.extend(pool.map(lambda p: self._adopt(obj, p, *adopted[p.source_key]), adopt))
        sent.extend(self._create_all(obj, singles, pool) if singles else [])
        if bulk_future is not None:
            sent.extend(bulk_future.result())
        return sent

    def _pre_existing(self, obj: FreshsalesObject, news: list[Prepared]) -> dict[str, dict[str, Any]]:
        """Before-images of records a bulk upsert by email/name would silently take over: one search per
        100 records, plus one read per record that was there before the migration."""
        attribute, identifier = BULK_IDENTIFIERS[obj.entity]
        holders: dict[str, dict[str, Any]] = {}
        for start in range(0, len(news), MAX_BULK_ITEMS):
            values = [str(p.identifier[identifier]) for p in news[start : start + MAX_BULK_ITEMS] if p.identifier]
            rule = [{"attribute": attribute, "operator": "is_in", "value": values}]
            for record in self._client.filtered_search(obj.entity, rule):
                for value in _identifier_values(obj, record):
                    holders.setdefault(value.strip().casefold(), record)
        out: dict[str, dict[str, Any]] = {}
        for p in news:
            holder = holders.get(str((p.identifier or {})[identifier]).strip().casefold())
            # Records a crashed run sent were reconciled through their intents before this batch: a holder
            # found here is not ours, even if it carries the same source key.
            if holder is not None:
                out[p.source_key] = self._client.get(obj.entity, int(holder["id"]))
        if out:
            log.info("%s: %d records existed before the migration and will be adopted", obj.name, len(out))
        return out

    def _bulk(self, obj: FreshsalesObject, items: list[_BulkItem]) -> list[_Sent]:
        # One request at a time: a request refused as a whole is then isolated without resending others.
        return [
            sent
            for start in range(0, len(items), MAX_BULK_ITEMS)
            for sent in self._bulk_request(obj, items[start : start + MAX_BULK_ITEMS])
        ]

    def _bulk_request(self, obj: FreshsalesObject, items: list[_BulkItem]) -> list[_Sent]:
        body = [{"unique_identifier": i.identifier, "data": i.prepared.payload} for i in items]
        try:
            job = self._client.bulk_upsert(obj.entity, body)
        except JobTimeoutError:
            return [_Sent(i.prepared, _op(i), LoadOutcome.UNKNOWN, reason="bulk job did not finish") for i in items]
        except FreshsalesError as exc:
            if exc.status == 400 and len(items) > 1:
                # The whole request was refused: halve it until the offending item stands alone.
                middle = len(items) // 2
                return self._bulk_request(obj, items[:middle]) + self._bulk_request(obj, items[middle:])
            outcome = LoadOutcome.REJECTED if exc.status in REJECTION_STATUSES else LoadOutcome.FAILED
            return [_Sent(i.prepared, _op(i), outcome, None, exc.status, _reason(exc)) for i in items]
        results = _results_by_index(job, len(items))
        return [_job_outcome(item, result) for item, result in zip(items, results, strict=True)]

    def _update(self, obj: FreshsalesObject, p: Prepared, mapped: IdMapRow) -> _Sent:
        assert p.payload is not None
        try:
            self._client.update(obj.entity, mapped.freshsales_id, p.payload)
        except FreshsalesError as exc:
            outcome = LoadOutcome.REJECTED if exc.status in REJECTION_STATUSES else LoadOutcome.FAILED
            return _Sent(p, "update", outcome, mapped.freshsales_id, exc.status, _reason(exc))
        return _Sent(p, "update", LoadOutcome.UPDATED, mapped.freshsales_id, 200)

    def _adopt(self, obj: FreshsalesObject, p: Prepared, record_id: int, before: dict[str, Any]) -> _Sent:
        assert p.payload is not None
        try:
            self._client.update(obj.entity, record_id, p.payload)
        except FreshsalesError as exc:
            outcome = LoadOutcome.REJECTED if exc.status in REJECTION_STATUSES else LoadOutcome.FAILED
            return _Sent(p, "update", outcome, record_id, exc.status, _reason(exc))
        return _Sent(p, "update", LoadOutcome.ADOPTED, record_id, 200, before_image=before)

    def _create_all(self, obj: FreshsalesObject, singles: list[Prepared], pool: ThreadPoolExecutor) -> list[_Sent]:
        """One create per record (bounded concurrency). The creates whose answer was lost are looked up together
        once the others are answered (by key, one search per 100; by marker, the newest records down to this
        batch's first: a page or two, or a read per parent contact when fewer) rather than one lookup each, and
        only those not found are sent again. A lookup the retries do not outlast leaves them unknown: the next
        pass, or run, reconciles their intents before anything is sent again."""
        sent = list(pool.map(lambda p: self._create(obj, p), singles))
        lost = [s.prepared for s in sent if s.outcome == LoadOutcome.UNKNOWN]
        if not lost:
            return sent
        intents = [Intent(p.source_key, p.payload_hash, p.parent_id) for p in lost]
        try:
            found = find_sent(self._client, obj, intents, self._committed)
        except FreshsalesError as exc:
            log.warning("%s: %d lost answers could not be looked up (%s)", obj.name, len(lost), type(exc).__name__)
            return sent
        again = [p for p in lost if p.source_key not in found]
        resent = {s.prepared.source_key: s for s in pool.map(lambda p: self._create(obj, p, again=True), again)}
        out: list[_Sent] = []
        for s in sent:
            key = s.prepared.source_key
            if s.outcome != LoadOutcome.UNKNOWN:
                out.append(s)
            elif key in found:
                out.append(_Sent(s.prepared, "create", LoadOutcome.CREATED, int(found[key]["id"]), None))
            else:
                out.append(resent[key])
        return out

    def _create(self, obj: FreshsalesObject, p: Prepared, *, again: bool = False) -> _Sent:
        assert p.payload is not None
        try:
            record = self._client.create(obj.entity, p.payload)
        except OutcomeUnknownError:
            reason = "outcome unknown twice; the next run reconciles it" if again else "answer lost"
            return _Sent(p, "create", LoadOutcome.UNKNOWN, reason=reason)
        except FreshsalesError as exc:
            outcome = LoadOutcome.REJECTED if exc.status in REJECTION_STATUSES else LoadOutcome.FAILED
            return _Sent(p, "create", outcome, None, exc.status, _reason(exc))
        return _Sent(p, "create", LoadOutcome.CREATED, int(record["id"]), 201)

    def _commit(self, obj: FreshsalesObject, sent: list[_Sent], known: dict[str, IdMapRow]) -> None:
        mapped = [
            IdMapRow(s.prepared.source_key, s.freshsales_id, s.prepared.payload_hash)
            for s in sent
            if s.freshsales_id is not None and s.outcome in MAPPED
        ]
        audit = [
            AuditEntry(
                op=s.op,
                outcome=s.outcome,
                source_key=s.prepared.source_key,
                freshsales_id=s.freshsales_id,
                http_status=s.http_status,
                before_image=s.before_image,
            )
            for s in sent
        ]
        self._state.record_batch(
            obj=obj.name, run_id=self._run_id, partition=self._partition, mapped=mapped, audit=audit
        )
        known.update({m.source_key: m for m in mapped})
        if obj.entity in _LISTS:
            self._committed = (self._committed + [m.freshsales_id for m in mapped])[-ANCHORS:]


def find_sent(
    client: FreshsalesClient,
    obj: FreshsalesObject,
    intents: Sequence[Intent],
    anchors: Collection[int] = (),
) -> dict[str, dict[str, Any]]:
    """The records of these intents that reached Freshsales, by source key: searched for by key; for records
    keyed by a marker, matched by it among their parent contact's side-loaded records or, where the entity has
    a list endpoint and that is fewer requests (sales activities, which no contact side-loads, always), among
    the listed ones, newest first (`_newest_marked`). `anchors`: ids of records of the entity Freshsales
    created before any of these intents was sent; the newest-first listing stops at them."""
    if not obj.marker_field:
        return client.find_by_keys(obj.entity, obj.key_field, [i.source_key for i in intents])
    by_parent: dict[int, list[str]] = defaultdict(list)
    for intent in intents:
        if intent.parent_id is not None:
            by_parent[intent.parent_id].append(intent.source_key)
    lists = _LISTS.get(obj.entity)
    found: dict[str, dict[str, Any]] = {}
    # Newest first, each list costs a page or two down to an anchor (a past and an upcoming list for appointments):
    # chosen over the reads per parent contact when there are more parents than that.
    if lists is not None and (obj.entity in PLAIN_LISTS or (anchors and len(by_parent) > 2 * len(lists))):
        wanted = {marker(i.source_key): i.source_key for i in intents}
        # Where a read per parent contact is possible, the listing may cost no more pages than it would.
        pages = None if obj.entity in PLAIN_LISTS else len(by_parent)
        found, complete = _newest_marked(client, obj, lists, wanted, set(anchors), pages)
        if complete:
            return found
        by_parent = {parent: [k for k in keys if k not in found] for parent, keys in by_parent.items()}
    for parent_id, keys in by_parent.items():
        if not keys:
            continue
        try:
            contact = client.get("contacts", parent_id, include=obj.entity)
        except NotFoundError:
            continue
        mine = {marker(k): k for k in keys}
        for key, child in _marked(contact.get(obj.entity) or [], obj.marker_field, mine).items():
            found.setdefault(key, child)
    return found


# The list endpoints that together list every record of an entity: a filter each (None: no filter).
_LISTS: dict[str, tuple[str | None, ...]] = {
    **{entity: (None,) for entity in PLAIN_LISTS},
    **{entity: tuple(filters) for entity, filters in LIST_FILTERS.items()},
}


def _created(record: Mapping[str, Any]) -> datetime | None:
    try:
        value = datetime.fromisoformat(str(record["created_at"]))
    except (KeyError, ValueError):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _newest_marked(
    client: FreshsalesClient,
    obj: FreshsalesObject,
    lists: Sequence[str | None],
    wanted: Mapping[str, str],
    anchors: set[int],
    max_pages: int | None = None,
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Marked records among each list's records, read newest first, page by page, until every wanted marker is
    found or the list reaches back past the records sent: past the first anchor met (a record Freshsales
    created before any of them was sent), to the first record created strictly before it, less CLOCK_SKEW.
    That stop needs the newest-first order the client asked for: if a page breaks it (an API that ignores
    `sort`), the list is read to its end, as without anchors. (found, complete): not complete when `max_pages`
    ran out first, so the keys not found may still be there."""
    assert obj.marker_field is not None
    found: dict[str, dict[str, Any]] = {}
    pages = 0
    for filter_name in lists:
        missing = {m: k for m, k in wanted.items() if k not in found}
        previous: datetime | None = None
        ordered = True
        stop_before: datetime | None = None  # the created_at of the first anchor met, less CLOCK_SKEW
        done = not missing
        for rows in client.newest_first(obj.entity, filter_name) if missing else ():
            pages += 1
            page: list[dict[str, Any]] = []
            passed = False
            for record in rows:
                created = _created(record)
                if created is None or (previous is not None and created > previous):
                    ordered = False
                previous = created or previous
                if ordered and stop_before is not None and created is not None and created < stop_before:
                    passed = True
                    break
                if stop_before is None and created is not None and int(record["id"]) in anchors:
                    stop_before = created - CLOCK_SKEW
                page.append(record)
            for key, record in _marked(page, obj.marker_field, missing).items():
                if key not in found or int(record["id"]) < int(found[key]["id"]):
                    found[key] = record
            done = (passed and ordered) or all(k in found for k in missing.values())
            if done or (max_pages is not None and pages >= max_pages):
                break
        else:
            done = True  # the list's last page was read
        if not done:
            return found, False
    return found, True


def _marked(records: Sequence[dict[str, Any]], field: str, wanted: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Source key → the first record (lowest id) whose `field` ends with that key's marker line."""
    found: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: int(r["id"])):
        key = wanted.get(str(record.get(field) or "").rstrip().rpartition("\n")[2])
        if key is not None and key not in found:
            found[key] = record
    return found


def reconciled(intent: Intent, record: Mapping[str, Any] | None) -> AuditEntry:
    """What an open intent settles as once looked up: never arrived, arrived (ours), or adopted with the
    intent's before-image (a record that existed before the migration, taken over by a lost bulk upsert)."""
    if record is None:
        return AuditEntry("reconcile", LoadOutcome.NOT_FOUND, intent.source_key)
    if intent.before_image is not None:
        return AuditEntry(
            "reconcile", LoadOutcome.ADOPTED, intent.source_key, int(record["id"]), before_image=intent.before_image
        )
    return AuditEntry("reconcile", LoadOutcome.FOUND_EXISTING, intent.source_key, int(record["id"]))


def _rejected_line(sent: _Sent) -> dict[str, Any]:
    return {
        "source_key": sent.prepared.source_key,
        "source_row": sent.prepared.source_row,
        "http_status": sent.http_status,
        "outcome": sent.outcome,
        "reason": sent.reason,
    }


def _fault_kinds(unsettled: Sequence[_Sent]) -> str:
    """What the last attempts met, by HTTP status: the API's reasons may quote values, statuses never do."""
    kinds = Counter(f"HTTP {s.http_status}" if s.http_status else "no answer" for s in unsettled)
    return ", ".join(f"{n} with {kind}" for kind, n in kinds.most_common())


def _unique_identifiers(news: list[Prepared]) -> tuple[list[Prepared], list[Prepared]]:
    """(first record of each email/name, the others): a bulk upsert would merge them into one record."""
    seen: set[str] = set()
    first: list[Prepared] = []
    others: list[Prepared] = []
    for p in news:
        value = str(next(iter((p.identifier or {}).values()), "")).strip().casefold()
        (others if value in seen else first).append(p)
        seen.add(value)
    return first, others


def _op(item: _BulkItem) -> str:
    return "create" if item.is_new else "update"


def _results_by_index(job: JobStatus, count: int) -> list[dict[str, Any] | None]:
    out: list[dict[str, Any] | None] = [None] * count
    for result in job.results:
        index = result.get("index")
        if isinstance(index, int) and 0 <= index < count:
            out[index] = result
    return out


def _job_outcome(item: _BulkItem, result: dict[str, Any] | None) -> _Sent:
    p = item.prepared
    if result is None:
        return _Sent(p, _op(item), LoadOutcome.UNKNOWN, reason="bulk job reported no result for the record")
    status = result.get("status") if isinstance(result.get("status"), int) else None
    action = result.get("action")
    record_id = result.get("id")
    if action in ("created", "updated") and record_id is not None:
        if not item.is_new:
            return _Sent(p, "update", LoadOutcome.UPDATED, int(record_id), status)
        if action == "created":
            return _Sent(p, "create", LoadOutcome.CREATED, int(record_id), status)
        # A new record that bulk upsert matched by email/name: it was already there.
        return _Sent(p, "update", LoadOutcome.ADOPTED, int(record_id), status, before_image=item.before_image)
    errors = result.get("errors") or {}
    messages = errors.get("message") if isinstance(errors, dict) else None
    reason = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages or "failed")
    return _Sent(p, _op(item), LoadOutcome.REJECTED, None, status, reason)
