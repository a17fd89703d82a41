"""Configuration from the environment (design.md's contract), validated once, secrets kept secret."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clinic_pipeline.errors import OperatorError
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
    mapping_review_threshold: float = Field(default=0.75, ge=0, le=1)
    freshsales_max_file_bytes: int = Field(
        default=150 * 1024 * 1024, gt=0, description="per-file upload limit (Freshsales documents 150 MB)"
    )
    clinic_documents_base_url: str | None = Field(
        default=None, description="where the clinic hosts its documents: larger files become links there"
    )

    @field_validator("freshsales_base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("FRESHSALES_BASE_URL must start with http:// or https://")
        return value

    @cached_property
    def paths(self) -> Paths:
        return Paths(self.clinic_data_dir)

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
