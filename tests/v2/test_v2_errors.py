"""Bad input on v2: the v2 error shape `{"status_code", "error"}` and the
right ApiException subclass in the SDK; 404 for unknown ids, 400 for a missing required
parameter; never a 500. Also get_annotation (V23) and attachments (N1)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from scaleapi.api_client.v2 import (
    BatchOperationRequest,
    CreateBatchRequest,
    Task,
    V2Api,
)
from scaleapi.api_client.v2.exceptions import (
    ApiException,
    BadRequestException,
    ConflictException,
    NotFoundException,
    UnauthorizedException,
)

from tests.conftest import Api
from tests.v2.conftest import PROJECT, MakeClient
from tests.v2.helpers import MESSAGE_ANNOTATIONS, Ingest, event, raises, rich_threads, run

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

Chat = Callable[..., Awaitable[Task]]


def assert_error(status: int, body: Any, expected: int, *words: str) -> None:
    assert status == expected, body
    assert set(body) == {"status_code", "error"} and body["status_code"] == expected, body
    for word in words:
        assert word in body["error"], body


async def test_exception_classes(v2_client: MakeClient, v2: V2Api, chat: Chat) -> None:
    """Each status reaches the SDK as its ApiException subclass, with the body intact."""
    await chat()
    cases: list[tuple[type[ApiException], Any, tuple[Any, ...], dict[str, Any]]] = [
        (BadRequestException, v2.get_tasks, (), {}),
        (NotFoundException, v2.get_task, ("nope",), {}),
        (UnauthorizedException, v2_client("live_x").v2.get_project, (), {"project_name": "x"}),
        (
            ConflictException,
            v2.create_batch,
            (CreateBatchRequest(name="dup", project_name=PROJECT),),
            {},
        ),
    ]
    await run(v2.create_batch, CreateBatchRequest(name="dup", project_name=PROJECT))
    for exc_type, fn, args, kwargs in cases:
        exc = await raises(exc_type, fn, *args, **kwargs)
        assert exc.body.startswith('{"status_code":'), exc.body
        assert exc.headers["Content-Type"].startswith("application/json")


REQUIRED = [
    ("GET", "/v2/task", {}, "task_id"),
    ("GET", "/v2/tasks", {"status": "pending"}, "project_id"),
    ("GET", "/v2/batch", {}, "batch_id"),
    ("GET", "/v2/project", {}, "project_name"),
    ("GET", "/v2/deliveries", {}, "project_id"),
    ("GET", "/v2/delivery", {}, "delivery_id"),
    ("GET", "/v2/delivery", {"delivery_name": "d"}, "project_id"),
    ("GET", "/v2/delivery/tasks", {}, "project_name"),
    ("GET", "/v2/annotation", {}, "annotation_id"),
    ("GET", "/v2/schema", {}, "schema_id"),
]


@pytest.mark.parametrize(("method", "path", "query", "named"), REQUIRED)
async def test_missing_required_parameter_is_400(
    live: Api, project: dict[str, Any], method: str, path: str, query: dict[str, str], named: str
) -> None:
    """A missing required filter or id is a 400 that names it."""
    status, body = await live.call(method, path, params=query)
    assert_error(status, body, 400, named)


UNKNOWN = [
    ("GET", "/v2/task", {"task_id": "nope"}),
    ("GET", "/v2/tasks", {"project_name": "nope"}),
    ("GET", "/v2/tasks", {"batch_id": "nope"}),
    ("GET", "/v2/batch", {"batch_name": "nope"}),
    ("GET", "/v2/project", {"project_id": "nope"}),
    ("GET", "/v2/deliveries", {"project_name": "nope"}),
    ("GET", "/v2/delivery", {"delivery_id": "nope"}),
    ("GET", "/v2/delivery/tasks", {"project_id": "nope"}),
    ("GET", "/v2/annotation", {"annotation_id": "nope"}),
    ("GET", "/v2/schema", {"schema_id": "0" * 24}),
    ("GET", "/v2/datasets/deliveries", {"dataset_id": "nope"}),
    ("GET", "/v2/datasets/delivery", {"delivery_id": "nope"}),
    ("GET", "/v2/datasets/tasks", {"dataset_id": "nope"}),
    ("GET", "/v2/datasets/task", {"task_id": "nope"}),
]


@pytest.mark.parametrize(("method", "path", "query"), UNKNOWN)
async def test_unknown_id_is_404(
    live: Api, project: dict[str, Any], method: str, path: str, query: dict[str, str]
) -> None:
    """An unknown id or name is a 404."""
    status, body = await live.call(method, path, params=query)
    assert_error(status, body, 404)


BAD_QUERIES = [
    ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"status": "done"}, "status"),
    ({"status": "cancelled"}, "status"),  # a batch's spelling, not a task's
    ({"expand": "delivery"}, "expand"),
    ({"opts": "everything"}, "opts"),
    ({"completed_after": "yesterday"}, "completed_after"),
    ({"next_token": "garbage"}, "next_token"),
]


@pytest.mark.parametrize(("query", "named"), BAD_QUERIES)
async def test_bad_query_values_are_400(
    live: Api, project: dict[str, Any], query: dict[str, str], named: str
) -> None:
    """Out-of-range, unknown or malformed query values are 400s naming the parameter."""
    status, body = await live.call("GET", "/v2/tasks", params={"project_name": PROJECT, **query})
    assert_error(status, body, 400, named)


async def test_next_token_of_another_list_is_400(v2: V2Api, chat: Chat) -> None:
    """A batches token does not page tasks (tokens are signed per list, account and world)."""
    for name in ("b1", "b2"):
        await run(v2.create_batch, CreateBatchRequest(name=name, project_name=PROJECT))
    token = (await run(v2.get_batches, limit=1)).next_token
    assert token
    exc = await raises(BadRequestException, v2.get_tasks, project_name=PROJECT, next_token=token)
    assert "next_token" in exc.body


BAD_BODIES = [
    ("/v2/task/chat", b"{not json", "not valid JSON"),
    ("/v2/task/chat", b"[]", "JSON object"),
    ("/v2/task/chat", b'{"project_name": 5}', "project_name"),
    ("/v2/task/chat", b'{"project_name": "Chat P", "unique_id": "u"}', "unique_id"),
    ("/v2/task/chat", b'{"project_name": "Chat P", "callback_url": "ftp://x"}', "callback_url"),
    ("/v2/task/metadata", b'{"task_id": "t"}', "metadata"),
    ("/v2/task/metadata", b'{"task_id": "t", "metadata": {}, "merge": "yes"}', "merge"),
    ("/v2/batch", b'{"project_name": "Chat P"}', "name"),
    ("/v2/batch", b'{"name": "b", "project_name": "Chat P", "staging_batch": 1}', "staging"),
    ("/v2/batch/pause", b"{}", "batch_id"),
    ("/v2/batch/metadata", b'{"batch_name": "b"}', "metadata"),
    ("/v2/task/chat", b"", "empty"),
]


@pytest.mark.parametrize(("path", "raw", "named"), BAD_BODIES)
async def test_bad_bodies_are_400(
    live: Api, project: dict[str, Any], path: str, raw: bytes, named: str
) -> None:
    """Malformed JSON, wrong types and unknown keys are 400s naming what is wrong, and
    nothing is written."""
    status, body = await live.call(
        "POST", path, data=raw, headers={"Content-Type": "application/json"}
    )
    assert_error(status, body, 400, named)
    status, page = await live.call("GET", "/v2/tasks", params={"project_name": PROJECT})
    assert page["tasks"] == []


async def test_wrong_method_is_405(live: Api) -> None:
    status, body = await live.call("DELETE", "/v2/task", params={"task_id": "x"})
    assert_error(status, body, 405)


async def test_objects_of_another_world_are_404(v2: V2Api, testkey_v2: V2Api, chat: Chat) -> None:
    """A test key sees none of the live world's tasks, batches or projects."""
    task = await chat()
    await raises(NotFoundException, testkey_v2.get_task, task.task_id)
    await raises(NotFoundException, testkey_v2.get_project, project_name=PROJECT)
    await raises(NotFoundException, testkey_v2.pause_batch, BatchOperationRequest(batch_name="x"))


