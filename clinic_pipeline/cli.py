"""`clinic-pipeline`: the command line over the same step functions the Dagster assets call.

Every command exits 0 on success and non-zero with a one-line reason otherwise: operator errors
never surface as tracebacks, and no message carries record values or the API key.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer

from clinic_pipeline import steps
from clinic_pipeline.dagster_instance import dagster_home
from clinic_pipeline.delta.windows import WINDOW, closed_windows, partition_key, partition_window
from clinic_pipeline.errors import OperatorError
from clinic_pipeline.load.reference_cache import forget_process_references
from clinic_pipeline.load.state import StateBusyError
from clinic_pipeline.mapping.plan import read_plan
from clinic_pipeline.mapping.review import render_review
from clinic_pipeline.model.objects import STAGED_OBJECTS
from clinic_pipeline.model.outcomes import IN_FRESHSALES, LoadOutcome
from clinic_pipeline.reports.validation import ValidationReport, describe_not_loaded
from clinic_pipeline.settings import ConfigurationError, Settings, load_settings
from clinic_pipeline.staging.sample import MAX_SIZE, MIN_SIZE

if TYPE_CHECKING:
    from clinic_pipeline.runs import RunOutcome

app = typer.Typer(
    help="Migrate a clinic's export into Freshsales: inventory → plan → stage → load → validate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
P = ParamSpec("P")
R = TypeVar("R")


def _one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except OperatorError as exc:
            for line in str(exc).splitlines():
                typer.echo(f"error: {line}", err=True)
            raise typer.Exit(code=1) from None
        finally:
            # The command ends (it was not killed): the next one reads the account's reference rows afresh.
            forget_process_references()

    return wrapper


def _settings() -> Settings:
    return load_settings()


@app.command("sandbox")
@_one_line_errors
def sandbox_command(
    host: Annotated[str, typer.Option(help="loopback address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8765,
    db: Annotated[
        Path | None, typer.Option(help="SQLite file holding the sandbox's records (default: CLINIC_DATA_DIR/sandbox)")
    ] = None,
    api_key: Annotated[str, typer.Option(envvar="FRESHSALES_API_KEY", help="key clients must send")] = "sandbox-key",
    test_mode: Annotated[bool, typer.Option("--test-mode", help="enable the /_sandbox/ controls")] = False,
    plan: Annotated[str, typer.Option(help="rate-limit preset: growth|pro|enterprise|unlimited")] = "unlimited",
    requests_per_hour: Annotated[int | None, typer.Option(help="override the plan's hourly budget")] = None,
    requests_per_minute: Annotated[int | None, typer.Option(help="override the plan's per-minute budget")] = None,
    max_file_bytes: Annotated[int | None, typer.Option(help="per-file upload limit (default 150 MB)")] = None,
    retry_after: Annotated[bool, typer.Option("--retry-after", help="send Retry-After with 429s")] = False,
) -> None:
    """Serve the Freshsales-compatible sandbox on loopback."""
    from clinic_pipeline.sandbox.server import serve

    typer.echo(f"sandbox: http://{host}:{port}/crm/sales (plan {plan}, test mode {'on' if test_mode else 'off'})")
    serve(
        host=host,
        port=port,
        db=db or _settings().paths.sandbox_db,
        api_key=api_key,
        test_mode=test_mode,
        plan=plan,
        requests_per_hour=requests_per_hour,
        requests_per_minute=requests_per_minute,
        max_file_bytes=max_file_bytes,
        retry_after=retry_after,
    )


@app.command("sample-data")
@_one_line_errors
def sample_data(
    out: Annotated[Path | None, typer.Option(help="where to write it (default: CLINIC_DATA_DIR/source/clinic)")] = None,
    patients: Annotated[int, typer.Option(help="patients; every other table scales with it")] = 2000,
    seed: Annotated[int, typer.Option(help="the same seed gives byte-identical output")] = 7,
    fmt: Annotated[str, typer.Option("--format", help="csv (a folder of CSV files) or sqlite (one database)")] = "csv",
    large_documents: Annotated[int, typer.Option(help="sparse documents over 25 MB to add")] = 0,
    country: Annotated[str, typer.Option(help="US, or GB for a UK clinic (+44 numbers, day-first dates, £)")] = "US",
) -> None:
    """Generate a realistic, messy sample clinic export (deterministic for a seed)."""
    from clinic_pipeline.samples.generator import generate_clinic

    if fmt not in ("csv", "sqlite"):
        raise typer.BadParameter("--format is csv or sqlite")
    if country not in ("US", "GB"):
        raise typer.BadParameter("--country is US or GB")
    from clinic_pipeline.progress_view import showing_generation_progress

    dest = out or _settings().paths.generated_source
    with showing_generation_progress() as progress:  # on a terminal: rows and tables written, rate, time left
        result = generate_clinic(
            dest,
            patients=patients,
            seed=seed,
            fmt="csv" if fmt == "csv" else "sqlite",
            large_documents=large_documents,
            country="US" if country == "US" else "GB",
            progress=progress,
        )
    typer.echo(
        f"{result.total_records} records in {len(result.row_counts)} tables written in {result.seconds:.1f} s; "
        f"CLINIC_SOURCE={result.source_spec}"
    )


@app.command()
@_one_line_errors
def inventory() -> None:
    """Profile every table and column of CLINIC_SOURCE into the schema inventory."""
    settings = _settings()
    inv = steps.run_inventory(settings)
    rows = sum(t.row_count for t in inv.tables)
    typer.echo(f"{len(inv.tables)} tables, {rows} rows → {settings.paths.inventory_path}")


@app.command("propose-mapping")
@_one_line_errors
def propose_mapping(
    force: Annotated[bool, typer.Option(help="replace an existing plan for the same source")] = False,
) -> None:
    """Propose the object and field map from the inventory."""
    settings = _settings()
    outcome = steps.run_propose(settings, force=force)
    if not outcome.written:
        typer.echo(f"kept the existing plan for this source ({settings.paths.plan_path}); --force replaces it")
        return
    review = sum(f.needs_review for o in outcome.plan.objects for f in o.fields)
    typer.echo(f"plan proposed → {settings.paths.plan_path} ({review} lines need review)")
    for assumption in outcome.plan.assumptions:
        typer.echo(f"assumed: {assumption}")
    if outcome.backup:
        typer.echo(f"previous plan kept as {outcome.backup}")


@app.command("review-mapping")
@_one_line_errors
def review_mapping() -> None:
    """Show the plan, lowest confidence first."""
    typer.echo(render_review(read_plan(_settings().paths.plan_path)))


@app.command("confirm-mapping")
@_one_line_errors
def confirm_mapping(by: Annotated[str, typer.Option("--by", help="who confirms the plan")]) -> None:
    """Confirm the plan as it is now (hash-locked: any later edit needs a new confirmation)."""
    plan = steps.run_confirm(_settings(), by)
    typer.echo(f"plan confirmed by {plan.confirmed_by} (hash {plan.confirmed_hash})")


@app.command()
def transforms() -> None:
    """List the transforms a plan line may name, with what each does."""
    from clinic_pipeline.model.transforms import vocabulary

    typer.echo(vocabulary())


@app.command()
@_one_line_errors
def checklist() -> None:
    """Write the custom-field checklist (Markdown + CSV) for the Freshsales admin."""
    md, csv_path, count = steps.run_checklist(_settings())
    typer.echo(f"{count} custom fields to create → {md} and {csv_path}")


@app.command()
@_one_line_errors
def assess(
    users: Annotated[
        int | None,
        typer.Option(min=1, help="the Freshsales account's active users, for its file storage (default: the staff)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the assessment as JSON (counts and names)")] = False,
) -> None:
    """Grade the migration, standard or complex, from the inventory and the plan: one page (HTML + JSON)."""
    from clinic_pipeline.reports.assessment import summary_lines

    settings = _settings()
    assessment = steps.run_assessment(settings, users=users)
    if as_json:
        typer.echo(assessment.model_dump_json(indent=2))
        return
    for line in summary_lines(assessment):
        typer.echo(line)
    typer.echo(f"assessment → {settings.paths.assessment_html} and {settings.paths.assessment_json}")


@app.command()
@_one_line_errors
def migrate(
    full: Annotated[bool, typer.Option("--full", help="stage and load every object, then validate")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="stage and count; send nothing")] = False,
    sample: Annotated[
        int | None, typer.Option("--sample", help="load a slice of N records (100-500), read it back and diff it")
    ] = None,
    seed: Annotated[int, typer.Option(help="which slice --sample picks")] = 7,
) -> None:
    """Migrate: a sample slice first (signed off), then the full run. Each runs the asset graph's
    selection in process, blocking quality checks included."""
    if sum((full, dry_run, sample is not None)) != 1:
        raise typer.BadParameter("choose exactly one of --full, --dry-run or --sample N")
    from clinic_pipeline import runs  # Dagster: only for the commands that run the graph

    settings = _settings()
    _record_runs(settings)
    resources = runs.environment_resources()
    if sample is not None:
        if not MIN_SIZE <= sample <= MAX_SIZE:
            raise typer.BadParameter(f"a sample holds {MIN_SIZE} to {MAX_SIZE} records")
        config = {"ops": {"sample_diff": {"config": {"size": sample, "seed": seed}}}}
        run = runs.materialize(runs.SAMPLE, resources, run_config=config)
        _print_staged(run)
        outcome = steps.read_sample_outcome(settings)
        diff = outcome.diff
        held_back = sum(counts.get("held_back", 0) for counts in outcome.loaded.values())
        rejected = sum(counts.get("rejected", 0) for counts in outcome.loaded.values())
        # Records not in Freshsales get no field comparison: without their count the field totals
        # alone would look like a clean sample to the person about to sign it off.
        typer.echo(
            f"sample: {diff.records} records, {diff.records - diff.records_missing} loaded and read back, "
            f"{diff.records_missing} missing from Freshsales (load: {held_back} held back, {rejected} rejected); "
            f"{diff.matched} of {diff.fields_compared} fields match, {diff.differs} differ, {diff.missing} missing"
        )
        typer.echo(f"diff → {diff.html_path} and {diff.csv_path} (private: they hold patient data)")
        typer.echo("if it is right: clinic-pipeline sign-off --by NAME")
        return
    from clinic_pipeline.progress_view import print_summary, showing_load_progress, showing_staging_progress

    if dry_run:
        with showing_staging_progress(settings):  # on a terminal: objects staged of the 12, rows a second
            run = runs.materialize(runs.STAGE, resources)
        _print_staged(run)
        typer.echo(steps.run_estimate(settings).table())
        print_summary(_summary(run, loaded=False), title="dry run")  # on a terminal only, after the plain lines
        return
    # On a terminal: objects staged, then records in the id map per object, rate, time left.
    with showing_load_progress(settings):
        run = runs.materialize(runs.FULL, resources)
    _print_staged(run)
    for obj in STAGED_OBJECTS:
        typer.echo(f"loaded {obj.name}: {_outcomes(run, f'loaded_{obj.name}')}")
    typer.echo(f"run {run.run_id} (undo it: clinic-pipeline rollback --run {run.run_id})")
    try:
        _print_report(ValidationReport.model_validate_json(settings.paths.validation_json.read_text()), settings)
    finally:
        print_summary(_summary(run, loaded=True), title=f"run {run.run_id}")


def _summary(run: RunOutcome, *, loaded: bool) -> dict[str, dict[str, int]]:
    """Per object, the counts of the summary table: staging's, and with `loaded` the load's (`loaded` is every
    record in Freshsales after it: created, updated, adopted, found or unchanged)."""
    rows: dict[str, dict[str, int]] = {}
    for obj in STAGED_OBJECTS:
        staged = f"staged_{obj.name}"
        row = {
            "staged": run.value(staged, "staged_rows"),
            "quarantined": run.value(staged, "quarantined_rows"),
            "skipped": run.value(staged, "skipped_rows"),
        }
        if loaded:
            load = f"loaded_{obj.name}"
            row |= {
                "loaded": sum(run.value(load, o) for o in IN_FRESHSALES),
                "created": run.value(load, LoadOutcome.CREATED),
                "updated": run.value(load, LoadOutcome.UPDATED),
                "unchanged": run.value(load, LoadOutcome.UNCHANGED),
                "requests": run.value(load, "requests"),
            }
        rows[obj.name] = row
    return rows


def _print_staged(run: RunOutcome, prefix: str = "") -> None:
    for obj in STAGED_OBJECTS:
        asset = f"{prefix}staged_{obj.name}"
        typer.echo(
            f"staged {obj.name}: {run.value(asset, 'staged_rows')} records, "
            f"{run.value(asset, 'quarantined_rows')} quarantined, {run.value(asset, 'skipped_rows')} skipped, "
            f"{run.value(asset, 'field_issues')} field issues"
        )


def _outcomes(run: RunOutcome, asset: str) -> str:
    """The load's non-zero outcomes and what it cost (`created 3, unchanged 22; 4 requests, 1 retry`)."""
    counts = [f"{o} {run.value(asset, o)}" for o in sorted(LoadOutcome) if run.value(asset, o)]
    requests, retries = run.value(asset, "requests"), run.value(asset, "retries")
    cost = f"; {requests} requests, {retries} {'retry' if retries == 1 else 'retries'}" if requests else ""
    return (", ".join(counts) or "nothing to send") + cost


