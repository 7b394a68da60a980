"""v2 batch and project endpoints (reference/scale-api-v2.md §2.2). There is no v2 create
project: projects come from v1 `POST /v1/projects`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from taskhook.core.appkeys import POOL, SETTINGS, principal
from taskhook.core.logs import get_logger
from taskhook.core.models_v2 import (
    BATCH_STATUSES,
    BatchActionResponse,
    BatchOperationRequest,
    BatchOut,
    CreateBatchRequest,
    GetBatchesResponse,
    GetProjectsResponse,
    SetBatchMetadataRequest,
)
from taskhook.core.principal import Principal
from taskhook.core.store import Conn, Row
from taskhook.core.store import v2 as v2store
from taskhook.core.validation import decode_json, parse_model
from taskhook.receiver.idempotency import run_create
from taskhook.receiver.v2 import params
from taskhook.receiver.v2.params import PROJECT_EXPAND, Pager, reply
from taskhook.v2 import batches, lookup
from taskhook.v2.serialize import batch_out, dump, project_out
from taskhook.v2.tasks import projects_by_id

log = get_logger("taskhook.v2")
routes = web.RouteTableDef()


async def _present(
    conn: Conn, who: Principal, rows: list[Row], expand: frozenset[str] = frozenset()
) -> list[BatchOut]:
    projects = {}
    if "project" in expand:
        projects = await projects_by_id(conn, who, (r["project_public_id"] for r in rows))
    return [batch_out(r, projects.get(r["project_public_id"])) for r in rows]


@routes.post("/v2/batch")
async def create_batch(request: web.Request) -> web.Response:
    raw = await request.read()
    who, settings = principal(request), request.app[SETTINGS]

    async def work(conn: Any) -> dict[str, Any]:
        body = parse_model(CreateBatchRequest, decode_json(raw))
        row = await batches.create(conn, who, body, settings)
        log.info("batch.created", batch=body.name, api="v2")
        return dump(batch_out(row))

    return await run_create(request, raw, work)


@routes.get("/v2/batch")
async def get_batch(request: web.Request) -> web.Response:
    query, pool, who = request.query, request.app[POOL], principal(request)
    expand = params.expand(query, PROJECT_EXPAND)
    row = await lookup.batch(
        pool, who, params.one(query, "batch_id"), params.one(query, "batch_name")
    )
    [batch] = await _present(pool, who, [row], expand)
    return reply(batch)


@routes.get("/v2/batches")
async def get_batches(request: web.Request) -> web.Response:
    """Every filter optional; newest first; `next_token` on every page but the last."""
    query, pool, who = request.query, request.app[POOL], principal(request)
    expand = params.expand(query, PROJECT_EXPAND)
    pager = Pager(request, "batches")
    project_id, project_name = params.one(query, "project_id"), params.one(query, "project_name")
    project = None
    if project_id or project_name:
        project = (await lookup.project(pool, who, project_id, project_name))["id"]
    filters = v2store.BatchFilters(
        project_id=project,
        status=params.choice(query, "status", BATCH_STATUSES),
        created_after=params.time(query, "created_after"),
        created_before=params.time(query, "created_before"),
        completed_after=params.time(query, "completed_after"),
        completed_before=params.time(query, "completed_before"),
    )
    rows = await v2store.list_batches(pool, who, filters, pager.after, pager.limit + 1)
    rows, token = pager.page(rows, ("created_at", "public_id"))
    found = await _present(pool, who, rows, expand)
    return reply(GetBatchesResponse(batches=found, next_token=token))


async def _move(request: web.Request, action: str) -> web.Response:
    body = parse_model(BatchOperationRequest, decode_json(await request.read()))
    who = principal(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await batches.move(conn, who, action, body)
    log.info(f"batch.{action}", batch=row["name"], api="v2")
    [batch] = await _present(request.app[POOL], who, [row])
    if action == "finalize":
        return reply(batch)
    return reply(BatchActionResponse(batch=batch, message=batches.MOVES[action].message))


@routes.post("/v2/batch/finalize")
async def finalize_batch(request: web.Request) -> web.Response:
    return await _move(request, "finalize")


@routes.post("/v2/batch/pause")
async def pause_batch(request: web.Request) -> web.Response:
    return await _move(request, "pause")


@routes.post("/v2/batch/resume")
async def resume_batch(request: web.Request) -> web.Response:
    return await _move(request, "resume")


@routes.post("/v2/batch/cancel")
async def cancel_batch(request: web.Request) -> web.Response:
    return await _move(request, "cancel")


@routes.post("/v2/batch/metadata")
async def set_batch_metadata(request: web.Request) -> web.Response:
    body = parse_model(SetBatchMetadataRequest, decode_json(await request.read()))
    who = principal(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await batches.set_metadata(conn, who, body)
    [batch] = await _present(request.app[POOL], who, [row])
    return reply(batch)


@routes.get("/v2/project")
async def get_project(request: web.Request) -> web.Response:
    query = request.query
    row = await lookup.project(
        request.app[POOL],
        principal(request),
        params.one(query, "project_id"),
        params.one(query, "project_name"),
    )
    return reply(project_out(row))


@routes.get("/v2/projects")
async def get_projects(request: web.Request) -> web.Response:
    """No paging (the SDK has no limit or next_token here); oldest first."""
    query = request.query
    rows = await v2store.list_projects(
        request.app[POOL],
        principal(request),
        created_after=params.time(query, "created_after"),
        created_before=params.time(query, "created_before"),
    )
    return reply(GetProjectsResponse(projects=[project_out(r) for r in rows]))
