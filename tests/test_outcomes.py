"""Batched outcome writes: outcomes that wait together are written in one statement."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg

from taskhook.core import store
from taskhook.core.delivery import AttemptResult, Outcome
from taskhook.dispatcher.claims import claim_deliveries
from taskhook.dispatcher.outcomes import OutcomeWriter
from tests.conftest import SECRET_BOX, Api
from tests.waits import equals, lock_waiters, wait_until

OK = AttemptResult(datetime.now(UTC), 3, Outcome(status_code=200), "ok")


async def test_waiting_outcomes_are_written_in_one_statement(
    test_api: Api, pool: asyncpg.Pool
) -> None:
    """Outcomes queued while a write is in progress go out together, and every caller
    learns whether its lease held."""
    await test_api.project()
    for _ in range(6):
        await test_api.task(callback_url="http://127.0.0.1:9/cb")
    first, *rest = await claim_deliveries(pool, SECRET_BOX, 10, 60, 10)
    writer = OutcomeWriter(pool)
    blocker = await pool.acquire()
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("SELECT 1 FROM deliveries WHERE id = $1 FOR UPDATE", first.id)
    try:
        head = asyncio.create_task(writer.record(store.AttemptRecord(first, "succeeded", None, OK)))
        await wait_until(lambda: equals(lock_waiters(pool), 1), what="the writer on the lock")
        queued = [
            asyncio.create_task(writer.record(store.AttemptRecord(d, "succeeded", None, OK)))
            for d in rest
        ]
        # The other writer takes them while the first still waits on the lock.
        await wait_until(lambda: all(t.done() for t in queued), what="the queued outcomes")
    finally:
        await tx.rollback()
        await pool.release(blocker)
    kept = await asyncio.gather(head, *queued)
    await writer.close()
    assert kept == [True] * 6
    xmins = await pool.fetch(
        "SELECT DISTINCT xmin::text FROM delivery_attempts WHERE delivery_id = ANY($1)",
        [d.id for d in rest],
    )
    assert len(xmins) == 1
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE callback_succeeded") == 6


async def test_outcome_sees_a_delivery_enqueued_behind_it_while_it_waited(
    test_api: Api, pool: asyncpg.Pool
) -> None:
    """Ingest enqueues a task's next callback ('waiting', behind the one in flight) in a
    transaction that is still open when the in-flight one's outcome is written: the outcome
    waits for the task lock, then makes the waiting one due and leaves callback_succeeded
    unresolved. Without the lock the waiting delivery would never be sent."""
    await test_api.project()
    task = await test_api.task(callback_url="http://127.0.0.1:9/cb")
    [first] = await claim_deliveries(pool, SECRET_BOX, 10, 60, 10)
    ingest = await pool.acquire()
    tx = ingest.transaction()
    await tx.start()
    try:
        await ingest.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", task["task_id"])
        [second] = await store.enqueue_deliveries(
            ingest,
            [
                store.NewDelivery(
                    task["task_id"],
                    first.account_id,
                    "resend",
                    first.target,
                    first.host,
                    "{}",
                    "msg_second",
                )
            ],
        )
        writing = asyncio.create_task(store.record_attempt(pool, first, "succeeded", None, OK))
        await wait_until(lambda: equals(lock_waiters(pool), 1), what="the outcome on the lock")
        assert not writing.done()  # it waits for the task's lock
        await tx.commit()
    finally:
        await pool.release(ingest)
    assert await writing
    states = dict(await pool.fetch("SELECT id, state FROM deliveries"))
    assert states == {first.id: "succeeded", second: "pending"}
    assert (
        await pool.fetchval("SELECT callback_succeeded FROM tasks WHERE id = $1", task["task_id"])
        is None
    )
