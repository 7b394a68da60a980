"""A task's callback deliveries and attempts, and resending its latest callback."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from taskhook.core import store, tasks
from taskhook.core.appkeys import POOL, principal
from taskhook.core.logs import get_logger
from taskhook.core.responses import ok
from taskhook.core.serialize import iso

log = get_logger("taskhook.callbacks")
routes = web.RouteTableDef()
# 'waiting' (behind an earlier delivery of the same task) is shown as SPEC §8's 'pending'.
_PUBLIC_STATE = {"waiting": "pending"}


@routes.get("/v1/task/{task_id}/callbacks")
async def list_callbacks(request: web.Request) -> web.Response:
    """SPEC §8's shape, oldest delivery first."""
    pool = request.app[POOL]
    task = await tasks.get_task(pool, principal(request), request.match_info["task_id"])
    rows = await store.task_deliveries(pool, task["id"])
    return ok({"task_id": task["id"], "deliveries": [delivery_json(r) for r in rows]})


def delivery_json(r: Any) -> dict[str, Any]:
    return {
        "delivery_id": r["id"],
        "trigger": r["trigger"],
        "state": _PUBLIC_STATE.get(r["state"], r["state"]),
        "created_at": iso(r["created_at"]),
        "attempts": r["attempts"],
    }


@routes.post("/v1/task/{task_id}/callbacks/resend")
async def resend(request: web.Request) -> web.Response:
    """Send the latest callback body again, as a new delivery (new webhook-id)."""
    async with request.app[POOL].acquire() as conn, conn.transaction():
        task, delivery_id = await tasks.resend_callback(
            conn, principal(request), request.match_info["task_id"]
        )
    log.info("delivery.resend_requested", task_id=task["id"], delivery_id=delivery_id)
    return ok({"task_id": task["id"], "delivery_id": delivery_id, "state": "pending"})
