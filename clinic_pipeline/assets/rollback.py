"""`rollback_job`: the one-command rollback as a Dagster job (Launchpad config: run ids, or all)."""

import dagster as dg
from pydantic import Field

from clinic_pipeline import steps
from clinic_pipeline.assets.resources import (
    FRESHSALES_POOL,
    ClinicResource,
    FreshsalesResource,
    operator_errors,
    settings_from,
)


class RollbackConfig(dg.Config):
    run_ids: list[str] = Field(default_factory=list, description="migration run ids to undo")
    all_runs: bool = Field(default=False, description="undo every migration run")


@dg.op(pool=FRESHSALES_POOL, description="Deletes what the runs created and restores what they changed.")
def rollback_runs(
    context: dg.OpExecutionContext, config: RollbackConfig, clinic: ClinicResource, freshsales: FreshsalesResource
) -> None:
    if bool(config.run_ids) == config.all_runs:
        raise dg.Failure(description="give run_ids or all_runs: true", allow_retries=False)
    with operator_errors():
        result = steps.run_rollback(
            settings_from(clinic, freshsales),
            None if config.all_runs else config.run_ids,
            rollback_run_id=context.run_id,
        )
    for name, counts in result.objects.items():
        context.log.info(counts.summary(name))
    if not result.complete:
        raise dg.Failure(
            description=f"{result.failed} records could not be rolled back: re-run this job to finish",
            allow_retries=False,
        )


# Run tags of every rollback run (the Runs page filters on them), in the assets' tag vocabulary.
@dg.job(
    description="Undo migration runs in reverse load order; itself audited and resumable.",
    tags={"stage": "rollback"},
)
def rollback_job() -> None:
    rollback_runs()
