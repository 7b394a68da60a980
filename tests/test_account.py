"""The account's default callback URL, through the API and the CLI."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from taskhook.core.accounts import NewAccount
from tests.conftest import Api
from tests.sink import Sink
from tests.test_dispatcher import Start, task_field
from tests.waits import equals, wait_until

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast


async def test_get_account(live: Api, account: NewAccount) -> None:
    """GET /v1/account shows the caller's account, no secrets."""
    status, body = await live.call("GET", "/v1/account")
    assert status == 200
    assert body == {
        "account_id": account.account_id,
        "name": account.name,
        "default_callback_url": None,
    }


async def test_default_callback_url_is_used_for_tasks_without_one(
    live: Api, test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """A task created without callback_url calls back to the account's default."""
    receiver, url = sink
    status, body = await live.call(
        "POST", "/v1/account/settings", json={"default_callback_url": url + "/default"}
    )
    assert status == 200 and body["default_callback_url"] == url + "/default"
    await test_api.project()
    task = await test_api.task()
    assert task["callback_url"] == url + "/default"
    explicit = await test_api.task(callback_url=url + "/own")
    await run_dispatcher()
    await wait_until(
        lambda: equals(task_field(test_api, task["task_id"], "callback_succeeded"), True)
    )
    await receiver.wait_for(lambda: bool(receiver.to("/own")))
    assert receiver.to("/default")[0].json["task_id"] == task["task_id"]
    assert receiver.to("/own")[0].json["task_id"] == explicit["task_id"]


async def test_default_callback_url_can_be_cleared_and_is_validated(live: Api) -> None:
    """null clears the default; a bad URL or an e-mail without SMTP is a 400."""
    await live.call(
        "POST", "/v1/account/settings", json={"default_callback_url": "https://example.com/cb"}
    )
    status, body = await live.call(
        "POST", "/v1/account/settings", json={"default_callback_url": None}
    )
    assert status == 200 and body["default_callback_url"] is None
    for bad in ("ftp://example.com", "ops@example.com", 42):
        status, body = await live.call(
            "POST", "/v1/account/settings", json={"default_callback_url": bad}
        )
        assert status == 400 and "default_callback_url" in body["error"]
    status, _ = await live.call("POST", "/v1/account/settings", json={"other": 1})
    assert status == 400


@pytest.mark.subprocess
async def test_cli_sets_and_clears_the_default(
    dsn: str, account: NewAccount, pool: asyncpg.Pool
) -> None:
    """`taskhook accounts set-callback ID URL` and `--clear` change the default."""
    taskhook = str(Path(sys.executable).parent / "taskhook")
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith("TASKHOOK_") or k == "TASKHOOK_SECRET_KEY"
        },
        "TASKHOOK_DATABASE_URL": dsn,
    }

    async def run(*args: str) -> tuple[int, Any]:
        proc = await asyncio.create_subprocess_exec(
            taskhook,
            "accounts",
            "set-callback",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        await asyncio.wait_for(proc.communicate(), 60)
        value = await pool.fetchval(
            "SELECT default_callback_url FROM accounts WHERE id=$1", account.account_id
        )
        return proc.returncode or 0, value

    assert await run(account.account_id, "https://example.com/cb") == (0, "https://example.com/cb")
    assert await run(account.account_id, "--clear") == (0, None)
    assert (await run(account.account_id, "ftp://nope"))[0] == 2
    assert (await run("acct_missing", "https://example.com/cb"))[0] == 1


async def test_only_a_live_key_changes_the_account(
    test_api: Api, live: Api, pool: asyncpg.Pool
) -> None:
    """The default callback URL and the signing secret serve live callbacks too: a test
    key (often shared more widely) gets 403 and changes nothing."""
    before = await pool.fetch("SELECT * FROM accounts")
    for path, body in (
        ("/v1/account/settings", {"default_callback_url": "https://example.com/cb"}),
        ("/v1/account/signing_secret/rotate", {"grace_seconds": 0}),
    ):
        status, reply = await test_api.call("POST", path, json=body)
        assert status == 403 and "live API key" in reply["error"], reply
        assert set(reply) == {"status_code", "error"}
    assert await pool.fetch("SELECT * FROM accounts") == before
    status, _ = await test_api.call("GET", "/v1/account")
    assert status == 200  # reading is fine
    status, _ = await live.call("POST", "/v1/account/signing_secret/rotate", json={})
    assert status == 200
