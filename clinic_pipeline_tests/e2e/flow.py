"""The steps a person takes around the Dagster runs: confirm the plan, create custom fields, sign off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.resources import ClinicPipelineResource
from clinic_pipeline.definitions import ALL_ASSETS, ALL_CHECKS
from clinic_pipeline.demo import DEMO_FALLBACK_OWNER, create_custom_fields_as_admin, sign_off_split
from clinic_pipeline.samples.generator import generate_clinic

PRE_CONFIRMATION = ["schema_inventory", "mapping_plan"]


def generated_clinic(tmp_path: Path, sandbox: Any) -> tuple[ClinicPipelineResource, Path]:
    """A small generated clinic (every object) against the sandbox; the sandbox admin is the fallback
    owner because the clinic's staff have no Freshsales users there."""
    source = tmp_path / "source"
    generate_clinic(source, patients=30, seed=5)
    resource = ClinicPipelineResource(
        clinic_source=str(source),
        clinic_data_dir=str(tmp_path / "data"),
        freshsales_base_url=sandbox.base_url,
        freshsales_api_key=sandbox.api_key,
        clinic_fallback_owner_email=DEMO_FALLBACK_OWNER,
    )
    return resource, source


def materialize(resource: ClinicPipelineResource, selection: list[str] | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS], selection=selection, resources={"pipeline": resource}, raise_on_error=False
    )


def confirm_and_sign_off(resource: ClinicPipelineResource, sandbox: Any) -> dg.ExecuteInProcessResult:
    """Propose, confirm, create the admin's custom fields, run everything up to the sample diff, sign it off."""
    settings = resource.settings()
    assert materialize(resource, PRE_CONFIRMATION).success
    steps.run_confirm(settings, "test reviewer")
    create_custom_fields_as_admin(settings, sandbox.root_url, sandbox.api_key, echo=lambda _: None)
    before, _after = sign_off_split()
    result = materialize(resource, before)
    assert result.success, [e.step_key for e in result.get_step_failure_events()]
    steps.run_sign_off(settings, "test reviewer")
    return result


def full_load(resource: ClinicPipelineResource) -> dg.ExecuteInProcessResult:
    return materialize(resource, sign_off_split()[1])
