"""`Idempotency-Key` on creates (Stripe-style, our design; Scale documents only the header).

The first request with a key claims it; its response (error or not) is saved for 24 hours
in the same transaction that writes the object, and a repeat with the same body gets the
saved reply and creates nothing. The same key with another body is a 409; a repeat while
the first is still running is a 429 with Retry-After (safe to retry).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from taskhook.core import store
from taskhook.core.appkeys import POOL, principal
from taskhook.core.errors import ApiError, BadRequest, Conflict, TooManyRequests
from taskhook.core.responses import dumps, error_body
from taskhook.core.store import Connection

# A claim not finished within this time is considered abandoned (its holder died).
IN_FLIGHT_LOCK_SECONDS = 60.0
MAX_KEY_CHARS = 255
IDEMPOTENCY_KEY = {  # the header, as the OpenAPI document shows it
    "name": "Idempotency-Key",
    "in": "header",
    "description": "The first reply (errors included) is kept 24 hours per account, world and "
    "key; a repeat with the same body gets it back (`Idempotent-Replayed: true`) and creates "
    "nothing; another body with the same key is a 409; a repeat while the first still runs "
    "is a 429.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS},
}

Work = Callable[[Connection], Awaitable[Any]]


async def run_create(request: web.Request, raw: bytes, work: Work) -> web.Response:
    """Run `work` in one transaction, honouring the Idempotency-Key header if present."""
    pool = request.app[POOL]
    key = request.headers.get("Idempotency-Key")
    if key is None:
        async with pool.acquire() as conn, conn.transaction():
            result = await work(conn)
        return _json(200, dumps(result))
    if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise BadRequest(
            f"'Idempotency-Key' header must be 1 to {MAX_KEY_CHARS} printable characters."
        )
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode() + raw).digest()
    replay = await _claim(request, key, digest)
    if replay is not None:
        return replay
    return await _run_claimed(request, key, work)


async def _claim(request: web.Request, key: str, digest: bytes) -> web.Response | None:
    """None if this request now holds the key; otherwise the reply for the repeat."""
    who = principal(request)
    row = None
    for _ in range(3):  # bounded: a row committed mid-statement is seen on the next try
        row = await store.idempotency_claim(
            request.app[POOL], who, key, digest, IN_FLIGHT_LOCK_SECONDS
        )
        if row is not None:
            break
        await asyncio.sleep(0.01)
    if row is None:
        raise TooManyRequests("A request with this Idempotency-Key is being processed.")
    if row["claimed"]:
        return None
    if bytes(row["request_hash"]) != digest:
        raise Conflict(
            "This Idempotency-Key was already used for a different request; "
            "use a new key for a new request."
        )
    if row["state"] == "in_flight":
        raise TooManyRequests(
            "A request with this Idempotency-Key is still being processed; retry shortly."
        )
    response = _json(row["status_code"], row["response_body"])
    response.headers["Idempotent-Replayed"] = "true"
    return response


async def _run_claimed(request: web.Request, key: str, work: Work) -> web.Response:
    pool, who = request.app[POOL], principal(request)
    try:
        async with pool.acquire() as conn, conn.transaction():
            body = dumps(await work(conn))
            await store.idempotency_complete(conn, who, key, 200, body)
    except ApiError as exc:
        # A refused request is answered the same way on every repeat.
        await store.idempotency_complete(
            pool, who, key, exc.status, dumps(error_body(exc.status, exc.message))
        )
        raise
    except BaseException:
        # A crash or 5xx is not a final answer: free the key so a retry can run.
        await asyncio.shield(store.idempotency_release(pool, who, key))
        raise
    return _json(200, body)


def _json(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body, content_type="application/json")
