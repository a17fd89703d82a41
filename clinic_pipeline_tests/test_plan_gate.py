"""The confirmation gate: no record moves before a person confirms exactly this plan."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.mapping.plan import (
    FieldMapping,
    MappingPlan,
    ObjectMapping,
    PlanNotConfirmedError,
    confirm_plan,
    read_plan,
    require_confirmed,
    write_plan,
)
from clinic_pipeline.mapping.plan_check import PlanInvalidError, confirm_checked


def _plan() -> MappingPlan:
    return MappingPlan(
        source_fingerprint="abc",
        objects=[
            ObjectMapping(
                source_table="patients",
                target="contact",
                source_key="patient_id",
                fields=[FieldMapping(source="fname", target="first_name", confidence=0.9, reason="name")],
            )
        ],
    )


def test_unconfirmed_plan_is_refused() -> None:
    with pytest.raises(PlanNotConfirmedError, match="not confirmed"):
        require_confirmed(_plan())


def test_confirmed_plan_round_trips_through_yaml_and_passes(tmp_path: Path) -> None:
    path = tmp_path / "plan" / "mapping_plan.yaml"
    write_plan(confirm_plan(_plan(), "Dr. Admin"), path)
    plan = require_confirmed(read_plan(path))
    assert plan.confirmed_by == "Dr. Admin"
    assert plan.confirmed_hash == plan.objects_hash()


def test_edit_after_confirmation_needs_a_new_confirmation(tmp_path: Path) -> None:
    path = tmp_path / "mapping_plan.yaml"
    write_plan(confirm_plan(_plan(), "Dr. Admin"), path)
    edited = path.read_text().replace("first_name", "last_name")
    path.write_text(edited)
    with pytest.raises(PlanNotConfirmedError, match="changed after it was confirmed"):
        require_confirmed(read_plan(path))
    write_plan(confirm_plan(read_plan(path), "Dr. Admin"), path)
    assert require_confirmed(read_plan(path)).objects[0].fields[0].target == "last_name"


def test_confirmation_needs_a_name() -> None:
    with pytest.raises(OperatorError, match="needs a name"):
        confirm_plan(_plan(), "  ")


LOCAL_TIME = "local_datetime:%Y-%m-%d %H:%M"


def _visits(*fields: FieldMapping, **changes: object) -> ObjectMapping:
    visits = ObjectMapping(
        source_table="visits",
        target="appointment",
        source_key="visit_id",
        fields=[
            FieldMapping(source="patient_id", target="targetable_id", type="lookup", transform="lookup:contact"),
            FieldMapping(source="start", target="from_date", type="datetime", transform=LOCAL_TIME),
            FieldMapping(source="stop", target="end_date", type="datetime", transform=LOCAL_TIME),
            FieldMapping(source="reason", target="title"),
            *fields,
        ],
    )
    return visits.model_copy(update=changes)


def _refusal(*objects: ObjectMapping, tables: list[str] | None = None) -> str:
    plan = MappingPlan(source_fingerprint="abc", objects=[*_plan().objects, *objects])
    with pytest.raises(PlanInvalidError) as refused:
        confirm_checked(plan, "Dr. Reviewer", tables)
    assert plan.status == "proposed"
    return str(refused.value)


def test_a_valid_plan_with_every_kind_of_line_is_confirmed() -> None:
    plan = MappingPlan(source_fingerprint="abc", objects=[*_plan().objects, _visits()])
    confirmed = confirm_checked(plan, "Dr. Reviewer", ["patients", "visits"])
    require_confirmed(confirmed)


def test_confirmation_refuses_a_field_the_target_does_not_have() -> None:
    message = _refusal(_visits(FieldMapping(source="room", target="room_number")))
    assert "visits.room → room_number: appointment has no such field" in message
    # A custom field must be declared as one.
    message = _refusal(_visits(FieldMapping(source="room", target="cf_room")))
    assert "visits.room → cf_room: appointment has no such field" in message


def test_confirmation_refuses_incompatible_types_and_transforms() -> None:
    date_as_number = FieldMapping(source="start", target="from_date", type="number", transform="cents")
    assert "does not fit the field's type datetime" in _refusal(_visits(date_as_number))
    flag_as_date = FieldMapping(source="kept", target="cf_kept", type="date", transform="boolean", custom=True)
    assert "visits.kept → cf_kept: transform boolean does not yield a date value" in _refusal(_visits(flag_as_date))
    unknown = FieldMapping(source="room", target="cf_room", custom=True, transform="rot13")
    assert "unknown transform 'rot13'" in _refusal(_visits(unknown))


def test_confirmation_refuses_a_required_field_nobody_feeds() -> None:
    untitled = _visits().model_copy(update={"fields": [f for f in _visits().fields if f.target != "title"]})
    assert "visits → appointment: no line feeds the required title" in _refusal(untitled)
    nameless = ObjectMapping(source_table="people", target="contact", source_key="id", fields=[])
    assert "people → contact: nothing feeds first_name, last_name, emails" in _refusal(nameless)


def test_confirmation_refuses_two_links_to_one_parent() -> None:
    # Staging would carry one `_lookup_contact`: the second link would silently replace the first.
    referrer = FieldMapping(source="referrer_id", target="targetable_id", type="lookup", transform="lookup:contact")
    message = _refusal(_visits(referrer))
    assert "visits → appointment: patient_id, referrer_id all link to its contact; keep one" in message


def test_confirmation_refuses_tables_without_a_decision_key_or_reason() -> None:
    assert "visits: no decision" in _refusal(tables=["patients", "visits"])
    assert "visits → appointment: no source_key" in _refusal(_visits(source_key=None))
    silent = ObjectMapping(source_table="audit_log", target="not_migrated", reason=" ")
    assert "audit_log: not_migrated needs a reason" in _refusal(silent)
    assert "unknown Freshsales target 'visit'" in _refusal(_visits(target="visit"))


def test_confirm_mapping_lists_every_problem_without_a_traceback(tmp_path: Path) -> None:
    plan = MappingPlan(source_fingerprint="abc", objects=[_visits(source_key=None, fields=[])])
    write_plan(plan, tmp_path / "data" / "plan" / "mapping_plan.yaml")
    env = {"PATH": os.environ["PATH"], "CLINIC_DATA_DIR": str(tmp_path / "data"), "CLINIC_SOURCE": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "clinic_pipeline", "confirm-mapping", "--by", "Dr. Reviewer"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "no source_key" in done.stderr and "no line feeds the required title, from_date, end_date" in done.stderr
    assert read_plan(tmp_path / "data" / "plan" / "mapping_plan.yaml").status == "proposed"


def test_a_custom_module_this_version_does_not_move_is_refused() -> None:
    vitals = ObjectMapping(source_table="vitals", target="custom_module:vitals", source_key="id", fields=[])
    assert "unknown custom module 'vitals'" in _refusal(vitals)
