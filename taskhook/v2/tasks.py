"""v2 task rules: create a chat task, set metadata, present rows with `expand`, and find an
annotation. Like taskhook/core/tasks.py, every function takes the caller's Principal, so one
account and one world is all it can touch, and writes run in the caller's transaction."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from taskhook.core import callbacks, store
from taskhook.core.errors import BadRequest, NotFound
from taskhook.core.events_v2 import annotations_in
from taskhook.core.models_v2 import (
    Annotation,
    BatchOut,
    CreateChatTaskRequest,
    Message,
    MessageContent,
    ProjectOut,
    SetTaskMetadataRequest,
    TaskOut,
    Thread,
    Turn,
)
from taskhook.core.principal import Principal
from taskhook.core.settings import Settings
from taskhook.core.store import Conn, Connection, Row
from taskhook.core.store import v2 as v2store
from taskhook.core.tasks import check_callback_url
from taskhook.core.validation import check_metadata
from taskhook.v2 import lookup
from taskhook.v2.serialize import batch_out, project_out, task_out

CHAT_TYPE = "chat"  # v1 sees a v2 chat task as type "chat", its input in params
TEST_SOURCE_ID = "taskhook-test"
_ANNOTATION = TypeAdapter[Annotation](Annotation)


async def present(
    conn: Conn, who: Principal, rows: Iterable[Row], expand: frozenset[str] = frozenset()
) -> list[TaskOut]:
    """Tasks as v2 shows them; `expand` turns project and batch ids into objects (one query
    each for the whole page)."""
    rows = list(rows)
    projects: dict[str, ProjectOut] = {}
    batches: dict[str, BatchOut] = {}
    if "project" in expand:
        projects = await projects_by_id(conn, who, {r["project_public_id"] for r in rows})
    if "batch" in expand:
        ids = sorted({r["batch_public_id"] for r in rows if r["batch_public_id"]})
        if ids:
            found = await v2store.list_batches(
                conn, who, v2store.BatchFilters(ids=ids), limit=len(ids)
            )
            batches = {b["public_id"]: batch_out(b) for b in found}
    return [
        task_out(r, projects.get(r["project_public_id"]), batches.get(r["batch_public_id"]))
        for r in rows
    ]


async def projects_by_id(
    conn: Conn, who: Principal, ids: Iterable[str | None]
) -> dict[str, ProjectOut]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = await v2store.list_projects(conn, who, ids=wanted)
    return {r["public_id"]: project_out(r) for r in rows}


async def create_chat_task(
    conn: Connection, who: Principal, body: CreateChatTaskRequest, settings: Settings
) -> Row:
    """Validate everything, then write one row. A test key's task completes at once with a
    synthetic thread and calls back, as every test-key task does."""
    metadata = check_metadata(body.metadata or {})
    template_variables = body.template_variables or {}
    callback_url = body.callback_url or who.default_callback_url
    if callback_url:
        check_callback_url(callback_url, settings)
    project_name, batch_name = await _placement(conn, who, body)
    completed = who.is_test
    row = await store.insert_task(
        conn,
        who,
        {
            "id": secrets.token_hex(12),
            "type": CHAT_TYPE,
            "status": "completed" if completed else "pending",
            "project": project_name,
            "batch": batch_name,
            "instruction": None,
            "callback_url": callback_url,
            "params": {"template_variables": template_variables},
            "response": synthetic_response(template_variables) if completed else None,
            "metadata": metadata,
            "tags": None,
            "unique_id": None,
            "clear_unique_id_on_error": False,
            "priority": None,
            "project_param_version": None,
            "customer_review_status": "pending" if completed else None,
        },
    )
    if completed:
        await callbacks.trigger(conn, row, "completed")
    return await lookup.task(conn, who, row["id"])


async def _placement(
    conn: Conn, who: Principal, body: CreateChatTaskRequest
) -> tuple[str, str | None]:
    """(project name, batch name): a project, or a batch that implies its project."""
    if body.batch_id is None and body.batch_name is None:
        project = await lookup.project(conn, who, body.project_id, body.project_name)
        return project["name"], None
    batch = await lookup.batch(conn, who, body.batch_id, body.batch_name)
    if body.project_id is not None or body.project_name is not None:
        project = await lookup.project(conn, who, body.project_id, body.project_name)
        if project["id"] != batch["project_id"]:
            raise BadRequest(
                f"Batch {batch['name']!r} belongs to project {batch['project_name']!r}, "
                f"not {project['name']!r}."
            )
    if batch["effective_status"] == "cancelled":
        raise BadRequest(f"Batch {batch['name']!r} is cancelled; no tasks can be added to it.")
    return batch["project_name"], batch["name"]


def synthetic_response(template_variables: dict[str, Any]) -> dict[str, Any]:
    """A test key's instant result: the prompt and one assistant answer, in one thread."""
    prompt = template_variables.get("prompt")
    thread = Thread(
        turns=[
            Turn(
                messages=[
                    Message(
                        role="user",
                        content=MessageContent(text=prompt if isinstance(prompt, str) else ""),
                        source_id="user",
                    ),
                    Message(
                        role="assistant",
                        content=MessageContent(text="test response"),
                        source_id=TEST_SOURCE_ID,
                    ),
                ]
            )
        ]
    )
    return {"threads": [thread.model_dump(mode="json", exclude_none=True)]}


async def set_metadata(conn: Connection, who: Principal, body: SetTaskMetadataRequest) -> Row:
    """merge=false replaces the whole object; merge=true merges deeply, new values winning."""
    task = await store.lock_task(conn, who, body.task_id)
    if task is None:
        raise NotFound(f"Task {body.task_id!r} not found.")
    metadata = deep_merge(task["metadata"], body.metadata) if body.merge else body.metadata
    await store.set_metadata(conn, who, body.task_id, check_metadata(metadata))
    return await lookup.task(conn, who, body.task_id)


def deep_merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


async def annotation(conn: Conn, who: Principal, annotation_id: str) -> dict[str, Any]:
    """One annotation, with all its details, from the task whose response holds it."""
    task_id = await v2store.annotation_task_id(conn, who, annotation_id)
    row = await store.get_task(conn, who, task_id) if task_id else None
    response = row["response"] if row is not None else None
    if isinstance(response, dict):
        for found in annotations_in(response.get("threads")):
            if found["id"] != annotation_id:
                continue
            try:  # stored threads were validated at ingest; never emit what does not parse
                parsed = _ANNOTATION.validate_python(found)
            except ValidationError:
                break
            return _ANNOTATION.dump_python(parsed, mode="json", exclude_none=True)
    raise NotFound(f"Annotation {annotation_id!r} not found.")
