"""Database work of the bench: a fresh database per scenario (migrated and with one account
by the real CLI), its project made through the API, the ceilings' bare rows, the sizes and
dead tuples of the tables, and the end-of-run checks on `callback_succeeded`.

Every scenario that needs live tasks makes them through taskhook's API (the world does it:
bench/creator.py). The one SQL insert left here is the ceilings', see _CEILING_ROWS.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from bench import common
from bench.creator import basic_auth
from bench.service import Postgres, taskhook_env, taskhook_once

# The bare PostgreSQL loop of the ceilings (bench/ceilings.py) updates these rows by id.
# They stay an SQL insert, because that scenario measures PostgreSQL with no taskhook
# process running at all (no receiver to create tasks through), and its rows are only a
# fixture of the right size for taskhook's UPDATE + INSERT per event, reused cyclically;
# no taskhook code reads them. Ids are prefix || 16 hex digits of g (common.ref).
_CEILING_ROWS = """
INSERT INTO tasks (id, account_id, is_test, type, status, project, instruction,
                   callback_url, params, metadata)
SELECT id, $2, false, $3, 'pending', $4, $5, $6 || id, $7::jsonb, jsonb_build_object('index', g)
FROM generate_series(0, $8::bigint - 1) g,
     LATERAL (SELECT $1::text || lpad(to_hex(g), 16, '0') AS id) i
"""
_QUEUE_DEPTH = "SELECT count(*) FROM deliveries WHERE state IN ('pending', 'sending')"
_CHECK = """
SELECT count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'completed' AND callback_succeeded) AS succeeded,
       count(*) FILTER (WHERE status = 'completed' AND callback_succeeded IS NULL) AS unresolved,
       count(*) FILTER (WHERE status = 'completed' AND NOT callback_succeeded) AS failed
FROM tasks WHERE callback_url LIKE $1 || '%'
"""
_DELIVERY_CHECK = """
SELECT (SELECT count(*) FROM (SELECT task_id FROM deliveries GROUP BY task_id
                              HAVING count(*) > 1) x) AS tasks_with_2_deliveries,
       (SELECT count(*) FROM delivery_attempts WHERE attempt > 1) AS retried_attempts,
       (SELECT count(*) FROM deliveries WHERE state = 'succeeded') AS succeeded_deliveries
"""
SIZE_TABLES = ("tasks", "deliveries", "delivery_payloads", "delivery_attempts", "ingested_events")
_SIZES = """
SELECT c.relname AS name,
       pg_total_relation_size(c.oid) AS total_bytes,
       pg_relation_size(c.oid) AS heap_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       s.n_live_tup AS live_tuples,
       s.n_dead_tup AS dead_tuples
FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relname = ANY ($1::text[])
"""
# Cumulative counters of what PostgreSQL did besides taskhook's statements: checkpoints,
# WAL written (and its full-page images, which follow each checkpoint), autovacuum and
# autoanalyze runs per table. The soak prints their change per minute beside its p99.
_ACTIVITY = """
SELECT (SELECT num_timed + num_requested FROM pg_stat_checkpointer) AS checkpoints,
       (SELECT buffers_written FROM pg_stat_checkpointer) AS checkpoint_buffers,
       (SELECT wal_bytes FROM pg_stat_wal) AS wal_bytes,
       (SELECT wal_fpi FROM pg_stat_wal) AS wal_fpi,
       (SELECT coalesce(jsonb_object_agg(relname, autovacuum_count), '{}')::text
          FROM pg_stat_user_tables WHERE relname = ANY ($1::text[])) AS autovacuums,
       (SELECT coalesce(jsonb_object_agg(relname, autoanalyze_count), '{}')::text
          FROM pg_stat_user_tables WHERE relname = ANY ($1::text[])) AS autoanalyzes,
       (SELECT coalesce(string_agg(relid::regclass::text, ','), '')
          FROM pg_stat_progress_vacuum) AS vacuuming
