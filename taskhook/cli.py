"""The `taskhook` command: serve, receiver, dispatcher, migrate, accounts create,
accounts list, accounts new-keys, accounts set-callback, accounts rotate-secret and
deliveries create."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from taskhook import __version__
from taskhook.core import db, gctune, ingest_secret, secretbox, store
from taskhook.core.accounts import (
    MAX_GRACE_SECONDS,
    AccountListing,
    NewAccount,
    create_account,
    issue_keys,
    list_accounts,
    new_signing_secret,
)
from taskhook.core.errors import ApiError, ConfigError
from taskhook.core.logs import configure_logging, get_logger
from taskhook.core.secretbox import SecretKeyError
from taskhook.core.serialize import iso
from taskhook.core.settings import (
    Settings,
    load_settings,
    unknown_variable_warning,
    unknown_variables,
)
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
    for name, help_text, description in (
        (
            "serve",
            "run the receiver and the dispatcher in one process",
            "Run the HTTP API (v1, v2, event ingest, the Tasks tab) and callback delivery "
            "in one process, until SIGTERM or Ctrl-C. Without TASKHOOK_DATABASE_URL it "
            "starts an embedded PostgreSQL in TASKHOOK_DATA_DIR and, on an empty one, makes "
            "a development account and prints its keys once.",
        ),
        (
            "receiver",
            "run only the receiver role (the HTTP API)",
            "Run only the HTTP API (v1, v2, event ingest, the Tasks tab); callbacks are "
            "queued for a `taskhook dispatcher` sharing the database. Run as many as you like.",
        ),
    ):
        role = sub.add_parser(name, help=help_text, description=description)
        role.add_argument("--host", help="listen address (overrides TASKHOOK_HOST)")
        role.add_argument(
            "--port", type=int, help="listen port (overrides TASKHOOK_PORT; 0: any free port)"
        )
    sub.add_parser(
        "dispatcher",
        help="run only the dispatcher role (callback delivery; /healthz, /readyz and "
        "/metrics on TASKHOOK_DISPATCHER_PORT)",
        description="Deliver the callbacks that receivers queue in the database, until "
        "SIGTERM (in-flight callbacks get TASKHOOK_SHUTDOWN_GRACE seconds). Serves "
        "/healthz, /readyz and /metrics on TASKHOOK_DISPATCHER_PORT (0: none). Several "
        "dispatchers may share one database.",
    )
    sub.add_parser(
        "migrate",
        help="make the schema, or apply the migrations it lacks",
        description="Make the schema in an empty database, or apply the migrations an "
        "existing one lacks, then exit; running it again changes nothing. Every role also "
        "does this at start.",
    )
    accounts = sub.add_parser(
        "accounts",
        help="manage accounts",
        description="Create and list accounts, issue new API keys, and set an account's "
        "callback settings. API keys are stored only as SHA-256 digests: each is printed "
        "once, when it is made.",
    )
    accounts_sub = accounts.add_subparsers(dest="accounts_command", required=True)
    create = accounts_sub.add_parser(
        "create",
        help="create an account and print its keys",
        description="Create an account with a live key, a test key, a callback auth key and "
        "a signing secret, and print them once.",
    )
    create.add_argument("name", help="the account's name (shown by `accounts list`)")
    create.add_argument("--json", action="store_true", help="print one JSON object")
    listing = accounts_sub.add_parser(
        "list",
        help="list accounts with their key prefixes",
        description="List every account: its id, name, creation time and the first "
        "characters of each of its keys, revoked ones marked. The keys themselves cannot "
        "be shown again; `accounts new-keys` makes new ones.",
    )
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    new_keys = accounts_sub.add_parser(
        "new-keys",
        help="issue a new live and test key for an account, printed once",
        description="Issue a new live key and a new test key for an existing account and "
        "print them once, e.g. when the printed ones are lost. The previous keys keep "
        "working unless --revoke-old is given.",
    )
    new_keys.add_argument("account_id", help="the account's id (acct_...; see `accounts list`)")
    new_keys.add_argument(
        "--revoke-old",
        action="store_true",
        help="revoke every other key of the account (their Tasks tab sessions end too)",
    )
    new_keys.add_argument("--json", action="store_true", help="print one JSON object")
    callback = accounts_sub.add_parser(
        "set-callback",
        help="set (or --clear) the account's default callback URL",
        description="Set the callback URL (or e-mail address) used for the account's tasks "
        "created without a callback_url, or remove it with --clear.",
    )
    callback.add_argument("account_id", help="the account's id (acct_...)")
    target = callback.add_mutually_exclusive_group(required=True)
    target.add_argument("url", nargs="?", help="http(s) URL or e-mail address")
    target.add_argument("--clear", action="store_true", help="remove the default")
    rotate = accounts_sub.add_parser(
        "rotate-secret",
        help="give the account a new signing secret; the old one also signs for --grace s",
        description="Give the account a new signing secret for its callbacks and print it "
        "once. For --grace seconds every callback is also signed with the previous one, so "
        "receivers can switch without losing a callback.",
    )
    rotate.add_argument("account_id", help="the account's id (acct_...)")
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
    _warn_unknown_variables(args.command in ROLES)
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
    except KeyboardInterrupt:  # Ctrl-C in a command (the roles stop on it cleanly)
        return 130
    except SecretKeyError as exc:  # another key than the database's, or a broken key file
        print(f"taskhook: {exc}", file=sys.stderr)
        return 2
    except DatabaseRefused as exc:
        print(f"taskhook: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnreachable as exc:
        print(f"taskhook: {exc}", file=sys.stderr)
        return 1


ROLES = ("serve", "receiver", "dispatcher")  # the long-running commands; they log


def _warn_unknown_variables(role: bool) -> None:
    """A misspelled setting would otherwise be ignored without a word. A role logs it (its
    logs are where an operator looks); a command prints it. Neither stops."""
    for name, closest in unknown_variables(os.environ):
        if role:
            log.warning("settings.unknown_variable", variable=name, did_you_mean=closest)
        else:
            print(f"taskhook: warning: {unknown_variable_warning(name, closest)}", file=sys.stderr)


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


class DatabaseRefused(Exception):
    """The database URL is malformed, or the server refuses its user, password or name."""


# Connection failures that are the URL's fault: stopped at once, not waited out.
REFUSED = (
    ValueError,
    asyncpg.ClientConfigurationError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
)
START_WAIT = 30.0  # seconds a starting process waits for its database (e.g. a restart)


async def _first_pool(dsn: str) -> asyncpg.Pool:
    """A process may start before its database is up (compose, Kubernetes, a reboot):
    wait for it, bounded, then stop with a message instead of a traceback."""
    deadline = time.monotonic() + START_WAIT
    while True:
        try:
            return await db.create_pool(dsn, min_size=1, max_size=1)
        except REFUSED as exc:  # waiting does not mend a wrong URL, password or name
            raise DatabaseRefused(
                f"TASKHOOK_DATABASE_URL: the database cannot be used: {exc}"
            ) from None
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
    if args.accounts_command == "list":
        return await _list_accounts(settings, args)
    if args.accounts_command == "new-keys":
        return await _new_keys(settings, args)
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


def _keys_text(account: AccountListing) -> str:
    live = [k.prefix + "..." for k in account.keys if k.revoked_at is None]
    revoked = [k.prefix + "..." for k in account.keys if k.revoked_at is not None]
    text = " ".join(live) or "(no valid key)"
    return text + (f" (revoked: {' '.join(revoked)})" if revoked else "")


async def _list_accounts(settings: Settings, args: Any) -> int:
    dsn, _ = await _prepared(settings)
    pool = await db.create_pool(dsn, min_size=1, max_size=1)
    try:
        accounts = await list_accounts(pool)
    finally:
        await pool.close()
    if args.json:
        print(json.dumps([_account_json(a) for a in accounts]))
        return 0
    if not accounts:
        print("no accounts yet; make one with: taskhook accounts create NAME")
        return 0
    rows = [("ID", "NAME", "CREATED", "KEYS")]
    rows += [(a.account_id, a.name, iso(a.created_at) or "", _keys_text(a)) for a in accounts]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[3]]))
    return 0


def _account_json(account: AccountListing) -> dict[str, Any]:
    return {
        "account_id": account.account_id,
        "name": account.name,
        "created_at": iso(account.created_at),
        "keys": [
            {
                "prefix": k.prefix,
                "kind": "test" if k.is_test else "live",
                "created_at": iso(k.created_at),
                "revoked": k.revoked_at is not None,
                "revoked_at": iso(k.revoked_at),
            }
            for k in account.keys
        ],
    }


async def _new_keys(settings: Settings, args: Any) -> int:
    """The new keys go to the terminal only (printed once), never into the logs."""
    dsn, _ = await _prepared(settings)
    pool = await db.create_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            keys = await issue_keys(conn, args.account_id, revoke_old=args.revoke_old)
    finally:
        await pool.close()
    if keys is None:
        print(
            f"taskhook: no account {args.account_id} (see: taskhook accounts list)", file=sys.stderr
        )
        return 1
    log.info("account.keys_issued", account_id=keys.account_id, revoked=list(keys.revoked))
    if args.json:
        found = {
            "account_id": keys.account_id,
            "name": keys.name,
            "live_key": keys.live_key,
            "test_key": keys.test_key,
            "revoked": list(keys.revoked),
        }
        print(json.dumps(found))
        return 0
    print(f"New keys of {keys.name} ({keys.account_id}), shown once:")
    print(f"  live key:          {keys.live_key}")
    print(f"  test key:          {keys.test_key}")
    if args.revoke_old:
        gone = ", ".join(p + "..." for p in keys.revoked) or "none"
        print(f"Revoked the previous keys: {gone}")
    else:
        print("The previous keys still work; --revoke-old revokes them.")
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
    """On an empty embedded database, make a development account and show its keys once.
    On a restart, say which account is there and how to get new keys: they are stored
    only as digests, so the printed ones cannot be shown again."""
    pool = await db.create_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            if await store.count_accounts(conn) == 0:
                box = secretbox.load_or_create(settings)
                account = await create_account(conn, DEV_ACCOUNT_NAME, box)
                _print_account(account, "Development account (keys shown once)")
                return
            accounts = await list_accounts(conn)
    finally:
        await pool.close()
    dev = next((a for a in accounts if a.name == DEV_ACCOUNT_NAME), accounts[0])
    me = _invocation()
    valid = " ".join(p + "..." for p in dev.prefixes()) or "none valid"
    print(
        f"Account {dev.name} ({dev.account_id}) exists, keys {valid} (shown only when made). "
        f"New keys: {me} accounts new-keys {dev.account_id}",
        flush=True,
    )


def _invocation() -> str:
    """How to run this taskhook again: `taskhook` if PATH finds this one, else its path
    (`make run` runs .venv/bin/taskhook)."""
    me = sys.argv[0]
    found = shutil.which("taskhook")
    if me.endswith(".py") or (found and Path(found).resolve() == Path(me).resolve()):
        return "taskhook"
    return me


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


class CannotListen(Exception):
    """The listen address is taken (or not this machine's): a message, not a traceback."""


def _listen(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address of `host` before anything else starts, so a second
    `taskhook serve` on a taken port stops at once, before the database, with one line
    naming the address and how to choose another. They listen only once the app is up, so
    a connection is refused, not kept waiting, while the database starts."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:  # an unknown host name
        raise CannotListen(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (check --host or TASKHOOK_HOST)"
        ) from None
    sockets: list[socket.socket] = []
    chosen = port  # port 0: the first address picks a free port, the others take it too
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], chosen, *address[2:]))
            chosen = sock.getsockname()[1]
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise CannotListen(_taken(host, port, exc)) from None
    return sockets


