"""The schema inventory as an HTML page, the Markdown page's twin (`source.inventory_page`) in the look every
report shares, with the tables' sizes drawn at a glance.

Like the Markdown page it is rendered from the `SchemaInventory` alone, so it shows nothing the inventory does
not hold: shapes, counts, rates, categorical values, ranges and masked examples, every one escaped.
"""

from __future__ import annotations

from collections.abc import Callable

from clinic_pipeline.reports.charts import bar_chart
from clinic_pipeline.reports.render import render_page
from clinic_pipeline.source.inventory_model import ColumnProfile, Relationship, SchemaInventory

# An EHR dump holds hundreds of tables, most of them small settings: the chart draws the largest, the table
# below it lists them all.
CHART_TABLES = 40
# One header for the Markdown page (source/inventory_page.py) and this one.
COLUMN_HEAD = (
    "column",
    "type",
    "format",
    "type match",
    "null rate",
    "sentinel rate",
    "sentinels",
    "distinct",
    "unique",
    "max length",
    "notes",
)


def _plain(value: str) -> str:
    return value  # the template escapes


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f} %"


def _sentinels(column: ColumnProfile, text: Callable[[str], str]) -> str:
    if not column.sentinel_count:
        return "—"
    kinds = ", ".join(f"{text(kind)} {count:,}" for kind, count in sorted(column.sentinels.items()))
    return f"{column.sentinel_count:,} ({kinds})"


def column_cells(
    column: ColumnProfile, rows: int, code: Callable[[str], str] = _plain, text: Callable[[str], str] = _plain
) -> list[str]:
    """A column's cells under `COLUMN_HEAD`; `code`/`text` escape source names and values for the Markdown page."""
    sentinel_rate = column.sentinel_count / rows if rows else 0.0
    return [
        code(column.name),
        column.type,
        code(column.format) if column.format else "—",
        percent(column.type_match_rate),
        percent(column.null_rate),
        percent(sentinel_rate) if column.sentinel_count else "—",
        _sentinels(column, text),
        f"{column.distinct_count:,}",
        "yes" if column.unique else "no",
        str(column.max_length),
        "; ".join(text(h) for h in column.hints) or "—",
    ]


def relationship_cells(r: Relationship, code: Callable[[str], str] = _plain) -> list[str]:
    # Declared keys are taken from the schema as they are; only inferred ones were measured against values.
    containment = percent(r.coverage) if r.kind == "inferred" else "not measured (declared)"
    return [code(f"{r.table}.{r.column}"), code(f"{r.ref_table}.{r.ref_column}"), r.kind, containment]


def _range_and_examples(column: ColumnProfile) -> str:
    parts = []
    if column.min_value is not None:
        parts.append(f"from {column.min_value} to {column.max_value or column.min_value}")
    if column.examples:
        parts.append("e.g. " + ", ".join(column.examples))
    return "; ".join(parts)


def sizes_chart(inv: SchemaInventory) -> str:
    """Rows per table, largest first, for the tables that hold any ("" when none does)."""
    filled = sorted((t for t in inv.tables if t.row_count), key=lambda t: (-t.row_count, t.name))
    shown = filled[:CHART_TABLES]
    if not shown:
        return ""
    title = "Rows per table, largest first" + (f" ({len(shown)} of {len(filled)})" if len(shown) < len(filled) else "")
    return bar_chart(title, [t.name for t in shown], {"rows": [t.row_count for t in shown]})


def render_html(inv: SchemaInventory) -> str:
    return render_page(
        "inventory.html.j2",
        inv=inv,
        total_rows=sum(t.row_count for t in inv.tables),
        sizes_chart=sizes_chart(inv),
        relationship_rows=[relationship_cells(r) for r in inv.relationships],
        column_head=COLUMN_HEAD,
        column_rows=[[column_cells(c, t.row_count) for c in t.columns] for t in inv.tables],
        described=[
            [(c.name, _range_and_examples(c)) for c in t.columns if c.min_value is not None or c.examples]
            for t in inv.tables
        ],
    )
