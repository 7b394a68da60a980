"""Acceptance: the official scaleapi 2.18.4 SDK, unchanged, against taskhook.

Every task, batch and project call of the SDK is driven through the SDK itself, so the
SDK's own parsing rules are part of every check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

import pytest
import scaleapi
from scaleapi.batches import Batch, BatchStatus
from scaleapi.exceptions import (
    ScaleDuplicateResource,
    ScaleInvalidRequest,
    ScaleResourceNotFound,
    ScaleUnauthorized,
)
from scaleapi.projects import Project
from scaleapi.tasks import Task, TaskReviewStatus, TaskStatus, TaskType

from taskhook.core.accounts import NewAccount
from taskhook.core.tasktypes import REQUIRED

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

T = TypeVar("T")
Client = scaleapi.ScaleClient
CALLBACK = "http://127.0.0.1:9/callback"

# One plausible value for every parameter named in taskhook.tasktypes.REQUIRED.
SAMPLE: dict[str, Any] = {
    "attachment": "https://example.com/image.png",
    "attachments": ["https://example.com/a.png", "https://example.com/b.png"],
    "objects_to_annotate": ["car", "person"],
    "categories": ["red", "blue"],
    "fields": [{"type": "text", "field_id": "caption", "title": "Caption"}],
    "choices": ["left", "right"],
    "features": [{"type": "block", "label": "header"}],
    "geometries": {"box": {"objects_to_annotate": ["car"]}},
    "labels": ["person", "place"],
    "text": "Alice met Bob in Paris.",
    "instruction": "Say hello.",
}
ALL_TYPES = list(TaskType)


async def run(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """One blocking SDK call, off the event loop that serves the receiver."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def minimal_params(task_type: TaskType) -> dict[str, Any]:
    """The first alternative of every requirement of this type, with a sample value."""
    return {alts[0]: SAMPLE[alts[0]] for alts in REQUIRED[task_type.value]}


def ids(tasks: Iterable[Task]) -> set[str]:
    return {t.id for t in tasks}


def sdk_time(iso: str) -> str:
    """A reported timestamp in the SDK's documented form 'YYYY-MM-DD HH:MM:SS.mmmmmm'."""
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S.%f")


@pytest.fixture
def live_sdk(sdk: Callable[[str], Client], account: NewAccount) -> Client:
    return sdk(account.live_key)


@pytest.fixture
def testkey_sdk(sdk: Callable[[str], Client], account: NewAccount) -> Client:
    return sdk(account.test_key)


@pytest.fixture
async def live_proj(live_sdk: Client) -> str:
    await run(live_sdk.create_project, "proj", TaskType.Categorization)
    return "proj"


@pytest.fixture
async def testkey_proj(testkey_sdk: Client) -> str:
    await run(testkey_sdk.create_project, "proj", TaskType.Categorization)
    return "proj"


async def spaced(create: Callable[..., Awaitable[Task]], n: int) -> list[Task]:
    """n tasks at least 2 ms apart, so millisecond timestamps tell them apart."""
    made = []
    for _ in range(n):
        await asyncio.sleep(0.002)  # fixed: a new millisecond, so timestamps tell them apart
        made.append(await create())
    return made


def make_task(client: Client, project: str) -> Callable[..., Awaitable[Task]]:
    """A categorization creator for `project`; keywords override defaults, None omits one."""
    defaults = {
        "project": project,
        "attachment": SAMPLE["attachment"],
        "categories": ["red", "blue"],
    }

    async def create(**kw: Any) -> Task:
        fields = {k: v for k, v in {**defaults, **kw}.items() if v is not None}
        return await run(client.create_task, TaskType.Categorization, **fields)

    return create


# --- auth -------------------------------------------------------------------------------


async def test_bad_key_is_unauthorized(sdk: Callable[[str], Client]) -> None:
    """A key that is not an account's key gives 401 → ScaleUnauthorized on any call."""
    bad = sdk("live_not_a_real_key")
    with pytest.raises(ScaleUnauthorized) as err:
        await run(bad.batches, limit=1)
    assert err.value.code == 401
    with pytest.raises(ScaleUnauthorized):
        await run(bad.get_task, "0" * 24)


# --- create and get ---------------------------------------------------------------------


async def test_sdk_task_types_are_all_known() -> None:
    """Every TaskType of the SDK has a requirement entry in taskhook's task-type table."""
    assert {t.value for t in TaskType} == set(REQUIRED)


@pytest.mark.parametrize("task_type", ALL_TYPES, ids=lambda t: t.value)
async def test_create_every_task_type_live(
    live_sdk: Client, live_proj: str, task_type: TaskType
) -> None:
    """create_task works for every TaskType with its required params: 200, pending, params."""
    params = minimal_params(task_type)
    task = await run(live_sdk.create_task, task_type, project=live_proj, **params)
    assert task.type == task_type.value
    assert task.status == "pending"
    assert task.metadata == {}
    assert not hasattr(task, "tags")
    assert not hasattr(task, "response")
    expected = {k: v for k, v in params.items() if k != "instruction"}
    assert task.params == expected
    if "instruction" in params:
        assert task.instruction == params["instruction"]
    again = await run(live_sdk.get_task, task.id)
    assert again.as_dict() == task.as_dict()


