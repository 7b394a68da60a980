"""The claim's own connection: claims are the dispatcher's hottest statement, and on a
connection of their own they run as one statement in one round trip, planned with the
settings they need (db.CLAIM_SETTINGS) instead of SET LOCAL inside a transaction (four
round trips; each waits its turn in an event loop busy with callbacks)."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from taskhook import db


class ClaimConnection:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: asyncpg.Connection | None = None

    async def get(self) -> asyncpg.Connection:
        """The open connection, (re)connected when there is none."""
        if self._conn is None or self._conn.is_closed():
            self._conn = await db.connect(self.dsn, db.CLAIM_SETTINGS)
        return self._conn

    async def discard(self) -> None:
        """Drop the connection after a failure; the next claim connects afresh (a claim
        cut off mid-statement leaves the connection in an unknown state)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
            if not conn.is_closed():
                conn.terminate()

    close = discard
