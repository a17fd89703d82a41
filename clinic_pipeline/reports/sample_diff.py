"""The sample diff: every sampled record read back from Freshsales and compared with its source row.

For each plan line of a sampled record, the raw source value (read from the export by table and row)
is compared with the Freshsales field by `source_compare`'s own type-aware parsers, not by re-running
the plan's transforms: loss the plan introduced shows up as well as loss on the Freshsales side.
Links are compared as source keys (the Freshsales parent id mapped back through the id map), owners
as the provider's email against the owner user's email. The HTML page and the CSV of differences put
the source column and value beside the Freshsales field and value; both hold PHI and are written
0600. The returned summary holds counts only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow.parquet as pq
from pydantic import BaseModel

from clinic_pipeline.freshsales.client import FreshsalesClient
from clinic_pipeline.freshsales.errors import NotFoundError
from clinic_pipeline.load.state import StateStore
from clinic_pipeline.mapping.plan import FieldMapping, MappingPlan, ObjectMapping, parent_key_value
from clinic_pipeline.model.objects import BY_NAME, BY_TARGET, MARKER_FIELDS, STAGED_OBJECTS, FreshsalesObject
from clinic_pipeline.model.people import by_unique_name, name_key
from clinic_pipeline.model.transforms import OWNER_COLUMNS
from clinic_pipeline.private_files import write_private_text
from clinic_pipeline.reports import source_compare as cmp
from clinic_pipeline.reports.charts import bar_chart
from clinic_pipeline.reports.render import render_page
from clinic_pipeline.source.inventory import SchemaInventory
from clinic_pipeline.sql import quote_ident
from clinic_pipeline.staging.stage import skipped_sql
from clinic_pipeline.staging.uniqueness import ALIASES_DIR

Verdict = Literal["matched", "differs", "missing"]
# Freshsales links a child to its parent under these keys (an id, a list of ids, or a list of {id}).
LINK_KEYS = ("sales_accounts", "sales_account_id", "contact_ids", "targetable_id", "contacts")
INCLUDES = {"contacts": "sales_accounts", "deals": "contacts,sales_account"}
MARKER = "\n\n[source "  # the loader's idempotency marker at the end of a description (an activity's notes)
ALONE_MARKER = re.compile(r"\[source [0-9a-f]{16}\]")  # ...or all of it, on a record with no description
KEY_TARGETS = frozenset({"external_id", "cf_source_key"})
# Files carry no fields Freshsales reads back; their upload is verified by checksum at load time.
NOT_DIFFED = frozenset({"files"})


class FieldTally(BaseModel):
    object: str
    field: str
    matched: int = 0
    differs: int = 0
    missing: int = 0

    @property
    def compared(self) -> int:
        return self.matched + self.differs + self.missing

    @property
    def match_rate(self) -> float:
        return self.matched / self.compared if self.compared else 1.0


class SampleDiff(BaseModel):
    records: int
    records_missing: int
    fields_compared: int
    matched: int
    differs: int
    missing: int
    fields: list[FieldTally]
    match_rate_by_object: dict[str, float]
    diff_hash: str
    html_path: Path
    csv_path: Path

    @property
    def ok(self) -> bool:
        return self.differs == 0 and self.missing == 0 and self.records_missing == 0


class DiffRow(BaseModel):
    """One compared field of one record, as the CSV and the page show it (holds PHI)."""

    object: str
    source_key: str
    source_table: str
    source_column: str
    source_value: str
    field: str
    freshsales_value: str
    verdict: str


class _Context:
    """What every comparison needs: the source, formats, zone, id maps in both directions, users."""

    def __init__(
        self,
        client: FreshsalesClient,
        state: StateStore,
        plan: MappingPlan,
        con: duckdb.DuckDBPyConnection,
        inventory: SchemaInventory,
        staged_dir: Path,
    ) -> None:
        self.client, self.plan, self.con = client, plan, con
        self.zone = plan.time_zone(inventory.time_zone)
        self.formats = {(t.name, c.name): c.format for t in inventory.tables for c in t.columns}
        self.id_maps = {o.name: state.id_map(o.name) for o in STAGED_OBJECTS}
        self.keys_by_id = {name: {r.freshsales_id: k for k, r in m.items()} for name, m in self.id_maps.items()}
        users = client.owners()
        self.users = {int(u.id): (u.email or "").lower() for u in users}
        # The loader matches a name only to the one active user bearing it: id → that name's key.
        unique, _shared = by_unique_name((u.display_name, int(u.id)) for u in users if u.is_active)
        self.user_names = {user_id: key for key, user_id in unique.items()}
        self.aliases = _aliases(staged_dir)
        self.choices: dict[str, dict[int, str]] = {}

    def source_rows(self, table: str, rows: list[int]) -> dict[int, dict[str, Any]]:
        result = self.con.execute(
            f"SELECT * FROM source.{quote_ident(table)} WHERE _source_row IN (SELECT unnest(?))", [rows]
        )
        names = [d[0] for d in result.description]
        return {int(r[names.index("_source_row")]): dict(zip(names, r, strict=True)) for r in result.fetchall()}

    def choice_name(self, selector: str, choice_id: Any) -> str | None:
        """The name of the reference row (an outcome) a record holds, from the account's selector."""
        if choice_id in (None, ""):
            return None
        if selector not in self.choices:
            self.choices[selector] = {int(r["id"]): str(r.get("name")) for r in self.client.selector(selector)}
        return self.choices[selector].get(int(choice_id))

    def folded(self, mapping: ObjectMapping, key: str, first: dict[str, Any]) -> dict[str, Any]:
        """A grouped record's source values as staging folds them: summed and listed lines over the group's
        rows that are not skipped, the first row's value for the others."""
        skipped_when = skipped_sql(mapping)
        skipped = f" AND NOT coalesce({skipped_when}, FALSE)" if skipped_when else ""
        result = self.con.execute(
            f"SELECT * FROM source.{quote_ident(mapping.source_table)} "
            f"WHERE trim({quote_ident(mapping.source_key or '')}) = ?{skipped}",
            [key],
        )
        names = [d[0] for d in result.description]
        group = [dict(zip(names, r, strict=True)) for r in result.fetchall()]
        raw = dict(first)
        for line in mapping.mapped_fields():
            values = [g.get(line.source) for g in group if not cmp.blank(g.get(line.source))]
            if line.aggregate == "sum":
                amounts = [cmp.money(v) for v in values]
                raw[line.source] = str(sum(a for a in amounts if a is not None)) if values else None
            elif line.aggregate == "list":
                raw[line.source] = "; ".join(sorted({str(v).strip() for v in values})) or None
        return raw

    def reference_value(self, table: str, key: str, column: str) -> Any:
        mapping = next((m for m in self.plan.objects if m.source_table == table and m.source_key), None)
        if mapping is None:
            return None
        found = self.con.execute(
            f"SELECT {quote_ident(column)} FROM source.{quote_ident(table)} "
            f"WHERE trim({quote_ident(mapping.source_key or '')}) = ? LIMIT 1",
            [key],
        ).fetchone()
        return found[0] if found else None


