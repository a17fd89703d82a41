"""Reference data every fresh sandbox starts with: users, selectors, default views, standard fields.

Reference ids are fixed (and above 2^32) so tests and demos can name them; users live in the store
because `/_sandbox/users` adds more.
"""

from __future__ import annotations

from typing import Any

from clinic_pipeline.sandbox.store import Store

ADMIN_USER_ID = 16_000_000_001
MEMBER_USER_ID = 16_000_000_002
MEMBER_KEY_SUFFIX = "-member"


def _ids(base: int, names: list[str], **extra: Any) -> list[dict[str, Any]]:
    return [{"id": base + i, "name": name, "position": i + 1, **extra} for i, name in enumerate(names)]


def _users() -> list[dict[str, Any]]:
    rows = [
        ("Ada Admin", "ada.admin@clinic.example", "admin", True),
        ("Max Member", "max.member@clinic.example", "member", True),
        ("Dr. Priya Rao", "priya.rao@clinic.example", "member", True),
        ("Dr. Tom Okafor", "tom.okafor@clinic.example", "member", True),
        ("Front Desk", "front.desk@clinic.example", "member", True),
        ("Dr. Gone Away", "gone.away@clinic.example", "member", False),
    ]
    return [
        {
            "id": ADMIN_USER_ID + i,
            "display_name": name,
            "email": email,
            "role": role,
            "is_active": active,
            "time_zone": "UTC",
            "mobile_number": None,
        }
        for i, (name, email, role, active) in enumerate(rows)
    ]


DEAL_PIPELINES = [
    {"id": 16_000_100_001, "name": "Billing", "is_default": True, "position": 1},
    {"id": 16_000_100_002, "name": "Self-pay", "is_default": False, "position": 2},
]
# (pipeline, stage, forecast type, choice type): stage names repeat across pipelines, as in an account with a
# claims pipeline and a self-pay one.
_STAGES = [
    (0, "Billed", "open", 1),
    (0, "Submitted", "open", 1),
    (0, "Partially paid", "open", 1),
    (0, "Appealed", "open", 1),
    (0, "Paid", "won", 2),
    (0, "Denied", "lost", 3),
    (0, "Written off", "lost", 3),
    (1, "Billed", "open", 1),
    (1, "Paid", "won", 2),
    (1, "Written off", "lost", 3),
]
DEAL_STAGES = [
    {
        "id": 16_000_110_001 + i,
        "name": name,
        "forecast_type": forecast,
        "position": i + 1,
        "deal_pipeline_id": DEAL_PIPELINES[pipeline]["id"],
        "choice_type": choice,
    }
    for i, (pipeline, name, forecast, choice) in enumerate(_STAGES)
]
LIFECYCLE_STAGES = _ids(16_000_200_001, ["Lead", "Sales Qualified Lead", "Customer"])
CONTACT_STATUSES = [
    {"id": 16_000_210_001 + i, "name": name, "position": i + 1, "lifecycle_stage_id": stage}
    for i, (name, stage) in enumerate(
        [
            ("New", LIFECYCLE_STAGES[0]["id"]),
            ("Contacted", LIFECYCLE_STAGES[0]["id"]),
            ("Interested", LIFECYCLE_STAGES[1]["id"]),
            ("Active patient", LIFECYCLE_STAGES[2]["id"]),
            ("Inactive patient", LIFECYCLE_STAGES[2]["id"]),
        ]
    )
]
# An account's sales activity types: the communication kinds (Call, Email, SMS, Chat) and Meeting. A clinic's
# letters have no type here: the plan sends them as notes, or an admin adds a type.
SALES_ACTIVITY_TYPES = _ids(16_000_300_001, ["Call", "Meeting", "Email", "SMS", "Chat"])
_CALL, _MEETING = SALES_ACTIVITY_TYPES[0]["id"], SALES_ACTIVITY_TYPES[1]["id"]
SALES_ACTIVITY_OUTCOMES = [
    {"id": 16_000_310_001 + i, "name": name, "position": i + 1, "sales_activity_type_id": type_id}
    for i, (name, type_id) in enumerate(
        [
            ("Completed", _MEETING),
            ("No show", _MEETING),
            ("Interested", _CALL),
            ("Left voicemail", _CALL),
            ("No response", _CALL),
            ("Wrong number", _CALL),
        ]
    )
]

