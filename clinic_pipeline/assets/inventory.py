"""`inventory` group: the schema inventory of the clinic export."""

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.resources import ClinicResource, operator_errors


@dg.asset(
    group_name="inventory",
    kinds={"duckdb"},
    description="Every table and column of the export, profiled (no values).",
)
def schema_inventory(clinic: ClinicResource) -> dg.MaterializeResult:
    settings = clinic.settings()
    with operator_errors():
        inventory = steps.run_inventory(settings)
    return dg.MaterializeResult(
        metadata={
            "tables": dg.MetadataValue.int(len(inventory.tables)),
            "rows": dg.MetadataValue.int(sum(t.row_count for t in inventory.tables)),
            "fingerprint": dg.MetadataValue.text(inventory.fingerprint),
            "path": dg.MetadataValue.path(str(settings.paths.inventory_path)),
        }
    )
