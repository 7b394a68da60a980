"""Applying schema.sql to a database made by an earlier version of taskhook."""

from __future__ import annotations

import json

import asyncpg

from taskhook import db
from tests.conftest import Api


async def test_a_jsonb_payload_column_becomes_the_text_that_is_sent(
    test_api: Api, pool: asyncpg.Pool, dsn: str
) -> None:
    """Deliveries stored their payload as jsonb before; migrate turns the column into text
    once, keeping every payload (as jsonb printed it), and a second migrate changes nothing."""
    await test_api.project()
    task = await test_api.task(callback_url="http://127.0.0.1:9/cb")
    await pool.execute(
        "ALTER TABLE deliveries ALTER COLUMN payload TYPE jsonb USING payload::jsonb"
    )
    before = await pool.fetchval("SELECT payload::text FROM deliveries")
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(2):
            await db.migrate(conn)
            kind = await conn.fetchval(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = 'deliveries' AND column_name = 'payload'"
            )
            assert kind == "text"
            assert await conn.fetchval("SELECT payload FROM deliveries") == before
    finally:
        await conn.close()
    assert json.loads(before)["task_id"] == task["task_id"]
