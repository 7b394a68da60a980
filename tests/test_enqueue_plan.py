"""Ingest's enqueue probes each callback's task; it never scans the deliveries table, which
keeps 30 days of deliveries by default. Written as EXISTS, the per-task order test was
planned in the bench as one hashed scan of every delivery, repeated by the generic plan for
every ingest group (1 ms a group at first, 10 ms within a minute). This test does not
recreate the bench's statistics; it guards the plan's shape on a table with history."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from taskhook.core.store.queries import queries
from tests.conftest import Api

KEPT = 3000  # deliveries already in the table, one in 30 unfinished (as under load)


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out += _nodes(child)
    return out


async def test_enqueue_never_scans_the_deliveries_table(test_api: Api, pool: asyncpg.Pool) -> None:
    await test_api.project()
    await test_api.task(callback_url="http://127.0.0.1:9/cb")
    await pool.execute(  # KEPT more tasks, each with one finished delivery
        """INSERT INTO tasks
           SELECT (jsonb_populate_record(NULL::tasks, to_jsonb(t) || jsonb_build_object(
                       'id', 'kept' || g, 'unique_id', NULL))).*
           FROM (SELECT * FROM tasks LIMIT 1) t, generate_series(1, $1) g""",
        KEPT,
    )
    await pool.execute(
        """INSERT INTO deliveries (task_id, account_id, trigger, target, host, webhook_id,
                                   state)
           SELECT 'kept' || g, account_id, trigger, target, host, 'msg_kept' || g,
                  CASE WHEN g % 30 = 0 THEN 'pending' ELSE 'succeeded' END
           FROM (SELECT * FROM deliveries LIMIT 1) d, generate_series(1, $1) g""",
        KEPT,
    )
    await pool.execute("ANALYZE tasks, deliveries")
    async with pool.acquire() as conn:
        for mode in ("force_generic_plan", "force_custom_plan"):
            async with conn.transaction():
                await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
                sql = queries["enqueue_deliveries"]
                # force_generic_plan: the plan a prepared statement settles on
                [row] = await conn.fetch("EXPLAIN (FORMAT JSON) " + sql, *_one_callback())
            raw = row[0]
            nodes = _nodes((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"])
            scans = [n["Node Type"] for n in nodes if n.get("Relation Name") == "deliveries"]
            assert "Seq Scan" not in scans, (mode, scans)


def _one_callback() -> list[list[Any]]:
    return [["t"], ["a"], ["completed"], ["http://x/"], ["x"], ["{}"], ["msg_1"], [False]]
