"""Callback triggers: build the body Scale documents and enqueue it with the task change.

Called inside the transaction that changes the task, so the change and its delivery commit
together or not at all.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import asyncpg

from taskhook.core import ids, store
from taskhook.core.db import json_text
from taskhook.core.serialize import task_fields
from taskhook.core.store import Connection

# Triggers after which Scale adds the review fields to the callback body.
_REVIEW_TRIGGERS = frozenset({"audit", "fixed"})


def target_host(target: str) -> str:
    """The host a delivery goes to: the URL's host, or an e-mail address's domain."""
    if "://" not in target and "@" in target:
        return "mailto:" + target.rsplit("@", 1)[1].lower()
    return (urlsplit(target).hostname or "").lower()


def callback_body(task: dict[str, Any], trigger: str) -> dict[str, Any]:
    """{task, response, task_id, status}; review fields after an audit or a fix."""
    body: dict[str, Any] = {
        "task": task,
        "response": task.get("response"),
        "task_id": task["task_id"],
        "status": task["status"],
    }
    if trigger in _REVIEW_TRIGGERS:
        for key in ("customer_review_status", "customer_review_comments", "prior_responses"):
            body[key] = task.get(key, [] if key != "customer_review_status" else None)
    return body


def prepare(
    row: asyncpg.Record,
    trigger: str,
    default_url: str | None = None,
    body: dict[str, Any] | str | None = None,
) -> store.NewDelivery | None:
    """The delivery for this task's callback target (the task's own, else the account's
    default); None if it has none. A `body` given as text (a resend) is sent as it is."""
    target = row["callback_url"] or default_url
    if not target:
        return None
    if body is None:
        task = task_fields(row)
        task.pop("callback_succeeded", None)
        body = callback_body(task, trigger)
    return store.NewDelivery(
        task_id=row["id"],
        account_id=row["account_id"],
        trigger=trigger,
        target=target,
        host=target_host(target),
        payload=body if isinstance(body, str) else json_text(body),
        webhook_id="msg_" + ids.random_hex(12),
    )


async def enqueue(
    conn: Connection,
    row: asyncpg.Record,
    trigger: str,
    default_url: str | None = None,
    body: dict[str, Any] | str | None = None,
) -> int | None:
    """Enqueue a delivery for this task's callback target; None if it has none.

    The task's callback_succeeded becomes unresolved (absent) until this delivery ends.
    """
    new = prepare(row, trigger, default_url, body)
    if new is None:
        return None
    return (await store.enqueue_deliveries(conn, [new]))[0]


async def trigger(
    conn: Connection, row: asyncpg.Record, trigger: str, default_url: str | None = None
) -> None:
    """Enqueue one callback; the dispatchers wake when this transaction commits."""
    await enqueue(conn, row, trigger, default_url)
