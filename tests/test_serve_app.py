"""`taskhook serve`'s app: the receiver with its dispatcher in one process."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
from standardwebhooks.webhooks import Webhook

from taskhook.core.accounts import NewAccount
from taskhook.core.appkeys import DISPATCHER
from taskhook.serve import create_serve_app
from tests.conftest import INGEST_SECRET, Api, dispatcher_settings
from tests.sink import Sink
from tests.waits import wait_until


async def _serve(aiohttp_server: Any, pool: asyncpg.Pool, dsn: str) -> Any:
    app = create_serve_app(dispatcher_settings(), dsn, pool, ingest_secret=INGEST_SECRET)
    return await aiohttp_server(app, host="127.0.0.1")


async def test_event_in_callback_out(
    aiohttp_server: Any,
    pool: asyncpg.Pool,
    dsn: str,
    account: NewAccount,
    sink: tuple[Sink, str],
    http: aiohttp.ClientSession,
) -> None:
    """A signed completion event for a live task reaches the customer's callback URL."""
    receiver, url = sink
    server = await _serve(aiohttp_server, pool, dsn)
    api = Api(http, f"http://127.0.0.1:{server.port}", account.live_key)
    await api.project()
    task = await api.task(callback_url=url + "/ok")
    body = json.dumps(
        {
            "event_id": "e1",
            "type": "task.completed",
            "task_id": task["task_id"],
            "response": {"category": "x"},
        }
    )
    headers = {
        "webhook-id": "m1",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": Webhook(INGEST_SECRET).sign("m1", datetime.now(UTC), body),
        "Content-Type": "application/json",
    }
    async with http.post(api.base + "/v1/events", data=body, headers=headers) as resp:
        assert resp.status == 200
        assert (await resp.json())["results"] == [{"event_id": "e1", "status": "applied"}]
    await receiver.wait_for(lambda: bool(receiver.to("/ok")))
    assert receiver.to("/ok")[0].json["response"] == {"category": "x"}


async def test_readyz_fails_when_the_dispatcher_loop_is_stuck(
    aiohttp_server: Any, pool: asyncpg.Pool, dsn: str, http: aiohttp.ClientSession
) -> None:
    """/readyz answers 503 when the in-process dispatcher has not turned for too long."""
    server = await _serve(aiohttp_server, pool, dsn)
    base = f"http://127.0.0.1:{server.port}"
    async with http.get(base + "/readyz") as resp:
        assert resp.status == 200
    dispatcher = server.app[DISPATCHER]
    never, entered = asyncio.Event(), asyncio.Event()

    async def hang(_free: int) -> list[Any]:
        entered.set()
        await never.wait()  # a claim that never returns: the loop is stuck
        return []

    dispatcher._claim = hang  # type: ignore[method-assign]
    await wait_until(entered.is_set, what="the loop's next turn in the hanging claim")
    dispatcher.heartbeat = time.monotonic() - 3600
    async with http.get(base + "/readyz") as resp:
        assert resp.status == 503
        assert "dispatcher" in (await resp.json())["error"]
    never.set()
