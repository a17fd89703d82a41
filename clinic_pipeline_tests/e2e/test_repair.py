"""`repair` as an operator runs it against the sandbox: records deleted, emptied from the Recycle Bin or left
in it, a field an admin overwrote and a file gone are healed with exactly one write each and nothing else;
the next validation is clean; `rollback` of the repair run undoes its writes and nothing of the load's."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from clinic_pipeline.assets.repair import repair_job
from clinic_pipeline.assets.resources import resources_settings
from clinic_pipeline.demo import DEMO_FALLBACK_OWNER
from clinic_pipeline.load.state import open_state
from clinic_pipeline.sandbox.launcher import SandboxHandle, free_port, running_sandbox
from clinic_pipeline.settings import Settings
from clinic_pipeline_tests.conftest import SANDBOX_API_KEY
from clinic_pipeline_tests.e2e.flow import Resources, confirm_and_sign_off, full_load, generated_clinic

# Referring physicians are contacts without children: deleting them by hand leaves no orphaned links.
PHYSICIAN = "referring_physicians:"
ALTERED = "patients:1"
READS = ("GET ", "POST /filtered_search/")


def _migrated(tmp_path: Path, sandbox: SandboxHandle) -> tuple[Resources, dict[str, str]]:
    """A small generated clinic, migrated; and the environment the CLI reads for it."""
    resources, source = generated_clinic(tmp_path, sandbox)
    confirm_and_sign_off(resources, sandbox)
    assert full_load(resources).success
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLINIC_", "FRESHSALES_", "DAGSTER_"))} | {
        "CLINIC_DATA_DIR": str(tmp_path / "data"),
        "CLINIC_SOURCE": str(source),
        "FRESHSALES_BASE_URL": sandbox.base_url,
        "FRESHSALES_API_KEY": sandbox.api_key,
        "CLINIC_FALLBACK_OWNER_EMAIL": DEMO_FALLBACK_OWNER,
        "FRESHSALES_REQUESTS_PER_HOUR": "1000000",
        "FRESHSALES_REQUESTS_PER_MINUTE": "100000",
    }
    return resources, env


def _cli(args: list[str], env: dict[str, str], cwd: Path, code: int = 0) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "clinic_pipeline", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == code, (args, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout + result.stderr


def _requests(sandbox: SandboxHandle) -> Counter[str]:
    return Counter(httpx.get(f"{sandbox.root_url}/_sandbox/requests", timeout=10).json()["requests"])


def _writes(before: Counter[str], after: Counter[str]) -> dict[str, int]:
    """The API calls that change something, by endpoint, made between two counts."""
    return {k: n for k, n in (after - before).items() if not k.startswith(READS)}


def _snapshot(sandbox: SandboxHandle) -> dict[str, list[dict[str, Any]]]:
    snapshot: dict[str, list[dict[str, Any]]] = httpx.get(f"{sandbox.root_url}/_sandbox/snapshot", timeout=30).json()
    return snapshot


def _live(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if not r.get("is_deleted")]


def _ids(snapshot: dict[str, list[dict[str, Any]]]) -> dict[str, set[int]]:
    kinds = ("contacts", "sales_accounts", "deals", "appointments", "tasks", "notes", "documents")
    return {kind: {r["id"] for r in _live(snapshot[kind])} for kind in kinds}


def _api(sandbox: SandboxHandle, method: str, path: str, body: Any = None) -> None:
    headers = {"Authorization": f"Token token={sandbox.api_key}"}
    response = httpx.request(method, f"{sandbox.base_url}/api{path}", json=body, headers=headers, timeout=10)
    response.raise_for_status()


def _remove_document(db: Path, document_id: int) -> None:
    """What no API call can do: a file gone from Freshsales (the sandbox is stopped; it reloads on start)."""
    with sqlite3.connect(db) as con:
        assert con.execute("DELETE FROM records WHERE kind = 'document' AND id = ?", [document_id]).rowcount == 1


def _mapped_ids(settings: Settings, obj: str) -> set[int]:
    with open_state(settings.paths.state_db_path) as state:
        return {r.freshsales_id for r in state.id_map(obj).values()}


def test_repair_heals_exactly_what_was_lost_and_rollback_undoes_it(tmp_path: Path) -> None:
    db, port = tmp_path / "sandbox.sqlite", free_port()
    with running_sandbox(db, SANDBOX_API_KEY, test_mode=True, port=port) as sandbox:
        resources, env = _migrated(tmp_path, sandbox)
        loaded = _snapshot(sandbox)
    settings = resources_settings(resources)
    patient = next(c for c in loaded["contacts"] if c["external_id"] == ALTERED)
    victim_file = next(d for d in loaded["documents"] if d["targetable_id"] != patient["id"])
    _remove_document(db, victim_file["id"])

    with running_sandbox(db, SANDBOX_API_KEY, test_mode=True, port=port) as sandbox:
        physicians = [c for c in loaded["contacts"] if c["external_id"].startswith(PHYSICIAN)][:2]
        # Two contacts deleted and emptied from the Recycle Bin (their emails free again); two deals left in it.
        for contact in physicians:
            _api(sandbox, "DELETE", f"/contacts/{contact['id']}")
            _api(sandbox, "DELETE", f"/contacts/{contact['id']}/forget")
        deals = loaded["deals"][:2]
        for deal in deals:
            _api(sandbox, "DELETE", f"/deals/{deal['id']}")
        # An admin's workflow empties one field and overwrites another.
        _api(sandbox, "PUT", f"/contacts/{patient['id']}", {"contact": {"city": None, "address": "1 Workflow Way"}})
        tampered = _snapshot(sandbox)

        report = _cli(["report"], env, tmp_path, code=2)
        assert re.search(r"discrepancy: contacts: .*not in Freshsales", report), report
        assert re.search(r"discrepancy: deals: Freshsales counts \d+ records, the id map \d+ \(-2", report), report
        assert re.search(r"discrepancy: files: 1 of \d+ checked records are in the id map", report), report

        before = _requests(sandbox)
        out = _cli(["repair"], env, tmp_path)
        writes = _writes(before, _requests(sandbox))
        # One write per healed record, none for the records that matched.
        assert writes == {"POST /contacts": 2, "PUT /contacts/{id}": 1, "POST /deals": 2, "POST /documents": 1}, out
        assert re.search(r"^repaired contacts: \d+ checked, 2 re-created, 1 updated, 0 re-uploaded, 0 still", out, re.M)
        assert re.search(r"^repaired deals: \d+ checked, 2 re-created, 0 updated, 0 re-uploaded, 0 still", out, re.M)
        assert re.search(r"^repaired files: \d+ checked, 0 re-created, 0 updated, 1 re-uploaded, 0 still", out, re.M)
        run = re.search(r"^repair (\S+): 6 writes, 0 still failing, \d+ requests", out, re.M)
        assert run is not None, out
        assert "discrepancy" not in out and json.loads(settings.paths.validation_json.read_text())["ok"] is True
        # No source keys, names or values in what the operator reads.
        assert "patients:" not in out and PHYSICIAN not in out and "Workflow" not in out

        repaired = _snapshot(sandbox)
        fixed = next(c for c in repaired["contacts"] if c["id"] == patient["id"])
        assert (fixed["city"], fixed["address"]) == (patient["city"], patient["address"])
        back = {c["external_id"]: c["id"] for c in _live(repaired["contacts"])}
        assert all(back[p["external_id"]] not in (p["id"], None) for p in physicians)
        for kind, obj in (("contacts", "contacts"), ("deals", "deals"), ("documents", "files")):
            assert _mapped_ids(settings, obj) == {r["id"] for r in _live(repaired[kind])}, kind
        # Repairing a clean migration writes nothing.
        assert "nothing to repair" in _cli(["repair"], env, tmp_path)

        before = _requests(sandbox)
        undone = _cli(["rollback", "--run", run.group(1)], env, tmp_path)
        assert re.search(r"^contacts: 2 deleted, 1 restored, ", undone, re.M), undone
        assert re.search(r"^deals: 2 deleted, 0 restored, ", undone, re.M), undone
        # The API cannot delete a document, and its contact stays: left for an admin, and said so.
        assert re.search(r"^files: 0 deleted, .* 1 not supported$", undone, re.M), undone
        rolled = _snapshot(sandbox)
        again = next(c for c in rolled["contacts"] if c["id"] == patient["id"])
        assert (again["city"], again["address"]) == (None, "1 Workflow Way")
        # Every record of the load is as the tampering left it; only the re-uploaded file stays on.
        after, expected = _ids(rolled), _ids(tampered)
        reuploaded = after["documents"] - expected["documents"]
        assert len(reuploaded) == 1 and {**after, "documents": after["documents"] - reuploaded} == expected
        assert {k for k in _writes(before, _requests(sandbox)) if k.startswith("PUT")} == {"PUT /contacts/{id}"}


def _children(snapshot: dict[str, list[dict[str, Any]]], contact_id: int) -> dict[str, list[dict[str, Any]]]:
    """A contact's records by kind: linked by targetable id (activities, notes), contact ids (deals) or lookup."""

    def linked(kind: str, record: dict[str, Any]) -> bool:
        if kind == "deals":
            return contact_id in (record.get("contact_ids") or [])
        return (
            record.get("targetable_id") == contact_id
            or (record.get("custom_field") or {}).get("cf_contact") == contact_id
        )

    kinds = [k for k in snapshot if k not in ("contacts", "sales_accounts", "documents") and k.endswith("s")]
    return {kind: [r for r in _live(snapshot[kind]) if isinstance(r, dict) and linked(kind, r)] for kind in kinds}


