"""`staging` group: one `staged_<object>` Parquet asset per Freshsales object, each with its checks.

The same factory builds the delta group's hourly-partitioned `delta_staged_<object>` assets.
"""

from collections.abc import Iterator

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.catalog import OWNERS, asset_tags, md_table
from clinic_pipeline.assets.plan import confirmed_mapping
from clinic_pipeline.assets.resources import ClinicResource, operator_errors
from clinic_pipeline.model.objects import STAGED_OBJECTS, FreshsalesObject
from clinic_pipeline.staging.quality import QualityResult
from clinic_pipeline.staging.stage import StageResult

BLOCKING_CHECK = "quality_blocking"
WARNING_CHECK = "quality_warnings"
# Bump policy: see `clinic_pipeline/assets/catalog.py` (here: a change of what `staging/` writes).
CODE_VERSION = "1"


def _reconciliation_table(result: StageResult) -> str:
    """Per source table: its rows, and where each went (staged, quarantined, skipped). Counts only."""
    rows: list[tuple[object, ...]] = [
        (r.source_table, r.source_rows, r.staged, r.quarantined, r.skipped) for r in result.reconciliation
    ]
    if result.derived_rows:
        rows.append(("(derived from lookup values)", result.derived_rows, "", "", ""))
    rows.append(
        (
            "**total**",
            result.source_rows + result.derived_rows,
            result.staged_rows,
            result.quarantined_rows,
            result.skipped_rows,
        )
    )
    return md_table(("source table", "rows", "staged", "quarantined", "skipped"), rows)


def _skip_reasons_table(reasons: dict[str, int]) -> str:
    return md_table(("skipped because", "rows"), sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))


def staged_asset(
    obj: FreshsalesObject,
    parents: dict[str, dg.AssetsDefinition],
    *,
    prefix: str = "",
    group: str = "staging",
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.AssetsDefinition:
    where = (
        f"data/staged/{obj.name}.parquet"
        if partitions_def is None
        else f"data/staged/delta/<window>/{obj.name}.parquet"
    )

    @dg.asset(
        name=f"{prefix}staged_{obj.name}",
        group_name=group,
        # Parents first: links to a parent that was not staged are quarantined as orphans.
        deps=[confirmed_mapping, *(parents[p] for p in obj.parents)],
        partitions_def=partitions_def,
        kinds={"duckdb", "parquet"},
        owners=OWNERS,
        tags=asset_tags("staging", obj.name, delta=partitions_def is not None),
        code_version=CODE_VERSION,
        description=f"Freshsales-shaped {obj.entity} records, keyed by source key ({where}).",
    )
    def _asset(context: dg.AssetExecutionContext, clinic: ClinicResource) -> dg.MaterializeResult:
        partition = context.partition_key if context.has_partition_key else None
        with operator_errors():
            result = steps.run_stage(clinic.settings(), obj.name, partition=partition)
        context.log.info(
            f"{obj.name}: {result.staged_rows} staged, {result.quarantined_rows} quarantined, "
            f"{result.skipped_rows} skipped, {result.field_issues} field issues"
        )
        metadata: dict[str, dg.MetadataValue] = {
            "source_rows": dg.MetadataValue.int(result.source_rows),
            "derived_rows": dg.MetadataValue.int(result.derived_rows),
            "staged_rows": dg.MetadataValue.int(result.staged_rows),
            "quarantined_rows": dg.MetadataValue.int(result.quarantined_rows),
            "skipped_rows": dg.MetadataValue.int(result.skipped_rows),
            "skip_reasons": dg.MetadataValue.json(result.skip_reasons),
            "field_issues": dg.MetadataValue.int(result.field_issues),
            "reconciliation": dg.MetadataValue.md(_reconciliation_table(result)),
            "path": dg.MetadataValue.path(str(result.parquet_path)),
            "dagster/row_count": dg.MetadataValue.int(result.staged_rows),
        }
        # Files that list rows are named only when they list some (they hold values: private, 0600).
        if result.skip_reasons:
            metadata["skipped_by_reason"] = dg.MetadataValue.md(_skip_reasons_table(result.skip_reasons))
        if result.quarantined_rows:
            metadata["quarantine"] = dg.MetadataValue.path(str(result.quarantine_path))
        if result.field_issues:
            metadata["field_issues_file"] = dg.MetadataValue.path(str(result.field_issues_path))
        return dg.MaterializeResult(metadata=metadata)

    return _asset


def _metadata(results: list[QualityResult]) -> dict[str, dg.MetadataValue]:
    return {r.name: dg.MetadataValue.json({"passed": r.passed, **r.observed}) for r in results}


def quality_checks(obj: FreshsalesObject, asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    """The object's Great Expectations suite, run once, as two checks: what must hold before a record
    moves (blocking: the load of this object and its dependents waits), and what is only reported."""
    key = asset.key

    @dg.multi_asset_check(
        name=f"{key.path[-1]}_quality",
        specs=[
            dg.AssetCheckSpec(
                BLOCKING_CHECK,
                asset=key,
                blocking=True,
                description="Source keys present and unique, the fields Freshsales requires, links to staged parents.",
            ),
            dg.AssetCheckSpec(
                WARNING_CHECK,
                asset=key,
                description="Email syntax, amounts (non-negative, whole cents), date ranges, population per field.",
            ),
        ],
    )
    def _checks(context: dg.AssetCheckExecutionContext, clinic: ClinicResource) -> Iterator[dg.AssetCheckResult]:
        partition = context.partition_key if context.has_partition_key else None
        with operator_errors():
            results = steps.run_quality(clinic.settings(), obj.name, partition=partition)
        for name, blocking in ((BLOCKING_CHECK, True), (WARNING_CHECK, False)):
            part = [r for r in results if r.blocking == blocking]
            failed = [r.name for r in part if not r.passed]
            if failed:
                description = f"{'failed' if blocking else 'warnings'}: {', '.join(failed)}"
            else:
                description = "every blocking check passed" if blocking else "no warnings"
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=name,
                passed=not failed,
                severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
                description=description,
                metadata=_metadata(part),
            )

    return _checks


def staged_group(
    *, prefix: str = "", group: str = "staging", partitions_def: dg.PartitionsDefinition | None = None
) -> dict[str, dg.AssetsDefinition]:
    """One staged asset per object, parents before children (load order)."""
    assets: dict[str, dg.AssetsDefinition] = {}
    for obj in STAGED_OBJECTS:
        assets[obj.name] = staged_asset(obj, assets, prefix=prefix, group=group, partitions_def=partitions_def)
    return assets


staged_assets = staged_group()
staged_checks = [quality_checks(obj, staged_assets[obj.name]) for obj in STAGED_OBJECTS]