# Selector name → rows; `owners` and `users` come from the store.
SELECTORS: dict[str, list[dict[str, Any]]] = {
    "territories": _ids(16_000_400_001, ["North", "South", "East", "West"]),
    "deal_pipelines": DEAL_PIPELINES,
    "deal_stages": DEAL_STAGES,
    "contact_statuses": CONTACT_STATUSES,
    "lifecycle_stages": LIFECYCLE_STAGES,
    "sales_activity_types": SALES_ACTIVITY_TYPES,
    "sales_activity_outcomes": SALES_ACTIVITY_OUTCOMES,
    "currencies": [
        {"id": 16_000_500_001, "currency_code": "USD", "exchange_rate": "1.0", "is_default": True},
        {"id": 16_000_500_002, "currency_code": "EUR", "exchange_rate": "1.08", "is_default": False},
        {"id": 16_000_500_003, "currency_code": "GBP", "exchange_rate": "1.27", "is_default": False},
    ],
    "lead_sources": _ids(16_000_600_001, ["Referral", "Web", "Walk-in", "Insurance network"]),
    "industry_types": _ids(16_000_700_001, ["Healthcare", "Insurance", "Government", "Other"]),
    "business_types": _ids(16_000_800_001, ["Clinic", "Payer", "Practice", "Laboratory"]),
    "deal_reasons": _ids(16_000_900_001, ["Paid in full", "Denied by payer", "Written off"]),
    "deal_types": _ids(16_001_000_001, ["Encounter", "Procedure", "Subscription"]),
    "deal_payment_statuses": _ids(16_001_100_001, ["Unpaid", "Partially paid", "Paid"]),
    "task_types": _ids(16_001_200_001, ["Follow-up", "Call back", "Check-in", "Paperwork"]),
    "appointment_types": _ids(16_001_300_001, ["Visit", "Consultation", "Procedure", "Telehealth"]),
}
ADMIN_SELECTORS = frozenset({"owners", "users"})

# Record field → selector it must point into (the owner fields point at users).
REFERENCE_FIELDS = {
    "territory_id": "territories",
    "deal_pipeline_id": "deal_pipelines",
    "deal_stage_id": "deal_stages",
    "contact_status_id": "contact_statuses",
    "lifecycle_stage_id": "lifecycle_stages",
    "sales_activity_type_id": "sales_activity_types",
    "sales_activity_outcome_id": "sales_activity_outcomes",
    "outcome_id": "sales_activity_outcomes",
    "currency_id": "currencies",
    "lead_source_id": "lead_sources",
    "industry_type_id": "industry_types",
    "business_type_id": "business_types",
    "deal_reason_id": "deal_reasons",
    "deal_type_id": "deal_types",
    "deal_payment_status_id": "deal_payment_statuses",
    "task_type_id": "task_types",
    "appointment_type_id": "appointment_types",
}

# Default views per entity: (name, is_default). Deals deliberately have no "All Deals".
DEFAULT_VIEWS: dict[str, list[tuple[str, bool]]] = {
    "contacts": [("All Contacts", True), ("My Contacts", False), ("New Contacts", False), ("Recycle Bin", False)],
    "sales_accounts": [("All Accounts", True), ("My Accounts", False), ("New Accounts", False), ("Recycle Bin", False)],
    "deals": [
        ("Open Deals", True),
        ("My Deals", False),
        ("Won Deals", False),
        ("Lost Deals", False),
        ("Recycle Bin", False),
    ],
}
VIEW_BASE_ID = {"contacts": 16_002_000_001, "sales_accounts": 16_002_100_001, "deals": 16_002_200_001}
MODEL_CLASS = {"contacts": "Contact", "sales_accounts": "SalesAccount", "deals": "Deal"}


def seed_users(store: Store, api_key: str) -> None:
    for user in _users():
        store.put("user", user)
    store.set_setting("api_keys", {})
    grant_keys(store, api_key)


def grant_keys(store: Store, api_key: str) -> None:
    keys = dict(store.get_setting("api_keys", {}))
    keys.update({api_key: ADMIN_USER_ID, api_key + MEMBER_KEY_SUFFIX: MEMBER_USER_ID})
    store.set_setting("api_keys", keys)


def filters_for(entity: str) -> list[dict[str, Any]]:
    return [
        {
            "id": VIEW_BASE_ID[entity] + i,
            "name": name,
            "model_class_name": MODEL_CLASS[entity],
            "is_default": is_default,
            "is_public": True,
        }
        for i, (name, is_default) in enumerate(DEFAULT_VIEWS[entity])
    ]
