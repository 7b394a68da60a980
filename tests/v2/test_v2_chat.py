"""v2 chat tasks: create_chat_task (V11), and the workforce reporting their results through
the ingest endpoint: threads, sensitive content reports, errors, validated against the v2
models; completion calls back as for any task."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from scaleapi.api_client.v2 import (
    CreateBatchRequest,
    CreateChatTaskRequest,
    Task,
    TaskStatus,
    V2Api,
)
from scaleapi.api_client.v2.exceptions import BadRequestException, NotFoundException

from tests.conftest import Api
from tests.sink import Sink
from tests.v2.conftest import CALLBACK, PROJECT
from tests.v2.helpers import Ingest, ann, event, raises, rich_threads, run

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

Chat = Callable[..., Awaitable[Task]]


async def callbacks_of(pool: asyncpg.Pool, task_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT trigger, target, payload::jsonb AS payload FROM deliveries d "
        "JOIN delivery_payloads p ON p.delivery_id = d.id WHERE task_id = $1 "
        "ORDER BY id",
        task_id,
    )
    return [dict(r) for r in rows]


async def test_v11_create_chat_task(v2: V2Api, project: dict[str, Any]) -> None:
    """V11: 200 (not 201, which the SDK turns into None) and the pending task with project,
    batch, metadata and `threads: []`."""
    batch = await run(v2.create_batch, CreateBatchRequest(name="b11", project_name=PROJECT))
    request = CreateChatTaskRequest(
        project_name=PROJECT,
        batch_name="b11",
        template_variables={"prompt": "x", "n": 1},
        metadata={"k": 1},
        callback_url=CALLBACK,
    )
    task = await run(v2.create_chat_task, request)
    assert isinstance(task, Task)
    assert task.status == TaskStatus.PENDING
    assert task.project.actual_instance == batch.project.actual_instance
    assert task.batch.actual_instance == batch.id
    assert task.metadata == {"k": 1}
    assert task.threads == []


async def test_v11_batch_alone_implies_its_project(v2: V2Api, project: dict[str, Any]) -> None:
    """V11: a batch (by id) implies its project; a project that does not hold the batch is
    a 400; an unknown project or batch is a 404; no project at all is a 400."""
    batch = await run(v2.create_batch, CreateBatchRequest(name="b11b", project_name=PROJECT))
    task = await run(v2.create_chat_task, CreateChatTaskRequest(batch_id=batch.id))
    assert task.batch.actual_instance == batch.id
    await raises(NotFoundException, v2.create_chat_task, CreateChatTaskRequest(project_name="no"))
    await raises(NotFoundException, v2.create_chat_task, CreateChatTaskRequest(batch_id="nope"))
    exc = await raises(BadRequestException, v2.create_chat_task, CreateChatTaskRequest())
    assert "project_id" in exc.body


async def test_v11_task_in_another_projects_batch_is_400(
    v2: V2Api, live: Api, project: dict[str, Any]
) -> None:
    """V11: the batch must belong to the project named with it."""
    await live.project("Other")
    await run(v2.create_batch, CreateBatchRequest(name="bo", project_name="Other"))
    request = CreateChatTaskRequest(project_name=PROJECT, batch_name="bo")
    exc = await raises(BadRequestException, v2.create_chat_task, request)
    assert "belongs to project" in exc.body


async def test_v11_test_key_task_completes_at_once_and_calls_back(
    testkey_v2: V2Api, test_api: Api, pool: asyncpg.Pool
) -> None:
    """V11: with a test key the chat task completes at once with a synthetic thread (the
    prompt and an answer) and its callback is enqueued, as for every test-key task."""
    await test_api.project(PROJECT)
    request = CreateChatTaskRequest(
        project_name=PROJECT, template_variables={"prompt": "Say hi"}, callback_url=CALLBACK
    )
    task = await run(testkey_v2.create_chat_task, request)
    assert task.status == TaskStatus.COMPLETED
    user, assistant = task.threads[0].turns[0].messages
    assert user.content.text == "Say hi" and assistant.role.value == "assistant"
    [callback] = await callbacks_of(pool, task.task_id)
    assert callback["trigger"] == "completed" and callback["target"] == CALLBACK


async def test_completion_with_threads_calls_back(
    v2: V2Api, completed: Chat, pool: asyncpg.Pool
) -> None:
    """A task.completed with threads completes the task and enqueues its callback (v1 body:
    the task, and `response` holding the threads)."""
    task = await completed(callback_url=CALLBACK)
    [callback] = await callbacks_of(pool, task.task_id)
    assert callback["trigger"] == "completed" and callback["target"] == CALLBACK
    body = callback["payload"]
    assert body["status"] == "completed" and body["task_id"] == task.task_id
    assert body["response"]["threads"][0]["id"] == "thread_1"


async def test_completion_callback_is_delivered(
    v2: V2Api, chat: Chat, ingest: Ingest, sink: tuple[Sink, str], run_dispatcher: Any
) -> None:
    """End to end: the dispatcher POSTs the chat task's completion to its callback_url."""
    receiver, url = sink
    await run_dispatcher()
    task = await chat(callback_url=f"{url}/ok/chat")
    await ingest.applied(event("completed", task.task_id, threads=rich_threads()))
    await receiver.wait_for(lambda: receiver.to("/ok/chat"))
    body = receiver.to("/ok/chat")[0].json
    assert body["task_id"] == task.task_id
    assert body["response"]["threads"][0]["turns"][0]["messages"][1]["source_id"] == "base_model"


