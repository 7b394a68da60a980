"""Deliveries: named sets of completed tasks per project, with `delivered_at`.

A delivery is made by the operator: `task.delivered` events on the ingest endpoint (one per
task, naming the delivery; the first one makes it), or `taskhook deliveries create NAME
TASK_ID...`, which applies the same events through the same code (`deliver_tasks` below).
A task may be in many deliveries; each keeps the task's response as it was when delivered.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from datetime import UTC, datetime
from typing import Any

import asyncpg

from taskhook.core import events
from taskhook.core.errors import BadRequest
from taskhook.core.models import Event
from taskhook.core.store import Connection
from taskhook.core.validation import check_not_ahead, check_stored_time

MAX_CHARS = 200  # of a delivery name and a task id, as in ingest events


async def deliver_tasks(
    conn: Connection,
    delivery_name: str,
    task_ids: list[str],
    delivered_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Deliver tasks as the ingest endpoint would (the caller holds the transaction): one
    `task.delivered` event per task; returns the per-event results (a task that is not
    completed, or unknown, is `rejected`)."""
    batch = [
        Event(
            event_id=f"evt_cli_{secrets.token_hex(12)}",
            type="task.delivered",
            task_id=task_id,
            delivery_name=delivery_name,
            occurred_at=delivered_at,
        )
        for task_id in task_ids
    ]
    return await events.apply(conn, batch)


# --- the CLI command (wired into taskhook/cli.py) --------------------------------------


def _time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def add_parser(sub: Any) -> None:
    """`taskhook deliveries create NAME TASK_ID... [--delivered-at ISO] [--json]`."""
    deliveries = sub.add_parser(
        "deliveries",
        help="group completed tasks into deliveries (v2)",
        description="Group completed tasks into named deliveries, as Scale's v2 API lists "
        "them (GET /v2/deliveries).",
    )
    commands = deliveries.add_subparsers(dest="deliveries_command", required=True)
    create = commands.add_parser(
        "create",
        help="deliver completed tasks as the delivery NAME of their project (made if new)",
        description="Deliver completed tasks as the delivery NAME of their project (made by "
        "the first task delivered), in one transaction, as task.delivered events would. "
        "Prints one result per task; exits 1 if any was rejected (unknown or not completed).",
    )
    create.add_argument("name", help="the delivery's name, unique per project")
    create.add_argument(
        "task_ids", nargs="+", metavar="TASK_ID", help="a completed task's id (one or more)"
    )
    create.add_argument(
        "--delivered-at", type=_time, help="ISO 8601 (default: now; no offset means UTC)"
    )
    create.add_argument("--json", action="store_true", help="print the results as JSON")


async def run_command(pool: asyncpg.Pool, args: argparse.Namespace) -> int:
    """Deliver in one transaction; print one line per task. Exit 1 if any was rejected."""
    if not 1 <= len(args.name) <= MAX_CHARS or not all(
        1 <= len(t) <= MAX_CHARS for t in args.task_ids
    ):
        print(f"taskhook: names and task ids are 1 to {MAX_CHARS} characters", file=sys.stderr)
        return 2
    if args.delivered_at is not None:
        # The rules of an ingested event's occurred_at, which this stands in for.
        try:
            at = check_stored_time(args.delivered_at, "--delivered-at")
            check_not_ahead(at, datetime.now(UTC), "--delivered-at")
        except BadRequest as exc:
            print(f"taskhook: {exc.message}", file=sys.stderr)
            return 2
    async with pool.acquire() as conn, conn.transaction():
        results = await deliver_tasks(conn, args.name, args.task_ids, args.delivered_at)
    if args.json:
        print(
            json.dumps([{"task_id": t, **r} for t, r in zip(args.task_ids, results, strict=True)])
        )
    else:
        for task_id, result in zip(args.task_ids, results, strict=True):
            reason = f": {result['error']}" if "error" in result else ""
            print(f"{task_id}: {result['status']}{reason}")
    return 0 if all(r["status"] == "applied" for r in results) else 1
