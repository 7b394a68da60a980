"""The soak (only when named: --scenarios soak): `taskhook serve` under a single-event
signed open loop at --soak-rate events/s (default 1000) for --soak-minutes (default 30),
as consecutive 60-s windows on tasks made through the API beforehand.

Per minute: send-to-callback p50/p99, delivered/s, errors; the size of each table
(pg_total_relation_size, pg_relation_size, pg_indexes_size) of tasks, deliveries,
delivery_payloads, delivery_attempts and ingested_events with their dead tuples
(pg_stat_user_tables.n_dead_tup); and VmRSS of serve, the world, the PostgreSQL
postmaster and the sum of its backends. The minutes are printed as they finish, too.

The tasks (rate x minutes x 60 of them) are all made before the load when the first
minute's set shows that would take at most `soak_precreate_max_s` (5 minutes); otherwise
two minutes' worth are made first and the rest beside the load, at most at the load's
rate, and the output says so (each minute shows how long it waited for its tasks). The
world forgets each minute's tasks one minute later, so its memory stays flat.
"""

from __future__ import annotations

import math
from typing import Any

from bench import seed
from bench.scenarios import Context
from bench.scenarios.e2e import SERVE, final_check
from bench.scenarios.windows import run_windows
from bench.service import rss_mb, running, tree_rss_mb


def line(w: dict[str, Any]) -> str:
    """One minute as printed while the soak runs (and in the report)."""
    a, rss, sizes = w["all"], w["rss_mb"], w["sizes"]
    errors = sum(w["errors"].values()) + w["skipped_in_flight_cap"] + a["missing_after_settle"]
    tables = ", ".join(
        f"{name} {s['total_mb']:.0f} MB ({s['dead_tuples']} dead)" for name, s in sizes.items()
    )
    label = "minute" if w.get("window_s", 60) == 60 else "window"
    pg = w["pg"]
    vacuumed = ",".join(sorted(set(pg["autovacuums"]) | set(pg["vacuuming_at_end"]))) or "none"
    return (
        f"  {label} {w['window'] + 1}: p50 {a['p50_ms']} ms, p99 {a['p99_ms']} ms, "
        f"{a['delivered_per_s']}/s delivered, {errors} errors, waited {w['waited_for_tasks_s']} "
        f"s for tasks; PG {pg['checkpoints']} checkpoints, {pg['wal_mb']} MB WAL "
        f"({pg['wal_fpi']} full pages), autovacuum {vacuumed}; RSS serve {rss['serve']} MB, "
        f"world {rss['world']} MB, postmaster {rss['postmaster']} MB + backends "
        f"{rss['backends']} MB; {tables}"
    )


async def run(ctx: Context) -> dict[str, Any]:
    plan = ctx.plan
    minutes = max(1, math.ceil(plan.soak_minutes * 60 / plan.soak_window_s))
    db = await ctx.database("soak")
    conn = await db.connect()
    route = ctx.world.sink("cb")
    try:
        await ctx.world.call("reset", 10)
        async with running(SERVE, ctx.env(db.dsn), ctx.logs) as procs:
            serve = procs[0]

            async def after(k: int, w: dict[str, Any]) -> dict[str, Any]:
                postmaster, backends = tree_rss_mb(ctx.pg.pid)
                extra = {
                    "sizes": await seed.sizes(conn),
                    "rss_mb": {
                        k: None if v is None else round(v, 1)
                        for k, v in (
                            ("serve", rss_mb(serve.pid)),
                            ("world", rss_mb(ctx.world.pid)),
                            ("postmaster", postmaster),
                            ("backends", backends),
                        )
                    },
                }
                print(line({**w, **extra, "window_s": plan.soak_window_s}), flush=True)
                return extra

            load = await run_windows(
                ctx,
                db,
                procs,
                rate=plan.soak_rate,
                window_s=plan.soak_window_s,
                count=minutes,
                routes=[route] * 10,
                precreate_max_s=plan.soak_precreate_max_s,
                forget=True,
                on_window=after,
            )
            print(f"  soak: tasks made {load.creation['mode']}", flush=True)
            check = await final_check(ctx, conn, route, load.acked)
    finally:
        await conn.close()
    return {
        "rate": plan.soak_rate,
        "minutes": minutes,
        "window_s": plan.soak_window_s,
        "windows": load.windows,
        "task_creation": load.creation,
        "check": check,
    }
