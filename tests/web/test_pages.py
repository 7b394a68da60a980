"""The Tasks tab over plain HTTP: sessions, cookies, CSRF, scoping, filters,
paging, markdown, audits and resend, without a browser (fast)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import unquote

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from taskhook.core.accounts import NewAccount
from taskhook.web import sessions
from tests.conftest import Api, snapshot
from tests.web.conftest import Page, Seed, WebClient

pytestmark = pytest.mark.slow  # among the slowest files: not in make test-fast

Client = Any  # the web_client factory


def ids_on(page: Page) -> list[str]:
    """The task ids of a list page, in order."""
    return re.findall(r'href="/tasks/([0-9a-f]{24})"', page.text)


async def signed_in(web_client: Client, key: str) -> WebClient:
    client: WebClient = web_client()
    reply = await client.sign_in(key)
    assert reply.status == 303, reply.text
    return client


async def test_pages_need_a_session(web_client: Client, account: NewAccount) -> None:
    """No session: pages redirect to the sign-in form, POSTs are 401; an API key does not
    open a page, and the pages are not API (no JSON error)."""
    client = web_client()
    reply = await client.get("/tasks?status=completed")
    assert reply.status == 303
    assert unquote(reply.location) == "/signin?next=/tasks?status=completed"
    reply = await client.get("/tasks", headers={"Authorization": f"Bearer {account.live_key}"})
    assert reply.status == 303
    reply = await client.post("/tasks/" + "0" * 24 + "/resend", {"csrf": "x"})
    assert reply.status == 401 and "Sign in again" in reply.text
    form = await client.get("/signin")
    assert form.status == 200 and form.headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in form.headers["Content-Security-Policy"]
    assert (await client.get("/")).location == "/tasks"


async def test_sign_in_with_a_bad_key(web_client: Client, account: NewAccount) -> None:
    """A bad key shows the form again with a clear error, 401, and opens no session; a form
    without its double-submit token (login CSRF) is refused."""
    client = web_client()
    reply = await client.sign_in("live_" + "0" * 32)
    assert reply.status == 401
    assert "That API key is not valid" in reply.text
    assert client.cookie == ""
    stranger = web_client()
    reply = await stranger.post("/signin", {"form_token": "forged", "key": account.live_key})
    assert reply.status == 403 and stranger.cookie == ""


async def test_session_cookie_and_storage(
    web_client: Client, account: NewAccount, pool: asyncpg.Pool
) -> None:
    """The cookie is HttpOnly, SameSite=Lax, Path=/ (Secure over https); the database keeps
    only the token's SHA-256; the cookie never authenticates the API."""
    client = web_client()
    reply = await client.sign_in(account.test_key)
    set_cookie = reply.headers.getall("Set-Cookie")
    session_cookie = next(c for c in set_cookie if c.startswith("taskhook_session="))
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie
    assert "Path=/" in session_cookie and "Secure" not in session_cookie
    token = client.cookie
    rows = await pool.fetch("SELECT * FROM web_sessions")
    assert len(rows) == 1
    assert bytes(rows[0]["token_hash"]) == hashlib.sha256(token.encode()).digest()
    assert rows[0]["is_test"] is True and rows[0]["account_id"] == account.account_id
    assert not any(token in repr(value) for value in rows[0].values())
    reply = await client.get("/v1/tasks")
    assert reply.status == 401  # a cookie is not an API key
    https = make_mocked_request("GET", "/signin").clone(scheme="https")
    response = web.Response()
    sessions.set_cookie(https, response, sessions.COOKIE, "t")
    assert response.cookies[sessions.COOKIE]["secure"] is True


