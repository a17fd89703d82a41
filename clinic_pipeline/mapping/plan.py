"""The mapping plan file (design.md's contract): model, YAML I/O, hash lock and confirmation gate."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clinic_pipeline.errors import OperatorError
from clinic_pipeline.model.objects import CHOICE_SELECTORS, FieldType
from clinic_pipeline.model.transforms import DEFAULT_COUNTRY

# libyaml's safe loader when PyYAML was built with it: every step reads the plan, and the pure-Python
# loader took half of a small migration's time.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Per plan file, its text's digest and its YAML as last parsed in this process, pickled: every step of a run
# reads the plan, and parsing it again (about 25 ms) took a tenth of `migrate --full`'s CPU. Only the same
# text is answered from here; each read validates a copy of its own.
_parsed: dict[Path, tuple[bytes, bytes]] = {}


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
    args: list[str] = Field(default_factory=list, description="further source columns the transform reads")
    references: str | None = Field(default=None, description="source table whose source key this value names")
    via: str | None = Field(
        default=None,
        description="column of `references` (or of `through`) whose value is taken (the owner's email or name, "
        "the patient)",
    )
    through: str | None = Field(
        default=None,
        description="a link reached through another record: the source table whose row this value names, its `via` "
        "column naming the `references` row (a lab result's encounter → that encounter's patient)",
    )
    strip_prefix: str | None = Field(
        default=None, description="a link's values carry this prefix the parent's key lacks (`Patient/`)"
    )
    key_prefix: str | None = Field(
        default=None, description="the parent's key is this prefix + the link's value (`patient_2_` + uuid)"
    )
    choices: list[str] = Field(default_factory=list, description="dropdown values the admin creates")
    aggregate: Literal["sum", "list"] | None = Field(
        default=None,
        description="in a grouped mapping: sum the rows' values, or list their distinct values; none: the first",
    )
    value_map: dict[str, str | None] = Field(
        default_factory=dict,
        description="choice lines: source value (case-insensitive) → the Freshsales choice's name, none: no choice",
    )
    allow_secret: bool = Field(
        default=False, description="a person's explicit choice to migrate a column the software takes for a secret"
    )


def choice_line(
    source: str, field: str, value_map: dict[str, str | None], *, confidence: float, reason: str
) -> FieldMapping:
    """A line choosing one of the account's reference rows per source value (`choice:<selector>`); a person
    reviews every such map."""
    return FieldMapping(
        source=source,
        target=field,
        type="lookup",
        transform=f"choice:{CHOICE_SELECTORS[field]}",
        value_map=value_map,
        confidence=confidence,
        reason=reason,
        needs_review=True,
    )


def parent_key_value(line: FieldMapping, value: str) -> str:
    """The parent row's key a link's (trimmed) value stands for, prefixes mended as the line says."""
    if line.strip_prefix and value.startswith(line.strip_prefix):
        value = value[len(line.strip_prefix) :]
    return (line.key_prefix or "") + value


class RowFilter(BaseModel):
    """A condition on one source column, so one table can feed several targets (visits vs check-ins).

    `below`: a number under `value`, or no number at all; `at_least`: a number ≥ `value` (the two split
    a table without a gap). `in`/`not_in`: trimmed, case-insensitive; an empty value is `not_in`.
    `empty`/`not_empty`: null, blank or a null-like sentinel (N/A, 0000-00-00) counts as empty.
    `matches`: the trimmed, lower-cased value matches the regular expression `value` in full (a test chart's name).
    """

    model_config = ConfigDict(extra="forbid")

    source: str
    op: Literal["below", "at_least", "empty", "not_empty", "in", "not_in", "matches"]
    value: float | list[str] | str | None = None


class SkipRule(BaseModel):
    """Rows matching `when` are skipped with `reason` (a calendar block, a cancelled visit, a voided line)."""

    model_config = ConfigDict(extra="forbid")

    when: RowFilter
    reason: str


class ObjectMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_table: str
    target: str = Field(description="sales_account | contact | deal | ... | custom_module:<name> | not_migrated")
    also: list[str] = Field(default_factory=list)
    source_key: str | None = None
    confidence: float = Field(default=1.0, ge=0, le=1)
    reason: str = ""
    where: RowFilter | None = Field(default=None, description="only rows matching go to this target")
    skip_when: RowFilter | None = Field(default=None, description="rows matching are skipped (soft-deleted)")
    skip_reason: str = "soft-deleted in the source"
    skip_rules: list[SkipRule] = Field(
        default_factory=list, description="further rows skipped, each with its own reason (after skip_when)"
    )
    grouped: bool = Field(
        default=False,
        description="rows sharing the source key are one record (the billing lines of one encounter): each line's "
        "`aggregate` folds them, and the rows after the first are skipped as folded into it",
    )
    changed_at: str | None = Field(
        default=None, description="created/updated timestamp column: what a delta window selects rows by"
    )
    changed_at_format: str | None = Field(default=None, description="strptime format of changed_at (local time)")
    duplicates: Literal["keep_flagged", "merge"] | None = Field(
        default=None, description="contacts: what to do with a patient registered twice"
    )
    tags: list[str] = Field(
        default_factory=list, description="tags every record of this mapping carries (contacts: Referrer)"
    )
    fields: list[FieldMapping] = Field(default_factory=list)

    def mapped_fields(self) -> list[FieldMapping]:
        return [f for f in self.fields if f.target]


class ClinicSettings(BaseModel):
    """The clinic's own facts values are read by: proposed from the data, confirmed with the plan."""

    model_config = ConfigDict(extra="forbid")

    country: str = Field(
        default=DEFAULT_COUNTRY, description="ISO 3166 code: phone numbers without a country code are read in it"
    )
    time_zone: str | None = Field(
        default=None, description="IANA zone local date-times are read in; none: the export manifest's"
    )
    currency: str | None = Field(
        default=None, description="ISO 4217 code of the money amounts, given to every deal; none: the account's default"
    )

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not an ISO 3166 country code (e.g. US, GB, AU)")
        return value.upper()

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/London)") from None
        return value

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, value: str | None) -> str | None:
        if value is not None and not (len(value) == 3 and value.isalpha()):
            raise ValueError(f"{value!r} is not an ISO 4217 currency code (e.g. USD, GBP)")
        return value.upper() if value else value


class MappingPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    source_fingerprint: str
    status: Literal["proposed", "confirmed"] = "proposed"
    confirmed_by: str | None = None
    confirmed_hash: str | None = None
    assumptions: list[str] = Field(
        default_factory=list, description="what the proposer assumed that changes data: time zone, dates, units..."
    )
    clinic: ClinicSettings = Field(default_factory=ClinicSettings)
    objects: list[ObjectMapping]

    def objects_hash(self) -> str:
        """sha256 over the canonical JSON of `objects` and the clinic's settings: what a confirmation locks."""
        # Defaults left out: a later version adding an optional key does not unlock older confirmations.
        objects = [o.model_dump(mode="json", exclude_defaults=True) for o in self.objects]
        clinic = self.clinic.model_dump(mode="json", exclude_defaults=True)
        canonical = json.dumps(
            {"objects": objects, "clinic": clinic} if clinic else objects, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def time_zone(self, export_zone: str) -> str:
        """The zone local date-times are read in: the clinic's, else the export manifest's."""
        return self.clinic.time_zone or export_zone

    def objects_for(self, target: str) -> list[ObjectMapping]:
        """Source tables whose primary or extra target is `target`."""
        return [o for o in self.objects if o.target == target or target in o.also]


class PlanNotConfirmedError(OperatorError):
    """Raised before any record moves when the plan is unconfirmed or changed since confirmation."""


def read_plan(path: Path) -> MappingPlan:
    if not path.exists():
        raise OperatorError(f"{path}: no mapping plan; run `clinic-pipeline propose-mapping` first")
    try:
        return MappingPlan.model_validate(_plan_data(path))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise OperatorError(f"{path}:{line} not valid YAML; fix the plan or propose it again") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise OperatorError(f"{path}: {field}: {first['msg']} ({exc.error_count()} problems in all)") from None


def _plan_data(path: Path) -> Any:
    """The plan file's YAML, parsed once per text (see `_parsed`)."""
    text = path.read_text(encoding="utf-8")
    digest = hashlib.blake2b(text.encode()).digest()
    kept = _parsed.get(path)
    if kept is not None and kept[0] == digest:
        return pickle.loads(kept[1])
    data = yaml.load(text, Loader=_SAFE_LOADER)
    _parsed[path] = (digest, pickle.dumps(data))
    return data


def write_plan(plan: MappingPlan, path: Path) -> None:
    """Write atomically so an interrupted write never leaves a half plan behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        yaml.safe_dump(plan.model_dump(mode="json"), fh, sort_keys=False, allow_unicode=True)
    os.replace(tmp, path)


def confirm_plan(plan: MappingPlan, by: str) -> MappingPlan:
    if not by.strip():
        raise OperatorError("confirmation needs a name (--by NAME)")
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
