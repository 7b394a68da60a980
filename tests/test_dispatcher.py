"""The dispatcher against a real callback sink on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook

from taskhook.core import store
from taskhook.core.accounts import NewAccount
from taskhook.dispatcher import loop
from taskhook.dispatcher.claims import claim_deliveries
from taskhook.dispatcher.loop import Dispatcher
from tests.conftest import SECRET_BOX, Api, dispatcher_settings
from tests.sink import Sink
from tests.waits import equals, wait_until

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

Start = Callable[..., Awaitable[Any]]


async def completed_task(api: Api, callback_url: str) -> str:
    """A test-key task: completed at once, its callback enqueued in the same transaction."""
    status, _ = await api.call("GET", "/v1/projects/proj")
    if status == 404:
        await api.project()
    return str((await api.task(callback_url=callback_url))["task_id"])


async def task_field(api: Api, task_id: str, field: str) -> Any:
    _, task = await api.call("GET", f"/v1/task/{task_id}")
    return task.get(field, "absent")


async def delivery_state(pool: asyncpg.Pool, task_id: str) -> list[str]:
    rows = await pool.fetch("SELECT state FROM deliveries WHERE task_id = $1 ORDER BY id", task_id)
    return [r["state"] for r in rows]


async def test_success_sends_signed_body_and_sets_callback_succeeded(
    test_api: Api, account: NewAccount, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """A 2xx sets callback_succeeded true; the POST carries the callback body and headers."""
    receiver, url = sink
    task_id = await completed_task(test_api, url + "/ok")
    await run_dispatcher()
    await wait_until(lambda: equals(task_field(test_api, task_id, "callback_succeeded"), True))
    [got] = receiver.to("/ok")
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["scale-callback-auth"] == account.callback_auth_key
    assert got.headers["User-Agent"].startswith("taskhook/")
    assert got.headers["webhook-id"].startswith("msg_")
    Webhook(account.signing_secret).verify(got.body, got.headers)  # raises if not valid
    body = got.json
    assert set(body) == {"task", "response", "task_id", "status"}
    assert body["task_id"] == task_id and body["status"] == "completed"
    assert body["response"] == body["task"]["response"] and "category" in body["response"]


async def test_failures_retry_with_one_webhook_id_then_succeed(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """5xx is retried with the same webhook-id; callback_succeeded is absent until resolved."""
    receiver, url = sink
    task_id = await completed_task(test_api, url + "/flaky/2/a")
    await run_dispatcher(retry_schedule=(0.5, 0.5, 0.5))
    await receiver.wait_for(lambda: len(receiver.to("/flaky/2/a")) >= 1)
    assert await task_field(test_api, task_id, "callback_succeeded") == "absent"
    await wait_until(lambda: equals(task_field(test_api, task_id, "callback_succeeded"), True))
    attempts = receiver.to("/flaky/2/a")
    assert len(attempts) == 3
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    assert attempts[1].at - attempts[0].at >= 0.35  # 0.5 s less 20 % jitter, with margin


async def test_cookies_a_customer_sets_are_never_sent_back(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """A webhook sender keeps no session with its customers: a cookie set in one answer is
    not sent with the retry (aiohttp's default cookie jar would send it to a host named by
    name; it ignores cookies of IP addresses, hence localhost)."""
    receiver, url = sink
    task_id = await completed_task(test_api, url.replace("127.0.0.1", "localhost") + "/cookie/a")
    await run_dispatcher(retry_schedule=(0.2,))
    await wait_until(lambda: equals(task_field(test_api, task_id, "callback_succeeded"), True))
    first, retry = receiver.to("/cookie/a")
    assert "Cookie" not in first.headers and "Cookie" not in retry.headers


async def test_default_schedule_exhausts_after_20_retries(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start, pool: asyncpg.Pool
) -> None:
    """A receiver that always fails gets 1 + 20 attempts over the default (24 h) schedule,
    run here 10,000 times faster, and then callback_succeeded is false."""
    receiver, url = sink
    task_id = await completed_task(test_api, url + "/fail")
    from taskhook.core.retry import DEFAULT_SCHEDULE

    await run_dispatcher(retry_schedule=DEFAULT_SCHEDULE, retry_time_scale=1e-4)
    await wait_until(
        lambda: equals(task_field(test_api, task_id, "callback_succeeded"), False), timeout=30
    )
    times = [r.at for r in receiver.to("/fail")]
    assert len(times) == 21
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[-1] > gaps[10] > 0  # delays grow
    assert 8.6 * 0.75 < times[-1] - times[0] < 8.7 * 1.3  # 86,517 s at 1e-4, ±jitter
    assert await delivery_state(pool, task_id) == ["failed"]


async def test_410_gives_up_at_once(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """410 Gone stops retrying that delivery: one attempt, callback_succeeded false."""
    receiver, url = sink
    task_id = await completed_task(test_api, url + "/gone")
    await run_dispatcher()
    await wait_until(lambda: equals(task_field(test_api, task_id, "callback_succeeded"), False))
    await asyncio.sleep(0.2)  # fixed: a retry would come within it (0.05 s retries and polls)
    assert len(receiver.to("/gone")) == 1


async def test_client_errors_other_than_410_are_retried(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """A 400 is a failure like any other: retried until the schedule is used up."""
    receiver, url = sink
    task_id = await completed_task(test_api, url + "/bad")
    await run_dispatcher()
    await wait_until(lambda: equals(task_field(test_api, task_id, "callback_succeeded"), False))
    assert len(receiver.to("/bad")) == 4  # 1 + the 3 retries of the test schedule


async def test_redirects_are_not_followed(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """A 3xx is a failure, retried; the redirect target is never called."""
    receiver, url = sink
    task_id = await completed_task(test_api, url + "/redirect")
    await run_dispatcher()
    await wait_until(lambda: equals(task_field(test_api, task_id, "callback_succeeded"), False))
    assert len(receiver.to("/redirect")) == 4 and not receiver.to("/ok")


async def test_timeouts_and_refused_connections_are_retried(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start, unused_tcp_port: int
) -> None:
    """A hanging receiver times out and a closed port refuses; both are retried."""
    _, url = sink
    hang = await completed_task(test_api, url + "/hang")
    closed = await completed_task(test_api, f"http://127.0.0.1:{unused_tcp_port}/x")
    await run_dispatcher(total_timeout=0.3, retry_schedule=(0.05,))
    for task_id, error in ((hang, "timeout"), (closed, "connect_error")):
        await wait_until(
            lambda t=task_id: equals(task_field(test_api, t, "callback_succeeded"), False)
        )
        _, listing = await test_api.call("GET", f"/v1/task/{task_id}/callbacks")
        attempts = listing["deliveries"][0]["attempts"]
        assert [a["error"] for a in attempts] == [error, error]
        assert all(a["status_code"] is None for a in attempts)


async def test_a_body_that_stalls_after_the_headers_times_out(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """The total timeout covers reading the response, not only the status line: a 200
    whose body never comes is a timeout, retried, never a success."""
    receiver, url = sink
    task_id = await completed_task(test_api, url + "/stall")
    await run_dispatcher(total_timeout=0.3, retry_schedule=(0.05,))
    await wait_until(lambda: equals(task_field(test_api, task_id, "callback_succeeded"), False))
    _, listing = await test_api.call("GET", f"/v1/task/{task_id}/callbacks")
    attempts = listing["deliveries"][0]["attempts"]
    assert [(a["error"], a["status_code"]) for a in attempts] == [("timeout", None)] * 2
    assert len(receiver.to("/stall")) == 2


async def test_retry_after_pauses_the_whole_host_not_others(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """429 with Retry-After pauses every delivery to that host; other hosts go on."""
    receiver, url = sink
    port = url.rsplit(":", 1)[1]
    await completed_task(test_api, url + "/throttle")
    await run_dispatcher(retry_schedule=(0.05,))
    await receiver.wait_for(lambda: bool(receiver.to("/throttle")))
    throttled_at = receiver.to("/throttle")[0].at
    await completed_task(test_api, url + "/ok")  # same host: must wait out the pause
    await completed_task(test_api, f"http://localhost:{port}/other")  # another host
    await receiver.wait_for(
        lambda: (
            bool(receiver.to("/ok"))
            and bool(receiver.to("/other"))
            and len(receiver.to("/throttle")) >= 2
        ),
        timeout=10,
    )
    assert receiver.to("/other")[0].at - throttled_at < 0.8
    assert receiver.to("/ok")[0].at - throttled_at >= 0.9
    assert receiver.to("/throttle")[1].at - throttled_at >= 0.9  # the retry honoured it too


async def test_one_task_calls_back_in_enqueue_order(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """A task's later callback waits while its earlier one is still being retried."""
    receiver, url = sink
    task_id = await completed_task(test_api, url + "/flaky/2/order")
    status, _ = await test_api.call("POST", f"/v1/task/{task_id}/audit", json={"accepted": True})
    assert status == 200
    await run_dispatcher(retry_schedule=(0.1, 0.1, 0.1))
    await receiver.wait_for(lambda: len(receiver.to("/flaky/2/order")) == 4)
    kinds = [("customer_review_status" in r.json) for r in receiver.to("/flaky/2/order")]
    assert kinds == [False, False, False, True]  # completion (fail, fail, ok), then audit