async def test_every_post_needs_the_csrf_token(
    web_client: Client, account: NewAccount, test_api: Api, pool: asyncpg.Pool
) -> None:
    """A POST without the session's CSRF token, with another session's, or from another
    site changes nothing (403); with it, the audit is done."""
    await test_api.project()
    task = await test_api.task()
    client = await signed_in(web_client, account.test_key)
    other = await signed_in(web_client, account.test_key)
    path = f"/tasks/{task['task_id']}/audit"
    before = await snapshot(pool)
    for data, headers in (
        ({"action": "accept"}, {}),
        ({"action": "accept", "csrf": "0" * 64}, {}),
        ({"action": "accept", "csrf": await other.csrf()}, {}),
        ({"action": "accept", "csrf": await client.csrf()}, {"Origin": "http://evil.example"}),
    ):
        reply = await client.post(path, data, headers=headers)
        assert reply.status == 403, reply.text
    assert await snapshot(pool) == before
    reply = await client.post(path, {"action": "accept", "csrf": await client.csrf()})
    assert reply.status == 303
    assert reply.location == f"/tasks/{task['task_id']}?done=accepted"
    page = await client.get(reply.location)
    assert "Task accepted" in page.text


async def test_sign_out_expiry_and_revoked_key_end_the_session(
    web_client: Client, account: NewAccount, pool: asyncpg.Pool
) -> None:
    """Sign-out deletes the session row; an expired session or a revoked key no longer
    opens a page."""
    client = await signed_in(web_client, account.live_key)
    reply = await client.post("/signout", {"csrf": await client.csrf()})
    assert reply.status == 303 and reply.location == "/signin?signed_out=1"
    assert await pool.fetchval("SELECT count(*) FROM web_sessions") == 0
    assert (await client.get("/tasks")).status == 303
    client = await signed_in(web_client, account.live_key)
    await pool.execute("UPDATE web_sessions SET expires_at = now() - interval '1 second'")
    assert (await client.get("/tasks")).status == 303
    client = await signed_in(web_client, account.live_key)
    assert (await client.get("/tasks")).status == 200
    await pool.execute("UPDATE api_keys SET revoked_at = now()")
    assert (await client.get("/tasks")).status == 303


async def test_no_access_across_accounts_or_worlds(
    web_client: Client, make_account: Any, account: NewAccount, seed_tasks: Seed
) -> None:
    """A session sees its own account and world only: another account's or world's task is
    a 404 page by URL (detail, JSON, audit, resend), and absent from the list and export."""
    mine = await seed_tasks(account.account_id, 3, status="completed", response={"a": 1})
    other = await make_account("other")
    theirs = await seed_tasks(other.account_id, 2)
    test_world = await seed_tasks(account.account_id, 2, is_test=True)
    client = await signed_in(web_client, account.live_key)
    assert ids_on(await client.get("/tasks")) == mine
    intruder = await signed_in(web_client, other.live_key)
    assert ids_on(await intruder.get("/tasks")) == theirs
    csrf = await intruder.csrf()
    for task_id in (*mine, *test_world):
        assert (await intruder.get(f"/tasks/{task_id}")).status == 404
        assert (await intruder.get(f"/tasks/{task_id}/json")).status == 404
        reply = await intruder.post(f"/tasks/{task_id}/audit", {"csrf": csrf, "action": "accept"})
        assert reply.status == 404
        reply = await intruder.post(f"/tasks/{task_id}/resend", {"csrf": csrf})
        assert reply.status == 404
    exported = json.loads((await intruder.get("/tasks/export.json")).text)
    assert [t["task_id"] for t in exported] == theirs
    tester = await signed_in(web_client, account.test_key)
    assert ids_on(await tester.get("/tasks")) == test_world


async def _export(client: WebClient, query: str = "") -> list[str]:
    reply = await client.get("/tasks/export.json" + query)
    assert reply.status == 200, reply.text
    return [t["task_id"] for t in json.loads(reply.text)]


