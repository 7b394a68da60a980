"""Callback targets that point inside the network are refused.

With TASKHOOK_ALLOW_PRIVATE_TARGETS off, a target that is, or resolves to, a non-global
address is refused: at create time where the address is a literal (a 400, nothing written),
and at delivery time always (no connection, one `forbidden_target` attempt, given up at
once, the sink sees nothing). Every spelling of an address that a URL parser or the C
resolver maps onto a private one is tried, and redirects are never followed.

Only 127.0.0.1 is ever reached: a guard around aiohttp's socket connect refuses (and
records) any other address, so a missing rule fails a test instead of sending traffic out.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohappyeyeballs
import aiohttp
import asyncpg
import pytest

from taskhook.core.accounts import NewAccount
from taskhook.core.settings import Settings
from taskhook.core.targets import TargetRefused, check_url, is_forbidden_ip
from taskhook.receiver.app import create_app
from tests.conftest import INGEST_SECRET, Api, snapshot
from tests.sink import Sink
from tests.waits import wait_until

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

Start = Callable[..., Awaitable[Any]]

# Hosts as written in a URL's authority that denote a non-global address. Each one is a
# literal: refused at create time, and at delivery time before any connection.
LITERALS = {
    "loopback": "127.0.0.1",
    "loopback-other": "127.8.9.10",
    "ipv6-loopback": "[::1]",
    "ten": "10.0.0.1",
    "172.16": "172.16.0.1",
    "172.31-top": "172.31.255.255",
    "192.168": "192.168.1.1",
    "metadata": "169.254.169.254",
    "unspecified": "0.0.0.0",
    "ipv6-unspecified": "[::]",
    "cgnat": "100.64.0.1",
    "ipv6-ula": "[fd00::1]",
    "ipv6-link-local-zone": "[fe80::1%25eth0]",
    "mapped-dotted": "[::ffff:127.0.0.1]",
    "mapped-hex": "[::ffff:7f00:1]",
    "mapped-long": "[0:0:0:0:0:ffff:127.0.0.1]",
    "mapped-metadata": "[::ffff:169.254.169.254]",
    "ipv4-compatible": "[::127.0.0.1]",
    "nat64-metadata": "[64:ff9b::a9fe:a9fe]",
    "6to4-loopback": "[2002:7f00:1::]",
    "decimal": "2130706433",
    "decimal-metadata": "2852039166",
    "octal": "0177.0.0.1",
    "octal-whole": "017700000001",
    "hex": "0x7f.0.0.1",
    "hex-whole": "0x7f000001",
    "hex-upper": "0X7F.0.0.1",
    "short": "127.1",
    "short-ten": "10.1",
    "zero": "0",
    "trailing-dot": "127.0.0.1.",
    "fullwidth-digits": "\uff11\uff12\uff17.0.0.1",  # yarl/IDNA folds this to 127.0.0.1
}

# The subset that reaches the sink on 127.0.0.1 (or would, were it not refused): these go
# through the dispatcher. Private ranges elsewhere are never connected to (see the guard);
# their delivery-time refusal is the same check, proven without a network below.
LOOPBACK_SPELLINGS = [
    "loopback",
    "ipv6-loopback",
    "unspecified",
    "mapped-dotted",
    "mapped-hex",
    "mapped-long",
    "decimal",
    "octal",
    "octal-whole",
    "hex",
    "hex-whole",
    "short",
    "zero",
    "trailing-dot",
    "fullwidth-digits",
]
ELSEWHERE = ["ten", "172.16", "192.168", "metadata", "cgnat", "mapped-metadata", "nat64-metadata"]

PUBLIC = [
    "https://hooks.example.com/scale",
    "http://93.184.216.34/cb",
    "http://[2606:4700::1111]/cb",
    "https://8.8.8.8:8443/cb",
]


def _loopback_names() -> list[str]:
    """`localhost` and any other name this machine maps onto loopback (/etc/hosts, own name)."""
    names = ["localhost", "LocalHost"]
    hosts = Path("/etc/hosts")
    if hosts.exists():
        for line in hosts.read_text().splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2 and fields[0] in ("127.0.0.1", "::1"):
                names += [n for n in fields[1:] if n.lower() not in ("localhost",)]
    try:
        own = socket.gethostname()
        if all(is_forbidden_ip(a[4][0]) for a in socket.getaddrinfo(own, 80)):
            names.append(own)
    except OSError:
        pass
    return list(dict.fromkeys(names))[:4]


LOOPBACK_NAMES = _loopback_names()


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def only_loopback(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Refuse (and record) any connection aiohttp tries to an address off this machine."""
    off_box: list[str] = []
    real = aiohappyeyeballs.start_connection

    async def guarded(addr_infos: Any, *args: Any, **kwargs: Any) -> socket.socket:
        for info in addr_infos:
            ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            if not (ip.is_loopback or ip.is_unspecified):
                off_box.append(str(ip))
                raise ConnectionRefusedError(f"test guard: {ip} is off this machine")
        return await real(addr_infos, *args, **kwargs)

    monkeypatch.setattr(aiohappyeyeballs, "start_connection", guarded)
    return off_box


