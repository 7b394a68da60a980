"""Account secrets: encrypted at rest under one server key, bound to their account, the key
checked at start, and the signing secret rotated with a grace period during which both
secrets sign every callback (Standard Webhooks' space-separated signatures)."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from taskhook.core import secretbox
from taskhook.core.accounts import NewAccount
from taskhook.core.secretbox import AUTH_KEY, SIGNING_SECRET, SecretBox, SecretKeyError
from tests.conftest import SECRET_BOX, Api
from tests.sink import Received, Sink
from tests.waits import wait_until

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

OTHER_BOX = SecretBox(b"another-taskhook-secret-key-32by")


async def every_stored_value(pool: asyncpg.Pool) -> str:
    """Every row of every table as text (bytea as hex), to search for a plaintext."""
    tables = await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    texts = []
    for t in tables:
        rows = await pool.fetch(f'SELECT to_jsonb(x)::text AS j FROM "{t["tablename"]}" x')
        texts += [r["j"] for r in rows]
    return "\n".join(texts)


async def test_secrets_and_keys_are_not_stored_in_plaintext(
    account: NewAccount, pool: asyncpg.Pool
) -> None:
    stored = await every_stored_value(pool)
    for secret in (
        account.live_key,
        account.test_key,
        account.callback_auth_key,
        account.signing_secret,
        account.signing_secret.removeprefix("whsec_"),
    ):
        assert secret not in stored
    row = await pool.fetchrow(
        "SELECT callback_auth_key_enc, signing_secret_enc FROM accounts WHERE id = $1",
        account.account_id,
    )
    assert row is not None
    box_open = SECRET_BOX.open
    assert box_open(row["callback_auth_key_enc"], account.account_id, AUTH_KEY) == (
        account.callback_auth_key
    )
    assert box_open(row["signing_secret_enc"], account.account_id, SIGNING_SECRET) == (
        account.signing_secret
    )


def test_a_ciphertext_opens_only_for_its_account_purpose_and_key() -> None:
    blob = SECRET_BOX.seal("whsec_x", "acct_a", SIGNING_SECRET)
    assert SECRET_BOX.open(blob, "acct_a", SIGNING_SECRET) == "whsec_x"
    for opener, account, purpose in (
        (SECRET_BOX, "acct_b", SIGNING_SECRET),  # copied to another account's row
        (SECRET_BOX, "acct_a", AUTH_KEY),  # copied to another column
        (OTHER_BOX, "acct_a", SIGNING_SECRET),  # another server key
    ):
        with pytest.raises(SecretKeyError):
            opener.open(blob, account, purpose)
    assert SECRET_BOX.seal("same", "a", AUTH_KEY) != SECRET_BOX.seal("same", "a", AUTH_KEY)


@pytest.mark.subprocess
async def test_a_process_with_another_key_refuses_to_start(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await secretbox.bind(conn, SECRET_BOX)  # the first key is recorded...
        await secretbox.bind(conn, SECRET_BOX)  # ...the same key binds again...
        with pytest.raises(SecretKeyError, match="TASKHOOK_SECRET_KEY"):
            await secretbox.bind(conn, OTHER_BOX)  # ...another one is refused


@pytest.mark.subprocess
async def test_cli_with_another_key_exits_2_and_names_the_setting(
    dsn: str, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        await secretbox.bind(conn, SECRET_BOX)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHOOK_")}
    env.update(
        TASKHOOK_DATABASE_URL=dsn,
        TASKHOOK_SECRET_KEY=base64.b64encode(b"another-taskhook-secret-key-32by").decode(),
    )
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "taskhook"),
        "accounts",
        "create",
        "x",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2, (out, err)
    assert b"TASKHOOK_SECRET_KEY" in err
    assert await pool.fetchval("SELECT count(*) FROM accounts WHERE name = 'x'") == 0


async def test_plaintext_secrets_of_an_older_database_are_encrypted_and_dropped(
    pool: asyncpg.Pool,
) -> None:
    await pool.execute(
        "ALTER TABLE accounts ADD COLUMN callback_auth_key text, ADD COLUMN signing_secret text"
    )
    await pool.execute(
        "INSERT INTO accounts (id, name, callback_auth_key, signing_secret) "
        "VALUES ('acct_old', 'old', 'auth-old', 'whsec_b2xkb2xkb2xkb2xkb2xkb2xkb2xkb2xk')"
    )
    async with pool.acquire() as conn:
        await secretbox.bind(conn, SECRET_BOX)
    row = await pool.fetchrow("SELECT * FROM accounts WHERE id = 'acct_old'")
    assert row is not None
    assert "signing_secret" not in row and "callback_auth_key" not in row
    assert SECRET_BOX.open(row["callback_auth_key_enc"], "acct_old", AUTH_KEY) == "auth-old"
    assert SECRET_BOX.open(row["signing_secret_enc"], "acct_old", SIGNING_SECRET) == (
        "whsec_b2xkb2xkb2xkb2xkb2xkb2xkb2xkb2xk"
    )


# --- rotation -------------------------------------------------------------------------


async def rotate(api: Api, **body: Any) -> dict[str, Any]:
    status, reply = await api.call("POST", "/v1/account/signing_secret/rotate", json=body)
    assert status == 200, reply
    return reply  # type: ignore[no-any-return]


async def one_callback(api: Api, sink: Sink, url: str, path: str) -> Received:
    """A test-key task completes at once; its callback arrives at the sink."""
    await api.task(callback_url=f"{url}/ok/{path}")
    await sink.wait_for(lambda: len(sink.to(f"/ok/{path}")) >= 1)
    [received] = sink.to(f"/ok/{path}")
    return received


def verifies(secret: str, received: Received) -> bool:
    try:
        Webhook(secret).verify(received.body, received.headers)
    except WebhookVerificationError:
        return False
    return True


async def test_both_secrets_sign_during_the_grace_period_then_only_the_new(
    live: Api, test_api: Api, account: NewAccount, sink: tuple[Sink, str], run_dispatcher: Any
) -> None:
    receiver, url = sink
    await test_api.project()
    await run_dispatcher()
    old = account.signing_secret
    assert verifies(old, await one_callback(test_api, receiver, url, "before"))

    reply = await rotate(live, grace_seconds=1)
    new = reply["signing_secret"]
    assert new.startswith("whsec_") and new != old
    assert reply["previous_secret_valid_until"].endswith("Z")
    during = await one_callback(test_api, receiver, url, "during")
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert verifies(old, during) and verifies(new, during)

    # The reply's time is to the millisecond; the database's clock is this machine's.
    valid_until = datetime.fromisoformat(reply["previous_secret_valid_until"])
    over = valid_until + timedelta(milliseconds=2)
    await wait_until(lambda: datetime.now(UTC) > over, what="the grace period's end")
    after = await one_callback(test_api, receiver, url, "after")
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert verifies(new, after) and not verifies(old, after)


async def test_rotation_without_grace_ends_the_old_secret_at_once(
    live: Api, test_api: Api, account: NewAccount, sink: tuple[Sink, str], run_dispatcher: Any
) -> None:
    receiver, url = sink
    await test_api.project()
    await run_dispatcher()
    reply = await rotate(live, grace_seconds=0)
    assert reply["previous_secret_valid_until"] is None
    received = await one_callback(test_api, receiver, url, "now")
    assert verifies(reply["signing_secret"], received)
    assert not verifies(account.signing_secret, received)


@pytest.mark.parametrize(
    "body",
    [
        {"grace_seconds": -1},
        {"grace_seconds": 7 * 24 * 3600 + 1},
        {"grace_seconds": "60"},
        {"grace_seconds": 1.5},
        {"grace": 60},
        [],
    ],
)
async def test_bad_rotation_is_400_and_changes_nothing(
    live: Api, pool: asyncpg.Pool, body: Any
) -> None:
    before = await pool.fetch("SELECT signing_secret_enc, old_signing_secret_enc FROM accounts")
    status, reply = await live.call("POST", "/v1/account/signing_secret/rotate", json=body)
    assert status == 400, reply
    assert set(reply) == {"status_code", "error"}
    assert await pool.fetch("SELECT signing_secret_enc, old_signing_secret_enc FROM accounts") == (
        before
    )


@pytest.mark.subprocess
async def test_cli_rotates_the_secret_and_prints_it_once(
    dsn: str, account: NewAccount, pool: asyncpg.Pool
) -> None:
    """`taskhook accounts rotate-secret ID --grace S`: the new secret is printed (not
    logged), the previous one is kept for S seconds; an unknown account is exit 1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHOOK_")}
    env.update(TASKHOOK_DATABASE_URL=dsn, TASKHOOK_SECRET_KEY=os.environ["TASKHOOK_SECRET_KEY"])

    async def run(*args: str) -> tuple[int | None, str, str]:
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "taskhook"),
            "accounts",
            "rotate-secret",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await run(account.account_id, "--grace", "600")
    assert code == 0, err
    new = out.split(": ", 1)[1].split()[0]
    assert new.startswith("whsec_") and new != account.signing_secret
    assert new not in err  # the logs never carry it
    row = await pool.fetchrow("SELECT * FROM accounts WHERE id = $1", account.account_id)
    assert row is not None and row["old_secret_until"] is not None
    assert SECRET_BOX.open(row["signing_secret_enc"], account.account_id, SIGNING_SECRET) == new
    old = SECRET_BOX.open(row["old_signing_secret_enc"], account.account_id, SIGNING_SECRET)
    assert old == account.signing_secret
    assert (await run("acct_nope"))[0] == 1
    assert (await run(account.account_id, "--grace", "-5"))[0] == 2
