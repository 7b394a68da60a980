"""Deliveries: the operator groups
completed tasks into named deliveries per project with `task.delivered` events (or the CLI's
code path), and get_deliveries, get_delivery and get_delivery_tasks page through them."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import scaleapi
from scaleapi.api_client.v2 import (
    CreateBatchRequest,
    GetDeliveredTasksResponse,
    GetDeliveriesResponse,
    GetDeliveryTasksResponse,
    GetSchemaResponse,
    Task,
    TaskStatus,
    V2Api,
)
from scaleapi.api_client.v2.exceptions import BadRequestException, NotFoundException

from taskhook.v2.deliveries import add_parser, deliver_tasks, run_command
from tests.conftest import Api
from tests.v2.conftest import PROJECT
from tests.v2.helpers import Ingest, ann, event, raises, run

Chat = Callable[..., Awaitable[Task]]
D1_AT = datetime(2025, 3, 1, 12, tzinfo=UTC)
D2_AT = datetime(2025, 2, 1, 12, tzinfo=UTC)


@pytest.fixture
async def world(v2: V2Api, completed: Chat, chat: Chat, ingest: Ingest) -> dict[str, Any]:
    """Three completed tasks (two in a batch) and one pending; d1 holds the first two, d2
    the third."""
    await run(v2.create_batch, CreateBatchRequest(name="db", project_name=PROJECT))
    done = []
    for fields in ({"batch_name": "db"}, {"batch_name": "db"}, {}):
        await asyncio.sleep(0.002)  # fixed: a new millisecond, so timestamps tell them apart
        done.append(await completed(**fields))
    pending = await chat()
    await ingest.applied(
        [
            event("delivered", done[0].task_id, delivery_name="d1", occurred_at=D1_AT.isoformat()),
            event("delivered", done[1].task_id, delivery_name="d1"),
            event("delivered", done[2].task_id, delivery_name="d2", occurred_at=D2_AT.isoformat()),
        ]
    )
    deliveries = {
        d.name: d for d in (await run(v2.get_deliveries, project_name=PROJECT)).deliveries
    }
    return {"done": done, "pending": pending, "d1": deliveries["d1"], "d2": deliveries["d2"]}


async def test_v20_get_deliveries(v2: V2Api, world: dict[str, Any]) -> None:
    """V20: {"deliveries": [{id, name, task_count (int), delivered_at, project}]}, newest
    first; delivered bounds filter; expand=project gives the object."""
    got = await run(v2.get_deliveries, project_name=PROJECT)
    assert isinstance(got, GetDeliveriesResponse)
    assert [(d.name, d.task_count) for d in got.deliveries] == [("d1", 2), ("d2", 1)]
    d1 = got.deliveries[0]
    assert d1.delivered_at == D1_AT  # the first task's occurred_at
    project = await run(v2.get_project, project_name=PROJECT)
    assert d1.project.actual_instance == project.id
    after = await run(v2.get_deliveries, project_id=project.id, delivered_after=D2_AT)
    assert [d.name for d in after.deliveries] == ["d1"]
    before = await run(v2.get_deliveries, project_name=PROJECT, delivered_before=D1_AT)
    assert [d.name for d in before.deliveries] == ["d2"]
    expanded = await run(v2.get_deliveries, project_name=PROJECT, expand=["project"])
    assert expanded.deliveries[0].project.actual_instance.name == PROJECT
    await raises(BadRequestException, v2.get_deliveries)
    await raises(NotFoundException, v2.get_deliveries, project_name="nope")


async def test_v21_get_delivery_pages_through_its_tasks(v2: V2Api, world: dict[str, Any]) -> None:
    """V21: get_delivery(delivery_id=D, limit=1) pages like V8: a token on every page but
    the last; the delivery is its id unless expanded."""
    d1 = world["d1"]
    seen, token, calls = [], None, 0
    while True:
        page = await run(v2.get_delivery, delivery_id=d1.id, limit=1, next_token=token)
        calls += 1
        assert isinstance(page, GetDeliveredTasksResponse)
        assert page.delivery.actual_instance == d1.id
        seen += [t.task_id for t in page.tasks]
        token = page.next_token
        if token is None:
            break
    assert seen == [world["done"][1].task_id, world["done"][0].task_id]
    assert calls == 2


async def test_v21_get_delivery_by_name_with_expand_and_opts(
    v2: V2Api, world: dict[str, Any]
) -> None:
    """V21: (delivery_name, project_name) finds it; expand=delivery,project,batch and opts
    apply; a name without a project is a 400; unknown is a 404."""
    page = await run(
        v2.get_delivery,
        delivery_name="d1",
        project_name=PROJECT,
        expand=["delivery", "project", "batch"],
        opts=["annotation_details"],
    )
    delivery = page.delivery.actual_instance
    assert type(delivery).__name__ == "Delivery" and delivery.task_count == 2
    assert delivery.project.actual_instance.name == PROJECT
    task = page.tasks[0]
    assert task.batch.actual_instance.name == "db"
    first = task.threads[0].turns[0].messages[1].annotations[0].actual_instance
    assert first.title == "Response Formatting"
    await raises(BadRequestException, v2.get_delivery, delivery_name="d1")
    await raises(BadRequestException, v2.get_delivery)
    await raises(NotFoundException, v2.get_delivery, delivery_id="nope")
    await raises(NotFoundException, v2.get_delivery, delivery_name="d9", project_name=PROJECT)


async def test_v22_get_delivery_tasks(v2: V2Api, world: dict[str, Any]) -> None:
    """V22: docs with task_id, created_at, delivery_id, delivered_at (a string),
    response_schema_id and the delivered response; `total` an int; undelivered tasks have
    those fields null; delivery_id keeps that delivery's tasks."""
    d1, done = world["d1"], world["done"]
    got = await run(v2.get_delivery_tasks, project_name=PROJECT, delivery_id=d1.id)
    assert isinstance(got, GetDeliveryTasksResponse)
    assert got.total == 2 and isinstance(got.total, int)
    assert [d.task_id for d in got.docs] == [done[1].task_id, done[0].task_id]
    doc = got.docs[1]
    assert doc.delivery_id == d1.id
    assert datetime.fromisoformat(doc.delivered_at) == D1_AT
    assert doc.response["threads"][0]["id"] == "thread_1"
    assert doc.response_schema_id
    everything = await run(v2.get_delivery_tasks, project_name=PROJECT)
    assert everything.total == 4
    undelivered = next(d for d in everything.docs if d.task_id == world["pending"].task_id)
    assert undelivered.delivery_id is None and undelivered.response is None
    assert undelivered.delivered_at is None and undelivered.response_schema_id is None
    pending = await run(v2.get_delivery_tasks, project_name=PROJECT, status=TaskStatus.PENDING)
    assert [d.task_id for d in pending.docs] == [world["pending"].task_id]
    future = datetime.now(UTC) + timedelta(days=1)
    none = await run(v2.get_delivery_tasks, project_name=PROJECT, completed_after=future)
    assert none.docs == [] and none.total == 0 and none.next_token is None
    await raises(BadRequestException, v2.get_delivery_tasks)
    await raises(NotFoundException, v2.get_delivery_tasks, project_name=PROJECT, delivery_id="x")


