"""The asset selections a person runs, materialized in process: what the CLI and the demo start.

The asset graph is the only place steps are ordered; these selections cut it where a person must act
(confirm the plan, sign off the sample). Running a selection runs the staged objects' blocking quality
checks with it, so a failing check stops the load whoever starts it. With DAGSTER_HOME set the runs
are recorded in that instance and show in the Dagster UI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dagster as dg

from clinic_pipeline.assets.plan import confirmed_mapping, custom_field_checklist, freshsales_schema, owner_map
from clinic_pipeline.assets.resources import ClinicResource, FreshsalesResource
from clinic_pipeline.assets.verify import validation_report, workflow_rebuild_reference
from clinic_pipeline.definitions import ALL_ASSETS, ALL_CHECKS, build_definitions
from clinic_pipeline.errors import OperatorError

PLAN = dg.AssetSelection.assets("schema_inventory", "mapping_plan", "migration_assessment")
STAGE = dg.AssetSelection.assets(confirmed_mapping) | dg.AssetSelection.groups("staging")
_BEFORE_LOAD = STAGE | dg.AssetSelection.assets(custom_field_checklist, owner_map, freshsales_schema)
SAMPLE = _BEFORE_LOAD | dg.AssetSelection.groups("sample")
FULL = (
    _BEFORE_LOAD
    | dg.AssetSelection.groups("load")
    | dg.AssetSelection.assets(validation_report, workflow_rebuild_reference)
)
DELTA = dg.AssetSelection.groups("delta")


class RunFailedError(OperatorError):
    """A step of the run failed or a blocking check stopped it; the message says which and why."""


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    # asset key → its materialization metadata (plain values): what the terminal summary prints
    metadata: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def value(self, asset: str, name: str, default: Any = 0) -> Any:
        return self.metadata.get(asset, {}).get(name, default)


def environment_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources that read everything from the environment (the CLI's)."""
    return {"clinic": ClinicResource(), "freshsales": FreshsalesResource()}


def materialize(
    selection: dg.AssetSelection,
    resources: Mapping[str, dg.ConfigurableResource],
    *,
    run_config: Mapping[str, Any] | None = None,
    partition: str | None = None,
    cutover_start: datetime | None = None,
) -> RunOutcome:
    """Run `selection` in this process; a failure is a `RunFailedError` listing each failed step in one line."""
    if partition is None:
        assets: Sequence[Any] = [*ALL_ASSETS, *ALL_CHECKS]
    else:
        definitions = build_definitions(dict(resources), cutover_start=cutover_start)
        assets = [*(definitions.assets or []), *(definitions.asset_checks or [])]
    # With DAGSTER_HOME set (as `make ui` does) the runs land in that instance and show in the UI.
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    # Dagster's console logger prints step failures with their tracebacks: the command prints its own
    # one-line errors instead, and the run's events stay in the instance (the Dagster UI).
    config = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}} | dict(run_config or {})
    result = dg.materialize(
        assets,
        selection=selection,
        resources=dict(resources),
        instance=instance,
        partition_key=partition,
        # Step events belong in the Dagster UI; the terminal gets the command's own summary.
        run_config=config,
        raise_on_error=False,
    )
    if not result.success:
        raise RunFailedError(_failures(result))
    metadata = {
        event.asset_key.to_user_string(): {
            k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
        if event.asset_key is not None
    }
    return RunOutcome(result.run_id, metadata)


def _failures(result: dg.ExecuteInProcessResult) -> str:
    """One line per failed step: the operator's message, or the blocking check that stopped the run."""
    lines = []
    for check in result.get_asset_check_evaluations():
        if not check.passed and check.blocking:
            lines.append(f"{check.asset_key.to_user_string()}: {check.check_name}: {check.description}")
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            lines.append(data.user_failure_data.description)
        elif data.error is not None and data.error.cls_name != "DagsterAssetCheckFailedError":
            # Not an operator error: a bug. Its message may quote a value, so only its class is shown here;
            # the traceback is in the run's events (the Dagster UI).
            lines.append(f"{event.step_key}: unexpected {data.error.cls_name}: see the run's events for the traceback")
    if not lines:
        lines.append("the run failed; see its events in the Dagster UI")
    lines.append(f"nothing after the failed steps ran (run {result.run_id})")
    return "\n".join(lines)
