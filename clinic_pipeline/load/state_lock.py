"""One process at a time on the state store, enforced by us before DuckDB opens the file.

DuckDB lets a single process open a database file read-write, and a read-only open elsewhere
conflicts with it too; the loser gets an `IO Error` at once. Dagster's multiprocess executor, two CLI
runs or a `status` during a load would die on that. Instead, each process takes an exclusive
`flock` on a sidecar file `<db>.lock` (mode 0600) and keeps it while any of its threads has the store
open; others wait, report the wait once, and give up with `StateBusyError` after `wait_seconds`.

The kernel drops a flock when its holder dies, however it dies: a lock file left by a killed run
never blocks. The file holds only the holder's pid, program name and the time it took the store,
so a waiter can say whom it waits for; no record values, no settings.

Readers take the same exclusive lock as writers: DuckDB refuses to mix read-only and read-write
connections to one file within a process, so one mode per process keeps re-entrancy simple, and a
reader's hold is brief.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from clinic_pipeline.errors import OperatorError

log = logging.getLogger(__name__)

# A load holds the store for its whole run; a Dagster step queued behind it should simply wait for it.
DEFAULT_WAIT_SECONDS = 3600.0
_FIRST_BACKOFF_SECONDS = 0.05
_MAX_BACKOFF_SECONDS = 1.0
_DUCKDB_HOLDER_PID = re.compile(r"\(PID (\d+)\)")
_ADVICE = "wait for that run to finish, or stop it"


class StateBusyError(OperatorError):
    """Another process has the state store open and did not let go in time."""


@dataclass(frozen=True)
class _Holder:
    pid: int | None
    command: str
    since: str

    def describe(self) -> str:
        if self.pid is None:
            return "another process"
        return f"process {self.pid} ({self.command}, since {self.since})"


@dataclass
class _Hold:
    """This process's share of one store: how many opens are live, and the lock file they ride on."""

    changed: threading.Condition = field(default_factory=threading.Condition)
    count: int = 0
    fd: int | None = None
    # One thread at a time waits for the flock; the others wait for it, not for the file.
    taking: bool = False


_registry_guard = threading.Lock()
# Entries are never removed: a thread may be waiting on a hold, and a second hold for the
# same path would flock a second descriptor and wait on this very process.
_holds: dict[Path, _Hold] = {}
# DuckDB's catalog writes from concurrent `CREATE ... IF NOT EXISTS` conflict, and the umask is per process.
_opening = threading.Lock()


def _lock_path_for(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


def opening_guard() -> threading.Lock:
    """Held by one thread at a time while it connects to a store and creates its schema."""
    return _opening


def busy_from_duckdb(db_path: Path, duckdb_message: str) -> StateBusyError:
    """DuckDB's own lock conflict (a process that skipped our lock) as the same one line."""
    found = _DUCKDB_HOLDER_PID.search(duckdb_message)
    holder = f"process {found.group(1)}" if found else "another process"
    return StateBusyError(f"{db_path}: the migration state is in use by {holder}; {_ADVICE}")


@contextmanager
def holding_state(
    db_path: Path, *, wait_seconds: float = DEFAULT_WAIT_SECONDS, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the store for this process; re-entrant across nested opens and threads.

    `on_wait` gets one line when another process holds the store and this one starts waiting;
    without it the line goes to the log as a warning.
    """
    deadline = time.monotonic() + max(wait_seconds, 0.0)
    resolved = db_path.resolve()
    hold = _hold_for(resolved)
    turn = _join_or_take_turn(hold, deadline)
    if turn == "take":
        try:
            fd = _take_flock(db_path, _lock_path_for(resolved), deadline, wait_seconds, on_wait)
        except BaseException:
            with hold.changed:
                hold.taking = False
                hold.changed.notify_all()
            raise
        with hold.changed:
            hold.fd = fd
            hold.count += 1
            hold.taking = False
            hold.changed.notify_all()
    elif turn == "gave up":
        # Another thread here is waiting for the process that holds the file, and our wait ran out first.
        raise _busy(db_path, _read_holder(_lock_path_for(resolved)), wait_seconds)
    try:
        yield
    finally:
        with hold.changed:
            hold.count -= 1
            # A forked child leaving an open it inherited finds the descriptor already given back.
            if hold.count == 0 and hold.fd is not None:
                os.close(hold.fd)  # closing the only descriptor drops the flock
                hold.fd = None


def _join_or_take_turn(hold: _Hold, deadline: float) -> Literal["joined", "take", "gave up"]:
    """Join this process's live hold (counted), or become the one thread that takes the flock."""
    with hold.changed:
        while True:
            if hold.count:
                hold.count += 1
                return "joined"
            if not hold.taking:
                hold.taking = True
                return "take"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "gave up"
            hold.changed.wait(min(remaining, threading.TIMEOUT_MAX))


def _hold_for(key: Path) -> _Hold:
    with _registry_guard:
        return _holds.setdefault(key, _Hold())


def _take_flock(
    db_path: Path, lock_path: Path, deadline: float, wait_seconds: float, on_wait: Callable[[str], None] | None
) -> int:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        backoff = _FIRST_BACKOFF_SECONDS
        reported = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _busy(db_path, _holder_from(os.pread(fd, 4096, 0)), wait_seconds)
            if not reported:
                holder = _holder_from(os.pread(fd, 4096, 0))
                line = f"{db_path}: in use by {holder.describe()}; waiting up to {wait_seconds:g} s for it to finish"
                (on_wait or log.warning)(line)
                reported = True
            time.sleep(min(backoff, remaining))
            backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
        since = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid={os.getpid()}\ncommand={_command_name()}\nsince={since}\n".encode(), 0)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _busy(db_path: Path, holder: _Holder, wait_seconds: float) -> StateBusyError:
    return StateBusyError(
        f"{db_path}: the migration state is still in use by {holder.describe()} after waiting {wait_seconds:g} s;"
        f" {_ADVICE}"
    )


def _read_holder(lock_path: Path) -> _Holder:
    try:
        return _holder_from(lock_path.read_bytes()[:4096])
    except OSError:
        return _holder_from(b"")


def _holder_from(raw: bytes) -> _Holder:
    """Parse what a holder wrote; a holder that has not written yet is just "another process"."""
    fields: dict[str, str] = {}
    for line in raw.decode(errors="replace").splitlines():
        key, _, value = line.partition("=")
        fields[key] = value
    pid = fields.get("pid", "")
    return _Holder(
        pid=int(pid) if pid.isdigit() else None,
        command=_printable(fields.get("command", "")) or "unknown program",
        since=_printable(fields.get("since", "")) or "unknown time",
    )


def _command_name() -> str:
    """The program's name only: its arguments could carry a secret."""
    argv0 = sys.argv[0] if sys.argv else ""
    name = Path(sys.executable).name if argv0 in ("", "-c", "-m") else Path(argv0).name
    return _printable(name) or "python"


def _printable(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable() and not ch.isspace())[:64]


def _forget_parent_holds() -> None:
    """A forked child does not share its parent's hold: it must take the lock itself before opening."""
    global _registry_guard, _holds, _opening
    for hold in _holds.values():
        if hold.fd is not None:
            os.close(hold.fd)  # the parent's own descriptor keeps its flock
            hold.fd = None
        # Its owner may have been a thread that does not exist in the child.
        hold.changed = threading.Condition()
        hold.taking = False
    _registry_guard = threading.Lock()
    _holds = {}
    _opening = threading.Lock()


os.register_at_fork(after_in_child=_forget_parent_holds)
