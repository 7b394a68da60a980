"""Signatures both ways: events coming in under the ingest secret, callbacks going out
under each account's signing secret (Standard Webhooks).

Already covered in tests/test_ingest.py and not repeated here: no signature headers, each
of the three headers missing, a wrong secret, a timestamp more than 5 minutes old or new
(and 4 minutes either way accepted), a body changed after signing (content and whitespace),
malformed signature and timestamp headers, a non-UTF-8 body, an API key instead of a
signature. A valid callback verifying is checked in tests/test_dispatcher.py and on every
callback in tests/test_callback_bodies.py.

Added here: what the ingest signature binds besides the body (the webhook-id and the
timestamp), that a customer's own signing secret cannot forge workforce events, the
multi-signature and version rules of Standard Webhooks, case-insensitive header names, that
authentication comes before any parsing; and for callbacks, that tampering with any signed
part fails verification, that retries are signed afresh under one webhook-id, and that
accounts do not share signing secrets.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from taskhook.core.accounts import NewAccount
from tests.conftest import Api
from tests.sink import Received, Sink
from tests.test_ingest import (
    Ingest,
    assert_error,
    ev,
    get_task,
    new_task,
    signed_headers,
    snapshot,
)

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

Start = Callable[..., Awaitable[Any]]


# --- ingest ---------------------------------------------------------------------------------


@pytest.fixture
def ingest(http: aiohttp.ClientSession, base_url: str) -> Ingest:
    return Ingest(http, base_url)


@pytest.fixture
async def pending(live: Api) -> dict[str, Any]:
    return await new_task(live)


async def refused_then_applied(
    ingest: Ingest,
    live: Api,
    pool: asyncpg.Pool,
    task_id: str,
    body: str,
    bad_headers: dict[str, str],
) -> None:
    """`bad_headers` get a 401 and change nothing (the task is still pending, no event id and
    no delivery kept); the same body correctly signed then applies: the refusal was the
    signature's doing, not the event's."""
    before = await snapshot(pool)
    status, reply = await ingest.raw(body.encode(), bad_headers)
    assert_error(status, reply, 401, "signature")
    assert await snapshot(pool) == before
    assert (await get_task(live, task_id))["status"] == "pending"
    status, reply = await ingest.raw(body.encode(), signed_headers(body))
    assert status == 200, reply
    assert [r["status"] for r in reply["results"]] == ["applied"]
    assert (await get_task(live, task_id))["status"] == "completed"


async def test_signature_binds_the_webhook_id(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """A valid signature moved onto another webhook-id does not verify."""
    body = json.dumps(ev("completed", pending["task_id"]))
    headers = {**signed_headers(body, msg_id="msg_original"), "webhook-id": "msg_other"}
    await refused_then_applied(ingest, live, pool, pending["task_id"], body, headers)


async def test_signature_binds_the_timestamp(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """A valid signature with its timestamp moved (still inside the window) does not verify."""
    body = json.dumps(ev("completed", pending["task_id"]))
    at = datetime.now(UTC) - timedelta(seconds=30)
    headers = {**signed_headers(body, at=at), "webhook-timestamp": str(int(at.timestamp()) + 10)}
    await refused_then_applied(ingest, live, pool, pending["task_id"], body, headers)


async def test_account_signing_secret_cannot_sign_events(
    ingest: Ingest,
    live: Api,
    pool: asyncpg.Pool,
    pending: dict[str, Any],
    account: NewAccount,
) -> None:
    """A customer knows its own callback signing secret; it must not forge workforce events."""
    body = json.dumps(ev("completed", pending["task_id"]))
    headers = signed_headers(body, secret=account.signing_secret)
    await refused_then_applied(ingest, live, pool, pending["task_id"], body, headers)


async def test_right_mac_under_another_version_label_is_401(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """Only `v1,` signatures count: the correct HMAC labelled v1a (or v2) is not accepted."""
    body = json.dumps(ev("completed", pending["task_id"]))
    headers = signed_headers(body)
    mac = headers["webhook-signature"].removeprefix("v1,")
    headers["webhook-signature"] = f"v1a,{mac} v2,{mac}"
    await refused_then_applied(ingest, live, pool, pending["task_id"], body, headers)


async def test_one_valid_signature_among_several_is_accepted(
    ingest: Ingest, live: Api, pending: dict[str, Any]
) -> None:
    """Standard Webhooks sends space-separated signatures (secret rotation): one match is
    enough, wherever it stands in the list."""
    body = json.dumps(ev("completed", pending["task_id"]))
    headers = signed_headers(body)
    other = "v1," + base64.b64encode(secrets.token_bytes(32)).decode()
    headers["webhook-signature"] = f"{other} {headers['webhook-signature']} {other}"
    status, reply = await ingest.raw(body.encode(), headers)
    assert status == 200, reply
    assert (await get_task(live, pending["task_id"]))["status"] == "completed"


async def test_only_invalid_signatures_among_several_is_401(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    body = json.dumps(ev("completed", pending["task_id"]))
    headers = signed_headers(body)
    fakes = ["v1," + base64.b64encode(secrets.token_bytes(32)).decode() for _ in range(3)]
    headers["webhook-signature"] = " ".join(fakes)
    await refused_then_applied(ingest, live, pool, pending["task_id"], body, headers)


async def test_header_names_are_case_insensitive(
    ingest: Ingest, live: Api, pending: dict[str, Any]
) -> None:
    """HTTP header names have no case: Webhook-Id / WEBHOOK-SIGNATURE sign as well."""
    body = json.dumps(ev("completed", pending["task_id"]))
    lower = signed_headers(body)
    headers = {
        "Webhook-Id": lower["webhook-id"],
        "WEBHOOK-TIMESTAMP": lower["webhook-timestamp"],
        "Webhook-Signature": lower["webhook-signature"],
        "Content-Type": "application/json",
    }
    status, reply = await ingest.raw(body.encode(), headers)
    assert status == 200, reply
    assert (await get_task(live, pending["task_id"]))["status"] == "completed"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"event_id": 1}', b'{"event_id": "e", "type": "task.completed"}'],
    ids=["not-json", "empty-array", "wrong-type", "no-task-id"],
)
async def test_unsigned_requests_are_401_before_any_parsing(
    ingest: Ingest, pool: asyncpg.Pool, body: bytes
) -> None:
    """Without a valid signature the body is not looked at: a 401, never a 400 that would
    tell an unauthenticated caller what the validator thinks."""
    before = await snapshot(pool)
    status, reply = await ingest.raw(body, {"Content-Type": "application/json"})
    assert_error(status, reply, 401, "signature")
    assert await snapshot(pool) == before
    # Signed, the same bodies are looked at (and refused for what they are, not who sent them).
    status, reply = await ingest.raw(body, signed_headers(body.decode()))
    assert status != 401, reply


# --- callbacks ------------------------------------------------------------------------------


async def callback_for(api: Api, receiver: Sink, url: str, path: str) -> Received:
    """A test-key task (completed at once) whose callback goes to `path`; waits for it."""
    status, _ = await api.call("GET", "/v1/projects/proj")
    if status == 404:
        await api.project()
    await api.task(callback_url=url + path)
    await receiver.wait_for(lambda: bool(receiver.to(path)))
    return receiver.to(path)[0]


@pytest.fixture
async def delivered(
    test_api: Api, account: NewAccount, sink: tuple[Sink, str], run_dispatcher: Start
) -> tuple[Received, str]:
    """One callback as the sink received it, and the secret it should verify with."""
    receiver, url = sink
    await run_dispatcher()
    return await callback_for(test_api, receiver, url, "/ok/signed"), account.signing_secret


async def test_callback_verifies_with_the_account_signing_secret(
    delivered: tuple[Received, str],
) -> None:
    got, secret = delivered
    assert Webhook(secret).verify(got.body, got.headers) == got.json
    stamp = int(got.headers["webhook-timestamp"])
    assert abs(stamp - datetime.now(UTC).timestamp()) < 60


def _tamper(got: Received, how: str) -> tuple[bytes, dict[str, str]]:
    body, headers = got.body, dict(got.headers)
    if how == "body":
        body = body.replace(b'"completed"', b'"canceled"', 1)
    elif how == "whitespace":
        body = body + b" "
    elif how == "reserialized":
        body = json.dumps(json.loads(body), separators=(",", ":"), sort_keys=True).encode()
    elif how == "webhook-id":
        headers["webhook-id"] = headers["webhook-id"] + "x"
    elif how == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    elif how == "signature-bit":
        mac = bytearray(base64.b64decode(headers["webhook-signature"].removeprefix("v1,")))
        mac[0] ^= 1
        headers["webhook-signature"] = "v1," + base64.b64encode(bytes(mac)).decode()
    assert (body, headers) != (got.body, got.headers), how
    return body, headers


@pytest.mark.parametrize(
    "how", ["body", "whitespace", "reserialized", "webhook-id", "timestamp", "signature-bit"]
)
async def test_tampered_callback_fails_verification(
    delivered: tuple[Received, str], how: str
) -> None:
    """The signature covers the exact body bytes, the webhook-id and the timestamp."""
    got, secret = delivered
    body, headers = _tamper(got, how)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)
    Webhook(secret).verify(got.body, got.headers)  # the untouched one still does


async def test_callback_does_not_verify_with_another_secret(
    delivered: tuple[Received, str],
) -> None:
    got, _ = delivered
    other = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(got.body, got.headers)


async def test_retries_are_signed_afresh_under_one_webhook_id(
    test_api: Api, account: NewAccount, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """Each attempt carries its own timestamp and signature; all verify, one webhook-id."""
    receiver, url = sink
    await run_dispatcher(retry_schedule=(1.5,))  # >= 1.2 s with jitter: a new second
    await callback_for(test_api, receiver, url, "/flaky/1/retry")
    await receiver.wait_for(lambda: len(receiver.to("/flaky/1/retry")) == 2)
    first, second = receiver.to("/flaky/1/retry")
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    for got in (first, second):
        Webhook(account.signing_secret).verify(got.body, got.headers)


async def test_each_account_signs_with_its_own_secret(
    http: aiohttp.ClientSession,
    base_url: str,
    make_account: Callable[[str], Awaitable[NewAccount]],
    sink: tuple[Sink, str],
    run_dispatcher: Start,
) -> None:
    receiver, url = sink
    a, b = await make_account("alpha"), await make_account("beta")
    assert a.signing_secret != b.signing_secret
    await run_dispatcher()
    got_a = await callback_for(Api(http, base_url, a.test_key), receiver, url, "/ok/alpha")
    got_b = await callback_for(Api(http, base_url, b.test_key), receiver, url, "/ok/beta")
    for got, own, other in ((got_a, a, b), (got_b, b, a)):
        Webhook(own.signing_secret).verify(got.body, got.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(other.signing_secret).verify(got.body, got.headers)