@pytest.fixture
async def strict(
    aiohttp_server: Any,
    settings: Settings,
    pool: asyncpg.Pool,
    http: aiohttp.ClientSession,
    account: NewAccount,
) -> Api:
    """A second receiver on the same database with private targets not allowed."""
    app = create_app(
        settings.model_copy(update={"allow_private_targets": False}),
        pool=pool,
        ingest_secret=INGEST_SECRET,
    )
    server = await aiohttp_server(app, host="127.0.0.1")
    api = Api(http, f"http://127.0.0.1:{server.port}", account.live_key)
    await api.project()
    return api


@pytest.fixture
async def permissive(live: Api, strict: Api) -> Api:
    """The usual receiver (private targets allowed), live key; `strict` made the project."""
    return live


# --- helpers --------------------------------------------------------------------------------


def assert_400(status: int, body: Any, *words: str) -> None:
    assert status == 400, body
    assert isinstance(body, dict) and set(body) == {"status_code", "error"}, body
    assert body["status_code"] == 400
    for word in words:
        assert word in body["error"], body


async def counts(pool: asyncpg.Pool) -> tuple[dict[str, list[str]], int, Any]:
    """Everything a create could write: rows, deliveries, the account default."""
    return (
        await snapshot(pool),
        await pool.fetchval("SELECT count(*) FROM deliveries"),
        await pool.fetch("SELECT id, default_callback_url FROM accounts ORDER BY id"),
    )


async def callbacks(api: Api, task_id: str) -> list[dict[str, Any]]:
    status, body = await api.call("GET", f"/v1/task/{task_id}/callbacks")
    assert status == 200, body
    return body["deliveries"]  # type: ignore[no-any-return]


async def succeeded(api: Api, task_id: str) -> Any:
    _, task = await api.call("GET", f"/v1/task/{task_id}")
    return task.get("callback_succeeded", "absent")


async def refused_at_delivery(api: Api, task_id: str) -> None:
    """Given up after exactly one attempt, recorded as forbidden_target."""

    async def given_up() -> bool:
        return await succeeded(api, task_id) is False

    await wait_until(given_up)
    [delivery] = await callbacks(api, task_id)
    assert delivery["state"] == "failed", delivery
    [attempt] = delivery["attempts"]
    assert attempt["error"] == "forbidden_target", attempt
    assert attempt.get("status_code") is None, attempt


def strict_dispatcher(**overrides: Any) -> dict[str, Any]:
    """Private targets off; short timeouts so a missing rule fails fast, not slowly."""
    return {"allow_private_targets": False, "connect_timeout": 1, "total_timeout": 3, **overrides}


# --- the rule itself, without a network -----------------------------------------------------


@pytest.mark.parametrize("host", LITERALS.values(), ids=LITERALS.keys())
def test_check_url_refuses_every_spelling(host: str) -> None:
    with pytest.raises(TargetRefused):
        check_url(f"http://{host}:8080/cb", allow_private=False)
    check_url(f"http://{host}:8080/cb", allow_private=True)  # the rule, not a parse error


@pytest.mark.parametrize("url", PUBLIC)
def test_check_url_allows_public_addresses(url: str) -> None:
    check_url(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "file:///etc/passwd", "gopher://127.0.0.1/", "http:///x", "x"],
)
def test_check_url_refuses_other_schemes_even_when_private_allowed(url: str) -> None:
    with pytest.raises((TargetRefused, ValueError)):
        check_url(url, allow_private=True)


# --- create time: literal addresses are a 400 and nothing is written ------------------------


