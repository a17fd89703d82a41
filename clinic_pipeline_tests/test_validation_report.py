"""The validation report against the real sandbox: records created over the API, staged Parquet and id
map written to match, then the report must count, find and flag what differs, and carry no values."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from clinic_pipeline.freshsales import FreshsalesClient, RateLimiter, RetryPolicy
from clinic_pipeline.load.state import AuditEntry, IdMapRow, StateStore, open_state
from clinic_pipeline.model.objects import BY_NAME
from clinic_pipeline.reports.validation import (
    ValidationReport,
    marker_of,
    validate_migration,
    write_report,
)
from clinic_pipeline.sandbox.launcher import SandboxHandle

OWNER = "priya.rao@clinic.example"
DELTA = "2026-11-24-14:00"
# Values that must never reach the report.
FIRST_NAMES = ["Zebulon", "Quixotica", "Bartholomea", "Ignatius", "Perpetua", "Thaddeus", "Ottoline"]
JOB = "Harpsichordist"


@pytest.fixture
def client(sandbox: SandboxHandle) -> Iterator[FreshsalesClient]:
    limiter = RateLimiter(requests_per_hour=100_000, requests_per_minute=10_000, backoff_base=0.02, backoff_max=0.1)
    with FreshsalesClient(
        sandbox.base_url,
        SecretStr(sandbox.api_key),
        rate_limiter=limiter,
        retry_policy=RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.05),
        timeout=10.0,
    ) as made:
        yield made


@dataclass
class World:
    """What a migration left behind: Freshsales records, staged rows, id map rows."""

    client: FreshsalesClient
    staged_dir: Path
    quarantine_dir: Path
    state_path: Path
    rejected_dir: Path
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    ids: dict[str, dict[str, int]] = field(default_factory=dict)
    delta_rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, obj: str, row: dict[str, Any], freshsales_id: int | None, *, delta: bool = False) -> None:
        (self.delta_rows if delta else self.rows).setdefault(obj, []).append(row)
        if freshsales_id is not None:
            self.ids.setdefault(obj, {})[row["_source_key"]] = freshsales_id

    def write(self, state: StateStore) -> None:
        for rows, folder in ((self.rows, self.staged_dir), (self.delta_rows, self.staged_dir / "delta" / DELTA)):
            for obj, items in rows.items():
                folder.mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.Table.from_pylist(items), folder / f"{obj}.parquet")
        for obj, mapped in self.ids.items():
            state.record_batch(
                obj=obj,
                run_id="run-1",
                partition=None,
                mapped=[IdMapRow(k, i, "h") for k, i in mapped.items()],
                audit=[AuditEntry("create", "created", k, i, 201) for k, i in mapped.items()],
            )

    def report(self, **options: Any) -> ValidationReport:
        with open_state(self.state_path) as state:
            return validate_migration(
                self.client,
                state,
                staged_dir=self.staged_dir,
                quarantine_dir=self.quarantine_dir,
                rejected_dir=self.rejected_dir,
                **options,
            )


def _row(key: str, table: str, number: int, **payload: Any) -> dict[str, Any]:
    return {"_source_key": key, "_source_table": table, "_source_row": number, **payload}


def _described(text: str, key: str) -> str:
    return f"{text}\n\n[source {marker_of(key)}]"


def _schema(client: FreshsalesClient, control: httpx.Client) -> None:
    for entity in ("sales_accounts", "deals"):
        response = control.post(
            f"/settings/{entity}/fields", json={"label": "Source key", "name": "cf_source_key", "type": "text"}
        )
        assert response.status_code == 201, response.text
    module = client.create_module("Lab Result", "Lab Results")
    form = module.forms[0].id
    client.create_module_field(module.name, form, "Source Key", "text")
    client.create_module_field(module.name, form, "Contact", "lookup", related_entity="contact")
    client.create_module_field(module.name, form, "Test Code", "text")


def build_world(tmp_path: Path, client: FreshsalesClient, sandbox: SandboxHandle) -> World:
    """3 accounts, 6 contacts (+1 from a delta partition, +1 held back), 4 deals, 3 appointments,
    3 tasks, 3 notes, 3 lab results; 2 contacts quarantined, 1 skipped."""
    with httpx.Client(base_url=f"{sandbox.root_url}/_sandbox", timeout=10) as control:
        _schema(client, control)
    world = World(
        client,
        tmp_path / "staged",
        tmp_path / "quarantine",
        tmp_path / "state" / "migration.duckdb",
        tmp_path / "rejected",
    )
    owner_id = next(u.id for u in client.owners() if u.email == OWNER)

    for i in range(3):
        key = f"clinics.location:site {i}"
        made = client.create(
            "sales_accounts", {"name": f"Site {i}", "city": "York", "custom_field": {"cf_source_key": key}}
        )
        world.add("accounts", _row(key, "clinics", i, name=f"Site {i}", city="York"), made["id"])
    accounts = world.ids["accounts"]

    def contact(i: int, *, delta: bool = False, loaded: bool = True) -> None:
        key = f"patients:{i}"
        account = f"clinics.location:site {i % 3}"
        email = f"{FIRST_NAMES[i].lower()}@example.org"
        payload = {"first_name": FIRST_NAMES[i], "last_name": "Vantablack", "email": email, "job_title": JOB}
        made = None
        if loaded:
            made = client.create(
                "contacts",
                {**payload, "external_id": key, "owner_id": owner_id, "sales_accounts": [{"id": accounts[account]}]},
            )
        row = _row(key, "patients", i, _lookup_sales_account=account, _owner_email=OWNER, **payload)
        world.add("contacts", row, made["id"] if made else None, delta=delta)

    for i in range(5):
        contact(i)
    contact(5, loaded=False)  # held back: staged, never sent
    contact(6, delta=True)  # created in the cutover window
    contacts = world.ids["contacts"]

    for i in range(4):
        key = f"bills:{i}"
        patient, account = f"patients:{i}", f"clinics.location:site {i % 3}"
        made = client.create(
            "deals",
            {
                "name": f"Visit {i}",
                "amount": "120.50",
                "sales_account_id": accounts[account],
                "contact_ids": [contacts[patient]],
                "custom_field": {"cf_source_key": key},
            },
        )
        row = _row(key, "bills", i, _lookup_sales_account=account, _lookup_contact=patient, name=f"Visit {i}")
        world.add("deals", {**row, "amount": "120.50"}, made["id"])

    for i in range(3):
        patient = f"patients:{i}"
        target = {"targetable_type": "Contact", "targetable_id": contacts[patient]}
        key = f"visits:{i}"
        made = client.create(
            "appointments",
            {
                "title": "Check-up",
                "from_date": "2024-03-01T10:00:00Z",
                "end_date": "2024-03-01T10:30:00Z",
                "description": _described("Bring results", key),
                **target,
            },
        )
        world.add(
            "appointments",
            _row(
                key,
                "visits",
                i,
                _lookup_contact=patient,
                title="Check-up",
                from_date="2024-03-01T10:00:00Z",
                end_date="2024-03-01T10:30:00Z",
                description="Bring results",
            ),
            made["id"],
        )
        key = f"checkins:{i}"
        made = client.create(
            "tasks",
            {"title": "Call back", "due_date": "2024-03-02T09:00:00Z", "description": _described("", key), **target},
        )
        world.add(
            "tasks",
            _row(key, "checkins", i, _lookup_contact=patient, title="Call back", due_date="2024-03-02T09:00:00Z"),
            made["id"],
        )
        key = f"labs:{i}"
        made = client.create("notes", {"description": _described("Free-text report", key), **target})
        world.add("notes", _row(key, "labs", i, _lookup_contact=patient, description="Free-text report"), made["id"])
        key = f"results:{i}"
        made = client.create(
            "cm_lab_result",
            {
                "name": "HbA1c",
                "custom_field": {"cf_source_key": key, "cf_contact": contacts[patient], "cf_test_code": "4548-4"},
            },
        )
        world.add(
            "lab_result",
            _row(key, "results", i, _lookup_contact=patient, name="HbA1c", cf_test_code="4548-4"),
            made["id"],
        )

    world.quarantine_dir.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "_source_table": ["patients", "patients"],
                "_source_row": [7, 8],
                "_source_key": [None, "patients:8"],
                "reason": ["missing source key", "required field missing"],
            }
        ),
        world.quarantine_dir / "contacts.parquet",
    )
    pq.write_table(
        pa.table({"source_table": ["patients"], "source_rows": [9], "staged": [6], "quarantined": [2], "skipped": [1]}),
        world.quarantine_dir / "contacts_reconciliation.parquet",
    )
    world.rejected_dir.mkdir()
    # The loader's latest list: patients:5 waits for its account; patients:0 was refused once, loaded since.
    (world.rejected_dir / "contacts.jsonl").write_text(
        json.dumps({"source_key": "patients:5", "outcome": "held_back", "reason": "parent sales_account not loaded"})
        + "\n"
        + json.dumps({"source_key": "patients:0", "outcome": "rejected", "http_status": 400, "reason": "x"})
        + "\n"
    )
    with open_state(world.state_path) as state:
        world.write(state)
        state.record_batch(
            obj="contacts",
            run_id="run-1",
            partition=None,
            mapped=[],
            audit=[AuditEntry("hold", "held_back", "patients:5")],
        )
    return world


def _by_name(report: ValidationReport) -> dict[str, Any]:
    return {o.object: o for o in report.objects}


def test_counts_come_from_the_api_and_only_the_record_never_loaded_fails(
    tmp_path: Path, client: FreshsalesClient, sandbox: SandboxHandle
) -> None:
    world = build_world(tmp_path, client, sandbox)
    report = world.report()

    # The held-back contact is missing from Freshsales: a discrepancy. The quarantined and skipped
    # source rows were never staged to load: they are not.
    assert not report.ok
    assert report.discrepancies == [
        "contacts: 1 of 7 staged records not loaded into Freshsales (held back: parent sales_account not loaded 1; "
        "audit: hold/held_back 1)"
    ]
    objects = _by_name(report)
    assert set(objects) == {"accounts", "contacts", "deals", "appointments", "tasks", "notes", "lab_result"}
    contacts = objects["contacts"]
    # 5 full-run contacts + 1 held back + 1 from the delta partition; 2 quarantined; 1 skipped.
    assert (contacts.staged, contacts.quarantined, contacts.skipped, contacts.source_rows) == (7, 2, 1, 10)
    assert contacts.quarantine_reasons == {"missing source key": 1, "required field missing": 1}
    assert contacts.source_tables == {"patients": 9}
    assert (contacts.in_id_map, contacts.not_loaded, contacts.freshsales_total) == (6, 1, 6)
    assert contacts.load_outcomes == {"create/created": 6, "hold/held_back": 1}
    assert (contacts.keys_checked, contacts.keys_found_once, contacts.keys_missing) == (7, 6, 1)
    assert contacts.missing_loaded == 0
    assert (contacts.links_checked, contacts.links_broken) == (6, 0)
    assert contacts.owner_rate_staged == contacts.owner_rate_freshsales == 1.0
    assert {f.field: f.freshsales_rate for f in contacts.population} == {
        "first_name": 1.0,
        "last_name": 1.0,
        "email": 1.0,
        "job_title": 1.0,
    }
    assert contacts.not_loaded_reasons == {"held back: parent sales_account not loaded": 1}
    assert (
        "contacts: 1 checked keys absent from Freshsales and from the id map (not loaded, see the discrepancies)"
        in (report.warnings)
    )

    expected = {"accounts": 3, "deals": 4, "appointments": 3, "tasks": 3, "lab_result": 3}
    assert {name: objects[name].freshsales_total for name in expected} == expected
    assert objects["deals"].count_method == "views Open Deals + Won Deals + Lost Deals"
    assert objects["notes"].freshsales_total is None
    for name in ("deals", "appointments", "tasks", "notes", "lab_result"):
        o = objects[name]
        assert (o.keys_found_once, o.sampled, o.links_checked, o.links_broken) == (o.staged,) * 3 + (0,), name
    assert objects["lab_result"].population[-1].field == "cf_test_code"
    assert objects["lab_result"].population[-1].freshsales_rate == 1.0

    # O(objects + sampled records): a view count (+ the filter list) and one search of ≤ 50 keys per keyed
    # object; deals count three views; activities count two filters and read each sampled record by id;
    # notes read each sampled note's parent contact once.
    assert {o.object: o.requests for o in report.objects} == {
        "accounts": 2 + 1,
        "contacts": 2 + 1,
        "deals": 4 + 1,
        "appointments": 2 + 3,
        "tasks": 2 + 3,
        "notes": 3,
        "lab_result": 2 + 1,
    }
    assert report.requests_used == 27


def test_missing_duplicated_dropped_and_broken_are_each_reported(
    tmp_path: Path, client: FreshsalesClient, sandbox: SandboxHandle
) -> None:
    world = build_world(tmp_path, client, sandbox)
    contacts, accounts = world.ids["contacts"], world.ids["accounts"]
    client.delete("contacts", contacts["patients:4"])  # missing: the id map says it was loaded
    client.create(
        "sales_accounts", {"name": "Site 0 again", "custom_field": {"cf_source_key": "clinics.location:site 0"}}
    )
    for key in ("patients:0", "patients:1"):
        client.update("contacts", contacts[key], {"job_title": None})  # dropped population
    wrong = {"targetable_type": "Contact", "targetable_id": contacts["patients:3"]}
    client.update("tasks", world.ids["tasks"]["checkins:0"], wrong)  # broken link
    client.update("deals", world.ids["deals"]["bills:1"], {"sales_account_id": accounts["clinics.location:site 2"]})

    report = world.report()
    assert not report.ok
    objects = _by_name(report)
    text = "\n".join(report.discrepancies)
    assert objects["contacts"].missing_loaded == 1
    assert "contacts: Freshsales counts 5 records, the id map 6" in text
    assert "contacts: 1 of 7 checked records are in the id map but not in Freshsales" in text
    assert objects["accounts"].keys_duplicated == 1
    assert "accounts: 1 source keys held by more than one Freshsales record" in text
    assert "accounts: Freshsales counts 4 records, the id map 3" in text
    job = next(f for f in objects["contacts"].population if f.field == "job_title")
    assert (job.sample_staged_rate, job.freshsales_rate, job.values_lost) == (1.0, 0.6, 2)
    assert "contacts.job_title: populated in 100.0% of the sampled staged records, 60.0% in Freshsales" in text
    assert "tasks: 1 of 3 sampled records lack their parent link" in text
    assert "deals: 1 of 4 sampled records lack their parent link" in text
    assert not any(d.startswith(("appointments", "notes", "lab_result")) for d in report.discrepancies)


def test_the_written_report_holds_counts_and_charts_but_no_values(
    tmp_path: Path, client: FreshsalesClient, sandbox: SandboxHandle
) -> None:
    world = build_world(tmp_path, client, sandbox)
    client.update("contacts", world.ids["contacts"]["patients:0"], {"job_title": None})
    # The not-loaded contact was refused by the API this time; the API's message quotes its values.
    refusal = f"Email {FIRST_NAMES[5].lower()}@example.org is taken by {FIRST_NAMES[5]} Vantablack"
    (world.rejected_dir / "contacts.jsonl").write_text(
        json.dumps({"source_key": "patients:5", "outcome": "rejected", "http_status": 422, "reason": refusal}) + "\n"
    )
    report = world.report(tolerance=0.5)  # one lost value in six: a note, not a failure
    assert any("contacts.job_title: 1 sampled values lost" in w for w in report.warnings)
    # The record never loaded fails the report, told by outcome and HTTP status only.
    missing = (
        "contacts: 1 of 7 staged records not loaded into Freshsales (rejected (HTTP 422) 1; audit: hold/held_back 1)"
    )
    assert report.discrepancies == [missing]

    json_path, html_path = tmp_path / "reports" / "report.json", tmp_path / "reports" / "report.html"
    write_report(report, json_path, html_path)
    page = html_path.read_text(encoding="utf-8")
    body = json_path.read_text(encoding="utf-8")
    written = json.loads(body)
    assert (written["ok"], written["discrepancies"]) == (False, [missing])
    contacts = next(o for o in written["objects"] if o["object"] == "contacts")
    assert (contacts["not_loaded"], contacts["not_loaded_reasons"]) == (1, {"rejected (HTTP 422)": 1})
    assert "FAIL" in page and html.escape(missing) in page
    assert ValidationReport.model_validate_json(body).objects == report.objects
    charts = re.findall(r"<svg.*?</svg>", page)
    assert len(charts) == 1 + len(report.objects)  # counts chart + one population chart per object
    for chart in charts:
        assert ElementTree.fromstring(chart).tag.endswith("svg")  # well-formed, inline, no script
        assert "<script" not in chart
    assert "Records: source vs Freshsales" in page
    for value in [
        *FIRST_NAMES,
        "Vantablack",
        JOB,
        "example.org",
        "Bring results",
        "Free-text report",
        "4548-4",
        "HbA1c",
    ]:
        assert value not in page, value
        assert value not in body, value


def test_notes_and_files_are_found_through_their_parent_contact(
    tmp_path: Path, client: FreshsalesClient, sandbox: SandboxHandle
) -> None:
    contact = client.create("contacts", {"first_name": FIRST_NAMES[0], "external_id": "patients:0"})
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(b"%PDF-1.4 not really")
    document = client.upload_document(scan, "scan.pdf", "contacts", contact["id"])
    target = {"targetable_type": "Contact", "targetable_id": contact["id"]}
    note = client.create("notes", {"description": _described("Free-text report", "labs:0"), **target})
    world = World(client, tmp_path / "staged", tmp_path / "q", tmp_path / "state.duckdb", tmp_path / "rejected")
    world.add("contacts", _row("patients:0", "patients", 0, first_name=FIRST_NAMES[0]), contact["id"])
    for i, freshsales_id in enumerate((document["id"], document["id"] + 999)):  # the second never arrived
        row = _row(f"documents:{i}", "documents", i, _lookup_contact="patients:0", file_path=str(scan))
        world.add("files", {**row, "file_name": f"scan{i}.pdf"}, freshsales_id)
    for i, freshsales_id in enumerate((note["id"], note["id"] + 998)):
        row = _row(f"labs:{i}", "labs", i, _lookup_contact="patients:0", description="Free-text report")
        world.add("notes", row, freshsales_id)
    # Staged, never sent, on no rejected list (its load never ran): counted all the same.
    world.add("notes", _row("labs:2", "labs", 2, _lookup_contact="patients:0", description="Free-text report"), None)
    with open_state(world.state_path) as state:
        world.write(state)

    report = world.report(objects=[BY_NAME["notes"], BY_NAME["files"]])
    notes, files = report.objects
    assert (notes.freshsales_total, notes.keys_found_once, notes.missing_loaded) == (None, 1, 1)
    assert [(f.field, f.freshsales_rate) for f in notes.population] == [("description", 1.0)]
    assert (files.freshsales_total, files.keys_found_once, files.missing_loaded) == (None, 1, 1)
    assert files.population == []  # upload inputs, not Freshsales fields: presence only
    assert notes.requests == files.requests == 1  # one read of the one parent each
    assert "notes: 1 of 2 checked records are in the id map but not in Freshsales" in report.discrepancies
    assert "files: 1 of 2 checked records are in the id map but not in Freshsales" in report.discrepancies
    assert notes.not_loaded_reasons == {"no load outcome recorded": 1}
    assert (
        "notes: 1 of 3 staged records not loaded into Freshsales (no load outcome recorded 1; audit: no outcome)"
        in report.discrepancies
    )
    assert any(w.startswith("notes: not counted in Freshsales (no list endpoint") for w in report.warnings)
