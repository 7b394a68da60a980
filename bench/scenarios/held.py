"""The held-snapshot scenario: `taskhook serve` at `held_rate` events/s (default 300) in
an open loop for `held_s` (default 5 minutes; quick: 1), while from `held_from_s` to
`held_until_s` (default minute 1 to minute 4) a separate connection holds a snapshot open:
`BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM deliveries;`, then idle in
transaction until it commits. As long as it is open, vacuum cannot remove the rows that
claims and outcome writes leave dead, so the queue's index fills with dead entries.

Printed per window (default 30 s): send-to-callback p50/p99, delivered/s, whether the
snapshot was held (all of the window, or part), and n_dead_tup of deliveries and tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncpg

from bench.scenarios import Context
from bench.scenarios.e2e import SERVE, final_check
from bench.scenarios.windows import dead_tuples, run_windows
from bench.service import running

SNAPSHOT_SQL = "SELECT count(*) FROM deliveries"


class Snapshot:
    """A REPEATABLE READ transaction on its own connection, opened at `start_s` after the
    load began and committed at `end_s` (monotonic times recorded as they happened)."""

    def __init__(self, dsn: str, start_s: float, end_s: float) -> None:
        self.dsn, self.start_s, self.end_s = dsn, start_s, end_s
        self.began: float | None = None
        self.ended: float | None = None
        self.rows: int | None = None
        self.task: asyncio.Task[None] | None = None

    def schedule(self, load_started: float) -> None:
        self.task = asyncio.create_task(self._hold(load_started))

    async def _hold(self, t0: float) -> None:
        conn = await asyncpg.connect(self.dsn)  # connected ahead: not part of the hold
        try:
            await asyncio.sleep(max(0.0, t0 + self.start_s - time.monotonic()))
            await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            self.rows = await conn.fetchval(SNAPSHOT_SQL)
            self.began = time.monotonic() - t0
            await asyncio.sleep(max(0.0, t0 + self.end_s - time.monotonic()))
            await conn.execute("COMMIT")
            self.ended = time.monotonic() - t0
        finally:
            await conn.close()

    async def finish(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.task is not None and self.task.done() and not self.task.cancelled():
            self.task.result()  # raises what the hold raised

    def share(self, began_s: float, ended_s: float) -> float:
        """Share of [began_s, ended_s] (seconds since the load began) under the snapshot."""
        if self.began is None:
            return 0.0
        end = self.ended if self.ended is not None else ended_s
        overlap = min(ended_s, end) - max(began_s, self.began)
        return max(0.0, min(1.0, overlap / max(ended_s - began_s, 1e-9)))


async def run(ctx: Context) -> dict[str, Any]:
    plan = ctx.plan
    windows = max(1, round(plan.held_s / plan.held_window_s))
    db = await ctx.database("held")
    conn = await db.connect()
    route = ctx.world.sink("cb")
    snapshot = Snapshot(db.dsn, plan.held_from_s, plan.held_until_s)

    async def after(k: int, w: dict[str, Any]) -> dict[str, Any]:
        window_end = w["began_s"] + plan.held_window_s
        return {
            "snapshot_share": round(snapshot.share(w["began_s"], window_end), 2),
            "dead_tuples": await dead_tuples(conn, "deliveries", "tasks"),
        }

    try:
        await ctx.world.call("reset", 10)
        async with running(SERVE, ctx.env(db.dsn), ctx.logs) as procs:
            try:
                load = await run_windows(
                    ctx,
                    db,
                    procs,
                    rate=plan.held_rate,
                    window_s=plan.held_window_s,
                    count=windows,
                    routes=[route] * 10,
                    on_window=after,
                    on_start=snapshot.schedule,
                )
            finally:
                await snapshot.finish()
            check = await final_check(ctx, conn, route, load.acked)
    finally:
        await conn.close()
    return {
        "rate": plan.held_rate,
        "window_s": plan.held_window_s,
        "snapshot": {
            "sql": f"BEGIN ISOLATION LEVEL REPEATABLE READ; {SNAPSHOT_SQL}; (idle) COMMIT",
            "planned_s": [plan.held_from_s, plan.held_until_s],
            "held_s": [
                None if snapshot.began is None else round(snapshot.began, 2),
                None if snapshot.ended is None else round(snapshot.ended, 2),
            ],
            "rows_seen": snapshot.rows,
        },
        "windows": load.windows,
        "task_creation": load.creation,
        "check": check,
    }
