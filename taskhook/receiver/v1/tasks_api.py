"""Handlers of the v1 task endpoints."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from taskhook.core import cursor, replies, store, tasks
from taskhook.core.appkeys import POOL, SETTINGS, TOKEN_KEY, principal
from taskhook.core.logs import get_logger
from taskhook.core.models import AuditRequest, TaskCreate, UniqueIdRequest
from taskhook.core.replies import Task
from taskhook.core.responses import ok
from taskhook.core.serialize import limited_task_json, task_json
from taskhook.core.validation import MAX_TAG_CHARS, MAX_TAGS, decode_json
from taskhook.receiver.routes import Api, Body, bare_body, model_body
from taskhook.receiver.v1.params import CancelQuery, TaskListQuery

log = get_logger("taskhook.tasks")
api = Api("tasks", params={"task_id": "The task's id (`task_id`)."}, errors=(404,))
routes = api.routes
TAGS_NOTE = f"At most {MAX_TAGS} distinct tags; order kept, duplicates ignored."
TAG_ITEM = {"type": "string", "minLength": 1, "maxLength": MAX_TAG_CHARS, "pattern": r"\S"}
TAG_TEXT = "A bare JSON array of strings; no body means an empty array."
TAGS = bare_body({"type": "array", "items": TAG_ITEM, "description": TAGS_NOTE}, TAG_TEXT, [])
METADATA_SCHEMA = {"type": "object", "description": "A JSON object of at most 10 KB (serialized)."}
METADATA_TEXT = "The whole new metadata (replaces the old); no body means `{}`."
METADATA = bare_body(METADATA_SCHEMA, METADATA_TEXT, {})


@api.post(
    "/v1/task/{type}",
    "Create a task",
    Task,
    errors=(),
    idempotent=True,
    body=Body(TaskCreate, "The task's fields; other keys go into `params`.", decode_json),
    params={"type": "The task type."},
)
async def create_task(request: web.Request, conn: Any, body: Any) -> Task:
    """Documented once per task type (openapi.py); test keys: already completed."""
    task_type, who = request.match_info["type"], principal(request)
    row = await tasks.create_task(conn, who, task_type, body, request.app[SETTINGS])
    log.info("task.created", task_id=row["id"], type=task_type, is_test=who.is_test)
    return task_json(row)


@api.get("/v1/task/{task_id}", "Get a task", Task)
async def get_task(request: web.Request) -> web.Response:
    row = await tasks.get_task(request.app[POOL], principal(request), request.match_info["task_id"])
    return ok(task_json(row))


async def _in_tx(request: web.Request, action: Any, *args: Any) -> web.Response:
    """Run one task change in a transaction and answer the task as it now is."""
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await action(conn, principal(request), request.match_info["task_id"], *args)
    return ok(task_json(row))


@api.post(
    "/v1/task/{task_id}/cancel",
    "Cancel a task",
    Task,
    query=CancelQuery,
    description="A pending task whose work has not started, or an already canceled one: 200. "
    "A completed, errored or started task: 400.",
)
async def cancel_task(request: web.Request, query: CancelQuery) -> web.Response:
    response = await _in_tx(request, tasks.cancel_task, query.clear_unique_id)
    log.info("task.canceled", task_id=request.match_info["task_id"])
    return response


@api.post(
    "/v1/task/{task_id}/audit",
    "Accept, reject or fix a completed task",
    Task,
    body=model_body(AuditRequest, "`accepted: true` with a `response` is a fix."),
)
async def audit_task(request: web.Request, body: AuditRequest) -> web.Response:
    response = await _in_tx(request, tasks.audit_task, body)
    log.info(
        "task.audited",
        task_id=request.match_info["task_id"],
        accepted=body.accepted,
        fixed=body.response is not None,
    )
    return response


@api.post(
    "/v1/task/{task_id}/unique_id",
    "Set a task's unique_id",
    Task,
    errors=(404, 409),
    body=model_body(UniqueIdRequest, "The new unique_id."),
    op_id="set_task_unique_id",
)
async def update_unique_id(request: web.Request, body: UniqueIdRequest) -> web.Response:
    return await _in_tx(request, tasks.set_unique_id, body.unique_id)


@api.delete("/v1/task/{task_id}/unique_id", "Clear a task's unique_id", Task)
async def clear_task_unique_id(request: web.Request) -> web.Response:
    return await _in_tx(request, tasks.set_unique_id, None)


@api.post("/v1/task/{task_id}/setMetadata", "Replace a task's metadata", Task, body=METADATA)
async def set_task_metadata(request: web.Request, body: Any) -> web.Response:
    return await _in_tx(request, tasks.set_metadata, body)


@api.post("/v1/task/{task_id}/tags", "Replace a task's tags", Task, body=TAGS)
async def set_task_tags(request: web.Request, body: Any) -> web.Response:
    return await _in_tx(request, tasks.change_tags, body, "set")


@api.put(
    "/v1/task/{task_id}/tags",
    f"Add tags (present ones are ignored; at most {MAX_TAGS} in all)",
    Task,
    body=TAGS,
)
async def add_task_tags(request: web.Request, body: Any) -> web.Response:
    return await _in_tx(request, tasks.change_tags, body, "add")


@api.delete(
    "/v1/task/{task_id}/tags",
    "Remove tags (absent ones are ignored)",
    Task,
    body=bare_body({"type": "array", "items": {"type": "string"}}, TAG_TEXT, []),
)
async def delete_task_tags(request: web.Request, body: Any) -> web.Response:
    return await _in_tx(request, tasks.change_tags, body, "delete")


@api.get(
    "/v1/tasks",
    "List tasks, newest first",
    replies.TaskList,
    errors=(),
    query=TaskListQuery,
    description="Filters on an unknown project or batch match nothing; an unknown status "
    "or type value is a 400; a tampered or foreign `next_token` is a 400.",
)
async def list_tasks(request: web.Request, query: TaskListQuery) -> web.Response:
    """Keyset paging, newest first; `next_token` is present exactly when `has_more`."""
    who, filters, limit = principal(request), query.filters(), query.limit
    scope = f"{who.account_id}|{who.is_test}"
    token_key = request.app[TOKEN_KEY]
    after = cursor.decode(token_key, scope, query.next_token) if query.next_token else None
    pool = request.app[POOL]
    rows = await store.list_tasks(pool, who, filters, after, limit + 1)
    total = await store.count_tasks(pool, who, filters)
    has_more = len(rows) > limit
    rows = rows[:limit]
    serialize = limited_task_json if query.limited_response else task_json
    reply: dict[str, Any] = {
        "docs": [serialize(r) for r in rows],
        "total": total,
        "limit": limit,
        "offset": 0,
        "has_more": has_more,
    }
    if has_more:
        last = rows[-1]
        reply["next_token"] = cursor.encode(token_key, scope, last["created_at"], last["id"])
    return ok(replies.built(replies.TaskList, reply))