"""


@dataclass
class Database:
    """A migrated scenario database with one account (and its live API key)."""

    dsn: str
    account_id: str
    live_key: str
    project_made: bool = False  # POST /v1/projects done (once a receiver is up)

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn)


async def prepare(pg: Postgres, name: str, secret: str) -> Database:
    """Fresh database; `taskhook migrate` and `taskhook accounts create bench --json`
    (which prints account_id, live_key, test_key, callback_auth_key, signing_secret)."""
    dsn = await pg.fresh_database(name)
    env = taskhook_env(dsn, secret, {})
    await taskhook_once(["migrate"], env)
    account = json.loads(await taskhook_once(["accounts", "create", "bench", "--json"], env))
    return Database(dsn, account["account_id"], account["live_key"])


async def create_project(base_url: str, key: str, name: str = common.PROJECT) -> None:
    """POST /v1/projects as the customer would; an existing one (409) is fine."""
    headers = {"Authorization": basic_auth(key)}
    body = {"name": name, "type": common.TASK_TYPE}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        session.post(base_url + "/v1/projects", json=body, headers=headers) as resp,
    ):
        if resp.status not in (200, 409):
            raise RuntimeError(f"POST /v1/projects: {resp.status} {await resp.text()}")


def new_prefix() -> str:
    return secrets.token_hex(4)


async def insert_ceiling_rows(
    conn: asyncpg.Connection, db: Database, prefix: str, count: int, route: str
) -> None:
    """`count` pending tasks with ids prefix+counter for the bare PostgreSQL loop."""
    await conn.execute(
        _CEILING_ROWS, prefix, db.account_id, common.TASK_TYPE, common.PROJECT,
        common.INSTRUCTION, route, json.dumps(common.PARAMS), count,
    )  # fmt: skip


async def queue_depth(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(_QUEUE_DEPTH))


async def check(conn: asyncpg.Connection, route: str) -> dict[str, int]:
    """callback_succeeded of every completed task whose callback URL starts with route,
    and duplicate deliveries or retried attempts anywhere in the database."""
    row = await conn.fetchrow(_CHECK, route)
    extra = await conn.fetchrow(_DELIVERY_CHECK)
    return {**dict(row), **dict(extra)}  # type: ignore[arg-type]


async def sizes(
    conn: asyncpg.Connection, tables: tuple[str, ...] = SIZE_TABLES
) -> dict[str, dict[str, Any]]:
    """Per table: total (heap + TOAST + indexes), heap and index sizes in MB, and the
    live and dead tuples of pg_stat_user_tables (which lag by up to a second or so)."""
    rows = await conn.fetch(_SIZES, list(tables))
    mb = 1024 * 1024
    out = {
        r["name"]: {
            "total_mb": round(r["total_bytes"] / mb, 1),
            "heap_mb": round(r["heap_bytes"] / mb, 1),
            "index_mb": round(r["index_bytes"] / mb, 1),
            "live_tuples": r["live_tuples"],
            "dead_tuples": r["dead_tuples"],
        }
        for r in rows
    }
    return {t: out[t] for t in tables if t in out}


async def activity(
    conn: asyncpg.Connection, tables: tuple[str, ...] = SIZE_TABLES
) -> dict[str, Any]:
    """PostgreSQL's cumulative checkpoint, WAL and autovacuum counters (see _ACTIVITY),
    and the tables a vacuum is working on right now."""
    r = await conn.fetchrow(_ACTIVITY, list(tables))
    return {
        "checkpoints": r["checkpoints"],
        "checkpoint_buffers": r["checkpoint_buffers"],
        "wal_bytes": int(r["wal_bytes"]),
        "wal_fpi": r["wal_fpi"],
        "autovacuums": json.loads(r["autovacuums"]),
        "autoanalyzes": json.loads(r["autoanalyzes"]),
        "vacuuming": [t for t in r["vacuuming"].split(",") if t],
    }


def activity_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What PostgreSQL did between two activity() snapshots."""

    def runs(key: str) -> dict[str, int]:
        got = {t: n - before[key].get(t, 0) for t, n in after[key].items()}
        return {t: n for t, n in got.items() if n}

    return {
        "checkpoints": after["checkpoints"] - before["checkpoints"],
        "checkpoint_buffers": after["checkpoint_buffers"] - before["checkpoint_buffers"],
        "wal_mb": round((after["wal_bytes"] - before["wal_bytes"]) / 1024 / 1024, 1),
        "wal_fpi": after["wal_fpi"] - before["wal_fpi"],
        "autovacuums": runs("autovacuums"),
        "autoanalyzes": runs("autoanalyzes"),
        "vacuuming_at_end": after["vacuuming"],
    }
