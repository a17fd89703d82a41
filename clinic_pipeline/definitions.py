"""Dagster Definitions: the one place that wires assets, checks and resources."""

import dagster as dg

from clinic_pipeline.assets.inventory import schema_inventory
from clinic_pipeline.assets.load import loaded_assets
from clinic_pipeline.assets.plan import confirmed_mapping, custom_field_checklist, mapping_plan
from clinic_pipeline.assets.resources import ClinicPipelineResource
from clinic_pipeline.assets.staging import staged_assets, staged_checks
from clinic_pipeline.assets.verify import validation_has_no_discrepancies, validation_report

ALL_ASSETS = [
    schema_inventory,
    mapping_plan,
    confirmed_mapping,
    custom_field_checklist,
    *staged_assets.values(),
    *loaded_assets.values(),
    validation_report,
]
ALL_CHECKS = [*staged_checks, validation_has_no_discrepancies]


def build_definitions(pipeline: ClinicPipelineResource | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        resources={"pipeline": pipeline or ClinicPipelineResource()},
    )


defs = build_definitions()
