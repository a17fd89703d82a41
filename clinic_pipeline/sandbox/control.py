"""Test-mode controls under `/_sandbox/` (404 unless the server runs with test mode). No auth needed.

- `POST /_sandbox/reset`: forget every record, file, custom field and module; reseed users and keys;
  clear request counts and faults; restore the start-up rate limits.
- `GET /_sandbox/snapshot`: every record by kind (`contacts`, `sales_accounts`, `deals`, `tasks`,
  `appointments`, `sales_activities`, `notes`, `documents` (metadata + sha256), `document_links`,
  `users`, `custom_fields`, `module_customizations`, and one key per `cm_*` module), sorted by id,
  without `created_at`/`updated_at`, so two runs compare equal when the same data went in.
- `GET /_sandbox/requests`: `{"requests": {"<METHOD> <path template>": n}, "total": n}` for API calls.
- `POST /_sandbox/faults`: `{"rate_429", "rate_5xx", "rate_reset", "rate_slow", "rate_truncate",
  "slow_seconds", "seed"}` (see faults.py); all zeros clears them.
- `POST /_sandbox/settings/<contacts|sales_accounts|deals|sales_activities>/fields`:
  `{"label", "name": "cf_x", "type", "choices": ["A", "B"], "required"}` plays the admin creating a
  custom field in the UI; 201 `{"field": {...}}`, 409 if it exists.
- `POST /_sandbox/users`: `{"display_name", "email", "role": "admin"|"member", "is_active", "api_key"?}`
  → 201 `{"user": {...}}`; with `api_key`, that key authenticates as the new user.
- `POST /_sandbox/alterations`: `{"rules": [...]}` makes the sandbox silently alter what it stores
  (truncate, shift_hours, round, drop, relink; see alterations.py); `{"rules": []}` stops it.
- `GET|POST /_sandbox/rate_limit`: `{"requests_per_hour", "requests_per_minute", "retry_after"}`
  (null = no budget); POST replaces the configuration and starts fresh windows.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from clinic_pipeline.sandbox import alterations
from clinic_pipeline.sandbox.errors import ApiError, not_found
from clinic_pipeline.sandbox.jobs import finish_due_jobs
from clinic_pipeline.sandbox.modules import ENTITY_KIND, add_field, public_field
from clinic_pipeline.sandbox.queries import PLURAL
from clinic_pipeline.sandbox.runtime import Sandbox, error_response, json_response
from clinic_pipeline.sandbox.store import Record

VOLATILE = ("created_at", "updated_at")
SNAPSHOT_KEYS = {"user": "users", "document": "documents", "document_link": "document_links"}


def _clean(record: Record) -> Record:
    return {k: v for k, v in sorted(record.items()) if k not in VOLATILE}


def snapshot(sandbox: Sandbox) -> dict[str, Any]:
    store = sandbox.store
    finish_due_jobs(store)
    out: dict[str, Any] = {plural: [] for plural in PLURAL.values()}
    for kind in store.kinds():
        if kind in ("job", "field", "module"):
            continue
        key = {"user": "users", "document": "documents", "document_link": "document_links"}.get(
            kind, PLURAL.get(kind, kind)
        )
        out[key] = [_clean(r) for r in sorted(store.all(kind), key=lambda r: r["id"])]
    out["custom_fields"] = [_clean(f) for f in sorted(store.all("field"), key=lambda f: (f["entity"], f["name"]))]
    out["module_customizations"] = [_clean(m) for m in sorted(store.all("module"), key=lambda m: m["id"])]
    for module in store.all("module"):
        out.setdefault(module["name"], [])
    return dict(sorted(out.items()))


def _number(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ApiError(400, f"{key} must be a non-negative integer or null")
    return value


def _guarded(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        sandbox: Sandbox = request.app.state.sandbox
        if not sandbox.test_mode:
            return error_response(404, ["Not found"])
        try:
            body = await request.json() if request.method == "POST" and await request.body() else {}
            return await handler(sandbox, request, body)
        except ValueError:
            return error_response(400, ["Request body must be valid JSON"])
        except ApiError as exc:
            return error_response(exc.status, exc.messages)

    return endpoint


async def _reset(sandbox: Sandbox, request: Request, body: Any) -> Response:
    sandbox.reset()
    return json_response({"reset": True})


async def _snapshot(sandbox: Sandbox, request: Request, body: Any) -> Response:
    return json_response(snapshot(sandbox))


async def _requests(sandbox: Sandbox, request: Request, body: Any) -> Response:
    return json_response({"requests": dict(sorted(sandbox.requests.items())), "total": sum(sandbox.requests.values())})


async def _faults(sandbox: Sandbox, request: Request, body: Any) -> Response:
    sandbox.faults.configure(sandbox.faults.parse(body))
    return json_response({"faults": vars(sandbox.faults.config)})


async def _field(sandbox: Sandbox, request: Request, body: Any) -> Response:
    entity = request.path_params["entity"]
    if entity not in ENTITY_KIND:
        raise not_found("Module")
    return json_response({"field": public_field(add_field(sandbox.store, entity, body, name_from_label=False))}, 201)


async def _user(sandbox: Sandbox, request: Request, body: Any) -> Response:
    name, email = body.get("display_name"), body.get("email")
    if not isinstance(name, str) or not name or not isinstance(email, str) or "@" not in email:
        raise ApiError(400, "display_name and email are required")
    if any(u["email"].lower() == email.lower() for u in sandbox.store.all("user")):
        raise ApiError(409, f"User {email} already exists")
    role = body.get("role", "member")
    if role not in ("admin", "member"):
        raise ApiError(400, "role must be admin or member")
    user = {
        "id": sandbox.store.next_id(),
        "display_name": name,
        "email": email,
        "role": role,
        "is_active": bool(body.get("is_active", True)),
        "time_zone": "UTC",
        "mobile_number": None,
    }
    sandbox.store.put("user", user)
    if body.get("api_key"):
        keys = dict(sandbox.store.get_setting("api_keys", {}))
        keys[str(body["api_key"])] = user["id"]
        sandbox.store.set_setting("api_keys", keys)
    return json_response({"user": user}, 201)


async def _alterations(sandbox: Sandbox, request: Request, body: Any) -> Response:
    rules = alterations.parse(body)
    sandbox.store.set_setting(alterations.SETTING, rules)
    return json_response({"rules": rules})


async def _rate_limit(sandbox: Sandbox, request: Request, body: Any) -> Response:
    limiter = sandbox.limiter
    if request.method == "POST":
        limiter.configure(
            _number(body, "requests_per_hour"), _number(body, "requests_per_minute"), bool(body.get("retry_after"))
        )
    return json_response(
        {
            "requests_per_hour": limiter.per_hour,
            "requests_per_minute": limiter.per_minute,
            "retry_after": limiter.retry_after,
        }
    )


def control_routes(test_mode: bool) -> list[BaseRoute]:
    return [
        Route("/reset", _guarded(_reset), methods=["POST"]),
        Route("/snapshot", _guarded(_snapshot), methods=["GET"]),
        Route("/requests", _guarded(_requests), methods=["GET"]),
        Route("/faults", _guarded(_faults), methods=["POST"]),
        Route("/settings/{entity}/fields", _guarded(_field), methods=["POST"]),
        Route("/users", _guarded(_user), methods=["POST"]),
        Route("/rate_limit", _guarded(_rate_limit), methods=["GET", "POST"]),
        Route("/alterations", _guarded(_alterations), methods=["POST"]),
    ]
