"""The aiohttp application factory of the receiver (and, in `serve`, its dispatcher)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from taskhook import secretbox, store
from taskhook.db import create_pool
from taskhook.dispatcher.loop import Dispatcher
from taskhook.receiver import (
    account_api,
    batches_api,
    callbacks_api,
    events_api,
    files_api,
    openapi,
    ops,
    projects_api,
    quality_api,
    studio_api,
    tasks_api,
    teams_api,
    v2_api,
)
from taskhook.receiver.group_commit import GroupCommitter
from taskhook.receiver.keys import (
    DISPATCHER,
    GROUP_COMMIT,
    INGEST,
    POOL,
    SECRET_BOX,
    SETTINGS,
    TOKEN_KEY,
)
from taskhook.receiver.middleware import auth, errors, request_context, url_text
from taskhook.receiver.shedding import shed_overload
from taskhook.settings import Settings
from taskhook.web import routes as web_routes
from taskhook.web.sessions import page_session

Ctx = Callable[[web.Application], AsyncIterator[None]]
ROUTES = (
    account_api.routes,
    ops.routes,
    openapi.routes,
    events_api.routes,
    callbacks_api.routes,
    tasks_api.routes,
    batches_api.routes,
    projects_api.routes,
    files_api.routes,
    quality_api.routes,
    teams_api.routes,
    studio_api.routes,
    v2_api.routes,  # issue 8: Scale's v2 API
    web_routes.routes,  # issue 9: the Tasks tab's HTML pages (not API; see taskhook/web)
)


def create_app(
    settings: Settings,
    dsn: str | None = None,
    pool: asyncpg.Pool | None = None,
    *,
    ingest_secret: str,
    with_dispatcher: bool = False,
) -> web.Application:
    """Build the app on a DSN (the app owns its pool) or on a pool the caller owns.

    with_dispatcher: also run the delivery loop in this process (`taskhook serve`); it
    needs the DSN for its LISTEN connection.
    """
    app = web.Application(
        # shed_overload: past capacity, 503 + Retry-After before any auth or database work.
        # page_session: the Tasks tab's pages need a sign-in session (auth skips them).
        middlewares=[
            request_context,
            errors,
            shed_overload(settings.max_in_flight, settings.max_in_flight_body_bytes),
            auth,
            page_session,
            url_text,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[INGEST] = Webhook(ingest_secret)
    # Order matters: the pool opens first and closes last; the dispatcher stops before it.
    app.cleanup_ctx.append(_database(settings, dsn, pool))
    if with_dispatcher:
        assert dsn is not None, "the in-process dispatcher needs a DSN to LISTEN on"
        app.cleanup_ctx.append(_dispatcher(settings, dsn))
    for table in ROUTES:
        app.router.add_routes(table)
    return app


def _database(settings: Settings, dsn: str | None, given: asyncpg.Pool | None) -> Ctx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pool = given
        if pool is None:
            assert dsn is not None, "create_app needs a dsn or a pool"
            pool = await create_pool(
                dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max
            )
        app[POOL] = pool
        app[TOKEN_KEY] = await store.token_key(pool)
        app[SECRET_BOX] = await secretbox.open_bound(pool, settings)
        app[GROUP_COMMIT] = GroupCommitter(pool, max_queued=settings.ingest_queue_events)
        yield
        await app[GROUP_COMMIT].close()
        if given is None:
            await pool.close()

    return ctx


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
