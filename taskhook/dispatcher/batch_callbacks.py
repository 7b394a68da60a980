"""Batch callbacks: a batch's `callback` is called once, when the batch completes.

A dispatcher looks every poll interval for batches with a callback that have completed
(in progress, with tasks, none pending) and not been queued; in one transaction it marks
each queued and enqueues one delivery whose body is the batch as GET /v1/batches/{name}
returns it. Locked rows are skipped, so dispatchers side by side queue each batch once.
The delivery then goes the way of every other (claims, retries, signatures, attempts).
"""

from __future__ import annotations

import asyncpg

from taskhook.core import ids, store
from taskhook.core.callbacks import target_host
from taskhook.core.db import json_text
from taskhook.core.serialize import batch_json

BATCHES_PER_ROUND = 100


async def queue_due(pool: asyncpg.Pool) -> list[tuple[str, int]]:
    """Queue the callbacks of the batches that have completed: (batch name, delivery id)."""
    queued: list[tuple[str, int]] = []
    async with pool.acquire() as conn, conn.transaction():
        for row in await store.due_batch_callbacks(conn, BATCHES_PER_ROUND):
            target = row["callback"]
            delivery_id = await store.enqueue_batch_delivery(
                conn,
                batch_id=row["id"],
                account_id=row["account_id"],
                target=target,
                host=target_host(target),
                webhook_id="msg_" + ids.random_hex(12),
                payload=json_text(batch_json(row)),
            )
            queued.append((row["name"], delivery_id))
    return queued
