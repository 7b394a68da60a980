"""Data access: the only module that runs SQL. Every query comes from queries.sql by name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from taskhook.accounts import Principal
from taskhook.errors import Conflict
from taskhook.queries import queries

Conn = asyncpg.Connection | asyncpg.Pool
Row = asyncpg.Record


@dataclass(frozen=True, slots=True)
class TaskFilters:
    """Filters of GET /v1/tasks; None means 'not filtered'."""

    project: str | None = None
    batch: str | None = None
    statuses: list[str] | None = None
    type: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    completed_after: datetime | None = None
    completed_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    review_statuses: list[str] | None = None
    unique_ids: list[str] | None = None
    tags: list[str] | None = None

    def args(self) -> tuple[Any, ...]:
        return (
            self.project,
            self.batch,
            self.statuses,
            self.type,
            self.created_after,
            self.created_before,
            self.completed_after,
            self.completed_before,
            self.updated_after,
            self.updated_before,
            self.review_statuses,
            self.unique_ids,
            self.tags,
        )


def _who(p: Principal) -> tuple[str, bool]:
    return p.account_id, p.is_test


async def token_key(conn: Conn) -> bytes:
    key = await conn.fetchval(queries["server_token_key"])
    return bytes(key)


# --- projects -------------------------------------------------------------------------


async def insert_project(
    conn: Conn,
    p: Principal,
    name: str,
    type_: str,
    param_history: list[dict[str, Any]],
    rapid: bool,
    studio: bool,
    dataset_id: str | None,
) -> Row:
    row = await conn.fetchrow(
        queries["insert_project"], *_who(p), name, type_, param_history, rapid, studio, dataset_id
    )
    if row is None:
        raise Conflict(f"A project named '{name}' already exists.")
    return row


async def get_project(conn: Conn, p: Principal, name: str) -> Row | None:
    return await conn.fetchrow(queries["get_project"], *_who(p), name)


async def list_projects(conn: Conn, p: Principal) -> list[Row]:
    return await conn.fetch(queries["list_projects"], *_who(p))


async def append_project_params(
    conn: Conn, p: Principal, name: str, params: dict[str, Any]
) -> Row | None:
    return await conn.fetchrow(queries["append_project_params"], *_who(p), name, params)


# --- batches --------------------------------------------------------------------------


async def insert_batch(
    conn: Conn,
    p: Principal,
    project_id: int,
    name: str,
    status: str,
    callback: str,
    calibration: bool,
    self_label: bool,
    metadata: dict[str, Any],
) -> None:
    batch_id = await conn.fetchval(
        queries["insert_batch"],
        *_who(p),
        project_id,
        name,
        status,
        callback,
        calibration,
        self_label,
        metadata,
    )
    if batch_id is None:
        raise Conflict(f"A batch named '{name}' already exists.")


async def get_batch(conn: Conn, p: Principal, name: str) -> Row | None:
    return await conn.fetchrow(queries["get_batch"], *_who(p), name)


async def batch_task_counts(conn: Conn, p: Principal, name: str) -> dict[str, int]:
    rows = await conn.fetch(queries["batch_task_counts"], *_who(p), name)
    return {row["status"]: row["n"] for row in rows}


async def list_batches(
    conn: Conn,
    p: Principal,
    *,
    project: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    status: str | None,
    limit: int,
    offset: int,
) -> list[Row]:
    return await conn.fetch(
        queries["list_batches"],
        *_who(p),
        project,
        created_after,
        created_before,
        status,
        limit,
        offset,
    )


async def finalize_batch(conn: Conn, p: Principal, name: str) -> bool:
    return await conn.fetchval(queries["finalize_batch"], *_who(p), name) is not None


async def set_batch_metadata(conn: Conn, p: Principal, name: str, metadata: dict[str, Any]) -> bool:
    return await conn.fetchval(queries["set_batch_metadata"], *_who(p), name, metadata) is not None


# --- tasks ----------------------------------------------------------------------------


def unique_id_conflict(unique_id: str, task_id: str) -> Conflict:
    """Scale's exact 409 text; client scripts parse the id out of the parentheses."""
    return Conflict(
        f'The unique_id ("{unique_id}") is already used for a different task ({task_id}).'
    )


