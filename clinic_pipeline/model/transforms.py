"""The plan's transform vocabulary, and each transform compiled to DuckDB SQL expressions.

Each transform takes the raw VARCHAR column and yields the value Freshsales receives, or NULL.
`rejected_sql` tells a value that was present but could not be used (reported as a field issue with
file, row and field) from one that was simply empty. Every transform first removes C0 control
characters (NUL, escape, ...; not tab, line feed or carriage return) from the text it reads, and
`cleaned_sql` lists the rows it removed some from, as a field issue of their own.

The vocabulary is `TRANSFORMS`: each transform's name, the field types its value can be stored as and
its doc line, with the compiler that writes its SQL. The plan check, staging and the proposer all read it.

A compiled line is a stack of named steps (`CompiledField.levels`, LEVELS of them): whether each
column holds control characters; its trimmed text without them; its presence and lower-cased form;
parsed or cleaned values; times in UTC; the line's value. `layered_from` adds them as columns, one
subquery per level, so each is computed once per row however many lines and checks use it. Steps are
named by a hash of their SQL: lines that need the same one (a visit's start and end parse the same date
and time) share it after `merge_levels`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from clinic_pipeline.model.functions import E164, NAME_PART, NAME_PARTS
from clinic_pipeline.model.objects import FieldType
from clinic_pipeline.sql import quote_ident, quote_literal

# MySQL's zero dates: empty in a text column, but in a date column an impossible date, listed as one.
ZERO_DATES = ("0000-00-00", "0000-00-00 00:00:00")
NULL_LIKE = ("", "n/a", "na", "null", "none", "-", *ZERO_DATES)
PLACEHOLDER_EMAILS = ("none@none.com", "noemail@noemail.com", "no@email.com", "declined", "n/a")
EMAIL_PATTERN = r"^[a-z0-9._%+'-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"
# The country a phone number without its country code is read in, unless the plan's clinic says another.
DEFAULT_COUNTRY = "US"
# Years at or before 1900 are the sentinels real exports use for "unknown" (0001-01-01, 1900-01-01).
SENTINEL_MAX_YEAR = 1900
# Longer text cannot be a null-like placeholder: no need to lower-case it (free-text notes) to know.
_NULL_LIKE_MAX_LENGTH = max(map(len, NULL_LIKE))
# What the `cents` transform strips: currency signs, thousands separators and RE2's `\s`.
MONEY_SIGNS = "$£€¥₹"
_MONEY_NOISE = MONEY_SIGNS + ", \t\n\f\r"
# Transforms adding a duration column to a start, and the DuckDB function turning it into an interval.
DURATION_UNITS = {"end_after_minutes": "to_minutes", "end_after_seconds": "to_seconds"}
# C0 controls but tab, line feed and carriage return, which free text keeps (RE2 syntax).
CONTROL_CHARACTERS = r"[\x00-\x08\x0B\x0C\x0E-\x1F]"
CONTROLS_REMOVED = "control characters removed"
# has control characters → trimmed text → presence, lower-cased → parsed/cleaned → in UTC → the line's value
LEVELS = 6
# The owner transforms and the staged column each writes; the loader resolves a row's owner by the first one
# present (an email is exact, a display name only where one active user bears it).
OWNER_COLUMNS = {"owner_by_email": "_owner_email", "owner_by_name": "_owner_name"}

Level = Mapping[str, str]  # step name → SQL over the source columns and the levels below


class UnknownTransformError(ValueError):
    """The plan names a transform this version cannot compile."""


@dataclass(frozen=True)
class CompiledField:
    value_sql: str  # over the steps in `levels`
    rejected_sql: str  # TRUE when the raw value was present but unusable
    reason: str
    levels: tuple[Level, ...] = ()  # LEVELS levels of named steps, the lowest first
    cleaned_sql: str = "FALSE"  # TRUE when control characters were removed from the text the line read

    @property
    def issues(self) -> list[tuple[str, str]]:
        """(condition, reason) of each field issue the line can raise, both over the steps in `levels`."""
        both = [(self.rejected_sql, self.reason), (self.cleaned_sql, CONTROLS_REMOVED)]
        return [(condition, reason) for condition, reason in both if condition != "FALSE"]


def _sql_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(quote_literal(v) for v in values) + ")"


def present_sql(raw: str) -> str:
    """Standalone presence check of a raw column (row filters), the same rule as the compiled lines' steps."""
    text = f"trim(regexp_replace({raw}, {quote_literal(CONTROL_CHARACTERS)}, '', 'g'))"
    return f"(lower({text}) NOT IN {_sql_list(NULL_LIKE)} AND {raw} IS NOT NULL)"


