"""Workforce events: validate a whole request, then apply it in one transaction.

Each event moves its task as the table says; every callback trigger enqueues a delivery
in the same transaction. A rejected event (unknown task, wrong state) does not stop the
others, and its event_id is not kept, so it may be sent again once it applies.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import asyncpg
from pydantic import ValidationError

from taskhook.core import callbacks, store
from taskhook.core import events_v2 as v2_ingest
from taskhook.core.db import json_text
from taskhook.core.errors import BadRequest
from taskhook.core.models import Event
from taskhook.core.serialize import iso
from taskhook.core.store import Connection
from taskhook.core.validation import format_validation_error

MAX_EVENTS = 1000
# Which status each event needs, and which callback trigger it fires (None: no callback).
NEEDS: dict[str, str] = {
    "task.started": "pending",
    "task.completed": "pending",
    "task.errored": "pending",
    "task.recalled": "completed",
    "task.fixed": "completed",
    "task.delivered": "completed",
}
TRIGGER: dict[str, str | None] = {
    "task.started": None,
    "task.completed": "completed",
    "task.errored": "error",
    "task.recalled": "recalled",
    "task.fixed": "fixed",
    "task.delivered": None,
}


def parse_events(data: Any) -> list[Event]:
    """The whole body must be valid before anything is applied: 400 names event and field."""
    items = data if isinstance(data, list) else [data]
    if not items:
        raise BadRequest("body is an empty array; send at least one event.")
    if len(items) > MAX_EVENTS:
        raise BadRequest(f"body has {len(items)} events; at most {MAX_EVENTS} per request.")
    return [_parse_one(i, item) for i, item in enumerate(items)]


def _parse_one(index: int, item: Any) -> Event:
    where = f"event {index}"
    if isinstance(item, dict) and isinstance(item.get("event_id"), str):
        where += f" (event_id {item['event_id']!r})"
    if not isinstance(item, dict):
        raise BadRequest(f"{where}: must be a JSON object.")
    try:
        event = Event.model_validate(item)
    except ValidationError as exc:
        raise BadRequest(f"{where}: " + format_validation_error(exc, "event")) from None
    event = v2_ingest.fold(event, where)
    if event.type in ("task.completed", "task.fixed") and event.response is None:
        raise BadRequest(
            f"{where}: 'response' (an object) is required for {event.type} (or, for v2 "
            "results, 'threads' or 'sensitive_content_reports')."
        )
    if event.type == "task.errored" and not event.error:
        raise BadRequest(f"{where}: 'error' is required for task.errored.")
    return event


async def apply(conn: Connection, events: list[Event]) -> list[dict[str, Any]]:
    """Apply one request's events in input order; the caller holds the transaction."""
    return (await apply_groups(conn, [events]))[0]


async def apply_groups(conn: Connection, groups: list[list[Event]]) -> list[list[dict[str, Any]]]:
    """Apply several requests' events in one transaction (group commit), each request in
    input order, requests in arrival order.

    All tasks are locked and read first, in id order, so concurrent transactions cannot
    deadlock, and all event ids are claimed in one statement. A completion is the common
    event: those of tasks no other event here touches are applied together in one
    statement (their order cannot matter); any other event runs its own transition, in
    order. Every callback is enqueued in one statement at the end, and one NOTIFY wakes the
    dispatchers (NOTIFY serializes commits)."""
    flat = [event for group in groups for event in group]
    tasks, new_ids = await store.lock_tasks_and_claim_events(
        conn, sorted({e.task_id for e in flat}), [(e.event_id, e.task_id, e.type) for e in flat]
    )
    batch = _Batch(conn, tasks, Counter(e.task_id for e in flat))
    results: list[list[dict[str, Any]]] = []
    rejected: set[str] = set()
    for group in groups:
        group_results = []
        for event in group:
            first_time = event.event_id in new_ids
            new_ids.discard(event.event_id)  # a repeat later in the group is a duplicate...
            result = await batch.apply(event, first_time)
            if result["status"] == "rejected":  # ...unless it was rejected: then it may apply
                rejected.add(event.event_id)
                new_ids.add(event.event_id)
            elif result["status"] == "applied":
                rejected.discard(event.event_id)
            group_results.append(result)
        results.append(group_results)
    await batch.finish()
    await v2_ingest.index_annotations(conn, groups, results, batch.tasks)
    if rejected:
        await store.forget_event_ids(conn, sorted(rejected))
    return results


