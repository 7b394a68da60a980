"""Handlers of the v1 batch endpoints (offset paging, as the SDK's batches() expects)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from taskhook.core import replies, store
from taskhook.core.appkeys import POOL, SETTINGS, principal
from taskhook.core.errors import BadRequest, NotFound
from taskhook.core.logs import get_logger
from taskhook.core.models import BatchCreate
from taskhook.core.replies import Batch
from taskhook.core.responses import ok
from taskhook.core.serialize import batch_json
from taskhook.core.tasks import check_callback_url
from taskhook.core.validation import check_metadata, decode_json
from taskhook.receiver.routes import Api, Body, model_body
from taskhook.receiver.v1.callbacks_api import delivery_json
from taskhook.receiver.v1.params import BatchListQuery, upper_bound
from taskhook.receiver.v1.tasks_api import METADATA_SCHEMA, METADATA_TEXT

log = get_logger("taskhook.batches")
api = Api(
    "batches",
    params={"name": "The batch name (percent-encoded, as the SDK sends it)."},
    errors=(404,),
)
routes = api.routes


def _metadata(raw: bytes) -> dict[str, Any]:
    return check_metadata(decode_json(raw) if raw.strip() else {}, "body")


async def _batch_or_404(conn: Any, request: web.Request) -> asyncpg.Record:
    name = request.match_info["name"]
    row = await store.get_batch(conn, principal(request), name)
    if row is None:
        raise NotFound(f"Batch '{name}' not found.")
    return row


@api.post(
    "/v1/batches",
    "Create a batch",
    Batch,
    errors=(),
    idempotent=True,
    body=model_body(BatchCreate, "The batch; its project must exist."),
)
async def create_batch(request: web.Request, conn: Any, body: BatchCreate) -> Batch:
    who = principal(request)
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
    assert row is not None  # inserted above, in this transaction
    log.info("batch.created", batch=body.name, project=body.project)
    return batch_json(row)


@api.get("/v1/batches/{name}", "Get a batch", Batch)
async def get_batch(request: web.Request) -> web.Response:
    return ok(batch_json(await _batch_or_404(request.app[POOL], request)))


@api.get(
    "/v1/batches/{name}/callbacks",
    "A batch's callback deliveries and their attempts",
    replies.BatchCallbackList,
    description="When a batch with a `callback` completes, one delivery sends the batch as "
    "GET /v1/batches/{name} returns it, signed and retried as task callbacks are.",
)
async def list_batch_callbacks(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    row = await _batch_or_404(pool, request)
    rows = await store.batch_deliveries(pool, row["id"])
    found = {"batch": row["name"], "deliveries": [delivery_json(r) for r in rows]}
    return ok(replies.built(replies.BatchCallbackList, found))


@api.get("/v1/batches/{name}/status", "A batch's status and task counts", replies.BatchStatus)
async def get_batch_status(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    row = await _batch_or_404(pool, request)
    counts = await store.batch_task_counts(pool, principal(request), row["name"])
    reply: dict[str, Any] = {"status": row["effective_status"]}
    for status in ("pending", "completed", "error", "canceled"):
        reply[status] = counts.get(status, 0)
    return ok(replies.built(replies.BatchStatus, reply))


@api.post("/v1/batches/{name}/finalize", "Finalize a batch", Batch)
async def finalize_batch(request: web.Request) -> web.Response:
    pool, who = request.app[POOL], principal(request)
    row = await _batch_or_404(pool, request)
    await store.finalize_batch(pool, who, row["name"])
    log.info("batch.finalized", batch=row["name"])
    return ok(batch_json(await _batch_or_404(pool, request)))


@api.post(
    "/v1/batches/{name}/setMetadata",
    "Replace a batch's metadata",
    Batch,
    body=Body(METADATA_SCHEMA, METADATA_TEXT, _metadata, required=False),
)
async def set_batch_metadata(request: web.Request, body: dict[str, Any]) -> web.Response:
    pool, who, metadata = request.app[POOL], principal(request), body
    row = await _batch_or_404(pool, request)
    await store.set_batch_metadata(pool, who, row["name"], metadata)
    return ok(batch_json(await _batch_or_404(pool, request)))


@api.get(
    "/v1/batches",
    "List batches (offset paging)",
    replies.BatchList,
    errors=(),
    query=BatchListQuery,
)
async def list_batches(request: web.Request, query: BatchListQuery) -> web.Response:
    limit, offset = query.limit, query.offset
    rows = await store.list_batches(
        request.app[POOL],
        principal(request),
        project=query.project,
        created_after=query.start_time,
        created_before=upper_bound(query.end_time),
        status=query.status,
        limit=limit,
        offset=offset,
    )
    total = rows[0]["total"] if rows else 0
    page = {
        "docs": [batch_json(r) for r in rows],
        "totalDocs": total,
        "limit": limit,
        "offset": offset,
        "has_more": offset + len(rows) < total,
    }
    return ok(replies.built(replies.BatchList, page))
