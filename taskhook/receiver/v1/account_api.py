"""The calling account: read it, and set its default callback URL (Scale's profile setting,
used for tasks created without a callback_url)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from taskhook.core import store
from taskhook.core.accounts import MAX_GRACE_SECONDS, new_signing_secret
from taskhook.core.appkeys import POOL, SECRET_BOX, SETTINGS, principal
from taskhook.core.errors import Forbidden
from taskhook.core.logs import get_logger
from taskhook.core.models import Strict
from taskhook.core.responses import ok
from taskhook.core.secretbox import SIGNING_SECRET
from taskhook.core.serialize import iso
from taskhook.core.tasks import check_callback_url
from taskhook.core.validation import decode_json, parse_model

log = get_logger("taskhook.account")
routes = web.RouteTableDef()


class AccountSettings(Strict):
    default_callback_url: str | None = Field(max_length=2048)


class Rotation(Strict):
    # How long the previous secret keeps signing (as a second signature); 0 ends it now.
    grace_seconds: int = Field(24 * 3600, ge=0, le=MAX_GRACE_SECONDS)


def account_json(row: Any) -> dict[str, Any]:
    return {
        "account_id": row["id"],
        "name": row["name"],
        "default_callback_url": row["default_callback_url"],
    }


def live_key_only(request: web.Request) -> None:
    """The account's settings and secrets serve both worlds: a default callback URL or a
    signing secret set with a test key (often shared more widely, e.g. in CI) would reach
    live callbacks. So only a live key changes them."""
    if principal(request).is_test:
        raise Forbidden("Account settings and secrets can only be changed with a live API key.")


@routes.get("/v1/account")
async def get_account(request: web.Request) -> web.Response:
    row = await store.get_account(request.app[POOL], principal(request).account_id)
    return ok(account_json(row))


@routes.post("/v1/account/settings")
async def set_settings(request: web.Request) -> web.Response:
    """{"default_callback_url": "https://..." | "ops@example.com" | null}."""
    live_key_only(request)
    body = parse_model(AccountSettings, decode_json(await request.read()))
    url = body.default_callback_url or None
    if url is not None:
        check_callback_url(url, request.app[SETTINGS], "default_callback_url")
    who = principal(request)
    row = await store.set_default_callback_url(request.app[POOL], who.account_id, url)
    log.info("account.default_callback_url_set", cleared=url is None)
    return ok(account_json(row))


@routes.post("/v1/account/signing_secret/rotate")
async def rotate_signing_secret(request: web.Request) -> web.Response:
    """A new signing secret, shown once. Callbacks carry a signature by each secret until
    the grace period ends, so receivers can switch to the new one at their own pace."""
    live_key_only(request)
    raw = await request.read()
    body = parse_model(Rotation, decode_json(raw) if raw.strip() else {})
    who = principal(request)
    secret = new_signing_secret()
    sealed = request.app[SECRET_BOX].seal(secret, who.account_id, SIGNING_SECRET)
    row = await store.rotate_signing_secret(
        request.app[POOL], who.account_id, sealed, body.grace_seconds
    )
    assert row is not None, "the calling account vanished"
    until = row["old_secret_until"]
    log.info("account.signing_secret_rotated", grace_seconds=body.grace_seconds)
    return ok({"signing_secret": secret, "previous_secret_valid_until": iso(until)})
