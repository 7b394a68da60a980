"""The world's two load generators, both sending signed `task.completed` events.

closed_loop: N workers, each sends its next request when the previous one is answered
(ingest capacity and acknowledgement latency).
open_loop: events at a fixed rate whatever the answers (end to end); the latency of each
event runs from its scheduled send time to the sink's arrival of its callback, so a late
generator or a slow service shows up in the figures instead of hiding (no coordinated
omission).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench.common import Signer, events_body, latency_summary
from bench.creator import TaskSet
from bench.httpclient import Client

REQUEST_TIMEOUT = 60.0  # seconds; a request that takes longer counts as an error
WARM_FRACTION = 0.2  # the first 20 % of an open-loop window is left out of delivered/s


def healthy(index: int) -> bool:
    """Slots 0 and 1 of every ten may go to bad neighbours (creator.py: routes[g % 10])."""
    return index % 10 >= 2


@dataclass
class Target:
    """One receiver's events URL, with the connections to it."""

    client: Client
    path: str


@contextlib.asynccontextmanager
async def _targets(urls: list[str], connections: int) -> AsyncIterator[list[Target]]:
    targets = [Target(Client(url, connections), urlsplit(url).path) for url in urls]
    try:
        yield targets
    finally:
        for t in targets:
            t.client.close()


async def _post(target: Target, signer: Signer, tids: list[str], errors: Counter[str]) -> int:
    """POST one signed request; the number of events the service applied."""
    body = events_body(tids)
    headers = signer.headers(body)
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            status, data = await target.client.post(target.path, body.encode(), headers)
    except (OSError, TimeoutError) as exc:
        errors[type(exc).__name__] += 1
        return 0
    if status != 200:
        errors[f"http_{status}"] += 1
        return 0
    applied = data.count(b'"applied"')
    if applied < len(tids):
        errors["not_applied"] += len(tids) - applied
    return applied


async def closed_loop(
    *,
    tasks: TaskSet,
    urls: list[str],
    secret: str,
    batch: int,
    concurrency: int,
    duration: float,
    count: int | None = None,
) -> dict[str, Any]:
    """`concurrency` workers send batches of `batch` events for tasks 0..count-1 of the
    set (all of it by default) until `duration` seconds pass or the tasks run out."""
    count = len(tasks) if count is None else min(count, len(tasks))
    signer, errors = Signer(secret), Counter[str]()
    latencies: list[float] = []
    state = {"next": 0, "applied": 0, "requests": 0}
    deadline = time.perf_counter() + duration

    async def worker(target: Target) -> None:
        while time.perf_counter() < deadline and state["next"] < count:
            first = state["next"]
            state["next"] = min(count, first + batch)
            tids = tasks[first : state["next"]]
            began = time.perf_counter()
            applied = await _post(target, signer, tids, errors)
            state["applied"] += applied  # after the await: `+= await` would lose updates
            latencies.append(time.perf_counter() - began)
            state["requests"] += 1

    async with _targets(urls, concurrency) as targets:
        began = time.perf_counter()
        await asyncio.gather(*(worker(targets[w % len(targets)]) for w in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "elapsed_s": round(elapsed, 3),
        "requests": state["requests"],
        "events_applied": state["applied"],
        "ran_out_of_tasks": state["next"] >= count,
        "events_per_s": round(state["applied"] / elapsed, 1),
        "requests_per_s": round(state["requests"] / elapsed, 1),
        "errors": dict(errors),
        **latency_summary(latencies),
    }


@dataclass
class _Run:
    """One open-loop run: per event, its task's id (the event names it) and reference (the
    sink files its callback under it), scheduled time and acknowledgement."""

    tids: list[str]
    refs: list[str]
    t0: float
    rate: float
    acked: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    max_lateness: float = 0.0
    skipped: int = 0

    def due(self, i: int) -> float:
        return self.t0 + i / self.rate

    @property
    def end(self) -> float:
        return self.due(len(self.tids))


async def open_loop(
    arrived: dict[str, float],
    *,
    tasks: TaskSet,
    urls: list[str],
    secret: str,
    start: int,
    count: int,
    rate: float,
    settle: float,
    only_healthy_arrive: bool = False,
    connections: int = 1024,
    max_in_flight: int = 20_000,
) -> dict[str, Any]:
    """Send `count` events at `rate`/s (tasks start..start+count-1 of the set), round-robin
    over `urls`; then wait up to `settle` s for the stragglers (only for the healthy 80 %
    when bad neighbours take the rest). `arrived` is the sink's, by task reference."""
    indices = range(start, start + count)
    run = _Run(tasks[start : start + count], [tasks.ref(g) for g in indices], 0.0, rate)
    run.t0 = time.perf_counter() + 0.1
    run.acked = [math.nan] * count
    signer = Signer(secret)
    pending: set[asyncio.Task[None]] = set()

    async with _targets(urls, connections) as targets:

        async def send(i: int) -> None:
            if await _post(targets[i % len(targets)], signer, [run.tids[i]], run.errors):
                run.acked[i] = time.perf_counter()

        def fire(i: int) -> None:
            task = asyncio.create_task(send(i))
            pending.add(task)
            task.add_done_callback(pending.discard)

        await _generate(run, fire, max_in_flight, pending)
        awaited = [i for i in range(count) if healthy(start + i) or not only_healthy_arrive]
        await _settle(run, arrived, pending, settle, awaited)
    return _summarize(run, arrived, start)


async def _generate(
    run: _Run, fire: Callable[[int], object], max_in_flight: int, pending: set[Any]
) -> None:
    """Fire every event whose time has come, then sleep until the next one is due."""
    i, count = 0, len(run.tids)
    while i < count:
        now = time.perf_counter()
        due_now = min(count, math.floor((now - run.t0) * run.rate) + 1)
        while i < due_now:
            run.max_lateness = max(run.max_lateness, now - run.due(i))
            if len(pending) >= max_in_flight:
                run.skipped += 1
            else:
                fire(i)
            i += 1
        await asyncio.sleep(max(0.0, run.due(i) - time.perf_counter()))


async def _settle(
    run: _Run, arrived: dict[str, float], pending: set[Any], settle: float, awaited: list[int]
) -> None:
    """After the window: until every answer is in and every awaited acked event was called
    back, or `settle` seconds."""
    await asyncio.sleep(max(0.0, run.end - time.perf_counter()))
    deadline = time.perf_counter() + settle
    while time.perf_counter() < deadline:
        acked = [run.refs[i] for i in awaited if not math.isnan(run.acked[i])]
        if not pending and all(t in arrived for t in acked):
            return
        await asyncio.sleep(0.1)
    for task in list(pending):
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)


