"""v2 batch rules: create, the lifecycle (finalize, pause, resume, cancel) and metadata.

Statuses, as Scale's v2 API has them: a batch starts `staging` (`staging_batch: true`)
or `in_progress`; finalize moves staging to in_progress; pause moves in_progress to
`paused` and resume moves it back; cancel works in any status but completed and cancelled
and is final, and the batch's queued tasks (pending, work not started) become canceled. An
in-progress batch with tasks and none pending reads `completed` (derived, as in v1). A move
from any other status is a 400 that names the status.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskhook.core import store
from taskhook.core.errors import BadRequest
from taskhook.core.models_v2 import (
    BatchOperationRequest,
    CreateBatchRequest,
    SetBatchMetadataRequest,
)
from taskhook.core.principal import Principal
from taskhook.core.settings import Settings
from taskhook.core.store import Connection, Row
from taskhook.core.store import v2 as v2store
from taskhook.core.tasks import check_callback_url
from taskhook.core.validation import check_metadata
from taskhook.v2 import lookup
from taskhook.v2.tasks import deep_merge


@dataclass(frozen=True, slots=True)
class Move:
    allowed: frozenset[str]  # effective statuses it may start from
    to: str
    message: str  # the `message` of pause, resume and cancel replies


MOVES = {
    "finalize": Move(frozenset({"staging"}), "in_progress", "Batch finalized."),
    "pause": Move(
        frozenset({"in_progress"}),
        "paused",
        "Batch pause initiated. Only unstarted tasks will be paused.",
    ),
    "resume": Move(
        frozenset({"paused"}),
        "in_progress",
        "Batch resumed. Its unstarted tasks will be worked on again.",
    ),
    "cancel": Move(
        frozenset({"staging", "in_progress", "paused"}),
        "cancelled",
        "Batch cancellation initiated. Unstarted tasks will be cancelled.",
    ),
}


async def create(
    conn: Connection, who: Principal, body: CreateBatchRequest, settings: Settings
) -> Row:
    metadata = check_metadata(body.metadata or {})
    if body.callback:
        check_callback_url(body.callback, settings, "callback")
    project = await lookup.project(conn, who, body.project_id, body.project_name)
    status = "staging" if body.staging_batch else "in_progress"
    # A duplicate name (unique per account and world, as in v1) is a 409.
    await store.insert_batch(
        conn, who, project["id"], body.name, status, body.callback or "", False, False, metadata
    )
    return await lookup.batch(conn, who, None, body.name)


async def move(conn: Connection, who: Principal, action: str, body: BatchOperationRequest) -> Row:
    """Run one lifecycle move on the batch, locked; returns the batch as it now reads."""
    rule = MOVES[action]
    batch = await _locked(conn, who, body)
    status = batch["effective_status"]
    if status not in rule.allowed:
        allowed = " or ".join(sorted(rule.allowed))
        raise BadRequest(
            f"Batch {batch['name']!r} is {status}; only a batch that is {allowed} can be "
            f"{_past(action)}."
        )
    await v2store.set_batch_status(conn, who, batch["public_id"], rule.to)
    if action == "cancel":
        await v2store.cancel_unstarted_tasks(conn, who, batch["name"])
    return await lookup.batch(conn, who, batch["public_id"], None)


def _past(action: str) -> str:
    return {"finalize": "finalized", "pause": "paused", "resume": "resumed"}.get(
        action, "cancelled"
    )


async def set_metadata(conn: Connection, who: Principal, body: SetBatchMetadataRequest) -> Row:
    batch = await _locked(conn, who, body)
    metadata = deep_merge(batch["metadata"], body.metadata) if body.merge else body.metadata
    await v2store.set_batch_metadata(conn, who, batch["public_id"], check_metadata(metadata))
    return await lookup.batch(conn, who, batch["public_id"], None)


async def _locked(conn: Connection, who: Principal, body: BatchOperationRequest) -> Row:
    """Find the batch, lock its row, and read it again under the lock."""
    found = await lookup.batch(conn, who, body.batch_id, body.batch_name)
    await v2store.lock_batch(conn, who, found["public_id"])
    return await lookup.batch(conn, who, found["public_id"], None)
