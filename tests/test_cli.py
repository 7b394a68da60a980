"""The `taskhook` command as a user runs it: real subprocesses, real databases."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
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


def _subparsers(parser: argparse.ArgumentParser, words: str = "taskhook") -> Iterator[Any]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{words} {name}", sub
                yield from _subparsers(sub, f"{words} {name}")


def test_every_subcommand_has_a_description_and_its_arguments_help() -> None:
    """`taskhook X --help` says what X does (more than the one-line list entry), and
    every positional argument says what it is."""
    found = dict(_subparsers(_parser()))
    assert {"taskhook serve", "taskhook accounts new-keys", "taskhook accounts list"} <= set(found)
    for words, sub in found.items():
        assert sub.description and len(sub.description) > 60, words
        for action in sub._actions:
            if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{words}: {action.dest}"


async def test_a_taken_port_is_one_line_and_exit_2(data_dir: Path) -> None:
    """A second `taskhook serve` on a taken port stops at once, before the database, with
    one line naming the address and how to choose another; no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args, env in (
            (["serve", "--port", str(port)], {}),
            (["receiver"], {"TASKHOOK_PORT": str(port)}),
        ):
            code, _, err = await _run(*args, env=_env(TASKHOOK_DATA_DIR=str(data_dir), **env))
            assert code == 2, err
            [line] = [line for line in err.splitlines() if not line.startswith("{")]
            assert f"127.0.0.1:{port}" in line and "in use" in line, line
            assert "--port" in line and "TASKHOOK_PORT" in line, line
            assert "Traceback" not in err
            assert not (data_dir / "pgdata").exists(), "the database started first"


async def test_an_unknown_setting_warns_and_names_the_closest(dsn: str) -> None:
    """TASKHOOK_PROT is not silently ignored: a command prints a warning naming
    TASKHOOK_PORT and goes on; variables read outside the settings are quiet."""
    env = _env(TASKHOOK_DATABASE_URL=dsn, TASKHOOK_PROT="9000", TASKHOOK_FUZZ_EXAMPLES="3")
    code, out, err = await _run("migrate", env=env)
    assert code == 0, err
    assert "schema applied" in out
    [line] = [line for line in err.splitlines() if "TASKHOOK_PROT" in line]
    assert "warning" in line and "did you mean TASKHOOK_PORT?" in line, line
    assert "TASKHOOK_FUZZ_EXAMPLES" not in err


async def test_accounts_list_and_new_keys(dsn: str, pool: asyncpg.Pool) -> None:
    """`accounts list` shows each account's key prefixes (never a key); `new-keys` issues
    working keys once, the old ones still valid; `--revoke-old` revokes the others."""
    env = _env(TASKHOOK_DATABASE_URL=dsn)
    _, out, _ = await _run("accounts", "create", "Lost Keys", "--json", env=env)
    first = json.loads(out)
    account_id = first["account_id"]
    code, out, err = await _run("accounts", "list", "--json", env=env)
    assert code == 0, err
    [listed] = [a for a in json.loads(out) if a["account_id"] == account_id]
    assert listed["name"] == "Lost Keys" and listed["created_at"].endswith("Z")
    assert [(k["prefix"], k["kind"], k["revoked"]) for k in listed["keys"]] == [
        (first["live_key"][:9], "live", False),
        (first["test_key"][:9], "test", False),
    ]
    code, out, _ = await _run("accounts", "list", env=env)
    assert code == 0
    [row] = [line for line in out.splitlines() if account_id in line]
    assert "Lost Keys" in row and first["live_key"][:9] in row and first["live_key"] not in row

    code, out, err = await _run("accounts", "new-keys", account_id, env=env)
    assert code == 0, err
    second = _printed_keys(out.splitlines())
    assert second["live key"].startswith("live_") and second["test key"].startswith("test_")
    for key in (*second.values(), first["live_key"], first["test_key"]):
        assert await authenticate(pool, key) is not None, key
        assert key not in err  # printed, never logged

    code, out, err = await _run(
        "accounts", "new-keys", account_id, "--revoke-old", "--json", env=env
    )
    assert code == 0, err
    third = json.loads(out)
    assert sorted(third["revoked"]) == sorted(
        k[:9] for k in (first["live_key"], first["test_key"], *second.values())
    )
    for key in (first["live_key"], first["test_key"], *second.values()):
        assert await authenticate(pool, key) is None, key
    live = await authenticate(pool, third["live_key"])
    assert live is not None and live.account_id == account_id and not live.is_test
    _, out, _ = await _run("accounts", "list", "--json", env=env)
    [listed] = [a for a in json.loads(out) if a["account_id"] == account_id]
    assert [k["revoked"] for k in listed["keys"]] == [True] * 4 + [False] * 2

    code, out, err = await _run("accounts", "new-keys", "acct_nope", env=env)
    assert code == 1 and out == ""
    [line] = [line for line in err.splitlines() if not line.startswith("{")]
    assert "acct_nope" in line and "Traceback" not in err


@pytest.mark.parametrize(
    "url",
    [
        "notadsn",
        "postgresql://u@127.0.0.1:notaport/db",
        "{server}/t_no_such_database",  # the server answers: no such database
    ],
)
async def test_an_unusable_database_url_is_one_line_at_once(server_dsn: str, url: str) -> None:
    """A malformed URL or a database the server refuses stops the start at once (not
    after the wait for a database that is still starting) with one line, exit 2."""
    from tests.conftest import with_database

    if url.startswith("{server}"):
        url = with_database(server_dsn, url.rsplit("/", 1)[1])
    started = asyncio.get_running_loop().time()
    code, _, err = await _run("migrate", env=_env(TASKHOOK_DATABASE_URL=url))
    assert code == 2, err
    assert asyncio.get_running_loop().time() - started < 20
    [line] = [line for line in err.splitlines() if not line.startswith("{")]
    assert "TASKHOOK_DATABASE_URL" in line and "Traceback" not in err, err


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


async def _serve(data_dir: Path, **extra: str) -> tuple[asyncio.subprocess.Process, list[str], str]:
    proc = await asyncio.create_subprocess_exec(
        TASKHOOK,
        "serve",
        "--port",
        "0",
        env=_env(TASKHOOK_DATA_DIR=str(data_dir), **extra),
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

    again, lines2, _ = await _serve(data_dir, TASKHOOK_PROT="9000")
    err = await _stop(again)
    assert not _printed_keys(lines2), "development keys are printed only on first start"
    assert not any(line.startswith("Ingest secret") for line in lines2)
    # The restart says which account is there, by key prefix, and how to get new keys.
    [exists] = [line for line in lines2 if "exists" in line]
    assert keys["live key"][:9] in exists and keys["test key"][:9] in exists, exists
    assert keys["live key"] not in exists
    assert "accounts new-keys acct_" in exists, exists
    # A role logs a misspelled setting as a warning and starts all the same.
    [warning] = [
        e
        for line in err.splitlines()
        if line.startswith("{") and (e := json.loads(line))["event"] == "settings.unknown_variable"
    ]
    assert warning["level"] == "warning"
    assert (warning["variable"], warning["did_you_mean"]) == ("TASKHOOK_PROT", "TASKHOOK_PORT")


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
