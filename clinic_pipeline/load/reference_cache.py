"""The account's reference reads kept for one run, in the state store: a restarted run does not read them again.

What is kept: the bodies of `GET /selector/<name>` (owners, stages, statuses, activity types...), of
`GET /settings/<entity>/fields` and of `GET /settings/module_customizations`, by Freshsales base URL and path
(`FreshsalesClient.selector`, `field_definitions`, `module_customizations` ask the cache first). Within one
process every step then reads each of them once; a process killed mid-run (SIGKILL, OOM, a lost machine)
leaves them in the state store for its restart.

When they are stale, and read again:
- the process that used them ends, normally or with an error it could report: `forget_process_references`
  (the CLI calls it as each command ends) drops every kept read it used. So only a run that died keeps its
  reads for its restart, and a person who changes the account (a user added, a field created) and runs
  again is always read afresh;
- they are older than `CLINIC_REFERENCE_MAX_AGE_SECONDS` (default an hour), whoever reads them: a run that
  died and is restarted later, or runs started outside the CLI (Dagster's daemon), read them again;
- the tool writes the account's schema (creates a custom module or a module field): the kept
  `/settings/` reads are dropped before and after the write.

The cache never answers for records: only these reference reads, which a run reads at its start and
relies on throughout anyway. A state store another process holds (DuckDB) is not waited for: the read goes
to the API, as without a cache.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from clinic_pipeline.load.state import StateBusyError, open_state
from clinic_pipeline.load.state_location import StateLocation

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE_SECONDS = 3600.0

_lock = threading.Lock()
# This process's reads: (location, base URL, path) → (body, fetched at); and the (location, base URL) pairs it
# used, whose kept reads `forget_process_references` drops.
_memo: dict[tuple[str, str, str], tuple[Any, datetime]] = {}
_used: dict[tuple[str, str], StateLocation] = {}


class StateReferenceCache:
    """`FreshsalesClient`'s reference cache for one state store and one Freshsales account."""

    def __init__(self, location: StateLocation, base_url: str, *, max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS):
        self._location = location
        self._base_url = base_url.rstrip("/")
        self._max_age = timedelta(seconds=max_age_seconds)
        self._where = str(location)

    def _fresh(self, fetched_at: datetime) -> bool:
        return datetime.now(UTC) - fetched_at < self._max_age

    def get(self, path: str) -> Any | None:
        key = (self._where, self._base_url, path)
        with _lock:
            _used[(self._where, self._base_url)] = self._location
            memo = _memo.get(key)
        if memo is not None and self._fresh(memo[1]):
            return memo[0]
        if self._max_age <= timedelta(0):
            return None
        try:
            with open_state(self._location, wait_seconds=0) as state:
                kept = state.reference(self._base_url, path)
        except StateBusyError:
            return None  # another process holds the store: ask the API
        if kept is None or not self._fresh(kept[1]):
            return None
        with _lock:
            _memo[key] = kept
        return kept[0]

    def put(self, path: str, body: Any) -> None:
        now = datetime.now(UTC)
        with _lock:
            _used[(self._where, self._base_url)] = self._location
            _memo[(self._where, self._base_url, path)] = (body, now)
        if self._max_age <= timedelta(0):
            return
        try:
            with open_state(self._location, wait_seconds=0) as state:
                state.keep_reference(self._base_url, path, body, now)
        except StateBusyError:
            pass  # kept for this process only

    def drop(self, prefix: str) -> None:
        with _lock:
            for key in [k for k in _memo if k[:2] == (self._where, self._base_url) and k[2].startswith(prefix)]:
                del _memo[key]
        with open_state(self._location) as state:  # waits: a schema write must not leave stale definitions
            state.forget_references(self._base_url, prefix)


def forget_process_references() -> None:
    """Drops the reference reads this process used, here and in their state stores: it ends, so the next run
    reads them afresh. Not reached when the process is killed: its restart finds them."""
    with _lock:
        used = dict(_used)
        _used.clear()
        _memo.clear()
    for (_, base_url), location in used.items():
        try:
            with open_state(location, wait_seconds=0) as state:
                state.forget_references(base_url)
        except StateBusyError:
            log.warning("the state store is busy: reference reads kept there are left to expire")
        except Exception:  # a command's end must not fail on its cache: their age bounds them
            log.warning("reference reads could not be dropped from the state store", exc_info=True)
