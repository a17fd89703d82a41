"""Operations against the sandbox: CRUD, views and paging, upsert, bulk jobs, search, schema, files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from clinic_pipeline.freshsales import FreshsalesClient, NotFoundError, ViewNotFoundError, money_field
from clinic_pipeline_tests.freshsales.conftest import MakeClient


def _add_field(control: httpx.Client, entity: str, name: str, type_: str = "text") -> None:
    response = control.post(f"/settings/{entity}/fields", json={"label": name, "name": name, "type": type_})
    assert response.status_code == 201, response.text


def test_crud_round_trip(client: FreshsalesClient, control: httpx.Client) -> None:
    account = client.create("sales_accounts", {"name": "Northside Clinic", "city": "Leeds"})
    assert isinstance(account["id"], int)
    contact = client.create(
        "contacts",
        {
            "first_name": "Ana",
            "last_name": "Silva",
            "email": "ana@example.com",
            "external_id": "P-1",
            "sales_accounts": [{"id": account["id"], "is_primary": True}],
        },
    )
    got = client.get("contacts", contact["id"], include="sales_accounts")
    assert got["external_id"] == "P-1"
    assert [a["id"] for a in got["sales_accounts"]] == [account["id"]]

    updated = client.update("contacts", contact["id"], {"job_title": "Teacher"})
    assert updated["job_title"] == "Teacher"
    assert client.get("contacts", contact["id"])["job_title"] == "Teacher"

    deal = client.create("deals", {"name": "Visit 2024-03-01", "amount": "120.10", "sales_account_id": account["id"]})
    assert str(money_field(client.get("deals", deal["id"]), "amount")) in ("120.10", "120.1")

    client.delete("contacts", contact["id"])
    assert client.get("contacts", contact["id"]).get("is_deleted") is True
    client.forget("contacts", contact["id"])
    with pytest.raises(NotFoundError):
        client.get("contacts", contact["id"])
    assert control.get("/snapshot").json()["contacts"] == []


def test_iter_view_pages_through_every_record_and_count_uses_meta(client: FreshsalesClient) -> None:
    for i in range(23):
        client.create("sales_accounts", {"name": f"Clinic {i:02d}"})
    view = client.find_view("sales_accounts", "All Accounts")
    names = [r["name"] for r in client.iter_view("sales_accounts", view.id, per_page=5)]
    assert sorted(names) == [f"Clinic {i:02d}" for i in range(23)]
    assert client.count("sales_accounts", view.id) == 23
    views = client.request_counts
    # 5 pages of 5 (the last one short) and one per_page=1 count: no empty trailing page needed.
    assert views["GET /sales_accounts/view/{view_id}"] == 5 + 1


def test_find_view_matches_names_falls_back_and_explains_absence(client: FreshsalesClient) -> None:
    assert client.find_view("contacts", "Every Patient", "all  contacts").name == "All Contacts"
    assert client.find_view("contacts").name == "All Contacts"
    assert client.find_view("deals").is_default  # no "All Deals": the account's default view
    with pytest.raises(ViewNotFoundError) as caught:
        client.find_view("deals", "All Deals")
    assert "Open Deals" in str(caught.value)


def test_upsert_reports_created_then_updated(client: FreshsalesClient) -> None:
    first, created = client.upsert("contacts", {"emails": "bo@example.com"}, {"first_name": "Bo", "last_name": "K"})
    assert created
    second, created_again = client.upsert("contacts", {"emails": "bo@example.com"}, {"job_title": "Nurse"})
    assert not created_again
    assert second["id"] == first["id"]
    assert second["job_title"] == "Nurse"


def test_bulk_upsert_splits_above_100_and_polls_until_done(client: FreshsalesClient, control: httpx.Client) -> None:
    items = [{"unique_identifier": {"name": f"Practice {i:03d}"}, "data": {"city": "York"}} for i in range(130)]
    job = client.bulk_upsert("sales_accounts", items)
    assert job.done and not job.failed
    assert job.total == 130 and job.succeeded == 130
    assert sorted(r["index"] for r in job.results) == list(range(130))
    assert client.request_counts["POST /sales_accounts/bulk_upsert"] == 2
    assert client.request_counts["GET /job_statuses/{id}"] >= 2
    assert len(control.get("/snapshot").json()["sales_accounts"]) == 130

    items[0]["data"] = {"city": "Hull"}
    again = client.bulk_upsert("sales_accounts", items[:1])
    assert again.results[0]["action"] == "updated"


def test_find_by_keys_over_100_keys_by_external_id_and_custom_field(
    client: FreshsalesClient, control: httpx.Client
) -> None:
    _add_field(control, "sales_accounts", "cf_source_key")
    for i in range(130):
        client.create("contacts", {"first_name": "P", "last_name": str(i), "external_id": f"pat-{i}"})
    for i in range(5):
        client.create("sales_accounts", {"name": f"Payer {i}", "custom_field": {"cf_source_key": f"payer-{i}"}})

    keys = [f"pat-{i}" for i in range(0, 150)]  # 20 of them are not in Freshsales
    found = client.find_by_keys("contacts", "external_id", keys)
    assert sorted(found) == sorted(f"pat-{i}" for i in range(130))
    assert all(isinstance(r["id"], int) for r in found.values())  # search answers give string ids
    assert client.request_counts["POST /filtered_search/contact"] == 2

    payers = client.find_by_keys("sales_accounts", "cf_source_key", ["payer-1", "payer-4", "payer-9"])
    assert {k: r["name"] for k, r in payers.items()} == {"payer-1": "Payer 1", "payer-4": "Payer 4"}


def test_filtered_search_and_lookup(client: FreshsalesClient) -> None:
    client.create("contacts", {"first_name": "Cy", "last_name": "D", "email": "cy@example.com", "external_id": "c1"})
    rows = client.filtered_search("contacts", [{"attribute": "external_id", "operator": "is_in", "value": ["c1"]}])
    assert [r["external_id"] for r in rows] == ["c1"]
    found = client.lookup("cy@example.com", "email", ["contacts", "sales_account"])
    assert [r["external_id"] for r in found["contacts"]] == ["c1"]
    assert found["sales_accounts"] == []
    assert isinstance(found["contacts"][0]["id"], int)


def test_tasks_and_appointments_need_a_filter_and_page_on_total(client: FreshsalesClient) -> None:
    contact = client.create("contacts", {"first_name": "T", "last_name": "T", "external_id": "t"})
    for i in range(3):
        client.create(
            "tasks",
            {
                "title": f"Follow-up {i}",
                "due_date": f"2020-01-0{i + 1}T10:00:00Z",
                "targetable_type": "Contact",
                "targetable_id": contact["id"],
            },
        )
    client.create(
        "appointments",
        {
            "title": "Visit",
            "from_date": "2020-02-01T10:00:00Z",
            "end_date": "2020-02-01T10:30:00Z",
            "targetable_type": "Contact",
            "targetable_id": contact["id"],
        },
    )
    assert len(client.list_tasks("open")) == 3
    assert len(client.list_tasks("completed")) == 0
    assert [a["title"] for a in client.list_appointments("past")] == ["Visit"]


def test_reference_data_and_field_definitions(client: FreshsalesClient, control: httpx.Client) -> None:
    owners = client.owners()
    assert any(o.email == "ada.admin@clinic.example" for o in owners)
    assert any(not o.is_active for o in owners)
    assert all(o.id > 2**32 for o in owners)
    assert client.selector("deal_stages")
    _add_field(control, "contacts", "cf_date_of_birth", "date")
    fields = {f.name: f for f in client.field_definitions("contacts")}
    assert fields["cf_date_of_birth"].type == "date" and fields["cf_date_of_birth"].is_custom


def test_custom_module_schema_and_records(client: FreshsalesClient) -> None:
    module = client.create_module("Lab Result", "Lab Results")
    assert module.name == "cm_lab_result"
    assert any(m.name == "cm_lab_result" for m in client.module_customizations())
    field = client.create_module_field(module.name, module.forms[0].id, "Test Code", "text")
    assert field.name == "cf_test_code"
    assert "cf_test_code" in {f.name for f in client.field_definitions("cm_lab_result")}

    record = client.create("cm_lab_result", {"name": "HbA1c", "custom_field": {"cf_test_code": "4548-4"}})
    same = client.get("custom_module/cm_lab_result", record["id"])
    assert same["custom_field"]["cf_test_code"] == "4548-4"
    hits = client.find_by_keys("cm_lab_result", "cf_test_code", ["4548-4"])
    assert hits["4548-4"]["id"] == record["id"]
    view = client.find_view("cm_lab_result")
    assert [r["id"] for r in client.iter_view("cm_lab_result", view.id)] == [record["id"]]
    client.bulk_destroy("cm_lab_result", [record["id"]])
    assert client.count("cm_lab_result", view.id) == 0


def test_documents_upload_streamed_and_links(client: FreshsalesClient, control: httpx.Client, tmp_path: Path) -> None:
    contact = client.create("contacts", {"first_name": "F", "last_name": "F", "external_id": "f"})
    scan = tmp_path / "scan.pdf"
    content = b"%PDF-1.4\n" + bytes(range(256)) * 4096  # ~1 MB
    scan.write_bytes(content)
    document = client.upload_document(scan, "referral.pdf", "Contact", contact["id"])
    assert document["content_file_size"] == len(content)
    stored = control.get("/snapshot").json()["documents"][0]
    assert stored["sha256"] == hashlib.sha256(content).hexdigest()
    link = client.create_document_link("contacts", contact["id"], "https://files.example/x.tif", name="big scan")
    kinds = sorted(d["document_type"] for d in client.document_associations("contacts", contact["id"]))
    assert kinds == ["document", "document_link"]
    assert link["name"] == "big scan"


def test_one_client_serves_a_thread_pool(make_client: MakeClient, control: httpx.Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = make_client()
    with ThreadPoolExecutor(max_workers=6) as pool:
        created = list(pool.map(lambda i: client.create("sales_accounts", {"name": f"Site {i}"})["id"], range(40)))
    assert len(set(created)) == 40
    assert client.stats["requests"] == 40
    assert control.get("/requests").json()["requests"]["POST /sales_accounts"] == 40
