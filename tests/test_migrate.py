"""Migrating a database made by an earlier version of taskhook, and a rolling start.

The legacy tests drop schema_migrations: that is a database from before numbered
migrations, which migrate brings to shape by running every migration from 001."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from taskhook.core.store import schema
from tests.conftest import Api
from tests.waits import wait_until


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
    await pool.execute("DELETE FROM schema_state")  # it recorded no digest of this schema
    await pool.execute("DROP TABLE schema_migrations")
    before = await pool.fetchval("SELECT payload::text FROM deliveries")
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(2):
            await schema.migrate(conn)
            columns = await conn.fetchval(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = 'deliveries' AND column_name = 'payload'"
            )
            assert columns == 0
            assert await conn.fetchval("SELECT payload FROM delivery_payloads") == before
    finally:
        await conn.close()
    assert json.loads(before)["task_id"] == task["task_id"]


async def _in_traffic(dsn: str, *locks: str) -> asyncpg.Connection:
    """A connection inside a transaction holding what running processes' statements hold
    (ROW EXCLUSIVE: any INSERT, UPDATE or DELETE) on `locks`."""
    conn = await asyncpg.connect(dsn)
    await conn.execute("BEGIN")
    for table in locks:
        await conn.execute(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE")
    return conn


async def test_a_start_against_the_current_schema_takes_no_table_lock(
    pool: asyncpg.Pool, dsn: str
) -> None:
    """A replica starting beside running ones (whose transactions hold row locks) finds the
    schema current and returns at once: the script's CREATE INDEX IF NOT EXISTS would wait
    for every open write transaction of its table, and could deadlock with them."""
    traffic = await _in_traffic(dsn, "deliveries", "tasks")
    conn = await asyncpg.connect(dsn)
    try:
        await asyncio.wait_for(schema.migrate(conn), 5)
    finally:
        await conn.close()
        await traffic.close()


async def test_a_migration_deadlocked_with_running_statements_is_retried(
    pool: asyncpg.Pool, dsn: str
) -> None:
    """An upgrade's script locks tables one after another; a running transaction that
    holds a table the script reaches late and then asks for one the script already holds
    is a deadlock, and PostgreSQL ends one side. If that is the migration, it is tried
    again (the script is idempotent) once the other side went on."""
    await pool.execute("UPDATE schema_state SET digest = 'an earlier version'")
    await pool.execute("DROP TABLE schema_migrations")  # so migration 001 runs again
    traffic = await _in_traffic(dsn, "web_sessions")  # 001's last CREATE INDEX
    conn = await asyncpg.connect(dsn)
    migrating = asyncio.create_task(schema.migrate(conn))
    try:
        # 001 holds api_keys (its first CREATE INDEX) and waits for web_sessions.
        waiting = "SELECT count(*) > 0 FROM pg_locks WHERE NOT granted AND pid = $1"
        await wait_until(
            lambda: pool.fetchval(waiting, conn.get_server_pid()), what="001 waits for a lock"
        )
        # The running transaction now wants api_keys: a cycle. The migration waited first,
        # so its deadlock check (after deadlock_timeout, 1 s) finds the cycle and ends it.
        await traffic.execute("LOCK TABLE api_keys IN ROW EXCLUSIVE MODE")
        await traffic.execute("COMMIT")
        await asyncio.wait_for(migrating, 15)
    finally:
        migrating.cancel()
        await conn.close()
        await traffic.close()
    digest = await pool.fetchval("SELECT digest FROM schema_state")
    assert digest == schema.digest()
