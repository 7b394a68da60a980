"""The calling account: read it, and set its default callback URL (Scale's profile setting,
used for tasks created without a callback_url)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from taskhook import store
from taskhook.logs import get_logger
from taskhook.models import Strict
from taskhook.receiver.keys import POOL, SETTINGS, principal
from taskhook.receiver.responses import ok
from taskhook.tasks import check_callback_url
from taskhook.validation import decode_json, parse_model

log = get_logger("taskhook.account")
routes = web.RouteTableDef()


class AccountSettings(Strict):
    default_callback_url: str | None = Field(max_length=2048)


def account_json(row: Any) -> dict[str, Any]:
    return {
        "account_id": row["id"],
        "name": row["name"],
        "default_callback_url": row["default_callback_url"],
    }


@routes.get("/v1/account")
async def get_account(request: web.Request) -> web.Response:
    row = await store.get_account(request.app[POOL], principal(request).account_id)
    return ok(account_json(row))


@routes.post("/v1/account/settings")
async def set_settings(request: web.Request) -> web.Response:
    """{"default_callback_url": "https://..." | "ops@example.com" | null}."""
    body = parse_model(AccountSettings, decode_json(await request.read()))
    url = body.default_callback_url or None
    if url is not None:
        check_callback_url(url, request.app[SETTINGS], "default_callback_url")
    who = principal(request)
    row = await store.set_default_callback_url(request.app[POOL], who.account_id, url)
    log.info("account.default_callback_url_set", cleared=url is None)
    return ok(account_json(row))
