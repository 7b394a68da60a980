"""Scenario 1, ingest: signed single-event requests and signed 100-event batches, closed
loop at several concurrencies, against `taskhook receiver` alone (no dispatcher competes
for the CPU; the deliveries it enqueues stay queued). Each level's tasks are made through
the API first (POST /v1/task), outside its timed window."""

from __future__ import annotations

from typing import Any

from bench import seed
from bench.scenarios import Context
from bench.service import Taskhook, running

# Tasks are made (through the API, a few thousand a second) before each level: enough for
# FLOOR events/s over the level at first, then GROWTH x what the previous level reached, at
# most CAP events/s. A level may run out early: the result says so, and its rate is still
# right (events over the time they took); the caps keep the making to about a minute.
FLOOR = {1: 2_000, 100: 6_000}
CAP = {1: 8_000, 100: 25_000}
GROWTH = 1.5


def _budget(batch: int, seconds: float, previous_rate: float | None) -> int:
    floor, cap = FLOOR.get(batch, FLOOR[100]), CAP.get(batch, CAP[100])
    rate = floor if previous_rate is None else min(cap, max(floor, GROWTH * previous_rate))
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
                    level = await _level(ctx, db, procs, url, batch, concurrency, previous)
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
    db: seed.Database,
    procs: list[Taskhook],
    url: str,
    batch: int,
    concurrency: int,
    previous: float | None,
) -> dict[str, Any]:
    count = _budget(batch, ctx.plan.ingest_s, previous)
    prefix = await ctx.create_tasks(db, procs, count, [ctx.world.sink("cb")] * 10)
    meter = ctx.meter(procs)
    meter.start()
    result = await ctx.world.call(
        "closed_loop",
        ctx.plan.ingest_s + 120,
        tasks=prefix,
        urls=[url],
        secret=ctx.secret,
        batch=batch,
        concurrency=concurrency,
        duration=ctx.plan.ingest_s,
    )
    cpu = meter.stop()
    return {
        "concurrency": concurrency,
        "batch": batch,
        "tasks": count,
        **result,
        "cpu": cpu,
    }
