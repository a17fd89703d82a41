"""Dagster Definitions: the one place that wires assets, checks, jobs, sensors and resources."""

from datetime import datetime
from typing import Any

import dagster as dg

from clinic_pipeline.assets.alerts import alert_sensors
from clinic_pipeline.assets.assessment import migration_assessment
from clinic_pipeline.assets.delta import delta_definitions
from clinic_pipeline.assets.inventory import schema_inventory
from clinic_pipeline.assets.load import loaded_assets
from clinic_pipeline.assets.plan import (
    confirmed_mapping,
    custom_field_checklist,
    freshsales_schema,
    mapping_plan,
    owner_map,
)
from clinic_pipeline.assets.repair import repair_job
from clinic_pipeline.assets.resources import ClinicResource, FreshsalesResource
from clinic_pipeline.assets.rollback import rollback_job
from clinic_pipeline.assets.sample import sample_diff
from clinic_pipeline.assets.staging import staged_assets, staged_checks
from clinic_pipeline.assets.verify import (
    validation_has_no_discrepancies,
    validation_report,
    workflow_rebuild_reference,
)
from clinic_pipeline.settings import ConfigurationError, load_settings

ALL_ASSETS = [
    schema_inventory,
    mapping_plan,
    migration_assessment,
    confirmed_mapping,
    custom_field_checklist,
    owner_map,
    freshsales_schema,
    *staged_assets.values(),
    sample_diff,
    *loaded_assets.values(),
    validation_report,
    workflow_rebuild_reference,
]
ALL_CHECKS = [*staged_checks, validation_has_no_discrepancies]


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Everything from the environment; the API key through EnvVar, so Dagster shows it as a secret."""
    return {
        "clinic": ClinicResource(),
        "freshsales": FreshsalesResource(api_key=dg.EnvVar("FRESHSALES_API_KEY")),
    }


def _cutover_start() -> datetime | None:
    try:
        return load_settings().cutover_start
    except ConfigurationError:
        return None  # an invalid environment is reported by the assets that need it, one line each


def _alerts_enabled() -> bool:
    try:
        return load_settings().alerts_enabled
    except ConfigurationError:
        return False  # the alert sensors, turned on, skip with the one-line reason


def build_definitions(
    resources: dict[str, dg.ConfigurableResource] | None = None, cutover_start: datetime | None = None
) -> dg.Definitions:
    """Everything; the delta group (assets, job, sensor, schedule) only once CUTOVER_START is known."""
    assets, checks = list(ALL_ASSETS), list(ALL_CHECKS)
    jobs: list[Any] = [rollback_job, repair_job]
    sensors: list[dg.SensorDefinition] = []
    schedules: list[dg.ScheduleDefinition] = []
    start = cutover_start or _cutover_start()
    if start is not None:
        delta = delta_definitions(start)
        assets += delta.assets
        checks += delta.checks
        jobs.append(delta.job)
        sensors, schedules = delta.sensors, delta.schedules
    sensors = [*sensors, *alert_sensors(enabled=_alerts_enabled())]
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        sensors=sensors,
        schedules=schedules,
        resources=resources or default_resources(),
    )


defs = build_definitions()