async def test_status_and_audit_filters_map_onto_task_columns(
    web_client: Client, account: NewAccount, seed_tasks: Seed
) -> None:
    """Seed 003's statuses: Queued and In Progress are pending without and with work started,
    Redo a task recalled at least once; audit statuses are customer_review_status."""
    aid = account.account_id
    queued = await seed_tasks(aid, 2, start="2024-01-01T00:00:00Z")
    started = await seed_tasks(aid, 2, start="2024-01-02T00:00:00Z", work_started=True)
    redoing = await seed_tasks(
        aid, 1, start="2024-01-03T00:00:00Z", completed_at=_at("2024-01-03T01:00:00Z")
    )
    ready = await seed_tasks(
        aid, 2, status="completed", start="2024-01-04T00:00:00Z", customer_review_status="pending"
    )
    redone = await seed_tasks(
        aid,
        1,
        status="completed",
        start="2024-01-05T00:00:00Z",
        times_redone=1,
        customer_review_status="fixed",
    )
    accepted = await seed_tasks(
        aid, 1, status="completed", start="2024-01-06T00:00:00Z", customer_review_status="accepted"
    )
    rejected = await seed_tasks(
        aid, 1, status="completed", start="2024-01-07T00:00:00Z", customer_review_status="rejected"
    )
    errored = await seed_tasks(aid, 1, status="error", start="2024-01-08T00:00:00Z")
    canceled = await seed_tasks(aid, 1, status="canceled", start="2024-01-09T00:00:00Z")
    client = await signed_in(web_client, account.live_key)
    expect = {
        "status=queued": redoing + queued,
        "status=in_progress": started,
        "status=redo": redone + redoing,
        "status=completed": rejected + accepted + redone + ready,
        "status=error": errored,
        "status=canceled": canceled,
        "audit=ready": ready,
        "audit=accepted": accepted,
        "audit=fixed": redone,
        "audit=rejected": rejected,
        "status=completed&audit=ready": ready,
    }
    for query, ids in expect.items():
        assert await _export(client, "?" + query) == ids, query
        page = await client.get("/tasks?" + query)
        assert ids_on(page) == ids, query
        assert f"<strong>{len(ids)}</strong> task" in page.text
    page = await client.get("/tasks?status=sideways")
    assert "Unknown status" in page.text and len(ids_on(page)) == 12
    assert (await client.get("/tasks/export.json?status=sideways")).status == 400


