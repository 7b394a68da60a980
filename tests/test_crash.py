"""Crash safety under load: `taskhook serve`, and a lone `taskhook dispatcher`,
SIGKILLed several times mid-delivery and restarted; nothing acknowledged is lost.

Load: signed single-event `task.completed` ingests at a modest rate, one per task, each
task's callback going to its own path on a real sink that holds every request 0.3 s, so a
kill always finds callbacks in flight. An ingest that got no response because the process
died is sent again with the same event_id (at least once, as any webhook sender does);
ingest is idempotent by event_id, so the resend answers `duplicate` when the first commit
had landed. A short lease (2 s) makes the re-sends after a kill come fast.

At the end every task is acknowledged, has callback_succeeded true and one delivery; the
sink got each callback, and a repeat (a re-send after the killed process's lease ran out)
carries the webhook-id of the first, never another one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import Api
from tests.procs import EventLoad, Role, check_callbacks, make_role, pending_tasks
from tests.sink import Sink
from tests.waits import wait_until

pytestmark = pytest.mark.subprocess  # taskhook roles as real processes

TASKS = 300
RATE = 60.0  # ingests per second
KILLS = 3
LEASE = "2"


def _in_flight(sink: Sink) -> bool:
    """The sink holds a /slow request right now (it arrived less than 0.25 s ago)."""
    now = time.monotonic()
    return any(r.at > now - 0.25 for r in sink.received[-50:])


async def _kill_and_restart(
    proc: Role, sink: Sink, progress: int, count: Callable[[], int]
) -> None:
    """SIGKILL once `count()` reached `progress` and a callback is in flight; restart."""
    await wait_until(lambda: count() >= progress, 20, f"{progress} done before a kill")
    await wait_until(lambda: _in_flight(sink), 10, "a callback in flight")
    await proc.kill()
    await proc.start()


async def test_serve_killed_under_load_loses_nothing(
    live: Api, sink: tuple[Sink, str], dsn: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    receiver, url = sink
    urls = [f"{url}/slow/{i}" for i in range(TASKS)]
    task_ids = await pending_tasks(live, urls)
    paths = {t: f"/slow/{i}" for i, t in enumerate(task_ids)}
    serve = make_role("serve", dsn, tmp_path, TASKHOOK_LEASE_SECONDS=LEASE)
    await serve.start()
    try:
        load = EventLoad(serve.url, task_ids, RATE)
        sending = asyncio.create_task(load.run(deadline_s=60))
        try:
            for k in range(1, KILLS + 1):
                await _kill_and_restart(
                    serve, receiver, k * TASKS // (KILLS + 1), load.acked.__len__
                )
            await asyncio.wait_for(asyncio.shield(sending), 60)
        finally:
            sending.cancel()
        assert load.done(), f"acknowledged {len(load.acked)} of {TASKS}"
        assert not load.unexpected, load.unexpected[:5]
        assert load.status_counts()[None] > 0  # some requests met a dead process...
        counts = await check_callbacks(pool, receiver, paths, task_ids)
        assert counts["repeats"] >= 1  # ...and some callbacks were cut off and re-sent
    finally:
        code = await serve.stop()
    assert code == 0, serve.log_tail()
    assert len(set(serve.pids)) == KILLS + 1


async def test_lone_dispatcher_killed_under_load_loses_nothing(
    live: Api,
    base_url: str,
    sink: tuple[Sink, str],
    dsn: str,
    pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    """The receiver (in this process) keeps taking events while the dispatcher process is
    killed and restarted."""
    receiver, url = sink
    urls = [f"{url}/slow/{i}" for i in range(TASKS)]
    task_ids = await pending_tasks(live, urls)
    paths = {t: f"/slow/{i}" for i, t in enumerate(task_ids)}
    dispatcher = make_role("dispatcher", dsn, tmp_path, TASKHOOK_LEASE_SECONDS=LEASE)
    await dispatcher.start()
    try:
        load = EventLoad(base_url, task_ids, RATE)
        sending = asyncio.create_task(load.run(deadline_s=30))
        try:
            for k in range(1, KILLS + 1):
                progress = k * TASKS // (KILLS + 1)
                await _kill_and_restart(dispatcher, receiver, progress, receiver.received.__len__)
            await asyncio.wait_for(asyncio.shield(sending), 30)
        finally:
            sending.cancel()
        assert load.done(), f"acknowledged {len(load.acked)} of {TASKS}"
        assert not load.unexpected, load.unexpected[:5]
        assert set(load.acked.values()) == {"applied"}  # the receiver never went away
        counts = await check_callbacks(pool, receiver, paths, task_ids)
        assert counts["repeats"] >= 1
    finally:
        code = await dispatcher.stop()
    assert code == 0, dispatcher.log_tail()
    assert len(set(dispatcher.pids)) == KILLS + 1
