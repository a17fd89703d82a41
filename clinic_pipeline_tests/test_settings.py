"""Settings come from the environment, are validated, and never print the API key."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinic_pipeline.settings import ConfigurationError, Settings

SECRET = "fs-live-0123456789abcdef"


def test_settings_read_the_environment_and_hide_the_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("FRESHSALES_BASE_URL", "https://clinic.myfreshworks.com/crm/sales/")
    monkeypatch.setenv("FRESHSALES_API_KEY", SECRET)
    monkeypatch.setenv("CLINIC_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("CUTOVER_START", "2026-11-20T18:00:00-06:00")
    settings = Settings()
    assert settings.freshsales_base_url == "https://clinic.myfreshworks.com/crm/sales"
    assert settings.paths.state_db_path == tmp_path / "d" / "state" / "migration.duckdb"
    assert settings.cutover_start is not None and settings.cutover_start.utcoffset() is not None
    for text in (str(settings), repr(settings), settings.model_dump_json()):
        assert SECRET not in text
    assert settings.require_freshsales()[1].get_secret_value() == SECRET


def test_missing_and_invalid_settings_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("CLINIC_SOURCE", "FRESHSALES_BASE_URL", "FRESHSALES_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigurationError, match="CLINIC_SOURCE"):
        Settings().require_source()
    with pytest.raises(ConfigurationError, match="FRESHSALES_BASE_URL"):
        Settings().require_freshsales()
    monkeypatch.setenv("FRESHSALES_BASE_URL", "clinic.myfreshworks.com")
    with pytest.raises(ValueError, match="must start with http"):
        Settings()
