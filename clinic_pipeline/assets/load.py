"""`load` group: `loaded_<object>` in dependency order; all share the Freshsales API pool.

The same factory builds the delta group's hourly-partitioned `delta_loaded_<object>` assets: one id
map and one audit log for both, so a record changed during cutover is updated, never created twice.
"""

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.resources import ClinicPipelineResource, operator_errors
from clinic_pipeline.assets.staging import staged_assets
from clinic_pipeline.staging.objects import STAGED_OBJECTS, StagedObject

# The hourly API budget belongs to the Freshsales account, not to a run: one pool for every load.
FRESHSALES_POOL = "freshsales_api"


def loaded_asset(
    obj: StagedObject,
    staged: dict[str, dg.AssetsDefinition],
    *,
    prefix: str = "",
    group: str = "load",
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"{prefix}loaded_{obj.name}",
        group_name=group,
        deps=[staged[obj.name], *(f"{prefix}loaded_{p}" for p in obj.parents)],
        pool=FRESHSALES_POOL,
        partitions_def=partitions_def,
        description=f"{obj.entity} upserted into Freshsales; the id map rows are this asset's content.",
    )
    def _asset(context: dg.AssetExecutionContext, pipeline: ClinicPipelineResource) -> dg.MaterializeResult:
        partition = context.partition_key if context.has_partition_key else None
        with operator_errors():
            result = steps.run_load(pipeline.settings(), obj.name, run_id=context.run_id, partition=partition)
        metadata: dict[str, dg.MetadataValue] = {
            "staged": dg.MetadataValue.int(result.staged),
            "loaded": dg.MetadataValue.int(result.loaded),
        }
        for outcome in ("created", "updated", "adopted", "unchanged", "rejected", "held_back", "unknown"):
            metadata[outcome] = dg.MetadataValue.int(result.outcomes[outcome])
        if result.rejected_path is not None:
            metadata["rejected_file"] = dg.MetadataValue.path(str(result.rejected_path))
        return dg.MaterializeResult(metadata=metadata)

    return _asset


def loaded_group(
    staged: dict[str, dg.AssetsDefinition],
    *,
    prefix: str = "",
    group: str = "load",
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dict[str, dg.AssetsDefinition]:
    return {
        obj.name: loaded_asset(obj, staged, prefix=prefix, group=group, partitions_def=partitions_def)
        for obj in STAGED_OBJECTS
    }


loaded_assets = loaded_group(staged_assets)
