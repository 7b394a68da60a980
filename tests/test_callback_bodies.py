"""Every documented callback body, end to end and field by field.

A live task is created with its callback_url on a real sink; workforce events go through
the signed ingest endpoint and customer audits through the API; a real dispatcher delivers;
the bodies are read at the sink and checked against Scale's documented callback bodies,
its Task object, and the Tasks tab's Accept, Fix and Reject.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook

from taskhook.core.accounts import NewAccount
from tests.conftest import Api
from tests.sink import Received, Sink
from tests.test_ingest import Ingest, ev
from tests.waits import wait_until

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

Start = Callable[..., Awaitable[Any]]

ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
BASE_KEYS = {"task", "response", "task_id", "status"}
REVIEW_KEYS = BASE_KEYS | {"customer_review_status", "customer_review_comments", "prior_responses"}
INSTRUCTION = "Would you say this item is big or small?"
FIRST = {"category": "big"}
SECOND = {"category": "small"}
THIRD = {"category": "medium"}
# The reference's error example (https://docs.scale.com/reference/errors).
ERROR = "One or more attachments could not be downloaded."
ATTACHMENTS = [{"statusCode": 403, "url": "https://example.com/image-1.png"}]


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture
def ingest(http: aiohttp.ClientSession, base_url: str) -> Ingest:
    return Ingest(http, base_url)


@pytest.fixture
async def world(
    live: Api, account: NewAccount, sink: tuple[Sink, str], ingest: Ingest, run_dispatcher: Start
) -> World:
    """A live account with project "proj" (no params), a sink and a running dispatcher."""
    await live.project()
    await run_dispatcher()
    receiver, url = sink
    return World(live, account, receiver, url, ingest)


class World:
    """One test's parts, with the steps every test repeats."""

    def __init__(self, api: Api, account: NewAccount, sink: Sink, url: str, ingest: Ingest) -> None:
        self.api, self.account, self.sink, self.url, self.ingest = api, account, sink, url, ingest

    async def task(self, path: str, **fields: Any) -> dict[str, Any]:
        """A pending live task whose callbacks go to the sink's /ok/<path>."""
        return await self.api.task(
            callback_url=f"{self.url}/ok/{path}", instruction=INSTRUCTION, **fields
        )

    async def event(self, type_: str, task_id: str, **fields: Any) -> None:
        """One signed workforce event through POST /v1/events; it must apply."""
        [result] = await self.ingest.ok(ev(type_, task_id, **fields))
        assert result["status"] == "applied", result

    async def audit(self, task_id: str, **body: Any) -> dict[str, Any]:
        status, reply = await self.api.call("POST", f"/v1/task/{task_id}/audit", json=body)
        assert status == 200, reply
        return reply  # type: ignore[no-any-return]

    async def get(self, task_id: str) -> dict[str, Any]:
        status, body = await self.api.call("GET", f"/v1/task/{task_id}")
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    async def callbacks(self, path: str, count: int) -> list[dict[str, Any]]:
        """Wait for `count` callbacks at /ok/<path>, check their headers, return the bodies."""
        await self.sink.wait_for(lambda: len(self.sink.to(f"/ok/{path}")) >= count)
        got = self.sink.to(f"/ok/{path}")
        assert len(got) == count, [r.json for r in got]
        for received in got:
            self.check_headers(received)
        return [r.json for r in got]

    async def callback(self, path: str, count: int) -> dict[str, Any]:
        """The `count`-th callback at /ok/<path> (after waiting for it)."""
        return (await self.callbacks(path, count))[-1]

    def check_headers(self, received: Received) -> None:
        """scale-callback-auth is the account's key; the Standard Webhooks signature verifies."""
        headers = received.headers
        assert headers["Content-Type"] == "application/json"
        assert headers["scale-callback-auth"] == self.account.callback_auth_key
        Webhook(self.account.signing_secret).verify(received.body, headers)  # raises if bad

    async def delivered(self, task_id: str) -> dict[str, Any]:
        """The task once its latest delivery has succeeded (callback_succeeded true)."""
        task: dict[str, Any] = {}

        async def succeeded() -> bool:
            task.update(await self.get(task_id))
            return task.get("callback_succeeded") is True

        await wait_until(succeeded, what=f"task {task_id}'s callback to succeed")
        return task


