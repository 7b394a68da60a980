"""The aiohttp application factory of the receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from taskhook import store
from taskhook.db import create_pool
from taskhook.receiver import batches_api, ops, projects_api, tasks_api
from taskhook.receiver.keys import POOL, SETTINGS, TOKEN_KEY
from taskhook.receiver.middleware import auth, errors, request_context, url_text
from taskhook.settings import Settings


def create_app(
    settings: Settings, dsn: str | None = None, pool: asyncpg.Pool | None = None
) -> web.Application:
    """Build the app on a DSN (the app owns its pool) or on a pool the caller owns."""
    app = web.Application(
        middlewares=[request_context, errors, auth, url_text],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_database(settings, dsn, pool))
    for table in (ops.routes, tasks_api.routes, batches_api.routes, projects_api.routes):
        app.router.add_routes(table)
    return app


def _database(settings: Settings, dsn: str | None, given: asyncpg.Pool | None):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pool = given
        if pool is None:
            assert dsn is not None, "create_app needs a dsn or a pool"
            pool = await create_pool(
                dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max
            )
        app[POOL] = pool
        app[TOKEN_KEY] = await store.token_key(pool)
        yield
        if given is None:
            await pool.close()

    return ctx
