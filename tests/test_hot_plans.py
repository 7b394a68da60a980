"""The hot statements read a bounded number of rows whatever PostgreSQL believes about the
tables: analyzed while empty and loaded since, or believed far larger than they are.

Each hot path (ingest: lock, event-id claim, completion, enqueue; the claim; the outcome
write; resend's read; the prune; the metrics' queue count) runs as the product runs it, on
connections made as the product makes them, first a few times while the tables are small,
so that every plan cache holds the plan of a small table (prepared statements, the
statements inside the plpgsql functions, the foreign-key checks' queries). Then a history
is loaded without ANALYZE (autovacuum is off for these tables, as when it has not come
round yet), and each path runs once more inside a transaction whose table counters
(pg_stat_xact_*) show the rows it read. A plan chosen by cost on those statistics may
scan the whole history for one event or one delivery; these must not."""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from taskhook.core import db, events, store
from taskhook.core.accounts import NewAccount
from taskhook.core.delivery import AttemptResult, Outcome
from taskhook.dispatcher.claims import claim_deliveries
from tests.conftest import SECRET_BOX

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

# Finished tasks, each with a delivery, its body, an attempt and an event id. The same test
# runs on an aged database with TASKHOOK_TEST_HISTORY=2000000 (about two minutes).
HISTORY = int(os.environ.get("TASKHOOK_TEST_HISTORY", "20000"))
MAX_READ = 60  # rows (heap or index entries) one small operation may read from one table
TABLES = ("tasks", "deliveries", "delivery_payloads", "delivery_attempts", "ingested_events")

# Rows read per table in this transaction so far: sequential scans' rows, and the index
# entries returned by index scans (pg_stat_get_xact_tuples_returned of each index).
READS = """
SELECT t.relname, t.seq_tup_read
       + coalesce((SELECT sum(pg_stat_get_xact_tuples_returned(i.indexrelid))
                   FROM pg_index i WHERE i.indrelid = t.relid), 0)::bigint AS n
FROM pg_stat_xact_user_tables t
"""


async def _reads(conn: asyncpg.Connection) -> dict[str, int]:
    return {r["relname"]: r["n"] for r in await conn.fetch(READS)}


async def _measured(conn: asyncpg.Connection, work: Callable[[], Awaitable[Any]]) -> dict[str, int]:
    """Run work in the transaction open on conn; the rows it read, by table. The counters
    are read inside the transaction: between transactions they are flushed and reset."""
    before = await _reads(conn)
    await work()
    after = await _reads(conn)
    return {t: n - before.get(t, 0) for t, n in after.items() if n != before.get(t, 0)}


async def _tasks(conn: asyncpg.Connection, account_id: str, prefix: str, n: int) -> list[str]:
    rows = await conn.fetch(
        """INSERT INTO tasks (id, account_id, is_test, type, project, callback_url, params)
           SELECT $2 || lpad(g::text, 20, '0'), $1, false, 'categorization', 'p',
                  'http://127.0.0.1:9/cb', '{}'
           FROM generate_series(1, $3) g RETURNING id""",
        account_id,
        prefix,
        n,
    )
    return [r["id"] for r in rows]


async def _load_history(conn: asyncpg.Connection, account_id: str) -> None:
    """HISTORY finished tasks with their delivery, body, attempt and event id, sorting
    after the tasks under test (the prefix 'h'), as a day of traffic leaves them."""
    await _tasks(conn, account_id, "h", HISTORY)
    await conn.execute(
        """WITH d AS (
             INSERT INTO deliveries (task_id, account_id, trigger, target, host, webhook_id,
                                     state, attempts, finished_at)
             SELECT id, account_id, 'completed', callback_url, '127.0.0.1', 'msg_' || id,
                    'succeeded', 1, now()
             FROM tasks WHERE id LIKE 'h%' RETURNING id
           ), p AS (
             INSERT INTO delivery_payloads SELECT id, repeat('x', 1500) FROM d
           )
           INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms,
                                          status_code)
           SELECT id, 1, now(), 1, 200 FROM d"""
    )
    await conn.execute(
        """UPDATE tasks SET status = 'completed', callback_succeeded = true
           WHERE id LIKE 'h%'"""
    )
    await conn.execute(
        """INSERT INTO ingested_events
           SELECT 'ev_h' || g, 'h' || g, 'task.completed' FROM generate_series(1, $1) g""",
        HISTORY,
    )


def _completion(task_id: str) -> events.Event:
    return events.Event.model_validate(
        {
            "event_id": "ev_" + uuid.uuid4().hex,
            "type": "task.completed",
            "task_id": task_id,
            "response": {"category": "x"},
        }
    )


