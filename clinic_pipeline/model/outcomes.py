"""What happened to one record in a load, a reconciliation or a rollback: the audit log's `outcome`."""

from __future__ import annotations

from enum import StrEnum


class LoadOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    ADOPTED = "adopted"  # existed before the migration (matched by email or name): its before-image is kept
    UNCHANGED = "unchanged"  # the id map's payload hash matches: nothing sent
    FOUND_EXISTING = "found_existing"  # an unknown outcome reconciled: the record is in Freshsales
    NOT_FOUND = "not_found"  # an unknown outcome reconciled: the record never arrived
    REJECTED = "rejected"  # the API refused the record itself; it is in the rejected file
    HELD_BACK = "held_back"  # its parent is not in Freshsales yet
    UNKNOWN = "unknown"  # the answer never came: the next run reconciles it
    FAILED = "failed"  # errors outlasted the retries
    DELETED = "deleted"
    CASCADED = "cascaded"  # removed with the record a rollback deleted (documents with their contact)
    RESTORED = "restored"


# Outcomes that put a record's id in the id map.
MAPPED = frozenset({LoadOutcome.CREATED, LoadOutcome.UPDATED, LoadOutcome.ADOPTED, LoadOutcome.FOUND_EXISTING})
# The record is in Freshsales after the load.
IN_FRESHSALES = MAPPED | {LoadOutcome.UNCHANGED}
# Reported per record in the rejected file: a person looks at each.
REPORTED = frozenset({LoadOutcome.REJECTED, LoadOutcome.HELD_BACK, LoadOutcome.UNKNOWN, LoadOutcome.FAILED})
# The record may or may not exist in Freshsales: its load intent stays until a run settles it.
UNSETTLED = frozenset({LoadOutcome.UNKNOWN, LoadOutcome.FAILED})
# Counted as a write the API accepted or refused (records per request).
WRITTEN = frozenset({LoadOutcome.CREATED, LoadOutcome.UPDATED, LoadOutcome.ADOPTED, LoadOutcome.REJECTED})
