"""Typed application state (aiohttp AppKeys) and helpers to read it from a request."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from taskhook.accounts import Principal
from taskhook.settings import Settings

POOL = web.AppKey("pool", asyncpg.Pool)
SETTINGS = web.AppKey("settings", Settings)
TOKEN_KEY = web.AppKey("token_key", bytes)

# Request-scoped: set by the middlewares.
PRINCIPAL = web.RequestKey("principal", Principal)
REQUEST_ID = web.RequestKey("request_id", str)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]
