"""v2 delivery endpoints (reference/scale-api-v2.md §2.3): a project's deliveries, the tasks
of one delivery, and the project's tasks with their delivered responses."""

from __future__ import annotations

from aiohttp import web

from taskhook.core.appkeys import POOL, principal
from taskhook.core.models_v2 import (
    TASK_STATUSES,
    GetDeliveredTasksResponse,
    GetDeliveriesResponse,
    GetDeliveryTasksResponse,
)
from taskhook.core.store import v2 as v2store
from taskhook.receiver.v2 import params
from taskhook.receiver.v2.params import DELIVERY_EXPAND, PROJECT_EXPAND, Pager, reply
from taskhook.v2 import lookup
from taskhook.v2 import tasks as v2tasks
from taskhook.v2.schemas import schema_id_for
from taskhook.v2.serialize import delivered_doc, delivery_out, project_out

routes = web.RouteTableDef()


@routes.get("/v2/deliveries")
async def get_deliveries(request: web.Request) -> web.Response:
    """A project's deliveries, newest first (no paging in the SDK)."""
    query, pool, who = request.query, request.app[POOL], principal(request)
    expand = params.expand(query, PROJECT_EXPAND)
    project = await lookup.project(
        pool, who, params.one(query, "project_id"), params.one(query, "project_name")
    )
    rows = await v2store.list_deliveries(
        pool,
        who,
        project_id=project["id"],
        delivered_after=params.time(query, "delivered_after"),
        delivered_before=params.time(query, "delivered_before"),
    )
    shown = project_out(project) if "project" in expand else None
    return reply(GetDeliveriesResponse(deliveries=[delivery_out(r, shown) for r in rows]))


@routes.get("/v2/delivery")
async def get_delivery(request: web.Request) -> web.Response:
    """The tasks of one delivery (by id, or by name in a project), newest first."""
    query, pool, who = request.query, request.app[POOL], principal(request)
    expand, opts = params.expand(query, DELIVERY_EXPAND), params.opts(query)
    delivery = await lookup.delivery(
        pool,
        who,
        params.one(query, "delivery_id"),
        params.one(query, "delivery_name"),
        params.one(query, "project_id"),
        params.one(query, "project_name"),
    )
    pager = Pager(request, f"delivery|{delivery['id']}")  # its tokens fit this delivery only
    rows = await v2store.delivery_task_page(pool, who, delivery["id"], pager.after, pager.limit + 1)
    rows, token = pager.page(rows)
    tasks = await v2tasks.present(pool, who, rows, expand)
    shown: object = delivery["id"]
    if "delivery" in expand:
        projects = {}
        if "project" in expand:
            projects = await v2tasks.projects_by_id(pool, who, [delivery["project_public_id"]])
        shown = delivery_out(delivery, projects.get(delivery["project_public_id"]))
    return reply(GetDeliveredTasksResponse(delivery=shown, tasks=tasks, next_token=token), opts)


@routes.get("/v2/delivery/tasks")
async def get_delivery_tasks(request: web.Request) -> web.Response:
    """The project's tasks with their latest delivered response (null fields when never
    delivered); `delivery_id` keeps the tasks of that delivery only. `total` counts every
    task that matches."""
    query, pool, who = request.query, request.app[POOL], principal(request)
    project = await lookup.project(
        pool, who, params.one(query, "project_id"), params.one(query, "project_name")
    )
    delivery_id = params.one(query, "delivery_id")
    if delivery_id is not None:
        await lookup.delivery(pool, who, delivery_id, None, project["public_id"], None)
    pager = Pager(request, f"delivered|{project['public_id']}")
    filters = v2store.DeliveredFilters(
        project=project["name"],
        delivery_id=delivery_id,
        status=params.choice(query, "status", TASK_STATUSES),
        completed_after=params.time(query, "completed_after"),
        completed_before=params.time(query, "completed_before"),
    )
    rows = await v2store.delivered_responses(pool, who, filters, pager.after, pager.limit + 1)
    rows, token = pager.page(rows)
    total = await v2store.count_delivered_responses(pool, who, filters)
    docs = [delivered_doc(r, schema_id_for(r["response"])) for r in rows]
    return reply(GetDeliveryTasksResponse(docs=docs, total=total, next_token=token))
