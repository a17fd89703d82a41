"""Alert sensors for the night shift: a failed run, and a validation report with discrepancies.

Both gather ids, step names, error class names and counts from Dagster and hand them to
`clinic_pipeline.alerts`, which builds the message and sends it. Off unless CLINIC_ALERT_WEBHOOK_URL (or
CLINIC_ALERT_EMAIL_TO with CLINIC_ALERT_SMTP_HOST) is set: then they start RUNNING with the code location;
without it they are STOPPED and, turned on anyway, skip with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import ValidationError

from clinic_pipeline import alerts
from clinic_pipeline.assets.resources import ClinicResource
from clinic_pipeline.reports.validation import ValidationReport
from clinic_pipeline.settings import ConfigurationError, Settings, load_settings

VALIDATION_ASSET = dg.AssetKey("validation_report")


def _settings(**overrides: Any) -> Settings | dg.SkipReason:
    try:
        settings = load_settings(**overrides)
    except ConfigurationError as exc:
        return dg.SkipReason(f"no alert sent: {exc}")
    return settings if settings.alerts_enabled else dg.SkipReason(alerts.DISABLED)


def _error_class(error: Any) -> str:
    """The innermost cause's class name (the user code's exception, not Dagster's wrapper)."""
    while error is not None and getattr(error, "cause", None) is not None:
        error = error.cause
    return (getattr(error, "cls_name", None) or "unknown") if error is not None else "unknown"


def _failed_steps(context: dg.RunFailureSensorContext) -> list[alerts.StepFailure]:
    failed = [
        alerts.StepFailure(step=event.step_key or "run", error_class=_error_class(event.step_failure_data.error))
        for event in context.get_step_failure_events()
    ]
    if not failed:  # the run failed outside a step (start-up, a resource, a canceled dependency)
        data = context.failure_event.event_specific_data
        error = getattr(data, "error", None)
        if error is not None:
            failed.append(alerts.StepFailure(step="run", error_class=_error_class(error)))
    return failed


def _run_counts(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    stats = instance.get_run_stats(run_id)
    return {
        "steps_succeeded": stats.steps_succeeded,
        "steps_failed": stats.steps_failed,
        "materializations": stats.materializations,
    }


def alert_sensors(enabled: bool = False) -> list[dg.SensorDefinition]:
    """The two alert sensors; `enabled` (alerts configured when the code location loads) starts them."""
    status = dg.DefaultSensorStatus.RUNNING if enabled else dg.DefaultSensorStatus.STOPPED

    @dg.run_failure_sensor(
        name="alert_on_run_failure",
        default_status=status,
        monitor_all_code_locations=True,  # also the CLI's in-process runs, recorded without a code location
        description="Tells the alert webhook / email about a failed run: ids, failed steps, error classes, "
        "counts (never error messages).",
    )
    def alert_on_run_failure(context: dg.RunFailureSensorContext) -> dg.SkipReason | None:
        settings = _settings()
        if isinstance(settings, dg.SkipReason):
            return settings
        run = context.dagster_run
        alert = alerts.run_failure_alert(
            run_id=run.run_id,
            job_name=run.job_name,
            failed_steps=_failed_steps(context),
            counts=_run_counts(context.instance, run.run_id),
            webserver_url=settings.dagster_webserver_url,
        )
        sent = alerts.deliver(alert, settings)
        context.log.info(f"alert on run {run.run_id} sent by {', '.join(sent)}")
        return None  # None: the next failed run is handled in the same tick

    @dg.asset_sensor(
        asset_key=VALIDATION_ASSET,
        name="alert_on_validation_deviation",
        default_status=status,
        minimum_interval_seconds=60,
        description="Tells the alert webhook / email when a new validation report lists discrepancies "
        "(counts and the report's path).",
    )
    def alert_on_validation_deviation(
        context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry, clinic: ClinicResource
    ) -> dg.SkipReason:
        settings = _settings(**clinic.overrides())
        if isinstance(settings, dg.SkipReason):
            return settings
        materialization = asset_event.asset_materialization
        metadata = materialization.metadata if materialization is not None else {}
        run_id = asset_event.run_id or None
        ok = metadata.get("ok")
        # The files the materialization names (its run may have had another data folder), else the settings'.
        json_path = _path(metadata, "json") or settings.paths.validation_json
        html_path = _path(metadata, "html") or settings.paths.validation_html
        report = _read_report(json_path)
        # The materialization's own counts first (the file may be rewritten since); the file's otherwise.
        discrepancies = metadata.get("discrepancies")
        if discrepancies is not None:
            count = int(discrepancies.value)  # type: ignore[arg-type]
        else:
            count = len(report.discrepancies) if report is not None else 0
        passed = bool(ok.value) if ok is not None else count == 0
        if passed and not count:
            return dg.SkipReason(f"validation report of run {run_id} has no discrepancies: no alert")
        alert = alerts.validation_alert(
            discrepancies=count,
            report=report,
            report_path=str(html_path),
            run_id=run_id,
            webserver_url=settings.dagster_webserver_url,
        )
        sent = alerts.deliver(alert, settings)  # raises on failure: the cursor stays, the next tick retries
        return dg.SkipReason(f"alert sent by {', '.join(sent)}: {count} discrepancies in the report of run {run_id}")

    return [alert_on_run_failure, alert_on_validation_deviation]


def _path(metadata: Mapping[str, Any], name: str) -> Path | None:
    value = metadata.get(name)
    return Path(value.value) if isinstance(value, dg.PathMetadataValue) and value.value else None


def _read_report(path: Path) -> ValidationReport | None:
    try:
        return ValidationReport.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        return None  # the alert still goes out, with the materialization's counts
