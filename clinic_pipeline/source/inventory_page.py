"""The schema inventory as a Markdown page for the operator: the same facts as the JSON, readable (written with
its HTML twin, `reports.inventory_html`).

It is rendered from the `SchemaInventory` alone, so it can show nothing the inventory does not hold:
shapes, counts and rates, the values of categorical columns, the min/max of ordered columns and the
masked examples. Every name and value is escaped: a column called `Amt | Billed` or a category with
`*` must not break the table or turn into formatting.
"""

from __future__ import annotations

import re
from pathlib import Path

from clinic_pipeline.reports import inventory_html
from clinic_pipeline.source.inventory import ColumnProfile, SchemaInventory, TableProfile

__all__ = ["render_inventory_page", "write_inventory_page"]

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def _text(value: str) -> str:
    """Plain Markdown text safe inside a table cell."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(value.split()))


def _code(value: str) -> str:
    """A code span for an identifier; the fence outgrows any backtick run inside it, pipes stay escaped for GFM."""
    flat = " ".join(value.split()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def _overview(inv: SchemaInventory) -> list[str]:
    zone = f"{_text(inv.time_zone)}" + (
        " (assumed: no time zone in the manifest, confirm it)" if inv.time_zone_assumed else " (from the manifest)"
    )
    total = sum(t.row_count for t in inv.tables)
    return [
        "# Schema inventory",
        "",
        f"- Source system: {_text(inv.source_system)}",
        f"- Time zone: {zone}",
        f"- Date format: {_code(inv.date_format) if inv.date_format else 'not stated (inferred per column)'}",
        f"- Tables: {len(inv.tables)}, rows: {total:,}",
        f"- Fingerprint: `{inv.fingerprint}` (schema `{inv.schema_fingerprint}`)",
        "",
    ]


def _warnings(inv: SchemaInventory) -> list[str]:
    lines = ["## Warnings", ""]
    lines += [f"- {_text(w)}" for w in inv.warnings] or ["None."]
    return [*lines, ""]


def _tables(inv: SchemaInventory) -> list[str]:
    rows = [
        [
            f"[{_text(t.name)}](#{_anchor(t.name)})",
            _text(t.origin),
            f"{t.row_count:,}",
            str(len(t.columns)),
            ", ".join(_code(k) for k in t.candidate_keys) or "none",
        ]
        for t in inv.tables
    ]
    return ["## Tables", "", *_table(["table", "origin", "rows", "columns", "candidate keys"], rows), ""]


def _relationships(inv: SchemaInventory) -> list[str]:
    lines = ["## Relationships", ""]
    if not inv.relationships:
        return [*lines, "None declared or inferred.", ""]
    rows = [inventory_html.relationship_cells(r, _code) for r in inv.relationships]
    header = ["column", "references", "kind", "containment (distinct values found)"]
    return [*lines, *_table(header, rows), ""]


def _anchor(name: str) -> str:
    """GitHub's heading anchor for `Table: name`, so the overview can link to each table's section."""
    slug = re.sub(r"[^\w\- ]", "", f"table {name}".lower()).replace(" ", "-")
    return slug


def _table_section(table: TableProfile) -> list[str]:
    lines = [
        f"## Table: {_text(table.name)}",
        "",
        f"- Origin: {_text(table.origin)}",
        f"- Rows: {table.row_count:,}",
        f"- Candidate keys: {', '.join(_code(k) for k in table.candidate_keys) or 'none (no unique, filled column)'}",
        f"- Created / updated columns: {_code(table.created_column) if table.created_column else '—'} / "
        f"{_code(table.updated_column) if table.updated_column else '—'}",
        "",
    ]
    cells = [inventory_html.column_cells(c, table.row_count, _code, _text) for c in table.columns]
    lines += _table(list(inventory_html.COLUMN_HEAD), cells)
    categorical = [c for c in table.columns if c.categories]
    if categorical:
        lines += ["", "Values of categorical columns (pick-list candidates):", ""]
        lines += [f"- {_code(c.name)}: {', '.join(_text(v) for v in c.categories or [])}" for c in categorical]
    described = [c for c in table.columns if c.min_value is not None or c.examples]
    if described:
        lines += ["", "Ranges and examples (masked: names, contacts, ids and dates keep their shape only):", ""]
        lines += [f"- {_code(c.name)}: {_range_and_examples(c)}" for c in described]
    return [*lines, ""]


def _range_and_examples(column: ColumnProfile) -> str:
    parts = []
    if column.min_value is not None:
        parts.append(f"from {_text(column.min_value)} to {_text(column.max_value or column.min_value)}")
    if column.examples:
        parts.append("e.g. " + ", ".join(_text(v) for v in column.examples))
    return "; ".join(parts)


def render_inventory_page(inv: SchemaInventory) -> str:
    """The Markdown text of the page (see module doc)."""
    lines = _overview(inv) + _warnings(inv) + _tables(inv) + _relationships(inv)
    for table in inv.tables:
        lines += _table_section(table)
    return "\n".join(lines).rstrip("\n") + "\n"


def _write_atomically(path: Path, text: str) -> None:
    """A reader never sees half a page."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_inventory_page(inv: SchemaInventory, path: Path, html_path: Path) -> Path:
    """Write the page to `path` and its HTML twin to `html_path`, each atomically; return `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, render_inventory_page(inv))
    _write_atomically(html_path, inventory_html.render_html(inv))
    return path
