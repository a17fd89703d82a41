"""Alerts for the night shift: a failed run or a validation report with discrepancies, told to a webhook
(HTTP POST of JSON) and, optionally, by email through an SMTP relay.

An alert carries run ids, job and step names, error class names, counts and paths: nothing else. It is
never built from an exception's message (it may quote a record's values) or from record values, and the
API key is nowhere near it. The webhook URL is a secret (Slack-style URLs carry their token): errors name
its host only. Off unless `CLINIC_ALERT_WEBHOOK_URL` or `CLINIC_ALERT_EMAIL_TO` is set.

No Dagster here: the sensors in `clinic_pipeline/assets/alerts.py` gather the ids and counts and call in.
"""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.reports.validation import ValidationReport
from clinic_pipeline.settings import Settings

USER_AGENT = "clinic-pipeline-alerts"
DEFAULT_TIMEOUT = 10.0
DEFAULT_ATTEMPTS = 3


class AlertDeliveryError(OperatorError):
    """The webhook or the SMTP relay did not take the alert; the message names the host, never the URL."""


class StepFailure(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    step: str
    error_class: str  # the class name only, never the message


class ObjectCounts(BaseModel):
    """One object's line of the validation report, counts only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    object: str
    staged: int
    in_id_map: int
    freshsales_total: int | None
    not_loaded: int
    keys_checked: int
    keys_missing: int
    keys_duplicated: int
    links_broken: int


class Alert(BaseModel):
    """The JSON body POSTed to the webhook (`text` makes it readable as a Slack/Teams message as is)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Literal["clinic_pipeline"] = "clinic_pipeline"
    kind: Literal["run_failure", "validation_deviation"]
    text: str
    run_id: str | None = None
    run_url: str | None = None
    job_name: str | None = None
    failed_steps: list[StepFailure] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    objects: list[ObjectCounts] = Field(default_factory=list)
    report_path: str | None = None
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def run_url(webserver_url: str | None, run_id: str) -> str | None:
    """The run's page in the Dagster UI, when the UI's base URL is configured."""
    return f"{webserver_url.rstrip('/')}/runs/{run_id}" if webserver_url else None


def _where(run_id: str, url: str | None) -> str:
    return url or f"run {run_id}"


def run_failure_alert(
    *,
    run_id: str,
    job_name: str,
    failed_steps: Sequence[StepFailure],
    counts: dict[str, int],
    webserver_url: str | None = None,
) -> Alert:
    """A failed run: its id (or UI link), job, failed steps with their error classes, step counts."""
    url = run_url(webserver_url, run_id)
    steps = ", ".join(f"{f.step} ({f.error_class})" for f in failed_steps) or "no step failed (the run itself)"
    counted = ", ".join(f"{k} {v}" for k, v in counts.items())
    text = f"clinic_pipeline: run of {job_name} failed: {_where(run_id, url)}. Failed steps: {steps}."
    if counted:
        text += f" Counts: {counted}."
    return Alert(
        kind="run_failure",
        text=text,
        run_id=run_id,
        run_url=url,
        job_name=job_name,
        failed_steps=list(failed_steps),
        counts=dict(counts),
    )


def object_counts(report: ValidationReport) -> list[ObjectCounts]:
    return [
        ObjectCounts(
            object=o.object,
            staged=o.staged,
            in_id_map=o.in_id_map,
            freshsales_total=o.freshsales_total,
            not_loaded=o.not_loaded,
            keys_checked=o.keys_checked,
            keys_missing=o.keys_missing,
            keys_duplicated=o.keys_duplicated,
            links_broken=o.links_broken,
        )
        for o in report.objects
    ]


def validation_alert(
    *,
    discrepancies: int,
    report: ValidationReport | None,
    report_path: str | None,
    run_id: str | None,
    webserver_url: str | None = None,
) -> Alert:
    """A validation report with discrepancies: their number and each object's counts (the discrepancy
    lines themselves stay in the report, which the operator opens at `report_path`)."""
    url = run_url(webserver_url, run_id) if run_id else None
    objects = object_counts(report) if report is not None else []
    deviating = [o for o in objects if o.not_loaded or o.keys_missing or o.keys_duplicated or o.links_broken]
    counts = {
        "discrepancies": discrepancies,
        "objects": len(objects),
        "objects_deviating": len(deviating),
        "not_loaded": sum(o.not_loaded for o in objects),
        "keys_missing": sum(o.keys_missing for o in objects),
        "keys_duplicated": sum(o.keys_duplicated for o in objects),
        "links_broken": sum(o.links_broken for o in objects),
    }
    text = f"clinic_pipeline: the validation report lists {discrepancies} discrepancies"
    if deviating:
        text += " (" + ", ".join(f"{o.object}: {o.not_loaded} not loaded, {o.keys_missing} missing" for o in deviating)
        text += ")"
    if run_id:
        text += f"; {_where(run_id, url)}"
    if report_path:
        text += f"; report: {report_path}"
    return Alert(
        kind="validation_deviation",
        text=text + ".",
        run_id=run_id,
        run_url=url,
        job_name=None,
        counts=counts,
        objects=objects,
        report_path=report_path,
    )


# ---- delivery ---------------------------------------------------------------------------------


def _host(url: str) -> str:
    return urlsplit(url).hostname or "the webhook"


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return False


def post_webhook(
    url: SecretStr,
    alert: Alert,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    attempts: int = DEFAULT_ATTEMPTS,
    backoff: float = 0.5,
) -> int:
    """POST the alert as JSON; retried on a connection error, 429 and 5xx. Returns the HTTP status."""
    secret = url.get_secret_value()
    body = alert.model_dump(mode="json")
    try:
        with httpx.Client(timeout=timeout, headers={"User-Agent": USER_AGENT}) as client:
            for attempt in Retrying(
                retry=retry_if_exception(_retryable),
                stop=stop_after_attempt(attempts),
                wait=wait_exponential(multiplier=backoff, max=10),
                reraise=True,
            ):
                with attempt:
                    response = client.post(secret, json=body)
                    response.raise_for_status()
            return response.status_code
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        raise AlertDeliveryError(f"alert webhook at {_host(secret)} answered HTTP {status}") from None
    except httpx.HTTPError as exc:
        # httpx's own message may quote the URL (and its token): the class name only.
        raise AlertDeliveryError(f"alert webhook at {_host(secret)} unreachable ({type(exc).__name__})") from None


def send_email(
    alert: Alert,
    *,
    host: str,
    port: int,
    sender: str,
    recipients: Sequence[str],
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """The alert's text as a plain email through an (unauthenticated) SMTP relay, the JSON attached."""
    message = EmailMessage()
    message["Subject"] = f"[clinic_pipeline] {alert.kind.replace('_', ' ')}" + (
        f" ({alert.run_id})" if alert.run_id else ""
    )
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message.set_content(alert.text + "\n")
    message.add_attachment(alert.model_dump_json(indent=2).encode(), "application", "json", filename="alert.json")
    try:
        with smtplib.SMTP(host, port, timeout=timeout) as smtp:
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise AlertDeliveryError(f"alert email via {host}:{port} not sent ({type(exc).__name__})") from None


def deliver(alert: Alert, settings: Settings, *, attempts: int = DEFAULT_ATTEMPTS, backoff: float = 0.5) -> list[str]:
    """Send the alert on every configured channel; returns their names. A channel that fails does not stop
    the others; if any failed, one AlertDeliveryError names them all after the others were tried."""
    sent: list[str] = []
    failed: list[str] = []
    if settings.clinic_alert_webhook_url is not None:
        try:
            post_webhook(settings.clinic_alert_webhook_url, alert, attempts=attempts, backoff=backoff)
            sent.append("webhook")
        except AlertDeliveryError as exc:
            failed.append(str(exc))
    if settings.alert_email_recipients and settings.clinic_alert_smtp_host:
        try:
            send_email(
                alert,
                host=settings.clinic_alert_smtp_host,
                port=settings.clinic_alert_smtp_port,
                sender=settings.clinic_alert_email_from,
                recipients=settings.alert_email_recipients,
            )
            sent.append("email")
        except AlertDeliveryError as exc:
            failed.append(str(exc))
    if failed:
        raise AlertDeliveryError("; ".join(failed) + (f" (sent by {', '.join(sent)})" if sent else ""))
    return sent


DISABLED = "alerts are off: set CLINIC_ALERT_WEBHOOK_URL (or CLINIC_ALERT_EMAIL_TO and CLINIC_ALERT_SMTP_HOST)"