async def test_v22_get_delivery_tasks_pages(v2: V2Api, world: dict[str, Any]) -> None:
    """V22: limit and next_token page as everywhere; `total` stays the full count."""
    seen, token = [], None
    while True:
        page = await run(v2.get_delivery_tasks, project_name=PROJECT, limit=3, next_token=token)
        assert page.total == 4
        seen += [d.task_id for d in page.docs]
        token = page.next_token
        if token is None:
            break
    assert len(seen) == 4 == len(set(seen))


async def test_v22_delivered_response_is_the_one_delivered(
    v2: V2Api, world: dict[str, Any], ingest: Ingest
) -> None:
    """A fix after the delivery does not change what was delivered; delivering the task
    again (a new delivery) delivers the fixed response."""
    task = world["done"][2]
    fixed = [{"id": "thread_fixed", "turns": [], "annotations": [ann("an_f", "k", "text", "v")]}]
    await ingest.applied(event("fixed", task.task_id, threads=fixed))
    got = await run(v2.get_delivery_tasks, project_name=PROJECT, delivery_id=world["d2"].id)
    assert got.docs[0].response["threads"][0]["id"] == "thread_1"
    await ingest.applied(event("delivered", task.task_id, delivery_name="d3"))
    latest = await run(v2.get_delivery_tasks, project_name=PROJECT)
    doc = next(d for d in latest.docs if d.task_id == task.task_id)
    assert doc.response["threads"][0]["id"] == "thread_fixed"


