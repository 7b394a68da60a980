"""v2 fixtures: the official SDK's `client.v2` pointed at the test receiver (Bearer, as the
SDK sends it, or Basic, as v1 does), a project, chat tasks, and signed ingest."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
import scaleapi
from aiohttp import web
from scaleapi.api_client.v2 import CreateChatTaskRequest, Task, V2Api

from taskhook.core.accounts import NewAccount
from taskhook.core.settings import Settings
from taskhook.receiver.app import create_app
from tests.conftest import INGEST_SECRET, Api
from tests.v2.helpers import Ingest, event, rich_threads, run
from tests.v2.n2 import reply_problems

PROJECT = "Chat P"
CALLBACK = "https://hooks.example.com/v2"

MakeClient = Callable[..., scaleapi.ScaleClient]


@pytest.fixture
def v2_client(base_url: str) -> MakeClient:
    """make(key, auth="bearer" | "basic"): a ScaleClient whose client.v2 talks to us."""

    def make(key: str, auth: str = "bearer") -> scaleapi.ScaleClient:
        client = scaleapi.ScaleClient(key, "taskhook-tests")
        conf = client.v2.api_client.configuration
        conf.host = base_url  # no path, no trailing slash: every v2 path starts with /v2
        if auth == "basic":
            conf.access_token = None
            conf.username, conf.password = key, ""
        return client

    return make


@pytest.fixture
def client(v2_client: MakeClient, account: NewAccount) -> scaleapi.ScaleClient:
    return v2_client(account.live_key)


@pytest.fixture
def v2(client: scaleapi.ScaleClient) -> V2Api:
    return client.v2


@pytest.fixture
def testkey_v2(v2_client: MakeClient, account: NewAccount) -> V2Api:
    """client.v2 with the account's test key (tasks complete at once)."""
    return v2_client(account.test_key).v2


@pytest.fixture
async def project(live: Api) -> dict[str, Any]:
    """A live project made through v1 (v2 has no create project)."""
    return await live.project(PROJECT)


@pytest.fixture
def ingest(http: aiohttp.ClientSession, base_url: str) -> Ingest:
    return Ingest(http, base_url)


@pytest.fixture
def chat(v2: V2Api, project: dict[str, Any]) -> Callable[..., Awaitable[Task]]:
    """Create a live chat task in PROJECT; keywords go into CreateChatTaskRequest."""

    async def create(**fields: Any) -> Task:
        request = CreateChatTaskRequest(
            **{"project_name": PROJECT, "template_variables": {"prompt": "hi"}, **fields}
        )
        task = await run(v2.create_chat_task, request)
        assert isinstance(task, Task)
        return task

    return create


@pytest.fixture
def completed(
    chat: Callable[..., Awaitable[Task]], ingest: Ingest
) -> Callable[..., Awaitable[Task]]:
    """A chat task completed through ingest with these threads (default: rich_threads())."""

    async def make(threads: list[dict[str, Any]] | None = None, **fields: Any) -> Task:
        task = await chat(**fields)
        threads = rich_threads() if threads is None else threads
        await ingest.applied(event("completed", task.task_id, threads=threads))
        return task

    return make


@pytest.fixture
async def base_url(
    aiohttp_server: Any, settings: Settings, pool: asyncpg.Pool
) -> AsyncIterator[str]:
    """The real receiver (as tests/conftest.py's base_url), plus an outermost middleware that
    checks every /v2 reply of the test against N2 (tests/v2/n2.py): the test fails if any
    reply would break the SDK or holds a forbidden value."""
    app = create_app(settings, pool=pool, ingest_secret=INGEST_SECRET)
    found: list[str] = []

    @web.middleware
    async def check_n2(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        redirect = 300 <= response.status < 400  # response_url: a 302, no body (as the SDK)
        if request.path.startswith("/v2") and isinstance(response, web.Response) and not redirect:
            if response.content_type != "application/json" or response.status in (201, 204):
                found.append(f"{request.path}: {response.status} {response.content_type}")
            else:
                assert response.body is not None
                body = json.loads(bytes(response.body))  # type: ignore[arg-type]
                found.extend(reply_problems(request.method, request.path, response.status, body))
        return response

    app.middlewares.insert(0, check_n2)
    server = await aiohttp_server(app, host="127.0.0.1")
    yield f"http://127.0.0.1:{server.port}"
    assert found == [], "N2 violations in v2 replies:\n" + "\n".join(found)