async def _raise_unique_id_conflict(conn: Conn, p: Principal, unique_id: str) -> None:
    other = await conn.fetchval(queries["task_id_by_unique_id"], *_who(p), unique_id)
    raise unique_id_conflict(unique_id, other or "unknown")


async def insert_task(conn: asyncpg.Connection, p: Principal, values: dict[str, Any]) -> Row:
    """Insert a task; a taken unique_id becomes Scale's 409 (savepoint keeps the tx usable)."""
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                queries["insert_task"],
                values["id"],
                *_who(p),
                values["type"],
                values["status"],
                values["project"],
                values["batch"],
                values["instruction"],
                values["callback_url"],
                values["params"],
                values["response"],
                values["metadata"],
                values["tags"],
                values["unique_id"],
                values["clear_unique_id_on_error"],
                values["priority"],
                values["project_param_version"],
                values["customer_review_status"],
            )
    except asyncpg.UniqueViolationError:
        await _raise_unique_id_conflict(conn, p, values["unique_id"])
    assert row is not None
    return row


async def get_task(conn: Conn, p: Principal, task_id: str) -> Row | None:
    return await conn.fetchrow(queries["get_task"], *_who(p), task_id)


async def lock_task(conn: asyncpg.Connection, p: Principal, task_id: str) -> Row | None:
    return await conn.fetchrow(queries["lock_task"], *_who(p), task_id)


async def list_tasks(
    conn: Conn, p: Principal, filters: TaskFilters, after: tuple[datetime, str] | None, limit: int
) -> list[Row]:
    cursor_at, cursor_id = after if after else (None, None)
    return await conn.fetch(
        queries["list_tasks"], *_who(p), *filters.args(), cursor_at, cursor_id, limit
    )


async def count_tasks(conn: Conn, p: Principal, filters: TaskFilters) -> int:
    return int(await conn.fetchval(queries["count_tasks"], *_who(p), *filters.args()))


async def cancel_task(conn: Conn, p: Principal, task_id: str, clear_unique_id: bool) -> Row:
    row = await conn.fetchrow(queries["cancel_task"], *_who(p), task_id, clear_unique_id)
    assert row is not None
    return row


async def set_unique_id(
    conn: asyncpg.Connection, p: Principal, task_id: str, unique_id: str | None
) -> Row | None:
    try:
        async with conn.transaction():
            return await conn.fetchrow(queries["set_unique_id"], *_who(p), task_id, unique_id)
    except asyncpg.UniqueViolationError:
        assert unique_id is not None
        await _raise_unique_id_conflict(conn, p, unique_id)
        raise  # unreachable: the line above always raises


async def set_metadata(
    conn: Conn, p: Principal, task_id: str, metadata: dict[str, Any]
) -> Row | None:
    return await conn.fetchrow(queries["set_metadata"], *_who(p), task_id, metadata)


async def set_tags(conn: Conn, p: Principal, task_id: str, tags: list[str]) -> Row | None:
    return await conn.fetchrow(queries["set_tags"], *_who(p), task_id, tags)


async def record_audit(
    conn: Conn,
    p: Principal,
    task_id: str,
    review_status: str,
    comment: str | None,
    audit: dict[str, Any],
) -> Row | None:
    return await conn.fetchrow(
        queries["record_audit"], *_who(p), task_id, review_status, comment, audit
    )


# --- idempotency keys ----------------------------------------------------------------


async def idempotency_claim(
    conn: Conn, p: Principal, key: str, request_hash: bytes, lock_seconds: float
) -> Row | None:
    return await conn.fetchrow(
        queries["idempotency_claim"], *_who(p), key, request_hash, lock_seconds
    )


async def idempotency_complete(conn: Conn, p: Principal, key: str, status: int, body: str) -> None:
    await conn.execute(queries["idempotency_complete"], *_who(p), key, status, body)


async def idempotency_release(conn: Conn, p: Principal, key: str) -> None:
    await conn.execute(queries["idempotency_release"], *_who(p), key)
