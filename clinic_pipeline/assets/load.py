"""`load` group: `loaded_<object>` in dependency order; all share the Freshsales API pool."""

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.resources import ClinicPipelineResource, operator_errors
from clinic_pipeline.assets.staging import staged_assets
from clinic_pipeline.staging.objects import STAGED_OBJECTS, StagedObject

# The hourly API budget belongs to the Freshsales account, not to a run: one pool for every load.
FRESHSALES_POOL = "freshsales_api"


def _loaded_asset(obj: StagedObject) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"loaded_{obj.name}",
        group_name="load",
        deps=[staged_assets[obj.name], *(f"loaded_{p}" for p in obj.parents)],
        pool=FRESHSALES_POOL,
        description=f"{obj.entity} upserted into Freshsales; the id map rows are this asset's content.",
    )
    def _asset(context: dg.AssetExecutionContext, pipeline: ClinicPipelineResource) -> dg.MaterializeResult:
        with operator_errors():
            result = steps.run_load(pipeline.settings(), obj.name, run_id=context.run_id)
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


loaded_assets = {obj.name: _loaded_asset(obj) for obj in STAGED_OBJECTS}
