"""The workflow rebuild reference on real exports: the fixture clinic with rules of every kind added, and a
vendor export whose rules table has other column names and another table name, through a proposed plan."""

from __future__ import annotations

import csv
import json
import shutil
import stat
from pathlib import Path

import duckdb
import pytest

from clinic_pipeline.mapping.proposer import propose_plan
from clinic_pipeline.reports.rebuild import (
    RebuildDocument,
    RebuildReference,
    ReportEntry,
    WorkflowEntry,
    build_rebuild_reference,
)
from clinic_pipeline.source.inventory import build_inventory
from clinic_pipeline.source.reader import open_source

FIXTURE = Path(__file__).parent / "fixtures" / "sample_shape"
MESSAGE = "Hi Philippa Quenby, see you tomorrow"  # a template naming a person: files only, never the result

RULES = [
    ("1", "Appointment reminder", "appointment.scheduled", {"hours_before": 24},
     [{"send": "sms", "template": "reminder_24h"}], "hourly", "sms", "Y"),
    ("2", "Unpaid invoice follow-up", "billing.invoice_unpaid", {"days_unpaid": 30},
     [{"send": "email", "template": "invoice_overdue"}, {"create_task": "Call patient about balance"}],
     "daily 09:00", "email", "Y"),
    ("3", "Insurance verification", "appointment.scheduled", {"days_before": 2, "has_insurance": True},
     [{"create_task": "Verify insurance eligibility", "assign_to": "front_desk"}], "daily 07:00", "task", "Y"),
    ("4", "Treatment plan tasks", "treatment_plan.created", {"status": ["active"]},
     [{"create_task": "Schedule first session"}, {"create_task": "Review progress", "due_in_days": 30}],
     "on event", "task", "N"),
    ("5", "<script>alert(1)</script> legacy", "LEGACY_HOOK_17(x)", "not json at all",
     "run macro 42", "", "", "Y"),
]  # fmt: skip


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _build(folder: Path, out: Path) -> tuple[RebuildReference, RebuildDocument]:
    con = duckdb.connect()
    try:
        export = open_source(str(folder), con)
        plan = propose_plan(build_inventory(export, con), 0.75)
        result = build_rebuild_reference(plan, export, con, out)
    finally:
        con.close()
    return result, RebuildDocument.model_validate_json(result.json_path.read_text(encoding="utf-8"))


def _workflows(doc: RebuildDocument) -> dict[str, WorkflowEntry]:
    return {e.id or "": e for e in doc.entries if isinstance(e, WorkflowEntry)}


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RebuildReference, RebuildDocument]:
    folder = tmp_path_factory.mktemp("export") / "clinic"
    shutil.copytree(FIXTURE, folder)
    rows = [
        [rid, name, trigger, c if isinstance(c, str) else json.dumps(c), a if isinstance(a, str) else json.dumps(a),
         schedule, channel, active]
        for rid, name, trigger, c, a, schedule, channel, active in RULES
    ]  # fmt: skip
    _write_csv(
        folder / "workflow_rules.csv",
        ["rule_id", "name", "trigger", "conditions", "actions", "schedule", "channel", "active"],
        rows,
    )
    return _build(folder, tmp_path_factory.mktemp("out"))


def test_every_rule_and_report_becomes_an_entry(fixture_run: tuple[RebuildReference, RebuildDocument]) -> None:
    result, doc = fixture_run
    assert result.workflow_tables == ["workflow_rules"]
    assert result.report_tables == ["report_definitions"]
    assert (result.workflow_rules, result.reports) == (5, 1)
    assert (result.active_rules, result.inactive_rules) == (4, 1)
    assert result.manual_review == 1
    assert result.not_native_actions == 2  # the SMS and the legacy macro
    assert doc.schema_version == 1
    assert doc.source_system == "Acme Practice Manager"
    assert doc.plan_hash == result.plan_hash and len(doc.plan_hash) == 64
    assert {t.table: t.found_by for t in doc.tables} == {
        "workflow_rules": "plan reason",
        "report_definitions": "plan reason",
    }
    rows = sorted(e.source_row for e in _workflows(doc).values())
    assert rows == [1, 2, 3, 4, 5]


