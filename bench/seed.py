"""Database work of the bench: a fresh database per scenario (migrated and with one account
by the real CLI), tasks and due deliveries made in bulk with generate_series, and the
end-of-run checks on `callback_succeeded`."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

import asyncpg

from bench import common
from bench.service import Postgres, taskhook_env, taskhook_once

# Task ids are prefix || 16 hex digits of g, exactly as common.task_id builds them.
# The callback URL is routes[g % 10] || id: ten slots, so 10 % of tasks can go elsewhere.
_INSERT_TASKS = """
INSERT INTO tasks (id, account_id, is_test, type, status, project, instruction,
                   callback_url, params, metadata, response, completed_at,
                   customer_review_status)
SELECT id, $2, false, $3, $4, $5, $6, ($7::text[])[(g % 10)::int + 1] || id, $8::jsonb,
       jsonb_build_object('index', g),
       CASE WHEN $4 = 'completed' THEN $9::jsonb END,
       CASE WHEN $4 = 'completed' THEN now() END,
       CASE WHEN $4 = 'completed' THEN 'pending' END
FROM generate_series($10::bigint, $11::bigint) g,
     LATERAL (SELECT $1::text || lpad(to_hex(g), 16, '0') AS id) i
"""
# Due deliveries for every task of a prefix, in one statement (the drain's "enqueue").
_INSERT_DELIVERIES = """
WITH d AS (
    INSERT INTO deliveries (task_id, account_id, trigger, target, host, webhook_id)
    SELECT t.id, t.account_id, 'completed', t.callback_url, $2, 'msg_' || t.id
    FROM tasks t
    WHERE t.id LIKE $1 || '%'
    ORDER BY t.id
    RETURNING id, task_id
)
INSERT INTO delivery_payloads (delivery_id, payload)
SELECT d.id, replace($3, $4, d.task_id) FROM d
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


@dataclass
class Database:
    """A migrated scenario database with one account."""

    dsn: str
    account_id: str

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn)


async def prepare(pg: Postgres, name: str, secret: str) -> Database:
    """Fresh database; `taskhook migrate` and `taskhook accounts create bench --json`."""
    dsn = await pg.fresh_database(name)
    env = taskhook_env(dsn, secret, {})
    await taskhook_once(["migrate"], env)
    account = json.loads(await taskhook_once(["accounts", "create", "bench", "--json"], env))
    return Database(dsn, account["account_id"])


def new_prefix() -> str:
    return secrets.token_hex(4)


async def insert_tasks(
    conn: asyncpg.Connection,
    db: Database,
    prefix: str,
    count: int,
    routes: list[str],
    *,
    status: str = "pending",
    start: int = 0,
) -> None:
    """`count` live tasks with ids prefix+counter; routes: 10 callback URL bases."""
    assert len(routes) == 10
    params = json.dumps(common.PARAMS)
    await conn.execute(
        _INSERT_TASKS, prefix, db.account_id, common.TASK_TYPE, status, common.PROJECT,
        common.INSTRUCTION, routes, params, common.RESPONSE_JSON, start, start + count - 1,
    )  # fmt: skip


async def enqueue_deliveries(conn: asyncpg.Connection, prefix: str, host: str) -> str:
    """One due delivery per task of the prefix, committed at once; returns the status."""
    async with conn.transaction():
        status = await conn.execute(
            _INSERT_DELIVERIES, prefix, host, common.callback_template(), common.TASK_ID_MARK
        )
        await conn.execute("SELECT pg_notify('taskhook_deliveries', '')")
    return str(status)


async def queue_depth(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(_QUEUE_DEPTH))


async def check(conn: asyncpg.Connection, route: str) -> dict[str, int]:
    """callback_succeeded of every completed task whose callback URL starts with route,
    and duplicate deliveries or retried attempts anywhere in the database."""
    row = await conn.fetchrow(_CHECK, route)
    extra = await conn.fetchrow(_DELIVERY_CHECK)
    return {**dict(row), **dict(extra)}  # type: ignore[arg-type]
