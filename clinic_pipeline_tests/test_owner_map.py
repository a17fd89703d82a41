"""Providers resolve to Freshsales users by email, or by a display name one active user bears where the source
keeps no email; the unresolved ones are listed, block, or take the fallback."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from clinic_pipeline import steps
from clinic_pipeline.demo import DEMO_FALLBACK_OWNER, create_custom_fields_as_admin
from clinic_pipeline.freshsales import FreshsalesClient
from clinic_pipeline.load.loader import Loader
from clinic_pipeline.load.state import open_state
from clinic_pipeline.mapping.owner_map import read_owner_map
from clinic_pipeline.model.objects import BY_NAME, STAGED_OBJECTS
from clinic_pipeline.model.people import name_key
from clinic_pipeline.settings import ConfigurationError, Settings

SAMPLE = Path(__file__).parent / "fixtures" / "sample_shape"
# The sample's providers as a source without emails keeps them: a display name each, written as people type it.
STAFF_WITHOUT_EMAIL = """provider_id,display_name,npi,specialty,active,location_id
1,Dr. Lucía Herrera,1234567890,Family Medicine,Y,1
2,"Okafor, Amara",1234567891,Pediatrics,Y,2
3,Cara Lee,1234567892,Dermatology,N,3
"""
STAGED = ("accounts", "contacts", "appointments", "tasks")


def _settings(tmp_path: Path, sandbox: Any, *, staff: str | None = None, **extra: str) -> Settings:
    source = tmp_path / "source"
    shutil.copytree(SAMPLE, source)
    if staff is not None:
        (source / "providers.csv").write_text(staff, encoding="utf-8")
    settings = Settings(
        clinic_source=str(source),
        clinic_data_dir=tmp_path / "data",
        freshsales_base_url=sandbox.base_url,
        freshsales_api_key=sandbox.api_key,
        **extra,
    )
    steps.run_inventory(settings)
    steps.run_propose(settings)
    steps.run_confirm(settings, "tester")
    return settings


def _add_user(sandbox: Any, email: str, *, active: bool, name: str | None = None) -> int:
    body = {"display_name": name or email.split("@")[0], "email": email, "is_active": active}
    response = httpx.post(f"{sandbox.root_url}/_sandbox/users", json=body, timeout=10)
    response.raise_for_status()
    return int(response.json()["user"]["id"])


def test_unresolved_staff_block_with_a_list(tmp_path: Path, sandbox: Any) -> None:
    _add_user(sandbox, "Ann.Smith@clinic.example", active=True)  # case differs from the source: still a match
    _add_user(sandbox, "cara.lee@clinic.example", active=False)
    settings = _settings(tmp_path, sandbox)
    with pytest.raises(ConfigurationError) as failure:
        steps.run_owner_map(settings)
    message = str(failure.value)
    assert "2 providers/staff have no active Freshsales user" in message
    assert "2 (no_email)" in message and "3 (inactive_user)" in message
    entries = {r["source_key"]: r for r in pq.read_table(settings.paths.plan_dir / "owner_map.parquet").to_pylist()}
    assert entries["1"]["status"] == "resolved" and entries["1"]["user_id"] is not None
    assert (entries["2"]["status"], entries["3"]["status"]) == ("no_email", "inactive_user")
    listing = settings.paths.plan_dir / "owner_map.md"
    assert "no email in the source" in listing.read_text() and stat.S_IMODE(listing.stat().st_mode) == 0o600


def test_the_fallback_owner_takes_the_unresolved(tmp_path: Path, sandbox: Any) -> None:
    _add_user(sandbox, "ann.smith@clinic.example", active=True)
    settings = _settings(tmp_path, sandbox, clinic_fallback_owner_email="ada.admin@clinic.example")
    owner_map = steps.run_owner_map(settings)
    assert owner_map.counts() == {"resolved": 1, "no_email": 1, "no_user": 1}
    assert {e.user_id for e in owner_map.entries if e.status != "resolved"} == {owner_map.fallback_owner_id}


def test_an_inactive_fallback_owner_is_refused(tmp_path: Path, sandbox: Any) -> None:
    settings = _settings(tmp_path, sandbox, clinic_fallback_owner_email="gone.away@clinic.example")
    with pytest.raises(ConfigurationError, match="not an active Freshsales user"):
        steps.run_owner_map(settings)


@pytest.mark.parametrize(
    ("written", "key"),
    [
        ("Dr. Lucía Herrera", "lucia herrera"),
        ("Okafor, Amara", "amara okafor"),
        ("HERRERA, LUCÍA M., MD", "lucia herrera"),
        ("Prof. Jean-Luc van der Berg Jr.", "jean-luc van der berg"),
        ("Dr. Patrick Okello - Medical Superintendent", "patrick okello"),
        ("Dr. Mary Achieng (MO)", "mary achieng"),
        ("administrator", None),
        ("", None),
    ],
)
def test_a_name_key_is_the_plain_first_and_last_name(written: str, key: str | None) -> None:
    assert name_key(written) == key


def _load_staged(settings: Settings, sandbox: Any, *, fallback: str | None, run_id: str) -> dict[str, Any]:
    """Stage and load the objects a provider owns, as the full run does after sign-off; the sandbox's records."""
    with FreshsalesClient.from_settings(settings) as client, open_state(settings.state_location) as state:
        loader = Loader(client, state, run_id=run_id, fallback_owner_email=fallback)
        for name in STAGED:
            staged = steps.run_stage(settings, name).parquet_path
            loader.load(BY_NAME[name], staged, settings.paths.rejected_dir_for(None))
    return httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", timeout=30).json()


