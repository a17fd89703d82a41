"""One-command rollback: undo what migration runs did to Freshsales, driven by the audit log.

Objects go in reverse dependency order (children before their parents). Per record the runs touched:
- a record a run created is moved to the Recycle Bin (`bulk_destroy`, 100 ids a call, or one DELETE)
  and then forgotten, so not even the bin keeps it;
- a record that existed before the migration (the loader kept its before-image when it adopted it) is
  put back to that image, also after a later run updated it again by id; a link in that image to a
  record deleted outside the pipeline since (the parent a repair re-created) cannot be put back: the
  record is restored without it and counted as such;
- a create whose answer was lost and that no later run reconciled is looked up by its source key and,
  if it landed, deleted like the others;
- a record a load sent and never committed (it was killed: its write-ahead intent is still open) is
  looked up as the loader's next run would, recorded under the run that sent it and undone with it;
- a record the API cannot delete (a document) goes with its parent: Freshsales deletes a contact's
  documents with the contact. Documents are therefore done last, once their contacts are: one whose
  contact a finished delete removed (the file loader audits the contact with each file) is recorded as
  removed by cascade, from any run, so the id map cannot keep a row of a record that is gone; one whose
  contact stays (a contact that existed before the migration, or a run not rolled back) stays, in the
  id map too, and is counted for an admin.
The id map follows: the rows of deleted and cascaded records go; a restored record keeps its row (it
still exists) with a hash no payload has, so the next run sends it again. Every action is audited under
the rollback's run id (op delete / restore, outcome deleted / cascaded / restored / failed), so a
rollback that died half-way, re-run, only does what is left and ends in the same state: a record whose
last audit event is a finished rollback action is not touched again, and a 404 from a delete means an
earlier attempt already did it.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.freshsales.client import MAX_BULK_ITEMS, FreshsalesClient
from clinic_pipeline.freshsales.errors import FreshsalesError, NotFoundError
from clinic_pipeline.load.loader import find_sent, reconciled
from clinic_pipeline.load.payloads import LINK_ENTITIES, linked_ids
from clinic_pipeline.load.state import AuditEntry, IdMapRow, Intent, StateStore
from clinic_pipeline.model.objects import SOURCE_KEY_FIELD, STAGED_OBJECTS, FreshsalesObject
from clinic_pipeline.model.outcomes import LoadOutcome

log = logging.getLogger(__name__)

# Audit outcomes of a migration run that mean "the record is in Freshsales because of us" when no
# before-image was kept: adopted/found_existing rows without one are records an earlier run created
# but could not commit.
CREATED_OUTCOMES = ("created",)
ADOPTED_OUTCOMES = ("adopted", "found_existing")
ROLLBACK_OPS = ("delete", "restore")
# Entities whose records can be deleted many at a time (sandbox and Freshsales: views + bulk_destroy).
BULK_DESTROY_ENTITIES = frozenset({"contacts", "sales_accounts", "deals"})
# Freshsales removes a note for good on DELETE: there is no bin and no /forget for notes.
NO_RECYCLE_BIN = frozenset({"notes"})
# No delete operation exists in the API for uploaded documents: only their contact's deletion removes them.
UNDELETABLE = frozenset({"documents"})
# The id-map hash of a record put back to its before-image: no payload hashes to it, so the next run sends
# the record again instead of counting it unchanged.
RESTORED_HASH = "restored"
# Deletable objects in reverse load order (children before their parents), then the undeletable ones,
# which their parents' deletions remove.
ROLLBACK_ORDER = tuple(sorted(reversed(STAGED_OBJECTS), key=lambda o: o.entity in UNDELETABLE))
# Keys the server sets or derives: sending them back is refused or ignored, so a restore leaves them out.
SERVER_MANAGED = frozenset(
    {
        "id",
        "created_at",
        "updated_at",
        "is_deleted",
        "display_name",
        "creater_id",
        "updater_id",
        "avatar",
        "links",
        "recent_note",
        "last_seen",
        "lead_score",
        "last_contacted",
        "last_contacted_mode",
        "last_contacted_sales_activity_mode",
        "last_contacted_via_sales_activity",
        "last_assigned_at",
        "last_activity_date",
        "web_form_ids",
        "open_deals_amount",
        "won_deals_amount",
        "open_deals_count",
        "won_deals_count",
    }
)


class ObjectRollback(BaseModel):
    """Counts for one object; never values."""

    deleted: int = 0
    cascaded: int = 0  # removed by the deletion of their parent (documents with their contact)
    restored: int = 0
    # Of the restored: a link they had before the run points at a record deleted outside the pipeline since
    # (the parent a repair re-created); it cannot be put back and stays as the run left it.
    unlinked: int = 0
    already_done: int = 0  # finished by an earlier rollback run
    failed: int = 0
    # Left for an admin: documents whose contact stays, or whose contact their audit rows do not name
    # (loaded before the file loader recorded it); lost creates of objects whose key cannot be searched
    # for (description markers, files).
    unsupported: int = 0

    def summary(self, name: str) -> str:
        """One line of counts for the operator (the CLI prints it, the rollback job logs it)."""
        line = (
            f"{name}: {self.deleted} deleted, {self.restored} restored, {self.already_done} already done, "
            f"{self.cascaded} removed with their contact, {self.failed} failed, {self.unsupported} not supported"
        )
        if self.unlinked:
            line += (
                f"\n{name}: {self.unlinked} restored without their link to a record deleted outside the pipeline "
                "since (it cannot be linked again)"
            )
        return line


class RollbackResult(BaseModel):
    rollback_run_id: str
    run_ids: list[str] | None  # None: every migration run
    objects: dict[str, ObjectRollback] = Field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(o.failed for o in self.objects.values())

    @property
    def complete(self) -> bool:
        """Nothing failed: a re-run would find nothing left to do (documents on contacts that stay aside)."""
        return self.failed == 0


@dataclass(frozen=True)
class _Action:
    source_key: str | None
    freshsales_id: int
    before_image: dict[str, Any] | None  # None: we created it, delete it


@dataclass(frozen=True)
class _Done:
    action: _Action
    op: str
    outcome: str
    http_status: int | None
    unlinked: bool = False  # restored without a link whose record is gone (see `_Rollback._restore`)


# Audit conditions (on `op`, `outcome`) of a finished rollback action: the record is gone, or back as it was.
_GONE = f"(op = 'delete' AND outcome IN ('deleted', '{LoadOutcome.CASCADED}'))"
_FINISHED = f"({_GONE} OR (op = 'restore' AND outcome = 'restored'))"

# The SQL below runs on either state database (DuckDB or PostgreSQL: see `state_backends`), so it keeps to
# what both accept: `x = ANY(list)`, DISTINCT ON, subqueries, no DuckDB-only aggregates or QUALIFY.

# Migration-run rows that can start a rollback action for a record: a creation, an adoption, any row
# carrying a before-image, or an update by id of a record a rollback had restored (its id-map row stays).
_TOUCHED = """
    a.object = $object
    AND a.freshsales_id IS NOT NULL
    AND NOT a.op = ANY($rollback_ops::VARCHAR[])
    AND ($all_runs OR a.run_id = ANY($run_ids::VARCHAR[]))
    AND (a.outcome = ANY($created::VARCHAR[]) OR a.outcome = ANY($adopted::VARCHAR[])
         OR a.before_image IS NOT NULL
         OR (a.outcome = 'updated' AND EXISTS (
             SELECT 1 FROM audit_log r
             WHERE r.object = a.object AND r.freshsales_id = a.freshsales_id AND r.seq < a.seq
               AND r.op = 'restore' AND r.outcome = 'restored'
         )))