def merge_levels(compiled: Iterable[Sequence[Level]]) -> list[dict[str, str]]:
    """The steps of several fields, level by level; a step shared by fields (same SQL, same name) appears once."""
    merged: list[dict[str, str]] = [{} for _ in range(LEVELS)]
    for levels in compiled:
        for level, steps in zip(merged, levels, strict=False):
            level.update(steps)
    return merged


def layered_from(relation: str, levels: Sequence[Level]) -> str:
    """`relation` (a table or parenthesized subquery) with every step added as a column, a subquery per level."""
    for level in levels:
        if level:
            steps = ", ".join(f"{sql} AS {quote_ident(name)}" for name, sql in level.items())
            relation = f"(SELECT *, {steps} FROM {relation})"
    return relation


class _Steps:
    def __init__(self, look_for_controls: bool) -> None:
        self.levels: tuple[dict[str, str], ...] = tuple({} for _ in range(LEVELS))
        self.look_for_controls = look_for_controls
        self.controls: dict[str, None] = {}  # the steps telling control characters in a column read, in order

    def add(self, level: int, hint: str, sql: str) -> str:
        name = f"_{hint}_{hashlib.sha1(sql.encode()).hexdigest()[:12]}"
        self.levels[level][name] = sql
        return quote_ident(name)

    def text(self, column: str) -> tuple[str, str]:
        """(trimmed text without control characters, present) of a source column: present = not NULL
        and not a null-like placeholder."""
        raw, pattern = quote_ident(column), quote_literal(CONTROL_CHARACTERS)
        if self.look_for_controls:
            # A value rarely holds any: one match per value, the replacement only where it does.
            controls = self.add(0, "controls", f"regexp_matches({raw}, {pattern})")
            self.controls[controls] = None
            text = f"CASE WHEN {controls} THEN regexp_replace({raw}, {pattern}, '', 'g') ELSE {raw} END"
        else:
            text = raw
        trimmed = self.add(1, "trim", f"trim({text})")
        present = self.add(
            2,
            "present",
            f"({trimmed} IS NOT NULL AND (length({trimmed}) > {_NULL_LIKE_MAX_LENGTH} "
            f"OR lower({trimmed}) NOT IN {_sql_list(NULL_LIKE)}))",
        )
        return trimmed, present

    def lower(self, text: str) -> str:
        return self.add(2, "lower", f"lower({text})")

    def result(self, value: str, rejected: str, reason: str) -> CompiledField:
        """The line's value as the last step; `{value}` in `rejected` names it."""
        name = self.add(LEVELS - 1, "value", value)
        cleaned = f"coalesce({' OR '.join(self.controls)}, FALSE)" if self.controls else "FALSE"
        return CompiledField(name, rejected.replace("{value}", name), reason, self.levels, cleaned)


def _utc(parsed: str, time_zone: str) -> str:
    # The source holds local wall-clock time; pin it to the clinic's zone, then convert to UTC.
    return f"timezone('UTC', timezone({quote_literal(time_zone)}, {parsed}))"


def _zone_of(fmt: str, time_zone: str) -> str:
    # ISO 8601's trailing Z marks UTC: such values are not the clinic's wall-clock time.
    return "UTC" if fmt.endswith("Z") and not fmt.endswith("%Z") else time_zone


def _iso_utc(timestamp: str) -> str:
    return f"strftime({timestamp}, '%Y-%m-%dT%H:%M:%SZ')"


@dataclass(frozen=True)
class _Line:
    """What a compiler reads: the line's column, the transform's argument, its further columns, the zone."""

    column: str
    arg: str
    args: Sequence[str]
    time_zone: str
    transform: str
    country: str


Compiler = Callable[[_Steps, _Line], CompiledField]


@dataclass(frozen=True)
class Transform:
    name: str
    yields: frozenset[FieldType]  # the field types its value can be stored as
    doc: str
    compile: Compiler
    argument: str | None = None  # what follows `name:`, when it needs one (a format, an object)


_TEXTUAL: frozenset[FieldType] = frozenset({"text", "dropdown", "email", "phone", "url"})


