"""v2 batch and project endpoints. There is no v2 create project: projects come from v1
`POST /v1/projects`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from taskhook.core.appkeys import POOL, SETTINGS, principal
from taskhook.core.logs import get_logger
from taskhook.core.models_v2 import (
    BatchActionResponse,
    BatchOperationRequest,
    BatchOut,
    CreateBatchRequest,
    GetBatchesResponse,
    GetProjectsResponse,
    ProjectOut,
    SetBatchMetadataRequest,
)
from taskhook.core.principal import Principal
from taskhook.core.store import Conn, Row
from taskhook.core.store import v2 as v2store
from taskhook.receiver.routes import Api, model_body
from taskhook.receiver.v2.params import (
    BatchesQuery,
    BatchQuery,
    ByProject,
    Pager,
    ProjectsQuery,
    reply,
)
from taskhook.v2 import batches, lookup
from taskhook.v2.serialize import batch_out, dump, project_out
from taskhook.v2.tasks import projects_by_id

log = get_logger("taskhook.v2")
api = Api("v2", prefix="v2_", errors=(404,))
routes = api.routes
NAMED = "Named by id or by name."
MOVE = model_body(BatchOperationRequest, NAMED)


async def _present(
    conn: Conn, who: Principal, rows: list[Row], expand: frozenset[str] = frozenset()
) -> list[BatchOut]:
    projects = {}
    if "project" in expand:
        projects = await projects_by_id(conn, who, (r["project_public_id"] for r in rows))
    return [batch_out(r, projects.get(r["project_public_id"])) for r in rows]


@api.post(
    "/v2/batch",
    "Create a batch",
    BatchOut,
    idempotent=True,
    body=model_body(CreateBatchRequest, NAMED),
)
async def create_batch(request: web.Request, conn: Any, body: CreateBatchRequest) -> Any:
    row = await batches.create(conn, principal(request), body, request.app[SETTINGS])
    log.info("batch.created", batch=body.name, api="v2")
    return dump(batch_out(row))


@api.get("/v2/batch", "Get a batch (by id or name)", BatchOut, query=BatchQuery)
async def get_batch(request: web.Request, query: BatchQuery) -> web.Response:
    pool, who = request.app[POOL], principal(request)
    row = await lookup.batch(pool, who, query.batch_id, query.batch_name)
    [batch] = await _present(pool, who, [row], query.expand)
    return reply(batch)


@api.get("/v2/batches", "List batches, newest first", GetBatchesResponse, query=BatchesQuery)
async def get_batches(request: web.Request, query: BatchesQuery) -> web.Response:
    """Every filter optional; newest first; `next_token` on every page but the last."""
    pool, who = request.app[POOL], principal(request)
    pager = Pager(request, "batches", query)
    project_id, project_name = query.project_id, query.project_name
    project = None
    if project_id or project_name:
        project = (await lookup.project(pool, who, project_id, project_name))["id"]
    filters = v2store.BatchFilters(
        project_id=project,
        status=query.status,
        created_after=query.created_after,
        created_before=query.created_before,
        completed_after=query.completed_after,
        completed_before=query.completed_before,
    )
    rows = await v2store.list_batches(pool, who, filters, pager.after, pager.limit + 1)
    rows, token = pager.page(rows, ("created_at", "public_id"))
    found = await _present(pool, who, rows, query.expand)
    return reply(GetBatchesResponse(batches=found, next_token=token))


async def _move(request: web.Request, action: str, body: BatchOperationRequest) -> web.Response:
    who = principal(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await batches.move(conn, who, action, body)
    log.info(f"batch.{action}", batch=row["name"], api="v2")
    [batch] = await _present(request.app[POOL], who, [row])
    if action == "finalize":
        return reply(batch)
    return reply(BatchActionResponse(batch=batch, message=batches.MOVES[action].message))


@api.post("/v2/batch/finalize", "Finalize a staging batch", BatchOut, body=MOVE)
async def finalize_batch(request: web.Request, body: BatchOperationRequest) -> web.Response:
    return await _move(request, "finalize", body)


@api.post("/v2/batch/pause", "Pause an in-progress batch", BatchActionResponse, body=MOVE)
async def pause_batch(request: web.Request, body: BatchOperationRequest) -> web.Response:
    return await _move(request, "pause", body)


@api.post("/v2/batch/resume", "Resume a paused batch", BatchActionResponse, body=MOVE)
async def resume_batch(request: web.Request, body: BatchOperationRequest) -> web.Response:
    return await _move(request, "resume", body)


@api.post(
    "/v2/batch/cancel",
    "Cancel a batch and its unstarted tasks",
    BatchActionResponse,
    body=MOVE,
)
async def cancel_batch(request: web.Request, body: BatchOperationRequest) -> web.Response:
    return await _move(request, "cancel", body)


@api.post(
    "/v2/batch/metadata",
    "Set (or merge) a batch's metadata",
    BatchOut,
    body=model_body(SetBatchMetadataRequest, NAMED),
)
async def set_batch_metadata(request: web.Request, body: SetBatchMetadataRequest) -> web.Response:
    who = principal(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await batches.set_metadata(conn, who, body)
    [batch] = await _present(request.app[POOL], who, [row])
    return reply(batch)


@api.get("/v2/project", "Get a project (by id or name)", ProjectOut, query=ByProject)
async def get_project(request: web.Request, query: ByProject) -> web.Response:
    row = await lookup.project(
        request.app[POOL], principal(request), query.project_id, query.project_name
    )
    return reply(project_out(row))


@api.get("/v2/projects", "List projects, oldest first", GetProjectsResponse, query=ProjectsQuery)
async def get_projects(request: web.Request, query: ProjectsQuery) -> web.Response:
    """No paging (the SDK has no limit or next_token here); oldest first."""
    rows = await v2store.list_projects(
        request.app[POOL],
        principal(request),
        created_after=query.created_after,
        created_before=query.created_before,
    )
    return reply(GetProjectsResponse(projects=[project_out(r) for r in rows]))
