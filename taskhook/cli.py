"""The `taskhook` command: serve, receiver, dispatcher, migrate, accounts create,
accounts set-callback, accounts rotate-secret and deliveries create."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiohttp import web

from taskhook import __version__
from taskhook.core import db, gctune, ingest_secret, secretbox, store
from taskhook.core.accounts import MAX_GRACE_SECONDS, NewAccount, create_account, new_signing_secret
from taskhook.core.errors import ApiError, ConfigError
from taskhook.core.logs import configure_logging, get_logger
from taskhook.core.secretbox import SecretKeyError
from taskhook.core.serialize import iso
from taskhook.core.settings import Settings, load_settings
from taskhook.core.store import schema
from taskhook.core.tasks import check_callback_url
from taskhook.dispatcher import ops_server
from taskhook.dispatcher.loop import Dispatcher
from taskhook.receiver.app import create_app
from taskhook.serve import create_serve_app
from taskhook.v2 import deliveries as v2_deliveries

log = get_logger("taskhook.cli")
DEV_ACCOUNT_NAME = "development"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskhook", description=__doc__)
    parser.add_argument("--version", action="version", version=f"taskhook {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "run the receiver and the dispatcher in one process"),
        ("receiver", "run only the receiver role (the HTTP API)"),
    ):
        role = sub.add_parser(name, help=help_text)
        role.add_argument("--host", help="listen address (overrides TASKHOOK_HOST)")
        role.add_argument("--port", type=int, help="listen port (overrides TASKHOOK_PORT)")
    sub.add_parser(
        "dispatcher",
        help="run only the dispatcher role (callback delivery; /healthz, /readyz and "
        "/metrics on TASKHOOK_DISPATCHER_PORT)",
    )
    sub.add_parser("migrate", help="make the schema, or apply the migrations it lacks")
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
    rotate = accounts_sub.add_parser(
        "rotate-secret",
        help="give the account a new signing secret; the old one also signs for --grace s",
    )
    rotate.add_argument("account_id")
    rotate.add_argument(
        "--grace", type=int, default=86400, help="seconds the old secret keeps signing"
    )
    v2_deliveries.add_parser(sub)
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
        "deliveries": _deliveries,
    }[args.command]
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    try:
        return asyncio.run(runner(settings, args))
    except SecretKeyError as exc:  # another key than the database's, or a broken key file
        print(f"taskhook: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnreachable as exc:
        print(f"taskhook: {exc}", file=sys.stderr)
        return 1


async def _prepared(settings: Settings) -> tuple[str, bool]:
    """Start the embedded database if needed, apply the schema; return (dsn, embedded)."""
    embedded = settings.database_url is None
    if embedded:
        # Unset or empty: fine on a laptop, a silent data split in a deployment.
        log.warning(
            "database.embedded",
            data_dir=str(settings.data_dir.expanduser().resolve() / "pgdata"),
            hint="TASKHOOK_DATABASE_URL is unset or empty; set it to use your PostgreSQL",
        )
    dsn = await asyncio.to_thread(db.database_url, settings)
    pool = await _first_pool(dsn)
    try:
        async with pool.acquire() as conn:
            await schema.migrate(conn)
            await secretbox.bind(conn, secretbox.load_or_create(settings))
    finally:
        await pool.close()
    return dsn, embedded


class DatabaseUnreachable(Exception):
    """The database did not answer within START_WAIT seconds of the start."""


START_WAIT = 30.0  # seconds a starting process waits for its database (e.g. a restart)


async def _first_pool(dsn: str) -> asyncpg.Pool:
    """A process may start before its database is up (compose, Kubernetes, a reboot):
    wait for it, bounded, then stop with a message instead of a traceback."""
    deadline = time.monotonic() + START_WAIT
    while True:
        try:
            return await db.create_pool(dsn, min_size=1, max_size=1)
        except db.DATABASE_DOWN as exc:
            if time.monotonic() >= deadline:
                raise DatabaseUnreachable(
                    f"the database did not answer within {START_WAIT:.0f} s "
                    f"({type(exc).__name__}); check TASKHOOK_DATABASE_URL"
                ) from None
            log.warning("database.waiting", error=type(exc).__name__)
            await asyncio.sleep(1.0)


async def _migrate(settings: Settings, _args: Any) -> int:
    await _prepared(settings)
    print("schema applied")
    return 0


async def _accounts(settings: Settings, args: Any) -> int:
    if args.accounts_command == "set-callback":
        return await _set_callback(settings, args)
    if args.accounts_command == "rotate-secret":
        return await _rotate_secret(settings, args)
    dsn, _ = await _prepared(settings)
    pool = await db.create_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            account = await create_account(conn, args.name, secretbox.load_or_create(settings))
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


async def _deliveries(settings: Settings, args: Any) -> int:
    dsn, _ = await _prepared(settings)
    async with db.open_pool(settings, dsn) as pool:
        return await v2_deliveries.run_command(pool, args)


async def _rotate_secret(settings: Settings, args: Any) -> int:
    """The new secret goes to the terminal only (printed once), never into the logs."""
    if not 0 <= args.grace <= MAX_GRACE_SECONDS:
        print(f"taskhook: --grace must be 0..{MAX_GRACE_SECONDS} seconds", file=sys.stderr)
        return 2
    dsn, _ = await _prepared(settings)
    box = secretbox.load_or_create(settings)
    secret = new_signing_secret()
    pool = await db.create_pool(dsn, min_size=1, max_size=1)
    try:
        sealed = box.seal(secret, args.account_id, secretbox.SIGNING_SECRET)
        row = await store.rotate_signing_secret(pool, args.account_id, sealed, args.grace)
    finally:
        await pool.close()
    if row is None:
        print(f"taskhook: no account {args.account_id}", file=sys.stderr)
        return 1
    log.info("account.signing_secret_rotated", account_id=args.account_id, grace=args.grace)
    print(f"new signing secret of {args.account_id}: {secret}")
    print(
        f"the previous one also signs until: {iso(row['old_secret_until']) or '(no grace period)'}"
    )
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


async def _first_start(dsn: str, settings: Settings) -> None:
    """On an empty embedded database, make a development account and show its keys once."""
    pool = await db.create_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            if await store.count_accounts(conn) == 0:
                box = secretbox.load_or_create(settings)
                account = await create_account(conn, DEV_ACCOUNT_NAME, box)
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
        await _first_start(dsn, settings)
    make_app = create_serve_app if args.command == "serve" else create_app
    app = make_app(settings, dsn, ingest_secret=_ingest_secret(settings))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else settings.port
    url = f"http://{settings.host}:{port}"
    print(f"taskhook {__version__} listening on {url} (API base {url}/v1)", flush=True)
    if settings.allow_private_targets:
        print(
            "Callbacks and imports may reach private and loopback addresses "
            "(TASKHOOK_ALLOW_PRIVATE_TARGETS=1): fine on your own machine, never in production.",
            flush=True,
        )
    log.info("receiver.started", url=url, role=args.command)
    gctune.tune_for_service()
    await stop.wait()
    log.info("receiver.stopping")
    await runner.cleanup()
    return 0


async def _dispatch(settings: Settings, _args: Any) -> int:
    """The dispatcher role alone, with its ops server (/healthz, /readyz, /metrics) on
    TASKHOOK_DISPATCHER_PORT; stops on SIGTERM after draining, the ops server last."""
    stop = _stop_event()
    dsn, _ = await _prepared(settings)
    async with db.open_pool(settings, dsn) as pool, contextlib.AsyncExitStack() as stack:
        dispatcher = Dispatcher(pool, dsn, settings)
        try:
            await stack.enter_async_context(ops_server.serving(settings, pool, dispatcher))
        except OSError as exc:
            print(
                f"taskhook: the dispatcher's ops server cannot listen on "
                f"{settings.host}:{settings.dispatcher_port}: {exc.strerror or exc} "
                "(choose another TASKHOOK_DISPATCHER_PORT, or 0 for none)",
                file=sys.stderr,
            )
            return 1
        gctune.tune_for_service()
        await dispatcher.run(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
