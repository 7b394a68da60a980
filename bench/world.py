"""The "world": the workforce that sends signed events and the customer's callback sink,
in one process so that "event sent" and "callback received" use one clock.

Run as `python -m bench.world`; the orchestrator (bench/run.py) sends one JSON command per
line on stdin and reads one JSON reply per line on stdout. The first line out is
{"sink_port": P}. Sink paths (all on 127.0.0.1:P):
  /cb/<task_id>    answers 200 at once and records the arrival (the healthy customer)
  /fail/<task_id>  answers 500 (a bad neighbour)
  /hang/<task_id>  never answers within the dispatcher's timeout (a bad neighbour)
  /ceil/<n>        answers 200 at once, counts only (the bare POST loop's target)
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
from aiohttp import web

from bench import common
from bench.loadgen import closed_loop, open_loop

HANG_SECONDS = 120.0  # longer than any dispatcher timeout; bounded so the process can end


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

    async def handle(self, request: web.Request) -> web.Response:
        kind, key = request.match_info["kind"], request.match_info["key"]
        now = time.perf_counter()
        await request.read()
        self.counts[kind] += 1
        if kind == "hang":
            await asyncio.sleep(HANG_SECONDS)
        elif kind == "fail":
            return web.Response(status=500, text="bench: failing on purpose")
        elif kind == "cb":
            self._record(key, request.headers.get("webhook-id", ""), now)
        return web.Response()

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


async def start_sink(sink: Sink) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_post("/{kind}/{key}", sink.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    return runner, int(runner.addresses[0][1])


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
    runner, port = await start_sink(sink)
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
        await runner.cleanup()


if __name__ == "__main__":
    common.install_uvloop()
    asyncio.run(main())