@app.command("rollback")
@_one_line_errors
def rollback_command(
    run: Annotated[list[str] | None, typer.Option("--run", help="a migration run id to undo; repeatable")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="undo every migration run")] = False,
) -> None:
    """Undo migration runs in reverse load order: delete what they created, restore what they changed."""
    if bool(run) == all_runs:
        raise typer.BadParameter("give --run RUN_ID (repeatable) or --all")
    result = steps.run_rollback(
        _settings(), None if all_runs else list(run or []), rollback_run_id=f"cli-rollback-{uuid.uuid4()}"
    )
    for name, counts in result.objects.items():
        typer.echo(counts.summary(name))
    if not result.complete:
        typer.echo(f"error: {result.failed} records could not be rolled back: run the same command again", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"rollback {result.rollback_run_id} complete")


@app.command("repair")
@_one_line_errors
def repair_command() -> None:
    """Heal what the last validation report found missing or differing in Freshsales, then validate again."""
    settings = _settings()
    outcome = steps.run_repair(settings, run_id=f"cli-repair-{uuid.uuid4()}")
    repaired = outcome.repaired
    if outcome.after is None:
        typer.echo(
            f"nothing to repair: the validation report of {outcome.last_report_at:%Y-%m-%d %H:%M:%S} UTC lists "
            "no discrepancies (0 writes)"
        )
        return
    for name, o in repaired.objects.items():
        failing = "; ".join(f"{n} {reason}" for reason, n in o.failing.items())
        typer.echo(
            f"repaired {name}: {o.checked} checked, {o.recreated} re-created, {o.updated} updated, "
            f"{o.reuploaded} re-uploaded, {sum(o.failing.values())} still failing"
            + (f" ({failing})" if failing else "")
            + f"; {o.requests} requests"
        )
    typer.echo(
        f"repair {repaired.run_id}: {repaired.writes} writes, {repaired.failing} still failing, "
        f"{repaired.requests} requests "
        f"(undo it: clinic-pipeline rollback --run {repaired.run_id})"
    )
    _print_report(outcome.after, settings)


