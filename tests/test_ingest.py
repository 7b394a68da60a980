"""Event ingest and the deliveries it enqueues.

`POST /v1/events` is signed with Standard Webhooks headers under the ingest secret; each
event moves its task as the transition table says and every callback trigger enqueues a
delivery in the same transaction. No dispatcher runs here: deliveries are read from the
`deliveries` table.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook

from taskhook.core.accounts import NewAccount
from tests.conftest import INGEST_SECRET, Api

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

CB = "https://hooks.example.com/scale"
DEFAULT_CB = "https://default.example.com/cb"
WRONG_SECRET = "whsec_" + base64.b64encode(b"not-the-ingest-secret-of-this-srv").decode()
RESPONSE = {"category": "x"}
_ids = itertools.count(1)


# --- helpers ------------------------------------------------------------------------------


def signed_headers(
    body: str, *, secret: str = INGEST_SECRET, at: datetime | None = None, msg_id: str = ""
) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`, signed with `secret` at time `at`."""
    at = at or datetime.now(UTC)
    msg_id = msg_id or f"msg_test_{next(_ids)}"
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
        "Content-Type": "application/json",
    }


class Ingest:
    """Signed (or deliberately unsigned) raw POSTs to /v1/events: (status, parsed JSON)."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http, self.url = http, base_url + "/v1/events"

    async def raw(self, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        async with self.http.post(self.url, data=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def send(
        self, payload: Any, *, secret: str = INGEST_SECRET, at: datetime | None = None
    ) -> tuple[int, Any]:
        """JSON-encode `payload` (a str is sent as it is), sign it and post it."""
        body = payload if isinstance(payload, str) else json.dumps(payload)
        return await self.raw(body.encode(), signed_headers(body, secret=secret, at=at))

    async def ok(self, payload: Any) -> list[dict[str, Any]]:
        status, body = await self.send(payload)
        assert status == 200, body
        assert set(body) == {"results"}, body
        return body["results"]  # type: ignore[no-any-return]


@pytest.fixture
def ingest(http: aiohttp.ClientSession, base_url: str) -> Ingest:
    return Ingest(http, base_url)


def ev(type_: str, task_id: str, **fields: Any) -> dict[str, Any]:
    """One event with a fresh event_id; completed/fixed get a response unless given."""
    event = {"event_id": f"evt_{next(_ids)}", "type": f"task.{type_}", "task_id": task_id}
    if type_ in ("completed", "fixed"):
        event["response"] = RESPONSE
    if type_ == "errored":
        event["error"] = "The attachment could not be loaded."
    return {**event, **fields}


async def new_task(api: Api, **fields: Any) -> dict[str, Any]:
    """A pending live task (the project is made on first use) with a callback_url."""
    status, _ = await api.call("GET", "/v1/projects/proj")
    if status != 200:
        await api.project()
    return await api.task(**{"callback_url": CB, **fields})


async def get_task(api: Api, task_id: str) -> dict[str, Any]:
    status, body = await api.call("GET", f"/v1/task/{task_id}")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def deliveries(pool: asyncpg.Pool, task_id: str | None = None) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT d.*, p.payload FROM deliveries d JOIN delivery_payloads p "
        "ON p.delivery_id = d.id WHERE $1::text IS NULL OR task_id = $1 ORDER BY id",
        task_id,
    )
    # The payload is stored as the exact JSON text sent; tests read it as JSON.
    return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]


async def task_row(pool: asyncpg.Pool, task_id: str) -> str:
    return str(await pool.fetchval("SELECT to_jsonb(t)::text FROM tasks t WHERE id = $1", task_id))


async def snapshot(pool: asyncpg.Pool) -> dict[str, list[str]]:
    """Every task, ingested event and delivery, as JSON text: equal means nothing changed."""
    tables = {}
    for table, order in (("tasks", "id"), ("ingested_events", "event_id"), ("deliveries", "id")):
        rows = await pool.fetch(f"SELECT to_jsonb(t)::text AS j FROM {table} t ORDER BY {order}")
        tables[table] = [r["j"] for r in rows]
    return tables


def assert_error(status: int, body: Any, expected: int, *words: str) -> str:
    """Exactly {"status_code", "error"} with the expected code, naming every word given."""
    assert status == expected, body
    assert isinstance(body, dict) and set(body) == {"status_code", "error"}, body
    assert body["status_code"] == expected
    assert isinstance(body["error"], str) and body["error"], body
    for word in words:
        assert word in body["error"], f"{word!r} not named in {body['error']!r}"
    return body["error"]  # type: ignore[no-any-return]


def without_callback_succeeded(task: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in task.items() if k != "callback_succeeded"}


async def fail_on(pool: asyncpg.Pool, table: str, when: str, column: str, value: str) -> None:
    """Make the database refuse a write: a trigger that raises when NEW.column = value."""
    await pool.execute(
        f"""
        CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.{column} = '{value}' THEN RAISE EXCEPTION 'injected failure'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER test_fail BEFORE {when} ON {table}
            FOR EACH ROW EXECUTE FUNCTION test_fail();
        """
    )


async def stop_failing(pool: asyncpg.Pool, table: str) -> None:
    await pool.execute(f"DROP TRIGGER test_fail ON {table}; DROP FUNCTION test_fail();")


# --- signature: anything but a valid Standard Webhooks signature is 401 --------------------


@pytest.fixture
async def pending(live: Api) -> dict[str, Any]:
    return await new_task(live)


async def assert_refused(
    ingest: Ingest, pool: asyncpg.Pool, body: bytes, headers: dict[str, str]
) -> None:
    before = await snapshot(pool)
    status, reply = await ingest.raw(body, headers)
    assert_error(status, reply, 401, "signature")
    assert await snapshot(pool) == before


async def test_no_signature_headers_is_401(
    ingest: Ingest, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """No webhook-id/timestamp/signature headers: 401 and nothing written."""
    body = json.dumps(ev("completed", pending["task_id"])).encode()
    await assert_refused(ingest, pool, body, {"Content-Type": "application/json"})


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
async def test_one_missing_header_is_401(
    ingest: Ingest, pool: asyncpg.Pool, pending: dict[str, Any], missing: str
) -> None:
    """Each of the three signature headers is required: without one, 401."""
    body = json.dumps(ev("completed", pending["task_id"]))
    headers = signed_headers(body)
    del headers[missing]
    await assert_refused(ingest, pool, body.encode(), headers)


async def test_wrong_secret_is_401(
    ingest: Ingest, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """A signature made with another secret is 401 and nothing written."""
    body = json.dumps(ev("completed", pending["task_id"]))
    await assert_refused(ingest, pool, body.encode(), signed_headers(body, secret=WRONG_SECRET))


@pytest.mark.parametrize("offset", [-301, -3600, 301, 3600], ids=["old", "older", "new", "newer"])
async def test_timestamp_outside_5_minutes_is_401(
    ingest: Ingest, pool: asyncpg.Pool, pending: dict[str, Any], offset: int
) -> None:
    """A correctly signed timestamp more than 5 minutes in the past or future is 401."""
    body = json.dumps(ev("completed", pending["task_id"]))
    at = datetime.now(UTC) + timedelta(seconds=offset)
    await assert_refused(ingest, pool, body.encode(), signed_headers(body, at=at))


@pytest.mark.parametrize("offset", [-240, 240])
async def test_timestamp_within_5_minutes_is_accepted(
    ingest: Ingest, pending: dict[str, Any], offset: int
) -> None:
    """The tolerance is 5 minutes either way: 4 minutes off is still accepted."""
    event = ev("started", pending["task_id"])
    status, body = await ingest.send(event, at=datetime.now(UTC) + timedelta(seconds=offset))
    assert status == 200, body
    assert body["results"] == [{"event_id": event["event_id"], "status": "applied"}]


async def test_body_changed_after_signing_is_401(
    ingest: Ingest, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """The signature covers the raw body: a body changed after signing is 401."""
    signed = json.dumps(ev("completed", pending["task_id"], response={"category": "x"}))
    sent = signed.replace('"x"', '"y"')
    assert sent != signed
    await assert_refused(ingest, pool, sent.encode(), signed_headers(signed))
    # Even a change that keeps the JSON equal (whitespace) breaks the signature.
    await assert_refused(ingest, pool, (signed + " ").encode(), signed_headers(signed))


@pytest.mark.parametrize(
    "signature",
    ["garbage", "v1,!!!", "v1,", "v1,abc", "v1,a,b", "v2,AAAA", ",", " ", "v1"],
)
async def test_malformed_signature_header_is_401(
    ingest: Ingest, pool: asyncpg.Pool, pending: dict[str, Any], signature: str
) -> None:
    """A malformed webhook-signature header is a 401 (never a 500)."""
    body = json.dumps(ev("completed", pending["task_id"]))
    headers = {**signed_headers(body), "webhook-signature": signature}
    await assert_refused(ingest, pool, body.encode(), headers)


@pytest.mark.parametrize("timestamp", ["abc", "", "nan", "inf", "1e400", "-1"])
async def test_malformed_timestamp_header_is_401(
    ingest: Ingest, pool: asyncpg.Pool, pending: dict[str, Any], timestamp: str
) -> None:
    """A webhook-timestamp that is not a time within tolerance is a 401 (never a 500)."""
    body = json.dumps(ev("completed", pending["task_id"]))
    headers = {**signed_headers(body), "webhook-timestamp": timestamp}
    await assert_refused(ingest, pool, body.encode(), headers)


async def test_non_utf8_body_is_400_when_signed_and_401_when_not(
    ingest: Ingest, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """The signature covers the raw bytes, so a body that is not UTF-8 can be signed: the
    sender is then who it claims and its body is malformed (400, naming UTF-8). Unsigned
    or signed wrongly, it is a 401 like any other. Nothing is written either way."""
    raw = json.dumps(ev("completed", pending["task_id"])).encode()[:-1] + b', "x": "\xff\xfe"}'
    msg_id, ts = "msg_non_utf8", str(int(datetime.now(UTC).timestamp()))
    key = base64.b64decode(INGEST_SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + raw, hashlib.sha256).digest()
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }
    before = await snapshot(pool)
    status, reply = await ingest.raw(raw, headers)
    assert_error(status, reply, 400, "UTF-8")
    assert await snapshot(pool) == before
    wrong = hmac.new(key, f"{msg_id}.{ts}.".encode() + raw + b" ", hashlib.sha256).digest()
    headers["webhook-signature"] = "v1," + base64.b64encode(wrong).decode()
    await assert_refused(ingest, pool, raw, headers)


async def test_api_key_is_not_a_signature(
    ingest: Ingest, pool: asyncpg.Pool, pending: dict[str, Any], account: NewAccount
) -> None:
    """An API key (Bearer or Basic live key) does not replace the signature: 401."""
    body = json.dumps(ev("completed", pending["task_id"])).encode()
    basic = base64.b64encode(f"{account.live_key}:".encode()).decode()
    for auth in (f"Bearer {account.live_key}", f"Basic {basic}"):
        headers = {"Authorization": auth, "Content-Type": "application/json"}
        await assert_refused(ingest, pool, body, headers)


# --- body shape and results ----------------------------------------------------------------


async def test_single_event_object_is_accepted(
    ingest: Ingest, live: Api, pending: dict[str, Any]
) -> None:
    """One event object (not in an array) is a body of one event."""
    event = ev("completed", pending["task_id"])
    assert await ingest.ok(event) == [{"event_id": event["event_id"], "status": "applied"}]
    assert (await get_task(live, pending["task_id"]))["status"] == "completed"


async def test_results_in_input_order(ingest: Ingest, live: Api) -> None:
    """An array gets one result per event, in input order: applied, duplicate, rejected."""
    a, b, c = [await new_task(live) for _ in range(3)]
    events = [
        ev("completed", c["task_id"]),
        ev("recalled", a["task_id"]),  # a is pending: rejected
        ev("started", b["task_id"]),
        ev("completed", "0" * 24),  # unknown task: rejected
        ev("errored", a["task_id"]),
    ]
    events.append(dict(events[0]))  # the first again: duplicate
    results = await ingest.ok(events)
    assert [r["event_id"] for r in results] == [e["event_id"] for e in events]
    assert [r["status"] for r in results] == [
        "applied",
        "rejected",
        "applied",
        "rejected",
        "applied",
        "duplicate",
    ]
    for r in results:
        assert set(r) == (
            {"event_id", "status", "error"} if r["status"] == "rejected" else {"event_id", "status"}
        )
        if r["status"] == "rejected":
            assert isinstance(r["error"], str) and r["error"]


# --- transitions -----------------------------------------------------------


async def test_started_marks_work_started_without_callback(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """task.started: pending stays pending with work_started true; no callback."""
    assert pending["work_started"] is False
    await ingest.ok(ev("started", pending["task_id"]))
    task = await get_task(live, pending["task_id"])
    assert task["status"] == "pending"
    assert task["work_started"] is True
    assert await deliveries(pool) == []


async def test_started_task_can_no_longer_be_canceled(
    ingest: Ingest, live: Api, pending: dict[str, Any]
) -> None:
    """Once work has started, cancel is a 400 (only queued tasks can be canceled)."""
    queued = await new_task(live)
    await ingest.ok(ev("started", pending["task_id"]))
    status, body = await live.call("POST", f"/v1/task/{pending['task_id']}/cancel")
    assert_error(status, body, 400)
    assert (await get_task(live, pending["task_id"]))["status"] == "pending"
    status, body = await live.call("POST", f"/v1/task/{queued['task_id']}/cancel")
    assert status == 200 and body["status"] == "canceled", body


async def test_completed_sets_response_and_enqueues_callback(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """task.completed: completed, response, completed_at = occurred_at, one "completed" delivery."""
    response = {"category": "y", "notes": ["a", 1, None]}
    event = ev(
        "completed",
        pending["task_id"],
        response=response,
        occurred_at="2024-05-01T12:34:56.789+02:00",
    )
    await ingest.ok([event])
    task = await get_task(live, pending["task_id"])
    assert task["status"] == "completed"
    assert task["response"] == response
    assert task["completed_at"] == "2024-05-01T10:34:56.789Z"
    assert task["customer_review_status"] == "pending"
    [d] = await deliveries(pool)
    assert d["trigger"] == "completed"
    assert d["task_id"] == pending["task_id"]
    assert d["state"] == "pending"
    assert d["payload"]["status"] == "completed"
    assert d["payload"]["response"] == response


async def test_completed_at_defaults_to_time_of_receipt(
    ingest: Ingest, live: Api, pending: dict[str, Any]
) -> None:
    """Without occurred_at, completed_at is the time the event was received."""
    before = datetime.now(UTC) - timedelta(seconds=1)
    await ingest.ok(ev("completed", pending["task_id"]))
    after = datetime.now(UTC) + timedelta(seconds=1)
    completed_at = datetime.fromisoformat(
        (await get_task(live, pending["task_id"]))["completed_at"]
    )
    assert before <= completed_at <= after


def _ahead(*, minutes: float, zone: timezone = UTC) -> str:
    """ISO 8601 of the server's clock plus `minutes`, written in `zone`."""
    return (datetime.now(UTC) + timedelta(minutes=minutes)).astimezone(zone).isoformat()


