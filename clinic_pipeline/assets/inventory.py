"""`inventory` group: the schema inventory of the clinic export."""

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.catalog import OWNERS, asset_tags
from clinic_pipeline.assets.resources import ClinicResource, operator_errors

# Bump policy: see `clinic_pipeline/assets/catalog.py`.
CODE_VERSION = "2"


@dg.asset(
    group_name="inventory",
    kinds={"duckdb", "json", "html"},
    owners=OWNERS,
    tags=asset_tags("inventory"),
    code_version=CODE_VERSION,
    description="Every table and column of the export, profiled (no values), with its Markdown and HTML pages.",
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
            "page": dg.MetadataValue.path(str(settings.paths.inventory_page)),
            "html": dg.MetadataValue.path(str(settings.paths.inventory_html)),
        }
    )
