"""What a data engineer reads in the Dagster UI: owners, kinds, tags and code versions on every asset,
Markdown metadata of Dagster's own types, and the loaded objects' blocking checks (green on a clean run,
red with the count and the reason when a staged record is neither loaded nor listed)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clinic_pipeline.assets.catalog import OWNERS
from clinic_pipeline.assets.load import LOADED_CHECK, _check_result
from clinic_pipeline.assets.resources import resources_settings
from clinic_pipeline.definitions import build_definitions
from clinic_pipeline.load.load_check import UNLISTED, check_loaded
from clinic_pipeline.load.state import AuditEntry, IdMapRow, open_state
from clinic_pipeline.model.objects import STAGED_OBJECTS
from clinic_pipeline_tests.e2e.flow import confirm_and_sign_off, full_load, generated_clinic, materialize

TAG_PART = r"^[A-Za-z0-9_.-]{0,63}$"


def _asset_nodes(cutover: datetime | None) -> Iterator[Any]:
    graph = build_definitions(cutover_start=cutover).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        yield graph.get(key)


@pytest.mark.parametrize("cutover", [None, datetime(2026, 11, 1, tzinfo=UTC)], ids=["full", "with_delta"])
def test_every_asset_has_owners_kinds_tags_and_a_code_version(cutover: datetime | None) -> None:
    nodes = list(_asset_nodes(cutover))
    assert len(nodes) >= 6 + 2 * len(STAGED_OBJECTS) + 3
    for node in nodes:
        name = node.key.to_user_string()
        assert list(node.owners) == OWNERS == ["team:clinic-migration"], name
        kinds = {k.removeprefix("dagster/kind/") for k in node.tags if k.startswith("dagster/kind/")}
        assert kinds, name
        tags = {k: v for k, v in node.tags.items() if not k.startswith("dagster/")}
        assert tags.get("stage"), name
        for key, value in tags.items():
            assert re.match(TAG_PART, key) and re.match(TAG_PART, value), (name, key, value)
        assert node.code_version and node.code_version.strip(), name
        for obj in STAGED_OBJECTS:
            if name.endswith((f"staged_{obj.name}", f"loaded_{obj.name}")):
                assert tags["object"] == obj.name, name
                assert tags.get("delta") == ("true" if name.startswith("delta_") else None), name
        if "loaded_" in name:
            assert {"freshsales", "duckdb"} <= kinds, name
        if "staged_" in name:
            assert {"duckdb", "parquet"} <= kinds, name


@pytest.mark.parametrize("cutover", [None, datetime(2026, 11, 1, tzinfo=UTC)], ids=["full", "with_delta"])
def test_every_loaded_asset_carries_one_blocking_load_check(cutover: datetime | None) -> None:
    loaded = [n for n in _asset_nodes(cutover) if "loaded_" in n.key.to_user_string()]
    assert len(loaded) == len(STAGED_OBJECTS) * (1 if cutover is None else 2)
    for node in loaded:
        specs = list(node.assets_def.check_specs)
        assert [(s.name, s.blocking, s.asset_key) for s in specs] == [(LOADED_CHECK, True, node.key)]


# ---- the load check on a hand-made state: green, yellow, red -----------------------------------


def _state_with(tmp_path: Path, mapped: list[str]) -> Path:
    db = tmp_path / "state" / "migration.duckdb"
    with open_state(db) as state:
        state.record_batch(
            obj="contacts",
            run_id="run-1",
            partition=None,
            mapped=[IdMapRow(key, i + 1, "hash") for i, key in enumerate(mapped)],
            audit=[AuditEntry("create", "created", key, i + 1) for i, key in enumerate(mapped)],
        )
    return db


def _staged(tmp_path: Path, keys: list[str]) -> Path:
    path = tmp_path / "staged" / "contacts.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"_source_key": keys, "last_name": ["PHI-NAME"] * len(keys)}), path)
    return path


def _rejected(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "rejected" / "contacts.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _quarantine(tmp_path: Path) -> Path:
    path = tmp_path / "quarantine" / "contacts.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"_source_key": ["patients:9"], "reason": ["missing last_name"]}), path)
    return path


def test_a_clean_load_is_green(tmp_path: Path) -> None:
    db = _state_with(tmp_path, ["patients:1", "patients:2"])
    with open_state(db, read_only=True) as state:
        check = check_loaded(
            state,
            "contacts",
            staged=_staged(tmp_path, ["patients:1", "patients:2"]),
            rejected=tmp_path / "rejected" / "contacts.jsonl",  # not written: nothing rejected
            quarantine=_quarantine(tmp_path),
        )
    assert (check.staged, check.loaded, check.listed, check.unaccounted) == (2, 2, 0, 0)
    assert (check.quarantined, check.quarantine_reasons) == (1, {"missing last_name": 1})
    result = _check_result(check)
    assert result.passed and result.description == "2 of 2 staged contacts records loaded"
    summary = result.metadata["summary"]
    assert isinstance(summary, dg.MarkdownMetadataValue)
    assert "| loaded (in the id map) | 2 |" in summary.value and "| missing last_name | 1 |" in summary.value


def test_records_listed_with_their_reason_warn_and_unlisted_ones_fail_red(tmp_path: Path) -> None:
    db = _state_with(tmp_path, ["patients:1"])
    staged = _staged(tmp_path, ["patients:1", "patients:2", "patients:3", "patients:4"])
    rejected = _rejected(
        tmp_path,
        [
            {"source_key": "patients:2", "outcome": "held_back", "reason": "parent sales_account not loaded"},
            {"source_key": "patients:3", "outcome": "rejected", "http_status": 422, "reason": "PHI-NAME invalid"},
        ],
    )
    with open_state(db, read_only=True) as state:
        red = check_loaded(state, "contacts", staged=staged, rejected=rejected)
        listed_only = check_loaded(
            state, "contacts", staged=_staged(tmp_path, ["patients:1", "patients:2"]), rejected=rejected
        )
    assert (red.staged, red.loaded, red.listed, red.unaccounted) == (4, 1, 2, 1)
    assert red.not_loaded == {
        "held back: parent sales_account not loaded": 1,
        "rejected (HTTP 422)": 1,  # the API's words may quote values: never shown
        UNLISTED: 1,
    }
    failed = _check_result(red)
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.description.startswith("1 of 4 staged contacts records are neither loaded nor listed")
    assert failed.metadata["unaccounted"] == dg.MetadataValue.int(1)
    assert f"| {UNLISTED} | 1 |" in failed.metadata["summary"].value

    warned = _check_result(listed_only)
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN  # WARN never blocks
    assert warned.description == (
        "1 of 2 staged contacts records loaded; 1 listed with their reason "
        "(held back: parent sales_account not loaded 1)"
    )
    for result in (failed, warned):
        text = json.dumps({k: str(v.value) for k, v in result.metadata.items()}) + (result.description or "")
        assert "PHI-NAME" not in text and "patients:" not in text


# ---- a small migration, materialized: the metadata an engineer sees, the checks green -----------


def _metadata_text(metadata: dict[str, dg.MetadataValue]) -> str:
    return " ".join(f"{k}={v.value}" for k, v in metadata.items())


def test_a_small_migration_shows_markdown_metadata_and_green_load_checks(tmp_path: Path, sandbox: Any) -> None:
    started = time.monotonic()
    resources, _source = generated_clinic(tmp_path, sandbox)
    sample = confirm_and_sign_off(resources, sandbox)
    result = full_load(resources)
    assert result.success, [e.step_key for e in result.get_step_failure_events()]

    materialized: dict[str, dict[str, dg.MetadataValue]] = {}
    for run in (sample, result):
        for event in run.get_asset_materialization_events():
            assert event.asset_key is not None
            materialized[event.asset_key.to_user_string()] = event.step_materialization_data.materialization.metadata
    for name, metadata in materialized.items():
        assert all(v is not None and v.value is not None for v in metadata.values()), name

    report = materialized["validation_report"]
    assert report["ok"].value is True
    objects = report["objects"]
    assert isinstance(objects, dg.MarkdownMetadataValue)
    assert objects.value.startswith("| object | checked | found once | missing | duplicated |")
    contacts_row = next(line for line in objects.value.splitlines() if line.startswith("| contacts |"))
    checked = report["contacts_keys_checked"].value
    assert f"| {checked} of {checked} checked |" in contacts_row
    assert isinstance(report["html"], dg.PathMetadataValue) and report["html"].value.endswith(".html")
    assert Path(report["html"].value).is_relative_to(tmp_path / "data")

    for obj in STAGED_OBJECTS:
        staged = materialized[f"staged_{obj.name}"]
        assert isinstance(staged["reconciliation"], dg.MarkdownMetadataValue), obj.name
        assert ("quarantine" in staged) == (staged["quarantined_rows"].value > 0), obj.name
        loaded = materialized[f"loaded_{obj.name}"]
        assert isinstance(loaded["outcomes"], dg.MarkdownMetadataValue), obj.name
        assert isinstance(loaded["created"], dg.IntMetadataValue), obj.name
        listed = loaded["rejected"].value + loaded["held_back"].value + loaded["unknown"].value
        assert ("rejected_file" in loaded) == (listed > 0), obj.name
        if "records_per_request" in loaded:
            assert loaded["records_per_request"].value > 0 and loaded["requests"].value > 0, obj.name
        written = sum(loaded[o].value for o in ("created", "updated", "adopted", "rejected"))
        if written:  # a load that wrote records shows what it cost, or nothing (never "0 requests")
            assert "requests" not in loaded or loaded["requests"].value > 0, obj.name
    assert isinstance(materialized["sample_diff"]["by_object"], dg.MarkdownMetadataValue)
    plan = materialize(resources, ["mapping_plan"]).asset_materializations_for_node("mapping_plan")[0].metadata
    assert plan["written"].value is False and isinstance(plan["targets"], dg.MarkdownMetadataValue)

    checks = {
        e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations() if e.check_name == LOADED_CHECK
    }
    assert set(checks) == {f"loaded_{o.name}" for o in STAGED_OBJECTS}
    for name, evaluation in checks.items():
        assert evaluation.passed and evaluation.blocking, (name, evaluation.description)
        assert evaluation.metadata["unaccounted"].value == 0, name
        summary = evaluation.metadata["summary"]
        assert isinstance(summary, dg.MarkdownMetadataValue) and "staged records" in summary.value, name
    contacts = checks["loaded_contacts"]
    assert contacts.metadata["loaded"].value == contacts.metadata["staged"].value > 0

    # No PHI and no API key in anything the UI shows: not one staged email, nor the key.
    settings = resources_settings(resources)
    emails = {e for e in pq.read_table(settings.paths.staged_dir / "contacts.parquet").column("email").to_pylist() if e}
    assert emails
    shown = " ".join(_metadata_text(m) for m in materialized.values())
    shown += " ".join(_metadata_text(e.metadata) + (e.description or "") for e in checks.values())
    assert sandbox.api_key not in shown
    assert not [e for e in emails if e in shown]
    print(f"small migration: {time.monotonic() - started:.1f} s")
