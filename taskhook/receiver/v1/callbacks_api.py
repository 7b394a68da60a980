"""A task's callback deliveries and attempts, and resending its latest callback."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from taskhook.core import replies, store, tasks
from taskhook.core.appkeys import POOL, principal
from taskhook.core.logs import get_logger
from taskhook.core.responses import ok
from taskhook.core.serialize import iso
from taskhook.receiver.routes import Api

log = get_logger("taskhook.callbacks")
api = Api("callbacks", params={"task_id": "The task's id (`task_id`)."}, errors=(404,))
routes = api.routes
# 'waiting' (behind an earlier delivery of the same task) is shown as 'pending'.
_PUBLIC_STATE = {"waiting": "pending"}


@api.get(
    "/v1/task/{task_id}/callbacks",
    "A task's callback deliveries and attempts",
    replies.CallbackList,
)
async def list_task_callbacks(request: web.Request) -> web.Response:
    """Oldest delivery first."""
    pool = request.app[POOL]
    task = await tasks.get_task(pool, principal(request), request.match_info["task_id"])
    rows = await store.task_deliveries(pool, task["id"])
    found = {"task_id": task["id"], "deliveries": [delivery_json(r) for r in rows]}
    return ok(replies.built(replies.CallbackList, found))


def delivery_json(r: Any) -> replies.Delivery:
    return replies.built(
        replies.Delivery,
        {
            "delivery_id": r["id"],
            "webhook_id": r["webhook_id"],
            "trigger": r["trigger"],
            "state": _PUBLIC_STATE.get(r["state"], r["state"]),
            "created_at": iso(r["created_at"]),
            "attempts": r["attempts"],
        },
    )


@api.post(
    "/v1/task/{task_id}/callbacks/resend",
    "Send the latest callback again, as a new delivery",
    replies.Resent,
)
async def resend_task_callback(request: web.Request) -> web.Response:
    """Send the latest callback body again, as a new delivery (new webhook-id)."""
    async with request.app[POOL].acquire() as conn, conn.transaction():
        task, delivery_id = await tasks.resend_callback(
            conn, principal(request), request.match_info["task_id"]
        )
    log.info("delivery.resend_requested", task_id=task["id"], delivery_id=delivery_id)
    resent = {"task_id": task["id"], "delivery_id": delivery_id, "state": "pending"}
    return ok(replies.built(replies.Resent, resent))
