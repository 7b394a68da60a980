"""A long open loop as consecutive windows (the held-snapshot scenario and the soak): each
window is one open-loop run of the world on a set of tasks of its own, so its figures
(send-to-callback p50/p99, delivered/s, errors) are its own and the world keeps nothing of
a window once it is over. Between windows the load pauses only while the last callbacks
of the window arrive (tens of milliseconds when the service keeps up).

The tasks are made through the API by the world's creator, set after set: all of them
before the first window, or (the soak, when that would take too long) a few windows
ahead and then beside the load at a bounded rate; a window whose set is not made yet
waits for it, and says how long.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench import seed
from bench.scenarios import Context, api_urls
from bench.service import Taskhook

Hook = Callable[[int, dict[str, Any]], Awaitable[dict[str, Any]]]
LEAD = 2  # windows made ahead of the load when the rest is made beside it


@dataclass
class Windows:
    """What a windowed load did: the windows' figures and when each ran (monotonic)."""

    windows: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0
    creation: dict[str, Any] = field(default_factory=dict)
    acked: int = 0


async def run_windows(
    ctx: Context,
    db: seed.Database,
    procs: list[Taskhook],
    *,
    rate: int,
    window_s: float,
    count: int,
    routes: list[str],
    precreate_max_s: float | None = None,
    forget: bool = False,
    on_window: Hook | None = None,
    on_start: Callable[[float], None] | None = None,
) -> Windows:
    """`count` windows of `window_s` s at `rate` events/s. precreate_max_s None: every
    set is made before the load; else only if that is estimated (from the first set) to
    take at most that long, otherwise LEAD sets first and the rest beside the load at
    most at `rate` creates/s. forget: drop each window's tasks from the world one window
    later (bounded memory). on_window(k, figures) adds to a window's figures; on_start
    gets the monotonic time the load starts."""
    await ctx.ensure_project(db, procs)
    per_window = int(rate * window_s)
    prefixes = [seed.new_prefix() for _ in range(count)]
    world = ctx.world
    await world.call(
        "start_creator",
        30,
        chunks=[[p, per_window] for p in prefixes],
        urls=api_urls(procs),
        key=db.live_key,
        routes=routes,
        concurrency=ctx.plan.create_concurrency,
    )
    out = Windows()
    conn = await db.connect()
    try:
        out.creation = await _made_ahead(ctx, prefixes, per_window, rate, precreate_max_s)
        urls = [u + "/v1/events" for u in api_urls(procs)]
        out.started = time.monotonic()
        if on_start is not None:
            on_start(out.started)
        for k, prefix in enumerate(prefixes):
            wait = await world.call("wait_tasks", 3600, prefix=prefix, timeout=3500)
            if not wait["ready"]:
                raise RuntimeError(f"window {k}: its tasks were not made in time")
            began = time.monotonic()
            meter = ctx.meter(procs)
            pg_before = await seed.activity(conn)
            meter.start()
            result = await world.call(
                "open_loop",
                window_s + ctx.plan.settle_s + 120,
                tasks=prefix,
                urls=urls,
                secret=ctx.secret,
                start=0,
                count=per_window,
                rate=rate,
                settle=ctx.plan.settle_s,
            )
            result["cpu"] = meter.stop()
            result["pg"] = seed.activity_delta(pg_before, await seed.activity(conn))
            result["window"] = k
            result["began_s"] = round(began + 0.1 - out.started, 2)  # the world's t0 is +0.1
            result["ended_s"] = round(time.monotonic() - out.started, 2)
            result["waited_for_tasks_s"] = wait["waited_s"]
            out.acked += result["acked"]
            for p in procs:
                if not p.alive():
                    raise RuntimeError(f"{p.name} exited in window {k}:\n{p.log_tail()}")
            if on_window is not None:
                result.update(await on_window(k, result))
            out.windows.append(result)
            if forget and k > 0:
                await world.call("forget", 30, tasks=prefixes[k - 1])
        out.creation["total"] = await world.call("creator_status", 10)
    finally:
        await conn.close()
        await world.call("stop_creator", 10)
    return out


async def _made_ahead(
    ctx: Context,
    prefixes: list[str],
    per_window: int,
    rate: int,
    precreate_max_s: float | None,
) -> dict[str, Any]:
    """Wait for the sets the load needs before it starts; how they were made."""
    world, total = ctx.world, per_window * len(prefixes)
    slow_s = 120 + total / 100  # bounded: at 100 creates/s something is wrong
    began = time.monotonic()
    first = await world.call("wait_tasks", slow_s + 10, prefix=prefixes[0], timeout=slow_s)
    if not first["ready"]:
        raise RuntimeError("the first window's tasks were not made in time")
    first_s = time.monotonic() - began
    estimate = first_s * len(prefixes)
    before = precreate_max_s is None or estimate <= precreate_max_s or len(prefixes) <= LEAD
    ready = prefixes[-1] if before else prefixes[LEAD - 1]
    wait = await world.call("wait_tasks", slow_s + 10, prefix=ready, timeout=slow_s)
    if not wait["ready"]:
        raise RuntimeError("the tasks made ahead of the load were not made in time")
    if not before:
        await world.call("bound_creator", 10, max_rate=rate)
    status = await world.call("creator_status", 10)
    return {
        "mode": "all before the load"
        if before
        else f"{LEAD} windows before the load, the rest beside it at <= {rate}/s",
        "before_load": {**status, "wall_s": round(time.monotonic() - began, 1)},
        "estimated_all_before_s": round(estimate, 1),
        "tasks_per_window": per_window,
    }


async def dead_tuples(conn: asyncpg.Connection, *tables: str) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT relname, n_dead_tup FROM pg_stat_user_tables WHERE relname = ANY ($1::text[])",
        list(tables),
    )
    return {r["relname"]: r["n_dead_tup"] for r in rows}
