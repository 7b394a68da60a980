"""The load generator's HTTP/1.1 client: keep-alive connections to one server, one request
at a time on each, responses parsed by httptools (uvicorn's parser).

Not aiohttp's client, because the workforce that sends events runs on this machine's two
cores only because the bench has no other machine: aiohttp cost the world ~250 µs an
event, taken from taskhook and PostgreSQL. The bare POST ceiling (bench/ceilings.py) keeps
aiohttp, since it stands for the dispatcher, which uses it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from urllib.parse import urlsplit

import httptools


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.body = bytearray()
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._fail(ConnectionError("connection lost"))

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)

    # httptools' callbacks
    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.reusable = self.parser.should_keep_alive()
        if self.answer is not None and not self.answer.done():
            self.answer.set_result((self.parser.get_status_code(), bytes(self.body)))

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.body.clear()
        self.transport.write(request)
        return await self.answer


class Client:
    """POSTs to one host:port over at most `limit` connections (callers beyond it wait)."""

    def __init__(self, url: str, limit: int) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.slots = asyncio.Semaphore(limit)
        self.idle: deque[_Connection] = deque()
        self.open: set[_Connection] = set()

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """The status and body of the answer; ConnectionError/OSError if the exchange failed
        (the connection is then dropped, never reused)."""
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Length: {len(body)}\r\n{head}\r\n"
        ).encode() + body
        async with self.slots:
            conn = self.idle.pop() if self.idle else await self._connect()
            try:
                answer = await conn.exchange(request)
            finally:
                if conn.reusable and conn.answer is not None and conn.answer.done():
                    self.idle.append(conn)
                else:
                    self._drop(conn)
            return answer

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Connection, self.host, self.port)
        self.open.add(conn)
        return conn

    def _drop(self, conn: _Connection) -> None:
        self.open.discard(conn)
        if conn.transport is not None:
            conn.transport.close()

    def close(self) -> None:
        for conn in list(self.open):
            self._drop(conn)
        self.idle.clear()
