"""Operations endpoints: liveness and readiness."""

from __future__ import annotations

import asyncio

from aiohttp import web

from taskhook.receiver.keys import POOL
from taskhook.receiver.responses import error, ok

routes = web.RouteTableDef()
READY_TIMEOUT = 2.0  # seconds a readiness probe may wait for the database


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return ok({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers; a load balancer stops routing here otherwise."""
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await request.app[POOL].fetchval("SELECT 1")
    except (TimeoutError, OSError, Exception):  # any failure means "not ready"
        return error(503, "The database is not reachable.", {"Retry-After": "2"})
    return ok({"status": "ready"})
