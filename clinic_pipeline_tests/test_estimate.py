"""The dry-run estimate: exact counts from staged Parquet and the id map, the call and time arithmetic,
and not one request to Freshsales."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from clinic_pipeline.freshsales import FreshsalesClient, RateLimiter, RetryPolicy
from clinic_pipeline.load.estimate import PLAN_LIMITS, ObjectEstimate, RateLimits, estimate
from clinic_pipeline.load.loader import Loader
from clinic_pipeline.load.payloads import prepare
from clinic_pipeline.load.state import IdMapRow, StateStore, open_state
from clinic_pipeline.model.objects import ACCOUNTS, CONTACTS, TASKS
from clinic_pipeline.sandbox.launcher import SandboxHandle


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    full = [{"_source_table": r["_source_key"].split(":")[0], "_source_row": i + 1, **r} for i, r in enumerate(rows)]
    pq.write_table(pa.Table.from_pylist(full), path)
    return path


def _account(key: str, name: str, city: str) -> dict[str, Any]:
    return {"_source_key": f"clinics:{key}", "name": name, "city": city}


def _contact(key: str, account: str | None, first_name: str) -> dict[str, Any]:
    return {"_source_key": f"patients:{key}", "_lookup_sales_account": account, "first_name": first_name}


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    with open_state(tmp_path / "state" / "migration.duckdb") as opened:
        yield opened


def _requests(sandbox: SandboxHandle) -> int:
    return int(httpx.get(f"{sandbox.root_url}/_sandbox/requests", timeout=10).json()["total"])


def test_estimate_predicts_the_next_load_exactly_without_a_request(
    tmp_path: Path, sandbox: SandboxHandle, state: StateStore
) -> None:
    httpx.post(
        f"{sandbox.root_url}/_sandbox/settings/sales_accounts/fields",
        json={"label": "Source key", "name": "cf_source_key", "type": "text"},
        timeout=10,
    ).raise_for_status()
    first, second, rejected = tmp_path / "first", tmp_path / "second", tmp_path / "rejected"
    first.mkdir()
    second.mkdir()
    accounts = [_account("C1", "Riverside", "Peoria"), _account("C2", "Lakeside", "Ames")]
    contacts = [
        _contact("P1", "clinics:C1", "Ana"),
        _contact("P2", "clinics:C2", "Ben"),
        _contact("P3", "clinics:C2", "Cy"),
    ]
    client = FreshsalesClient(
        sandbox.base_url,
        SecretStr(sandbox.api_key),
        rate_limiter=RateLimiter(100_000, 10_000),
        retry_policy=RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05),
    )
    with client:
        loader = Loader(client, state, run_id="run-1")
        loader.load(ACCOUNTS, _write(first / "accounts.parquet", accounts), rejected)
        loader.load(CONTACTS, _write(first / "contacts.parquet", contacts), rejected)

        staged = {
            "accounts": _write(
                second / "accounts.parquet",
                [*accounts[:1], _account("C2", "Lakeside", "Boone"), _account("C3", "Hillside", "Ames")],
            ),
            "contacts": _write(
                second / "contacts.parquet",
                [
                    contacts[0],  # unchanged
                    _contact("P2", "clinics:C2", "Benjamin"),  # a field changed
                    _contact("P3", "clinics:C3", "Cy"),  # moves to an account this load creates: new link id
                    _contact("P4", "clinics:C3", "Dee"),  # new, parent created in this load
                    _contact("P5", "clinics:GONE", "Eve"),  # parent neither mapped nor staged
                    _contact("P6", None, "Flo"),  # new, no parent
                ],
            ),
        }
        requests_before = _requests(sandbox)
        result = estimate(state, staged, plan_limits=PLAN_LIMITS["growth"])
        assert _requests(sandbox) == requests_before

        assert result.objects == [
            ObjectEstimate(object="accounts", staged=3, create=1, update=1, unchanged=1, held_back=0, bulk=True),
            ObjectEstimate(
                object="contacts", staged=6, create=2, update=2, unchanged=1, held_back=1, bulk=True, single_creates=2
            ),
        ]
        # Accounts: one bulk_upsert + its poll, the pre-existence search, the count of keyed records.
        # Contacts: the updates in one bulk_upsert + poll, the count, and the two new ones without email alone.
        assert [o.api_calls for o in result.objects] == [4, 5]

        # The load the estimate describes does exactly that.
        loader = Loader(client, state, run_id="run-2")
        loaded_accounts = loader.load(ACCOUNTS, staged["accounts"], rejected)
        loaded_contacts = loader.load(CONTACTS, staged["contacts"], rejected)
    for predicted, loaded in zip(result.objects, (loaded_accounts, loaded_contacts), strict=True):
        assert (loaded.outcomes["created"], loaded.outcomes["updated"]) == (predicted.create, predicted.update)
        assert loaded.requests == predicted.api_calls, predicted.object
        assert (loaded.outcomes["unchanged"], loaded.outcomes["held_back"]) == (
            predicted.unchanged,
            predicted.held_back,
        )


def test_call_and_time_arithmetic_for_bulk_and_single_record_objects(tmp_path: Path, state: StateStore) -> None:
    state.record_batch(
        obj="contacts",
        run_id="run-1",
        partition=None,
        mapped=[IdMapRow(f"patients:P{i}", 17_000_000_000 + i, "h") for i in range(20)],
        audit=[],
    )
    tasks = [
        {"_source_key": f"tasks:T{i}", "_lookup_contact": f"patients:P{i % 20}", "title": f"Call back {i}"}
        for i in range(50)
    ] + [{"_source_key": f"tasks:X{i}", "_lookup_contact": "patients:unknown", "title": "Orphan"} for i in range(5)]
    contact_ids = {"contact": state.id_map("contacts")}
    # Ten tasks were loaded before with exactly this body: unchanged.
    state.record_batch(
        obj="tasks",
        run_id="run-1",
        partition=None,
        mapped=[
            IdMapRow(t["_source_key"], 18_000_000_000 + i, prepare(TASKS, t, contact_ids).payload_hash)
            for i, t in enumerate(tasks[:10])
        ],
        audit=[],
    )
    staged = {
        "accounts": _write(
            tmp_path / "accounts.parquet", [_account(f"C{i}", f"Clinic {i}", "Ames") for i in range(250)]
        ),
        "tasks": _write(tmp_path / "tasks.parquet", tasks),
    }

    growth = estimate(state, staged, plan_limits=PLAN_LIMITS["growth"])

    by_object = {o.object: o for o in growth.objects}
    assert by_object["accounts"].create == 250
    # ⌈250/100⌉ bulk calls, each polled once, a pre-existence search per 100 and one count.
    assert by_object["accounts"].api_calls == 3 * 2 + 3 + 1
    assert (by_object["tasks"].create, by_object["tasks"].unchanged, by_object["tasks"].held_back) == (40, 10, 5)
    assert by_object["tasks"].api_calls == 40  # one request per record
    assert growth.api_calls == 50
    assert growth.binding_limit == "hourly"
    assert growth.hours == pytest.approx(50 / 1000)
    assert growth.minutes_by_minute_limit == pytest.approx(50 / 400)

    tight_minutes = estimate(state, staged, plan_limits=RateLimits(hourly=100_000, per_minute=10))
    assert tight_minutes.binding_limit == "per_minute"
    assert tight_minutes.hours == pytest.approx(50 / 10 / 60)

    table = growth.table().splitlines()
    assert table[0].split() == ["object", "staged", "create", "update", "unchanged", "held", "back", "API", "calls"]
    assert table[2].split() == ["accounts", "250", "250", "0", "0", "0", "10"]
    assert table[3].split() == ["tasks", "55", "40", "0", "10", "5", "40"]
    assert table[5].split() == ["total", "305", "290", "0", "10", "5", "50"]
    assert "50 API calls at 1000/h, 400/min" in table[6]


def test_plan_presets_follow_the_published_budgets() -> None:
    assert {name: limits.hourly for name, limits in PLAN_LIMITS.items()} == {
        "growth": 1000,
        "pro": 2000,
        "enterprise": 5000,
    }


def test_unknown_staged_object_is_refused(tmp_path: Path, state: StateStore) -> None:
    with pytest.raises(ValueError, match="patients"):
        estimate(state, {"patients": tmp_path / "x.parquet"}, plan_limits=PLAN_LIMITS["pro"])
