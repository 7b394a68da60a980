"""Data access of the v2 API: every statement is a named query of queries.sql (the `v2_`
section), as in taskhook/core/store/__init__.py, which v2 also uses for what v1 does."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskhook.core.principal import Principal
from taskhook.core.store import (
    Conn,
    Connection,
    Row,
    fetch_filtered,
    fetchrow_filtered,
    fetchval_filtered,
)
from taskhook.core.store.queries import queries

Cursor = tuple[datetime, str] | None


def _who(p: Principal) -> tuple[str, bool]:
    return p.account_id, p.is_test


def _after(cursor: Cursor) -> tuple[datetime | None, str | None]:
    return cursor if cursor else (None, None)


# --- projects -------------------------------------------------------------------------


async def find_project(
    conn: Conn, p: Principal, public_id: str | None, name: str | None
) -> Row | None:
    assert public_id is not None or name is not None
    return await fetchrow_filtered(conn, queries["v2_find_project"], *_who(p), public_id, name)


async def list_projects(
    conn: Conn,
    p: Principal,
    *,
    ids: list[str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> list[Row]:
    return await fetch_filtered(
        conn, queries["v2_list_projects"], *_who(p), ids, created_after, created_before
    )


# --- batches --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchFilters:
    """Filters of v2_list_batches; None means 'not filtered'."""

    ids: list[str] | None = None
    name: str | None = None
    project_id: int | None = None  # internal id
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    completed_after: datetime | None = None
    completed_before: datetime | None = None


async def list_batches(
    conn: Conn, p: Principal, f: BatchFilters, after: Cursor = None, limit: int = 100
) -> list[Row]:
    return await fetch_filtered(
        conn,
        queries["v2_list_batches"],
        *_who(p),
        f.ids,
        f.name,
        f.project_id,
        f.status,
        f.created_after,
        f.created_before,
        f.completed_after,
        f.completed_before,
        *_after(after),
        limit,
    )


async def lock_batch(conn: Connection, p: Principal, public_id: str) -> Row | None:
    return await conn.fetchrow(queries["v2_lock_batch"], *_who(p), public_id)


async def set_batch_status(conn: Conn, p: Principal, public_id: str, status: str) -> None:
    await conn.execute(queries["v2_set_batch_status"], *_who(p), public_id, status)


async def set_batch_metadata(
    conn: Conn, p: Principal, public_id: str, metadata: dict[str, Any]
) -> None:
    await conn.execute(queries["v2_set_batch_metadata"], *_who(p), public_id, metadata)


async def cancel_unstarted_tasks(conn: Conn, p: Principal, batch_name: str) -> None:
    await conn.execute(queries["v2_cancel_unstarted_tasks"], *_who(p), batch_name)


# --- tasks ----------------------------------------------------------------------------


async def get_task(conn: Conn, p: Principal, task_id: str) -> Row | None:
    return await conn.fetchrow(queries["v2_get_task"], *_who(p), task_id)


@dataclass(frozen=True, slots=True)
class TaskFilters:
    """Filters of GET /v2/tasks; project and batch by name."""

    project: str | None = None
    batch: str | None = None
    status: str | None = None
    completed_after: datetime | None = None
    completed_before: datetime | None = None


async def list_tasks(
    conn: Conn, p: Principal, f: TaskFilters, after: Cursor, limit: int
) -> list[Row]:
    return await fetch_filtered(
        conn,
        queries["v2_list_tasks"],
        *_who(p),
        f.project,
        f.batch,
        f.status,
        f.completed_after,
        f.completed_before,
        *_after(after),
        limit,
    )


# --- annotations ----------------------------------------------------------------------


async def annotation_task_id(conn: Conn, p: Principal, annotation_id: str) -> str | None:
    task_id: str | None = await conn.fetchval(
        queries["v2_annotation_task"], *_who(p), annotation_id
    )
    return task_id


async def index_annotations(conn: Conn, rows: list[tuple[str, bool, str, str]]) -> None:
    """(account_id, is_test, annotation_id, task_id) rows, each key at most once."""
    if not rows:
        return
    columns = [list(column) for column in zip(*rows, strict=True)]
    await conn.execute(queries["v2_index_annotations"], *columns)


# --- deliveries -----------------------------------------------------------------------


async def deliver_task(
    conn: Connection, task_id: str, delivery_name: str, new_id: str, at: datetime
) -> Row:
    """Add a task to its project's delivery of that name (made now if new); returns the task."""
    owner = await conn.fetchrow(queries["v2_task_project"], task_id)
    assert owner is not None, "v2_task_project: the locked task vanished"
    delivery_id = None
    for _ in range(3):  # bounded: a delivery committed mid-statement is seen on the next try
        delivery_id = await conn.fetchval(
            queries["v2_make_delivery"],
            owner["account_id"],
            owner["is_test"],
            owner["project_id"],
            delivery_name,
            new_id,
            at,
        )
        if delivery_id is not None:
            break
        await asyncio.sleep(0.01)
    assert delivery_id is not None, "v2_make_delivery found no delivery"
    row = await conn.fetchrow(queries["v2_deliver_task"], delivery_id, task_id, at)
    assert row is not None
    return row


