"""Operations endpoints: liveness, readiness and Prometheus metrics.

Shared by both roles: the receiver app serves these routes, and so does the standalone
dispatcher's ops server (taskhook/dispatcher/ops_server.py). Each handler reads only the app's
SETTINGS, POOL and (when a dispatcher runs in the process) DISPATCHER keys.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from taskhook.core import metrics, store
from taskhook.core.appkeys import DISPATCHER, POOL, SETTINGS, Heartbeat
from taskhook.core.replies import Health, Ready, built
from taskhook.core.responses import error, ok
from taskhook.core.settings import Settings

routes = web.RouteTableDef()
READY_TIMEOUT = 2.0  # seconds a readiness probe may wait for the database
STUCK_AFTER = 30.0  # seconds without a loop turn before the dispatcher counts as stuck


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return ok(built(Health, {"status": "ok"}))


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and, if it runs here, the dispatcher loop turns."""
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await store.ping(request.app[POOL])
    except Exception:  # any failure means "not ready"
        return error(503, "The database is not reachable.", {"Retry-After": "2"})
    dispatcher = request.app.get(DISPATCHER)
    if dispatcher is not None and dispatcher_stuck(dispatcher, request.app[SETTINGS]):
        return error(503, "The dispatcher loop is stuck.", {"Retry-After": "5"})
    return ok(built(Ready, {"status": "ready"}))


def dispatcher_stuck(dispatcher: Heartbeat, settings: Settings) -> bool:
    """The loop turns at least every poll interval; no turn for this long means stuck."""
    limit = max(STUCK_AFTER, 10 * settings.poll_interval)
    return dispatcher.seconds_since_heartbeat() > limit


@routes.get("/metrics")
async def prometheus(request: web.Request) -> web.Response:
    """Prometheus text format; queue gauges are read from the database at scrape time."""
    try:
        async with asyncio.timeout(READY_TIMEOUT):  # a hung database must not hang scrapes
            stats = await store.queue_stats(request.app[POOL])
        metrics.QUEUE_DEPTH.set(stats["depth"])
        metrics.OLDEST_DUE_AGE.set(float(stats["oldest_due_age"]))
    except Exception:  # the counters still help while the database is down
        metrics.QUEUE_DEPTH.set(float("nan"))
    body = generate_latest()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
