"""Deliveries claimed ahead of their send: leased to this dispatcher, waiting for a slot.

A claim is a round trip that waits behind the event loop's callbacks under load, and a
host at its cap empties its slots faster than that: claiming only into free slots would
leave the pipe empty for most of each claim. So the loop claims up to two more caps'
worth per host ahead (one claim's rows held, one claim in flight beside the awaited one),
holds those rows here, and starts them the moment slots free.

A held row keeps its lease, so it must start early enough for its whole attempt to end
within the lease: one held longer than `limit` seconds is handed back instead of sent
(another claim, here or elsewhere, then sends it under a fresh lease).
"""

from __future__ import annotations

import time
from collections import Counter, deque

from taskhook.core.delivery import Claimed


class Held:
    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._queues: dict[str, deque[tuple[float, Claimed]]] = {}
        self.per_host: Counter[str] = Counter()
        self.count = 0

    def add(self, d: Claimed) -> None:
        self._queues.setdefault(d.host, deque()).append((time.monotonic(), d))
        self.per_host[d.host] += 1
        self.count += 1

    def hosts(self) -> list[str]:
        """Hosts with held rows, the one served longest ago first."""
        return list(self._queues)

    def pop(self, host: str, stale: list[Claimed]) -> Claimed | None:
        """The host's oldest row still fresh enough to send; stale ones go to `stale`."""
        queue = self._queues.get(host)
        now = time.monotonic()
        found = None
        while queue and found is None:
            held_at, d = queue.popleft()
            self._forget(host)
            if now - held_at > self.limit:
                stale.append(d)
            else:
                found = d
        if queue is not None:
            # Served (or emptied): the host goes to the back of the line.
            del self._queues[host]
            if queue:
                self._queues[host] = queue
        return found

    def take_all(self) -> list[Claimed]:
        """Every held row, removed (shutdown: they are handed back unsent)."""
        rows = [d for queue in self._queues.values() for _, d in queue]
        self._queues.clear()
        self.per_host.clear()
        self.count = 0
        return rows

    def _forget(self, host: str) -> None:
        self.count -= 1
        self.per_host[host] -= 1
        if self.per_host[host] <= 0:
            del self.per_host[host]
