"""One function per pipeline step: what the Dagster assets call (and the CLI, for single steps).

Each takes the validated `Settings`, does its step through the domain packages and returns a small
summary (counts, paths, hashes: never record values) for asset metadata and terminal output. A step
never redoes an upstream step: it checks its inputs are there and current, and otherwise says which
asset to materialize first. The order of steps is the asset graph's alone (`assets/`, `runs`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from clinic_pipeline.delta.windows import count_changes_duckdb, count_changes_sqlite, partition_window
from clinic_pipeline.freshsales.client import FreshsalesClient
from clinic_pipeline.load.choices import choice_problems
from clinic_pipeline.load.estimate import DryRunEstimate, RateLimits, estimate
from clinic_pipeline.load.files import load_files
from clinic_pipeline.load.loader import Loader, LoadResult
from clinic_pipeline.load.modules import (
    ModulesResult,
    SchemaError,
    ensure_custom_modules,
    module_specs,
    verify_custom_fields,
)
from clinic_pipeline.load.owners import OwnerMap
from clinic_pipeline.load.reference_cache import StateReferenceCache
from clinic_pipeline.load.repair import RepairResult, repair
from clinic_pipeline.load.rollback import RollbackResult, rollback
from clinic_pipeline.load.state import (
    DEFAULT_WAIT_SECONDS,
    StateBusyError,
    StateStore,
    open_state,
    read_progress,
    state_exists,
)
from clinic_pipeline.load.state_location import describe
from clinic_pipeline.mapping.checklist import (
    CustomFieldSpec,
    module_custom_fields,
    required_custom_fields,
    write_checklist,
)
from clinic_pipeline.mapping.owner_map import (
    StaffOwnerMap,
    build_owner_map,
    read_owner_map,
    unresolved,
    write_owner_map,
)
from clinic_pipeline.mapping.plan import MappingPlan, read_plan, require_confirmed, write_plan
from clinic_pipeline.mapping.plan_check import confirm_checked, missing_columns
from clinic_pipeline.mapping.proposer import propose_plan
from clinic_pipeline.mapping.secrets import secret_columns
from clinic_pipeline.mapping.sign_off import SignOff, read_sign_off, record_sign_off, require_sign_off
from clinic_pipeline.model.objects import BY_NAME, FILES, STAGED_OBJECTS, FreshsalesObject
from clinic_pipeline.model.people import name_key
from clinic_pipeline.model.transforms import OWNER_COLUMNS
from clinic_pipeline.reports.assessment import Assessment, build_assessment, count_source, write_assessment
from clinic_pipeline.reports.mapping_review import write_review_page
from clinic_pipeline.reports.rebuild import RebuildReference, build_rebuild_reference
from clinic_pipeline.reports.sample_diff import SampleDiff, diff_sample
from clinic_pipeline.reports.validation import ValidationReport, validate_migration, write_report
from clinic_pipeline.settings import ConfigurationError, Settings
from clinic_pipeline.source.export import SourceExport
from clinic_pipeline.source.inventory import SchemaInventory, build_inventory, read_inventory, write_inventory
from clinic_pipeline.source.inventory_page import write_inventory_page
from clinic_pipeline.source.reader import open_source
from clinic_pipeline.sql import quote_literal
from clinic_pipeline.staging.quality import QualityResult, run_quality_checks
from clinic_pipeline.staging.sample import SampleSelection, choose_sample
from clinic_pipeline.staging.stage import StageResult, stage_object, tables_read


def _client(settings: Settings) -> FreshsalesClient:
    """A client whose reference reads are kept in the state store for the run (`load.reference_cache`)."""
    client = FreshsalesClient.from_settings(settings)
    client.use_reference_cache(
        StateReferenceCache(
            settings.state_location, client.base_url, max_age_seconds=settings.clinic_reference_max_age_seconds
        )
    )
    return client


@contextmanager
def _source(
    settings: Settings, tables: Collection[str] | None = None
) -> Iterator[tuple[SourceExport, duckdb.DuckDBPyConnection]]:
    """The export opened read-only in a fresh DuckDB connection (only `tables`, when given)."""
    # DuckDB spills to disk past its memory limit: the spill holds source rows, so it goes to a private folder.
    spill = settings.paths.spill_dir
    spill.mkdir(parents=True, exist_ok=True)
    spill.chmod(0o700)
    con = duckdb.connect(config={"temp_directory": str(spill)})
    try:
        yield open_source(settings.require_source(), con, tables), con
    finally:
        con.close()


def run_inventory(settings: Settings) -> SchemaInventory:
    with _source(settings) as (export, con):
        inventory = build_inventory(export, con)
    write_inventory(inventory, settings.paths.inventory_path)
    write_inventory_page(inventory, settings.paths.inventory_page, settings.paths.inventory_html)
    return inventory


@dataclass(frozen=True)
class ProposeOutcome:
    plan: MappingPlan
    written: bool  # False when a plan for the same source already exists and was kept
    backup: Path | None = None


def run_propose(settings: Settings, *, force: bool = False) -> ProposeOutcome:
    """Propose a plan; never overwrite a person's edits to a plan of the same source unless forced."""
    inventory = read_inventory(settings.paths.inventory_path)
    if settings.paths.plan_path.exists() and not force:
        existing = read_plan(settings.paths.plan_path)
        if existing.source_fingerprint == inventory.fingerprint:
            # The page a person reviews the plan on follows the plan as it stands, edits included.
            write_review_page(existing, settings.paths.mapping_review_html, settings.mapping_review_threshold)
            return ProposeOutcome(existing, written=False)
    backup = None
    if settings.paths.plan_path.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        backup = settings.paths.plan_path.with_name(f"mapping_plan.{stamp}.yaml")
        shutil.copy2(settings.paths.plan_path, backup)
    plan = propose_plan(inventory, settings.mapping_review_threshold)
    write_plan(plan, settings.paths.plan_path)
    write_review_page(plan, settings.paths.mapping_review_html, settings.mapping_review_threshold)
    return ProposeOutcome(plan, written=True, backup=backup)


