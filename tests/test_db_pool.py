"""The connection pool's settings: no reset query on release, no JIT."""

from __future__ import annotations

import socket
import time

import pytest

from taskhook.core.db import create_pool


async def test_release_runs_no_reset_query(dsn: str) -> None:
    """asyncpg would send RESET ALL/UNLISTEN/CLOSE ALL on every release (a round trip and
    a statement per acquire); taskhook keeps no session state, so it sends nothing."""
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
            raw = conn._con  # type: ignore[attr-defined]  # the proxied connection
            before = raw._protocol.queries_count
        async with pool.acquire() as again:
            assert again._con is raw  # type: ignore[attr-defined]
            assert raw._protocol.queries_count == before
            # An open transaction is still rolled back on release.
            tx = again.transaction()
            await tx.start()
            await again.execute("CREATE TEMP TABLE left_open (x int)")
        async with pool.acquire() as third:
            assert not third.is_in_transaction()
            assert await third.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
            assert await third.fetchval("SHOW jit") == "off"
    finally:
        await pool.close()


async def test_a_start_waits_for_the_database_then_stops_with_a_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No database at the start: taskhook waits (bounded), then exits 1 with a message
    naming TASKHOOK_DATABASE_URL instead of a traceback."""
    from taskhook import cli

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(cli, "START_WAIT", 1.5)
    began = time.monotonic()
    with pytest.raises(cli.DatabaseUnreachable, match="TASKHOOK_DATABASE_URL"):
        await cli._first_pool(f"postgresql://x@127.0.0.1:{port}/x")
    assert 1.5 <= time.monotonic() - began < 10


async def test_filter_queries_plan_per_call_and_the_rest_may_reuse_plans(dsn: str) -> None:
    """Hot-path statements may reuse generic plans (plan_cache_mode auto); filter queries
    run with force_custom_plan (their generic plan cannot use the filter's index)."""
    from taskhook.core.store import fetchval_filtered

    pool = await create_pool(dsn, min_size=1, max_size=1)
    setting = "SELECT current_setting('plan_cache_mode')"
    try:
        assert await pool.fetchval(setting) == "auto"
        assert await fetchval_filtered(pool, setting) == "force_custom_plan"
        assert await pool.fetchval(setting) == "auto"  # SET LOCAL: gone with its transaction
    finally:
        await pool.close()
