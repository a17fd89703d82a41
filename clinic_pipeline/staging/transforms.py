"""Compile the plan's transform strings to DuckDB SQL expressions.

Each transform takes the raw VARCHAR column and yields the value Freshsales receives, or NULL.
`is_rejected` tells a value that was present but could not be used (reported as a field issue with
file, row and field) from one that was simply empty.

Vocabulary (the proposer writes exactly these):
  trim                  whitespace trimmed, empty → NULL (also the default for a null transform)
  lower_email           trimmed, lower-cased, must look like an address; placeholders are rejected
  phone                 E.164 (+1 for 10-digit NANP numbers) where possible, else the trimmed original
  parse_date:<fmt>      strptime format, e.g. parse_date:%m/%d/%Y → YYYY-MM-DD; sentinel dates → NULL
  parse_datetime:<fmt>  wall-clock time in the clinic's zone → ISO-8601 UTC (`...Z`)
  cents                 money text ($1,234.50) → exact DECIMAL(18,2); never through a float
  picklist              trimmed value, kept as the pick-list choice
  number                a decimal number (DOUBLE); anything else is rejected
  integer               a whole number (BIGINT), e.g. a file size in bytes
  boolean               yes/no flags (y, yes, true, t, 1 / n, no, false, f, 0) → BOOLEAN
  local_datetime:<fmt>  the column and the line's `args` joined by spaces (a date and a time of day),
                        a wall-clock time in the clinic's zone → ISO-8601 UTC
  end_after_minutes:<fmt>  the column is a duration in minutes added to local_datetime of the `args`
  lookup:<object>       the parent's stable source key (resolved to a Freshsales id at load time)
  owner_by_email        the owner's email, taken through `references`/`via` (resolved to a user at load time)
  from_reference        the value of `via` in the `references` table row this column names
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

NULL_LIKE = ("", "n/a", "na", "null", "none", "-", "0000-00-00", "0000-00-00 00:00:00")
PLACEHOLDER_EMAILS = ("none@none.com", "noemail@noemail.com", "no@email.com", "declined", "n/a")
EMAIL_PATTERN = r"^[a-z0-9._%+'-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"
# Years at or before 1900 are the sentinels real exports use for "unknown" (0001-01-01, 1900-01-01).
SENTINEL_MAX_YEAR = 1900


class UnknownTransformError(ValueError):
    """The plan names a transform this version cannot compile."""


@dataclass(frozen=True)
class CompiledField:
    value_sql: str
    rejected_sql: str  # TRUE when the raw value was present but unusable
    reason: str


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(quote_literal(v) for v in values) + ")"


def present_sql(raw: str) -> str:
    return f"(lower(trim({raw})) NOT IN {_sql_list(NULL_LIKE)} AND {raw} IS NOT NULL)"


def _utc(parsed: str, time_zone: str) -> str:
    # The source holds local wall-clock time; pin it to the clinic's zone, then convert to UTC.
    return f"timezone('UTC', timezone({quote_literal(time_zone)}, {parsed}))"


def _iso_utc(timestamp: str) -> str:
    return f"strftime({timestamp}, '%Y-%m-%dT%H:%M:%SZ')"


def compile_transform(column: str, transform: str | None, time_zone: str, args: Sequence[str] = ()) -> CompiledField:
    raw = quote_ident(column)
    trimmed = f"nullif(trim({raw}), '')"
    present = present_sql(raw)
    name, _, arg = (transform or "trim").partition(":")

    if name in ("trim", "picklist"):
        return CompiledField(f"CASE WHEN {present} THEN {trimmed} END", "FALSE", "")
    if name == "lower_email":
        email = f"lower(trim({raw}))"
        well_formed = f"regexp_full_match({email}, {quote_literal(EMAIL_PATTERN)})"
        ok = f"({well_formed} AND {email} NOT IN {_sql_list(PLACEHOLDER_EMAILS)})"
        return CompiledField(
            f"CASE WHEN {ok} THEN {email} END",
            f"({present} AND NOT coalesce({ok}, FALSE))",
            "not a usable email address (malformed or placeholder)",
        )
    if name == "phone":
        main = f"regexp_replace(lower(trim({raw})), '\\s*(x|ext\\.?)\\s*\\d+$', '')"
        digits = f"regexp_replace({main}, '[^0-9]', '', 'g')"
        value = (
            f"CASE WHEN NOT {present} OR regexp_full_match({digits}, '0+') THEN NULL "
            f"WHEN length({digits}) = 10 THEN '+1' || {digits} "
            f"WHEN length({digits}) = 11 AND starts_with({digits}, '1') THEN '+' || {digits} "
            f"WHEN starts_with(trim({raw}), '+') AND length({digits}) BETWEEN 8 AND 15 THEN '+' || {digits} "
            f"ELSE {trimmed} END"
        )
        return CompiledField(value, "FALSE", "")
    if name in ("parse_date", "parse_datetime"):
        if not arg:
            raise UnknownTransformError(f"transform {transform!r} needs a format, e.g. {name}:%Y-%m-%d")
        parsed = f"try_strptime(trim({raw}), {quote_literal(arg)})"
        usable = f"({parsed} IS NOT NULL AND year({parsed}) > {SENTINEL_MAX_YEAR})"
        if name == "parse_date":
            value = f"CASE WHEN {usable} THEN strftime({parsed}::DATE, '%Y-%m-%d') END"
        else:
            value = f"CASE WHEN {usable} THEN {_iso_utc(_utc(parsed, time_zone))} END"
        return CompiledField(value, f"({present} AND {parsed} IS NULL)", f"does not match the plan's date format {arg}")
    if name == "cents":
        cleaned = f"regexp_replace(trim({raw}), '[$,\\s]', '', 'g')"
        value = f"CASE WHEN {present} THEN try_cast({cleaned} AS DECIMAL(18, 2)) END"
        return CompiledField(value, f"({present} AND {value} IS NULL)", "not a money amount")
    if name in ("local_datetime", "end_after_minutes"):
        if not arg:
            raise UnknownTransformError(f"transform {transform!r} needs a format, e.g. {name}:%Y-%m-%d %H:%M")
        parts = [quote_ident(a) for a in args] if name == "end_after_minutes" else [raw, *map(quote_ident, args)]
        joined = " || ' ' || ".join(f"trim({p})" for p in parts)
        parsed = f"try_strptime({joined}, {quote_literal(arg)})"
        usable = f"({parsed} IS NOT NULL AND year({parsed}) > {SENTINEL_MAX_YEAR})"
        moment = _utc(parsed, time_zone)
        if name == "end_after_minutes":
            # Added after the conversion to UTC: a visit across a DST change still lasts its minutes.
            minutes = f"try_cast(trim({raw}) AS INTEGER)"
            moment = f"({moment} + to_minutes({minutes}))"
            usable = f"({usable} AND {minutes} IS NOT NULL)"
        value = f"CASE WHEN {usable} THEN {_iso_utc(moment)} END"
        return CompiledField(value, f"({value} IS NULL)", f"date and time do not match the plan's format {arg}")
    if name in ("number", "integer"):
        sql_type = "DOUBLE" if name == "number" else "BIGINT"
        value = f"CASE WHEN {present} THEN try_cast(trim({raw}) AS {sql_type}) END"
        return CompiledField(value, f"({present} AND {value} IS NULL)", f"not a {'whole ' * (name == 'integer')}number")
    if name == "boolean":
        flag = f"lower(trim({raw}))"
        value = (
            f"CASE WHEN {flag} IN ('y', 'yes', 'true', 't', '1') THEN TRUE "
            f"WHEN {flag} IN ('n', 'no', 'false', 'f', '0') THEN FALSE END"
        )
        return CompiledField(value, f"({present} AND {value} IS NULL)", "not a yes/no value")
    if name in ("owner_by_email", "from_reference"):
        lowered = f"lower({trimmed})" if name == "owner_by_email" else trimmed
        return CompiledField(f"CASE WHEN {present} THEN {lowered} END", "FALSE", "")
    if name == "lookup":
        if not arg:
            raise UnknownTransformError("transform 'lookup' needs a target object, e.g. lookup:sales_account")
        return CompiledField(f"CASE WHEN {present} THEN {trimmed} END", "FALSE", "")
    raise UnknownTransformError(f"unknown transform {transform!r}")
