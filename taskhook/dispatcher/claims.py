"""The claims' own connections, and the room a claim may take while another is in flight.

Claims are the dispatcher's hottest statement. On connections of their own they run as
one statement in one round trip, planned with the settings they need (db.CLAIM_SETTINGS)
instead of SET LOCAL inside a transaction (four round trips; each waits its turn in an
event loop busy with callbacks).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field

import asyncpg

from taskhook.core import db, store
from taskhook.core.delivery import Claimed
from taskhook.core.secretbox import SecretBox, open_claims
from taskhook.core.store import ClaimWindow


@dataclass
class ClaimRun:
    """One claim: what it asked for, the per-host counts its rooms were computed from
    (`unlisted` for any host not in `busy`), and the query in flight."""

    conn: ClaimConnection
    asked: int
    busy: dict[str, int]
    unlisted: int = 0
    task: asyncio.Future[list[Claimed]] = field(init=False)

    def most_taken(self, host: str | None, cap: int) -> int:
        """The most rows of `host` (None: of a host not in `busy`) this claim can come
        back with."""
        busy = self.unlisted if host is None else self.busy.get(host, self.unlisted)
        return max(0, min(self.asked, cap - busy))

    def has_room(self, cap: int) -> bool:
        """Whether this claim can take anything at all."""
        return self.asked > 0 and (self.unlisted < cap or any(n < cap for n in self.busy.values()))

    def room_ran_out(self, claimed: list[Claimed], cap: int) -> bool:
        """Whether a host's room limited this claim: its count when the claim ran, plus
        what the claim took, reached the cap (so due rows may be left behind)."""
        if self.unlisted >= cap:  # no host outside `busy` had any room
            return True
        taken = Counter(d.host for d in claimed)
        busy, unlisted = self.busy, self.unlisted
        return any(busy.get(h, unlisted) + taken[h] >= cap for h in busy.keys() | taken.keys())


def reserve(busy: dict[str, int], other: ClaimRun, cap: int) -> tuple[dict[str, int], int]:
    """`busy` plus the most `other` (a claim still in flight) can take from each host: the
    per-host counts, and the count for unlisted hosts, of a claim that runs beside it.
    Without this both claims would fill the same room, and a host would have twice its
    claim cap leased to this dispatcher."""
    hosts = busy.keys() | other.busy.keys()
    counts = {h: busy.get(h, 0) + other.most_taken(h, cap) for h in hosts}
    return counts, other.most_taken(None, cap)


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


async def claim_deliveries(
    conn: asyncpg.Connection | asyncpg.Pool,
    box: SecretBox,
    limit: int,
    lease_seconds: float,
    per_host: int,
    busy: dict[str, int] | None = None,
    unlisted: int = 0,
    window: ClaimWindow | None = None,
) -> list[Claimed]:
    """store.claim_deliveries, with each account's secrets opened for signing."""
    rows = await store.claim_deliveries(
        conn, limit, lease_seconds, per_host, busy, unlisted, window
    )
    return open_claims(box, rows)
