"""The whole graph on a Dagster instance of the engineer's own: no project dagster.yaml, no pool limit,
the default multiprocess executor running loads side by side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from clinic_pipeline.demo import DEMO_FALLBACK_OWNER, create_custom_fields_as_admin
from clinic_pipeline.settings import Settings


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=900, check=False)


def test_materializing_every_asset_on_a_bare_instance_succeeds(tmp_path: Path, sandbox: Any) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLINIC_", "FRESHSALES_", "DAGSTER_"))} | {
        "CLINIC_DATA_DIR": str(tmp_path / "data"),
        "CLINIC_SOURCE": str(tmp_path / "export"),
        "FRESHSALES_BASE_URL": sandbox.base_url,
        "FRESHSALES_API_KEY": sandbox.api_key,
        "CLINIC_FALLBACK_OWNER_EMAIL": DEMO_FALLBACK_OWNER,
        "DAGSTER_HOME": str(home),
    }
    cli = [sys.executable, "-m", "clinic_pipeline"]
    for args in (
        ["sample-data", "--out", str(tmp_path / "export"), "--patients", "30", "--seed", "5"],
        ["inventory"],
        ["propose-mapping"],
        ["confirm-mapping", "--by", "Dr. Reviewer"],
    ):
        result = _run([*cli, *args], env, tmp_path)
        assert result.returncode == 0, (args, result.stderr[-2000:])
    settings = Settings(clinic_data_dir=tmp_path / "data", clinic_source=str(tmp_path / "export"))
    create_custom_fields_as_admin(settings, sandbox.root_url, sandbox.api_key, echo=lambda _: None)
    for args in (["migrate", "--sample", "100"], ["sign-off", "--by", "Dr. Reviewer"]):
        result = _run([*cli, *args], env, tmp_path)
        assert result.returncode == 0, (args, result.stderr[-2000:])
    assert not (home / "dagster.yaml").exists()

    everything = [sys.executable, "-m", "dagster", "asset", "materialize", "--select", "*"]
    result = _run([*everything, "-m", "clinic_pipeline.definitions"], env, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Conflicting lock" not in output and "RUN_SUCCESS" in output
    report = json.loads(settings.paths.validation_json.read_text(encoding="utf-8"))
    assert report["ok"] is True, report["discrepancies"]
    assert sandbox.api_key not in output
