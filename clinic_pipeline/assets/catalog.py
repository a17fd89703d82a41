"""What the Dagster UI shows of every asset besides its content: owners, tags, the code-version policy, and
the Markdown tables of its metadata. One place for the asset modules, which all import it."""

from collections.abc import Iterable, Sequence

# Who answers for every asset of the migration (the catalog's owner filter, the asset page's owner).
OWNERS = ["team:clinic-migration"]

# Code versions: each asset module has its own `CODE_VERSION`, shared by the assets it defines (the
# delta group's assets take the version of the factory that builds them). Bump a module's version, by
# one, when its assets would write different content from the same upstream data and plan: the step
# they call changed what it writes (`steps.py` or the domain package behind it: a staging rule, the
# load's payloads, the report's checks), or the asset passes the step something new. Do not bump it for
# metadata, descriptions, tags or log lines. Dagster then shows those assets, and what depends on them,
# as "code version changed" until they are materialized again.


def asset_tags(stage: str, obj: str | None = None, *, delta: bool = False) -> dict[str, str]:
    """The tags of an asset: its stage, the Freshsales object it holds, whether it is a delta window's.

    Dagster's tag rules: keys and values of letters, digits, `_`, `-` and `.`, 63 characters at most
    (stage and object names are such already)."""
    tags = {"stage": stage}
    if obj is not None:
        tags["object"] = obj
    if delta:
        tags["delta"] = "true"
    return tags


def md_table(head: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table for `dg.MetadataValue.md`: the first column left-aligned, the rest right-aligned
    (counts). Cells are object names, reasons and counts, never record values; `|` is escaped."""

    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, head)) + " |", "|---|" + "---:|" * (len(head) - 1)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)