def _visit_users(snapshot: dict[str, Any]) -> dict[str, set[int]]:
    """Appointment marker → the users attending it (an appointment's owner attends as a user)."""
    return {
        a["description"].rsplit("[source ", 1)[-1]: {
            u["attendee_id"] for u in a["appointment_attendees"] if u["attendee_type"] == "FdMultitenant::User"
        }
        for a in snapshot["appointments"]
    }


def test_staff_without_an_email_own_their_records_by_display_name(tmp_path: Path, sandbox: Any) -> None:
    lucia = _add_user(sandbox, "lherrera@clinic.example", active=True, name="Lucia Herrera")
    amara = _add_user(sandbox, "aokafor@clinic.example", active=True, name="Amara Okafor")
    settings = _settings(tmp_path, sandbox, staff=STAFF_WITHOUT_EMAIL, clinic_fallback_owner_email=DEMO_FALLBACK_OWNER)
    owner_map = steps.run_owner_map(settings)
    assert owner_map.counts() == {"resolved_by_name": 2, "no_user": 1}
    assert {e.source_key: e.user_id for e in owner_map.entries if e.status == "resolved_by_name"} == {
        "1": lucia,
        "2": amara,
    }
    assert "| providers | 3 | no Freshsales user with that name |" in settings.paths.owner_map_md.read_text()
    create_custom_fields_as_admin(settings, sandbox.root_url, sandbox.api_key, echo=lambda _: None)

    snapshot = _load_staged(settings, sandbox, fallback=None, run_id="r1")
    contacts = {c["external_id"]: c["owner_id"] for c in snapshot["contacts"]}
    assert (contacts["patients:1"], contacts["patients:3"]) == (lucia, amara)  # their primary providers
    tasks = {t["owner_id"] for t in snapshot["tasks"]}
    assert tasks == {lucia}  # the short visits and the phone call, all Dr. Herrera's
    assert sorted(map(sorted, _visit_users(snapshot).values())) == [[lucia], [amara]]


def test_a_display_name_two_active_users_share_resolves_to_no_one(tmp_path: Path, sandbox: Any) -> None:
    _add_user(sandbox, "lherrera@clinic.example", active=True, name="Lucia Herrera")
    _add_user(sandbox, "amara.okafor@clinic.example", active=True, name="Amara Okafor")
    _add_user(sandbox, "a.okafor@clinic.example", active=True, name="Dr. Amara Okafor")
    settings = _settings(tmp_path, sandbox, staff=STAFF_WITHOUT_EMAIL)
    with pytest.raises(ConfigurationError) as failure:
        steps.run_owner_map(settings)
    assert "2 (ambiguous_name), 3 (no_user)" in str(failure.value)
    listing = settings.paths.owner_map_md.read_text()
    assert "| providers | 2 | ambiguous name: two or more active Freshsales users have it |" in listing
    statuses = {r["source_key"]: r["status"] for r in pq.read_table(settings.paths.owner_map_parquet).to_pylist()}
    assert statuses == {"1": "resolved_by_name", "2": "ambiguous_name", "3": "no_user"}
    create_custom_fields_as_admin(settings, sandbox.root_url, sandbox.api_key, echo=lambda _: None)

    # Dr. Okafor's visit is held back as any unresolved owner's is; with a fallback owner it goes to them.
    snapshot = _load_staged(settings, sandbox, fallback=None, run_id="r1")
    assert len(_visit_users(snapshot)) == 1
    rejected = settings.paths.rejected_dir_for(None) / "appointments.jsonl"
    assert [json.loads(line)["reason"] for line in rejected.read_text().splitlines()] == ["owner not resolved"]
    snapshot = _load_staged(settings, sandbox, fallback=DEMO_FALLBACK_OWNER, run_id="r2")
    admin = next(u["id"] for u in snapshot["users"] if u["email"] == DEMO_FALLBACK_OWNER)
    assert admin in set().union(*_visit_users(snapshot).values())
    contacts = {c["external_id"]: c["owner_id"] for c in snapshot["contacts"]}
    assert contacts["patients:3"] == admin


def test_the_dry_run_reads_the_owner_map_the_sample_wrote(tmp_path: Path, sandbox: Any) -> None:
    """Once the owner map is written (by the sample), the dry run reads it back: with each resolved staff
    member's email or name, so owners resolve in its estimate as the loader will resolve them."""
    _add_user(sandbox, "ann.smith@clinic.example", active=True)
    settings = _settings(tmp_path, sandbox, clinic_fallback_owner_email="ada.admin@clinic.example")
    written = steps.run_owner_map(settings)
    read = read_owner_map(settings.paths.owner_map_parquet)
    assert read is not None and read.entries == written.entries
    assert any(e.status == "resolved" and e.email == "ann.smith@clinic.example" for e in read.entries)
    for staged in STAGED_OBJECTS:
        steps.run_stage(settings, staged.name)
    estimate = steps.run_estimate(settings)
    assert {o.object for o in estimate.objects} >= set(STAGED)
