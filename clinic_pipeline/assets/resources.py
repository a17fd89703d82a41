"""The one resource the assets share: settings from the environment, overridable per deployment or test."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from clinic_pipeline.freshsales.errors import FreshsalesError
from clinic_pipeline.load.loader import LoadFailedError
from clinic_pipeline.mapping.plan import PlanNotConfirmedError
from clinic_pipeline.mapping.sign_off import SignOffRequiredError
from clinic_pipeline.settings import ConfigurationError, Settings
from clinic_pipeline.source.reader import SourceError


class ClinicPipelineResource(dg.ConfigurableResource):
    """Unset fields fall back to the environment (CLINIC_SOURCE, FRESHSALES_BASE_URL, ...)."""

    clinic_source: str | None = None
    clinic_data_dir: str | None = None
    freshsales_base_url: str | None = None
    freshsales_api_key: str | None = None
    clinic_fallback_owner_email: str | None = None
    freshsales_requests_per_hour: int | None = None
    freshsales_requests_per_minute: int | None = None

    def settings(self) -> Settings:
        fields: dict[str, object] = {
            "freshsales_requests_per_hour": self.freshsales_requests_per_hour,
            "freshsales_requests_per_minute": self.freshsales_requests_per_minute,
            "clinic_source": self.clinic_source,
            "clinic_data_dir": self.clinic_data_dir,
            "freshsales_base_url": self.freshsales_base_url,
            "freshsales_api_key": self.freshsales_api_key,
            "clinic_fallback_owner_email": self.clinic_fallback_owner_email,
        }
        overrides = {k: v for k, v in fields.items() if v is not None}
        return Settings(**overrides)


@contextmanager
def operator_errors() -> Iterator[None]:
    """Turn the errors an operator can act on into a one-line Dagster failure instead of a traceback."""
    try:
        yield
    except (
        ConfigurationError,
        PlanNotConfirmedError,
        SourceError,
        FileNotFoundError,
        FreshsalesError,
        LoadFailedError,
        SignOffRequiredError,
    ) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