def _summarize(run: _Run, arrived: dict[str, float], start: int) -> dict[str, Any]:
    everyone = list(range(len(run.tids)))
    good = [i for i in everyone if healthy(start + i)]
    return {
        "offered_per_s": run.rate,
        "sent": len(run.tids) - run.skipped,
        "skipped_in_flight_cap": run.skipped,
        "acked": sum(not math.isnan(a) for a in run.acked),
        "errors": dict(run.errors),
        "generator_max_lateness_ms": round(run.max_lateness * 1000, 1),
        "window_s": round(run.end - run.t0, 3),
        "all": _class_stats(run, arrived, everyone),
        "healthy": _class_stats(run, arrived, good),
    }


def _class_stats(run: _Run, arrived: dict[str, float], indices: list[int]) -> dict[str, Any]:
    """delivered/s over the window after its warm-up; backlog (sent, not yet called back:
    ingest requests in flight plus queued deliveries) at mid-window and at the end; and
    send-to-callback latency."""
    warm_from = run.t0 + WARM_FRACTION * (run.end - run.t0)
    acked_idx = [i for i in indices if not math.isnan(run.acked[i])]
    got = [arrived[run.refs[i]] for i in indices if run.refs[i] in arrived]
    in_window = sum(warm_from <= t <= run.end for t in got)

    def backlog(at: float) -> int:
        return sum(run.due(i) <= at for i in indices) - sum(t <= at for t in got)

    latencies = [arrived[run.refs[i]] - run.due(i) for i in indices if run.refs[i] in arrived]
    # The ingest part of it: from the event's scheduled time to its acknowledgement.
    ack = latency_summary([run.acked[i] - run.due(i) for i in acked_idx])
    return {
        "events": len(indices),
        "acked": len(acked_idx),
        "delivered": len(got),
        "delivered_per_s": round(in_window / max(run.end - warm_from, 1e-9), 1),
        "backlog_mid": backlog(run.t0 + (run.end - run.t0) / 2),
        "backlog_end": backlog(run.end),
        "missing_after_settle": sum(run.refs[i] not in arrived for i in acked_idx),
        **latency_summary(latencies),
        "ack_p50_ms": ack["p50_ms"],
        "ack_p99_ms": ack["p99_ms"],
    }