async def test_missing_ids_and_annotations_are_filled_in(
    v2: V2Api, chat: Chat, ingest: Ingest
) -> None:
    """Threads, turns and annotations without an id get one; a missing `annotations` list
    becomes `[]` (the SDK requires it at every level)."""
    task = await chat()
    threads = [
        {
            "turns": [
                {
                    "messages": [
                        {
                            "role": "assistant",
                            "content": {"text": "ok"},
                            "source_id": "m",
                            "annotations": [{"key": "score", "type": "integer", "value": 2}],
                        }
                    ]
                }
            ]
        }
    ]
    await ingest.applied(event("completed", task.task_id, threads=threads))
    got = await run(v2.get_task, task.task_id)
    thread = got.threads[0]
    assert thread.id.startswith("thread_") and thread.annotations == []
    assert thread.turns[0].id.startswith("turn_") and thread.turns[0].annotations == []
    annotation = thread.turns[0].messages[0].annotations[0].actual_instance
    assert annotation.id.startswith("an_") and annotation.value == 2


BAD_THREADS = {
    "role outside the enum": (
        [{"turns": [{"messages": [{"role": "tool", "content": {}, "source_id": "s"}]}]}],
        "role",
    ),
    "no source_id": (
        [{"turns": [{"messages": [{"role": "user", "content": {}}]}]}],
        "source_id",
    ),
    "annotation without type": (
        [{"turns": [], "annotations": [{"id": "a", "key": "k", "value": 3}]}],
        "discriminator 'type'",
    ),
    "unknown annotation type": (
        [{"turns": [], "annotations": [ann("a", "k", "stars", 3)]}],
        "annotations.0",
    ),
    "value of the wrong type": (
        [{"turns": [], "annotations": [ann("a", "k", "integer", "3")]}],
        "integer.value",
    ),
    "file value as one object": (
        [{"turns": [], "annotations": [ann("a", "k", "file", {"url": "https://x"})]}],
        "file.value",
    ),
    "chunk without annotations type": (
        [
            {
                "turns": [
                    {"messages": [{"role": "user", "content": {"chunks": [{}]}, "source_id": "s"}]}
                ]
            }
        ],
        "chunks",
    ),
    "duplicate annotation id": (
        [{"turns": [], "annotations": [ann("a", "k", "text", "x"), ann("a", "j", "text", "y")]}],
        "twice",
    ),
    "unknown key": ([{"turns": [], "anotations": []}], "anotations"),
}


@pytest.mark.parametrize("case", sorted(BAD_THREADS))
async def test_threads_are_validated_against_the_v2_models(
    chat: Chat, ingest: Ingest, pool: asyncpg.Pool, case: str
) -> None:
    """Threads the SDK could not parse are a 400 naming the event and the field; nothing is
    applied."""
    threads, field = BAD_THREADS[case]
    task = await chat()
    status, body = await ingest.send([event("completed", task.task_id, threads=threads)])
    assert status == 400, body
    assert "event 0" in body["error"] and field in body["error"], body
    assert await pool.fetchval("SELECT status FROM tasks WHERE id = $1", task.task_id) == "pending"


