"""Group commit: concurrent ingest requests share one transaction; failures stay their own."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from taskhook.core import db, events
from taskhook.receiver.group_commit import GroupCommitter
from tests.conftest import Api
from tests.waits import equals, lock_waiters, wait_until


def _event(event_id: str, task_id: str) -> list[events.Event]:
    return events.parse_events(
        {
            "event_id": event_id,
            "type": "task.completed",
            "task_id": task_id,
            "response": {"category": "x"},
        }
    )


async def _pending_tasks(api: Api, n: int) -> list[str]:
    await api.project()
    return [(await api.task(callback_url="http://127.0.0.1:9/cb"))["task_id"] for _ in range(n)]


async def test_queued_requests_commit_together(live: Api, pool: asyncpg.Pool) -> None:
    """Requests that arrive while a commit is in progress go out in one transaction."""
    first, *rest = await _pending_tasks(live, 6)
    committer = GroupCommitter(pool, writers=1)
    blocker = await pool.acquire()
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", first)
    try:
        head = asyncio.create_task(committer.submit(_event("e0", first)))
        await wait_until(lambda: equals(lock_waiters(pool), 1), what="the writer on the lock")
        queued = [
            asyncio.create_task(committer.submit(_event(f"e{i}", t))) for i, t in enumerate(rest, 1)
        ]
        await wait_until(lambda: committer.queued_events == len(rest), what="all queued")
        await tx.rollback()
        await pool.release(blocker)
        blocker = None
        results = await asyncio.gather(head, *queued)
    finally:
        if blocker is not None:
            await tx.rollback()
            await pool.release(blocker)
        await committer.close()
    assert all(r == [{"event_id": r[0]["event_id"], "status": "applied"}] for r in results)
    xmins = await pool.fetch(
        "SELECT DISTINCT xmin::text FROM ingested_events WHERE event_id = ANY($1)",
        [f"e{i}" for i in range(1, 6)],
    )
    assert len(xmins) == 1  # the five queued requests: one transaction
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 6


async def test_a_failing_request_does_not_fail_its_group(live: Api, pool: asyncpg.Pool) -> None:
    """When one request of a group fails at the database, the others are still applied
    and only that request gets the error."""
    good, bad = await _pending_tasks(live, 2)
    await pool.execute(
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.task_id = '" + bad + "' THEN RAISE EXCEPTION 'injected'; END IF; "
        "RETURN NEW; END $$"
    )
    await pool.execute(
        "CREATE TRIGGER boom BEFORE INSERT ON deliveries FOR EACH ROW EXECUTE FUNCTION boom()"
    )
    committer = GroupCommitter(pool, writers=1)
    try:
        ok, failed = await asyncio.gather(
            committer.submit(_event("g1", good)),
            committer.submit(_event("b1", bad)),
            return_exceptions=True,
        )
    finally:
        await committer.close()
    assert ok == [{"event_id": "g1", "status": "applied"}]
    assert isinstance(failed, asyncpg.RaiseError)
    assert await pool.fetchval("SELECT status FROM tasks WHERE id = $1", good) == "completed"
    assert await pool.fetchval("SELECT status FROM tasks WHERE id = $1", bad) == "pending"


@pytest.mark.parametrize("writers", [1, 2])
async def test_many_concurrent_requests_all_answered(
    live: Api, pool: asyncpg.Pool, writers: int
) -> None:
    """100 concurrent requests (with repeats of one event_id) each get their own answer."""
    tasks = await _pending_tasks(live, 20)
    committer = GroupCommitter(pool, writers=writers)
    try:
        results = await asyncio.gather(
            *[committer.submit(_event(f"c{i % 50}", tasks[i % 20])) for i in range(100)]
        )
    finally:
        await committer.close()
    statuses = [r[0]["status"] for r in results]
    assert statuses.count("applied") == 20  # one per task; the rest are repeats or rejected
    assert len(results) == 100
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 20


async def test_groups_reuse_generic_plans(live: Api, pool: asyncpg.Pool, dsn: str) -> None:
    """A group's statements run on generic plans, however few events it holds: under
    PostgreSQL's `auto` mode a one-event group kept planning its batch statements anew
    (custom plans), most of PostgreSQL's CPU at low rates."""
    tasks = await _pending_tasks(live, 8)
    own = await db.create_pool(dsn, min_size=1, max_size=1)  # every group on one session
    committer = GroupCommitter(own, writers=1)
    try:
        for i, task_id in enumerate(tasks):  # one event a group, as at low rates
            assert await committer.submit(_event(f"g{i}", task_id)) == [
                {"event_id": f"g{i}", "status": "applied"}
            ]
        async with own.acquire() as conn:
            plans = await conn.fetch(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE (statement LIKE '%UPDATE tasks t%' OR statement LIKE '%INTO deliveries%') "
                "AND statement NOT LIKE '%pg_prepared_statements%'"
            )
    finally:
        await committer.close()
        await own.close()
    assert len(plans) == 2  # complete_tasks and enqueue_deliveries
    assert all(p["custom_plans"] == 0 and p["generic_plans"] == len(tasks) for p in plans)
