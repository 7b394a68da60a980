"""Scenarios 3 and 6, end to end in an open loop: fixed offered rates of single-event
requests, each a task.completed for a pending live task (made through the API before the
step) whose callback_url is the sink with the task's reference in the path. Latency runs
from sending the event to the sink's arrival of the callback (one process, one clock).
The ladder stops after the first saturated rate.

`taskhook serve` for scenario 3; 2 receivers + 2 dispatchers on one PostgreSQL for
scenario 6 (the load generator spreads requests over both receivers).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from bench import seed
from bench.scenarios import Context, api_urls, wait_queue_empty
from bench.service import CpuMeter, Taskhook, running

P99_TARGET_MS = 100.0
HELD_DELIVERED = 0.95  # delivered/s at least this share of the offered rate
HELD_GROWTH_S = 0.1  # backlog may grow by at most this many seconds of load, mid to end
SATURATED_DELIVERED = 0.9  # below this share of the offered rate: stop the ladder
SATURATED_BACKLOG_S = 1.0  # or more than this many seconds of load still queued
SATURATED_P99_MS = 1000.0  # or a p99 this bad

SERVE = [("serve", "serve")]
SCALE_OUT = [
    ("receiver-1", "receiver"),
    ("receiver-2", "receiver"),
    ("dispatcher-1", "dispatcher"),
    ("dispatcher-2", "dispatcher"),
]


async def run(ctx: Context) -> dict[str, Any]:
    return await ladder(ctx, "e2e", SERVE)


async def run_scaleout(ctx: Context) -> dict[str, Any]:
    return await ladder(ctx, "scaleout", SCALE_OUT)


async def ladder(
    ctx: Context,
    name: str,
    roles: list[tuple[str, str]],
    db: seed.Database | None = None,
) -> dict[str, Any]:
    """The rates in order on a fresh database (or on `db`, e.g. an aged one), until one
    saturates; then the final check of every task called back at the sink."""
    db = db or await ctx.database(name)
    conn = await db.connect()
    route = ctx.world.sink("cb")
    steps: list[dict[str, Any]] = []
    try:
        await ctx.world.call("reset", 10)
        async with running(roles, ctx.env(db.dsn), ctx.logs) as procs:
            for rate in ctx.plan.rates:
                step = await open_loop_step(
                    ctx, conn, db, procs, rate, ctx.plan.step_s, [route] * 10
                )
                steps.append(step)
                if step["saturated"]:
                    break
            check = await final_check(ctx, conn, route, sum(s["acked"] for s in steps))
    finally:
        await conn.close()
    held = [s["offered_per_s"] for s in steps if s["held"]]
    return {
        "roles": [r for _, r in roles],
        "steps": steps,
        "headline_per_s": max(held, default=None),
        "check": check,
    }


async def open_loop_step(
    ctx: Context,
    conn: asyncpg.Connection,
    db: seed.Database,
    procs: list[Taskhook],
    rate: int,
    seconds: float,
    routes: list[str],
    *,
    only_healthy_arrive: bool = False,
) -> dict[str, Any]:
    """One rate: fresh pending tasks (made through the API first), an empty queue to start
    from, CPU over the window (cores) and over window + settle (CPU per event)."""
    count = int(rate * seconds)
    prefix = await ctx.create_tasks(db, procs, count, routes)
    created = ctx.created[-1]
    if not only_healthy_arrive:
        await wait_queue_empty(conn, ctx.plan.settle_s)
    meter = ctx.meter(procs)
    meter.start()
    window = asyncio.create_task(_cpu_after(meter, seconds + 0.1))
    urls = [u + "/v1/events" for u in api_urls(procs)]
    try:
        result = await ctx.world.call(
            "open_loop",
            seconds + ctx.plan.settle_s + 120,
            tasks=prefix,
            urls=urls,
            secret=ctx.secret,
            start=0,
            count=count,
            rate=rate,
            settle=ctx.plan.settle_s,
            only_healthy_arrive=only_healthy_arrive,
        )
        result["cpu_window"] = await window
    finally:
        window.cancel()  # nothing to do once it is done; no orphan task on errors
    result["cpu"] = meter.stop()
    for p in procs:  # a dispatcher that died would leave its share to the other unnoticed
        if not p.alive():
            raise RuntimeError(f"{p.name} exited during the {rate}/s step:\n{p.log_tail()}")
    result["queue_depth_after"] = await seed.queue_depth(conn)
    result["task_creation"] = {k: created[k] for k in ("tasks", "seconds", "tasks_per_s")}
    result.update(judge(result))
    return result


async def _cpu_after(meter: CpuMeter, seconds: float) -> dict[str, Any]:
    await asyncio.sleep(seconds)
    return meter.stop()


def judge(step: dict[str, Any]) -> dict[str, Any]:
    """held: p99 under 100 ms, delivered keeps up, no growing backlog, nothing lost;
    saturated: clearly behind (the ladder stops after it)."""
    s, rate = step["all"], step["offered_per_s"]
    clean = not step["errors"] and not step["skipped_in_flight_cap"]
    growth = s["backlog_end"] - s["backlog_mid"]
    p99 = s["p99_ms"] if s["p99_ms"] is not None else float("inf")
    held = (
        clean
        and s["missing_after_settle"] == 0
        and s["delivered_per_s"] >= HELD_DELIVERED * rate
        and growth <= max(20, HELD_GROWTH_S * rate)
        and p99 < P99_TARGET_MS
    )
    saturated = (
        not clean
        or s["delivered_per_s"] < SATURATED_DELIVERED * rate
        or s["backlog_end"] > SATURATED_BACKLOG_S * rate
        or p99 > SATURATED_P99_MS
    )
    return {"held": held, "saturated": saturated}


async def final_check(
    ctx: Context, conn: asyncpg.Connection, route: str, acked: int
) -> dict[str, Any]:
    """callback_succeeded for every task called back at `route`: all true, and no task or
    webhook-id called back twice (sink) or given two deliveries (database)."""
    deadline = time.monotonic() + ctx.plan.check_timeout_s
    while True:
        row = await seed.check(conn, route)
        if row["unresolved"] == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    sink = await ctx.world.call("sink_stats", 10)
    dups = sink.get("requests_duplicate_webhook_id", 0) + sink.get("requests_duplicate_task", 0)
    row["acked_events"] = acked
    row["sink_callbacks"] = sink["callbacks"]
    row["sink_duplicates"] = dups
    row["ok"] = (
        row["completed"] == row["succeeded"] == acked
        and dups == 0
        and row["tasks_with_2_deliveries"] == 0
    )
    return row