"""

_PLAN_SQL = f"""
WITH touched AS (
    SELECT a.seq, a.source_key, a.freshsales_id,
           -- an update after a restore carries no image: the one from before the migration applies again
           coalesce(a.before_image, (
               SELECT b.before_image FROM audit_log b
               WHERE b.object = a.object AND b.freshsales_id = a.freshsales_id AND b.before_image IS NOT NULL
               ORDER BY b.seq LIMIT 1
           )) AS before_image,
           a.outcome = ANY($created::VARCHAR[])
           OR (a.before_image IS NULL AND a.outcome = ANY($adopted::VARCHAR[]))
           -- an adoption after a create whose answer was lost: our own record, whatever its image says
           OR EXISTS (
               SELECT 1 FROM audit_log u
               WHERE u.object = a.object AND u.source_key = a.source_key AND u.op = 'create'
                 AND u.outcome = 'unknown' AND u.seq < a.seq
           ) AS ours
    FROM audit_log a
    WHERE {_TOUCHED}
),
done AS (
    SELECT freshsales_id, max(seq) AS done_seq
    FROM audit_log
    WHERE object = $object AND {_FINISHED}
    GROUP BY freshsales_id
)
-- the earliest event since the last finished rollback decides: it holds the state before we touched it
SELECT DISTINCT ON (t.freshsales_id) t.source_key, t.freshsales_id, CASE WHEN t.ours THEN NULL ELSE t.before_image END
FROM touched t LEFT JOIN done d USING (freshsales_id)
WHERE t.seq > coalesce(d.done_seq, -1)
ORDER BY t.freshsales_id, t.seq
"""

_TOUCHED_COUNT_SQL = f"SELECT count(DISTINCT a.freshsales_id) FROM audit_log a WHERE {_TOUCHED}"

# Creates whose answer was lost and that no later row gave an id (a reconciliation: then the plan
# above has it; or a finished delete): the record may exist without the state knowing its id. A delete
# of one that failed earlier in a rollback left its id behind (`known_id`).
_UNRECONCILED_SQL = """
SELECT a.source_key, max(f.freshsales_id) AS known_id
FROM audit_log a
LEFT JOIN audit_log f
    ON f.object = a.object AND f.source_key = a.source_key AND f.seq > a.seq AND f.op = 'delete'
   AND f.outcome = 'failed'
