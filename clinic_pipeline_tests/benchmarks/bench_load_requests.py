"""Requests the loader spends against the floor, and how much of a scaled-down rate budget it uses.

The floor of a fresh load: Σ over bulk-eligible records ⌈n/100⌉ (accounts by name, contacts with an
email) + one request per other record (contacts without email, new deals, appointments, tasks, notes,
custom module records). Phase 1 loads a clinic-sized world into an unthrottled sandbox and compares;
phase 2 loads a quarter of it with the sandbox's per-minute budget scaled down and the client told the
same budget, and reports the fraction of the allowed rate used and the 429s seen. Figures are printed;
nothing timing-based is asserted.

Run `python clinic_pipeline_tests/benchmarks/bench_load_requests.py [scale] [per_minute] [throttled_scale]`, or
`pytest -m slow clinic_pipeline_tests/benchmarks/bench_load_requests.py -s`.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from clinic_pipeline.freshsales import FreshsalesClient, RateLimiter, RetryPolicy
from clinic_pipeline.load.loader import Loader
from clinic_pipeline.load.state import open_state
from clinic_pipeline.model.objects import BY_NAME, FreshsalesObject
from clinic_pipeline.sandbox.launcher import SandboxHandle, running_sandbox

API_KEY = "bench-key"
ORDER = ("accounts", "contacts", "deals", "appointments", "tasks", "lab_result", "notes")
SIZES = {
    "accounts": 50,
    "contacts": 2000,
    "deals": 3000,
    "appointments": 3000,
    "tasks": 1000,
    "notes": 1000,
    "lab_result": 500,
}
PROVIDERS = ("priya.rao@clinic.example", "tom.okafor@clinic.example", "max.member@clinic.example")
START = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)


class _Timed(httpx.HTTPTransport):
    """The real transport, noting when each request left: the server counts budgets in clock minutes."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[float] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(time.time())
        return super().handle_request(request)


