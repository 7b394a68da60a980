"""Scenario 4, a bad neighbour: the same open-loop rate twice on `taskhook serve`, first
with every callback healthy, then with 10 % of tasks calling back a host that hangs past
the dispatcher's timeout and 10 % one that answers 500. Both runs report the same 80 % of
tasks (index mod 10 >= 2), so their delivered/s and latency compare directly.

Hosts differ by name (the dispatcher caps in-flight callbacks per host name) while all
traffic stays on 127.0.0.1: `localhost` hangs, `[::ffff:127.0.0.1]` (IPv4-mapped) fails.
"""

from __future__ import annotations

from typing import Any

from bench.scenarios import Context
from bench.scenarios.e2e import SERVE, final_check, open_loop_step
from bench.service import running

DEFAULT_RATE = 1000
HANG_HOST = "localhost"
FAIL_HOST = "[::ffff:127.0.0.1]"


def _rate(ctx: Context) -> int:
    if ctx.plan.neighbour_rate:
        return ctx.plan.neighbour_rate
    headline = ctx.results.get("e2e", {}).get("headline_per_s")
    return int(headline) if headline else DEFAULT_RATE


async def run(ctx: Context) -> dict[str, Any]:
    rate, seconds, world = _rate(ctx), ctx.plan.neighbour_s, ctx.world
    ok = world.sink("cb")
    bad_routes = [world.sink("hang", HANG_HOST), world.sink("fail", FAIL_HOST)] + [ok] * 8
    db = await ctx.database("neighbour")
    conn = await db.connect()
    try:
        await world.call("reset", 10)
        async with running(SERVE, ctx.env(db.dsn), ctx.logs) as procs:
            base = await open_loop_step(ctx, conn, db, procs, rate, seconds, [ok] * 10)
            bad = await open_loop_step(
                ctx, conn, db, procs, rate, seconds, bad_routes, only_healthy_arrive=True
            )
            sink = await world.call("sink_stats", 10)
            expected = base["acked"] + bad["healthy"]["acked"]
            check = await final_check(ctx, conn, ok, expected)
    finally:
        await conn.close()
    kept = bad["healthy"]["delivered_per_s"] / max(base["healthy"]["delivered_per_s"], 1e-9)
    return {
        "rate": rate,
        "baseline": base,
        "bad": bad,
        "kept_throughput": round(kept, 3),
        "bad_requests": {k: v for k, v in sink.items() if k in ("requests_hang", "requests_fail")},
        "check": check,
    }
