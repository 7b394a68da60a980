"""Typed application state (aiohttp AppKeys) both roles' apps share, and helpers to read it."""

from __future__ import annotations

from typing import Protocol

import asyncpg
from aiohttp import web

from taskhook.core.principal import Principal
from taskhook.core.secretbox import SecretBox
from taskhook.core.settings import Settings


class Heartbeat(Protocol):
    """What the ops endpoints read of a dispatcher running in the process."""

    def seconds_since_heartbeat(self) -> float: ...


POOL = web.AppKey("pool", asyncpg.Pool)
SETTINGS = web.AppKey("settings", Settings)
TOKEN_KEY = web.AppKey("token_key", bytes)
SECRET_BOX = web.AppKey("secret_box", SecretBox)
DISPATCHER = web.AppKey("dispatcher", Heartbeat)  # present when it runs in this process

# Request-scoped: set by the middlewares.
PRINCIPAL = web.RequestKey("principal", Principal)
REQUEST_ID = web.RequestKey("request_id", str)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]
