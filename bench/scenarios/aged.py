"""The aged database: the e2e ladder (the same open_loop_step) on `taskhook serve` against a
database that already holds `aged_deliveries` (default 2,000,000; quick 200,000) finished
deliveries, each with its delivery_attempts row, its task and its ingested event.

The history is made in-process by taskhook's own functions (bench/history.py explains
which, and why not through HTTP), then the tables are vacuumed and analyzed once, as
autovacuum would have done many times over the weeks such a history takes to gather (the
ladder's own tables are never analyzed by hand). Retention keeps it all: the history is
minutes old, far inside TASKHOOK_RETENTION_DAYS (30 days), so no setting is changed; the
end checks that every history delivery and attempt is still there.
"""

from __future__ import annotations

import time
from typing import Any

from bench import history, seed
from bench.scenarios import Context
from bench.scenarios.e2e import SERVE, ladder
from bench.service import DATA_DIR

TABLES = ("tasks", "deliveries", "delivery_payloads", "delivery_attempts", "ingested_events")
_KEPT = """
SELECT (SELECT count(*) FROM deliveries WHERE id <= $1 AND state = 'succeeded') AS deliveries,
       (SELECT count(*) FROM delivery_attempts WHERE delivery_id <= $1) AS attempts
"""


async def run(ctx: Context) -> dict[str, Any]:
    n = ctx.plan.aged_deliveries
    db = await ctx.database("aged")
    conn = await db.connect()
    try:
        print(f"  aged: making {n:,} finished deliveries in-process ...", flush=True)
        built = await history.build(db.dsn, db.account_id, n, ctx.world.sink("old"), str(DATA_DIR))
        print(f"  aged: made in {built['seconds']} s ({built['per_s']}/s)", flush=True)
        last_id = int(await conn.fetchval("SELECT max(id) FROM deliveries"))
        began = time.monotonic()
        await conn.execute(f"VACUUM (ANALYZE) {', '.join(TABLES)}")
        vacuum_s = round(time.monotonic() - began, 1)
        sizes_before = await seed.sizes(conn, TABLES)
    finally:
        await conn.close()
    result = await ladder(ctx, "aged", SERVE, db=db)
    conn = await db.connect()
    try:
        kept = dict(await conn.fetchrow(_KEPT, last_id))  # type: ignore[arg-type]
        sizes_after = await seed.sizes(conn, TABLES)
    finally:
        await conn.close()
    kept["ok"] = kept["deliveries"] == n and kept["attempts"] == n
    result["check"]["ok"] = result["check"]["ok"] and kept["ok"]
    return {
        "history": {
            **built,
            "how": "tasks.create_task rows inserted by one executemany of "
            "insert_task per 1,000; events.apply_groups per 1,000 completions; "
            "store.claim_deliveries + store.record_attempts (HTTP 200, 1 ms), no HTTP",
            "vacuum_analyze_s": vacuum_s,
        },
        "sizes_at_start": sizes_before,
        "sizes_at_end": sizes_after,
        "history_kept": kept,
        **result,
    }
