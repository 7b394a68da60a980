"""Scenario 1, ingest: signed single-event requests and signed 100-event batches, closed
loop at several concurrencies, against `taskhook receiver` alone (no dispatcher competes
for the CPU; the deliveries it enqueues stay queued)."""

from __future__ import annotations

from typing import Any

import asyncpg

from bench import seed
from bench.scenarios import Context
from bench.service import Taskhook, running

# Tasks are made before each level: enough for FLOOR events/s over the level at first, then
# 4x what the previous level reached, at most CAP events/s (a level may run out early:
# the result says so, and its rate is still right).
FLOOR = {1: 2_000, 100: 10_000}
CAP = {1: 20_000, 100: 60_000}


def _budget(batch: int, seconds: float, previous_rate: float | None) -> int:
    floor, cap = FLOOR.get(batch, FLOOR[100]), CAP.get(batch, CAP[100])
    rate = floor if previous_rate is None else min(cap, max(floor, 4 * previous_rate))
    return int(rate * seconds)


async def run(ctx: Context) -> dict[str, Any]:
    db = await ctx.database("ingest")
    conn = await db.connect()
    out: dict[str, Any] = {"single": [], "batch": []}
    try:
        async with running([("receiver", "receiver")], ctx.env(db.dsn), ctx.logs) as procs:
            url = procs[0].url + "/v1/events"
            for key, batch in (("single", 1), ("batch", ctx.plan.ingest_batch)):
                previous: float | None = None
                for concurrency in ctx.plan.ingest_concurrency:
                    level = await _level(ctx, conn, db, procs, url, batch, concurrency, previous)
                    out[key].append(level)
                    previous = level["events_per_s"]
        applied = sum(r["events_applied"] for rows in out.values() for r in rows)
        completed = await conn.fetchval("SELECT count(*) FROM tasks WHERE status = 'completed'")
        out["check"] = {"events_applied": applied, "tasks_completed": completed}
        out["check"]["ok"] = applied == completed
    finally:
        await conn.close()
    return out


async def _level(
    ctx: Context,
    conn: asyncpg.Connection,
    db: seed.Database,
    procs: list[Taskhook],
    url: str,
    batch: int,
    concurrency: int,
    previous: float | None,
) -> dict[str, Any]:
    count = _budget(batch, ctx.plan.ingest_s, previous)
    prefix = seed.new_prefix()
    await seed.insert_tasks(conn, db, prefix, count, [ctx.world.sink("cb")] * 10)
    meter = ctx.meter(procs)
    meter.start()
    result = await ctx.world.call(
        "closed_loop",
        ctx.plan.ingest_s + 120,
        urls=[url],
        secret=ctx.secret,
        prefix=prefix,
        count=count,
        batch=batch,
        concurrency=concurrency,
        duration=ctx.plan.ingest_s,
    )
    return {
        "concurrency": concurrency,
        "batch": batch,
        "tasks": count,
        **result,
        "cpu": meter.stop(),
    }
