"""Sign-in sessions of the Tasks tab, their cookie, and CSRF protection.

- Sign-in takes an API key (live or test): the session sees that key's account and world
  only, and ends with the key (revoked), at expiry, or at sign-out (the row is deleted).
- The cookie holds 256 random bits; the database keeps only their SHA-256. HttpOnly,
  SameSite=Lax, Path=/, Secure when the request came over https.
- Every POST form carries a CSRF token: an HMAC of the session token under the server's
  token key, so it is per session, needs no storage, and is compared in constant time. The
  sign-in form (no session yet) uses a double-submit cookie instead, against login CSRF.
- API routes (/v1, /v2) never accept the cookie: they need the key itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from taskhook.core.accounts import hash_key
from taskhook.core.appkeys import POOL, TOKEN_KEY
from taskhook.core.store import web as web_store
from taskhook.web import CSRF, SESSION, is_page
from taskhook.web.render import page, see_other

COOKIE = "taskhook_session"
SIGNIN_COOKIE = "taskhook_signin"  # the sign-in form's double-submit token
SESSION_SECONDS = 12 * 3600  # a session lasts one working day, then sign in again
# Pages anyone may open: the sign-in form and the static files.
_OPEN = ("/signin", "/static/")
FORM_EXPIRED = "This form has expired (or came from another site). Please try again."


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def csrf_token(key: bytes, session_token: str) -> str:
    mac = hmac.new(key, b"csrf|" + session_token.encode("utf-8", "surrogatepass"), "sha256")
    return mac.hexdigest()


def same_token(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


def set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, **extra: str
) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite=extra.pop("samesite", "Lax"),
        secure=request.secure,
        path=extra.pop("path", "/"),
        max_age=int(extra.pop("max_age", SESSION_SECONDS)),
    )


async def open_session(request: web.Request, key: str) -> str | None:
    """A new session for a valid API key: its cookie token; None for a bad key."""
    token = secrets.token_urlsafe(32)
    row = await web_store.insert_session(
        request.app[POOL], _digest(token), hash_key(key), SESSION_SECONDS
    )
    return token if row is not None else None


async def close_session(request: web.Request, response: web.StreamResponse) -> None:
    token = request.cookies.get(COOKIE)
    if token:
        await web_store.delete_session(request.app[POOL], _digest(token))
    response.del_cookie(COOKIE, path="/")


def _back_to(request: web.Request) -> str:
    """Where to go after signing in: this page, only as a local path."""
    return "/signin?next=" + quote(request.path_qs, safe="")


def _cross_site(request: web.Request) -> bool:
    """A browser's Origin header naming another host (when present)."""
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return origin == "null"
    return origin.split("://", 1)[-1] != request.host


@web.middleware
async def page_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every page but the sign-in form and the static files needs a live session; every
    POST also a CSRF token. Runs after the API-key middleware, which skips the pages."""
    path = request.path
    if not is_page(path) or path == "/" or path.startswith(_OPEN):
        return await handler(request)
    token = request.cookies.get(COOKIE, "")
    who = await web_store.session_principal(request.app[POOL], _digest(token)) if token else None
    if who is None:
        if request.method in ("GET", "HEAD"):
            return see_other(_back_to(request))
        return page(
            request,
            "error.html",
            status=401,
            title="Signed out",
            message="Your session has ended. Sign in again to continue.",
        )
    request[SESSION] = who
    request[CSRF] = csrf_token(request.app[TOKEN_KEY], token)
    if request.method == "POST":
        form = await request.post()
        given = form.get("csrf")
        if (
            _cross_site(request)
            or not isinstance(given, str)
            or not same_token(given, request[CSRF])
        ):
            return page(
                request, "error.html", status=403, title="Form expired", message=FORM_EXPIRED
            )
    return await handler(request)
