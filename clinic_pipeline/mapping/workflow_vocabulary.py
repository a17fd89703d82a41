"""What Freshsales offers to rebuild a clinic's automation rules and saved reports, and the words that lead there.

Vocabulary only, no vendor names: column roles of a rules/report table, the subjects a rule can be
about (with the Freshsales object that now holds that data), the workflow actions and whether they are
native, and report types. `rebuild` does the matching.

Freshsales workflows (Admin Settings → Workflows) run on Contacts, Accounts, Deals, Tasks,
Appointments, Call logs and custom modules; the entry point is a record action (created / created or
updated, Growth plan onwards) or date & time (every day / week / month at a set time, Pro plan
onwards); native actions are update field, send email, create task and send webhook. SMS is not a
native action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

WorkflowRole = Literal["id", "name", "trigger", "conditions", "actions", "schedule", "channel", "active", "message"]
ReportRole = Literal["id", "name", "description", "base_table", "columns", "filters", "chart_type"]

# Role → normalised phrases a column is called. Earlier roles claim a column first.
WORKFLOW_ROLES: dict[WorkflowRole, tuple[str, ...]] = {
    "trigger": ("trigger", "event", "when", "triggered by", "fires on", "on event", "start event", "trigger event"),
    "conditions": (
        "condition", "conditions", "criteria", "criterion", "filter", "filters", "if", "rule logic", "where",
    ),
    "actions": ("action", "actions", "then", "do", "then do", "perform", "steps", "outcome", "effect"),
    "schedule": (
        "schedule", "interval", "cron", "offset", "timing", "frequency", "recurrence", "delay", "lead time",
        "run at", "runs", "cadence",
    ),
    "channel": ("channel", "medium", "via", "send via", "delivery", "method", "notification type"),
    "active": ("active", "enabled", "is active", "is enabled", "status", "state", "inactive", "disabled", "on off"),
    "message": ("message", "template", "body", "text", "content", "message text", "wording"),
    "name": ("name", "title", "label", "rule name", "workflow name", "subject", "description"),
    "id": ("id", "rule id", "key", "number", "uid", "uuid", "identifier", "code"),
}  # fmt: skip
# Words a rules table repeats in its column names ("Rule Name", "Workflow Trigger").
WORKFLOW_SUBJECT_WORDS = frozenset({"rule", "rules", "workflow", "automation", "reminder", "alert"})
INVERTED_ACTIVE_WORDS = frozenset({"inactive", "disabled", "off"})

REPORT_ROLES: dict[ReportRole, tuple[str, ...]] = {
    "chart_type": (
        "chart type", "chart", "visualization", "visualisation", "display", "graph", "graph type", "view type",
        "report type", "type", "format", "widget",
    ),
    "base_table": (
        "base table", "table", "source", "source table", "entity", "object", "module", "data source", "dataset",
        "from", "base", "based on",
    ),
    "columns": ("columns", "column", "fields", "field", "select", "measures", "dimensions", "group by", "metrics"),
    "filters": ("filters", "filter", "criteria", "where", "conditions", "condition"),
    "description": ("description", "notes", "purpose", "summary", "details"),
    "name": ("name", "title", "label", "report name", "dashboard name", "view", "view name", "report", "dashboard"),
    "id": ("id", "report id", "key", "number", "uid", "uuid", "identifier", "code"),
}  # fmt: skip
REPORT_SUBJECT_WORDS = frozenset({"report", "reports", "dashboard", "saved"})


@dataclass(frozen=True)
class Subject:
    """What a rule is about, the Freshsales object holding that data by default, and its date fields."""

    key: str
    words: frozenset[str]
    default_target: str
    follow_plan: bool  # True: the plan's target for tables about this subject wins over the default
    date_words: tuple[str, ...]  # source columns worth anchoring a time-based trigger on, best first


def _s(key: str, words: str, target: str, follow_plan: bool, date_words: str) -> Subject:
    return Subject(key, frozenset(words.split()), target, follow_plan, tuple(date_words.split()))


SUBJECTS: tuple[Subject, ...] = (
    _s("treatment_plan", "treatment careplan", "custom_module:treatment_plan", True, "start end"),
    _s("appointment", "appointment visit booking meeting noshow checkin calendar", "appointment", True,
       "appointment start from visit date"),
    _s("billing", "invoice billing bill payment balance claim denial denied charge unpaid overdue statement "
       "collection dunning", "deal", True, "due invoice service bill billed date"),
    _s("lab", "lab laboratory result results", "custom_module:lab_result", True, "result date"),
    _s("insurance", "insurance eligibility coverage policy payer carrier", "contact", False,
       "effective termination expiry date"),
    _s("referral", "referral referrer referring", "contact", False, "referral date"),
    _s("patient", "patient contact birthday recall client person lead anniversary", "contact", True,
       "birth date"),
    _s("task", "task todo", "task", True, "due date"),
    _s("location", "location clinic facility practice", "sales_account", True, "date"),
)  # fmt: skip

# Plan targets → the Freshsales module a workflow runs on. Notes and files hang on a contact.
MODULES: dict[str, str] = {
    "contact": "Contacts",
    "sales_account": "Accounts",
    "deal": "Deals",
    "appointment": "Appointments",
    "task": "Tasks",
    "note": "Contacts",
    "file": "Contacts",
}
CUSTOM_MODULE_PREFIX = "custom_module:"

# Trigger vocabulary (words of the trigger text, normalised and singular).
CREATED_WORDS = frozenset(
    {"created", "create", "new", "add", "added", "booked", "book", "scheduled", "registered", "opened", "generated",
     "insert", "inserted", "entered", "started"}
)  # fmt: skip
UPDATED_WORDS = frozenset(
    {"updated", "update", "changed", "change", "edited", "modified", "status", "cancelled",
     "canceled", "completed", "arrived", "denied", "paid", "rejected", "closed", "missed", "approved", "signed",
     "noshow"}
)  # fmt: skip
ANNIVERSARY_WORDS = frozenset({"birthday", "anniversary"})
STATE_WORDS = frozenset({"unpaid", "overdue", "expiring", "expired", "due", "recall", "lapsed", "inactive", "pending"})
BEFORE_WORDS = frozenset({"before", "prior", "ahead", "advance", "until", "lead"})
AFTER_WORDS = frozenset({"after", "since", "later", "unpaid", "overdue", "past", "late", "ago", "elapsed", "old"})
UNITS: dict[str, str] = {
    "minute": "minutes", "minutes": "minutes", "min": "minutes", "mins": "minutes", "m": "minutes",
    "hour": "hours", "hours": "hours", "hr": "hours", "hrs": "hours", "h": "hours",
    "day": "days", "days": "days", "d": "days",
    "week": "weeks", "weeks": "weeks", "wk": "weeks", "w": "weeks",
}  # fmt: skip
RECURRING: dict[str, str] = {
    "hourly": "every hour", "daily": "every day", "day": "every day", "everyday": "every day",
    "weekly": "every week", "week": "every week", "monthly": "every month", "month": "every month",
}  # fmt: skip

ActionKind = Literal["send_email", "send_sms", "create_task", "update_field", "send_webhook", "manual_review"]


@dataclass(frozen=True)
class ActionType:
    kind: ActionKind
    words: frozenset[str]
    freshsales: str  # the action as Freshsales names it
    native: bool
    note: str = ""


ACTIONS: tuple[ActionType, ...] = (
    ActionType(
        "send_sms", frozenset({"sms", "text", "txt", "whatsapp", "mms"}), "Send SMS (Marketplace app)",
        False,
        "not native: install an SMS app from the Freshworks Marketplace (or send a webhook to an SMS gateway) "
        "and check the contacts' SMS consent",
    ),
    ActionType(
        "send_webhook", frozenset({"webhook", "http", "api", "url", "post", "integration"}), "Send webhook", True
    ),
    ActionType("send_email", frozenset({"email", "mail", "newsletter"}), "Send email", True),
    ActionType(
        "create_task", frozenset({"task", "todo", "call", "callback", "reminder", "follow", "review", "verify"}),
        "Create task", True,
    ),
    ActionType(
        "update_field", frozenset({"update", "set", "change", "assign", "flag", "tag", "mark", "field", "status"}),
        "Update field", True,
    ),
)  # fmt: skip
MANUAL_ACTION = ActionType("manual_review", frozenset(), "manual review", False, "no matching Freshsales action")
# Keys of an action object that carry its payload rather than its kind.
ACTION_DETAIL_KEYS = ("template", "title", "subject", "message", "body", "text", "field", "value", "url")

ReportType = Literal["tabular", "summary", "chart", "dashboard"]
REPORT_TYPES: tuple[tuple[ReportType, frozenset[str]], ...] = (
    ("dashboard", frozenset({"dashboard", "board", "widget", "widgets", "overview", "kpis"})),
    ("chart", frozenset({"bar", "column", "line", "pie", "donut", "doughnut", "area", "funnel", "chart", "graph",
                         "scatter", "histogram", "trend", "gauge", "stacked", "heatmap"})),
    ("summary", frozenset({"summary", "grouped", "group", "pivot", "matrix", "count", "total", "totals", "kpi",
                           "metric", "number", "aggregate"})),
    ("tabular", frozenset({"table", "tabular", "list", "grid", "detail", "details", "export", "raw"})),
)  # fmt: skip
REPORT_ADVICE: dict[ReportType, str] = {
    "tabular": "Analytics → Reports → new tabular report",
    "summary": "Analytics → Reports → new summary report, grouped by the listed columns",
    "chart": "Analytics → Reports → new report shown as a chart",
    "dashboard": "Analytics → Dashboards → new dashboard, one widget (report) per metric listed",
}

PLAN_NOTES: dict[str, str] = {
    "record_created": "entry point 'based on record action: when the record is created' (Growth plan onwards)",
    "record_updated": (
        "entry point 'based on record action: when the record is created or updated', with the change as a "
        "condition (Growth plan onwards)"
    ),
    "time_based": (
        "entry point 'based on date & time' (runs every day/week/month at a set time; Pro plan onwards), with the "
        "date field as a condition"
    ),
}
SHORT_OFFSET_NOTE = (
    "offset under a day: a daily date & time workflow cannot hit it exactly; send it from the day before, or use a "
    "Marketplace reminder/SMS app"
)
