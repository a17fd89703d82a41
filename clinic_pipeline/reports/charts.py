"""Inline SVG bar charts for operator reports: no scripts, no external files, labels escaped.

Charts show counts and rates only; callers pass category labels such as object or field names.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

# The first six of Tableau 10: six series (the validation counts) before a colour repeats.
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948")
LABEL_WIDTH = 220
BAR_AREA = 420
BAR_HEIGHT = 12
GROUP_GAP = 10
VALUE_WIDTH = 70
LEGEND_STEP = 115


def _format(value: float, percent: bool) -> str:
    return f"{value * 100:.1f}%" if percent else f"{value:,.0f}"


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    percent: bool = False,
) -> str:
    """Horizontal grouped bars: one group per category, one bar per series (None draws no bar).

    `percent`: values are rates in [0, 1] drawn against a fixed 100 % scale, so charts compare.
    """
    names = list(series)
    values = [v for name in names for v in series[name] if v is not None]
    scale = 1.0 if percent else max([*values, 1.0])
    group_height = BAR_HEIGHT * len(names) + GROUP_GAP
    legend_height = 20
    height = legend_height + group_height * len(categories) + 10
    width = max(LABEL_WIDTH + BAR_AREA + VALUE_WIDTH, LABEL_WIDTH + LEGEND_STEP * len(names))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}" font-family="sans-serif" font-size="11">',
        f"<title>{html.escape(title)}</title>",
    ]
    for i, name in enumerate(names):
        x = LABEL_WIDTH + i * LEGEND_STEP
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="13">{html.escape(name)}</text>')
    for c, category in enumerate(categories):
        top = legend_height + c * group_height
        middle = top + BAR_HEIGHT * len(names) / 2 + 4
        parts.append(f'<text x="{LABEL_WIDTH - 6}" y="{middle:.0f}" text-anchor="end">{html.escape(category)}</text>')
        for i, name in enumerate(names):
            value = series[name][c]
            if value is None:
                continue
            y = top + i * BAR_HEIGHT
            length = BAR_AREA * max(value, 0.0) / scale
            colour = PALETTE[i % len(PALETTE)]
            parts.append(
                # class "bar" tells a bar from a legend swatch of the same size.
                f'<rect class="bar" x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{BAR_HEIGHT - 2}" '
                f'fill="{colour}">'
                f"<title>{html.escape(name)}: {_format(value, percent)}</title></rect>"
            )
            parts.append(
                f'<text x="{LABEL_WIDTH + length + 4:.1f}" y="{y + BAR_HEIGHT - 3}">{_format(value, percent)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