def run_confirm(settings: Settings, by: str) -> MappingPlan:
    """Check the plan (`mapping.plan_check`) against the inventory's tables, then stamp it for `by`."""
    inventory = read_inventory(settings.paths.inventory_path) if settings.paths.inventory_path.exists() else None
    tables = [t.name for t in inventory.tables] if inventory else None
    secrets = secret_columns(inventory) if inventory else None
    values = (
        {(t.name, c.name): c.categories for t in inventory.tables for c in t.columns if c.categories}
        if inventory
        else None
    )
    plan = confirm_checked(read_plan(settings.paths.plan_path), by, tables, secrets, values)
    write_plan(plan, settings.paths.plan_path)
    return plan


def confirmed_plan(settings: Settings) -> MappingPlan:
    """The gate before any record moves; also refuses a plan proposed from another source."""
    plan = require_confirmed(read_plan(settings.paths.plan_path))
    if settings.paths.inventory_path.exists():
        inventory = read_inventory(settings.paths.inventory_path)
        if inventory.fingerprint != plan.source_fingerprint:
            raise ConfigurationError(
                "the confirmed plan was proposed from a different source inventory: propose and confirm again"
            )
    return plan


def require_staged(settings: Settings, name: str, folder: Path) -> Path:
    """The object's staged file, refused when missing or staged from an earlier version of the plan."""
    path = folder / f"{name}.parquet"
    if not path.exists():
        raise ConfigurationError(f"{path}: not staged yet; materialize staged_{name} first")
    if path.stat().st_mtime < settings.paths.plan_path.stat().st_mtime:
        raise ConfigurationError(f"staged {name} is older than the plan: materialize staged_{name} again first")
    return path


def run_checklist(settings: Settings) -> tuple[Path, Path, int]:
    specs = required_custom_fields(confirmed_plan(settings))
    paths = settings.paths
    write_checklist(specs, paths.checklist_md, paths.checklist_csv)
    return paths.checklist_md, paths.checklist_csv, len(specs)