@pytest.mark.parametrize("task_type", ALL_TYPES, ids=lambda t: t.value)
async def test_missing_required_param_is_named(
    live_sdk: Client, live_proj: str, task_type: TaskType
) -> None:
    """Each missing required param gives 400 → ScaleInvalidRequest naming it; nothing is made."""
    params = minimal_params(task_type)
    for alternatives in REQUIRED[task_type.value]:
        partial = {k: v for k, v in params.items() if k not in alternatives}
        with pytest.raises(ScaleInvalidRequest) as err:
            await run(live_sdk.create_task, task_type, project=live_proj, **partial)
        assert f"'{alternatives[0]}'" in err.value.message, err.value.message
        assert err.value.code == 400
    assert await run(live_sdk.get_tasks_count, project_name=live_proj) == 0


async def test_create_and_get_round_trip(live_sdk: Client, live_proj: str) -> None:
    """Create keeps instruction and callback_url top level, type fields in params (T1, G1)."""
    geometries = {"box": {"objects_to_annotate": ["car"], "min_height": 5}}
    task = await run(
        live_sdk.create_task,
        TaskType.ImageAnnotation,
        project=live_proj,
        callback_url=CALLBACK,
        instruction="Box the cars.",
        attachment_type="image",
        attachment="https://example.com/street.png",
        geometries=geometries,
        metadata={"source": "s3://bucket/street.png"},
    )
    assert task.status == "pending"
    assert task.callback_url == CALLBACK
    assert task.instruction == "Box the cars."
    assert task.params["attachment_type"] == "image"
    assert task.params["attachment"] == "https://example.com/street.png"
    assert task.params["geometries"] == geometries
    assert task.metadata == {"source": "s3://bucket/street.png"}
    assert task.audits == []
    assert task.project_param_version is None
    for key in ("created_at", "updated_at"):
        assert task.as_dict()[key].endswith("Z")
    assert not hasattr(task, "tags") and not hasattr(task, "unique_id")
    fetched = await run(live_sdk.get_task, task.id)
    assert fetched.as_dict() == task.as_dict()


async def test_get_unknown_task_is_not_found(live_sdk: Client) -> None:
    """get_task of an unknown id is 404 → ScaleResourceNotFound "Task with that ID not found."."""
    with pytest.raises(ScaleResourceNotFound) as err:
        await run(live_sdk.get_task, "fake_id_qwertyuiop")
    assert err.value.message == "Task with that ID not found."
    assert err.value.code == 404


async def test_create_with_batch_only_implies_project(live_sdk: Client, live_proj: str) -> None:
    """A create naming only a batch lands in the batch's project; unknown names are 400s."""
    await run(live_sdk.create_batch, live_proj, "b1")
    task = await make_task(live_sdk, live_proj)(project=None, batch="b1")
    assert task.project == live_proj and task.batch == "b1"
    with pytest.raises(ScaleInvalidRequest, match="nope"):
        await make_task(live_sdk, "nope")()
    with pytest.raises(ScaleInvalidRequest, match="nobatch"):
        await make_task(live_sdk, live_proj)(batch="nobatch")


async def test_create_without_project(live_sdk: Client, live_proj: str) -> None:
    """As on Scale, a task needs no project: `project` is null, and it lists, filters and
    cancels like any other (Scale's own SDK tests create tasks this way)."""
    task = await make_task(live_sdk, live_proj)(project=None, unique_id="np-1")
    assert task.project is None and task.status == "pending"
    assert not hasattr(task, "batch")
    assert (await run(live_sdk.get_task, task.id)).as_dict() == task.as_dict()
    other = await make_task(live_sdk, live_proj)()
    assert ids(await run(live_sdk.tasks)) == {task.id, other.id}
    assert ids(await run(live_sdk.tasks, project=live_proj)) == {other.id}
    assert ids(await run(live_sdk.tasks, unique_id=["np-1"])) == {task.id}
    assert ids(await run(live_sdk.tasks, type="categorization", status="pending")) == {
        task.id,
        other.id,
    }
    assert (await run(live_sdk.cancel_task, task.id)).status == "canceled"


async def test_create_without_project_with_test_key(testkey_sdk: Client) -> None:
    """A test key's project-less task completes at once, as in Scale's SDK suite."""
    task = await run(
        testkey_sdk.create_task,
        TaskType.ImageAnnotation,
        callback_url="http://www.example.com/callback",
        **minimal_params(TaskType.ImageAnnotation),
    )
    assert task.project is None and task.status == "completed"
    with pytest.raises(ScaleInvalidRequest):
        await run(testkey_sdk.cancel_task, task.id)


# --- test keys --------------------------------------------------------------------------


def assert_response_fits(task_type: str, params: dict[str, Any], response: Any) -> None:
    assert isinstance(response, dict) and response, (task_type, response)
    if task_type == "categorization":
        assert response == {"category": response["category"]}
        assert response["category"] in params["categories"]
    if task_type == "imageannotation":
        assert response["annotations"][0]["label"] == "car"
    if task_type == "namedentityrecognition":
        assert response["annotations"][0]["label"] in params["labels"]