@pytest.mark.parametrize("host", LITERALS.values(), ids=LITERALS.keys())
async def test_task_create_refuses_literal_private_target(
    strict: Api, permissive: Api, pool: asyncpg.Pool, host: str
) -> None:
    url = f"http://{host}:8080/cb"
    before = await counts(pool)
    status, body = await strict.call(
        "POST",
        "/v1/task/categorization",
        json={"project": "proj", "attachment": "a", "categories": ["x"], "callback_url": url},
    )
    assert_400(status, body, "callback_url")
    assert await counts(pool) == before
    # The same URL is accepted where private targets are allowed: it is the rule that refused.
    task = await permissive.task(callback_url=url)
    assert task["callback_url"] == url


@pytest.mark.parametrize("host", LITERALS.values(), ids=LITERALS.keys())
async def test_account_default_callback_url_refuses_literal_private_target(
    strict: Api, permissive: Api, pool: asyncpg.Pool, host: str
) -> None:
    url = f"http://{host}/cb"
    before = await counts(pool)
    status, body = await strict.call(
        "POST", "/v1/account/settings", json={"default_callback_url": url}
    )
    assert_400(status, body, "default_callback_url")
    assert await counts(pool) == before
    status, body = await permissive.call(
        "POST", "/v1/account/settings", json={"default_callback_url": url}
    )
    assert status == 200 and body["default_callback_url"] == url, body


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:7f00:1]", "2130706433", "169.254.169.254"])
async def test_batch_callback_refuses_literal_private_target(
    strict: Api, pool: asyncpg.Pool, host: str
) -> None:
    before = await counts(pool)
    status, body = await strict.call(
        "POST", "/v1/batches", json={"project": "proj", "name": "b1", "callback": f"http://{host}/"}
    )
    assert_400(status, body, "callback")
    assert await counts(pool) == before


async def test_task_without_callback_url_refuses_private_account_default(
    strict: Api, permissive: Api, pool: asyncpg.Pool
) -> None:
    """The account default becomes the task's callback_url, so it is checked like one."""
    status, _ = await permissive.call(
        "POST", "/v1/account/settings", json={"default_callback_url": "http://10.0.0.1/cb"}
    )
    assert status == 200
    before = await counts(pool)
    status, body = await strict.call(
        "POST",
        "/v1/task/categorization",
        json={"project": "proj", "attachment": "a", "categories": ["x"]},
    )
    assert_400(status, body)
    assert await counts(pool) == before


@pytest.mark.parametrize("url", PUBLIC)
async def test_public_targets_are_accepted_at_create_time(strict: Api, url: str) -> None:
    task = await strict.task(callback_url=url)
    assert task["callback_url"] == url
    status, body = await strict.call(
        "POST", "/v1/account/settings", json={"default_callback_url": url}
    )
    assert status == 200, body


# --- delivery time: refused before connecting, given up at once -----------------------------


@pytest.mark.parametrize("case", LOOPBACK_SPELLINGS)
async def test_delivery_refuses_literal_spellings_of_loopback(
    test_api: Api,
    sink: tuple[Sink, str],
    run_dispatcher: Start,
    only_loopback: list[str],
    case: str,
) -> None:
    """Created while private targets were allowed, delivered by a dispatcher that does not
    allow them: one forbidden_target attempt, and nothing reaches the sink on 127.0.0.1."""
    receiver, url = sink
    port = url.rsplit(":", 1)[1]
    await test_api.project()
    task = await test_api.task(callback_url=f"http://{LITERALS[case]}:{port}/ok")
    await run_dispatcher(**strict_dispatcher())
    await refused_at_delivery(test_api, task["task_id"])
    assert not receiver.received
    assert not only_loopback


@pytest.mark.parametrize("case", ELSEWHERE)
async def test_delivery_refuses_private_literals_without_connecting(
    test_api: Api, run_dispatcher: Start, only_loopback: list[str], case: str
) -> None:
    await test_api.project()
    task = await test_api.task(callback_url=f"http://{LITERALS[case]}:8080/cb")
    await run_dispatcher(**strict_dispatcher())
    await refused_at_delivery(test_api, task["task_id"])
    assert not only_loopback  # not even tried


