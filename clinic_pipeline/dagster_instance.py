"""The Dagster instance the CLI's runs and `clinic-pipeline ui` record in: DAGSTER_HOME as the engineer
set it (their instance, left as they configured it), or one under the data folder, chosen by
CLINIC_DAGSTER_STORAGE:
- `sqlite` (the default): data/dagster with the repository's dagster.yaml (the freshsales_api pool limit);
- `postgres`: data/dagster-postgres with deploy/dagster-postgres.yaml, whose runs and event logs live in
  the PostgreSQL database the DAGSTER_PG_* variables name (the password stays in the environment).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from clinic_pipeline.settings import ConfigurationError, Settings

POSTGRES_INSTANCE_YAML = Path(__file__).parent / "deploy" / "dagster-postgres.yaml"
# The variables POSTGRES_INSTANCE_YAML reads (`env:`): Dagster itself would only fail on the first missing one.
POSTGRES_ENV = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")


def dagster_home(settings: Settings) -> Path:
    """The instance's folder, its dagster.yaml in place (see the module's docstring)."""
    if os.environ.get("DAGSTER_HOME"):
        home = Path(os.environ["DAGSTER_HOME"]).resolve()
        home.mkdir(parents=True, exist_ok=True)
        return home
    if settings.clinic_dagster_storage == "postgres":
        return _postgres_home(settings.paths.dagster_home.with_name("dagster-postgres").resolve())
    home = settings.paths.dagster_home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        if Path("dagster.yaml").exists():
            shutil.copy("dagster.yaml", config)
        else:
            # Outside the repository: Dagster's defaults (the state store's own lock keeps loads apart),
            # written out so Dagster does not warn about a missing file, nor print its telemetry notice.
            config.write_text("telemetry:\n  enabled: false\n")
    return home


def _postgres_home(home: Path) -> Path:
    missing = [name for name in POSTGRES_ENV if not os.environ.get(name)]
    if missing:
        raise ConfigurationError(f"CLINIC_DAGSTER_STORAGE=postgres needs {', '.join(missing)} set")
    home.mkdir(parents=True, exist_ok=True)
    # Copied every time: the file holds no secret, and a newer release's settings apply at once.
    shutil.copy(POSTGRES_INSTANCE_YAML, home / "dagster.yaml")
    return home