@pytest.mark.parametrize("task_type", ALL_TYPES, ids=lambda t: t.value)
async def test_test_key_task_completes_at_once(
    testkey_sdk: Client, testkey_proj: str, task_type: TaskType
) -> None:
    """A test-key task is completed in the create reply with a response that fits its type."""
    params = minimal_params(task_type)
    task = await run(testkey_sdk.create_task, task_type, project=testkey_proj, **params)
    assert task.status == "completed"
    assert task.is_test is True
    assert task.customer_review_status == "pending"
    assert task.completed_at
    assert_response_fits(task_type.value, task.params, task.response)
    assert (await run(testkey_sdk.get_task, task.id)).as_dict() == task.as_dict()


async def test_test_key_categorization_picks_a_category(
    testkey_sdk: Client, testkey_proj: str
) -> None:
    """A test categorization answers {"category": <one of its categories>}."""
    task = await make_task(testkey_sdk, testkey_proj)(categories=["cat", "dog"])
    assert task.response in ({"category": "cat"}, {"category": "dog"})
    assert task.is_test is True


async def test_live_task_is_not_test(live_sdk: Client, live_proj: str) -> None:
    """A live-key task stays pending, has no response, and is_test is false."""
    task = await make_task(live_sdk, live_proj)()
    assert task.status == "pending"
    assert task.is_test is False
    assert not hasattr(task, "response") and not hasattr(task, "customer_review_status")


# --- test and live worlds ---------------------------------------------------------------


async def test_worlds_are_separate(live_sdk: Client, testkey_sdk: Client) -> None:
    """Test and live keys see disjoint tasks, projects and batches; unique_id may repeat."""
    await run(live_sdk.create_project, "shared", TaskType.Categorization)
    with pytest.raises(ScaleResourceNotFound):
        await run(testkey_sdk.get_project, "shared")
    await run(testkey_sdk.create_project, "shared", TaskType.Categorization)
    await run(live_sdk.create_batch, "shared", "only-live")
    with pytest.raises(ScaleResourceNotFound):
        await run(testkey_sdk.get_batch, "only-live")
    live_task = await make_task(live_sdk, "shared")(unique_id="same")
    test_task = await make_task(testkey_sdk, "shared")(unique_id="same")
    assert live_task.unique_id == test_task.unique_id == "same"
    with pytest.raises(ScaleResourceNotFound):
        await run(live_sdk.get_task, test_task.id)
    with pytest.raises(ScaleResourceNotFound):
        await run(testkey_sdk.get_task, live_task.id)
    with pytest.raises(ScaleResourceNotFound):
        await run(testkey_sdk.cancel_task, live_task.id)
    assert ids(await run(live_sdk.tasks, unique_id="same")) == {live_task.id}
    assert ids(await run(testkey_sdk.tasks, project="shared")) == {test_task.id}
    assert ids(await run(live_sdk.tasks, project="shared")) == {live_task.id}
    assert [p.name for p in await run(testkey_sdk.projects)] == ["shared"]
    assert await run(lambda: list(testkey_sdk.get_batches(project_name="shared"))) == []


# --- listing and filters ----------------------------------------------------------------


async def test_paging_limit_two_over_five(live_sdk: Client, live_proj: str) -> None:
    """get_tasks(limit=2) over 5 tasks: all 5 once, newest created_at first (L1, L2)."""
    create = make_task(live_sdk, live_proj)
    made = [(await create()).id for _ in range(5)]
    got = await run(lambda: list(live_sdk.get_tasks(project_name=live_proj, limit=2)))
    assert [t.id for t in got] == made[::-1]
    stamps = [t.created_at for t in got]
    assert stamps == sorted(stamps, reverse=True)


async def test_pages_carry_next_token_iff_has_more(live_sdk: Client, live_proj: str) -> None:
    """tasks(limit=2): pages of 2, 2, 1; has_more exactly when next_token; offset 0, total 5."""
    create = make_task(live_sdk, live_proj)
    for _ in range(5):
        await create()
    sizes, seen, token = [], [], None
    for _ in range(5):  # bounded: a server that never ends the pages fails, not hangs
        page = await run(live_sdk.tasks, project=live_proj, limit=2, next_token=token)
        assert page.total == 5 and page.limit == 2 and page.offset == 0
        assert page.has_more == (page.next_token is not None)
        sizes.append(len(page.docs))
        seen += [t.id for t in page.docs]
        token = page.next_token
        if not page.has_more:
            break
    assert sizes == [2, 2, 1]
    assert len(set(seen)) == 5


async def test_tasks_count(live_sdk: Client, live_proj: str) -> None:
    """get_tasks_count equals tasks().total, with and without filters (L3)."""
    create = make_task(live_sdk, live_proj)
    for tags in (["a"], ["a"], ["b"]):
        await create(tags=tags)
    assert await run(live_sdk.get_tasks_count, project_name=live_proj) == 3
    assert (await run(live_sdk.tasks, project=live_proj)).total == 3
    assert await run(live_sdk.get_tasks_count, project_name=live_proj, tags=["a"]) == 2


