"""Task rules: create, cancel, audit, unique_id, metadata and tags.

Every function takes a connection inside a transaction and the caller's Principal,
so one account and one world (test or live) is all it can ever touch.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

import asyncpg

from taskhook.core import callbacks, store
from taskhook.core.errors import BadRequest, NotFound
from taskhook.core.models import AuditRequest, TaskCreate
from taskhook.core.principal import Principal
from taskhook.core.serialize import iso
from taskhook.core.settings import Settings
from taskhook.core.store import Connection
from taskhook.core.targets import TargetRefused, check_url
from taskhook.core.tasktypes import TASK_TYPES, check_required, synthetic_response
from taskhook.core.validation import check_metadata, check_unique_id, normalize_tags, parse_model

TASK_NOT_FOUND = "Task with that ID not found."
_EMAIL = re.compile(r"^[^@\s/:]+@[^@\s/:]+\.[^@\s/:]+$")
# Project params that describe the project, not a task default.
_PARAM_HISTORY_KEYS = frozenset({"version", "created_at"})


def check_callback_url(url: str, settings: Settings, where: str = "callback_url") -> str:
    """An http(s) URL with a host, or an e-mail address (Scale accepts both). E-mail needs
    SMTP configured; a literal non-public address needs private targets allowed (names are
    checked again at delivery time, where DNS is resolved)."""
    if _EMAIL.match(url):
        if settings.smtp_url is None:
            raise BadRequest(
                f"'{where}' is an e-mail address, but this server has no SMTP configured "
                "(TASKHOOK_SMTP_URL), so it cannot deliver e-mail callbacks."
            )
        return url
    try:
        check_url(url, settings.allow_private_targets)
    except (TargetRefused, ValueError) as exc:
        raise BadRequest(
            f"'{where}' must be an http(s) URL to a public address or an e-mail address, "
            f"got {url!r} ({exc})."
        ) from None
    return url


async def _resolve_project(
    conn: Connection, p: Principal, body: TaskCreate
) -> tuple[asyncpg.Record | None, str | None]:
    """A task names an existing project, or a batch that implies one, or neither: as on
    Scale, a task need not belong to a project."""
    batch_name = body.batch
    project_name = body.project
    if batch_name is not None:
        batch = await store.get_batch(conn, p, batch_name)
        if batch is None:
            raise BadRequest(f"Batch '{batch_name}' not found.")
        if project_name is not None and project_name != batch["project_name"]:
            raise BadRequest(
                f"Batch '{batch_name}' belongs to project '{batch['project_name']}', "
                f"not '{project_name}'."
            )
        project_name = batch["project_name"]
    if project_name is None:
        return None, None
    project = await store.get_project(conn, p, project_name)
    if project is None:
        raise BadRequest(f"Project '{project_name}' not found.")
    return project, batch_name


def _project_defaults(project: asyncpg.Record | None) -> tuple[dict[str, Any], int | None]:
    history = project["param_history"] if project is not None else None
    if not history:
        return {}, None
    current = history[-1]
    defaults = {k: v for k, v in current.items() if k not in _PARAM_HISTORY_KEYS}
    return defaults, current.get("version")


async def create_task(
    conn: Connection, p: Principal, task_type: str, data: Any, settings: Settings
) -> asyncpg.Record:
    """Validate everything first, then write one row: a bad request writes nothing."""
    if task_type not in TASK_TYPES:
        raise BadRequest(f"Unknown task type '{task_type}'.")
    body = parse_model(TaskCreate, data)
    metadata = check_metadata(body.metadata)
    tags = normalize_tags(body.tags) if body.tags is not None else None
    unique_id = check_unique_id(body.unique_id) if body.unique_id is not None else None
    callback_url = body.callback_url or p.default_callback_url
    if callback_url:
        check_callback_url(callback_url, settings)
    project, batch_name = await _resolve_project(conn, p, body)
    defaults, version = _project_defaults(project)
    project_instruction = defaults.pop("instruction", None)
    instruction = body.instruction if body.instruction is not None else project_instruction
    params = {**defaults, **body.params()}
    check_required(task_type, {**params, "instruction": instruction})
    completed = p.is_test  # test keys complete at once
    row = await store.insert_task(
        conn,
        p,
        {
            "id": secrets.token_hex(12),
            "type": task_type,
            "status": "completed" if completed else "pending",
            "project": project["name"] if project is not None else None,
            "batch": batch_name,
            "instruction": instruction,
            "callback_url": callback_url,
            "params": params,
            "response": synthetic_response(task_type, params) if completed else None,
            "metadata": metadata,
            "tags": tags,
            "unique_id": unique_id,
            "clear_unique_id_on_error": body.clear_unique_id_on_error,
            "priority": body.priority,
            "project_param_version": version,
            "customer_review_status": "pending" if completed else None,
        },
    )
    if completed:  # a test task's completion calls back like any other (same transaction)
        await callbacks.trigger(conn, row, "completed")
    return row


async def locked_task(conn: Connection, p: Principal, task_id: str) -> asyncpg.Record:
    row = await store.lock_task(conn, p, task_id)
    if row is None:
        raise NotFound(TASK_NOT_FOUND)
    return row


async def get_task(conn: Any, p: Principal, task_id: str) -> asyncpg.Record:
    row = await store.get_task(conn, p, task_id)
    if row is None:
        raise NotFound(TASK_NOT_FOUND)
    return row


async def cancel_task(
    conn: Connection, p: Principal, task_id: str, clear_unique_id: bool
) -> asyncpg.Record:
    """Pending and not started, or already canceled (idempotent): 200. Otherwise 400."""
    task = await locked_task(conn, p, task_id)
    if task["status"] in ("completed", "error"):
        raise BadRequest(f"Task {task_id} is {task['status']} and can no longer be canceled.")
    if task["status"] == "pending" and task["work_started"]:
        raise BadRequest(
            f"Task {task_id} is in progress: work on it has started, so it can no longer "
            "be canceled (only queued tasks can)."
        )
    return await store.cancel_task(conn, p, task_id, clear_unique_id)


async def audit_task(
    conn: Connection, p: Principal, task_id: str, body: AuditRequest
) -> asyncpg.Record:
    """Accept, reject, or fix (accepted with a corrected response) a completed task."""
    task = await locked_task(conn, p, task_id)
    if task["status"] != "completed":
        raise BadRequest(
            f"Only completed tasks can be audited; task {task_id} is {task['status']}."
        )
    if body.response is not None and not body.accepted:
        raise BadRequest("A fix ('response') must be sent with 'accepted': true.")
    result = "accepted" if body.accepted else "rejected"
    if body.response is not None:
        result = "fixed"
    audit = {
        "audited_by": p.account_name,
        "audited_at": iso(datetime.now(UTC)),
        "audit_result": result,
        "audit_source": "customer",
    }
    if result == "fixed":
        row = await store.mark_fixed(conn, task_id, body.response, body.comments, audit)
        await callbacks.trigger(conn, row, "fixed", p.default_callback_url)
        return row
    audited = await store.record_audit(conn, p, task_id, result, body.comments, audit)
    assert audited is not None
    await callbacks.trigger(conn, audited, "audit", p.default_callback_url)
    return audited


async def resend_callback(
    conn: Connection, p: Principal, task_id: str
) -> tuple[asyncpg.Record, int]:
    """Enqueue the task's latest callback body again, as a new delivery (new webhook-id);
    returns the task and the delivery id. POST /v1/task/{id}/callbacks/resend and the
    Tasks tab's Resend button."""
    task = await locked_task(conn, p, task_id)
    body = await store.latest_delivery_payload(conn, task["id"])
    if body is None and task["status"] == "pending":
        raise BadRequest(f"Task {task['id']} has not called back yet; nothing to resend.")
    delivery_id = await callbacks.enqueue(conn, task, "resend", p.default_callback_url, body=body)
    if delivery_id is None:
        raise BadRequest(
            f"Task {task['id']} has no callback_url and the account has no default callback URL."
        )
    return task, delivery_id


