"""Alerts for the night shift, end to end: real failed runs and real validation reports on a temporary
Dagster instance, the sensors evaluated tick by tick, the alerts received by a real loopback HTTP server
(and a real loopback SMTP receiver). No PHI, no API key, no webhook token in what arrives."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from clinic_pipeline.alerts import DISABLED, AlertDeliveryError
from clinic_pipeline.assets.alerts import alert_sensors
from clinic_pipeline.assets.resources import ClinicResource
from clinic_pipeline.paths import Paths
from clinic_pipeline.reports.validation import ObjectValidation, build_report, write_report
from clinic_pipeline.settings import ConfigurationError, load_settings

PATIENT_EMAIL = "zebulon.quixote@patients.example"
PATIENT_NAME = "Zebulon Quixote"
FAKE_API_KEY = "fs-live-SECRET-0123456789abcdef"
WEBHOOK_TOKEN = "T0KEN-b7e1c9d2"
WEBSERVER = "http://dagster.clinic.internal:3000"
FORBIDDEN = (PATIENT_EMAIL, PATIENT_NAME, "zebulon", FAKE_API_KEY, WEBHOOK_TOKEN)


# ---- a real webhook receiver ------------------------------------------------------------------


@dataclass
class Receiver:
    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answers to give first (then 200)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = made.statuses.pop(0) if made.statuses else 200
            if status == 200:
                made.raw.append(body)
                made.posts.append({"path": self.path, "type": self.headers.get("Content-Type"), **json.loads(body)})
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    made.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/{WEBHOOK_TOKEN}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield made
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean environment (no stray .env) with a planted API key; returns the data folder."""
    monkeypatch.chdir(tmp_path)
    for var in (
        "CLINIC_ALERT_WEBHOOK_URL",
        "CLINIC_ALERT_EMAIL_TO",
        "CLINIC_ALERT_SMTP_HOST",
        "CLINIC_ALERT_SMTP_PORT",
        "DAGSTER_WEBSERVER_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FRESHSALES_API_KEY", FAKE_API_KEY)
    data = tmp_path / "data"
    monkeypatch.setenv("CLINIC_DATA_DIR", str(data))
    return data


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as made:  # in-memory run and event storage: real, and fast
        yield made


def _assert_clean(raw: bytes | str) -> None:
    text = raw.decode() if isinstance(raw, bytes) else raw
    for secret in FORBIDDEN:
        assert secret.lower() not in text.lower(), secret


# ---- a real failed run --------------------------------------------------------------------------


@dg.asset
def extracted_rows() -> int:
    return 3


@dg.asset
def loaded_contacts(extracted_rows: int) -> None:
    # What a careless exception looks like: a record value and the key in its message.
    raise ValueError(f"contact {PATIENT_NAME} <{PATIENT_EMAIL}> rejected (key {FAKE_API_KEY})")


@dg.asset(deps=[extracted_rows])
def loaded_notes() -> None:
    raise dg.Failure(description=f"note for {PATIENT_EMAIL} refused", metadata={"email": PATIENT_EMAIL})


def _fail_a_run(instance: dg.DagsterInstance) -> str:
    result = dg.materialize([extracted_rows, loaded_contacts, loaded_notes], instance=instance, raise_on_error=False)
    assert not result.success
    return result.run_id


def _tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None, **resources: Any) -> Any:
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))