def test_appointment_reminder_is_a_time_based_appointments_workflow_with_sms_flagged(
    fixture_run: tuple[RebuildReference, RebuildDocument],
) -> None:
    entry = _workflows(fixture_run[1])["1"]
    assert entry.conditions == {"hours_before": 24}  # parsed JSON, not text
    assert entry.actions == [{"send": "sms", "template": "reminder_24h"}]
    fs = entry.freshsales
    assert fs.module == "Appointments"
    assert fs.trigger_kind == "time_based"
    assert fs.trigger_type == "time-based: 24 hours before appointment start"
    [sms] = fs.actions
    assert (sms.kind, sms.native, sms.detail) == ("send_sms", False, "reminder_24h")
    assert any("Marketplace" in note for note in sms.notes)
    assert "Appointments" in fs.summary and not fs.manual_review


def test_billing_follow_up_runs_on_deals_counting_from_the_service_date(
    fixture_run: tuple[RebuildReference, RebuildDocument],
) -> None:
    fs = _workflows(fixture_run[1])["2"].freshsales
    assert fs.module == "Deals" and fs.plan_target == "deal"
    assert fs.trigger_type == "time-based: 30 days after service_date (cf_service_date)"
    assert [(a.kind, a.native, a.detail) for a in fs.actions] == [
        ("send_email", True, "invoice_overdue"),
        ("create_task", True, "Call patient about balance"),
    ]


def test_insurance_verification_creates_a_task_before_the_appointment(
    fixture_run: tuple[RebuildReference, RebuildDocument],
) -> None:
    fs = _workflows(fixture_run[1])["3"].freshsales
    assert fs.module == "Appointments"
    assert fs.trigger_type == "time-based: 2 days before appointment start"
    [task] = fs.actions
    assert (task.kind, task.detail) == ("create_task", "Verify insurance eligibility")
    assert any("front_desk" in note for note in task.notes)


def test_treatment_plan_rule_runs_on_the_custom_module_when_a_record_is_created(
    fixture_run: tuple[RebuildReference, RebuildDocument],
) -> None:
    entry = _workflows(fixture_run[1])["4"]
    assert entry.active is False
    fs = entry.freshsales
    assert (fs.module, fs.plan_target) == ("Custom module treatment_plan", "custom_module:treatment_plan")
    assert (fs.trigger_kind, fs.trigger_type) == ("record_created", "record created")
    assert [a.kind for a in fs.actions] == ["create_task", "create_task"]
    assert any("30 days" in note for note in fs.actions[1].notes)
    assert fs.summary.startswith("Inactive in the source")


def test_unknown_trigger_goes_to_manual_review_with_its_raw_text(
    fixture_run: tuple[RebuildReference, RebuildDocument],
) -> None:
    entry = _workflows(fixture_run[1])["5"]
    assert entry.conditions == "not json at all"  # kept as text when it does not parse
    assert entry.trigger == "LEGACY_HOOK_17(x)"
    fs = entry.freshsales
    assert fs.manual_review and fs.module is None
    assert (fs.trigger_kind, fs.trigger_type) == ("manual_review", "manual review")
    assert "LEGACY_HOOK_17(x)" in fs.summary
    assert [a.kind for a in fs.actions] == ["manual_review"]


def test_report_points_at_the_freshsales_object_its_data_lives_in(
    fixture_run: tuple[RebuildReference, RebuildDocument],
) -> None:
    [report] = [e for e in fixture_run[1].entries if isinstance(e, ReportEntry)]
    assert report.name == "No-shows by provider"
    assert report.base_table == "appointments"
    assert report.plan_targets == ["appointment", "task"]
    assert report.freshsales_object == "Appointments + Tasks"
    assert report.columns == ["provider_id", "status"]
    assert report.fields == {"provider_id": "owner_id", "status": "outcome_id"}
    assert report.filters == "status=no_show"
    assert report.report_type == "chart"


