"""v2 task endpoints: get_task, get_tasks, create_chat_task, set_task_metadata,
get_annotation and get_schema (reference/scale-api-v2.md §2.1)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from taskhook.core.appkeys import POOL, SETTINGS, principal
from taskhook.core.logs import get_logger
from taskhook.core.models_v2 import (
    TASK_STATUSES,
    CreateChatTaskRequest,
    GetSchemaResponse,
    GetTasksResponse,
    SchemaOut,
    SetTaskMetadataRequest,
)
from taskhook.core.responses import ok
from taskhook.core.store import v2 as v2store
from taskhook.core.validation import decode_json, parse_model
from taskhook.receiver.idempotency import run_create
from taskhook.receiver.v2 import params
from taskhook.receiver.v2.params import TASK_EXPAND, Pager, reply
from taskhook.v2 import lookup
from taskhook.v2 import tasks as v2tasks
from taskhook.v2.schemas import get_schema
from taskhook.v2.serialize import dump

log = get_logger("taskhook.v2")
routes = web.RouteTableDef()


@routes.get("/v2/task")
async def get_task(request: web.Request) -> web.Response:
    query, pool, who = request.query, request.app[POOL], principal(request)
    task_id = params.required(query, "task_id")
    expand, opts = params.expand(query, TASK_EXPAND), params.opts(query)
    row = await lookup.task(pool, who, task_id)
    [task] = await v2tasks.present(pool, who, [row], expand)
    return reply(task, opts)


async def _task_filters(request: web.Request) -> v2store.TaskFilters:
    """A project or a batch is required (by id or name); unknown ones are 404s."""
    query, pool, who = request.query, request.app[POOL], principal(request)
    project_id, project_name = params.one(query, "project_id"), params.one(query, "project_name")
    batch_id, batch_name = params.one(query, "batch_id"), params.one(query, "batch_name")
    lookup.require_one(
        {
            "project_id": project_id,
            "project_name": project_name,
            "batch_id": batch_id,
            "batch_name": batch_name,
        }
    )
    project = batch = None
    if project_id or project_name:
        project = (await lookup.project(pool, who, project_id, project_name))["name"]
    if batch_id or batch_name:
        batch = (await lookup.batch(pool, who, batch_id, batch_name))["name"]
    return v2store.TaskFilters(
        project=project,
        batch=batch,
        status=params.choice(query, "status", TASK_STATUSES),
        completed_after=params.time(query, "completed_after"),
        completed_before=params.time(query, "completed_before"),
    )


@routes.get("/v2/tasks")
async def get_tasks(request: web.Request) -> web.Response:
    """Newest first; `next_token` on every page but the last."""
    query, pool, who = request.query, request.app[POOL], principal(request)
    expand, opts = params.expand(query, TASK_EXPAND), params.opts(query)
    pager = Pager(request, "tasks")
    filters = await _task_filters(request)
    rows = await v2store.list_tasks(pool, who, filters, pager.after, pager.limit + 1)
    rows, token = pager.page(rows)
    tasks = await v2tasks.present(pool, who, rows, expand)
    return reply(GetTasksResponse(tasks=tasks, next_token=token), opts)


@routes.post("/v2/task/chat")
async def create_chat_task(request: web.Request) -> web.Response:
    """200 (never 201: the SDK returns None for it) and the task, pending for a live key."""
    raw = await request.read()
    who, settings = principal(request), request.app[SETTINGS]

    async def work(conn: Any) -> dict[str, Any]:
        body = parse_model(CreateChatTaskRequest, decode_json(raw))
        row = await v2tasks.create_chat_task(conn, who, body, settings)
        log.info("task.created", task_id=row["id"], type="chat", api="v2", is_test=who.is_test)
        [task] = await v2tasks.present(conn, who, [row])
        return dump(task)

    return await run_create(request, raw, work)


@routes.post("/v2/task/metadata")
async def set_task_metadata(request: web.Request) -> web.Response:
    body = parse_model(SetTaskMetadataRequest, decode_json(await request.read()))
    who = principal(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await v2tasks.set_metadata(conn, who, body)
        [task] = await v2tasks.present(conn, who, [row])
    return reply(task)


@routes.get("/v2/annotation")
async def get_annotation(request: web.Request) -> web.Response:
    annotation_id = params.required(request.query, "annotation_id")
    return ok(await v2tasks.annotation(request.app[POOL], principal(request), annotation_id))


@routes.get("/v2/schema")
async def get_response_schema(request: web.Request) -> web.Response:
    schema_id, text = get_schema(params.one(request.query, "schema_id"))
    return reply(GetSchemaResponse(schema=SchemaOut(id=schema_id, json=text)))