def _kept(steps: _Steps, line: _Line) -> CompiledField:
    text, present = steps.text(line.column)
    # A present value is never empty after trimming ('' is null-like).
    return steps.result(f"CASE WHEN {present} THEN {text} END", "FALSE", "")


def _owner_email(steps: _Steps, line: _Line) -> CompiledField:
    text, present = steps.text(line.column)
    return steps.result(f"CASE WHEN {present} THEN lower({text}) END", "FALSE", "")


def _lower_email(steps: _Steps, line: _Line) -> CompiledField:
    text, present = steps.text(line.column)
    email = steps.lower(text)
    well_formed = f"regexp_full_match({email}, {quote_literal(EMAIL_PATTERN)})"
    ok = steps.add(3, "email_ok", f"({well_formed} AND {email} NOT IN {_sql_list(PLACEHOLDER_EMAILS)})")
    return steps.result(
        f"CASE WHEN {ok} THEN {email} END",
        f"({present} AND NOT coalesce({ok}, FALSE))",
        "not a usable email address (malformed or placeholder)",
    )


def _phone(steps: _Steps, line: _Line) -> CompiledField:
    text, present = steps.text(line.column)
    lowered = steps.lower(text)
    # The extension pattern needs an `x` (x, ext, ext.): most numbers have none and skip the regex.
    extension = "'\\s*(x|ext\\.?)\\s*\\d+$'"
    main = f"CASE WHEN contains({lowered}, 'x') THEN regexp_replace({lowered}, {extension}, '') ELSE {lowered} END"
    digits = steps.add(3, "digits", f"regexp_replace({main}, '[^0-9]', '', 'g')")
    has_extension = f"(contains({lowered}, 'x') AND regexp_matches({lowered}, {extension}))"
    # Read in the clinic's country (phonenumbers, once per distinct number): 020 7946 0958 in GB, 217-555-0134 in US.
    dialled = steps.add(3, "e164", f"{E164}({main}, {quote_literal(line.country)})")
    value = (
        f"CASE WHEN NOT {present} OR ({digits} <> '' AND ltrim({digits}, '0') = '') THEN NULL "
        f"ELSE coalesce({dialled}, {text}) END"
    )
    # Kept, but not as Freshsales can dial it: listed so nobody takes it for a clean number.
    return steps.result(
        value,
        f"({{value}} IS NOT NULL AND (NOT starts_with({{value}}, '+') OR {has_extension}))",
        "kept as written (not E.164), or its extension was dropped",
    )


def _parsed(steps: _Steps, line: _Line, *, date_only: bool) -> CompiledField:
    text, present = steps.text(line.column)
    parsed = steps.add(3, "parsed", f"try_strptime({text}, {quote_literal(line.arg)})")
    usable = f"({parsed} IS NOT NULL AND year({parsed}) > {SENTINEL_MAX_YEAR})"
    if date_only:
        value = f"CASE WHEN {usable} THEN strftime({parsed}::DATE, '%Y-%m-%d') END"
    else:
        value = f"CASE WHEN {usable} THEN {_iso_utc(_utc(parsed, _zone_of(line.arg, line.time_zone)))} END"
    return steps.result(
        value,
        f"(({present} OR {text} IN {_sql_list(ZERO_DATES)}) AND {{value}} IS NULL)",
        f"does not match the plan's date format {line.arg}, "
        f"or is an impossible or placeholder date (0000-00-00, year {SENTINEL_MAX_YEAR} or before)",
    )


def _cents(steps: _Steps, line: _Line) -> CompiledField:
    text, present = steps.text(line.column)
    # Accounting writes a negative as (45.00) or 45.00-: read both as -45.00.
    trailing_minus = f"ends_with({text}, '-')"
    negative = f"((starts_with({text}, '(') AND ends_with({text}, ')')) OR {trailing_minus})"
    unsigned = f"CASE WHEN {trailing_minus} THEN left({text}, -1) ELSE {text} END"
    amount = f"try_cast(translate({unsigned}, {quote_literal(_MONEY_NOISE + '()')}, '') AS DECIMAL(18, 2))"
    value = f"CASE WHEN {present} THEN (CASE WHEN {negative} THEN -{amount} ELSE {amount} END) END"
    return steps.result(value, f"({present} AND {{value}} IS NULL)", "not a money amount")


