"""Scores the proposer on the evaluation corpus (fixtures/corpus/*/gold.yaml): fields, links, keys, tables, secrets.

`python clinic_pipeline_tests/corpus_scores.py` prints the Markdown table the README's mapping section shows;
`test_mapping_corpus.py` holds the proposer to it. The gold format is fixtures/corpus/README.md.
"""

from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import yaml

from clinic_pipeline.mapping.plan import MappingPlan, ObjectMapping
from clinic_pipeline.mapping.proposer import propose_plan
from clinic_pipeline.source.inventory import SchemaInventory, build_inventory
from clinic_pipeline.source.reader import open_source

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
THRESHOLD = 0.75
# Gold field targets that hold a link to another record: scored on their own as well.
LINK_TARGETS = frozenset(
    {"sales_accounts", "sales_account_id", "contact_ids", "targetable_id", "owner_id", "cf_contact", "cf_sales_account"}
)
SQLITE_SUFFIXES = (".sqlite", ".db", ".sqlite3")


def exports() -> list[str]:
    return sorted(p.parent.name for p in CORPUS.glob("*/gold.yaml"))


def load_gold(export: str) -> dict[str, Any]:
    return yaml.safe_load((CORPUS / export / "gold.yaml").read_text(encoding="utf-8"))


def source_spec(export: str, gold: dict[str, Any]) -> str:
    path = (CORPUS / export / gold.get("source", ".")).resolve()
    return f"sqlite:///{path}" if path.suffix.lower() in SQLITE_SUFFIXES else str(path)


def inventory_of(export: str) -> SchemaInventory:
    con = duckdb.connect()
    try:
        return build_inventory(open_source(source_spec(export, load_gold(export)), con), con)
    finally:
        con.close()


def _accepts(expected: Any, proposed: str | None) -> bool:
    """Gold answers: a name, null, a `cf_*`/`custom_module:*` pattern, or a list of those."""
    if isinstance(expected, list):
        return any(_accepts(e, proposed) for e in expected)
    if expected is None or proposed is None:
        return expected is None and proposed is None
    return fnmatch.fnmatchcase(proposed, str(expected))


@dataclass
class Score:
    export: str
    fields: list[bool] = field(default_factory=list)
    links: list[bool] = field(default_factory=list)
    keys: list[bool] = field(default_factory=list)
    tables: list[bool] = field(default_factory=list)
    secrets_migrated: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    @staticmethod
    def _share(marks: list[bool]) -> float:
        return sum(marks) / len(marks) if marks else 1.0

    @property
    def field_accuracy(self) -> float:
        return self._share(self.fields)

    @property
    def link_accuracy(self) -> float:
        return self._share(self.links)

    @property
    def key_accuracy(self) -> float:
        return self._share(self.keys)

    @property
    def table_accuracy(self) -> float:
        return self._share(self.tables)


def score_plan(export: str, plan: MappingPlan, gold: dict[str, Any]) -> Score:
    """Each gold line judged against the proposal; a table split over two targets is judged by its first."""
    by_table: dict[str, ObjectMapping] = {}
    for obj in plan.objects:
        by_table.setdefault(obj.source_table, obj)
    score = Score(export)
    for table, expected in gold["tables"].items():
        obj = by_table.get(table)
        target = obj.target if obj else "<missing table>"
        ok = _accepts(expected["target"], target)
        score.tables.append(ok)
        if not ok:
            score.misses.append(f"{table}: {target} != {expected['target']}")
        if "source_key" in expected:
            ok = obj is not None and obj.source_key == expected["source_key"]
            score.keys.append(ok)
            if not ok:
                score.misses.append(f"{table} key: {obj.source_key if obj else None} != {expected['source_key']}")
        # A table that is not migrated moves none of its columns: each counts as having no target.
        moved = obj is not None and obj.target != "not_migrated"
        proposed = {f.source: f.target for f in obj.fields} if moved else {}
        for column, wanted in (expected.get("fields") or {}).items():
            got = proposed.get(column, "<missing>") if moved else None
            ok = _accepts(wanted, got)
            if not ok and moved and obj is not None and column == obj.source_key and got is None:
                # The key line of any object but a contact has no target: staging carries it in cf_source_key.
                ok = _accepts(wanted, "cf_source_key")
            score.fields.append(ok)
            if not isinstance(wanted, list) and wanted in LINK_TARGETS:
                score.links.append(ok)
            if not ok:
                score.misses.append(f"{table}.{column}: {got} != {wanted}")
        for column in expected.get("secrets") or []:
            for migrated in plan.objects:
                if migrated.source_table == table and any(f.source == column and f.target for f in migrated.fields):
                    score.secrets_migrated.append(f"{table}.{column}")
    return score


def score_export(export: str) -> Score:
    inventory = inventory_of(export)
    return score_plan(export, propose_plan(inventory, THRESHOLD), load_gold(export))


def markdown(scores: list[Score]) -> str:
    rows = [
        "| export | fields | links | keys | tables | secrets migrated |",
        "|---|---|---|---|---|---|",
    ]
    for s in scores:
        rows.append(
            f"| {s.export} | {sum(s.fields)}/{len(s.fields)} ({s.field_accuracy:.2f}) | "
            f"{sum(s.links)}/{len(s.links)} ({s.link_accuracy:.2f}) | {sum(s.keys)}/{len(s.keys)} | "
            f"{sum(s.tables)}/{len(s.tables)} | {len(s.secrets_migrated)} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    verbose = "-v" in sys.argv
    chosen = [a for a in sys.argv[1:] if a != "-v"] or exports()
    results = [score_export(name) for name in chosen]
    print(markdown(results))
    if verbose:
        for result in results:
            for miss in result.misses + [f"secret migrated: {s}" for s in result.secrets_migrated]:
                print(f"{result.export}: {miss}")
