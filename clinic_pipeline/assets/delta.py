"""`delta` group: the stage → load → validate chain again, hourly partitioned from CUTOVER_START.

Built by the same factories as the full run (one id map, one audit log). A sensor requests a window's
run once the window has closed and the source shows rows created/changed in it; run keys make each
window run once, and re-materializing any partition by hand is safe (idempotent upserts). Sources
without a cheap timestamp query use the hourly schedule instead, which runs every closed window.
"""

from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.catalog import OWNERS, asset_tags
from clinic_pipeline.assets.load import loaded_group
from clinic_pipeline.assets.resources import (
    FRESHSALES_POOL,
    ClinicResource,
    FreshsalesResource,
    operator_errors,
    settings_from,
)
from clinic_pipeline.assets.staging import quality_checks, staged_group
from clinic_pipeline.assets.verify import CODE_VERSION as VERIFY_CODE_VERSION
from clinic_pipeline.assets.verify import validation_metadata
from clinic_pipeline.delta.windows import WINDOW, closed_windows, partition_key
from clinic_pipeline.model.objects import STAGED_OBJECTS

PREFIX = "delta_"
GROUP = "delta"
# Rows written just before a window closed may reach an exported copy a little later.
GRACE = timedelta(minutes=5)


class DeltaDefinitions(NamedTuple):
    assets: list[dg.AssetsDefinition]
    checks: list[dg.AssetChecksDefinition]
    job: Any  # what define_asset_job returns; its class is not exported by dagster
    sensors: list[dg.SensorDefinition]
    schedules: list[dg.ScheduleDefinition]


def delta_definitions(cutover_start: datetime) -> DeltaDefinitions:
    """The delta group for hourly windows starting at `cutover_start`."""
    partitions = dg.HourlyPartitionsDefinition(
        start_date=cutover_start.astimezone(UTC).strftime("%Y-%m-%d-%H:00"), timezone="UTC"
    )
    staged = staged_group(prefix=PREFIX, group=GROUP, partitions_def=partitions)
    loaded = loaded_group(staged, prefix=PREFIX, group=GROUP, partitions_def=partitions)
    job = dg.define_asset_job(
        "delta_job", selection=dg.AssetSelection.groups(GROUP), partitions_def=partitions, tags={"delta": "true"}
    )

    @dg.sensor(
        job=job,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Requests each closed hourly window that shows source changes, once (run key = window).",
    )
    def delta_window_sensor(context: dg.SensorEvaluationContext, clinic: ClinicResource) -> dg.SensorResult:
        settings = clinic.settings()
        after = datetime.fromisoformat(context.cursor) if context.cursor else None
        requests, checked, last = [], 0, after
        for start in closed_windows(cutover_start, after, datetime.now(UTC) - GRACE):
            counts = steps.run_count_changes(settings, (start, start + WINDOW))
            checked, last = checked + 1, start
            changed = sum(counts.values())
            if changed:
                key = partition_key(start)
                requests.append(
                    dg.RunRequest(partition_key=key, run_key=f"delta:{key}", tags={"changed_rows": str(changed)})
                )
        cursor = last.isoformat() if last else context.cursor
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=cursor)
        reason = f"no source changes in {checked} closed window(s)" if checked else "no window has closed yet"
        return dg.SensorResult(skip_reason=reason, cursor=cursor)

    @dg.asset(
        name=f"{PREFIX}validation_report",
        group_name=GROUP,
        deps=list(loaded.values()),
        partitions_def=partitions,
        pool=FRESHSALES_POOL,
        kinds={"freshsales", "duckdb", "html"},
        owners=OWNERS,
        tags=asset_tags("verify", delta=True),
        code_version=VERIFY_CODE_VERSION,
        description="The window's records read back from Freshsales: found once by source key, links, counts "
        "(data/reports/delta/<window>/validation.html); `ok` and the discrepancies in its metadata.",
    )
    def delta_validation_report(
        context: dg.AssetExecutionContext, clinic: ClinicResource, freshsales: FreshsalesResource
    ) -> dg.MaterializeResult:
        settings = settings_from(clinic, freshsales)
        with operator_errors():
            report = steps.run_validation(settings, partition=context.partition_key)
        found = "no discrepancies" if report.ok else f"{len(report.discrepancies)} discrepancies"
        context.log.info(f"window {context.partition_key}: {found}")
        return dg.MaterializeResult(metadata=validation_metadata(report, settings.paths, context.partition_key))

    schedule = dg.build_schedule_from_partitioned_job(
        job,
        minute_of_hour=10,
        name="delta_hourly_schedule",
        description="Runs every closed hourly window at ten past the hour, for sources whose changes cannot be "
        "counted cheaply (the sensor runs only windows with changes).",
    )
    checks = [quality_checks(obj, staged[obj.name]) for obj in STAGED_OBJECTS]
    assets = [*staged.values(), *loaded.values(), delta_validation_report]
    return DeltaDefinitions(assets, checks, job, [delta_window_sensor], [schedule])
