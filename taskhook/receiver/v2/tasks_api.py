"""v2 task endpoints: get_task, get_tasks, create_chat_task, set_task_metadata,
get_annotation and get_schema."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from taskhook.core.appkeys import POOL, SETTINGS, principal
from taskhook.core.logs import get_logger
from taskhook.core.models_v2 import (
    Annotation,
    CreateChatTaskRequest,
    GetSchemaResponse,
    GetTasksResponse,
    SchemaOut,
    SetTaskMetadataRequest,
    TaskOut,
)
from taskhook.core.responses import ok
from taskhook.core.store import v2 as v2store
from taskhook.receiver.routes import Api, model_body
from taskhook.receiver.v2.params import (
    AnnotationQuery,
    Pager,
    SchemaQuery,
    TaskQuery,
    TasksQuery,
    reply,
)
from taskhook.v2 import lookup
from taskhook.v2 import tasks as v2tasks
from taskhook.v2.schemas import get_schema
from taskhook.v2.serialize import dump

log = get_logger("taskhook.v2")
api = Api("v2", prefix="v2_", errors=(404,))
routes = api.routes
NAMED = "Named by id or by name."


@api.get("/v2/task", "Get a task", TaskOut, query=TaskQuery)
async def get_task(request: web.Request, query: TaskQuery) -> web.Response:
    pool, who = request.app[POOL], principal(request)
    row = await lookup.task(pool, who, query.task_id)
    [task] = await v2tasks.present(pool, who, [row], query.expand)
    return reply(task, query.opts)


async def _task_filters(request: web.Request, query: TasksQuery) -> v2store.TaskFilters:
    """A project or a batch is required (by id or name); unknown ones are 404s."""
    pool, who = request.app[POOL], principal(request)
    project_id, project_name = query.project_id, query.project_name
    batch_id, batch_name = query.batch_id, query.batch_name
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
        status=query.status,
        completed_after=query.completed_after,
        completed_before=query.completed_before,
    )


@api.get(
    "/v2/tasks",
    "List a project's or a batch's tasks, newest first. One of project_id, project_name, "
    "batch_id or batch_name is required.",
    GetTasksResponse,
    query=TasksQuery,
)
async def get_tasks(request: web.Request, query: TasksQuery) -> web.Response:
    """Newest first; `next_token` on every page but the last."""
    pool, who = request.app[POOL], principal(request)
    pager = Pager(request, "tasks", query)
    filters = await _task_filters(request, query)
    rows = await v2store.list_tasks(pool, who, filters, pager.after, pager.limit + 1)
    rows, token = pager.page(rows)
    tasks = await v2tasks.present(pool, who, rows, query.expand)
    return reply(GetTasksResponse(tasks=tasks, next_token=token), query.opts)


@api.post(
    "/v2/task/chat",
    "Create a chat task",
    TaskOut,
    idempotent=True,
    body=model_body(CreateChatTaskRequest, NAMED),
)
async def create_chat_task(
    request: web.Request, conn: Any, body: CreateChatTaskRequest
) -> dict[str, Any]:
    """200 (never 201: the SDK returns None for it) and the task, pending for a live key."""
    who = principal(request)
    row = await v2tasks.create_chat_task(conn, who, body, request.app[SETTINGS])
    log.info("task.created", task_id=row["id"], type="chat", api="v2", is_test=who.is_test)
    [task] = await v2tasks.present(conn, who, [row])
    return dump(task)


@api.post(
    "/v2/task/metadata",
    "Set (or merge) a task's metadata",
    TaskOut,
    body=model_body(SetTaskMetadataRequest, NAMED),
)
async def set_task_metadata(request: web.Request, body: SetTaskMetadataRequest) -> web.Response:
    who = principal(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await v2tasks.set_metadata(conn, who, body)
        [task] = await v2tasks.present(conn, who, [row])
    return reply(task)


@api.get(
    "/v2/annotation",
    "Get one annotation of a delivered response",
    Annotation,
    query=AnnotationQuery,
)
async def get_annotation(request: web.Request, query: AnnotationQuery) -> web.Response:
    return ok(await v2tasks.annotation(request.app[POOL], principal(request), query.annotation_id))


@api.get(
    "/v2/schema",
    "The JSON Schema a delivered response follows",
    GetSchemaResponse,
    query=SchemaQuery,
    op_id="v2_get_schema",
)
async def get_response_schema(request: web.Request, query: SchemaQuery) -> web.Response:
    schema_id, text = get_schema(query.schema_id)
    return reply(GetSchemaResponse(schema_=SchemaOut(id=schema_id, json_=text)))
