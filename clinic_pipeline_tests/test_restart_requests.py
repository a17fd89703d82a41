"""What a load killed mid-run costs its restart, against the real sandbox (issue 18's faults and kills goal):
no second read of the account's reference rows (owners, activity types: kept in the state store for the run),
a reconciliation of the writes in flight that reads the newest records rather than every listed one, and no
duplicate."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import SecretStr

from clinic_pipeline.freshsales import FreshsalesClient, RateLimiter
from clinic_pipeline.load.loader import find_sent
from clinic_pipeline.load.payloads import marker
from clinic_pipeline.load.state import Intent, open_state
from clinic_pipeline.model.objects import BY_NAME
from clinic_pipeline.sandbox.launcher import SandboxHandle
from clinic_pipeline_tests.child_runs import run_child

ACTIVITIES = 1000
KILL_AT = 700  # activity creates answered when the first run is killed: 7 pages of them listed
SLOW_SECONDS = 0.1  # every API answer this late (see the test)
PROVIDER = "dr.restart@clinic.example"

# One process, as one `migrate --full` of the CLI: a client whose reference reads go through the state store
# (steps._client), a loader over three objects, and at a normal end the CLI's drop of those reads.
_CHILD = """
import sys
from pathlib import Path
from pydantic import SecretStr
from clinic_pipeline.freshsales import FreshsalesClient, RateLimiter
from clinic_pipeline.load.loader import Loader
from clinic_pipeline.load.reference_cache import StateReferenceCache, forget_process_references
from clinic_pipeline.load.state import open_state
from clinic_pipeline.model.objects import BY_NAME

base_url, api_key, staged, state_path, run_id = sys.argv[1:]
client = FreshsalesClient(base_url, SecretStr(api_key), rate_limiter=RateLimiter(100_000, 10_000))
client.use_reference_cache(StateReferenceCache(Path(state_path), client.base_url))
with client, open_state(Path(state_path)) as state:
    loader = Loader(client, state, run_id=run_id, max_concurrency=4)
    for name in ("accounts", "contacts", "activities"):
        loader.load(BY_NAME[name], Path(staged) / f"{name}.parquet", Path(staged) / "rejected")
