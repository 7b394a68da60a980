"""Group commit for event ingest: concurrent requests share one transaction.

Each ingest request is validated on its own, then queued. A few writer tasks each take
every request waiting (up to a cap of events), apply them in one transaction with one
NOTIFY, and answer each request after the commit. Under load this turns hundreds of small
commits (and NOTIFYs, which serialize commits) into a few large ones; with one request
waiting it costs nothing extra. If a group fails for a reason other than the database
being down, its requests are retried one by one, so one request's failure stays its own.

The queue is bounded in events (TASKHOOK_INGEST_QUEUE_EVENTS): a request that would take
it past the bound is refused at once with `Overloaded` (503 + Retry-After) rather than
waiting behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg

from taskhook.core import events, store
from taskhook.core.db import DATABASE_DOWN
from taskhook.core.logs import get_logger
from taskhook.core.models import Event
from taskhook.receiver.shedding import RETRY_AFTER_SECONDS, Overloaded

log = get_logger("taskhook.group_commit")
Results = list[dict[str, Any]]
Item = tuple[list[Event], "asyncio.Future[Results]"]

MAX_GROUP_EVENTS = 1000  # one transaction holds at most this many events (plus one request)
WRITERS = 2  # transactions in flight at once: one commits while the next one fills


class GroupCommitter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        writers: int = WRITERS,
        max_events: int = MAX_GROUP_EVENTS,
        max_queued: int = 10_000,
    ) -> None:
        self.pool, self.max_events = pool, max_events
        # Events queued for a writer, at most (TASKHOOK_INGEST_QUEUE_EVENTS); one request is
        # always let in when none is queued, and past the bound a request is shed at once.
        self.max_queued = max_queued
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.queued_events = 0  # events in self.queue
        self.writers = [asyncio.create_task(self._write_forever()) for _ in range(writers)]

    async def submit(self, batch: list[Event]) -> Results:
        if self.queued_events and self.queued_events + len(batch) > self.max_queued:
            raise Overloaded(
                "ingest_queue",
                f"The server is at capacity ({self.queued_events} events waiting to be "
                f"written); retry after {RETRY_AFTER_SECONDS} s.",
            )
        future: asyncio.Future[Results] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((batch, future))
        self.queued_events += len(batch)
        return await future

    async def close(self) -> None:
        for writer in self.writers:
            writer.cancel()
        for writer in self.writers:
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    def _take_group(self, first: Item) -> list[Item]:
        group, size = [first], len(first[0])
        while size < self.max_events and not self.queue.empty():
            item = self.queue.get_nowait()
            group.append(item)
            size += len(item[0])
        self.queued_events -= size
        return group

    async def _write_forever(self) -> None:
        while True:
            group = self._take_group(await self.queue.get())
            try:
                await self._commit(group)
            except asyncio.CancelledError:
                _fail(group, ConnectionAbortedError("receiver is shutting down"))
                raise
            except DATABASE_DOWN as exc:
                _fail(group, exc)
            except Exception:
                log.warning("group_commit.group_failed", requests=len(group), exc_info=True)
                await self._commit_one_by_one(group)

    async def _commit(self, group: list[Item]) -> None:
        async with self.pool.acquire() as conn, store.generic_plans_transaction(conn):
            results = await events.apply_groups(conn, [batch for batch, _ in group])
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _commit_one_by_one(self, group: list[Item]) -> None:
        for item in group:
            try:
                await self._commit([item])
            except Exception as exc:  # this request's own failure, answered to it alone
                _fail([item], exc)


def _fail(group: list[Item], exc: BaseException) -> None:
    for _, future in group:
        if not future.done():
            future.set_exception(exc)
