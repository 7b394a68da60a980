"""The claim's query plan: an ordered range scan that stops at its LIMIT (pgqueuer's
test_query_plan_regression idea). A plan that reads every due row makes each claim cost
O(backlog) and the drain rate fall as the backlog grows."""

from __future__ import annotations

import json

import asyncpg

from taskhook.queries import queries
from tests.conftest import Api


def _nodes(plan: dict) -> list[dict]:
    out = [plan]
    for child in plan.get("Plans", []):
        out += _nodes(child)
    return out


async def test_claim_walks_the_due_index_in_order(test_api: Api, pool: asyncpg.Pool) -> None:
    """With 5,000 due deliveries and stale statistics, the claim reads about LIMIT rows:
    no bitmap scan, no hash join, no sort of the backlog, no per-task anti-join."""
    await test_api.project()
    await test_api.task(callback_url="http://127.0.0.1:9/cb")
    await pool.execute("ANALYZE deliveries")  # statistics now say: one row
    await pool.execute("""
        INSERT INTO deliveries (task_id, account_id, trigger, target, host, payload, webhook_id)
        SELECT task_id, account_id, trigger, target, host, payload, 'msg_' || g
        FROM deliveries, generate_series(1, 5000) g""")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(queries["claim_plan_settings"])
        [row] = await conn.fetch(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + queries["claim_deliveries"], 100, 60, 100, []
        )
        raw = row[0]
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    nodes = _nodes(plan)
    types = {n["Node Type"] for n in nodes}
    scans = [
        n
        for n in nodes
        if n.get("Relation Name") == "deliveries"
        and n["Node Type"].endswith("Scan")
        and n.get("Index Name") == "deliveries_due_idx"
    ]
    assert scans and all(n["Node Type"] == "Index Scan" for n in scans)
    assert max(n["Actual Rows"] for n in scans) <= 200  # LIMIT $1 * 2, not the backlog
    assert not types & {"Bitmap Heap Scan", "Hash Join", "Hash Anti Join", "Hash Right Anti Join"}
