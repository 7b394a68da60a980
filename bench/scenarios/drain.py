"""Scenario 2, drain: a backlog made the way a customer's would be, then `taskhook
dispatcher` alone delivering it, the sink answering 200 at once. Callbacks per second and
the dispatcher's memory (VmRSS every 0.5 s), which must stay flat over the drain.

For each size (default 20,000 then 100,000, each on a fresh database):
  1. `taskhook receiver` alone (no dispatcher anywhere): N tasks made through the API
     (POST /v1/task), then completed with signed POST /v1/events of `drain_batch` events,
     `drain_in_flight` requests at once, so N callbacks are queued; the receiver stops;
  2. `taskhook dispatcher` starts on that backlog (as after an outage). Callbacks/s is
     printed both from the dispatcher's start (process start to last callback: its
     start-up included) and from the first callback to the last.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from bench import seed
from bench.scenarios import Context, wait_queue_empty
from bench.service import RssSampler, running

RECEIVER = [("receiver", "receiver")]
DISPATCHER = [("dispatcher", "dispatcher")]


async def run(ctx: Context) -> dict[str, Any]:
    return {"runs": [await _one(ctx, n) for n in ctx.plan.drain_sizes]}


async def _one(ctx: Context, n: int) -> dict[str, Any]:
    route = ctx.world.sink("cb")
    db = await ctx.database(f"drain_{n}")
    conn = await db.connect()
    try:
        await ctx.world.call("reset", 10)
        made = len(ctx.created)
        async with running(RECEIVER, ctx.env(db.dsn), ctx.logs) as procs:
            prefix = await ctx.create_tasks(db, procs, n, [route] * 10)
            queued = await ctx.world.call(
                "closed_loop",
                n / 500 + 120,
                tasks=prefix,
                urls=[procs[0].url + "/v1/events"],
                secret=ctx.secret,
                batch=ctx.plan.drain_batch,
                concurrency=ctx.plan.drain_in_flight,
                duration=n / 500 + 60,
            )
        depth = await seed.queue_depth(conn)
        if queued["events_applied"] != n or depth != n:
            raise RuntimeError(f"drain: {queued['events_applied']} events applied, {depth} queued")
        result = await _drain(ctx, conn, db, n)
        check = await seed.check(conn, route)
        sink = result["sink"]
        dups = sink.get("requests_duplicate_task", 0) + sink.get("requests_duplicate_webhook_id", 0)
        check["sink_duplicates"] = dups
        check["ok"] = (
            check["succeeded"] == check["completed"] == n
            and result["callbacks"] == n
            and dups == 0
            and check["tasks_with_2_deliveries"] == 0
        )
    finally:
        await conn.close()
    created = ctx.created[made]
    return {
        "n": n,
        "task_creation": {k: created[k] for k in ("tasks", "seconds", "tasks_per_s")},
        "queueing": {
            k: queued[k] for k in ("elapsed_s", "events_per_s", "requests", "errors", "p99_ms")
        },
        **result,
        "check": check,
    }


async def _drain(
    ctx: Context, conn: asyncpg.Connection, db: seed.Database, n: int
) -> dict[str, Any]:
    started = time.time()
    async with running(DISPATCHER, ctx.env(db.dsn), ctx.logs) as procs:
        dispatcher = procs[0]
        rss, meter = RssSampler(dispatcher.pid), ctx.meter(procs)
        rss.start()
        meter.start()
        got = await ctx.world.call(
            "wait_sink", ctx.plan.drain_timeout_s + 30, count=n, timeout=ctx.plan.drain_timeout_s
        )
        # Outcomes are written after the callbacks arrive; wait for them only if all arrived.
        recorded = await wait_queue_empty(conn, 30) if got["complete"] else None
        recorded_at = time.time()
        cpu = meter.stop()
        memory = await rss.stop(since=got["first_wall"] or None)
        if not dispatcher.alive():
            raise RuntimeError(f"the dispatcher exited:\n{dispatcher.log_tail()}")
    first, last = got["first_wall"], got["last_wall"]
    return {
        "callbacks": got["callbacks"],
        "complete": got["complete"],
        "callbacks_per_s_from_start": round(got["callbacks"] / max(last - started, 1e-9), 1)
        if last
        else None,
        "callbacks_per_s_from_first": round((got["callbacks"] - 1) / max(last - first, 1e-9), 1)
        if last
        else None,
        "first_callback_ms": round((first - started) * 1000, 1) if first else None,
        "all_recorded_s": None if recorded is None else round(recorded_at - started, 2),
        "sink": got,
        "rss": memory,
        "cpu": cpu,
    }
