"""`staging` group: one `staged_<object>` Parquet asset per Freshsales object, each with its checks.

The same factory builds the delta group's hourly-partitioned `delta_staged_<object>` assets.
"""

import dagster as dg
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clinic_pipeline import steps
from clinic_pipeline.assets.plan import confirmed_mapping
from clinic_pipeline.assets.resources import ClinicPipelineResource, operator_errors
from clinic_pipeline.staging.objects import STAGED_OBJECTS, StagedObject


def staged_asset(
    obj: StagedObject,
    parents: dict[str, dg.AssetsDefinition],
    *,
    prefix: str = "",
    group: str = "staging",
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"{prefix}staged_{obj.name}",
        group_name=group,
        # Parents first: links to a parent that was not staged are quarantined as orphans.
        deps=[confirmed_mapping, *(parents[p] for p in obj.parents)],
        partitions_def=partitions_def,
        description=f"Freshsales-shaped {obj.entity} records, keyed by source key (data/staged/{obj.name}.parquet).",
    )
    def _asset(context: dg.AssetExecutionContext, pipeline: ClinicPipelineResource) -> dg.MaterializeResult:
        partition = context.partition_key if context.has_partition_key else None
        with operator_errors():
            result = steps.run_stage(pipeline.settings(), obj.name, partition=partition)
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


def keys_check(obj: StagedObject, asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="source_keys_unique",
        blocking=True,
        description="Every staged record has a non-empty source key and no key appears twice.",
    )
    def _check(context: dg.AssetCheckExecutionContext, pipeline: ClinicPipelineResource) -> dg.AssetCheckResult:
        partition = context.partition_key if context.has_partition_key else None
        path = steps.staged_dir_for(pipeline.settings(), partition) / f"{obj.name}.parquet"
        keys = pq.read_table(path, columns=["_source_key"]).column(0)
        missing = keys.null_count
        duplicated = len(keys) - missing - len(pc.unique(keys.drop_null()))
        return dg.AssetCheckResult(
            passed=missing == 0 and duplicated == 0,
            metadata={"missing": dg.MetadataValue.int(missing), "duplicated": dg.MetadataValue.int(duplicated)},
        )

    return _check


def staged_group(
    *, prefix: str = "", group: str = "staging", partitions_def: dg.PartitionsDefinition | None = None
) -> dict[str, dg.AssetsDefinition]:
    """One staged asset per object, parents before children (load order)."""
    assets: dict[str, dg.AssetsDefinition] = {}
    for obj in STAGED_OBJECTS:
        assets[obj.name] = staged_asset(obj, assets, prefix=prefix, group=group, partitions_def=partitions_def)
    return assets


staged_assets = staged_group()
staged_checks = [keys_check(obj, staged_assets[obj.name]) for obj in STAGED_OBJECTS]
