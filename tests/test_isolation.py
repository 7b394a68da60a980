"""Isolation: an account sees only its own tasks, batches and projects, and
within an account the test and live keys are separate worlds. Another key gets 404 for any
object it names, empty lists, and cannot change anything."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest

from taskhook.core.accounts import NewAccount
from tests.conftest import Api, snapshot

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

MakeAccount = Callable[[str], Awaitable[NewAccount]]

# Owner and intruder keys: ("A" | "B", "live" | "test"). A owns the objects.
SCENARIOS = {
    "other-account-live": (("A", "live"), ("B", "live")),
    "other-account-test": (("A", "live"), ("B", "test")),
    "test-key-vs-live-objects": (("A", "live"), ("A", "test")),
    "live-key-vs-test-objects": (("A", "test"), ("A", "live")),
}

# Every endpoint that names an object: one line each. {task}, {batch}, {project} are A's.
NAMED_ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", "/v1/task/{task}", None),
    ("POST", "/v1/task/{task}/cancel", None),
    ("POST", "/v1/task/{task}/cancel?clear_unique_id=true", None),
    ("POST", "/v1/task/{task}/audit", {"accepted": False, "comments": "intruder"}),
    ("POST", "/v1/task/{task}/unique_id", {"unique_id": "intruder"}),
    ("DELETE", "/v1/task/{task}/unique_id", None),
    ("POST", "/v1/task/{task}/setMetadata", {"intruder": True}),
    ("POST", "/v1/task/{task}/tags", ["intruder"]),
    ("PUT", "/v1/task/{task}/tags", ["intruder"]),
    ("DELETE", "/v1/task/{task}/tags", ["t1"]),
    ("GET", "/v1/batches/{batch}", None),
    ("GET", "/v1/batches/{batch}/status", None),
    ("POST", "/v1/batches/{batch}/finalize", None),
    ("POST", "/v1/batches/{batch}/setMetadata", {"intruder": True}),
    ("GET", "/v1/projects/{project}", None),
    ("POST", "/v1/projects/{project}/setParams", {"instruction": "intruder"}),
]

# Every list: what the intruder must find empty (and the owner finds non-empty).
LISTS = [
    "/v1/tasks",
    "/v1/tasks?project={project}",
    "/v1/tasks?batch={batch}",
    "/v1/tasks?unique_id={unique_id}",
    "/v1/tasks?tags=t1",
    "/v1/tasks?status=pending,completed",
    "/v1/batches",
    "/v1/batches?project={project}",
    "/v1/projects",
]


@dataclass(frozen=True)
class Setup:
    owner: Api
    intruder: Api
    names: dict[str, str]  # task, batch, project, unique_id


async def own_objects(api: Api) -> dict[str, str]:
    """A staging batch (rapid project) and a task with unique_id, tags and metadata in it."""
    status, body = await api.call(
        "POST", "/v1/projects", json={"name": "iso-proj", "type": "categorization", "rapid": True}
    )
    assert status == 200, body
    status, body = await api.call(
        "POST", "/v1/batches", json={"project": "iso-proj", "name": "iso-batch"}
    )
    assert status == 200 and body["status"] == "staging", body
    task = await api.task(
        project="iso-proj",
        batch="iso-batch",
        unique_id="iso-uid",
        tags=["t1", "t2"],
        metadata={"owner": "A"},
    )
    return {
        "task": task["task_id"],
        "batch": "iso-batch",
        "project": "iso-proj",
        "unique_id": "iso-uid",
    }


@pytest.fixture(params=list(SCENARIOS))
async def setup(
    request: pytest.FixtureRequest,
    http: aiohttp.ClientSession,
    base_url: str,
    account: NewAccount,
    make_account: MakeAccount,
) -> Setup:
    """A's objects made with the owner key; the intruder key of the scenario."""
    accounts = {"A": account, "B": await make_account("intruder-inc")}

    def api(who: tuple[str, str]) -> Api:
        acct, world = who
        return Api(http, base_url, getattr(accounts[acct], f"{world}_key"))

    owner, intruder = SCENARIOS[request.param]
    owner_api = api(owner)
    return Setup(owner_api, api(intruder), await own_objects(owner_api))


def fill(template: str, names: dict[str, str]) -> str:
    return template.format(**names)


@pytest.mark.parametrize(
    ("method", "path", "body"), NAMED_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in NAMED_ENDPOINTS]
)
async def test_foreign_object_is_404_and_unchanged(
    setup: Setup, pool: asyncpg.Pool, method: str, path: str, body: Any
) -> None:
    """A key of another account or world gets a 404 for the owner's object, which stays as is."""
    before = await snapshot(pool)
    owner_view = await setup.owner.call("GET", fill("/v1/task/{task}", setup.names))
    status, reply = await setup.intruder.call(method, fill(path, setup.names), json=body)
    assert status == 404, reply
    assert reply == {"status_code": 404, "error": reply["error"]}
    if "{task}" in path:
        assert reply["error"] == "Task with that ID not found."
    else:
        name = setup.names["batch" if "{batch}" in path else "project"]
        assert f"'{name}'" in reply["error"] and "not found" in reply["error"]
    assert await snapshot(pool) == before
    assert await setup.owner.call("GET", fill("/v1/task/{task}", setup.names)) == owner_view


@pytest.mark.parametrize("path", LISTS)
async def test_foreign_objects_are_not_listed(setup: Setup, path: str) -> None:
    """Every list of another account or world is empty, though the owner's is not."""
    url = fill(path, setup.names)
    status, mine = await setup.owner.call("GET", url)
    assert status == 200 and _docs(mine), mine
    status, theirs = await setup.intruder.call("GET", url)
    assert status == 200, theirs
    assert _docs(theirs) == []
    if isinstance(theirs, dict):
        assert theirs.get("total", theirs.get("totalDocs")) == 0
        assert theirs["has_more"] is False and "next_token" not in theirs