def _aliases(staged_dir: Path) -> dict[str, str]:
    path = staged_dir / ALIASES_DIR / "contacts.parquet"
    if not path.exists():
        return {}
    return {r["alias_key"]: r["survivor_key"] for r in pq.read_table(path).to_pylist()}


def _linked_ids(record: dict[str, Any]) -> set[int]:
    ids: set[int] = set()
    for key in LINK_KEYS:
        value = record.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and item.get("id") is not None:
                ids.add(int(item["id"]))
            elif isinstance(item, int | str) and str(item).isdigit():
                ids.add(int(item))
    for value in (record.get("custom_field") or {}).values():
        if isinstance(value, int | str) and str(value).isdigit():
            ids.add(int(value))
    return ids


def _owner_ids(record: dict[str, Any]) -> set[int]:
    """The owner, or for appointments (which have none) the users attending."""
    ids = {int(record["owner_id"])} if record.get("owner_id") else set()
    for attendee in record.get("appointment_attendees") or []:
        if isinstance(attendee, dict) and attendee.get("attendee_type") == "FdMultitenant::User":
            ids.add(int(attendee["attendee_id"]))
    return ids


def _actual(record: dict[str, Any], field: str) -> Any:
    if field.startswith("cf_"):
        return (record.get("custom_field") or {}).get(field)
    if field in ("email", "emails"):
        # A family member's shared email lives in cf_shared_email by the documented rule.
        emails = record.get("emails") or []
        primary = record.get("email") or next((e.get("value") for e in emails if isinstance(e, dict)), None)
        return primary or (record.get("custom_field") or {}).get("cf_shared_email")
    if field == "mobile_number":
        # Likewise a family member's shared mobile number lives in cf_shared_mobile.
        return record.get(field) or (record.get("custom_field") or {}).get("cf_shared_mobile")
    value = record.get(field)
    if field in MARKER_FIELDS and isinstance(value, str):
        # The marker alone (a record with no description or notes of its own) is no text.
        text = value.split(MARKER)[0]
        return None if ALONE_MARKER.fullmatch(text) else text
    return value


