"""The sample diff: every sampled record read back from Freshsales and compared field by field.

Expected values are the staged payload (what the plan's transforms produced), actual values what the
API answers for the record's id from the id map. Money is compared to the cent, timestamps as
instants to the second, dates as dates, and links by the parent's Freshsales id. The HTML page and
the CSV of differences hold values (PHI): both are written 0600. The returned summary holds counts.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import os
from collections import Counter
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import pyarrow.parquet as pq
from pydantic import BaseModel

from clinic_pipeline.freshsales.client import FreshsalesClient
from clinic_pipeline.freshsales.errors import NotFoundError
from clinic_pipeline.load.state import StateStore
from clinic_pipeline.staging.objects import BY_NAME, STAGED_OBJECTS, StagedObject

Verdict = Literal["matched", "differs", "missing"]
# Freshsales links a child to its parent under these keys (an id, a list of ids, or a list of {id}).
LINK_KEYS = ("sales_accounts", "sales_account_id", "contact_ids", "targetable_id", "contacts")
INCLUDES = {"contacts": "sales_accounts", "deals": "contacts,sales_account"}


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


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


def _instant(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(microsecond=0) if moment.tzinfo else None


def same(expected: Any, actual: Any) -> bool:
    """Equality the way Freshsales round-trips values: cents, instants, dates, numbers, text."""
    if actual is None:
        return expected is None
    if isinstance(expected, Decimal):
        return _decimal(actual) == expected.quantize(Decimal("0.01"))
    if isinstance(expected, bool) or isinstance(actual, bool):
        return str(expected).lower() == str(actual).lower()
    if isinstance(expected, int | float):
        try:
            return float(actual) == float(expected)
        except (TypeError, ValueError):
            return False
    if isinstance(expected, date) and not isinstance(expected, datetime):
        return str(actual)[:10] == expected.isoformat()
    text = str(expected)
    if "T" in text and _instant(text) is not None:
        return _instant(text) == _instant(actual)
    return text.strip() == str(actual).strip()


def _actual(record: dict[str, Any], field: str) -> Any:
    if field.startswith("cf_"):
        return (record.get("custom_field") or {}).get(field)
    if field == "email" and record.get("email") is None:
        emails = record.get("emails") or []
        primary = next((e for e in emails if isinstance(e, dict) and e.get("is_primary")), None)
        return (primary or (emails[0] if emails else {})).get("value") if emails else None
    return record.get(field)


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


def _fetch(client: FreshsalesClient, obj: StagedObject, freshsales_id: int) -> dict[str, Any] | None:
    try:
        return client.get(obj.entity, freshsales_id, include=INCLUDES.get(obj.entity))
    except NotFoundError:
        return None


def _compare_object(
    client: FreshsalesClient, state: StateStore, obj: StagedObject, path: Path, tallies: dict, rows: list
) -> tuple[int, int]:
    id_map = state.id_map(obj.name)
    parents = {BY_NAME[p].target: state.id_map(p) for p in obj.parents}
    records = missing_records = 0
    for staged in pq.read_table(path).to_pylist():
        key = str(staged["_source_key"])
        mapped = id_map.get(key)
        records += 1
        record = _fetch(client, obj, mapped.freshsales_id) if mapped else None
        if record is None:
            missing_records += 1
            rows.append((obj.name, key, "(record)", "present", "missing"))
            continue
        for field, expected in staged.items():
            if expected is None or field in ("_source_key", "_source_table", "_source_row", "_owner_email"):
                continue
            tally = tallies.setdefault((obj.name, field), FieldTally(object=obj.name, field=field))
            if field.startswith("_lookup_"):
                parent = parents.get(field.removeprefix("_lookup_"), {}).get(str(expected))
                want = parent.freshsales_id if parent else None
                ok = want is not None and want in _linked_ids(record)
                verdict: Verdict = "matched" if ok else "differs"
                shown_expected, shown_actual = str(want), ",".join(str(i) for i in sorted(_linked_ids(record)))
            else:
                actual = _actual(record, field)
                if field == "description" and actual is not None:
                    actual = str(actual).split("\n\n[source ")[0]  # the loader's idempotency marker
                verdict = "missing" if actual is None else "matched" if same(expected, actual) else "differs"
                shown_expected, shown_actual = str(expected), "" if actual is None else str(actual)
            setattr(tally, verdict, getattr(tally, verdict) + 1)
            if verdict != "matched":
                rows.append((obj.name, key, field, shown_expected, shown_actual))
    return records, missing_records


def _private_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def diff_sample(client: FreshsalesClient, state: StateStore, sample_dir: Path, out_dir: Path) -> SampleDiff:
    tallies: dict[tuple[str, str], FieldTally] = {}
    rows: list[tuple[str, str, str, str, str]] = []
    records = missing_records = 0
    for obj in STAGED_OBJECTS:
        path = sample_dir / f"{obj.name}.parquet"
        if path.exists():
            n, m = _compare_object(client, state, obj, path, tallies, rows)
            records, missing_records = records + n, missing_records + m
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["object", "source_key", "field", "expected", "actual"])
    writer.writerows(rows)
    csv_text = buffer.getvalue()
    csv_path, html_path = out_dir / "sample_diff.csv", out_dir / "sample_diff.html"
    _private_write(csv_path, csv_text)
    fields = sorted(tallies.values(), key=lambda t: (t.object, t.field))
    by_object: Counter[str] = Counter()
    matched_by_object: Counter[str] = Counter()
    for t in fields:
        by_object[t.object] += t.compared
        matched_by_object[t.object] += t.matched
    rates = {o: matched_by_object[o] / n for o, n in by_object.items() if n}
    result = SampleDiff(
        records=records,
        records_missing=missing_records,
        fields_compared=sum(t.compared for t in fields),
        matched=sum(t.matched for t in fields),
        differs=sum(t.differs for t in fields),
        missing=sum(t.missing for t in fields),
        fields=fields,
        match_rate_by_object=rates,
        diff_hash=hashlib.sha256(csv_text.encode()).hexdigest(),
        html_path=html_path,
        csv_path=csv_path,
    )
    _private_write(html_path, _render_html(result, rows))
    return result


def _rate_chart(rates: dict[str, float]) -> str:
    """Inline SVG bars, one per object: no script, no external file."""
    bars = "".join(
        f"<text x='0' y='{18 * i + 13}' font-size='12'>{html.escape(name)}</text>"
        f"<rect x='140' y='{18 * i + 3}' width='{rate * 300:.1f}' height='12' fill='#3a7'/>"
        f"<text x='{145 + rate * 300:.1f}' y='{18 * i + 13}' font-size='12'>{rate:.1%}</text>"
        for i, (name, rate) in enumerate(sorted(rates.items()))
    )
    return f"<svg width='520' height='{18 * len(rates) + 6}' role='img'>{bars}</svg>"


def _render_html(result: SampleDiff, rows: list[tuple[str, str, str, str, str]]) -> str:
    e = html.escape
    field_rows = "".join(
        f"<tr><td>{e(t.object)}</td><td>{e(t.field)}</td><td>{t.matched}</td><td>{t.differs}</td>"
        f"<td>{t.missing}</td><td>{t.match_rate:.1%}</td></tr>"
        for t in result.fields
    )
    diff_rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    chart = _rate_chart(result.match_rate_by_object)
    verdict = "all fields match" if result.ok else f"{result.differs + result.missing} differences"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Sample diff</title><style>body{font-family:"
        "sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px}</style></head><body>"
        f"<h1>Sample migration diff: {e(verdict)}</h1>"
        f"<p>{result.records} records, {result.fields_compared} fields compared, {result.matched} matched.</p>"
        f"<h2>Match rate per object</h2>{chart}"
        "<h2>Per field</h2><table><tr><th>object</th><th>field</th><th>matched</th><th>differs</th>"
        f"<th>missing</th><th>rate</th></tr>{field_rows}</table>"
        "<h2>Differences (contain patient data)</h2><table><tr><th>object</th><th>source key</th><th>field</th>"
        f"<th>expected</th><th>actual</th></tr>{diff_rows}</table></body></html>"
    )