forget_process_references()
"""


def _control(sandbox: SandboxHandle, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{sandbox.root_url}/_sandbox/{path}"
    response = httpx.post(url, json=body, timeout=30) if body is not None else httpx.get(url, timeout=30)
    response.raise_for_status()
    return response.json()


def _requests(sandbox: SandboxHandle) -> dict[str, int]:
    return dict(_control(sandbox, "requests")["requests"])


def _since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def _row(key: str, n: int, **fields: Any) -> dict[str, Any]:
    return {"_source_key": key, "_source_table": key.partition(":")[0], "_source_row": n, **fields}


def _world(staged: Path) -> None:
    _write(staged / "accounts.parquet", [_row("clinics:1", 1, name="North")])
    _write(
        staged / "contacts.parquet",
        [
            _row(f"patients:{i}", i, first_name=f"P{i}", email=f"p{i}@example.com", _lookup_sales_account="clinics:1")
            for i in range(40)
        ],
    )
    start = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    _write(
        staged / "activities.parquet",
        [
            _row(
                f"calls:{i}",
                i,
                title="Call",
                notes="Follow-up call",
                start_date=start + timedelta(hours=i),
                end_date=start + timedelta(hours=i, minutes=10),
                _choice_sales_activity_type_id="Call",
                _lookup_contact=f"patients:{i % 40}",
                _owner_email=PROVIDER,
            )
            for i in range(ACTIVITIES)
        ],
    )


def _run(sandbox: SandboxHandle, staged: Path, state_path: Path, run_id: str, *, kill_at: int | None = None) -> None:
    args = [sys.executable, "-c", _CHILD, sandbox.base_url, sandbox.api_key, str(staged), str(state_path), run_id]
    if kill_at is None:
        run_child(args, timeout=300)
    else:
        run_child(args, timeout=300, kill_when=lambda: _requests(sandbox).get("POST /sales_activities", 0) >= kill_at)


def test_a_restart_after_a_kill_reads_no_reference_rows_and_only_the_newest_records_and_creates_no_duplicate(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    _control(sandbox, "users", {"display_name": "Dr Restart", "email": PROVIDER, "is_active": True})
    key_field = {"label": "Source key", "name": "cf_source_key", "type": "text"}
    _control(sandbox, "settings/sales_accounts/fields", key_field)
    # Every answer 0.1 s late: four workers create at most 40 activities a second, as Freshsales' budgets keep a
    # load far slower still. `created_at` has whole seconds and reconciliation reads down to a second before the
    # newest record committed before the kill: at the unthrottled sandbox's pace (hundreds a second once the
    # state store stopped bounding it) those seconds alone would fill pages.
    _control(sandbox, "faults", {"rate_slow": 1.0, "slow_seconds": SLOW_SECONDS})
    staged = tmp_path / "staged"
    _world(staged)
    state_path = tmp_path / "state" / "migration.duckdb"

    start = _requests(sandbox)
    _run(sandbox, staged, state_path, "killed", kill_at=KILL_AT)
    killed = _since(start, _requests(sandbox))
    read = killed["GET /selector/{name}"]
    assert 2 <= read <= 3  # owners, activity types (and what they name), each once for the three loads
    with open_state(state_path) as state:
        in_flight = state.pending_intents("activities")
        mapped = state.id_map_counts()["activities"]
    assert in_flight, "the kill should leave a batch of activities open"
    assert len(in_flight) <= 100 and mapped + len(in_flight) >= KILL_AT - 4

    before_restart = _requests(sandbox)
    _run(sandbox, staged, state_path, "restart")
    restart = _since(before_restart, _requests(sandbox))
    # The killed run's reference reads served its restart, which read none again.
    assert "GET /selector/{name}" not in restart, restart
    # The batch in flight was reconciled from the newest records (one page, two when the kill fell on a page's
    # edge), not by listing the 700 and more activities already there (7 pages and more).
    assert restart.get("GET /sales_activities", 0) <= 2, restart
    # Sent again: only the records of the batch that never arrived, each once.
    sent = killed["POST /sales_activities"] + restart["POST /sales_activities"]
    assert ACTIVITIES <= sent <= ACTIVITIES + 4, (killed, restart)

    snapshot = _control(sandbox, "snapshot")
    markers = [str(a["notes"]).rpartition("\n")[2] for a in snapshot["sales_activities"]]
    assert len(markers) == ACTIVITIES
    assert set(markers) == {marker(f"calls:{i}") for i in range(ACTIVITIES)}
    with open_state(state_path) as state:
        assert state.id_map_counts()["activities"] == ACTIVITIES
        assert not state.pending_intents("activities")
        found = state.audit_counts().get(("activities", "reconcile", "found_existing"), 0)
    assert found >= 1  # what the killed run sent before it died was found, not created twice

    # The restart ended normally and dropped the reads it used: the next run reads the account afresh.
    before_rerun = _requests(sandbox)
    _run(sandbox, staged, state_path, "rerun")
    rerun = _since(before_rerun, _requests(sandbox))
    assert rerun.get("GET /selector/{name}") == read
    assert not any(k.split()[0] in ("POST", "PUT", "DELETE") for k in rerun if "filtered_search" not in k), rerun


def _listing_client(records: list[dict[str, Any]], *, honours_sort: bool) -> tuple[FreshsalesClient, list[int]]:
    """A client over a fake `GET /sales_activities` that pages `records` newest first, or (an API that ignores
    `sort`) oldest first; and the pages it was asked for."""
    asked: list[int] = []
    ordered = sorted(records, key=lambda r: r["created_at"], reverse=honours_sort)

    def answer(request: httpx.Request) -> httpx.Response:
        page, per_page = int(request.url.params["page"]), int(request.url.params["per_page"])
        asked.append(page)
        rows = ordered[(page - 1) * per_page : page * per_page]
        pages = -(-len(ordered) // per_page)
        return httpx.Response(
            200, json={"sales_activities": rows, "meta": {"total": len(ordered), "total_pages": pages}}
        )

    client = FreshsalesClient(
        "https://x.example/crm/sales",
        SecretStr("k"),
        transport=httpx.MockTransport(answer),
        rate_limiter=RateLimiter(100_000, 10_000),
    )
    return client, asked


def test_reconciliation_reads_newest_first_down_to_an_anchor_and_reads_everything_when_the_order_is_not_kept() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = [
        {
            "id": 1000 + i,
            "notes": f"Call\n{marker(f'calls:{i}')}",
            "created_at": (start + timedelta(seconds=i)).isoformat(),
        }
        for i in range(450)
    ]
    del records[440]  # calls:440 never arrived
    intents = [Intent(f"calls:{i}", "h") for i in (3, 438, 440)]  # calls:3 was sent long ago and arrived
    anchors = [1000 + 420]  # committed before calls:438 and calls:440 were sent

    newest, asked = _listing_client(records, honours_sort=True)
    with newest:
        found = find_sent(newest, BY_NAME["activities"], intents[1:], anchors)
    assert set(found) == {"calls:438"} and asked == [1]  # the anchor's page, and no further

    oldest, asked = _listing_client(records, honours_sort=False)
    with oldest:
        found = find_sent(oldest, BY_NAME["activities"], intents, anchors)
    # Ignoring the order, the listing cannot stop at the anchor: every page is read, and what is there is found.
    assert set(found) == {"calls:3", "calls:438"} and asked == [1, 2, 3, 4, 5]