@app.command("sign-off")
@_one_line_errors
def sign_off(by: Annotated[str, typer.Option("--by", help="who accepts the sample diff")]) -> None:
    """Accept the latest sample diff for the current confirmed plan: the full migration may start."""
    signed = steps.run_sign_off(_settings(), by)
    typer.echo(
        f"sample diff signed off by {signed.signed_by} (plan {signed.plan_hash[:12]}, diff {signed.diff_hash[:12]})"
    )


@app.command()
@_one_line_errors
def delta(
    window: Annotated[
        list[str] | None, typer.Option("--window", help="run this hourly window (YYYY-MM-DD-HH:00, UTC); repeatable")
    ] = None,
) -> None:
    """List the closed cutover windows with their source changes, or run the given windows."""
    settings = _settings()
    if not window:
        if settings.cutover_start is None:
            raise ConfigurationError("CUTOVER_START is not set: the delta windows start there")
        for start in closed_windows(settings.cutover_start, None, datetime.now(UTC)):
            changed = steps.run_count_changes(settings, (start, start + WINDOW))
            typer.echo(f"{partition_key(start)}: {sum(changed.values())} changed rows")
        return
    from clinic_pipeline import runs

    _record_runs(settings)
    for key in window:
        start, _end = partition_window(key)  # a clear error for a malformed key before anything moves
        cutover = settings.cutover_start or start
        run = runs.materialize(runs.DELTA, runs.environment_resources(), partition=key, cutover_start=cutover)
        for obj in STAGED_OBJECTS:
            staged = run.value(f"delta_staged_{obj.name}", "staged_rows")
            typer.echo(f"{key} {obj.name}: staged {staged}; {_outcomes(run, f'delta_loaded_{obj.name}')}")


