"""The machinery of `test_kill_harness.py`: a clinic migrated up to its signed-off sample and kept as a
template, commands started and SIGKILLed, where a kill landed, and Freshsales' content without the ids
that differ between runs.

The template is the state folder plus the sandbox's own database: the sample's records are in
Freshsales when the full run starts, as they are for an operator, and restoring both costs a sandbox
restart instead of a new sample run. The sandbox keeps its port, so every command sees one environment.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from clinic_pipeline.demo import DEMO_FALLBACK_OWNER, create_custom_fields_as_admin
from clinic_pipeline.load.state import open_state
from clinic_pipeline.model.objects import MARKER_FIELDS, STAGED_OBJECTS
from clinic_pipeline.sandbox.launcher import free_port, running_sandbox
from clinic_pipeline.settings import Settings

API_KEY = "kill-harness-key"
CLI = (sys.executable, "-m", "clinic_pipeline")
MIGRATE = (*CLI, "migrate", "--full")
ROLLBACK = (*CLI, "rollback", "--all")
# Every load, the validation report and its check, each step in a process of its own (the default
# executor). `*` would add inventory, planning, staging and the sample: three minutes a run on two cores.
DAGSTER_LOADS = (
    sys.executable,
    "-m",
    "dagster",
    "asset",
    "materialize",
    "--select",
    "loaded_accounts*",
    "-m",
    "clinic_pipeline.definitions",
)
# Snapshot kind of each staged object: its entity's last path segment (`custom_module/cm_lab_result`).
KINDS = {o.name: o.entity.rpartition("/")[2] for o in STAGED_OBJECTS}
# What the loads create besides records (`freshsales_schema`: custom modules and their fields), by name: a
# killed run must not leave a second module or field behind. A rollback leaves them in place.
SCHEMA_KINDS = {
    "custom_fields": lambda field: f"{field['entity']}.{field['name']}",
    "module_customizations": lambda module: str(module["name"]),
}
MARKER = re.compile(r"\[source ([0-9a-f]{16})\]\s*$")
COMMAND_TIMEOUT_SECONDS = 600
GROUP_EXIT_SECONDS = 10.0
# A SIGKILLed process takes a moment to be torn down: only one still there after this outlived the kill.
KILL_GRACE_SECONDS = 2.0
# Every API answer this late while a run is measured or killed: the sandbox answers in microseconds, so
# a load's writes would come in bursts too short for a delay to land in; Freshsales takes far longer.
LATENCY_SECONDS = 0.03
POLL_SECONDS = 0.05
KILL_POLL_SECONDS = 0.005
# A restart that fails is run again, as an operator would; more than this and the run is broken.
MAX_ATTEMPTS = 3
IDENTICAL = "identical"

Snapshot = dict[str, list[dict[str, Any]]]
# Per kind: (source key or schema name, the record with every id of a migrated record replaced by its key).
Content = dict[str, Counter[tuple[str, str]]]


# ---- Freshsales' content, whatever the ids --------------------------------------------------------


def migrated(snapshot: Snapshot) -> Snapshot:
    """The kinds the migration writes. The sandbox keeps a forgotten contact's documents, unreachable
    through the API; Freshsales deletes them with the contact, so only those on a live contact count."""
    out = {kind: list(snapshot.get(kind, [])) for kind in KINDS.values()}
    contacts = {c["id"] for c in out["contacts"] if not c.get("is_deleted")}
    out["documents"] = [
        d for d in out["documents"] if d.get("targetable_type") == "Contact" and d.get("targetable_id") in contacts
    ]
    return out


def source_key(kind: str, record: Mapping[str, Any]) -> str:
    """What a record is, whatever its Freshsales id: its source key, marker or checksum."""
    if kind == "documents":
        return str(record["sha256"])
    if kind == "contacts":
        return str(record["external_id"])
    key = (record.get("custom_field") or {}).get("cf_source_key")
    if key is not None:
        return str(key)
    # The marker sits in whichever text field the object keys on (a task's description, an activity's notes).
    found = next(filter(None, (MARKER.search(record.get(field) or "") for field in sorted(MARKER_FIELDS))), None)
    if found is None:
        raise AssertionError(f"a {kind} record without a source key or marker: not one of the migration's")
    return found.group(1)


def _canonical(value: Any, keys: Mapping[int, str]) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v, keys) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_canonical(v, keys) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value in keys:
        return f"<{keys[value]}>"
    return value


def content(snapshot: Snapshot) -> Content:
    """Every migrated record, its own id dropped and its links (parent contact, account, attendees) named by
    the linked record's source key: two runs that put the same data in compare equal, and a duplicate, a
    missing record or a record linked to the wrong parent does not. Records in the recycle bin count too
    (`is_deleted` is part of the record): a rollback must not leave them behind. The schema the loads
    create is part of it, by name."""
    records = migrated(snapshot)
    keys = {int(r["id"]): source_key(kind, r) for kind, rows in records.items() for r in rows}

    def canonical(record: Mapping[str, Any]) -> str:
        return json.dumps(_canonical({k: v for k, v in record.items() if k != "id"}, keys), sort_keys=True)

    out = {kind: Counter((source_key(kind, r), canonical(r)) for r in rows) for kind, rows in records.items()}
    for kind, name in SCHEMA_KINDS.items():
        out[kind] = Counter((name(r), canonical(r)) for r in snapshot.get(kind, []))
    return out


def rolled_back(reference: Content) -> Content:
    """What `rollback --all` leaves of `reference`: the schema, no record."""
    return {kind: records if kind in SCHEMA_KINDS else Counter() for kind, records in reference.items()}


def difference(expected: Content, actual: Content, limit: int = 8) -> str:
    """Per kind, the source keys missing, extra (duplicates included) or changed; empty when identical."""
    lines = []
    for kind in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(kind, Counter()), actual.get(kind, Counter())
        if want == got:
            continue
        missing = Counter(key for key, _ in (want - got).elements())
        extra = Counter(key for key, _ in (got - want).elements())
        changed = sorted((missing & extra).keys())
        missing, extra = missing - extra, extra - missing
        parts = [
            f"{label} {len(keys)}: {', '.join(sorted(keys)[:limit])}"
            for label, keys in (("missing", list(missing.elements())), ("extra", list(extra.elements())))
            if keys
        ]
        if changed:
            parts.append(f"changed {len(changed)}: {', '.join(changed[:limit])}")
        lines.append(f"{kind} ({sum(want.values())} expected, {sum(got.values())} found): {'; '.join(parts)}")
    return "\n".join(lines)


def live_ids(snapshot: Snapshot) -> dict[str, set[int]]:
    """Object → ids of its records in Freshsales (not in the recycle bin)."""
    records = migrated(snapshot)
    return {name: {int(r["id"]) for r in records[kind] if not r.get("is_deleted")} for name, kind in KINDS.items()}


# ---- processes ----------------------------------------------------------------------------------------


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (zombies waiting for a reaper are dead enough)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat.rpartition(")")[2].split()[:3]
        if state != "Z" and int(pgrp) == pgid:
            members.append(int(entry.name))
    return members


def sweep_group(pgid: int, grace: float = 0.0) -> list[int]:
    """Wait up to `grace` seconds for a process group to be gone, then SIGKILL whatever is left of it and
    wait for that too; returns what was left after the grace."""
    deadline = time.monotonic() + grace
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    left = group_members(pgid)
    if left:
        with suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + GROUP_EXIT_SECONDS
    while group_members(pgid):
        if time.monotonic() > deadline:
            raise AssertionError(f"process group {pgid} still has {group_members(pgid)} after SIGKILL")
        time.sleep(POLL_SECONDS)
    return left


@dataclass(frozen=True)
class Finished:
    returncode: int
    seconds: float
    log: Path

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@dataclass(frozen=True)
class Interrupted:
    killed: bool  # False: it ended by itself before the kill was due
    returncode: int
    seconds: float  # from its start to the kill (or its end)
    writes: int  # API writes the sandbox answered it
    outlived: int  # processes of its group still there after the grace


class Clinic:
    """A generated clinic (`sample-data --patients 30 --seed 5`), its sandbox on a fixed port, and the
    template it goes back to."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.source = root / "export"
        self.data = root / "data"
        self.sandbox_dir = root / "sandbox"
        self.template = root / "template"
        self.logs = root / "logs"
        self.logs.mkdir(parents=True)
        self.port = free_port()
        self.root_url = f"http://127.0.0.1:{self.port}"
        self.settings = Settings(
            clinic_data_dir=self.data,
            clinic_source=str(self.source),
            freshsales_base_url=f"{self.root_url}/crm/sales",
            freshsales_api_key=API_KEY,
            clinic_fallback_owner_email=DEMO_FALLBACK_OWNER,
        )
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("CLINIC_", "FRESHSALES_", "DAGSTER_"))}
        self.env = inherited | {
            "CLINIC_DATA_DIR": str(self.data),
            "CLINIC_SOURCE": str(self.source),
            "FRESHSALES_BASE_URL": f"{self.root_url}/crm/sales",
            "FRESHSALES_API_KEY": API_KEY,
            "CLINIC_FALLBACK_OWNER_EMAIL": DEMO_FALLBACK_OWNER,
            # The sandbox has no budget; the client's default one would pace every run for minutes.
            "FRESHSALES_REQUESTS_PER_HOUR": "1000000",
            "FRESHSALES_REQUESTS_PER_MINUTE": "100000",
        }
        self._sandbox: ExitStack | None = None
        self._commands = 0

    # -- the sandbox and the template

    def start_sandbox(self) -> None:
        self.sandbox_dir.mkdir(exist_ok=True)
        stack = ExitStack()
        stack.enter_context(running_sandbox(self.sandbox_dir / "freshsales.sqlite", API_KEY, port=self.port))
        self._sandbox = stack

    def stop_sandbox(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

    def prepare(self) -> None:
        """Generate, inventory, plan, confirm, create the admin's fields, load and sign off the sample; keep
        the result as the template."""
        self.cli("sample-data", "--out", str(self.source), "--patients", "30", "--seed", "5")
        for args in (["inventory"], ["propose-mapping"], ["confirm-mapping", "--by", "Kill Harness"]):
            self.cli(*args)
        create_custom_fields_as_admin(self.settings, self.root_url, API_KEY, echo=lambda _: None)
        self.cli("migrate", "--sample", "100")
        self.cli("sign-off", "--by", "Kill Harness")
        self.stop_sandbox()
        # One file instead of a database and its write-ahead log: a restore cannot pair one with another's.
        with sqlite3.connect(self.sandbox_dir / "freshsales.sqlite") as con:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copytree(self.data, self.template / "data", symlinks=True)
        shutil.copytree(self.sandbox_dir, self.template / "sandbox", symlinks=True)
        self.start_sandbox()

    def restore_template(self) -> None:
        self.stop_sandbox()
        for live, saved in ((self.data, "data"), (self.sandbox_dir, "sandbox")):
            shutil.rmtree(live)
            # copy2 keeps the mtimes: a staged file must not look older than the plan.
            shutil.copytree(self.template / saved, live, symlinks=True)
        self.start_sandbox()

    # -- commands

    def _log(self, command: Sequence[str]) -> Path:
        self._commands += 1
        slug = re.sub(r"[^a-z0-9]+", "-", " ".join(command[3:5]).lower()).strip("-")
        return self.logs / f"{self._commands:03d}-{slug}.log"

    def start(
        self, command: Sequence[str], env: Mapping[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """Started in a session of its own: a kill of its group reaches every process it started."""
        log = self._log(command)
        with log.open("wb") as out:
            process = subprocess.Popen(
                list(command),
                env=dict(env or self.env),
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return process, log

    def run(self, command: Sequence[str], env: Mapping[str, str] | None = None) -> Finished:
        began = time.monotonic()
        process, log = self.start(command, env)
        try:
            returncode = process.wait(timeout=COMMAND_TIMEOUT_SECONDS)
        finally:
            process.kill()
            process.wait()
            sweep_group(process.pid)
        return Finished(returncode, time.monotonic() - began, log)

    def cli(self, *args: str) -> Finished:
        finished = self.run([*CLI, *args])
        assert finished.returncode == 0, (args, finished.tail())
        return finished

    def interrupt(
        self,
        command: Sequence[str],
        *,
        delay: float | None = None,
        after_writes: int = 0,
        writes: int | None = None,
        env: Mapping[str, str] | None = None,
        whole_group: bool = False,
    ) -> Interrupted:
        """Run `command` and SIGKILL it (or its whole process group) `delay` seconds after the sandbox answered
        its `after_writes`-th write (0: after its start), or once the sandbox has answered `writes` of them.
        It runs as the measured runs did (answers held back, the write counts polled), so a delay drawn from
        their timelines lands where it was drawn."""
        assert (delay is None) != (writes is None)
        answered = sum(self.writes().values())
        self.latency(LATENCY_SECONDS)
        killed = False
        elapsed = 0.0
        with WriteTimeline(self) as timeline:
            process, _log = self.start(command, env)
            began = time.monotonic()
            clock: float | None = None  # when the delay started counting
            while process.poll() is None:
                now = time.monotonic()
                elapsed = now - began
                if clock is None and timeline.total >= after_writes:
                    clock = now
                due_by_time = delay is not None and clock is not None and now - clock >= delay
                if due_by_time or (writes is not None and timeline.total >= writes):
                    if whole_group:
                        os.killpg(process.pid, signal.SIGKILL)
                    else:
                        process.send_signal(signal.SIGKILL)
                    killed = True
                    break
                time.sleep(KILL_POLL_SECONDS)
            process.wait()
        outlived = sweep_group(process.pid, KILL_GRACE_SECONDS)
        self.latency(0)
        return Interrupted(
            killed=killed and process.returncode == -signal.SIGKILL,
            returncode=process.returncode,
            seconds=elapsed,
            writes=sum(self.writes().values()) - answered,
            outlived=len(outlived),
        )

    def dagster_env(self, home: Path) -> dict[str, str]:
        home.mkdir(parents=True, exist_ok=True)
        return self.env | {"DAGSTER_HOME": str(home)}

    # -- what Freshsales and the state hold

    def snapshot(self) -> Snapshot:
        response = httpx.get(f"{self.root_url}/_sandbox/snapshot", timeout=60)
        response.raise_for_status()
        snapshot: Snapshot = response.json()
        return snapshot

    def latency(self, seconds: float) -> None:
        """Hold every API answer back this long (0: answer at once)."""
        faults = {"rate_slow": 1.0, "slow_seconds": seconds} if seconds else {}
        httpx.post(f"{self.root_url}/_sandbox/faults", json=faults, timeout=10).raise_for_status()

    def writes(self) -> Counter[str]:
        """API writes the sandbox answered so far, per endpoint (searches are reads, whatever their method)."""
        response = httpx.get(f"{self.root_url}/_sandbox/requests", timeout=30)
        response.raise_for_status()
        return Counter(
            {
                endpoint: n
                for endpoint, n in response.json()["requests"].items()
                if not endpoint.startswith("GET ") and "filtered_search" not in endpoint
            }
        )

    def state(self) -> tuple[dict[str, set[int]], dict[str, int]]:
        """(object → ids in the id map, object → open load intents), read while nothing else runs."""
        with open_state(self.settings.paths.state_db_path, read_only=True, wait_seconds=30) as state:
            mapped = {name: {row.freshsales_id for row in state.id_map(name).values()} for name in KINDS}
            intents = {name: len(state.pending_intents(name)) for name in KINDS}
        return mapped, intents

    def validation_ok_since(self, moment: float) -> bool:
        """The validation report was written after `moment` (a time.time()) and found no discrepancy."""
        path = self.settings.paths.validation_json
        return path.stat().st_mtime >= moment and bool(json.loads(path.read_text(encoding="utf-8"))["ok"])

    def problems(self, expected: Content) -> list[str]:
        """How Freshsales differs from `expected`, the id map from Freshsales, and which intents are open."""
        snapshot = self.snapshot()
        problems = []
        diff = difference(expected, content(snapshot))
        if diff:
            problems.append("Freshsales differs: " + diff.replace("\n", " | "))
        mapped, intents = self.state()
        held = live_ids(snapshot)
        astray = [name for name in KINDS if mapped.get(name, set()) != held[name]]
        if astray:
            problems.append(f"the id map does not follow Freshsales for {', '.join(astray)}")
        if any(intents.values()):
            problems.append(f"open intents left: { {k: v for k, v in intents.items() if v} }")
        return problems


@contextmanager
def prepared_clinic(root: Path) -> Iterator[Clinic]:
    """A clinic with its sandbox running and its template made; the sandbox stops on exit."""
    clinic = Clinic(root)
    clinic.start_sandbox()
    try:
        clinic.prepare()
        yield clinic
    finally:
        clinic.stop_sandbox()


# ---- when the writes happen, where a kill landed --------------------------------------------------------


class WriteTimeline:
    """A command's API writes over time, in seconds from its start: polled from the sandbox's request
    counts while it runs."""

    def __init__(self, clinic: Clinic) -> None:
        self._clinic = clinic
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._began = 0.0
        self.samples: list[tuple[float, int]] = []  # (seconds, writes so far) at each increase

    def __enter__(self) -> WriteTimeline:
        self._before = sum(self._clinic.writes().values())
        self._began = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        seen = 0
        while not self._stop.wait(POLL_SECONDS):
            total = sum(self._clinic.writes().values()) - self._before
            if total > seen:
                self.samples.append((time.monotonic() - self._began, total))
                seen = total

    @property
    def first(self) -> float:
        assert self.samples, "the command wrote nothing"
        return self.samples[0][0]

    @property
    def last(self) -> float:
        assert self.samples, "the command wrote nothing"
        return self.samples[-1][0]

    @property
    def total(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def moment(self, fraction: float) -> float:
        """When this share of the writes had been answered: a kill then lands among writes, not between
        them, however the writes bunch up."""
        wanted = max(1, round(fraction * self.total))
        return next(t for t, n in self.samples if n >= wanted)


def measure(
    clinic: Clinic, command: Sequence[str], env: Mapping[str, str] | None = None
) -> tuple[Finished, WriteTimeline]:
    """An uninterrupted run as the killed ones run (answers held back as long), with its writes over time."""
    clinic.latency(LATENCY_SECONDS)
    try:
        with WriteTimeline(clinic) as timeline:
            finished = clinic.run(command, env)
    finally:
        clinic.latency(0)
    assert finished.returncode == 0, (command, finished.tail())
    return finished, timeline


def landing(clinic: Clinic, before: Mapping[str, int], target: Mapping[str, int], writes: int) -> str:
    """Where a kill landed, from what the state and Freshsales hold right after it: per object, done
    (at `target`, the count the command ends with), not started (still at `before`, its id-map count when
    the command started) or in flight, with what Freshsales holds that the state never heard of."""
    mapped, intents = clinic.state()
    held = live_ids(clinic.snapshot())
    waiting, flight = [], []
    uncommitted = False
    for name in KINDS:
        ours, there = mapped.get(name, set()), held[name]
        settled = ours == there and not intents[name]
        if settled and len(ours) == target.get(name, 0):
            continue
        if settled and len(ours) == before.get(name, 0):
            waiting.append(name)
            continue
        fact = f"{name} {len(ours)}/{target.get(name, 0)} mapped"
        if there - ours:
            fact += f", {len(there - ours)} in Freshsales without their state commit"
        if ours - there:
            fact += f", {len(ours - there)} gone from Freshsales, still in the id map"
        if intents[name]:
            fact += f", {intents[name]} open intents"
        uncommitted = uncommitted or bool(there ^ ours)
        flight.append(fact)
    where = [f"in flight: {'; '.join(flight)}"] if flight else []
    where += [f"not started: {', '.join(waiting)}"] if waiting else []
    phase = "before the first API write" if not writes else f"after {writes} API writes"
    tail = " [between the API's answer and the state commit]" if uncommitted else ""
    return f"{phase}, {' / '.join(where) or 'everything settled'}{tail}"


def spread(rng: random.Random, count: int, low: float, high: float) -> list[float]:
    """`count` values, one drawn in each of `count` equal slices of [low, high], in random order."""
    width = (high - low) / count
    values = [low + (i + rng.random()) * width for i in range(count)]
    rng.shuffle(values)
    return values


# ---- kill, restart, compare ---------------------------------------------------------------------------


@dataclass
class Kill:
    number: int
    what: str
    window: str  # what its delay was drawn from
    delay: float = 0.0  # from the start to the kill
    landed: str = ""
    attempts: int = 0  # runs of the restarted command until it exited 0
    result: str = ""
    failed_attempts: list[str] = field(default_factory=list)

    @property
    def missed(self) -> bool:
        return self.landed.startswith("missed")

    @property
    def identical(self) -> bool:
        return self.result == IDENTICAL

    def line(self) -> str:
        restarts = f"{self.attempts} run{'s' if self.attempts != 1 else ''} to exit 0"
        return (
            f"kill {self.number:02d} {self.what} at {self.delay:.2f} s ({self.window}): {self.landed}; "
            f"{restarts}; {self.result}"
        )


class Harness:
    """Kills a command part-way, restarts it until it exits 0 and checks where it ended."""

    def __init__(self, clinic: Clinic, reference: Content) -> None:
        self.clinic = clinic
        self.reference = reference
        self.kills: list[Kill] = []

    def kill(
        self,
        command: Sequence[str],
        *,
        what: str,
        window: str,
        target: Mapping[str, int],
        delay: float | None = None,
        after_writes: int = 0,
        writes: int | None = None,
        env: Mapping[str, str] | None = None,
        whole_group: bool = False,
    ) -> Kill:
        """`Clinic.interrupt`, where it landed against `target` (object → records when the command ends),
        then the same command until it exits 0."""
        kill = Kill(len(self.kills) + 1, what, window)
        self.kills.append(kill)
        before = {name: len(ids) for name, ids in self.clinic.state()[0].items()}
        stopped = self.clinic.interrupt(
            command, delay=delay, after_writes=after_writes, writes=writes, env=env, whole_group=whole_group
        )
        kill.delay = stopped.seconds
        if not stopped.killed:
            kill.landed = f"missed: it ended by itself with exit code {stopped.returncode}"
        else:
            kill.landed = landing(self.clinic, before, target, stopped.writes)
            if stopped.outlived:
                kill.landed += f" ({stopped.outlived} processes of its group outlived the kill and were swept)"
        for attempt in range(1, MAX_ATTEMPTS + 1):
            finished = self.clinic.run(command, env)
            kill.attempts = attempt
            if finished.returncode == 0:
                break
            kill.failed_attempts.append(f"exit {finished.returncode}: {finished.tail(1500)}")
        else:
            kill.result = f"never exited 0 in {MAX_ATTEMPTS} runs"
        return kill

    def expect_reference(self, kill: Kill, since: float) -> None:
        """Freshsales holds exactly the reference's records, the id map exactly those, no intent is open,
        and the validation that ran after `since` (a time.time()) passed."""
        if not kill.result:
            problems = [] if self.clinic.validation_ok_since(since) else ["the run's validation did not pass"]
            kill.result = "; ".join(problems + self.clinic.problems(self.reference)) or IDENTICAL
        print(kill.line(), flush=True)

    def expect_rolled_back(self, kill: Kill) -> None:
        """After `rollback --all`: no migrated record in Freshsales, none in the id map, no open intent."""
        if not kill.result:
            kill.result = "; ".join(self.clinic.problems(rolled_back(self.reference))) or IDENTICAL
        print(kill.line(), flush=True)