def assert_iso(*values: Any) -> None:
    for value in values:
        assert isinstance(value, str) and ISO_MS_Z.match(value), value


def without_callback_succeeded(task: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in task.items() if k != "callback_succeeded"}


async def task_state(pool: asyncpg.Pool, task_id: str) -> tuple[str, int]:
    """The task's whole row as JSON text and the number of deliveries: equal, nothing written."""
    row = await pool.fetchval("SELECT to_jsonb(t)::text FROM tasks t WHERE id = $1", task_id)
    count = await pool.fetchval("SELECT count(*) FROM deliveries WHERE task_id = $1", task_id)
    return str(row), int(count)


# --- completion ---------------------------------------------------------------------------


async def test_a_task_without_project_calls_back(world: World) -> None:
    """A project-less task completes through a signed event and calls back like any other."""
    created = await world.task("noproj", project=None)
    assert created["project"] is None
    await world.event("completed", created["task_id"], response=FIRST)
    body = await world.callback("noproj", 1)
    assert body["task"]["project"] is None and body["response"] == FIRST
    assert (await world.delivered(created["task_id"]))["status"] == "completed"


async def test_completion_body_is_the_documented_four_keys(world: World) -> None:
    """Completion: {task, response, task_id, status}; task is GET's task less callback_succeeded."""
    created = await world.task("done")
    task_id = created["task_id"]
    await world.event("completed", task_id, response=FIRST)
    body = await world.callback("done", 1)
    after = await world.delivered(task_id)

    assert set(body) == BASE_KEYS
    assert body["task_id"] == task_id
    assert body["status"] == "completed"
    assert body["response"] == FIRST
    task = body["task"]
    assert "callback_succeeded" not in task
    assert task == without_callback_succeeded(after)
    assert task["task_id"] == task_id
    assert task["type"] == "categorization"
    assert task["status"] == "completed"
    assert task["instruction"] == INSTRUCTION
    assert task["callback_url"] == f"{world.url}/ok/done"
    assert task["params"] == {"attachment": "a", "categories": ["x", "y"]}
    assert task["metadata"] == {}
    assert task["response"] == FIRST
    assert_iso(task["created_at"], task["updated_at"], task["completed_at"])
    assert task["created_at"] == created["created_at"]
    assert task["created_at"] <= task["updated_at"]
    assert task["audits"] == []
    assert task["project_param_version"] is None  # "proj" has no params
    assert task["customer_review_status"] == "pending"
    for absent in ("times_redone", "tags", "unique_id", "customer_review_comments"):
        assert absent not in task, absent
    assert "prior_responses" not in task


async def test_completion_body_carries_tags_and_unique_id_only_when_set(world: World) -> None:
    """tags and unique_id appear in the body's task exactly when the task has them."""
    tagged = await world.task("tagged", tags=["experiment_1", "owner:david"], unique_id="u-1")
    await world.event("completed", tagged["task_id"], response=FIRST)
    task = (await world.callback("tagged", 1))["task"]
    assert task["tags"] == ["experiment_1", "owner:david"]
    assert task["unique_id"] == "u-1"
    assert task["metadata"] == {}


async def test_completed_at_is_the_events_occurred_at(world: World) -> None:
    """completed_at is when the work was done (occurred_at), in Scale's millisecond Z form."""
    task_id = (await world.task("at"))["task_id"]
    await world.event("completed", task_id, response=FIRST, occurred_at="2016-06-23T09:10:02.798Z")
    task = (await world.callback("at", 1))["task"]
    assert task["completed_at"] == "2016-06-23T09:10:02.798Z"
    assert_iso(task["updated_at"])


# --- error --------------------------------------------------------------------------------