async def set_unique_id(
    conn: Connection, p: Principal, task_id: str, unique_id: str | None
) -> asyncpg.Record:
    await locked_task(conn, p, task_id)
    if unique_id is not None:
        check_unique_id(unique_id)
    row = await store.set_unique_id(conn, p, task_id, unique_id)
    assert row is not None
    return row


async def set_metadata(conn: Connection, p: Principal, task_id: str, data: Any) -> asyncpg.Record:
    metadata = check_metadata(data, "body")
    row = await store.set_metadata(conn, p, task_id, metadata)
    if row is None:
        raise NotFound(TASK_NOT_FOUND)
    return row


async def change_tags(
    conn: Connection, p: Principal, task_id: str, data: Any, mode: str
) -> asyncpg.Record:
    """mode 'set' replaces, 'add' appends new ones, 'delete' removes the given ones."""
    given = normalize_tags(data, "body") if mode != "delete" else _tag_list(data)
    task = await locked_task(conn, p, task_id)
    current = list(task["tags"] or [])
    if mode == "set":
        tags = given
    elif mode == "add":
        tags = normalize_tags(current + [t for t in given if t not in current], "tags")
    else:
        tags = [t for t in current if t not in given]
    row = await store.set_tags(conn, p, task_id, tags)
    assert row is not None
    return row


def _tag_list(data: Any) -> list[str]:
    """Tags to delete: any strings (missing ones are ignored), no 5-tag limit."""
    if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
        raise BadRequest("'body' must be an array of strings.")
    return list(data)