WHERE a.object = $object AND a.op = 'create' AND a.outcome = 'unknown' AND a.source_key IS NOT NULL
  AND ($all_runs OR a.run_id = ANY($run_ids::VARCHAR[]))
  AND NOT EXISTS (
      SELECT 1 FROM audit_log b
      WHERE b.object = a.object AND b.source_key = a.source_key AND b.freshsales_id IS NOT NULL AND b.seq > a.seq
        AND NOT (b.op = 'delete' AND b.outcome = 'failed')
  )
GROUP BY a.source_key
ORDER BY a.source_key
"""
# Where the source key can be searched for (`filtered_search` is_in); description markers cannot.
SEARCHABLE_KEY_FIELDS = frozenset({"external_id", SOURCE_KEY_FIELD})

# The id map follows a finished rollback action newer than a row's last load: a gone record loses its
# row; a restored one keeps it (it exists), marked so that the next run sends it again.
_FORGET_MAPPED_SQL = f"""
DELETE FROM id_map m
WHERE m.object = $object AND EXISTS (
    SELECT 1 FROM audit_log
    WHERE object = m.object AND freshsales_id = m.freshsales_id AND ts >= m.loaded_at AND {_GONE}
)
"""
_UNLOAD_RESTORED_SQL = f"""
UPDATE id_map m SET payload_hash = '{RESTORED_HASH}'
WHERE m.object = $object AND m.payload_hash <> '{RESTORED_HASH}' AND EXISTS (
    SELECT 1 FROM audit_log
    WHERE object = m.object AND freshsales_id = m.freshsales_id AND ts >= m.loaded_at
      AND op = 'restore' AND outcome = 'restored'
)
"""
# Records of an object whose parent (the contact each row names) a finished rollback delete removed.
_PARENT_GONE_SQL = """
WITH parent AS (
    -- each record's latest parent
    SELECT DISTINCT ON (freshsales_id) freshsales_id, parent_id
    FROM audit_log
    WHERE object = $object AND freshsales_id IS NOT NULL AND parent_id IS NOT NULL
    ORDER BY freshsales_id, seq DESC
)
SELECT p.freshsales_id
FROM parent p
WHERE EXISTS (
    SELECT 1 FROM audit_log d
    WHERE d.object = ANY($parents::VARCHAR[]) AND d.freshsales_id = p.parent_id
      AND d.op = 'delete' AND d.outcome = 'deleted'
)
"""


def _params(obj: FreshsalesObject, run_ids: Sequence[str] | None) -> dict[str, Any]:
    return {
        "object": obj.name,
        "created": list(CREATED_OUTCOMES),
        "adopted": list(ADOPTED_OUTCOMES),
        "rollback_ops": list(ROLLBACK_OPS),
        "all_runs": run_ids is None,
        "run_ids": list(run_ids or []),
    }


def _plan(state: StateStore, obj: FreshsalesObject, run_ids: Sequence[str] | None) -> tuple[list[_Action], int]:
    """(actions left to do, records a previous rollback already finished) for one object."""
    params = _params(obj, run_ids)
    rows = state.query(_PLAN_SQL, params)
    actions = [_Action(r[0], int(r[1]), json.loads(r[2]) if r[2] is not None else None) for r in rows]
    touched = state.query(_TOUCHED_COUNT_SQL, params)[0][0]
    return actions, int(touched) - len(actions)


def restorable(before: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The PUT body that puts `current` back to `before`: settable fields only; fields the migration
    filled that were absent before are cleared; nested objects (links, side-loads) are left out."""
    body: dict[str, Any] = {}
    for key in sorted(before.keys() | current.keys()):
        if key in SERVER_MANAGED or key == "custom_field" or key.startswith("_"):
            continue
        value = before.get(key)
        if isinstance(value, dict) or isinstance(current.get(key), dict):
            continue
        body[key] = value
    custom_before = before.get("custom_field") or {}
    custom_now = current.get("custom_field") or {}
    if custom_before or custom_now:
        body["custom_field"] = {k: custom_before.get(k) for k in sorted(custom_before.keys() | custom_now.keys())}
    return body


