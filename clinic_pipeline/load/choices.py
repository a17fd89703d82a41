"""The account's reference rows a plan's choice lines name (an outcome, a contact status, a deal stage), by name.

A row may belong to another choice (a contact status to its lifecycle stage, a deal stage to its pipeline):
choosing it sets that field too, so one value map decides both. Stage names repeat across pipelines
("Paid" in a claims and a self-pay pipeline): `Pipeline / Stage` names one, and a bare name the stage of
the default pipeline; a bare name that stands for several rows, none in the default pipeline, names none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.freshsales.client import FreshsalesClient
from clinic_pipeline.mapping.plan import MappingPlan
from clinic_pipeline.model.objects import CHOICE_SELECTORS
from clinic_pipeline.model.transforms import transform_of

# lower-cased name → the record's fields it sets (the choice itself, and the choice it belongs to)
ChoiceIndex = dict[str, dict[str, int]]


class ChoiceNotFoundError(OperatorError, ValueError):
    """The plan's value map names a reference row the Freshsales account does not have."""


def _name(row: dict) -> str:
    # Currencies are named by their code (freshsales_api.md: currencies carry currency_code).
    return str(row.get("name") or row.get("currency_code") or "").strip()


class AccountChoices:
    """The account's reference rows, each selector read once per instance (one per run)."""

    def __init__(self, client: FreshsalesClient) -> None:
        self._client = client
        self._rows: dict[str, list[dict]] = {}
        self._indexes: dict[str, ChoiceIndex] = {}

    def _rows_of(self, field: str) -> list[dict]:
        if field not in self._rows:
            self._rows[field] = self._client.selector(CHOICE_SELECTORS[field])
        return self._rows[field]

    def _row(self, field: str, row_id: int) -> dict | None:
        return next((r for r in self._rows_of(field) if int(r["id"]) == row_id), None)

    def index(self, field: str) -> ChoiceIndex:
        """Name → fields to set, for the rows of the selector behind `field` (`deal_stage_id`)."""
        if field in self._indexes:
            return self._indexes[field]
        rows = self._rows_of(field)
        counts = Counter(_name(r).lower() for r in rows)
        index: ChoiceIndex = {}
        for row in rows:
            owners = {k: int(v) for k, v in row.items() if k in CHOICE_SELECTORS and k != field and v is not None}
            fields = {field: int(row["id"]), **owners}
            owner_rows = [self._row(k, v) for k, v in owners.items()]
            if counts[_name(row).lower()] == 1 or any(r.get("is_default") for r in owner_rows if r):
                index[_name(row).lower()] = fields
            for owner in owner_rows:
                if owner:
                    index[f"{_name(owner)} / {_name(row)}".lower()] = fields
        self._indexes[field] = index
        return index


def missing_names(index: ChoiceIndex, names: Iterable[str]) -> list[str]:
    return sorted({n.strip() for n in names if n and n.strip().lower() not in index})


def choice_problems(client: FreshsalesClient, plan: MappingPlan) -> list[str]:
    """Each choice line whose value map names a row the account lacks (or names ambiguously), and a clinic
    currency the account does not have: what the schema check refuses before any record moves."""
    problems = []
    choices = AccountChoices(client)
    currency = plan.clinic.currency
    if currency and plan.objects_for("deal") and missing_names(choices.index("currency_id"), [currency]):
        problems.append(f"the plan's clinic currency {currency} is not a currency of the account: an admin adds it")
    for mapping in plan.objects:
        for line in mapping.mapped_fields():
            transform, _ = transform_of(line.transform)
            if transform.name != "choice" or line.target not in CHOICE_SELECTORS:
                continue
            missing = missing_names(choices.index(line.target), (v for v in line.value_map.values() if v))
            if missing:
                problems.append(
                    f"{mapping.source_table}.{line.source} → {line.target}: the account has no "
                    f"{CHOICE_SELECTORS[line.target]} named {', '.join(repr(m) for m in missing)} "
                    "(a name several pipelines share is written 'Pipeline / Stage')"
                )
    return problems
