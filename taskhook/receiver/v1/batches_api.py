"""Handlers of the v1 batch endpoints (offset paging, as the SDK's batches() expects)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from taskhook.core import store
from taskhook.core.appkeys import POOL, SETTINGS, principal
from taskhook.core.errors import BadRequest, NotFound
from taskhook.core.logs import get_logger
from taskhook.core.models import BatchCreate
from taskhook.core.responses import ok
from taskhook.core.serialize import batch_json
from taskhook.core.tasks import check_callback_url
from taskhook.core.validation import check_metadata, decode_json, parse_model, parse_time
from taskhook.receiver.idempotency import run_create
from taskhook.receiver.v1.callbacks_api import delivery_json
from taskhook.receiver.v1.params import parse_bool, parse_limit, parse_offset, upper_bound

log = get_logger("taskhook.batches")
routes = web.RouteTableDef()
BATCH_STATUSES = frozenset({"staging", "in_progress", "completed"})


async def _batch_or_404(conn: Any, request: web.Request) -> asyncpg.Record:
    name = request.match_info["name"]
    row = await store.get_batch(conn, principal(request), name)
    if row is None:
        raise NotFound(f"Batch '{name}' not found.")
    return row


@routes.post("/v1/batches")
async def create_batch(request: web.Request) -> web.Response:
    raw = await request.read()
    who = principal(request)

    async def work(conn: Any) -> dict[str, Any]:
        body = parse_model(BatchCreate, decode_json(raw))
        metadata = check_metadata(body.metadata or {})
        if body.callback:
            check_callback_url(body.callback, request.app[SETTINGS], "callback")
        project = await store.get_project(conn, who, body.project)
        if project is None:
            raise BadRequest(f"Project '{body.project}' not found.")
        # Rapid and Studio batches stage until finalized; others start at once (SDK tests).
        status = "staging" if project["rapid"] or project["studio"] else "in_progress"
        await store.insert_batch(
            conn,
            who,
            project["id"],
            body.name,
            status,
            body.callback or "",
            body.calibration_batch,
            body.self_label_batch,
            metadata,
        )
        row = await store.get_batch(conn, who, body.name)
        log.info("batch.created", batch=body.name, project=body.project)
        return batch_json(row)

    return await run_create(request, raw, work)


@routes.get("/v1/batches/{name}")
async def get_batch(request: web.Request) -> web.Response:
    return ok(batch_json(await _batch_or_404(request.app[POOL], request)))


@routes.get("/v1/batches/{name}/callbacks")
async def batch_callbacks(request: web.Request) -> web.Response:
    """The batch's callback deliveries (one once it completes, with a callback), in the
    shape of GET /v1/task/{id}/callbacks."""
    pool = request.app[POOL]
    row = await _batch_or_404(pool, request)
    rows = await store.batch_deliveries(pool, row["id"])
    return ok({"batch": row["name"], "deliveries": [delivery_json(r) for r in rows]})


@routes.get("/v1/batches/{name}/status")
async def batch_status(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    row = await _batch_or_404(pool, request)
    counts = await store.batch_task_counts(pool, principal(request), row["name"])
    reply: dict[str, Any] = {"status": row["effective_status"]}
    for status in ("pending", "completed", "error", "canceled"):
        reply[status] = counts.get(status, 0)
    return ok(reply)


@routes.post("/v1/batches/{name}/finalize")
async def finalize_batch(request: web.Request) -> web.Response:
    pool, who = request.app[POOL], principal(request)
    row = await _batch_or_404(pool, request)
    await store.finalize_batch(pool, who, row["name"])
    log.info("batch.finalized", batch=row["name"])
    return ok(batch_json(await _batch_or_404(pool, request)))


@routes.post("/v1/batches/{name}/setMetadata")
async def set_batch_metadata(request: web.Request) -> web.Response:
    pool, who = request.app[POOL], principal(request)
    raw = await request.read()  # the SDK sends {} as no body at all
    metadata = check_metadata(decode_json(raw) if raw.strip() else {}, "body")
    row = await _batch_or_404(pool, request)
    await store.set_batch_metadata(pool, who, row["name"], metadata)
    return ok(batch_json(await _batch_or_404(pool, request)))


@routes.get("/v1/batches")
async def list_batches(request: web.Request) -> web.Response:
    query = request.query
    status = query.get("status") or None
    if status is not None and status not in BATCH_STATUSES:
        raise BadRequest(
            f"'status' has an unknown value {status!r}; expected one of "
            f"{', '.join(sorted(BATCH_STATUSES))}."
        )
    limit, offset = parse_limit(query), parse_offset(query)
    parse_bool(query, "exclude_archived")  # batches are never archived here
    start, end = query.get("start_time"), query.get("end_time")
    rows = await store.list_batches(
        request.app[POOL],
        principal(request),
        project=query.get("project") or None,
        created_after=parse_time(start, "start_time") if start else None,
        created_before=upper_bound(parse_time(end, "end_time")) if end else None,
        status=status,
        limit=limit,
        offset=offset,
    )
    total = rows[0]["total"] if rows else 0
    return ok(
        {
            "docs": [batch_json(r) for r in rows],
            "totalDocs": total,
            "limit": limit,
            "offset": offset,
            "has_more": offset + len(rows) < total,
        }
    )
