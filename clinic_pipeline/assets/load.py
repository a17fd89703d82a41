"""`load` group: `loaded_<object>` in dependency order; all share the Freshsales API pool.

The same factory builds the delta group's hourly-partitioned `delta_loaded_<object>` assets: one id
map and one audit log for both, so a record changed during cutover is updated, never created twice.
"""

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.resources import ClinicPipelineResource, operator_errors
from clinic_pipeline.assets.sample import FRESHSALES_POOL, sample_diff
from clinic_pipeline.assets.staging import staged_assets
from clinic_pipeline.model.objects import STAGED_OBJECTS, FreshsalesObject


def loaded_asset(
    obj: FreshsalesObject,
    staged: dict[str, dg.AssetsDefinition],
    *,
    prefix: str = "",
    group: str = "load",
    partitions_def: dg.PartitionsDefinition | None = None,
    gate: dg.AssetsDefinition | None = None,
) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"{prefix}loaded_{obj.name}",
        group_name=group,
        deps=[staged[obj.name], *(f"{prefix}loaded_{p}" for p in obj.parents), *([gate] if gate else [])],
        pool=FRESHSALES_POOL,
        partitions_def=partitions_def,
        description=f"{obj.entity} upserted into Freshsales; the id map rows are this asset's content.",
    )
    def _asset(context: dg.AssetExecutionContext, pipeline: ClinicPipelineResource) -> dg.MaterializeResult:
        partition = context.partition_key if context.has_partition_key else None
        with operator_errors():
            result = steps.run_load(pipeline.settings(), obj.name, run_id=context.run_id, partition=partition)
        metadata: dict[str, dg.MetadataValue] = {
            name: dg.MetadataValue.float(value) if isinstance(value, float) else dg.MetadataValue.int(value)
            for name, value in result.summary().items()
        }
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
    gate: dg.AssetsDefinition | None = None,
) -> dict[str, dg.AssetsDefinition]:
    return {
        obj.name: loaded_asset(obj, staged, prefix=prefix, group=group, partitions_def=partitions_def, gate=gate)
        for obj in STAGED_OBJECTS
    }


# The full load follows the sample diff (and refuses to run until it is signed off).
loaded_assets = loaded_group(staged_assets, gate=sample_diff)