async def test_a_dead_host_does_not_hold_up_others(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """With a per-host cap, hanging callbacks to one host leave slots for other hosts."""
    receiver, url = sink
    port = url.rsplit(":", 1)[1]
    for _ in range(6):
        await completed_task(test_api, url + "/hang")
    healthy = [
        await completed_task(test_api, f"http://localhost:{port}/fine/{i}") for i in range(10)
    ]
    started = time.monotonic()
    await run_dispatcher(dispatch_concurrency=8, per_host_concurrency=2, total_timeout=20)
    await receiver.wait_for(
        lambda: sum(r.path.startswith("/fine/") for r in receiver.received) == len(healthy)
    )
    assert time.monotonic() - started < 3
    assert len(receiver.to("/hang")) <= 2  # the dead host never had more than its cap


async def test_private_targets_are_refused_by_default(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """Without ALLOW_PRIVATE_TARGETS, a loopback address or a name resolving to one is
    refused at delivery time and given up at once; nothing reaches the receiver."""
    receiver, url = sink
    port = url.rsplit(":", 1)[1]
    literal = await completed_task(test_api, url + "/ok")
    by_name = await completed_task(test_api, f"http://localhost:{port}/ok")
    await run_dispatcher(allow_private_targets=False)
    for task_id in (literal, by_name):
        await wait_until(
            lambda t=task_id: equals(task_field(test_api, t, "callback_succeeded"), False)
        )
        _, listing = await test_api.call("GET", f"/v1/task/{task_id}/callbacks")
        [attempt] = listing["deliveries"][0]["attempts"]
        assert attempt["error"] == "forbidden_target"
    assert not receiver.received


async def test_two_dispatchers_never_send_an_attempt_twice(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start, pool: asyncpg.Pool
) -> None:
    """Two dispatchers on one queue deliver 150 callbacks, each exactly once."""
    receiver, url = sink
    tasks = [await completed_task(test_api, url + f"/ok/{i}") for i in range(150)]
    await asyncio.gather(run_dispatcher(claim_batch=10), run_dispatcher(claim_batch=10))
    await receiver.wait_for(lambda: len(receiver.received) >= len(tasks), timeout=20)
    await wait_until(
        lambda: equals(
            pool.fetchval("SELECT count(*) FROM deliveries WHERE state = 'succeeded'"), len(tasks)
        )
    )
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == len(tasks)


async def test_notify_wakes_the_dispatcher_without_waiting_for_a_poll(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start, pool: asyncpg.Pool
) -> None:
    """New work is delivered at once through LISTEN/NOTIFY, long before the next poll."""
    receiver, url = sink
    await test_api.project()
    dispatcher = await run_dispatcher(poll_interval=30)

    async def listening_and_idle() -> bool:
        """LISTEN is in place at the server, and the claim its wake-up asks for was sent."""
        listens = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN %' AND state = 'idle'"
        )
        return bool(listens) and not dispatcher.listener.wake.is_set()

    await wait_until(listening_and_idle, what="the listener's LISTEN and its first claim")
    started = time.monotonic()
    await completed_task(test_api, url + "/ok")
    await receiver.wait_for(lambda: bool(receiver.to("/ok")), timeout=5)
    assert time.monotonic() - started < 2


async def test_attempts_are_listed_and_resend_sends_again(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """GET .../callbacks lists deliveries and attempts, each delivery with the webhook-id
    its attempts were sent with; resend delivers anew, under a new webhook-id."""
    receiver, url = sink
    task_id = await completed_task(test_api, url + "/flaky/1/r")
    await run_dispatcher()
    await wait_until(lambda: equals(task_field(test_api, task_id, "callback_succeeded"), True))
    status, body = await test_api.call("POST", f"/v1/task/{task_id}/callbacks/resend")
    assert status == 200 and body["state"] == "pending"
    await receiver.wait_for(lambda: len(receiver.to("/flaky/1/r")) == 3)
    _, listing = await test_api.call("GET", f"/v1/task/{task_id}/callbacks")
    first, again = listing["deliveries"]
    assert listing["task_id"] == task_id
    assert (first["trigger"], first["state"], again["trigger"]) == (
        "completed",
        "succeeded",
        "resend",
    )
    assert [a["status_code"] for a in first["attempts"]] == [500, 200]
    attempt = first["attempts"][0]
    assert set(attempt) == {
        "attempt",
        "started_at",
        "duration_ms",
        "status_code",
        "error",
        "response_excerpt",
    }
    assert attempt["attempt"] == 1 and attempt["response_excerpt"] == "not yet"
    sent = receiver.to("/flaky/1/r")
    assert sent[2].json == sent[1].json
    assert sent[2].headers["webhook-id"] != sent[1].headers["webhook-id"]
    # Both attempts of the first delivery carry its id; the resend carries its own.
    assert first["webhook_id"] == sent[0].headers["webhook-id"] == sent[1].headers["webhook-id"]
    assert again["webhook_id"] == sent[2].headers["webhook-id"]
    assert first["webhook_id"].startswith("msg_")


async def test_callbacks_of_another_account_are_hidden(
    test_api: Api, make_account: Any, http: Any, base_url: str, sink: tuple[Sink, str]
) -> None:
    """Another account's key gets 404 for a task's callbacks and for resend."""
    _, url = sink
    task_id = await completed_task(test_api, url + "/ok")
    other = Api(http, base_url, (await make_account("other")).test_key)
    for method, path in (("GET", "callbacks"), ("POST", "callbacks/resend")):
        status, _ = await other.call(method, f"/v1/task/{task_id}/{path}")
        assert status == 404


@pytest.mark.parametrize("path", ["/ok"])
async def test_metrics_report_attempts_and_queue(
    test_api: Api,
    sink: tuple[Sink, str],
    run_dispatcher: Start,
    http: Any,
    base_url: str,
    path: str,
) -> None:
    """GET /metrics exposes attempts by outcome, latency, queue depth and oldest due age."""
    _receiver, url = sink
    task_id = await completed_task(test_api, url + path)
    await run_dispatcher()
    await wait_until(lambda: equals(task_field(test_api, task_id, "callback_succeeded"), True))
    async with http.get(base_url + "/metrics") as resp:
        text = await resp.text()
    for series in (
        'taskhook_delivery_attempts_total{outcome="2xx"}',
        "taskhook_delivery_attempt_seconds_bucket",
        "taskhook_callback_latency_seconds_bucket",
        "taskhook_delivery_queue_depth 0.0",
        "taskhook_delivery_oldest_due_age_seconds",
        "taskhook_http_requests_total",
    ):
        assert series in text, series


async def test_writes_after_a_lost_lease_are_dropped(
    test_api: Api, sink: tuple[Sink, str], pool: asyncpg.Pool
) -> None:
    """A dispatcher whose lease was taken over cannot record its (stale) outcome."""
    from uuid import uuid4

    from taskhook.core import store
    from taskhook.core.delivery import AttemptResult, Outcome

    _, url = sink
    task_id = await completed_task(test_api, url + "/ok")
    [claimed] = await claim_deliveries(pool, SECRET_BOX, 10, 60, 10)
    stale = AttemptResult(claimed.created_at, 5, Outcome(status_code=200), "")
    from dataclasses import replace

    assert not await store.record_attempt(
        pool, replace(claimed, lease_token=uuid4()), "succeeded", None, stale
    )
    assert await delivery_state(pool, task_id) == ["sending"]
    assert await store.record_attempt(pool, claimed, "succeeded", None, stale)
    assert await delivery_state(pool, task_id) == ["succeeded"]


async def test_retention_prunes_old_history(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start, pool: asyncpg.Pool
) -> None:
    """Idempotency keys older than 24 h and history older than retention_days are pruned;
    recent ones and unfinished deliveries stay."""
    _, url = sink
    old_task = await completed_task(test_api, url + "/ok")
    new_task = await completed_task(test_api, url + "/ok")
    await run_dispatcher()
    await wait_until(lambda: equals(task_field(test_api, new_task, "callback_succeeded"), True))
    await wait_until(lambda: equals(task_field(test_api, old_task, "callback_succeeded"), True))
    await pool.execute(
        "UPDATE deliveries SET finished_at = now() - interval '40 days' WHERE task_id = $1",
        old_task,
    )
    status, _ = await test_api.call(
        "POST",
        "/v1/task/categorization",
        headers={"Idempotency-Key": "k"},
        json={"project": "proj", "attachment": "a", "categories": ["x"]},
    )
    assert status == 200
    await pool.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    await pool.execute(
        "INSERT INTO ingested_events (event_id, task_id, type, received_at) "
        "VALUES ('old', 't', 'task.started', now() - interval '40 days'), "
        "('new', 't', 'task.started', now())"
    )
    await run_dispatcher(prune_interval=0.1)
    await wait_until(
        lambda: equals(pool.fetchval("SELECT array_agg(event_id) FROM ingested_events"), ["new"])
    )
    await wait_until(lambda: equals(pool.fetchval("SELECT count(*) FROM idempotency_keys"), 0))
    await wait_until(
        lambda: equals(
            pool.fetchval("SELECT count(*) FROM deliveries WHERE task_id = $1", old_task), 0
        )
    )
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE task_id = $1", new_task) == 1
    # Their bodies go with them; the kept delivery keeps its own.
    bodies = await pool.fetch("SELECT payload FROM delivery_payloads")
    assert [json.loads(b["payload"])["task_id"] for b in bodies] == [new_task]


async def test_no_database_connection_is_held_during_http(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start, pool: asyncpg.Pool
) -> None:
    """While callbacks hang at the receiver, the dispatcher holds no pooled connection and
    no transaction is open: the claim committed before the POST."""
    receiver, url = sink
    for _ in range(3):
        await completed_task(test_api, url + "/hang")
    await run_dispatcher(total_timeout=20)
    await receiver.wait_for(lambda: len(receiver.to("/hang")) == 3)

    async def nothing_held() -> bool:
        idle = pool.get_size() == pool.get_idle_size()  # before this check takes one
        open_tx = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%'"
        )
        return idle and open_tx == 0

    # The callbacks hang for 20 s: a connection held across them would outlast this wait.
    await wait_until(nothing_held, timeout=5, what="no pooled connection or transaction held")


async def test_a_finished_callback_costs_no_claim_when_nothing_was_held_back(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start, monkeypatch: Any
) -> None:
    """With free slots and no host at its cap, everything due is claimed at once; a
    callback that ends is no reason to claim again (an empty claim per callback cost
    PostgreSQL more than the callbacks did). New work arrives by NOTIFY."""
    from taskhook.core import store

    claims = 0
    real = store.claim_deliveries

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, "claim_deliveries", counted)
    receiver, url = sink
    await run_dispatcher(poll_interval=30)
    for i in range(10):
        await completed_task(test_api, f"{url}/ok/n{i}")
        await receiver.wait_for(lambda i=i: len(receiver.to(f"/ok/n{i}")) == 1)
    await asyncio.sleep(0.2)  # fixed: time for a claim per finished callback to show
    # One claim at the start, about one per NOTIFY; not one more per finished callback.
    assert claims <= 1 + 10 + 2, claims


