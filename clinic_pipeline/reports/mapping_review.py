"""The mapping review as an HTML page: the terminal's table (`mapping.review`) in the look every report shares,
with the field lines needing review per Freshsales target drawn at a glance.

It shows the plan's own lines (tables, columns, targets, transforms, reasons), no record value, and is
written beside the plan.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from clinic_pipeline.mapping.plan import MappingPlan
from clinic_pipeline.mapping.review import DEFAULT_REVIEW_THRESHOLD, review_rows
from clinic_pipeline.private_files import write_private_text
from clinic_pipeline.reports.charts import bar_chart
from clinic_pipeline.reports.render import render_page


def targets_chart(plan: MappingPlan) -> str:
    """Field lines per Freshsales target beside those needing review ("" for a plan with no field line)."""
    lines: Counter[str] = Counter()
    review: Counter[str] = Counter()
    for o in plan.objects:
        lines[o.target] += len(o.fields)
        review[o.target] += sum(f.needs_review for f in o.fields)
    targets = sorted(t for t in lines if lines[t])
    if not targets:
        return ""
    return bar_chart(
        "Field lines per Freshsales target",
        targets,
        {"field lines": [lines[t] for t in targets], "needing review": [review[t] for t in targets]},
    )


def render_html(plan: MappingPlan, threshold: float = DEFAULT_REVIEW_THRESHOLD) -> str:
    rows = review_rows(plan, threshold)
    return render_page(
        "mapping_review.html.j2",
        plan=plan,
        rows=rows,
        flagged=sum(r.needs_review for r in rows),
        threshold=threshold,
        targets_chart=targets_chart(plan),
    )


def write_review_page(plan: MappingPlan, path: Path, threshold: float = DEFAULT_REVIEW_THRESHOLD) -> Path:
    """Write the page to `path` and return it: through `private_files` (0600, whole or absent), since it is
    the operator's working page, not something to share."""
    write_private_text(path, render_html(plan, threshold))
    return path
