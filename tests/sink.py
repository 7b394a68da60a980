"""A real callback receiver on 127.0.0.1 for tests: records every request and answers
by the first path segment, so one sink plays every kind of customer endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web

HANG_SECONDS = 30.0  # a "hanging" endpoint answers after this long (bounded)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Sink:
    """Paths: /ok, /fail (500), /bad (400), /gone (410), /redirect (302 to /ok), /hang,
    /slow (0.3 s), /throttle (429, Retry-After: 1), /flaky/N/... (500 for the first N hits
    of that path), /hangonce/... (the first hit hangs, later ones answer 200), /stall (200
    and headers, then a body that never comes), /cookie/... (the first hit answers 500 and
    sets a cookie, later ones 200)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.hits: Counter[str] = Counter()
        self.arrived = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Received(request.path, dict(request.headers), body, time.monotonic()))
        self.hits[request.path] += 1
        self.arrived.set()
        kind = request.path.strip("/").split("/")[0]
        if kind == "fail":
            return web.Response(status=500, text="boom")
        if kind == "bad":
            return web.Response(status=400, text="bad request")
        if kind == "gone":
            return web.Response(status=410, text="gone")
        if kind == "redirect":
            raise web.HTTPFound("/ok")
        if kind == "throttle":
            return web.Response(status=429, headers={"Retry-After": "1"})
        if kind == "stall":
            return await _stall(request)
        if kind == "hang" or (kind == "hangonce" and self.hits[request.path] == 1):
            await asyncio.sleep(HANG_SECONDS)
        if kind == "slow":
            await asyncio.sleep(0.3)
        if kind == "flaky" and self.hits[request.path] <= int(request.path.split("/")[2]):
            return web.Response(status=500, text="not yet")
        if kind == "cookie" and self.hits[request.path] == 1:
            return web.Response(status=500, headers={"Set-Cookie": "session=s1; Path=/"})
        return web.Response(text="ok")

    def to(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Wait until predicate() is true (checked on every arrival and every 50 ms)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self.arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.arrived.wait(), 0.05)


async def _stall(request: web.Request) -> web.StreamResponse:
    """Status and headers at once, then no body until HANG_SECONDS have passed."""
    response = web.StreamResponse()
    await response.prepare(request)
    await asyncio.sleep(HANG_SECONDS)
    return response
