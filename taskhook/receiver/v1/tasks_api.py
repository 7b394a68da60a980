"""Handlers of the v1 task endpoints (SPEC §2)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from taskhook.core import cursor, store, tasks
from taskhook.core.appkeys import POOL, SETTINGS, TOKEN_KEY, principal
from taskhook.core.logs import get_logger
from taskhook.core.models import AuditRequest, UniqueIdRequest
from taskhook.core.responses import ok
from taskhook.core.serialize import limited_task_json, task_json
from taskhook.core.validation import decode_json, parse_model
from taskhook.receiver.idempotency import run_create
from taskhook.receiver.v1.params import parse_bool, parse_limit, task_filters

log = get_logger("taskhook.tasks")
routes = web.RouteTableDef()


async def _body(request: web.Request, allow_empty: bool = False) -> Any:
    return decode_json(await request.read(), allow_empty=allow_empty)


async def _body_or(request: web.Request, empty: Any) -> Any:
    """A bare JSON body, or `empty` when there is none: the SDK sends `{}` and `[]` as no
    body at all (`body = body or None` in its api.py), so no body means the empty value."""
    raw = await request.read()
    return decode_json(raw) if raw.strip() else empty


@routes.post("/v1/task/{type}")
async def create_task(request: web.Request) -> web.Response:
    raw = await request.read()
    task_type = request.match_info["type"]
    who, settings = principal(request), request.app[SETTINGS]

    async def work(conn: Any) -> dict[str, Any]:
        row = await tasks.create_task(conn, who, task_type, decode_json(raw), settings)
        log.info("task.created", task_id=row["id"], type=task_type, is_test=who.is_test)
        return task_json(row)

    return await run_create(request, raw, work)


@routes.get("/v1/task/{task_id}")
async def get_task(request: web.Request) -> web.Response:
    row = await tasks.get_task(request.app[POOL], principal(request), request.match_info["task_id"])
    return ok(task_json(row))


async def _in_tx(request: web.Request, action: Any, *args: Any) -> web.Response:
    """Run one task change in a transaction and answer the task as it now is."""
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await action(conn, principal(request), request.match_info["task_id"], *args)
    return ok(task_json(row))


@routes.post("/v1/task/{task_id}/cancel")
async def cancel_task(request: web.Request) -> web.Response:
    clear = parse_bool(request.query, "clear_unique_id")
    response = await _in_tx(request, tasks.cancel_task, clear)
    log.info("task.canceled", task_id=request.match_info["task_id"])
    return response


@routes.post("/v1/task/{task_id}/audit")
async def audit_task(request: web.Request) -> web.Response:
    body = parse_model(AuditRequest, await _body(request))
    response = await _in_tx(request, tasks.audit_task, body)
    log.info(
        "task.audited",
        task_id=request.match_info["task_id"],
        accepted=body.accepted,
        fixed=body.response is not None,
    )
    return response


@routes.post("/v1/task/{task_id}/unique_id")
async def update_unique_id(request: web.Request) -> web.Response:
    body = parse_model(UniqueIdRequest, await _body(request))
    return await _in_tx(request, tasks.set_unique_id, body.unique_id)


@routes.delete("/v1/task/{task_id}/unique_id")
async def clear_unique_id(request: web.Request) -> web.Response:
    return await _in_tx(request, tasks.set_unique_id, None)


@routes.post("/v1/task/{task_id}/setMetadata")
async def set_metadata(request: web.Request) -> web.Response:
    return await _in_tx(request, tasks.set_metadata, await _body_or(request, {}))


@routes.post("/v1/task/{task_id}/tags")
async def set_tags(request: web.Request) -> web.Response:
    return await _in_tx(request, tasks.change_tags, await _body_or(request, []), "set")


@routes.put("/v1/task/{task_id}/tags")
async def add_tags(request: web.Request) -> web.Response:
    return await _in_tx(request, tasks.change_tags, await _body_or(request, []), "add")


@routes.delete("/v1/task/{task_id}/tags")
async def delete_tags(request: web.Request) -> web.Response:
    return await _in_tx(request, tasks.change_tags, await _body_or(request, []), "delete")


@routes.get("/v1/tasks")
async def list_tasks(request: web.Request) -> web.Response:
    """Keyset paging, newest first; `next_token` is present exactly when `has_more`."""
    query, who = request.query, principal(request)
    filters = task_filters(query)
    limit = parse_limit(query)
    limited = parse_bool(query, "limited_response")
    parse_bool(query, "include_attachment_url")  # accepted (the SDK always sends it); no-op
    scope = f"{who.account_id}|{who.is_test}"
    token_key = request.app[TOKEN_KEY]
    after = (
        cursor.decode(token_key, scope, query["next_token"]) if query.get("next_token") else None
    )
    pool = request.app[POOL]
    rows = await store.list_tasks(pool, who, filters, after, limit + 1)
    total = await store.count_tasks(pool, who, filters)
    has_more = len(rows) > limit
    rows = rows[:limit]
    serialize = limited_task_json if limited else task_json
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
    return ok(reply)
