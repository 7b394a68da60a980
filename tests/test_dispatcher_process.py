"""The dispatcher as a real process: killed mid-delivery, stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import Api
from tests.sink import Sink
from tests.test_dispatcher import Start, completed_task
from tests.waits import wait_until

pytestmark = pytest.mark.subprocess  # the dispatcher as a real process

TASKHOOK = str(Path(sys.executable).parent / "taskhook")


async def _spawn_dispatcher(dsn: str, **env: str) -> asyncio.subprocess.Process:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TASKHOOK_") or k == "TASKHOOK_SECRET_KEY"
    }
    settings = {
        "TASKHOOK_DATABASE_URL": dsn,
        "TASKHOOK_ALLOW_PRIVATE_TARGETS": "1",
        "TASKHOOK_POLL_INTERVAL": "0.1",
        "TASKHOOK_LOG_FORMAT": "json",
        "TASKHOOK_DISPATCHER_PORT": "0",  # no ops port: parallel runs cannot collide on it
        **env,
    }
    return await asyncio.create_subprocess_exec(
        TASKHOOK,
        "dispatcher",
        env={**base, **settings},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_killed_dispatcher_loses_nothing(
    test_api: Api, sink: tuple[Sink, str], dsn: str, pool: asyncpg.Pool, run_dispatcher: Start
) -> None:
    """SIGKILL mid-delivery: after the lease ends another dispatcher sends it again (same
    webhook-id) and the task ends with callback_succeeded true."""
    receiver, url = sink
    task_id = await completed_task(test_api, url + "/hangonce/a")
    proc = await _spawn_dispatcher(dsn, TASKHOOK_LEASE_SECONDS="2")
    try:
        await receiver.wait_for(lambda: bool(receiver.to("/hangonce/a")), timeout=20)
    finally:
        proc.kill()  # by PID, mid-delivery: the sink is still holding the request
        await proc.wait()
    assert (
        await pool.fetchval("SELECT state FROM deliveries WHERE task_id=$1", task_id) == "sending"
    )
    await run_dispatcher(lease_seconds=2)
    await receiver.wait_for(lambda: len(receiver.to("/hangonce/a")) == 2, timeout=10)
    first, second = receiver.to("/hangonce/a")
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert second.at - first.at >= 1.5  # not before the lease ran out
    await wait_until(lambda: _succeeded(test_api, task_id))


async def _succeeded(api: Api, task_id: str) -> bool:
    _, task = await api.call("GET", f"/v1/task/{task_id}")
    return task.get("callback_succeeded") is True


async def test_sigterm_drains_in_flight_callbacks(
    test_api: Api, sink: tuple[Sink, str], dsn: str, pool: asyncpg.Pool
) -> None:
    """SIGTERM stops claiming, lets in-flight callbacks finish and exits 0; nothing is left
    claimed."""
    receiver, url = sink
    for i in range(5):
        await completed_task(test_api, url + f"/slow/{i}")
    proc = await _spawn_dispatcher(dsn)
    await receiver.wait_for(lambda: len(receiver.received) >= 1, timeout=20)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"dispatcher.stopped" in err
    states = await pool.fetch("SELECT state, count(*) FROM deliveries GROUP BY state")
    assert "sending" not in {r["state"] for r in states}
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE state = 'succeeded'") == len(
        receiver.received
    )