def run_owner_map(settings: Settings) -> StaffOwnerMap:
    plan = confirmed_plan(settings)
    with _client(settings) as client:
        users = client.owners()
    with _source(settings) as (_export, con):
        try:
            owner_map = build_owner_map(plan, con, users, settings.clinic_fallback_owner_email)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
    listing = settings.paths.owner_map_md
    write_owner_map(owner_map, settings.paths.owner_map_parquet, listing)
    missing = unresolved(owner_map)
    owned = any(f.transform in OWNER_COLUMNS for o in plan.objects for f in o.fields)
    if missing and owned:
        keys = ", ".join(f"{e.source_key} ({e.status})" for e in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise ConfigurationError(
            f"{len(missing)} providers/staff have no active Freshsales user, so their records would land "
            f"ownerless: {keys}{more}. Create the users, or set CLINIC_FALLBACK_OWNER_EMAIL (see {listing})"
        )
    return owner_map


def run_stage(settings: Settings, name: str, *, partition: str | None = None) -> StageResult:
    """Stage one object: all of it, or for a delta partition the rows created/changed in its window."""
    plan = confirmed_plan(settings)
    obj = BY_NAME[name]
    paths = settings.paths
    tables = tables_read(obj, plan)
    with _source(settings, tables) as (export, con):
        missing = missing_columns(plan, tables, {t.name: t.columns for t in export.tables.values()})
        if missing:
            listed = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise ConfigurationError(
                f"the export lacks what the confirmed plan reads: {listed}. It changed since the plan was "
                "confirmed: run `clinic-pipeline inventory`, then propose (or edit) and confirm the plan again"
            )
        return stage_object(
            obj,
            plan,
            export,
            con,
            staged_dir=paths.staged_dir_for(partition),
            quarantine_dir=paths.quarantine_dir_for(partition),
            window=partition_window(partition) if partition else None,
            # A delta partition's rows may link to parents staged by the full run.
            parent_dirs=[paths.staged_dir] if partition else (),
        )


def run_quality(settings: Settings, name: str, *, partition: str | None = None) -> list[QualityResult]:
    """The object's quality suite; a delta partition's links may point at parents of the full run."""
    obj = BY_NAME[name]
    folder = settings.paths.staged_dir_for(partition)
    staged = require_staged(settings, obj.name, folder)
    parents: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for parent in (BY_NAME[p] for p in obj.parents):
            files = [d / f"{parent.name}.parquet" for d in {folder, settings.paths.staged_dir}]
            files = [f for f in files if f.exists()]
            if len(files) == 1:
                parents[parent.target] = files[0]
            elif files:
                keys = Path(tmp) / f"{parent.name}.parquet"
                listing = ", ".join(map(quote_literal, files))
                query = f"SELECT _source_key FROM read_parquet([{listing}])"
                duckdb.execute(f"COPY ({query}) TO {quote_literal(keys)} (FORMAT parquet)")
                parents[parent.target] = keys
        return run_quality_checks(obj, staged, parent_keys=parents)


def run_count_changes(settings: Settings, window: tuple[datetime, datetime]) -> dict[str, int]:
    """Source rows per table created/changed in a delta window: the sensor's cheap question."""
    plan = confirmed_plan(settings)
    zone = plan.time_zone(read_inventory(settings.paths.inventory_path).time_zone)
    source = settings.require_source()
    if source.startswith("sqlite:///"):
        counts = count_changes_sqlite(Path(source.removeprefix("sqlite:///")), plan, window, zone)
        if counts is not None:
            return counts
    with _source(settings) as (_export, con):
        return count_changes_duckdb(con, plan, window, zone)


def plan_modules(plan: MappingPlan) -> dict[str, list[CustomFieldSpec]]:
    """The custom modules the plan fills, with the custom fields the tool creates on them (a module of no
    custom field of its own is created all the same)."""
    modules = module_custom_fields(plan)
    for obj in STAGED_OBJECTS:
        if obj.module and plan.objects_for(obj.target):
            modules.setdefault(obj.module, [])
    return modules


def run_assessment(settings: Settings, *, users: int | None = None) -> Assessment:
    """The assessment page (HTML + JSON) from the inventory and the plan, proposed or confirmed: the records it
    counts in the export, read-only. `users`: the account's active users, for the file storage quota."""
    paths = settings.paths
    inventory = read_inventory(paths.inventory_path)
    plan = read_plan(paths.plan_path)
    with _source(settings, {o.source_table for o in plan.objects}) as (_export, con):
        counts = count_source(plan, con, plan.time_zone(inventory.time_zone))
    assessment = build_assessment(inventory, plan, counts, plan_modules(plan), users=users)
    write_assessment(assessment, paths.assessment_html, paths.assessment_json)
    return assessment


def run_freshsales_schema(settings: Settings) -> ModulesResult:
    """Before any record moves: create the plan's custom modules and their fields through the API, verify the
    custom fields only an admin can create (contacts, accounts, deals) exist with their types, and that every
    name the plan's value maps choose (an outcome, a contact status, a deal stage) is one of the account's."""
    plan = confirmed_plan(settings)
    modules = module_specs(plan_modules(plan))
    required: dict[str, list[tuple[str, str]]] = {}
    for spec in required_custom_fields(plan):
        required.setdefault(spec.entity, []).append((spec.name, spec.type))
    with _client(settings) as client:
        try:
            result = ensure_custom_modules(client, modules)
        except SchemaError as exc:
            raise ConfigurationError(str(exc)) from None
        problems = verify_custom_fields(client, required)
        choices = choice_problems(client, plan)
    if choices:
        listed = "; ".join(choices[:10]) + (" …" if len(choices) > 10 else "")
        raise ConfigurationError(
            f"the plan's value maps name {len(choices)} choice(s) Freshsales lacks ({listed}): an admin adds them "
            "in Freshsales, or the plan's value_map names existing ones"
        )
    if problems:
        raise ConfigurationError(
            f"Freshsales lacks {len(problems)} custom fields the plan needs ({'; '.join(problems[:10])}"
            f"{' …' if len(problems) > 10 else ''}): an admin creates them from {settings.paths.checklist_md}"
        )
    return result


class SampleOutcome(BaseModel):
    plan_hash: str
    selection: SampleSelection
    loaded: dict[str, dict[str, int]]
    diff: SampleDiff


def run_sample(settings: Settings, *, size: int, seed: int, run_id: str) -> SampleOutcome:
    """Load a referentially closed slice of the staged records, read it back and diff it field by field."""
    plan = confirmed_plan(settings)
    paths = settings.paths
    for obj in STAGED_OBJECTS:
        require_staged(settings, obj.name, paths.staged_dir)
    selection = choose_sample(paths.staged_dir, paths.sample_dir, size=size, seed=seed)
    inventory = read_inventory(paths.inventory_path)
    with (
        _client(settings) as client,
        open_state(settings.state_location) as state,
        _source(settings) as (_export, con),
    ):
        loaded = {
            obj.name: dict(
                _load(settings, client, state, obj, paths.sample_dir / f"{obj.name}.parquet", run_id=run_id).outcomes
            )
            for obj in STAGED_OBJECTS
        }
        diff = diff_sample(
            client,
            state,
            plan,
            con,
            inventory,
            staged_dir=paths.staged_dir,
            sample_dir=paths.sample_dir,
            out_dir=paths.reports_dir,
        )
    outcome = SampleOutcome(plan_hash=plan.confirmed_hash or "", selection=selection, loaded=loaded, diff=diff)
    paths.sample_diff_json.write_text(outcome.model_dump_json(indent=2), encoding="utf-8")
    return outcome


def read_sample_outcome(settings: Settings) -> SampleOutcome:
    summary = settings.paths.sample_diff_json
    if not summary.exists():
        raise ConfigurationError("no sample diff: run `clinic-pipeline migrate --sample 200` first")
    return SampleOutcome.model_validate_json(summary.read_text(encoding="utf-8"))


def run_sign_off(settings: Settings, by: str) -> SignOff:
    """Accept the latest sample diff for the current confirmed plan."""
    plan = confirmed_plan(settings)
    outcome = read_sample_outcome(settings)
    if outcome.plan_hash != plan.confirmed_hash:
        raise ConfigurationError("the sample diff was made with another version of the plan: migrate the sample again")
    return record_sign_off(
        settings.paths.sign_off, by=by, plan_hash=outcome.plan_hash, diff_hash=outcome.diff.diff_hash
    )


def run_load(settings: Settings, name: str, *, run_id: str, partition: str | None = None) -> LoadResult:
    """Load one object: the full run, or a delta partition. Both wait for a signed-off sample diff of
    the current confirmed plan."""
    obj = BY_NAME[name]
    plan = confirmed_plan(settings)
    require_sign_off(settings.paths.sign_off, plan.confirmed_hash or "")
    staged = require_staged(settings, obj.name, settings.paths.staged_dir_for(partition))
    with _client(settings) as client, open_state(settings.state_location) as state:
        return _load(settings, client, state, obj, staged, run_id=run_id, partition=partition)


def _load(
    settings: Settings,
    client: FreshsalesClient,
    state: StateStore,
    obj: FreshsalesObject,
    staged: Path,
    *,
    run_id: str,
    partition: str | None = None,
) -> LoadResult:
    rejected = settings.paths.rejected_dir_for(partition)
    with state.loading(obj.name):
        if obj.name == FILES.name:
            return _load_files(settings, client, state, staged, run_id=run_id, partition=partition, rejected=rejected)
        loader = Loader(
            client,
            state,
            run_id=run_id,
            partition=partition,
            max_concurrency=settings.freshsales_max_concurrency,
            fallback_owner_email=settings.clinic_fallback_owner_email,
        )
        return loader.load(obj, staged, rejected)


def _load_files(
    settings: Settings,
    client: FreshsalesClient,
    state: StateStore,
    staged: Path,
    *,
    run_id: str,
    partition: str | None,
    rejected: Path,
) -> LoadResult:
    """Documents stream from disk one upload each; the result in the loader's terms for the asset metadata."""
    if _row_count(staged) == 0:
        return LoadResult(FILES.name)  # the export has no documents: nothing to attach
    before = client.stats
    files = load_files(
        client,
        state,
        staged,
        run_id=run_id,
        partition=partition,
        max_file_bytes=settings.freshsales_max_file_bytes,
        link_base_url=settings.clinic_documents_base_url,
        rejected_dir=rejected,
    )
    outcomes: Counter[str] = Counter()
    for (_op, outcome), count in files.counts.items():
        outcomes[outcome] += count
    after = client.stats
    return LoadResult(
        FILES.name,
        staged=files.staged,
        outcomes=outcomes,
        rejected_path=files.rejected_path,
        requests=after["requests"] - before["requests"],
        retries=after["retries"] - before["retries"],
    )


def run_rebuild_reference(settings: Settings) -> RebuildReference:
    """The source's workflow rules and reports as a rebuild reference for the Freshsales admin."""
    plan = confirmed_plan(settings)
    with _source(settings) as (export, con):
        return build_rebuild_reference(plan, export, con, settings.paths.reports_dir)


def run_estimate(settings: Settings) -> DryRunEstimate:
    """What a full load would send, from the staged files and the id map: zero API calls."""
    staged = {o.name: settings.paths.staged_dir / f"{o.name}.parquet" for o in STAGED_OBJECTS}
    limits = RateLimits(
        hourly=settings.freshsales_requests_per_hour, per_minute=settings.freshsales_requests_per_minute
    )
    # The owners the owner map resolved, so bodies hash exactly as the loader will build them.
    staff = read_owner_map(settings.paths.owner_map_parquet)
    owners = _resolved_owners(staff) if staff is not None else None
    with open_state(settings.state_location) as state:
        return estimate(state, staged, plan_limits=limits, owners=owners)


def _resolved_owners(staff: StaffOwnerMap) -> OwnerMap:
    """The owner map's resolved staff as the loader's map: by email, and by name where they have none."""
    by_email: dict[str, int] = {}
    by_name: dict[str, int] = {}
    for entry in staff.entries:
        if entry.user_id is None:
            continue
        if entry.status == "resolved" and entry.email:
            by_email[entry.email.casefold()] = entry.user_id
        elif entry.status == "resolved_by_name" and (key := name_key(entry.name)):
            by_name[key] = entry.user_id
    return OwnerMap(by_email=by_email, fallback_id=staff.fallback_owner_id, by_name=by_name)


def run_rollback(settings: Settings, run_ids: list[str] | None, *, rollback_run_id: str) -> RollbackResult:
    """Undo the given runs (None: every run): delete what they created, restore what they changed."""
    if not state_exists(settings.state_location):
        where = describe(settings.state_location)
        raise ConfigurationError(f"{where}: no migration state, nothing to roll back")
    with _client(settings) as client, open_state(settings.state_location) as state:
        return rollback(
            client,
            state,
            run_ids=run_ids,
            rollback_run_id=rollback_run_id,
            max_concurrency=settings.freshsales_max_concurrency,
        )


def run_validation(
    settings: Settings, *, partition: str | None = None, wait_seconds: float = DEFAULT_WAIT_SECONDS
) -> ValidationReport:
    """Freshsales read back against what was staged and loaded: the full run and delta partitions together,
    or one delta window's records (`partition`) into that window's own report. A person asking for the
    report while a load holds the state passes a short wait."""
    paths = settings.paths
    with (
        _client(settings) as client,
        open_state(settings.state_location, wait_seconds=wait_seconds) as state,
    ):
        report = validate_migration(
            client,
            state,
            staged_dir=paths.staged_dir_for(partition),
            quarantine_dir=paths.quarantine_dir_for(partition),
            rejected_dir=paths.rejected_dir_for(partition),
        )
    write_report(report, paths.validation_json_for(partition), paths.validation_html_for(partition))
    return report


def last_validation(settings: Settings) -> tuple[ValidationReport, datetime] | None:
    """The validation report last written, and when: what `report` shows while a load holds the state."""
    path = settings.paths.validation_json
    if not path.exists():
        return None
    written = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    return ValidationReport.model_validate_json(path.read_text(encoding="utf-8")), written


class RepairOutcome(BaseModel):
    """What `repair` did and the validation run after it; `after` is None when nothing was flagged."""

    repaired: RepairResult
    after: ValidationReport | None = None
    last_report_at: datetime


def run_repair(settings: Settings, *, run_id: str) -> RepairOutcome:
    """Heal the records the last validation report found missing or differing, then validate again. The
    report names objects, not records: each flagged object's records are verified (`load.repair`)."""
    last = last_validation(settings)
    if last is None:
        raise ConfigurationError("no validation report yet: run `clinic-pipeline report` first")
    report, written = last
    plan = confirmed_plan(settings)
    require_sign_off(settings.paths.sign_off, plan.confirmed_hash or "")
    paths = settings.paths
    if report.ok:
        # Nothing flagged: not one request, not one write.
        return RepairOutcome(repaired=RepairResult(run_id=run_id, flagged=[]), last_report_at=written)
    with _client(settings) as client, open_state(settings.state_location) as state:
        repaired = repair(
            client,
            state,
            report,
            run_id=run_id,
            staged_dir=paths.staged_dir,
            quarantine_dir=paths.quarantine_dir,
            fallback_owner_email=settings.clinic_fallback_owner_email,
            max_file_bytes=settings.freshsales_max_file_bytes,
        )
    return RepairOutcome(repaired=repaired, after=run_validation(settings), last_report_at=written)


def _row_count(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows if path.exists() else 0


# `status` and `report` answer at once: during a load they say the state is busy (which run holds it)
# rather than wait for the load to end.
STATUS_WAIT_SECONDS = 5


class PipelineStatus(BaseModel):
    inventory: bool
    plan_status: str | None
    plan_confirmed_by: str | None
    staged: dict[str, int]
    quarantined: dict[str, int]
    loaded: dict[str, int]
    audit: dict[str, int]
    # Set while a load holds the state store: who, and as of when the counts in `loaded` are.
    load_running: str | None = None
    signed_off_by: str | None = None
    signed_off_at: datetime | None = None
    sign_off_current: bool = False  # signed off for the plan as it is now confirmed
    delta_windows: list[str] = Field(default_factory=list)  # windows a delta load has written to


def run_status(settings: Settings) -> PipelineStatus:
    """Where the migration stands, from local files only (no API calls): counts, never values. While a load
    holds the state store, the id map's counts are those the load last published."""
    plan = read_plan(settings.paths.plan_path) if settings.paths.plan_path.exists() else None
    sign_off = read_sign_off(settings.paths.sign_off)
    loaded: dict[str, int] = {}
    audit: dict[str, int] = {}
    windows: list[str] = []
    running = None
    if state_exists(settings.state_location):
        try:
            with open_state(settings.state_location, read_only=True, wait_seconds=STATUS_WAIT_SECONDS) as state:
                loaded = state.id_map_counts()
                audit = {"/".join(k): v for k, v in state.audit_counts().items()}
                windows = state.partitions()
        except StateBusyError:
            progress = read_progress(settings.state_location)
            if progress is None:
                raise  # nothing published yet: the one-line refusal names the holder
            loaded = {str(k): int(v) for k, v in progress.get("id_map", {}).items()}
            running = f"a load is running (process {progress.get('pid')}); id map counts as of {progress.get('as_of')}"
    return PipelineStatus(
        inventory=settings.paths.inventory_path.exists(),
        plan_status=plan.status if plan else None,
        plan_confirmed_by=plan.confirmed_by if plan else None,
        staged={o.name: _row_count(settings.paths.staged_dir / f"{o.name}.parquet") for o in STAGED_OBJECTS},
        quarantined={o.name: _row_count(settings.paths.quarantine_dir / f"{o.name}.parquet") for o in STAGED_OBJECTS},
        loaded=loaded,
        audit=audit,
        load_running=running,
        signed_off_by=sign_off.signed_by if sign_off else None,
        signed_off_at=sign_off.signed_at if sign_off else None,
        sign_off_current=bool(sign_off and plan and sign_off.plan_hash == plan.confirmed_hash),
        delta_windows=windows,
    )
