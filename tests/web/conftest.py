"""Helpers of the Tasks tab tests: a cookie-keeping HTTP client that signs in like a browser,
and fast seeding of many tasks straight into the test database."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')


class Page:
    """One reply: status, body text and headers."""

    def __init__(self, status: int, text: str, headers: Any) -> None:
        self.status, self.text, self.headers = status, text, headers

    @property
    def location(self) -> str:
        return str(self.headers.get("Location", ""))

    @property
    def csrf(self) -> str:
        found = _CSRF.search(self.text)
        assert found, "no CSRF token on this page"
        return found.group(1)


class WebClient:
    """A browser stand-in: keeps cookies (also for 127.0.0.1), follows no redirects."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def request(self, method: str, path: str, **kwargs: Any) -> Page:
        kwargs.setdefault("allow_redirects", False)
        async with self.session.request(method, self.base + path, **kwargs) as resp:
            return Page(resp.status, await resp.text(), resp.headers)

    async def get(self, path: str, **kwargs: Any) -> Page:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, data: dict[str, str], **kwargs: Any) -> Page:
        return await self.request("POST", path, data=data, **kwargs)

    async def sign_in(self, key: str) -> Page:
        form = await self.get("/signin")
        token = _FORM_TOKEN.search(form.text)
        assert token, form.text
        return await self.post("/signin", {"form_token": token.group(1), "key": key})

    async def csrf(self, path: str = "/tasks") -> str:
        return (await self.get(path)).csrf

    @property
    def cookie(self) -> str:
        for cookie in self.session.cookie_jar:
            if cookie.key == "taskhook_session":
                return cookie.value
        return ""


@pytest.fixture
async def web_client(base_url: str) -> AsyncIterator[Callable[[], WebClient]]:
    made: list[WebClient] = []

    def make() -> WebClient:
        made.append(WebClient(base_url))
        return made[-1]

    yield make
    for client in made:
        await client.session.close()


Seed = Callable[..., Awaitable[list[str]]]


@pytest.fixture
def seed_tasks(pool: asyncpg.Pool) -> Seed:
    """Insert n tasks of one account and world in one statement (newest last), returning
    their ids newest first. Column values (status, work_started, ...) apply to all."""

    async def seed(
        account_id: str,
        n: int,
        *,
        is_test: bool = False,
        project: str = "proj",
        batch: str | None = None,
        status: str = "pending",
        start: str = "2024-01-01T00:00:00Z",
        step: str = "1 second",
        **columns: Any,
    ) -> list[str]:
        rows = await pool.fetch(
            """
            INSERT INTO tasks (id, account_id, is_test, type, status, project, batch,
                               instruction, params, created_at, updated_at)
            SELECT substr(md5(random()::text || i::text), 1, 24), $1, $2, 'categorization',
                   $3, $4, $5, 'Is it big?', '{"attachment": "a", "categories": ["x", "y"]}',
                   $6::text::timestamptz + i * $7::text::interval,
                   $6::text::timestamptz + i * $7::text::interval
            FROM generate_series(0, $8 - 1) AS i
            RETURNING id, created_at
            """,
            account_id,
            is_test,
            status,
            project,
            batch,
            start,
            step,
            n,
        )
        ids = [r["id"] for r in sorted(rows, key=lambda r: r["created_at"], reverse=True)]
        for column, value in columns.items():
            assert re.fullmatch(r"\w+", column)
            await pool.execute(f"UPDATE tasks SET {column} = $2 WHERE id = ANY($1)", ids, value)
        return ids

    return seed