def _print_report(report: steps.ValidationReport, settings: Settings) -> None:
    for o in report.objects:
        typer.echo(
            f"validated {o.object}: {o.staged} staged, {o.in_id_map} loaded, "
            f"{'not countable' if o.freshsales_total is None else o.freshsales_total} in Freshsales; "
            f"{o.keys_found_once}/{o.keys_checked} checked keys found once, {o.keys_missing} missing, "
            f"{o.keys_duplicated} duplicated"
        )
        if o.not_loaded:
            # The sampled "missing" above can read 0 while staged records never reached Freshsales.
            typer.echo(f"not loaded {o.object}: {o.not_loaded} of {o.staged} staged ({describe_not_loaded(o)})")
    typer.echo(f"report → {settings.paths.validation_html}")
    if not report.ok:
        for problem in report.discrepancies:
            typer.echo(f"discrepancy: {problem}", err=True)
        raise typer.Exit(code=2)


@app.command()
@_one_line_errors
def report(
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON (counts, no values)")] = False,
) -> None:
    """Read Freshsales back and write the validation report (HTML + JSON). During a load: the last report."""
    settings = _settings()
    show = _print_report_json if as_json else _print_report
    try:
        fresh = steps.run_validation(settings, wait_seconds=steps.STATUS_WAIT_SECONDS)
    except StateBusyError:
        last = steps.last_validation(settings)
        if last is None:
            raise  # no report yet: the one-line refusal names the load that holds the state
        # A read-back against an id map the load is still changing would report differences that are not
        # there: the last finished report, said to be one, and `status` for the load's progress.
        report, written = last
        typer.echo(
            f"a load is running: the last validation report follows (written {written:%Y-%m-%d %H:%M:%S} UTC); "
            "`status` shows the load's progress, and `report` after it reads Freshsales back again",
            err=as_json,  # the JSON on stdout stays parseable
        )
        show(report, settings)
        return
    show(fresh, settings)


