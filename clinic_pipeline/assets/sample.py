"""`sample` group: the sample migration, read back and diffed, before the full run may start."""

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.catalog import OWNERS, asset_tags, md_table
from clinic_pipeline.assets.plan import freshsales_schema, owner_map
from clinic_pipeline.assets.resources import (
    FRESHSALES_POOL,
    ClinicResource,
    FreshsalesResource,
    operator_errors,
    settings_from,
)
from clinic_pipeline.assets.staging import staged_assets
from clinic_pipeline.model.objects import STAGED_OBJECTS
from clinic_pipeline.model.outcomes import IN_FRESHSALES, REPORTED

# Bump policy: see `clinic_pipeline/assets/catalog.py` (here: the sample's choice, load or diff).
CODE_VERSION = "2"


class SampleConfig(dg.Config):
    size: int = 200  # records across all objects, 100 to 500
    seed: int = 7


@dg.asset(
    group_name="sample",
    deps=[*staged_assets.values(), owner_map, freshsales_schema],
    pool=FRESHSALES_POOL,
    kinds={"freshsales", "duckdb", "html"},
    owners=OWNERS,
    tags=asset_tags("sample"),
    code_version=CODE_VERSION,
    description="Loads a referentially closed slice, reads it back and diffs it field by field "
    "(data/reports/sample_diff.html, 0600). The full load waits for `clinic-pipeline sign-off --by NAME`.",
)
def sample_diff(
    context: dg.AssetExecutionContext, config: SampleConfig, clinic: ClinicResource, freshsales: FreshsalesResource
) -> dg.MaterializeResult:
    with operator_errors():
        outcome = steps.run_sample(
            settings_from(clinic, freshsales), size=config.size, seed=config.seed, run_id=context.run_id
        )
    diff = outcome.diff
    metadata: dict[str, dg.MetadataValue] = {
        "records": dg.MetadataValue.int(diff.records),
        "records_missing": dg.MetadataValue.int(diff.records_missing),
        "fields_compared": dg.MetadataValue.int(diff.fields_compared),
        "matched": dg.MetadataValue.int(diff.matched),
        "differs": dg.MetadataValue.int(diff.differs),
        "missing": dg.MetadataValue.int(diff.missing),
        "diff_hash": dg.MetadataValue.text(diff.diff_hash),
        "html": dg.MetadataValue.path(str(diff.html_path)),
    }
    for name, rate in diff.match_rate_by_object.items():
        metadata[f"match_rate_{name}"] = dg.MetadataValue.float(round(rate, 4))
    # Per object: records sampled, and the share of their compared fields that match. Counts only: the
    # values are in the private diff files.
    sampled = outcome.selection.records
    rows = []
    for name in [o.name for o in STAGED_OBJECTS if o.name in sampled or o.name in diff.match_rate_by_object]:
        loads = outcome.loaded.get(name, {})
        loaded = sum(n for k, n in loads.items() if k in IN_FRESHSALES)
        rate = diff.match_rate_by_object.get(name)
        rows.append(
            (
                name,
                sampled.get(name, 0),
                loaded,
                sum(n for k, n in loads.items() if k in REPORTED),
                "no field compared" if rate is None else f"{rate:.1%}",
            )
        )
    metadata["by_object"] = dg.MetadataValue.md(
        md_table(("object", "records sampled", "loaded", "held back or rejected", "fields matching"), rows)
        + f"\n\n{diff.records - diff.records_missing} of {diff.records} sampled records read back; "
        f"{diff.matched} of {diff.fields_compared} compared fields match, {diff.differs} differ, "
        f"{diff.missing} missing in Freshsales."
    )
    metadata["csv"] = dg.MetadataValue.path(str(diff.csv_path))
    return dg.MaterializeResult(metadata=metadata)
