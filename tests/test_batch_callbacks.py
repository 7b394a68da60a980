"""A batch's `callback` is called once, when the batch completes: the batch as
GET /v1/batches/{name} returns it, signed and retried as task callbacks are, listed at
GET /v1/batches/{name}/callbacks and in each of its tasks' timeline on the Tasks tab."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
from standardwebhooks.webhooks import Webhook

from taskhook.core.accounts import NewAccount
from tests.conftest import Api
from tests.sink import Sink
from tests.test_ingest import Ingest, ev
from tests.waits import wait_until

Start = Callable[..., Awaitable[Any]]


async def complete(ingest: Ingest, task_id: str) -> None:
    [result] = await ingest.ok(ev("completed", task_id))
    assert result["status"] == "applied", result


async def succeeded(live: Api, batch: str) -> dict[str, Any]:
    """The batch's one callback delivery, once it has succeeded."""
    found: list[dict[str, Any]] = []

    async def done() -> bool:
        status, listed = await live.call("GET", f"/v1/batches/{batch}/callbacks")
        assert status == 200, listed
        found[:] = listed["deliveries"]
        [delivery] = found
        return bool(delivery["state"] == "succeeded")

    await wait_until(done, what=f"batch {batch}'s callback to succeed")
    return dict(found[0])


async def make_batch(live: Api, url: str, name: str = "b1", n: int = 2) -> list[str]:
    """A batch with a callback to the sink's /ok/batch/<name> and n pending tasks, which
    call back to /ok/task."""
    status, body = await live.call(
        "POST",
        "/v1/batches",
        json={"project": "proj", "name": name, "callback": f"{url}/ok/batch/{name}"},
    )
    assert status == 200, body
    return [
        (await live.task(batch=name, callback_url=f"{url}/ok/task"))["task_id"] for _ in range(n)
    ]


async def test_sent_once_when_the_batch_completes(
    live: Api,
    account: NewAccount,
    sink: tuple[Sink, str],
    run_dispatcher: Start,
    http: aiohttp.ClientSession,
    base_url: str,
    pool: asyncpg.Pool,
) -> None:
    receiver, url = sink
    ingest = Ingest(http, base_url)
    await live.project()
    first, second = await make_batch(live, url)
    await run_dispatcher()
    await run_dispatcher()  # two dispatchers side by side still send it once
    await complete(ingest, first)
    await receiver.wait_for(lambda: len(receiver.to("/ok/task")) >= 1)  # the dispatchers ran
    await asyncio.sleep(0.3)  # fixed: poll rounds that must not send it, one task is pending
    assert receiver.to("/ok/batch/b1") == []
    await complete(ingest, second)
    await receiver.wait_for(lambda: len(receiver.to("/ok/batch/b1")) >= 1)
    delivery = await succeeded(live, "b1")
    await asyncio.sleep(0.3)  # fixed: poll rounds of both dispatchers that must not resend it
    [got] = receiver.to("/ok/batch/b1")
    status, batch = await live.call("GET", "/v1/batches/b1")
    assert status == 200 and batch["status"] == "completed"
    assert got.json == batch
    Webhook(account.signing_secret).verify(got.body, got.headers)  # raises if not signed
    assert got.headers["scale-callback-auth"] == account.callback_auth_key
    assert delivery["trigger"] == "batch_completed"
    assert [a["status_code"] for a in delivery["attempts"]] == [200]
    # The tasks' own callbacks are untouched by it: each still says succeeded.
    for task_id in (first, second):
        status, task = await live.call("GET", f"/v1/task/{task_id}")
        assert task["callback_succeeded"] is True, task
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE batch_id IS NOT NULL") == 1


async def test_a_failing_batch_callback_is_retried(
    live: Api,
    sink: tuple[Sink, str],
    run_dispatcher: Start,
    http: aiohttp.ClientSession,
    base_url: str,
) -> None:
    """The same retry schedule as a task callback: two 500s, then the third attempt lands."""
    receiver, url = sink
    ingest = Ingest(http, base_url)
    await live.project()
    status, _ = await live.call(
        "POST",
        "/v1/batches",
        json={"project": "proj", "name": "b2", "callback": f"{url}/flaky/2/b2"},
    )
    assert status == 200
    task = await live.task(batch="b2")
    await run_dispatcher()
    await complete(ingest, task["task_id"])
    await receiver.wait_for(lambda: len(receiver.to("/flaky/2/b2")) >= 3)
    delivery = await succeeded(live, "b2")
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]


async def test_a_batch_without_callback_sends_nothing(
    live: Api,
    sink: tuple[Sink, str],
    run_dispatcher: Start,
    http: aiohttp.ClientSession,
    base_url: str,
    pool: asyncpg.Pool,
) -> None:
    receiver, url = sink
    ingest = Ingest(http, base_url)
    await live.project()
    status, _ = await live.call("POST", "/v1/batches", json={"project": "proj", "name": "quiet"})
    assert status == 200
    quiet = await live.task(batch="quiet")
    [loud] = await make_batch(live, url, "loud", n=1)
    await run_dispatcher()
    await complete(ingest, quiet["task_id"])
    await complete(ingest, loud)
    await receiver.wait_for(lambda: len(receiver.to("/ok/batch/loud")) >= 1)
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE batch_id IS NOT NULL") == 1
