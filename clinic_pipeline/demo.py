"""`clinic-pipeline demo`: the whole migration on the built-in sample clinic, through Dagster.

It does, loudly, the three things a person does in a real migration: confirming the mapping plan,
signing off the sample diff and, in its own sandbox, creating the custom fields from the admin
checklist (Freshsales' public API cannot create them; the sandbox's test-mode control plays the admin).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import httpx

from clinic_pipeline import runs, steps
from clinic_pipeline.assets.resources import pipeline_resources, resources_settings
from clinic_pipeline.load.state import state_exists
from clinic_pipeline.load.state_location import describe
from clinic_pipeline.mapping.checklist import required_custom_fields
from clinic_pipeline.mapping.owner_map import staff_emails
from clinic_pipeline.mapping.plan import read_plan, write_plan
from clinic_pipeline.reports.validation import ValidationReport
from clinic_pipeline.samples.generator import generate_clinic
from clinic_pipeline.settings import ConfigurationError, Settings
from clinic_pipeline.source.reader import open_source

DEMO_API_KEY = "demo-sandbox-key"
DEMO_CONFIRMER = "clinic-pipeline demo (automatic)"
DEMO_PATIENTS = 300  # a few thousand records: the whole migration in about a minute
DEMO_SEED = 7
DEMO_FALLBACK_OWNER = "ada.admin@clinic.example"  # the sandbox's seeded admin (sandbox/seed.py)
# The territory rule the demo writes as a clinic would: its referrers' states → the sandbox's territories.
DEMO_TERRITORIES = {"IL": "North", "WI": "North", "IN": "East", "IA": "West", "MO": "South"}


@contextmanager
def _freshsales(settings: Settings, fresh: bool, echo: Callable[[str], None]) -> Iterator[tuple[str, str, str | None]]:
    """(base_url, api_key, sandbox root or None): the configured Freshsales, else a sandbox of our own."""
    if settings.freshsales_base_url:
        base_url, key = settings.require_freshsales()
        echo(f"demo: migrating into FRESHSALES_BASE_URL ({base_url})")
        yield base_url, key.get_secret_value(), None
        return
    from clinic_pipeline.sandbox.launcher import running_sandbox

    db = settings.paths.sandbox_db
    if fresh and db.parent.exists():
        shutil.rmtree(db.parent)
    db.parent.mkdir(parents=True, exist_ok=True)
    with running_sandbox(db, DEMO_API_KEY, test_mode=True, plan="unlimited") as handle:
        echo(f"demo: started a Freshsales sandbox at {handle.base_url} (records in {db})")
        yield handle.base_url, handle.api_key, handle.root_url
    echo("demo: sandbox stopped")


def create_custom_fields_as_admin(settings: Settings, root_url: str, api_key: str, echo: Callable[[str], None]) -> None:
    specs = required_custom_fields(steps.confirmed_plan(settings))
    echo(f"demo: ACTING AS THE FRESHSALES ADMIN: creating {len(specs)} custom fields from the checklist")
    with httpx.Client(base_url=root_url, headers={"Authorization": f"Token token={api_key}"}) as http:
        for spec in specs:
            response = http.post(
                f"/_sandbox/settings/{spec.entity}/fields",
                json={"label": spec.label, "name": spec.name, "type": spec.type, "choices": spec.choices},
            )
            if response.status_code not in (200, 201, 409):
                raise ConfigurationError(
                    f"sandbox refused custom field {spec.entity}.{spec.name}: {response.status_code}"
                )


def invite_staff_as_admin(settings: Settings, root_url: str, echo: Callable[[str], None]) -> None:
    """Plays the admin inviting the clinic's staff: one sandbox user per provider email."""
    plan = steps.confirmed_plan(settings)
    con = duckdb.connect()
    try:
        open_source(settings.require_source(), con)
        emails = sorted({email for _table, _key, email in staff_emails(plan, con) if email})
    finally:
        con.close()
    echo(f"demo: ACTING AS THE FRESHSALES ADMIN: inviting {len(emails)} staff members as users")
    with httpx.Client(base_url=root_url, timeout=30) as http:
        for email in emails:
            body = {"display_name": email.split("@")[0], "email": email, "role": "member"}
            response = http.post("/_sandbox/users", json=body)
            if response.status_code not in (201, 409):
                raise ConfigurationError(f"sandbox refused a staff user: {response.status_code}")


def write_territory_rule(settings: Settings, echo: Callable[[str], None]) -> None:
    """What the clinic does in the plan before confirming it: name a territory for each value of the proposed
    territory rules (referrer practices by state)."""
    plan = read_plan(settings.paths.plan_path)
    ruled = [line for o in plan.objects for line in o.mapped_fields() if line.target == "territory_id"]
    for line in ruled:
        line.value_map = {**dict.fromkeys(line.value_map), **DEMO_TERRITORIES}
    if ruled:
        write_plan(plan, settings.paths.plan_path)
        rule = ", ".join(f"{v} → {t}" for v, t in DEMO_TERRITORIES.items())
        echo(f"demo: TERRITORY RULE written into the plan as the clinic would: referrer practices by state ({rule})")