def _mapping_for(plan: MappingPlan, obj: FreshsalesObject, table: str) -> ObjectMapping | None:
    return next((m for m in plan.objects if m.target == obj.target and m.source_table == table), None)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _compare_line(
    ctx: _Context,
    obj: FreshsalesObject,
    line: FieldMapping,
    raw: dict[str, Any],
    record: dict[str, Any],
    table: str,
    labelled: bool,
) -> tuple[Verdict, Any, Any] | None:
    """(verdict, source value shown, Freshsales value shown), or None when the line is not comparable."""
    name, _, arg = (line.transform or "").partition(":")
    value = raw.get(line.source)
    if name == "lookup":
        if cmp.blank(value):
            return None
        parent = BY_TARGET[arg].name
        if line.through and line.via:
            value = ctx.reference_value(line.through, str(value).strip(), line.via)  # the encounter's patient
            if cmp.blank(value):
                return None
        want = f"{line.references}:{parent_key_value(line, str(value).strip())}" if line.references else None
        if want is None:
            return None  # derived parents (one account per value) are compared by their own name
        want = ctx.aliases.get(want, want)
        got = {ctx.keys_by_id[parent].get(i) for i in _linked_ids(record)} - {None}
        verdict: Verdict = "matched" if want in got else "differs" if _linked_ids(record) else "missing"
        return verdict, want, ",".join(sorted(str(g) for g in got))
    if name in OWNER_COLUMNS:
        if cmp.blank(value) or not line.references or not line.via:
            return None
        staff = _text(ctx.reference_value(line.references, str(value).strip(), line.via)).strip()
        by_email = name == "owner_by_email"
        users = ctx.users if by_email else ctx.user_names
        want = staff.lower() if by_email else name_key(staff)
        if want is None or want not in users.values():
            # No Freshsales user (or a name two share): the owner map lists it, the diff has nothing to compare.
            return None
        owners = {users.get(i) for i in _owner_ids(record)} - {None}
        verdict: Verdict = "matched" if want in owners else "missing" if not owners else "differs"
        return verdict, want, ",".join(sorted(str(o) for o in owners))
    if name == "choice":
        choices = {k.strip().lower(): v for k, v in line.value_map.items()}
        want = None if cmp.blank(value) else choices.get(str(value).strip().lower())
        got = ctx.choice_name(arg, record.get(line.target or ""))
        if want is None and got is None:
            return None
        # A qualified name (`Self-pay / Paid`) chose the stage of that pipeline; Freshsales reads back its name.
        same = (
            want is not None
            and got is not None
            and (want.lower() == got.lower() or want.lower().endswith(f" / {got.lower()}"))
        )
        return ("matched" if same else "missing" if got is None else "differs"), want, got
    if name == "from_reference" or not line.target:
        return None
    kind = cmp.kind_of(line.type, line.transform)
    actual = _actual(record, line.target)
    if kind == "composite":
        parts = (
            [value, *(raw.get(a) for a in line.args)] if name == "local_datetime" else [raw.get(a) for a in line.args]
        )
        when = " ".join(_text(p).strip() for p in parts)
        if name in ("end_after_minutes", "end_after_seconds"):
            start = cmp.local_instant(when, (arg,), ctx.zone)
            length = _text(value).strip()
            if start is None or not length.isdigit():
                return None
            unit = "minutes" if name == "end_after_minutes" else "seconds"
            end = start + timedelta(**{unit: int(length)})
            got = cmp.instant(actual)
            ok = got is not None and abs((end - got).total_seconds()) < 1
            return ("matched" if ok else "missing" if actual is None else "differs"), f"{when} +{length} {unit}", actual
        kind, value = "datetime", when
        fmt = arg
    else:
        fmt = ctx.formats.get((table, line.source))
    if line.target == "description" and labelled:
        # Several columns share the description, one `column: value` line each (staging's rule).
        lines = (actual or "").splitlines()
        if cmp.blank(value):
            ok = not any(x.startswith(f"{line.source}: ") for x in lines)
        else:
            ok = f"{line.source}: {str(value).strip()}" in lines
        return ("matched" if ok else "differs"), value, actual
    if obj.target == "sales_account" and line.target == "name" and isinstance(actual, str) and not cmp.blank(value):
        # Same-named accounts get their city appended (staging.uniqueness): still the source's name.
        ok = actual == str(value).strip() or actual.startswith(f"{str(value).strip()} (")
        return ("matched" if ok else "differs"), value, actual
    if cmp.matches(kind, value, actual, fmt, ctx.zone):
        return "matched", value, actual
    return ("missing" if actual in (None, "", []) else "differs"), value, actual