async def test_filter_project_batch_type(live_sdk: Client, live_proj: str) -> None:
    """project, batch and type filters apply; an unknown name matches nothing, no error."""
    await run(live_sdk.create_project, "other", TaskType.ImageAnnotation)
    await run(live_sdk.create_batch, live_proj, "b1")
    x = await make_task(live_sdk, live_proj)(batch="b1")
    y = await run(
        live_sdk.create_task,
        TaskType.ImageAnnotation,
        project=live_proj,
        **minimal_params(TaskType.ImageAnnotation),
    )
    z = await make_task(live_sdk, "other")()
    assert ids(await run(live_sdk.tasks, project=live_proj)) == {x.id, y.id}
    assert ids(await run(live_sdk.tasks, project="other")) == {z.id}
    assert ids(await run(lambda: list(live_sdk.get_tasks(batch_name="b1")))) == {x.id}
    assert ids(await run(live_sdk.tasks, type="imageannotation")) == {y.id}
    by_type = await run(
        lambda: list(live_sdk.get_tasks(project_name=live_proj, task_type=TaskType.Categorization))
    )
    assert ids(by_type) == {x.id}
    for empty in ({"project": "nope"}, {"batch": "nope"}, {"project": "other", "batch": "b1"}):
        page = await run(live_sdk.tasks, **empty)
        assert page.docs == [] and page.total == 0 and page.has_more is False


async def test_filter_status(live_sdk: Client, live_proj: str) -> None:
    """status filters (TaskStatus enum and raw value) match only tasks in that status."""
    create = make_task(live_sdk, live_proj)
    pending, canceled = await create(), await create()
    await run(live_sdk.cancel_task, canceled.id)
    got = await run(
        lambda: list(live_sdk.get_tasks(project_name=live_proj, status=TaskStatus.Canceled))
    )
    assert ids(got) == {canceled.id}
    assert ids(await run(live_sdk.tasks, project=live_proj, status="pending")) == {pending.id}
    assert (await run(live_sdk.tasks, project=live_proj, status="completed")).total == 0


async def test_filter_created_and_updated_times(live_sdk: Client, live_proj: str) -> None:
    """start_time/end_time and updated_before/after bound inclusively, both time forms."""
    a, b, c = await spaced(make_task(live_sdk, live_proj), 3)
    assert ids(await run(live_sdk.tasks, start_time=b.created_at)) == {b.id, c.id}
    assert ids(await run(live_sdk.tasks, end_time=b.created_at)) == {a.id, b.id}
    window = await run(
        lambda: list(
            live_sdk.get_tasks(
                project_name=live_proj,
                created_after=sdk_time(b.created_at),
                created_before=sdk_time(b.created_at),
            )
        )
    )
    assert ids(window) == {b.id}
    await asyncio.sleep(0.002)  # fixed: a new millisecond, so timestamps tell them apart
    a2 = await run(live_sdk.set_task_metadata, a.id, {"touched": True})
    assert a2.updated_at >= c.updated_at
    assert ids(await run(live_sdk.tasks, updated_after=a2.updated_at)) == {a.id}
    assert ids(await run(live_sdk.tasks, updated_before=sdk_time(c.updated_at))) == {b.id, c.id}
    empty = await run(live_sdk.tasks, start_time="2000-01-01", end_time="2000-01-02")
    assert (empty.docs, empty.total, empty.has_more, empty.next_token) == ([], 0, False, None)


async def test_filter_completed_times(testkey_sdk: Client, testkey_proj: str) -> None:
    """completed_before/completed_after bound completed_at inclusively."""
    a, b, c = await spaced(make_task(testkey_sdk, testkey_proj), 3)
    after = await run(
        lambda: list(
            testkey_sdk.get_tasks(project_name=testkey_proj, completed_after=b.completed_at)
        )
    )
    assert ids(after) == {b.id, c.id}
    before = await run(testkey_sdk.tasks, completed_before=sdk_time(b.completed_at))
    assert ids(before) == {a.id, b.id}


async def test_filter_review_status(testkey_sdk: Client, testkey_proj: str) -> None:
    """review_status lists become a comma list on the wire and match any of them."""
    create = make_task(testkey_sdk, testkey_proj)
    accepted, rejected, untouched = await create(), await create(), await create()
    await run(testkey_sdk.audit_task, accepted.id, True)
    await run(testkey_sdk.audit_task, rejected.id, False, "wrong colour")

    async def review(status: Any) -> set[str]:
        return ids(
            await run(
                lambda: list(testkey_sdk.get_tasks(project_name=testkey_proj, review_status=status))
            )
        )

    both = [TaskReviewStatus.Accepted, TaskReviewStatus.Rejected]
    assert await review(both) == {accepted.id, rejected.id}
    assert await review(TaskReviewStatus.Pending) == {untouched.id}
    assert await review([TaskReviewStatus.Fixed]) == set()
    raw = await run(testkey_sdk.tasks, customer_review_status="accepted,fixed")
    assert ids(raw) == {accepted.id}