class HotPaths:
    """Each hot path as the product runs it, measured."""

    def __init__(self, pool: asyncpg.Pool, claims: asyncpg.Connection) -> None:
        self.pool, self.claims = pool, claims

    async def ingest(self, task_ids: list[str]) -> dict[str, int]:
        """One group commit, as receiver/group_commit.py runs it."""
        async with self.pool.acquire() as conn, store.generic_plans_transaction(conn):
            groups = [[_completion(t)] for t in task_ids]
            return await _measured(conn, lambda: events.apply_groups(conn, groups))

    async def claim(self) -> tuple[list[Any], dict[str, int]]:
        got: list[Any] = []

        async def claim() -> None:
            got.extend(await claim_deliveries(self.claims, SECRET_BOX, 200, 60, 200))

        async with self.claims.transaction():
            read = await _measured(self.claims, claim)
        return got, read

    async def record(self, claimed: list[Any]) -> dict[str, int]:
        result = AttemptResult(datetime.now(UTC), 1, Outcome(status_code=200), "")
        records = [store.AttemptRecord(d, "succeeded", None, result) for d in claimed]
        async with self.pool.acquire() as conn, conn.transaction():
            return await _measured(conn, lambda: store.record_attempts(conn, records))

    async def resend_read(self, task_id: str) -> dict[str, int]:
        async with self.pool.acquire() as conn, conn.transaction():
            return await _measured(conn, lambda: store.latest_delivery_payload(conn, task_id))

    async def queue_stats(self) -> dict[str, int]:
        async with self.pool.acquire() as conn, conn.transaction():
            return await _measured(conn, lambda: store.queue_stats(conn))

    async def prune(self) -> dict[str, int]:
        async with self.pool.acquire() as conn, conn.transaction():
            return await _measured(conn, lambda: store.prune(conn, 30))


def _assert_bounded(what: str, read: dict[str, int]) -> None:
    over = {t: n for t, n in read.items() if t in TABLES and n > MAX_READ}
    assert not over, f"{what} read {over} rows (history {HISTORY})"


# How statistics lag: analyzed while empty (a fresh database), or believing every table
# far larger than it is (a table emptied since its last ANALYZE).
BELIEFS = {
    "analyzed_empty": "ANALYZE",
    "believed_huge": """UPDATE pg_class SET reltuples = 1e8, relpages = 1e6
                        WHERE relname = ANY ($1::text[])""",
}


@pytest.mark.parametrize("belief", sorted(BELIEFS))
async def test_hot_paths_read_bounded_rows_whatever_the_statistics(
    pool: asyncpg.Pool, dsn: str, account: NewAccount, belief: str
) -> None:
    admin = await asyncpg.connect(dsn)
    claims = await db.connect(dsn, db.CLAIM_SETTINGS)
    try:
        for table in TABLES:
            await admin.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        await admin.execute("ANALYZE")
        if belief != "analyzed_empty":
            await admin.execute(BELIEFS[belief], list(TABLES))
        paths = HotPaths(pool, claims)
        warm = await _tasks(admin, account.account_id, "w", 16)
        for i in range(0, 16, 2):  # past the plan caches' first five custom plans
            await paths.ingest(warm[i : i + 2])
            claimed, _ = await paths.claim()
            await paths.record(claimed)
            await paths.prune()
            await paths.queue_stats()
        await _load_history(admin, account.account_id)
        fresh = await _tasks(admin, account.account_id, "f", 3)

        _assert_bounded("ingest of 1 event", await paths.ingest(fresh[:1]))
        _assert_bounded("ingest of 2 events", await paths.ingest(fresh[1:]))
        claimed, read = await paths.claim()
        assert len(claimed) == 3
        _assert_bounded("claim", read)
        _assert_bounded("outcome write", await paths.record(claimed))
        _assert_bounded("resend's read", await paths.resend_read(fresh[0]))
        _assert_bounded("prune", await paths.prune())
        _assert_bounded("queue stats", await paths.queue_stats())
        assert await admin.fetchval(
            "SELECT count(*) FROM tasks WHERE id = ANY ($1) AND callback_succeeded", fresh
        ) == len(fresh)
    finally:
        await claims.close()
        await admin.close()


async def test_the_reads_are_counted(pool: asyncpg.Pool, account: NewAccount) -> None:
    """The measure sees a scan: a statement planned as a sequential scan reads every row."""
    async with pool.acquire() as conn:
        await _tasks(conn, account.account_id, "h", 500)
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = on")
            read = await _measured(
                conn, lambda: conn.fetchval("SELECT count(*) FROM tasks WHERE params = '{}'")
            )
    assert read["tasks"] >= 500
