"""v2 batches, projects and metadata through the SDK's client.v2."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from scaleapi.api_client.v2 import (
    Batch,
    BatchOperationRequest,
    BatchStatus,
    CreateBatchRequest,
    CreateChatTaskRequest,
    GetBatchesResponse,
    GetProjectsResponse,
    Project,
    SetBatchMetadataRequest,
    SetTaskMetadataRequest,
    Task,
    TaskStatus,
    V2Api,
)
from scaleapi.api_client.v2.exceptions import (
    BadRequestException,
    ConflictException,
    NotFoundException,
)

from tests.conftest import Api
from tests.v2.conftest import CALLBACK, PROJECT
from tests.v2.helpers import Ingest, event, raises, rich_threads, run

Chat = Callable[..., Awaitable[Task]]


def by_name(name: str) -> BatchOperationRequest:
    return BatchOperationRequest(batch_name=name)


async def new_batch(v2: V2Api, name: str, **fields: Any) -> Batch:
    return await run(v2.create_batch, CreateBatchRequest(name=name, project_name=PROJECT, **fields))


async def test_v12_set_task_metadata_replaces_then_merges(v2: V2Api, chat: Chat) -> None:
    """V12: merge=false (the default, always sent) replaces; merge=true merges deeply."""
    task = await chat(metadata={"old": True})
    replaced = await run(
        v2.set_task_metadata, SetTaskMetadataRequest(task_id=task.task_id, metadata={"a": {"b": 1}})
    )
    assert isinstance(replaced, Task) and replaced.metadata == {"a": {"b": 1}}
    merged = await run(
        v2.set_task_metadata,
        SetTaskMetadataRequest(task_id=task.task_id, metadata={"a": {"c": 2}, "d": 3}, merge=True),
    )
    assert merged.metadata == {"a": {"b": 1, "c": 2}, "d": 3}
    got = await run(v2.get_task, task.task_id)
    assert got.metadata == merged.metadata


async def test_v12_metadata_of_unknown_task_is_404_and_oversized_is_400(
    v2: V2Api, chat: Chat
) -> None:
    """V12: an unknown task is a 404; metadata over 10 KB (after the merge) is a 400."""
    await raises(
        NotFoundException, v2.set_task_metadata, SetTaskMetadataRequest(task_id="no", metadata={})
    )
    task = await chat()
    big = {"x": "y" * 11_000}
    exc = await raises(
        BadRequestException,
        v2.set_task_metadata,
        SetTaskMetadataRequest(task_id=task.task_id, metadata=big, merge=True),
    )
    assert "10 KB" in exc.body


async def test_v13_create_batch_and_duplicate_is_409(v2: V2Api, project: dict[str, Any]) -> None:
    """V13: a staging batch with metadata and callback; the same name again is a 409."""
    batch = await new_batch(v2, "b1", staging_batch=True, metadata={"k": "v"}, callback=CALLBACK)
    assert isinstance(batch, Batch)
    assert batch.status == BatchStatus.STAGING
    assert (batch.name, batch.metadata, batch.callback) == ("b1", {"k": "v"}, CALLBACK)
    assert batch.project.actual_instance == (await run(v2.get_project, project_name=PROJECT)).id
    again = CreateBatchRequest(name="b1", project_name=PROJECT)
    exc = await raises(ConflictException, v2.create_batch, again)
    assert exc.status == 409
    minimal = await run(
        v2.create_batch, CreateBatchRequest(name="b2", project_id=batch.project.actual_instance)
    )
    assert minimal.status == BatchStatus.IN_PROGRESS and minimal.metadata == {}
    assert minimal.callback is None


async def test_v13_create_batch_needs_a_known_project(v2: V2Api, project: dict[str, Any]) -> None:
    """V13: no project is a 400, an unknown one a 404."""
    await raises(BadRequestException, v2.create_batch, CreateBatchRequest(name="x"))
    await raises(
        NotFoundException, v2.create_batch, CreateBatchRequest(name="x", project_name="no")
    )


async def test_v14_get_batch_by_name_and_by_id(v2: V2Api, project: dict[str, Any]) -> None:
    """V14: get_batch(batch_name=...) and get_batch(<id>, expand=["project"])."""
    made = await new_batch(v2, "b1")
    got = await run(v2.get_batch, batch_name="b1")
    assert got.name == "b1" and got.id == made.id and got.metadata == {}
    expanded = await run(v2.get_batch, made.id, expand=["project"])
    assert type(expanded.project.actual_instance).__name__ == "Project"
    assert expanded.project.actual_instance.name == PROJECT
    await raises(NotFoundException, v2.get_batch, batch_name="nope")
    await raises(BadRequestException, v2.get_batch)


async def test_v15_get_batches_pages_with_next_token(v2: V2Api, project: dict[str, Any]) -> None:
    """V15: limit=1 pages reach every batch by following next_token; the last page has
    none."""
    made = []
    for i in range(3):
        await asyncio.sleep(0.002)  # fixed: a new millisecond, so timestamps tell them apart
        made.append(await new_batch(v2, f"page-{i}"))
    seen, token, calls = [], None, 0
    while True:
        page = await run(v2.get_batches, project_name=PROJECT, limit=1, next_token=token)
        calls += 1
        assert isinstance(page, GetBatchesResponse)
        seen += [b.id for b in page.batches]
        token = page.next_token
        if token is None:
            break
    assert seen == [b.id for b in reversed(made)]
    assert calls == 3  # the third page is the last: it has no next_token


async def test_v15_get_batches_filters(
    v2: V2Api, live: Api, chat: Chat, ingest: Ingest, project: dict[str, Any]
) -> None:
    """V15: status (effective: a finished batch reads completed), created and completed
    bounds, expand=project; an unknown status is a 400."""
    staging = await new_batch(v2, "st", staging_batch=True)
    done = await new_batch(v2, "done")
    task = await chat(batch_name="done")
    await ingest.applied(event("completed", task.task_id, threads=rich_threads()))

    async def names(**filters: Any) -> list[str]:
        page = await run(v2.get_batches, **filters)
        return [b.name for b in page.batches]

    assert await names(status=BatchStatus.STAGING) == ["st"]
    assert await names(status=BatchStatus.COMPLETED, project_name=PROJECT) == ["done"]
    got_done = await run(v2.get_batch, done.id)
    assert got_done.status == BatchStatus.COMPLETED and got_done.completed_at is not None
    assert await names(created_after=staging.created_at - timedelta(seconds=1)) == ["done", "st"]
    assert await names(created_before=done.created_at) == ["st"]
    future = datetime.now(UTC) + timedelta(days=1)
    assert await names(completed_after=future) == []
    assert await names(completed_before=future) == ["done"]
    expanded = await run(v2.get_batches, expand=["project"], limit=1)
    assert expanded.batches[0].project.actual_instance.name == PROJECT
    # the SDK checks the status enum itself; a raw request with another value is a 400
    status, body = await live.call("GET", "/v2/batches", params={"status": "canceled"})
    assert status == 400 and "cancelled" in body["error"], body


async def test_v16_finalize(v2: V2Api, project: dict[str, Any]) -> None:
    """V16: finalize moves staging to in_progress; finalizing any other batch is a 400."""
    await new_batch(v2, "b1", staging_batch=True)
    got = await run(v2.finalize_batch, by_name("b1"))
    assert isinstance(got, Batch) and got.status == BatchStatus.IN_PROGRESS
    exc = await raises(BadRequestException, v2.finalize_batch, by_name("b1"))
    assert "staging" in exc.body
    await raises(NotFoundException, v2.finalize_batch, by_name("nope"))
    await raises(BadRequestException, v2.finalize_batch, BatchOperationRequest())


async def test_v17_pause_resume_cancel(
    v2: V2Api, chat: Chat, ingest: Ingest, project: dict[str, Any]
) -> None:
    """V17: pause (in_progress only), resume (paused only), cancel (not completed or
    cancelled; final), each answering {batch, message}; cancel cancels the queued tasks."""
    batch = await new_batch(v2, "b1")
    queued, started = await chat(batch_name="b1"), await chat(batch_name="b1")
    await ingest.applied(event("started", started.task_id))
    paused = await run(v2.pause_batch, BatchOperationRequest(batch_id=batch.id))
    assert paused.batch.status == BatchStatus.PAUSED
    assert paused.message == "Batch pause initiated. Only unstarted tasks will be paused."
    await raises(BadRequestException, v2.pause_batch, by_name("b1"))
    resumed = await run(v2.resume_batch, by_name("b1"))
    assert resumed.batch.status == BatchStatus.IN_PROGRESS and resumed.message
    await raises(BadRequestException, v2.resume_batch, by_name("b1"))
    cancelled = await run(v2.cancel_batch, by_name("b1"))
    assert cancelled.batch.status == BatchStatus.CANCELLED
    assert "cancel" in cancelled.message.lower()
    assert (await run(v2.get_task, queued.task_id)).status == TaskStatus.CANCELED
    assert (await run(v2.get_task, started.task_id)).status == TaskStatus.PENDING
    exc = await raises(BadRequestException, v2.resume_batch, by_name("b1"))
    assert "cancelled" in exc.body
    await raises(BadRequestException, v2.cancel_batch, by_name("b1"))
    await raises(BadRequestException, v2.pause_batch, by_name("b1"))
    no_more = CreateChatTaskRequest(batch_name="b1")
    await raises(BadRequestException, v2.create_chat_task, no_more)


async def test_v17_completed_batch_cannot_be_paused_or_cancelled(
    v2: V2Api, chat: Chat, ingest: Ingest, project: dict[str, Any]
) -> None:
    """V17: a batch whose tasks are all done reads completed; pause and cancel are 400s."""
    await new_batch(v2, "b1")
    task = await chat(batch_name="b1")
    await ingest.applied(event("completed", task.task_id, threads=rich_threads()))
    await raises(BadRequestException, v2.pause_batch, by_name("b1"))
    await raises(BadRequestException, v2.cancel_batch, by_name("b1"))


async def test_v17_v1_sees_the_v2_batch_statuses(
    v2: V2Api, live: Api, project: dict[str, Any]
) -> None:
    """v1 reads the same batches: paused and cancelled show as such, and a v1 finalize does
    not revive a cancelled batch."""
    await new_batch(v2, "b1")
    await run(v2.pause_batch, by_name("b1"))
    status, body = await live.call("GET", "/v1/batches/b1")
    assert status == 200 and body["status"] == "paused"
    await run(v2.cancel_batch, by_name("b1"))
    status, body = await live.call("POST", "/v1/batches/b1/finalize")
    assert status == 200 and body["status"] == "cancelled"


async def test_v18_set_batch_metadata(v2: V2Api, project: dict[str, Any]) -> None:
    """V18: replace (merge=false), then a deep merge."""
    batch = await new_batch(v2, "b1", metadata={"old": 1})
    got = await run(
        v2.set_batch_metadata,
        SetBatchMetadataRequest(batch_id=batch.id, metadata={"a": {"b": 1}}, merge=False),
    )
    assert isinstance(got, Batch) and got.metadata == {"a": {"b": 1}}
    merged = await run(
        v2.set_batch_metadata,
        SetBatchMetadataRequest(batch_name="b1", metadata={"a": {"c": 2}}, merge=True),
    )
    assert merged.metadata == {"a": {"b": 1, "c": 2}}


async def test_v19_projects(v2: V2Api, live: Api, pool: asyncpg.Pool) -> None:
    """V19: get_project by name or id; get_projects is {"projects": [...]} with created
    bounds; unknown is a 404, no parameter a 400."""
    await live.project("First")
    await asyncio.sleep(0.002)  # fixed: a new millisecond, so timestamps tell them apart
    await live.project("Second")
    first = await run(v2.get_project, project_name="First")
    second = await run(v2.get_project, project_name="Second")
    assert isinstance(first, Project) and first.name == "First"
    assert (await run(v2.get_project, project_id=first.id)).name == "First"
    listed = await run(v2.get_projects)
    assert isinstance(listed, GetProjectsResponse)
    assert [p.name for p in listed.projects] == ["First", "Second"]
    later = await run(v2.get_projects, created_after=first.created_at)
    assert [p.name for p in later.projects] == ["Second"]
    earlier = await run(v2.get_projects, created_before=second.created_at)
    assert [p.name for p in earlier.projects] == ["First"]
    await raises(NotFoundException, v2.get_project, project_name="nope")
    await raises(NotFoundException, v2.get_project, project_id=first.id, project_name="Second")
    await raises(BadRequestException, v2.get_project)
