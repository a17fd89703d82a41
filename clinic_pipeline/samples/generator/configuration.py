"""The clinic's configuration tables: workflow rules, saved reports, and the custom-field layout.

They do not grow with the clinic, so they are fixed lists rather than drawn per row.
"""

from __future__ import annotations

import json

import pyarrow as pa

from clinic_pipeline.samples.generator.vocab import HOW_DID_YOU_HEAR

WORKFLOW_COLUMNS = ("rule_id", "name", "trigger", "conditions", "actions", "schedule", "channel", "active")
REPORT_COLUMNS = ("report_id", "name", "description", "base_table", "columns", "filters", "chart_type")
CUSTOM_FIELD_COLUMNS = ("table_name", "column_name", "label", "field_type", "choices")

_RULES: list[tuple[str, str, dict[str, object], list[dict[str, object]], str, str, str]] = [
    ("Appointment reminder (SMS)", "appointment.scheduled", {"hours_before": 24, "status": ["scheduled"]},
     [{"send": "sms", "template": "reminder_24h"}], "hourly", "sms", "Y"),
    ("Appointment reminder (email)", "appointment.scheduled", {"hours_before": 24, "status": ["scheduled"]},
     [{"send": "email", "template": "reminder_24h"}], "hourly", "email", "Y"),
    ("Same-day reminder", "appointment.scheduled", {"hours_before": 2, "appointment_type": ["New patient"]},
     [{"send": "sms", "template": "reminder_2h"}], "every 15 minutes", "sms", "N"),
    ("Unpaid invoice follow-up", "billing.invoice_unpaid", {"days_unpaid": 30, "amount_due_over": 0},
     [{"send": "email", "template": "invoice_overdue"}, {"create_task": "Call patient about balance"}],
     "daily 09:00", "email", "Y"),
    ("Second unpaid invoice notice", "billing.invoice_unpaid", {"days_unpaid": 60},
     [{"create_task": "Send statement by mail", "assign_to": "billing_team"}], "daily 09:00", "task", "Y"),
    ("Denied claim review", "billing.claim_denied", {"denial_status": ["denied", "partial"]},
     [{"create_task": "Review denial and appeal", "due_in_days": 7}], "on event", "task", "Y"),
    ("Insurance verification", "appointment.scheduled", {"days_before": 2, "has_insurance": True},
     [{"create_task": "Verify insurance eligibility", "assign_to": "front_desk"}], "daily 07:00", "task", "Y"),
    ("Treatment plan tasks", "treatment_plan.created", {"status": ["active"]},
     [{"create_task": "Schedule first session"}, {"create_task": "Review progress", "due_in_days": 30}],
     "on event", "task", "Y"),
    ("No-show follow-up", "appointment.no_show", {},
     [{"send": "email", "template": "missed_you"}, {"create_task": "Call to rebook"}], "on event", "email", "Y"),
    ("Birthday greeting", "patient.birthday", {"marketing_consent": "Y"},
     [{"send": "email", "template": "birthday"}], "daily 08:00", "email", "N"),
]  # fmt: skip

_REPORTS = [
    ("No-shows by provider", "Monthly no-shows per provider", "appointments", "provider_id;status;appointment_date",
     "status=no_show", "bar"),
    ("Revenue by month", "Billed and collected amounts per month", "billing_encounters",
     "service_date;amount_billed;amount_paid", "", "line"),
    ("Denials by payer", "Denied and partial claims per carrier", "billing_encounters",
     "denial_status;patient_id", "denial_status in (denied,partial)", "bar"),
    ("New patients by source", "How new patients heard of the clinic", "patients", "how_did_you_hear;created_at",
     "deleted=0", "pie"),
    ("Open treatment plans", "Active plans per provider", "treatment_plans", "provider_id;status;start_date",
     "status=active", "table"),
    ("Front desk dashboard", "Today's schedule, arrivals and balances", "appointments",
     "appointment_date;start_time;status;patient_id", "appointment_date=today", "dashboard"),
]  # fmt: skip

_CUSTOM_FIELDS = [
    ("patients", "how_did_you_hear", "How did you hear about us?", "picklist", ";".join(HOW_DID_YOU_HEAR)),
    ("patients", "last_xray_date", "Last X-ray", "date", ""),
    ("patients", "allergy_notes", "Allergies", "text", ""),
    ("patients", "pain_scale", "Pain scale (0-10)", "number", ""),
    ("patients", "newsletter_opt_in", "Newsletter", "checkbox", ""),
]


def _text_table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> pa.Table:
    return pa.table({c: pa.array([row[i] or None for row in rows], pa.string()) for i, c in enumerate(columns)})


def workflow_rules() -> pa.Table:
    rows = [
        (str(i), name, trigger, json.dumps(conditions), json.dumps(actions), schedule, channel, active)
        for i, (name, trigger, conditions, actions, schedule, channel, active) in enumerate(_RULES, start=1)
    ]
    return _text_table(WORKFLOW_COLUMNS, rows)


def report_definitions() -> pa.Table:
    return _text_table(REPORT_COLUMNS, [(str(i), *report) for i, report in enumerate(_REPORTS, start=1)])


def custom_field_definitions() -> pa.Table:
    return _text_table(CUSTOM_FIELD_COLUMNS, list(_CUSTOM_FIELDS))
