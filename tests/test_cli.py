"""The `taskhook` command as a user runs it: real subprocesses, real databases."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import scaleapi

from taskhook.cli import _parser
from taskhook.core.accounts import authenticate
from tests.test_deploy import subcommands

pytestmark = pytest.mark.subprocess  # `taskhook` as real processes

TASKHOOK = str(Path(sys.executable).parent / "taskhook")
TABLES = {
    "accounts",
    "api_keys",
    "projects",
    "batches",
    "tasks",
    "idempotency_keys",
    "ingested_events",
    "deliveries",
    "delivery_attempts",
    "server_secrets",
}


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TASKHOOK_") or k == "TASKHOOK_SECRET_KEY"
    }
    return {**env, "TASKHOOK_LOG_FORMAT": "json", **extra}


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        TASKHOOK, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_accounts_create_json_prints_one_object(dsn: str, pool: asyncpg.Pool) -> None:
    """`accounts create NAME --json` prints exactly one account object, with working keys."""
    code, out, _ = await _run(
        "accounts", "create", "Ada Labs", "--json", env=_env(TASKHOOK_DATABASE_URL=dsn)
    )
    assert code == 0
    account = json.loads(out)
    assert set(account) == {
        "account_id",
        "name",
        "live_key",
        "test_key",
        "callback_auth_key",
        "signing_secret",
    }
    assert account["name"] == "Ada Labs"
    assert account["live_key"].startswith("live_") and account["test_key"].startswith("test_")
    assert account["signing_secret"].startswith("whsec_")
    live = await authenticate(pool, account["live_key"])
    test = await authenticate(pool, account["test_key"])
    assert live is not None and not live.is_test and live.account_id == account["account_id"]
    assert test is not None and test.is_test


async def test_keys_are_stored_only_as_digests(dsn: str, pool: asyncpg.Pool) -> None:
    """No API key appears in the database in clear text."""
    _, out, _ = await _run("accounts", "create", "x", "--json", env=_env(TASKHOOK_DATABASE_URL=dsn))
    account = json.loads(out)
    dump = await pool.fetchval("SELECT string_agg(k::text, ' ') FROM api_keys k")
    assert account["live_key"] not in dump and account["test_key"] not in dump


async def test_migrate_is_idempotent_on_an_empty_database(server_dsn: str) -> None:
    """`taskhook migrate` creates every table on an empty database, and again changes nothing."""
    from tests.conftest import _admin, with_database

    name = "t_migrate_" + os.urandom(4).hex()
    await _admin(server_dsn, f'CREATE DATABASE "{name}"')
    target = with_database(server_dsn, name)
    try:
        for _ in range(2):
            code, out, err = await _run("migrate", env=_env(TASKHOOK_DATABASE_URL=target))
            assert code == 0, err
            assert "schema applied" in out
        conn = await asyncpg.connect(target)
        try:
            rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
            key = await conn.fetchval("SELECT count(*) FROM server_secrets")
        finally:
            await conn.close()
        assert {r["tablename"] for r in rows} >= TABLES
        assert key == 1
    finally:
        await _admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TASKHOOK_PORT", "eighty"),
        ("TASKHOOK_LOG_LEVEL", "loud"),
        ("TASKHOOK_DISPATCHER_PORT", "-1"),
        # The deploy examples' placeholder: refused at start, not a base64 traceback later.
        ("TASKHOOK_INGEST_SECRET", "whsec_REPLACE_ME"),
    ],
)
async def test_bad_setting_stops_start_and_names_it(variable: str, value: str) -> None:
    """A bad setting stops the start with a message that names the variable."""
    code, _, err = await _run("migrate", env=_env(**{variable: value}))
    assert code == 2
    assert variable in err
    assert "Traceback" not in err


def test_help_names_every_subcommand() -> None:
    """`taskhook --help` lists what the command does, with no stale promises."""
    text = _parser().format_help()
    description = _parser().description or ""
    for name in subcommands() - {"create", "set-callback"}:
        assert name in description, name
    for name in ("accounts create", "accounts set-callback"):
        assert name in " ".join(description.split()), name
    assert "later" not in text


async def _read_until(stream: asyncio.StreamReader, marker: str, lines: list[str]) -> str:
    async with asyncio.timeout(90):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"process ended before {marker!r}: {lines}")
            lines.append(line)
            if marker in line:
                return line


async def _serve(data_dir: Path) -> tuple[asyncio.subprocess.Process, list[str], str]:
    proc = await asyncio.create_subprocess_exec(
        TASKHOOK,
        "serve",
        "--port",
        "0",
        env=_env(TASKHOOK_DATA_DIR=str(data_dir)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    url_line = await _read_until(proc.stdout, "listening on", lines)
    url = url_line.split("listening on ")[1].split()[0]
    return proc, lines, url


async def _stop(proc: asyncio.subprocess.Process) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0
    return err.decode()


def _printed_keys(lines: list[str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for line in lines:
        label, _, value = line.strip().partition(": ")
        if label.endswith("key") or label.endswith("secret"):
            keys[label.strip()] = value.strip()
    return keys


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data folder outside pytest's tmp tree (see conftest.server_dsn for why)."""
    folder = Path(tempfile.mkdtemp(prefix="taskhook-test-serve-"))
    folder.chmod(0o755)
    yield folder / "data"
    shutil.rmtree(folder, ignore_errors=True)