async def test_delivered_event_rules(chat: Chat, ingest: Ingest) -> None:
    """task.delivered needs a completed task (else rejected, not applied) and a
    delivery_name (else a 400); delivery_name belongs to task.delivered only."""
    task = await chat()
    [result] = await ingest.ok(event("delivered", task.task_id, delivery_name="d"))
    assert result["status"] == "rejected" and "needs a completed task" in result["error"]
    status, body = await ingest.send(event("delivered", task.task_id))
    assert status == 400 and "'delivery_name' is required" in body["error"]
    status, body = await ingest.send(event("started", task.task_id, delivery_name="d"))
    assert status == 400 and "only for task.delivered" in body["error"]


async def test_deliveries_of_the_cli_path(
    v2: V2Api, completed: Chat, chat: Chat, pool: asyncpg.Pool
) -> None:
    """taskhook.v2.deliveries.deliver_tasks (the CLI's code) applies the same events."""
    done, pending = await completed(), await chat()
    async with pool.acquire() as conn, conn.transaction():
        results = await deliver_tasks(conn, "cli", [done.task_id, pending.task_id])
    assert [r["status"] for r in results] == ["applied", "rejected"]
    [delivery] = (await run(v2.get_deliveries, project_name=PROJECT)).deliveries
    assert (delivery.name, delivery.task_count) == ("cli", 1)


async def test_deliveries_are_per_account_and_world(
    v2_client: Callable[..., scaleapi.ScaleClient],
    make_account: Any,
    http: Any,
    base_url: str,
    world: dict[str, Any],
) -> None:
    """Another account sees none of them: its own project of the same name has none, and
    the ids are 404s."""
    other = await make_account("other")
    await Api(http, base_url, other.live_key).project(PROJECT)
    v2 = v2_client(other.live_key).v2
    assert (await run(v2.get_deliveries, project_name=PROJECT)).deliveries == []
    await raises(NotFoundException, v2.get_delivery, delivery_id=world["d1"].id)
    await raises(NotFoundException, v2.get_task, world["done"][0].task_id)


async def test_v24_get_schema(v2: V2Api, world: dict[str, Any]) -> None:
    """V24: the response_schema_id of a delivered response is served as
    {"schema": {"id", "json": <stringified JSON Schema>}}; a malformed id is a 400, an
    unknown one a 404."""
    got = await run(v2.get_delivery_tasks, project_name=PROJECT, delivery_id=world["d1"].id)
    schema_id = got.docs[0].response_schema_id
    schema = await run(v2.get_schema, schema_id)
    assert isinstance(schema, GetSchemaResponse)
    assert schema.var_schema.id == schema_id
    parsed = json.loads(schema.var_schema.var_json)
    assert "threads" in parsed["properties"]
    exc = await raises(BadRequestException, v2.get_schema, "not-an-id")
    assert exc.data is not None and exc.data.status_code == 400  # the SDK parses this one
    missing = await raises(NotFoundException, v2.get_schema, "0" * 24)
    assert missing.data.error.startswith("Schema")


async def test_deliveries_create_command(
    v2: V2Api, completed: Chat, chat: Chat, pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    """`taskhook deliveries create NAME TASK_ID... [--delivered-at] [--json]` (the parser and
    runner that taskhook/cli.py wires in): one line per task, exit 1 if any is rejected."""
    parser = argparse.ArgumentParser(prog="taskhook")
    add_parser(parser.add_subparsers(dest="command"))
    done, pending = await completed(), await chat()
    args = parser.parse_args(
        ["deliveries", "create", "weekly", done.task_id, "--delivered-at", "2025-04-01T00:00:00"]
    )
    capsys.readouterr()  # the test's log lines so far
    assert await run_command(pool, args) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{done.task_id}: applied"
    [delivery] = (await run(v2.get_deliveries, project_name=PROJECT)).deliveries
    assert delivery.name == "weekly"
    assert delivery.delivered_at == datetime(2025, 4, 1, tzinfo=UTC)
    args = parser.parse_args(["deliveries", "create", "weekly", pending.task_id, "--json"])
    assert await run_command(pool, args) == 1
    [result] = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["task_id"] == pending.task_id and result["status"] == "rejected"
    args = parser.parse_args(["deliveries", "create", "x" * 201, done.task_id])
    assert await run_command(pool, args) == 2
    # --delivered-at follows occurred_at's rules: storable, not ahead of the clock.
    ahead = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    for when, words in (("0001-01-01T00:00:00", "out of range"), (ahead, "future")):
        capsys.readouterr()
        args = parser.parse_args(
            ["deliveries", "create", "w2", done.task_id, "--delivered-at", when]
        )
        assert await run_command(pool, args) == 2
        err = capsys.readouterr().err
        assert "--delivered-at" in err and words in err, err
    assert len((await run(v2.get_deliveries, project_name=PROJECT)).deliveries) == 1
