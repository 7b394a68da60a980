"""The "world": the workforce that sends signed events and the customer's callback sink,
in one process so that "event sent" and "callback received" use one clock.

Run as `python -m bench.world`; the orchestrator (bench/run.py) sends one JSON command per
line on stdin and reads one JSON reply per line on stdout. The first line out is
{"sink_port": P}. Sink paths (all on 127.0.0.1:P):
  /cb/<task_id>    answers 200 at once and records the arrival (the healthy customer)
  /fail/<task_id>  answers 500 (a bad neighbour)
  /hang/<task_id>  never answers within the dispatcher's timeout (a bad neighbour)
  /ceil/<n>        answers 200 at once, counts only (the bare POST loop's target)

The sink is a bare HTTP/1.1 responder on httptools' parser (uvicorn's), not aiohttp.web:
the customer's endpoint runs on this machine's two cores only because the bench has no
other machine, and every microsecond it spends is taken from taskhook and PostgreSQL.
aiohttp.web cost ~73 µs a callback (0.35 core at 4,700 callbacks/s); this costs ~20.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httptools

from bench import common
from bench.loadgen import closed_loop, open_loop


@dataclass
class Sink:
    """What the customer's endpoint saw. `arrived` holds each task's first healthy callback
    (perf_counter), `wall` the first and last arrival in wall-clock time (for the drain,
    measured against a commit made in another process)."""

    arrived: dict[str, float] = field(default_factory=dict)
    webhook_ids: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    wall: list[float] = field(default_factory=lambda: [0.0, 0.0])
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def reset(self) -> None:
        self.arrived.clear()
        self.webhook_ids.clear()
        self.counts.clear()
        self.wall = [0.0, 0.0]

    def handle(self, kind: str, key: str, webhook_id: str, now: float) -> bytes | None:
        """The response to a request whose headers arrived at `now` (None: never answer)."""
        if kind not in KINDS or not key:
            return NOT_FOUND
        self.counts[kind] += 1
        if kind == "hang":
            return None
        if kind == "fail":
            return FAILED
        if kind == "cb":
            self._record(key, webhook_id, now)
        return OK

    def _record(self, tid: str, webhook_id: str, now: float) -> None:
        if webhook_id in self.webhook_ids:
            self.counts["duplicate_webhook_id"] += 1
        self.webhook_ids.add(webhook_id)
        if tid in self.arrived:
            self.counts["duplicate_task"] += 1
            return
        self.arrived[tid] = now
        wall = time.time()
        if not self.wall[0]:
            self.wall[0] = wall
        self.wall[1] = wall
        self.changed.set()

    def stats(self) -> dict[str, Any]:
        return {
            "callbacks": len(self.arrived),
            "first_wall": self.wall[0],
            "last_wall": self.wall[1],
            **{f"requests_{k}": v for k, v in self.counts.items()},
        }

    async def wait_for(self, count: int, timeout: float) -> dict[str, Any]:
        """Until `count` distinct tasks were called back, or `timeout` seconds."""
        deadline = time.perf_counter() + timeout
        while len(self.arrived) < count and (left := deadline - time.perf_counter()) > 0:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.5))
        return {**self.stats(), "complete": len(self.arrived) >= count}


KINDS = frozenset({"cb", "fail", "hang", "ceil"})
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
FAILED = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 25\r\n\r\nbench: failing on purpose"
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


class SinkProtocol(asyncio.Protocol):
    """One keep-alive connection: parse each request, answer when its body is in (a /hang
    request is never answered; the dispatcher's timeout closes the connection)."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.webhook_id = b""
        self.now = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    # httptools' callbacks
    def on_message_begin(self) -> None:
        self.url, self.webhook_id = b"", b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"webhook-id":
            self.webhook_id = value

    def on_headers_complete(self) -> None:
        self.now = time.perf_counter()

    def on_message_complete(self) -> None:
        assert self.transport is not None
        kind, _, key = self.url.decode().lstrip("/").partition("/")
        answer = self.sink.handle(kind, key, self.webhook_id.decode(), self.now)
        if answer is None:
            return
        self.transport.write(answer)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def start_sink(sink: Sink) -> tuple[asyncio.Server, int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SinkProtocol(sink), "127.0.0.1", 0, backlog=4096)
    return server, int(server.sockets[0].getsockname()[1])


async def _command(sink: Sink, cmd: dict[str, Any]) -> dict[str, Any]:
    name = cmd.pop("cmd")
    if name == "reset":
        sink.reset()
        return {"ok": True}
    if name == "sink_stats":
        return sink.stats()
    if name == "wait_sink":
        return await sink.wait_for(**cmd)
    if name == "closed_loop":
        return await closed_loop(**cmd)
    if name == "open_loop":
        return await open_loop(sink.arrived, **cmd)
    raise ValueError(f"unknown command {name!r}")


def _reply(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


async def main() -> None:
    # Ctrl-C reaches the whole process group; the orchestrator decides when we stop
    # (it sends "quit", or closes stdin when it dies).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sink = Sink()
    server, port = await start_sink(sink)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _reply({"sink_port": port, "aiohttp": aiohttp.__version__})
    try:
        while line := await reader.readline():
            cmd = json.loads(line)
            if cmd.get("cmd") == "quit":
                break
            try:
                _reply(await _command(sink, cmd))
            except Exception as exc:  # reported to the orchestrator, which prints it
                _reply({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        server.close()


if __name__ == "__main__":
    common.install_uvloop()
    asyncio.run(main())
