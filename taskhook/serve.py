"""`taskhook serve`: the receiver's app with the delivery loop running in the same process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from aiohttp import web

from taskhook.core.appkeys import DISPATCHER, POOL
from taskhook.core.settings import Settings
from taskhook.dispatcher.loop import Dispatcher
from taskhook.receiver.app import Ctx, create_app


def create_serve_app(
    settings: Settings, dsn: str, pool: asyncpg.Pool | None = None, *, ingest_secret: str
) -> web.Application:
    """The receiver's app; its dispatcher needs the DSN for its LISTEN connection, and
    stops (draining in-flight callbacks) before the app's pool closes."""
    app = create_app(settings, dsn, pool, ingest_secret=ingest_secret)
    app.cleanup_ctx.append(_dispatcher(settings, dsn))
    return app


def _dispatcher(settings: Settings, dsn: str) -> Ctx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        dispatcher = Dispatcher(app[POOL], dsn, settings)
        app[DISPATCHER] = dispatcher
        stop = asyncio.Event()
        running: asyncio.Task[Any] = asyncio.create_task(dispatcher.run(stop))
        yield
        stop.set()  # stop claiming, drain in-flight callbacks within the grace time
        await running

    return ctx