def _compare_object(
    ctx: _Context, obj: FreshsalesObject, path: Path, tallies: dict, rows: list[DiffRow]
) -> tuple[int, int]:
    columns = ["_source_key", "_source_table", "_source_row"]
    if "_lookup_contact" in pq.read_schema(path).names:
        columns.append("_lookup_contact")
    sampled = pq.read_table(path, columns=columns).to_pylist()
    records = missing_records = 0
    by_table: dict[str, list[dict[str, Any]]] = {}
    for row in sampled:
        by_table.setdefault(row["_source_table"], []).append(row)
    for table, table_rows in by_table.items():
        mapping = _mapping_for(ctx.plan, obj, table)
        raws = ctx.source_rows(table, [int(r["_source_row"]) for r in table_rows])
        for row in table_rows:
            key = str(row["_source_key"])
            records += 1
            mapped = ctx.id_maps[obj.name].get(key)
            record = _fetch(ctx, obj, mapped.freshsales_id, row.get("_lookup_contact")) if mapped else None
            if record is None:
                missing_records += 1
                rows.append(
                    DiffRow(
                        object=obj.name,
                        source_key=key,
                        source_table=table,
                        source_column="",
                        source_value="",
                        field="(record)",
                        freshsales_value="",
                        verdict="missing",
                    )
                )
                continue
            if mapping is None or not key.startswith(f"{table}:"):
                continue  # a derived parent: its existence is what there is to check
            raw = raws.get(int(row["_source_row"]), {})
            if mapping.grouped:
                raw = ctx.folded(mapping, key.removeprefix(f"{table}:"), raw)
            labelled = sum(line.target == "description" for line in mapping.mapped_fields()) > 1
            if obj.targetable and not any(line.transform == "lookup:contact" for line in mapping.mapped_fields()):
                # The plan links these records to no patient: each arrives in Freshsales on its own, a lost link.
                _tally(
                    tallies, rows, obj, key, table, "targetable_id", ("missing", "(no contact link in the plan)", "")
                )
            for line in mapping.mapped_fields():
                if line.target in KEY_TARGETS:
                    continue
                compared = _compare_line(ctx, obj, line, raw, record, table, labelled)
                if compared is not None:
                    _tally(tallies, rows, obj, key, table, line.target or "", compared, line.source)
    return records, missing_records


def _tally(
    tallies: dict,
    rows: list[DiffRow],
    obj: FreshsalesObject,
    key: str,
    table: str,
    field: str,
    compared: tuple[Verdict, Any, Any],
    source_column: str = "",
) -> None:
    verdict, shown_source, shown_actual = compared
    tally = tallies.setdefault((obj.name, field), FieldTally(object=obj.name, field=field))
    setattr(tally, verdict, getattr(tally, verdict) + 1)
    if verdict != "matched":
        rows.append(
            DiffRow(
                object=obj.name,
                source_key=key,
                source_table=table,
                source_column=source_column,
                source_value=_text(shown_source),
                field=field,
                freshsales_value=_text(shown_actual),
                verdict=verdict,
            )
        )


