"""Typed application state (aiohttp AppKeys) and helpers to read it from a request."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from taskhook.accounts import Principal
from taskhook.dispatcher.loop import Dispatcher
from taskhook.receiver.group_commit import GroupCommitter
from taskhook.secretbox import SecretBox
from taskhook.settings import Settings

POOL = web.AppKey("pool", asyncpg.Pool)
SETTINGS = web.AppKey("settings", Settings)
TOKEN_KEY = web.AppKey("token_key", bytes)
SECRET_BOX = web.AppKey("secret_box", SecretBox)
INGEST = web.AppKey("ingest", Webhook)  # verifies POST /v1/events
GROUP_COMMIT = web.AppKey("group_commit", GroupCommitter)  # shares ingest transactions
DISPATCHER = web.AppKey("dispatcher", Dispatcher)  # present when it runs in this process

# Request-scoped: set by the middlewares.
PRINCIPAL = web.RequestKey("principal", Principal)
REQUEST_ID = web.RequestKey("request_id", str)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]
