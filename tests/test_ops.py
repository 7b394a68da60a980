"""Operations endpoints and log hygiene."""

from __future__ import annotations

import json
import logging

import aiohttp
import asyncpg
import pytest

from taskhook.core import db
from taskhook.core.logs import configure_logging, get_logger
from taskhook.core.settings import Settings
from taskhook.receiver.app import create_app
from tests.conftest import INGEST_SECRET, Api


async def test_healthz_and_readyz_need_no_key(http: aiohttp.ClientSession, base_url: str) -> None:
    """Health checks answer 200 without an API key while the database is up."""
    for path in ("/healthz", "/readyz"):
        async with http.get(base_url + path) as resp:
            assert resp.status == 200, path


async def test_readyz_is_503_when_the_database_is_gone(
    aiohttp_server, dsn: str, http: aiohttp.ClientSession
) -> None:
    """Readiness fails (503 with Retry-After) when the database cannot be reached."""
    pool = await db.create_pool(dsn, min_size=1, max_size=1)
    server = await aiohttp_server(
        create_app(Settings(database_url="unused"), pool=pool, ingest_secret=INGEST_SECRET)
    )
    await pool.close()
    async with http.get(f"http://127.0.0.1:{server.port}/readyz") as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"]
        assert (await resp.json())["status_code"] == 503
    async with http.get(f"http://127.0.0.1:{server.port}/healthz") as resp:
        assert resp.status == 200


async def test_request_id_is_echoed(live: Api) -> None:
    """A caller's X-Request-Id is echoed back so a reply can be found in the logs."""
    async with live.session.get(
        live.base + "/v1/tasks",
        headers={"Authorization": f"Bearer {live.key}", "X-Request-Id": "req-123"},
    ) as resp:
        assert resp.headers["X-Request-Id"] == "req-123"


def test_secret_looking_fields_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    """A value logged under a secret's name never reaches the output."""
    configure_logging("json", "info")
    try:
        get_logger("t").info("oops", api_key="live_abc", signing_secret="whsec_x", ok="yes")
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    finally:
        logging.getLogger().handlers.clear()
    assert line["api_key"] == "[redacted]" and line["signing_secret"] == "[redacted]"
    assert line["ok"] == "yes" and line["event"] == "oops"


def test_lines_below_the_level_are_not_written(capsys: pytest.CaptureFixture[str]) -> None:
    """TASKHOOK_LOG_LEVEL filters taskhook's own lines, not only the libraries' ones."""
    configure_logging("json", "warning")
    try:
        get_logger("t").info("quiet.line")
        get_logger("t").debug("quieter.line")
        get_logger("t").warning("loud.line")
        lines = capsys.readouterr().err.strip().splitlines()
    finally:
        configure_logging("json", "info")
        logging.getLogger().handlers.clear()
    assert [json.loads(line)["event"] for line in lines] == ["loud.line"]


async def test_database_errors_other_than_bad_input_are_not_leaked(
    live: Api, pool: asyncpg.Pool
) -> None:
    """An unexpected server error is a JSON 500 naming the request id, with no trace."""
    await live.project()
    await pool.execute("ALTER TABLE tasks RENAME TO tasks_gone")  # simulate a broken database
    try:
        status, body = await live.call(
            "POST",
            "/v1/task/categorization",
            json={"project": "proj", "attachment": "a", "categories": ["x"]},
        )
    finally:
        await pool.execute("ALTER TABLE tasks_gone RENAME TO tasks")
    assert status == 500 and body["status_code"] == 500
    assert "request id" in body["error"] and "Traceback" not in body["error"]
