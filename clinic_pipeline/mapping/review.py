"""The plan as a person reviews it: every object and field line, lowest confidence first."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from clinic_pipeline.mapping.plan import MappingPlan

# Settings.mapping_review_threshold's default; callers with settings pass theirs.
DEFAULT_REVIEW_THRESHOLD = 0.75


class ReviewRow(BaseModel):
    kind: Literal["object", "field"]
    table: str
    source: str  # the column, or the table itself for an object line
    target: str  # "-" when not migrated
    type: str
    transform: str
    confidence: float
    needs_review: bool
    reason: str


def review_rows(plan: MappingPlan, threshold: float = DEFAULT_REVIEW_THRESHOLD) -> list[ReviewRow]:
    """Object and field lines sorted lowest confidence first (ties keep plan order).

    Field lines carry their own `needs_review`; an object line needs review below `threshold`.
    """
    rows: list[tuple[float, int, ReviewRow]] = []
    for obj in plan.objects:
        target = obj.target + (f" (+{', '.join(obj.also)})" if obj.also else "")
        rows.append(
            (
                obj.confidence,
                len(rows),
                ReviewRow(
                    kind="object",
                    table=obj.source_table,
                    source=f"[table] key={obj.source_key or '-'}",
                    target=target,
                    type="",
                    transform="",
                    confidence=obj.confidence,
                    needs_review=obj.confidence < threshold,
                    reason=obj.reason,
                ),
            )
        )
        for field in obj.fields:
            rows.append(
                (
                    field.confidence,
                    len(rows),
                    ReviewRow(
                        kind="field",
                        table=obj.source_table,
                        source=field.source,
                        target=field.target or "-",
                        type=field.type if field.target else "",
                        transform=field.transform or "",
                        confidence=field.confidence,
                        needs_review=field.needs_review,
                        reason=field.reason,
                    ),
                )
            )
    return [row for _, _, row in sorted(rows, key=lambda r: (r[0], r[1]))]


def _cell(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_review(plan: MappingPlan, threshold: float = DEFAULT_REVIEW_THRESHOLD) -> str:
    """A plain-text table for the terminal; `!` marks lines that need a person's decision."""
    rows = review_rows(plan, threshold)
    header = ("", "conf", "table", "source", "target", "type", "transform", "reason")
    widths = (1, 4, 18, 24, 26, 8, 30, 70)
    body = [
        (
            "!" if r.needs_review else " ",
            f"{r.confidence:.2f}",
            r.table,
            r.source,
            r.target,
            r.type,
            r.transform,
            r.reason,
        )
        for r in rows
    ]
    lines = []
    for cells in (header, *body):
        lines.append("  ".join(_cell(c, w).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    flagged = sum(r.needs_review for r in rows)
    status = f"plan status: {plan.status}" + (f" (confirmed by {plan.confirmed_by})" if plan.confirmed_by else "")
    lines.append("")
    lines.append(f"{len(rows)} lines, {flagged} need review (marked !); {status}")
    return "\n".join(lines)
