"""Overload: past its capacity the receiver sheds requests with 503 and
Retry-After at once, instead of letting memory and latency run away; health endpoints are
never shed; service is normal again as soon as the flood stops."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client import REGISTRY

from taskhook.core import events
from taskhook.core.models import Event
from taskhook.receiver import shedding
from taskhook.receiver.group_commit import GroupCommitter
from taskhook.receiver.keys import GROUP_COMMIT
from taskhook.receiver.shedding import Overloaded
from tests.conftest import Api
from tests.procs import pending_tasks, signed
from tests.waits import equals, lock_waiters, wait_until

FLOOD = 300
LIMIT = 8


def _shed_total(reason: str) -> float:
    return REGISTRY.get_sample_value("taskhook_requests_shed_total", {"reason": reason}) or 0.0


async def _timed(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, str | None, Any, float]:
    began = time.monotonic()
    async with http.request(method, url, **kwargs) as resp:
        text = await resp.text()
        body = json.loads(text) if "json" in resp.content_type else text
        return resp.status, resp.headers.get("Retry-After"), body, time.monotonic() - began


def _event(event_id: str, task_id: str) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "type": "task.completed",
            "task_id": task_id,
            "response": {"category": "x"},
        }
    )


def _shed_ok(status: int, retry_after: str | None, body: Any) -> bool:
    return (
        status == 503
        and retry_after == str(shedding.RETRY_AFTER_SECONDS)
        and body == {"status_code": 503, "error": body["error"]}
        and "capacity" in body["error"]
    )


@pytest.mark.settings(max_in_flight=LIMIT)
async def test_flood_is_shed_and_service_recovers(live: Api, base_url: str) -> None:
    """A few hundred concurrent ingests and API calls against a limit of 8 in flight: some
    are shed (503 + Retry-After, at once), none fails otherwise, the accepted ones answer in
    bounded time, health endpoints all answer 200, and afterwards all is normal."""
    task_id = (await pending_tasks(live, ["http://127.0.0.1:9/cb"]))[0]
    shed_before = _shed_total("in_flight")
    auth = {"Authorization": f"Bearer {live.key}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        flood = []
        for i in range(FLOOD):
            if i % 3 == 2:
                flood.append(_timed(http, "GET", f"{base_url}/v1/task/{task_id}", headers=auth))
            else:  # an event about an unknown task: a full ingest, answered "rejected"
                body = _event(f"flood-{i}", f"no-such-task-{i}")
                flood.append(
                    _timed(http, "POST", f"{base_url}/v1/events", data=body, headers=signed(body))
                )
        health = [
            _timed(http, "GET", f"{base_url}{path}")
            for path in ("/healthz", "/readyz", "/metrics")
            for _ in range(10)
        ]
        replies = await asyncio.wait_for(asyncio.gather(*flood, *health), 30)
        flood_replies, health_replies = replies[:FLOOD], replies[FLOOD:]

        statuses = {status for status, *_ in flood_replies}
        assert statuses == {200, 503}, statuses
        shed = [r for r in flood_replies if r[0] == 503]
        accepted = [r for r in flood_replies if r[0] == 200]
        assert all(_shed_ok(*r[:3]) for r in shed), shed[:3]
        assert len(accepted) >= LIMIT
        # Client-side times include connecting (a few hundred SYNs at once overflow the
        # listen backlog: a retry after 1 s), so the bound is loose; unbounded queueing
        # would show as tens of seconds.
        assert max(r[3] for r in accepted) < 5.0, "an accepted request waited too long"
        assert {r[0] for r in health_replies} == {200}
        assert _shed_total("in_flight") - shed_before == len(shed)

        # The flood is over: normal service.
        body = _event("after-flood", task_id)
        status, _, reply, _ = await _timed(
            http, "POST", f"{base_url}/v1/events", data=body, headers=signed(body)
        )
        assert status == 200 and reply["results"][0]["status"] == "applied", reply
        status, _, task, _ = await _timed(
            http, "GET", f"{base_url}/v1/task/{task_id}", headers=auth
        )
        assert status == 200 and task["status"] == "completed"
        status, _, text, _ = await _timed(http, "GET", f"{base_url}/metrics")
        assert 'taskhook_requests_shed_total{reason="in_flight"}' in text


@pytest.mark.settings(ingest_queue_events=1)
async def test_full_ingest_queue_is_shed_over_http(
    live: Api, base_url: str, receiver_server: Any, pool: asyncpg.Pool
) -> None:
    """With both group-commit writers held up (their tasks locked) and the queue at its
    bound, the next ingest is a 503 with Retry-After at once; queued ones complete."""
    a, b, c, d = await pending_tasks(live, ["http://127.0.0.1:9/cb"] * 4)
    shed_before = _shed_total("ingest_queue")
    blocker = await pool.acquire()
    tx = blocker.transaction()
    await tx.start()
    try:
        await blocker.execute("SELECT 1 FROM tasks WHERE id = ANY($1) FOR UPDATE", [a, b])
        async with aiohttp.ClientSession() as http:

            def post(task_id: str) -> Any:
                body = _event(f"q-{task_id}", task_id)
                return _timed(
                    http, "POST", f"{base_url}/v1/events", data=body, headers=signed(body)
                )

            committer = receiver_server.app[GROUP_COMMIT]
            held = []
            for n, task_id in enumerate((a, b), 1):  # one at a time: each writer takes one
                held.append(asyncio.create_task(post(task_id)))
                await wait_until(
                    lambda n=n: equals(lock_waiters(pool), n), what=f"{n} writers held"
                )
            queued = asyncio.create_task(post(c))
            await wait_until(lambda: committer.queued_events == 1, what="c queued")
            status, retry_after, body, seconds = await post(d)
            assert _shed_ok(status, retry_after, body), (status, body)
            assert seconds < 1.0
            await tx.rollback()
            await pool.release(blocker)
            blocker = None
            for reply in await asyncio.wait_for(asyncio.gather(*held, queued), 10):
                assert reply[0] == 200 and reply[2]["results"][0]["status"] == "applied"
            status, _, body, _ = await post(d)  # the resend goes through
            assert status == 200 and body["results"][0]["status"] == "applied"
    finally:
        if blocker is not None:
            await tx.rollback()
            await pool.release(blocker)
    assert _shed_total("ingest_queue") - shed_before == 1


async def test_group_committer_queue_is_bounded_in_events(live: Api, pool: asyncpg.Pool) -> None:
    """A request that would take the queue past its bound is refused at once; one request
    is always let in when nothing is queued, however large."""
    ids = await pending_tasks(live, ["http://127.0.0.1:9/cb"] * 4)
    committer = GroupCommitter(pool, writers=1, max_queued=2)

    def batch(*task_ids: str) -> list[Event]:
        return events.parse_events(
            [json.loads(_event(f"b-{t}", t)) for t in task_ids]  # one event per task
        )

    blocker = await pool.acquire()
    tx = blocker.transaction()
    await tx.start()
    try:
        await blocker.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", ids[0])
        head = asyncio.create_task(committer.submit(batch(ids[0])))
        await wait_until(lambda: equals(lock_waiters(pool), 1), what="the writer on the lock")
        assert committer.queued_events == 0  # the writer holds the head
        big = asyncio.create_task(committer.submit(batch(ids[1], ids[2], ids[3])))
        await wait_until(lambda: committer.queued_events == 3)  # over the bound: queue was empty
        with pytest.raises(Overloaded):
            await committer.submit(batch("no-such-task"))
        await tx.rollback()
        await pool.release(blocker)
        blocker = None
        results = await asyncio.wait_for(asyncio.gather(head, big), 10)
        assert [r["status"] for rs in results for r in rs] == ["applied"] * 4
        assert committer.queued_events == 0
    finally:
        if blocker is not None:
            await tx.rollback()
            await pool.release(blocker)
        await committer.close()
