"""The export's manifest: what the clinic's export says about itself (clinic_sources.md, "Real export formats").

A missing manifest is normal; the defaults then say what was assumed (`time_zone_assumed`) so the
plan can ask a person to confirm the clinic's zone before any local time is converted.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clinic_pipeline.source.errors import SourceError

MANIFEST_NAME = "manifest.json"

# Human spellings of date formats seen in manifests → strptime, the form the plan's transforms use.
_HUMAN_DATE_FORMATS = {
    "YYYY-MM-DD": "%Y-%m-%d",
    "MM/DD/YYYY": "%m/%d/%Y",
    "DD/MM/YYYY": "%d/%m/%Y",
    "M/D/YYYY": "%m/%d/%Y",
    "D/M/YYYY": "%d/%m/%Y",
    "MM-DD-YYYY": "%m-%d-%Y",
    "DD.MM.YYYY": "%d.%m.%Y",
    "YYYY/MM/DD": "%Y/%m/%d",
    "MM/DD/YY": "%m/%d/%y",
}


class ExportManifest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    source_system: str = "unknown"
    source_version: str | None = None
    exported_at: datetime | None = None
    time_zone: str = "UTC"
    time_zone_assumed: bool = False
    encoding: str | None = Field(default=None, description="None: detected per file")
    date_format: str | None = Field(default=None, description="strptime format, e.g. %Y-%m-%d")
    row_counts: dict[str, int] = Field(default_factory=dict, description="file name or table name → rows")

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"time_zone {value!r} is not an IANA time zone (e.g. America/Chicago)") from exc
        return value

    @field_validator("date_format")
    @classmethod
    def _strptime_format(cls, value: str | None) -> str | None:
        if value is None or "%" in value:
            return value
        return _HUMAN_DATE_FORMATS.get(value.strip().upper(), value)

    def expected_rows(self, table: str, file_name: str | None) -> int | None:
        """The manifest's row count for a table, whether it was keyed by file name, stem or table name."""
        for key in (file_name, Path(file_name).stem if file_name else None, table):
            if key is not None and key in self.row_counts:
                return self.row_counts[key]
        return None


def assumed_manifest() -> ExportManifest:
    return ExportManifest(time_zone_assumed=True)


def parse_manifest(raw: bytes, origin: str) -> ExportManifest:
    """`origin` names the manifest in errors; its content never appears there."""
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"{origin}: manifest is not valid UTF-8 JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise SourceError(f"{origin}: manifest must be a JSON object")
    try:
        manifest = ExportManifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise SourceError(f"{origin}: invalid manifest: {problems}") from None
    if "time_zone" not in data:
        manifest = manifest.model_copy(update={"time_zone_assumed": True})
    return manifest


def read_manifest(folder: Path) -> ExportManifest:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return assumed_manifest()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read manifest ({exc.strerror})") from None
    return parse_manifest(raw, str(path))
