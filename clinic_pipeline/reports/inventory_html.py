"""The schema inventory as an HTML page, the Markdown page's twin (`source.inventory_page`) in the look every
report shares, with the tables' sizes drawn at a glance.

Like the Markdown page it is rendered from the `SchemaInventory` alone, so it shows nothing the inventory does
not hold: shapes, counts, rates, categorical values, ranges and masked examples, every one escaped.
"""

from __future__ import annotations

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


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f} %"


def _sentinels(column: ColumnProfile) -> str:
    if not column.sentinel_count:
        return "—"
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(column.sentinels.items()))
    return f"{column.sentinel_count:,} ({kinds})"


def _column_row(column: ColumnProfile, rows: int) -> tuple[str, ...]:
    sentinel_rate = column.sentinel_count / rows if rows else 0.0
    return (
        column.name,
        column.type,
        column.format or "—",
        _percent(column.type_match_rate),
        _percent(column.null_rate),
        _percent(sentinel_rate) if column.sentinel_count else "—",
        _sentinels(column),
        f"{column.distinct_count:,}",
        "yes" if column.unique else "no",
        str(column.max_length),
        "; ".join(column.hints) or "—",
    )


def _relationship_row(r: Relationship) -> tuple[str, ...]:
    # Declared keys are taken from the schema as they are; only inferred ones were measured against values.
    containment = _percent(r.coverage) if r.kind == "inferred" else "not measured (declared)"
    return (f"{r.table}.{r.column}", f"{r.ref_table}.{r.ref_column}", r.kind, containment)


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
        relationship_rows=[_relationship_row(r) for r in inv.relationships],
        column_head=COLUMN_HEAD,
        column_rows=[[_column_row(c, t.row_count) for c in t.columns] for t in inv.tables],
        described=[
            [(c.name, _range_and_examples(c)) for c in t.columns if c.min_value is not None or c.examples]
            for t in inv.tables
        ],
    )