async def test_empty_database_and_smtp_urls_mean_unset(data_dir: Path) -> None:
    """`TASKHOOK_DATABASE_URL=` is the embedded server, announced by a `database.embedded`
    warning naming its folder; `TASKHOOK_SMTP_URL=` is no SMTP (not a bad URL)."""
    env = _env(TASKHOOK_DATA_DIR=str(data_dir), TASKHOOK_DATABASE_URL="", TASKHOOK_SMTP_URL="")
    code, out, err = await _run("migrate", env=env)
    assert code == 0, err
    assert "schema applied" in out
    [warning] = [
        e
        for line in err.splitlines()
        if line.startswith("{") and (e := json.loads(line))["event"] == "database.embedded"
    ]
    assert warning["level"] == "warning"
    assert warning["data_dir"] == str(data_dir.resolve() / "pgdata")
    assert (data_dir / "pgdata").is_dir()


async def test_serve_on_embedded_postgres_end_to_end(data_dir: Path) -> None:
    """`taskhook serve` with no database set starts an embedded PostgreSQL, prints the
    development keys and URL once, answers health checks and the SDK, logs JSON lines with
    request ids and no secrets, and stops cleanly on SIGTERM."""
    proc, lines, url = await _serve(data_dir)
    try:
        keys = _printed_keys(lines)
        assert keys["live key"].startswith("live_") and keys["test key"].startswith("test_")
        async with aiohttp.ClientSession() as http:
            for path in ("/healthz", "/readyz"):
                async with http.get(url + path) as resp:
                    assert resp.status == 200, path
        client = scaleapi.ScaleClient(keys["test key"], api_instance_url=url + "/v1")

        def use_sdk() -> Any:
            client.create_project("demo", scaleapi.tasks.TaskType.Categorization)
            return client.create_task(
                scaleapi.tasks.TaskType.Categorization,
                project="demo",
                attachment="a",
                categories=["big", "small"],
            )

        task = await asyncio.to_thread(use_sdk)
        assert task.status == "completed" and task.response["category"] in ("big", "small")
        [ingest_line] = [line for line in lines if line.startswith("Ingest secret")]
        secret = ingest_line.rsplit(": ", 1)[1].strip()
        keys["ingest secret"] = secret
        assert await _signed_event_status(url, secret) == 200
        assert await _signed_event_status(url, "whsec_" + "A" * 43 + "=") == 401
    finally:
        err = await _stop(proc)
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    requests = [e for e in events if e["event"] == "http.request"]
    assert requests and all(e.get("request_id") for e in requests)
    assert any(e["event"] == "task.created" for e in events)
    for secret in keys.values():
        assert secret not in err

    again, lines2, _ = await _serve(data_dir)
    await _stop(again)
    assert not _printed_keys(lines2), "development keys are printed only on first start"
    assert not any(line.startswith("Ingest secret") for line in lines2)


async def _signed_event_status(url: str, secret: str) -> int:
    """POST an (unknown-task) event signed with `secret`; 200 means the signature held."""
    from datetime import UTC, datetime

    from standardwebhooks.webhooks import Webhook

    body = json.dumps({"event_id": "cli-1", "type": "task.started", "task_id": "nope"})
    headers = {
        "webhook-id": "m",
        "webhook-timestamp": str(int(datetime.now(UTC).timestamp())),
        "webhook-signature": Webhook(secret).sign("m", datetime.now(UTC), body),
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + "/v1/events", data=body, headers=headers) as resp,
    ):
        return resp.status
