"""The few response shapes the pipeline relies on, plus id and money helpers.

Records themselves stay `dict[str, Any]`: their shape is free (custom fields travel under
`custom_field`), and the pipeline compares them field by field. Models tolerate extra keys because
accounts differ and Freshsales adds fields over time.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def coerce_id(value: Any) -> int:
    """Ids are 64-bit integers; search answers give them as strings. Booleans are not ids."""
    if isinstance(value, bool):
        raise ValueError(f"not an id: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ValueError(f"not an id: {value!r}")


def coerce_record_id(record: dict[str, Any]) -> dict[str, Any]:
    """The same record with `id` as an int (when it has one)."""
    if "id" in record and record["id"] is not None:
        return {**record, "id": coerce_id(record["id"])}
    return record


Id = Annotated[int, BeforeValidator(coerce_id)]


def parse_money(value: Any) -> Decimal | None:
    """A money value (`"5600.0"`, `"12.34"`, `1200`) as an exact Decimal; None for null or empty.

    A float is refused: it has already lost the cents this helper exists to keep.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool | float):
        raise TypeError(f"money must arrive as a decimal string or int, not {type(value).__name__}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a money amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not a money amount: {value!r}")
    return amount


def money_field(record: dict[str, Any], name: str) -> Decimal | None:
    """A money field of a record, standard (`amount`) or custom (`cf_amount_paid` under `custom_field`)."""
    if name in record:
        return parse_money(record[name])
    return parse_money((record.get("custom_field") or {}).get(name))


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Owner(_Tolerant):
    id: Id
    display_name: str | None = None
    email: str | None = None
    is_active: bool = True


User = Owner


class ViewFilter(_Tolerant):
    id: Id
    name: str
    model_class_name: str | None = None
    is_default: bool = False


class Choice(_Tolerant):
    id: int | str | None = None
    value: str
    position: int | None = None


class FieldDefinition(_Tolerant):
    id: Id | None = None
    name: str
    label: str | None = None
    type: str | None = None
    required: bool = False
    choices: list[Choice] = Field(default_factory=list)

    @property
    def is_custom(self) -> bool:
        return self.name.startswith("cf_")


class Form(_Tolerant):
    id: Id
    name: str | None = None


class ModuleCustomization(_Tolerant):
    id: Id
    name: str | None = None
    singular_name: str | None = None
    plural_name: str | None = None
    entity_name: str | None = None
    is_custom: bool | None = None
    forms: list[Form] = Field(default_factory=list)


class ListMeta(_Tolerant):
    total: int | None = None
    total_pages: int | None = None


_DONE = frozenset({"completed", "complete", "done", "success", "succeeded", "finished", "partially_completed"})
_FAILED = frozenset({"failed", "failure", "error", "errored", "aborted", "cancelled", "canceled"})


class JobStatus(_Tolerant):
    """A bulk job's state. The exact shape is uncertain, so every field is optional and extra keys
    are kept; `done`/`failed` read the status word, falling back to progress reaching 100."""

    id: Id | None = None
    status: str | None = None
    progress: float | None = None
    total: int | None = None
    processed: int | None = None
    succeeded: int | None = None
    failed_count: int | None = Field(default=None, alias="failed")
    results: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def from_body(cls, body: Any) -> JobStatus:
        """From `{"job_status": {...}}`, `{"job": {...}}` or the bare object."""
        if isinstance(body, dict):
            for key in ("job_status", "job"):
                if isinstance(body.get(key), dict):
                    return cls.model_validate(body[key])
            return cls.model_validate(body)
        return cls()

    @property
    def _word(self) -> str:
        return (self.status or "").strip().lower().replace(" ", "_")

    @property
    def failed(self) -> bool:
        return self._word in _FAILED

    @property
    def done(self) -> bool:
        """Finished, successfully or not: polling can stop."""
        if self.failed or self._word in _DONE:
            return True
        return not self._word and self.progress is not None and self.progress >= 100

    @classmethod
    def combine(cls, parts: list[tuple[int, JobStatus]]) -> JobStatus:
        """One status for a bulk request split into jobs; `parts` pairs each job with its first item's index."""
        if len(parts) == 1 and parts[0][0] == 0:
            return parts[0][1]
        results = [
            {**r, "index": offset + int(r["index"])} if isinstance(r.get("index"), int) else r
            for offset, job in parts
            for r in job.results
        ]

        def total_of(name: str) -> int | None:
            values = [getattr(job, name) for _, job in parts]
            return None if any(v is None for v in values) else sum(values)

        if any(job.failed for _, job in parts):
            status = "failed"
        elif all(job.done for _, job in parts):
            status = "completed"
        else:
            status = "in_progress"
        return cls(
            status=status,
            progress=min((job.progress for _, job in parts if job.progress is not None), default=None),
            total=total_of("total"),
            processed=total_of("processed"),
            succeeded=total_of("succeeded"),
            failed=total_of("failed_count"),
            results=results,
            jobs=[job.model_dump(by_alias=True) for _, job in parts],
        )
