"""Idempotency-Key on creates: replay, 409 on another body, 429 while in flight, 24 hours."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from taskhook.core.accounts import NewAccount
from tests.conftest import Api
from tests.waits import wait_until

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

BODY = {"project": "proj", "attachment": "a", "categories": ["x", "y"]}


async def _count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM tasks"))


async def _create(api: Api, key: str, body: dict[str, object] = BODY) -> tuple[int, object]:
    return await api.call(
        "POST", "/v1/task/categorization", json=body, headers={"Idempotency-Key": key}
    )


async def test_replay_returns_saved_response_and_creates_nothing(
    live: Api, pool: asyncpg.Pool
) -> None:
    """A repeat with the same key and body gets the first reply; one task exists."""
    await live.project()
    first = await _create(live, "k1")
    second = await _create(live, "k1")
    assert first[0] == 200 and second == first
    assert await _count(pool) == 1


async def test_different_body_same_key_is_409(live: Api, pool: asyncpg.Pool) -> None:
    """The same key with a different body is refused with 409 and creates nothing."""
    await live.project()
    assert (await _create(live, "k1"))[0] == 200
    status, body = await _create(live, "k1", {**BODY, "categories": ["z"]})
    assert status == 409 and body["status_code"] == 409
    assert "Idempotency-Key" in body["error"]
    assert await _count(pool) == 1


async def test_error_responses_are_replayed(live: Api, pool: asyncpg.Pool) -> None:
    """A refused first request is answered the same way on a repeat (errors are saved)."""
    first = await _create(live, "k-err")  # no project exists yet: 400
    assert first[0] == 400
    await live.project()
    assert await _create(live, "k-err") == first
    assert await _count(pool) == 0


async def test_in_flight_repeat_gets_429(live: Api, pool: asyncpg.Pool) -> None:
    """While the first request is still running, a repeat gets 429 with Retry-After."""
    await live.project()
    blocker = await pool.acquire()
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")  # stalls the insert
    first = asyncio.create_task(_create(live, "k-slow"))
    try:
        await wait_until(lambda: pool.fetchval("SELECT count(*) FROM idempotency_keys"))
        async with live.session.post(
            live.base + "/v1/task/categorization",
            json=BODY,
            headers={"Authorization": f"Bearer {live.key}", "Idempotency-Key": "k-slow"},
        ) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "1"
            assert (await resp.json())["status_code"] == 429
    finally:
        await tx.rollback()
        await pool.release(blocker)
    status, created = await first
    assert status == 200
    assert await _create(live, "k-slow") == (200, created)
    assert await _count(pool) == 1


async def test_keys_expire_after_24_hours(live: Api, pool: asyncpg.Pool) -> None:
    """After 24 hours a key is free again: the same key makes a new task."""
    await live.project()
    _, first = await _create(live, "k-old")
    await pool.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    status, second = await _create(live, "k-old", {**BODY, "categories": ["z"]})
    assert status == 200 and second["task_id"] != first["task_id"]
    assert await _count(pool) == 2


async def test_abandoned_claim_is_taken_over(live: Api, pool: asyncpg.Pool) -> None:
    """An in-flight claim whose holder died (lock expired) does not block the key forever."""
    await live.project()
    assert (await _create(live, "k-dead"))[0] == 200
    await pool.execute(
        "UPDATE idempotency_keys SET state = 'in_flight', "
        "locked_until = now() - interval '1 second'"
    )
    status, _ = await _create(live, "k-dead")
    assert status == 200


async def test_keys_are_per_account_and_world(
    live: Api, test_api: Api, make_account, http, base_url: str, pool: asyncpg.Pool
) -> None:
    """One key used by two accounts, or by the test and live world, is two keys."""
    other: NewAccount = await make_account("other")
    other_api = Api(http, base_url, other.live_key)
    for api in (live, test_api, other_api):
        await api.project()
        status, body = await _create(api, "shared-key")
        assert status == 200, body
    assert await _count(pool) == 3


async def test_no_key_means_no_record(live: Api, pool: asyncpg.Pool) -> None:
    """Without the header two identical creates make two tasks (as the SDK expects)."""
    await live.project()
    for _ in range(2):
        status, _ = await live.call("POST", "/v1/task/categorization", data=json.dumps(BODY))
        assert status == 200
    assert await _count(pool) == 2
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys") == 0