def _at(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_project_batch_and_created_range_in_each_time_zone(
    web_client: Client, account: NewAccount, seed_tasks: Seed
) -> None:
    """Project and batch filter exactly; a created date range covers whole days in UTC,
    Pacific (with daylight saving) or the browser's zone (by name, else by offset)."""
    aid = account.account_id
    # One task an hour from 2024-03-09 20:00 UTC to 2024-03-11 19:00 UTC (48 tasks);
    # hourly is newest first, so hourly[47 - h] was created h hours after the first.
    hourly = await seed_tasks(aid, 48, start="2024-03-09T20:00:00Z", step="1 hour")
    in_batch = await seed_tasks(aid, 2, project="other", batch="b1", start="2023-01-01T00:00:00Z")
    client = await signed_in(web_client, account.live_key)
    assert await _export(client, "?project=other") == in_batch
    assert await _export(client, "?batch=b1") == in_batch
    assert await _export(client, "?batch=nope") == []
    utc_day = await _export(client, "?from=2024-03-10&to=2024-03-10")
    assert len(utc_day) == 24 and utc_day == hourly[20:44]
    # Pacific 2024-03-10 is 23 hours long (DST starts): 08:00 UTC to 07:00 UTC next day.
    pacific_day = await _export(client, "?from=2024-03-10&to=2024-03-10&tz=pacific")
    assert len(pacific_day) == 23 and pacific_day == hourly[13:36]
    tokyo = await _export(client, "?from=2024-03-10&to=2024-03-10&tz=local&tzname=Asia/Tokyo")
    assert tokyo == await _export(client, "?from=2024-03-10&to=2024-03-10&tz=local&tzoffset=540")
    assert len(tokyo) == 19 and tokyo == hourly[29:]  # from 2024-03-09 15:00 UTC
    page = await client.get("/tasks?from=2024-03-11&tz=pacific")
    assert "times in Pacific Time" in page.text
    page = await client.get("/tasks?from=March&tz=local")
    assert "must be a date" in page.text and "Local time needs" in page.text


async def test_keyset_paging_follows_the_next_links(
    web_client: Client, account: NewAccount, seed_tasks: Seed, pool: asyncpg.Pool
) -> None:
    """Pages hold every matching task once, newest first, even when tasks arrive while
    paging; filters stay in the page links; a forged page link starts again."""
    ids = await seed_tasks(account.account_id, 60, start="2024-01-01T00:00:00Z")
    client = await signed_in(web_client, account.live_key)
    seen: list[str] = []
    page = await client.get("/tasks?status=queued&limit=25")
    while True:
        seen += ids_on(page)
        await seed_tasks(account.account_id, 1, start="2025-01-01T00:00:00Z")  # arrives now
        found = re.search(r'href="(/tasks\?[^"]+)" rel="next"', page.text)
        if not found:
            break
        link = found.group(1).replace("&amp;", "&")
        assert "status=queued" in link and "limit=25" in link
        page = await client.get(link)
    assert seen == ids
    assert "Page 3" in page.text and "showing 51\u201360" in page.text
    page = await client.get("/tasks?after=forged")
    assert "not valid here" in page.text and len(ids_on(page)) == 50


async def test_instruction_markdown_lets_no_html_through(
    web_client: Client, account: NewAccount, test_api: Api
) -> None:
    """Seed 000: HTML in instructions is unsupported. Tags show as text, javascript: links
    are not links, markdown renders."""
    await test_api.project()
    instruction = (
        "# Big or small?\n\n**Look** at the [guide](https://example.com/g).\n\n"
        "<script>alert(1)</script> <img src=x onerror=alert(2)>\n\n"
        "[click](javascript:alert(3)) ![i](javascript:alert(4))"
    )
    task = await test_api.task(instruction=instruction)
    client = await signed_in(web_client, account.test_key)
    page = await client.get(f"/tasks/{task['task_id']}")
    assert page.status == 200
    section = page.text.split('id="instruction">')[1].split("</div>")[0]
    assert "<h1>Big or small?</h1>" in section and "<strong>Look</strong>" in section
    assert 'href="https://example.com/g"' in section
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section and "<script" not in section
    assert "&lt;img src=x onerror=alert(2)&gt;" in section and "<img" not in section
    assert "[click](javascript:alert(3))" in section  # shown as text, not a link
    assert "javascript:" not in page.text.replace("[click](javascript:", "").replace(
        "![i](javascript:", ""
    )


async def test_audit_from_the_page_sends_the_api_callback(
    web_client: Client, account: NewAccount, test_api: Api, pool: asyncpg.Pool
) -> None:
    """Accept, Reject (with a comment) and Fix from the page write the task and enqueue the
    same callback body as POST /v1/task/{id}/audit does."""
    await test_api.project()
    by_page = [await test_api.task(callback_url="http://127.0.0.1:9/cb") for _ in range(3)]
    by_api = [await test_api.task(callback_url="http://127.0.0.1:9/cb") for _ in range(3)]
    client = await signed_in(web_client, account.test_key)
    csrf = await client.csrf()
    fixed = {"category": "y", "note": "fixed"}
    forms = [
        {"action": "accept", "comment": "fine"},
        {"action": "reject", "comment": "wrong"},
        {"action": "fix", "response": json.dumps(fixed), "comment": "corrected"},
    ]
    bodies = [
        {"accepted": True, "comments": "fine"},
        {"accepted": False, "comments": "wrong"},
        {"accepted": True, "comments": "corrected", "response": fixed},
    ]
    for task, form in zip(by_page, forms, strict=True):
        reply = await client.post(f"/tasks/{task['task_id']}/audit", {"csrf": csrf, **form})
        assert reply.status == 303, reply.text
    for task, body in zip(by_api, bodies, strict=True):
        status, _ = await test_api.call("POST", f"/v1/task/{task['task_id']}/audit", json=body)
        assert status == 200

    async def last_payload(task_id: str) -> dict[str, Any]:
        row = await pool.fetchrow(
            "SELECT trigger, payload::jsonb AS payload FROM deliveries d "
            "JOIN delivery_payloads p ON p.delivery_id = d.id WHERE task_id = $1 "
            "ORDER BY id DESC LIMIT 1",
            task_id,
        )
        return {"trigger": row["trigger"], **_shape(row["payload"])}

    for a, b in zip(by_page, by_api, strict=True):
        assert await last_payload(a["task_id"]) == await last_payload(b["task_id"])
    fixed_task = await pool.fetchrow("SELECT * FROM tasks WHERE id = $1", by_page[2]["task_id"])
    assert fixed_task["response"] == fixed
    assert fixed_task["prior_responses"] == [by_page[2]["response"]]
    page = await client.get(f"/tasks/{by_page[2]['task_id']}?done=fixed")
    assert "prior_responses" in page.text and "Prior responses" in page.text
    assert page.status == 200, page.text[-800:]
    audit_section = page.text.split('id="h-audit"')[1].split("</table>")[0]
    assert "<td>fixed</td><td>customer</td><td>acme</td>" in audit_section


def _shape(payload: dict[str, Any]) -> dict[str, Any]:
    """A callback body without what differs between two tasks (ids, times, responses)."""
    task = payload["task"]
    return {
        "keys": sorted(payload),
        "task_keys": sorted(task),
        "status": payload["status"],
        "review": payload.get("customer_review_status"),
        "comments": payload.get("customer_review_comments"),
        "audits": [(a["audit_result"], a["audit_source"]) for a in task["audits"]],
        "prior": len(payload.get("prior_responses") or []),
    }


async def test_bad_fix_or_reject_changes_nothing(
    web_client: Client, account: NewAccount, test_api: Api, pool: asyncpg.Pool
) -> None:
    """Invalid JSON, a non-object, or a rejection with no comment: a clear error on the
    page (400), the typed text kept, and nothing written."""
    await test_api.project()
    task = await test_api.task()
    client = await signed_in(web_client, account.test_key)
    csrf = await client.csrf()
    path = f"/tasks/{task['task_id']}/audit"
    before = await snapshot(pool)
    cases = [
        ({"action": "fix", "response": '{"category": '}, "not valid JSON"),
        ({"action": "fix", "response": "[1, 2]"}, "must be a JSON object"),
        ({"action": "reject", "comment": "  "}, "needs a comment"),
        ({"action": "dance"}, "Choose Accept, Reject or Fix"),
    ]
    for form, message in cases:
        reply = await client.post(path, {"csrf": csrf, **form})
        assert reply.status == 400, reply.text
        assert message in reply.text
    reply = await client.post(path, {"csrf": csrf, "action": "fix", "response": '{"category": '})
    assert "{&#34;category&#34;: </textarea>" in reply.text  # the typed text, escaped
    assert await snapshot(pool) == before


async def test_resend_and_download_from_the_page(
    web_client: Client, account: NewAccount, test_api: Api, pool: asyncpg.Pool
) -> None:
    """Resend enqueues the latest body again (as the API's resend); Download JSON is the API
    task object as an attachment; the detail page shows the callback timeline."""
    await test_api.project()
    task = await test_api.task(callback_url="http://127.0.0.1:9/cb", tags=["t1"])
    client = await signed_in(web_client, account.test_key)
    reply = await client.post(f"/tasks/{task['task_id']}/resend", {"csrf": await client.csrf()})
    assert reply.status == 303 and "done=resent" in reply.location
    rows = await pool.fetch(
        "SELECT trigger, payload FROM deliveries d JOIN delivery_payloads p "
        "ON p.delivery_id = d.id WHERE task_id = $1 ORDER BY id",
        task["task_id"],
    )
    assert [r["trigger"] for r in rows] == ["completed", "resend"]
    assert rows[0]["payload"] == rows[1]["payload"]
    page = await client.get(f"/tasks/{task['task_id']}?done=resent")
    assert "Callback queued again" in page.text
    assert page.text.count('class="delivery ') == 2 and "Resend latest callback" in page.text
    download = await client.get(f"/tasks/{task['task_id']}/json")
    assert download.headers["Content-Disposition"] == (
        f'attachment; filename="task-{task["task_id"]}.json"'
    )
    status, api_task = await test_api.call("GET", f"/v1/task/{task['task_id']}")
    assert status == 200
    assert json.loads(download.text) == api_task


async def test_a_task_without_project_shows_none(
    web_client: Client, account: NewAccount, test_api: Api
) -> None:
    """A project-less task lists with an empty project cell and its page says "none"."""
    task = await test_api.task(project=None)
    client = await signed_in(web_client, account.test_key)
    listing = await client.get("/tasks")
    assert ids_on(listing) == [task["task_id"]] and ">None<" not in listing.text
    page = await client.get(f"/tasks/{task['task_id']}")
    assert "<dt>Project</dt><dd>none</dd>" in page.text
    assert "/tasks?project=None" not in page.text


async def test_an_uploaded_attachment_is_previewed(
    web_client: Client, account: NewAccount, test_api: Api, http: Any, base_url: str
) -> None:
    """A task whose attachment is a file uploaded here shows it on its page: an image
    inline from this origin; a wrong token gets no preview."""
    form = aiohttp.FormData()
    form.add_field("file", b"\x89PNG\r\n\x1a\n0000", filename="cat.png", content_type="image/png")
    async with http.post(
        f"{base_url}/v1/files/upload",
        data=form,
        headers={"Authorization": f"Bearer {account.test_key}"},
    ) as resp:
        assert resp.status == 200
        uploaded = await resp.json()
    path = "/" + uploaded["attachment_url"].split("/", 3)[3]
    await test_api.project()
    with_file = await test_api.task(attachment=uploaded["attachment_url"])
    elsewhere = await test_api.task(attachment=uploaded["attachment_url"][:-4] + "0000")
    client = await signed_in(web_client, account.test_key)
    page = await client.get(f"/tasks/{with_file['task_id']}")
    assert f'<img src="{path}" alt="cat.png"' in page.text
    assert "image/png, 12 bytes" in page.text
    other = await client.get(f"/tasks/{elsewhere['task_id']}")
    assert 'id="attachment"' not in other.text


async def test_the_batch_callback_shows_in_its_tasks_timeline(
    web_client: Client,
    account: NewAccount,
    test_api: Api,
    sink: Any,
    run_dispatcher: Any,
    pool: asyncpg.Pool,
) -> None:
    """A test-key task completes at once, so its batch does: the batch's callback is
    sent and shows on the task's page after the task's own."""
    receiver, url = sink
    await test_api.project()
    status, _ = await test_api.call(
        "POST", "/v1/batches", json={"project": "proj", "name": "b1", "callback": f"{url}/ok/b"}
    )
    assert status == 200
    task = await test_api.task(batch="b1", callback_url=f"{url}/ok/t")
    await run_dispatcher()
    await receiver.wait_for(lambda: len(receiver.to("/ok/b")) == 1)
    client = await signed_in(web_client, account.test_key)
    page = await client.get(f"/tasks/{task['task_id']}")
    assert page.text.index("<strong>Completed</strong> callback") < page.text.index(
        "<strong>Batch completed</strong> callback"
    )
