"""The Dagster instance on PostgreSQL (deploy/dagster-postgres.yaml, CLINIC_DAGSTER_STORAGE=postgres)
against a real server: runs and materializations land in its database and read back from it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

from clinic_pipeline.assets.resources import pipeline_resources
from clinic_pipeline.dagster_instance import POSTGRES_ENV, POSTGRES_INSTANCE_YAML, dagster_home
from clinic_pipeline.definitions import ALL_ASSETS, ALL_CHECKS
from clinic_pipeline.samples import copy_fixture
from clinic_pipeline.settings import ConfigurationError, load_settings
from clinic_pipeline.source.inventory import read_inventory
from clinic_pipeline_tests.servers import PASSWORD, USER, PostgresCluster

REPOSITORY_INSTANCE_YAML = Path(__file__).parents[1] / "dagster.yaml"


@pytest.fixture
def postgres_env(postgres_cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch) -> str:
    """The DAGSTER_PG_* variables for a new database; its name."""
    database = postgres_cluster.create_database()
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("CLINIC_DAGSTER_STORAGE", "postgres")
    for name, value in zip(
        POSTGRES_ENV, (postgres_cluster.host, str(postgres_cluster.port), USER, PASSWORD, database), strict=True
    ):
        monkeypatch.setenv(name, value)
    return database


def test_runs_and_materializations_are_stored_in_postgres(
    postgres_env: str, postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    settings = load_settings(clinic_data_dir=str(tmp_path / "data"), clinic_source=str(copy_fixture(tmp_path / "src")))
    home = dagster_home(settings)
    assert home == (tmp_path / "data" / "dagster-postgres").resolve()
    assert PASSWORD not in (home / "dagster.yaml").read_text()
    resources = pipeline_resources(clinic_source=settings.clinic_source, clinic_data_dir=str(settings.clinic_data_dir))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        runs = [
            dg.materialize(
                [*ALL_ASSETS, *ALL_CHECKS], selection=["schema_inventory"], resources=resources, instance=instance
            )
            for _ in range(2)
        ]
        assert all(r.success for r in runs)
        stored = instance.get_latest_materialization_event(dg.AssetKey("schema_inventory"))
        assert stored is not None and stored.run_id == runs[-1].run_id
        assert stored.asset_materialization is not None
        inventory = read_inventory(settings.paths.inventory_path)
        assert stored.asset_materialization.metadata["tables"].value == len(inventory.tables) > 0
        assert stored.asset_materialization.metadata["rows"].value == sum(t.row_count for t in inventory.tables)
        assert {r.run_id for r in instance.get_runs()} == {r.run_id for r in runs}
        for run in runs:
            assert PASSWORD not in str(instance.all_logs(run.run_id))

    # The rows are in the server's database, not in a SQLite file under the home.
    with postgres_cluster.connect(postgres_env) as conn:
        stored_runs = conn.execute("SELECT run_id, status FROM runs ORDER BY id").fetchall()
        materializations = conn.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        ).fetchone()
    assert stored_runs == [(r.run_id, "SUCCESS") for r in runs]
    assert materializations == (2,)
    assert not list(home.rglob("*.db"))


def test_the_postgres_instance_config_matches_the_repository_pools_and_needs_its_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ours, repository = (yaml.safe_load(p.read_text()) for p in (POSTGRES_INSTANCE_YAML, REPOSITORY_INSTANCE_YAML))
    assert ours["concurrency"] == repository["concurrency"]
    connection = ours["storage"]["postgres"]["postgres_db"]
    assert {v["env"] for v in connection.values() if isinstance(v, dict)} == set(POSTGRES_ENV)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    for name in POSTGRES_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_PG_HOST", "127.0.0.1")
    settings = load_settings(clinic_data_dir=str(tmp_path / "data"), clinic_dagster_storage="postgres")
    with pytest.raises(ConfigurationError, match="needs DAGSTER_PG_PORT, DAGSTER_PG_USER, DAGSTER_PG_PASSWORD"):
        dagster_home(settings)
    # The default instance is unchanged: SQLite under data/dagster, from the repository's dagster.yaml.
    monkeypatch.chdir(REPOSITORY_INSTANCE_YAML.parent)
    default = dagster_home(load_settings(clinic_data_dir=str(tmp_path / "data")))
    assert default == (tmp_path / "data" / "dagster").resolve()
    assert yaml.safe_load((default / "dagster.yaml").read_text()) == repository
