"""The mapping plan file (design.md's contract): model, YAML I/O, hash lock and confirmation gate."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

FieldType = Literal["text", "number", "date", "datetime", "dropdown", "checkbox", "email", "phone", "url", "lookup"]


class FieldMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    target: str | None = Field(description="standard field name, cf_<name>, or null when not migrated")
    type: FieldType = "text"
    transform: str | None = None
    custom: bool = False
    confidence: float = Field(default=1.0, ge=0, le=1)
    reason: str = ""
    needs_review: bool = False


class ObjectMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_table: str
    target: str = Field(description="sales_account | contact | deal | ... | custom_module:<name> | not_migrated")
    also: list[str] = Field(default_factory=list)
    source_key: str | None = None
    confidence: float = Field(default=1.0, ge=0, le=1)
    reason: str = ""
    fields: list[FieldMapping] = Field(default_factory=list)

    def mapped_fields(self) -> list[FieldMapping]:
        return [f for f in self.fields if f.target]


class MappingPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    source_fingerprint: str
    status: Literal["proposed", "confirmed"] = "proposed"
    confirmed_by: str | None = None
    confirmed_hash: str | None = None
    objects: list[ObjectMapping]

    def objects_hash(self) -> str:
        """sha256 over the canonical JSON of `objects`: what a confirmation locks."""
        canonical = json.dumps([o.model_dump(mode="json") for o in self.objects], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def objects_for(self, target: str) -> list[ObjectMapping]:
        """Source tables whose primary or extra target is `target`."""
        return [o for o in self.objects if o.target == target or target in o.also]


class PlanNotConfirmedError(RuntimeError):
    """Raised before any record moves when the plan is unconfirmed or changed since confirmation."""


def read_plan(path: Path) -> MappingPlan:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no mapping plan; run `clinic-pipeline propose-mapping` first")
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return MappingPlan.model_validate(data)


def write_plan(plan: MappingPlan, path: Path) -> None:
    """Write atomically so an interrupted write never leaves a half plan behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        yaml.safe_dump(plan.model_dump(mode="json"), fh, sort_keys=False, allow_unicode=True)
    os.replace(tmp, path)


def confirm_plan(plan: MappingPlan, by: str) -> MappingPlan:
    if not by.strip():
        raise ValueError("confirmation needs a name (--by NAME)")
    return plan.model_copy(
        update={"status": "confirmed", "confirmed_by": by.strip(), "confirmed_hash": plan.objects_hash()}
    )


def require_confirmed(plan: MappingPlan) -> MappingPlan:
    """The gate: no record moves unless a person confirmed exactly this plan."""
    if plan.status != "confirmed" or not plan.confirmed_hash:
        raise PlanNotConfirmedError(
            "the mapping plan is not confirmed: review it, then run `clinic-pipeline confirm-mapping --by NAME`"
        )
    if plan.confirmed_hash != plan.objects_hash():
        raise PlanNotConfirmedError(
            "the mapping plan changed after it was confirmed: confirm it again "
            "(`clinic-pipeline confirm-mapping --by NAME`)"
        )
    return plan
