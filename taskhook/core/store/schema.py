"""Schema migration: a new database is made from schema.sql; an existing one gets the
numbered migrations it has not had. Either runs under an advisory lock, one replica at a
time, and nothing runs (no lock is taken) when the database is already current."""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from taskhook.core.logs import get_logger
from taskhook.core.store import Connection
from taskhook.core.store.queries import queries

log = get_logger("taskhook.db")

# Serializes concurrent `migrate` runs from replicas starting together.
_MIGRATE_LOCK_ID = 0x7A5B_400C
MIGRATE_ATTEMPTS = 5  # a deadlock with running processes' statements is retried this often
_MIGRATION_NAME = re.compile(r"^(\d{3})_(\w+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def _shipped(name: str) -> Path:
    """A file or folder shipped inside the wheel; in a source checkout, at the root."""
    packaged = Path(__file__).with_name(name)
    return packaged if packaged.exists() else Path(__file__).resolve().parents[3] / name


def schema_path() -> Path:
    return _shipped("schema.sql")


def migrations() -> list[Migration]:
    """migrations/NNN_name.sql in order; a gap in the numbers is a packaging mistake."""
    found = []
    for path in sorted(_shipped("migrations").glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path.name}: a migration is named NNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise ValueError("migrations are numbered 001, 002, ... without a gap")
    return found


def digest() -> str:
    """Of schema.sql and every migration: a change to any of them is a new schema."""
    h = hashlib.sha256(schema_path().read_bytes())
    for m in migrations():
        h.update(f"\0{m.version}\0{m.sql}".encode())
    return h.hexdigest()


async def migrate(conn: Connection) -> None:
    """Bring the database to schema.sql's shape, unless it has it already (then nothing is
    locked). A deadlock with the running processes' statements (DDL locks tables they use)
    is retried: the transaction rolls back whole, and the deadlock's other side goes on."""
    current = digest()
    if await _applied_digest(conn) == current:
        log.info("schema.current", digest=current[:12])
        return
    for attempt in range(1, MIGRATE_ATTEMPTS + 1):
        try:
            async with conn.transaction():
                await conn.execute(queries["migrate_lock"], _MIGRATE_LOCK_ID)
                if await _applied_digest(conn) != current:  # not applied by another meanwhile
                    await _apply(conn)
                    await conn.execute(queries["record_schema_digest"], current)
            break
        except asyncpg.DeadlockDetectedError:
            if attempt == MIGRATE_ATTEMPTS:
                raise
            log.warning("schema.deadlock_retried", attempt=attempt, exc_info=True)
            await asyncio.sleep(0.1 * attempt)
    log.info("schema.applied", digest=current[:12])


async def _apply(conn: Connection) -> None:
    every = migrations()
    if not await conn.fetchval(queries["schema_exists"]):
        await conn.execute(schema_path().read_text())
        pending = every
    else:
        applied = await _applied_versions(conn)
        pending = [m for m in every if m.version not in applied]
        for m in pending:
            await conn.execute(m.sql)
            log.info("schema.migration_applied", version=m.version, name=m.name)
    await conn.executemany(queries["record_migration"], [(m.version, m.name) for m in pending])


async def _applied_versions(conn: Connection) -> set[int]:
    """None recorded before migration 002: the database was made by the idempotent script
    that is now migration 001, and every migration from 001 on applies."""
    if not await conn.fetchval(queries["migrations_recorded"]):
        return set()
    return {row["version"] for row in await conn.fetch(queries["applied_migrations"])}


async def _applied_digest(conn: Connection) -> str | None:
    """The digest recorded by the last migrate; None before the first (no table yet)."""
    try:
        async with conn.transaction():  # a missing table must not abort an outer transaction
            value = await conn.fetchval(queries["applied_schema_digest"])
    except asyncpg.UndefinedTableError:
        return None
    return str(value) if value is not None else None
