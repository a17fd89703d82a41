"""`clinic-pipeline assess` and the `migration_assessment` asset on real exports: the generated clinic and the
built-in fixture, through the command as an operator runs it and through Dagster's `materialize`."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from clinic_pipeline.assets.assessment import migration_assessment
from clinic_pipeline.assets.inventory import schema_inventory
from clinic_pipeline.assets.plan import mapping_plan
from clinic_pipeline.assets.resources import ClinicResource
from clinic_pipeline.load.estimate import PLAN_LIMITS, DryRunEstimate, ObjectEstimate
from clinic_pipeline.model.objects import BY_NAME
from clinic_pipeline.reports.assessment import COMPLEX_REVIEW_SHARE
from clinic_pipeline.samples import copy_fixture


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clinic_pipeline", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLINIC_", "FRESHSALES_", "DAGSTER_"))}
    return env | {"CLINIC_DATA_DIR": str(tmp_path / "data"), "CLINIC_SOURCE": str(tmp_path / "export")}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str], Any]:
    """The generated clinic through inventory, propose-mapping, assess and assess --json."""
    tmp_path = tmp_path_factory.mktemp("generated")
    env = _env(tmp_path)
    for args in (
        ["sample-data", "--out", str(tmp_path / "export"), "--patients", "40", "--seed", "5"],
        ["inventory"],
        ["propose-mapping"],
    ):
        done = _run(args, env, tmp_path)
        assert done.returncode == 0, (args, done.stderr[-2000:])
    summary = _run(["assess"], env, tmp_path)
    assert summary.returncode == 0, summary.stderr[-2000:]
    as_json = _run(["assess", "--json"], env, tmp_path)
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    return tmp_path, summary, json.loads(as_json.stdout)


def test_the_generated_clinic_is_graded_complex_with_its_reasons_on_one_page(generated: Any) -> None:
    tmp_path, summary, assessment = generated
    page, twin = tmp_path / "data" / "reports" / "assessment.html", tmp_path / "data" / "reports" / "assessment.json"
    assert f"assessment → {page} and {twin}" in summary.stdout
    assert json.loads(twin.read_text(encoding="utf-8")) == assessment  # --json prints the twin

    # Every table of the inventory appears with the plan's decision for it.
    inventory = json.loads((tmp_path / "data" / "inventory" / "schema_inventory.json").read_text(encoding="utf-8"))
    plan = yaml.safe_load((tmp_path / "data" / "plan" / "mapping_plan.yaml").read_text(encoding="utf-8"))
    assert {t["source_table"] for t in assessment["tables"]} == {t["name"] for t in inventory["tables"]}
    kinds = {(t["source_table"], t["target"]): t for t in assessment["tables"]}
    payments = kinds[("payments", "not_migrated")]
    assert payments["kind"] == "not_migrated"
    assert payments["reasons"] == [next(o["reason"] for o in plan["objects"] if o["source_table"] == "payments")]
    lab_results = kinds[("lab_results", "custom_module:lab_result")]
    assert lab_results["kind"] == "needs_mapping" and "custom module lab_result" in lab_results["reasons"]
    # A 1:1 mapping has no line needing review, no custom field and is no module.
    assert kinds[("documents", "file")]["kind"] == "one_to_one"

    # The grade and the reasons the generated clinic gives it, on the page and on the terminal.
    assert assessment["grade"] == "complex"
    modules = "custom modules to create: insurance_plan, lab_result, treatment_plan"
    left_behind = "not migrated, yet linked to migrated records: payments"
    assert modules in assessment["reasons"] and left_behind in assessment["reasons"]
    assert set(assessment["custom_modules"]) == {"insurance_plan", "lab_result", "treatment_plan"}
    assert "grade: complex" in summary.stdout and f"because: {modules}" in summary.stdout
    html = page.read_text(encoding="utf-8")
    assert ">complex</span>" in html and modules in html and "<svg" in html

    # The records and documents the plan moves, counted in the export.
    documents = _rows(tmp_path / "export" / "documents.csv")
    records = {o["object"]: o for o in assessment["objects"]}
    assert records["files"]["records"] == assessment["documents"] == len(documents)
    assert assessment["document_bytes"] == sum(int(d["size_bytes"]) for d in documents)
    assert records["deals"]["single_creates"] == records["deals"]["records"] > 0  # no bulk create for a new deal


def test_hours_per_tier_are_the_dry_runs_arithmetic_for_the_same_counts(generated: Any) -> None:
    _tmp_path, _summary, assessment = generated
    counts = [
        ObjectEstimate(
            object=o["object"],
            staged=o["records"],
            create=o["records"],
            update=0,
            unchanged=0,
            held_back=0,
            bulk=BY_NAME[o["object"]].bulk,
            single_creates=o["single_creates"],
        )
        for o in assessment["objects"]
    ]
    assert [t["tier"] for t in assessment["tiers"]] == ["growth", "pro", "enterprise"]
    for tier in assessment["tiers"]:
        dry_run = DryRunEstimate(limits=PLAN_LIMITS[tier["tier"]], objects=counts)
        assert (tier["api_calls"], tier["hours"]) == (dry_run.api_calls, dry_run.hours), tier["tier"]
    assert [t["hourly"] for t in assessment["tiers"]] == [1000, 2000, 5000]
    # Contacts by hand: bulk requests of 100 with a job poll each, a search per 100 new, one count, singles.
    contacts = next(o for o in assessment["objects"] if o["object"] == "contacts")
    bulked = contacts["records"] - contacts["single_creates"]
    expected = math.ceil(bulked / 100) * 2 + math.ceil(bulked / 100) + 1 + contacts["single_creates"]
    assert contacts["api_calls"] == expected


def test_no_patient_value_reaches_the_page_the_json_or_the_terminal(generated: Any) -> None:
    tmp_path, summary, _assessment = generated
    reports = tmp_path / "data" / "reports"
    shown = "\n".join(
        [
            summary.stdout,
            (reports / "assessment.html").read_text(encoding="utf-8"),
            (reports / "assessment.json").read_text(encoding="utf-8"),
        ]
    )
    patients = _rows(tmp_path / "export" / "patients.csv")
    checked = 0
    for row in patients:
        for value in (f"{row['first_name']} {row['last_name']}", row["email"], row["phone"], row["date_of_birth"]):
            if len(value.strip()) > 5:
                assert value.strip() not in shown
                checked += 1
    assert checked > 3 * len(patients) / 2


def test_the_fixture_is_standard_until_a_quarter_of_its_lines_need_review(tmp_path: Path) -> None:
    env = _env(tmp_path)
    copy_fixture(tmp_path / "export")
    for args in (["inventory"], ["propose-mapping"]):
        assert _run(args, env, tmp_path).returncode == 0, args
    standard = _run(["assess", "--json", "--users", "2"], env, tmp_path)
    assert standard.returncode == 0, standard.stderr[-2000:]
    assessment = json.loads(standard.stdout)
    assert (assessment["grade"], assessment["reasons"]) == ("standard", [])
    assert assessment["users"] == 2
    assert assessment["tiers"][0]["storage_quota_bytes"] == 2 * 2 * 1024**3  # growth: 2 GB per user

    # A reviewer marks every patient line as needing review: confirming the plan is no longer a check.
    plan_path = tmp_path / "data" / "plan" / "mapping_plan.yaml"
    plan = yaml.safe_load(plan_path.read_text(encoding="utf-8"))
    for line in plan["objects"][0]["fields"]:
        line["needs_review"] = True
    plan_path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    graded = _run(["assess"], env, tmp_path)
    assert graded.returncode == 0, graded.stderr[-2000:]
    lines = len(plan["objects"][0]["fields"])
    reason = f"{lines} of {lines} field lines need review (100%; threshold {COMPLEX_REVIEW_SHARE:.0%})"
    assert "grade: complex" in graded.stdout and f"because: {reason}" in graded.stdout


def test_a_plan_of_another_inventory_is_refused_in_one_line(tmp_path: Path) -> None:
    env = _env(tmp_path)
    copy_fixture(tmp_path / "export")
    for args in (["inventory"], ["propose-mapping"]):
        assert _run(args, env, tmp_path).returncode == 0, args
    plan_path = tmp_path / "data" / "plan" / "mapping_plan.yaml"
    plan = yaml.safe_load(plan_path.read_text(encoding="utf-8"))
    plan["source_fingerprint"] = "0" * 64
    plan_path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    refused = _run(["assess"], env, tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "error: the mapping plan was proposed from another inventory: run `clinic-pipeline propose-mapping` again"
    ]
    assert not (tmp_path / "data" / "reports" / "assessment.html").exists()


def test_the_asset_materializes_with_the_grade_the_objects_and_the_page(tmp_path: Path) -> None:
    copy_fixture(tmp_path / "export")
    clinic = ClinicResource(clinic_source=str(tmp_path / "export"), clinic_data_dir=str(tmp_path / "data"))
    result = dg.materialize([schema_inventory, mapping_plan, migration_assessment], resources={"clinic": clinic})
    assert result.success
    metadata = result.asset_materializations_for_node("migration_assessment")[0].metadata
    assert metadata["grade"].value == "standard"
    objects = metadata["objects"]
    assert isinstance(objects, dg.MarkdownMetadataValue)
    assert objects.value.startswith("| object | records | API calls |")
    patients = len(_rows(tmp_path / "export" / "patients.csv"))
    assert f"| contacts | {patients} |" in objects.value
    assert isinstance(metadata["criteria"], dg.MarkdownMetadataValue) and "**standard**" in metadata["criteria"].value
    page = metadata["path"]
    assert (
        isinstance(page, dg.PathMetadataValue) and Path(page.value) == tmp_path / "data" / "reports" / "assessment.html"
    )
    assert Path(page.value).exists()
    assert {"hours_growth", "hours_pro", "hours_enterprise"} <= set(metadata)