async def test_filter_tags_all_must_match(live_sdk: Client, live_proj: str) -> None:
    """tags=a&tags=b matches only tasks carrying every tag given."""
    create = make_task(live_sdk, live_proj)
    ab, a, bc = (
        await create(tags=["a", "b"]),
        await create(tags=["a"]),
        await create(tags=["b", "c"]),
    )
    await create()
    assert ids(await run(live_sdk.tasks, tags=["a", "b"])) == {ab.id}
    assert ids(await run(live_sdk.tasks, tags="a")) == {ab.id, a.id}
    got = await run(lambda: list(live_sdk.get_tasks(project_name=live_proj, tags=["b"])))
    assert ids(got) == {ab.id, bc.id}
    assert (await run(live_sdk.tasks, tags=["a", "c"])).total == 0


async def test_filter_unique_id_list(live_sdk: Client, live_proj: str) -> None:
    """unique_id filters take a list (repeated params) and work with no project (L4, L7)."""
    create = make_task(live_sdk, live_proj)
    t1, t2, t3 = await create(unique_id="u1"), await create(unique_id="u2"), await create()
    assert t3.id not in ids(await run(live_sdk.tasks, unique_id=["u1", "u2", "u3"]))
    assert ids(await run(live_sdk.tasks, unique_id=["u1", "u2"])) == {t1.id, t2.id}
    only = await run(live_sdk.tasks, unique_id="u2")
    assert [t.unique_id for t in only.docs] == ["u2"]
    got = await run(lambda: list(live_sdk.get_tasks(project_name=live_proj, unique_id="u1")))
    assert ids(got) == {t1.id}


async def test_limited_response_and_attachment_url(live_sdk: Client, live_proj: str) -> None:
    """limited_response returns only the documented few fields; include_attachment_url parses."""
    task = await make_task(live_sdk, live_proj)(metadata={"k": "v"})
    limited = await run(live_sdk.tasks, project=live_proj, limited_response=True)
    doc = limited.docs[0].as_dict()
    assert doc["task_id"] == task.id and doc["status"] == "pending"
    assert doc["metadata"] == {"k": "v"} and doc["project"] == live_proj
    assert set(doc) <= {"task_id", "status", "metadata", "project", "otherVersion"}
    via_gen = await run(
        lambda: list(live_sdk.get_tasks(project_name=live_proj, limited_response=True))
    )
    assert set(via_gen[0].as_dict()) == set(doc)
    for flag in (True, False):
        page = await run(live_sdk.tasks, project=live_proj, include_attachment_url=flag)
        assert page.docs[0].as_dict() == task.as_dict()


# --- cancel -----------------------------------------------------------------------------


async def test_cancel_is_idempotent(live_sdk: Client, live_proj: str) -> None:
    """cancel_task on a pending task gives canceled, and again 200 canceled (C1)."""
    task = await make_task(live_sdk, live_proj)(unique_id="keep")
    first = await run(live_sdk.cancel_task, task.id)
    assert first.status == "canceled" and first.unique_id == "keep"
    second = await run(live_sdk.cancel_task, task.id)
    assert second.status == "canceled"
    assert (await run(live_sdk.get_task, task.id)).status == "canceled"


async def test_cancel_clear_unique_id(live_sdk: Client, live_proj: str) -> None:
    """cancel_task(clear_unique_id=True) removes the unique_id key and frees the value (C2)."""
    create = make_task(live_sdk, live_proj)
    task = await create(unique_id="img-1")
    canceled = await run(live_sdk.cancel_task, task.id, clear_unique_id=True)
    assert canceled.status == "canceled"
    assert "unique_id" not in canceled.as_dict()
    assert "unique_id" not in (await run(live_sdk.get_task, task.id)).as_dict()
    assert (await create(unique_id="img-1")).unique_id == "img-1"


async def test_cancel_completed_or_unknown(testkey_sdk: Client, testkey_proj: str) -> None:
    """Cancelling a completed test task is 400 (C3); an unknown id is 404 (C4)."""
    task = await make_task(testkey_sdk, testkey_proj)()
    with pytest.raises(ScaleInvalidRequest):
        await run(testkey_sdk.cancel_task, task.id)
    assert (await run(testkey_sdk.get_task, task.id)).status == "completed"
    with pytest.raises(ScaleResourceNotFound) as err:
        await run(testkey_sdk.cancel_task, "fake_id_qwertyuiop")
    assert err.value.message == "Task with that ID not found."


# --- audit ------------------------------------------------------------------------------


async def test_audit_accept_then_reject(
    sdk: Callable[[str], Client], make_account: Callable[[str], Awaitable[NewAccount]]
) -> None:
    """audit_task sets customer_review_status, appends comments and audits[] entries (A3)."""
    auditor = await make_account("Globex Research")
    client = sdk(auditor.test_key)
    await run(client.create_project, "proj", TaskType.Categorization)
    task = await make_task(client, "proj")()
    assert await run(client.audit_task, task.id, True) is None  # the SDK ignores the body
    accepted = await run(client.get_task, task.id)
    assert accepted.customer_review_status == "accepted"
    assert not hasattr(accepted, "customer_review_comments")
    [entry] = accepted.audits
    assert entry["audited_by"] == "Globex Research"
    assert entry["audit_result"] == "accepted" and entry["audit_source"] == "customer"
    assert entry["audited_at"].endswith("Z")
    await run(client.audit_task, task.id, False, "wrong colour")
    await run(client.audit_task, task.id, False, "still wrong")
    rejected = await run(client.get_task, task.id)
    assert rejected.customer_review_status == "rejected"
    assert rejected.customer_review_comments == ["wrong colour", "still wrong"]
    assert [a["audit_result"] for a in rejected.audits] == ["accepted", "rejected", "rejected"]
    assert {a["audited_by"] for a in rejected.audits} == {"Globex Research"}
    assert {a["audit_source"] for a in rejected.audits} == {"customer"}


