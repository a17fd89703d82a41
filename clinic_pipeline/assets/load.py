"""`load` group: `loaded_<object>` in the load order; all share the Freshsales API pool.

Each loaded asset follows its staged asset (and so its blocking quality check), its parents, and every
object of the load stage before its own (`model.objects.LOAD_STAGES`): accounts → contacts → deals and
activities → custom modules, as the lineage shows. The same factory builds the delta group's
hourly-partitioned `delta_loaded_<object>` assets: one id map and one audit log for both, so a record
changed during cutover is updated, never created twice.
"""

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.resources import (
    FRESHSALES_POOL,
    ClinicResource,
    FreshsalesResource,
    operator_errors,
    settings_from,
)
from clinic_pipeline.assets.sample import sample_diff
from clinic_pipeline.assets.staging import staged_assets
from clinic_pipeline.model.objects import LOAD_STAGES, STAGED_OBJECTS, FreshsalesObject
from clinic_pipeline.model.outcomes import LoadOutcome


def _load_after(obj: FreshsalesObject) -> list[str]:
    """The objects this one loads after: its parents and the whole stage before its own."""
    stage = next(i for i, objects in enumerate(LOAD_STAGES) if obj in objects)
    earlier = [o.name for o in LOAD_STAGES[stage - 1]] if stage else []
    return list(dict.fromkeys([*obj.parents, *earlier]))


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
        deps=[staged[obj.name], *(f"{prefix}loaded_{p}" for p in _load_after(obj)), *([gate] if gate else [])],
        pool=FRESHSALES_POOL,
        partitions_def=partitions_def,
        kinds={"freshsales"},
        description=f"{obj.entity} upserted into Freshsales; the id map rows are this asset's content.",
    )
    def _asset(
        context: dg.AssetExecutionContext, clinic: ClinicResource, freshsales: FreshsalesResource
    ) -> dg.MaterializeResult:
        partition = context.partition_key if context.has_partition_key else None
        with operator_errors():
            result = steps.run_load(
                settings_from(clinic, freshsales), obj.name, run_id=context.run_id, partition=partition
            )
        summary = result.summary()
        # The run page shows this line: what the load did and what it cost (counts only, no values).
        done = ", ".join(f"{outcome} {summary[outcome]}" for outcome in sorted(LoadOutcome) if summary.get(outcome))
        context.log.info(
            f"{obj.name}: {done or 'nothing to send'}; {result.requests} requests ({result.retries} retried)"
        )
        metadata: dict[str, dg.MetadataValue] = {
            name: dg.MetadataValue.float(value) if isinstance(value, float) else dg.MetadataValue.int(value)
            for name, value in summary.items()
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