def _taken(host: str, port: int, exc: OSError) -> str:
    running = "is another taskhook running? " if exc.errno == errno.EADDRINUSE else ""
    return (
        f"cannot listen on {host}:{port}: {exc.strerror or exc} ({running}choose another "
        "port with --port or TASKHOOK_PORT)"
    )


async def _serve(settings: Settings, args: Any) -> int:
    stop = _stop_event()
    try:
        sockets = _listen(settings.host, settings.port)
    except CannotListen as exc:
        print(f"taskhook: {exc}", file=sys.stderr)
        return 2
    try:
        return await _serve_on(settings, args, sockets, stop)
    except CannotListen as exc:  # another start bound the port too, and listened first
        print(f"taskhook: {exc}", file=sys.stderr)
        return 2
    finally:
        for sock in sockets:
            sock.close()


async def _serve_on(
    settings: Settings, args: Any, sockets: list[socket.socket], stop: asyncio.Event
) -> int:
    dsn, embedded = await _prepared(settings)
    if embedded:
        await _first_start(dsn, settings)
    make_app = create_serve_app if args.command == "serve" else create_app
    app = make_app(settings, dsn, ingest_secret=_ingest_secret(settings))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        for sock in sockets:
            await web.SockSite(runner, sock).start()
    except OSError as exc:
        await runner.cleanup()
        raise CannotListen(_taken(settings.host, settings.port, exc)) from None
    port = sockets[0].getsockname()[1]
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
                "(is another dispatcher running? choose another port with "
                "TASKHOOK_DISPATCHER_PORT, or 0 for none)",
                file=sys.stderr,
            )
            return 2
        gctune.tune_for_service()
        await dispatcher.run(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