def _print_report_json(report: ValidationReport, _: Settings) -> None:
    typer.echo(report.model_dump_json(indent=2))
    if not report.ok:
        raise typer.Exit(code=2)


@app.command()
@_one_line_errors
def status(
    as_json: Annotated[bool, typer.Option("--json", help="print the status as JSON")] = False,
) -> None:
    """Where the migration stands (local state only; counts, never values)."""
    current = steps.run_status(_settings())
    if as_json:
        typer.echo(current.model_dump_json(indent=2))
        return
    if current.load_running:
        typer.echo(current.load_running)
    typer.echo(f"inventory: {'yes' if current.inventory else 'not yet'}")
    plan = current.plan_status or "none"
    typer.echo(f"plan: {plan}" + (f" by {current.plan_confirmed_by}" if current.plan_confirmed_by else ""))
    if current.signed_off_by and current.signed_off_at:
        stale = "" if current.sign_off_current else " (for another version of the plan: sign off again)"
        when = f"{current.signed_off_at:%Y-%m-%d %H:%M} UTC"
        typer.echo(f"sample: signed off by {current.signed_off_by} at {when}{stale}")
    else:
        typer.echo("sample: not signed off")
    for name, staged in current.staged.items():
        typer.echo(
            f"{name}: staged {staged}, quarantined {current.quarantined[name]}, in id map {current.loaded.get(name, 0)}"
        )
    for key, count in current.audit.items():
        typer.echo(f"audit {key}: {count}")
    if current.delta_windows:
        typer.echo(f"delta windows loaded: {len(current.delta_windows)} (latest {current.delta_windows[-1]})")


