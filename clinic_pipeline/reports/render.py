"""The one Jinja2 environment every operator page renders through (`templates/*.html.j2`, each extending
`base.html.j2`, which holds the shared header and the only stylesheet).

Autoescape is on for every template: table, column, field and rule names, reasons and, on the sample diff and
the rebuild reference, record values come from the export and are escaped unless a template marks a
chart as safe. Charts are inline SVG from `charts.py`, so a page opens offline and fetches nothing.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

_BYTE_UNITS = (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024))


def byte_size(n: int) -> str:
    """Bytes as a person reads them: one decimal in the largest unit that fits."""
    for unit, factor in _BYTE_UNITS:
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} B"


@cache
def environment() -> Environment:
    # Built once: templates compile on first use and are reused by every later page.
    env = Environment(
        loader=PackageLoader("clinic_pipeline.reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,  # a misspelt name fails the render instead of leaving a blank cell
        keep_trailing_newline=True,
        trim_blocks=True,  # a line holding only a tag leaves no blank line in the page
        lstrip_blocks=True,
    )
    env.filters["size"] = byte_size
    return env


def render_page(template: str, **context: Any) -> str:
    """The page `template` (a name under `templates/`) rendered with `context`."""
    return environment().get_template(template).render(**context)