def _cast(sql_type: str, reason: str) -> Compiler:
    def compile_cast(steps: _Steps, line: _Line) -> CompiledField:
        text, present = steps.text(line.column)
        value = f"CASE WHEN {present} THEN try_cast({text} AS {sql_type}) END"
        return steps.result(value, f"({present} AND {{value}} IS NULL)", reason)

    return compile_cast


def _boolean(steps: _Steps, line: _Line) -> CompiledField:
    text, present = steps.text(line.column)
    flag = steps.lower(text)
    value = (
        f"CASE WHEN {flag} IN ('y', 'yes', 'true', 't', '1') THEN TRUE "
        f"WHEN {flag} IN ('n', 'no', 'false', 'f', '0') THEN FALSE END"
    )
    return steps.result(value, f"({present} AND {{value}} IS NULL)", "not a yes/no value")


def _name_part(steps: _Steps, line: _Line) -> CompiledField:
    if line.arg not in NAME_PARTS:
        raise UnknownTransformError(f"name_part takes one of {', '.join(NAME_PARTS)}, not {line.arg!r}")
    text, present = steps.text(line.column)
    # Parsed once per distinct name (model.functions); a one-word name has a first name and no last.
    parsed = steps.add(3, "name", f"{NAME_PART}({text}, {quote_literal(line.arg)})")
    return steps.result(f"CASE WHEN {present} THEN {parsed} END", "FALSE", "")


def _local_datetime(steps: _Steps, line: _Line) -> CompiledField:
    duration = DURATION_UNITS.get(line.transform.partition(":")[0])
    parts = list(line.args) if duration else [line.column, *line.args]
    joined = " || ' ' || ".join(steps.text(p)[0] for p in parts)
    parsed = steps.add(3, "parsed", f"try_strptime({joined}, {quote_literal(line.arg)})")
    usable = f"({parsed} IS NOT NULL AND year({parsed}) > {SENTINEL_MAX_YEAR})"
    # The time zone conversion is the costly part: one per row for a visit's start and end together.
    moment = steps.add(4, "utc", _utc(parsed, _zone_of(line.arg, line.time_zone)))
    reason = f"date and time do not match the plan's format {line.arg}"
    if duration:
        # Added after the conversion to UTC: a visit across a DST change still lasts its minutes. No duration
        # at all (a logged email) ends as it starts; one that is not a whole number is a field issue.
        text, present = steps.text(line.column)
        length = steps.add(3, "duration", f"CASE WHEN {present} THEN try_cast({text} AS INTEGER) ELSE 0 END")
        moment = f"({moment} + {duration}({length}))"
        usable = f"({usable} AND {length} IS NOT NULL)"
        reason += ", or the duration is not a whole number"
    return steps.result(f"CASE WHEN {usable} THEN {_iso_utc(moment)} END", "({value} IS NULL)", reason)


def _transforms(*transforms: Transform) -> dict[str, Transform]:
    return {t.name: t for t in transforms}


