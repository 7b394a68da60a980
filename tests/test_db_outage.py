"""Database outage under load: PostgreSQL stops and starts again while `taskhook
serve` takes events and API calls.

The test runs a PostgreSQL of its own (never the session's server, which other tests use)
and `taskhook serve` on it as a process. While the database is down every API call and
every ingest is answered `503 {"status_code": 503, "error": ...}` with `Retry-After`,
never a 500, /healthz stays 200 and /readyz turns 503. When the database is back the same
process (no restart) serves again, and nothing acknowledged before, during or after is
lost: events that got a 503 are sent again (same event_id), and every task ends with one
delivery, its callback at the sink and callback_succeeded true.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from taskhook.core import db
from tests.conftest import Api
from tests.procs import (
    EventLoad,
    OwnPostgres,
    Reply,
    check_callbacks,
    create_account,
    make_role,
    pending_tasks,
)
from tests.sink import Sink
from tests.waits import wait_until

pytestmark = pytest.mark.subprocess  # taskhook roles and a PostgreSQL as real processes

TASKS = 200
RATE = 50.0
OUTAGE = 1.5  # seconds the database stays down, at least


@pytest.fixture
async def own_pg() -> AsyncIterator[OwnPostgres]:
    pg = await asyncio.to_thread(OwnPostgres)
    try:
        yield pg
    finally:
        await asyncio.to_thread(pg.close)


class Prober:
    """GETs one path every `every` seconds and keeps each reply (bounded by the caller)."""

    def __init__(self, http: aiohttp.ClientSession, url: str, key: str | None = None) -> None:
        self.http, self.url = http, url
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.replies: list[Reply] = []

    async def run(self, stop: asyncio.Event, every: float = 0.05) -> None:
        while not stop.is_set():
            began = time.monotonic()
            try:
                async with self.http.get(self.url, headers=self.headers) as resp:
                    text = await resp.text()
                    body = json.loads(text) if "json" in resp.content_type else text
                    self.replies.append(
                        Reply(
                            time.monotonic(),
                            resp.status,
                            resp.headers.get("Retry-After"),
                            body,
                            time.monotonic() - began,
                        )
                    )
            except (aiohttp.ClientError, OSError) as exc:
                self.replies.append(Reply(time.monotonic(), None, None, repr(exc), 0.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)

    def statuses(self, since: float = 0.0, until_: float = float("inf")) -> set[int | None]:
        return {r.status for r in self.replies if since <= r.at <= until_}


def _unavailable_reply_ok(reply: Reply) -> bool:
    body = reply.body
    return (
        reply.retry_after is not None
        and int(reply.retry_after) >= 1
        and isinstance(body, dict)
        and set(body) == {"status_code", "error"}
        and body["status_code"] == 503
        and isinstance(body["error"], str)
    )


async def test_database_outage_is_503_and_recovers(
    own_pg: OwnPostgres, sink: tuple[Sink, str], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    receiver, url = sink
    serve = make_role("serve", own_pg.dsn, tmp_path, TASKHOOK_LEASE_SECONDS="3")
    await serve.start()  # applies the schema
    stop_probes = asyncio.Event()
    probes: list[asyncio.Task[None]] = []
    try:
        account = await create_account(serve.env)
        api = Api(http, serve.url, account["live_key"])
        urls = [f"{url}/slow/{i}" for i in range(TASKS)]
        task_ids = await pending_tasks(api, urls)
        paths = {t: f"/slow/{i}" for i, t in enumerate(task_ids)}

        api_probe = Prober(http, f"{serve.url}/v1/task/{task_ids[0]}", account["live_key"])
        health = Prober(http, f"{serve.url}/healthz")
        ready = Prober(http, f"{serve.url}/readyz")
        probes = [asyncio.create_task(p.run(stop_probes)) for p in (api_probe, health, ready)]
        load = EventLoad(serve.url, task_ids, RATE)
        sending = asyncio.create_task(load.run(deadline_s=45))
        try:
            await wait_until(lambda: len(load.acked) >= TASKS // 4, 20, "load before the outage")
            await wait_until(
                lambda: any(r.at > time.monotonic() - 0.25 for r in receiver.received),
                10,
                "a callback in flight",
            )
            down = time.monotonic()
            await asyncio.to_thread(own_pg.stop)

            def seen_503(replies: list[Reply]) -> bool:
                return any(r.status == 503 and r.at > down for r in replies)

            await wait_until(
                lambda: (
                    seen_503(load.replies)
                    and seen_503(api_probe.replies)
                    and seen_503(ready.replies)
                    and time.monotonic() - down >= OUTAGE
                ),
                15,
                "503 from ingest, the API and /readyz while the database is down",
            )
            up = time.monotonic()
            await asyncio.to_thread(own_pg.start)
            await asyncio.wait_for(asyncio.shield(sending), 45)
            back = time.monotonic()
            await wait_until(lambda: 200 in api_probe.statuses(since=back), 15, "the API back")
            await wait_until(lambda: 200 in ready.statuses(since=back), 15, "/readyz back")
        finally:
            sending.cancel()
            stop_probes.set()
            await asyncio.wait(probes, timeout=5)

        assert serve.alive() and len(serve.pids) == 1, "the receiver restarted"
        assert load.done(), f"acknowledged {len(load.acked)} of {TASKS}"
        assert not load.unexpected, load.unexpected[:5]
        replies = load.replies + api_probe.replies + ready.replies
        assert {r.status for r in replies} <= {200, 503}, load.status_counts()
        assert health.statuses() == {200}
        unavailable = [r for r in replies if r.status == 503]
        assert all(_unavailable_reply_ok(r) for r in unavailable), unavailable[:3]
        assert 503 in api_probe.statuses(down, up) and 503 in ready.statuses(down, up)
        assert load.status_counts()[503] >= 1

        pool = await db.create_pool(own_pg.dsn, min_size=1, max_size=2)
        try:
            await check_callbacks(pool, receiver, paths, task_ids)
        finally:
            await pool.close()
    finally:
        code = await serve.stop()
    assert code == 0, serve.log_tail()
    assert b'"http.unhandled_error"' not in serve.log_path.read_bytes()