@pytest.mark.parametrize("annotation", MESSAGE_ANNOTATIONS, ids=lambda a: a["type"])
async def test_v23_get_annotation(
    v2: V2Api, chat: Chat, ingest: Ingest, annotation: dict[str, Any]
) -> None:
    """V23: get_annotation answers one annotation with all its details, parsed by the SDK
    as the subclass of its type."""
    task = await chat()
    threads = [{"turns": [], "annotations": [annotation]}]
    await ingest.applied(event("completed", task.task_id, threads=threads))
    got = await run(v2.get_annotation, annotation["id"])
    instance = got.actual_instance
    assert instance.type == annotation["type"] and instance.key == annotation["key"]
    assert type(instance).__name__.lower() == "annotation" + annotation["type"].replace("_", "")


async def test_v23_annotations_at_every_level_are_found(
    v2: V2Api, completed: Chat, testkey_v2: V2Api
) -> None:
    """V23: annotations of threads, turns, messages and chunks are found by id, with their
    details; another world's key does not find them."""
    await completed()
    for annotation_id in ("an_thread", "an_turn", "an_int", "an_chunk"):
        got = await run(v2.get_annotation, annotation_id=annotation_id)
        assert got.actual_instance.id == annotation_id
    detailed = await run(v2.get_annotation, "an_int")
    assert detailed.actual_instance.title == "Response Formatting"
    await raises(NotFoundException, testkey_v2.get_annotation, "an_int")


async def test_n1_attachments_are_never_emitted_to_v2(v2: V2Api, completed: Chat) -> None:
    """N1: a stored message attachment would make the SDK raise "Multiple matches"; taskhook
    never emits attachments on v2, even with opts=attachment_details (v1 shows them)."""
    task = await completed(threads=rich_threads())
    for opts in ([], ["attachment_details"]):
        got = await run(v2.get_task, task.task_id, opts=opts)
        content = got.threads[0].turns[0].messages[1].content
        assert content.attachments is None and content.text == "Hi!"
    page = await run(v2.get_tasks, project_name=PROJECT, opts=["attachment_details"])
    assert page.tasks[0].task_id == task.task_id