BAD_EVENTS = {
    "threads on an errored event": (
        {"type": "task.errored", "error": "x", "threads": []},
        "only for task.completed",
    ),
    "threads and response": (
        {"type": "task.completed", "threads": [], "response": {"a": 1}},
        "not both",
    ),
    "threads and reports": (
        {"type": "task.completed", "threads": [], "sensitive_content_reports": [{}]},
        "a reported task has no threads",
    ),
    "no reports": ({"type": "task.completed", "sensitive_content_reports": []}, "at least one"),
    "error type outside the enum": (
        {"type": "task.errored", "errors": [{"type": "ATTACHMENT_DOWNLOAD_FAILED"}]},
        "errors.0.type",
    ),
    "errors on a completion": (
        {"type": "task.completed", "response": {}, "errors": []},
        "'errors' is only for task.errored",
    ),
    "invalid response.threads": (
        {"type": "task.completed", "response": {"threads": [{"turns": "x"}]}},
        "response.threads",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
async def test_v2_event_fields_are_checked(chat: Chat, ingest: Ingest, case: str) -> None:
    """threads/sensitive_content_reports only on completions and fixes, errors only on
    errored events, one kind of result at a time: otherwise a 400."""
    fields, message = BAD_EVENTS[case]
    task = await chat()
    payload = {"event_id": "evt_bad", "task_id": task.task_id, **fields}
    status, body = await ingest.send(payload)
    assert status == 400, body
    assert message in body["error"], body


async def test_errors_without_error_text_fill_in_v1_error(
    v2: V2Api, live: Api, chat: Chat, ingest: Ingest
) -> None:
    """V5: `errors` alone is enough for task.errored; v1's `response.error` is their text."""
    task = await chat()
    errors = [
        {"type": "PROMPT_INFEASIBLE", "message": "Cannot be done."},
        {"type": "LANGUAGE_MISMATCH"},
    ]
    await ingest.applied(event("errored", task.task_id, errors=errors))
    got = await run(v2.get_task, task.task_id)
    assert [e.type.value for e in got.errors] == ["PROMPT_INFEASIBLE", "LANGUAGE_MISMATCH"]
    _, body = await live.call("GET", f"/v1/task/{task.task_id}")
    assert body["response"]["error"] == "Cannot be done.; LANGUAGE_MISMATCH"
    assert body["response"]["errors"] == errors


async def test_fix_with_threads_replaces_them(
    v2: V2Api, completed: Chat, ingest: Ingest, live: Api
) -> None:
    """task.fixed may carry threads: they replace the completed ones (the old ones go to v1's
    prior_responses), and the old annotations are no longer found."""
    task = await completed()
    fixed = [{"id": "thread_fixed", "turns": [], "annotations": [ann("an_new", "k", "text", "v")]}]
    await ingest.applied(event("fixed", task.task_id, threads=fixed))
    got = await run(v2.get_task, task.task_id)
    assert [t.id for t in got.threads] == ["thread_fixed"]
    _, body = await live.call("GET", f"/v1/task/{task.task_id}")
    assert body["prior_responses"][0]["threads"][0]["id"] == "thread_1"
    assert body["customer_review_status"] == "fixed"
    assert (await run(v2.get_annotation, "an_new")).actual_instance.value == "v"
    await raises(NotFoundException, v2.get_annotation, "an_int")


async def test_stored_threads_that_do_not_validate_are_never_emitted(
    v2: V2Api, chat: Chat, ingest: Ingest, pool: asyncpg.Pool
) -> None:
    """N2 at run time: a response whose threads do not validate (e.g. written by a v1
    customer fix) reads as `threads: []` on v2 rather than breaking the SDK's parse."""
    task = await chat()
    await ingest.applied(event("completed", task.task_id, threads=rich_threads()))
    bad = json.dumps({"threads": [{"id": "t", "turns": [], "annotations": [{"key": "k"}]}]})
    await pool.execute(
        "UPDATE tasks SET response = $2::text::jsonb WHERE id = $1", task.task_id, bad
    )
    got = await run(v2.get_task, task.task_id)
    assert got.status == TaskStatus.COMPLETED and got.threads == []


async def test_create_chat_task_honours_idempotency_key(live: Api, project: dict[str, Any]) -> None:
    """An Idempotency-Key (the SDK never sends one; raw clients may) makes a repeat return the
    first reply and create nothing, as on v1."""
    body = {"project_name": PROJECT, "template_variables": {"prompt": "once"}}
    headers = {"Idempotency-Key": "chat-1"}
    first = await live.call("POST", "/v2/task/chat", json=body, headers=headers)
    again = await live.call("POST", "/v2/task/chat", json=body, headers=headers)
    assert first == again and first[0] == 200
    _, page = await live.call("GET", "/v2/tasks", params={"project_name": PROJECT})
    assert [t["task_id"] for t in page["tasks"]] == [first[1]["task_id"]]
    other = await live.call(
        "POST", "/v2/task/chat", json={**body, "metadata": {"x": 1}}, headers=headers
    )
    assert other[0] == 409
