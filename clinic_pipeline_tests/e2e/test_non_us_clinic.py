"""A UK clinic end to end: its country, time zone and currency proposed from its export, phone numbers in
E.164 with +44, day-first dates read as such, amounts in pounds on deals in GBP, visits at UK wall-clock time."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pyarrow.parquet as pq
import pytest

from clinic_pipeline.assets.resources import resources_settings
from clinic_pipeline.mapping.plan import read_plan
from clinic_pipeline_tests.e2e.flow import confirm_and_sign_off, full_load, generated_clinic


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return {row[next(iter(row))]: row for row in csv.DictReader(fh)}


@pytest.mark.slow  # a scenario of minutes: CI runs it in `make test-slow`
def test_a_uk_clinic_migrates_in_its_own_country_zone_and_currency(tmp_path: Path, sandbox: Any) -> None:
    resources, source = generated_clinic(tmp_path, sandbox, country="GB")
    sample = confirm_and_sign_off(resources, sandbox).asset_materializations_for_node("sample_diff")[0].metadata
    # The sample diff reads the source on its own: +44 numbers, day-first dates and £ amounts all match.
    assert sample["differs"].value == sample["missing"].value == 0
    plan = read_plan(resources_settings(resources).paths.plan_path)
    assert (plan.clinic.country, plan.clinic.time_zone, plan.clinic.currency) == ("GB", "Europe/London", "GBP")
    assert any(a.startswith("clinic country GB") for a in plan.assumptions)
    result = full_load(resources)
    assert result.success, [e.step_key for e in result.get_step_failure_events()]

    snapshot = httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", timeout=30).json()
    patients = _rows(source / "patients.csv")
    contacts = {c["external_id"]: c for c in snapshot["contacts"] if c.get("external_id", "").startswith("patients:")}
    numbers = [c["mobile_number"] for c in contacts.values() if c.get("mobile_number")]
    assert numbers and all(n.startswith("+44") for n in numbers)
    born = next(
        (key, row["date_of_birth"])
        for key, row in patients.items()
        if f"patients:{key}" in contacts and row["date_of_birth"][:2].isdigit() and int(row["date_of_birth"][:2]) > 12
    )
    day, month, year = born[1].split("/")
    assert contacts[f"patients:{born[0]}"]["custom_field"]["cf_date_of_birth"] == f"{year}-{month}-{day}"

    currencies = httpx.get(f"{sandbox.base_url}/api/selector/currencies", headers=_auth(sandbox)).json()["currencies"]
    gbp = next(c["id"] for c in currencies if c["currency_code"] == "GBP")
    deals = snapshot["deals"]
    assert deals and {d["currency_id"] for d in deals} == {gbp}
    bills = _rows(source / "billing_encounters.csv")
    by_name = {d["name"]: d for d in deals}
    priced = [b for b in bills.values() if b["invoice_number"] in by_name]
    for bill in priced[:20]:
        amount = Decimal(bill["amount_billed"].replace("£", "").replace(",", ""))
        assert Decimal(str(by_name[bill["invoice_number"]]["amount"])) == amount

    # Visits are booked in London wall-clock time: 09:00 in July is 08:00 UTC, in January 09:00 UTC.
    visits = _rows(source / "appointments.csv")
    staged = pq.read_table(resources_settings(resources).paths.staged_dir / "appointments.parquet").to_pylist()
    assert staged and len(snapshot["appointments"]) == len(staged)
    for row in staged[:50]:
        visit = visits[row["_source_key"].split(":", 1)[1]]
        local = datetime.strptime(f"{visit['appointment_date']} {visit['start_time']}", "%d/%m/%Y %H:%M")
        expected = local.replace(tzinfo=ZoneInfo("Europe/London")).astimezone(UTC)
        assert row["from_date"] == expected.strftime("%Y-%m-%dT%H:%M:%SZ")


def _auth(sandbox: Any) -> dict[str, str]:
    return {"Authorization": f"Token token={sandbox.api_key}"}