async def test_audit_only_completed(live_sdk: Client, live_proj: str) -> None:
    """Auditing a pending task is 400 and changes nothing; an unknown id is 404."""
    task = await make_task(live_sdk, live_proj)()
    with pytest.raises(ScaleInvalidRequest):
        await run(live_sdk.audit_task, task.id, True)
    assert (await run(live_sdk.get_task, task.id)).audits == []
    with pytest.raises(ScaleResourceNotFound):
        await run(live_sdk.audit_task, "fake_id_qwertyuiop", False, "x")


# --- unique_id --------------------------------------------------------------------------


def conflict_message(unique_id: str, task_id: str) -> str:
    return f'The unique_id ("{unique_id}") is already used for a different task ({task_id}).'


async def test_unique_id_conflict_on_create(live_sdk: Client, live_proj: str) -> None:
    """A second create with a used unique_id is 409 with Scale's exact message (T2)."""
    create = make_task(live_sdk, live_proj)
    first = await create(unique_id="s3://bucket/file.png")
    with pytest.raises(ScaleDuplicateResource) as err:
        await run(
            live_sdk.create_task,
            TaskType.Transcription,
            project=live_proj,
            unique_id="s3://bucket/file.png",
            attachment="https://example.com/x.png",
        )
    assert err.value.code == 409
    assert err.value.message == conflict_message("s3://bucket/file.png", first.id)
    assert await run(live_sdk.get_tasks_count, project_name=live_proj) == 1


async def test_update_and_clear_unique_id(live_sdk: Client, live_proj: str) -> None:
    """update_task_unique_id sets it, a used value is 409, a cleared value is reusable (U1, U2)."""
    create = make_task(live_sdk, live_proj)
    one, two = await create(), await create()
    updated = await run(live_sdk.update_task_unique_id, one.id, "u2")
    assert updated.unique_id == "u2"
    with pytest.raises(ScaleDuplicateResource) as err:
        await run(live_sdk.update_task_unique_id, two.id, "u2")
    assert err.value.message == conflict_message("u2", one.id)
    assert "unique_id" not in (await run(live_sdk.get_task, two.id)).as_dict()
    cleared = await run(live_sdk.clear_task_unique_id, one.id)
    assert "unique_id" not in cleared.as_dict()
    assert "unique_id" not in (await run(live_sdk.get_task, one.id)).as_dict()
    assert (await run(live_sdk.update_task_unique_id, two.id, "u2")).unique_id == "u2"
    with pytest.raises(ScaleDuplicateResource):
        await create(unique_id="u2")
    await run(live_sdk.clear_task_unique_id, two.id)
    assert (await create(unique_id="u2")).unique_id == "u2"
    with pytest.raises(ScaleResourceNotFound):
        await run(live_sdk.update_task_unique_id, "fake_id_qwertyuiop", "u9")


# --- metadata and tags ------------------------------------------------------------------


async def test_set_metadata_replaces(live_sdk: Client, live_proj: str) -> None:
    """set_task_metadata replaces the whole object, not a merge (M1); {} clears it."""
    task = await make_task(live_sdk, live_proj)(metadata={"a": 1, "b": 2})
    first = await run(live_sdk.set_task_metadata, task.id, {"myKey": "myValue"})
    assert first.metadata == {"myKey": "myValue"}
    assert (await run(live_sdk.get_task, task.id)).metadata == {"myKey": "myValue"}
    cleared = await run(live_sdk.set_task_metadata, task.id, {})
    assert cleared.metadata == {}
    with pytest.raises(ScaleResourceNotFound):
        await run(live_sdk.set_task_metadata, "fake_id_qwertyuiop", {"a": 1})


async def test_tags_set_add_delete(live_sdk: Client, live_proj: str) -> None:
    """Tags keep order, ignore duplicates and missing ones; a new task has no tags key (TG1)."""
    task = await make_task(live_sdk, live_proj)()
    assert not hasattr(task, "tags")
    tagged = await run(live_sdk.set_task_tags, task.id, ["tag1", "tag2", "tag3"])
    assert tagged.tags == ["tag1", "tag2", "tag3"]
    added = await run(live_sdk.add_task_tags, task.id, ["tag3", "tag4"])
    assert added.tags == ["tag1", "tag2", "tag3", "tag4"]
    deleted = await run(live_sdk.delete_task_tags, task.id, ["tag1", "zzz"])
    assert deleted.tags == ["tag2", "tag3", "tag4"]
    assert (await run(live_sdk.get_task, task.id)).tags == ["tag2", "tag3", "tag4"]
    replaced = await run(live_sdk.set_task_tags, task.id, ["z", "a", "z"])
    assert replaced.tags == ["z", "a"]
    assert (await run(live_sdk.set_task_tags, task.id, [])).tags == []