def test_a_failed_run_is_posted_once_with_ids_steps_and_counts_and_no_phi_or_key(
    env: Path, receiver: Receiver, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINIC_ALERT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("DAGSTER_WEBSERVER_URL", WEBSERVER + "/")
    sensor = alert_sensors(enabled=True)[0]
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING

    first = _tick(sensor, instance, None)  # the first tick only sets the cursor (older runs are not told)
    assert first.cursor and not receiver.posts
    receiver.statuses = [503]  # the receiver hiccups once: the alert is retried, still sent once
    run_id = _fail_a_run(instance)
    failures = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    assert any(PATIENT_EMAIL in str(e.dagster_event.step_failure_data.error) for e in failures)  # planted

    second = _tick(sensor, instance, first.cursor)
    assert not [r for r in second.dagster_run_reactions if r.error is not None]
    assert len(receiver.posts) == 1
    alert = receiver.posts[0]
    assert alert["path"] == f"/hooks/{WEBHOOK_TOKEN}" and alert["type"] == "application/json"
    assert alert["kind"] == "run_failure" and alert["run_id"] == run_id
    assert alert["run_url"] == f"{WEBSERVER}/runs/{run_id}"
    assert alert["job_name"] == instance.get_run_by_id(run_id).job_name
    assert {(f["step"], f["error_class"]) for f in alert["failed_steps"]} == {
        ("loaded_contacts", "ValueError"),
        ("loaded_notes", "Failure"),
    }
    assert alert["counts"] == {"steps_succeeded": 1, "steps_failed": 2, "materializations": 1}
    assert run_id in alert["text"] and "loaded_contacts (ValueError)" in alert["text"]
    _assert_clean(receiver.raw[0])

    third = _tick(sensor, instance, second.cursor)  # the cursor moved past the run: told once
    assert len(receiver.posts) == 1 and not third.dagster_run_reactions


def test_without_a_webserver_url_the_alert_names_the_run_id(
    env: Path, receiver: Receiver, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINIC_ALERT_WEBHOOK_URL", receiver.url)
    sensor = alert_sensors(enabled=True)[0]
    cursor = _tick(sensor, instance, None).cursor
    run_id = _fail_a_run(instance)
    _tick(sensor, instance, cursor)
    [alert] = receiver.posts
    assert alert["run_url"] is None and f"run {run_id}" in alert["text"]


# ---- a real validation report -------------------------------------------------------------------


def _report(*, not_loaded: int) -> Any:
    contacts = ObjectValidation(
        object="contacts",
        source_rows=12,
        staged=10,
        quarantined=2,
        in_id_map=10 - not_loaded,
        not_loaded=not_loaded,
        freshsales_total=10 - not_loaded,
        keys_checked=10,
        keys_found_once=10 - not_loaded,
        keys_missing=not_loaded,
        keys_duplicated=0,
        # A reason quoting a value (it should not, but the alert must not care): it lands in the report's
        # discrepancy lines, never in the alert.
        not_loaded_reasons={f"held back: owner {PATIENT_EMAIL} not resolved": not_loaded} if not_loaded else {},
    )
    accounts = ObjectValidation(
        object="sales_accounts",
        staged=3,
        quarantined=0,
        in_id_map=3,
        freshsales_total=3,
        keys_checked=3,
        keys_found_once=3,
        keys_missing=0,
        keys_duplicated=0,
    )
    return build_report([accounts, contacts], {("contacts", "create", "created"): 10 - not_loaded})


def _validation_asset(data_dir: Path, *, not_loaded: int) -> dg.AssetsDefinition:
    """The `validation_report` asset's outputs (the JSON + HTML written by the report's own writer, the
    same metadata), without a Freshsales account behind it."""

    @dg.asset(name="validation_report")
    def validation_report() -> dg.MaterializeResult:
        paths = Paths(data_dir)
        report = _report(not_loaded=not_loaded)
        write_report(report, paths.validation_json, paths.validation_html)
        return dg.MaterializeResult(
            metadata={
                "ok": dg.MetadataValue.bool(report.ok),
                "discrepancies": dg.MetadataValue.int(len(report.discrepancies)),
                "html": dg.MetadataValue.path(str(paths.validation_html)),
                "json": dg.MetadataValue.path(str(paths.validation_json)),
            }
        )

    return validation_report


def test_a_report_with_discrepancies_is_posted_once_with_counts_and_its_path(
    env: Path, receiver: Receiver, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINIC_ALERT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("DAGSTER_WEBSERVER_URL", WEBSERVER)
    sensor = alert_sensors(enabled=True)[1]
    clinic = ClinicResource(clinic_data_dir=str(env))

    nothing = _tick(sensor, instance, None, clinic=clinic)
    assert "No new materialization" in (nothing.skip_message or "") and not receiver.posts

    run_id = dg.materialize([_validation_asset(env, not_loaded=2)], instance=instance).run_id
    assert PATIENT_EMAIL in Paths(env).validation_json.read_text()  # planted in the report itself
    told = _tick(sensor, instance, None, clinic=clinic)
    assert told.skip_message.startswith("alert sent by webhook: 1 discrepancies")
    [alert] = receiver.posts
    assert alert["kind"] == "validation_deviation" and alert["run_id"] == run_id
    assert alert["run_url"] == f"{WEBSERVER}/runs/{run_id}"
    assert alert["report_path"] == str(Paths(env).validation_html)
    assert alert["counts"]["discrepancies"] == 1 and alert["counts"]["not_loaded"] == 2
    assert alert["counts"]["objects"] == 2 and alert["counts"]["objects_deviating"] == 1
    contacts = next(o for o in alert["objects"] if o["object"] == "contacts")
    assert (contacts["staged"], contacts["in_id_map"], contacts["not_loaded"], contacts["keys_missing"]) == (
        10,
        8,
        2,
        2,
    )
    assert "contacts: 2 not loaded" in alert["text"]
    _assert_clean(receiver.raw[0])

    again = _tick(sensor, instance, told.cursor, clinic=clinic)  # same materialization: not told twice
    assert "No new materialization" in (again.skip_message or "") and len(receiver.posts) == 1

    dg.materialize([_validation_asset(env, not_loaded=0)], instance=instance)  # a clean report: no alert
    clean = _tick(sensor, instance, again.cursor, clinic=clinic)
    assert "no discrepancies" in (clean.skip_message or "") and len(receiver.posts) == 1
    assert clean.cursor != again.cursor


def test_an_unreachable_webhook_fails_the_tick_by_host_only_and_the_next_tick_retries(
    env: Path, receiver: Receiver, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINIC_ALERT_WEBHOOK_URL", receiver.url)
    sensor = alert_sensors(enabled=True)[1]
    clinic = ClinicResource(clinic_data_dir=str(env))
    dg.materialize([_validation_asset(env, not_loaded=1)], instance=instance)
    receiver.statuses = [500, 500, 500]  # every attempt of this tick
    with pytest.raises(AlertDeliveryError) as failed:
        _tick(sensor, instance, None, clinic=clinic)
    assert str(failed.value) == "alert webhook at 127.0.0.1 answered HTTP 500"
    assert WEBHOOK_TOKEN not in str(failed.value) and failed.value.__cause__ is None
    retried = _tick(sensor, instance, None, clinic=clinic)  # the cursor did not move: told now
    assert retried.skip_message.startswith("alert sent") and len(receiver.posts) == 1


# ---- off by default -----------------------------------------------------------------------------


def test_without_a_webhook_url_nothing_is_sent_and_the_sensors_say_why(
    env: Path, receiver: Receiver, instance: dg.DagsterInstance
) -> None:
    from clinic_pipeline.definitions import build_definitions

    sensors = {s.name: s for s in build_definitions().sensors or []}
    failure, validation = sensors["alert_on_run_failure"], sensors["alert_on_validation_deviation"]
    assert failure.default_status == validation.default_status == dg.DefaultSensorStatus.STOPPED

    cursor = _tick(failure, instance, None).cursor
    _fail_a_run(instance)
    skipped = _tick(failure, instance, cursor)
    assert skipped.skip_message == DISABLED

    dg.materialize([_validation_asset(env, not_loaded=2)], instance=instance)
    skipped = _tick(validation, instance, None, clinic=ClinicResource(clinic_data_dir=str(env)))
    assert skipped.skip_message == DISABLED
    assert not receiver.posts and not receiver.raw


def test_an_invalid_alert_setting_is_a_one_line_skip_naming_it(
    env: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINIC_ALERT_WEBHOOK_URL", f"hooks.example/{WEBHOOK_TOKEN}")
    dg.materialize([_validation_asset(env, not_loaded=2)], instance=instance)
    skipped = _tick(alert_sensors()[1], instance, None, clinic=ClinicResource(clinic_data_dir=str(env)))
    assert skipped.skip_message.startswith("no alert sent: CLINIC_ALERT_WEBHOOK_URL: ")
    assert "\n" not in skipped.skip_message and WEBHOOK_TOKEN not in skipped.skip_message


def test_alert_settings_are_checked_one_line_each_and_the_webhook_url_stays_secret(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINIC_ALERT_WEBHOOK_URL", f"https://hooks.example/{WEBHOOK_TOKEN}")
    settings = load_settings()
    assert settings.alerts_enabled and WEBHOOK_TOKEN not in repr(settings) + settings.model_dump_json()
    monkeypatch.setenv("CLINIC_ALERT_EMAIL_TO", "night-shift@clinic.example")
    with pytest.raises(ConfigurationError, match=r"^CLINIC_ALERT_EMAIL_TO: .*CLINIC_ALERT_SMTP_HOST"):
        load_settings()
    monkeypatch.setenv("CLINIC_ALERT_SMTP_HOST", "relay.clinic.example")
    assert load_settings().alert_email_recipients == ["night-shift@clinic.example"]
    monkeypatch.setenv("DAGSTER_WEBSERVER_URL", "dagster.clinic.example")
    with pytest.raises(ConfigurationError, match=r"^DAGSTER_WEBSERVER_URL: .*http"):
        load_settings()


# ---- email through a real (loopback) SMTP receiver ----------------------------------------------


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO, MAIL, RCPT, DATA, QUIT; messages go to server.messages."""

    def handle(self) -> None:
        self.wfile.write(b"220 loopback ESMTP\r\n")
        recipients: list[str] = []
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 loopback\r\n")
            elif verb == b"RCPT":
                recipients.append(line.decode().split(":", 1)[1].strip().strip("<>"))
                self.wfile.write(b"250 ok\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go on\r\n")
                body = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    body += chunk
                self.server.messages.append((recipients, body))  # type: ignore[attr-defined]
                self.wfile.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


def test_email_goes_out_beside_the_webhook(
    env: Path, receiver: Receiver, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    server.messages = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("CLINIC_ALERT_WEBHOOK_URL", receiver.url)
        monkeypatch.setenv("CLINIC_ALERT_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("CLINIC_ALERT_SMTP_PORT", str(server.server_address[1]))
        monkeypatch.setenv("CLINIC_ALERT_EMAIL_TO", "night-shift@clinic.example, it@clinic.example")
        sensor = alert_sensors(enabled=True)[0]
        cursor = _tick(sensor, instance, None).cursor
        run_id = _fail_a_run(instance)
        _tick(sensor, instance, cursor)
    finally:
        server.shutdown()
        server.server_close()
    assert len(receiver.posts) == 1
    [(recipients, raw)] = server.messages  # type: ignore[attr-defined]
    assert recipients == ["night-shift@clinic.example", "it@clinic.example"]
    message = message_from_bytes(raw)
    assert message["Subject"] == f"[clinic_pipeline] run failure ({run_id})"
    text, attached = (part.get_payload(decode=True).decode() for part in message.get_payload())
    assert run_id in text and "loaded_notes (Failure)" in text
    assert json.loads(attached)["run_id"] == run_id
    for part in (raw.decode(), text, attached):
        _assert_clean(part)
