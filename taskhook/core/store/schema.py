"""Schema migration: schema.sql applied under an advisory lock, skipped when current."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import asyncpg

from taskhook.core.logs import get_logger
from taskhook.core.store.queries import queries

log = get_logger("taskhook.db")

# Serializes concurrent `migrate` runs from replicas starting together.
_MIGRATE_LOCK_ID = 0x7A5B_400C
MIGRATE_ATTEMPTS = 5  # a deadlock with running processes' statements is retried this often


def schema_path() -> Path:
    """schema.sql ships inside the wheel; in a source checkout it sits at the root."""
    packaged = Path(__file__).with_name("schema.sql")
    return packaged if packaged.exists() else Path(__file__).resolve().parents[3] / "schema.sql"


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
                await conn.execute(queries["migrate_lock"], _MIGRATE_LOCK_ID)
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