async def test_tags_on_create(live_sdk: Client, live_proj: str) -> None:
    """Create keeps tag order without duplicates; more than 5 tags is 400 (T4)."""
    create = make_task(live_sdk, live_proj)
    assert (await create(tags=["b", "a", "b"])).tags == ["b", "a"]
    with pytest.raises(ScaleInvalidRequest):
        await create(tags=["1", "2", "3", "4", "5", "6"])
    task = await create(tags=["1", "2", "3", "4", "5"])
    with pytest.raises(ScaleInvalidRequest):
        await run(live_sdk.add_task_tags, task.id, ["6"])


# --- batches ----------------------------------------------------------------------------


async def test_batch_lifecycle_with_encoded_name(live_sdk: Client, live_proj: str) -> None:
    """create/get/status/setMetadata/finalize work for a name needing percent-encoding (B1)."""
    name = "a bc/def"
    batch = await run(
        live_sdk.create_batch, live_proj, name, callback=CALLBACK, metadata={"k": "v"}
    )
    assert isinstance(batch, Batch)
    assert (batch.name, batch.project, batch.metadata) == (name, live_proj, {"k": "v"})
    assert batch.status == "in_progress"  # non-Rapid projects start at once
    fetched = await run(live_sdk.get_batch, name)
    assert fetched.as_dict() == batch.as_dict()
    task = await make_task(live_sdk, live_proj)(batch=name)
    await make_task(live_sdk, live_proj)(batch=name)
    await run(live_sdk.cancel_task, task.id)
    status = await run(live_sdk.batch_status, name)
    assert status == {
        "status": "in_progress",
        "pending": 1,
        "completed": 0,
        "error": 0,
        "canceled": 1,
    }
    await run(fetched.get_status)  # the SDK's own reader of the same reply
    assert (fetched.tasks_pending, fetched.tasks_canceled) == (1, 1)
    updated = await run(live_sdk.set_batch_metadata, name, {"x": [1, 2]})
    assert updated.metadata == {"x": [1, 2]}
    assert (await run(live_sdk.get_batch, name)).metadata == {"x": [1, 2]}
    assert (await run(live_sdk.set_batch_metadata, name, {})).metadata == {}
    finalized = await run(live_sdk.finalize_batch, name)
    assert finalized.name == name and finalized.status == "in_progress"


async def test_batch_duplicate_and_unknown(live_sdk: Client, live_proj: str) -> None:
    """A duplicate batch name is 409; unknown batch or project names are 404 / 400."""
    await run(live_sdk.create_batch, live_proj, "b1")
    with pytest.raises(ScaleDuplicateResource):
        await run(live_sdk.create_batch, live_proj, "b1")
    with pytest.raises(ScaleResourceNotFound):
        await run(live_sdk.get_batch, "nope")
    with pytest.raises(ScaleResourceNotFound):
        await run(live_sdk.batch_status, "nope")
    with pytest.raises(ScaleResourceNotFound):
        await run(live_sdk.finalize_batch, "nope")
    with pytest.raises(ScaleResourceNotFound):
        await run(live_sdk.set_batch_metadata, "nope", {"a": 1})
    with pytest.raises(ScaleInvalidRequest, match="nope"):
        await run(live_sdk.create_batch, "nope", "b2")


async def test_rapid_batch_stages_until_finalized(live_sdk: Client) -> None:
    """A Rapid project's batch is staging until finalize_batch moves it to in_progress."""
    await run(live_sdk.create_project, "rapid", TaskType.ImageAnnotation, rapid=True)
    batch = await run(live_sdk.create_batch, "rapid", "r1")
    assert batch.status == "staging"
    assert (await run(live_sdk.batch_status, "r1"))["status"] == "staging"
    assert (await run(live_sdk.finalize_batch, "r1")).status == "in_progress"
    assert (await run(live_sdk.get_batch, "r1")).status == "in_progress"


async def test_batch_completes_when_tasks_do(testkey_sdk: Client, testkey_proj: str) -> None:
    """A batch whose tasks are all completed reports status completed."""
    await run(testkey_sdk.create_batch, testkey_proj, "done")
    await make_task(testkey_sdk, testkey_proj)(batch="done")
    status = await run(testkey_sdk.batch_status, "done")
    assert status["status"] == "completed" and status["completed"] == 1
    assert (await run(testkey_sdk.get_batch, "done")).status == BatchStatus.Completed.value


