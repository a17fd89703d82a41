"""`sample` group: the sample migration, read back and diffed, before the full run may start."""

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.plan import freshsales_schema, owner_map
from clinic_pipeline.assets.resources import (
    FRESHSALES_POOL,
    ClinicResource,
    FreshsalesResource,
    operator_errors,
    settings_from,
)
from clinic_pipeline.assets.staging import staged_assets


class SampleConfig(dg.Config):
    size: int = 200  # records across all objects, 100 to 500
    seed: int = 7


@dg.asset(
    group_name="sample",
    deps=[*staged_assets.values(), owner_map, freshsales_schema],
    pool=FRESHSALES_POOL,
    kinds={"freshsales"},
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
    return dg.MaterializeResult(metadata=metadata)
