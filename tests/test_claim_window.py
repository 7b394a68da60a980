"""A snapshot held open (a report, a backup) does not make claims walk the dead.

Every claimed and finished delivery leaves dead entries in deliveries_host_due_idx that
PostgreSQL can neither vacuum nor mark dead while an older snapshot is open; a claim that
scanned each host from its start visited all of them, so claims slowed with every second
the snapshot stayed open. Claims scan from their window's low mark (store.ClaimWindow),
and no due row is left behind it: rows that commit after a claim ran, from taskhook's own
sessions or any session that has written, are still claimed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from taskhook.core import store
from taskhook.core.delivery import Claimed
from taskhook.dispatcher.claims import ClaimConnection, claim_deliveries
from tests.conftest import SECRET_BOX, Api

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

ROUNDS, PER_ROUND = 20, 50
INDEX_READS = """
SELECT sum(pg_stat_get_xact_tuples_returned(i.indexrelid))::bigint
FROM pg_index i WHERE i.indrelid = 'deliveries'::regclass
"""
ADD = """
WITH d AS (
    INSERT INTO deliveries (task_id, account_id, trigger, target, host, webhook_id)
    SELECT task_id, account_id, trigger, target, $1, 'msg_' || gen_random_uuid()
    FROM (SELECT * FROM deliveries LIMIT 1) d, generate_series(1, $2) g
    RETURNING id
)
INSERT INTO delivery_payloads (delivery_id, payload) SELECT id, '{}' FROM d
"""
FINISH = """
UPDATE deliveries SET state = 'succeeded', finished_at = now(), lease_token = NULL
WHERE id = ANY ($1::bigint[])
"""


@pytest.fixture
async def claims(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """The connection the dispatcher claims on, as it opens it."""
    own = ClaimConnection(dsn)
    yield await own.get()
    await own.close()


@pytest.fixture
async def seeded(test_api: Api, pool: asyncpg.Pool) -> None:
    """One delivery to copy rows from, and nothing due."""
    await test_api.project()
    await test_api.task(callback_url="http://127.0.0.1:9/cb")
    await pool.execute("UPDATE deliveries SET state = 'succeeded', finished_at = now()")


CAP = 10_000
STUCK = {"stuck.example": CAP}  # a host at its cap: it gets no share


async def _claim(
    claims: asyncpg.Connection,
    window: store.ClaimWindow | None,
    busy: dict[str, int] | None = None,
) -> list[Claimed]:
    return await claim_deliveries(claims, SECRET_BOX, 500, 60, CAP, busy, 0, window)


async def _claim_reads(
    claims: asyncpg.Connection,
    window: store.ClaimWindow | None,
    busy: dict[str, int] | None = None,
) -> int:
    """Index entries of deliveries one claim read (it claims the PER_ROUND rows due)."""
    async with claims.transaction():
        before = await claims.fetchval(INDEX_READS) or 0
        claimed = await _claim(claims, window, busy)
        read = (await claims.fetchval(INDEX_READS) or 0) - before
    assert len(claimed) == PER_ROUND
    return int(read)


async def _flow(
    pool: asyncpg.Pool,
    claims: asyncpg.Connection,
    window: store.ClaimWindow,
    busy: dict[str, int] | None = None,
) -> None:
    """ROUNDS rounds of the queue's life, 0.15 s apart: rows become due, are claimed
    through the window, and succeed."""
    for _ in range(ROUNDS):
        await pool.execute(ADD, "a.example", PER_ROUND)
        claimed = await _claim(claims, window, busy)
        assert len(claimed) == PER_ROUND
        await pool.execute(FINISH, [d.id for d in claimed])
        await asyncio.sleep(0.15)  # fixed: the queue's life over time, past the 0.1 s horizon


async def test_a_held_snapshot_does_not_make_claims_walk_the_dead(
    seeded: None, dsn: str, pool: asyncpg.Pool, claims: asyncpg.Connection
) -> None:
    holder = await asyncpg.connect(dsn)  # a report: read-only, REPEATABLE READ, left open
    try:
        await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        await holder.fetchval("SELECT count(*) FROM deliveries")
        window = store.ClaimWindow()
        await _flow(pool, claims, window)
        await pool.execute(ADD, "a.example", PER_ROUND)
        through_window = await _claim_reads(claims, window)
        await pool.execute(ADD, "a.example", PER_ROUND)
        from_the_start = await _claim_reads(claims, None)
    finally:
        await holder.close()
    dead = 2 * ROUNDS * PER_ROUND  # each finished row: its due entry and its lease entry
    assert from_the_start >= dead  # the graveyard is there, and the measure sees it
    assert through_window <= 8 * PER_ROUND, (through_window, from_the_start)


async def test_a_host_left_due_keeps_its_own_mark_and_holds_no_other_back(
    seeded: None, dsn: str, pool: asyncpg.Pool, claims: asyncpg.Connection
) -> None:
    """A host at its cap with rows due since before the snapshot: the claims of the other
    hosts still start near their own fronts, and its rows are claimed once it has room."""
    holder = await asyncpg.connect(dsn)
    try:
        await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        await holder.fetchval("SELECT count(*) FROM deliveries")
        await pool.execute(ADD, "stuck.example", PER_ROUND)
        window = store.ClaimWindow()
        await _flow(pool, claims, window, STUCK)
        assert set(window.marks) == {"stuck.example"}
        await pool.execute(ADD, "a.example", PER_ROUND)
        read = await _claim_reads(claims, window, STUCK)
    finally:
        await holder.close()
    assert read <= 8 * PER_ROUND, read  # a.example's dead entries are not walked
    claimed = await _claim(claims, window)  # room again
    assert [d.host for d in claimed] == ["stuck.example"] * PER_ROUND


async def test_a_row_committed_after_the_window_moved_is_still_claimed(
    seeded: None, dsn: str, pool: asyncpg.Pool, claims: asyncpg.Connection
) -> None:
    """An enqueue's rows are due from its transaction's start; a transaction that began
    before several claims and commits after them (a taskhook session, or another program
    that has already written) still has its rows claimed by the next claim."""
    foreign = await asyncpg.connect(dsn)
    try:
        async with pool.acquire() as ours:
            ours_tx, foreign_tx = ours.transaction(), foreign.transaction()
            await ours_tx.start()
            await foreign_tx.start()
            began = await ours.fetchval("SELECT now()")
            await foreign.execute(ADD, "written.example", 1)  # it has written: it has an xid
            window = store.ClaimWindow()
            await _flow(pool, claims, window)  # 3 s of claims, each moving the window
            assert window.low is not None and window.low <= began  # held at the oldest
            await ours.execute(ADD, "ours.example", 1)
            await foreign.execute(ADD, "foreign.example", 1)
            await ours_tx.commit()
            await foreign_tx.commit()
        claimed = await _claim(claims, window)
    finally:
        await foreign.close()
    assert sorted(d.host for d in claimed) == ["foreign.example", "ours.example", "written.example"]


async def test_a_sweep_or_a_reset_finds_rows_made_due_behind_the_marks(
    seeded: None, pool: asyncpg.Pool, claims: asyncpg.Connection
) -> None:
    """A row another program makes due at an earlier time than the marks is found by the
    sweep (store.due_hosts, the dispatcher's once a minute), or after a reset (the
    dispatcher's after a failed claim)."""
    window = store.ClaimWindow()
    await _flow(pool, claims, window)
    for late in ("late.example", "later.example"):
        await pool.execute(ADD, late, 1)
    await pool.execute(
        "UPDATE deliveries SET next_attempt_at = $1::timestamptz - interval '1 hour' "
        "WHERE host LIKE 'late%'",
        window.low,
    )
    assert await _claim(claims, window) == []
    async with pool.acquire() as conn:
        window.lower(await store.due_hosts(conn))
    assert set(window.lowered) == {"late.example", "later.example"}
    assert sorted(d.host for d in await _claim(claims, window)) == [
        "late.example",
        "later.example",
    ]
    assert window.lowered == {}  # the claim scanned from them: they are done with
    await pool.execute(ADD, "late.example", 1)
    await pool.execute(
        "UPDATE deliveries SET next_attempt_at = now() - interval '1 hour' "
        "WHERE host = 'late.example' AND state = 'pending'"
    )
    assert await _claim(claims, window) == []
    window.reset()
    assert [d.host for d in await _claim(claims, window)] == ["late.example"]
