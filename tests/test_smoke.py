"""A first walk through the API over real HTTP."""

from __future__ import annotations

from tests.conftest import Api


async def test_create_and_get_task(live: Api) -> None:
    """A live task is created pending, with type fields in params, and read back."""
    await live.project()
    task = await live.task(instruction="Is it big?", callback_url="http://127.0.0.1:9/cb")
    assert task["status"] == "pending"
    assert task["params"] == {"attachment": "a", "categories": ["x", "y"]}
    status, again = await live.call("GET", f"/v1/task/{task['task_id']}")
    assert status == 200 and again == task
