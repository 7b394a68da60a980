"""LISTEN for new work on a dedicated connection; the poll in the loop is the guarantee.

asyncpg's pool resets connections with `UNLISTEN *`, so the listener holds its own
connection. It pings that connection every few polls and reconnects when
it died; after every (re)connect it wakes the loop once, to catch anything missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg

from taskhook.core import store
from taskhook.core.logs import get_logger

CHANNEL = "taskhook_deliveries"
HEALTH_EVERY = 5  # polls between liveness checks of the listening connection
RECONNECT_DELAY = 1.0  # seconds

log = get_logger("taskhook.dispatcher.listener")


class Listener:
    def __init__(self, dsn: str, poll_interval: float) -> None:
        self.dsn, self.poll_interval = dsn, poll_interval
        self.wake = asyncio.Event()

    def _notified(self, *_args: Any) -> None:
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.dsn)
                await conn.add_listener(CHANNEL, self._notified)
                self.wake.set()
                await self._watch(conn, stop)
            except Exception:  # down, restarting, or anything else: never die, reconnect
                log.warning("listener.reconnecting", exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RECONNECT_DELAY)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)

    async def _watch(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        interval = self.poll_interval * HEALTH_EVERY
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            await asyncio.wait_for(store.ping(conn), timeout=5)
