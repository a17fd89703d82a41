"""Configuration from the environment (design.md's contract), validated once, secrets kept secret."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clinic_pipeline.errors import OperatorError


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
    def plan_dir(self) -> Path:
        return self.clinic_data_dir / "plan"

    @cached_property
    def plan_path(self) -> Path:
        return self.plan_dir / "mapping_plan.yaml"

    @cached_property
    def inventory_path(self) -> Path:
        return self.clinic_data_dir / "inventory" / "schema_inventory.json"

    @cached_property
    def staged_dir(self) -> Path:
        return self.clinic_data_dir / "staged"

    @cached_property
    def quarantine_dir(self) -> Path:
        return self.clinic_data_dir / "quarantine"

    @cached_property
    def state_db_path(self) -> Path:
        return self.clinic_data_dir / "state" / "migration.duckdb"

    @cached_property
    def reports_dir(self) -> Path:
        return self.clinic_data_dir / "reports"

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
