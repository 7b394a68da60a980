"""The ops HTTP server of the standalone `taskhook dispatcher`: /healthz, /readyz, /metrics.

The dispatcher role serves no API, but an orchestrator must be able to probe it and
Prometheus must be able to scrape its delivery series (attempts, attempt seconds, callback
latency, deliveries finished), which live in this process only. So it runs a small aiohttp
app on TASKHOOK_HOST:TASKHOOK_DISPATCHER_PORT (0: none) with the receiver's own handlers
(taskhook/core/ops.py), hence the same rules: /healthz answers while the process runs; /readyz
needs the database and a dispatcher loop that turned recently; /metrics is the process's
Prometheus registry. `taskhook serve` does not use it: there the receiver serves them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from aiohttp import web

from taskhook.core import ops
from taskhook.core.appkeys import DISPATCHER, POOL, SETTINGS
from taskhook.core.logs import get_logger
from taskhook.core.settings import Settings
from taskhook.dispatcher.loop import Dispatcher

log = get_logger("taskhook.dispatcher.ops")


def create_ops_app(
    settings: Settings, pool: asyncpg.Pool, dispatcher: Dispatcher
) -> web.Application:
    """Only the ops routes; the pool and the dispatcher belong to the caller."""
    app = web.Application()
    app[SETTINGS] = settings
    app[POOL] = pool
    app[DISPATCHER] = dispatcher
    app.router.add_routes(ops.routes)
    return app


@asynccontextmanager
async def serving(
    settings: Settings, pool: asyncpg.Pool, dispatcher: Dispatcher
) -> AsyncIterator[str | None]:
    """Listen for the duration of the block; yields the base URL, or None when disabled.
    A port that cannot be bound raises OSError before the block runs."""
    if settings.dispatcher_port == 0:
        log.info("dispatcher.ops_disabled")
        yield None
        return
    runner = web.AppRunner(create_ops_app(settings, pool, dispatcher), handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.dispatcher_port)
        await site.start()
        url = f"http://{settings.host}:{settings.dispatcher_port}"
        log.info("dispatcher.ops_started", url=url)
        yield url
    finally:
        await runner.cleanup()
