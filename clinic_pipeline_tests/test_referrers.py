"""Referring physicians: contacts tagged Referrer, linked to their practice's account, and a territory rule of
the plan (by the practice's state) that gives the referrer and the practice account their territory."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from clinic_pipeline.mapping.plan_check import confirm_checked
from clinic_pipeline.mapping.proposer import propose_plan
from clinic_pipeline.model.objects import ACCOUNTS, CONTACTS
from clinic_pipeline.source.inventory import build_inventory
from clinic_pipeline.source.reader import open_source
from clinic_pipeline.staging.stage import stage_object

PRACTICES = [("Prairie Cardiology", "IL"), ("Lakeside Oncology", "WI"), ("River Valley Pediatrics", "MO")]


def test_referrers_are_tagged_and_their_practices_take_the_territory_rule(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    with (export / "referring_physicians.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["referrer_id", "first_name", "last_name", "email", "practice_name", "practice_state"])
        for n in range(1, 31):
            practice, state = PRACTICES[n % 3]
            writer.writerow([n, f"Given{n}", f"Family{n}", f"dr{n}@example.org", practice, state])
    con = duckdb.connect()
    source = open_source(str(export), con)
    inventory = build_inventory(source, con)
    plan = propose_plan(inventory, 0.75)
    referrers = next(o for o in plan.objects if o.source_table == "referring_physicians")
    assert referrers.tags == ["Referrer"] and referrers.also == ["sales_account"]
    rule = next(f for f in referrers.fields if f.target == "territory_id")
    # Proposed empty: the clinic names its own territories.
    assert rule.source == "practice_state" and rule.value_map == {"IL": None, "MO": None, "WI": None}
    rule.value_map = {"IL": "North", "WI": "North", "MO": "South"}
    confirmed = confirm_checked(plan, "tester", [t.name for t in inventory.tables])
    out = {"staged_dir": tmp_path / "staged", "quarantine_dir": tmp_path / "quarantine"}
    accounts = stage_object(ACCOUNTS, confirmed, source, con, **out)
    contacts = stage_object(CONTACTS, confirmed, source, con, **out)
    con.close()

    practices = {r["name"]: r["_choice_territory_id"] for r in pq.read_table(accounts.parquet_path).to_pylist()}
    assert practices == {
        "Prairie Cardiology": "North",
        "Lakeside Oncology": "North",
        "River Valley Pediatrics": "South",
    }
    staged = pq.read_table(contacts.parquet_path).to_pylist()
    assert len(staged) == 30 and all(r["tags"] == ["Referrer"] for r in staged)
    by_key = {r["_source_key"]: r for r in staged}
    assert by_key["referring_physicians:2"]["_choice_territory_id"] == "South"  # River Valley, MO
    assert by_key["referring_physicians:2"]["_lookup_sales_account"].endswith("river valley pediatrics")
