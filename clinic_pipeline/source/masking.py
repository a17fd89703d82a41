"""Masked examples: up to three values per column as the inventory may show them.

Shapes stay visible (which is what a person checking the mapping needs), the person does not: first
letters and lengths of names, the e-mail's top-level domain, a phone's first and last two digits,
a date's year, a ZIP's first three digits. Codes (ICD-10, CPT, ...), pick-list values, flags,
amounts and times are not about one person and are shown as they are; free text by its length only.
"""

from __future__ import annotations

import re
from datetime import datetime

from clinic_pipeline.source.inventory_model import ValueType

_CODE_NAME = re.compile(r"icd|cpt|hcpcs|loinc|snomed|ndc|diag|dx|procedure|proc_?code|code", re.IGNORECASE)
_CODE_VALUE = re.compile(r"[A-Za-z0-9]{1,10}([.:\-][A-Za-z0-9]{1,8}){0,3}")
_FREE_TEXT_NAME = re.compile(
    r"note|comment|memo|descr|remark|report|text|message|reason|instruction|history|narrative|body", re.IGNORECASE
)
_FREE_TEXT_LENGTH = 40
_FREE_TEXT_WORDS = 4
_DATE_DIRECTIVE = re.compile(r"%([a-zA-Z%])")
_DIRECTIVE_WIDTH = {"f": 6, "z": 5, "b": 3, "a": 3, "B": 3, "A": 3, "p": 2, "%": 1}


def _mask_word(word: str) -> str:
    """`Renée` → `R****`, `O'Brien` → `O*'****`, `123` → `***`: a first letter and the length, never a digit."""
    head = word[0] if word[0].isalpha() else ("*" if word[0].isalnum() else word[0])
    return head + "".join("*" if ch.isalnum() else ch for ch in word[1:])


def _mask_words(value: str) -> str:
    return " ".join(_mask_word(w) for w in value.split())


def _mask_email(value: str) -> str:
    local, _, domain = value.rpartition("@")
    labels = domain.split(".")
    masked = [_mask_word(label) if label else label for label in labels[:-1]] + labels[-1:]
    return f"{_mask_word(local) if local else ''}@{'.'.join(masked)}"


def _mask_phone(value: str) -> str:
    """`(555) 123-4567` → `(5**) ***-**67`: enough to see the format, not enough to dial."""
    digits = [i for i, ch in enumerate(value) if ch.isdigit()]
    keep = {digits[0], *digits[-2:]} if len(digits) >= 7 else set()
    return "".join(ch if not ch.isdigit() or i in keep else "*" for i, ch in enumerate(value))


def _mask_date(value: str, fmt: str | None) -> str:
    """`1984-03-02` → `1984-**-**`: the value's layout with every part but the year starred."""
    try:
        parsed = datetime.strptime(value, fmt) if fmt else None
    except ValueError:
        parsed = None
    if parsed is None:
        return re.sub(r"\d", "*", value)

    def part(match: re.Match[str]) -> str:
        code = match.group(1)
        if code == "Y":
            return f"{parsed.year:04d}"
        if code == "y":
            return f"{parsed.year % 100:02d}"
        return "*" * _DIRECTIVE_WIDTH.get(code, 2)

    return _DATE_DIRECTIVE.sub(part, fmt or "")


def _mask_zip(value: str) -> str:
    digits = 0
    out = []
    for ch in value:
        digits += ch.isdigit()
        out.append(ch if not ch.isdigit() or digits <= 3 else "*")
    return "".join(out)


def _mask_id(value: str) -> str:
    """`P-1001` → `P-****`, `MRN0042` → `MRN****`: a short letter prefix is the vendor's, the number the person's."""
    prefix = re.match(r"[A-Za-z]{1,4}(?=[^A-Za-z]|$)", value)
    keep = prefix.end() if prefix else 0
    return value[:keep] + "".join("*" if ch.isalnum() else ch for ch in value[keep:])


def _is_free_text(column: str, value: str) -> bool:
    return (
        bool(_FREE_TEXT_NAME.search(column))
        or len(value) > _FREE_TEXT_LENGTH
        or (len(value.split()) > _FREE_TEXT_WORDS)
    )


def mask_example(value: str, *, column: str, value_type: ValueType, value_format: str | None, personal: bool) -> str:
    """One example value as the inventory may show it (see the section comment)."""
    if value_type == "email" or (personal and "@" in value):
        return _mask_email(value)
    if value_type == "phone":
        return _mask_phone(value)
    if value_type in ("date", "datetime"):
        return _mask_date(value, value_format)
    if value_type == "zip":
        return _mask_zip(value)
    if value_type == "id" or (personal and value_type in ("integer", "decimal", "money")):
        return _mask_id(value)
    if value_type in ("integer", "decimal", "money", "boolean", "time", "code"):
        return value  # clinical codes (ICD-10, CPT) describe care, not a person
    if not personal and _CODE_NAME.search(column) and _CODE_VALUE.fullmatch(value):
        return value
    if _is_free_text(column, value):
        return f"[free text, {len(value)} characters]"
    return _mask_words(value)


def mask_examples(
    values: list[str],
    *,
    column: str,
    value_type: ValueType,
    value_format: str | None,
    categorical: bool,
    personal: bool,
) -> list[str]:
    """Masked examples, without repeats (two names may mask alike). Pick-list values are shown as they are."""
    masked = (
        value if categorical else mask_example(value, column=column, value_type=value_type, value_format=value_format,
                                               personal=personal)
        for value in values
    )  # fmt: skip
    return list(dict.fromkeys(masked))
