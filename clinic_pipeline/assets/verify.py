"""`verify` group: the validation report, read back from Freshsales."""

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.load import loaded_assets
from clinic_pipeline.assets.plan import confirmed_mapping
from clinic_pipeline.assets.resources import (
    FRESHSALES_POOL,
    ClinicResource,
    FreshsalesResource,
    operator_errors,
    settings_from,
)
from clinic_pipeline.reports.validation import ValidationReport


@dg.asset(
    group_name="verify",
    deps=list(loaded_assets.values()),
    pool=FRESHSALES_POOL,
    kinds={"freshsales"},
    description="Source vs Freshsales: records found once by source key, counts, links (counts only).",
)
def validation_report(clinic: ClinicResource, freshsales: FreshsalesResource) -> dg.MaterializeResult:
    settings = settings_from(clinic, freshsales)
    with operator_errors():
        report = steps.run_validation(settings)
    metadata: dict[str, dg.MetadataValue] = {
        "ok": dg.MetadataValue.bool(report.ok),
        "discrepancies": dg.MetadataValue.int(len(report.discrepancies)),
        "html": dg.MetadataValue.path(str(settings.paths.validation_html)),
    }
    for o in report.objects:
        # Found once is of the keys checked (a sample), never of the total: both are shown together.
        metadata[f"{o.object}_keys_checked"] = dg.MetadataValue.int(o.keys_checked)
        metadata[f"{o.object}_found_once"] = dg.MetadataValue.int(o.keys_found_once)
        if o.freshsales_total is not None:  # notes and files cannot be counted through the API
            metadata[f"{o.object}_freshsales_total"] = dg.MetadataValue.int(o.freshsales_total)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=validation_report, description="Every staged record is in Freshsales exactly once.")
def validation_has_no_discrepancies(clinic: ClinicResource) -> dg.AssetCheckResult:
    path = clinic.settings().paths.validation_json
    report = ValidationReport.model_validate_json(path.read_text())
    return dg.AssetCheckResult(
        passed=report.ok, metadata={"discrepancies": dg.MetadataValue.int(len(report.discrepancies))}
    )


@dg.asset(
    group_name="verify",
    deps=[confirmed_mapping],
    description="Workflow/automation rules and report definitions, not migrated, exported as a rebuild "
    "reference for the admin (JSON + Markdown + HTML in data/reports, 0600).",
)
def workflow_rebuild_reference(clinic: ClinicResource) -> dg.MaterializeResult:
    with operator_errors():
        result = steps.run_rebuild_reference(clinic.settings())
    return dg.MaterializeResult(
        metadata={
            "workflow_rules": dg.MetadataValue.int(result.workflow_rules),
            "active_rules": dg.MetadataValue.int(result.active_rules),
            "manual_review": dg.MetadataValue.int(result.manual_review),
            "actions_not_built_in": dg.MetadataValue.int(result.not_native_actions),
            "reports": dg.MetadataValue.int(result.reports),
            "markdown": dg.MetadataValue.path(str(result.markdown_path)),
            "json": dg.MetadataValue.path(str(result.json_path)),
        }
    )