async def list_deliveries(
    conn: Conn,
    p: Principal,
    *,
    delivery_id: str | None = None,
    project_id: int | None = None,
    name: str | None = None,
    delivered_after: datetime | None = None,
    delivered_before: datetime | None = None,
) -> list[Row]:
    return await fetch_filtered(
        conn,
        queries["v2_list_deliveries"],
        *_who(p),
        delivery_id,
        project_id,
        name,
        delivered_after,
        delivered_before,
    )


async def delivery_task_page(
    conn: Conn, p: Principal, delivery_id: str, after: Cursor, limit: int
) -> list[Row]:
    return await fetch_filtered(
        conn,
        queries["v2_delivery_task_page"],
        *_who(p),
        delivery_id,
        *_after(after),
        limit,
    )


@dataclass(frozen=True, slots=True)
class DeliveredFilters:
    """Filters of GET /v2/delivery/tasks; the project by name."""

    project: str
    delivery_id: str | None = None
    status: str | None = None
    completed_after: datetime | None = None
    completed_before: datetime | None = None

    def args(self) -> tuple[Any, ...]:
        return (
            self.project,
            self.delivery_id,
            self.status,
            self.completed_after,
            self.completed_before,
        )


async def delivered_responses(
    conn: Conn, p: Principal, f: DeliveredFilters, after: Cursor, limit: int
) -> list[Row]:
    return await fetch_filtered(
        conn, queries["v2_delivered_responses"], *_who(p), *f.args(), *_after(after), limit
    )


async def count_delivered_responses(conn: Conn, p: Principal, f: DeliveredFilters) -> int:
    return int(
        await fetchval_filtered(conn, queries["v2_count_delivered_responses"], *_who(p), *f.args())
    )


# --- datasets -------------------------------------------------------------------------


async def list_datasets(conn: Conn, p: Principal) -> list[str]:
    return [r["dataset_id"] for r in await conn.fetch(queries["v2_datasets"], *_who(p))]


async def dataset_deliveries(
    conn: Conn,
    p: Principal,
    *,
    dataset_id: str | None = None,
    delivery_id: str | None = None,
    delivered_after: datetime | None = None,
    delivered_before: datetime | None = None,
) -> list[Row]:
    return await fetch_filtered(
        conn,
        queries["v2_dataset_deliveries"],
        *_who(p),
        dataset_id,
        delivery_id,
        delivered_after,
        delivered_before,
    )


@dataclass(frozen=True, slots=True)
class DatasetTaskFilters:
    dataset_id: str | None = None
    delivery_id: str | None = None
    delivered_after: datetime | None = None
    delivered_before: datetime | None = None
    task_id: str | None = None


async def dataset_tasks(
    conn: Conn, p: Principal, f: DatasetTaskFilters, after: Cursor, limit: int
) -> list[Row]:
    return await fetch_filtered(
        conn,
        queries["v2_dataset_tasks"],
        *_who(p),
        f.dataset_id,
        f.delivery_id,
        f.delivered_after,
        f.delivered_before,
        f.task_id,
        *_after(after),
        limit,
    )
