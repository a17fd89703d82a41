"""Custom modules with their fields and records; documents, document links and their associations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from clinic_pipeline.sandbox.launcher import SandboxHandle, running_sandbox


def _module(api: httpx.Client) -> dict[str, Any]:
    spec = {"module_customization": {"singular_name": "Insurance Plan", "plural_name": "Insurance Plans"}}
    response = api.post("/settings/module_customizations", json=spec)
    assert response.status_code == 201, response.text
    return response.json()["module_customization"]


def test_custom_module_with_fields_records_views_and_search(api: httpx.Client, sandbox: SandboxHandle) -> None:
    module = _module(api)
    assert module["name"] == "cm_insurance_plan"
    assert (
        api.post(
            "/settings/module_customizations",
            json={"module_customization": {"singular_name": "Insurance Plan", "plural_name": "x"}},
        ).status_code
        == 400
    )
    listed = api.get("/settings/module_customizations").json()["module_customizations"]
    assert "cm_insurance_plan" in [m["name"] for m in listed]
    form = module["forms"][0]["id"]
    fields_url = f"/settings/cm_insurance_plan/forms/{form}/fields"
    policy = api.post(fields_url, json={"label": "Policy number", "field_type": "text", "required": True})
    assert policy.status_code == 201
    assert policy.json()["field"]["name"] == "cf_policy_number"
    patient = api.post(
        fields_url, json={"label": "Patient", "field_type": "lookup", "required": False, "related_entity": "contact"}
    )
    assert patient.status_code == 201
    assert api.post(fields_url, json={"label": "Patient", "field_type": "text"}).status_code == 409
    assert (
        api.post(
            f"/settings/cm_insurance_plan/forms/{form + 1}/fields", json={"label": "x", "field_type": "text"}
        ).status_code
        == 404
    )
    member = {"Authorization": f"Token token={sandbox.api_key}-member"}
    assert api.post(fields_url, json={"label": "y", "field_type": "text"}, headers=member).status_code == 403
    names = [f["name"] for f in api.get("/settings/cm_insurance_plan/fields").json()["fields"]]
    assert names == ["name", "cf_policy_number", "cf_patient"]

    contact = api.post("/contacts", json={"contact": {"email": "ins@example.com"}}).json()["contact"]["id"]
    good = {"name": "Gold PPO", "custom_field": {"cf_policy_number": "POL-1", "cf_patient": contact}}
    record = api.post("/custom_module/cm_insurance_plan", json={"cm_insurance_plan": good})
    assert record.status_code == 201, record.text
    rid = record.json()["cm_insurance_plan"]["id"]
    dangling = {"name": "x", "custom_field": {"cf_policy_number": "P", "cf_patient": 12345678901}}
    assert api.post("/custom_module/cm_insurance_plan", json={"cm_insurance_plan": dangling}).status_code == 400
    no_policy = {"name": "x", "custom_field": {"cf_patient": contact}}
    assert (
        "cf_policy_number" in api.post("/custom_module/cm_insurance_plan", json={"cm_insurance_plan": no_policy}).text
    )
    changed = api.put(f"/custom_module/cm_insurance_plan/{rid}", json={"cm_insurance_plan": {"name": "Gold HMO"}})
    assert changed.json()["cm_insurance_plan"]["custom_field"]["cf_policy_number"] == "POL-1"

    views = api.get("/custom_module/cm_insurance_plan/filters").json()["filters"]
    everything = next(v["id"] for v in views if v["name"] == "All Insurance Plans")
    page = api.get(f"/custom_module/cm_insurance_plan/view/{everything}").json()
    assert [r["name"] for r in page["cm_insurance_plan"]] == ["Gold HMO"]
    assert page["meta"] == {"total_pages": 1, "total": 1}
    found = api.post(
        "/filtered_search/cm_insurance_plan",
        json={"filter_rule": [{"attribute": "cf_policy_number", "operator": "is_in", "value": ["POL-1"]}]},
    )
    assert [r["id"] for r in found.json()["cm_insurance_plan"]] == [str(rid)]
    assert api.post("/custom_module/cm_insurance_plan/bulk_destroy", json={"selected_ids": [rid]}).status_code == 200
    assert api.get(f"/custom_module/cm_insurance_plan/view/{everything}").json()["meta"]["total"] == 0
    assert api.get(f"/custom_module/cm_insurance_plan/{rid}").json()["cm_insurance_plan"]["is_deleted"] is True
    assert api.delete(f"/custom_module/cm_insurance_plan/{rid}/forget").status_code == 200
    assert api.get("/custom_module/cm_nothing/filters").status_code == 404


def test_standard_entity_custom_fields_cannot_be_made_through_the_api(api: httpx.Client) -> None:
    response = api.post("/settings/contacts/forms/1/fields", json={"label": "Plan", "field_type": "text"})
    assert response.status_code == 404


def test_documents_and_links_attach_to_records(api: httpx.Client, control: httpx.Client) -> None:
    contact = api.post("/contacts", json={"contact": {"email": "doc@example.com"}}).json()["contact"]["id"]
    form = {
        "file_name": "referral.pdf",
        "is_shared": "true",
        "targetable_id": str(contact),
        "targetable_type": "Contact",
    }
    upload = api.post("/documents", data=form, files={"file": ("r.pdf", b"%PDF-1.4 hello", "application/pdf")})
    assert upload.status_code == 201, upload.text
    document = upload.json()["document"]
    assert (document["name"], document["content_file_size"], document["is_shared"]) == ("referral.pdf", 14, True)
    link = api.post(
        "/document_links",
        json={
            "document_link": {
                "name": "scan",
                "url": "https://files.example/scan.tif",
                "targetable_type": "Contact",
                "targetable_id": contact,
            }
        },
    )
    assert link.status_code == 201
    associations = api.get(f"/contacts/{contact}/document_associations").json()["document_associations"]
    assert [(a["document_type"], a["name"]) for a in associations] == [
        ("document", "referral.pdf"),
        ("document_link", "scan"),
    ]
    orphan = {**form, "targetable_id": "12345678901"}
    assert api.post("/documents", data=orphan, files={"file": ("r.pdf", b"x")}).status_code == 400
    assert api.post("/documents", data=form).status_code == 400
    snapshot = control.get("/snapshot").json()
    assert snapshot["documents"][0]["sha256"] and "created_at" not in snapshot["documents"][0]


def test_files_over_the_configured_limit_are_refused(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "db.sqlite", "k", max_file_bytes=1000) as handle:
        headers = {"Authorization": "Token token=k"}
        with httpx.Client(base_url=f"{handle.base_url}/api", headers=headers) as api:
            contact = api.post("/contacts", json={"contact": {"email": "big@example.com"}}).json()["contact"]["id"]
            form = {"file_name": "scan.tif", "targetable_id": str(contact), "targetable_type": "Contact"}
            assert api.post("/documents", data=form, files={"file": ("a", b"x" * 1000)}).status_code == 201
            over = api.post("/documents", data=form, files={"file": ("a", b"x" * 1001)})
            assert over.status_code == 400
            assert "limit" in over.json()["errors"]["message"][0]
            far_over = api.post("/documents", data=form, files={"file": ("a", b"x" * 200_000)})
            assert far_over.status_code == 400
        stored = list((tmp_path / "db.sqlite.files").iterdir())
        assert [p.stat().st_size for p in stored] == [1000]
