"""The resources the assets share, and the one place a domain error becomes a Dagster failure.

`clinic` is the clinic side (export, data folder, owners); `freshsales` the account (URL, API key,
budget). Unset fields fall back to the environment through `Settings`, so a deployment sets either
environment variables or resource config. Assets that never call the API require only `clinic`, so
they run without Freshsales credentials.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.settings import Settings, load_settings

# The hourly API budget belongs to the Freshsales account, not to a run: every asset that calls the API
# takes a slot of this pool (dagster.yaml limits it to one).
FRESHSALES_POOL = "freshsales_api"


class ClinicResource(dg.ConfigurableResource):
    """The clinic export and where the migration keeps its files."""

    clinic_source: str | None = None
    clinic_data_dir: str | None = None
    clinic_fallback_owner_email: str | None = None
    clinic_documents_base_url: str | None = None
    mapping_review_threshold: float | None = None

    def overrides(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}

    def settings(self) -> Settings:
        return settings_from(self)


class FreshsalesResource(dg.ConfigurableResource):
    """The Freshsales account and the budget its plan allows; the key is a secret (EnvVar in definitions)."""

    base_url: str | None = None
    api_key: str | None = None
    requests_per_hour: int | None = None
    requests_per_minute: int | None = None
    max_concurrency: int | None = None
    timeout_seconds: float | None = None
    max_file_bytes: int | None = None

    def overrides(self) -> dict[str, Any]:
        return {f"freshsales_{k}": v for k, v in self.model_dump().items() if v is not None}


def settings_from(clinic: ClinicResource, freshsales: FreshsalesResource | None = None) -> Settings:
    """The validated settings of one step: resource config first, the environment for the rest."""
    overrides = clinic.overrides() | (freshsales.overrides() if freshsales is not None else {})
    with operator_errors():
        return load_settings(**overrides)


def pipeline_resources(
    *,
    clinic_source: str | None = None,
    clinic_data_dir: str | None = None,
    freshsales_base_url: str | None = None,
    freshsales_api_key: str | None = None,
    clinic_fallback_owner_email: str | None = None,
    **freshsales: Any,
) -> dict[str, dg.ConfigurableResource]:
    """Both resources from settings-style names (`freshsales_requests_per_hour`...): what the demo and
    tests hand to a run."""
    return {
        "clinic": ClinicResource(
            clinic_source=clinic_source,
            clinic_data_dir=clinic_data_dir,
            clinic_fallback_owner_email=clinic_fallback_owner_email,
        ),
        "freshsales": FreshsalesResource(
            base_url=freshsales_base_url,
            api_key=freshsales_api_key,
            **{name.removeprefix("freshsales_"): value for name, value in freshsales.items()},
        ),
    }


def resources_settings(resources: dict[str, dg.ConfigurableResource]) -> Settings:
    clinic, freshsales = resources["clinic"], resources["freshsales"]
    assert isinstance(clinic, ClinicResource) and isinstance(freshsales, FreshsalesResource)
    return settings_from(clinic, freshsales)


@contextmanager
def operator_errors() -> Iterator[None]:
    """Turn the errors an operator can act on into a one-line Dagster failure instead of a traceback."""
    try:
        yield
    except OperatorError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
