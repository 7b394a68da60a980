"""create_evaluation_task and create_training_task through the official SDK: stored with
their expected responses, listed on their project, never among tasks or called back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
import scaleapi
from scaleapi.exceptions import ScaleInvalidRequest
from scaleapi.tasks import TaskType

from taskhook.core.accounts import NewAccount
from tests.conftest import Api

Client = scaleapi.ScaleClient
BOX = {
    "attachment": "https://example.com/cow.png",
    "geometries": {"box": {"objects_to_annotate": ["cow"]}},
}
EXPECTED = {"annotations": [{"label": "cow", "left": 1, "top": 2, "width": 3, "height": 4}]}


async def run(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_stored_and_listed_on_their_project(
    sdk: Callable[[str], Client], account: NewAccount, live: Api, pool: asyncpg.Pool
) -> None:
    client = sdk(account.live_key)
    await run(client.create_project, "cows", TaskType.ImageAnnotation, rapid=True)
    evaluation = await run(
        client.create_evaluation_task,
        TaskType.ImageAnnotation,
        project="cows",
        instruction="Box the cow.",
        expected_response=EXPECTED,
        initial_response={"annotations": []},
        callback_url="http://127.0.0.1:9/never",
        **BOX,
    )
    assert evaluation.id and evaluation.expected_response == EXPECTED
    assert evaluation.as_dict()["initial_response"] == {"annotations": []}
    assert evaluation.as_dict()["params"] == BOX
    training = await run(
        client.create_training_task,
        TaskType.ImageAnnotation,
        project="cows",
        expected_response=EXPECTED,
        **BOX,
    )
    assert "initial_response" not in training.as_dict()
    status, listed = await live.call("GET", "/v1/projects/cows/evaluation_tasks")
    assert status == 200 and [q["id"] for q in listed] == [evaluation.id]
    status, listed = await live.call("GET", "/v1/projects/cows/training_tasks")
    assert [q["id"] for q in listed] == [training.id]
    assert (await run(client.tasks)).docs == []  # not tasks
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 0  # never called back
    status, _ = await live.call("GET", "/v1/projects/nope/training_tasks")
    assert status == 404


@pytest.mark.parametrize(
    ("task_type", "fields", "words"),
    [
        (TaskType.Categorization, {**BOX, "expected_response": EXPECTED}, "no evaluation"),
        (TaskType.ImageAnnotation, BOX, "expected_response"),
        (TaskType.ImageAnnotation, {"expected_response": EXPECTED}, "attachment"),
        (TaskType.ImageAnnotation, {**BOX, "expected_response": EXPECTED, "project": "x"}, "'x'"),
    ],
)
async def test_bad_evaluation_tasks_are_400(
    sdk: Callable[[str], Client],
    account: NewAccount,
    pool: asyncpg.Pool,
    task_type: TaskType,
    fields: dict[str, Any],
    words: str,
) -> None:
    client = sdk(account.live_key)
    await run(client.create_project, "cows", TaskType.ImageAnnotation)
    with pytest.raises(ScaleInvalidRequest, match=words):
        await run(client.create_evaluation_task, task_type, **{"project": "cows", **fields})
    assert await pool.fetchval("SELECT count(*) FROM quality_tasks") == 0


async def test_training_tasks_take_no_initial_response(
    sdk: Callable[[str], Client], account: NewAccount
) -> None:
    client = sdk(account.live_key)
    await run(client.create_project, "cows", TaskType.ImageAnnotation)
    with pytest.raises(ScaleInvalidRequest, match="evaluation tasks only"):
        await run(
            client.create_training_task,
            TaskType.ImageAnnotation,
            project="cows",
            expected_response=EXPECTED,
            initial_response=EXPECTED,
            **BOX,
        )
