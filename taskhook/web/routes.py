"""Handlers of the Tasks tab pages: sign-in, the task list with its filters and
export, the task detail with its callback timeline, audit and resend.

Every task change goes through taskhook/core/tasks.py, exactly as the API does, so an audit
from the page sends the same callback as POST /v1/task/{id}/audit.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from taskhook.core import cursor, files, store, tasks
from taskhook.core.appkeys import POOL, TOKEN_KEY
from taskhook.core.db import json_text
from taskhook.core.errors import ApiError, BadRequest
from taskhook.core.logs import get_logger
from taskhook.core.models import AuditRequest
from taskhook.core.principal import Principal
from taskhook.core.serialize import task_fields, task_json
from taskhook.core.store import web as web_store
from taskhook.core.validation import decode_json, parse_model
from taskhook.web import SESSION, filters, sessions
from taskhook.web.render import STATIC, page, see_other

log = get_logger("taskhook.web")
routes = web.RouteTableDef()
EXPORT_PAGE = 500  # tasks per query while exporting: memory stays flat however many match
_SIGNIN_BAD_KEY = (
    "That API key is not valid. Use a live key (live_...) or a test key (test_...) of your account."
)
# ?done=... after a change (post, redirect, get): fixed messages, never text from the URL.
_DONE = {
    "accepted": "Task accepted. Its callback is on its way.",
    "rejected": "Task rejected. Its callback is on its way.",
    "fixed": "Response fixed; the previous one is kept in prior_responses. "
    "Its callback is on its way.",
    "resent": "Callback queued again. The new delivery appears in the timeline below.",
}


def _who(request: web.Request) -> Principal:
    return request[SESSION]


def _scope(who: Principal) -> str:
    return f"web|{who.account_id}|{who.is_test}"


# --- sign-in ------------------------------------------------------------------------------


@routes.get("/")
async def root(_request: web.Request) -> web.StreamResponse:
    return see_other("/tasks")


def _signin_page(request: web.Request, *, status: int = 200, error: str = "") -> web.Response:
    form_token = secrets.token_urlsafe(16)
    nxt = request.query.get("next", "")
    response = page(
        request,
        "signin.html",
        status=status,
        title="Sign in",
        error=error,
        form_token=form_token,
        next=nxt if _local(nxt) else "",
        signed_out="signed_out" in request.query,
    )
    sessions.set_cookie(
        request, response, sessions.SIGNIN_COOKIE, form_token, samesite="Strict", max_age="3600"
    )
    return response


def _local(target: str) -> bool:
    """A path of the Tasks tab on this server (no open redirect)."""
    return target.startswith("/tasks") and "\\" not in target and not target.startswith("//")


@routes.get("/signin")
async def signin_form(request: web.Request) -> web.Response:
    return _signin_page(request)


@routes.post("/signin")
async def signin(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    given, expected = form.get("form_token"), request.cookies.get(sessions.SIGNIN_COOKIE, "")
    if not (isinstance(given, str) and expected and sessions.same_token(given, expected)):
        return _signin_page(request, status=403, error=sessions.FORM_EXPIRED)
    key = form.get("key")
    key = key.strip() if isinstance(key, str) else ""
    token = await sessions.open_session(request, key) if key else None
    if token is None:
        log.info("web.signin_failed")
        return _signin_page(request, status=401, error=_SIGNIN_BAD_KEY)
    nxt = form.get("next")
    response = see_other(nxt if isinstance(nxt, str) and _local(nxt) else "/tasks")
    sessions.set_cookie(request, response, sessions.COOKIE, token)
    response.del_cookie(sessions.SIGNIN_COOKIE, path="/")
    log.info("web.signed_in")
    return response


@routes.post("/signout")
async def signout(request: web.Request) -> web.StreamResponse:
    response = see_other("/signin?signed_out=1")
    await sessions.close_session(request, response)
    return response


# --- the task list ------------------------------------------------------------------------


def status_label(row: Any) -> str:
    if row["status"] == "pending":
        return "In Progress" if row["work_started"] else "Queued"
    return {"completed": "Completed", "error": "Error", "canceled": "Canceled"}[row["status"]]


def _is_redo(row: Any) -> bool:
    return bool(row["times_redone"]) or (
        row["status"] == "pending" and row["completed_at"] is not None
    )


def _audit_label(row: Any) -> str:
    labels = {"pending": "Ready to Audit", "commented": "Commented"}
    status = row["customer_review_status"]
    return labels.get(status, (status or "").capitalize())


def _list_row(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "status": status_label(row),
        "redo": _is_redo(row),
        "type": row["type"],
        "project": row["project"],
        "batch": row["batch"],
        "created_at": row["created_at"],
        "audit": _audit_label(row),
        "callback": row["callback_succeeded"],
    }


def _after(request: web.Request, who: Principal, view: filters.View) -> Any:
    token = request.query.get("after")
    if not token:
        return None
    try:
        return cursor.decode(request.app[TOKEN_KEY], _scope(who), token)
    except (BadRequest, ValueError, TypeError):
        view.errors.append("That page link is not valid here; showing the newest tasks.")
        return None


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 7 else 1


@routes.get("/tasks")
async def task_list(request: web.Request) -> web.Response:
    who, pool = _who(request), request.app[POOL]
    view = filters.parse(request.query)
    after = _after(request, who, view)
    rows = await store.list_tasks(pool, who, view.filters, after, view.limit + 1)
    total = await store.count_tasks(pool, who, view.filters)
    has_more = len(rows) > view.limit
    rows = rows[: view.limit]
    number = _page_number(request) if after else 1
    query = {**view.filter_query(), "limit": str(view.limit)}
    next_url = None
    if has_more:
        token = cursor.encode(request.app[TOKEN_KEY], _scope(who), *_last(rows))
        next_url = "/tasks?" + urlencode({**query, "after": token, "page": number + 1})
    return page(
        request,
        "list.html",
        title="Tasks",
        view=view,
        rows=[_list_row(r) for r in rows],
        total=total,
        page_number=number,
        first=(number - 1) * view.limit,
        next_url=next_url,
        first_url="/tasks?" + urlencode(query) if after else None,
        export_url="/tasks/export.json?" + urlencode(view.filter_query()),
        projects=[p["name"] for p in await store.list_projects(pool, who)],
        batches=await web_store.batch_names(pool, who),
        statuses={k: v[0] for k, v in filters.STATUSES.items()},
        audits={k: v[0] for k, v in filters.AUDITS.items()},
        zones=filters.ZONES,
        page_sizes=filters.PAGE_SIZES,
    )


def _last(rows: list[Any]) -> tuple[datetime, str]:
    return rows[-1]["created_at"], rows[-1]["id"]


@routes.get("/tasks/export.json")
async def export(request: web.Request) -> web.StreamResponse:
    """Every task matching the filters, as one JSON array of API task objects, written
    EXPORT_PAGE tasks at a time (keyset pages, newest first): constant memory."""
    who, pool = _who(request), request.app[POOL]
    view = filters.parse(request.query)
    if view.errors:
        return page(
            request, "error.html", status=400, title="Cannot export", message=" ".join(view.errors)
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    world = "test" if who.is_test else "live"
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Content-Disposition": f'attachment; filename="tasks-{world}-{stamp}.json"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
    )
    await response.prepare(request)
    await response.write(b"[")
    after, sent = None, 0
    while True:
        rows = await store.list_tasks(pool, who, view.filters, after, EXPORT_PAGE)
        if rows:
            text = ",\n".join(json_text(task_json(r)) for r in rows)
            await response.write(((",\n" if sent else "\n") + text).encode())
            sent += len(rows)
        if len(rows) < EXPORT_PAGE:
            break
        after = _last(rows)
    await response.write(b"\n]\n")
    await response.write_eof()
    log.info("web.exported", tasks=sent)
    return response


# --- one task -----------------------------------------------------------------------------


async def _detail(
    request: web.Request,
    *,
    status: int = 200,
    error: str = "",
    fix_text: str | None = None,
    comment: str = "",
) -> web.Response:
    who, pool = _who(request), request.app[POOL]
    try:
        row = await tasks.get_task(pool, who, request.match_info["task_id"])
    except ApiError:
        return page(
            request,
            "error.html",
            status=404,
            title="Task not found",
            message="There is no task with that ID in this account and world.",
        )
    deliveries = [
        *await store.task_deliveries(pool, row["id"]),
        *await _batch_deliveries(pool, who, row["batch"]),
    ]
    task = task_fields(row)
    attachment = await _attachment(pool, who, row["params"].get("attachment"))
    return page(
        request,
        "detail.html",
        status=status,
        title=f"Task {row['id']}",
        task=task,
        row=row,
        status_label=status_label(row),
        redo=_is_redo(row),
        audit_label=_audit_label(row),
        deliveries=deliveries,
        attachment=attachment,
        done=_DONE.get(request.query.get("done", ""), ""),
        error=error,
        fix_text=fix_text
        if fix_text is not None
        else json.dumps(row["response"], indent=2, ensure_ascii=False),
        comment=comment,
    )


async def _batch_deliveries(pool: Any, who: Principal, batch: str | None) -> list[Any]:
    """The callback of the task's batch, shown in the task's timeline after its own."""
    if batch is None:
        return []
    found = await store.get_batch(pool, who, batch)
    return list(await store.batch_deliveries(pool, found["id"])) if found else []


async def _attachment(pool: Any, who: Principal, url: Any) -> dict[str, Any] | None:
    """The task's attachment when it is a file of this account and world served here: the
    detail page previews it (an image inline, anything else as a link)."""
    served = files.served_path(url)
    if served is None:
        return None
    row = await store.get_file(pool, who, served[0])
    if row is None or row["token"] != served[1]:
        return None
    return {
        "path": f"/files/{row['id']}/{row['token']}",
        "name": row["display_name"] or row["id"],
        "mimetype": row["mimetype"],
        "size": row["size"],
        "image": row["mimetype"].startswith("image/"),
    }


@routes.get("/tasks/{task_id}")
async def task_detail(request: web.Request) -> web.Response:
    return await _detail(request)


@routes.get("/tasks/{task_id}/json")
async def task_download(request: web.Request) -> web.Response:
    """The task as GET /v1/task/{id} returns it, as a file."""
    try:
        row = await tasks.get_task(request.app[POOL], _who(request), request.match_info["task_id"])
    except ApiError:
        return page(
            request,
            "error.html",
            status=404,
            title="Task not found",
            message="There is no task with that ID in this account and world.",
        )
    return web.Response(
        text=json.dumps(task_fields(row), indent=2, ensure_ascii=False) + "\n",
        content_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="task-{row["id"]}.json"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _audit_body(action: str, comment: str | None, response_text: str) -> AuditRequest:
    """The page's form as the API's audit body; BadRequest says what is wrong."""
    if action == "accept":
        return AuditRequest(accepted=True, comments=comment)
    if action == "reject":
        if not comment:
            raise BadRequest("A rejection needs a comment saying what is wrong.")
        return AuditRequest(accepted=False, comments=comment)
    if action == "fix":
        try:
            response = decode_json(response_text.encode("utf-8", "surrogatepass"))
        except BadRequest as exc:
            raise BadRequest(exc.message.replace("Request body", "The response")) from None
        if not isinstance(response, dict):
            raise BadRequest("The response must be a JSON object ({...}).")
        data = {"accepted": True, "comments": comment, "response": response}
        return parse_model(AuditRequest, data, "audit")
    raise BadRequest("Choose Accept, Reject or Fix.")


def _text(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


@routes.post("/tasks/{task_id}/audit")
async def audit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    action, response_text = _text(form, "action"), _text(form, "response")
    comment = _text(form, "comment").strip() or None
    task_id = request.match_info["task_id"]
    try:
        body = _audit_body(action, comment, response_text)
        async with request.app[POOL].acquire() as conn, conn.transaction():
            await tasks.audit_task(conn, _who(request), task_id, body)
    except ApiError as exc:
        fix_text = response_text if action == "fix" else None
        return await _detail(
            request, status=exc.status, error=exc.message, fix_text=fix_text, comment=comment or ""
        )
    log.info("task.audited", task_id=task_id, action=action, source="tasks_tab")
    done = {"accept": "accepted", "reject": "rejected", "fix": "fixed"}[action]
    return see_other(f"/tasks/{task_id}?done={done}")


@routes.post("/tasks/{task_id}/resend")
async def resend(request: web.Request) -> web.StreamResponse:
    task_id = request.match_info["task_id"]
    try:
        async with request.app[POOL].acquire() as conn, conn.transaction():
            _task, delivery_id = await tasks.resend_callback(conn, _who(request), task_id)
    except ApiError as exc:
        return await _detail(request, status=exc.status, error=exc.message)
    log.info("delivery.resend_requested", task_id=task_id, delivery_id=delivery_id)
    return see_other(f"/tasks/{task_id}?done=resent#callbacks")


# Static files (CSS, JS), served by the receiver itself: no CDN, works offline. Their URLs
# carry a content hash (render.static_url), so they are cached for a long time.
routes.static("/static", str(STATIC))