def test_outputs_are_private_parseable_and_escaped(fixture_run: tuple[RebuildReference, RebuildDocument]) -> None:
    result, _doc = fixture_run
    for path in (result.json_path, result.markdown_path, result.html_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    raw = json.loads(result.json_path.read_text(encoding="utf-8"))
    assert len(raw["entries"]) == 6 and {e["kind"] for e in raw["entries"]} == {"workflow", "report"}
    page = result.html_path.read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    markdown = result.markdown_path.read_text(encoding="utf-8")
    assert markdown.count("- [ ] Workflow:") == 5 and "- [ ] Report: No-shows by provider" in markdown
    assert "time-based: 30 days after service\\_date (cf\\_service\\_date)" in markdown


def test_vendor_rules_table_found_by_its_columns(tmp_path: Path) -> None:
    folder = tmp_path / "vendor"
    shutil.copytree(FIXTURE, folder)
    (folder / "workflow_rules.csv").unlink()
    (folder / "report_definitions.csv").unlink()
    _write_csv(
        folder / "reminder_setup.csv",
        ["Rule #", "Title", "Event", "Criteria", "Then Do", "Interval", "Medium", "Message", "Disabled"],
        [
            ["R1", "Visit reminder", "Appt booked", "2 days before visit", "Send SMS", "", "SMS", MESSAGE, "No"],
            ["R2", "Overdue balance", "Invoice overdue", "balance > 0", "E-mail statement; Create task: call patient",
             "every day 10:00", "e-mail", "", "Yes"],
            ["R3", "New plan", "Treatment plan created", "", "Create task: book first session", "", "", "", ""],
        ],
    )  # fmt: skip
    _write_csv(
        folder / "saved_views.csv",
        ["View", "Source", "Fields", "Criteria", "Visualization"],
        [["Visits per week", "Appointments", "appointment_date, provider_id", "status=completed", "Column chart"]],
    )
    result, doc = _build(folder, tmp_path / "out")
    assert result.workflow_tables == ["reminder_setup"] and result.report_tables == ["saved_views"]
    table = next(t for t in doc.tables if t.kind == "workflow")
    # The proposer recognises a trigger column and an action column as rules, whatever the table is called.
    assert table.found_by == "plan reason"
    assert table.roles["trigger"] == "Event"
    assert table.roles["conditions"] == "Criteria"
    assert table.roles["actions"] == "Then Do"
    assert table.roles["active"] == "Disabled"
    rules = _workflows(doc)
    visit = rules["R1"]
    assert visit.active is True  # "Disabled: No"
    assert visit.message == MESSAGE
    assert visit.freshsales.module == "Appointments"
    assert visit.freshsales.trigger_type == "time-based: 2 days before appointment start"
    assert [a.kind for a in visit.freshsales.actions] == ["send_sms"]
    overdue = rules["R2"]
    assert overdue.active is False
    assert overdue.freshsales.module == "Deals"
    assert overdue.freshsales.trigger_type == "time-based: every day at 10:00"
    assert [(a.kind, a.detail) for a in overdue.freshsales.actions] == [
        ("send_email", None),
        ("create_task", "call patient"),
    ]
    plan = rules["R3"].freshsales
    assert (plan.module, plan.trigger_type) == ("Custom module treatment_plan", "record created")
    [report] = [e for e in doc.entries if isinstance(e, ReportEntry)]
    assert (report.name, report.freshsales_object, report.report_type) == (
        "Visits per week",
        "Appointments + Tasks",
        "chart",
    )
    assert report.fields == {"appointment_date": "from_date", "provider_id": "owner_id"}
    # The result is for operators: counts and names, never what the clinic wrote.
    assert "Philippa" not in result.model_dump_json()
    assert "Philippa" in result.json_path.read_text(encoding="utf-8")