async def test_occurred_at_a_little_ahead_is_the_clock_skew_allowed(
    ingest: Ingest, live: Api, pending: dict[str, Any]
) -> None:
    """A sender's clock may run ahead of the server's by up to the signature's tolerance
    (5 minutes): such an occurred_at is applied as given."""
    at = _ahead(minutes=4)
    await ingest.ok(ev("completed", pending["task_id"], occurred_at=at))
    task = await get_task(live, pending["task_id"])
    assert task["status"] == "completed"
    assert abs(datetime.fromisoformat(task["completed_at"]) - datetime.fromisoformat(at)) < (
        timedelta(milliseconds=1)
    )


async def test_late_event_moves_updated_at_forward(
    ingest: Ingest, live: Api, pending: dict[str, Any]
) -> None:
    """updated_at is the time of the change, so late events show up to updated_after polls."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    await ingest.ok(ev("completed", pending["task_id"], occurred_at="2020-01-01T00:00:00Z"))
    task = await get_task(live, pending["task_id"])
    assert task["completed_at"] == "2020-01-01T00:00:00.000Z"
    assert datetime.fromisoformat(task["updated_at"]) >= since
    assert task["updated_at"] >= task["created_at"]
    status, page = await live.call("GET", "/v1/tasks", params={"updated_after": since.isoformat()})
    assert status == 200, page
    assert [t["task_id"] for t in page["docs"]] == [pending["task_id"]]


async def test_errored_sets_error_response_and_enqueues_callback(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """task.errored: status error, response {"error", "attachments"}, an "error" delivery."""
    attachments = [{"statusCode": 403, "url": "https://img.example.com/1.png"}]
    await ingest.ok(
        ev("errored", pending["task_id"], error="Forbidden attachment", attachments=attachments)
    )
    task = await get_task(live, pending["task_id"])
    assert task["status"] == "error"
    assert task["response"] == {"error": "Forbidden attachment", "attachments": attachments}
    [d] = await deliveries(pool)
    assert d["trigger"] == "error"
    assert d["payload"]["status"] == "error"
    assert d["payload"]["response"] == task["response"]


async def test_errored_without_attachments_has_empty_list(
    ingest: Ingest, live: Api, pending: dict[str, Any]
) -> None:
    """task.errored without attachments: response.attachments is []."""
    await ingest.ok(ev("errored", pending["task_id"], error="boom"))
    task = await get_task(live, pending["task_id"])
    assert task["response"] == {"error": "boom", "attachments": []}


async def test_errored_clears_unique_id_when_asked(ingest: Ingest, live: Api) -> None:
    """clear_unique_id_on_error: an errored task loses its unique_id, which is free again."""
    task = await new_task(live, unique_id="u-1", clear_unique_id_on_error=True)
    assert task["unique_id"] == "u-1"
    await ingest.ok(ev("errored", task["task_id"]))
    errored = await get_task(live, task["task_id"])
    assert errored["status"] == "error"
    assert "unique_id" not in errored
    again = await live.task(callback_url=CB, unique_id="u-1")
    assert again["unique_id"] == "u-1" and again["task_id"] != task["task_id"]


async def test_errored_keeps_unique_id_by_default(ingest: Ingest, live: Api) -> None:
    """Without clear_unique_id_on_error, the errored task keeps its unique_id (409 on reuse)."""
    task = await new_task(live, unique_id="u-2")
    await ingest.ok(ev("errored", task["task_id"]))
    errored = await get_task(live, task["task_id"])
    assert errored["status"] == "error"
    assert errored["unique_id"] == "u-2"
    status, body = await live.call(
        "POST",
        "/v1/task/categorization",
        json={"project": "proj", "attachment": "a", "categories": ["x"], "unique_id": "u-2"},
    )
    assert_error(status, body, 409, "u-2", task["task_id"])


async def test_recalled_returns_task_to_pending_with_callback(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """task.recalled: completed -> pending; a "recalled" delivery whose status is pending."""
    await ingest.ok(ev("completed", pending["task_id"]))
    await ingest.ok(ev("recalled", pending["task_id"]))
    task = await get_task(live, pending["task_id"])
    assert task["status"] == "pending"
    first, second = await deliveries(pool)
    assert (first["trigger"], second["trigger"]) == ("completed", "recalled")
    assert second["payload"]["status"] == "pending"
    assert second["payload"]["task"]["status"] == "pending"


async def test_recalled_task_completes_again_as_a_redo(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """After a recall the task takes a new completion (times_redone counts it)."""
    await ingest.ok(ev("completed", pending["task_id"]))
    await ingest.ok(ev("recalled", pending["task_id"]))
    await ingest.ok(ev("completed", pending["task_id"], response={"category": "y"}))
    task = await get_task(live, pending["task_id"])
    assert task["status"] == "completed"
    assert task["response"] == {"category": "y"}
    assert task["times_redone"] == 1
    assert [d["trigger"] for d in await deliveries(pool)] == ["completed", "recalled", "completed"]


async def test_fixed_replaces_response_and_records_audit(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """task.fixed: response replaced, prior_responses, review "fixed", audit, "fixed" delivery."""
    await ingest.ok(ev("completed", pending["task_id"], response={"category": "x"}))
    fixed = ev(
        "fixed",
        pending["task_id"],
        response={"category": "y"},
        audited_by="reviewer@scale",
        audit_time_secs=12.5,
        comments="wrong category",
        occurred_at="2024-06-01T00:00:00Z",
    )
    await ingest.ok([fixed])
    task = await get_task(live, pending["task_id"])
    assert task["status"] == "completed"
    assert task["response"] == {"category": "y"}
    assert task["prior_responses"] == [{"category": "x"}]
    assert task["customer_review_status"] == "fixed"
    assert task["customer_review_comments"] == ["wrong category"]
    [audit] = task["audits"]
    assert audit["audit_result"] == "fixed"
    assert audit["audit_source"] == "scale"
    assert audit["audited_by"] == "reviewer@scale"
    assert audit["audited_at"] == "2024-06-01T00:00:00.000Z"

    # A second fix appends again.
    await ingest.ok(ev("fixed", pending["task_id"], response={"category": "z"}, comments="again"))
    task = await get_task(live, pending["task_id"])
    assert task["prior_responses"] == [{"category": "x"}, {"category": "y"}]
    assert task["customer_review_comments"] == ["wrong category", "again"]
    assert [a["audit_result"] for a in task["audits"]] == ["fixed", "fixed"]

    _, first_fix, second_fix = await deliveries(pool)
    assert first_fix["trigger"] == "fixed"
    payload = second_fix["payload"]
    assert payload["customer_review_status"] == "fixed"
    assert payload["customer_review_comments"] == ["wrong category", "again"]
    assert payload["prior_responses"] == [{"category": "x"}, {"category": "y"}]
    assert payload["response"] == {"category": "z"}
    assert payload["status"] == "completed"


# --- rejected events -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "event_type"),
    [
        ([], "recalled"),
        ([], "fixed"),
        (["completed"], "completed"),
        (["completed"], "started"),
        (["completed"], "errored"),
        (["errored"], "completed"),
        (["errored"], "recalled"),
        (["errored"], "fixed"),
        (["completed", "recalled"], "fixed"),
    ],
)
async def test_wrong_state_is_rejected(
    ingest: Ingest,
    live: Api,
    pool: asyncpg.Pool,
    pending: dict[str, Any],
    setup: list[str],
    event_type: str,
) -> None:
    """An event whose task is in the wrong state is rejected with a reason; nothing changes."""
    for step in setup:
        await ingest.ok(ev(step, pending["task_id"]))
    before = await snapshot(pool)
    event = ev(event_type, pending["task_id"])
    [result] = await ingest.ok([event])
    assert result["status"] == "rejected"
    assert f"task.{event_type}" in result["error"]
    assert await snapshot(pool) == before


async def test_canceled_task_rejects_every_event(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """A canceled task takes no event: each is rejected naming its state."""
    status, _ = await live.call("POST", f"/v1/task/{pending['task_id']}/cancel")
    assert status == 200
    before = await snapshot(pool)
    types = ["started", "completed", "errored", "recalled", "fixed"]
    results = await ingest.ok([ev(t, pending["task_id"]) for t in types])
    assert [r["status"] for r in results] == ["rejected"] * 5
    assert all("canceled" in r["error"] for r in results)
    assert await snapshot(pool) == before


async def test_rejection_does_not_stop_the_others(
    ingest: Ingest, live: Api, pool: asyncpg.Pool
) -> None:
    """Rejected events (unknown task, wrong state) do not stop the rest of the request."""
    a, b = await new_task(live), await new_task(live)
    unknown = "f" * 24
    results = await ingest.ok(
        [
            ev("completed", unknown),
            ev("completed", a["task_id"]),
            ev("fixed", b["task_id"]),
            ev("errored", b["task_id"]),
        ]
    )
    assert [r["status"] for r in results] == ["rejected", "applied", "rejected", "applied"]
    assert unknown in results[0]["error"] and "not found" in results[0]["error"]
    assert "pending" in results[2]["error"]
    assert (await get_task(live, a["task_id"]))["status"] == "completed"
    assert (await get_task(live, b["task_id"]))["status"] == "error"
    assert [d["trigger"] for d in await deliveries(pool)] == ["completed", "error"]
    kept = {r["event_id"] for r in await pool.fetch("SELECT event_id FROM ingested_events")}
    assert kept == {results[1]["event_id"], results[3]["event_id"]}


async def test_rejected_event_id_is_not_kept(
    ingest: Ingest, live: Api, pending: dict[str, Any]
) -> None:
    """A rejected event_id is forgotten: the same event applies once the task is ready."""
    fixed = ev("fixed", pending["task_id"], response={"category": "y"})
    assert (await ingest.ok(fixed))[0]["status"] == "rejected"
    await ingest.ok(ev("completed", pending["task_id"]))
    assert (await ingest.ok(fixed))[0] == {"event_id": fixed["event_id"], "status": "applied"}
    assert (await get_task(live, pending["task_id"]))["customer_review_status"] == "fixed"
    # Within one request too: rejected first, applied later in the same array.
    other = await new_task(live)
    early = ev("recalled", other["task_id"])
    results = await ingest.ok([early, ev("completed", other["task_id"]), early])
    assert [r["status"] for r in results] == ["rejected", "applied", "applied"]
    assert (await get_task(live, other["task_id"]))["status"] == "pending"


async def test_unknown_task_event_id_is_not_kept(
    ingest: Ingest, pool: asyncpg.Pool, live: Api
) -> None:
    """An event for an unknown task is rejected and leaves no ingested_events row."""
    event = ev("completed", "a" * 24)
    [result] = await ingest.ok(event)
    assert result["status"] == "rejected"
    assert await pool.fetchval("SELECT count(*) FROM ingested_events") == 0


# --- duplicates ----------------------------------------------------------------------------


async def test_repeated_event_id_in_later_request_is_duplicate(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """A repeated event_id is acknowledged as duplicate and changes nothing."""
    event = ev("completed", pending["task_id"])
    await ingest.ok(event)
    before_row = await task_row(pool, pending["task_id"])
    before = await snapshot(pool)
    # The same event again, and another type under the same id: both changes nothing.
    assert await ingest.ok(event) == [{"event_id": event["event_id"], "status": "duplicate"}]
    other = ev("fixed", pending["task_id"], event_id=event["event_id"], response={"z": 1})
    assert await ingest.ok(other) == [{"event_id": event["event_id"], "status": "duplicate"}]
    assert await task_row(pool, pending["task_id"]) == before_row
    assert len(await deliveries(pool)) == 1
    assert await snapshot(pool) == before


async def test_repeated_event_id_within_one_request_is_duplicate(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """The same event_id twice in one request: applied once, then duplicate."""
    first = ev("completed", pending["task_id"], response={"category": "x"})
    second = ev("fixed", pending["task_id"], event_id=first["event_id"])
    results = await ingest.ok([first, second, first])
    assert [r["status"] for r in results] == ["applied", "duplicate", "duplicate"]
    task = await get_task(live, pending["task_id"])
    assert task["customer_review_status"] == "pending"
    assert "prior_responses" not in task
    assert len(await deliveries(pool)) == 1


# --- 400: invalid bodies and events, nothing applied ---------------------------------------


async def test_body_not_json_is_400(ingest: Ingest, pool: asyncpg.Pool) -> None:
    """A signed body that is not JSON is a 400."""
    for body in ('{"event_id": ', "not json", "", "NaN"):
        before = await snapshot(pool)
        status, reply = await ingest.send(body)
        assert_error(status, reply, 400)
        assert await snapshot(pool) == before


async def test_empty_array_is_400(ingest: Ingest) -> None:
    """An empty array has no events: 400."""
    status, body = await ingest.send([])
    assert_error(status, body, 400, "empty")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda e: e.pop("event_id"), ["event 1", "event_id"]),
        (lambda e: e.update(type="task.exploded"), ["event 1", "type"]),
        (lambda e: e.pop("task_id"), ["event 1", "task_id"]),
        (lambda e: e.pop("response"), ["event 1", "response"]),
        (lambda e: e.update(response=["not", "an", "object"]), ["event 1", "response"]),
        (lambda e: e.update(event_id="e" * 201), ["event 1", "event_id"]),
        (lambda e: e.update(event_id=""), ["event 1", "event_id"]),
        (lambda e: e.update(event_id=7), ["event 1", "event_id"]),
        (lambda e: e.update(colour="blue"), ["event 1", "colour"]),
        (lambda e: e.update(occurred_at="yesterday"), ["event 1", "occurred_at"]),
        (lambda e: e.update(occurred_at="2024-13-45T00:00:00Z"), ["event 1", "occurred_at"]),
        (lambda e: e.update(occurred_at=_ahead(minutes=6)), ["event 1", "occurred_at", "future"]),
        # No offset means UTC: the same time written naively is as far ahead.
        (
            lambda e: e.update(occurred_at=_ahead(minutes=6).removesuffix("+00:00")),
            ["event 1", "occurred_at", "future"],
        ),
        # An offset that puts the time ahead once moved to UTC.
        (
            lambda e: e.update(occurred_at=_ahead(minutes=6, zone=timezone(timedelta(hours=-3)))),
            ["event 1", "occurred_at", "future"],
        ),
    ],
    ids=[
        "missing-event_id",
        "unknown-type",
        "missing-task_id",
        "completed-without-response",
        "response-not-object",
        "event_id-over-200",
        "event_id-empty",
        "event_id-not-string",
        "unknown-field",
        "bad-occurred_at",
        "impossible-occurred_at",
        "occurred_at-in-the-future",
        "occurred_at-in-the-future-naive",
        "occurred_at-in-the-future-offset",
    ],
)
async def test_invalid_event_is_400_and_nothing_applied(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, change: Any, words: list[str]
) -> None:
    """An event breaking the table is a 400 naming event and field; no event is applied."""
    a, b = await new_task(live), await new_task(live)
    bad = ev("completed", b["task_id"], event_id="evt-bad")
    change(bad)
    before = await snapshot(pool)
    status, body = await ingest.send([ev("completed", a["task_id"]), bad])
    message = assert_error(status, body, 400, *words)
    if isinstance(bad.get("event_id"), str) and bad["event_id"]:
        assert bad["event_id"] in message
    assert await snapshot(pool) == before


async def test_errored_without_error_is_400(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """task.errored needs 'error': without it (or empty) the request is a 400."""
    other = await new_task(live)
    for missing in ({}, {"error": ""}, {"error": None}):
        bad = {**ev("errored", pending["task_id"], event_id="evt-err"), **missing}
        if not missing:
            del bad["error"]
        before = await snapshot(pool)
        status, body = await ingest.send([ev("started", other["task_id"]), bad])
        assert_error(status, body, 400, "event 1", "evt-err", "error")
        assert await snapshot(pool) == before


async def test_fixed_without_response_is_400(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """task.fixed needs 'response' like task.completed."""
    await ingest.ok(ev("completed", pending["task_id"]))
    bad = ev("fixed", pending["task_id"], event_id="evt-fix")
    del bad["response"]
    before = await snapshot(pool)
    status, body = await ingest.send(bad)
    assert_error(status, body, 400, "event 0", "evt-fix", "response")
    assert await snapshot(pool) == before


@pytest.mark.parametrize("item", ["a string", 42, None, ["nested"], True])
async def test_non_object_event_is_400(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any], item: Any
) -> None:
    """Every event must be a JSON object: anything else is a 400 naming its index."""
    before = await snapshot(pool)
    status, body = await ingest.send([ev("completed", pending["task_id"]), item])
    assert_error(status, body, 400, "event 1", "object")
    assert await snapshot(pool) == before


async def test_invalid_last_event_applies_none(
    ingest: Ingest, live: Api, pool: asyncpg.Pool
) -> None:
    """One request is all or nothing: an invalid last event of three stops the first two."""
    a, b, c = [await new_task(live) for _ in range(3)]
    events = [ev("completed", a["task_id"]), ev("started", b["task_id"]), ev("completed", "")]
    before = await snapshot(pool)
    status, body = await ingest.send(events)
    assert_error(status, body, 400, "event 2", "task_id")
    assert await snapshot(pool) == before
    assert (await get_task(live, a["task_id"]))["status"] == "pending"
    # Fixed, the same request applies whole.
    events[2]["task_id"] = c["task_id"]
    assert [r["status"] for r in await ingest.ok(events)] == ["applied"] * 3


# --- deliveries: payload, target, webhook id ---------------------------------------------


async def test_delivery_payload_is_the_task_as_get_returns_it(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """Payload is {task as GET returns it, response, task_id, status}, to callback_url."""
    await ingest.ok(ev("completed", pending["task_id"], response={"category": "y"}))
    task = await get_task(live, pending["task_id"])
    [d] = await deliveries(pool)
    assert d["payload"] == {
        "task": without_callback_succeeded(task),
        "response": {"category": "y"},
        "task_id": pending["task_id"],
        "status": "completed",
    }
    assert "callback_succeeded" not in d["payload"]["task"]
    assert d["target"] == CB
    assert d["host"] == "hooks.example.com"
    assert d["account_id"] == (await pool.fetchval("SELECT account_id FROM tasks"))
    assert d["webhook_id"].startswith("msg_") and len(d["webhook_id"]) > 8


async def test_delivery_goes_to_account_default_when_task_has_none(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, account: NewAccount
) -> None:
    """A task without callback_url calls back to the account's default_callback_url."""
    await live.project()
    task = await live.task()
    assert task["callback_url"] is None
    await pool.execute(
        "UPDATE accounts SET default_callback_url = $2 WHERE id = $1",
        account.account_id,
        DEFAULT_CB,
    )
    await ingest.ok(ev("completed", task["task_id"]))
    [d] = await deliveries(pool)
    assert d["target"] == DEFAULT_CB
    assert d["host"] == "default.example.com"
    assert d["payload"]["task"] == without_callback_succeeded(await get_task(live, task["task_id"]))


