"""The confirmation gate: no record moves before a person confirms exactly this plan."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    with pytest.raises(ValueError, match="needs a name"):
        confirm_plan(_plan(), "  ")