_LOOKUP: frozenset[FieldType] = frozenset({"lookup"})
_DATETIME: frozenset[FieldType] = frozenset({"datetime"})
TRANSFORMS = _transforms(
    Transform(
        "trim",
        _TEXTUAL,
        "whitespace trimmed; empty and null-like sentinels (N/A, NULL, 0000-00-00) → null; control characters "
        "removed, as by every transform (a field issue)",
        _kept,
    ),
    Transform("picklist", _TEXTUAL, "the trimmed value, kept as the pick-list choice", _kept),
    Transform("from_reference", _TEXTUAL, "the value of `via` in the `references` table row this column names", _kept),
    Transform(
        "lower_email",
        frozenset({"email", "text"}),
        "trimmed, lower-cased, must look like an address; placeholders (none@none.com) are rejected",
        _lower_email,
    ),
    Transform(
        "phone",
        frozenset({"phone", "text"}),
        "E.164, a number without its country code read in the plan's clinic country (phonenumbers: 020 7946 0958 "
        "in GB → +442079460958), where possible, else the trimmed original (a field issue, as is a dropped extension)",
        _phone,
    ),
    Transform(
        "parse_date",
        frozenset({"date"}),
        "strptime format, e.g. parse_date:%m/%d/%Y → YYYY-MM-DD; impossible and sentinel dates (0000-00-00, "
        "1900-01-01) → null, listed as field issues",
        lambda steps, line: _parsed(steps, line, date_only=True),
        argument="format",
    ),
    Transform(
        "parse_datetime",
        _DATETIME,
        "wall-clock time in the clinic's zone → ISO-8601 UTC (`...Z`); a format ending in a literal Z is UTC; "
        "impossible and sentinel dates as parse_date",
        lambda steps, line: _parsed(steps, line, date_only=False),
        argument="format",
    ),
    Transform(
        "local_datetime",
        _DATETIME,
        "the column and the line's `args` joined by spaces (a date and a time of day), in the clinic's zone "
        "→ ISO-8601 UTC",
        _local_datetime,
        argument="format",
    ),
    Transform(
        "end_after_minutes",
        _DATETIME,
        "the column is a duration in minutes added to local_datetime of the `args`",
        _local_datetime,
        argument="format",
    ),
    Transform(
        "end_after_seconds",
        _DATETIME,
        "the same with a duration in seconds (OpenEMR's calendar)",
        _local_datetime,
        argument="format",
    ),
    Transform(
        "cents",
        frozenset({"number"}),
        "money text ($1,234.50; accounting negatives (45.00) and 45.00-) → exact DECIMAL(18,2), never a float",
        _cents,
    ),
    Transform(
        "number",
        frozenset({"number"}),
        "a decimal number (DOUBLE); anything else is rejected",
        _cast("DOUBLE", "not a number"),
    ),
    Transform(
        "integer",
        frozenset({"number"}),
        "a whole number (BIGINT), e.g. a file size in bytes",
        _cast("BIGINT", "not a whole number"),
    ),
    Transform(
        "boolean",
        frozenset({"checkbox"}),
        "yes/no flags (y, yes, true, t, 1 / n, no, false, f, 0) → BOOLEAN",
        _boolean,
    ),
    Transform(
        "lookup",
        _LOOKUP,
        "the parent's stable source key, e.g. lookup:sales_account (resolved to a Freshsales id at load)",
        _kept,
        argument="object",
    ),
    Transform(
        "owner_by_email",
        _LOOKUP,
        "the owner's email, taken through `references`/`via` (resolved to a user at load)",
        _owner_email,
    ),
    Transform(
        "owner_by_name",
        _LOOKUP,
        "the owner's display name, taken through `references`/`via` where the source has no email (resolved at "
        "load to the one active user of that first and last name)",
        _kept,
    ),
    Transform(
        "name_part",
        frozenset({"text"}),
        "one part of a full name (title, first, middle, last, suffix), e.g. name_part:last: `Luis Ferreira, MD` → "
        "Ferreira, `FERREIRA, LUIS` → FERREIRA (nameparser, once per distinct name)",
        _name_part,
        argument="part",
    ),
    Transform(
        "choice",
        _LOOKUP,
        "a reference row's name, e.g. choice:sales_activity_outcomes (resolved through its selector at load)",
        _kept,
        argument="selector",
    ),
)


def vocabulary() -> str:
    """The transforms as documentation lines (`clinic-pipeline transforms`, the proposer's help)."""
    width = max(len(t.name) + len(t.argument or "") + 3 for t in TRANSFORMS.values())
    lines = []
    for t in TRANSFORMS.values():
        spelled = f"{t.name}:<{t.argument}>" if t.argument else t.name
        lines.append(f"{spelled.ljust(width)} {t.doc}")
    return "\n".join(lines)


def transform_of(transform: str | None) -> tuple[Transform, str]:
    """(the named transform, its argument); `None` is `trim`."""
    name, _, arg = (transform or "trim").partition(":")
    found = TRANSFORMS.get(name)
    if found is None:
        raise UnknownTransformError(f"unknown transform {transform!r}")
    if found.argument and not arg:
        raise UnknownTransformError(f"transform {name!r} needs a {found.argument}, e.g. {name}:<{found.argument}>")
    return found, arg


def compile_transform(
    column: str,
    transform: str | None,
    time_zone: str,
    args: Sequence[str] = (),
    *,
    control_characters: bool = True,
    country: str = DEFAULT_COUNTRY,
) -> CompiledField:
    """The line's value and field-issue checks over `column` (and `args`). All name steps of
    `compiled.levels`: select them from `layered_from(table, compiled.levels)`.

    `control_characters=False` when the table is known to hold none (`SourceTable.control_characters`):
    the text is then only trimmed, as looking for them costs a regex match per value."""
    found, arg = transform_of(transform)
    return found.compile(_Steps(control_characters), _Line(column, arg, args, time_zone, transform or "trim", country))
