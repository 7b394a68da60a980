"""The claim's cost is bounded by the hosts with work and the rows taken, never by the
backlog (pgqueuer's test_query_plan_regression idea). A plan that reads every due row
makes each claim cost O(backlog) and the drain rate fall as the backlog grows; a host at
its in-flight cap whose due rows are still read slows every claim of every other host."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from taskhook.core.store.queries import queries
from taskhook.dispatcher.claims import ClaimConnection, claim_deliveries
from tests.conftest import SECRET_BOX, Api

BACKLOG = 5000


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out += _nodes(child)
    return out


async def _backlog(test_api: Api, pool: asyncpg.Pool, host: str, n: int) -> None:
    """n due deliveries to `host`, added after ANALYZE (the statistics say: almost none)."""
    await pool.execute(
        """WITH d AS (
               INSERT INTO deliveries (task_id, account_id, trigger, target, host, webhook_id)
               SELECT task_id, account_id, trigger, target, $1, 'msg_' || $1 || g
               FROM (SELECT * FROM deliveries LIMIT 1) d, generate_series(1, $2) g
               RETURNING id
           )
           INSERT INTO delivery_payloads (delivery_id, payload) SELECT id, '{}' FROM d""",
        host,
        n,
    )


async def _explain(claims: asyncpg.Connection, *args: Any) -> list[dict[str, Any]]:
    """The executed plan of one claim on a claim connection, the plan the dispatcher runs
    (prepared, so under the connection's plan_cache_mode; an EXPLAIN of the statement
    itself would plan it for these parameters), rolled back (EXPLAIN ANALYZE runs the
    UPDATE)."""
    tx = claims.transaction()
    await tx.start()
    try:
        await claims.execute(
            "PREPARE explained (int, float8, int, text[], int[], int, timestamptz, timestamptz,"
            " text[], timestamptz[]) AS " + queries["claim_deliveries"]
        )
        # EXECUTE takes no parameters; the claim window is open (NULLs, no marks: scan all).
        values = ", ".join([*(_literal(a) for a in args), "NULL", "NULL", "'{}'", "'{}'"])
        [row] = await claims.fetch(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE explained ({values})")
    finally:
        await tx.rollback()
        await claims.execute("DEALLOCATE ALL")
    raw = row[0]
    return _nodes((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"])


def _literal(value: Any) -> str:
    """SQL text for the test's own values: numbers, and lists of plain host names or counts
    (an untyped array literal takes the parameter's type)."""
    if isinstance(value, list):
        return "'{" + ",".join(str(v) for v in value) + "}'"
    return repr(value)


def _host_scans(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        n
        for n in nodes
        if n.get("Relation Name") == "deliveries" and n["Node Type"].endswith("Scan")
    ]


@pytest.fixture
async def claims(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """The connection the dispatcher claims on, as it opens it."""
    own = ClaimConnection(dsn)
    yield await own.get()
    await own.close()


async def _seed(test_api: Api, pool: asyncpg.Pool) -> None:
    await test_api.project()
    await test_api.task(callback_url="http://127.0.0.1:9/cb")
    await pool.execute("ANALYZE deliveries")  # statistics now say: one row


async def test_claim_reads_about_its_limit_not_the_backlog(
    test_api: Api, pool: asyncpg.Pool, claims: asyncpg.Connection
) -> None:
    """With 5,000 due deliveries and stale statistics, the claim walks the per-host index
    in order and reads about LIMIT rows: no bitmap scan, no hash join, no sort of the
    backlog."""
    await _seed(test_api, pool)
    await _backlog(test_api, pool, "a.example", BACKLOG)
    nodes = await _explain(claims, 100, 60, 1000, [], [], 0)
    scans = _host_scans(nodes)
    types = {n["Node Type"] for n in nodes}
    assert scans and all(n["Node Type"] in ("Index Scan", "Index Only Scan") for n in scans)
    assert {n.get("Index Name") for n in scans} <= {"deliveries_host_due_idx", "deliveries_pkey"}
    assert max(n["Actual Rows"] * n.get("Actual Loops", 1) for n in scans) <= 200
    assert "Bitmap Heap Scan" not in types
    # Nothing sorts or hashes the backlog: every sort and hash sees at most the rows taken.
    assert all(
        n["Actual Rows"] <= 200 for n in nodes if n["Node Type"] in ("Sort", "Hash", "Hash Join")
    )


async def test_a_host_at_its_cap_costs_nothing(
    test_api: Api, pool: asyncpg.Pool, claims: asyncpg.Connection
) -> None:
    """A host with 5,000 due rows whose in-flight count is at the cap: its rows are not
    read at all, and the other hosts' rows are claimed."""
    await _seed(test_api, pool)
    await _backlog(test_api, pool, "stuck.example", BACKLOG)
    await _backlog(test_api, pool, "b.example", 10)
    nodes = await _explain(claims, 100, 60, 200, ["stuck.example"], [200], 0)
    rows_read = sum(n["Actual Rows"] * n.get("Actual Loops", 1) for n in _host_scans(nodes))
    assert rows_read < 100, rows_read
    claimed = await claim_deliveries(claims, SECRET_BOX, 100, 60, 200, {"stuck.example": 200})
    assert {d.host for d in claimed} == {"b.example", "127.0.0.1"}
    assert len(claimed) == 11


async def test_each_host_gets_at_most_its_room(
    test_api: Api, pool: asyncpg.Pool, claims: asyncpg.Connection
) -> None:
    """The per-host cap counts what is already in flight: room = cap - busy."""
    await _seed(test_api, pool)
    await _backlog(test_api, pool, "a.example", 50)
    await _backlog(test_api, pool, "b.example", 50)
    claimed = await claim_deliveries(claims, SECRET_BOX, 100, 60, 10, {"a.example": 7})
    hosts = [d.host for d in claimed]
    assert hosts.count("a.example") == 3
    assert hosts.count("b.example") == 10
    assert hosts.count("127.0.0.1") == 1


async def test_a_host_not_listed_gets_the_room_left_by_the_unlisted_count(
    test_api: Api, pool: asyncpg.Pool, claims: asyncpg.Connection
) -> None:
    """A claim beside another passes what that one may take of any host it does not list
    (taskhook/dispatcher/claims.py): room = cap - unlisted for those hosts."""
    await _seed(test_api, pool)
    await _backlog(test_api, pool, "a.example", 50)
    await _backlog(test_api, pool, "b.example", 50)
    claimed = await claim_deliveries(claims, SECRET_BOX, 100, 60, 10, {"a.example": 7}, unlisted=4)
    hosts = [d.host for d in claimed]
    assert hosts.count("a.example") == 3
    assert hosts.count("b.example") == 6
    assert hosts.count("127.0.0.1") == 1


async def test_the_claim_reuses_one_generic_plan(
    test_api: Api, pool: asyncpg.Pool, claims: asyncpg.Connection
) -> None:
    """On the claim connection the claim is planned once and its plan reused (planning it
    cost PostgreSQL more than running it: 0.75 ms against 0.3 ms a claim at 500 events/s),
    and bitmap scans (a sort of every due row of a host) are off."""
    await _seed(test_api, pool)
    await _backlog(test_api, pool, "a.example", 500)
    for _ in range(8):
        await claim_deliveries(claims, SECRET_BOX, 10, 60, 200, {})
    generic, custom = await claims.fetchrow(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
        queries["claim_deliveries"],
    )
    assert (generic, custom) == (8, 0)
    assert await claims.fetchval("SHOW enable_bitmapscan") == "off"


async def test_the_generic_plan_finds_the_chosen_rows_by_key(
    test_api: Api, pool: asyncpg.Pool, claims: asyncpg.Connection
) -> None:
    """A generic plan does not know the claim's LIMIT and guesses a tenth of the backlog;
    had it joined the chosen rows to deliveries, it would hash them and read the whole
    primary key for every claim, however few rows it claims. The chosen
    ids go to the UPDATE as an array, so it probes the key once a row at any estimate."""
    await _seed(test_api, pool)
    await _backlog(test_api, pool, "a.example", 10 * BACKLOG)
    await pool.execute("ANALYZE deliveries")  # the statistics know the backlog
    nodes = await _explain(claims, 5, 60, 1000, [], [], 0)
    by_key = [n for n in _host_scans(nodes) if n.get("Index Name") == "deliveries_pkey"]
    assert by_key and all(n["Actual Rows"] * n.get("Actual Loops", 1) <= 5 for n in by_key)
