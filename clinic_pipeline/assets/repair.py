"""`repair_job`: `clinic-pipeline repair` as a Dagster job, audited under the Dagster run's id."""

import dagster as dg

from clinic_pipeline import steps
from clinic_pipeline.assets.resources import (
    FRESHSALES_POOL,
    ClinicResource,
    FreshsalesResource,
    operator_errors,
    settings_from,
)


@dg.op(
    pool=FRESHSALES_POOL,
    description="Re-sends only what the last validation report found missing or differing, then validates again.",
)
def repair_discrepancies(
    context: dg.OpExecutionContext, clinic: ClinicResource, freshsales: FreshsalesResource
) -> None:
    with operator_errors():
        outcome = steps.run_repair(settings_from(clinic, freshsales), run_id=context.run_id)
    repaired = outcome.repaired
    for name, o in repaired.objects.items():
        context.log.info(
            f"{name}: {o.checked} checked, {o.recreated} re-created, {o.updated} updated, {o.reuploaded} re-uploaded, "
            f"{sum(o.failing.values())} still failing, {o.requests} requests"
        )
    context.log.info(f"{repaired.writes} writes, {repaired.requests} requests")
    if outcome.after is not None and not outcome.after.ok:
        # Reasons are the repair's own words (counts and causes), never record values.
        reasons = sorted({r for o in repaired.objects.values() for r in o.failing})
        raise dg.Failure(
            description=f"{len(outcome.after.discrepancies)} discrepancies remain after the repair"
            + (f": {'; '.join(reasons)}" if reasons else ""),
            allow_retries=False,
        )


# Run tags in the assets' tag vocabulary (the Runs page filters on them).
@dg.job(
    description="Heal in place what validation found missing or differing; audited, undone by rollback.",
    tags={"stage": "repair"},
)
def repair_job() -> None:
    repair_discrepancies()
