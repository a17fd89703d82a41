"""Providers resolve to Freshsales users by email; the unresolved ones are listed, block, or take the fallback."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from clinic_pipeline import steps
from clinic_pipeline.settings import ConfigurationError, Settings

SAMPLE = Path(__file__).parent / "fixtures" / "sample_shape"


def _settings(tmp_path: Path, sandbox: Any, **extra: str) -> Settings:
    source = tmp_path / "source"
    shutil.copytree(SAMPLE, source)
    settings = Settings(
        clinic_source=str(source),
        clinic_data_dir=tmp_path / "data",
        freshsales_base_url=sandbox.base_url,
        freshsales_api_key=sandbox.api_key,
        **extra,
    )
    steps.run_inventory(settings)
    steps.run_propose(settings)
    steps.run_confirm(settings, "tester")
    return settings


def _add_user(sandbox: Any, email: str, *, active: bool) -> None:
    body = {"display_name": email.split("@")[0], "email": email, "is_active": active}
    httpx.post(f"{sandbox.root_url}/_sandbox/users", json=body, timeout=10).raise_for_status()


def test_unresolved_staff_block_with_a_list(tmp_path: Path, sandbox: Any) -> None:
    _add_user(sandbox, "Ann.Smith@clinic.example", active=True)  # case differs from the source: still a match
    _add_user(sandbox, "cara.lee@clinic.example", active=False)
    settings = _settings(tmp_path, sandbox)
    with pytest.raises(ConfigurationError) as failure:
        steps.run_owner_map(settings)
    message = str(failure.value)
    assert "2 providers/staff have no active Freshsales user" in message
    assert "2 (no_email)" in message and "3 (inactive_user)" in message
    entries = {r["source_key"]: r for r in pq.read_table(settings.paths.plan_dir / "owner_map.parquet").to_pylist()}
    assert entries["1"]["status"] == "resolved" and entries["1"]["user_id"] is not None
    assert (entries["2"]["status"], entries["3"]["status"]) == ("no_email", "inactive_user")
    listing = settings.paths.plan_dir / "owner_map.md"
    assert "no email in the source" in listing.read_text() and stat.S_IMODE(listing.stat().st_mode) == 0o600


def test_the_fallback_owner_takes_the_unresolved(tmp_path: Path, sandbox: Any) -> None:
    _add_user(sandbox, "ann.smith@clinic.example", active=True)
    settings = _settings(tmp_path, sandbox, clinic_fallback_owner_email="ada.admin@clinic.example")
    owner_map = steps.run_owner_map(settings)
    assert owner_map.counts() == {"resolved": 1, "no_email": 1, "no_user": 1}
    assert {e.user_id for e in owner_map.entries if e.status != "resolved"} == {owner_map.fallback_owner_id}


def test_an_inactive_fallback_owner_is_refused(tmp_path: Path, sandbox: Any) -> None:
    settings = _settings(tmp_path, sandbox, clinic_fallback_owner_email="gone.away@clinic.example")
    with pytest.raises(ConfigurationError, match="not an active Freshsales user"):
        steps.run_owner_map(settings)
