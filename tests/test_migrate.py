"""Applying schema.sql to a database made by an earlier version of taskhook."""

from __future__ import annotations

import json

import asyncpg
import pytest

from taskhook import db
from tests.conftest import Api


@pytest.mark.parametrize("column_type", ["text", "jsonb"])
async def test_bodies_stored_in_deliveries_move_to_delivery_payloads(
    test_api: Api, pool: asyncpg.Pool, dsn: str, column_type: str
) -> None:
    """Deliveries kept their body in a column of their own before (jsonb, then text);
    migrate moves every body into delivery_payloads once (the jsonb ones as jsonb printed
    them), drops the column, and a second migrate changes nothing."""
    await test_api.project()
    task = await test_api.task(callback_url="http://127.0.0.1:9/cb")
    # The database as the earlier version left it: the body in deliveries.payload.
    await pool.execute(f"ALTER TABLE deliveries ADD COLUMN payload {column_type}")
    await pool.execute(
        f"UPDATE deliveries d SET payload = p.payload::{column_type} "
        "FROM delivery_payloads p WHERE p.delivery_id = d.id"
    )
    await pool.execute("DELETE FROM delivery_payloads")
    before = await pool.fetchval("SELECT payload::text FROM deliveries")
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(2):
            await db.migrate(conn)
            columns = await conn.fetchval(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = 'deliveries' AND column_name = 'payload'"
            )
            assert columns == 0
            assert await conn.fetchval("SELECT payload FROM delivery_payloads") == before
    finally:
        await conn.close()
    assert json.loads(before)["task_id"] == task["task_id"]
