"""A contact table with only a full name ("Luis Ferreira, MD", "FERREIRA, LUIS") stages first and last names
instead of being quarantined, and the sample diff's own reading agrees with what Freshsales would hold."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from clinic_pipeline.mapping.plan_check import confirm_checked
from clinic_pipeline.mapping.proposer import propose_plan
from clinic_pipeline.model.objects import CONTACTS
from clinic_pipeline.reports.source_compare import kind_of, matches
from clinic_pipeline.source.inventory import build_inventory
from clinic_pipeline.source.reader import open_source
from clinic_pipeline.staging.stage import stage_object

NAMES = ["Luis Ferreira, MD", "FERREIRA, LUIS", "Dr. Ana María de la Cruz", "O'Brien, Siobhan", "Nguyễn Văn An"]


def test_a_full_name_alone_is_split_into_first_and_last_name(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    with (export / "referrers.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["referrer_id", "referrer_name", "phone", "specialty"])
        writer.writerows(
            [n, NAMES[n % len(NAMES)], f"217-555-{n:04d}", ["Cardiology", "Oncology"][n % 2]] for n in range(1, 41)
        )
    con = duckdb.connect()
    source = open_source(str(export), con)
    inventory = build_inventory(source, con)
    plan = confirm_checked(propose_plan(inventory, 0.75), "tester", [t.name for t in inventory.tables])
    mapping = next(o for o in plan.objects if o.source_table == "referrers")
    assert mapping.target == "contact"
    split = {f.target: f.transform for f in mapping.fields if f.source == "referrer_name"}
    assert split == {"first_name": "name_part:first", "last_name": "name_part:last"}
    assert all(f.needs_review for f in mapping.fields if f.source == "referrer_name")

    result = stage_object(
        CONTACTS, plan, source, con, staged_dir=tmp_path / "staged", quarantine_dir=tmp_path / "quarantine"
    )
    con.close()
    assert result.quarantined_rows == 0 and result.staged_rows == 40
    rows = pq.read_table(result.parquet_path).to_pylist()
    staged = {r["_source_key"]: (r["first_name"], r["last_name"]) for r in rows}
    assert staged["referrers:1"] == ("LUIS", "FERREIRA")  # `FERREIRA, LUIS`: the last name written first
    assert staged["referrers:5"] == ("Luis", "Ferreira")  # the MD suffix is no part of the name
    assert staged["referrers:2"] == ("Ana", "de la Cruz")  # the title neither
    assert staged["referrers:3"] == ("Siobhan", "O'Brien")
    # The sample diff reads the source on its own (no nameparser): each word Freshsales holds is one of the name's.
    kind = kind_of("text", "name_part:last")
    assert matches(kind, "Luis Ferreira, MD", "Ferreira", None, "UTC")
    assert not matches(kind, "Luis Ferreira, MD", "Ferrari", None, "UTC")
