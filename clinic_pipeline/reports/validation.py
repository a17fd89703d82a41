"""Validation report: what Freshsales holds, read back over the API, against what we staged and loaded.

Counts, ids and hashes only: this report is meant for operators and must not carry PHI.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import BaseModel

from clinic_pipeline.freshsales.client import FreshsalesClient
from clinic_pipeline.load.state import StateStore
from clinic_pipeline.staging.objects import StagedObject

DEFAULT_VIEWS = {"contacts": ("All Contacts",), "sales_accounts": ("All Accounts",)}
# Reading a link back costs one call per record: check every record of a small load, a sample of a large one.
LINK_CHECK_LIMIT = 500
KEYS_PER_SEARCH = 50  # leaves room in a 100-record page for duplicates to show up


class ObjectValidation(BaseModel):
    object: str
    staged: int
    quarantined: int
    in_id_map: int
    freshsales_total: int
    keys_found_once: int
    keys_missing: int
    keys_duplicated: int
    links_checked: int = 0
    links_broken: int = 0


class ValidationReport(BaseModel):
    objects: list[ObjectValidation]
    audit: dict[str, int]
    discrepancies: list[str]

    @property
    def ok(self) -> bool:
        return not self.discrepancies


def _keys_in_freshsales(client: FreshsalesClient, obj: StagedObject, keys: Sequence[str]) -> Counter[str]:
    seen: Counter[str] = Counter()
    wanted = set(keys)
    for start in range(0, len(keys), KEYS_PER_SEARCH):
        chunk = list(keys[start : start + KEYS_PER_SEARCH])
        rule = [{"attribute": obj.key_field, "operator": "is_in", "value": chunk}]
        for record in client.filtered_search(obj.entity, rule):
            key = record.get(obj.key_field) or (record.get("custom_field") or {}).get(obj.key_field)
            if key in wanted:
                seen[str(key)] += 1
    return seen


def validate_object(
    client: FreshsalesClient,
    state: StateStore,
    obj: StagedObject,
    *,
    staged_path: Path,
    quarantined: int,
    link_parent: StagedObject | None = None,
) -> ObjectValidation:
    staged_keys = pq.read_table(staged_path, columns=["_source_key"]).column(0).to_pylist()
    id_map = state.id_map(obj.name)
    view = client.find_view(obj.entity, *DEFAULT_VIEWS.get(obj.entity, ()))
    total = client.count(obj.entity, view.id)
    seen = _keys_in_freshsales(client, obj, staged_keys)
    result = ObjectValidation(
        object=obj.name,
        staged=len(staged_keys),
        quarantined=quarantined,
        in_id_map=len(id_map),
        freshsales_total=total,
        keys_found_once=sum(1 for k in staged_keys if seen[k] == 1),
        keys_missing=sum(1 for k in staged_keys if seen[k] == 0),
        keys_duplicated=sum(1 for k in staged_keys if seen[k] > 1),
    )
    if link_parent is not None:
        parent_ids = {row.freshsales_id for row in state.id_map(link_parent.name).values()}
        checked = broken = 0
        for row in sorted(id_map.values(), key=lambda r: r.source_key)[:LINK_CHECK_LIMIT]:
            record = client.get(obj.entity, row.freshsales_id, include=link_parent.entity)
            linked = {int(a["id"]) for a in record.get(link_parent.entity) or []}
            checked += 1
            broken += not (linked & parent_ids)
        result.links_checked, result.links_broken = checked, broken
    return result


def build_report(objects: list[ObjectValidation], audit: dict[tuple[str, str, str], int]) -> ValidationReport:
    problems: list[str] = []
    for o in objects:
        if o.keys_missing:
            problems.append(f"{o.object}: {o.keys_missing} staged records not found in Freshsales")
        if o.keys_duplicated:
            problems.append(f"{o.object}: {o.keys_duplicated} source keys held by more than one Freshsales record")
        if o.in_id_map != o.staged:
            problems.append(f"{o.object}: id map holds {o.in_id_map} records, {o.staged} were staged")
        if o.links_broken:
            problems.append(f"{o.object}: {o.links_broken} of {o.links_checked} checked records lack their parent link")
    return ValidationReport(
        objects=objects,
        audit={"/".join(k): v for k, v in sorted(audit.items())},
        discrepancies=problems,
    )


def write_report(report: ValidationReport, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "validation_report.json"
    json_path.write_text(json.dumps(report.model_dump(mode="json") | {"ok": report.ok}, indent=2))
    html_path = out_dir / "validation_report.html"
    html_path.write_text(_render_html(report))
    return json_path, html_path


def _render_html(report: ValidationReport) -> str:
    columns = list(ObjectValidation.model_fields)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(getattr(o, c)))}</td>" for c in columns) + "</tr>"
        for o in report.objects
    )
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in report.discrepancies) or "<li>none</li>"
    audit = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in report.audit.items())
    verdict = "PASS" if report.ok else "FAIL"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Validation report</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px}</style></head><body>"
        f"<h1>Validation report: {verdict}</h1><h2>Objects</h2><table><tr>{head}</tr>{rows}</table>"
        f"<h2>Discrepancies</h2><ul>{problems}</ul>"
        f"<h2>Audit log (object/op/outcome)</h2><table>{audit}</table></body></html>"
    )
