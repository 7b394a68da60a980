"""Request id and canonical log line, error translation, and API-key authentication."""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from taskhook.core import ids, metrics
from taskhook.core.accounts import authenticate
from taskhook.core.appkeys import POOL, PRINCIPAL, REQUEST_ID
from taskhook.core.db import DATABASE_DOWN
from taskhook.core.errors import ApiError, TooManyRequests
from taskhook.core.logs import get_logger
from taskhook.core.responses import error
from taskhook.core.validation import check_text
from taskhook.web import is_page

log = get_logger("taskhook.receiver")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Browsers ask for it on every page load; app.py answers it with a 204.
FAVICON = "/favicon.ico"
# Paths that need no API key.
# events: signed; openapi.json: describes the API, not an account; /files/: a file's bytes,
# whose attachment_url carries its own unguessable token.
_PUBLIC_PREFIXES = (
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/v1/events",
    "/files/",
    FAVICON,
)
_UNAUTHORIZED = "Please provide a valid API key (HTTP Basic user name, or Bearer token)."
_RETRY_AFTER_DB_DOWN = "2"  # seconds


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to every log line of this request and emit one line at the end."""
    request_id = request.headers.get("X-Request-Id", "")[:64] or ids.random_hex(8)
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        route = request.match_info.route.resource
        metrics.REQUESTS.labels(
            request.method, route.canonical if route else "unmatched", str(status)
        ).inc()
        log.info(
            "http.request",
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes {"status_code", "error"}; never a stack trace in a reply."""
    try:
        return await handler(request)
    except ApiError as exc:
        headers = {"Retry-After": "1"} if isinstance(exc, TooManyRequests) else None
        return error(exc.status, exc.message, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error(exc.status, _http_message(request, exc))
    except DATABASE_DOWN:
        log.warning("database.unavailable", exc_info=True)
        return error(
            503,
            "The database is unavailable; retry shortly.",
            {"Retry-After": _RETRY_AFTER_DB_DOWN},
        )
    except Exception:
        log.exception("http.unhandled_error")
        return error(500, f"Internal server error (request id {request[REQUEST_ID]}).")


def _http_message(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"No such endpoint: {request.method} {request.path}."
    if exc.status == 405:
        return f"Method {request.method} is not allowed on {request.path}."
    if exc.status == 413:
        return f"Request body is too large: {exc.text or 'over the limit'}."
    return exc.text or exc.reason


def _presented_key(header: str) -> str | None:
    """Scale's SDK sends Basic with the key as user name; Bearer is accepted too."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8: no key
            return None
        return decoded.partition(":")[0] or None
    return None


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    # The Tasks tab's pages take no API key: taskhook/web/sessions.py guards them.
    if request.path.startswith(_PUBLIC_PREFIXES) or is_page(request.path):
        return await handler(request)
    # A path no route serves (or a method it does not take) is a 404 (405) whatever the
    # key: the routes are public (GET /openapi.json), and a 401 there sends a caller
    # looking for a key problem instead of a typo in the URL.
    unmatched = request.match_info.http_exception
    if unmatched is not None:
        raise unmatched
    key = _presented_key(request.headers.get("Authorization", ""))
    who = await authenticate(request.app[POOL], key) if key else None
    if who is None:
        return error(401, _UNAUTHORIZED)
    request[PRINCIPAL] = who
    structlog.contextvars.bind_contextvars(account_id=who.account_id)
    return await handler(request)


@web.middleware
async def url_text(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Names and ids in the path and query reach PostgreSQL, which refuses NUL: 400 first."""
    for name, value in request.match_info.items():
        check_text(value, f"URL path ('{name}')")
    for name, value in request.query.items():
        check_text(name, "query string")
        check_text(value, f"query parameter '{name}'")
    return await handler(request)