async def test_a_host_at_its_cap_is_served_as_its_slots_free(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start
) -> None:
    """Deliveries left behind because their host was at its cap are claimed as soon as a
    slot of that host frees, not at the next poll."""
    receiver, url = sink
    for _ in range(8):
        await completed_task(test_api, f"{url}/slow")
    await run_dispatcher(poll_interval=30, per_host_concurrency=2)
    # 8 callbacks of 0.3 s, 2 at a time: ~1.2 s; a missed wake-up would wait 30 s.
    await receiver.wait_for(lambda: len(receiver.to("/slow")) == 8)


async def _leased(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM deliveries WHERE state = 'sending'"))


async def test_a_host_at_its_cap_has_two_more_caps_claimed_ahead_and_handed_back_at_stop(
    test_api: Api, sink: tuple[Sink, str], pool: asyncpg.Pool, dsn: str
) -> None:
    """A claim round trip is slower than a busy host frees its slots, so rows are claimed
    ahead and held (two caps: one claim's worth held, one in flight beside): the host
    still sees only its cap, and the held rows go back unsent, their attempt not counted,
    the moment the dispatcher stops."""
    receiver, url = sink
    for i in range(10):
        await completed_task(test_api, f"{url}/hang/{i}")
    stop = asyncio.Event()
    dispatcher = Dispatcher(
        pool,
        dsn,
        dispatcher_settings(per_host_concurrency=2, total_timeout=20, lease_seconds=60),
    )
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        await receiver.wait_for(lambda: len(receiver.received) == 2)
        await wait_until(lambda: equals(_leased(pool), 6))  # 2 sending, 4 held
        await asyncio.sleep(0.2)  # fixed: time for a send or a claim past the caps to show
        assert len(receiver.received) == 2 and await _leased(pool) == 6
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
    # Held rows and the two cancelled mid-send alike: due again, no attempt counted.
    rows = await pool.fetch("SELECT state, attempts FROM deliveries")
    assert [(r["state"], r["attempts"]) for r in rows] == [("pending", 0)] * 10


def _slow_claims(monkeypatch: Any) -> list[int]:
    """store.claim_deliveries made 50 ms slower (as under load), recording how many claims
    were in flight as each began."""
    from taskhook.core import store

    real = store.claim_deliveries
    in_flight: list[int] = [0]

    async def slow(*args: Any, **kwargs: Any) -> Any:
        in_flight[0] += 1
        in_flight.append(in_flight[0])
        try:
            await asyncio.sleep(0.05)  # the simulated slow claim, not a wait
            return await real(*args, **kwargs)
        finally:
            in_flight[0] -= 1

    monkeypatch.setattr(store, "claim_deliveries", slow)
    return in_flight


async def test_a_backlog_is_claimed_two_claims_at_a_time(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start, monkeypatch: Any
) -> None:
    """While claims come back full, the next claim runs beside the awaited one (one claim
    at a time capped a drain at what one claim's latency allows); each callback is still
    sent once."""
    in_flight = _slow_claims(monkeypatch)
    receiver, url = sink
    for i in range(30):
        await completed_task(test_api, f"{url}/ok/b{i}")
    await run_dispatcher(
        claim_batch=5, per_host_concurrency=10, poll_interval=30, lease_seconds=60, total_timeout=5
    )
    await receiver.wait_for(lambda: len(receiver.received) >= 30)
    await asyncio.sleep(0.2)  # fixed: time for a duplicate send to show
    assert sorted(r.path for r in receiver.received) == sorted(f"/ok/b{i}" for i in range(30))
    assert max(in_flight[1:]) == 2


async def test_a_claim_in_flight_at_stop_has_its_rows_handed_back(
    test_api: Api, sink: tuple[Sink, str], pool: asyncpg.Pool, dsn: str, monkeypatch: Any
) -> None:
    """A stop while two claims run: the rows of both come back due at once, unsent and no
    attempt counted, instead of waiting out their leases."""
    in_flight = _slow_claims(monkeypatch)
    receiver, url = sink
    for i in range(40):
        await completed_task(test_api, f"{url}/slow/{i}")
    stop = asyncio.Event()
    settings = dispatcher_settings(
        claim_batch=5, per_host_concurrency=10, lease_seconds=60, total_timeout=5
    )
    running = asyncio.create_task(Dispatcher(pool, dsn, settings).run(stop))
    try:
        await wait_until(lambda: max(in_flight[1:], default=0) == 2)
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
    rows = await pool.fetch("SELECT state, attempts FROM deliveries")
    assert {r["state"] for r in rows} <= {"pending", "succeeded"}
    assert all(r["attempts"] == (r["state"] == "succeeded") for r in rows)
    assert sum(r["state"] == "succeeded" for r in rows) == len(receiver.received)


async def test_a_claim_beside_another_leaves_it_the_room_it_may_take(
    test_api: Api,
    sink: tuple[Sink, str],
    pool: asyncpg.Pool,
    run_dispatcher: Start,
    monkeypatch: Any,
) -> None:
    """Two claims in flight at once count each other's share: a host whose room one claim
    may fill gets nothing from the other, so no more than its claim cap (three caps) is
    ever leased to one dispatcher."""
    in_flight = _slow_claims(monkeypatch)
    receiver, url = sink
    for i in range(20):
        await completed_task(test_api, f"{url}/hang/{i}")
    await run_dispatcher(claim_batch=3, per_host_concurrency=2, total_timeout=20, lease_seconds=60)
    await receiver.wait_for(lambda: len(receiver.received) == 2)

    async def claimed_ahead() -> bool:
        return await _leased(pool) >= 6

    await wait_until(claimed_ahead)
    await asyncio.sleep(0.3)  # fixed: time for a claim past the three caps to show
    assert max(in_flight[1:]) == 2  # the claims did overlap
    assert await _leased(pool) == 6 and len(receiver.received) == 2


async def test_a_row_held_past_its_lease_budget_is_handed_back_not_sent_late(
    test_api: Api, sink: tuple[Sink, str], run_dispatcher: Start, pool: asyncpg.Pool
) -> None:
    """A held row must start with a whole attempt's time left on its lease. Here the lease
    is 1.5 s and an attempt may take 1 s: a row still held after 0.5 s goes back. Sent
    anyway, its lease would run out mid-send and a second dispatcher would send it again."""
    receiver, url = sink
    for name in ("a", "b"):
        await completed_task(test_api, f"{url}/hang/{name}")
    tight = {"per_host_concurrency": 1, "total_timeout": 1.0, "lease_seconds": 1.5}
    await run_dispatcher(retry_schedule=(30.0,), **tight)
    await wait_until(lambda: equals(_leased(pool), 2))  # /hang/a sending, /hang/b held
    await run_dispatcher(retry_schedule=(30.0,), **tight)  # would take b when its lease ends
    await receiver.wait_for(lambda: len(receiver.to("/hang/b")) == 1)
    # Fixed: sent late, b's lease would end within 1.5 s and the other dispatcher resend it.
    await asyncio.sleep(1.6)
    assert len(receiver.to("/hang/a")) == 1
    assert len(receiver.to("/hang/b")) == 1


async def test_each_attempt_is_logged_with_its_delivery(
    test_api: Api,
    sink: tuple[Sink, str],
    run_dispatcher: Start,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One line per attempt at info, named for its outcome (`delivery.succeeded`), naming
    the delivery, the webhook-id the customer received, its task, the attempt and the host,
    one JSON object a line; the bare `delivery.attempted` is a debug line."""
    import json
    import logging

    from taskhook.core.logs import configure_logging

    receiver, url = sink
    task_id = await completed_task(test_api, url + "/ok/logged")
    configure_logging("json", "info")
    try:
        capsys.readouterr()
        await run_dispatcher()
        await receiver.wait_for(lambda: len(receiver.to("/ok/logged")) == 1)
        await wait_until(lambda: equals(task_field(test_api, task_id, "callback_succeeded"), True))
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        configure_logging("json", "info")
        logging.getLogger().handlers.clear()
    mine = [line for line in lines if line.get("task_id") == task_id]
    assert [line["event"] for line in mine] == ["delivery.succeeded"], mine
    for line in mine:
        assert line["attempt"] == 1 and line["host"] == "127.0.0.1", line
        assert isinstance(line["delivery_id"], int) and line["status_code"] == 200, line
        [received] = receiver.to("/ok/logged")
        assert line["webhook_id"] == received.headers["webhook-id"], line


async def test_prune_deletes_in_batches_until_nothing_old_is_left(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each statement deletes at most PRUNE_BATCH rows; the prune repeats it until a
    statement deletes fewer, so more old rows than one batch all go, and recent ones stay."""
    monkeypatch.setattr(store, "PRUNE_BATCH", 2)
    await pool.execute(
        "INSERT INTO ingested_events (event_id, task_id, type, received_at) "
        "SELECT 'old' || g, 't', 'task.started', now() - interval '40 days' "
        "FROM generate_series(1, 7) g"
    )
    await pool.execute(
        "INSERT INTO ingested_events (event_id, task_id, type) VALUES ('new', 't', 'task.started')"
    )
    async with pool.acquire() as conn:
        await store.prune(conn, 30)
    assert await pool.fetchval("SELECT array_agg(event_id) FROM ingested_events") == ["new"]


@pytest.mark.parametrize("sweep", [1.0, None])
async def test_a_row_made_due_behind_the_claim_window_is_found_by_the_sweep(
    test_api: Api,
    pool: asyncpg.Pool,
    sink: tuple[Sink, str],
    run_dispatcher: Start,
    monkeypatch: Any,
    sweep: float | None,
) -> None:
    """Claims scan from their window's low mark (store.ClaimWindow); a row another program
    makes due at an earlier time is found by the sweep that scans everything, every
    CLAIM_SWEEP_INTERVAL seconds. Without the sweep (None) it is not found."""
    monkeypatch.setattr(loop, "CLAIM_SWEEP_INTERVAL", sweep or math.inf)
    receiver, url = sink
    dispatcher = await run_dispatcher()
    for i in range(4):  # claims that return rows move the window
        await completed_task(test_api, f"{url}/ok/{i}")
        await receiver.wait_for(lambda n=i + 1: len(receiver.received) >= n)
    await wait_until(lambda: dispatcher.claim_window.low is not None)
    await pool.execute(
        """WITH d AS (
               INSERT INTO deliveries (task_id, account_id, trigger, target, host, webhook_id,
                                       next_attempt_at)
               SELECT task_id, account_id, trigger, $1, host, 'msg_late', now() - interval '1 h'
               FROM deliveries LIMIT 1
               RETURNING id
           )
           INSERT INTO delivery_payloads (delivery_id, payload) SELECT id, '{}' FROM d""",
        f"{url}/late",
    )
    await pool.execute("SELECT pg_notify('taskhook_deliveries', '')")
    if sweep:
        await receiver.wait_for(lambda: len(receiver.to("/late")) >= 1, timeout=5)
    else:
        await asyncio.sleep(1.5)  # fixed: 30 polls, and longer than the sweep interval above
    assert len(receiver.to("/late")) == (1 if sweep else 0)