def _docs(reply: Any) -> list[Any]:
    """Task and batch lists are {"docs": [...]}; the project list is a bare array."""
    return reply if isinstance(reply, list) else reply["docs"]  # type: ignore[no-any-return]


async def test_foreign_next_token_is_refused(setup: Setup) -> None:
    """A next_token is bound to the key it was issued to: another key gets a 400, no docs."""
    await setup.owner.task(project="iso-proj")
    status, page = await setup.owner.call("GET", "/v1/tasks", params={"limit": "1"})
    assert status == 200 and page["has_more"], page
    status, reply = await setup.intruder.call(
        "GET", "/v1/tasks", params={"limit": "1", "next_token": page["next_token"]}
    )
    assert status == 400, reply
    assert reply == {"status_code": 400, "error": reply["error"]} and "next_token" in reply["error"]


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        (
            "/v1/task/categorization",
            {"project": "iso-proj", "attachment": "a", "categories": ["x"]},
            "iso-proj",
        ),
        (
            "/v1/task/categorization",
            {"batch": "iso-batch", "attachment": "a", "categories": ["x"]},
            "iso-batch",
        ),
        ("/v1/batches", {"project": "iso-proj", "name": "intruder-batch"}, "iso-proj"),
    ],
)
async def test_foreign_project_or_batch_cannot_be_used(
    setup: Setup, pool: asyncpg.Pool, path: str, body: dict[str, Any], named: str
) -> None:
    """Creating into another account's or world's project or batch is a 400 naming it."""
    before = await snapshot(pool)
    status, reply = await setup.intruder.call("POST", path, json=body)
    assert status == 400, reply
    assert reply == {"status_code": 400, "error": reply["error"]}
    assert f"'{named}'" in reply["error"] and "not found" in reply["error"]
    assert await snapshot(pool) == before


async def test_names_are_per_account_and_world(setup: Setup, pool: asyncpg.Pool) -> None:
    """The same project and batch names can be made by the other key; the owner's stay as is."""
    owner_project = await setup.owner.call("GET", "/v1/projects/iso-proj")
    owner_batch = await setup.owner.call("GET", "/v1/batches/iso-batch")
    await setup.intruder.project("iso-proj")
    status, body = await setup.intruder.call(
        "POST", "/v1/batches", json={"project": "iso-proj", "name": "iso-batch"}
    )
    assert status == 200, body
    task = await setup.intruder.task(project="iso-proj", batch="iso-batch")
    assert await setup.owner.call("GET", "/v1/projects/iso-proj") == owner_project
    assert await setup.owner.call("GET", "/v1/batches/iso-batch") == owner_batch
    status, body = await setup.owner.call("GET", "/v1/tasks", params={"batch": "iso-batch"})
    assert [d["task_id"] for d in body["docs"]] == [setup.names["task"]]
    status, body = await setup.intruder.call("GET", "/v1/tasks", params={"batch": "iso-batch"})
    assert [d["task_id"] for d in body["docs"]] == [task["task_id"]]


async def test_unique_id_does_not_conflict_across(setup: Setup) -> None:
    """The owner's unique_id is free for the other key, on create and on unique_id update."""
    uid = setup.names["unique_id"]
    await setup.intruder.project("mine")
    created = await setup.intruder.task(project="mine", unique_id=uid)
    assert created["unique_id"] == uid and created["task_id"] != setup.names["task"]
    other = await setup.intruder.task(project="mine")
    status, body = await setup.intruder.call(
        "POST", f"/v1/task/{other['task_id']}/unique_id", json={"unique_id": "second"}
    )
    assert status == 200, body
    status, body = await setup.owner.call(
        "POST", f"/v1/task/{setup.names['task']}/unique_id", json={"unique_id": "second"}
    )
    assert status == 200, body
    expected = [
        (setup.intruder, uid, created["task_id"]),
        (setup.owner, "second", setup.names["task"]),
        (setup.intruder, "second", other["task_id"]),
    ]
    for api, unique_id, task_id in expected:
        status, body = await api.call("GET", "/v1/tasks", params={"unique_id": unique_id})
        assert [d["task_id"] for d in body["docs"]] == [task_id]


async def test_unique_id_still_conflicts_within(setup: Setup) -> None:
    """Control: inside one account and world the same unique_id is a 409."""
    status, body = await setup.owner.call(
        "POST",
        "/v1/task/categorization",
        json={
            "project": "iso-proj",
            "attachment": "a",
            "categories": ["x"],
            "unique_id": setup.names["unique_id"],
        },
    )
    assert status == 409, body
    assert setup.names["task"] in body["error"]


async def test_idempotency_keys_are_per_account_and_world(setup: Setup) -> None:
    """The same Idempotency-Key and body from another key creates its own task, no replay."""
    headers = {"Idempotency-Key": "iso-key-1"}
    await setup.intruder.project("iso-proj")
    payload = {"project": "iso-proj", "attachment": "a", "categories": ["x"]}
    status, first = await setup.owner.call(
        "POST", "/v1/task/categorization", json=payload, headers=headers
    )
    assert status == 200, first
    status, second = await setup.intruder.call(
        "POST", "/v1/task/categorization", json=payload, headers=headers
    )
    assert status == 200, second
    assert second["task_id"] != first["task_id"]
    status, seen = await setup.intruder.call("GET", f"/v1/task/{second['task_id']}")
    assert status == 200 and seen == second