async def test_error_body_carries_the_error_response_as_sent(world: World) -> None:
    """Error: status "error"; response is {"error", "attachments"} exactly as reported."""
    task_id = (await world.task("err"))["task_id"]
    await world.event("errored", task_id, error=ERROR, attachments=ATTACHMENTS)
    body = await world.callback("err", 1)
    after = await world.delivered(task_id)

    assert set(body) == BASE_KEYS
    assert body["status"] == "error"
    assert body["task_id"] == task_id
    assert body["response"] == {"error": ERROR, "attachments": ATTACHMENTS}
    task = body["task"]
    assert task == without_callback_succeeded(after)
    assert task["status"] == "error"
    assert task["response"] == body["response"]
    assert "completed_at" not in task
    assert "customer_review_status" not in task  # never completed, so never reviewable
    assert task["audits"] == []


async def test_error_clears_unique_id_when_asked_and_it_can_be_reused(world: World) -> None:
    """clear_unique_id_on_error: the error body's task has no unique_id; the id is free again."""
    task_id = (await world.task("clear", unique_id="dup-1", clear_unique_id_on_error=True))[
        "task_id"
    ]
    await world.event("errored", task_id, error=ERROR, attachments=ATTACHMENTS)
    body = await world.callback("clear", 1)
    assert "unique_id" not in body["task"]
    assert "unique_id" not in await world.get(task_id)
    again = await world.task("clear-again", unique_id="dup-1")
    assert again["unique_id"] == "dup-1" and again["task_id"] != task_id


async def test_error_keeps_unique_id_by_default(world: World) -> None:
    """Without clear_unique_id_on_error the errored task keeps its unique_id (body and GET)."""
    task_id = (await world.task("keep", unique_id="kept-1"))["task_id"]
    await world.event("errored", task_id, error=ERROR, attachments=ATTACHMENTS)
    assert (await world.callback("keep", 1))["task"]["unique_id"] == "kept-1"
    status, _ = await world.api.call(
        "POST",
        "/v1/task/categorization",
        json={"project": "proj", "attachment": "a", "categories": ["x"], "unique_id": "kept-1"},
    )
    assert status == 409


# --- customer audits: accept and reject ----------------------------------------------------


async def test_accepted_audit_body_adds_the_review_fields(world: World) -> None:
    """Audit accepted: review fields in the body (comments and prior_responses []), one audit."""
    task_id = (await world.task("accept"))["task_id"]
    await world.event("completed", task_id, response=FIRST)
    await world.callback("accept", 1)
    await world.audit(task_id, accepted=True, comments=None)
    body = await world.callback("accept", 2)
    after = await world.delivered(task_id)

    assert set(body) == REVIEW_KEYS
    assert body["status"] == "completed"
    assert body["response"] == FIRST
    assert body["customer_review_status"] == "accepted"
    assert body["customer_review_comments"] == []
    assert body["prior_responses"] == []
    task = body["task"]
    assert task == without_callback_succeeded(after)
    assert task["customer_review_status"] == "accepted"
    [audit] = task["audits"]
    assert set(audit) == {"audited_by", "audited_at", "audit_result", "audit_source"}
    assert audit["audited_by"] == world.account.name
    assert_iso(audit["audited_at"])
    assert audit["audit_result"] == "accepted"
    assert audit["audit_source"] == "customer"


async def test_rejected_audit_body_appends_its_comments(world: World) -> None:
    """Audit rejected with comments: status "rejected", comments appended after earlier ones."""
    task_id = (await world.task("reject"))["task_id"]
    await world.event("completed", task_id, response=FIRST)
    await world.audit(task_id, accepted=True, comments="looks fine")
    await world.audit(task_id, accepted=False, comments="on second look, wrong category")
    _, accepted, rejected = await world.callbacks("reject", 3)

    assert accepted["customer_review_status"] == "accepted"
    assert accepted["customer_review_comments"] == ["looks fine"]
    assert set(rejected) == REVIEW_KEYS
    assert rejected["status"] == "completed"
    assert rejected["response"] == FIRST
    assert rejected["customer_review_status"] == "rejected"
    assert rejected["customer_review_comments"] == ["looks fine", "on second look, wrong category"]
    assert rejected["prior_responses"] == []
    task = rejected["task"]
    assert task["customer_review_status"] == "rejected"
    assert task["customer_review_comments"] == rejected["customer_review_comments"]
    assert [(a["audit_result"], a["audit_source"]) for a in task["audits"]] == [
        ("accepted", "customer"),
        ("rejected", "customer"),
    ]
    assert {a["audited_by"] for a in task["audits"]} == {world.account.name}


