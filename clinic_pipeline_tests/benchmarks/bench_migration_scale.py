"""A generated clinic taken through the whole migration with the CLI, as a person does, into a sandbox
that enforces Growth's request budget in scaled-down time (issue 18).

Phases (each can be skipped with `--skip PHASE`):
- `capacity`: the sandbox's own requests/second (`bench_sandbox.measure`), measured first so the budget
  the migration runs under stays well below it.
- `migration`: `sample-data`, `inventory`, `propose-mapping`, `confirm-mapping`, the admin's custom fields,
  `migrate --sample`, `sign-off`, `migrate --dry-run`, `migrate --full`, `report`, and `migrate --full` once
  more on the unchanged clinic. The sandbox enforces Growth's 1,000 requests an hour with its hour lasting
  `--hour-seconds` (20 s: 50 requests/s), through `CLINIC_SANDBOX_HOUR_SECONDS`; the client is told the same
  budget over its real minute and hour, and the sandbox's headers pace it within the scaled hour. Requests
  are the sandbox's own counts (`/_sandbox/requests`, every API call it answered, polled while commands
  run); per object they are the load's own figures the CLI prints. A command's CPU is its process tree's
  (`wait4`); its peak RSS is the CLI process's own `VmHWM`, polled (the CLI runs every step in process, and
  `wait4`'s figure would keep this benchmark's own size from the fork).
- `faults`: the same full run from the same signed-off sample (the kill harness's template), with 10 %
  of the API answers an injected 429, 503 or timeout and three SIGKILLs of the CLI's process group at
  random request counts, restarted each time; Freshsales must end exactly as after the fault-free run.
- `idmap`: state stores with 200,000 and 2,000,000 id-map rows built directly: file size and lookup times.
- `dry2m`: a 2 M-record clinic without any API: inventory, proposal, staging (`migrate --dry-run`) times
  and peak RSS, and the dry run's requests and hours per Freshsales plan.

Counts only are printed and stored (no record values). Results go to `scale_results/<timestamp>.json`, and
a Markdown table is printed. Nothing timing-based is asserted; the faulted run's final content is.

Run `python clinic_pipeline_tests/benchmarks/bench_migration_scale.py [records] [--skip PHASE ...]
[--hour-seconds S] [--dry-records N]` (under `nice -n 19` on a shared machine), or
`pytest -m slow clinic_pipeline_tests/benchmarks/bench_migration_scale.py -s` (a smaller scale).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from clinic_pipeline import steps
from clinic_pipeline.demo import create_custom_fields_as_admin
from clinic_pipeline.freshsales.client import MAX_BULK_ITEMS, FreshsalesClient
from clinic_pipeline.load.estimate import PLAN_LIMITS, DryRunEstimate, ObjectEstimate, estimate
from clinic_pipeline.load.loader import BATCH_SIZE
from clinic_pipeline.load.owners import OwnerMap
from clinic_pipeline.load.state import IdMapRow, open_state
from clinic_pipeline.mapping.plan import read_plan, write_plan
from clinic_pipeline.model.objects import STAGED_OBJECTS
from clinic_pipeline.sandbox.faults import FaultConfig, FaultInjector
from clinic_pipeline_tests.benchmarks.bench_load_requests import window_usage
from clinic_pipeline_tests.benchmarks.bench_sandbox import measure as sandbox_requests_per_second
from clinic_pipeline_tests.benchmarks.bench_staging import _run_phase as staging_bench_phase
from clinic_pipeline_tests.e2e.kill_harness import (
    CLI,
    KILL_GRACE_SECONDS,
    MAX_ATTEMPTS,
    Clinic,
    content,
    difference,
    spread,
    sweep_group,
)

PHASES = ("capacity", "migration", "faults", "idmap", "dry2m")
SEED = 5  # the generator's seed: the same clinic every run
KILL_SEED = 18
TWO_MILLION = 2_040_000  # the generator's 110,000-patient clinic (bench_generator, bench_staging)
# Patients are asked for as records / RECORDS_PER_PATIENT: 18.5 records a patient when bench_generator was
# written; the generator now writes about 21.6 (2,371,081 records for 110,000 patients), so an export
# comes out ~17 % larger than the records asked. The tables report the export's own count.
RECORDS_PER_PATIENT = TWO_MILLION / 110_000
SAMPLE_SIZE = 200
GROWTH_PER_HOUR = 1000
# Growth's hour in 20 s: 50 requests/s, a few percent of what the sandbox answers (measured by `capacity`),
# about half what the loader sends through the CLI unthrottled on two shared cores (≈ 90/s).
DEFAULT_HOUR_SECONDS = 20.0
HOUR_SECONDS_VARIABLE = "CLINIC_SANDBOX_HOUR_SECONDS"  # read by the sandbox's process (sandbox/ratelimit.py)
FAULT_RATE = 0.10  # 429s, 503s and timeouts, a third each
# A timeout: the sandbox answers after TIMEOUT_STALL_SECONDS, the client gives up after CLIENT_TIMEOUT_SECONDS.
CLIENT_TIMEOUT_SECONDS = 1.0
TIMEOUT_STALL_SECONDS = 1.5
KILLS = 3
POLL_SECONDS = 0.25
RSS_POLL_SECONDS = 0.1
IDMAP_ROWS = (200_000, 2_000_000)
POINT_LOOKUPS = 1000
TIERS = ("growth", "pro", "enterprise")
RESULTS_DIR = Path(__file__).parent / "scale_results"
MIB = 1024 * 1024


# ---- commands, measured -------------------------------------------------------------------------


class RequestLog:
    """The sandbox's count of API requests answered, polled while a command runs: (epoch seconds, total)
    at each change, so request rates and spans come from the server's own counter."""

    def __init__(self, clinic: Clinic) -> None:
        self._url = f"{clinic.root_url}/_sandbox/requests"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self.samples: list[tuple[float, int]] = []
        self._before: Counter[str] = Counter()
        self.by_endpoint: Counter[str] = Counter()  # the command's requests per `METHOD /path/template`

    def _counts(self) -> Counter[str]:
        response = httpx.get(self._url, timeout=30)
        response.raise_for_status()
        return Counter(response.json()["requests"])

    def total(self) -> int:
        return self._counts().total()

    def __enter__(self) -> RequestLog:
        before = self._counts()
        self._before = before
        self.samples.append((time.time(), before.total()))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._note()
        self.by_endpoint = self._counts() - self._before

    def _note(self) -> None:
        total = self.total()
        if total != self.samples[-1][1]:
            self.samples.append((time.time(), total))

    def _poll(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self._note()

    @property
    def requests(self) -> int:
        return self.samples[-1][1] - self.samples[0][1]

    def when(self, requests: int) -> float:
        """When the command's `requests`-th request had been answered (to the poll's resolution)."""
        return next(t for t, n in self.samples if n - self.samples[0][1] >= requests)

    def stamps(self, until: int) -> list[float]:
        """A send time per request up to the `until`-th, each at the poll that saw it."""
        out: list[float] = []
        base = self.samples[0][1]
        for (_, before), (t, after) in zip(self.samples, self.samples[1:], strict=False):
            out += [t] * (min(after, base + until) - min(before, base + until))
        return out


@dataclass
class Command:
    args: tuple[str, ...]
    returncode: int
    seconds: float
    cpu_seconds: float  # user + system of the command and every process it waited for
    peak_rss_mib: float  # its own process (the CLI runs every step in process)
    cpu_wait_seconds: float  # its own process's threads, runnable but not running (summed over threads)
    output: str
    requests: RequestLog | None = None


def run_command(
    clinic: Clinic,
    *args: str,
    env: dict[str, str] | None = None,
    count_requests: bool = True,
    kill_at: int | None = None,
) -> Command:
    """One CLI command, with its own CPU time (`wait4`: the clinic's `run` only waits) and peak RSS.
    `kill_at`: SIGKILL its process group once the sandbox has answered it that many requests."""
    log = RequestLog(clinic) if count_requests else None
    began = time.perf_counter()
    process, path = clinic.start([*CLI, *args], env)
    with log if log is not None else nullcontext(), PeakRss(process.pid) as peak:
        if kill_at is not None:
            assert log is not None
            while process.poll() is None and log.total() - log.samples[0][1] < kill_at:
                time.sleep(POLL_SECONDS / 5)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    sweep_group(process.pid, KILL_GRACE_SECONDS if kill_at is not None else 0.0)
    return Command(
        args=args,
        returncode=process.returncode,
        seconds=time.perf_counter() - began,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=peak.kib / 1024,
        cpu_wait_seconds=peak.cpu_wait_seconds,
        output=path.read_text(errors="replace"),
        requests=log,
    )


class PeakRss:
    """A process's resident high-water mark (`VmHWM`, which its exec reset), polled while it runs. Not
    `wait4`'s figure: that one keeps this process's own size at the fork, however small the command.
    Also the time its threads spent runnable but waiting for a CPU (`schedstat`'s run-queue wait, the
    last seen of each thread): on a shared machine, what separates the pipeline's pace from the machine's."""

    def __init__(self, pid: int) -> None:
        self._proc = Path(f"/proc/{pid}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self.kib = 0
        self._waited_ns: dict[str, int] = {}

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def cpu_wait_seconds(self) -> float:
        return sum(self._waited_ns.values()) / 1e9

    def _poll(self) -> None:
        while not self._stop.wait(RSS_POLL_SECONDS):
            try:
                lines = (self._proc / "status").read_text().splitlines()
                for task in (self._proc / "task").iterdir():
                    self._waited_ns[task.name] = int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone, or not yet there
            for line in lines:
                if line.startswith("VmHWM:"):
                    self.kib = max(self.kib, int(line.split()[1]))


def cli(clinic: Clinic, *args: str, env: dict[str, str] | None = None, count_requests: bool = True) -> Command:
    done = run_command(clinic, *args, env=env, count_requests=count_requests)
    assert done.returncode == 0, (args, done.output[-3000:])
    return done


LOADED = re.compile(r"^loaded (\w+): (.*?)(?:; (\d+) requests, (\d+) retr\w+)?$", re.MULTILINE)
OUTCOME = re.compile(r"([a-z_]+) (\d+)")
STAGED = re.compile(r"^staged (\w+): (\d+) records", re.MULTILINE)
DRY_RUN = re.compile(r"^(\d+) API calls at (\d+)/h.*about ([\d.]+) h", re.MULTILINE)
GENERATED = re.compile(r"^(\d+) records in (\d+) tables", re.MULTILINE)
SAMPLED = re.compile(r"^sample: (\d+) records", re.MULTILINE)


@dataclass(frozen=True)
class Loaded:
    """One object's load as the CLI's summary line gives it: outcome counts, requests, retries."""

    outcomes: dict[str, int]
    requests: int
    retries: int

    @property
    def sent(self) -> int:
        """Records that needed a request of their own or a place in a bulk one (a refusal costs one too)."""
        return sum(n for outcome, n in self.outcomes.items() if outcome not in NOT_SENT)


# Outcomes of records no request was needed for.
NOT_SENT = frozenset({"unchanged", "held_back"})


def loaded(output: str) -> dict[str, Loaded]:
    return {
        m[1]: Loaded({k: int(n) for k, n in OUTCOME.findall(m[2])}, int(m[3] or 0), int(m[4] or 0))
        for m in LOADED.finditer(output)
    }


def staged(output: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in STAGED.finditer(output)}


def review_plan(clinic: Clinic) -> None:
    """The person's review of the proposed plan, before confirming it: each insurance plan is named by its
    policy id (always there, and not the policy number, which the proposer rightly keeps out of the CRM).
    Written when the proposer named the plans by their group number, blank on about 15 % of the generated
    policies, which stopped every run at the blocking `required:name` check; since 2d07e29 it proposes the
    subscriber's name and a blank name takes the source key, so this review now only changes the plans'
    names (no count), and is kept so that the runs in `scale_results/` are comparable."""
    path = clinic.settings.paths.plan_path
    plan = read_plan(path)
    for mapping in plan.objects:
        if mapping.source_table == "insurance_policies":
            for field_map in mapping.fields:
                if field_map.target == "name":
                    field_map.source = "policy_id"
    write_plan(plan, path)


# ---- the sandbox --------------------------------------------------------------------------------


def is_write(endpoint: str) -> bool:
    """Searches are reads, whatever their method."""
    return not endpoint.startswith("GET ") and "filtered_search" not in endpoint


def control(clinic: Clinic, path: str, body: dict[str, Any]) -> None:
    httpx.post(f"{clinic.root_url}/_sandbox/{path}", json=body, timeout=30).raise_for_status()


def throttle(clinic: Clinic) -> None:
    """Growth's hourly budget, in the sandbox's scaled hours (`HOUR_SECONDS_VARIABLE`). Growth's 400 a minute
    is left out: in scaled time it never binds. A sandbox restart forgets it (it starts unlimited), so this
    follows every start."""
    control(clinic, "rate_limit", {"requests_per_hour": GROWTH_PER_HOUR, "requests_per_minute": None})


def keep_template(clinic: Clinic) -> None:
    """The state folder and the sandbox's database as they are now, for `Clinic.restore_template`."""
    clinic.stop_sandbox()
    # One file instead of a database and its write-ahead log: a restore cannot pair one with another's.
    with sqlite3.connect(clinic.sandbox_dir / "freshsales.sqlite") as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copytree(clinic.data, clinic.template / "data", symlinks=True)
    shutil.copytree(clinic.sandbox_dir, clinic.template / "sandbox", symlinks=True)
    clinic.start_sandbox()


# ---- floors --------------------------------------------------------------------------------------


def floor(o: ObjectEstimate, sent: int | None = None) -> int:
    """The issue's floor: for bulk objects ⌈n/100⌉ of what bulk upsert can carry plus the creates it cannot
    (a contact without email, a new deal), one request per record for the others. `sent`: the records the
    load actually had to send (its outcomes), where the estimate's create + update counts are not exact."""
    n = o.create + o.update if sent is None else sent
    if not o.bulk:
        return n
    return math.ceil((n - o.single_creates) / MAX_BULK_ITEMS) + o.single_creates


def after_sample_estimate(clinic: Clinic) -> DryRunEstimate:
    """The dry run's estimate of the full load after the signed-off sample, at Growth's limits, in process
    (the figures, not the CLI's text). The owners are resolved as the loader resolves them, so bodies hash as
    it builds them."""
    settings = clinic.settings
    staged_files = {o.name: settings.paths.staged_dir / f"{o.name}.parquet" for o in STAGED_OBJECTS}
    with FreshsalesClient.from_settings(settings) as client:
        owners = OwnerMap.from_client(client, settings.clinic_fallback_owner_email)
    with open_state(settings.paths.state_db_path) as state:
        return estimate(state, staged_files, plan_limits=PLAN_LIMITS["growth"], owners=owners)


def sample_floor(clinic: Clinic) -> int:
    """The sample slice's load floor, from its own staged files against an empty id map."""
    sample_dir = clinic.settings.paths.sample_dir
    files = {o.name: sample_dir / f"{o.name}.parquet" for o in STAGED_OBJECTS}
    with open_state(clinic.root / "empty-state.duckdb") as state:
        found = estimate(state, {k: v for k, v in files.items() if v.exists()}, plan_limits=PLAN_LIMITS["growth"])
    return sum(floor(o) for o in found.objects)


# ---- results ------------------------------------------------------------------------------------


@dataclass
class Results:
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # what, figure, goal, met

    def row(self, what: str, figure: str, goal: str = "", met: bool | None = None) -> None:
        self.rows.append((what, figure, goal, "" if met is None else ("yes" if met else "**no**")))
        print(f"{what}: {figure}" + (f" (goal {goal})" if goal else ""), flush=True)

    def markdown(self) -> str:
        lines = ["| measure | figure | goal | met |", "|---|---|---|---|"]
        lines += [f"| {' | '.join(cell.replace('|', '/') for cell in r)} |" for r in self.rows]
        return "\n".join(lines)

    def write(self, directory: Path = RESULTS_DIR) -> Path:
        directory.mkdir(exist_ok=True)
        path = directory / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        path.write_text(json.dumps({"figures": self.figures, "table": self.rows}, indent=2, default=str))
        return path


# ---- phase: capacity ----------------------------------------------------------------------------


def phase_capacity(results: Results) -> float:
    rate = sandbox_requests_per_second(2000)
    results.figures["sandbox_requests_per_second"] = rate
    results.row("sandbox capacity (contact create + view, one client, loopback)", f"{rate:.0f} requests/s")
    return rate


# ---- phase: migration ---------------------------------------------------------------------------


@dataclass
class Migrated:
    clinic: Clinic
    full_requests: int  # the fault-free `migrate --full`, as the sandbox counted it
    validation_requests: int
    fixed_reads: int  # what every run reads besides its loads and validation (owners, schema, selectors)
    full_by_endpoint: Counter[str]  # the fault-free `migrate --full`'s requests per endpoint
    reference: Any  # kill_harness.content of Freshsales after it


def phase_migration(results: Results, clinic: Clinic, records: int, hour_seconds: float) -> Migrated:
    f = results.figures
    patients = max(1, round(records / RECORDS_PER_PATIENT))
    clinic.env |= {
        # The client's windows are a real minute and hour: the scaled budget over each. The sandbox's headers
        # pace it within its scaled hour, as Freshsales' do within a real one.
        "FRESHSALES_REQUESTS_PER_MINUTE": str(round(GROWTH_PER_HOUR * 60 / hour_seconds)),
        "FRESHSALES_REQUESTS_PER_HOUR": str(round(GROWTH_PER_HOUR * 3600 / hour_seconds)),
    }
    clinic.start_sandbox()
    throttle(clinic)
    per_minute = round(GROWTH_PER_HOUR * 60 / hour_seconds)
    f["budget"] = {"growth_hour_in_seconds": hour_seconds, "per_minute": per_minute}
    print(f"budget: Growth's {GROWTH_PER_HOUR}/h enforced as {GROWTH_PER_HOUR} per {hour_seconds:.0f} s")

    steps_run: dict[str, Command] = {}
    generated = cli(
        clinic, "sample-data", "--out", str(clinic.source), "--patients", str(patients), "--seed", str(SEED)
    )
    export_records = int(GENERATED.search(generated.output)[1])  # type: ignore[index]
    steps_run["sample-data"] = generated
    for args in (("inventory",), ("propose-mapping",)):
        steps_run[args[0]] = cli(clinic, *args)
    review_plan(clinic)
    steps_run["confirm-mapping"] = cli(clinic, "confirm-mapping", "--by", "Scale Bench")
    create_custom_fields_as_admin(clinic.settings, clinic.root_url, clinic.env["FRESHSALES_API_KEY"], echo=print)
    # The dry run before the sample: what a clinic is told before any record moves.
    growth = {"FRESHSALES_REQUESTS_PER_HOUR": str(GROWTH_PER_HOUR), "FRESHSALES_REQUESTS_PER_MINUTE": "400"}
    dry = cli(clinic, "migrate", "--dry-run", env=clinic.env | growth)
    steps_run["migrate --dry-run"] = dry
    dry_calls, _, dry_hours = DRY_RUN.search(dry.output).groups()  # type: ignore[union-attr]
    sample = cli(clinic, "migrate", "--sample", str(SAMPLE_SIZE))
    steps_run["migrate --sample"] = sample
    sampled = int(SAMPLED.search(sample.output)[1])  # type: ignore[index]
    cli(clinic, "sign-off", "--by", "Scale Bench")
    predicted = after_sample_estimate(clinic)
    predicted_calls, predicted_hours = predicted.api_calls, predicted.hours
    keep_template(clinic)
    throttle(clinic)

    full = cli(clinic, "migrate", "--full")
    steps_run["migrate --full"] = full
    reference = content(clinic.snapshot())
    report = cli(clinic, "report")
    steps_run["report"] = report
    rerun = cli(clinic, "migrate", "--full")
    steps_run["migrate --full (unchanged)"] = rerun
    assert not difference(reference, content(clinic.snapshot())), "the unchanged re-run changed Freshsales"

    assert full.requests is not None and sample.requests is not None and report.requests is not None
    assert rerun.requests is not None
    staged_counts = staged(full.output)
    staged_records = sum(staged_counts.values())
    per_object = loaded(full.output)
    load_requests = sum(o.requests for o in per_object.values())
    validation = report.requests.requests
    f["records"] = {"export": export_records, "patients": patients, "staged": staged_counts, "sampled": sampled}
    f["commands"] = {
        name: {
            "seconds": c.seconds,
            "cpu_seconds": c.cpu_seconds,
            "cpu_wait_seconds": c.cpu_wait_seconds,
            "peak_rss_mib": c.peak_rss_mib,
        }
        | ({"requests": c.requests.requests, "by_endpoint": dict(c.requests.by_endpoint)} if c.requests else {})
        for name, c in steps_run.items()
    }
    results.row("export generated", f"{export_records:,} records ({patients:,} patients); {staged_records:,} staged")

    # 1. Requests against the floor.
    floors = {o.object: floor(o, per_object[o.object].sent) for o in predicted.objects if o.object in per_object}
    sample_load_floor = sample_floor(clinic)
    print(f"\n{'object':<15}{'staged':>9}{'floor':>9}{'predicted':>10}{'requests':>10}{'retries':>9}{'ratio':>8}")
    for o in predicted.objects:
        got = per_object[o.object]
        ratio = got.requests / floors[o.object] if floors[o.object] else float("nan")
        print(
            f"{o.object:<15}{o.staged:>9,}{floors[o.object]:>9,}{o.api_calls:>10,}{got.requests:>10,}"
            f"{got.retries:>9,}{ratio:>8.3f}"
        )
    print("\n".join(line for line in full.output.splitlines() if line.startswith("loaded ")))
    whole = sample.requests.requests + full.requests.requests
    whole_floor = sample_load_floor + sampled + sum(floors.values()) + validation
    print(
        "floor: per object, of the records the load had to send (its outcomes less unchanged and held back), "
        "bulk objects ⌈(those bulk upsert carries)/100⌉ + the creates it cannot (the dry run's count), other "
        "objects one request per record; whole migration: "
        f"the sample slice's load floor ({sample_load_floor}) + one read per sampled record ({sampled}) + those "
        f"({sum(floors.values())}) + the validation's own reads ({validation}, a `report` run alone)"
    )
    f["requests"] = {
        "per_object": {
            name: {"requests": o.requests, "retries": o.retries, "outcomes": o.outcomes, "floor": floors.get(name, 0)}
            for name, o in per_object.items()
        },
        "predicted_per_object": {o.object: o.api_calls for o in predicted.objects},
        "sample": sample.requests.requests,
        "full": full.requests.requests,
        "full_loads": load_requests,
        "full_other": full.requests.requests - load_requests,
        "validation": validation,
        "floor_whole": whole_floor,
        "whole": whole,
    }
    load_ratio = load_requests / sum(floors.values())
    ratio = whole / whole_floor
    results.row(
        "requests ÷ floor, loads of the full run", f"{load_ratio:.3f} ({load_requests:,} / {sum(floors.values()):,})"
    )
    for name, o in per_object.items():
        if floors.get(name):
            results.row(f"  {name}", f"{o.requests / floors[name]:.3f} ({o.requests:,} / {floors[name]:,})")
    results.row(
        "requests ÷ floor, whole migration (sample + full + its validation)",
        f"{ratio:.3f} ({whole:,} / {whole_floor:,})",
        "≤ 1.02",
        ratio <= 1.02,
    )

    # 2. Rate use while loading: from the first to the last request of the loads. Before them the run
    # reads the owners and the schema (with staging in between); after them it validates. The sandbox's
    # hours are windows of `hour_seconds` aligned on the epoch, as its minutes are on whole minutes: the use
    # is the mean share of the budget spent in the scaled hours the loads covered whole (`window_usage`, on
    # send times stretched so that one scaled hour reads as a clock minute).
    log = full.requests
    before_loads = log.requests - load_requests - validation
    began, ended = log.when(before_loads + 1), log.when(before_loads + load_requests)
    span = ended - began
    raw_use = load_requests / (GROWTH_PER_HOUR / hour_seconds * span)
    stamps = log.stamps(before_loads + load_requests)[before_loads:]
    whole_hours = window_usage([t * 60 / hour_seconds for t in stamps], GROWTH_PER_HOUR)
    used = raw_use if whole_hours is None else whole_hours
    retries = sum(o.retries for o in per_object.values())
    f["rate"] = {"span_seconds": span, "requests": load_requests, "raw": raw_use, "whole_scaled_hours": whole_hours}
    results.row(
        "rate use while loading: Growth budget used in the load's whole (scaled) hours",
        f"{'n/a (under 2 scaled hours)' if whole_hours is None else f'{whole_hours:.3f}'}; over its whole span "
        f"{raw_use:.3f} (the first hour's fresh budget goes at once)",
        "≥ 0.97",
        used >= 0.97,
    )
    results.row(
        "`migrate --full` runnable but waiting for a CPU (the machine's load, not the pipeline's pacing)",
        f"{full.cpu_wait_seconds:.0f} thread-seconds over its {full.seconds:.0f} s wall (its own CPU "
        f"{full.cpu_seconds:.0f} s)",
    )
    results.row("429s (and other retries) in the fault-free run", f"{retries} retries", "0", retries == 0)

    # 3. ETA truth: the dry run's Growth hours against the load's duration scaled back to Growth hours. As
    # at Freshsales, a fresh budget lets one hour's worth through at once: the load may end up to an hour early.
    measured_hours = span / hour_seconds
    eta = measured_hours / predicted_hours
    f["eta"] = {
        "dry_run_before_sample": {"calls": int(dry_calls), "hours": float(dry_hours)},
        "after_sample": {"calls": predicted_calls, "hours": predicted_hours},
        "measured_hours": measured_hours,
    }
    f["eta"]["burst_share"] = 1 / predicted_hours
    results.row(
        "ETA: measured ÷ dry run's hours at Growth",
        f"{eta:.3f} ({measured_hours:.2f} h measured, {predicted_hours:.2f} h predicted; {load_requests:,} load "
        f"requests vs {predicted_calls:,} predicted = {load_requests / predicted_calls:.3f}; the fresh hour's "
        f"budget spent at once is up to 1 h = {1 / predicted_hours:.1%} of the prediction; `migrate --dry-run` "
        f"before the sample: {dry_hours} h)",
        "within 5 %",
        abs(eta - 1) <= 0.05,
    )

    # 5. The unchanged migration run again.
    spent = rerun.requests.requests
    extra = rerun.requests.by_endpoint - report.requests.by_endpoint
    writes = sum(n for endpoint, n in rerun.requests.by_endpoint.items() if is_write(endpoint))
    f["rerun"] = {"requests": spent, "beyond_validation": dict(extra), "writes": writes}
    results.row(
        "re-run of the unchanged migration",
        f"{spent:,} requests: the validation's {validation:,} + {extra.total():,} fixed reads per run "
        f"({', '.join(f'{n} {e}' for e, n in extra.most_common())}); {writes} writes",
        "≈ 0 beyond validation",
        writes == 0,
    )

    # 6. Own overhead.
    state_path = clinic.settings.paths.state_db_path
    state_mib = state_path.stat().st_size / MIB
    cpu = full.cpu_seconds / (staged_records / 1000)
    f["overhead"] = {"cpu_seconds_per_1000": cpu, "state_mib": state_mib}
    results.row(
        "CPU of `migrate --full` (process tree) per 1,000 staged records",
        f"{cpu:.2f} s ({full.cpu_seconds:.0f} s CPU in {full.seconds:.0f} s wall); "
        f"re-run {rerun.cpu_seconds:.0f} s CPU",
    )
    results.row(
        "peak RSS",
        ", ".join(f"{name} {c.peak_rss_mib:.0f} MiB" for name, c in steps_run.items() if name != "sample-data"),
    )
    results.row("state store after the migration", f"{state_mib:.1f} MiB")
    return Migrated(clinic, full.requests.requests, validation, extra.total(), full.requests.by_endpoint, reference)


# ---- phase: faults and kills --------------------------------------------------------------------


def injected(config: FaultConfig, draws: int) -> int:
    """How many of `draws` requests the sandbox's seeded injector answered with a fault: the same RNG,
    replayed (each API request that passes the budget draws once)."""
    injector = FaultInjector()
    injector.configure(config)
    return sum(injector.draw("") is not None for _ in range(draws))


def phase_faults(results: Results, migrated: Migrated) -> None:
    clinic = migrated.clinic
    clinic.restore_template()
    throttle(clinic)
    config = FaultConfig(
        rate_429=FAULT_RATE / 3,
        rate_5xx=FAULT_RATE / 3,
        rate_slow=FAULT_RATE / 3,
        slow_seconds=TIMEOUT_STALL_SECONDS,
        seed=KILL_SEED,
    )
    control(clinic, "faults", vars(config))
    env = clinic.env | {"FRESHSALES_TIMEOUT_SECONDS": str(CLIENT_TIMEOUT_SECONDS)}
    rng = random.Random(KILL_SEED)
    # Kill points among the run's requests, one in each third of the fault-free run's span, as counts
    # of requests the faulted run has been answered so far (restarts included).
    points = sorted(round(p) for p in spread(rng, KILLS, 0.1 * migrated.full_requests, 0.9 * migrated.full_requests))
    spent = 0
    by_endpoint: Counter[str] = Counter()  # the faulted runs', restarts included
    kills: list[dict[str, Any]] = []
    began = time.perf_counter()
    for point in points:
        run = run_command(clinic, "migrate", "--full", env=env, kill_at=point - spent)
        assert run.requests is not None
        spent += run.requests.requests
        by_endpoint += run.requests.by_endpoint
        kills.append({"at_requests": spent, "killed": run.returncode == -signal.SIGKILL, "seconds": run.seconds})
        print(f"kill at {spent:,} requests: exit {run.returncode} after {run.seconds:.0f} s", flush=True)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        run = run_command(clinic, "migrate", "--full", env=env)
        assert run.requests is not None
        spent += run.requests.requests
        by_endpoint += run.requests.by_endpoint
        print(f"restart {attempt}: exit {run.returncode} after {run.seconds:.0f} s", flush=True)
        if run.returncode == 0:
            break
    else:
        raise AssertionError(f"the faulted run never exited 0 in {MAX_ATTEMPTS} restarts: {run.output[-2000:]}")
    control(clinic, "faults", {})
    seconds = time.perf_counter() - began
    problems = clinic.problems(migrated.reference)
    faults = injected(config, spent)
    wasted = spent - migrated.full_requests
    bound = faults + KILLS * BATCH_SIZE
    excess = by_endpoint - migrated.full_by_endpoint  # where the waste went, per endpoint
    # The account's reference rows (owners, selectors, field definitions, custom modules) the restarts read
    # again: before they were kept in the state store for the run, each restart re-read them all (35 a run).
    fixed = sum(n for endpoint, n in excess.items() if endpoint.startswith(("GET /selector/", "GET /settings/")))
    in_flight = wasted - faults - fixed
    results.figures["faults"] = {
        "config": vars(config),
        "kills": kills,
        "requests": spent,
        "fault_free_requests": migrated.full_requests,
        "injected_faults": faults,
        "seconds": seconds,
        "restarts_after_last_kill": attempt,
        "problems": problems,
        "fixed_reads_per_run": migrated.fixed_reads,
        "restart_reference_reads": fixed,
        "wasted_beyond_faults_and_restart_reads": in_flight,
        "excess_by_endpoint": dict(excess),
    }
    results.row(
        f"faults ({FAULT_RATE:.0%} 429/503/timeout) + {KILLS} SIGKILLs: requests wasted vs fault-free",
        f"{wasted:,} ({spent:,} vs {migrated.full_requests:,}); bound {bound:,} = {faults:,} injected faults "
        f"(each retried) + {KILLS} x {BATCH_SIZE}; of the waste, {fixed:,} are the {KILLS} restarts' reads of "
        f"owners and schema (a fault-free run reads {migrated.fixed_reads}), leaving {in_flight:,} lost in flight "
        f"({in_flight / KILLS:.0f} a kill)",
        "≤ retried + one batch per kill",
        wasted <= bound,
    )
    results.row(
        "  the faulted runs' requests beyond the fault-free run's, per endpoint",
        ", ".join(f"{n:,} {e}" for e, n in excess.most_common(8)),
    )
    results.row("final Freshsales content equals the fault-free run's", "yes" if not problems else "; ".join(problems))
    assert not problems, problems


# ---- phase: id map ------------------------------------------------------------------------------


def phase_idmap(results: Results, work: Path) -> None:
    figures: dict[str, Any] = {}
    for rows in IDMAP_ROWS:
        path = work / f"idmap-{rows}.duckdb"
        with open_state(path) as state:
            # Built directly, not through a load: synthetic keys and hashes, no record data.
            state._con.execute(
                "INSERT INTO id_map SELECT 'contacts', 'patients:' || i, 4294967296 + i, md5(i::VARCHAR), 'bench',"
                " now() FROM range(?) t(i)",
                [rows],
            )
        size = path.stat().st_size / MIB
        keys = [f"patients:{k}" for k in random.Random(rows).sample(range(rows), POINT_LOOKUPS)]
        with open_state(path) as state:
            started = time.perf_counter()
            mapped: dict[str, IdMapRow] = state.id_map("contacts")  # what the loader reads per object
            whole = time.perf_counter() - started
            started = time.perf_counter()
            hits = sum(k in mapped for k in keys)
            in_memory = (time.perf_counter() - started) / POINT_LOOKUPS
            started = time.perf_counter()
            for key in keys:
                state._con.execute(
                    "SELECT freshsales_id FROM id_map WHERE object = 'contacts' AND source_key = ?", [key]
                ).fetchone()
            by_query = (time.perf_counter() - started) / POINT_LOOKUPS
        assert hits == POINT_LOOKUPS and len(mapped) == rows
        figures[rows] = {"mib": size, "load_seconds": whole, "lookup_us": in_memory * 1e6, "query_ms": by_query * 1e3}
        del mapped
        results.row(
            f"id map of {rows:,} rows",
            f"{size:.1f} MiB; loaded in {whole:.2f} s (the loader's read per object); lookup {in_memory * 1e6:.2f} µs "
            f"in memory, {by_query * 1e3:.2f} ms by query",
        )
    small, large = (figures[n] for n in IDMAP_ROWS)
    factor = IDMAP_ROWS[1] / IDMAP_ROWS[0]
    results.row(
        "id map 200k → 2M",
        f"size x{large['mib'] / small['mib']:.1f}, load x{large['load_seconds'] / small['load_seconds']:.1f} "
        f"(rows x{factor:.0f})",
    )
    results.figures["idmap"] = figures


# ---- phase: 2 M records, no API -----------------------------------------------------------------


def phase_dry2m(results: Results, work: Path, records: int) -> None:
    patients = max(1, round(records / RECORDS_PER_PATIENT))
    clinic = Clinic(work / "dry")  # its sandbox is never started: nothing here calls the API
    generated = cli(
        clinic, "sample-data", "--out", str(clinic.source), "--patients", str(patients), count_requests=False
    )
    timings = {"sample-data": generated}
    for args in (("inventory",), ("propose-mapping",)):
        timings[args[0]] = cli(clinic, *args, count_requests=False)
    review_plan(clinic)
    timings["confirm-mapping"] = cli(clinic, "confirm-mapping", "--by", "Scale Bench", count_requests=False)
    dry = run_command(clinic, "migrate", "--dry-run", count_requests=False)
    timings["migrate --dry-run"] = dry
    if dry.returncode != 0:
        # A blocking quality check stops the run after staging, before the estimate; the staged files are
        # there, so the estimate still runs below. The CLI's error lines name checks, never values.
        refusal = "; ".join(line for line in dry.output.splitlines() if line.startswith("error:"))
        results.figures["dry2m_refusal"] = refusal
        results.row("  `migrate --dry-run` refused", refusal)
    # Issue 5's comparison on this export: DuckDB alone reading the CSVs and writing Parquet, and
    # `stage_object` alone on the confirmed plan, each in a fresh interpreter (`bench_staging`'s phases).
    compared = work / "staging-bench"
    compared.mkdir()
    (compared / "plan.json").write_text(read_plan(clinic.settings.paths.plan_path).model_dump_json())
    baseline = staging_bench_phase("baseline", clinic.source, compared)
    stage_alone = staging_bench_phase("staging", clinic.source, compared)
    started = time.perf_counter()
    found = steps.run_estimate(clinic.settings)
    estimate_seconds = time.perf_counter() - started
    export_records = int(GENERATED.search(generated.output)[1])  # type: ignore[index]
    staged_records = sum(o.staged for o in found.objects)
    tiers = {tier: DryRunEstimate(limits=PLAN_LIMITS[tier], objects=found.objects).hours for tier in TIERS}
    results.figures["dry2m"] = {
        "export_records": export_records,
        "staged_records": staged_records,
        "api_calls": found.api_calls,
        "hours": tiers,
        "estimate_seconds": estimate_seconds,
        "duckdb_alone_seconds": baseline["total_s"],
        "stage_object_alone_seconds": stage_alone["total_s"],
        "commands": {n: {"seconds": c.seconds, "peak_rss_mib": c.peak_rss_mib} for n, c in timings.items()},
    }
    results.row(
        f"{export_records:,}-record clinic, dry run",
        f"{found.api_calls:,} requests; "
        + ", ".join(
            f"{tier} {PLAN_LIMITS[tier].hourly}/h {hours:.0f} h ({hours / 24:.1f} days)"
            for tier, hours in tiers.items()
        ),
    )
    for name in ("sample-data", "inventory", "propose-mapping", "migrate --dry-run"):
        c = timings[name]
        results.row(f"  {name}", f"{c.seconds:.0f} s, peak RSS {c.peak_rss_mib:.0f} MiB")
    results.row(
        "  staging (the dry run less its estimate)",
        f"{dry.seconds - estimate_seconds:.0f} s ({staged_records:,} staged), peak RSS {dry.peak_rss_mib:.0f} MiB",
        "≤ 2 GiB",
        dry.peak_rss_mib <= 2048,
    )
    # Times only: `bench_staging` reads its phases' peak RSS from `getrusage`, which keeps the size of the
    # process that forked them (this one, after the 2 M-row id map); the dry run's RSS above is the CLI's own.
    ratio = stage_alone["total_s"] / baseline["total_s"]
    results.row(
        "  staging ÷ DuckDB alone (`bench_staging`'s phases on this export, one run each)",
        f"{ratio:.2f} (stage_object {stage_alone['total_s']:.0f} s; "
        f"DuckDB read_csv → Parquet {baseline['total_s']:.0f} s)",
        "≤ 3.8 (today's 3.1 to 3.8)",
        ratio <= 3.8,
    )
    factor = TWO_MILLION / export_records
    if factor > 1.05:
        # Smaller than asked: requests, hours and times grow with the records (the estimate is per record).
        results.row(
            f"  projected to {TWO_MILLION:,} records (x{factor:.1f}, linear)",
            f"{found.api_calls * factor:,.0f} requests; "
            + ", ".join(f"{tier} {hours * factor:.0f} h" for tier, hours in tiers.items())
            + f"; staging {(dry.seconds - estimate_seconds) * factor:.0f} s",
        )


# ---- the run ------------------------------------------------------------------------------------


def run(
    records: int,
    *,
    skip: Sequence[str] = (),
    hour_seconds: float = DEFAULT_HOUR_SECONDS,
    dry_records: int = TWO_MILLION,
    results_dir: Path = RESULTS_DIR,
) -> Results:
    results = Results()
    results.figures |= {"records_asked": records, "skipped": list(skip), "started": datetime.now(UTC).isoformat()}
    try:
        _run_phases(results, records, skip, hour_seconds, dry_records)
    finally:
        # An hours-long run that fails late keeps what its finished phases measured.
        results.figures["finished"] = datetime.now(UTC).isoformat()
        path = results.write(results_dir)
        print(f"\n{results.markdown()}\n\nresults → {path}")
    return results


def _run_phases(results: Results, records: int, skip: Sequence[str], hour_seconds: float, dry_records: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        if "capacity" not in skip:
            capacity = phase_capacity(results)
            share = GROWTH_PER_HOUR / hour_seconds / capacity
            results.figures["budget_share_of_capacity"] = share
            results.row("scaled budget's share of the sandbox's capacity", f"{share:.1%}")
        if "migration" not in skip:
            clinic = Clinic(work / "clinic")
            os.environ[HOUR_SECONDS_VARIABLE] = str(hour_seconds)  # the sandbox processes inherit it
            try:
                migrated = phase_migration(results, clinic, records, hour_seconds)
                if "faults" not in skip:
                    phase_faults(results, migrated)
            finally:
                clinic.stop_sandbox()
                del os.environ[HOUR_SECONDS_VARIABLE]
        elif "faults" not in skip:
            raise ValueError("the faults phase repeats the migration phase's run: it cannot run without it")
        if "idmap" not in skip:
            phase_idmap(results, work)
        if "dry2m" not in skip:
            phase_dry2m(results, work, dry_records)


# 18 minutes, every phase included (the 2 M-row id map too), on two cores saturated by other test runs.
PYTEST_RECORDS = 3_000
PYTEST_DRY_RECORDS = 30_000


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_migration_at_scale(tmp_path: Path) -> None:
    # Asserted inside: the faulted, killed and restarted run ends with the fault-free run's content. Its
    # results stay out of `scale_results/`, which keeps the runs the README quotes.
    run(PYTEST_RECORDS, dry_records=PYTEST_DRY_RECORDS, results_dir=tmp_path)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", type=int, nargs="?", default=200_000, help="records in the generated export")
    parser.add_argument("--skip", action="append", choices=PHASES, default=[], help="a phase to leave out")
    parser.add_argument(
        "--hour-seconds", type=float, default=DEFAULT_HOUR_SECONDS, help="how long one Growth hour lasts in the sandbox"
    )
    parser.add_argument("--dry-records", type=int, default=TWO_MILLION, help="records of the no-API phase's clinic")
    args = parser.parse_args(argv)
    run(args.records, skip=args.skip, hour_seconds=args.hour_seconds, dry_records=args.dry_records)


if __name__ == "__main__":
    main()
