"""Waits on conditions, for tests: poll a predicate until it holds, bounded in time and in
the number of polls, and fail with a message naming what was awaited.

A test waits for something to happen through wait_until, never through a fixed sleep. A
fixed sleep is left only where time must pass to show that something does not happen (a
second delivery, a retry), and it says so in a comment."""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg


def _describe(predicate: Callable[[], Any]) -> str:
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return repr(predicate)


async def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    what: str | None = None,
    *,
    interval: float = 0.02,
) -> None:
    """Wait until predicate() is true; it may be sync or return an awaitable. Polls every
    `interval` seconds, at most timeout / interval + 1 times, and raises AssertionError
    naming `what` (or the predicate's source) once `timeout` seconds have passed. An
    exception the predicate raises (a process that exited, say) ends the wait at once."""
    polls = math.ceil(timeout / interval) + 1
    deadline = time.monotonic() + timeout
    bound = asyncio.timeout(timeout)  # also bounds a predicate that hangs
    try:
        async with bound:
            for _ in range(polls):
                value = predicate()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(interval)
    except TimeoutError:
        if not bound.expired():
            raise  # the predicate's own timeout, not this wait's
    raise AssertionError(f"timed out after {timeout} s waiting for {what or _describe(predicate)}")


async def equals(value: Awaitable[Any], expected: Any) -> bool:
    """Whether `value` comes out as `expected`: wait_until(lambda: equals(read(), 3))."""
    return await value == expected


async def lock_waiters(pool: asyncpg.Pool) -> int:
    """Sessions of the pool's database waiting for a lock another transaction holds (a
    writer stopped on a locked row): what a test that holds a lock waits for."""
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    )
