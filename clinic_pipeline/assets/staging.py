"""`staging` group: one `staged_<object>` Parquet asset per Freshsales object, each with its checks.

The same factory builds the delta group's hourly-partitioned `delta_staged_<object>` assets.
"""

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.plan import confirmed_mapping
from clinic_pipeline.assets.resources import ClinicPipelineResource, operator_errors
from clinic_pipeline.model.objects import STAGED_OBJECTS, FreshsalesObject
from clinic_pipeline.staging.quality import QualityResult


def staged_asset(
    obj: FreshsalesObject,
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


def _metadata(results: list[QualityResult]) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, dg.MetadataValue] = {}
    for r in results:
        metadata[r.name] = dg.MetadataValue.json({"passed": r.passed, **r.observed})
    return metadata


def quality_checks(obj: FreshsalesObject, asset: dg.AssetsDefinition) -> list[dg.AssetChecksDefinition]:
    """The object's Great Expectations suite as two checks: what must hold before a record moves
    (blocking: the load of this object and its dependents waits), and what is only reported."""

    @dg.asset_check(
        asset=asset,
        name="quality_blocking",
        blocking=True,
        description="Source keys present and unique, the fields Freshsales requires, links to staged parents.",
    )
    def _blocking(context: dg.AssetCheckExecutionContext, pipeline: ClinicPipelineResource) -> dg.AssetCheckResult:
        partition = context.partition_key if context.has_partition_key else None
        with operator_errors():
            results = [r for r in steps.run_quality(pipeline.settings(), obj.name, partition=partition) if r.blocking]
        failed = [r.name for r in results if not r.passed]
        return dg.AssetCheckResult(
            passed=not failed,
            description=f"failed: {', '.join(failed)}" if failed else "every blocking check passed",
            metadata=_metadata(results),
        )

    @dg.asset_check(
        asset=asset,
        name="quality_warnings",
        blocking=False,
        description="Email syntax, amounts (non-negative, whole cents), date ranges, population per field.",
    )
    def _warnings(context: dg.AssetCheckExecutionContext, pipeline: ClinicPipelineResource) -> dg.AssetCheckResult:
        partition = context.partition_key if context.has_partition_key else None
        with operator_errors():
            results = [
                r for r in steps.run_quality(pipeline.settings(), obj.name, partition=partition) if not r.blocking
            ]
        failed = [r.name for r in results if not r.passed]
        return dg.AssetCheckResult(
            passed=not failed,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"warnings: {', '.join(failed)}" if failed else "no warnings",
            metadata=_metadata(results),
        )

    return [_blocking, _warnings]


def staged_group(
    *, prefix: str = "", group: str = "staging", partitions_def: dg.PartitionsDefinition | None = None
) -> dict[str, dg.AssetsDefinition]:
    """One staged asset per object, parents before children (load order)."""
    assets: dict[str, dg.AssetsDefinition] = {}
    for obj in STAGED_OBJECTS:
        assets[obj.name] = staged_asset(obj, assets, prefix=prefix, group=group, partitions_def=partitions_def)
    return assets


staged_assets = staged_group()
staged_checks = [check for obj in STAGED_OBJECTS for check in quality_checks(obj, staged_assets[obj.name])]