async def test_batch_listing(live_sdk: Client, live_proj: str) -> None:
    """batches() pages by offset with totalDocs; get_batches walks every page and filters."""
    await run(live_sdk.create_project, "other", TaskType.Categorization)
    await run(live_sdk.create_project, "rapid", TaskType.Categorization, rapid=True)
    for name in ("b1", "b2", "b3"):
        await run(live_sdk.create_batch, live_proj, name)
    await run(live_sdk.create_batch, "other", "o1")
    await run(live_sdk.create_batch, "rapid", "r1")
    page = await run(live_sdk.batches, project=live_proj, limit=2)
    assert [b.name for b in page.docs] == ["b3", "b2"]
    assert (page.total, page.limit, page.offset, page.has_more) == (3, 2, 0, True)
    rest = await run(live_sdk.batches, project=live_proj, limit=2, offset=2)
    assert [b.name for b in rest.docs] == ["b1"] and rest.has_more is False
    walked = await run(lambda: [b.name for b in live_sdk.get_batches(project_name=live_proj)])
    assert walked == ["b3", "b2", "b1"]
    every = await run(lambda: {b.name for b in live_sdk.get_batches(exclude_archived=True)})
    assert every == {"b1", "b2", "b3", "o1", "r1"}
    staging = await run(
        lambda: [b.name for b in live_sdk.get_batches(batch_status=BatchStatus.Staging)]
    )
    assert staging == ["r1"]
    assert (await run(live_sdk.batches, project="nope")).docs == []
    old = await run(live_sdk.batches, start_time="2000-01-01", end_time="2000-01-02")
    assert old.docs == [] and old.total == 0


# --- projects ---------------------------------------------------------------------------


async def test_project_create_get_list(live_sdk: Client) -> None:
    """create/get/projects/get_projects round-trip; a duplicate name is 409 (P1)."""
    made = await run(
        live_sdk.create_project, "p1", TaskType.ImageAnnotation, params={"instruction": "x"}
    )
    assert isinstance(made, Project)
    assert (made.name, made.type, made.version, made.instruction) == (
        "p1",
        "imageannotation",
        0,
        "x",
    )
    bare = await run(live_sdk.create_project, "my proj/2", TaskType.Categorization)
    assert bare.as_dict()["param_history"] == [] and bare.version is None
    fetched = await run(live_sdk.get_project, "my proj/2")
    assert fetched.as_dict() == bare.as_dict()
    assert (await run(live_sdk.get_project, "p1")).as_dict() == made.as_dict()
    with pytest.raises(ScaleDuplicateResource):
        await run(live_sdk.create_project, "p1", TaskType.Categorization)
    with pytest.raises(ScaleResourceNotFound):
        await run(live_sdk.get_project, "nope")
    listed = await run(live_sdk.projects)
    assert [p.name for p in listed] == ["p1", "my proj/2"]
    assert [p.name for p in await run(live_sdk.get_projects)] == ["p1", "my proj/2"]


async def test_update_project_versions_params(live_sdk: Client) -> None:
    """update_project appends a param_history version; new tasks carry it and its defaults."""
    await run(live_sdk.create_project, "p/1", TaskType.ImageAnnotation, params={"instruction": "x"})
    before = await run(
        live_sdk.create_task,
        TaskType.ImageAnnotation,
        project="p/1",
        **minimal_params(TaskType.ImageAnnotation),
    )
    assert before.project_param_version == 0 and before.instruction == "x"
    geometries = {"polygon": {"objects_to_annotate": ["lake"]}}
    updated = await run(
        live_sdk.update_project, "p/1", instruction="Outline lakes.", geometries=geometries
    )
    assert updated.version == 1 and updated.instruction == "Outline lakes."
    versions = [h["version"] for h in updated.as_dict()["param_history"]]
    assert versions == [0, 1]
    after = await run(
        live_sdk.create_task,
        TaskType.ImageAnnotation,
        project="p/1",
        attachment="https://example.com/lake.png",
    )
    assert after.project_param_version == updated.version == 1
    assert after.instruction == "Outline lakes."
    assert after.params["geometries"] == geometries
    third = await run(live_sdk.update_project, "p/1", instruction="v2")
    assert third.version == 2
    assert (await run(live_sdk.get_project, "p/1")).version == 2
    assert (await run(live_sdk.get_task, before.id)).project_param_version == 0
    with pytest.raises(ScaleResourceNotFound):
        await run(live_sdk.update_project, "nope", instruction="y")


async def test_project_template_follows_the_params(live_sdk: Client) -> None:
    """get_project_template: a chat or textcollection project's template is its current
    params' template_variables and response_schema, versioned with them; other types 400."""
    await run(live_sdk.create_project, "chat", TaskType.Chat)
    first = await run(live_sdk.get_project_template, "chat")
    assert (first.version, first.template_variables, first.response_schema) == (0, {}, None)
    assert first.auto_onboard_enabled is False and first.id
    variables = {"prompt": "Say hi", "languageCode": "en_US"}
    schema = {"type": "object", "properties": {"reply": {"type": "string"}}}
    await run(
        live_sdk.update_project,
        "chat",
        template_variables=variables,
        response_schema=schema,
    )
    again = await run(live_sdk.get_project_template, "chat")
    assert (again.id, again.version) == (first.id, 0)
    assert again.template_variables == variables and again.response_schema == schema
    await run(live_sdk.update_project, "chat", template_variables={"prompt": "Bye"})
    assert (await run(live_sdk.get_project_template, "chat")).version == 1
    await run(live_sdk.create_project, "text", TaskType.TextCollection)
    assert (await run(live_sdk.get_project_template, "text")).template_variables == {}
    await run(live_sdk.create_project, "cat", TaskType.Categorization)
    with pytest.raises(ScaleInvalidRequest, match="textcollection and chat"):
        await run(live_sdk.get_project_template, "cat")
    with pytest.raises(ScaleResourceNotFound):
        await run(live_sdk.get_project_template, "nope")