# --- fixes: by Scale (task.fixed) and by the customer (audit with a response) -------------


async def test_scale_fix_body_replaces_response_and_appends_prior(world: World) -> None:
    """Fixed by Scale: new response, prior_responses in order, audit_source "scale"."""
    task_id = (await world.task("scalefix"))["task_id"]
    await world.event("completed", task_id, response=FIRST)
    await world.event(
        "fixed",
        task_id,
        response=SECOND,
        audited_by="reviewer@scale.com",
        audit_time_secs=511,
        comments="wrong category",
        occurred_at="2016-06-23T10:01:02.352Z",
    )
    await world.event("fixed", task_id, response=THIRD, comments="again")
    _, first_fix, second_fix = await world.callbacks("scalefix", 3)
    after = await world.delivered(task_id)

    assert set(first_fix) == REVIEW_KEYS
    assert first_fix["status"] == "completed"
    assert first_fix["response"] == SECOND
    assert first_fix["prior_responses"] == [FIRST]
    assert first_fix["customer_review_status"] == "fixed"
    assert first_fix["customer_review_comments"] == ["wrong category"]
    [audit] = first_fix["task"]["audits"]
    assert audit == {
        "audited_by": "reviewer@scale.com",
        "audited_at": "2016-06-23T10:01:02.352Z",
        "audit_time_secs": 511,
        "audit_result": "fixed",
        "audit_source": "scale",
    }
    assert type(audit["audit_time_secs"]) is int  # as sent, like Scale's 511

    assert set(second_fix) == REVIEW_KEYS
    assert second_fix["response"] == THIRD
    assert second_fix["prior_responses"] == [FIRST, SECOND]
    assert second_fix["customer_review_comments"] == ["wrong category", "again"]
    task = second_fix["task"]
    assert task == without_callback_succeeded(after)
    assert task["response"] == THIRD
    assert task["prior_responses"] == [FIRST, SECOND]
    assert task["customer_review_status"] == "fixed"
    assert [(a["audit_result"], a["audit_source"]) for a in task["audits"]] == [
        ("fixed", "scale"),
        ("fixed", "scale"),
    ]
    assert "audit_time_secs" not in task["audits"][1]  # not given, not made up


async def test_customer_fix_body_replaces_response_and_appends_prior(world: World) -> None:
    """Fixed by the customer (accepted + response): same body as a Scale fix, source customer."""
    task_id = (await world.task("custfix"))["task_id"]
    await world.event("completed", task_id, response=FIRST)
    await world.audit(task_id, accepted=True, comments="it is small", response=SECOND)
    await world.audit(task_id, accepted=True, response=THIRD)
    _, first_fix, second_fix = await world.callbacks("custfix", 3)
    after = await world.delivered(task_id)

    assert set(first_fix) == REVIEW_KEYS
    assert first_fix["status"] == "completed"
    assert first_fix["response"] == SECOND
    assert first_fix["prior_responses"] == [FIRST]
    assert first_fix["customer_review_status"] == "fixed"
    assert first_fix["customer_review_comments"] == ["it is small"]

    assert set(second_fix) == REVIEW_KEYS
    assert second_fix["response"] == THIRD
    assert second_fix["prior_responses"] == [FIRST, SECOND]
    assert second_fix["customer_review_status"] == "fixed"
    assert second_fix["customer_review_comments"] == ["it is small"]  # no comment, none added
    task = second_fix["task"]
    assert task == without_callback_succeeded(after)
    assert task["response"] == THIRD
    assert task["prior_responses"] == [FIRST, SECOND]
    assert len(task["audits"]) == 2
    for audit in task["audits"]:
        assert set(audit) == {"audited_by", "audited_at", "audit_result", "audit_source"}
        assert audit["audited_by"] == world.account.name
        assert_iso(audit["audited_at"])
        assert (audit["audit_result"], audit["audit_source"]) == ("fixed", "customer")


