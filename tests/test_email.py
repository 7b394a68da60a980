"""E-mail callbacks over SMTP, against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiosmtpd.controller import Controller

from taskhook.core.accounts import NewAccount
from taskhook.receiver.app import create_app
from tests.conftest import INGEST_SECRET, Api, dispatcher_settings
from tests.test_dispatcher import Start, task_field
from tests.waits import equals, wait_until


class Mailbox:
    """aiosmtpd handler: keeps every message; refuses recipients starting with 'nobody@'."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK queued"


@pytest.fixture
def smtp(unused_tcp_port: int) -> Iterator[tuple[Mailbox, str]]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=unused_tcp_port)
    controller.start()
    try:
        yield box, f"smtp://127.0.0.1:{unused_tcp_port}"
    finally:
        controller.stop()


@pytest.fixture
async def mail_api(
    aiohttp_server: Any,
    pool: asyncpg.Pool,
    smtp: tuple[Mailbox, str],
    account: NewAccount,
    http: aiohttp.ClientSession,
) -> Api:
    """A receiver configured with SMTP, so e-mail callback targets are accepted."""
    settings = dispatcher_settings(smtp_url=smtp[1])
    server = await aiohttp_server(
        create_app(settings, pool=pool, ingest_secret=INGEST_SECRET), host="127.0.0.1"
    )
    api = Api(http, f"http://127.0.0.1:{server.port}", account.test_key)
    await api.project()
    return api


async def test_email_target_refused_without_smtp(test_api: Api, pool: asyncpg.Pool) -> None:
    """Without TASKHOOK_SMTP_URL an e-mail callback_url is a 400 that says why."""
    await test_api.project()
    status, body = await test_api.call(
        "POST",
        "/v1/task/categorization",
        json={
            "project": "proj",
            "attachment": "a",
            "categories": ["x"],
            "callback_url": "ops@example.com",
        },
    )
    assert status == 400 and "SMTP" in body["error"]
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 0


async def test_email_callback_carries_the_task_json(
    mail_api: Api, smtp: tuple[Mailbox, str], run_dispatcher: Start
) -> None:
    """A completed task with an e-mail callback_url is mailed its task JSON; success sets
    callback_succeeded true and records the SMTP reply."""
    box, smtp_url = smtp
    task = await mail_api.task(callback_url="ops@example.com")
    await run_dispatcher(smtp_url=smtp_url, smtp_from="scale@example.org")
    await wait_until(
        lambda: equals(task_field(mail_api, task["task_id"], "callback_succeeded"), True)
    )
    [message] = box.messages
    assert message["To"] == "ops@example.com" and message["From"] == "scale@example.org"
    assert task["task_id"] in message["Subject"]
    assert message["X-Taskhook-Webhook-Id"].startswith("msg_")
    mailed = json.loads(message.get_payload(decode=True))
    assert mailed["task_id"] == task["task_id"] and mailed["status"] == "completed"
    assert mailed["response"] == task["response"]
    _, listing = await mail_api.call("GET", f"/v1/task/{task['task_id']}/callbacks")
    assert listing["deliveries"][0]["attempts"][0]["status_code"] == 250


async def test_refused_mailbox_gives_up_at_once(
    mail_api: Api, smtp: tuple[Mailbox, str], run_dispatcher: Start
) -> None:
    """A permanent SMTP refusal (5yz) ends the delivery: callback_succeeded false."""
    box, smtp_url = smtp
    task = await mail_api.task(callback_url="nobody@example.com")
    await run_dispatcher(smtp_url=smtp_url)
    await wait_until(
        lambda: equals(task_field(mail_api, task["task_id"], "callback_succeeded"), False)
    )
    _, listing = await mail_api.call("GET", f"/v1/task/{task['task_id']}/callbacks")
    [attempt] = listing["deliveries"][0]["attempts"]
    assert attempt["status_code"] == 550 and attempt["error"] == "smtp_rejected"
    assert not box.messages


async def test_unreachable_smtp_server_is_retried(
    mail_api: Api, run_dispatcher: Start, unused_tcp_port_factory: Any
) -> None:
    """An SMTP server that cannot be reached is retried like an HTTP connection error."""
    task = await mail_api.task(callback_url="ops@example.com")
    await run_dispatcher(smtp_url=f"smtp://127.0.0.1:{unused_tcp_port_factory()}")
    await wait_until(
        lambda: equals(task_field(mail_api, task["task_id"], "callback_succeeded"), False)
    )
    _, listing = await mail_api.call("GET", f"/v1/task/{task['task_id']}/callbacks")
    attempts = listing["deliveries"][0]["attempts"]
    assert len(attempts) == 4 and {a["error"] for a in attempts} == {"connect_error"}


def test_smtp_url_setting_is_validated() -> None:
    """A bad TASKHOOK_SMTP_URL stops the start with the expected form in the message."""
    from taskhook.core.errors import ConfigError
    from taskhook.core.settings import load_settings

    with pytest.raises(ConfigError, match="SMTP_URL"):
        load_settings(smtp_url="mail.example.com")


def test_smtp_credentials_are_parsed() -> None:
    """smtp(s)://user:password@host:port: user, password, TLS and default ports."""
    from taskhook.core.smtp import SmtpConfig

    cfg = SmtpConfig.from_url("smtps://u%40x:p%3Ass@mail.example.com", "f@x")
    assert (cfg.host, cfg.port, cfg.username, cfg.password, cfg.use_tls) == (
        "mail.example.com",
        465,
        "u@x",
        "p:ss",
        True,
    )
    assert SmtpConfig.from_url("smtp://mail.example.com:2525", "f@x").port == 2525