@app.command()
@_one_line_errors
def demo(
    keep_sandbox_db: Annotated[bool, typer.Option(help="keep the sandbox's records from an earlier demo")] = False,
) -> None:
    """Generate the sample clinic and migrate it end to end into a sandbox (or FRESHSALES_BASE_URL)."""
    from clinic_pipeline.demo import run_demo

    settings = _settings()
    _record_runs(settings)
    run_demo(settings, echo=typer.echo, fresh_sandbox=not keep_sandbox_db)


def _record_runs(settings: Settings) -> None:
    """The command's Dagster runs go to the instance `make ui` opens: its catalog shows them, and a failed
    step's traceback stays readable there."""
    os.environ["DAGSTER_HOME"] = str(dagster_home(settings))


# Closed delta windows the demo's UI shows when CUTOVER_START is unset.
DEMO_WINDOWS = 3


@app.command()
@_one_line_errors
def ui(
    port: Annotated[int, typer.Option(help="port of the Dagster UI")] = 3000,
    sandbox_port: Annotated[int, typer.Option(help="port of the sandbox the UI's runs load into")] = 8765,
) -> None:
    """Open the Dagster UI on the demo: the demo's sandbox on a fixed port, then `dagster dev`."""
    from clinic_pipeline.demo import DEMO_API_KEY, DEMO_FALLBACK_OWNER
    from clinic_pipeline.sandbox.launcher import running_sandbox

    settings = _settings()
    home = dagster_home(settings)
    db = settings.paths.sandbox_db
    db.parent.mkdir(parents=True, exist_ok=True)
    with running_sandbox(db, DEMO_API_KEY, test_mode=True, plan="unlimited", port=sandbox_port) as handle:
        env = os.environ | {
            "DAGSTER_HOME": str(home),
            "CLINIC_SOURCE": settings.clinic_source or str(settings.paths.generated_source),
        }
        if not settings.freshsales_base_url:
            # The demo's own sandbox, as `demo` sets it up: no rate limit, the sandbox admin as fallback owner.
            env |= {
                "FRESHSALES_BASE_URL": handle.base_url,
                "FRESHSALES_API_KEY": DEMO_API_KEY,
                "FRESHSALES_REQUESTS_PER_HOUR": "1000000",
                "FRESHSALES_REQUESTS_PER_MINUTE": "100000",
                "CLINIC_FALLBACK_OWNER_EMAIL": settings.clinic_fallback_owner_email or DEMO_FALLBACK_OWNER,
            }
        if settings.cutover_start is None:
            # The demo's cutover: three hours back, so the delta group and a few closed windows show.
            cutover = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=DEMO_WINDOWS)
            env["CUTOVER_START"] = cutover.isoformat()
        typer.echo(f"sandbox at {handle.base_url}; Dagster UI at http://127.0.0.1:{port}")
        code = ["-w", "workspace.yaml"] if Path("workspace.yaml").exists() else ["-m", "clinic_pipeline.definitions"]
        # The venv's own Dagster, whether or not its bin folder is on PATH.
        command = [sys.executable, "-m", "dagster", "dev", "-p", str(port), *code]
        # `dagster dev` starts the webserver and the code server as children: in a session of their own they
        # can be stopped together, where Ctrl-C on `dagster dev` alone leaves them running.
        process = subprocess.Popen(command, env=env, start_new_session=True)
        # A `kill` or a process manager's SIGTERM stops the session as Ctrl-C does: otherwise this process
        # dies alone and the webserver and code server, in their own session, outlive it. SIGINT is set too:
        # started in the background (`make ui &`, nohup, a CI step) it arrives ignored, and Python then keeps
        # it ignored, so a Ctrl-C would stop nothing.
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
        try:
            process.wait()
        except KeyboardInterrupt:
            typer.echo("stopping the Dagster UI")
            # A second Ctrl-C or SIGTERM (a process manager repeats it) must not cut the escalation short and
            # leave the session's processes holding the ports.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _stop_session(process)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_session(process: subprocess.Popen[bytes]) -> None:
    """Ask the whole session to stop (SIGINT, as Ctrl-C would), then insist: nothing may keep the ports."""
    for sig, grace in ((signal.SIGINT, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return  # every process of the session has exited
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; its children may still be winding down in the session.
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
