"""Pydantic models of the Freshsales request bodies, and validation of a whole batch in one call.

The models are at least as strict as Freshsales (and the sandbox, which takes the stricter reading):
a body they accept is one the API accepts, lookups to existing records aside. Text fields are strings
(a zipcode sent as a number loses its leading zero), ids are integers, money is an exact decimal sent
as a string, dates are `YYYY-MM-DD`, timestamps carry their offset. Unknown standard keys are
refused (a typo would otherwise be dropped silently by the API); custom fields travel in
`custom_field` under `cf_*` names.

Issues name the record's index, the field and the error type, never the offending value (PHI).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WrapValidator,
    field_validator,
)
from pydantic_core import PydanticCustomError

_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date_input(value: Any) -> Any:
    # Lax pydantic would take unix numbers and zero-time timestamps; Freshsales takes YYYY-MM-DD only.
    if (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and _DATE_TEXT.fullmatch(value)
    ):
        return value
    raise PydanticCustomError("date_format", "dates must be YYYY-MM-DD")


def _timestamp_input(value: Any) -> Any:
    if isinstance(value, datetime | str):
        return value
    raise PydanticCustomError("timestamp_format", "timestamps must be ISO-8601 with an offset")


def _custom_value(value: Any, handler: Any) -> Any:
    # One error per bad value instead of one per union member.
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError(
            "custom_field_type", "custom field values are text, numbers, true/false, lists of text or null"
        ) from None


Text = Annotated[StrictStr, StringConstraints(max_length=255)]
LongText = StrictStr
RequiredText = Annotated[StrictStr, StringConstraints(min_length=1, max_length=255)]
Email = Annotated[StrictStr, StringConstraints(pattern=r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$")]
Id = Annotated[StrictInt, Field(ge=1)]
Money = Annotated[
    Decimal,
    Field(allow_inf_nan=False),
    PlainSerializer(lambda value: format(value, "f"), return_type=str),
]
Day = Annotated[date, BeforeValidator(_date_input)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp_input)]
Tags = list[StrictStr]
CustomFieldName = Annotated[StrictStr, StringConstraints(pattern=r"^cf_[a-z0-9_]+$")]
CustomValue = Annotated[
    StrictStr | StrictInt | StrictFloat | StrictBool | list[StrictStr] | None, WrapValidator(_custom_value)
]
CustomFields = dict[CustomFieldName, CustomValue]
TargetableType = Literal["Contact", "SalesAccount", "Deal"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmailEntry(_Strict):
    value: Email
    is_primary: StrictBool | None = None
    label: Text | None = None


def _email_entry(value: Any) -> Any:
    # A bare address is the short form of an entry; one shape keeps error paths plain (`emails.0.value`).
    return {"value": value} if isinstance(value, str) else value


EmailItem = Annotated[EmailEntry, BeforeValidator(_email_entry)]


class AccountLink(_Strict):
    id: Id
    is_primary: StrictBool = False


class Attendee(_Strict):
    attendee_type: Literal["FdMultitenant::User", "Contact"]
    attendee_id: Id


class _Social(_Strict):
    facebook: Text | None = None
    twitter: Text | None = None
    linkedin: Text | None = None


class _Address(_Strict):
    address: LongText | None = None
    city: Text | None = None
    state: Text | None = None
    zipcode: Text | None = None
    country: Text | None = None


class ContactPayload(_Address, _Social):
    first_name: Text | None = None
    last_name: Text | None = None
    job_title: Text | None = None
    email: Email | None = None
    emails: list[EmailItem] | None = None
    work_number: Text | None = None
    mobile_number: Text | None = None
    time_zone: Text | None = None
    owner_id: Id | None = None
    territory_id: Id | None = None
    lifecycle_stage_id: Id | None = None
    contact_status_id: Id | None = None
    lead_source_id: Id | None = None
    external_id: Text | None = None
    tags: Tags | None = None
    sales_accounts: list[AccountLink] | None = None
    sales_account_id: Id | None = None
    medium: Text | None = None
    keyword: Text | None = None
    do_not_disturb: StrictBool | None = None
    custom_field: CustomFields | None = None


class SalesAccountPayload(_Address, _Social):
    name: RequiredText
    phone: Text | None = None
    website: Text | None = None
    industry_type_id: Id | None = None
    business_type_id: Id | None = None
    number_of_employees: StrictInt | None = None
    annual_revenue: Money | None = None
    owner_id: Id | None = None
    territory_id: Id | None = None
    parent_sales_account_id: Id | None = None
    tags: Tags | None = None
    custom_field: CustomFields | None = None


class DealPayload(_Strict):
    name: RequiredText
    amount: Money
    sales_account_id: Id | None = None
    contact_ids: list[Id] | None = None
    contacts_added_list: list[Id] | None = None
    deal_pipeline_id: Id | None = None
    deal_stage_id: Id | None = None
    expected_close: Day | None = None
    closed_date: Day | None = None
    owner_id: Id | None = None
    currency_id: Id | None = None
    deal_reason_id: Id | None = None
    deal_type_id: Id | None = None
    deal_payment_status_id: Id | None = None
    lead_source_id: Id | None = None
    probability: StrictInt | None = None
    territory_id: Id | None = None
    tags: Tags | None = None
    custom_field: CustomFields | None = None


class TaskPayload(_Strict):
    title: RequiredText
    description: LongText | None = None
    due_date: Timestamp
    owner_id: Id | None = None
    targetable_type: TargetableType
    targetable_id: Id
    task_type_id: Id | None = None
    outcome_id: Id | None = None
    status: Annotated[StrictInt, Field(ge=0, le=1)] | None = None


class AppointmentPayload(_Strict):
    title: RequiredText
    description: LongText | None = None
    from_date: Timestamp
    end_date: Timestamp
    time_zone: Text | None = None
    location: Text | None = None
    is_allday: StrictBool | None = None
    targetable_type: TargetableType | None = None
    targetable_id: Id | None = Field(default=None, validate_default=True)
    outcome_id: Id | None = None
    appointment_type_id: Id | None = None
    appointment_attendees: list[Attendee] | None = None
    appointment_attendees_attributes: list[Attendee] | None = None

    @field_validator("end_date")
    @classmethod
    def _not_before_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("from_date")
        if start is not None and end < start:
            raise PydanticCustomError("end_before_start", "end_date must not be before from_date")
        return end

    @field_validator("targetable_id")
    @classmethod
    def _with_type(cls, targetable_id: int | None, info: ValidationInfo) -> int | None:
        # Only judge the pair when targetable_type itself validated (it is then in info.data).
        if "targetable_type" in info.data and (info.data["targetable_type"] is None) != (targetable_id is None):
            raise PydanticCustomError("targetable_pair", "targetable_type and targetable_id go together")
        return targetable_id


class NotePayload(_Strict):
    description: Annotated[StrictStr, StringConstraints(min_length=1)]
    targetable_type: TargetableType
    targetable_id: Id


class CustomModuleRecordPayload(_Strict):
    name: RequiredText
    owner_id: Id | None = None
    custom_field: CustomFields | None = None


PAYLOAD_MODELS: dict[str, type[BaseModel]] = {
    "contact": ContactPayload,
    "sales_account": SalesAccountPayload,
    "deal": DealPayload,
    "appointment": AppointmentPayload,
    "task": TaskPayload,
    "note": NotePayload,
    "custom_module": CustomModuleRecordPayload,
}


class PayloadIssue(BaseModel):
    index: int  # position of the record in the batch
    field: str  # dotted path inside the record ("custom_field.cf_x", "emails.0"); "" for the record itself
    error_type: str  # pydantic's error type, e.g. "missing", "string_type", "extra_forbidden"
    message: str  # pydantic's message: it describes the rule, not the value


def payload_model(target: str) -> type[BaseModel]:
    """The model of a plan target (`contact`, `deal`, `custom_module:<name>`, ...)."""
    kind = target.partition(":")[0]
    if kind not in PAYLOAD_MODELS:
        raise ValueError(f"no payload model for target {target!r}")
    return PAYLOAD_MODELS[kind]


@cache
def _batch_adapter(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def validate_batch(target: str, records: list[dict[str, Any]]) -> list[PayloadIssue]:
    """Every problem of a batch of request bodies, in one validation call; empty when all are good."""
    try:
        _batch_adapter(payload_model(target)).validate_python(records)
    except ValidationError as error:
        issues = []
        for item in error.errors(include_url=False, include_context=False, include_input=False):
            loc = item["loc"]
            if not loc or not isinstance(loc[0], int):
                # The batch itself is not a list: report it against the first position.
                issues.append(PayloadIssue(index=0, field="", error_type=item["type"], message=item["msg"]))
                continue
            issues.append(
                PayloadIssue(
                    index=loc[0],
                    field=".".join(str(part) for part in loc[1:]),
                    error_type=item["type"],
                    message=item["msg"],
                )
            )
        return issues
    return []
