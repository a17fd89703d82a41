"""`staging` group: one `staged_<object>` Parquet asset per Freshsales object, each with its checks."""

import dagster as dg
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clinic_pipeline import steps
from clinic_pipeline.assets.plan import confirmed_mapping
from clinic_pipeline.assets.resources import ClinicPipelineResource, operator_errors
from clinic_pipeline.staging.objects import STAGED_OBJECTS, StagedObject


def _staged_asset(obj: StagedObject) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"staged_{obj.name}",
        group_name="staging",
        # Parents first: links to a parent that was not staged are quarantined as orphans.
        deps=[confirmed_mapping, *(staged_assets[p] for p in obj.parents)],
        description=f"Freshsales-shaped {obj.entity} records, keyed by source key (data/staged/{obj.name}.parquet).",
    )
    def _asset(pipeline: ClinicPipelineResource) -> dg.MaterializeResult:
        with operator_errors():
            result = steps.run_stage(pipeline.settings(), obj.name)
        return dg.MaterializeResult(
            metadata={
                "source_rows": dg.MetadataValue.int(result.source_rows),
                "derived_rows": dg.MetadataValue.int(result.derived_rows),
                "staged_rows": dg.MetadataValue.int(result.staged_rows),
                "quarantined_rows": dg.MetadataValue.int(result.quarantined_rows),
                "skipped_rows": dg.MetadataValue.int(result.skipped_rows),
                "skip_reasons": dg.MetadataValue.json(result.skip_reasons),
                "field_issues": dg.MetadataValue.int(result.field_issues),
                "path": dg.MetadataValue.path(str(result.parquet_path)),
                "quarantine": dg.MetadataValue.path(str(result.quarantine_path)),
            }
        )

    return _asset


def _keys_check(obj: StagedObject, asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="source_keys_unique",
        blocking=True,
        description="Every staged record has a non-empty source key and no key appears twice.",
    )
    def _check(pipeline: ClinicPipelineResource) -> dg.AssetCheckResult:
        path = pipeline.settings().staged_dir / f"{obj.name}.parquet"
        keys = pq.read_table(path, columns=["_source_key"]).column(0)
        missing = keys.null_count
        duplicated = len(keys) - missing - len(pc.unique(keys.drop_null()))
        return dg.AssetCheckResult(
            passed=missing == 0 and duplicated == 0,
            metadata={"missing": dg.MetadataValue.int(missing), "duplicated": dg.MetadataValue.int(duplicated)},
        )

    return _check


staged_assets: dict[str, dg.AssetsDefinition] = {}
for _obj in STAGED_OBJECTS:
    staged_assets[_obj.name] = _staged_asset(_obj)
staged_checks = [_keys_check(obj, staged_assets[obj.name]) for obj in STAGED_OBJECTS]
