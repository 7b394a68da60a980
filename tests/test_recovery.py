"""What a database outage throws at the code, one failure at a time: errors of a
server that stops or restarts are answered 503 with Retry-After, never 500; the dispatcher's
loop and outcome writers survive an unexpected error instead of dying quietly.

The whole outage, with a real PostgreSQL stopped and started, is tests/test_db_outage.py.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest

from taskhook.core import events, store
from taskhook.dispatcher import outcomes
from taskhook.dispatcher.outcomes import OutcomeWriter
from taskhook.receiver import middleware
from tests.conftest import Api
from tests.procs import signed
from tests.sink import Sink
from tests.test_dispatcher import Start, completed_task
from tests.waits import wait_until

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

# What live connections get when PostgreSQL stops, restarts or fails over.
SERVER_GONE = [
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CrashShutdownError("terminating connection because of crash of another process"),
    asyncpg.CannotConnectNowError("the database system is shutting down"),
    asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    ConnectionResetError("Connection reset by peer"),
]


def _raiser(exc: BaseException) -> Any:
    async def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise exc

    return fail


@pytest.mark.parametrize("exc", SERVER_GONE, ids=lambda e: type(e).__name__)
async def test_server_gone_is_503_for_ingest_and_api(
    live: Api, base_url: str, monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    monkeypatch.setattr(events, "apply_groups", _raiser(exc))
    body = '{"event_id": "e1", "type": "task.started", "task_id": "t1"}'
    async with live.session.post(f"{base_url}/v1/events", data=body, headers=signed(body)) as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "2"
        assert await resp.json() == {
            "status_code": 503,
            "error": "The database is unavailable; retry shortly.",
        }
    monkeypatch.setattr(middleware, "authenticate", _raiser(exc))
    status, reply = await live.call("GET", "/v1/tasks")
    assert status == 503, reply
    assert reply["status_code"] == 503


async def test_outcome_writer_survives_an_unexpected_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write that fails in a way nobody foresaw counts as unwritten (the lease expires and
    the callback is sent again); the writer goes on with the next batch."""
    calls: list[int] = []

    async def record_attempts(_pool: Any, records: list[Any]) -> set[int]:
        calls.append(len(records))
        if len(calls) == 1:
            raise RuntimeError("a bug, or a failure no one foresaw")
        return {r.delivery.id for r in records}

    monkeypatch.setattr(store, "record_attempts", record_attempts)
    monkeypatch.setattr(outcomes, "WRITERS", 1)
    writer = OutcomeWriter(pool=None)  # type: ignore[arg-type]
    try:
        first = SimpleNamespace(delivery=SimpleNamespace(id=1))
        second = SimpleNamespace(delivery=SimpleNamespace(id=2))
        assert await asyncio.wait_for(writer.record(first), 5) is False  # type: ignore[arg-type]
        assert await asyncio.wait_for(writer.record(second), 5) is True  # type: ignore[arg-type]
        assert not any(t.done() for t in writer.tasks)
    finally:
        await writer.close()


async def test_outcome_writer_retries_while_the_server_is_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    async def record_attempts(_pool: Any, records: list[Any]) -> set[int]:
        calls.append(len(records))
        if len(calls) <= 2:
            raise asyncpg.AdminShutdownError("terminating connection due to administrator command")
        return {r.delivery.id for r in records}

    monkeypatch.setattr(store, "record_attempts", record_attempts)
    monkeypatch.setattr(outcomes, "RETRY_DELAY", 0.01)
    writer = OutcomeWriter(pool=None)  # type: ignore[arg-type]
    try:
        record = SimpleNamespace(delivery=SimpleNamespace(id=7))
        assert await asyncio.wait_for(writer.record(record), 5) is True  # type: ignore[arg-type]
        assert len(calls) == 3
    finally:
        await writer.close()


async def test_dispatcher_loop_survives_an_unexpected_claim_error(
    test_api: Api,
    sink: tuple[Sink, str],
    run_dispatcher: Start,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A claim that fails with an error outside DATABASE_DOWN is logged and waited out; the
    loop goes on and delivers (before, it ended the loop: in `serve` nothing was delivered
    any more while the receiver stayed up)."""
    receiver, url = sink
    real = store.claim_deliveries
    failures = [RuntimeError("first claim fails"), asyncpg.DeadlockDetectedError("deadlock")]

    async def claim(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop(0)
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, "claim_deliveries", claim)
    monkeypatch.setattr("taskhook.dispatcher.loop.CLAIM_ERROR_BACKOFF", 0.05)
    task_id = await completed_task(test_api, url + "/ok/after-errors")
    await run_dispatcher()
    await receiver.wait_for(lambda: bool(receiver.to("/ok/after-errors")), timeout=10)
    assert not failures

    async def succeeded() -> bool:
        _, task = await test_api.call("GET", f"/v1/task/{task_id}")
        return task.get("callback_succeeded") is True

    await wait_until(succeeded)
