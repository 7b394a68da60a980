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
from taskhook.core.replies import Account, RotatedSecret, built
from taskhook.core.responses import ok
from taskhook.core.secretbox import SIGNING_SECRET
from taskhook.core.serialize import iso
from taskhook.core.tasks import check_callback_url
from taskhook.core.validation import decode_json, parse_model
from taskhook.receiver.routes import Api, Body, model_body

log = get_logger("taskhook.account")
api = Api("account")
routes = api.routes
CALLBACK_NOTE = (
    "An http(s) URL, or an e-mail address when the server has SMTP configured. A literal "
    "non-public address is refused unless TASKHOOK_ALLOW_PRIVATE_TARGETS is set."
)


class AccountSettings(Strict):
    default_callback_url: str | None = Field(
        max_length=2048, description=CALLBACK_NOTE + " null clears the default."
    )


class Rotation(Strict):
    # How long the previous secret keeps signing (as a second signature); 0 ends it now.
    grace_seconds: int = Field(24 * 3600, ge=0, le=MAX_GRACE_SECONDS)


def account_json(row: Any) -> Account:
    fields = {
        "account_id": row["id"],
        "name": row["name"],
        "default_callback_url": row["default_callback_url"],
    }
    return built(Account, fields)


def live_key_only(request: web.Request) -> None:
    """The account's settings and secrets serve both worlds: a default callback URL or a
    signing secret set with a test key (often shared more widely, e.g. in CI) would reach
    live callbacks. So only a live key changes them."""
    if principal(request).is_test:
        raise Forbidden("Account settings and secrets can only be changed with a live API key.")


def _rotation(raw: bytes) -> Rotation:
    return parse_model(Rotation, decode_json(raw) if raw.strip() else {})


@api.get("/v1/account", "The calling account", Account)
async def get_account(request: web.Request) -> web.Response:
    row = await store.get_account(request.app[POOL], principal(request).account_id)
    return ok(account_json(row))


@api.post(
    "/v1/account/settings",
    "Set the account's default callback URL (live key only)",
    Account,
    errors=(403,),
    guard=live_key_only,
    body=model_body(AccountSettings, "Used for tasks created without one."),
)
async def set_account_settings(request: web.Request, body: AccountSettings) -> web.Response:
    """{"default_callback_url": "https://..." | "ops@example.com" | null}."""
    url = body.default_callback_url or None
    if url is not None:
        check_callback_url(url, request.app[SETTINGS], "default_callback_url")
    who = principal(request)
    row = await store.set_default_callback_url(request.app[POOL], who.account_id, url)
    log.info("account.default_callback_url_set", cleared=url is None)
    return ok(account_json(row))


@api.post(
    "/v1/account/signing_secret/rotate",
    "A new callback signing secret (shown once; live key only)",
    RotatedSecret,
    errors=(403,),
    guard=live_key_only,
    body=Body(
        Rotation,
        "How long the previous secret keeps signing too (a second signature); no body means "
        "the default.",
        _rotation,
        required=False,
    ),
)
async def rotate_signing_secret(request: web.Request, body: Rotation) -> web.Response:
    """A new signing secret, shown once. Callbacks carry a signature by each secret until
    the grace period ends, so receivers can switch to the new one at their own pace."""
    who = principal(request)
    secret = new_signing_secret()
    sealed = request.app[SECRET_BOX].seal(secret, who.account_id, SIGNING_SECRET)
    row = await store.rotate_signing_secret(
        request.app[POOL], who.account_id, sealed, body.grace_seconds
    )
    assert row is not None, "the calling account vanished"
    until = row["old_secret_until"]
    log.info("account.signing_secret_rotated", grace_seconds=body.grace_seconds)
    rotated = {"signing_secret": secret, "previous_secret_valid_until": iso(until)}
    return ok(built(RotatedSecret, rotated))
