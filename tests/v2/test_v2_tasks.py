"""v2 task reads through the official SDK's client.v2, and v1 and v2 as two views of the
same tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import scaleapi
from scaleapi.api_client.v2 import (
    CreateBatchRequest,
    GetTasksResponse,
    Task,
    TaskStatus,
    V2Api,
)
from scaleapi.api_client.v2.exceptions import (
    BadRequestException,
    NotFoundException,
    UnauthorizedException,
)

from taskhook.core.accounts import NewAccount
from tests.conftest import Api
from tests.v2.conftest import PROJECT, MakeClient
from tests.v2.helpers import Ingest, event, raises, rich_threads, run

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

Chat = Callable[..., Awaitable[Task]]


@pytest.mark.parametrize("auth", ["bearer", "basic"])
async def test_v00_bearer_and_basic_both_authenticate(
    v2_client: MakeClient, account: NewAccount, chat: Chat, auth: str
) -> None:
    """V0: `Authorization: Bearer <key>` (the SDK's default) and `Basic b64(key:)` both work."""
    task = await chat()
    client = v2_client(account.live_key, auth)
    header = client.v2.api_client.configuration.auth_settings()
    assert set(header) == ({"bearerAuth"} if auth == "bearer" else {"basicAuth"})
    got = await run(client.v2.get_task, task.task_id)
    assert got.task_id == task.task_id


@pytest.mark.parametrize("auth", ["bearer", "basic"])
async def test_v00_bad_key_is_401(v2_client: MakeClient, auth: str) -> None:
    """V0: a key that is not an account's key is a 401 in the v2 error shape."""
    client = v2_client("live_not_a_real_key", auth)
    exc = await raises(UnauthorizedException, client.v2.get_tasks, project_name=PROJECT)
    assert exc.status == 401
    assert exc.body.startswith('{"status_code":401,"error":')


async def test_v01_pending_task(v2: V2Api, chat: Chat, project: dict[str, Any]) -> None:
    """V1: a pending task has task_id, project (an id), status, created_at and `threads: []`."""
    task = await chat()
    got = await run(v2.get_task, task_id=task.task_id)
    assert isinstance(got, Task)
    assert got.status == TaskStatus.PENDING
    assert got.threads == []
    assert got.errors is None and got.sensitive_content_reports is None
    assert got.project.actual_instance != PROJECT  # an id, not the name
    assert got.batch is None and got.completed_at is None
    assert got.created_at.tzinfo is not None


async def test_v02_expand_project_and_batch(v2: V2Api, chat: Chat, project: dict[str, Any]) -> None:
    """V2: expand=project,batch turns both ids into complete objects."""
    batch = await run(
        v2.create_batch, CreateBatchRequest(name="b-exp", project_name=PROJECT, metadata={"k": 1})
    )
    task = await chat(batch_name="b-exp")
    got = await run(v2.get_task, task.task_id, expand=["project", "batch"])
    assert type(got.project.actual_instance).__name__ == "Project"
    assert got.project.actual_instance.name == PROJECT
    assert type(got.batch.actual_instance).__name__ == "Batch"
    assert got.batch.actual_instance.id == batch.id
    assert got.batch.actual_instance.metadata == {"k": 1}
    plain = await run(v2.get_task, task.task_id)
    assert plain.project.actual_instance == got.project.actual_instance.id
    assert plain.batch.actual_instance == batch.id


async def test_v03_unknown_task_is_404(v2: V2Api, project: dict[str, Any]) -> None:
    """V3: an unknown task id is a 404 `{"status_code": 404, "error": ...}`."""
    exc = await raises(NotFoundException, v2.get_task, "nope")
    assert exc.status == 404
    assert '"status_code":404' in exc.body


async def test_v04_threads_with_annotations_at_every_level(v2: V2Api, completed: Chat) -> None:
    """V4: threads → turns → messages, `annotations` at every level, each annotation with
    id, key, type and a strictly typed value; details and model_parameters with opts."""
    task = await completed()
    got = await run(v2.get_task, task.task_id, opts=["annotation_details", "model_parameters"])
    assert got.status == TaskStatus.COMPLETED and got.completed_at is not None
    thread = got.threads[0]
    assert thread.id == "thread_1"
    assert thread.annotations[0].actual_instance.value == 5
    turn = thread.turns[0]
    assert turn.annotations[0].actual_instance.value == ["m1", "m2"]
    assert turn.rubrics[0].criteria_definitions[0].criterion == "Is it correct?"
    user, assistant = turn.messages
    assert user.annotations == [] and user.source_id == "user"
    assert user.role.value == "user" and user.content.text == "Hello?"
    first = assistant.annotations[0].actual_instance
    assert type(first).__name__ == "AnnotationInteger"
    assert (first.id, first.key, first.type, first.value) == ("an_int", "formatting", "integer", 3)
    assert first.title == "Response Formatting" and first.possible_values == [1, 2, 3]
    assert first.metadata.criteria.actual_instance == "formatting rubric"
    types = [a.actual_instance.type for a in assistant.annotations]
    assert len(set(types)) == 12
    assert assistant.model_parameters.model == "my-model-123"
    assert assistant.content.chunks[0].actual_instance.annotations[0].actual_instance.value
    assert assistant.content.attachments is None  # stored, never emitted on v2 (N1)
    assert thread.submissions is None  # only with opts=submissions


async def test_v04_without_opts_annotations_carry_only_the_answer(
    v2: V2Api, completed: Chat
) -> None:
    """V4: without opts an annotation has id, key, type and value; no title, labels,
    possible_values, and messages have no model_parameters; submissions come with opts."""
    task = await completed()
    got = await run(v2.get_task, task.task_id)
    first = got.threads[0].turns[0].messages[1].annotations[0].actual_instance
    assert first.value == 3 and first.title is None and first.possible_values is None
    assert got.threads[0].turns[0].messages[1].model_parameters is None
    with_submissions = await run(v2.get_task, task.task_id, opts=["submissions"])
    assert with_submissions.threads[0].submissions[0].contributor_id == "c1"


async def test_v05_errored_task_has_typed_errors(v2: V2Api, chat: Chat, ingest: Ingest) -> None:
    """V5: an errored task has `status: error` and `errors` with a type of the closed enum."""
    task = await chat()
    errors = [{"type": "UNSUPPORTED_LANGUAGE", "message": "The locale is not supported"}]
    await ingest.applied(event("errored", task.task_id, errors=errors))
    got = await run(v2.get_task, task.task_id)
    assert got.status == TaskStatus.ERROR
    assert got.errors[0].type.value == "UNSUPPORTED_LANGUAGE"
    assert got.errors[0].message == "The locale is not supported"
    assert got.threads == []


async def test_v06_reported_task_has_no_threads(v2: V2Api, chat: Chat, ingest: Ingest) -> None:
    """V6: a reported task is completed with sensitive_content_reports and no `threads` key."""
    task = await chat()
    reports = [{"type": "violence", "message": "The prompt in the task promotes violence."}]
    await ingest.applied(event("completed", task.task_id, sensitive_content_reports=reports))
    got = await run(v2.get_task, task.task_id)
    assert got.status == TaskStatus.COMPLETED
    assert got.threads is None
    assert got.sensitive_content_reports[0].type == "violence"


async def spaced(chat: Chat, n: int, **fields: Any) -> list[Task]:
    made = []
    for _ in range(n):
        await asyncio.sleep(0.002)  # fixed: a new millisecond, so timestamps tell them apart
        made.append(await chat(**fields))
    return made


async def test_v07_first_page_has_a_next_token(v2: V2Api, chat: Chat) -> None:
    """V7: 3 tasks, limit=2: two tasks (newest first) and a non-empty next_token."""
    made = await spaced(chat, 3)
    page = await run(v2.get_tasks, project_name=PROJECT, limit=2)
    assert isinstance(page, GetTasksResponse)
    assert [t.task_id for t in page.tasks] == [made[2].task_id, made[1].task_id]
    assert page.next_token


async def test_v08_paging_helper_stops_on_the_last_page(
    client: scaleapi.ScaleClient, chat: Chat
) -> None:
    """V8: v2_get_tasks reaches all 3 tasks in exactly 2 requests; the last page has no
    next_token (a `""` would make the helper loop forever)."""
    made = await spaced(chat, 3)
    calls: list[dict[str, Any]] = []
    get_tasks = client.v2.get_tasks

    def counting(**kwargs: Any) -> Any:
        calls.append(kwargs)
        reply = get_tasks(**kwargs)
        assert reply.next_token is None or reply.next_token != ""
        return reply

    client.v2.get_tasks = counting  # type: ignore[method-assign]
    got = await run(lambda: list(client.v2_get_tasks(project_name=PROJECT, limit=2)))
    assert {t.task_id for t in got} == {t.task_id for t in made}
    assert len(got) == 3 and len(calls) == 2


async def test_v09_filters_batch_status_and_completion_bounds(
    v2: V2Api, chat: Chat, ingest: Ingest
) -> None:
    """V9: batch_name, status and completed_after/before (naive = UTC, and +0000) filter;
    an empty result is `{"tasks": []}`."""
    await run(v2.create_batch, CreateBatchRequest(name="b9", project_name=PROJECT))
    in_batch = await spaced(chat, 3, batch_name="b9")
    elsewhere = await chat()
    t1 = datetime(2024, 1, 1, 10, tzinfo=UTC)
    for task, at in ((in_batch[0], t1), (in_batch[1], t1 + timedelta(hours=2)), (elsewhere, t1)):
        await ingest.applied(
            event("completed", task.task_id, threads=rich_threads(), occurred_at=at.isoformat())
        )

    async def ids(**filters: Any) -> set[str]:
        page = await run(v2.get_tasks, **filters)
        return {t.task_id for t in page.tasks}

    assert await ids(batch_name="b9") == {t.task_id for t in in_batch}
    assert await ids(batch_name="b9", status=TaskStatus.COMPLETED) == {
        in_batch[0].task_id,
        in_batch[1].task_id,
    }
    assert await ids(batch_name="b9", status=TaskStatus.PENDING) == {in_batch[2].task_id}
    naive_after = datetime(2024, 1, 1, 11)  # naive: sent without an offset, read as UTC
    aware_before = datetime(2024, 1, 1, 13, tzinfo=UTC)  # sent as ...%2B0000
    assert await ids(
        batch_name="b9",
        status=TaskStatus.COMPLETED,
        completed_after=naive_after,
        completed_before=aware_before,
    ) == {in_batch[1].task_id}
    assert await ids(project_name=PROJECT, completed_before=t1 + timedelta(minutes=1)) == {
        in_batch[0].task_id,
        elsewhere.task_id,
    }
    batch_id = (await run(v2.get_batch, batch_name="b9")).id
    assert await ids(batch_id=batch_id, status=TaskStatus.CANCELED) == set()
    empty = await run(v2.get_tasks, batch_name="b9", completed_after=datetime(2030, 1, 1))
    assert empty.tasks == [] and empty.next_token is None


async def test_v09_project_id_and_expand_on_lists(
    v2: V2Api, chat: Chat, project: dict[str, Any]
) -> None:
    """V9: project_id works like project_name; expand and opts apply to every listed task."""
    task = await chat()
    project_id = (await run(v2.get_project, project_name=PROJECT)).id
    page = await run(v2.get_tasks, project_id=project_id, expand=["project"])
    assert [t.task_id for t in page.tasks] == [task.task_id]
    assert page.tasks[0].project.actual_instance.id == project_id


async def test_v10_no_filter_is_400(v2: V2Api, project: dict[str, Any]) -> None:
    """V10: get_tasks() with no project or batch (which the SDK sends) is a 400."""
    exc = await raises(BadRequestException, v2.get_tasks)
    assert exc.status == 400
    assert "project_id" in exc.body and "batch_name" in exc.body


# --- v1 and v2: two views of the same tasks --------------------------------------------


async def test_v1_task_reads_through_v2(v2: V2Api, live: Api, project: dict[str, Any]) -> None:
    """A task created through v1 reads through v2 (project as id, threads [], metadata)."""
    v1 = await live.task(project=PROJECT, metadata={"from": "v1"})
    got = await run(v2.get_task, v1["task_id"])
    project_id = (await run(v2.get_project, project_name=PROJECT)).id
    assert got.project.actual_instance == project_id
    assert got.status == TaskStatus.PENDING and got.threads == []
    assert got.metadata == {"from": "v1"}


async def test_v1_completed_and_errored_tasks_read_through_v2(
    v2: V2Api, live: Api, project: dict[str, Any], ingest: Ingest
) -> None:
    """A v1 completion (a v1 response) reads as completed with `threads: []`; a v1 error
    (`error` text) reads as one untyped error."""
    done, failed = await live.task(project=PROJECT), await live.task(project=PROJECT)
    await ingest.applied(event("completed", done["task_id"], response={"category": "x"}))
    await ingest.applied(event("errored", failed["task_id"], error="Attachment unreadable."))
    got_done = await run(v2.get_task, done["task_id"])
    assert got_done.status == TaskStatus.COMPLETED and got_done.threads == []
    got_failed = await run(v2.get_task, failed["task_id"])
    assert got_failed.errors[0].type is None
    assert got_failed.errors[0].message == "Attachment unreadable."


async def test_v2_task_reads_through_v1(live: Api, chat: Chat, ingest: Ingest) -> None:
    """A task created through v2 reads through v1: type chat, its input in params, and once
    completed its threads in `response`; the errors of an errored one in response.errors."""
    task = await chat(metadata={"k": 1}, callback_url="https://hooks.example.com/x")
    status, body = await live.call("GET", f"/v1/task/{task.task_id}")
    assert status == 200, body
    assert body["type"] == "chat" and body["status"] == "pending"
    assert body["params"] == {"template_variables": {"prompt": "hi"}}
    assert body["project"] == PROJECT and body["metadata"] == {"k": 1}
    assert body["callback_url"] == "https://hooks.example.com/x"
    await ingest.applied(event("completed", task.task_id, threads=rich_threads()))
    _, body = await live.call("GET", f"/v1/task/{task.task_id}")
    assert body["status"] == "completed"
    assert body["response"]["threads"][0]["id"] == "thread_1"
    # the v1 view keeps everything, attachments included
    message = body["response"]["threads"][0]["turns"][0]["messages"][1]
    assert message["content"]["attachments"][0]["url"] == "https://example.com/a.png"
    status, listed = await live.call("GET", "/v1/tasks", params={"project": PROJECT})
    assert [t["task_id"] for t in listed["docs"]] == [task.task_id]
