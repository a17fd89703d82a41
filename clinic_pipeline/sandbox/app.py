"""Routes: the Freshsales API under both `/crm/sales/api/` and `/api/`, and the test-mode controls."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from clinic_pipeline.sandbox import jobs, modules, queries, records
from clinic_pipeline.sandbox.control import control_routes
from clinic_pipeline.sandbox.entities import STANDARD_FIELDS, TARGETABLE_KINDS, Context, now_iso
from clinic_pipeline.sandbox.errors import FORBIDDEN, ApiError, not_found
from clinic_pipeline.sandbox.runtime import Handler, Sandbox, api_endpoint, error_response, json_response
from clinic_pipeline.sandbox.seed import ADMIN_SELECTORS, SELECTORS, filters_for

VIEW_ENTITIES = {"contacts": "contact", "sales_accounts": "sales_account", "deals": "deal"}
ID_ENTITIES = {**VIEW_ENTITIES, "tasks": "task", "appointments": "appointment", "sales_activities": "sales_activity"}
TASK_FILTERS = ("open", "completed", "overdue", "due today", "due tomorrow")
APPOINTMENT_FILTERS = ("past", "upcoming")
SEARCH_KINDS = ("contact", "sales_account", "deal")


async def _body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise ApiError(400, "Request body must be valid JSON") from None


def _root(body: Any, root: str) -> Any:
    if not isinstance(body, dict) or root not in body:
        raise ApiError(400, f'Request body must be wrapped in {{"{root}": {{...}}}}')
    return body[root]


def _id(request: Request, name: str = "id") -> int:
    return int(request.path_params[name])


def _one(ctx: Context, request: Request, kind: str, root: str, record: dict[str, Any], status: int = 200) -> Response:
    return json_response(
        {root: record, **records.side_loads(ctx, kind, record, request.query_params.get("include"))}, status
    )


Resolve = Callable[[Request, Context], tuple[str, str]]


def _fixed(kind: str, plural: str) -> Resolve:
    return lambda request, ctx: (kind, plural)


def _custom_module(request: Request, ctx: Context) -> tuple[str, str]:
    """Custom module records: the module name is a path parameter, checked on every call."""
    name = request.path_params["cm"]
    if not name.startswith("cm_"):
        raise not_found("Custom module")
    modules.require_module(ctx.store, name)
    return name, name


def _entity_routes(path: str, resolve: Resolve) -> list[tuple[str, str, Handler]]:
    """CRUD by id, recycle bin and forget: shared by standard entities and custom modules."""

    async def create(request: Request, ctx: Context) -> Response:
        kind, _ = resolve(request, ctx)
        return _one(ctx, request, kind, kind, records.create(ctx, kind, _root(await _body(request), kind)), 201)

    async def view(request: Request, ctx: Context) -> Response:
        kind, _ = resolve(request, ctx)
        return _one(ctx, request, kind, kind, records.fetch(ctx, kind, _id(request)))

    async def change(request: Request, ctx: Context) -> Response:
        kind, _ = resolve(request, ctx)
        body = _root(await _body(request), kind)
        return _one(ctx, request, kind, kind, records.update(ctx, kind, _id(request), body))

    async def delete(request: Request, ctx: Context) -> Response:
        kind, _ = resolve(request, ctx)
        records.soft_delete(ctx, kind, _id(request))
        return json_response(True)

    async def forget(request: Request, ctx: Context) -> Response:
        kind, _ = resolve(request, ctx)
        records.forget(ctx, kind, _id(request))
        return json_response(True)

    return [
        ("POST", path, create),
        ("GET", f"{path}/{{id:int}}", view),
        ("PUT", f"{path}/{{id:int}}", change),
        ("DELETE", f"{path}/{{id:int}}", delete),
        ("DELETE", f"{path}/{{id:int}}/forget", forget),
    ]


def _view_routes(path: str, resolve: Resolve) -> list[tuple[str, str, Handler]]:
    def filters(ctx: Context, kind: str, plural: str) -> list[dict[str, Any]]:
        if kind.startswith("cm_"):
            return list(modules.require_module(ctx.store, kind)["filters"])
        return filters_for(plural)

    async def list_filters(request: Request, ctx: Context) -> Response:
        # Captured answers carry an empty `meta` (the list is not paged); clients that page every list
        # (n8n reads `meta.total_pages`) fail on a body without it.
        return json_response({"filters": filters(ctx, *resolve(request, ctx)), "meta": {}})

    async def view(request: Request, ctx: Context) -> Response:
        kind, plural = resolve(request, ctx)
        view_id = _id(request, "view_id")
        found = next((f for f in filters(ctx, kind, plural) if f["id"] == view_id), None)
        if found is None:
            raise not_found("View")
        chosen = [r for r in ctx.store.all(kind) if queries.in_view(kind, found["name"], r, ctx.user_id)]
        page, meta = queries.page_of(queries.sort_records(chosen, request.query_params), request.query_params)
        body: dict[str, Any] = {plural: page, "meta": meta}
        for item in page:
            for key, rows in records.side_loads(ctx, kind, item, request.query_params.get("include")).items():
                known = body.setdefault(key, [])
                known.extend(r for r in rows if r not in known)
        return json_response(body)

    async def bulk_destroy(request: Request, ctx: Context) -> Response:
        kind, plural = resolve(request, ctx)
        body = await _body(request)
        ids = body.get("selected_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int | str) and str(i).isdigit() for i in ids):
            raise ApiError(400, "selected_ids must be a non-empty list of ids")
        missing = [i for i in ids if (r := ctx.store.get(kind, int(i))) is None or r.get("is_deleted")]
        if missing:
            raise ApiError(400, *(f"{kind} {i} does not exist" for i in missing))
        for i in ids:
            records.soft_delete(ctx, kind, int(i))
        return json_response({"message": f"{len(ids)} {plural} moved to the Recycle Bin"})

    return [
        ("GET", f"{path}/filters", list_filters),
        ("GET", f"{path}/view/{{view_id:int}}", view),
        ("POST", f"{path}/bulk_destroy", bulk_destroy),
    ]


def _upsert_routes(plural: str, kind: str) -> list[tuple[str, str, Handler]]:
    async def upsert(request: Request, ctx: Context) -> Response:
        body = await _body(request)
        if not isinstance(body, dict) or "unique_identifier" not in body:
            raise ApiError(400, "Request body must hold unique_identifier")
        record, created = records.upsert(ctx, kind, body["unique_identifier"], _root(body, kind))
        return _one(ctx, request, kind, kind, record, 201 if created else 200)

    async def bulk_upsert(request: Request, ctx: Context) -> Response:
        job = jobs.submit(ctx, kind, plural, await _body(request))
        prefix = request.url.path.split(f"/{plural}/")[0]
        url = f"{request.base_url}".rstrip("/") + f"{prefix}/job_statuses/{job['id']}"
        return json_response({"job_status_url": url, "message": f"{len(job['items'])} {plural} queued for upsert"}, 202)

    async def documents(request: Request, ctx: Context) -> Response:
        target = records.fetch(ctx, kind, _id(request))
        model = {v: k for k, v in TARGETABLE_KINDS.items()}[kind]
        found = [
            {**r, "document_type": stored_kind}
            for stored_kind in ("document", "document_link")
            for r in ctx.store.all(stored_kind)
            if r["targetable_type"] == model and r["targetable_id"] == target["id"]
        ]
        return json_response({"document_associations": sorted(found, key=lambda r: r["id"])})

    return [
        ("POST", f"/{plural}/upsert", upsert),
        ("POST", f"/{plural}/bulk_upsert", bulk_upsert),
        ("GET", f"/{plural}/{{id:int}}/document_associations", documents),
    ]


async def bulk_assign_owner(request: Request, ctx: Context) -> Response:
    body = await _body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be an object")
    ids = body.get("selected_ids")
    if not isinstance(ids, list) or not ids:
        raise ApiError(400, "selected_ids must be a non-empty list of ids")
    ctx.user(body.get("owner_id"), "owner_id")
    for rid in ids:
        ctx.record("contact", rid, "selected_ids")
    for rid in ids:
        records.update(ctx, "contact", int(rid), {"owner_id": body["owner_id"]})
    return json_response({"message": f"{len(ids)} contacts assigned"})


def _listing(plural: str, kind: str, filters: tuple[str, ...] | None) -> Handler:
    async def listing(request: Request, ctx: Context) -> Response:
        params = request.query_params
        rows = [r for r in ctx.store.all(kind) if not r.get("is_deleted")]
        if filters is not None:
            name = params.get("filter")
            if name not in filters:
                raise ApiError(400, f"filter is required: one of {', '.join(filters)}")
            test = queries.task_filter if kind == "task" else queries.appointment_filter
            rows = [r for r in rows if test(r, name)]
        page, meta = queries.page_of(queries.sort_records(rows, params), params)
        # Tasks and appointments report the total only.
        return json_response({plural: page, "meta": {"total": meta["total"]} if filters else meta})

    return listing


async def selector(request: Request, ctx: Context) -> Response:
    name = request.path_params["name"]
    if name in ADMIN_SELECTORS:
        if not request.app.state.sandbox.is_admin(ctx.user_id):
            raise ApiError(403, FORBIDDEN)
        users = sorted(ctx.store.all("user"), key=lambda u: u["id"])
        return json_response({"users": users})
    if name not in SELECTORS:
        raise not_found("Selector")
    return json_response({name: SELECTORS[name]})


async def field_list(request: Request, ctx: Context) -> Response:
    return json_response({"fields": modules.field_definitions(ctx.store, request.path_params["entity"])})


async def list_modules(request: Request, ctx: Context) -> Response:
    return json_response({"module_customizations": modules.module_listing(ctx.store)})


async def create_module(request: Request, ctx: Context) -> Response:
    if not request.app.state.sandbox.is_admin(ctx.user_id):
        raise ApiError(403, FORBIDDEN)
    return json_response({"module_customization": modules.create_module(ctx.store, await _body(request))}, 201)


async def create_module_field(request: Request, ctx: Context) -> Response:
    if not request.app.state.sandbox.is_admin(ctx.user_id):
        raise ApiError(403, FORBIDDEN)
    definition = modules.add_module_field(
        ctx.store, request.path_params["entity"], _id(request, "form_id"), await _body(request)
    )
    return json_response({"field": modules.public_field(definition)}, 201)


async def notes_create(request: Request, ctx: Context) -> Response:
    return json_response({"note": records.create(ctx, "note", _root(await _body(request), "note"))}, 201)


async def notes_update(request: Request, ctx: Context) -> Response:
    return json_response({"note": records.update(ctx, "note", _id(request), _root(await _body(request), "note"))})


async def notes_delete(request: Request, ctx: Context) -> Response:
    records.fetch(ctx, "note", _id(request))
    ctx.store.remove("note", _id(request))
    return json_response(True)


def _target(ctx: Context, ttype: Any, tid: Any) -> tuple[str, int]:
    if ttype not in TARGETABLE_KINDS:
        raise ApiError(400, f"targetable_type must be one of {', '.join(TARGETABLE_KINDS)}")
    if not isinstance(tid, int | str) or not str(tid).isdigit():
        raise ApiError(400, "targetable_id must be an id")
    return ttype, ctx.record(TARGETABLE_KINDS[ttype], tid, "targetable_id")["id"]


async def upload_document(request: Request, ctx: Context) -> Response:
    sandbox: Sandbox = request.app.state.sandbox
    limit = sandbox.max_file_bytes
    declared = int(request.headers.get("content-length") or 0)
    # Multipart framing is small: a body this much larger than the limit cannot hold a file within it.
    if declared > limit + 64 * 1024:
        raise ApiError(400, f"File size exceeds the limit of {limit} bytes")
    try:
        form = await request.form(max_files=1)
    except Exception as exc:  # starlette raises several parser errors; all mean the body is not a usable form
        raise ApiError(400, f"Request body must be multipart/form-data: {exc}") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ApiError(400, "file is required")
    ttype, tid = _target(ctx, form.get("targetable_type"), form.get("targetable_id"))
    name = form.get("file_name") or upload.filename
    if not isinstance(name, str) or not name:
        raise ApiError(400, "file_name is required")
    rid = ctx.store.next_id()
    path = sandbox.files_dir / str(rid)
    size, digest = 0, hashlib.sha256()
    # Streamed to disk in chunks: a 150 MB scan must not sit in memory.
    with path.open("wb") as out:
        while chunk := await upload.read(1024 * 1024):
            size += len(chunk)
            if size > limit:
                break
            digest.update(chunk)
            out.write(chunk)
    if size > limit:
        path.unlink()
        raise ApiError(400, f"File size exceeds the limit of {limit} bytes")
    stamp = now_iso()
    document = {
        "id": rid,
        "name": name,
        "content_file_name": name,
        "content_file_size": size,
        "content_content_type": upload.content_type or "application/octet-stream",
        "sha256": digest.hexdigest(),
        "is_shared": str(form.get("is_shared", "false")) == "true",
        "targetable_type": ttype,
        "targetable_id": tid,
        "created_at": stamp,
        "updated_at": stamp,
    }
    return json_response({"document": ctx.store.put("document", document)}, 201)


async def document_link(request: Request, ctx: Context) -> Response:
    body = await _body(request)
    spec = body.get("document_link", body) if isinstance(body, dict) else None
    if not isinstance(spec, dict):
        raise ApiError(400, "Request body must hold a document_link object")
    url, name = spec.get("url"), spec.get("name")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ApiError(400, "url must be an http(s) URL")
    ttype, tid = _target(ctx, spec.get("targetable_type"), spec.get("targetable_id"))
    stamp = now_iso()
    link = {
        "id": ctx.store.next_id(),
        "name": name if isinstance(name, str) and name else url,
        "url": url,
        "is_shared": bool(spec.get("is_shared", False)),
        "targetable_type": ttype,
        "targetable_id": tid,
        "created_at": stamp,
        "updated_at": stamp,
    }
    return json_response({"document_link": ctx.store.put("document_link", link)}, 201)


async def job_status(request: Request, ctx: Context) -> Response:
    return json_response({"job_status": jobs.status(ctx.store, _id(request))})


def _known_attributes(ctx: Context, kind: str) -> set[str]:
    if kind.startswith("cm_"):
        base = {"id", "name", "owner_id", "created_at", "updated_at"}
    else:
        base = {*STANDARD_FIELDS[kind], "id", "created_at", "updated_at", "display_name"}
    return base | set(ctx.custom_fields(kind if kind.startswith("cm_") else queries.PLURAL[kind]))


async def lookup(request: Request, ctx: Context) -> Response:
    q, f, entities = (request.query_params.get(k) for k in ("q", "f", "entities"))
    if not q or not f or not entities:
        raise ApiError(400, "q, f and entities are required")
    body: dict[str, Any] = {}
    unknown_everywhere = True
    for entity in entities.split(","):
        kind = entity.strip()
        if kind not in SEARCH_KINDS:
            raise ApiError(400, f"entities must be among {', '.join(SEARCH_KINDS)}")
        known = _known_attributes(ctx, kind)
        plural = queries.PLURAL[kind]
        # A field one entity lacks (accounts have no email) yields nothing there, not an error.
        if f.removeprefix("custom_field.") not in known and not (kind == "contact" and f == "email"):
            body[plural] = {plural: []}
            continue
        unknown_everywhere = False
        found = [
            queries.string_ids(r)
            for r in sorted(ctx.store.all(kind), key=lambda r: r["id"])
            if not r.get("is_deleted") and queries.matches(queries.field_value(r, f, known), "is", q)
        ]
        body[plural] = {plural: found}
    if unknown_everywhere:
        raise ApiError(400, f"Unknown lookup field {f}")
    return json_response(body)


async def filtered_search(request: Request, ctx: Context) -> Response:
    target = request.path_params["entity"]
    if target.startswith("cm_"):
        kind, plural = modules.require_module(ctx.store, target)["name"], target
    elif target in SEARCH_KINDS:
        kind, plural = target, queries.PLURAL[target]
    else:
        raise not_found("Entity")
    body = await _body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be an object")
    matched = queries.filtered(
        sorted(ctx.store.all(kind), key=lambda r: r["id"]), body.get("filter_rule"), _known_attributes(ctx, kind)
    )
    params = {**request.query_params, **{k: body[k] for k in ("page", "per_page") if k in body}}
    page, meta = queries.page_of(matched, params)
    return json_response({plural: [queries.string_ids(r) for r in page], "meta": {"total": meta["total"]}})


async def search(request: Request, ctx: Context) -> Response:
    q = request.query_params.get("q")
    if not q:
        raise ApiError(400, "q is required")
    include = request.query_params.get("include") or ",".join(SEARCH_KINDS)
    kinds = [i.strip() for i in include.split(",")]
    if not set(kinds) <= set(SEARCH_KINDS):
        raise ApiError(400, f"include must be among {', '.join(SEARCH_KINDS)}")
    return json_response(queries.quick_search(ctx.store, q, kinds))


def api_table() -> list[tuple[str, str, Handler]]:
    table: list[tuple[str, str, Handler]] = [
        ("GET", "/selector/{name}", selector),
        ("GET", "/settings/module_customizations", list_modules),
        ("POST", "/settings/module_customizations", create_module),
        ("GET", "/settings/{entity}/fields", field_list),
        ("POST", "/settings/{entity}/forms/{form_id:int}/fields", create_module_field),
        ("POST", "/contacts/bulk_assign_owner", bulk_assign_owner),
        ("GET", "/tasks", _listing("tasks", "task", TASK_FILTERS)),
        ("GET", "/appointments", _listing("appointments", "appointment", APPOINTMENT_FILTERS)),
        ("GET", "/sales_activities", _listing("sales_activities", "sales_activity", None)),
        ("POST", "/notes", notes_create),
        ("PUT", "/notes/{id:int}", notes_update),
        ("DELETE", "/notes/{id:int}", notes_delete),
        ("POST", "/documents", upload_document),
        ("POST", "/document_links", document_link),
        ("GET", "/job_statuses/{id:int}", job_status),
        ("GET", "/lookup", lookup),
        ("GET", "/search", search),
        ("POST", "/filtered_search/{entity}", filtered_search),
    ]
    for plural, kind in VIEW_ENTITIES.items():
        table += _upsert_routes(plural, kind) + _view_routes(f"/{plural}", _fixed(kind, plural))
    for plural, kind in ID_ENTITIES.items():
        table += _entity_routes(f"/{plural}", _fixed(kind, plural))
    module_path = "/custom_module/{cm}"
    return table + _entity_routes(module_path, _custom_module) + _view_routes(module_path, _custom_module)


async def _unknown_path(request: Request, ctx: Context) -> Response:
    raise not_found("Resource")


def _api_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route(path, api_endpoint(path, handler), methods=[method]) for method, path, handler in api_table()
    ]
    routes.append(
        Route("/{rest:path}", api_endpoint("(unknown)", _unknown_path), methods=["GET", "POST", "PUT", "DELETE"])
    )
    return routes


class TrailingSlashAsWithout:
    """Serves `/api/contacts/` as `/api/contacts`, as the real API does: clients written against it send
    both (Singer's tap-freshsales asks for `/api/sales_activities/`). A rewrite, not a redirect: a client
    that does not follow redirects, or re-sends a POST as a GET, must get the same answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path[:-1]}
            raw = scope.get("raw_path")
            if isinstance(raw, bytes) and raw.endswith(b"/"):
                scope["raw_path"] = raw[:-1]
        await self.app(scope, receive, send)


def build_app(sandbox: Sandbox) -> Starlette:
    api = _api_routes()
    app = Starlette(
        routes=[
            Mount("/crm/sales/api", routes=api),
            Mount("/api", routes=api),
            Mount("/_sandbox", routes=control_routes(sandbox.test_mode)),
        ],
        middleware=[Middleware(TrailingSlashAsWithout)],
        exception_handlers={404: _plain_404, 405: _plain_405},
    )
    app.state.sandbox = sandbox
    return app


async def _plain_404(request: Request, exc: Exception) -> Response:
    return error_response(404, ["Not found"])


async def _plain_405(request: Request, exc: Exception) -> Response:
    return error_response(405, ["Method not allowed"])