def run_demo(settings: Settings, *, echo: Callable[[str], None], fresh_sandbox: bool = True) -> None:
    if settings.state_location != settings.paths.state_db_path and state_exists(settings.state_location):
        # The demo starts from an empty state, and clears only its own (below): a state elsewhere
        # (CLINIC_STATE_URL, a shared PostgreSQL database above all) is never its to clear.
        where = describe(settings.state_location)
        raise ConfigurationError(f"{where} already holds a migration state: set CLINIC_STATE_URL to an empty database")
    paths = settings.paths
    source = paths.generated_source
    for generated in (
        source,
        paths.plan_dir,
        paths.staged_dir,
        paths.quarantine_dir,
        paths.state_db_path.parent,
        paths.sample_root,
        paths.load_dir,
    ):
        if generated.exists():
            shutil.rmtree(generated)
    clinic = generate_clinic(source, patients=DEMO_PATIENTS, seed=DEMO_SEED)
    echo(f"demo: sample clinic export generated in {source} ({clinic.total_records} records, {DEMO_PATIENTS} patients)")
    with _freshsales(settings, fresh_sandbox, echo) as (base_url, api_key, sandbox_root):
        config: dict[str, Any] = {
            "clinic_source": clinic.source_spec,
            "clinic_data_dir": str(settings.clinic_data_dir),
            "freshsales_base_url": base_url,
            "freshsales_api_key": api_key,
            "clinic_fallback_owner_email": settings.clinic_fallback_owner_email,
        }
        if sandbox_root is not None:
            # Our own sandbox has no rate limit: pacing the client to a real plan's budget only slows the demo.
            config |= {"freshsales_requests_per_hour": 1_000_000, "freshsales_requests_per_minute": 100_000}
        # Dagster builds resources from their constructor config: a changed setting means new resources.
        resources = pipeline_resources(**config)
        run_settings = resources_settings(resources)
        runs.materialize(runs.PLAN, resources)
        write_territory_rule(run_settings, echo)
        plan = steps.run_confirm(run_settings, DEMO_CONFIRMER)
        echo(f"demo: AUTOMATICALLY CONFIRMED the mapping plan as '{DEMO_CONFIRMER}' (hash {plan.confirmed_hash})")
        echo("demo: in a real migration a person reviews `clinic-pipeline review-mapping` and confirms it")
        if sandbox_root is not None:
            create_custom_fields_as_admin(run_settings, sandbox_root, api_key, echo)
            invite_staff_as_admin(run_settings, sandbox_root, echo)
            if not run_settings.clinic_fallback_owner_email:
                admin = DEMO_FALLBACK_OWNER
                resources = pipeline_resources(**(config | {"clinic_fallback_owner_email": admin}))
                run_settings = resources_settings(resources)
                echo(
                    f"demo: FALLBACK OWNER set to the sandbox admin ({admin}) for staff without an email or user: "
                    "in a real migration the operator decides (CLINIC_FALLBACK_OWNER_EMAIL)"
                )
        # Everything up to the sample diff, then the full load: Dagster orders each run by the asset graph.
        sample = runs.materialize(runs.SAMPLE, resources)
        echo(
            f"demo: sample migration: {sample.value('sample_diff', 'records')} records read back, "
            f"{sample.value('sample_diff', 'matched')} of {sample.value('sample_diff', 'fields_compared')} fields "
            f"match ({sample.value('sample_diff', 'html')})"
        )
        signed = steps.run_sign_off(run_settings, DEMO_CONFIRMER)
        echo(f"demo: AUTOMATICALLY SIGNED OFF the sample diff as '{signed.signed_by}'")
        echo("demo: in a real migration a person reads the diff and runs `clinic-pipeline sign-off --by NAME`")
        runs.materialize(runs.FULL, resources)
        report = ValidationReport.model_validate_json(run_settings.paths.validation_json.read_text())
        for o in report.objects:
            total = "not countable" if o.freshsales_total is None else o.freshsales_total
            echo(
                f"demo: {o.object}: {o.staged} staged, {o.in_id_map} loaded, {total} in Freshsales; "
                f"{o.keys_found_once} of {o.keys_checked} checked keys found once ({o.quarantined} quarantined)"
            )
        echo(f"demo: validation report → {run_settings.paths.validation_html}")
        if not report.ok:
            raise ConfigurationError(f"demo: validation found {len(report.discrepancies)} discrepancies")
    echo("demo: done")
