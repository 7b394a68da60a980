"""Data access of the Tasks tab: named queries of taskhook/queries.sql (the `web_` section),
as in taskhook/store.py, which the pages also use for what the API already does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskhook.accounts import Principal
from taskhook.queries import queries
from taskhook.store import Conn, Row, TaskFilters, run_filtered

Cursor = tuple[datetime, str] | None


@dataclass(frozen=True, slots=True)
class PageFilters:
    """The API's TaskFilters plus what only the Tasks tab filters on (None: not filtered)."""

    api: TaskFilters
    work_started: bool | None = None  # Queued (False) vs In Progress (True)
    redone: bool | None = None  # Redo

    def args(self) -> tuple[Any, ...]:
        return (*self.api.args(), self.work_started, self.redone)


def _who(p: Principal) -> tuple[str, bool]:
    return p.account_id, p.is_test


async def insert_session(
    conn: Conn, token_hash: bytes, key_hash: bytes, ttl_seconds: float
) -> Row | None:
    """None: the key is not a valid key."""
    return await conn.fetchrow(queries["web_insert_session"], token_hash, key_hash, ttl_seconds)


async def session_principal(conn: Conn, token_hash: bytes) -> Principal | None:
    row = await conn.fetchrow(queries["web_session"], token_hash)
    if row is None:
        return None
    return Principal(row["account_id"], row["name"], row["is_test"], row["default_callback_url"])


async def delete_session(conn: Conn, token_hash: bytes) -> None:
    await conn.execute(queries["web_delete_session"], token_hash)


async def list_tasks(
    conn: Conn, p: Principal, filters: PageFilters, after: Cursor, limit: int
) -> list[Row]:
    at, task_id = after if after else (None, None)
    rows: list[Row] = await run_filtered(
        conn, "fetch", queries["web_list_tasks"], *_who(p), *filters.args(), at, task_id, limit
    )
    return rows


async def count_tasks(conn: Conn, p: Principal, filters: PageFilters) -> int:
    return int(
        await run_filtered(conn, "fetchval", queries["web_count_tasks"], *_who(p), *filters.args())
    )


async def batch_names(conn: Conn, p: Principal) -> list[str]:
    return [r["name"] for r in await conn.fetch(queries["web_batch_names"], *_who(p))]
