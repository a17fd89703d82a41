"""Asynchronous bulk upsert: a job is queued, applied after a short delay, and reported by `/job_statuses/:id`.

Item shape (at most 100 per request): `{"unique_identifier": {"emails": "a@b.c"}, "data": {...}}`;
`{"emails": "a@b.c", "data": {...}}` (the identifier beside `data`) is accepted too.
`GET /job_statuses/:id` answers
`{"job_status": {"id", "entity", "status": "in_progress"|"completed", "progress": 0..100, "total",
"processed", "succeeded", "failed", "results": [{"index", "status": 201|200|4xx, "action":
"created"|"updated"|"failed", "id" (int or null), "errors": null | {"code", "message": [...]}}]}}`;
results are empty until the job completes. A job is applied at most once, even across restarts.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from clinic_pipeline.sandbox.entities import Context
from clinic_pipeline.sandbox.errors import ApiError, not_found
from clinic_pipeline.sandbox.records import UPSERT_IDENTIFIERS, upsert
from clinic_pipeline.sandbox.store import Record, Store

MAX_BULK_ITEMS = 100
JOB_DELAY_SECONDS = 0.3


def _items(kind: str, plural: str, body: Any) -> list[dict[str, Any]]:
    items = body.get(plural) if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise ApiError(400, f"Request body must hold a non-empty {plural} list")
    if len(items) > MAX_BULK_ITEMS:
        raise ApiError(400, f"At most {MAX_BULK_ITEMS} {plural} per bulk_upsert request (got {len(items)})")
    normalised = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
            raise ApiError(400, f"{plural}[{index}] must hold a data object")
        identifier = item.get("unique_identifier")
        if identifier is None:
            identifier = {k: v for k, v in item.items() if k != "data"}
        elif set(item) != {"unique_identifier", "data"}:
            raise ApiError(400, f"{plural}[{index}] may hold only unique_identifier and data")
        if (
            not isinstance(identifier, dict)
            or len(identifier) != 1
            or next(iter(identifier)) not in UPSERT_IDENTIFIERS[kind]
        ):
            raise ApiError(
                400, f"{plural}[{index}] needs exactly one identifier of: {', '.join(UPSERT_IDENTIFIERS[kind])}"
            )
        normalised.append({"unique_identifier": identifier, "data": item["data"]})
    return normalised


def submit(ctx: Context, kind: str, plural: str, body: Any) -> Record:
    job = {
        "id": ctx.store.next_id(),
        "entity": plural,
        "kind": kind,
        "user_id": ctx.user_id,
        "items": _items(kind, plural, body),
        "ready_at": time.time() + JOB_DELAY_SECONDS,
        "results": None,
    }
    ctx.store.put("job", job)
    asyncio.get_running_loop().call_later(JOB_DELAY_SECONDS, finish_due_jobs, ctx.store)
    return job


def _apply(store: Store, job: Record) -> Record:
    ctx = Context(store, job["user_id"])
    results = []
    for index, item in enumerate(job["items"]):
        try:
            record, created = upsert(ctx, job["kind"], item["unique_identifier"], item["data"])
            results.append(
                {
                    "index": index,
                    "status": 201 if created else 200,
                    "action": "created" if created else "updated",
                    "id": record["id"],
                    "errors": None,
                }
            )
        except ApiError as exc:
            results.append(
                {
                    "index": index,
                    "status": exc.status,
                    "action": "failed",
                    "id": None,
                    "errors": {"code": exc.status, "message": exc.messages},
                }
            )
    return store.put("job", {**job, "results": results})


def finish_due_jobs(store: Store) -> None:
    now = time.time()
    for job in sorted(store.all("job"), key=lambda j: j["id"]):
        if job["results"] is None and job["ready_at"] <= now:
            _apply(store, job)


def status(store: Store, job_id: int) -> dict[str, Any]:
    finish_due_jobs(store)
    job = store.get("job", job_id)
    if job is None:
        raise not_found("Job")
    results = job["results"]
    total = len(job["items"])
    done = results is not None
    return {
        "id": job["id"],
        "entity": job["entity"],
        "status": "completed" if done else "in_progress",
        "progress": 100 if done else 0,
        "total": total,
        "processed": total if done else 0,
        "succeeded": sum(r["errors"] is None for r in results) if done else 0,
        "failed": sum(r["errors"] is not None for r in results) if done else 0,
        "results": results or [],
    }