def _fetch(ctx: _Context, obj: FreshsalesObject, freshsales_id: int, contact_key: str | None) -> dict[str, Any] | None:
    try:
        if obj.entity != "notes":
            return ctx.client.get(obj.entity, freshsales_id, include=INCLUDES.get(obj.entity))
        # Notes cannot be read by id: they come side-loaded with their contact.
        parent = ctx.id_maps["contacts"].get(ctx.aliases.get(contact_key or "", contact_key or ""))
        if parent is None:
            return None
        notes = ctx.client.get("contacts", parent.freshsales_id, include="notes").get("notes") or []
    except NotFoundError:
        return None
    return next((n for n in notes if int(n.get("id", 0)) == freshsales_id), None)


def diff_sample(
    client: FreshsalesClient,
    state: StateStore,
    plan: MappingPlan,
    con: duckdb.DuckDBPyConnection,
    inventory: SchemaInventory,
    *,
    staged_dir: Path,
    sample_dir: Path,
    out_dir: Path,
) -> SampleDiff:
    """`con` has the export open (schema `source`); `staged_dir` holds the full run's alias files."""
    ctx = _Context(client, state, plan, con, inventory, staged_dir)
    tallies: dict[tuple[str, str], FieldTally] = {}
    rows: list[DiffRow] = []
    records = missing_records = 0
    for obj in STAGED_OBJECTS:
        path = sample_dir / f"{obj.name}.parquet"
        if path.exists() and obj.name not in NOT_DIFFED:
            n, m = _compare_object(ctx, BY_NAME[obj.name], path, tallies, rows)
            records, missing_records = records + n, missing_records + m
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(DiffRow.model_fields))
    writer.writeheader()
    writer.writerows(r.model_dump() for r in rows)
    csv_text = buffer.getvalue()
    csv_path, html_path = out_dir / "sample_diff.csv", out_dir / "sample_diff.html"
    write_private_text(csv_path, csv_text)
    fields = sorted(tallies.values(), key=lambda t: (t.object, t.field))
    compared: Counter[str] = Counter()
    matched: Counter[str] = Counter()
    for t in fields:
        compared[t.object] += t.compared
        matched[t.object] += t.matched
    result = SampleDiff(
        records=records,
        records_missing=missing_records,
        fields_compared=sum(t.compared for t in fields),
        matched=sum(t.matched for t in fields),
        differs=sum(t.differs for t in fields),
        missing=sum(t.missing for t in fields),
        fields=fields,
        match_rate_by_object={o: matched[o] / n for o, n in compared.items() if n},
        diff_hash=hashlib.sha256(csv_text.encode()).hexdigest(),
        html_path=html_path,
        csv_path=csv_path,
    )
    write_private_text(html_path, render_html(result, rows))
    return result


def _fields_chart(diff: SampleDiff) -> str:
    """Per object, the compared fields by verdict: a differs or missing bar names the object to look at."""
    tallies: dict[str, Counter[str]] = {}
    for t in diff.fields:
        tallies.setdefault(t.object, Counter()).update(matched=t.matched, differs=t.differs, missing=t.missing)
    objects = sorted(tallies)
    verdicts = ("matched", "differs", "missing")
    return bar_chart("Fields compared per object", objects, {v: [tallies[o][v] for o in objects] for v in verdicts})


def render_html(diff: SampleDiff, rows: Sequence[DiffRow]) -> str:
    """The page: counts and charts, then every difference with its source value beside Freshsales' (PHI)."""
    rates = sorted(diff.match_rate_by_object.items())
    columns = list(DiffRow.model_fields)
    return render_page(
        "sample_diff.html.j2",
        d=diff,
        verdict="all fields match" if diff.ok else f"{diff.differs + diff.missing} differences",
        rate_chart=bar_chart(
            "Match rate per object", [o for o, _ in rates], {"matched": [r for _, r in rates]}, percent=True
        )
        if rates
        else "",
        fields_chart=_fields_chart(diff) if diff.fields else "",
        field_rows=[(t.object, t.field, t.matched, t.differs, t.missing, f"{t.match_rate:.1%}") for t in diff.fields],
        diff_head=[c.replace("_", " ") for c in columns],
        diff_rows=[[getattr(r, c) for c in columns] for r in rows],
    )
