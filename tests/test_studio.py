"""Scale's Studio API through the official SDK, in the order Scale's own studio script
runs it: assignments, project groups, studio batches and their priorities; and the
workforce's queue that they decide (GET /v1/studio/work)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import scaleapi
from scaleapi.exceptions import ScaleDuplicateResource, ScaleInvalidRequest
from scaleapi.tasks import TaskType
from scaleapi.teams import TeammateRole

from taskhook.core.accounts import NewAccount
from tests.conftest import Api

Client = scaleapi.ScaleClient
ANN, BOB = "ann@example.com", "bob@example.com"


async def run(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture
async def client(sdk: Callable[[str], Client], account: NewAccount) -> Client:
    """A live client with a team of two labelers and projects p1 and p2."""
    live = sdk(account.live_key)
    await run(live.invite_teammates, [ANN, BOB], TeammateRole.Labeler)
    for name in ("p1", "p2"):
        await run(live.create_project, name, TaskType.Categorization)
    return live


def assigned(assignments: dict[str, Any]) -> dict[str, list[str]]:
    return {email: a.assigned_projects for email, a in assignments.items()}


async def test_assignments_add_and_remove(client: Client) -> None:
    assert assigned(await run(client.list_studio_assignments)) == {ANN: [], BOB: []}
    added = await run(client.add_studio_assignments, [ANN, BOB], ["p1", "p2"])
    assert assigned(added) == {ANN: ["p1", "p2"], BOB: ["p1", "p2"]}
    removed = await run(client.remove_studio_assignments, [BOB], ["p1"])
    assert assigned(removed) == {ANN: ["p1", "p2"], BOB: ["p2"]}
    assert removed[BOB].email == BOB
    with pytest.raises(ScaleInvalidRequest, match="Not on the team"):
        await run(client.add_studio_assignments, ["cat@example.com"], ["p1"])
    with pytest.raises(ScaleInvalidRequest, match="No such project: nope"):
        await run(client.add_studio_assignments, [ANN], ["p1", "nope"])
    assert assigned(await run(client.list_studio_assignments)) == {ANN: ["p1", "p2"], BOB: ["p2"]}


async def test_project_groups(client: Client) -> None:
    await run(client.add_studio_assignments, [ANN, BOB], ["p1"])
    group = await run(client.create_project_group, "p1", [ANN], "night-shift")
    assert (group.name, group.numWorkers, group.isSingleton) == ("night-shift", 1, False)
    assert [w["email"] for w in group.as_dict()["workers"]] == [ANN]
    with pytest.raises(ScaleDuplicateResource):
        await run(client.create_project_group, "p1", [BOB], "night-shift")
    with pytest.raises(ScaleInvalidRequest, match="Not assigned"):
        await run(client.create_project_group, "p2", [ANN], "day-shift")
    updated = await run(client.update_project_group, "p1", "night-shift", [BOB], [ANN])
    assert [w["email"] for w in updated.as_dict()["workers"]] == [BOB]
    assert [g.name for g in await run(client.list_project_groups, "p1")] == ["night-shift"]
    assert await run(client.list_project_groups, "p2") == []
    # Unassigning Bob from p1 takes him out of its groups too.
    await run(client.remove_studio_assignments, [BOB], ["p1"])
    [after] = await run(client.list_project_groups, "p1")
    assert after.numWorkers == 0


async def test_batches_groups_priorities_and_the_queue(client: Client, live: Api) -> None:
    await run(client.add_studio_assignments, [ANN, BOB], ["p1"])
    await run(client.create_project_group, "p1", [ANN], "ann-only")
    for name in ("b1", "b2", "b3"):
        await run(client.create_batch, "p1", name)
    for batch in ("b1", "b2", "b2", "b3"):
        await run(
            client.create_task,
            TaskType.Categorization,
            batch=batch,
            attachment="https://example.com/a.png",
            categories=["a", "b"],
        )
    batches = await run(client.list_studio_batches)
    assert [b.name for b in batches] == ["b1", "b2", "b3"]
    b2 = batches[1]
    assert (b2.total, b2.completed, b2.groups, b2.studio_priority) == (2, 0, [], None)
    assert b2.project_name == "p1" and b2.batch_type == "Production"
    given = await run(client.assign_studio_batches, "b3", ["ann-only"])
    assert given.groups == ["ann-only"]
    with pytest.raises(ScaleInvalidRequest, match="nope"):
        await run(client.assign_studio_batches, "b3", ["nope"])
    ranked = await run(client.set_studio_batches_priorities, ["b3", "b1"])
    assert [(b.name, b.studio_priority) for b in ranked] == [("b3", 1), ("b1", 2), ("b2", None)]
    # Ann works every batch of p1 in that order; Bob not b3, given to Ann's group only.
    status, queue = await live.call("GET", f"/v1/studio/work?email={ANN}")
    assert status == 200 and [q["batch"] for q in queue] == ["b3", "b1", "b2"]
    assert [q["pending"] for q in queue] == [1, 1, 2]
    status, queue = await live.call("GET", f"/v1/studio/work?email={BOB}")
    assert [q["batch"] for q in queue] == ["b1", "b2"]
    reset = await run(client.reset_studio_batches_priorities)
    assert [(b.name, b.studio_priority) for b in reset] == [
        ("b1", None),
        ("b2", None),
        ("b3", None),
    ]
    with pytest.raises(ScaleInvalidRequest, match="nope"):
        await run(client.set_studio_batches_priorities, ["nope"])


async def test_studio_is_per_world(sdk: Callable[[str], Client], account: NewAccount) -> None:
    live, test = sdk(account.live_key), sdk(account.test_key)
    await run(live.invite_teammates, [ANN], TeammateRole.Labeler)
    await run(live.create_project, "p1", TaskType.Categorization)
    await run(live.add_studio_assignments, [ANN], ["p1"])
    assert assigned(await run(test.list_studio_assignments)) == {ANN: []}
    with pytest.raises(ScaleInvalidRequest, match="No such project"):
        await run(test.add_studio_assignments, [ANN], ["p1"])
