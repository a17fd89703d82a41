"""Type-aware comparison of a raw source value with what Freshsales holds, independent of the plan.

The sample diff must catch loss the plan itself introduced (cents dropped, the wrong time zone, two
pick-list values mapped to one), so it never re-runs the plan's transforms: it reads the source text
with its own parsers, using the inventory's detected formats and the export manifest's time zone.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

from clinic_pipeline.model.transforms import (
    CONTROL_CHARACTERS,
    MONEY_SIGNS,
    NULL_LIKE,
    PLACEHOLDER_EMAILS,
    SENTINEL_MAX_YEAR,
)

_CONTROL = re.compile(CONTROL_CHARACTERS)
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%m/%d/%y", "%d.%m.%Y", "%Y/%m/%d")
DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M", "%m/%d/%Y %I:%M %p")
TRUE_WORDS = frozenset({"y", "yes", "true", "t", "1", "x"})
FALSE_WORDS = frozenset({"n", "no", "false", "f", "0"})
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def blank(raw: Any) -> bool:
    return raw is None or str(raw).strip().lower() in NULL_LIKE


def money(value: Any) -> Decimal | None:
    text = re.sub(rf"[{re.escape(MONEY_SIGNS)},\s]", "", str(value))
    # Accounting negatives: (45.00) and 45.00- are -45.00.
    negative = (text.startswith("(") and text.endswith(")")) or text.endswith("-")
    try:
        amount = Decimal(text.strip("()").removesuffix("-"))
    except InvalidOperation:
        return None
    return -amount if negative else amount


def _date(raw: str, formats: tuple[str, ...]) -> date | None:
    for fmt in formats:
        try:
            parsed = datetime.strptime(raw.strip(), fmt).date()
        except ValueError:
            continue
        return parsed if parsed.year > SENTINEL_MAX_YEAR else None
    return None


def local_instant(raw: str, formats: tuple[str, ...], zone: str) -> datetime | None:
    for fmt in formats:
        try:
            parsed = datetime.strptime(raw.strip(), fmt)
        except ValueError:
            continue
        if parsed.year <= SENTINEL_MAX_YEAR:
            return None
        # ISO 8601's trailing Z is UTC, whatever the clinic's zone.
        if fmt.endswith("Z") and not fmt.endswith("%Z"):
            return parsed.replace(tzinfo=UTC)
        # A wall-clock time a DST change repeats or skips has two readings; the later one is what staging's
        # conversion (ICU) takes: the repeated hour in standard time, a skipped time moved forward by the gap.
        local = parsed.replace(tzinfo=ZoneInfo(zone))
        return max(local.astimezone(UTC), local.replace(fold=1).astimezone(UTC))
    return None


def instant(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def _digits(value: Any) -> str:
    return re.sub(r"\D", "", re.sub(r"(?i)\s*(x|ext\.?)\s*\d+$", "", str(value)))


def _same_number(raw: str, actual: Any) -> bool:
    """The source's digits end with the national number Freshsales holds (its country code and the source's
    trunk prefix, like a UK 0, aside): read by phonenumbers from Freshsales' E.164 alone, not from the source."""
    held = str(actual).strip()
    if not held.startswith("+"):
        return _digits(raw) == _digits(held)
    try:
        national = str(phonenumbers.parse(held).national_number)
    except phonenumbers.NumberParseException:
        return False
    return _digits(raw).endswith(national)


def _words(value: Any) -> list[str]:
    return re.findall(r"[^\W_]+(?:['-][^\W_]+)*", str(value).lower())


def expected_empty(kind: str, raw: Any, fmt: str | None, zone: str) -> bool:
    """A source value the target legitimately leaves empty (placeholders, sentinels, unparseable)."""
    if blank(raw):
        return True
    text = str(raw).strip()
    if kind == "email":
        return text.lower() in PLACEHOLDER_EMAILS or not EMAIL.match(text.lower())
    if kind == "phone":
        return set(_digits(text)) <= {"0"}
    if kind == "date":
        return _date(text, (fmt,) if fmt else DATE_FORMATS) is None
    if kind == "datetime":
        return local_instant(text, (fmt,) if fmt else DATETIME_FORMATS, zone) is None
    if kind == "money":
        return money(text) is None
    return False


def matches(kind: str, raw: Any, actual: Any, fmt: str | None, zone: str) -> bool:
    """Does Freshsales' `actual` hold the source's `raw` value, for a field of this kind?"""
    if expected_empty(kind, raw, fmt, zone):
        return actual in (None, "", [])
    if actual in (None, "", []):
        return False
    # Staging removes control characters (listed as field issues): Freshsales holds the value without them.
    text = _CONTROL.sub("", str(raw)).strip()
    if kind == "money":
        return money(text) == money(actual)
    if kind == "number":
        try:
            return float(text) == float(actual)
        except ValueError:
            return False
    if kind == "date":
        want = _date(text, (fmt,) if fmt else DATE_FORMATS)
        return want is not None and str(actual)[:10] == want.isoformat()
    if kind == "datetime":
        want = local_instant(text, (fmt,) if fmt else DATETIME_FORMATS, zone)
        got = instant(actual)
        return want is not None and got is not None and abs((want - got).total_seconds()) < 1
    if kind == "email":
        return text.lower() == str(actual).strip().lower()
    if kind == "phone":
        return _same_number(text, actual)
    if kind == "name_part":
        # Read independently of the parser: each word Freshsales holds is a word of the source's full name.
        return set(_words(actual)) <= set(_words(text))
    if kind == "boolean":
        flag = text.lower()
        return (flag in TRUE_WORDS and str(actual).lower() == "true") or (
            flag in FALSE_WORDS and str(actual).lower() == "false"
        )
    return text == str(actual).strip()


def kind_of(line_type: str, transform: str | None) -> str:
    """The comparison a plan line calls for, from its declared type (not from its transform's code)."""
    name = (transform or "").partition(":")[0]
    if name == "cents":
        return "money"
    if name == "boolean" or line_type == "checkbox":
        return "boolean"
    if name in ("local_datetime", "end_after_minutes", "end_after_seconds"):
        return "composite"
    if name == "name_part":
        return "name_part"
    return {"date": "date", "datetime": "datetime", "email": "email", "phone": "phone", "number": "number"}.get(
        line_type, "text"
    )