@pytest.mark.parametrize("name", LOOPBACK_NAMES)
async def test_delivery_refuses_names_that_resolve_to_loopback(
    permissive: Api,
    sink: tuple[Sink, str],
    run_dispatcher: Start,
    account: NewAccount,
    http: aiohttp.ClientSession,
    name: str,
) -> None:
    """Whatever let the task in (here a receiver that allows private targets; a name is
    resolved only when delivering), a strict dispatcher's resolver sees the loopback
    answer and refuses to connect."""
    receiver, url = sink
    port = url.rsplit(":", 1)[1]
    test_key = Api(http, permissive.base, account.test_key)
    await test_key.project()
    task = await test_key.task(callback_url=f"http://{name}:{port}/ok")
    await run_dispatcher(**strict_dispatcher())
    await refused_at_delivery(test_key, task["task_id"])
    assert not receiver.received


async def test_delivery_refuses_private_account_default(
    live: Api, test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """A task that takes the account's default target is checked at delivery time too."""
    receiver, url = sink
    status, _ = await live.call(
        "POST", "/v1/account/settings", json={"default_callback_url": url + "/ok"}
    )
    assert status == 200
    await test_api.project()
    task = await test_api.task()
    await run_dispatcher(**strict_dispatcher())
    await refused_at_delivery(test_api, task["task_id"])
    assert not receiver.received


async def test_same_target_is_delivered_when_private_targets_are_allowed(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """The control for the cases above: the sink is reachable, so their refusal is the rule."""
    receiver, url = sink
    port = url.rsplit(":", 1)[1]
    await test_api.project()
    tasks = [
        (await test_api.task(callback_url=f"http://{host}:{port}/ok/{i}"))["task_id"]
        for i, host in enumerate(["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "0.0.0.0"])
    ]
    await run_dispatcher(connect_timeout=1, total_timeout=3)
    for task_id in tasks:
        await wait_until(lambda t=task_id: _is(succeeded(test_api, t), True))
    assert len(receiver.received) == len(tasks)


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "app.localhost", "127.0.0.1"])
async def test_a_local_callback_is_refused_at_create_naming_the_setting(
    strict: Api, host: str
) -> None:
    """A newcomer's first local callback URL gets a 400 that says how to allow it; names
    under `localhost` (RFC 6761: always loopback) are refused at create time too."""
    status, body = await strict.call(
        "POST",
        "/v1/task/categorization",
        json={
            "project": "proj",
            "attachment": "a",
            "categories": ["x"],
            "callback_url": f"http://{host}:9000/cb",
        },
    )
    assert status == 400, body
    assert "TASKHOOK_ALLOW_PRIVATE_TARGETS=1" in body["error"], body["error"]


async def _is(value: Awaitable[Any], expected: Any) -> bool:
    return await value is expected


# --- redirects are never followed -----------------------------------------------------------


async def test_redirect_is_a_failed_attempt_and_is_not_followed(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """A 302 is a failure like any other non-2xx: retried on the schedule, then exhausted;
    the redirect target (/ok on the same sink) never receives anything."""
    receiver, url = sink
    await test_api.project()
    task = await test_api.task(callback_url=url + "/redirect")
    await run_dispatcher(retry_schedule=(0.05, 0.05))
    await wait_until(lambda: _is(succeeded(test_api, task["task_id"]), False))
    [delivery] = await callbacks(test_api, task["task_id"])
    assert delivery["state"] == "failed"
    assert [a["status_code"] for a in delivery["attempts"]] == [302, 302, 302]
    assert len(receiver.to("/redirect")) == 3
    assert receiver.to("/ok") == []


@pytest.fixture
async def redirect_to_private(aiohttp_server: Any) -> AsyncIterator[str]:
    """An endpoint that redirects to the cloud metadata address (the classic SSRF hop)."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("http://169.254.169.254/latest/meta-data/")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    yield f"http://127.0.0.1:{server.port}"


async def test_redirect_to_metadata_is_not_followed(
    test_api: Api, redirect_to_private: str, run_dispatcher: Start, only_loopback: list[str]
) -> None:
    await test_api.project()
    task = await test_api.task(callback_url=redirect_to_private + "/hop")
    await run_dispatcher(retry_schedule=(0.05,))
    await wait_until(lambda: _is(succeeded(test_api, task["task_id"]), False))
    [delivery] = await callbacks(test_api, task["task_id"])
    assert [a["status_code"] for a in delivery["attempts"]] == [307, 307]
    assert not only_loopback