async def test_scale_and_customer_fixes_share_one_history(world: World) -> None:
    """A Scale fix then a customer fix: one prior_responses list, comments and audits in order."""
    task_id = (await world.task("mixed"))["task_id"]
    await world.event("completed", task_id, response=FIRST)
    await world.event("fixed", task_id, response=SECOND, audited_by="qa@scale", comments="s")
    await world.audit(task_id, accepted=True, comments="c", response=THIRD)
    last = await world.callback("mixed", 3)
    assert last["prior_responses"] == [FIRST, SECOND]
    assert last["customer_review_comments"] == ["s", "c"]
    assert [a["audit_source"] for a in last["task"]["audits"]] == ["scale", "customer"]


# --- recall and redo ----------------------------------------------------------------------


async def test_recall_body_is_pending_and_each_redo_counts(world: World) -> None:
    """Recall: status "pending"; redo: times_redone 1 then 2, first completed_at kept."""
    task_id = (await world.task("redo"))["task_id"]
    first_at = "2016-06-23T09:10:02.798Z"
    await world.event("completed", task_id, response=FIRST, occurred_at=first_at)
    await world.event("recalled", task_id)
    await world.event("completed", task_id, response=SECOND)
    completion, recall, redo = await world.callbacks("redo", 3)

    assert completion["task"]["completed_at"] == first_at
    assert "times_redone" not in completion["task"]
    assert set(recall) == BASE_KEYS
    assert recall["status"] == "pending"
    assert recall["task_id"] == task_id
    assert recall["task"]["status"] == "pending"
    assert recall["response"] == recall["task"].get("response")
    assert "times_redone" not in recall["task"]  # counted when the redo completes

    assert set(redo) == BASE_KEYS
    assert redo["status"] == "completed"
    assert redo["response"] == SECOND
    task = redo["task"]
    assert task["status"] == "completed"
    assert task["times_redone"] == 1
    assert task["completed_at"] == first_at
    assert task["updated_at"] > task["completed_at"]
    assert task["customer_review_status"] == "pending"
    assert task == without_callback_succeeded(await world.delivered(task_id))

    await world.event("recalled", task_id)
    await world.event("completed", task_id, response=THIRD)
    *_, recall2, redo2 = await world.callbacks("redo", 5)
    assert recall2["status"] == "pending"
    assert recall2["task"]["times_redone"] == 1
    assert redo2["task"]["times_redone"] == 2
    assert redo2["task"]["completed_at"] == first_at
    assert redo2["task"]["updated_at"] > task["updated_at"]
    assert redo2["response"] == THIRD


# --- Task object fields ----------------------------------------------------------------------


async def test_project_param_version_follows_the_projects_params(world: World) -> None:
    """project_param_version: 0 with params, 1 after setParams (for new tasks), null without."""
    await world.api.project("versioned", params={"instruction": "From the project."})
    old = await world.task("v0", project="versioned")
    status, body = await world.api.call(
        "POST", "/v1/projects/versioned/setParams", json={"instruction": "Newer."}
    )
    assert status == 200, body
    new = await world.task("v1", project="versioned")
    plain = await world.task("vnull")
    assert (old["project_param_version"], new["project_param_version"]) == (0, 1)
    assert plain["project_param_version"] is None

    for created, path, version in ((old, "v0", 0), (new, "v1", 1), (plain, "vnull", None)):
        await world.event("completed", created["task_id"], response=FIRST)
        task = (await world.callback(path, 1))["task"]
        assert "project_param_version" in task
        assert task["project_param_version"] == version, path
        assert (await world.get(created["task_id"]))["project_param_version"] == version


