"""Batched outcome writes: attempts finished close together are recorded in one statement.

Each delivery task hands its outcome over and waits until it is written, so a delivery
holds its lease (and its per-task order) until its outcome is durable. Two writers flush
everything waiting; while one writes, the next batch gathers. Under load this turns one
round trip per callback into one per batch; with one outcome waiting it adds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from taskhook.core import store
from taskhook.core.db import DATABASE_DOWN
from taskhook.core.logs import get_logger

log = get_logger("taskhook.dispatcher.outcomes")
MAX_BATCH = 500
MAX_QUEUED = 5000  # outcomes waiting to be written; a full queue slows the senders down
WRITERS = 2  # one statement commits while the next batch gathers
RETRY_DELAY = 1.0  # seconds before a failed write is tried again (database down)
WRITE_ATTEMPTS = 30  # bounded: an outage longer than ~30 s leaves the batch to the lease
CLOSE_ATTEMPTS = 3  # at shutdown, within the grace time; the lease covers the rest
Item = tuple[store.AttemptRecord, "asyncio.Future[bool]"]


class OutcomeWriter:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=MAX_QUEUED)
        self.tasks = [asyncio.create_task(self._write_forever()) for _ in range(WRITERS)]

    async def record(self, record: store.AttemptRecord) -> bool:
        """Queue one outcome and wait until it is written; False if the lease was lost."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self.queue.put((record, future))
        return await future

    async def close(self) -> None:
        """Write what is still queued (cancelled deliveries' outcomes too), then stop."""
        while not self.queue.empty():
            batch = [self.queue.get_nowait() for _ in range(self.queue.qsize())]
            try:
                await self._flush(batch, CLOSE_ATTEMPTS)
            except Exception:
                log.error("outcomes.write_crashed", size=len(batch), exc_info=True)
                _resolve(batch, set())
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _write_forever(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < MAX_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self._flush(batch)
            except Exception:
                # Never let a writer die (its waiters would hang and the queue fill up):
                # the batch counts as unwritten, its leases expire, it is sent again.
                log.error("outcomes.write_crashed", size=len(batch), exc_info=True)
                _resolve(batch, set())

    async def _flush(self, batch: list[Item], attempts: int = WRITE_ATTEMPTS) -> None:
        for _ in range(attempts):
            try:
                kept = await store.record_attempts(self.pool, [r for r, _ in batch])
                break
            except DATABASE_DOWN:
                log.warning("outcomes.write_failed", size=len(batch), exc_info=True)
                await asyncio.sleep(RETRY_DELAY)
        else:
            kept = set()  # unwritten: the leases expire and the deliveries are retried
        _resolve(batch, kept)


def _resolve(batch: list[Item], kept: set[int]) -> None:
    for record, future in batch:
        if not future.done():
            future.set_result(record.delivery.id in kept)
