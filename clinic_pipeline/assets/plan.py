"""`plan` group: the proposed map, the confirmation gate and the admin's custom-field checklist."""

from collections import Counter

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.catalog import OWNERS, asset_tags, md_table
from clinic_pipeline.assets.inventory import schema_inventory
from clinic_pipeline.assets.resources import (
    FRESHSALES_POOL,
    ClinicResource,
    FreshsalesResource,
    operator_errors,
    settings_from,
)
from clinic_pipeline.mapping.owner_map import OWNER_STATUSES
from clinic_pipeline.mapping.plan import MappingPlan

# Bump policy: see `clinic_pipeline/assets/catalog.py`.
CODE_VERSION = "2"
TAGS = asset_tags("plan")


def _targets_table(plan: MappingPlan) -> str:
    """Per target: source tables and field lines, and how many of those lines need a person's review."""
    tables: Counter[str] = Counter()
    fields: Counter[str] = Counter()
    review: Counter[str] = Counter()
    for o in plan.objects:
        tables[o.target] += 1
        fields[o.target] += len(o.fields)
        review[o.target] += sum(f.needs_review for f in o.fields)
    rows = [(t, tables[t], fields[t], review[t]) for t in sorted(tables)]
    return md_table(("target", "source tables", "field lines", "needing review"), rows)


@dg.asset(
    group_name="plan",
    deps=[schema_inventory],
    kinds={"python", "yaml", "html"},
    owners=OWNERS,
    tags=TAGS,
    code_version=CODE_VERSION,
    description="The proposed object and field map, and the page a person reviews it on "
    "(data/plan/mapping_review.html, 0600).",
)
def mapping_plan(clinic: ClinicResource) -> dg.MaterializeResult:
    settings = clinic.settings()
    with operator_errors():
        outcome = steps.run_propose(settings)
    review = settings.paths.mapping_review_html  # written by the step, kept or newly proposed plan alike
    fields = [f for o in outcome.plan.objects for f in o.fields]
    return dg.MaterializeResult(
        metadata={
            "written": dg.MetadataValue.bool(outcome.written),
            "status": dg.MetadataValue.text(outcome.plan.status),
            "objects": dg.MetadataValue.int(len(outcome.plan.objects)),
            "fields": dg.MetadataValue.int(len(fields)),
            "fields_needing_review": dg.MetadataValue.int(sum(f.needs_review for f in fields)),
            "targets": dg.MetadataValue.md(_targets_table(outcome.plan)),
            "path": dg.MetadataValue.path(str(settings.paths.plan_path)),
            "review": dg.MetadataValue.path(str(review)),
        }
    )


@dg.asset(
    group_name="plan",
    deps=[mapping_plan],
    kinds={"python", "yaml"},
    owners=OWNERS,
    tags=TAGS,
    code_version=CODE_VERSION,
    description="Fails until a person confirms the plan (`clinic-pipeline confirm-mapping --by NAME`).",
)
def confirmed_mapping(clinic: ClinicResource) -> dg.MaterializeResult:
    with operator_errors():
        plan = steps.confirmed_plan(clinic.settings())
    # A confirmed plan names who confirmed it and the hash: shown only when set, never as an empty field.
    metadata: dict[str, dg.MetadataValue] = {"status": dg.MetadataValue.text(plan.status)}
    if plan.confirmed_by:
        metadata["confirmed_by"] = dg.MetadataValue.text(plan.confirmed_by)
    if plan.confirmed_hash:
        metadata["confirmed_hash"] = dg.MetadataValue.text(plan.confirmed_hash)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name="plan",
    deps=[confirmed_mapping],
    kinds={"python", "csv"},
    owners=OWNERS,
    tags=TAGS,
    code_version=CODE_VERSION,
    description="Custom fields the admin creates in the UI.",
)
def custom_field_checklist(clinic: ClinicResource) -> dg.MaterializeResult:
    with operator_errors():
        md, csv_path, count = steps.run_checklist(clinic.settings())
    return dg.MaterializeResult(
        metadata={
            "custom_fields": dg.MetadataValue.int(count),
            "markdown": dg.MetadataValue.path(str(md)),
            "csv": dg.MetadataValue.path(str(csv_path)),
        }
    )


@dg.asset(
    group_name="plan",
    deps=[confirmed_mapping],
    pool=FRESHSALES_POOL,
    kinds={"freshsales", "parquet"},
    owners=OWNERS,
    tags=TAGS,
    code_version=CODE_VERSION,
    description="Providers/staff → Freshsales users by email, or by a unique display name where the source has "
    "no email (data/plan/owner_map.parquet + .md); fails, "
    "listing them, while staff whose records need an owner have no active user and no fallback is set.",
)
def owner_map(clinic: ClinicResource, freshsales: FreshsalesResource) -> dg.MaterializeResult:
    settings = settings_from(clinic, freshsales)
    with operator_errors():
        result = steps.run_owner_map(settings)
    counts = result.counts()
    metadata: dict[str, dg.MetadataValue] = {
        status: dg.MetadataValue.int(counts.get(status, 0)) for status in OWNER_STATUSES
    }
    metadata["staff"] = dg.MetadataValue.int(len(result.entries))
    metadata["fallback_owner_used"] = dg.MetadataValue.bool(result.fallback_owner_id is not None)
    metadata["path"] = dg.MetadataValue.path(str(settings.paths.owner_map_md))
    metadata["parquet"] = dg.MetadataValue.path(str(settings.paths.owner_map_parquet))
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name="plan",
    deps=[custom_field_checklist],
    pool=FRESHSALES_POOL,
    kinds={"freshsales", "python"},
    owners=OWNERS,
    tags=TAGS,
    code_version=CODE_VERSION,
    description="Custom modules and their fields created through the API; the admin's custom fields on "
    "contacts, accounts and deals read back and verified. Fails, listing what is missing, until they exist.",
)
def freshsales_schema(clinic: ClinicResource, freshsales: FreshsalesResource) -> dg.MaterializeResult:
    with operator_errors():
        result = steps.run_freshsales_schema(settings_from(clinic, freshsales))
    return dg.MaterializeResult(
        metadata={
            "modules_created": dg.MetadataValue.int(len(result.modules_created)),
            "module_fields_created": dg.MetadataValue.int(len(result.fields_created)),
            "module_fields_present": dg.MetadataValue.int(len(result.fields_present)),
        }
    )
