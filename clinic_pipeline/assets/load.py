"""`load` group: `loaded_<object>` in the load order; all share the Freshsales API pool.

Each loaded asset follows its staged asset (and so its blocking quality check), its parents, and every
object of the load stage before its own (`model.objects.LOAD_STAGES`): accounts → contacts → deals and
activities → custom modules, as the lineage shows. The same factory builds the delta group's
hourly-partitioned `delta_loaded_<object>` assets: one id map and one audit log for both, so a record
changed during cutover is updated, never created twice.
"""

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.catalog import OWNERS, asset_tags, md_table
from clinic_pipeline.assets.resources import (
    FRESHSALES_POOL,
    ClinicResource,
    FreshsalesResource,
    operator_errors,
    settings_from,
)
from clinic_pipeline.assets.sample import sample_diff
from clinic_pipeline.assets.staging import staged_assets
from clinic_pipeline.load.load_check import LoadCheck, run_load_check
from clinic_pipeline.load.loader import LoadResult
from clinic_pipeline.model.objects import LOAD_STAGES, STAGED_OBJECTS, FreshsalesObject
from clinic_pipeline.model.outcomes import REPORTED, LoadOutcome

# Bump policy: see `clinic_pipeline/assets/catalog.py` (here: a change of what `load/` sends or records).
CODE_VERSION = "1"
LOADED_CHECK = "loaded_or_listed"


def _outcomes_table(result: LoadResult) -> str:
    """What became of the staged records: one row per outcome that happened, then the staged total."""
    rows = [(str(o), result.outcomes[o]) for o in LoadOutcome if result.outcomes[o]]
    return md_table(("outcome", "records"), [*rows, ("**staged**", result.staged)])


def _load_metadata(result: LoadResult) -> dict[str, dg.MetadataValue]:
    summary = result.summary()
    metadata: dict[str, dg.MetadataValue] = {
        name: dg.MetadataValue.int(int(value)) for name, value in summary.items() if name != "records_per_request"
    }
    # Records per request only when both are there: "0 per request" beside requests says nothing true.
    if result.requests and result.written:
        metadata["records_per_request"] = dg.MetadataValue.float(float(summary["records_per_request"]))
    metadata["outcomes"] = dg.MetadataValue.md(_outcomes_table(result))
    # The rejected file only when it lists something (the files loader writes it, empty, every time).
    listed = sum(result.outcomes[o] for o in REPORTED)
    if result.rejected_path is not None and listed:
        metadata["rejected_file"] = dg.MetadataValue.path(str(result.rejected_path))
    return metadata


def _check_result(check: LoadCheck) -> dg.AssetCheckResult:
    """Green: every staged record loaded. Yellow (WARN, not blocking): some not loaded, each listed
    with its reason. Red (ERROR, blocking): staged records neither loaded nor listed."""
    rows = [("loaded (in the id map)", check.loaded)]
    rows += [(reason, n) for reason, n in check.not_loaded.items()]
    rows.append(("**staged**", check.staged))
    table = md_table(("staged records", "count"), rows)
    if check.quarantined:
        quarantine = [(reason, n) for reason, n in check.quarantine_reasons.items()]
        table += "\n\nQuarantined at staging (never staged, not loaded):\n\n" + md_table(
            ("quarantined because", "source keys"), quarantine
        )
    if not check.accounted:
        description = (
            f"{check.unaccounted} of {check.staged} staged {check.object} records are neither loaded nor "
            "listed with a reason (the audit log of this run says what was sent)"
        )
    elif not check.all_loaded:
        why = ", ".join(f"{reason} {n}" for reason, n in check.not_loaded.items())
        description = (
            f"{check.loaded} of {check.staged} staged {check.object} records loaded; "
            f"{check.listed} listed with their reason ({why})"
        )
    else:
        description = f"{check.loaded} of {check.staged} staged {check.object} records loaded"
    return dg.AssetCheckResult(
        check_name=LOADED_CHECK,
        passed=check.all_loaded,
        severity=dg.AssetCheckSeverity.ERROR if not check.accounted else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "summary": dg.MetadataValue.md(f"**{description}**\n\n{table}"),
            "staged": dg.MetadataValue.int(check.staged),
            "loaded": dg.MetadataValue.int(check.loaded),
            "listed_not_loaded": dg.MetadataValue.int(check.listed),
            "unaccounted": dg.MetadataValue.int(check.unaccounted),
            "quarantined": dg.MetadataValue.int(check.quarantined),
        },
    )


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
        kinds={"freshsales", "duckdb", "python"},
        owners=OWNERS,
        tags=asset_tags("load", obj.name, delta=partitions_def is not None),
        code_version=CODE_VERSION,
        check_specs=[
            dg.AssetCheckSpec(
                LOADED_CHECK,
                asset=f"{prefix}loaded_{obj.name}",
                blocking=True,
                description="Every staged record is in the id map, or listed with its reason (held back, "
                "rejected, failed): red, and what follows waits, when a record is neither; yellow when some "
                "are listed. Reads the state store and the staged file, no API call.",
            )
        ],
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
        with operator_errors():
            check = run_load_check(settings_from(clinic, freshsales), obj.name, partition=partition)
        return dg.MaterializeResult(metadata=_load_metadata(result), check_results=[_check_result(check)])

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
