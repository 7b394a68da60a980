"""The `taskhook` command: serve, receiver, migrate, accounts create."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from taskhook import __version__, db, ingest_secret, store
from taskhook.accounts import NewAccount, create_account
from taskhook.dispatcher.loop import Dispatcher
from taskhook.errors import ApiError, ConfigError
from taskhook.logs import configure_logging, get_logger
from taskhook.queries import queries
from taskhook.receiver.app import create_app
from taskhook.settings import Settings, load_settings
from taskhook.tasks import check_callback_url

log = get_logger("taskhook.cli")
DEV_ACCOUNT_NAME = "development"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskhook", description=__doc__)
    parser.add_argument("--version", action="version", version=f"taskhook {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "run the receiver (and, later, the dispatcher)"),
        ("receiver", "run only the receiver role"),
    ):
        role = sub.add_parser(name, help=help_text)
        role.add_argument("--host", help="listen address (overrides TASKHOOK_HOST)")
        role.add_argument("--port", type=int, help="listen port (overrides TASKHOOK_PORT)")
    sub.add_parser("dispatcher", help="run only the dispatcher role (callback delivery)")
    sub.add_parser("migrate", help="apply schema.sql to the database")
    accounts = sub.add_parser("accounts", help="manage accounts")
    accounts_sub = accounts.add_subparsers(dest="accounts_command", required=True)
    create = accounts_sub.add_parser("create", help="create an account and print its keys")
    create.add_argument("name")
    create.add_argument("--json", action="store_true", help="print one JSON object")
    callback = accounts_sub.add_parser(
        "set-callback", help="set (or --clear) the account's default callback URL"
    )
    callback.add_argument("account_id")
    target = callback.add_mutually_exclusive_group(required=True)
    target.add_argument("url", nargs="?", help="http(s) URL or e-mail address")
    target.add_argument("--clear", action="store_true", help="remove the default")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        print(f"taskhook: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    runner = {
        "serve": _serve,
        "receiver": _serve,
        "dispatcher": _dispatch,
        "migrate": _migrate,
        "accounts": _accounts,
    }[args.command]
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    return asyncio.run(runner(settings, args))


async def _prepared(settings: Settings) -> tuple[str, bool]:
    """Start the embedded database if needed, apply the schema; return (dsn, embedded)."""
    embedded = settings.database_url is None
    dsn = await asyncio.to_thread(db.database_url, settings)
    pool = await db.create_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn)
    finally:
        await pool.close()
    return dsn, embedded


async def _migrate(settings: Settings, _args: Any) -> int:
    await _prepared(settings)
    print("schema applied")
    return 0


async def _accounts(settings: Settings, args: Any) -> int:
    if args.accounts_command == "set-callback":
        return await _set_callback(settings, args)
    dsn, _ = await _prepared(settings)
    pool = await db.create_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            account = await create_account(conn, args.name)
    finally:
        await pool.close()
    log.info("account.created", account_id=account.account_id)
    if args.json:
        print(json.dumps(account.as_json()))
    else:
        _print_account(account)
    return 0


async def _set_callback(settings: Settings, args: Any) -> int:
    url = None if args.clear else args.url
    if url is not None:
        try:
            check_callback_url(url, settings, "url")
        except ApiError as exc:
            print(f"taskhook: {exc.message}", file=sys.stderr)
            return 2
    dsn, _ = await _prepared(settings)
    pool = await db.create_pool(dsn, min_size=1, max_size=1)
    try:
        row = await store.set_default_callback_url(pool, args.account_id, url)
    finally:
        await pool.close()
    if row is None:
        print(f"taskhook: no account {args.account_id}", file=sys.stderr)
        return 1
    print(f"default callback URL of {args.account_id}: {url or '(none)'}")
    return 0


def _print_account(account: NewAccount, heading: str = "Account created") -> None:
    """Keys go to the terminal only, never into the logs."""
    lines = [
        f"{heading}: {account.name} ({account.account_id})",
        f"  live key:          {account.live_key}",
        f"  test key:          {account.test_key}",
        f"  callback auth key: {account.callback_auth_key}",
        f"  signing secret:    {account.signing_secret}",
    ]
    print("\n".join(lines), flush=True)


async def _first_start(dsn: str) -> None:
    """On an empty embedded database, make a development account and show its keys once."""
    pool = await db.create_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            if await conn.fetchval(queries["count_accounts"]) == 0:
                account = await create_account(conn, DEV_ACCOUNT_NAME)
                _print_account(account, "Development account (keys shown once)")
    finally:
        await pool.close()


def _ingest_secret(settings: Settings) -> str:
    """The events secret; a generated one is printed once (to the terminal, not the logs)."""
    secret, created = ingest_secret.load_or_create(settings)
    if created:
        print(
            f"Ingest secret (signs POST /v1/events; kept in {settings.data_dir}): {secret}",
            flush=True,
        )
    return secret


def _stop_event() -> asyncio.Event:
    """One event set by SIGTERM or SIGINT. Installed before we announce anything, so a
    signal that arrives as soon as we are up still shuts down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _serve(settings: Settings, args: Any) -> int:
    stop = _stop_event()
    dsn, embedded = await _prepared(settings)
    if embedded:
        await _first_start(dsn)
    app = create_app(
        settings,
        dsn,
        ingest_secret=_ingest_secret(settings),
        with_dispatcher=args.command == "serve",
    )
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else settings.port
    url = f"http://{settings.host}:{port}"
    print(f"taskhook {__version__} listening on {url} (API base {url}/v1)", flush=True)
    log.info("receiver.started", url=url, role=args.command)
    await stop.wait()
    log.info("receiver.stopping")
    await runner.cleanup()
    return 0


async def _dispatch(settings: Settings, _args: Any) -> int:
    """The dispatcher role alone: no HTTP server, stops on SIGTERM after draining."""
    stop = _stop_event()
    dsn, _ = await _prepared(settings)
    async with db.open_pool(settings, dsn) as pool:
        await Dispatcher(pool, dsn, settings).run(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
