"""The steps a person takes around the Dagster runs: confirm the plan, create custom fields, sign off."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from clinic_pipeline import runs, steps
from clinic_pipeline.assets.resources import pipeline_resources, resources_settings
from clinic_pipeline.definitions import ALL_ASSETS, ALL_CHECKS
from clinic_pipeline.demo import DEMO_FALLBACK_OWNER, create_custom_fields_as_admin
from clinic_pipeline.samples.generator import generate_clinic
from clinic_pipeline.samples.generator.locales import Country

PRE_CONFIRMATION = runs.PLAN
Resources = dict[str, dg.ConfigurableResource]


def generated_clinic(
    tmp_path: Path, sandbox: Any, *, country: Country = "US", patients: int = 30
) -> tuple[Resources, Path]:
    """A small generated clinic (every object) against the sandbox; the sandbox admin is the fallback
    owner because the clinic's staff have no Freshsales users there."""
    source = tmp_path / "source"
    generate_clinic(source, patients=patients, seed=5, country=country)
    resources = pipeline_resources(
        clinic_source=str(source),
        clinic_data_dir=str(tmp_path / "data"),
        freshsales_base_url=sandbox.base_url,
        freshsales_api_key=sandbox.api_key,
        clinic_fallback_owner_email=DEMO_FALLBACK_OWNER,
    )
    return resources, source


def materialize(
    resources: Resources, selection: dg.AssetSelection | list[str] | None = None
) -> dg.ExecuteInProcessResult:
    return dg.materialize([*ALL_ASSETS, *ALL_CHECKS], selection=selection, resources=resources, raise_on_error=False)


def confirm_and_sign_off(
    resources: Resources, sandbox: Any, *, before_confirming: Callable[[], None] | None = None
) -> dg.ExecuteInProcessResult:
    """Propose, [edit the plan as a person would,] confirm, create the admin's custom fields, run everything up
    to the sample diff, sign it off."""
    settings = resources_settings(resources)
    assert materialize(resources, PRE_CONFIRMATION).success
    if before_confirming is not None:
        before_confirming()
    steps.run_confirm(settings, "test reviewer")
    create_custom_fields_as_admin(settings, sandbox.root_url, sandbox.api_key, echo=lambda _: None)
    result = materialize(resources, runs.SAMPLE)
    assert result.success, [e.step_key for e in result.get_step_failure_events()]
    steps.run_sign_off(settings, "test reviewer")
    return result


def full_load(resources: Resources) -> dg.ExecuteInProcessResult:
    return materialize(resources, runs.FULL)