def window_usage(sent: list[float], per_minute: int) -> float | None:
    """Mean share of the budget used in the clock-aligned minutes the run covered whole."""
    counts = Counter(int(t // 60) for t in sent)
    if not counts:
        return None
    whole = [counts.get(w, 0) for w in range(min(counts) + 1, max(counts))]
    return sum(whole) / (len(whole) * per_minute) if whole else None


@dataclass(frozen=True)
class ObjectFigures:
    name: str
    rows: int
    floor: int
    requests: int

    @property
    def ratio(self) -> float:
        return self.requests / self.floor if self.floor else 0.0


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _base(table: str, i: int) -> dict[str, Any]:
    return {"_source_key": f"{table}:{i}", "_source_table": table, "_source_row": i}


def build_world(staged: Path, scale: float) -> tuple[dict[str, Path], dict[str, int]]:
    """Stage-like Parquet files and the request floor of each."""
    staged.mkdir(parents=True, exist_ok=True)
    n = {name: max(1, int(size * scale)) for name, size in SIZES.items()}
    contacts = n["contacts"]

    def patient(i: int) -> str:
        return f"patients:{i % contacts}"

    rows: dict[str, list[dict[str, Any]]] = {
        "accounts": [{**_base("clinics", i), "name": f"Clinic {i}", "city": "Ames"} for i in range(n["accounts"])],
        "contacts": [
            {
                **_base("patients", i),
                "first_name": f"P{i}",
                "last_name": "Bench",
                "email": f"p{i}@bench.example" if i % 5 else None,  # 80 % with an email
                "_lookup_sales_account": f"clinics:{i % n['accounts']}",
                "_owner_email": PROVIDERS[i % len(PROVIDERS)],
            }
            for i in range(contacts)
        ],
        "deals": [
            {
                **_base("invoices", i),
                "name": f"Invoice {i}",
                "amount": Decimal(f"{100 + i}.{i % 100:02d}"),
                "_lookup_sales_account": f"clinics:{i % n['accounts']}",
                "_lookup_contact": patient(i),
            }
            for i in range(n["deals"])
        ],
        "appointments": [
            {
                **_base("visits", i),
                "title": "Visit",
                "description": "Routine visit",
                "from_date": START + timedelta(hours=i),
                "end_date": START + timedelta(hours=i, minutes=30),
                "_lookup_contact": patient(i),
                "_owner_email": PROVIDERS[i % len(PROVIDERS)],
            }
            for i in range(n["appointments"])
        ],
        "tasks": [
            {
                **_base("recalls", i),
                "title": "Recall",
                "due_date": START + timedelta(days=i % 300),
                "_lookup_contact": patient(i),
                "_owner_email": PROVIDERS[i % len(PROVIDERS)],
            }
            for i in range(n["tasks"])
        ],
        "notes": [
            {**_base("chart_notes", i), "description": "Chart note", "_lookup_contact": patient(i)}
            for i in range(n["notes"])
        ],
        "lab_result": [
            {**_base("labs", i), "name": f"Lab {i}", "cf_test_name": "HbA1c", "_lookup_contact": patient(i)}
            for i in range(n["lab_result"])
        ],
    }
    with_email = sum(1 for r in rows["contacts"] if r["email"])
    floor = {name: len(r) for name, r in rows.items()}
    floor["accounts"] = math.ceil(n["accounts"] / 100)
    floor["contacts"] = math.ceil(with_email / 100) + (contacts - with_email)
    return {name: _write(staged / f"{name}.parquet", r) for name, r in rows.items()}, floor


def _control(handle: SandboxHandle, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{handle.root_url}/_sandbox/{path}"
    response = httpx.post(url, json=body, timeout=60) if body is not None else httpx.get(url, timeout=60)
    response.raise_for_status()
    return response.json()


def _client(handle: SandboxHandle, per_minute: int, transport: httpx.BaseTransport) -> FreshsalesClient:
    return FreshsalesClient(
        handle.base_url,
        SecretStr(handle.api_key),
        transport=transport,
        rate_limiter=RateLimiter(1_000_000, per_minute),
        retry_policy=RetryPolicy(max_attempts=6, backoff_base=0.05, backoff_max=1.0),
        max_connections=8,
    )


def _schema(handle: SandboxHandle, client: FreshsalesClient) -> None:
    for entity in ("sales_accounts", "deals"):
        _control(handle, f"settings/{entity}/fields", {"label": "Source key", "name": "cf_source_key", "type": "text"})
    form = client.create_module("Lab result", "Lab results").forms[0].id
    for label, kind, related in (
        ("Source key", "text", None),
        ("Contact", "lookup", "contact"),
        ("Test name", "text", None),
    ):
        client.create_module_field("cm_lab_result", form, label, kind, related_entity=related)


def load_world(
    handle: SandboxHandle, work: Path, scale: float, per_minute: int
) -> tuple[list[ObjectFigures], float, dict[str, Any]]:
    """Load the world once; per-object figures, elapsed seconds and the client's stats (schema excluded)."""
    staged, floor = build_world(work / "staged", scale)
    figures: list[ObjectFigures] = []
    transport = _Timed()
    with _client(handle, per_minute, transport) as client, open_state(work / "state.duckdb") as state:
        _schema(handle, client)
        loader = Loader(client, state, run_id="bench", max_concurrency=4)
        started = time.perf_counter()
        first_load_request = len(transport.sent)
        before = client.stats["requests"]
        for name in ORDER:
            obj: FreshsalesObject = BY_NAME[name]
            result = loader.load(obj, staged[name], work / "rejected")
            assert result.loaded == result.staged, (name, dict(result.outcomes))
            figures.append(ObjectFigures(name, result.staged, floor[name], result.requests))
        elapsed = time.perf_counter() - started
        stats = client.stats
        stats["load_requests"] = stats["requests"] - before
        stats["window_usage"] = window_usage(transport.sent[first_load_request:], per_minute)
    return figures, elapsed, stats


def report(figures: list[ObjectFigures]) -> tuple[int, int]:
    print(f"{'object':<14}{'rows':>7}{'floor':>7}{'requests':>10}{'ratio':>8}")
    for f in figures:
        print(f"{f.name:<14}{f.rows:>7}{f.floor:>7}{f.requests:>10}{f.ratio:>8.3f}")
    total_floor = sum(f.floor for f in figures)
    total = sum(f.requests for f in figures)
    print(f"{'overall':<14}{sum(f.rows for f in figures):>7}{total_floor:>7}{total:>10}{total / total_floor:>8.3f}")
    return total, total_floor


def run(scale: float = 1.0, per_minute: int = 2400, throttled_scale: float = 0.25) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with running_sandbox(work / "sandbox.sqlite", API_KEY, test_mode=True, plan="unlimited") as handle:
            print(f"phase 1: unthrottled, scale {scale}")
            figures, elapsed, stats = load_world(handle, work / "free", scale, 1_000_000)
            total, floor = report(figures)
            print(f"{elapsed:.1f} s, {total / elapsed:.0f} requests/s; by endpoint: {stats['by_endpoint']}")
            out.update(requests=total, floor=floor, ratio=total / floor)

            print(f"\nphase 2: sandbox and client at {per_minute}/minute, scale {throttled_scale}")
            _control(handle, "reset", {})
            _control(handle, "rate_limit", {"requests_per_hour": None, "requests_per_minute": per_minute})
            figures, elapsed, stats = load_world(handle, work / "throttled", throttled_scale, per_minute)
            total, _ = report(figures)
            allowed = per_minute / 60 * elapsed
            usage = stats["window_usage"]
            # Over a short run the raw figure exceeds 1: a fresh minute's whole budget may go at once.
            print(
                f"{elapsed:.1f} s, {stats['load_requests']} requests, {stats['load_requests'] / allowed:.3f} of "
                f"per_minute x elapsed; budget used in whole clock minutes: "
                f"{'n/a (run shorter than 2 minutes)' if usage is None else f'{usage:.3f}'}; "
                f"429s: {stats['rate_limited_429']}; limiter slept {stats['limiter_slept_seconds']} s"
            )
            out.update(rate_fraction=usage or 0.0, throttled_429=stats["rate_limited_429"])
    return out


@pytest.mark.slow
def test_load_requests_against_the_floor() -> None:
    figures = run(scale=0.2, per_minute=1200, throttled_scale=0.1)
    assert figures["requests"] >= figures["floor"]  # nothing timing-based: the run loaded everything


if __name__ == "__main__":
    arguments = sys.argv[1:]
    run(
        scale=float(arguments[0]) if arguments else 1.0,
        per_minute=int(arguments[1]) if len(arguments) > 1 else 2400,
        throttled_scale=float(arguments[2]) if len(arguments) > 2 else 0.25,
    )
