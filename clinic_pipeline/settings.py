"""Configuration from the environment (design.md's contract), validated once, secrets kept secret."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.load.state_location import StateLocation, StateUrlError, parse_state_url
from clinic_pipeline.paths import Paths


class Settings(BaseSettings):
    """Every knob the pipeline reads from the environment (or a local `.env`).

    The API key is a `SecretStr`: its repr, str and JSON dump print `**********`, so a settings
    object can be logged or put in an exception without leaking it.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    clinic_source: str | None = Field(default=None, description="folder, zip, dump.sql or a database URL")
    freshsales_base_url: str | None = Field(
        default=None, description="the part before /api, e.g. https://x.myfreshworks.com/crm/sales"
    )
    freshsales_api_key: SecretStr | None = None
    clinic_data_dir: Path = Path("data")
    clinic_fallback_owner_email: str | None = None
    cutover_start: datetime | None = None

    freshsales_requests_per_hour: int = Field(default=1000, gt=0)
    freshsales_requests_per_minute: int = Field(default=400, gt=0)
    freshsales_max_concurrency: int = Field(default=4, gt=0, le=32)
    freshsales_timeout_seconds: float = Field(default=30.0, gt=0)
    # How long a killed run's reference reads (selectors, field definitions) serve its restart: see
    # load/reference_cache.py. 0: every process reads them again.
    clinic_reference_max_age_seconds: float = Field(default=3600.0, ge=0)
    mapping_review_threshold: float = Field(default=0.75, ge=0, le=1)
    freshsales_max_file_bytes: int = Field(
        default=150 * 1024 * 1024, gt=0, description="per-file upload limit (Freshsales documents 150 MB)"
    )
    clinic_documents_base_url: str | None = Field(
        default=None, description="where the clinic hosts its documents: larger files become links there"
    )
    # Alerts for the night shift (clinic_pipeline/alerts.py): off unless a webhook URL or an email is set.
    # The webhook URL is a secret (Slack-style URLs carry their token in the path).
    clinic_alert_webhook_url: SecretStr | None = Field(default=None, description="alerts: JSON POSTed here")
    dagster_webserver_url: str | None = Field(default=None, description="links to runs in the Dagster UI")
    clinic_alert_smtp_host: str | None = Field(default=None, description="alerts by email: an SMTP relay")
    clinic_alert_smtp_port: int = Field(default=25, gt=0, le=65535)
    clinic_alert_email_from: str = "clinic-pipeline@localhost"
    clinic_alert_email_to: str | None = Field(default=None, description="alerts by email: comma-separated")
    # Where the migration state lives (load/state_location.py): unset, the DuckDB file under the data folder.
    # A secret (a PostgreSQL URL carries its password), so it is read from the environment only, never from
    # Dagster resource config, which the UI shows.
    clinic_state_url: SecretStr | None = Field(
        default=None, description="postgresql://user:password@host:port/db or duckdb:///path/to/state.duckdb"
    )
    # The Dagster instance `ui` and the commands record runs in when DAGSTER_HOME is not set (dagster_instance.py).
    clinic_dagster_storage: Literal["sqlite", "postgres"] = "sqlite"

    @field_validator("freshsales_base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("FRESHSALES_BASE_URL must start with http:// or https://")
        return value

    @field_validator("clinic_alert_webhook_url")
    @classmethod
    def _webhook_is_http(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        url = value.get_secret_value().strip()
        if not url.startswith(("http://", "https://")):
            raise ValueError("CLINIC_ALERT_WEBHOOK_URL must start with http:// or https://")
        return SecretStr(url)

    @field_validator("dagster_webserver_url")
    @classmethod
    def _webserver_is_http(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("DAGSTER_WEBSERVER_URL must start with http:// or https://")
        return value

    @field_validator("clinic_state_url")
    @classmethod
    def _state_url_is_usable(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        try:
            parse_state_url(value.get_secret_value())
        except StateUrlError as exc:
            raise ValueError(str(exc)) from None  # the message never repeats the URL
        return value

    @field_validator("clinic_alert_email_to")
    @classmethod
    def _recipients_need_a_relay(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        if not info.data.get("clinic_alert_smtp_host"):
            raise ValueError("CLINIC_ALERT_EMAIL_TO needs CLINIC_ALERT_SMTP_HOST (the SMTP relay) as well")
        if any("@" not in a for a in value.split(",")):
            raise ValueError("CLINIC_ALERT_EMAIL_TO must be email addresses separated by commas")
        return ",".join(a.strip() for a in value.split(","))

    @property
    def alert_email_recipients(self) -> list[str]:
        return self.clinic_alert_email_to.split(",") if self.clinic_alert_email_to else []

    @property
    def alerts_enabled(self) -> bool:
        """Alerts are off unless a webhook URL or email recipients are configured."""
        return self.clinic_alert_webhook_url is not None or bool(self.alert_email_recipients)

    @cached_property
    def paths(self) -> Paths:
        return Paths(self.clinic_data_dir)

    @cached_property
    def state_location(self) -> StateLocation:
        """The migration state store `open_state` opens: CLINIC_STATE_URL, or the DuckDB file in the data folder."""
        if self.clinic_state_url is None:
            return self.paths.state_db_path
        return parse_state_url(self.clinic_state_url.get_secret_value())

    def require_source(self) -> str:
        if not self.clinic_source:
            raise ConfigurationError("CLINIC_SOURCE is not set: point it at the clinic export")
        return self.clinic_source

    def require_freshsales(self) -> tuple[str, SecretStr]:
        if not self.freshsales_base_url or self.freshsales_api_key is None:
            raise ConfigurationError("FRESHSALES_BASE_URL and FRESHSALES_API_KEY must both be set")
        return self.freshsales_base_url, self.freshsales_api_key


class ConfigurationError(OperatorError):
    """A setting the requested step needs is missing or invalid; the message names it."""


def load_settings(**overrides: object) -> Settings:
    """Settings from `overrides` and the environment; an invalid one is a one-line error naming its variable
    (pydantic's own message, never the value, which may be a key)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = str(first["loc"][0]).upper() if first["loc"] else "settings"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigurationError(f"{variable}: {first['msg']}{more}: check the environment / .env") from None