async def test_callback_succeeded_is_set_after_delivery_and_never_in_a_body(
    live: Api, account: NewAccount, sink: tuple[Sink, str], ingest: Ingest, run_dispatcher: Start
) -> None:
    """callback_succeeded: absent until delivered, then true on GET; never in a callback body."""
    await live.project()
    receiver, url = sink
    world = World(live, account, receiver, url, ingest)
    task_id = (await world.task("succ"))["task_id"]
    await world.event("completed", task_id, response=FIRST)
    assert "callback_succeeded" not in await world.get(task_id)  # no dispatcher yet

    await run_dispatcher()
    first = await world.callback("succ", 1)
    assert "callback_succeeded" not in first["task"]
    assert (await world.delivered(task_id))["callback_succeeded"] is True

    # The next callback's body does not carry the earlier delivery's true either.
    await world.audit(task_id, accepted=True)
    second = await world.callback("succ", 2)
    assert "callback_succeeded" not in second["task"]
    assert (await world.delivered(task_id))["callback_succeeded"] is True


async def test_seed_000_fields_across_a_whole_life(world: World) -> None:
    """Seed 000 fields through completion, fix, recall, redo and accept, on body and GET."""
    task_id = (await world.task("life"))["task_id"]
    pending = await world.get(task_id)
    assert pending["audits"] == [] and pending["project_param_version"] is None
    for absent in ("customer_review_status", "times_redone", "completed_at", "callback_succeeded"):
        assert absent not in pending, absent

    await world.event("completed", task_id, response=FIRST)
    await world.event("fixed", task_id, response=SECOND, audited_by="qa@scale")
    await world.event("recalled", task_id)
    await world.event("completed", task_id, response=THIRD)
    await world.audit(task_id, accepted=True)
    bodies = await world.callbacks("life", 5)
    final = await world.delivered(task_id)

    assert [b["status"] for b in bodies] == [
        "completed",
        "completed",
        "pending",
        "completed",
        "completed",
    ]
    assert [b["task"]["customer_review_status"] for b in bodies] == [
        "pending",
        "fixed",
        "fixed",
        "pending",
        "accepted",
    ]
    assert [b["task"].get("times_redone") for b in bodies] == [None, None, None, 1, 1]
    assert [len(b["task"]["audits"]) for b in bodies] == [0, 1, 1, 1, 2]
    assert [set(b) == REVIEW_KEYS for b in bodies] == [False, True, False, False, True]
    assert bodies[1]["customer_review_comments"] == []  # a fix without comments adds none
    assert len({r.headers["webhook-id"] for r in world.sink.to("/ok/life")}) == 5
    assert bodies[-1]["prior_responses"] == [FIRST]  # fixes append; a redo is not a fix
    assert bodies[-1]["response"] == THIRD
    assert final["callback_succeeded"] is True
    assert bodies[-1]["task"] == without_callback_succeeded(final)


# --- customer fix validation --------------------------------------------------------------


async def test_fix_with_accepted_false_is_400_and_writes_nothing(
    world: World, pool: asyncpg.Pool
) -> None:
    """{"accepted": false, "response": ...} is a 400; the task and its deliveries are unchanged."""
    task_id = (await world.task("nofix"))["task_id"]
    await world.event("completed", task_id, response=FIRST)
    await world.delivered(task_id)
    before = await task_state(pool, task_id)
    status, body = await world.api.call(
        "POST", f"/v1/task/{task_id}/audit", json={"accepted": False, "response": SECOND}
    )
    assert status == 400, body
    assert set(body) == {"status_code", "error"} and body["status_code"] == 400
    assert "accepted" in body["error"]
    assert await task_state(pool, task_id) == before
    await asyncio.sleep(0.2)  # fixed: time for a callback that must not come to show
    assert len(world.sink.to("/ok/nofix")) == 1


async def test_fix_on_a_pending_task_is_400_and_writes_nothing(
    world: World, pool: asyncpg.Pool
) -> None:
    """A fix (or any audit) on a pending task is a 400; nothing is written or sent."""
    task_id = (await world.task("early"))["task_id"]
    before = await task_state(pool, task_id)
    status, body = await world.api.call(
        "POST", f"/v1/task/{task_id}/audit", json={"accepted": True, "response": SECOND}
    )
    assert status == 400, body
    assert set(body) == {"status_code", "error"} and body["status_code"] == 400
    assert "pending" in body["error"]
    assert await task_state(pool, task_id) == before
    await asyncio.sleep(0.2)  # fixed: time for a callback that must not come to show
    assert world.sink.to("/ok/early") == []