async def test_no_delivery_without_any_target(
    ingest: Ingest, live: Api, pool: asyncpg.Pool
) -> None:
    """No callback_url and no account default: the event applies, nothing is enqueued."""
    await live.project()
    task = await live.task()
    results = await ingest.ok([ev("completed", task["task_id"]), ev("recalled", task["task_id"])])
    assert [r["status"] for r in results] == ["applied", "applied"]
    assert await deliveries(pool) == []
    assert (await get_task(live, task["task_id"]))["status"] == "pending"


async def test_each_delivery_has_its_own_webhook_id(
    ingest: Ingest, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """Every enqueued delivery gets a distinct "msg_" webhook_id."""
    task_id = pending["task_id"]
    await ingest.ok([ev("completed", task_id), ev("recalled", task_id), ev("completed", task_id)])
    ids = [d["webhook_id"] for d in await deliveries(pool)]
    assert len(ids) == 3 == len(set(ids))
    assert all(i.startswith("msg_") for i in ids)


async def test_completion_makes_callback_succeeded_absent(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """A new callback makes callback_succeeded unresolved (absent) until it is delivered."""
    await ingest.ok(ev("completed", pending["task_id"]))
    assert "callback_succeeded" not in await get_task(live, pending["task_id"])
    # As if the dispatcher had delivered it; then a fix enqueues again: absent again.
    await pool.execute(
        "UPDATE tasks SET callback_succeeded = true WHERE id = $1", pending["task_id"]
    )
    assert (await get_task(live, pending["task_id"]))["callback_succeeded"] is True
    await ingest.ok(ev("fixed", pending["task_id"]))
    assert "callback_succeeded" not in await get_task(live, pending["task_id"])


# --- the other triggers: test-key completion and customer audits ---------------------------


async def test_test_key_task_is_completed_with_delivery(test_api: Api, pool: asyncpg.Pool) -> None:
    """A test-key task is created completed and has one "completed" delivery enqueued."""
    await test_api.project()
    task = await test_api.task(callback_url=CB)
    assert task["status"] == "completed"
    assert task["is_test"] is True
    [d] = await deliveries(pool, task["task_id"])
    assert d["trigger"] == "completed"
    assert d["target"] == CB
    assert d["webhook_id"].startswith("msg_")
    got = await get_task(test_api, task["task_id"])
    assert "callback_succeeded" not in got
    assert d["payload"] == {
        "task": without_callback_succeeded(got),
        "response": got["response"],
        "task_id": task["task_id"],
        "status": "completed",
    }


async def test_test_key_task_and_delivery_commit_together(
    test_api: Api, pool: asyncpg.Pool
) -> None:
    """A test-key create and its delivery commit together: no delivery, no task."""
    await test_api.project()
    await fail_on(pool, "deliveries", "INSERT", "target", CB)
    status, body = await test_api.call(
        "POST",
        "/v1/task/categorization",
        json={"project": "proj", "attachment": "a", "categories": ["x"], "callback_url": CB},
    )
    assert status == 500, body
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 0
    assert await deliveries(pool) == []


async def test_customer_audit_enqueues_audit_delivery(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """POST /v1/task/{id}/audit enqueues an "audit" delivery carrying the review fields."""
    await ingest.ok(ev("completed", pending["task_id"]))
    status, body = await live.call(
        "POST", f"/v1/task/{pending['task_id']}/audit", json={"accepted": False, "comments": "no"}
    )
    assert status == 200, body
    completed, audit = await deliveries(pool)
    assert completed["trigger"] == "completed"
    assert audit["trigger"] == "audit"
    assert audit["target"] == CB
    payload = audit["payload"]
    assert payload["customer_review_status"] == "rejected"
    assert payload["customer_review_comments"] == ["no"]
    assert payload["task"]["customer_review_status"] == "rejected"
    assert payload["task"]["audits"][0]["audit_source"] == "customer"
    assert payload["status"] == "completed"
    assert "prior_responses" in payload
    assert "callback_succeeded" not in await get_task(live, pending["task_id"])

    status, body = await live.call(
        "POST", f"/v1/task/{pending['task_id']}/audit", json={"accepted": True}
    )
    assert status == 200, body
    *_, accepted = await deliveries(pool)
    assert accepted["trigger"] == "audit"
    assert accepted["payload"]["customer_review_status"] == "accepted"
    assert accepted["payload"]["customer_review_comments"] == ["no"]


# --- atomicity: one request is one transaction ---------------------------------------------


async def test_database_failure_on_last_event_applies_none(
    ingest: Ingest, live: Api, pool: asyncpg.Pool
) -> None:
    """A database failure on the last of three events applies none of them."""
    a, b, c = [await new_task(live) for _ in range(3)]
    events = [
        ev("completed", a["task_id"]),
        ev("errored", b["task_id"]),
        ev("completed", c["task_id"]),
    ]
    await fail_on(pool, "tasks", "UPDATE", "id", c["task_id"])
    before = await snapshot(pool)
    status, body = await ingest.send(events)
    assert_error(status, body, 500)
    assert await snapshot(pool) == before
    # Once the database takes it, the very same request applies whole (no id was kept).
    await stop_failing(pool, "tasks")
    assert [r["status"] for r in await ingest.ok(events)] == ["applied"] * 3
    assert len(await deliveries(pool)) == 3


async def test_task_change_and_delivery_commit_together(
    ingest: Ingest, live: Api, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """A task change and its delivery commit together: no delivery, no change."""
    await fail_on(pool, "deliveries", "INSERT", "task_id", pending["task_id"])
    before = await snapshot(pool)
    event = ev("completed", pending["task_id"])
    status, body = await ingest.send(event)
    assert_error(status, body, 500)
    assert await snapshot(pool) == before
    assert (await get_task(live, pending["task_id"]))["status"] == "pending"
    await stop_failing(pool, "deliveries")
    assert (await ingest.ok(event))[0]["status"] == "applied"
    row = await pool.fetchrow("SELECT status FROM tasks WHERE id = $1", pending["task_id"])
    assert row["status"] == "completed"
    assert len(await deliveries(pool, pending["task_id"])) == 1


# --- limits --------------------------------------------------------------------------------


async def _many_tasks(pool: asyncpg.Pool, template_id: str, n: int) -> list[str]:
    """n pending copies of one task, made directly in the database (fast)."""
    rows = await pool.fetch(
        """
        INSERT INTO tasks (id, account_id, is_test, type, project, callback_url, params)
        SELECT lpad(to_hex(g), 24, '0'), account_id, is_test, type, project, callback_url, params
        FROM tasks, generate_series(1, $2) g WHERE id = $1
        RETURNING id
        """,
        template_id,
        n,
    )
    return [r["id"] for r in rows]


async def test_one_thousand_events_are_accepted(
    ingest: Ingest, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """1,000 events in one request are all applied, each with its delivery."""
    ids = await _many_tasks(pool, pending["task_id"], 1000)
    events = [ev("completed", task_id) for task_id in ids]
    results = await ingest.ok(events)
    assert [r["event_id"] for r in results] == [e["event_id"] for e in events]
    assert {r["status"] for r in results} == {"applied"}
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE status = 'completed'") == 1000
    assert await pool.fetchval("SELECT count(*) FROM ingested_events") == 1000
    assert (
        await pool.fetchval("SELECT count(*) FROM deliveries WHERE trigger = 'completed'") == 1000
    )


async def test_one_thousand_and_one_events_are_400(
    ingest: Ingest, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """1,001 events are over the limit: 400, and none of them is applied."""
    ids = await _many_tasks(pool, pending["task_id"], 1001)
    before = await snapshot(pool)
    status, body = await ingest.send([ev("completed", task_id) for task_id in ids])
    assert_error(status, body, 400, "1001", "1000")
    assert await snapshot(pool) == before


# --- concurrency ---------------------------------------------------------------------------


async def test_same_event_in_concurrent_requests_applies_once(
    ingest: Ingest, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """The same event_id sent by several requests at once is applied exactly once."""
    event = ev("completed", pending["task_id"])
    replies = await asyncio.gather(*(ingest.send([event]) for _ in range(8)))
    assert all(status == 200 for status, _ in replies), replies
    statuses = sorted(body["results"][0]["status"] for _, body in replies)
    assert statuses == ["applied"] + ["duplicate"] * 7
    assert len(await deliveries(pool)) == 1


async def test_requests_touching_tasks_in_opposite_order_both_apply(
    ingest: Ingest, pool: asyncpg.Pool, pending: dict[str, Any]
) -> None:
    """Requests locking the same tasks in opposite orders both apply (no deadlock 500)."""
    ids = await _many_tasks(pool, pending["task_id"], 300)
    forward = [ev("started", task_id) for task_id in ids]
    backward = [ev("started", task_id) for task_id in reversed(ids)]
    replies = await asyncio.gather(ingest.send(forward), ingest.send(backward))
    for status, body in replies:
        assert status == 200, body
        assert {r["status"] for r in body["results"]} == {"applied"}
