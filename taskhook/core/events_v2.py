"""The v2 part of event ingest, called from taskhook/core/events.py.

- `task.completed` (and `task.fixed`) may carry the v2 results instead of a `response`:
  `threads`, or `sensitive_content_reports` for a reported task (which then has no threads).
  They are validated against the v2 models (taskhook/core/models_v2.py) and stored as the task's
  response, `{"threads": [...]}` or `{"sensitive_content_reports": [...]}`; a `response` that
  has a `threads` key is validated the same way. Missing thread, turn and annotation ids are
  assigned here, so every annotation can be fetched by id.
- `task.errored` may carry v2 `errors` (`[{"type": <one of 5>, "message": ...}]`), kept in
  the response next to v1's `error` (derived from them when not given).
- `task.delivered` adds a completed task to its project's delivery `delivery_name` (made by
  its first task, delivered at that event's `occurred_at`). No callback.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import asyncpg
from pydantic import TypeAdapter, ValidationError

from taskhook.core.errors import BadRequest
from taskhook.core.models import Event
from taskhook.core.models_v2 import ErrorDetail, SensitiveContentReport, Thread
from taskhook.core.store import Connection
from taskhook.core.store import v2 as v2store

RESULT_TYPES = frozenset({"task.completed", "task.fixed"})
MAX_ERROR_CHARS = 10_000  # Event.error's limit
_THREADS = TypeAdapter(list[Thread])
_ERRORS = TypeAdapter(list[ErrorDetail])
_REPORTS = TypeAdapter(list[SensitiveContentReport])


def fold(event: Event, where: str) -> Event:
    """Check the v2 fields of one event and fold them into `response` / `error`: 400 names
    the event and the field."""
    _check_delivery(event, where)
    update: dict[str, Any] = {}
    if event.threads is not None or event.sensitive_content_reports is not None:
        update["response"] = _results(event, where)
        update["threads"] = update["sensitive_content_reports"] = None
    elif isinstance(event.response, dict) and "threads" in event.response:
        threads = _validated(_THREADS, event.response["threads"], "response.threads", where)
        update["response"] = {**event.response, "threads": threads}
    if event.errors is not None:
        if event.type != "task.errored":
            raise BadRequest(f"{where}: 'errors' is only for task.errored.")
        errors = _validated(_ERRORS, event.errors, "errors", where)
        update["errors"] = errors
        if not event.error:
            update["error"] = _error_text(errors)
    return event.model_copy(update=update) if update else event


def _check_delivery(event: Event, where: str) -> None:
    if event.type == "task.delivered" and not event.delivery_name:
        raise BadRequest(f"{where}: 'delivery_name' is required for task.delivered.")
    if event.type != "task.delivered" and event.delivery_name is not None:
        raise BadRequest(f"{where}: 'delivery_name' is only for task.delivered.")


def _results(event: Event, where: str) -> dict[str, Any]:
    if event.type not in RESULT_TYPES:
        raise BadRequest(
            f"{where}: 'threads' and 'sensitive_content_reports' are only for "
            "task.completed and task.fixed."
        )
    if event.response is not None:
        raise BadRequest(
            f"{where}: send the results as 'threads' (or 'sensitive_content_reports') or as "
            "'response', not both."
        )
    if event.threads is not None and event.sensitive_content_reports is not None:
        raise BadRequest(
            f"{where}: a reported task has no threads; send 'threads' or "
            "'sensitive_content_reports', not both."
        )
    if event.threads is not None:
        return {"threads": _validated(_THREADS, event.threads, "threads", where)}
    reports = _validated(
        _REPORTS, event.sensitive_content_reports, "sensitive_content_reports", where
    )
    if not reports:
        raise BadRequest(f"{where}: 'sensitive_content_reports' needs at least one report.")
    return {"sensitive_content_reports": reports}


def _validated(adapter: TypeAdapter[Any], value: Any, field: str, where: str) -> Any:
    """The stored form: validated, ids assigned, nulls dropped, attachments kept."""
    try:
        parsed = adapter.validate_python(value)
    except ValidationError as exc:
        raise BadRequest(f"{where}: {_problems(exc, field)}") from None
    stored = adapter.dump_python(parsed, mode="json", exclude_none=True)
    if field.endswith("threads"):
        _check_unique_ids(stored, field, where)
    return stored


def _problems(exc: ValidationError, field: str) -> str:
    """The first problems, each at its full place, e.g. 'threads.0.turns.0.messages.1.role'."""
    parts = [
        f"'{'.'.join([field, *(str(p) for p in err['loc'])])}': {err['msg']}"
        for err in exc.errors()[:3]
    ]
    return f"invalid {field}: " + "; ".join(parts) + "."


def _check_unique_ids(threads: list[dict[str, Any]], field: str, where: str) -> None:
    seen: set[str] = set()
    for annotation in annotations_in(threads):
        if annotation["id"] in seen:
            raise BadRequest(
                f"{where}: '{field}' uses the annotation id {annotation['id']!r} twice."
            )
        seen.add(annotation["id"])


def _error_text(errors: list[dict[str, Any]]) -> str:
    parts = [e.get("message") or e.get("type") or "error" for e in errors]
    return ("; ".join(parts) or "The task could not be completed.")[:MAX_ERROR_CHARS]


def annotations_in(value: Any) -> Iterator[dict[str, Any]]:
    """Every annotation of stored threads, at every level (threads, turns, messages, chunks,
    rubric definitions and evaluations). Annotations nested in an annotation's metadata are
    part of that annotation, not found on their own."""
    if isinstance(value, list):
        for item in value:
            yield from annotations_in(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "annotations" and isinstance(item, list):
                yield from (a for a in item if isinstance(a, dict) and "id" in a)
            else:
                yield from annotations_in(item)


async def index_annotations(
    conn: Connection,
    groups: list[list[Event]],
    results: list[list[dict[str, Any]]],
    tasks: dict[str, dict[str, Any]],
) -> None:
    """Record where the annotations of every applied completion or fix live (one statement
    for the whole ingest group; a later event's annotation id wins)."""
    rows: dict[tuple[str, bool, str], str] = {}
    for group, group_results in zip(groups, results, strict=True):
        for event, result in zip(group, group_results, strict=True):
            if result["status"] != "applied" or event.type not in RESULT_TYPES:
                continue
            response = event.response
            if not isinstance(response, dict) or "threads" not in response:
                continue
            task = tasks[event.task_id]
            for annotation in annotations_in(response["threads"]):
                rows[(task["account_id"], task["is_test"], annotation["id"])] = event.task_id
    await v2store.index_annotations(
        conn, [(account, world, aid, task_id) for (account, world, aid), task_id in rows.items()]
    )


async def deliver(conn: Connection, event: Event) -> asyncpg.Record:
    """task.delivered: the task joins its project's delivery; returns the (unchanged) task."""
    assert event.delivery_name is not None
    return await v2store.deliver_task(
        conn, event.task_id, event.delivery_name, secrets.token_hex(12), event.when()
    )