# What a rollback cannot put back (a link to the deleted contact) or the server sets on every write.
UNRESTORABLE = ("targetable_id", "contact_ids", "appointment_attendees", "updated_at")


def _restorable_part(record: dict[str, Any]) -> dict[str, Any]:
    custom = {k: v for k, v in (record.get("custom_field") or {}).items() if k != "cf_contact"}
    return {k: v for k, v in record.items() if k not in UNRESTORABLE and k != "custom_field"} | {"custom": custom}


@pytest.mark.slow  # a scenario of minutes: CI runs it in `make test-slow`
def test_a_patient_deleted_by_hand_comes_back_with_its_children_and_rollback_says_what_it_cannot_relink(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    resources, env = _migrated(tmp_path, sandbox)
    # A clean migration: the Dagster job runs the same step as the CLI and writes nothing.
    before = _requests(sandbox)
    assert repair_job.execute_in_process(resources=resources).success
    assert _requests(sandbox) == before
    settings = resources_settings(resources)

    loaded = _snapshot(sandbox)
    patients = [c for c in _live(loaded["contacts"]) if c["external_id"].startswith("patients:")]
    patient = max(patients, key=lambda c: sum(len(v) for v in _children(loaded, c["id"]).values()))
    children = _children(loaded, patient["id"])
    assert sum(len(v) for v in children.values()) >= 3, {k: len(v) for k, v in children.items()}
    _api(sandbox, "DELETE", f"/contacts/{patient['id']}")
    _api(sandbox, "DELETE", f"/contacts/{patient['id']}/forget")
    tampered = _snapshot(sandbox)

    assert re.search(r"discrepancy: contacts: ", _cli(["report"], env, tmp_path, code=2))
    out = _cli(["repair"], env, tmp_path)
    run = re.search(r"^repair (\S+): \d+ writes, 0 still failing", out, re.M)
    assert run is not None, out
    assert re.search(r"^repaired contacts: \d+ checked, 1 re-created, 0 updated", out, re.M), out
    assert json.loads(settings.paths.validation_json.read_text())["ok"] is True
    repaired = _snapshot(sandbox)
    (again,) = [c for c in _live(repaired["contacts"]) if c["external_id"] == patient["external_id"]]
    # Every child follows its contact's new id; notes, which no call can move, are written again.
    relinked = _children(repaired, again["id"])
    assert {k: len(v) for k, v in relinked.items()} == {k: len(v) for k, v in children.items()}
    assert {k: sorted(r["id"] for r in v) for k, v in relinked.items() if k != "notes"} == {
        k: sorted(r["id"] for r in v) for k, v in children.items() if k != "notes"
    }

    undone = _cli(["rollback", "--run", run.group(1)], env, tmp_path)
    assert re.search(r"^contacts: 1 deleted, 0 restored, .* 0 failed", undone, re.M), undone
    # Every record the repair re-linked (an update of its link alone) is put back, but for that link.
    relinked_count = sum(
        int(n) for n in re.findall(r"^repaired (?!contacts)\w+: \d+ checked, \d+ re-created, (\d+) updated", out, re.M)
    )
    assert relinked_count >= sum(len(v) for k, v in children.items() if k != "notes"), out
    said = [int(n) for n in re.findall(r"^\w+: (\d+) restored without their link to a record deleted", undone, re.M)]
    assert sum(said) == relinked_count, undone
    assert "rollback cli-rollback-" in undone and "failed" not in undone.replace(" 0 failed", ""), undone
    rolled = _snapshot(sandbox)
    assert all(c["external_id"] != patient["external_id"] for c in _live(rolled["contacts"]))
    # Each child is as the deletion left it, but for the link to its contact, which no one can restore.
    by_id = {(kind, r["id"]): r for kind in children for r in tampered[kind]}
    for kind, records in children.items():
        for record in records:
            now = next(r for r in rolled[kind] if r["id"] == record["id"])
            assert _restorable_part(now) == _restorable_part(by_id[kind, record["id"]]), kind