class _Batch:
    """The transitions and deliveries of one group commit."""

    def __init__(
        self, conn: Connection, tasks: dict[str, dict[str, Any]], touches: Counter[str]
    ) -> None:
        self.conn, self.tasks, self.touches = conn, tasks, touches
        self.completions: list[Event] = []  # of tasks touched once: applied together
        # Callbacks in event order; a batched completion holds its place until finish().
        self.outbox: list[store.NewDelivery | Event | None] = []
        self.deliveries: list[store.NewDelivery] = []

    async def apply(self, ev: Event, first_time: bool) -> dict[str, Any]:
        if not first_time:
            return {"event_id": ev.event_id, "status": "duplicate"}
        task = self.tasks.get(ev.task_id)
        reason = _refusal(task, ev)
        if reason is not None:
            return {"event_id": ev.event_id, "status": "rejected", "error": reason}
        assert task is not None
        if ev.type == "task.completed" and self.touches[ev.task_id] == 1:
            self.completions.append(ev)
            self.outbox.append(ev)
        else:
            row = await _transition(self.conn, ev)
            # Later events of this group about the same task see its new state.
            self.tasks[ev.task_id] = {**dict(row), "account_callback_url": _default_url(task)}
            self._queue(row, ev.type, task)
        return {"event_id": ev.event_id, "status": "applied"}

    async def finish(self) -> None:
        rows = await self._complete_together()
        for item in self.outbox:
            if isinstance(item, Event):
                task = self.tasks[item.task_id]
                item = callbacks.prepare(rows[item.task_id], "completed", _default_url(task))
            if item is not None:
                self.deliveries.append(item)
        await store.enqueue_deliveries(self.conn, self.deliveries)

    async def _complete_together(self) -> dict[str, asyncpg.Record]:
        if not self.completions:
            return {}
        evs, tasks = self.completions, self.tasks
        return await store.complete_tasks(
            self.conn,
            [e.task_id for e in evs],
            [json_text(e.response) for e in evs],
            [e.when() for e in evs],
            [bool(tasks[e.task_id]["callback_url"] or _default_url(tasks[e.task_id])) for e in evs],
        )

    def _queue(self, row: asyncpg.Record, event_type: str, task: dict[str, Any]) -> None:
        trigger = TRIGGER[event_type]
        if trigger is not None:
            self.outbox.append(callbacks.prepare(row, trigger, _default_url(task)))


def _default_url(task: dict[str, Any]) -> str | None:
    url: str | None = task["account_callback_url"]
    return url


def _refusal(task: dict[str, Any] | None, ev: Event) -> str | None:
    if task is None:
        return f"Task {ev.task_id} not found."
    needed = NEEDS[ev.type]
    if task["status"] != needed:
        return f"{ev.type} needs a {needed} task; task {ev.task_id} is {task['status']}."
    return None


async def _transition(conn: Connection, ev: Event) -> asyncpg.Record:
    """occurred_at sets completed_at and a fix's audited_at; updated_at is always the
    time of the change here, so a late event still shows up to updated_after polling."""
    if ev.type == "task.started":
        return await store.mark_started(conn, ev.task_id)
    if ev.type == "task.completed":
        return await store.mark_completed(conn, ev.task_id, ev.response, ev.when())
    if ev.type == "task.errored":
        response = {"error": ev.error, "attachments": ev.attachments or []}
        if ev.errors is not None:
            response["errors"] = ev.errors  # v2 error details
        return await store.mark_errored(conn, ev.task_id, response)
    if ev.type == "task.recalled":
        return await store.mark_recalled(conn, ev.task_id)
    if ev.type == "task.delivered":
        return await v2_ingest.deliver(conn, ev)
    audit: dict[str, Any] = {
        "audited_by": ev.audited_by or "scale",
        "audited_at": iso(ev.when()),
        "audit_result": "fixed",
        "audit_source": "scale",
    }
    if ev.audit_time_secs is not None:
        audit["audit_time_secs"] = _whole(ev.audit_time_secs)
    return await store.mark_fixed(conn, ev.task_id, ev.response, ev.comments, audit)


def _whole(seconds: float) -> int | float:
    """511 stays 511 on the wire (as Scale's audits show it), not 511.0; 12.5 stays 12.5."""
    return int(seconds) if seconds.is_integer() else seconds
