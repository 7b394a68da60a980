"""v2 delivery endpoints: a project's deliveries, the tasks of one delivery, and the
project's tasks with their delivered responses."""

from __future__ import annotations

from aiohttp import web

from taskhook.core.appkeys import POOL, principal
from taskhook.core.models_v2 import (
    DeliveryOut,
    GetDeliveredTasksResponse,
    GetDeliveriesResponse,
    GetDeliveryTasksResponse,
)
from taskhook.core.store import v2 as v2store
from taskhook.receiver.routes import Api
from taskhook.receiver.v2.params import (
    DeliveriesQuery,
    DeliveryQuery,
    DeliveryTasksQuery,
    Pager,
    reply,
)
from taskhook.v2 import lookup
from taskhook.v2 import tasks as v2tasks
from taskhook.v2.schemas import schema_id_for
from taskhook.v2.serialize import delivered_doc, delivery_out, project_out

api = Api("v2", prefix="v2_", errors=(404,))
routes = api.routes


@api.get(
    "/v2/deliveries",
    "A project's deliveries, newest first",
    GetDeliveriesResponse,
    query=DeliveriesQuery,
)
async def get_deliveries(request: web.Request, query: DeliveriesQuery) -> web.Response:
    """A project's deliveries, newest first (no paging in the SDK)."""
    pool, who = request.app[POOL], principal(request)
    project = await lookup.project(pool, who, query.project_id, query.project_name)
    rows = await v2store.list_deliveries(
        pool,
        who,
        project_id=project["id"],
        delivered_after=query.delivered_after,
        delivered_before=query.delivered_before,
    )
    shown = project_out(project) if "project" in query.expand else None
    return reply(GetDeliveriesResponse(deliveries=[delivery_out(r, shown) for r in rows]))


@api.get(
    "/v2/delivery",
    "The tasks of one delivery (by id, or by name within a project)",
    GetDeliveredTasksResponse,
    query=DeliveryQuery,
)
async def get_delivery(request: web.Request, query: DeliveryQuery) -> web.Response:
    """The tasks of one delivery (by id, or by name in a project), newest first."""
    pool, who, expand = request.app[POOL], principal(request), query.expand
    delivery = await lookup.delivery(
        pool, who, query.delivery_id, query.delivery_name, query.project_id, query.project_name
    )
    pager = Pager(request, f"delivery|{delivery['id']}", query)  # its tokens fit this delivery only
    rows = await v2store.delivery_task_page(pool, who, delivery["id"], pager.after, pager.limit + 1)
    rows, token = pager.page(rows)
    tasks = await v2tasks.present(pool, who, rows, expand)
    shown: str | DeliveryOut = delivery["id"]
    if "delivery" in expand:
        projects = {}
        if "project" in expand:
            projects = await v2tasks.projects_by_id(pool, who, [delivery["project_public_id"]])
        shown = delivery_out(delivery, projects.get(delivery["project_public_id"]))
    shown_page = GetDeliveredTasksResponse(delivery=shown, tasks=tasks, next_token=token)
    return reply(shown_page, query.opts)


@api.get(
    "/v2/delivery/tasks",
    "A project's tasks with their latest delivered response",
    GetDeliveryTasksResponse,
    query=DeliveryTasksQuery,
)
async def get_delivery_tasks(request: web.Request, query: DeliveryTasksQuery) -> web.Response:
    """The project's tasks with their latest delivered response (null fields when never
    delivered); `delivery_id` keeps the tasks of that delivery only. `total` counts every
    task that matches."""
    pool, who = request.app[POOL], principal(request)
    project = await lookup.project(pool, who, query.project_id, query.project_name)
    delivery_id = query.delivery_id
    if delivery_id is not None:
        await lookup.delivery(pool, who, delivery_id, None, project["public_id"], None)
    pager = Pager(request, f"delivered|{project['public_id']}", query)
    filters = v2store.DeliveredFilters(
        project=project["name"],
        delivery_id=delivery_id,
        status=query.status,
        completed_after=query.completed_after,
        completed_before=query.completed_before,
    )
    rows = await v2store.delivered_responses(pool, who, filters, pager.after, pager.limit + 1)
    rows, token = pager.page(rows)
    total = await v2store.count_delivered_responses(pool, who, filters)
    docs = [delivered_doc(r, schema_id_for(r["response"])) for r in rows]
    return reply(GetDeliveryTasksResponse(docs=docs, total=total, next_token=token))
