"""A Freshsales-compatible HTTP sandbox (starlette + uvicorn + SQLite) for the demo and the tests.

It implements the API as /work/shared/freshsales_api.md documents it, taking the stricter reading
where the document is uncertain, and shares no code with `clinic_pipeline.freshsales` so it catches
the client's mistakes instead of repeating them. Start it with `clinic-pipeline sandbox`,
`python -m clinic_pipeline.sandbox`, or `launcher.running_sandbox(...)`.

Behaviour a client author must know:
- Paths under both `/crm/sales/api/` and `/api/`; a trailing slash is served as the path without it
  (every route, `/_sandbox/` too), one slash only. Auth `Authorization: Token token=<key>` (or
  `token="<key>"`, as Rails parses it): the configured key belongs to an admin; `<key>-member`
  belongs to a member, who gets 403 on `/selector/owners` (and on module customisation).
  Errors: `{"errors": {"code", "message": [...]}}`.
- Ids are integers above 2^32; search, lookup and filtered_search results give `id` as a string.
  Money is a decimal string ("5600.0"); `created_at`/`updated_at` are server-set ISO-8601 with offset.
- Upsert identifiers: contacts `emails` or `id`, sales_accounts `name` or `id`, deals `id`;
  anything else (external_id, cf_*) is a 400. Bulk upsert and job statuses: see jobs.py.
- Views: `per_page` defaults to 25 and is clamped to 100; default sort `updated_at desc`, ties by id;
  an empty list reports `total_pages: 0`. `/<entity>/filters` answers `{"filters": [...], "meta": {}}`.
- Rate-limit headers on every API answer (see ratelimit.py); faults see faults.py; test-mode
  controls see control.py; validation rules see entities.py; custom modules see modules.py.
- Documents: multipart upload, per-file limit `--max-file-bytes` (default 150 MB) → 400 above it;
  bytes are kept in `<db>.files/`. `GET /<entity>/:id/document_associations` →
  `{"document_associations": [... each with "document_type": "document"|"document_link"]}`.
"""