def _chunks(items: Sequence[_Action], size: int) -> Iterator[Sequence[_Action]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Rollback:
    def __init__(self, client: FreshsalesClient, state: StateStore, run_id: str, pool: ThreadPoolExecutor) -> None:
        self._client = client
        self._state = state
        self._run_id = run_id
        self._pool = pool

    def object(self, obj: FreshsalesObject, run_ids: Sequence[str] | None) -> ObjectRollback:
        # First: a rollback that died between an audit commit and the id-map update left rows behind.
        self._follow(obj)
        counts = ObjectRollback()
        self._settle_intents(obj, run_ids, counts)
        actions, counts.already_done = _plan(self._state, obj, run_ids)
        deletes = [a for a in actions if a.before_image is None]
        deletes += self._unreconciled(obj, run_ids, {a.freshsales_id for a in actions}, counts)
        restores = [a for a in actions if a.before_image is not None]
        if obj.entity in UNDELETABLE:
            self._cascade(obj, deletes, counts)
            deletes = []
        # Deletes first: a restored email or name may be held by a record the run created.
        for chunk in _chunks(deletes, MAX_BULK_ITEMS):
            self._commit(obj, self._delete_chunk(obj, chunk), counts)
        for chunk in _chunks(restores, MAX_BULK_ITEMS):
            self._commit(obj, list(self._pool.map(lambda a: self._restore(obj, a), chunk)), counts)
        return counts

    def _settle_intents(self, obj: FreshsalesObject, run_ids: Sequence[str] | None, counts: ObjectRollback) -> None:
        """Records a load sent and never committed (it was killed): their intents are open and no audit row
        has their ids. Looked up as the loader's next run would, and recorded under the run that sent them,
        the plan then undoes them with the rest of that run."""
        pending = [i for i in self._state.pending_intents(obj.name).values() if run_ids is None or i.run_id in run_ids]
        if not pending:
            return
        try:
            found = find_sent(self._client, obj, pending)
        except FreshsalesError as exc:
            log.warning("%s: could not look up %d open intents (%s)", obj.name, len(pending), exc.status)
            counts.failed += len(pending)
            return
        by_run: dict[str, list[Intent]] = defaultdict(list)
        for intent in pending:
            by_run[intent.run_id or self._run_id].append(intent)
        for run_id, intents in sorted(by_run.items()):
            audit = [reconciled(i, found.get(i.source_key)) for i in intents]
            # Mapped as the loader maps them: should their delete fail, the next load or rollback knows them.
            mapped = [
                IdMapRow(i.source_key, a.freshsales_id, i.payload_hash)
                for i, a in zip(intents, audit, strict=True)
                if a.freshsales_id is not None
            ]
            self._state.record_batch(obj=obj.name, run_id=run_id, partition=None, mapped=mapped, audit=audit)
        log.info("rollback %s: %d open intents looked up, %d found", obj.name, len(pending), len(found))

    def _cascade(self, obj: FreshsalesObject, deletes: Sequence[_Action], counts: ObjectRollback) -> None:
        """Records the API cannot delete: audited as removed once a finished delete removed their parent,
        whichever run loaded them (the id map must not keep them); the planned others are left for an admin.
        Known from the audit, not read back: the only read is the parent's list, which is gone with it."""
        candidates = {
            r.freshsales_id: _Action(r.source_key, r.freshsales_id, None) for r in self._state.id_map(obj.name).values()
        }
        candidates.update({a.freshsales_id: a for a in deletes})
        params = {"object": obj.name, "parents": list(obj.parents)}
        gone = {int(r[0]) for r in self._state.query(_PARENT_GONE_SQL, params)}
        counts.unsupported += sum(1 for a in deletes if a.freshsales_id not in gone)
        cascaded = [candidates[i] for i in sorted(gone & candidates.keys())]
        for chunk in _chunks(cascaded, MAX_BULK_ITEMS):
            self._commit(obj, [_Done(a, "delete", LoadOutcome.CASCADED, None) for a in chunk], counts)

    def _follow(self, obj: FreshsalesObject) -> None:
        """The id map follows the finished rollback actions (see the SQL)."""
        for sql in (_FORGET_MAPPED_SQL, _UNLOAD_RESTORED_SQL):
            self._state.execute(sql, {"object": obj.name})

    def _unreconciled(
        self, obj: FreshsalesObject, run_ids: Sequence[str] | None, planned: set[int], counts: ObjectRollback
    ) -> list[_Action]:
        """Records created by a request whose answer was lost, found by their source key. The loader
        searches before it creates, so a record holding one of these keys is one of ours."""
        params = {k: v for k, v in _params(obj, run_ids).items() if k in ("object", "all_runs", "run_ids")}
        rows = self._state.query(_UNRECONCILED_SQL, params)
        actions = [_Action(key, int(known), None) for key, known in rows if known is not None]
        keys = [key for key, known in rows if known is None]
        if keys and obj.key_field in SEARCHABLE_KEY_FIELDS:
            try:
                found = self._client.find_by_keys(obj.entity, obj.key_field, keys)
            except FreshsalesError as exc:
                log.warning("%s: could not look up %d lost creates (%s)", obj.name, len(keys), exc.status)
                counts.failed += len(keys)
                found = {}
            actions += [_Action(key, int(record["id"]), None) for key, record in sorted(found.items())]
        elif keys:
            counts.unsupported += len(keys)  # no searchable key (description markers): an admin checks these
        return [a for a in actions if a.freshsales_id not in planned]

    def _commit(self, obj: FreshsalesObject, done: list[_Done], counts: ObjectRollback) -> None:
        audit = [AuditEntry(d.op, d.outcome, d.action.source_key, d.action.freshsales_id, d.http_status) for d in done]
        self._state.record_batch(obj=obj.name, run_id=self._run_id, partition=None, mapped=[], audit=audit)
        self._follow(obj)
        for d in done:
            if d.outcome == LoadOutcome.FAILED:
                counts.failed += 1
            elif d.outcome == LoadOutcome.CASCADED:
                counts.cascaded += 1
            elif d.op == "delete":
                counts.deleted += 1
            else:
                counts.restored += 1
                counts.unlinked += d.unlinked

    def _delete_chunk(self, obj: FreshsalesObject, chunk: Sequence[_Action]) -> list[_Done]:
        in_bin = False
        if obj.entity in BULK_DESTROY_ENTITIES or obj.module is not None:
            try:
                self._client.bulk_destroy(obj.entity, [a.freshsales_id for a in chunk])
                in_bin = True
            except FreshsalesError as exc:
                # All-or-nothing: one id already in the bin (a resumed rollback) or a lost answer
                # refuses the whole call, so each record is then deleted on its own.
                log.info(
                    "%s: bulk_destroy of %d ids refused (%s); deleting one by one", obj.name, len(chunk), exc.status
                )
        return list(self._pool.map(lambda a: self._delete_one(obj, a, in_bin), chunk))

    def _delete_one(self, obj: FreshsalesObject, action: _Action, in_bin: bool) -> _Done:
        steps: list[Callable[[str, int], None]] = [] if in_bin else [self._client.delete]
        if obj.entity not in NO_RECYCLE_BIN:
            steps.append(self._client.forget)
        for step in steps:
            try:
                step(obj.entity, action.freshsales_id)
            except NotFoundError:
                continue  # gone already: an earlier attempt did this step
            except FreshsalesError as exc:
                return _Done(action, "delete", LoadOutcome.FAILED, exc.status)
        return _Done(action, "delete", LoadOutcome.DELETED, 200)

    def _restore(self, obj: FreshsalesObject, action: _Action) -> _Done:
        assert action.before_image is not None
        try:
            current = self._client.get(obj.entity, action.freshsales_id)
            body = restorable(action.before_image, current)
            try:
                self._client.update(obj.entity, action.freshsales_id, body)
                return _Done(action, "restore", LoadOutcome.RESTORED, 200)
            except FreshsalesError as exc:
                # A run that re-linked this record to a re-created parent (a repair after the parent was deleted
                # by hand) cannot link it back: the old parent is gone. Everything else is put back.
                unlinked = self._without_gone_links(body, current)
                if unlinked is None or exc.status not in (400, 404):
                    raise
            self._client.update(obj.entity, action.freshsales_id, unlinked)
        except FreshsalesError as exc:
            return _Done(action, "restore", LoadOutcome.FAILED, exc.status)
        return _Done(action, "restore", LoadOutcome.RESTORED, 200, unlinked=True)

    def _without_gone_links(self, body: dict[str, Any], current: dict[str, Any]) -> dict[str, Any] | None:
        """`body` without the links it would restore to records no longer in Freshsales (those links stay
        as they are), or None when every link it changes points at a record that exists."""
        now = linked_ids(current)
        gone = {
            name
            for name, ids in linked_ids(body).items()
            if ids != now.get(name) and any(self._gone(LINK_ENTITIES[name], i) for i in ids)
        }
        if not gone:
            return None
        custom = {k: v for k, v in (body.get("custom_field") or {}).items() if k not in gone}
        kept = {k: v for k, v in body.items() if k not in gone and k != "custom_field"}
        return kept | ({"custom_field": custom} if custom else {})

    def _gone(self, entity: str, freshsales_id: int) -> bool:
        try:
            return bool(self._client.get(entity, freshsales_id).get("is_deleted"))
        except NotFoundError:
            return True


def rollback(
    client: FreshsalesClient,
    state: StateStore,
    *,
    run_ids: Sequence[str] | None,
    rollback_run_id: str,
    max_concurrency: int = 4,
) -> RollbackResult:
    """Undo the given migration runs (None: all of them) in Freshsales and in the id map.

    Failures are counted and audited, not raised: re-run with a new or the same rollback run id to
    finish (`RollbackResult.complete` says whether anything is left)."""
    if run_ids is not None and rollback_run_id in run_ids:
        raise OperatorError("a rollback run cannot roll itself back")
    result = RollbackResult(rollback_run_id=rollback_run_id, run_ids=list(run_ids) if run_ids is not None else None)
    with ThreadPoolExecutor(max_workers=max_concurrency) as pool:
        worker = _Rollback(client, state, rollback_run_id, pool)
        for obj in ROLLBACK_ORDER:
            counts = worker.object(obj, run_ids)
            if counts != ObjectRollback():
                result.objects[obj.name] = counts
                log.info(
                    "rollback %s: %d deleted, %d removed with their parent, %d restored, %d already done, %d failed,"
                    " %d unsupported",
                    obj.name,
                    counts.deleted,
                    counts.cascaded,
                    counts.restored,
                    counts.already_done,
                    counts.failed,
                    counts.unsupported,
                )
    return result
