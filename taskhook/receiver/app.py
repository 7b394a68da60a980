"""The aiohttp application factory of the receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from taskhook.core import ops, secretbox, store
from taskhook.core.appkeys import POOL, SECRET_BOX, SETTINGS, TOKEN_KEY
from taskhook.core.db import create_pool
from taskhook.core.settings import Settings
from taskhook.receiver import openapi
from taskhook.receiver import v2 as v2_api
from taskhook.receiver.group_commit import GroupCommitter
from taskhook.receiver.keys import GROUP_COMMIT, INGEST, VALIDATE_REPLIES
from taskhook.receiver.middleware import FAVICON, auth, errors, request_context, url_text
from taskhook.receiver.shedding import shed_overload
from taskhook.receiver.v1 import (
    account_api,
    batches_api,
    callbacks_api,
    events_api,
    files_api,
    projects_api,
    quality_api,
    studio_api,
    tasks_api,
    teams_api,
)
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
    v2_api.routes,  # Scale's v2 API
    web_routes.routes,  # the Tasks tab's HTML pages (not API; see taskhook/web)
)


def create_app(
    settings: Settings,
    dsn: str | None = None,
    pool: asyncpg.Pool | None = None,
    *,
    ingest_secret: str,
    validate_replies: bool = False,
) -> web.Application:
    """Build the app on a DSN (the app owns its pool) or on a pool the caller owns.
    `validate_replies` checks every 200 reply against its declared type (tests set it)."""
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
    app[VALIDATE_REPLIES] = validate_replies
    # The pool opens first and closes last: contexts appended later stop before it.
    app.cleanup_ctx.append(_database(settings, dsn, pool))
    for table in ROUTES:
        app.router.add_routes(table)
    app.router.add_get(FAVICON, _no_icon)
    return app


async def _no_icon(_request: web.Request) -> web.Response:
    """No icon, and no error in the logs for each page load; cached for a day."""
    return web.Response(status=204, headers={"Cache-Control": "public, max-age=86400"})


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
