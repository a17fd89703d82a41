"""Loading through injected faults (lost answers, 429s, 5xx) still ends with one record per patient."""

from pathlib import Path
from typing import Any

import httpx

from clinic_pipeline import steps
from clinic_pipeline.assets.resources import pipeline_resources, resources_settings
from clinic_pipeline.samples import copy_fixture
from clinic_pipeline_tests.e2e.flow import confirm_and_sign_off, full_load


def test_lost_answers_and_throttling_neither_duplicate_nor_lose_records(tmp_path: Path, sandbox: Any) -> None:
    resources = pipeline_resources(
        clinic_source=str(copy_fixture(tmp_path / "source")),
        clinic_data_dir=str(tmp_path / "data"),
        freshsales_base_url=sandbox.base_url,
        freshsales_api_key=sandbox.api_key,
    )
    settings = resources_settings(resources)
    confirm_and_sign_off(resources, sandbox)

    # A reset lands the write and loses the answer: the case the source key exists for.
    faults = {"rate_reset": 0.2, "rate_429": 0.05, "rate_5xx": 0.05, "seed": 7}
    httpx.post(f"{sandbox.root_url}/_sandbox/faults", json=faults, timeout=10).raise_for_status()
    full_load(resources)  # may fail part-way: what it confirmed is committed
    httpx.post(f"{sandbox.root_url}/_sandbox/faults", json={}, timeout=10).raise_for_status()
    rerun = full_load(resources)
    assert rerun.success, [e.step_key for e in rerun.get_step_failure_events()]

    snapshot = httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", timeout=30).json()
    keys = [c["external_id"] for c in snapshot["contacts"]]
    staged = steps.run_stage(settings, "contacts").staged_rows
    assert len(keys) == len(set(keys)) == staged
    account_keys = [a["custom_field"]["cf_source_key"] for a in snapshot["sales_accounts"]]
    assert len(account_keys) == len(set(account_keys)) == 3
    report = rerun.asset_materializations_for_node("validation_report")[0].metadata
    assert report["ok"].value is True
