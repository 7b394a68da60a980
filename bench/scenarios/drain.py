"""Scenario 2, drain: N due deliveries enqueued in one transaction straight into the
database, `taskhook dispatcher` alone, the sink answering 200 at once. Callbacks per second
and the dispatcher's memory (VmRSS every 0.5 s), which must stay flat over the drain.

The dispatcher is started and warmed first (one probe delivery must arrive), so its
starting memory is that of a running dispatcher, then the N deliveries commit at once:
for the dispatcher that is the same as a backlog found at start.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from bench import seed
from bench.scenarios import Context, wait_queue_empty
from bench.service import RssSampler, Taskhook, running

HOST = "127.0.0.1"
PROBE_TIMEOUT = 60.0  # seconds for the warm-up callback


async def run(ctx: Context) -> dict[str, Any]:
    n, route = ctx.plan.drain_n, ctx.world.sink("cb")
    db = await ctx.database("drain")
    conn = await db.connect()
    try:
        prefix, probe = seed.new_prefix(), seed.new_prefix()
        began = time.monotonic()
        await seed.insert_tasks(conn, db, prefix, n, [route] * 10, status="completed")
        await seed.insert_tasks(conn, db, probe, 1, [route] * 10, status="completed")
        tasks_s = time.monotonic() - began
        await ctx.world.call("reset", 10)
        async with running([("dispatcher", "dispatcher")], ctx.env(db.dsn), ctx.logs) as procs:
            await seed.enqueue_deliveries(conn, probe, HOST)
            warm = await ctx.world.call(
                "wait_sink", PROBE_TIMEOUT + 10, count=1, timeout=PROBE_TIMEOUT
            )
            if not warm["complete"]:
                raise RuntimeError("the dispatcher did not deliver the probe callback")
            await ctx.world.call("reset", 10)
            result = await _drain(ctx, conn, procs, prefix)
        result["check"] = await seed.check(conn, route)
        result["check"]["ok"] = result["check"]["succeeded"] == n + 1 and result["callbacks"] == n
    finally:
        await conn.close()
    return {"n": n, "tasks_insert_s": round(tasks_s, 2), **result}


async def _drain(
    ctx: Context, conn: asyncpg.Connection, procs: list[Taskhook], prefix: str
) -> dict[str, Any]:
    dispatcher = procs[0]
    rss, meter = RssSampler(dispatcher.pid), ctx.meter(procs)
    rss.start()
    began = time.time()
    await seed.enqueue_deliveries(conn, prefix, HOST)
    committed = time.time()
    meter.start()  # after the bulk insert: CPU per callback is the drain's alone
    got = await ctx.world.call(
        "wait_sink",
        ctx.plan.drain_timeout_s + 30,
        count=ctx.plan.drain_n,
        timeout=ctx.plan.drain_timeout_s,
    )
    # Outcomes are written after the callbacks arrive; wait for them only if all arrived.
    recorded = await wait_queue_empty(conn, 30) if got["complete"] else None
    cpu, memory = meter.stop(), await rss.stop()
    last = got["last_wall"] or committed
    return {
        "enqueue_s": round(committed - began, 2),
        "callbacks": got["callbacks"],
        "complete": got["complete"],
        "callbacks_per_s": round(got["callbacks"] / max(last - committed, 1e-9), 1),
        "first_callback_ms": round((got["first_wall"] - committed) * 1000, 1)
        if got["first_wall"]
        else None,
        "all_recorded_s": None if recorded is None else round(time.time() - committed, 2),
        "sink": got,
        "rss": memory,
        "cpu": cpu,
    }
