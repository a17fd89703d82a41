"""`plan` group: the assessment, how hard the migration is, graded from the inventory and the proposed plan."""

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.catalog import OWNERS, asset_tags, md_table
from clinic_pipeline.assets.inventory import schema_inventory
from clinic_pipeline.assets.plan import mapping_plan
from clinic_pipeline.assets.resources import ClinicResource, operator_errors
from clinic_pipeline.reports.assessment import KIND_LABELS, Assessment

# Bump policy: see `clinic_pipeline/assets/catalog.py`.
CODE_VERSION = "2"


def _objects_table(assessment: Assessment) -> str:
    """Per Freshsales object: the records the plan makes and the API calls a first load of them takes."""
    rows = [(o.object, o.records, o.api_calls) for o in assessment.objects]
    return md_table(("object", "records", "API calls"), rows)


def _grade_table(assessment: Assessment) -> str:
    rows = [(c.name, c.detail, "yes" if c.complex else "no") for c in assessment.criteria]
    return f"**{assessment.grade}**\n\n" + md_table(("criterion", "measured", "complex"), rows)


@dg.asset(
    group_name="plan",
    deps=[schema_inventory, mapping_plan],
    kinds={"duckdb", "html", "json"},
    owners=OWNERS,
    tags=asset_tags("plan"),
    code_version=CODE_VERSION,
    description="The assessment page (data/reports/assessment.html + .json): how each table maps, the share of "
    "lines needing review, the admin's custom fields and modules, records, document storage, API hours per "
    "Freshsales tier, and a grade (standard or complex) with its reasons.",
)
def migration_assessment(clinic: ClinicResource) -> dg.MaterializeResult:
    settings = clinic.settings()
    with operator_errors():
        assessment = steps.run_assessment(settings)
    kinds = {label: sum(t.kind == kind for t in assessment.tables) for kind, label in KIND_LABELS.items()}
    metadata: dict[str, dg.MetadataValue] = {
        "grade": dg.MetadataValue.text(assessment.grade),
        "criteria": dg.MetadataValue.md(_grade_table(assessment)),
        "objects": dg.MetadataValue.md(_objects_table(assessment)),
        "table_mappings": dg.MetadataValue.json(kinds),
        "review_share": dg.MetadataValue.float(assessment.review_share),
        "custom_fields": dg.MetadataValue.int(len(assessment.custom_fields)),
        "custom_modules": dg.MetadataValue.int(len(assessment.custom_modules)),
        "path": dg.MetadataValue.path(str(settings.paths.assessment_html)),
        "json": dg.MetadataValue.path(str(settings.paths.assessment_json)),
    }
    for tier in assessment.tiers:
        metadata[f"hours_{tier.tier}"] = dg.MetadataValue.float(tier.hours)
    return dg.MaterializeResult(metadata=metadata)
