"""`verify` group: the validation report, read back from Freshsales."""

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.catalog import OWNERS, asset_tags, md_table
from clinic_pipeline.assets.load import loaded_assets
from clinic_pipeline.assets.plan import confirmed_mapping
from clinic_pipeline.assets.resources import (
    FRESHSALES_POOL,
    ClinicResource,
    FreshsalesResource,
    operator_errors,
    settings_from,
)
from clinic_pipeline.paths import Paths
from clinic_pipeline.reports.validation import ValidationReport, describe_not_loaded

# Bump policy: see `clinic_pipeline/assets/catalog.py` (here: a change of what `reports/` checks or writes).
CODE_VERSION = "2"
TAGS = asset_tags("verify")
MAX_LISTED = 20  # discrepancies shown in the check's metadata; the HTML report lists them all


def _objects_table(report: ValidationReport) -> str:
    """Per object: the keys checked (a sample) and what became of them, beside the whole-object counts."""
    rows = [
        (
            o.object,
            o.keys_checked,
            f"{o.keys_found_once} of {o.keys_checked} checked",
            o.keys_missing,
            o.keys_duplicated,
            o.staged,
            o.in_id_map,
            "not countable" if o.freshsales_total is None else o.freshsales_total,
            o.not_loaded,
        )
        for o in report.objects
    ]
    head = (
        "object",
        "checked",
        "found once",
        "missing",
        "duplicated",
        "staged",
        "in id map",
        "Freshsales total",
        "not loaded",
    )
    return md_table(head, rows)


def _discrepancies_md(report: ValidationReport) -> str:
    if report.ok:
        return "No discrepancies: every staged record is in Freshsales exactly once."
    shown = "\n".join(f"- {d}" for d in report.discrepancies[:MAX_LISTED])
    more = len(report.discrepancies) - MAX_LISTED
    return shown + (f"\n- … and {more} more (see the HTML report)" if more > 0 else "")


@dg.asset(
    group_name="verify",
    deps=list(loaded_assets.values()),
    pool=FRESHSALES_POOL,
    kinds={"freshsales", "duckdb", "html"},
    owners=OWNERS,
    tags=TAGS,
    code_version=CODE_VERSION,
    description="Source vs Freshsales: records found once by source key, counts, links (counts only).",
)
def validation_report(clinic: ClinicResource, freshsales: FreshsalesResource) -> dg.MaterializeResult:
    settings = settings_from(clinic, freshsales)
    with operator_errors():
        report = steps.run_validation(settings)
    return dg.MaterializeResult(metadata=validation_metadata(report, settings.paths, None))


def validation_metadata(report: ValidationReport, paths: Paths, partition: str | None) -> dict[str, dg.MetadataValue]:
    """The report as metadata: the verdict, a Markdown table per object, links to its files (counts only)."""
    metadata: dict[str, dg.MetadataValue] = {
        "ok": dg.MetadataValue.bool(report.ok),
        "discrepancies": dg.MetadataValue.int(len(report.discrepancies)),
        "warnings": dg.MetadataValue.int(len(report.warnings)),
        "objects": dg.MetadataValue.md(_objects_table(report)),
        "listing": dg.MetadataValue.md(_discrepancies_md(report)),
        "html": dg.MetadataValue.path(str(paths.validation_html_for(partition))),
        "json": dg.MetadataValue.path(str(paths.validation_json_for(partition))),
    }
    if report.requests_used is not None:
        metadata["requests_used"] = dg.MetadataValue.int(report.requests_used)
    for o in report.objects:
        # Found once is of the keys checked (a sample), never of the total: both are shown together.
        metadata[f"{o.object}_keys_checked"] = dg.MetadataValue.int(o.keys_checked)
        metadata[f"{o.object}_found_once"] = dg.MetadataValue.int(o.keys_found_once)
        if o.freshsales_total is not None:  # notes and files cannot be counted through the API
            metadata[f"{o.object}_freshsales_total"] = dg.MetadataValue.int(o.freshsales_total)
    return metadata


@dg.asset_check(asset=validation_report, description="Every staged record is in Freshsales exactly once.")
def validation_has_no_discrepancies(clinic: ClinicResource) -> dg.AssetCheckResult:
    path = clinic.settings().paths.validation_json
    report = ValidationReport.model_validate_json(path.read_text())
    # The report's lines are counts, object and field names and reasons (it carries no PHI by design).
    not_loaded = [(o.object, o.not_loaded, describe_not_loaded(o)) for o in report.objects if o.not_loaded]
    listing = _discrepancies_md(report)
    if not_loaded:
        listing += "\n\n" + md_table(("object", "staged, not loaded", "why"), not_loaded)
    count = len(report.discrepancies)
    return dg.AssetCheckResult(
        passed=report.ok,
        description="no discrepancies" if report.ok else f"{count} discrepanc{'y' if count == 1 else 'ies'}",
        metadata={
            "discrepancies": dg.MetadataValue.int(count),
            "listing": dg.MetadataValue.md(listing),
        },
    )


@dg.asset(
    group_name="verify",
    deps=[confirmed_mapping],
    kinds={"duckdb", "json", "html"},
    owners=OWNERS,
    tags=TAGS,
    code_version=CODE_VERSION,
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
            "html": dg.MetadataValue.path(str(result.html_path)),
        }
    )
