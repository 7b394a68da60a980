"""JSON replies in Scale's shapes: data with 200, errors as {"status_code", "error"}."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from taskhook.core.jsoncodec import dumps, dumps_bytes

__all__ = ["dumps", "error", "error_body", "ok"]


def ok(data: Any) -> web.Response:
    """Scale's SDK treats only 200 as success, so every success is a 200."""
    return web.Response(body=dumps_bytes(data), content_type="application/json", charset="utf-8")


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"status_code": status, "error": message}


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        error_body(status, message), status=status, dumps=dumps, headers=headers
    )
