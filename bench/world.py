"""The "world": the workforce that sends signed events and the customer's callback sink,
in one process so that "event sent" and "callback received" use one clock.

Run as `python -m bench.world`; the orchestrator (bench/run.py) sends one JSON command per
line on stdin and reads one JSON reply per line on stdout. The first line out is
{"sink_port": P}. Sink paths (all on 127.0.0.1:P), each ending in the task's reference (creator.py):
  /cb/<ref>    answers 200 at once and records the arrival (the healthy customer)
  /fail/<ref>  answers 500 (a bad neighbour)
  /hang/<ref>  never answers within the dispatcher's timeout (a bad neighbour)
  /ceil/<n>    answers 200 at once, counts only (the bare POST loop's target)

The world also makes the tasks, through taskhook's API (bench/creator.py), before the
timed windows or beside them (the soak), and keeps their server-assigned ids by set.

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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httptools

from bench import common
from bench.creator import Creator, TaskSet, create_set
from bench.loadgen import closed_loop, open_loop


@dataclass
class Sink:
    """What the customer's endpoint saw. `arrived` holds each task's first healthy callback
    (perf_counter) by task reference, `wall` the first and last arrival in wall-clock time
    (for the drain, measured against a process started by another one). Webhook ids are
    kept in two generations: a long run rotates them (and forgets the arrivals of its
    finished windows), so the sink's memory stays bounded."""

    arrived: dict[str, float] = field(default_factory=dict)
    webhook_ids: set[str] = field(default_factory=set)
    old_webhook_ids: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    wall: list[float] = field(default_factory=lambda: [0.0, 0.0])
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def reset(self) -> None:
        self.arrived.clear()
        self.webhook_ids.clear()
        self.old_webhook_ids.clear()
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
        if webhook_id in self.webhook_ids or webhook_id in self.old_webhook_ids:
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

    def forget(self, refs: Sequence[str]) -> None:
        """Drop these tasks' arrivals, and the older generation of webhook ids."""
        for r in refs:
            self.arrived.pop(r, None)
        self.old_webhook_ids = self.webhook_ids
        self.webhook_ids = set()

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


@dataclass
class State:
    sink: Sink
    sets: dict[str, TaskSet] = field(default_factory=dict)
    creator: Creator | None = None


async def _reset(world: State) -> dict[str, Any]:
    world.sink.reset()
    return {"ok": True}


async def _sink_stats(world: State) -> dict[str, Any]:
    return world.sink.stats()


async def _wait_sink(world: State, **cmd: Any) -> dict[str, Any]:
    return await world.sink.wait_for(**cmd)


async def _create_tasks(world: State, return_ids: bool = False, **cmd: Any) -> dict[str, Any]:
    """One set, made now; its creation figures (and its ids, if asked)."""
    tasks, stats = await create_set(**cmd)
    world.sets[tasks.prefix] = tasks
    return {**stats, "ids": list(tasks) if return_ids else None}


async def _task_ids(
    world: State, tasks: str, start: int = 0, stop: int | None = None
) -> dict[str, Any]:
    return {"ids": world.sets[tasks][start:stop]}


async def _start_creator(world: State, chunks: list[list[Any]], **cmd: Any) -> dict[str, Any]:
    """Sets made one after another in the background."""
    if world.creator is not None:
        world.creator.stop()
    world.creator = Creator(world.sets, [(str(p), int(n)) for p, n in chunks], **cmd)
    return {"ok": True}


async def _creator_status(world: State) -> dict[str, Any]:
    return world.creator.status() if world.creator else {"chunks": 0}


async def _wait_tasks(world: State, **cmd: Any) -> dict[str, Any]:
    if world.creator is None:
        raise RuntimeError("no task creator is running")
    return await world.creator.wait(**cmd)


async def _bound_creator(world: State, max_rate: float | None) -> dict[str, Any]:
    if world.creator is not None:
        world.creator.bound(max_rate)
    return {"ok": True}


async def _stop_creator(world: State) -> dict[str, Any]:
    if world.creator is not None:
        world.creator.stop()
    return {"ok": True}


async def _forget(world: State, tasks: str) -> dict[str, Any]:
    """A finished set: its ids, and its arrivals at the sink."""
    done = world.sets.pop(tasks, None)
    if done is not None:
        world.sink.forget([done.ref(g) for g in range(len(done))])
    return {"ok": True}


async def _closed_loop(world: State, tasks: str, **cmd: Any) -> dict[str, Any]:
    return await closed_loop(tasks=world.sets[tasks], **cmd)


async def _open_loop(world: State, tasks: str, **cmd: Any) -> dict[str, Any]:
    return await open_loop(world.sink.arrived, tasks=world.sets[tasks], **cmd)


COMMANDS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "reset": _reset,
    "sink_stats": _sink_stats,
    "wait_sink": _wait_sink,
    "create_tasks": _create_tasks,
    "task_ids": _task_ids,
    "start_creator": _start_creator,
    "creator_status": _creator_status,
    "wait_tasks": _wait_tasks,
    "bound_creator": _bound_creator,
    "stop_creator": _stop_creator,
    "forget": _forget,
    "closed_loop": _closed_loop,
    "open_loop": _open_loop,
}


async def _command(world: State, cmd: dict[str, Any]) -> dict[str, Any]:
    name = cmd.pop("cmd")
    if name not in COMMANDS:
        raise ValueError(f"unknown command {name!r}")
    return await COMMANDS[name](world, **cmd)


def _reply(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


async def main() -> None:
    # Ctrl-C reaches the whole process group; the orchestrator decides when we stop
    # (it sends "quit", or closes stdin when it dies).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sink = Sink()
    world = State(sink)
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
                _reply(await _command(world, cmd))
            except Exception as exc:  # reported to the orchestrator, which prints it
                _reply({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        if world.creator is not None:
            world.creator.stop()
        server.close()


if __name__ == "__main__":
    common.install_uvloop()
    asyncio.run(main())
